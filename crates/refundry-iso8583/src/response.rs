//! What a field 39 response code means for a refund: whether money moved,
//! a stable reason users can read, and the text in English and Chinese.
//! Kept as one table so adding a code is one line.

/// What to do with an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResponseStatus {
    /// Done.
    Approved,
    /// Refused for good: sending the same again will be refused again.
    Declined,
    /// Not done, for a passing reason (host busy, keys out of step): the
    /// same request may succeed later, after a sign-on where the reason
    /// says so.
    Retry,
    /// The code does not say whether money moved: ask the acquirer before
    /// anything else is sent. Codes missing from the table land here too.
    Unknown,
}

/// The meaning of one response code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ResponseMeaning {
    pub status: ResponseStatus,
    /// A stable snake_case reason (`insufficient_funds`), `None` when
    /// approved.
    pub failure_reason: Option<&'static str>,
    pub en: &'static str,
    pub zh: &'static str,
}

use ResponseStatus::{Approved, Declined, Retry, Unknown};

type Row = (&'static str, ResponseStatus, Option<&'static str>, &'static str, &'static str);

/// ISO 8583:1987 codes as China UnionPay uses them, plus CUP's own A*
/// codes. Acquirers add codes of their own: check their list.
const CODES: &[Row] = &[
    ("00", Approved, None, "Approved", "承兑或交易成功"),
    ("01", Declined, Some("refer_to_issuer"), "Refer to card issuer", "请持卡人与发卡银行联系"),
    ("03", Declined, Some("invalid_merchant"), "Invalid merchant", "无效商户"),
    ("04", Declined, Some("pick_up_card"), "Pick up card", "此卡被没收"),
    ("05", Declined, Some("do_not_honor"), "Do not honour", "不予承兑"),
    // A partial approval moved some other amount than asked: a person looks.
    ("10", Unknown, Some("partial_approval"), "Approved for a partial amount", "部分承兑"),
    ("11", Approved, None, "Approved (VIP)", "重要人物批准（VIP）"),
    ("12", Declined, Some("invalid_transaction"), "Invalid transaction", "无效交易"),
    ("13", Declined, Some("invalid_amount"), "Invalid amount", "无效金额"),
    ("14", Declined, Some("invalid_card_number"), "Invalid card number", "无效卡号（无此账号）"),
    ("15", Declined, Some("no_such_issuer"), "No such issuer", "此卡无对应发卡方"),
    ("21", Declined, Some("card_not_initialized"), "Card not initialised", "卡未初始化"),
    (
        "22",
        Declined,
        Some("original_transaction_mismatch"),
        "Related transaction error, or past the days allowed",
        "操作有误，或超出交易允许天数",
    ),
    ("25", Declined, Some("original_not_found"), "Unable to locate the original transaction", "找不到原始交易"),
    // Our message was malformed: resending it unchanged cannot help.
    ("30", Declined, Some("format_error"), "Format error", "报文格式错误"),
    ("33", Declined, Some("card_expired"), "Expired card, pick up", "过期的卡，请没收"),
    ("34", Declined, Some("suspected_fraud"), "Suspected fraud, pick up", "有作弊嫌疑的卡，请没收"),
    ("36", Declined, Some("card_restricted"), "Restricted card, pick up", "受限制的卡，请没收"),
    ("38", Declined, Some("pin_tries_exceeded"), "PIN tries exceeded, pick up", "密码错误次数超限，请没收"),
    ("40", Declined, Some("function_not_supported"), "Requested function not supported", "请求的功能尚不支持"),
    ("41", Declined, Some("card_lost"), "Lost card, pick up", "挂失卡，请没收"),
    ("43", Declined, Some("card_stolen"), "Stolen card, pick up", "被窃卡，请没收"),
    ("45", Declined, Some("fallback_not_allowed"), "Fallback not allowed, use the chip", "不允许降级交易，请使用IC卡"),
    ("51", Declined, Some("insufficient_funds"), "Insufficient funds", "可用余额不足"),
    ("54", Declined, Some("card_expired"), "Expired card", "过期的卡"),
    ("55", Declined, Some("incorrect_pin"), "Incorrect PIN", "密码错"),
    (
        "57",
        Declined,
        Some("not_permitted_to_cardholder"),
        "Transaction not permitted to cardholder",
        "不允许持卡人进行的交易",
    ),
    (
        "58",
        Declined,
        Some("not_permitted_to_terminal"),
        "Transaction not permitted to terminal",
        "不允许终端进行的交易",
    ),
    ("59", Declined, Some("suspected_fraud"), "Suspected fraud", "有作弊嫌疑"),
    ("61", Declined, Some("exceeds_amount_limit"), "Exceeds amount limit", "超出金额限制"),
    ("62", Declined, Some("card_restricted"), "Restricted card", "受限制的卡"),
    ("64", Declined, Some("original_amount_mismatch"), "Original amount incorrect", "原始金额不正确"),
    ("65", Declined, Some("exceeds_frequency_limit"), "Exceeds frequency limit", "超出次数限制"),
    // The switch gave up on a late answer; whether the issuer applied it
    // is for an inquiry to say.
    ("68", Unknown, Some("response_too_late"), "Response received too late", "交易超时"),
    ("75", Declined, Some("pin_tries_exceeded"), "PIN tries exceeded", "允许的输入PIN次数超限"),
    ("77", Retry, Some("sign_on_required"), "Batch out of step, sign on again", "请重新签到再交易"),
    ("90", Retry, Some("cutoff_in_progress"), "Cut-off in progress", "正在日终处理"),
    ("91", Retry, Some("issuer_unavailable"), "Issuer or switch inoperative", "发卡方或交换中心不能操作"),
    ("92", Retry, Some("issuer_unreachable"), "Issuer cannot be reached", "金融机构或中间网络设施找不到或无法达到"),
    (
        "93",
        Declined,
        Some("violation_of_law"),
        "Transaction cannot be completed, violation of law",
        "交易违法，不能完成",
    ),
    // The host has seen this trace number before, which says nothing
    // about whether the first one was applied.
    ("94", Unknown, Some("duplicate_transmission"), "Duplicate transmission", "重复交易"),
    ("96", Retry, Some("system_malfunction"), "System malfunction", "交换中心系统故障"),
    ("97", Declined, Some("terminal_not_registered"), "Terminal not registered", "终端未在中心或银行登记"),
    // No answer from the issuer: it may have applied the request.
    ("98", Unknown, Some("issuer_timeout"), "No answer from the issuer", "银联收不到发卡方应答"),
    ("99", Retry, Some("key_sync_error"), "PIN block or key error, sign on again", "PIN格式错，请重新签到"),
    ("A0", Retry, Some("mac_verification_failed"), "MAC verification failed, sign on again", "MAC校验错，请重新签到"),
    // China UnionPay's "successful with a defect": the money moved.
    ("A2", Approved, None, "Approved, with a defect in processing", "有缺陷的成功"),
    ("A4", Approved, None, "Approved, with a defect in processing", "有缺陷的成功"),
    ("A5", Approved, None, "Approved, with a defect in processing", "有缺陷的成功"),
    ("A6", Approved, None, "Approved, with a defect in processing", "有缺陷的成功"),
];

const UNKNOWN: ResponseMeaning = ResponseMeaning {
    status: Unknown,
    failure_reason: Some("unknown_response_code"),
    en: "Unknown response code",
    zh: "未知应答码",
};

/// The meaning of a field 39 code. A code not in the table is
/// [`ResponseStatus::Unknown`]: never guess that money did or did not move.
pub fn response_code_meaning(code: &str) -> ResponseMeaning {
    CODES
        .iter()
        .find(|row| row.0 == code)
        .map(|&(_, status, failure_reason, en, zh)| ResponseMeaning { status, failure_reason, en, zh })
        .unwrap_or(UNKNOWN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_zero_is_approved_with_no_failure_reason() {
        let m = response_code_meaning("00");
        assert_eq!(m.status, Approved);
        assert_eq!(m.failure_reason, None);
        assert_eq!(m.zh, "承兑或交易成功");
    }

    #[test]
    fn common_refusals_have_stable_reasons() {
        let reason = |c| response_code_meaning(c).failure_reason.unwrap();
        assert_eq!(reason("51"), "insufficient_funds");
        assert_eq!(reason("05"), "do_not_honor");
        assert_eq!(reason("12"), "invalid_transaction");
        assert_eq!(reason("30"), "format_error");
        assert_eq!(reason("91"), "issuer_unavailable");
        assert_eq!(reason("94"), "duplicate_transmission");
        assert_eq!(response_code_meaning("25").status, Declined);
        assert_eq!(response_code_meaning("A0").status, Retry);
    }

    #[test]
    fn codes_that_hide_the_outcome_are_unknown() {
        for code in ["98", "94", "68", "10"] {
            assert_eq!(response_code_meaning(code).status, Unknown, "{code}");
        }
    }

    #[test]
    fn codes_missing_from_the_table_are_unknown_not_declined() {
        for code in ["ZZ", "", "0", "000", "a0"] {
            assert_eq!(response_code_meaning(code), UNKNOWN, "{code:?}");
        }
    }

    #[test]
    fn the_table_is_well_formed() {
        for (i, row) in CODES.iter().enumerate() {
            let (code, status, reason, en, zh) = *row;
            assert_eq!(code.len(), 2, "{code}");
            assert!(CODES[..i].iter().all(|r| r.0 != code), "{code} twice");
            assert_eq!(status == Approved, reason.is_none(), "{code}");
            let snake = |r: &str| r.bytes().all(|c| c.is_ascii_lowercase() || c == b'_');
            assert!(reason.is_none_or(snake), "{code}");
            assert!(!en.is_empty() && !zh.is_empty(), "{code}");
        }
    }
}
