//! Properties over many generated messages and byte strings.

mod common;

use proptest::collection::vec;
use proptest::prelude::*;
use refundry_iso8583::{Dialect, decode, encode};

fn cup() -> Dialect {
    Dialect::china_unionpay_pos()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn decoding_an_encoded_cup_message_gives_it_back(m in common::message_in(&cup())) {
        let d = cup();
        let bytes = encode(&d, &m).unwrap();
        prop_assert_eq!(decode(&d, &bytes).unwrap(), m);
    }

    #[test]
    fn decoding_an_encoded_ascii_message_gives_it_back(m in common::message_in(&common::ascii_dialect())) {
        let d = common::ascii_dialect();
        let bytes = encode(&d, &m).unwrap();
        prop_assert_eq!(decode(&d, &bytes).unwrap(), m);
    }

    #[test]
    fn decoding_random_bytes_answers_without_panicking(bytes in vec(any::<u8>(), 0..700)) {
        for d in [cup(), common::ascii_dialect()] {
            if let Ok(m) = decode(&d, &bytes) {
                prop_assert_eq!(encode(&d, &m).unwrap(), bytes.clone());
            }
        }
    }

    /// Random bytes rarely get past the bitmap; damaging a valid message
    /// reaches every field's decoder. Whatever is accepted has one spelling.
    #[test]
    fn a_damaged_message_is_refused_or_read_exactly(
        m in common::message_in(&cup()),
        damage in vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let d = cup();
        let mut bytes = encode(&d, &m).unwrap();
        for (at, byte) in damage {
            let i = at.index(bytes.len());
            bytes[i] = byte;
        }
        if truncate {
            bytes.truncate(cut.index(bytes.len() + 1));
        }
        if let Ok(back) = decode(&d, &bytes) {
            prop_assert_eq!(encode(&d, &back).unwrap(), bytes);
        }
    }
}
