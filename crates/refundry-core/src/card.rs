//! What Refundry may know of a card, and the guard against what it may not.
//!
//! A card is known by brand, first 6 and last 4 digits. Full card numbers
//! (PAN), CVV/CVC, magnetic track data and PIN blocks must never be stored
//! or logged, so the edge asks [`find_sensitive`] before anything else reads
//! a request.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} must be exactly {len} digits")]
pub struct DigitsError {
    pub field: &'static str,
    pub len: usize,
}

fn exact_digits(s: &str, len: usize, field: &'static str) -> Result<(), DigitsError> {
    if s.len() == len && s.bytes().all(|b| b.is_ascii_digit()) { Ok(()) } else { Err(DigitsError { field, len }) }
}

/// The first six digits of a card number (the issuer identification number).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct First6(String);

impl First6 {
    pub fn parse(s: &str) -> Result<First6, DigitsError> {
        exact_digits(s, 6, "first6").map(|_| First6(s.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The last four digits of a card number, as printed on the POS slip.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Last4(String);

impl Last4 {
    pub fn parse(s: &str) -> Result<Last4, DigitsError> {
        exact_digits(s, 4, "last4").map(|_| Last4(s.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A card shown as people may see it: `622202******1234`.
pub struct MaskedCard<'a> {
    pub first6: &'a First6,
    pub last4: &'a Last4,
}

impl fmt::Display for MaskedCard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}******{}", self.first6.as_str(), self.last4.as_str())
    }
}

/// Luhn (mod 10) check over ASCII digits.
pub fn luhn_valid(digits: &[u8]) -> bool {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| {
            let n = u32::from(d - b'0');
            if i % 2 == 1 {
                let doubled = n * 2;
                if doubled > 9 { doubled - 9 } else { doubled }
            } else {
                n
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// GS1 check digit (EAN-13 / GTIN-13), used to tell product barcodes from
/// card numbers in an item's `sku`.
pub fn gtin13_valid(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 13 || !b.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let sum: u32 = b[..12].iter().enumerate().map(|(i, d)| u32::from(d - b'0') * if i % 2 == 0 { 1 } else { 3 }).sum();
    (10 - sum % 10) % 10 == u32::from(b[12] - b'0')
}

/// True when the text holds something that looks like a full card number:
/// a run of 13 to 19 digits, optionally grouped by single spaces or dashes
/// as people write them, that passes the Luhn check. Refundry's own ids
/// standing as words (`sale_` and 32 hex digits) are skipped: about one in
/// a hundred holds such a run among its hex digits, and a note or a
/// summary that names a sale must not read as card data.
pub fn contains_card_number(text: &str) -> bool {
    let bytes = text.as_bytes();
    let mut digits: Vec<u8> = Vec::with_capacity(24);
    let mut i = 0;
    while i <= bytes.len() {
        if let Some(len) = id_at(bytes, i) {
            if run_is_card_number(&digits) {
                return true;
            }
            digits.clear();
            i += len;
            continue;
        }
        let b = bytes.get(i).copied();
        match b {
            Some(d) if d.is_ascii_digit() => digits.push(d),
            // a single separator between two digits keeps the run going
            Some(b' ' | b'-') if !digits.is_empty() && bytes.get(i + 1).is_some_and(u8::is_ascii_digit) => {}
            _ => {
                if run_is_card_number(&digits) {
                    return true;
                }
                digits.clear();
            }
        }
        i += 1;
    }
    false
}

/// The length of the word at `at` when it starts there and is one of our
/// ids; a word is checked once, from its first byte.
fn id_at(bytes: &[u8], at: usize) -> Option<usize> {
    let in_word = |b: &u8| b.is_ascii_alphanumeric() || *b == b'_';
    if !bytes.get(at)?.is_ascii_lowercase() || at.checked_sub(1).and_then(|p| bytes.get(p)).is_some_and(in_word) {
        return None;
    }
    let len = bytes[at..].iter().take_while(|b| in_word(b)).count();
    let word = std::str::from_utf8(&bytes[at..at + len]).ok()?;
    crate::ids::looks_like_id(word).then_some(len)
}

fn run_is_card_number(digits: &[u8]) -> bool {
    // Longer runs are other things: WeChat Pay and Alipay transaction ids are
    // 28 digits, and track data separates the PAN with `=`.
    (13..=19).contains(&digits.len()) && luhn_valid(digits)
}

/// Field names whose mere presence means card secrets were sent.
const FORBIDDEN_KEYS: &[&str] = &[
    "pan",
    "card_number",
    "cardnumber",
    "card_no",
    "account_number",
    "cvv",
    "cvv2",
    "cvc",
    "cvc2",
    "cid",
    "security_code",
    "track",
    "track1",
    "track2",
    "track3",
    "track_data",
    "magstripe",
    "pin",
    "pin_block",
    "pinblock",
];

/// Whether a field name is one that carries card secrets (case-insensitive).
pub fn is_forbidden_key(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    FORBIDDEN_KEYS.contains(&lower.as_str())
}

/// Why a value was refused. Carries the field path, never the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SensitiveField {
    pub path: String,
}

/// Checks one named field's text. `sku` values that are valid GTIN-13
/// barcodes pass: Chinese retail SKUs are often EAN-13 (prefix 690–699), and
/// a tenth of those happen to pass Luhn too.
pub fn value_is_sensitive(field: &str, text: &str) -> bool {
    if field == "sku" && gtin13_valid(text) {
        return false;
    }
    contains_card_number(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luhn_accepts_test_cards_and_refuses_typos() {
        assert!(luhn_valid(b"4111111111111111"));
        assert!(luhn_valid(b"6222021234567890128"));
        assert!(!luhn_valid(b"4111111111111112"));
        assert!(!luhn_valid(b""));
    }

    #[test]
    fn card_numbers_are_found_inside_text_and_groups() {
        assert!(contains_card_number("4111111111111111"));
        assert!(contains_card_number("card 4111 1111 1111 1111 please"));
        assert!(contains_card_number("4111-1111-1111-1111"));
        assert!(contains_card_number(";4111111111111111=25121010000012300000?"));
        assert!(!contains_card_number("4200001234202611261234567890"));
        assert!(contains_card_number("6222021234567890128"));
    }

    #[test]
    fn our_ids_in_text_are_not_card_numbers_but_a_card_number_beside_one_is() {
        // a real sale id whose hex digits hold a Luhn-valid 16-digit run
        let id = "sale_01a21d2b8513773783536225a7846d67";
        assert!(luhn_valid(b"8513773783536225"));
        assert!(!contains_card_number(id));
        assert!(!contains_card_number(&format!("交易编号：{id}，金额 1200.00")));
        assert!(!contains_card_number(&format!("see {id} and re_01a21d2b8513773783536225a7846d67.")));
        assert!(contains_card_number(&format!("{id} 4111111111111111")));
        assert!(contains_card_number(&format!("4111 1111 1111 1111 {id}")));
        // not one of ours: a prefix too long, or not 32 hex digits
        assert!(contains_card_number("salesx_01a21d2b8513773783536225a7846d67"));
        assert!(contains_card_number("sale_4111111111111111"));
        assert!(contains_card_number("x_sale_01a21d2b8513773783536225a7846d67"));
    }

    #[test]
    fn ordinary_pos_numbers_are_not_card_numbers() {
        // RRN (12), voucher (6), batch (6), auth code (6), timestamps, amounts
        assert!(!contains_card_number("123456789012"));
        assert!(!contains_card_number("000123"));
        assert!(!contains_card_number("2026-11-26T10:00:00Z"));
        assert!(!contains_card_number("4111111111111112"));
        assert!(!contains_card_number("622202"));
        assert!(!contains_card_number("1234"));
    }

    #[test]
    fn barcodes_in_sku_pass_but_not_elsewhere() {
        // 6901234567892 is a valid EAN-13 and passes Luhn as well
        assert!(gtin13_valid("6901234567892"));
        assert!(luhn_valid(b"6901234567892"));
        assert!(!value_is_sensitive("sku", "6901234567892"));
        assert!(value_is_sensitive("note", "6901234567892"));
    }

    #[test]
    fn forbidden_keys_are_case_insensitive() {
        assert!(is_forbidden_key("CVV"));
        assert!(is_forbidden_key("track2"));
        assert!(is_forbidden_key("pin_block"));
        assert!(!is_forbidden_key("last4"));
    }

    #[test]
    fn first6_and_last4_parse_exact_digits() {
        assert!(First6::parse("622202").is_ok());
        assert!(First6::parse("62220").is_err());
        assert!(Last4::parse("1234").is_ok());
        assert!(Last4::parse("12a4").is_err());
        let (f, l) = (First6::parse("622202").unwrap(), Last4::parse("1234").unwrap());
        assert_eq!(MaskedCard { first6: &f, last4: &l }.to_string(), "622202******1234");
    }
}
