//! Configuration files are written by hand: any TOML must be accepted or
//! refused with an error, never crash the binary.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = refundry::config::Config::from_toml_str(text);
    }
});
