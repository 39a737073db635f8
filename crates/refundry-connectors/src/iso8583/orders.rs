//! A [`RefundOrder`] in CUP POS terms, and an answer back in ours. No IO.

use refundry_core::money::Currency;
use refundry_core::refund::RefundType;
use refundry_iso8583::builders::{self, OriginalSale, RefundRequest, VoidRequest, entry_mode};
use refundry_iso8583::{Message, Mti, ResponseStatus, response_code_meaning};

use super::config::Settings;
use crate::{Outcome, RefundOrder};

/// An order no host could take (a missing reference, a currency CUP POS
/// does not carry): known before anything is sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the order cannot be sent: {0}")]
pub(crate) struct InvalidOrder(pub String);

/// The void (0200) or refund advice (0220) of an order, unsigned and
/// without TPDU or header: the link adds those when it sends.
pub(crate) fn message(settings: &Settings, order: &RefundOrder) -> Result<Message, InvalidOrder> {
    let invalid = |what: &str| InvalidOrder(what.to_string());
    // CUP POS domestic transactions are in yuan; a table of numeric codes
    // belongs here the day an acquirer takes another currency.
    if order.amount.currency != Currency::CNY {
        return Err(invalid("only cny is carried by China UnionPay POS"));
    }
    let amount_minor = u64::try_from(order.amount.minor).map_err(|_| invalid("the amount is negative"))?;
    let original = OriginalSale {
        rrn: order.original_rrn.clone().ok_or_else(|| invalid("the original sale's RRN is missing"))?,
        auth_code: order.original_auth_code.clone(),
        batch: six_digits(order.original_batch_no.as_deref()).ok_or_else(|| invalid("original batch number"))?,
        stan: six_digits(order.original_voucher_no.as_deref()).ok_or_else(|| invalid("original voucher number"))?,
        date_mmdd: order.original_date.clone(),
    };
    // Refundry keeps no card, so the card is never read: keyed in, no PIN.
    let pos_entry_mode = entry_mode::MANUAL_NO_PIN.to_string();
    let terminal = settings.terminal.clone();
    let currency = builders::CNY.to_string();
    let built = match order.refund_type {
        RefundType::Refund => builders::refund(&RefundRequest {
            terminal,
            stan: order.stan,
            amount_minor,
            currency,
            pos_entry_mode,
            original,
        }),
        RefundType::Void => builders::void(&VoidRequest {
            terminal,
            stan: order.stan,
            amount_minor,
            currency,
            pos_entry_mode,
            original,
        }),
    };
    built.map_err(|e| InvalidOrder(e.to_string()))
}

fn six_digits(text: Option<&str>) -> Option<u32> {
    let text = text?.trim();
    if text.is_empty() || text.len() > 6 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// The repeat of an advice (0221): the same message, the same STAN, so the
/// host can tell it has seen it.
pub(crate) fn repeat_of(advice: &Message) -> Message {
    let mut repeat = advice.clone();
    let [a, b, c, _] = advice.mti.digits();
    // The digits come from a valid MTI, so only the last one changes.
    repeat.mti = Mti::from_digits([a, b, c, b'1']).unwrap_or(advice.mti);
    repeat
}

/// What an answer settles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    Final(Outcome),
    /// The code leaves the outcome open (or says "later"): treated like no
    /// answer, so the message is repeated or reversed, never guessed at.
    Open {
        code: String,
    },
}

pub(crate) fn verdict(answer: &Message, settings: &Settings) -> Verdict {
    let code = answer.response_code().unwrap_or_default();
    let meaning = response_code_meaning(code);
    match meaning.status {
        ResponseStatus::Approved => {
            Verdict::Final(Outcome::Approved { acquirer_reference: reference(answer, settings) })
        }
        ResponseStatus::Declined => Verdict::Final(Outcome::Declined {
            reason: meaning.failure_reason.unwrap_or("declined").to_string(),
            response_code: code.to_string(),
        }),
        ResponseStatus::Retry | ResponseStatus::Unknown => Verdict::Open { code: code.to_string() },
    }
}

/// The host's RRN; a host that approves without one still moved money, so
/// the terminal, batch and trace name the transaction instead.
fn reference(answer: &Message, settings: &Settings) -> String {
    match answer.rrn().map(str::trim).filter(|r| !r.is_empty()) {
        Some(rrn) => rrn.to_string(),
        None => {
            tracing::warn!(stan = answer.stan(), "approved without an RRN (field 37); naming it by terminal and trace");
            let t = &settings.terminal;
            format!("{}-{:06}-{:06}", t.terminal_id, t.batch, answer.stan().unwrap_or_default())
        }
    }
}

/// Whether an answer to a reversal means the void no longer stands:
/// reversed (approved), or the host never had it (25).
pub(crate) fn reversal_taken(answer: &Message) -> bool {
    let code = answer.response_code().unwrap_or_default();
    response_code_meaning(code).status == ResponseStatus::Approved || code == "25"
}

/// The answer `response` gives to `request`: its MTI, STAN and terminal.
/// Anything else on the line (a late answer to an earlier message) is not.
pub(crate) fn answers(request: &Message, response: &Message) -> bool {
    let [a, b, c, _] = request.mti.digits();
    let function = match c {
        b'0' => b'1',
        b'2' => b'3',
        _ => return false,
    };
    let [ra, rb, rc, rd] = response.mti.digits();
    // The answer to a repeat (0221, 0401) is the plain response (0230, 0410);
    // some hosts echo the repeat digit, which means the same.
    (ra, rb, rc) == (a, b, function)
        && (rd == b'0' || rd == request.mti.digits()[3])
        && response.stan() == request.stan()
        && response.terminal_id().is_none_or(|t| Some(t) == request.terminal_id())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use refundry_core::money::Money;

    use super::*;
    use crate::iso8583::config::Iso8583Config;

    fn settings() -> Settings {
        Settings::from_config(&Iso8583Config {
            addr: "127.0.0.1:1".into(),
            terminal_id: "12345678".into(),
            merchant_id: "898310048140001".into(),
            tpdu_destination: 3,
            tpdu_source: 0,
            mac_key_hex: None,
            batch_no: "000007".into(),
            connect_timeout: Duration::from_secs(1),
            response_timeout: Duration::from_secs(1),
            max_advice_repeats: 2,
        })
        .unwrap()
    }

    fn order(refund_type: RefundType) -> RefundOrder {
        RefundOrder {
            reference: "re_1".into(),
            attempt: 1,
            stan: 101,
            refund_type,
            amount: Money::new(1250, Currency::CNY),
            terminal_id: "12345678".into(),
            original_rrn: Some("123456789012".into()),
            original_auth_code: Some("A1B2C3".into()),
            original_voucher_no: Some("42".into()),
            original_batch_no: Some("000006".into()),
            original_date: "0315".into(),
        }
    }

    #[test]
    fn a_refund_order_becomes_an_advice_with_its_originals() {
        let m = message(&settings(), &order(RefundType::Refund)).unwrap();
        assert_eq!(m.mti, Mti::FINANCIAL_ADVICE);
        assert_eq!(m.stan(), Some(101));
        assert_eq!(m.text(60), Some("25000007000"));
        assert_eq!(m.text(61), Some("0000060000420315"));
        assert_eq!(m.rrn(), Some("123456789012"));
        assert_eq!(m.auth_code(), Some("A1B2C3"));
        assert_eq!(repeat_of(&m).mti.as_str(), "0221");
        assert_eq!(repeat_of(&m).fields, m.fields);
    }

    #[test]
    fn a_void_order_becomes_an_0200_of_type_23() {
        let m = message(&settings(), &order(RefundType::Void)).unwrap();
        assert_eq!(m.mti, Mti::FINANCIAL_REQUEST);
        assert_eq!(m.text(60), Some("23000007000"));
        assert_eq!(m.text(61), Some("000006000042"));
    }

    #[test]
    fn orders_the_host_cannot_take_are_refused_before_sending() {
        let s = settings();
        let mut o = order(RefundType::Refund);
        o.original_rrn = None;
        assert!(message(&s, &o).is_err());
        let mut o = order(RefundType::Refund);
        o.amount = Money::new(100, Currency::parse("usd").unwrap());
        assert!(message(&s, &o).is_err());
        let mut o = order(RefundType::Void);
        o.original_voucher_no = Some("1234567".into());
        assert!(message(&s, &o).is_err());
        let mut o = order(RefundType::Refund);
        o.stan = 0;
        assert!(message(&s, &o).is_err());
    }

    #[test]
    fn response_codes_become_outcomes_or_stay_open() {
        let s = settings();
        let mut a = Message::new(Mti::FINANCIAL_ADVICE_RESPONSE);
        a.set_text(39, "00").set_text(37, "000000000042");
        assert_eq!(verdict(&a, &s), Verdict::Final(Outcome::Approved { acquirer_reference: "000000000042".into() }));
        a.set_text(39, "51");
        let declined = Outcome::Declined { reason: "insufficient_funds".into(), response_code: "51".into() };
        assert_eq!(verdict(&a, &s), Verdict::Final(declined));
        for open in ["98", "96", "A0", "ZZ"] {
            a.set_text(39, open);
            assert_eq!(verdict(&a, &s), Verdict::Open { code: open.into() });
        }
        a.remove(39);
        assert!(matches!(verdict(&a, &s), Verdict::Open { .. }));
    }

    #[test]
    fn an_answer_must_match_type_trace_and_terminal() {
        let request = message(&settings(), &order(RefundType::Refund)).unwrap();
        let mut answer = Message::new(Mti::FINANCIAL_ADVICE_RESPONSE);
        answer.set_stan(101).unwrap();
        answer.set_text(41, "12345678");
        assert!(answers(&request, &answer));
        assert!(answers(&repeat_of(&request), &answer));
        answer.set_stan(100).unwrap();
        assert!(!answers(&request, &answer));
        answer.set_stan(101).unwrap();
        answer.set_text(41, "87654321");
        assert!(!answers(&request, &answer));
        answer.set_text(41, "12345678");
        answer.mti = Mti::FINANCIAL_RESPONSE;
        assert!(!answers(&request, &answer));
    }
}
