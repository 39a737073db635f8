//! The merchant's refund policy: whether a refund may go ahead on a
//! cashier's word, needs a supervisor (主管审批), or may not be made at all.
//!
//! `decide` is a pure function of the policy, the sale and the facts about
//! the request. Every rule that fires leaves a reason with a stable code and
//! a sentence in English and Simplified Chinese, so the till can show the
//! cashier why, and the audit log can keep it. Whether the amount is still
//! refundable at all is not a policy question; `refund::plan_refund` answers
//! it.

use crate::money::Money;
use crate::refund::{PriorRefund, RefundReason};
use crate::sale::{PaymentMethod, Sale, wire_enum};
use jiff::{SignedDuration, Timestamp};
use std::cmp::Ordering;

wire_enum!(
    /// What to do when the person refunding is not the cashier who made the sale.
    OtherCashierRule { Allow = "allow", RequireApproval = "require_approval", Reject = "reject" }
);

wire_enum!(
    /// What the policy says about one refund request, from mildest to worst.
    Outcome { Approve = "approve", RequiresApproval = "requires_approval", Reject = "reject" }
);

impl Outcome {
    fn severity(self) -> u8 {
        match self {
            Outcome::Approve => 0,
            Outcome::RequiresApproval => 1,
            Outcome::Reject => 2,
        }
    }
}

/// Ordered by severity, so that the outcome of a decision is the `max` of
/// its reasons and "never worse" reads as `<=`.
impl Ord for Outcome {
    fn cmp(&self, other: &Self) -> Ordering {
        self.severity().cmp(&other.severity())
    }
}

impl PartialOrd for Outcome {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The stable codes of the reasons `decide` gives. They are part of the API:
/// callers store and match them, so a code is never renamed.
pub mod codes {
    pub const OUTSIDE_REFUND_WINDOW: &str = "outside_refund_window";
    pub const REASON_NOT_ALLOWED: &str = "reason_not_allowed";
    pub const AFTER_NO_QUESTIONS_WINDOW: &str = "after_no_questions_window";
    pub const AMOUNT_OVER_LIMIT: &str = "amount_over_limit";
    pub const SHARE_OVER_LIMIT: &str = "share_over_limit";
    pub const CASH_OVER_LIMIT: &str = "cash_over_limit";
    pub const CASHIER_DAILY_LIMIT: &str = "cashier_daily_limit";
    pub const NOT_ORIGINAL_CASHIER: &str = "not_original_cashier";
    /// Given alone when no rule fired.
    pub const WITHIN_POLICY: &str = "within_policy";
}

/// Every code a reason may carry, in the order `decide` lists reasons.
pub const RULE_CODES: &[&str] = &[
    codes::OUTSIDE_REFUND_WINDOW,
    codes::REASON_NOT_ALLOWED,
    codes::AFTER_NO_QUESTIONS_WINDOW,
    codes::AMOUNT_OVER_LIMIT,
    codes::SHARE_OVER_LIMIT,
    codes::CASH_OVER_LIMIT,
    codes::CASHIER_DAILY_LIMIT,
    codes::NOT_ORIGINAL_CASHIER,
    codes::WITHIN_POLICY,
];

/// The longest window a policy may set: ten years. Longer is a typo, and it
/// keeps `days * 86400` far from any overflow.
pub const MAX_WINDOW_DAYS: u32 = 3650;

/// 100 % in basis points.
pub const FULL_SHARE_BPS: u32 = 10_000;

const SECONDS_PER_DAY: i64 = 86_400;

/// One merchant's refund rules. Amounts are minor units of the sale's
/// currency: a merchant's policy is written for the currency it sells in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundPolicy {
    /// Days after capture within which a refund may be made at all, per payment method kind.
    pub refund_window_days_card: u32,
    pub refund_window_days_wallet: u32,
    pub refund_window_days_cash: u32,
    /// Days after capture within which `customer_request` (change of mind) needs no approval; after it, such
    /// refunds need a supervisor.
    pub no_questions_days: u32,
    /// A refund above this amount needs a supervisor.
    pub approval_above_minor: i64,
    /// A refund above this share of the sale (in basis points, 10000 = 100 %) needs a supervisor. 10000 disables.
    pub approval_above_share_bps: u32,
    /// Sales at or above this amount are "large": their refunds use `large_sale_approval_above_minor` instead of
    /// `approval_above_minor` when that is lower.
    pub large_sale_minor: i64,
    pub large_sale_approval_above_minor: i64,
    /// Reasons a refund may give at all; anything else is rejected.
    pub allowed_reasons: Vec<RefundReason>,
    /// Cash refunds above this amount need a supervisor (cash leaves the drawer).
    pub cash_refund_limit_minor: i64,
    /// Total a cashier may refund per business day without a supervisor; the request that would cross it needs
    /// approval.
    pub cashier_daily_limit_minor: i64,
    pub other_cashier: OtherCashierRule,
}

impl Default for RefundPolicy {
    /// A Chinese retail counter: card refunds for half a year, wallet refunds
    /// for the year Alipay and WeChat Pay allow, cash for a month; seven days
    /// of no-questions returns (七天无理由退货); a supervisor above 500 yuan,
    /// above 200 yuan on a sale of 5000 yuan or more, for more than 1000 yuan
    /// from the drawer, and past 3000 yuan a cashier's day.
    fn default() -> Self {
        RefundPolicy {
            refund_window_days_card: 180,
            refund_window_days_wallet: 365,
            refund_window_days_cash: 30,
            no_questions_days: 7,
            approval_above_minor: 50_000,
            approval_above_share_bps: FULL_SHARE_BPS,
            large_sale_minor: 500_000,
            large_sale_approval_above_minor: 20_000,
            allowed_reasons: RefundReason::ALL.to_vec(),
            cash_refund_limit_minor: 100_000,
            cashier_daily_limit_minor: 300_000,
            other_cashier: OtherCashierRule::RequireApproval,
        }
    }
}

/// A policy field that cannot be right, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} {problem}")]
pub struct PolicyError {
    pub field: &'static str,
    pub problem: &'static str,
}

impl RefundPolicy {
    /// Checks the policy before it is stored or used, and names the first
    /// field that is wrong. `decide` stays total on any policy; this catches
    /// the mistakes a merchant would not mean.
    pub fn validate(&self) -> Result<(), PolicyError> {
        let windows = [
            ("refund_window_days_card", self.refund_window_days_card),
            ("refund_window_days_wallet", self.refund_window_days_wallet),
            ("refund_window_days_cash", self.refund_window_days_cash),
        ];
        for (field, days) in windows {
            // A zero window would refuse every refund of that kind: far more
            // likely a missing setting than a policy.
            if days == 0 || days > MAX_WINDOW_DAYS {
                return Err(PolicyError { field, problem: "must be 1 to 3650 days" });
            }
        }
        if self.no_questions_days > MAX_WINDOW_DAYS {
            return Err(PolicyError { field: "no_questions_days", problem: "must be 0 to 3650 days" });
        }
        let amounts = [
            ("approval_above_minor", self.approval_above_minor),
            ("large_sale_minor", self.large_sale_minor),
            ("large_sale_approval_above_minor", self.large_sale_approval_above_minor),
            ("cash_refund_limit_minor", self.cash_refund_limit_minor),
            ("cashier_daily_limit_minor", self.cashier_daily_limit_minor),
        ];
        for (field, minor) in amounts {
            if minor < 0 {
                return Err(PolicyError { field, problem: "must not be negative" });
            }
        }
        if self.approval_above_share_bps > FULL_SHARE_BPS {
            return Err(PolicyError {
                field: "approval_above_share_bps",
                problem: "must be at most 10000 basis points (100 %); 10000 turns the rule off",
            });
        }
        if self.allowed_reasons.is_empty() {
            return Err(PolicyError {
                field: "allowed_reasons",
                problem: "must name at least one reason, or no refund could ever be made",
            });
        }
        Ok(())
    }

    /// The refund window for how the sale was paid. Matched on the method
    /// itself so that a new kind of payment cannot go without a window.
    pub fn window_days(&self, method: &PaymentMethod) -> u32 {
        match method {
            PaymentMethod::Card { .. } => self.refund_window_days_card,
            PaymentMethod::Wallet { .. } => self.refund_window_days_wallet,
            PaymentMethod::Cash => self.refund_window_days_cash,
        }
    }

    /// The amount above which a refund of this sale needs a supervisor: the
    /// large-sale limit replaces the normal one only when it is stricter, so
    /// a large sale is never refunded more loosely than a small one.
    pub fn approval_limit_minor(&self, sale_minor: i64) -> i64 {
        if sale_minor >= self.large_sale_minor {
            self.approval_above_minor.min(self.large_sale_approval_above_minor)
        } else {
            self.approval_above_minor
        }
    }
}

/// What is known about the person doing the refund.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ActorFacts {
    /// The person doing the refund (a user id as text), if known.
    pub user: Option<String>,
    /// Refunds this person already made today (minor units), not counting this one.
    pub refunded_today_minor: i64,
}

/// One refund request, with everything the policy looks at.
#[derive(Debug, Clone, Copy)]
pub struct PolicyRequest<'a> {
    pub sale: &'a Sale,
    /// Who rang up the sale, if known (user id as text).
    pub sale_cashier: Option<&'a str>,
    /// Earlier refunds of the sale. No rule reads them yet: how much is left
    /// is `plan_refund`'s question. They are here so that a rule about a
    /// sale's refund history does not change every caller.
    pub priors: &'a [PriorRefund],
    /// The amount asked, in the sale's currency; positive (`plan_refund`
    /// refuses anything else before the policy is asked).
    pub amount_minor: i64,
    pub reason: RefundReason,
    pub actor: &'a ActorFacts,
    pub now: Timestamp,
}

/// One reason of a decision: a stable code and a sentence in Simplified Chinese and English, with the numbers that
/// matter filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyReason {
    /// One of [`RULE_CODES`].
    pub code: &'static str,
    /// What this reason alone asks for.
    pub outcome: Outcome,
    pub en: String,
    pub zh: String,
}

/// The policy's answer: the worst outcome of its reasons, and all of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub outcome: Outcome,
    /// Never empty: the rules that fired in the order of [`RULE_CODES`], or
    /// `within_policy` alone.
    pub reasons: Vec<PolicyReason>,
}

impl Decision {
    pub fn needs_approval(&self) -> bool {
        self.outcome == Outcome::RequiresApproval
    }

    pub fn is_rejected(&self) -> bool {
        self.outcome == Outcome::Reject
    }

    /// The codes of the reasons, in order: what the audit log keeps.
    pub fn codes(&self) -> Vec<&'static str> {
        self.reasons.iter().map(|r| r.code).collect()
    }
}

/// Decides a refund request under a policy. Every rule is checked, not just
/// until the first one fires, so a supervisor sees everything they approve.
pub fn decide(policy: &RefundPolicy, request: &PolicyRequest<'_>) -> Decision {
    let facts = Facts::of(request);
    let mut reasons: Vec<PolicyReason> = [
        outside_refund_window(policy, &facts),
        reason_not_allowed(policy, &facts),
        after_no_questions_window(policy, &facts),
        amount_over_limit(policy, &facts),
        share_over_limit(policy, &facts),
        cash_over_limit(policy, &facts),
        cashier_daily_limit(policy, &facts),
        not_original_cashier(policy, &facts),
    ]
    .into_iter()
    .flatten()
    .collect();
    if reasons.is_empty() {
        reasons.push(PolicyReason {
            code: codes::WITHIN_POLICY,
            outcome: Outcome::Approve,
            en: format!("The refund of {} is within the refund policy; no supervisor is needed.", facts.amount),
            zh: format!("退款金额 {} 符合退款政策，无需主管审批。", facts.amount),
        });
    }
    let outcome = reasons.iter().map(|r| r.outcome).max().unwrap_or(Outcome::Approve);
    Decision { outcome, reasons }
}

/// The request with the figures every rule needs worked out once.
struct Facts<'r, 'a> {
    request: &'r PolicyRequest<'a>,
    amount: Money,
    /// Time since capture; negative if the clocks disagree, which counts as
    /// inside every window.
    elapsed: SignedDuration,
}

impl<'r, 'a> Facts<'r, 'a> {
    fn of(request: &'r PolicyRequest<'a>) -> Self {
        Facts {
            request,
            amount: Money::new(request.amount_minor, request.sale.amount.currency),
            elapsed: request.now.duration_since(request.sale.captured_at),
        }
    }

    fn money(&self, minor: i64) -> Money {
        Money::new(minor, self.amount.currency)
    }

    /// Strictly more than `days` whole days of 86400 seconds since capture:
    /// the last second of the window is still inside it.
    fn older_than(&self, days: u32) -> bool {
        self.elapsed > SignedDuration::from_secs(i64::from(days) * SECONDS_PER_DAY)
    }
}

fn outside_refund_window(policy: &RefundPolicy, f: &Facts) -> Option<PolicyReason> {
    let method = &f.request.sale.payment_method;
    let days = policy.window_days(method);
    if !f.older_than(days) {
        return None;
    }
    let kind = method.kind();
    let captured = f.request.sale.captured_at;
    Some(PolicyReason {
        code: codes::OUTSIDE_REFUND_WINDOW,
        outcome: Outcome::Reject,
        en: format!(
            "The {kind} sale was captured more than {} ago ({captured}); \
             {kind} sales can be refunded only within {} of capture.",
            days_en(days),
            days_en(days)
        ),
        zh: format!(
            "该笔{}交易已超过 {days} 天（收款时间 {captured}），{}支付仅可在收款后 {days} 天内退款。",
            kind_zh(method),
            kind_zh(method)
        ),
    })
}

fn reason_not_allowed(policy: &RefundPolicy, f: &Facts) -> Option<PolicyReason> {
    let reason = f.request.reason;
    if policy.allowed_reasons.contains(&reason) {
        return None;
    }
    Some(PolicyReason {
        code: codes::REASON_NOT_ALLOWED,
        outcome: Outcome::Reject,
        en: format!("The refund policy does not allow refunds for the reason \"{reason}\"."),
        zh: format!("退款政策不允许以“{}”（{reason}）为由退款。", reason_zh(reason)),
    })
}

fn after_no_questions_window(policy: &RefundPolicy, f: &Facts) -> Option<PolicyReason> {
    let days = policy.no_questions_days;
    if f.request.reason != RefundReason::CustomerRequest || !f.older_than(days) {
        return None;
    }
    Some(PolicyReason {
        code: codes::AFTER_NO_QUESTIONS_WINDOW,
        outcome: Outcome::RequiresApproval,
        en: format!(
            "A change-of-mind refund (customer_request) more than {} after the sale needs a supervisor.",
            days_en(days)
        ),
        zh: format!("收款已超过 {days} 天，顾客无理由退款（customer_request）需主管审批。"),
    })
}

fn amount_over_limit(policy: &RefundPolicy, f: &Facts) -> Option<PolicyReason> {
    let sale_minor = f.request.sale.amount.minor;
    let limit_minor = policy.approval_limit_minor(sale_minor);
    if f.request.amount_minor <= limit_minor {
        return None;
    }
    let (amount, limit) = (f.amount, f.money(limit_minor));
    let (en, zh) = if limit_minor < policy.approval_above_minor {
        let large = f.money(policy.large_sale_minor);
        (
            format!(
                "The refund of {amount} is above the {limit} that a cashier may refund without a supervisor \
                 on a sale of {large} or more."
            ),
            format!("原交易金额达到 {large} 及以上，退款金额 {amount} 超过收银员无需主管审批的上限 {limit}。"),
        )
    } else {
        (
            format!("The refund of {amount} is above the {limit} that a cashier may refund without a supervisor."),
            format!("退款金额 {amount} 超过收银员无需主管审批的上限 {limit}。"),
        )
    };
    Some(PolicyReason { code: codes::AMOUNT_OVER_LIMIT, outcome: Outcome::RequiresApproval, en, zh })
}

fn share_over_limit(policy: &RefundPolicy, f: &Facts) -> Option<PolicyReason> {
    let bps = policy.approval_above_share_bps;
    if bps >= FULL_SHARE_BPS {
        return None;
    }
    // amount / sale > bps / 10000, cross-multiplied so no share is ever rounded.
    let sale_minor = f.request.sale.amount.minor;
    let over =
        i128::from(f.request.amount_minor) * i128::from(FULL_SHARE_BPS) > i128::from(bps) * i128::from(sale_minor);
    if !over {
        return None;
    }
    let (amount, sale, share) = (f.amount, f.money(sale_minor), percent(bps));
    Some(PolicyReason {
        code: codes::SHARE_OVER_LIMIT,
        outcome: Outcome::RequiresApproval,
        en: format!(
            "The refund of {amount} is more than {share} of the {sale} sale; \
             refunding that large a share needs a supervisor."
        ),
        zh: format!("退款金额 {amount} 超过原交易金额 {sale} 的 {share}，需主管审批。"),
    })
}

fn cash_over_limit(policy: &RefundPolicy, f: &Facts) -> Option<PolicyReason> {
    let is_cash = matches!(f.request.sale.payment_method, PaymentMethod::Cash);
    if !is_cash || f.request.amount_minor <= policy.cash_refund_limit_minor {
        return None;
    }
    let (amount, limit) = (f.amount, f.money(policy.cash_refund_limit_minor));
    Some(PolicyReason {
        code: codes::CASH_OVER_LIMIT,
        outcome: Outcome::RequiresApproval,
        en: format!("The cash refund of {amount} is above the {limit} that may leave the drawer without a supervisor."),
        zh: format!("现金退款金额 {amount} 超过无需主管审批即可从钱箱付出的上限 {limit}。"),
    })
}

fn cashier_daily_limit(policy: &RefundPolicy, f: &Facts) -> Option<PolicyReason> {
    let today = i128::from(f.request.actor.refunded_today_minor) + i128::from(f.request.amount_minor);
    if today <= i128::from(policy.cashier_daily_limit_minor) {
        return None;
    }
    // Only for the sentence: a total beyond i64 is not a real day's refunds.
    let today = f.money(i64::try_from(today).unwrap_or(i64::MAX));
    let (amount, limit) = (f.amount, f.money(policy.cashier_daily_limit_minor));
    Some(PolicyReason {
        code: codes::CASHIER_DAILY_LIMIT,
        outcome: Outcome::RequiresApproval,
        en: format!(
            "This refund of {amount} would bring today's refunds by this cashier to {today}, \
             above the {limit} a cashier may refund per day without a supervisor."
        ),
        zh: format!("本笔退款 {amount} 将使该收银员今日退款累计达到 {today}，超过无需主管审批的每日上限 {limit}。"),
    })
}

fn not_original_cashier(policy: &RefundPolicy, f: &Facts) -> Option<PolicyReason> {
    let (Some(actor), Some(cashier)) = (f.request.actor.user.as_deref(), f.request.sale_cashier) else {
        return None;
    };
    if actor == cashier {
        return None;
    }
    let (outcome, en_then, zh_then) = match policy.other_cashier {
        OtherCashierRule::Allow => return None,
        OtherCashierRule::RequireApproval => (Outcome::RequiresApproval, "a supervisor must approve it", "需主管审批"),
        OtherCashierRule::Reject => (Outcome::Reject, "only that cashier may refund it", "仅原收银员可办理退款"),
    };
    Some(PolicyReason {
        code: codes::NOT_ORIGINAL_CASHIER,
        outcome,
        en: format!("The refund is made by {actor}, not by {cashier} who rang up the sale; {en_then}."),
        zh: format!("退款操作人 {actor} 不是原交易收银员 {cashier}，{zh_then}。"),
    })
}

fn days_en(days: u32) -> String {
    if days == 1 { "1 day".to_owned() } else { format!("{days} days") }
}

fn kind_zh(method: &PaymentMethod) -> &'static str {
    match method {
        PaymentMethod::Card { .. } => "银行卡",
        PaymentMethod::Wallet { .. } => "移动支付",
        PaymentMethod::Cash => "现金",
    }
}

fn reason_zh(reason: RefundReason) -> &'static str {
    match reason {
        RefundReason::CustomerRequest => "顾客要求",
        RefundReason::Defective => "商品质量问题",
        RefundReason::WrongCharge => "收费错误",
        RefundReason::Duplicate => "重复收款",
        RefundReason::ServiceIssue => "服务问题",
        RefundReason::Fraud => "欺诈交易",
        RefundReason::Other => "其他原因",
    }
}

/// Basis points as a percentage for people, exactly: 5000 → `50%`,
/// 2550 → `25.5%`, 5 → `0.05%`.
fn percent(bps: u32) -> String {
    let (whole, hundredths) = (bps / 100, bps % 100);
    match hundredths {
        0 => format!("{whole}%"),
        h if h % 10 == 0 => format!("{whole}.{}%", h / 10),
        h => format!("{whole}.{h:02}%"),
    }
}

#[cfg(test)]
mod tests;
