//! A second dialect is a table, not code: the same encode and decode
//! write an all-ASCII host's messages, secondary bitmap included.

mod common;

use refundry_iso8583::{CodecError, Mti, Part, decode, encode};

#[test]
fn the_ascii_dialect_writes_ascii_lengths_and_a_hex_bitmap() {
    let d = common::ascii_dialect();
    let mut m = refundry_iso8583::Message::new(Mti::FINANCIAL_REQUEST);
    m.set_text(2, "6222021234567890").set_text(4, "000000001250").set_text(70, "301");
    m.set_text(102, "acct-1");
    let bytes = encode(&d, &m).unwrap();
    let mut expected = b"0200".to_vec();
    expected.extend_from_slice(b"D000000000000000"); // bits 1, 2, 4
    expected.extend_from_slice(b"0400000004000000"); // bits 70, 102
    expected.extend_from_slice(b"166222021234567890");
    expected.extend_from_slice(b"000000001250");
    expected.extend_from_slice(b"301");
    expected.extend_from_slice(b"06acct-1");
    assert_eq!(String::from_utf8_lossy(&bytes), String::from_utf8_lossy(&expected));
    assert_eq!(decode(&d, &bytes).unwrap(), m);
}

#[test]
fn the_ascii_dialect_refuses_lower_case_hex_and_non_digit_lengths() {
    let d = common::ascii_dialect();
    let lower = b"02005000000000000000".to_vec();
    let mut lower_hex = lower.clone();
    lower_hex[4] = b'5';
    lower_hex[5] = b'a';
    let err = decode(&d, &lower_hex).unwrap_err();
    assert!(matches!(err, CodecError::Malformed { part: Part::PrimaryBitmap, .. }), "{err}");
    let bad_len = b"02004000000000000000x6622202".to_vec();
    let err = decode(&d, &bad_len).unwrap_err();
    assert!(matches!(err, CodecError::Malformed { part: Part::LengthOf(2), .. }), "{err}");
}

#[test]
fn a_cup_message_is_not_an_ascii_message() {
    let cup = refundry_iso8583::Dialect::china_unionpay_pos();
    let mut m = refundry_iso8583::Message::new(Mti::NETWORK_REQUEST);
    m.tpdu = Some(refundry_iso8583::Tpdu::new([0, 3], [0, 0]));
    m.header = vec![0x60, 0x31, 0x00, 0x31, 0x00, 0x00];
    m.set_text(41, "12345678");
    let bytes = encode(&cup, &m).unwrap();
    assert!(decode(&common::ascii_dialect(), &bytes).is_err());
}
