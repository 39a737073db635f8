use super::*;
use crate::card::{First6, Last4};
use crate::ids::{MerchantId, SaleId, StoreId};
use crate::money::Currency;
use crate::sale::{CardBrand, EntryMode, LineItem, PaymentMethod, Sale};
use proptest::prelude::*;

fn card_sale(amount: i64, items: Vec<LineItem>) -> Sale {
    Sale {
        id: SaleId::generate(),
        merchant_id: MerchantId::generate(),
        store_id: StoreId::generate(),
        terminal_id: "T1".into(),
        amount: Money::new(amount, Currency::CNY),
        payment_method: PaymentMethod::Card {
            brand: CardBrand::UnionPay,
            first6: First6::parse("622202").unwrap(),
            last4: Last4::parse("1234").unwrap(),
            entry_mode: EntryMode::Chip,
        },
        voucher_no: Some("000123".into()),
        rrn: Some("123456789012".into()),
        auth_code: Some("A1B2C3".into()),
        batch_no: Some("000001".into()),
        captured_at: jiff::Timestamp::UNIX_EPOCH,
        created_at: jiff::Timestamp::UNIX_EPOCH,
        items,
        cashier: None,
    }
}

fn line(sku: &str, quantity: u32, unit: i64) -> LineItem {
    LineItem { sku: sku.into(), name: sku.into(), quantity, unit_amount_minor: unit }
}

fn prior(amount_minor: i64, status: RefundStatus) -> PriorRefund {
    PriorRefund { amount_minor, status, items: vec![] }
}

const UNSETTLED: SettlementState = SettlementState { batch_settled: false };
const SETTLED: SettlementState = SettlementState { batch_settled: true };

#[test]
fn whole_unsettled_card_sale_is_a_void() {
    let sale = card_sale(1000, vec![]);
    let plan = plan_refund(&sale, &[], &RefundAsk::Amount(1000), UNSETTLED).unwrap();
    assert_eq!(plan.refund_type, RefundType::Void);
}

#[test]
fn whole_settled_sale_is_a_refund() {
    let sale = card_sale(1000, vec![]);
    let plan = plan_refund(&sale, &[], &RefundAsk::Amount(1000), SETTLED).unwrap();
    assert_eq!(plan.refund_type, RefundType::Refund);
}

#[test]
fn partial_refund_before_settlement_is_a_refund() {
    let sale = card_sale(1000, vec![]);
    let plan = plan_refund(&sale, &[], &RefundAsk::Amount(999), UNSETTLED).unwrap();
    assert_eq!(plan.refund_type, RefundType::Refund);
}

#[test]
fn rest_of_a_partly_refunded_sale_is_a_refund_not_a_void() {
    let sale = card_sale(1000, vec![]);
    let priors = [prior(400, RefundStatus::Succeeded)];
    let plan = plan_refund(&sale, &priors, &RefundAsk::Amount(600), UNSETTLED).unwrap();
    assert_eq!(plan.refund_type, RefundType::Refund);
}

#[test]
fn cash_and_wallet_sales_are_never_voided() {
    let mut sale = card_sale(1000, vec![]);
    sale.payment_method = PaymentMethod::Cash;
    let plan = plan_refund(&sale, &[], &RefundAsk::Amount(1000), UNSETTLED).unwrap();
    assert_eq!(plan.refund_type, RefundType::Refund);
}

#[test]
fn asking_more_than_is_left_is_refused_with_what_is_left() {
    let sale = card_sale(1000, vec![]);
    let priors = [prior(700, RefundStatus::Pending), prior(500, RefundStatus::Failed)];
    assert_eq!(
        plan_refund(&sale, &priors, &RefundAsk::Amount(301), SETTLED),
        Err(RefundError::ExceedsRefundable { requested_minor: 301, refundable_minor: 300 })
    );
    assert!(plan_refund(&sale, &priors, &RefundAsk::Amount(300), SETTLED).is_ok());
}

#[test]
fn zero_and_negative_amounts_are_refused() {
    let sale = card_sale(1000, vec![]);
    assert!(matches!(
        plan_refund(&sale, &[], &RefundAsk::Amount(0), SETTLED),
        Err(RefundError::Amount(AmountError::NotPositive))
    ));
    assert!(plan_refund(&sale, &[], &RefundAsk::Amount(-5), SETTLED).is_err());
}

#[test]
fn items_are_priced_from_the_sale_and_limited_by_what_was_sold() {
    let sale = card_sale(1300, vec![line("tea", 3, 300), line("cup", 1, 400)]);
    let ask = RefundAsk::Items(vec![ItemQuantity { sku: "tea".into(), quantity: 2 }]);
    let plan = plan_refund(&sale, &[], &ask, SETTLED).unwrap();
    assert_eq!(plan.amount.minor, 600);
    let priors = [PriorRefund {
        amount_minor: 600,
        status: RefundStatus::Succeeded,
        items: vec![ItemQuantity { sku: "tea".into(), quantity: 2 }],
    }];
    assert_eq!(
        plan_refund(&sale, &priors, &ask, SETTLED),
        Err(RefundError::ItemQuantityExceeded { sku: "tea".into(), requested: 2, remaining: 1 })
    );
    let unknown = RefundAsk::Items(vec![ItemQuantity { sku: "cake".into(), quantity: 1 }]);
    assert_eq!(plan_refund(&sale, &[], &unknown, SETTLED), Err(RefundError::UnknownItem { sku: "cake".into() }));
}

#[test]
fn every_item_of_an_unsettled_card_sale_is_a_void() {
    let sale = card_sale(1300, vec![line("tea", 3, 300), line("cup", 1, 400)]);
    let ask = RefundAsk::Items(vec![
        ItemQuantity { sku: "tea".into(), quantity: 3 },
        ItemQuantity { sku: "cup".into(), quantity: 1 },
    ]);
    let plan = plan_refund(&sale, &[], &ask, UNSETTLED).unwrap();
    assert_eq!((plan.refund_type, plan.amount.minor), (RefundType::Void, 1300));
}

#[test]
fn items_on_a_sale_without_items_or_repeated_are_refused() {
    let bare = card_sale(1000, vec![]);
    let ask = RefundAsk::Items(vec![ItemQuantity { sku: "tea".into(), quantity: 1 }]);
    assert_eq!(plan_refund(&bare, &[], &ask, SETTLED), Err(RefundError::SaleHasNoItems));
    let sale = card_sale(900, vec![line("tea", 3, 300)]);
    let twice = RefundAsk::Items(vec![
        ItemQuantity { sku: "tea".into(), quantity: 1 },
        ItemQuantity { sku: "tea".into(), quantity: 1 },
    ]);
    assert_eq!(plan_refund(&sale, &[], &twice, SETTLED), Err(RefundError::BadItems));
}

#[test]
fn lifecycle_moves_only_along_the_documented_arrows() {
    use RefundEvent as E;
    use RefundStatus as S;
    let legal = [
        (S::RequiresApproval, E::Approve, S::Pending),
        (S::RequiresApproval, E::Reject, S::Rejected),
        (S::RequiresApproval, E::Expire, S::Expired),
        (S::RequiresApproval, E::Cancel, S::Canceled),
        (S::Pending, E::Send, S::Processing),
        (S::Pending, E::Cancel, S::Canceled),
        (S::Processing, E::Succeed, S::Succeeded),
        (S::Processing, E::Fail, S::Failed),
        (S::Failed, E::Retry, S::Pending),
    ];
    let events = [E::Approve, E::Reject, E::Expire, E::Cancel, E::Send, E::Succeed, E::Fail, E::Retry];
    for from in S::ALL {
        for event in events {
            let expected = legal.iter().find(|(f, e, _)| f == from && *e == event).map(|t| t.2);
            assert_eq!(from.on(event).ok(), expected, "{from} on {event:?}");
        }
    }
}

#[derive(Debug, Clone)]
enum Step {
    Amount(i64),
    Items(Vec<(usize, u32)>),
    FailLast,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (1i64..1500).prop_map(Step::Amount),
        proptest::collection::vec((0usize..4, 1u32..4), 1..3).prop_map(Step::Items),
        Just(Step::FailLast),
    ]
}

proptest! {
    /// Random sequences of partial refunds, by amount and by items, with
    /// some of them failing afterwards, never take back more than the sale,
    /// nor more of an item than was sold.
    #[test]
    fn refunds_never_exceed_the_sale(
        quantities in proptest::collection::vec(1u32..5, 4),
        units in proptest::collection::vec(1i64..300, 4),
        steps in proptest::collection::vec(step(), 1..40),
        settled in any::<bool>(),
    ) {
        let skus = ["a", "b", "c", "d"];
        let items: Vec<LineItem> =
            (0..4).map(|i| line(skus[i], quantities[i], units[i])).collect();
        let total: i64 = items.iter().map(|l| l.total_minor().unwrap()).sum();
        let sale = card_sale(total, items.clone());
        let settlement = SettlementState { batch_settled: settled };
        let mut priors: Vec<PriorRefund> = Vec::new();
        for s in steps {
            let ask = match s {
                Step::Amount(a) => RefundAsk::Amount(a),
                Step::Items(picks) => {
                    let mut seen = std::collections::HashSet::new();
                    RefundAsk::Items(picks.into_iter()
                        .filter(|(i, _)| seen.insert(*i))
                        .map(|(i, q)| ItemQuantity { sku: skus[i].into(), quantity: q })
                        .collect())
                }
                Step::FailLast => {
                    if let Some(p) = priors.iter_mut().rev().find(|p| p.status == RefundStatus::Pending) {
                        p.status = RefundStatus::Failed;
                    }
                    continue;
                }
            };
            let before = refundable(&sale, &priors).unwrap();
            match plan_refund(&sale, &priors, &ask, settlement) {
                Ok(plan) => {
                    prop_assert!(plan.amount.minor > 0);
                    prop_assert!(plan.amount.minor <= before.minor);
                    priors.push(PriorRefund {
                        amount_minor: plan.amount.minor,
                        status: RefundStatus::Pending,
                        items: plan.items.iter()
                            .map(|i| ItemQuantity { sku: i.sku.clone(), quantity: i.quantity })
                            .collect(),
                    });
                }
                Err(_) => prop_assert_eq!(refundable(&sale, &priors).unwrap(), before),
            }
            let held = held_minor(&priors).unwrap();
            prop_assert!(held <= total, "held {} of {}", held, total);
            prop_assert!(refundable(&sale, &priors).unwrap().minor >= 0);
            for l in &items {
                let refunded: u32 = priors.iter()
                    .filter(|p| p.status.counts_against_sale())
                    .flat_map(|p| p.items.iter())
                    .filter(|i| i.sku == l.sku)
                    .map(|i| i.quantity)
                    .sum();
                prop_assert!(refunded <= l.quantity);
            }
        }
    }
}
