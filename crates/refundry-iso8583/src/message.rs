//! A message in memory: headers, MTI and the present fields by number.
//! Setters only store; the dialect judges the values when encoding, so a
//! message can be built before anyone knows which acquirer it is for.

use std::collections::BTreeMap;
use std::fmt;

/// A message type indicator: four digits (version, class, function, origin).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mti([u8; 4]);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an MTI is exactly four digits")]
pub struct InvalidMti;

impl Mti {
    pub const AUTHORIZATION_REQUEST: Mti = Mti(*b"0100");
    pub const FINANCIAL_REQUEST: Mti = Mti(*b"0200");
    pub const FINANCIAL_RESPONSE: Mti = Mti(*b"0210");
    pub const FINANCIAL_ADVICE: Mti = Mti(*b"0220");
    pub const FINANCIAL_ADVICE_RESPONSE: Mti = Mti(*b"0230");
    pub const REVERSAL_REQUEST: Mti = Mti(*b"0400");
    pub const REVERSAL_RESPONSE: Mti = Mti(*b"0410");
    pub const NETWORK_REQUEST: Mti = Mti(*b"0800");
    pub const NETWORK_RESPONSE: Mti = Mti(*b"0810");
    pub const NETWORK_ADVICE: Mti = Mti(*b"0820");
    pub const NETWORK_ADVICE_RESPONSE: Mti = Mti(*b"0830");

    pub fn parse(s: &str) -> Result<Mti, InvalidMti> {
        let bytes: [u8; 4] = s.as_bytes().try_into().map_err(|_| InvalidMti)?;
        Mti::from_digits(bytes)
    }

    /// From four ASCII digits.
    pub fn from_digits(digits: [u8; 4]) -> Result<Mti, InvalidMti> {
        if digits.iter().all(u8::is_ascii_digit) { Ok(Mti(digits)) } else { Err(InvalidMti) }
    }

    pub fn digits(&self) -> [u8; 4] {
        self.0
    }

    pub fn as_str(&self) -> &str {
        // Only ever built from ASCII digits.
        std::str::from_utf8(&self.0).unwrap_or("????")
    }

    /// The MTI that answers this one (0200 → 0210, 0820 → 0830), or `None`
    /// when this one is itself an answer or a notification.
    pub fn response(self) -> Option<Mti> {
        let mut d = self.0;
        match d[2] {
            b'0' | b'2' => {
                d[2] += 1;
                Some(Mti(d))
            }
            _ => None,
        }
    }
}

impl fmt::Debug for Mti {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Mti {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The transport protocol data unit in front of a China UnionPay POS
/// message: an id (0x60 for transactions) and two network addresses. The
/// host answers with destination and source swapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tpdu {
    pub id: u8,
    pub destination: [u8; 2],
    pub source: [u8; 2],
}

impl Tpdu {
    pub const TRANSACTION_ID: u8 = 0x60;

    pub fn new(destination: [u8; 2], source: [u8; 2]) -> Tpdu {
        Tpdu { id: Tpdu::TRANSACTION_ID, destination, source }
    }

    pub fn to_bytes(self) -> [u8; 5] {
        let [d0, d1] = self.destination;
        let [s0, s1] = self.source;
        [self.id, d0, d1, s0, s1]
    }

    pub fn from_bytes(b: [u8; 5]) -> Tpdu {
        Tpdu { id: b[0], destination: [b[1], b[2]], source: [b[3], b[4]] }
    }

    /// The TPDU of the answer to a message that carried this one.
    pub fn reply(self) -> Tpdu {
        Tpdu { destination: self.source, source: self.destination, ..self }
    }
}

/// A field's value: text for every kind but binary, bytes for binary.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FieldValue {
    Text(String),
    Bytes(Vec<u8>),
}

impl FieldValue {
    pub fn as_text(&self) -> Option<&str> {
        match self {
            FieldValue::Text(s) => Some(s),
            FieldValue::Bytes(_) => None,
        }
    }

    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            FieldValue::Bytes(b) => Some(b),
            FieldValue::Text(_) => None,
        }
    }
}

/// Why a typed setter refused a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field {field}: {value} does not fit in {digits} digits")]
pub struct OutOfRange {
    pub field: u8,
    pub value: u64,
    pub digits: u8,
}

/// Fields whose values are card secrets or keys: `Debug` never prints them
/// (field 2 shows first 6 and last 4 only), so a logged message leaks none.
const SECRET_FIELDS: &[u8] = &[14, 35, 36, 45, 52, 55, 62];

/// An ISO 8583 message. `tpdu` and `header` must match the dialect's
/// layout when encoding (present exactly when the dialect has them).
#[derive(Clone, PartialEq, Eq)]
pub struct Message {
    pub tpdu: Option<Tpdu>,
    pub header: Vec<u8>,
    pub mti: Mti,
    pub fields: BTreeMap<u8, FieldValue>,
}

impl Message {
    pub fn new(mti: Mti) -> Message {
        Message { tpdu: None, header: Vec::new(), mti, fields: BTreeMap::new() }
    }

    pub fn get(&self, field: u8) -> Option<&FieldValue> {
        self.fields.get(&field)
    }

    pub fn text(&self, field: u8) -> Option<&str> {
        self.get(field).and_then(FieldValue::as_text)
    }

    pub fn bytes(&self, field: u8) -> Option<&[u8]> {
        self.get(field).and_then(FieldValue::as_bytes)
    }

    pub fn has(&self, field: u8) -> bool {
        self.fields.contains_key(&field)
    }

    pub fn set_text(&mut self, field: u8, value: impl Into<String>) -> &mut Message {
        self.fields.insert(field, FieldValue::Text(value.into()));
        self
    }

    pub fn set_bytes(&mut self, field: u8, value: impl Into<Vec<u8>>) -> &mut Message {
        self.fields.insert(field, FieldValue::Bytes(value.into()));
        self
    }

    pub fn remove(&mut self, field: u8) -> Option<FieldValue> {
        self.fields.remove(&field)
    }

    /// Stores `value` as exactly `digits` digits, zero-filled on the left.
    pub fn set_number(&mut self, field: u8, value: u64, digits: u8) -> Result<&mut Message, OutOfRange> {
        let fits = 10u64.checked_pow(digits as u32).is_none_or(|limit| value < limit);
        if !fits {
            return Err(OutOfRange { field, value, digits });
        }
        Ok(self.set_text(field, format!("{value:0width$}", width = digits as usize)))
    }

    /// A numeric field read as a number; `None` when absent or not digits.
    pub fn number(&self, field: u8) -> Option<u64> {
        let text = self.text(field)?;
        if text.is_empty() || !text.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        text.parse().ok()
    }

    /// Field 3.
    pub fn processing_code(&self) -> Option<&str> {
        self.text(3)
    }

    /// Field 4 in minor units (fen for CNY).
    pub fn amount_minor(&self) -> Option<u64> {
        self.number(4)
    }

    pub fn set_amount_minor(&mut self, minor: u64) -> Result<&mut Message, OutOfRange> {
        self.set_number(4, minor, 12)
    }

    /// Field 11, the system trace audit number (POS 流水号/凭证号).
    pub fn stan(&self) -> Option<u32> {
        self.number(11).and_then(|n| u32::try_from(n).ok())
    }

    pub fn set_stan(&mut self, stan: u32) -> Result<&mut Message, OutOfRange> {
        self.set_number(11, stan as u64, 6)
    }

    /// Field 37, the retrieval reference number (参考号).
    pub fn rrn(&self) -> Option<&str> {
        self.text(37)
    }

    /// Field 38, the authorization code (授权码).
    pub fn auth_code(&self) -> Option<&str> {
        self.text(38)
    }

    /// Field 39, the response code (应答码).
    pub fn response_code(&self) -> Option<&str> {
        self.text(39)
    }

    /// Field 41, the terminal id (终端号).
    pub fn terminal_id(&self) -> Option<&str> {
        self.text(41)
    }

    /// Field 42, the merchant id (商户号).
    pub fn merchant_id(&self) -> Option<&str> {
        self.text(42)
    }

    /// Field 64, the MAC.
    pub fn mac(&self) -> Option<&[u8]> {
        self.bytes(64)
    }
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Shown<'a>(u8, &'a FieldValue);
        impl fmt::Debug for Shown<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match (self.0, self.1) {
                    (2, FieldValue::Text(pan)) => write!(f, "{:?}", mask_pan(pan)),
                    (n, v) if SECRET_FIELDS.contains(&n) => {
                        let len = match v {
                            FieldValue::Text(s) => s.len(),
                            FieldValue::Bytes(b) => b.len(),
                        };
                        write!(f, "[redacted, {len} long]")
                    }
                    (_, FieldValue::Text(s)) => write!(f, "{s:?}"),
                    (_, FieldValue::Bytes(b)) => write!(f, "0x{}", hex::encode_upper(b)),
                }
            }
        }
        struct Fields<'a>(&'a BTreeMap<u8, FieldValue>);
        impl fmt::Debug for Fields<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_map().entries(self.0.iter().map(|(n, v)| (n, Shown(*n, v)))).finish()
            }
        }
        f.debug_struct("Message")
            .field("tpdu", &self.tpdu)
            .field("header", &format_args!("0x{}", hex::encode_upper(&self.header)))
            .field("mti", &self.mti)
            .field("fields", &Fields(&self.fields))
            .finish()
    }
}

/// First 6 and last 4, the rest starred; short or odd values are starred whole.
fn mask_pan(pan: &str) -> String {
    if pan.len() >= 13 && pan.is_ascii() {
        format!("{}{}{}", &pan[..6], "*".repeat(pan.len() - 10), &pan[pan.len() - 4..])
    } else {
        "*".repeat(pan.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_mti_is_four_digits() {
        assert_eq!(Mti::parse("0200").unwrap(), Mti::FINANCIAL_REQUEST);
        assert!(Mti::parse("200").is_err());
        assert!(Mti::parse("02A0").is_err());
        assert!(Mti::parse("02000").is_err());
        assert_eq!(Mti::FINANCIAL_ADVICE.to_string(), "0220");
    }

    #[test]
    fn requests_and_advices_have_responses_but_responses_do_not() {
        assert_eq!(Mti::FINANCIAL_REQUEST.response(), Some(Mti::FINANCIAL_RESPONSE));
        assert_eq!(Mti::FINANCIAL_ADVICE.response(), Some(Mti::FINANCIAL_ADVICE_RESPONSE));
        assert_eq!(Mti::NETWORK_ADVICE.response(), Some(Mti::NETWORK_ADVICE_RESPONSE));
        assert_eq!(Mti::REVERSAL_RESPONSE.response(), None);
    }

    #[test]
    fn a_reply_swaps_the_tpdu_addresses() {
        let t = Tpdu::new([0x00, 0x03], [0x00, 0x00]);
        assert_eq!(t.to_bytes(), [0x60, 0x00, 0x03, 0x00, 0x00]);
        assert_eq!(t.reply().to_bytes(), [0x60, 0x00, 0x00, 0x00, 0x03]);
        assert_eq!(Tpdu::from_bytes(t.to_bytes()), t);
    }

    #[test]
    fn numbers_are_zero_filled_and_bounded() {
        let mut m = Message::new(Mti::FINANCIAL_REQUEST);
        m.set_amount_minor(1234).unwrap();
        assert_eq!(m.text(4), Some("000000001234"));
        assert_eq!(m.amount_minor(), Some(1234));
        assert_eq!(m.set_stan(1_000_000).unwrap_err(), OutOfRange { field: 11, value: 1_000_000, digits: 6 });
        m.set_stan(999_999).unwrap();
        assert_eq!(m.stan(), Some(999_999));
        assert!(m.set_amount_minor(1_000_000_000_000).is_err());
        m.set_text(4, "12x");
        assert_eq!(m.amount_minor(), None);
    }

    #[test]
    fn debug_output_shows_no_card_secrets() {
        let mut m = Message::new(Mti::FINANCIAL_REQUEST);
        m.set_text(2, "6222021234567890123").set_text(35, "6222021234567890123=2512").set_bytes(52, [7u8; 8]);
        m.set_text(41, "12345678");
        let shown = format!("{m:?}");
        assert!(shown.contains("622202*********0123"), "{shown}");
        assert!(!shown.contains("6222021234567890123"), "{shown}");
        assert!(!shown.contains("2512"), "{shown}");
        assert!(!shown.contains("0707"), "{shown}");
        assert!(shown.contains("12345678"), "{shown}");
    }
}
