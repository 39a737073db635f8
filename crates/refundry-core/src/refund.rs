//! Refunds and voids: the lifecycle, and the arithmetic that keeps the sum
//! of a sale's refunds at or below what was captured.

use crate::money::{AmountError, Money};
use crate::sale::{Sale, wire_enum};

wire_enum!(
    /// 撤销 (void) cancels an unsettled card sale whole; 退货 (refund)
    /// returns money after settlement, or part of a sale at any time.
    RefundType { Void = "void", Refund = "refund" }
);

wire_enum!(
    /// Why the customer gets money back.
    RefundReason {
        CustomerRequest = "customer_request", Defective = "defective", WrongCharge = "wrong_charge",
        Duplicate = "duplicate", ServiceIssue = "service_issue", Fraud = "fraud", Other = "other",
    }
);

wire_enum!(
    /// Where a refund is in its life. See `domain.md`:
    /// `requires_approval` → `pending` → `processing` → `succeeded` | `failed`,
    /// with `rejected`, `expired` and `canceled` as the ways out before
    /// anything was sent.
    RefundStatus {
        RequiresApproval = "requires_approval", Pending = "pending", Processing = "processing",
        Succeeded = "succeeded", Failed = "failed", Rejected = "rejected", Expired = "expired",
        Canceled = "canceled",
    }
);

/// What may happen to a refund.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefundEvent {
    Approve,
    Reject,
    Expire,
    Cancel,
    /// The job runner hands it to the acquirer.
    Send,
    /// The acquirer confirmed it.
    Succeed,
    /// The acquirer declined it, or it could not be done.
    Fail,
    /// A person asked to try a failed refund again (same refund, new attempt).
    Retry,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a {from} refund cannot {event:?}")]
pub struct IllegalTransition {
    pub from: RefundStatus,
    pub event: RefundEvent,
}

impl RefundStatus {
    /// The one place that says which moves are legal. Every state is listed
    /// so that a new state cannot be added without deciding its moves.
    pub fn on(self, event: RefundEvent) -> Result<RefundStatus, IllegalTransition> {
        use RefundEvent as E;
        use RefundStatus as S;
        let next = match (self, event) {
            (S::RequiresApproval, E::Approve) => Some(S::Pending),
            (S::RequiresApproval, E::Reject) => Some(S::Rejected),
            (S::RequiresApproval, E::Expire) => Some(S::Expired),
            (S::RequiresApproval, E::Cancel) => Some(S::Canceled),
            (S::RequiresApproval, _) => None,
            (S::Pending, E::Send) => Some(S::Processing),
            (S::Pending, E::Cancel) => Some(S::Canceled),
            (S::Pending, _) => None,
            (S::Processing, E::Succeed) => Some(S::Succeeded),
            (S::Processing, E::Fail) => Some(S::Failed),
            (S::Processing, _) => None,
            (S::Failed, E::Retry) => Some(S::Pending),
            (S::Failed, _) => None,
            (S::Succeeded | S::Rejected | S::Expired | S::Canceled, _) => None,
        };
        next.ok_or(IllegalTransition { from: self, event })
    }

    /// Whether a refund in this state holds part of the sale's refundable
    /// amount. A failed one does not; retrying it claims it again.
    pub fn counts_against_sale(self) -> bool {
        match self {
            RefundStatus::RequiresApproval
            | RefundStatus::Pending
            | RefundStatus::Processing
            | RefundStatus::Succeeded => true,
            RefundStatus::Failed | RefundStatus::Rejected | RefundStatus::Expired | RefundStatus::Canceled => false,
        }
    }

    /// No further automatic movement is expected.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            RefundStatus::Succeeded
                | RefundStatus::Failed
                | RefundStatus::Rejected
                | RefundStatus::Expired
                | RefundStatus::Canceled
        )
    }
}

/// A quantity of one sold item to give back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemQuantity {
    pub sku: String,
    pub quantity: u32,
}

/// An earlier refund of the same sale, as far as the arithmetic cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriorRefund {
    pub amount_minor: i64,
    pub status: RefundStatus,
    pub items: Vec<ItemQuantity>,
}

/// What the cashier asks to give back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefundAsk {
    Amount(i64),
    Items(Vec<ItemQuantity>),
}

/// The sale facts that decide between void and refund.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SettlementState {
    /// The terminal reported the sale's batch settled (批结算).
    pub batch_settled: bool,
}

/// What will be done, once the request is allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundPlan {
    pub refund_type: RefundType,
    pub amount: Money,
    /// Item lines with their amounts, when asked by items.
    pub items: Vec<PlannedItem>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedItem {
    pub sku: String,
    pub quantity: u32,
    pub amount_minor: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefundError {
    #[error("amount: {0}")]
    Amount(#[from] AmountError),
    #[error("the refund asks for {requested_minor} but only {refundable_minor} is left to refund")]
    ExceedsRefundable { requested_minor: i64, refundable_minor: i64 },
    #[error("the sale has no item {sku}")]
    UnknownItem { sku: String },
    #[error("item {sku}: {requested} asked, only {remaining} left to refund")]
    ItemQuantityExceeded { sku: String, requested: u32, remaining: u32 },
    #[error("the sale was recorded without items; refund it by amount")]
    SaleHasNoItems,
    #[error("name at least one item, each with a quantity of at least 1, and each sku once")]
    BadItems,
}

/// What is still refundable on a sale: captured minus every refund that
/// counts. Never negative, even if the data were inconsistent.
pub fn refundable(sale: &Sale, priors: &[PriorRefund]) -> Result<Money, AmountError> {
    let held = held_minor(priors)?;
    Ok(Money::new((sale.amount.minor - held).max(0), sale.amount.currency))
}

/// Sum of the earlier refunds that still hold part of the sale.
pub fn held_minor(priors: &[PriorRefund]) -> Result<i64, AmountError> {
    priors
        .iter()
        .filter(|p| p.status.counts_against_sale())
        .try_fold(0i64, |acc, p| acc.checked_add(p.amount_minor).ok_or(AmountError::Overflow))
}

/// Decides what a refund request would do to a sale, or why it may not.
/// Pure: the caller holds whatever lock makes `priors` complete.
pub fn plan_refund(
    sale: &Sale,
    priors: &[PriorRefund],
    ask: &RefundAsk,
    settlement: SettlementState,
) -> Result<RefundPlan, RefundError> {
    let (amount_minor, items) = match ask {
        RefundAsk::Amount(minor) => (*minor, Vec::new()),
        RefundAsk::Items(wanted) => plan_items(sale, priors, wanted)?,
    };
    let amount = Money::positive(amount_minor, sale.amount.currency)?;
    let left = refundable(sale, priors)?;
    if amount.minor > left.minor {
        return Err(RefundError::ExceedsRefundable { requested_minor: amount.minor, refundable_minor: left.minor });
    }
    let untouched = held_minor(priors)? == 0;
    let whole_sale = amount.minor == sale.amount.minor && untouched;
    let voidable = sale.payment_method.is_card() && sale.batch_no.is_some() && !settlement.batch_settled;
    let refund_type = if whole_sale && voidable { RefundType::Void } else { RefundType::Refund };
    Ok(RefundPlan { refund_type, amount, items })
}

fn plan_items(
    sale: &Sale,
    priors: &[PriorRefund],
    wanted: &[ItemQuantity],
) -> Result<(i64, Vec<PlannedItem>), RefundError> {
    if sale.items.is_empty() {
        return Err(RefundError::SaleHasNoItems);
    }
    let mut seen = std::collections::HashSet::new();
    if wanted.is_empty() || wanted.iter().any(|w| w.quantity == 0 || !seen.insert(&w.sku)) {
        return Err(RefundError::BadItems);
    }
    let mut total: i64 = 0;
    let mut planned = Vec::with_capacity(wanted.len());
    for want in wanted {
        let line = sale
            .items
            .iter()
            .find(|l| l.sku == want.sku)
            .ok_or_else(|| RefundError::UnknownItem { sku: want.sku.clone() })?;
        let already: u32 = priors
            .iter()
            .filter(|p| p.status.counts_against_sale())
            .flat_map(|p| p.items.iter())
            .filter(|i| i.sku == want.sku)
            .map(|i| i.quantity)
            .sum();
        let remaining = line.quantity.saturating_sub(already);
        if want.quantity > remaining {
            return Err(RefundError::ItemQuantityExceeded {
                sku: want.sku.clone(),
                requested: want.quantity,
                remaining,
            });
        }
        let amount_minor = line.unit_amount_minor.checked_mul(i64::from(want.quantity)).ok_or(AmountError::Overflow)?;
        total = total.checked_add(amount_minor).ok_or(AmountError::Overflow)?;
        planned.push(PlannedItem { sku: want.sku.clone(), quantity: want.quantity, amount_minor });
    }
    Ok((total, planned))
}

#[cfg(test)]
mod tests;
