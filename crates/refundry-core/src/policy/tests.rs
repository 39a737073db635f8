use super::*;
use crate::card::{First6, Last4};
use crate::ids::{MerchantId, SaleId, StoreId};
use crate::money::Currency;
use crate::sale::{CardBrand, EntryMode, Wallet};
use proptest::prelude::*;

const DAY: i64 = 86_400;

fn captured() -> Timestamp {
    "2025-03-01T02:00:00Z".parse().unwrap()
}

fn card() -> PaymentMethod {
    PaymentMethod::Card {
        brand: CardBrand::UnionPay,
        first6: First6::parse("622202").unwrap(),
        last4: Last4::parse("1234").unwrap(),
        entry_mode: EntryMode::Chip,
    }
}

fn wallet() -> PaymentMethod {
    PaymentMethod::Wallet { wallet: Wallet::Alipay }
}

fn sale(method: PaymentMethod, amount: i64) -> Sale {
    Sale {
        id: SaleId::generate(),
        merchant_id: MerchantId::generate(),
        store_id: StoreId::generate(),
        terminal_id: "T1".into(),
        amount: Money::new(amount, Currency::CNY),
        payment_method: method,
        voucher_no: Some("000123".into()),
        rrn: Some("123456789012".into()),
        auth_code: Some("A1B2C3".into()),
        batch_no: Some("000001".into()),
        captured_at: captured(),
        created_at: captured(),
        items: vec![],
        cashier: None,
    }
}

/// A request with everything that a test does not set made harmless: the
/// original cashier, nothing refunded today, a defective item, an hour
/// after the sale.
struct Ask {
    sale: Sale,
    cashier: Option<&'static str>,
    amount: i64,
    reason: RefundReason,
    actor: ActorFacts,
    after_secs: i64,
}

impl Ask {
    fn new(sale: Sale, amount: i64) -> Ask {
        Ask {
            sale,
            cashier: Some("u1"),
            amount,
            reason: RefundReason::Defective,
            actor: ActorFacts { user: Some("u1".into()), refunded_today_minor: 0 },
            after_secs: 3600,
        }
    }

    fn after(mut self, secs: i64) -> Ask {
        self.after_secs = secs;
        self
    }

    fn reason(mut self, reason: RefundReason) -> Ask {
        self.reason = reason;
        self
    }

    fn decide(&self, policy: &RefundPolicy) -> Decision {
        let request = PolicyRequest {
            sale: &self.sale,
            sale_cashier: self.cashier,
            priors: &[],
            amount_minor: self.amount,
            reason: self.reason,
            actor: &self.actor,
            now: self.sale.captured_at + SignedDuration::from_secs(self.after_secs),
        };
        decide(policy, &request)
    }
}

/// A policy under which nothing fires, so a test can switch on one rule
/// and see exactly that rule.
fn relaxed() -> RefundPolicy {
    RefundPolicy {
        refund_window_days_card: MAX_WINDOW_DAYS,
        refund_window_days_wallet: MAX_WINDOW_DAYS,
        refund_window_days_cash: MAX_WINDOW_DAYS,
        no_questions_days: MAX_WINDOW_DAYS,
        approval_above_minor: i64::MAX,
        approval_above_share_bps: FULL_SHARE_BPS,
        large_sale_minor: i64::MAX,
        large_sale_approval_above_minor: i64::MAX,
        allowed_reasons: RefundReason::ALL.to_vec(),
        cash_refund_limit_minor: i64::MAX,
        cashier_daily_limit_minor: i64::MAX,
        other_cashier: OtherCashierRule::Allow,
    }
}

#[track_caller]
fn assert_within_policy(decision: &Decision) {
    assert_eq!(decision.outcome, Outcome::Approve, "{decision:?}");
    assert_eq!(decision.codes(), [codes::WITHIN_POLICY]);
}

#[track_caller]
fn assert_only(decision: &Decision, code: &str, outcome: Outcome) {
    assert_eq!(decision.codes(), [code], "{decision:?}");
    assert_eq!(decision.outcome, outcome);
}

#[test]
fn default_policy_is_a_chinese_retail_counter_and_valid() {
    let p = RefundPolicy::default();
    assert_eq!((p.refund_window_days_card, p.refund_window_days_wallet, p.refund_window_days_cash), (180, 365, 30));
    assert_eq!(p.no_questions_days, 7);
    assert_eq!((p.approval_above_minor, p.approval_above_share_bps), (50_000, 10_000));
    assert_eq!((p.large_sale_minor, p.large_sale_approval_above_minor), (500_000, 20_000));
    assert_eq!(p.allowed_reasons, RefundReason::ALL);
    assert_eq!((p.cash_refund_limit_minor, p.cashier_daily_limit_minor), (100_000, 300_000));
    assert_eq!(p.other_cashier, OtherCashierRule::RequireApproval);
    assert_eq!(p.validate(), Ok(()));
    assert_eq!(relaxed().validate(), Ok(()));
}

#[test]
fn a_small_refund_by_the_same_cashier_is_within_policy() {
    let decision = Ask::new(sale(card(), 10_000), 5_000).decide(&RefundPolicy::default());
    assert_within_policy(&decision);
    assert!(!decision.needs_approval() && !decision.is_rejected());
    assert_eq!(decision.reasons[0].en, "The refund of 50.00 CNY is within the refund policy; no supervisor is needed.");
    assert_eq!(decision.reasons[0].zh, "退款金额 50.00 CNY 符合退款政策，无需主管审批。");
}

#[test]
fn refund_on_the_last_second_of_the_window_is_allowed_and_one_second_later_rejected() {
    for (method, days) in [(card(), 180), (wallet(), 365), (PaymentMethod::Cash, 30)] {
        let kind = method.kind();
        let policy = RefundPolicy { no_questions_days: 0, ..RefundPolicy::default() };
        let at_edge = Ask::new(sale(method.clone(), 10_000), 100).after(days * DAY);
        assert_within_policy(&at_edge.decide(&policy));
        let late = at_edge.after(days * DAY + 1).decide(&policy);
        assert_only(&late, codes::OUTSIDE_REFUND_WINDOW, Outcome::Reject);
        assert!(late.is_rejected(), "{kind}");
        assert!(late.reasons[0].en.contains(&format!("{days} days")), "{kind}: {}", late.reasons[0].en);
        assert!(late.reasons[0].zh.contains(&format!("{days} 天")), "{kind}: {}", late.reasons[0].zh);
    }
}

#[test]
fn each_payment_method_has_its_own_window() {
    let policy = RefundPolicy::default();
    let day_31 = 31 * DAY;
    assert_within_policy(&Ask::new(sale(card(), 10_000), 100).after(day_31).decide(&policy));
    assert_within_policy(&Ask::new(sale(wallet(), 10_000), 100).after(day_31).decide(&policy));
    let cash = Ask::new(sale(PaymentMethod::Cash, 10_000), 100).after(day_31).decide(&policy);
    assert_only(&cash, codes::OUTSIDE_REFUND_WINDOW, Outcome::Reject);
    assert_eq!(
        cash.reasons[0].en,
        "The cash sale was captured more than 30 days ago (2025-03-01T02:00:00Z); \
         cash sales can be refunded only within 30 days of capture."
    );
    assert_eq!(
        cash.reasons[0].zh,
        "该笔现金交易已超过 30 天（收款时间 2025-03-01T02:00:00Z），现金支付仅可在收款后 30 天内退款。"
    );
}

#[test]
fn a_clock_behind_the_sale_is_inside_every_window() {
    let policy = RefundPolicy { no_questions_days: 0, ..RefundPolicy::default() };
    let ask = Ask::new(sale(PaymentMethod::Cash, 10_000), 100).reason(RefundReason::CustomerRequest).after(-DAY);
    assert_within_policy(&ask.decide(&policy));
}

#[test]
fn reason_outside_the_allowed_list_is_rejected() {
    let policy =
        RefundPolicy { allowed_reasons: vec![RefundReason::Defective, RefundReason::WrongCharge], ..relaxed() };
    let ask = Ask::new(sale(card(), 10_000), 100);
    assert_within_policy(&ask.decide(&policy));
    let fraud = ask.reason(RefundReason::Fraud).decide(&policy);
    assert_only(&fraud, codes::REASON_NOT_ALLOWED, Outcome::Reject);
    assert_eq!(fraud.reasons[0].en, "The refund policy does not allow refunds for the reason \"fraud\".");
    assert_eq!(fraud.reasons[0].zh, "退款政策不允许以“欺诈交易”（fraud）为由退款。");
}

#[test]
fn change_of_mind_after_the_no_questions_window_needs_a_supervisor() {
    let policy = RefundPolicy { no_questions_days: 7, ..relaxed() };
    let ask = Ask::new(sale(card(), 10_000), 100).reason(RefundReason::CustomerRequest).after(7 * DAY);
    assert_within_policy(&ask.decide(&policy));
    let late = ask.after(7 * DAY + 1).decide(&policy);
    assert_only(&late, codes::AFTER_NO_QUESTIONS_WINDOW, Outcome::RequiresApproval);
    assert!(late.needs_approval());
    assert_eq!(
        late.reasons[0].en,
        "A change-of-mind refund (customer_request) more than 7 days after the sale needs a supervisor."
    );
    assert_eq!(late.reasons[0].zh, "收款已超过 7 天，顾客无理由退款（customer_request）需主管审批。");
}

#[test]
fn other_reasons_need_no_approval_after_the_no_questions_window() {
    let policy = RefundPolicy { no_questions_days: 7, ..relaxed() };
    for reason in RefundReason::ALL.iter().filter(|r| **r != RefundReason::CustomerRequest) {
        let ask = Ask::new(sale(card(), 10_000), 100).reason(*reason).after(100 * DAY);
        assert_within_policy(&ask.decide(&policy));
    }
}

#[test]
fn refund_above_the_amount_limit_needs_a_supervisor() {
    let policy = RefundPolicy { approval_above_minor: 50_000, ..relaxed() };
    assert_within_policy(&Ask::new(sale(card(), 100_000), 50_000).decide(&policy));
    let over = Ask::new(sale(card(), 100_000), 50_001).decide(&policy);
    assert_only(&over, codes::AMOUNT_OVER_LIMIT, Outcome::RequiresApproval);
    let example = Ask::new(sale(card(), 100_000), 60_000).decide(&policy);
    assert_eq!(
        example.reasons[0].en,
        "The refund of 600.00 CNY is above the 500.00 CNY that a cashier may refund without a supervisor."
    );
    assert_eq!(example.reasons[0].zh, "退款金额 600.00 CNY 超过收银员无需主管审批的上限 500.00 CNY。");
}

#[test]
fn large_sale_uses_the_lower_large_sale_limit() {
    let policy = RefundPolicy {
        approval_above_minor: 50_000,
        large_sale_minor: 500_000,
        large_sale_approval_above_minor: 20_000,
        ..relaxed()
    };
    assert_within_policy(&Ask::new(sale(card(), 500_000), 20_000).decide(&policy));
    let over = Ask::new(sale(card(), 500_000), 20_001).decide(&policy);
    assert_only(&over, codes::AMOUNT_OVER_LIMIT, Outcome::RequiresApproval);
    assert_eq!(
        over.reasons[0].en,
        "The refund of 200.01 CNY is above the 200.00 CNY that a cashier may refund without a supervisor \
         on a sale of 5000.00 CNY or more."
    );
    assert_eq!(
        over.reasons[0].zh,
        "原交易金额达到 5000.00 CNY 及以上，退款金额 200.01 CNY 超过收银员无需主管审批的上限 200.00 CNY。"
    );
}

#[test]
fn a_sale_just_under_large_keeps_the_normal_limit() {
    let policy = RefundPolicy {
        approval_above_minor: 50_000,
        large_sale_minor: 500_000,
        large_sale_approval_above_minor: 20_000,
        ..relaxed()
    };
    assert_within_policy(&Ask::new(sale(card(), 499_999), 50_000).decide(&policy));
}

#[test]
fn a_large_sale_limit_above_the_normal_limit_does_not_loosen_it() {
    let policy = RefundPolicy {
        approval_above_minor: 50_000,
        large_sale_minor: 500_000,
        large_sale_approval_above_minor: 80_000,
        ..relaxed()
    };
    assert_within_policy(&Ask::new(sale(card(), 600_000), 50_000).decide(&policy));
    let over = Ask::new(sale(card(), 600_000), 50_001).decide(&policy);
    assert_only(&over, codes::AMOUNT_OVER_LIMIT, Outcome::RequiresApproval);
    assert!(over.reasons[0].en.ends_with("above the 500.00 CNY that a cashier may refund without a supervisor."));
}

#[test]
fn refund_above_the_share_limit_needs_a_supervisor() {
    let policy = RefundPolicy { approval_above_share_bps: 5_000, ..relaxed() };
    assert_within_policy(&Ask::new(sale(card(), 100_000), 50_000).decide(&policy));
    let over = Ask::new(sale(card(), 100_000), 50_001).decide(&policy);
    assert_only(&over, codes::SHARE_OVER_LIMIT, Outcome::RequiresApproval);
    assert_eq!(
        over.reasons[0].en,
        "The refund of 500.01 CNY is more than 50% of the 1000.00 CNY sale; \
         refunding that large a share needs a supervisor."
    );
    assert_eq!(over.reasons[0].zh, "退款金额 500.01 CNY 超过原交易金额 1000.00 CNY 的 50%，需主管审批。");
}

#[test]
fn share_limit_is_exact_where_the_share_is_not_a_whole_number() {
    // 33.33 % of 3.33 CNY is 1.109889 CNY: 1.10 is under it, 1.11 over.
    let policy = RefundPolicy { approval_above_share_bps: 3_333, ..relaxed() };
    assert_within_policy(&Ask::new(sale(card(), 333), 110).decide(&policy));
    let over = Ask::new(sale(card(), 333), 111).decide(&policy);
    assert_only(&over, codes::SHARE_OVER_LIMIT, Outcome::RequiresApproval);
    assert!(over.reasons[0].en.contains("more than 33.33% of the 3.33 CNY sale"));
}

#[test]
fn share_limit_of_10000_bps_is_off() {
    let policy = RefundPolicy { approval_above_share_bps: FULL_SHARE_BPS, ..relaxed() };
    assert_within_policy(&Ask::new(sale(card(), 100_000), 100_000).decide(&policy));
    // Even an amount above the sale: the share rule is off; plan_refund refuses it.
    assert_within_policy(&Ask::new(sale(card(), 100_000), 100_001).decide(&policy));
}

#[test]
fn cash_refund_above_the_drawer_limit_needs_a_supervisor() {
    let policy = RefundPolicy { cash_refund_limit_minor: 100_000, ..relaxed() };
    assert_within_policy(&Ask::new(sale(PaymentMethod::Cash, 200_000), 100_000).decide(&policy));
    let over = Ask::new(sale(PaymentMethod::Cash, 200_000), 100_001).decide(&policy);
    assert_only(&over, codes::CASH_OVER_LIMIT, Outcome::RequiresApproval);
    assert_eq!(
        over.reasons[0].en,
        "The cash refund of 1000.01 CNY is above the 1000.00 CNY that may leave the drawer without a supervisor."
    );
    assert_eq!(over.reasons[0].zh, "现金退款金额 1000.01 CNY 超过无需主管审批即可从钱箱付出的上限 1000.00 CNY。");
}

#[test]
fn card_and_wallet_refunds_ignore_the_cash_limit() {
    let policy = RefundPolicy { cash_refund_limit_minor: 100_000, ..relaxed() };
    assert_within_policy(&Ask::new(sale(card(), 200_000), 200_000).decide(&policy));
    assert_within_policy(&Ask::new(sale(wallet(), 200_000), 200_000).decide(&policy));
}

#[test]
fn crossing_the_cashier_daily_limit_needs_a_supervisor() {
    let policy = RefundPolicy { cashier_daily_limit_minor: 300_000, ..relaxed() };
    let mut ask = Ask::new(sale(card(), 100_000), 50_000);
    ask.actor.refunded_today_minor = 250_000;
    assert_within_policy(&ask.decide(&policy));
    ask.amount = 50_001;
    let over = ask.decide(&policy);
    assert_only(&over, codes::CASHIER_DAILY_LIMIT, Outcome::RequiresApproval);
    assert_eq!(
        over.reasons[0].en,
        "This refund of 500.01 CNY would bring today's refunds by this cashier to 3000.01 CNY, \
         above the 3000.00 CNY a cashier may refund per day without a supervisor."
    );
    assert_eq!(
        over.reasons[0].zh,
        "本笔退款 500.01 CNY 将使该收银员今日退款累计达到 3000.01 CNY，超过无需主管审批的每日上限 3000.00 CNY。"
    );
}

#[test]
fn a_cashier_with_room_left_today_needs_no_supervisor() {
    let policy = RefundPolicy { cashier_daily_limit_minor: 300_000, ..relaxed() };
    let mut ask = Ask::new(sale(card(), 100_000), 100_000);
    ask.actor.refunded_today_minor = 0;
    assert_within_policy(&ask.decide(&policy));
    // Even at the far end of i64 the sum does not overflow.
    ask.actor.refunded_today_minor = i64::MAX;
    assert_only(&ask.decide(&policy), codes::CASHIER_DAILY_LIMIT, Outcome::RequiresApproval);
}

#[test]
fn other_cashier_rule_decides_refunds_by_someone_else() {
    let mut ask = Ask::new(sale(card(), 10_000), 100);
    ask.actor.user = Some("u2".into());
    let allow = RefundPolicy { other_cashier: OtherCashierRule::Allow, ..relaxed() };
    assert_within_policy(&ask.decide(&allow));
    let approve = RefundPolicy { other_cashier: OtherCashierRule::RequireApproval, ..relaxed() };
    let decision = ask.decide(&approve);
    assert_only(&decision, codes::NOT_ORIGINAL_CASHIER, Outcome::RequiresApproval);
    assert_eq!(
        decision.reasons[0].en,
        "The refund is made by u2, not by u1 who rang up the sale; a supervisor must approve it."
    );
    assert_eq!(decision.reasons[0].zh, "退款操作人 u2 不是原交易收银员 u1，需主管审批。");
    let reject = RefundPolicy { other_cashier: OtherCashierRule::Reject, ..relaxed() };
    let decision = ask.decide(&reject);
    assert_only(&decision, codes::NOT_ORIGINAL_CASHIER, Outcome::Reject);
    assert_eq!(decision.reasons[0].zh, "退款操作人 u2 不是原交易收银员 u1，仅原收银员可办理退款。");
}

#[test]
fn the_same_or_an_unknown_cashier_is_not_someone_else() {
    let reject = RefundPolicy { other_cashier: OtherCashierRule::Reject, ..relaxed() };
    let mut ask = Ask::new(sale(card(), 10_000), 100);
    assert_within_policy(&ask.decide(&reject));
    ask.actor.user = None;
    assert_within_policy(&ask.decide(&reject));
    ask.actor.user = Some("u2".into());
    ask.cashier = None;
    assert_within_policy(&ask.decide(&reject));
}

#[test]
fn the_worst_reason_decides_and_every_reason_is_listed() {
    let policy = RefundPolicy { approval_above_share_bps: 4_000, ..RefundPolicy::default() };
    let mut ask = Ask::new(sale(PaymentMethod::Cash, 600_000), 300_000).reason(RefundReason::CustomerRequest);
    ask.after_secs = 31 * DAY;
    ask.actor = ActorFacts { user: Some("u2".into()), refunded_today_minor: 1 };
    let decision = ask.decide(&policy);
    assert_eq!(decision.outcome, Outcome::Reject);
    assert!(decision.is_rejected() && !decision.needs_approval());
    assert_eq!(
        decision.codes(),
        [
            codes::OUTSIDE_REFUND_WINDOW,
            codes::AFTER_NO_QUESTIONS_WINDOW,
            codes::AMOUNT_OVER_LIMIT,
            codes::SHARE_OVER_LIMIT,
            codes::CASH_OVER_LIMIT,
            codes::CASHIER_DAILY_LIMIT,
            codes::NOT_ORIGINAL_CASHIER,
        ]
    );
    let by_outcome: Vec<Outcome> = decision.reasons.iter().map(|r| r.outcome).collect();
    assert_eq!(by_outcome[0], Outcome::Reject);
    assert!(by_outcome[1..].iter().all(|o| *o == Outcome::RequiresApproval));
}

#[test]
fn several_approvals_still_need_only_a_supervisor() {
    let policy = RefundPolicy::default();
    let ask = Ask::new(sale(PaymentMethod::Cash, 600_000), 150_000);
    let decision = ask.decide(&policy);
    assert_eq!(decision.codes(), [codes::AMOUNT_OVER_LIMIT, codes::CASH_OVER_LIMIT]);
    assert_eq!(decision.outcome, Outcome::RequiresApproval);
    let not_allowed = RefundPolicy { allowed_reasons: vec![RefundReason::Fraud], ..policy };
    let decision = ask.decide(&not_allowed);
    assert_eq!(decision.codes(), [codes::REASON_NOT_ALLOWED, codes::AMOUNT_OVER_LIMIT, codes::CASH_OVER_LIMIT]);
    assert_eq!(decision.outcome, Outcome::Reject);
}

#[test]
fn invalid_policies_name_the_field() {
    let cases: Vec<(RefundPolicy, &str)> = vec![
        (RefundPolicy { refund_window_days_card: 0, ..RefundPolicy::default() }, "refund_window_days_card"),
        (RefundPolicy { refund_window_days_wallet: 3651, ..RefundPolicy::default() }, "refund_window_days_wallet"),
        (RefundPolicy { refund_window_days_cash: 3651, ..RefundPolicy::default() }, "refund_window_days_cash"),
        (RefundPolicy { no_questions_days: 3651, ..RefundPolicy::default() }, "no_questions_days"),
        (RefundPolicy { approval_above_minor: -1, ..RefundPolicy::default() }, "approval_above_minor"),
        (RefundPolicy { large_sale_minor: -1, ..RefundPolicy::default() }, "large_sale_minor"),
        (
            RefundPolicy { large_sale_approval_above_minor: -1, ..RefundPolicy::default() },
            "large_sale_approval_above_minor",
        ),
        (RefundPolicy { cash_refund_limit_minor: -1, ..RefundPolicy::default() }, "cash_refund_limit_minor"),
        (RefundPolicy { cashier_daily_limit_minor: -1, ..RefundPolicy::default() }, "cashier_daily_limit_minor"),
        (RefundPolicy { approval_above_share_bps: 10_001, ..RefundPolicy::default() }, "approval_above_share_bps"),
        (RefundPolicy { allowed_reasons: vec![], ..RefundPolicy::default() }, "allowed_reasons"),
    ];
    for (policy, field) in cases {
        let err = policy.validate().unwrap_err();
        assert_eq!(err.field, field);
        assert!(err.to_string().starts_with(field), "{err}");
    }
    let err = RefundPolicy { approval_above_share_bps: 10_001, ..RefundPolicy::default() }.validate().unwrap_err();
    assert_eq!(
        err.to_string(),
        "approval_above_share_bps must be at most 10000 basis points (100 %); 10000 turns the rule off"
    );
    let edges = RefundPolicy {
        refund_window_days_card: 1,
        refund_window_days_wallet: 3650,
        no_questions_days: 0,
        approval_above_minor: 0,
        approval_above_share_bps: 0,
        allowed_reasons: vec![RefundReason::Other],
        ..RefundPolicy::default()
    };
    assert_eq!(edges.validate(), Ok(()));
}

#[test]
fn wire_names_round_trip() {
    for o in Outcome::ALL {
        assert_eq!(Outcome::parse(o.as_str()), Some(*o));
    }
    for r in OtherCashierRule::ALL {
        assert_eq!(OtherCashierRule::parse(r.as_str()), Some(*r));
    }
    assert_eq!(Outcome::RequiresApproval.as_str(), "requires_approval");
    assert_eq!(OtherCashierRule::parse("require_approval"), Some(OtherCashierRule::RequireApproval));
    assert_eq!(OtherCashierRule::parse("maybe"), None);
    assert!(Outcome::Approve < Outcome::RequiresApproval && Outcome::RequiresApproval < Outcome::Reject);
}

#[test]
fn rule_codes_are_unique_snake_case() {
    let unique: std::collections::HashSet<_> = RULE_CODES.iter().collect();
    assert_eq!(unique.len(), RULE_CODES.len());
    assert!(RULE_CODES.iter().all(|c| c.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')));
}

#[test]
fn percentages_are_exact() {
    assert_eq!(percent(5_000), "50%");
    assert_eq!(percent(2_550), "25.5%");
    assert_eq!(percent(1_234), "12.34%");
    assert_eq!(percent(5), "0.05%");
    assert_eq!(percent(0), "0%");
}

/// Everything a decision depends on, owned, so proptest can shrink it.
#[derive(Debug, Clone)]
struct Case {
    policy: RefundPolicy,
    sale: Sale,
    cashier: Option<&'static str>,
    actor: ActorFacts,
    amount: i64,
    reason: RefundReason,
    after_secs: i64,
}

impl Case {
    fn decide(&self) -> Decision {
        self.decide_with(&self.policy, self.amount)
    }

    fn decide_with(&self, policy: &RefundPolicy, amount_minor: i64) -> Decision {
        let request = PolicyRequest {
            sale: &self.sale,
            sale_cashier: self.cashier,
            priors: &[],
            amount_minor,
            reason: self.reason,
            actor: &self.actor,
            now: self.sale.captured_at + SignedDuration::from_secs(self.after_secs),
        };
        decide(policy, &request)
    }
}

fn any_policy() -> impl Strategy<Value = RefundPolicy> {
    let windows = (1u32..=400, 1u32..=400, 1u32..=400, 0u32..=60);
    let limits = (
        0i64..=200_000,
        prop_oneof![Just(FULL_SHARE_BPS), 0u32..=FULL_SHARE_BPS],
        0i64..=1_000_000,
        0i64..=200_000,
        0i64..=200_000,
        0i64..=1_000_000,
    );
    let reasons = proptest::sample::subsequence(RefundReason::ALL.to_vec(), 1..=RefundReason::ALL.len());
    let other = proptest::sample::select(OtherCashierRule::ALL.to_vec());
    (windows, limits, reasons, other).prop_map(
        |((card, wallet, cash, noq), (above, share, large, large_above, cash_limit, daily), reasons, other)| {
            RefundPolicy {
                refund_window_days_card: card,
                refund_window_days_wallet: wallet,
                refund_window_days_cash: cash,
                no_questions_days: noq,
                approval_above_minor: above,
                approval_above_share_bps: share,
                large_sale_minor: large,
                large_sale_approval_above_minor: large_above,
                allowed_reasons: reasons,
                cash_refund_limit_minor: cash_limit,
                cashier_daily_limit_minor: daily,
                other_cashier: other,
            }
        },
    )
}

fn any_case() -> impl Strategy<Value = Case> {
    let method = prop_oneof![Just(card()), Just(wallet()), Just(PaymentMethod::Cash)];
    let who = proptest::sample::select(vec![None, Some("u1"), Some("u2")]);
    (
        any_policy(),
        method,
        1i64..=1_000_000,
        1i64..=1_000_000,
        (who.clone(), who, 0i64..=500_000),
        proptest::sample::select(RefundReason::ALL.to_vec()),
        -DAY..=400 * DAY,
    )
        .prop_map(|(policy, method, sale_minor, amount, (cashier, user, today), reason, after_secs)| Case {
            policy,
            sale: sale(method, sale_minor),
            cashier,
            actor: ActorFacts { user: user.map(str::to_owned), refunded_today_minor: today },
            amount,
            reason,
            after_secs,
        })
}

/// Makes the policy more generous in one place: a higher approval threshold,
/// or a longer window.
fn raise(policy: &RefundPolicy, which: usize, by: u32) -> RefundPolicy {
    let mut p = policy.clone();
    let more = i64::from(by);
    match which {
        0 => p.approval_above_minor = p.approval_above_minor.saturating_add(more),
        1 => p.large_sale_approval_above_minor = p.large_sale_approval_above_minor.saturating_add(more),
        2 => p.approval_above_share_bps = p.approval_above_share_bps.saturating_add(by).min(FULL_SHARE_BPS),
        3 => p.cash_refund_limit_minor = p.cash_refund_limit_minor.saturating_add(more),
        4 => p.cashier_daily_limit_minor = p.cashier_daily_limit_minor.saturating_add(more),
        5 => p.large_sale_minor = p.large_sale_minor.saturating_add(more),
        6 => p.no_questions_days = p.no_questions_days.saturating_add(by % 100),
        7 => p.refund_window_days_card = p.refund_window_days_card.saturating_add(by % 100),
        8 => p.refund_window_days_wallet = p.refund_window_days_wallet.saturating_add(by % 100),
        _ => p.refund_window_days_cash = p.refund_window_days_cash.saturating_add(by % 100),
    }
    p
}

proptest! {
    /// Raising an approval threshold (amount, large-sale amount, share, cash,
    /// daily), or making a window longer, never turns an approval into a
    /// supervisor's question or a refusal, nor makes any outcome worse.
    #[test]
    fn raising_a_threshold_never_turns_an_approval_into_more(
        case in any_case(),
        which in 0usize..10,
        by in 0u32..=1_000_000,
    ) {
        let before = case.decide();
        let after = case.decide_with(&raise(&case.policy, which, by), case.amount);
        if before.outcome == Outcome::Approve {
            prop_assert_eq!(after.outcome, Outcome::Approve);
        }
        prop_assert!(after.outcome <= before.outcome, "{:?} became {:?}", before.codes(), after.codes());
    }

    /// A smaller refund of the same sale is never judged worse, and every
    /// reason it gets the larger one got too.
    #[test]
    fn a_smaller_refund_is_never_judged_worse(case in any_case(), less in 0i64..=1_000_000) {
        let smaller = (case.amount - less).max(1);
        let big = case.decide();
        let small = case.decide_with(&case.policy, smaller);
        prop_assert!(small.outcome <= big.outcome, "{:?} at {} but {:?} at {}",
            small.codes(), smaller, big.codes(), case.amount);
        let big_codes = big.codes();
        for code in small.codes().into_iter().filter(|c| *c != codes::WITHIN_POLICY) {
            prop_assert!(big_codes.contains(&code), "{} fired only for the smaller refund", code);
        }
    }

    /// The same facts give the same decision, reasons and sentences included.
    #[test]
    fn the_same_facts_give_the_same_decision(case in any_case()) {
        let again = case.clone();
        prop_assert_eq!(case.decide(), again.decide());
        prop_assert_eq!(case.decide(), case.decide());
    }

    /// Every reason has a listed code and a sentence in both languages, and
    /// the outcome is the worst of the reasons.
    #[test]
    fn every_reason_is_coded_and_written_in_both_languages(case in any_case()) {
        let decision = case.decide();
        prop_assert!(!decision.reasons.is_empty());
        for reason in &decision.reasons {
            prop_assert!(RULE_CODES.contains(&reason.code), "{}", reason.code);
            prop_assert!(!reason.en.trim().is_empty() && !reason.zh.trim().is_empty());
            prop_assert!(reason.zh.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c)), "{}", reason.zh);
            prop_assert!(reason.en.is_ascii(), "{}", reason.en);
        }
        let worst = decision.reasons.iter().map(|r| r.outcome).max().unwrap();
        prop_assert_eq!(decision.outcome, worst);
        let within = decision.codes() == [codes::WITHIN_POLICY];
        prop_assert_eq!(within, decision.outcome == Outcome::Approve);
    }
}
