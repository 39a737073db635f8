//! Detectors of likely wrong charges (错收) and rules against refund abuse,
//! pure over slices of facts the caller gathered.
//!
//! Wrong charges: the same card (or wallet account) charged the same amount
//! minutes apart ([`duplicate_charges`]), an amount far outside the store's
//! usual, typically an extra zero ([`amount_outliers`]), and a charge with
//! no order behind it ([`missing_order`]). Each [`Finding`] carries its
//! evidence, a suggested cause and a sentence in Chinese and English, ready
//! to open a correction case.
//!
//! Refund abuse: [`evaluate_abuse`] runs the rules of [`AbuseRules`] over a
//! refund request and its history, each raising an alert or holding the
//! refund for a supervisor.
//!
//! Cards are known here only by a fingerprint the caller computes with a
//! keyed HMAC: an opaque string, never a card number.

use crate::ids::{RefundId, SaleId, StoreId};
use crate::money::Money;
use crate::sale::{PaymentMethod, Sale, wire_enum};
use jiff::civil::Time;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use std::collections::HashMap;

wire_enum!(
    /// What a detector found.
    FindingKind {
        DuplicateCharge = "duplicate_charge", ExtraZero = "extra_zero", AmountOutlier = "amount_outlier",
        MissingOrder = "missing_order",
    }
);

wire_enum!(
    /// The likely cause of a wrong charge, as a correction case records it.
    CorrectionCause {
        OperatorError = "operator_error", SystemFault = "system_fault", TransmissionError = "transmission_error",
        Other = "other",
    }
);

/// A sale as the detectors see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaleFacts {
    pub sale_id: SaleId,
    pub store_id: StoreId,
    pub terminal_id: String,
    pub amount: Money,
    pub captured_at: Timestamp,
    /// The card's keyed fingerprint (HMAC), for card sales.
    pub card_fingerprint: Option<String>,
    /// The wallet's payer account id (Alipay / WeChat Pay buyer id), for
    /// wallet sales, when the acquirer gives it.
    pub wallet_account: Option<String>,
    /// The amount of the till's order for this sale, when the till has one
    /// and the amount was keyed on a separate card terminal (分离式 POS):
    /// it settles whether a large amount is an extra zero.
    pub order_amount: Option<Money>,
}

impl SaleFacts {
    /// The facts of a stored sale, with the card fingerprint or wallet
    /// account the caller knows for it (and no order amount).
    pub fn of(sale: &Sale, card_fingerprint: Option<String>, wallet_account: Option<String>) -> SaleFacts {
        let (card_fingerprint, wallet_account) = match sale.payment_method {
            PaymentMethod::Card { .. } => (card_fingerprint, None),
            PaymentMethod::Wallet { .. } => (None, wallet_account),
            PaymentMethod::Cash => (None, None),
        };
        SaleFacts {
            sale_id: sale.id,
            store_id: sale.store_id,
            terminal_id: sale.terminal_id.clone(),
            amount: sale.amount,
            captured_at: sale.captured_at,
            card_fingerprint,
            wallet_account,
            order_amount: None,
        }
    }
}

/// What a finding rests on.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FindingEvidence {
    /// The sales concerned; the one suspected to be wrong is last.
    pub sale_ids: Vec<SaleId>,
    /// Their amounts, in the same order.
    pub amounts: Vec<Money>,
    /// For duplicates: time between the two charges, whole minutes and seconds.
    pub minutes_apart: Option<i64>,
    pub seconds_apart: Option<i64>,
    /// For amounts: the store's median and 99th percentile sale.
    pub store_median: Option<Money>,
    pub store_p99: Option<Money>,
    /// For an extra zero: 10 or 100, and the amount probably meant.
    pub factor: Option<u32>,
    pub intended: Option<Money>,
}

/// A likely wrong charge, ready to open a correction case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub kind: FindingKind,
    pub evidence: FindingEvidence,
    pub cause: CorrectionCause,
    pub zh: String,
    pub en: String,
}

// ---------------------------------------------------------------------------
// Duplicate charges

/// Default window for [`duplicate_charges`]: a customer charged twice is
/// charged within minutes, while the same customer buying the same thing
/// again usually comes back later.
pub const DEFAULT_DUPLICATE_WINDOW_MINUTES: u32 = 10;

/// Up to this many seconds apart on the same terminal, a duplicate looks
/// like a resend after a timeout that had in fact gone through (the
/// terminal's answer timeout is about a minute), not a second swipe.
const RESEND_SECONDS: i64 = 180;

#[derive(Clone, PartialEq, Eq, Hash)]
enum Payer<'a> {
    Card(&'a str),
    Wallet(&'a str),
}

/// Charges of the same card fingerprint (or, for wallets, the same payer
/// account) for exactly the same amount within `window_minutes` of each
/// other. In a run of several, each charge is paired with the one before
/// it, so every pair is reported once and every extra charge once. Cash
/// sales and sales without a fingerprint or account are never paired.
/// Findings are in the order of the later charge.
pub fn duplicate_charges(sales: &[SaleFacts], window_minutes: u32) -> Vec<Finding> {
    let mut groups: HashMap<(Payer<'_>, Money), Vec<&SaleFacts>> = HashMap::new();
    for sale in sales {
        let payer = match (&sale.card_fingerprint, &sale.wallet_account) {
            (Some(fp), _) if !fp.is_empty() => Payer::Card(fp),
            (_, Some(account)) if !account.is_empty() => Payer::Wallet(account),
            _ => continue,
        };
        groups.entry((payer, sale.amount)).or_default().push(sale);
    }
    let window = i64::from(window_minutes) * 60;
    let mut pairs: Vec<(&SaleFacts, &SaleFacts, i64)> = Vec::new();
    for group in groups.values_mut() {
        group.sort_by_key(|s| (s.captured_at, s.sale_id));
        for w in group.windows(2) {
            let (first, second) = (w[0], w[1]);
            let apart = second.captured_at.duration_since(first.captured_at).as_secs();
            if first.sale_id != second.sale_id && apart <= window {
                pairs.push((first, second, apart));
            }
        }
    }
    pairs.sort_by_key(|(_, second, _)| (second.captured_at, second.sale_id));
    pairs.into_iter().map(|(first, second, apart)| duplicate_finding(first, second, apart)).collect()
}

fn duplicate_finding(first: &SaleFacts, second: &SaleFacts, apart: i64) -> Finding {
    let same_terminal = first.store_id == second.store_id && first.terminal_id == second.terminal_id;
    let cause = if same_terminal && apart <= RESEND_SECONDS {
        CorrectionCause::TransmissionError
    } else if first.store_id == second.store_id {
        CorrectionCause::OperatorError
    } else {
        CorrectionCause::Other
    };
    let (minutes, seconds) = (apart / 60, apart % 60);
    let by_card = first.card_fingerprint.as_deref().is_some_and(|fp| !fp.is_empty());
    let (payer_en, payer_zh) = if by_card { ("card", "银行卡") } else { ("wallet account", "支付账户") };
    let (where_en, where_zh) = if same_terminal {
        (format!("on terminal {}", second.terminal_id), format!("在终端 {} 上", second.terminal_id))
    } else if first.store_id == second.store_id {
        (
            format!("on terminals {} and {}", first.terminal_id, second.terminal_id),
            format!("在终端 {} 和 {} 上", first.terminal_id, second.terminal_id),
        )
    } else {
        ("in two stores".to_owned(), "在两家门店".to_owned())
    };
    let amount = second.amount;
    Finding {
        kind: FindingKind::DuplicateCharge,
        evidence: FindingEvidence {
            sale_ids: vec![first.sale_id, second.sale_id],
            amounts: vec![first.amount, second.amount],
            minutes_apart: Some(minutes),
            seconds_apart: Some(apart),
            ..FindingEvidence::default()
        },
        cause,
        zh: format!(
            "同一{payer_zh}{where_zh}两次支付相同金额 {amount}，相隔 {minutes} 分 {seconds} 秒\
             （交易 {} 与 {}），疑似重复扣款。",
            first.sale_id, second.sale_id
        ),
        en: format!(
            "The same {payer_en} paid the same {amount} twice {where_en}, {minutes} min {seconds} s apart \
             (sales {} and {}): likely a duplicate charge.",
            first.sale_id, second.sale_id
        ),
    }
}

// ---------------------------------------------------------------------------
// Amounts far off the store's usual

/// When an amount is far enough off a store's usual to be a finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutlierRules {
    /// With fewer earlier sales than this, the store's usual is not known
    /// and nothing is found.
    pub min_history: usize,
    /// An extra zero is suspected only at or above this many times the
    /// store's 99th percentile…
    pub extra_zero_p99_multiple: u32,
    /// …and when the amount divided by 10 (or 100) is an amount the store
    /// usually sees: between these percentiles, inclusive.
    pub usual_low_percentile: u32,
    pub usual_high_percentile: u32,
    /// Any amount at or above this many times the 99th percentile is an
    /// outlier even without the pattern of an extra zero. 0 turns it off.
    pub far_p99_multiple: u32,
}

impl Default for OutlierRules {
    /// Measured on generated days of a café, a convenience store and a
    /// restaurant with four weeks of history each (see the tests): an extra
    /// zero on any sale at or above the store's median is found; the false
    /// alarms are legitimate bulk orders and round prepaid-card sales, which
    /// no rule on the amount alone can tell from an extra zero (the till's
    /// order amount can: [`SaleFacts::order_amount`]). A multiple of 3
    /// finds fewer (most of the sales above the median) for about 10 % fewer
    /// alarms.
    fn default() -> Self {
        OutlierRules {
            min_history: 100,
            extra_zero_p99_multiple: 2,
            usual_low_percentile: 1,
            usual_high_percentile: 99,
            far_p99_multiple: 10,
        }
    }
}

/// A store's earlier sale amounts, sorted once to answer percentiles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreAmounts {
    sorted: Vec<i64>,
}

impl StoreAmounts {
    /// From earlier sale amounts in minor units of one currency; amounts
    /// that are not positive are left out.
    pub fn of(history: &[i64]) -> StoreAmounts {
        let mut sorted: Vec<i64> = history.iter().copied().filter(|a| *a > 0).collect();
        sorted.sort_unstable();
        StoreAmounts { sorted }
    }

    pub fn len(&self) -> usize {
        self.sorted.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sorted.is_empty()
    }

    /// Nearest-rank percentile (`p` from 1 to 100): the smallest amount with
    /// at least p % of the amounts at or below it. Integers only.
    pub fn percentile(&self, p: u32) -> Option<i64> {
        let n = self.sorted.len();
        if n == 0 {
            return None;
        }
        let p = p.clamp(1, 100) as usize;
        let rank = (p * n).div_ceil(100).max(1);
        Some(self.sorted[rank - 1])
    }

    pub fn median(&self) -> Option<i64> {
        self.percentile(50)
    }
}

/// An amount far outside the store's usual, from the store's earlier sale
/// amounts (the sale itself not among them). See [`amount_outlier`].
pub fn amount_outliers(store_history: &[i64], sale: &SaleFacts, rules: &OutlierRules) -> Option<Finding> {
    amount_outlier(&StoreAmounts::of(store_history), sale, rules)
}

/// The "extra zero" (多输了一个 0). When the till's order amount is known,
/// it decides: the sale is exactly 10 or 100 times the order, or it is no
/// extra zero. Otherwise, from the store's history: the amount is at least
/// `extra_zero_p99_multiple` times the store's 99th percentile, and exactly
/// 10 (or 100) times an amount the store
/// usually sees. Failing that, an amount at least `far_p99_multiple` times
/// the 99th percentile is an outlier of unknown cause. Integer arithmetic
/// throughout.
pub fn amount_outlier(store: &StoreAmounts, sale: &SaleFacts, rules: &OutlierRules) -> Option<Finding> {
    if let Some(order) = sale.order_amount.filter(|o| o.currency == sale.amount.currency && o.minor > 0) {
        return keyed_over_order(sale, order);
    }
    if store.len() < rules.min_history.max(1) {
        return None;
    }
    let (median, p99) = (store.median()?, store.percentile(99)?);
    let low = store.percentile(rules.usual_low_percentile)?;
    let high = store.percentile(rules.usual_high_percentile)?;
    let amount = sale.amount.minor;
    let at_least = |multiple: u32| i128::from(amount) >= i128::from(multiple) * i128::from(p99);
    let money = |minor: i64| Money::new(minor, sale.amount.currency);
    let evidence = |factor: Option<u32>, intended: Option<i64>| FindingEvidence {
        sale_ids: vec![sale.sale_id],
        amounts: vec![sale.amount],
        store_median: Some(money(median)),
        store_p99: Some(money(p99)),
        factor,
        intended: intended.map(money),
        ..FindingEvidence::default()
    };
    if rules.extra_zero_p99_multiple > 0 && at_least(rules.extra_zero_p99_multiple) {
        let factor = [10i64, 100].into_iter().find(|f| amount % f == 0 && (low..=high).contains(&(amount / f)));
        if let Some(factor) = factor {
            let (intended, k) = (amount / factor, rules.extra_zero_p99_multiple);
            let (sale_amount, intended_m, p99_m, median_m) = (sale.amount, money(intended), money(p99), money(median));
            let zeros_zh = if factor == 10 { "一个 0" } else { "两个 0" };
            let zeros_en = if factor == 10 { "an extra zero" } else { "two extra zeros" };
            return Some(Finding {
                kind: FindingKind::ExtraZero,
                evidence: evidence(Some(factor as u32), Some(intended)),
                cause: CorrectionCause::OperatorError,
                zh: format!(
                    "交易 {} 金额 {sale_amount} 恰为 {intended_m} 的 {factor} 倍，且达到本门店第 99 百分位金额 \
                     {p99_m} 的 {k} 倍以上（门店中位数 {median_m}），疑似多输入了{zeros_zh}。",
                    sale.sale_id
                ),
                en: format!(
                    "Sale {} of {sale_amount} is exactly {factor} times {intended_m} and at least {k} times this \
                     store's 99th percentile of {p99_m} (median {median_m}): {zeros_en} may have been keyed.",
                    sale.sale_id
                ),
            });
        }
    }
    if rules.far_p99_multiple > 0 && at_least(rules.far_p99_multiple) {
        let (sale_amount, p99_m, median_m, k) = (sale.amount, money(p99), money(median), rules.far_p99_multiple);
        return Some(Finding {
            kind: FindingKind::AmountOutlier,
            evidence: evidence(None, None),
            cause: CorrectionCause::Other,
            zh: format!(
                "交易 {} 金额 {sale_amount} 达到本门店第 99 百分位金额 {p99_m} 的 {k} 倍以上\
                 （门店中位数 {median_m}），远超该门店的常见金额。",
                sale.sale_id
            ),
            en: format!(
                "Sale {} of {sale_amount} is at least {k} times this store's 99th percentile of {p99_m} \
                 (median {median_m}), far above what the store usually takes.",
                sale.sale_id
            ),
        });
    }
    None
}

/// The amount keyed on the terminal is exactly 10 or 100 times the till's order.
fn keyed_over_order(sale: &SaleFacts, order: Money) -> Option<Finding> {
    let amount = sale.amount;
    let factor = [10i64, 100].into_iter().find(|f| order.minor.checked_mul(*f) == Some(amount.minor))?;
    let (zeros_zh, zeros_en) =
        if factor == 10 { ("一个 0", "an extra zero") } else { ("两个 0", "two extra zeros") };
    Some(Finding {
        kind: FindingKind::ExtraZero,
        evidence: FindingEvidence {
            sale_ids: vec![sale.sale_id],
            amounts: vec![amount],
            factor: Some(factor as u32),
            intended: Some(order),
            ..FindingEvidence::default()
        },
        cause: CorrectionCause::OperatorError,
        zh: format!(
            "交易 {} 收款 {amount}，恰为收银系统订单金额 {order} 的 {factor} 倍，在终端上多输入了{zeros_zh}。",
            sale.sale_id
        ),
        en: format!(
            "Sale {} took {amount}, exactly {factor} times its till order of {order}: {zeros_en} was keyed on \
             the terminal.",
            sale.sale_id
        ),
    })
}

// ---------------------------------------------------------------------------
// Charges with no order

/// A charge with no order behind it, where the merchant's till records an
/// order for every sale (`orders_expected`) and none matches this one.
/// Suggested cause: a system fault (the till failed after the payment, or
/// the terminal was used standalone with the amount keyed by hand).
pub fn missing_order(sale: &SaleFacts, orders_expected: bool, has_matching_order: bool) -> Option<Finding> {
    if !orders_expected || has_matching_order {
        return None;
    }
    let amount = sale.amount;
    Some(Finding {
        kind: FindingKind::MissingOrder,
        evidence: FindingEvidence { sale_ids: vec![sale.sale_id], amounts: vec![amount], ..FindingEvidence::default() },
        cause: CorrectionCause::SystemFault,
        zh: format!(
            "交易 {} 已收款 {amount}（终端 {}），但收银系统中没有对应的订单，可能是收银系统在收款后出错，\
             或在终端上手工输入了金额。",
            sale.sale_id, sale.terminal_id
        ),
        en: format!(
            "Sale {} took {amount} on terminal {} but the till has no matching order: the till may have failed \
             after the payment, or the amount was keyed on the terminal by hand.",
            sale.sale_id, sale.terminal_id
        ),
    })
}

// ---------------------------------------------------------------------------
// Refund abuse

wire_enum!(
    /// What an abuse rule asks for: tell risk staff, or stop the refund until
    /// a supervisor approves it.
    AbuseAction { Alert = "alert", HoldForApproval = "hold_for_approval" }
);

/// Stable codes of the abuse rules. Part of the API.
pub mod codes {
    pub const REFUND_TO_OTHER_CARD: &str = "refund_to_other_card";
    pub const JUST_UNDER_LIMIT: &str = "just_under_limit";
    pub const CASHIER_RATE_OUTLIER: &str = "cashier_rate_outlier";
    pub const QUICK_REFUND_BY_SAME_CASHIER: &str = "quick_refund_by_same_cashier";
    pub const OUTSIDE_OPENING_HOURS: &str = "outside_opening_hours";
}

/// Every abuse code, in the order [`evaluate_abuse`] lists signals.
pub const ABUSE_CODES: &[&str] = &[
    codes::REFUND_TO_OTHER_CARD,
    codes::JUST_UNDER_LIMIT,
    codes::CASHIER_RATE_OUTLIER,
    codes::QUICK_REFUND_BY_SAME_CASHIER,
    codes::OUTSIDE_OPENING_HOURS,
];

/// Refunds just under the supervisor limit, again and again, by one person.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JustUnderLimitRule {
    /// Fires at this many such refunds (this one included)…
    pub min_count: u32,
    /// …within this many days (86400-second days back from the request)…
    pub days: u32,
    /// …each at most this percentage below its approval limit (and not above it).
    pub within_percent: u32,
    pub action: AbuseAction,
}

/// One person refunding far more often than the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CashierRateRule {
    /// Fires when the person's refunds per sale are more than this many
    /// times the peers' median…
    pub multiple_of_median: u32,
    /// …and the person made at least this many refunds in the period…
    pub min_refunds: u64,
    /// …and at least this many peers (with sales) to compare with.
    pub min_peers: usize,
    pub action: AbuseAction,
}

/// A refund soon after the sale, by the cashier who rang it up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuickRefundRule {
    /// At most this many minutes after the sale (inclusive).
    pub minutes: u32,
    pub action: AbuseAction,
}

/// Refunds outside the store's opening hours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpeningHoursRule {
    /// Local opening time (inclusive) and closing time (exclusive); a close
    /// before the open means the store is open over midnight, and the same
    /// time twice means always open.
    pub open: Time,
    pub close: Time,
    pub time_zone: TimeZone,
    pub action: AbuseAction,
}

/// The merchant's refund-abuse rules; `None` turns a rule off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AbuseRules {
    /// Money going to a card other than the one that paid.
    pub refund_to_other_card: Option<AbuseAction>,
    pub just_under_limit: Option<JustUnderLimitRule>,
    pub cashier_rate_outlier: Option<CashierRateRule>,
    pub quick_refund_by_same_cashier: Option<QuickRefundRule>,
    pub outside_opening_hours: Option<OpeningHoursRule>,
}

impl Default for AbuseRules {
    /// Money to another card, or a refund at night, waits for a supervisor;
    /// the patterns that need a person to judge them (three refunds within
    /// 10 % under the limit in 7 days; a refund rate over three times the
    /// peers' median with at least 5 refunds and 3 peers; a refund within
    /// 30 minutes of the sale by its own cashier) raise alerts. Opening
    /// hours differ from store to store: off until set.
    fn default() -> Self {
        AbuseRules {
            refund_to_other_card: Some(AbuseAction::HoldForApproval),
            just_under_limit: Some(JustUnderLimitRule {
                min_count: 3,
                days: 7,
                within_percent: 10,
                action: AbuseAction::Alert,
            }),
            cashier_rate_outlier: Some(CashierRateRule {
                multiple_of_median: 3,
                min_refunds: 5,
                min_peers: 3,
                action: AbuseAction::Alert,
            }),
            quick_refund_by_same_cashier: Some(QuickRefundRule { minutes: 30, action: AbuseAction::Alert }),
            outside_opening_hours: None,
        }
    }
}

/// The refund being asked for, with the facts of its sale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundAttempt {
    /// `None` while the request is not stored yet.
    pub refund_id: Option<RefundId>,
    pub sale_id: SaleId,
    pub amount: Money,
    /// The person asking (user id).
    pub requested_by: String,
    pub requested_at: Timestamp,
    /// The amount above which this refund needs a supervisor
    /// (`RefundPolicy::approval_limit_minor` of its sale).
    pub approval_limit_minor: i64,
    /// Fingerprint of the card the money would go to, when it goes to a card.
    pub refund_card_fingerprint: Option<String>,
    /// Fingerprint of the card that paid, for card sales.
    pub sale_card_fingerprint: Option<String>,
    /// Who rang up the sale (user id), if known.
    pub sale_cashier: Option<String>,
    pub sale_captured_at: Timestamp,
}

/// An earlier refund request (any outcome: an attempt counts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PastRefund {
    pub refund_id: RefundId,
    pub sale_id: SaleId,
    pub amount: Money,
    pub requested_by: String,
    pub requested_at: Timestamp,
    /// The approval limit that applied to it.
    pub approval_limit_minor: i64,
}

/// One person's sales and refunds over the period the caller compares
/// (for example the store's last 30 days).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CashierActivity {
    pub cashier: String,
    pub sales_count: u64,
    pub refunds_count: u64,
}

/// Everything the abuse rules look at.
#[derive(Debug, Clone, Copy)]
pub struct AbuseFacts<'a> {
    pub request: &'a RefundAttempt,
    /// Earlier refund requests of the merchant or store, over at least the
    /// longest window a rule looks back (the request itself, if listed, is
    /// skipped).
    pub history: &'a [PastRefund],
    /// Each person's activity over the comparison period, the requester's
    /// included.
    pub cashiers: &'a [CashierActivity],
}

/// What a named figure of the evidence means is given by its name.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AbuseEvidence {
    pub sale_ids: Vec<SaleId>,
    /// Earlier refunds that make up the pattern.
    pub refund_ids: Vec<RefundId>,
    /// Named figures, e.g. `("refunds_in_window", 3)`, `("approval_limit_minor", 50000)`.
    pub figures: Vec<(&'static str, i64)>,
}

/// A rule that fired on a refund request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AbuseSignal {
    /// One of [`ABUSE_CODES`].
    pub code: &'static str,
    pub action: AbuseAction,
    pub zh: String,
    pub en: String,
    pub evidence: AbuseEvidence,
}

/// Runs every rule that is on, in the order of [`ABUSE_CODES`].
pub fn evaluate_abuse(rules: &AbuseRules, facts: &AbuseFacts<'_>) -> Vec<AbuseSignal> {
    [
        refund_to_other_card(rules, facts),
        just_under_limit(rules, facts),
        cashier_rate_outlier(rules, facts),
        quick_refund_by_same_cashier(rules, facts),
        outside_opening_hours(rules, facts),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// The money would go to a card other than the one that paid, or to a card
/// when no card paid.
pub fn refund_to_other_card(rules: &AbuseRules, facts: &AbuseFacts<'_>) -> Option<AbuseSignal> {
    let action = rules.refund_to_other_card?;
    let r = facts.request;
    let to = r.refund_card_fingerprint.as_deref().filter(|fp| !fp.is_empty())?;
    let (zh, en) = match r.sale_card_fingerprint.as_deref() {
        Some(from) if from == to => return None,
        Some(_) => (
            format!("退款 {} 将退至与原交易 {} 不同的银行卡。", r.amount, r.sale_id),
            format!(
                "The refund of {} would go to a different card than the one that paid sale {}.",
                r.amount, r.sale_id
            ),
        ),
        None => (
            format!("原交易 {} 并非银行卡支付，退款 {} 却将退至一张银行卡。", r.sale_id, r.amount),
            format!("Sale {} was not paid by card, yet the refund of {} would go to a card.", r.sale_id, r.amount),
        ),
    };
    Some(AbuseSignal {
        code: codes::REFUND_TO_OTHER_CARD,
        action,
        zh,
        en,
        evidence: AbuseEvidence { sale_ids: vec![r.sale_id], ..AbuseEvidence::default() },
    })
}

fn just_under(amount_minor: i64, limit_minor: i64, within_percent: u32) -> bool {
    let floor = i128::from(limit_minor) * i128::from(100u32.saturating_sub(within_percent));
    amount_minor <= limit_minor && i128::from(amount_minor) * 100 >= floor
}

/// This refund is at most `within_percent` below its approval limit, and the
/// same person made at least `min_count` such refunds (this one included)
/// in the last `days` days.
pub fn just_under_limit(rules: &AbuseRules, facts: &AbuseFacts<'_>) -> Option<AbuseSignal> {
    let rule = rules.just_under_limit?;
    let r = facts.request;
    if !just_under(r.amount.minor, r.approval_limit_minor, rule.within_percent) {
        return None;
    }
    let since =
        r.requested_at.checked_sub(SignedDuration::from_secs(i64::from(rule.days) * 86_400)).unwrap_or(Timestamp::MIN);
    let earlier: Vec<&PastRefund> = facts
        .history
        .iter()
        .filter(|p| Some(p.refund_id) != r.refund_id)
        .filter(|p| p.requested_by == r.requested_by && p.amount.currency == r.amount.currency)
        .filter(|p| p.requested_at >= since && p.requested_at <= r.requested_at)
        .filter(|p| just_under(p.amount.minor, p.approval_limit_minor, rule.within_percent))
        .collect();
    let count = earlier.len() + 1;
    if count < rule.min_count as usize {
        return None;
    }
    let (who, days, pct, limit) =
        (&r.requested_by, rule.days, rule.within_percent, Money::new(r.approval_limit_minor, r.amount.currency));
    Some(AbuseSignal {
        code: codes::JUST_UNDER_LIMIT,
        action: rule.action,
        zh: format!(
            "{who} 在 {days} 天内已有 {count} 笔退款（含本笔 {}）金额在主管审批上限以下 {pct}% 以内\
             （本笔上限 {limit}），疑似拆分或压线退款以规避审批。",
            r.amount
        ),
        en: format!(
            "{who} made {count} refunds in {days} days (this one of {} included) each within {pct}% under \
             the supervisor limit (here {limit}): refunds may be kept just under the limit to avoid approval.",
            r.amount
        ),
        evidence: AbuseEvidence {
            sale_ids: std::iter::once(r.sale_id).chain(earlier.iter().map(|p| p.sale_id)).collect(),
            refund_ids: earlier.iter().map(|p| p.refund_id).collect(),
            figures: vec![
                ("refunds_in_window", count as i64),
                ("window_days", i64::from(days)),
                ("approval_limit_minor", r.approval_limit_minor),
            ],
        },
    })
}

/// Refunds per sale of one person, compared as fractions.
fn rate_cmp(a: &CashierActivity, b: &CashierActivity) -> std::cmp::Ordering {
    (u128::from(a.refunds_count) * u128::from(b.sales_count))
        .cmp(&(u128::from(b.refunds_count) * u128::from(a.sales_count)))
}

fn rate_bps(a: &CashierActivity) -> i64 {
    if a.sales_count == 0 {
        return i64::MAX;
    }
    i64::try_from(u128::from(a.refunds_count) * 10_000 / u128::from(a.sales_count)).unwrap_or(i64::MAX)
}

/// The requester's refunds per sale are more than `multiple_of_median`
/// times the median of the other people's (those with sales; of an even
/// number, the higher middle one), with at least `min_refunds` refunds. A
/// person with refunds but no sales (a service desk) has no rate and is
/// above any multiple: the alert tells risk staff to look, not that
/// something is wrong.
pub fn cashier_rate_outlier(rules: &AbuseRules, facts: &AbuseFacts<'_>) -> Option<AbuseSignal> {
    let rule = rules.cashier_rate_outlier?;
    let who = &facts.request.requested_by;
    let me = facts.cashiers.iter().find(|c| &c.cashier == who)?;
    if me.refunds_count < rule.min_refunds.max(1) {
        return None;
    }
    let mut peers: Vec<&CashierActivity> =
        facts.cashiers.iter().filter(|c| &c.cashier != who && c.sales_count > 0).collect();
    if peers.len() < rule.min_peers.max(1) {
        return None;
    }
    peers.sort_by(|a, b| rate_cmp(a, b));
    let median = peers[peers.len() / 2];
    // me.refunds / me.sales > k × median.refunds / median.sales
    let above = u128::from(me.refunds_count) * u128::from(median.sales_count)
        > u128::from(rule.multiple_of_median) * u128::from(median.refunds_count) * u128::from(me.sales_count);
    if !above {
        return None;
    }
    let (mine, theirs, k) = (bps_text(rate_bps(me)), bps_text(rate_bps(median)), rule.multiple_of_median);
    let (refunds, sales, n) = (me.refunds_count, me.sales_count, peers.len());
    Some(AbuseSignal {
        code: codes::CASHIER_RATE_OUTLIER,
        action: rule.action,
        zh: format!(
            "{who} 的退款率为 {mine}（{refunds} 笔退款 / {sales} 笔交易），超过其他 {n} 名收银员中位数 {theirs} 的 {k} 倍。"
        ),
        en: format!(
            "{who} refunds {mine} of sales ({refunds} refunds on {sales} sales), more than {k} times the median \
             of {theirs} among {n} other cashiers."
        ),
        evidence: AbuseEvidence {
            sale_ids: vec![facts.request.sale_id],
            refund_ids: vec![],
            figures: vec![
                ("refunds", refunds as i64),
                ("sales", sales as i64),
                ("rate_bps", rate_bps(me)),
                ("peer_median_rate_bps", rate_bps(median)),
                ("peers", n as i64),
            ],
        },
    })
}

fn bps_text(bps: i64) -> String {
    if bps == i64::MAX {
        return "n/a".to_owned();
    }
    let (whole, hundredths) = (bps / 100, bps % 100);
    if hundredths == 0 { format!("{whole}%") } else { format!("{whole}.{hundredths:02}%") }
}

/// The cashier who rang up the sale refunds it within `minutes` of it. A
/// clock behind the sale counts as no time at all.
pub fn quick_refund_by_same_cashier(rules: &AbuseRules, facts: &AbuseFacts<'_>) -> Option<AbuseSignal> {
    let rule = rules.quick_refund_by_same_cashier?;
    let r = facts.request;
    if r.sale_cashier.as_deref() != Some(r.requested_by.as_str()) {
        return None;
    }
    let after = r.requested_at.duration_since(r.sale_captured_at).as_secs().max(0);
    if after > i64::from(rule.minutes) * 60 {
        return None;
    }
    let (who, minutes, seconds, limit) = (&r.requested_by, after / 60, after % 60, rule.minutes);
    Some(AbuseSignal {
        code: codes::QUICK_REFUND_BY_SAME_CASHIER,
        action: rule.action,
        zh: format!(
            "收银员 {who} 在自己收款后 {minutes} 分 {seconds} 秒即为交易 {} 办理退款 {}（规则：{limit} 分钟内）。",
            r.sale_id, r.amount
        ),
        en: format!(
            "Cashier {who} refunds {} of sale {} {minutes} min {seconds} s after ringing it up \
             (the rule looks at {limit} minutes).",
            r.amount, r.sale_id
        ),
        evidence: AbuseEvidence {
            sale_ids: vec![r.sale_id],
            refund_ids: vec![],
            figures: vec![("seconds_after_sale", after)],
        },
    })
}

/// The refund is asked for outside the store's opening hours, in the
/// store's time zone.
pub fn outside_opening_hours(rules: &AbuseRules, facts: &AbuseFacts<'_>) -> Option<AbuseSignal> {
    let rule = rules.outside_opening_hours.as_ref()?;
    let r = facts.request;
    let local = rule.time_zone.to_datetime(r.requested_at);
    let t = local.time();
    let open = match rule.open.cmp(&rule.close) {
        std::cmp::Ordering::Less => rule.open <= t && t < rule.close,
        std::cmp::Ordering::Greater => t >= rule.open || t < rule.close,
        std::cmp::Ordering::Equal => true,
    };
    if open {
        return None;
    }
    let (at, from, to) = (
        local.strftime("%Y-%m-%d %H:%M:%S").to_string(),
        rule.open.strftime("%H:%M").to_string(),
        rule.close.strftime("%H:%M").to_string(),
    );
    Some(AbuseSignal {
        code: codes::OUTSIDE_OPENING_HOURS,
        action: rule.action,
        zh: format!("退款 {} 的申请时间为当地 {at}，不在门店营业时间 {from}–{to} 内。", r.amount),
        en: format!("The refund of {} is asked for at {at} local time, outside opening hours {from}-{to}.", r.amount),
        evidence: AbuseEvidence {
            sale_ids: vec![r.sale_id],
            refund_ids: vec![],
            figures: vec![(
                "local_seconds_of_day",
                i64::from(t.hour()) * 3600 + i64::from(t.minute()) * 60 + i64::from(t.second()),
            )],
        },
    })
}

#[cfg(test)]
mod tests;
