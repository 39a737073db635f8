//! Building, signing, encoding and checking the messages a connector sends.

use refundry_iso8583::builders::{self, CNY, KeyMode, OriginalSale, RefundRequest, SignOnRequest, Terminal};
use refundry_iso8583::mac::{self, mac_block};
use refundry_iso8583::{CupEcbMac, Dialect, MacError, Message, Tpdu, decode, encode};

fn terminal() -> Terminal {
    Terminal { terminal_id: "12345678".into(), merchant_id: "898310048140001".into(), batch: 7 }
}

fn addressed(mut m: Message) -> Message {
    m.tpdu = Some(Tpdu::new([0x00, 0x03], [0x00, 0x00]));
    m.header = vec![0x60, 0x31, 0x00, 0x31, 0x00, 0x00];
    m
}

fn refund() -> Message {
    let req = RefundRequest {
        terminal: terminal(),
        stan: 101,
        amount_minor: 1250,
        currency: CNY.into(),
        pos_entry_mode: builders::entry_mode::MANUAL_NO_PIN.into(),
        original: OriginalSale {
            rrn: "123456789012".into(),
            auth_code: None,
            batch: 6,
            stan: 42,
            date_mmdd: "0315".into(),
        },
    };
    addressed(builders::refund(&req).unwrap())
}

fn key() -> CupEcbMac {
    CupEcbMac::from_hex("0123456789ABCDEF").unwrap()
}

#[test]
fn a_sign_on_encodes_to_the_expected_bytes_and_mac() {
    let d = Dialect::china_unionpay_pos();
    let req = SignOnRequest { terminal: terminal(), stan: 1, operator: "01 ".into(), keys: KeyMode::Double };
    let mut m = addressed(builders::sign_on(&req).unwrap());
    let block = mac_block(&d, &m).unwrap();
    let expected_block = concat!(
        "0800",                           // MTI
        "0020000000C00013",               // bitmap: 11, 41, 42, 60, 63, 64
        "000001",                         // 11
        "3132333435363738",               // 41
        "383938333130303438313430303031", // 42
        "0011",
        "000000070030", // 60: 11 digits, 00 000007 003, pad nibble
        "0003",
        "303120", // 63: operator "01 "
    );
    assert_eq!(hex::encode_upper(&block), expected_block);
    mac::sign(&d, &mut m, &key()).unwrap();
    // From outside Rust: tests/mac_kat.py 0123456789ABCDEF <expected_block>
    assert_eq!(m.mac(), Some(&b"88079DBA"[..]));
    let bytes = encode(&d, &m).unwrap();
    assert_eq!(&bytes[..11], [0x60, 0x00, 0x03, 0x00, 0x00, 0x60, 0x31, 0x00, 0x31, 0x00, 0x00]);
    assert_eq!(&bytes[bytes.len() - 8..], b"88079DBA");
}

#[test]
fn a_signed_refund_verifies_after_the_round_trip() {
    let d = Dialect::china_unionpay_pos();
    let mut m = refund();
    mac::sign(&d, &mut m, &key()).unwrap();
    let received = decode(&d, &encode(&d, &m).unwrap()).unwrap();
    assert_eq!(received, m);
    mac::verify(&d, &received, &key()).unwrap();
}

#[test]
fn a_changed_amount_or_another_key_fails_verification() {
    let d = Dialect::china_unionpay_pos();
    let mut m = refund();
    mac::sign(&d, &mut m, &key()).unwrap();
    let mut tampered = m.clone();
    tampered.set_amount_minor(125_000).unwrap();
    assert_eq!(mac::verify(&d, &tampered, &key()), Err(MacError::Mismatch(64)));
    let other = CupEcbMac::from_hex("FEDCBA9876543210").unwrap();
    assert_eq!(mac::verify(&d, &m, &other), Err(MacError::Mismatch(64)));
    m.remove(64);
    assert_eq!(mac::verify(&d, &m, &key()), Err(MacError::Missing(64)));
}

#[test]
fn signing_refuses_a_dialect_without_a_mac_field() {
    let d = Dialect::china_unionpay_pos();
    let bare = d.with_layout(refundry_iso8583::Layout { mac_field: None, ..*d.layout() }).unwrap();
    let mut m = refund();
    assert!(matches!(mac::sign(&bare, &mut m, &key()), Err(MacError::NoMacField(_))));
}

#[test]
fn a_reversal_of_a_signed_void_is_signed_afresh() {
    let d = Dialect::china_unionpay_pos();
    let req = builders::VoidRequest {
        terminal: terminal(),
        stan: 102,
        amount_minor: 5000,
        currency: CNY.into(),
        pos_entry_mode: builders::entry_mode::MANUAL_NO_PIN.into(),
        original: OriginalSale {
            rrn: "123456789012".into(),
            auth_code: Some("000111".into()),
            batch: 7,
            stan: 42,
            date_mmdd: "0315".into(),
        },
    };
    let mut void = addressed(builders::void(&req).unwrap());
    mac::sign(&d, &mut void, &key()).unwrap();
    let mut rev = builders::reversal(&void, builders::ReversalReason::NoResponse).unwrap();
    assert_eq!(rev.tpdu, void.tpdu);
    assert_eq!(rev.header, void.header);
    assert!(rev.mac().is_none());
    mac::sign(&d, &mut rev, &key()).unwrap();
    let back = decode(&d, &encode(&d, &rev).unwrap()).unwrap();
    mac::verify(&d, &back, &key()).unwrap();
    assert_eq!(back.response_code(), Some("98"));
}
