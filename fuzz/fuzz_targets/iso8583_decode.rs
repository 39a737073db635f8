//! Arbitrary bytes from the network: decoding must answer without
//! panicking, and whatever it accepts must re-encode to the same bytes.
//! Run with `scripts/fuzz` (all targets) from the repository root.

#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use refundry_iso8583::{Dialect, decode, encode};

static CUP: LazyLock<Dialect> = LazyLock::new(Dialect::china_unionpay_pos);

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = decode(&CUP, data) {
        let again = encode(&CUP, &message).expect("a decoded message encodes");
        assert_eq!(again, data, "decoding is canonical: one message, one spelling");
    }
});
