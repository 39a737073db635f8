//! China UnionPay's POS layout (银联 POS 终端 8583 报文) as acquirers in
//! China commonly use it, and the sub-fields of its fields 60 and 61.
//!
//! This table is the common layout, not any one acquirer's: each acquirer
//! publishes its own specification (报文接口规范), and fields, maximum
//! lengths and padding must be checked against it before relying on them.
//! A different acquirer is a different table passed to [`Dialect::new`].

use std::sync::LazyLock;

use crate::dialect::{BitmapEncoding, Dialect, DialectError, FramePrefix, Layout, MtiEncoding, PrefixEncoding};
use crate::spec::Encoding::{Ascii, Binary};
use crate::spec::Kind::{AlphaNumeric, AlphaNumericSpecial, Numeric, Track};
use crate::spec::Length::{Fixed, LlVar, LllVar};
use crate::spec::{Encoding, FieldSpec, Kind};

const BCD_LEFT: Encoding = Encoding::BCD_LEFT;
const BCD_RIGHT: Encoding = Encoding::BCD_RIGHT;

/// Two-byte big-endian length, TPDU, 6-byte message header, BCD MTI,
/// binary bitmap, BCD LL/LLL lengths, MAC in field 64.
pub const CUP_POS_LAYOUT: Layout = Layout {
    frame_prefix: FramePrefix::BigEndian2,
    tpdu: true,
    header_len: 6,
    mti: MtiEncoding::Bcd,
    bitmap: BitmapEncoding::Binary,
    var_length: PrefixEncoding::Bcd,
    mac_field: Some(64),
};

const fn f(n: u8, name: &'static str, kind: Kind, length: crate::spec::Length, enc: Encoding) -> FieldSpec {
    FieldSpec::new(n, name, kind, length, enc)
}

/// The fields. Variable numeric fields are left-justified with a 0 pad;
/// fixed numeric fields of odd length differ (22 left, 23 right), which is
/// exactly the kind of detail to check against the acquirer's document.
/// Field 63 is kept as bytes although the standard calls it `ans`: its
/// 63.2 can carry the issuer's name in GBK, which is not ASCII.
pub const CUP_POS_FIELDS: &[FieldSpec] = &[
    f(2, "primary account number", Numeric, LlVar(19), BCD_LEFT),
    f(3, "processing code", Numeric, Fixed(6), BCD_LEFT),
    f(4, "amount, transaction", Numeric, Fixed(12), BCD_LEFT),
    f(11, "system trace audit number", Numeric, Fixed(6), BCD_LEFT),
    f(12, "time, local transaction (hhmmss)", Numeric, Fixed(6), BCD_LEFT),
    f(13, "date, local transaction (MMDD)", Numeric, Fixed(4), BCD_LEFT),
    f(14, "date, expiration (YYMM)", Numeric, Fixed(4), BCD_LEFT),
    f(15, "date, settlement (MMDD)", Numeric, Fixed(4), BCD_LEFT),
    f(22, "point of service entry mode", Numeric, Fixed(3), BCD_LEFT),
    f(23, "card sequence number", Numeric, Fixed(3), BCD_RIGHT),
    f(25, "point of service condition code", Numeric, Fixed(2), BCD_LEFT),
    f(26, "point of service PIN capture code", Numeric, Fixed(2), BCD_LEFT),
    f(32, "acquiring institution identification code", Numeric, LlVar(11), BCD_LEFT),
    f(35, "track 2 data", Track, LlVar(37), BCD_LEFT),
    f(36, "track 3 data", Track, LllVar(104), BCD_LEFT),
    f(37, "retrieval reference number", AlphaNumeric, Fixed(12), Ascii),
    f(38, "authorization identification response", AlphaNumeric, Fixed(6), Ascii),
    f(39, "response code", AlphaNumeric, Fixed(2), Ascii),
    f(41, "card acceptor terminal identification", AlphaNumericSpecial, Fixed(8), Ascii),
    f(42, "card acceptor identification code", AlphaNumericSpecial, Fixed(15), Ascii),
    f(44, "additional response data", AlphaNumericSpecial, LlVar(25), Ascii),
    f(48, "additional data, private", Numeric, LllVar(322), BCD_LEFT),
    f(49, "currency code, transaction", AlphaNumeric, Fixed(3), Ascii),
    f(52, "PIN data", Kind::Binary, Fixed(8), Binary),
    f(53, "security related control information", Numeric, Fixed(16), BCD_LEFT),
    f(54, "additional amounts", AlphaNumericSpecial, LllVar(20), Ascii),
    f(55, "ICC system related data", Kind::Binary, LllVar(255), Binary),
    f(60, "reserved private: type, batch, network management code", Numeric, LllVar(17), BCD_LEFT),
    f(61, "original message: batch, trace, date", Numeric, LllVar(29), BCD_LEFT),
    f(62, "reserved private (keys on sign-on)", Kind::Binary, LllVar(512), Binary),
    f(63, "reserved private (card organisation, operator)", Kind::Binary, LllVar(163), Binary),
    f(64, "message authentication code", Kind::Binary, Fixed(8), Binary),
];

static CUP_POS: LazyLock<Dialect> = LazyLock::new(|| {
    // The table is constant and a unit test builds it, so this cannot fail
    // at run time.
    Dialect::new("china-unionpay-pos", CUP_POS_LAYOUT, CUP_POS_FIELDS).expect("the CUP POS table is valid")
});

impl Dialect {
    /// The common China UnionPay POS layout. Check it against the
    /// acquirer's own specification before relying on it.
    pub fn china_unionpay_pos() -> Dialect {
        CUP_POS.clone()
    }

    /// The same table under another layout (say, without the 6-byte
    /// message header, as some acquirers' gateways expect).
    pub fn with_layout(&self, layout: Layout) -> Result<Dialect, DialectError> {
        let specs: Vec<FieldSpec> = self.fields().copied().collect();
        Dialect::new(self.name(), layout, &specs)
    }
}

/// The shared CUP dialect, for builders that validate what they build.
pub(crate) fn cup_pos() -> &'static Dialect {
    &CUP_POS
}

/// Why a field 60 or 61 value cannot be composed or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field {field}: {problem}")]
pub struct SubfieldError {
    pub field: u8,
    pub problem: &'static str,
}

/// Codes of 60.1 (交易类型码) for the transactions Refundry sends.
pub mod message_type {
    pub const NETWORK_MANAGEMENT: &str = "00";
    pub const PURCHASE: &str = "22";
    pub const VOID: &str = "23";
    pub const REFUND: &str = "25";
}

/// Codes of 60.3 (网络管理信息码).
pub mod network_info {
    /// Financial messages carry no network management code.
    pub const NONE: &str = "000";
    /// Sign-on, single-length working keys (单倍长密钥).
    pub const SIGN_ON_SINGLE: &str = "001";
    pub const SIGN_OFF: &str = "002";
    /// Sign-on, double-length working keys (双倍长密钥).
    pub const SIGN_ON_DOUBLE: &str = "003";
    /// Sign-on, double-length keys and a track-data key.
    pub const SIGN_ON_DOUBLE_WITH_TRACK_KEY: &str = "004";
    /// Echo test (回响测试).
    pub const ECHO_TEST: &str = "301";
}

/// Field 60 (自定义域): 60.1 message type, 60.2 batch, 60.3 network
/// management code, then 60.4 onwards (terminal capabilities and such),
/// kept as they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field60 {
    pub message_type: String,
    pub batch: u32,
    pub network_info: String,
    pub rest: String,
}

impl Field60 {
    pub fn new(message_type: &str, batch: u32, network_info: &str) -> Field60 {
        Field60 { message_type: message_type.into(), batch, network_info: network_info.into(), rest: String::new() }
    }

    pub fn to_text(&self) -> Result<String, SubfieldError> {
        let err = |problem| SubfieldError { field: 60, problem };
        if !is_digits(&self.message_type, 2) {
            return Err(err("60.1 (message type) is two digits"));
        }
        if self.batch > 999_999 {
            return Err(err("60.2 (batch) is at most six digits"));
        }
        if !self.network_info.is_empty() && !is_digits(&self.network_info, 3) {
            return Err(err("60.3 (network management code) is three digits"));
        }
        if !self.rest.bytes().all(|c| c.is_ascii_digit()) || (self.network_info.is_empty() && !self.rest.is_empty()) {
            return Err(err("60.4 onwards are digits after a 60.3"));
        }
        Ok(format!("{}{:06}{}{}", self.message_type, self.batch, self.network_info, self.rest))
    }

    pub fn parse(text: &str) -> Result<Field60, SubfieldError> {
        let err = |problem| SubfieldError { field: 60, problem };
        if text.len() < 8 || !text.bytes().all(|c| c.is_ascii_digit()) {
            return Err(err("at least 60.1 and 60.2, eight digits"));
        }
        if (9..11).contains(&text.len()) {
            return Err(err("60.3 (network management code) is three digits"));
        }
        let (head, rest) = text.split_at(text.len().min(11));
        Ok(Field60 {
            message_type: head[..2].into(),
            batch: head[2..8].parse().map_err(|_| err("60.2 (batch) is six digits"))?,
            network_info: head[8..].into(),
            rest: rest.into(),
        })
    }
}

/// Field 61 (原始信息域): the original transaction's batch (61.1), trace
/// number (61.2) and date MMDD (61.3), then anything further as it came.
/// Voids send only 61.1 and 61.2; refunds send 61.3 too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field61 {
    pub batch: u32,
    pub stan: u32,
    pub date_mmdd: Option<String>,
    pub rest: String,
}

impl Field61 {
    pub fn to_text(&self) -> Result<String, SubfieldError> {
        let err = |problem| SubfieldError { field: 61, problem };
        if self.batch > 999_999 || self.stan > 999_999 {
            return Err(err("61.1 (batch) and 61.2 (trace) are at most six digits"));
        }
        let date = match &self.date_mmdd {
            Some(d) if is_mmdd(d) => d.as_str(),
            Some(_) => return Err(err("61.3 (original date) is MMDD")),
            None if self.rest.is_empty() => "",
            None => return Err(err("61.4 onwards need a 61.3")),
        };
        if !self.rest.bytes().all(|c| c.is_ascii_digit()) {
            return Err(err("61.4 onwards are digits"));
        }
        Ok(format!("{:06}{:06}{date}{}", self.batch, self.stan, self.rest))
    }

    pub fn parse(text: &str) -> Result<Field61, SubfieldError> {
        let err = |problem| SubfieldError { field: 61, problem };
        if !text.bytes().all(|c| c.is_ascii_digit()) || !(text.len() == 12 || text.len() >= 16) {
            return Err(err("12 digits (61.1, 61.2) or at least 16 (with 61.3)"));
        }
        let number = |s: &str| s.parse::<u32>().map_err(|_| err("not a number"));
        Ok(Field61 {
            batch: number(&text[..6])?,
            stan: number(&text[6..12])?,
            date_mmdd: (text.len() >= 16).then(|| text[12..16].to_string()),
            rest: text.get(16..).unwrap_or("").into(),
        })
    }
}

fn is_digits(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|c| c.is_ascii_digit())
}

/// A plausible MMDD: month 01–12, day 01–31.
pub(crate) fn is_mmdd(s: &str) -> bool {
    if !is_digits(s, 4) {
        return false;
    }
    let (mm, dd) = (&s[..2], &s[2..]);
    ("01"..="12").contains(&mm) && ("01"..="31").contains(&dd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cup_table_is_a_valid_dialect() {
        let d = Dialect::new("china-unionpay-pos", CUP_POS_LAYOUT, CUP_POS_FIELDS).unwrap();
        assert_eq!(d, Dialect::china_unionpay_pos());
        assert_eq!(d.fields().count(), CUP_POS_FIELDS.len());
        assert_eq!(d.field(2).unwrap().length, LlVar(19));
    }

    #[test]
    fn another_layout_keeps_the_table() {
        let cup = Dialect::china_unionpay_pos();
        let bare = cup.with_layout(Layout { header_len: 0, ..CUP_POS_LAYOUT }).unwrap();
        assert_eq!(bare.layout().header_len, 0);
        assert!(bare.fields().eq(cup.fields()));
    }

    #[test]
    fn field_60_composes_and_reads_back() {
        let f = Field60::new(message_type::REFUND, 123, network_info::NONE);
        assert_eq!(f.to_text().unwrap(), "25000123000");
        assert_eq!(Field60::parse("25000123000").unwrap(), f);
        let with_rest = Field60::parse("2200012300050").unwrap();
        assert_eq!((with_rest.batch, with_rest.network_info.as_str(), with_rest.rest.as_str()), (123, "000", "50"));
        assert_eq!(Field60::parse("00000001").unwrap().network_info, "");
        assert!(Field60::parse("000000012").is_err());
        assert!(Field60::new("2", 1, "000").to_text().is_err());
        assert!(Field60::new("22", 1_000_000, "000").to_text().is_err());
    }

    #[test]
    fn field_61_carries_the_original_references() {
        let f = Field61 { batch: 5, stan: 42, date_mmdd: Some("0315".into()), rest: String::new() };
        assert_eq!(f.to_text().unwrap(), "0000050000420315");
        assert_eq!(Field61::parse("0000050000420315").unwrap(), f);
        let void = Field61 { date_mmdd: None, ..f.clone() };
        assert_eq!(void.to_text().unwrap(), "000005000042");
        assert_eq!(Field61::parse("000005000042").unwrap(), void);
        assert!(Field61 { date_mmdd: Some("1301".into()), ..f.clone() }.to_text().is_err());
        assert!(Field61::parse("0000050000420").is_err());
    }

    #[test]
    fn mmdd_means_a_month_and_a_day() {
        assert!(is_mmdd("0101") && is_mmdd("1231"));
        assert!(!is_mmdd("0001") && !is_mmdd("1300") && !is_mmdd("0132") && !is_mmdd("101"));
    }
}
