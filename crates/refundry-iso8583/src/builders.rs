//! The China UnionPay POS messages Refundry sends, built from plain
//! structs. Each builder checks its result against the CUP table, so a
//! built message encodes; none of them signs: set the TPDU and header and
//! call [`crate::mac::sign`] last.
//!
//! | message | MTI | 3 | 25 | 60.1 | 60.3 |
//! | --- | --- | --- | --- | --- | --- |
//! | refund 退货 | 0220 | 200000 | 00 | 25 | 000 |
//! | void 消费撤销 | 0200 | 200000 | 00 | 23 | 000 |
//! | reversal 冲正 | 0400 | as the original | as the original | as the original | as the original |
//! | sign-on 签到 | 0800 | — | — | 00 | 001 / 003 / 004 |
//! | echo test 回响测试 | 0820 | — | — | 00 | 301 |
//!
//! The echo test is an 0820 network management advice with 60.3 = 301, as
//! China UnionPay's POS specification has it (the host answers 0830); 0800
//! is kept for sign-on. Check both against the acquirer's specification.
//!
//! Refunds and voids carry no card data: Refundry keeps none. An acquirer
//! that wants the card (field 2 or 35) for a refund needs the caller to add
//! it, in memory only, before signing.

use crate::codec::{self, CodecError};
use crate::cup::{self, Field60, Field61, SubfieldError, message_type, network_info};
use crate::message::{Message, Mti, OutOfRange};
use crate::spec::{Kind, Length};

/// ISO 4217 numeric code of the yuan, as field 49 carries it.
pub const CNY: &str = "156";

/// Processing code (field 3) of voids and refunds.
pub const PROC_RETURN: &str = "200000";

/// Condition code (field 25) of ordinary POS transactions.
pub const CONDITION_NORMAL: &str = "00";

/// Common values of field 22 (entry mode + PIN capability).
pub mod entry_mode {
    /// Keyed in, terminal can take a PIN.
    pub const MANUAL_WITH_PIN: &str = "011";
    /// Keyed in, no PIN entry.
    pub const MANUAL_NO_PIN: &str = "012";
    /// Magnetic stripe, terminal can take a PIN.
    pub const STRIPE_WITH_PIN: &str = "021";
    /// Chip, terminal can take a PIN.
    pub const CHIP_WITH_PIN: &str = "051";
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    #[error("{what} must be from {min} to {max}, not {value}")]
    OutOfRange { what: &'static str, value: u64, min: u64, max: u64 },
    #[error("the original's date must be MMDD, not {0:?}")]
    OriginalDate(String),
    #[error(
        "a {0} is not reversed: only 0100 and 0200 requests are; a 0220 refund is an advice, resent until answered"
    )]
    NotReversible(Mti),
    #[error("the original message lacks field {0}, which its reversal must echo")]
    MissingOriginalField(u8),
    #[error(transparent)]
    Number(#[from] OutOfRange),
    #[error(transparent)]
    Subfield(#[from] SubfieldError),
    #[error(transparent)]
    Invalid(#[from] CodecError),
}

/// The terminal a message comes from, as the acquirer registered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Terminal {
    /// Field 41, 8 characters (终端号).
    pub terminal_id: String,
    /// Field 42, 15 characters (商户号).
    pub merchant_id: String,
    /// The current batch (60.2), as the last sign-on gave it.
    pub batch: u32,
}

/// The sale a void or refund refers to, as the acquirer answered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginalSale {
    /// Field 37 of the sale's response.
    pub rrn: String,
    /// Field 38 of the sale's response, when there was one.
    pub auth_code: Option<String>,
    pub batch: u32,
    pub stan: u32,
    /// Field 13 of the sale's response (MMDD). Refunds send it as 61.3;
    /// voids, which stay within the batch, do not.
    pub date_mmdd: String,
}

/// A refund (退货): money back for part or all of an earlier sale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundRequest {
    pub terminal: Terminal,
    pub stan: u32,
    /// In minor units (fen), at most the sale's amount less earlier refunds.
    pub amount_minor: u64,
    /// ISO 4217 numeric, [`CNY`] for yuan.
    pub currency: String,
    /// Field 22, see [`entry_mode`].
    pub pos_entry_mode: String,
    pub original: OriginalSale,
}

/// A void (消费撤销) of a sale in the still-open batch, for its full amount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoidRequest {
    pub terminal: Terminal,
    pub stan: u32,
    /// The sale's whole amount in minor units.
    pub amount_minor: u64,
    pub currency: String,
    pub pos_entry_mode: String,
    pub original: OriginalSale,
}

/// Which working keys a sign-on asks for (60.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyMode {
    Single,
    Double,
    DoubleWithTrackKey,
}

/// A sign-on (签到): the host answers with the batch and working keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignOnRequest {
    pub terminal: Terminal,
    pub stan: u32,
    /// Operator number, three characters (field 63, e.g. `"01 "`).
    pub operator: String,
    pub keys: KeyMode,
}

/// Why a reversal is sent: its field 39 (冲正原因).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReversalReason {
    /// No answer in time (98).
    NoResponse,
    /// An answer came but the terminal could not complete (96).
    TerminalFailure,
    /// The answer's MAC did not verify (A0).
    MacFailure,
    /// Anything else (06).
    Other,
}

impl ReversalReason {
    pub fn code(self) -> &'static str {
        match self {
            ReversalReason::NoResponse => "98",
            ReversalReason::TerminalFailure => "96",
            ReversalReason::MacFailure => "A0",
            ReversalReason::Other => "06",
        }
    }
}

/// Fields a reversal copies from the request it reverses. 38 is not among
/// them (it belongs to a response, and a timed-out request has none), nor
/// are PIN and track data; 55 must be rebuilt with the tags the acquirer
/// wants in a reversal, so it is left to the caller too.
pub const REVERSAL_ECHOED_FIELDS: &[u8] = &[2, 3, 4, 11, 14, 22, 23, 25, 41, 42, 49, 60, 61];

/// Fields a reversal cannot do without.
const REVERSAL_REQUIRED_FIELDS: &[u8] = &[3, 11, 41, 42, 60];

pub fn refund(req: &RefundRequest) -> Result<Message, BuildError> {
    if !cup::is_mmdd(&req.original.date_mmdd) {
        return Err(BuildError::OriginalDate(req.original.date_mmdd.clone()));
    }
    let original = Field61 {
        batch: req.original.batch,
        stan: req.original.stan,
        date_mmdd: Some(req.original.date_mmdd.clone()),
        rest: String::new(),
    };
    let fields = ReturnFields {
        terminal: &req.terminal,
        stan: req.stan,
        amount_minor: req.amount_minor,
        currency: &req.currency,
        pos_entry_mode: &req.pos_entry_mode,
        original: &req.original,
        field61: original,
    };
    fields.build(Mti::FINANCIAL_ADVICE, message_type::REFUND)
}

pub fn void(req: &VoidRequest) -> Result<Message, BuildError> {
    let original = Field61 { batch: req.original.batch, stan: req.original.stan, date_mmdd: None, rest: String::new() };
    let fields = ReturnFields {
        terminal: &req.terminal,
        stan: req.stan,
        amount_minor: req.amount_minor,
        currency: &req.currency,
        pos_entry_mode: &req.pos_entry_mode,
        original: &req.original,
        field61: original,
    };
    fields.build(Mti::FINANCIAL_REQUEST, message_type::VOID)
}

/// What refunds and voids share.
struct ReturnFields<'a> {
    terminal: &'a Terminal,
    stan: u32,
    amount_minor: u64,
    currency: &'a str,
    pos_entry_mode: &'a str,
    original: &'a OriginalSale,
    field61: Field61,
}

impl ReturnFields<'_> {
    fn build(self, mti: Mti, kind: &str) -> Result<Message, BuildError> {
        in_range("amount", self.amount_minor, 1, 999_999_999_999)?;
        let mut m = Message::new(mti);
        m.set_text(3, PROC_RETURN);
        m.set_amount_minor(self.amount_minor)?;
        set_stan(&mut m, self.stan)?;
        m.set_text(22, self.pos_entry_mode).set_text(25, CONDITION_NORMAL).set_text(37, &self.original.rrn);
        if let Some(auth) = &self.original.auth_code {
            m.set_text(38, auth);
        }
        set_terminal(&mut m, self.terminal);
        m.set_text(49, self.currency);
        m.set_text(60, Field60::new(kind, self.terminal.batch, network_info::NONE).to_text()?);
        m.set_text(61, self.field61.to_text()?);
        checked(m)
    }
}

/// The reversal (冲正) of a request whose answer never came or could not
/// be used: 0400 with the original's fields echoed and the reason in 39.
/// Only 0100 and 0200 are reversed; refunds (0220) are advices.
pub fn reversal(original: &Message, reason: ReversalReason) -> Result<Message, BuildError> {
    if original.mti != Mti::FINANCIAL_REQUEST && original.mti != Mti::AUTHORIZATION_REQUEST {
        return Err(BuildError::NotReversible(original.mti));
    }
    if let Some(&missing) = REVERSAL_REQUIRED_FIELDS.iter().find(|&&n| !original.has(n)) {
        return Err(BuildError::MissingOriginalField(missing));
    }
    let mut m = Message::new(Mti::REVERSAL_REQUEST);
    m.tpdu = original.tpdu;
    m.header = original.header.clone();
    for &n in REVERSAL_ECHOED_FIELDS {
        if let Some(v) = original.get(n) {
            m.fields.insert(n, v.clone());
        }
    }
    m.set_text(39, reason.code());
    checked(m)
}

pub fn sign_on(req: &SignOnRequest) -> Result<Message, BuildError> {
    let code = match req.keys {
        KeyMode::Single => network_info::SIGN_ON_SINGLE,
        KeyMode::Double => network_info::SIGN_ON_DOUBLE,
        KeyMode::DoubleWithTrackKey => network_info::SIGN_ON_DOUBLE_WITH_TRACK_KEY,
    };
    let len = req.operator.len();
    if len != 3 {
        return Err(BuildError::Invalid(CodecError::Length { field: 63, len, unit: "characters", length: OPERATOR }));
    }
    if let Some(position) = req.operator.bytes().position(|c| !Kind::AlphaNumericSpecial.allows(c)) {
        let byte = req.operator.as_bytes()[position];
        return Err(BuildError::Invalid(CodecError::Character { field: 63, position, byte, kind: "ans" }));
    }
    let mut m = Message::new(Mti::NETWORK_REQUEST);
    set_stan(&mut m, req.stan)?;
    set_terminal(&mut m, &req.terminal);
    m.set_text(60, Field60::new(message_type::NETWORK_MANAGEMENT, req.terminal.batch, code).to_text()?);
    m.set_bytes(63, req.operator.as_bytes());
    checked(m)
}

/// The operator number is three printable characters (an `ans3` inside
/// field 63, which the table keeps as bytes).
const OPERATOR: Length = Length::Fixed(3);

/// An echo test (回响测试): 0820 with 60.3 = 301. It proves the line and
/// the host are up without moving money.
pub fn echo_test(terminal: &Terminal) -> Result<Message, BuildError> {
    let mut m = Message::new(Mti::NETWORK_ADVICE);
    set_terminal(&mut m, terminal);
    m.set_text(60, Field60::new(message_type::NETWORK_MANAGEMENT, terminal.batch, network_info::ECHO_TEST).to_text()?);
    checked(m)
}

fn in_range(what: &'static str, value: u64, min: u64, max: u64) -> Result<(), BuildError> {
    if (min..=max).contains(&value) { Ok(()) } else { Err(BuildError::OutOfRange { what, value, min, max }) }
}

fn set_stan(m: &mut Message, stan: u32) -> Result<(), BuildError> {
    in_range("the trace number (STAN)", stan as u64, 1, 999_999)?;
    m.set_stan(stan)?;
    Ok(())
}

fn set_terminal(m: &mut Message, t: &Terminal) {
    m.set_text(41, &t.terminal_id).set_text(42, &t.merchant_id);
}

fn checked(m: Message) -> Result<Message, BuildError> {
    codec::validate_fields(cup::cup_pos(), &m)?;
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::FieldValue;

    fn terminal() -> Terminal {
        Terminal { terminal_id: "12345678".into(), merchant_id: "898310048140001".into(), batch: 7 }
    }

    fn sale() -> OriginalSale {
        OriginalSale {
            rrn: "123456789012".into(),
            auth_code: Some("A1B2C3".into()),
            batch: 6,
            stan: 42,
            date_mmdd: "0315".into(),
        }
    }

    fn refund_request() -> RefundRequest {
        RefundRequest {
            terminal: terminal(),
            stan: 101,
            amount_minor: 1250,
            currency: CNY.into(),
            pos_entry_mode: entry_mode::MANUAL_NO_PIN.into(),
            original: sale(),
        }
    }

    fn void_request() -> VoidRequest {
        let r = refund_request();
        VoidRequest {
            terminal: r.terminal,
            stan: r.stan,
            amount_minor: r.amount_minor,
            currency: r.currency,
            pos_entry_mode: r.pos_entry_mode,
            original: r.original,
        }
    }

    fn text(m: &Message, n: u8) -> &str {
        m.text(n).unwrap_or_else(|| panic!("field {n} missing"))
    }

    #[test]
    fn a_refund_is_an_0220_advice_with_the_original_references() {
        let m = refund(&refund_request()).unwrap();
        assert_eq!(m.mti, Mti::FINANCIAL_ADVICE);
        assert_eq!(text(&m, 3), "200000");
        assert_eq!(text(&m, 4), "000000001250");
        assert_eq!(text(&m, 11), "000101");
        assert_eq!(text(&m, 25), "00");
        assert_eq!(text(&m, 37), "123456789012");
        assert_eq!(text(&m, 38), "A1B2C3");
        assert_eq!(text(&m, 41), "12345678");
        assert_eq!(text(&m, 42), "898310048140001");
        assert_eq!(text(&m, 49), "156");
        assert_eq!(text(&m, 60), "25000007000");
        assert_eq!(text(&m, 61), "0000060000420315");
        assert!(!m.has(2) && !m.has(35) && !m.has(64));
    }

    #[test]
    fn a_void_is_an_0200_with_type_23_and_no_original_date() {
        let m = void(&void_request()).unwrap();
        assert_eq!(m.mti, Mti::FINANCIAL_REQUEST);
        assert_eq!(text(&m, 3), "200000");
        assert_eq!(text(&m, 60), "23000007000");
        assert_eq!(text(&m, 61), "000006000042");
        assert_eq!(text(&m, 37), "123456789012");
    }

    #[test]
    fn builders_refuse_what_the_host_would() {
        let mut r = refund_request();
        r.amount_minor = 0;
        assert!(matches!(refund(&r), Err(BuildError::OutOfRange { what: "amount", .. })));
        r.amount_minor = 1_000_000_000_000;
        assert!(matches!(refund(&r), Err(BuildError::OutOfRange { what: "amount", .. })));
        let mut r = refund_request();
        r.stan = 0;
        assert!(matches!(refund(&r), Err(BuildError::OutOfRange { .. })));
        let mut r = refund_request();
        r.terminal.terminal_id = "1234567".into();
        assert!(matches!(refund(&r), Err(BuildError::Invalid(CodecError::Length { field: 41, .. }))));
        let mut r = refund_request();
        r.original.date_mmdd = "1332".into();
        assert!(matches!(refund(&r), Err(BuildError::OriginalDate(_))));
        let mut r = refund_request();
        r.original.rrn = "12345".into();
        assert!(matches!(refund(&r), Err(BuildError::Invalid(CodecError::Length { field: 37, .. }))));
        let mut r = refund_request();
        r.terminal.batch = 1_000_000;
        assert!(matches!(refund(&r), Err(BuildError::Subfield(_))));
    }

    #[test]
    fn a_reversal_echoes_the_void_and_states_its_reason() {
        let mut original = void(&void_request()).unwrap();
        original.set_bytes(52, [1u8; 8]).set_bytes(64, [2u8; 8]);
        let r = reversal(&original, ReversalReason::NoResponse).unwrap();
        assert_eq!(r.mti, Mti::REVERSAL_REQUEST);
        for n in [3, 4, 11, 22, 25, 41, 42, 49, 60, 61] {
            assert_eq!(r.get(n), original.get(n), "field {n}");
        }
        assert_eq!(text(&r, 39), "98");
        assert!(!r.has(52) && !r.has(64) && !r.has(38) && !r.has(37));
    }

    #[test]
    fn a_refund_is_never_reversed() {
        let original = refund(&refund_request()).unwrap();
        assert_eq!(
            reversal(&original, ReversalReason::NoResponse),
            Err(BuildError::NotReversible(Mti::FINANCIAL_ADVICE))
        );
        let mut bare = void(&void_request()).unwrap();
        bare.remove(60);
        assert_eq!(reversal(&bare, ReversalReason::Other), Err(BuildError::MissingOriginalField(60)));
    }

    #[test]
    fn reversal_reasons_use_the_cup_codes() {
        let codes: Vec<_> = [
            ReversalReason::NoResponse,
            ReversalReason::TerminalFailure,
            ReversalReason::MacFailure,
            ReversalReason::Other,
        ]
        .map(ReversalReason::code)
        .into();
        assert_eq!(codes, ["98", "96", "A0", "06"]);
    }

    #[test]
    fn a_sign_on_asks_for_keys_with_60_3() {
        let req = SignOnRequest { terminal: terminal(), stan: 1, operator: "01 ".into(), keys: KeyMode::Double };
        let m = sign_on(&req).unwrap();
        assert_eq!(m.mti, Mti::NETWORK_REQUEST);
        assert_eq!(text(&m, 11), "000001");
        assert_eq!(text(&m, 60), "00000007003");
        assert_eq!(m.get(63), Some(&FieldValue::Bytes(b"01 ".to_vec())));
        let single = sign_on(&SignOnRequest { keys: KeyMode::Single, ..req.clone() }).unwrap();
        assert_eq!(text(&single, 60), "00000007001");
        assert!(sign_on(&SignOnRequest { operator: "1".into(), ..req.clone() }).is_err());
        let tab = sign_on(&SignOnRequest { operator: "01\t".into(), ..req }).unwrap_err();
        assert!(matches!(tab, BuildError::Invalid(CodecError::Character { field: 63, position: 2, .. })), "{tab}");
    }

    #[test]
    fn an_echo_test_is_an_0820_with_code_301() {
        let m = echo_test(&terminal()).unwrap();
        assert_eq!(m.mti, Mti::NETWORK_ADVICE);
        assert_eq!(text(&m, 60), "00000007301");
        assert_eq!(m.fields.keys().copied().collect::<Vec<_>>(), [41, 42, 60]);
    }
}
