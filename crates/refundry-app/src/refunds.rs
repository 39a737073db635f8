//! Asking for money back: voids and refunds.

use refundry_core::ids::{RefundId, SaleId};
use refundry_core::refund::{
    ItemQuantity, PriorRefund, RefundAsk, RefundReason, RefundStatus, SettlementState, plan_refund,
};
use refundry_store::Tx;
use refundry_store::model::{NewJob, Refund, RefundQuery};

use crate::idempotency::{self, Idempotency, Replay};
use crate::jobs::{EXECUTE_REFUND, RefundJob};
use crate::sales::Page;
use crate::{Actor, App, AppError, ErrorCode, audit};

const ENDPOINT: &str = "POST /v1/refunds";

/// The longest free-text note on a refund.
pub const MAX_NOTE_CHARS: usize = 500;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundRequest {
    pub sale_id: SaleId,
    pub ask: RefundAsk,
    pub reason: RefundReason,
    pub note: Option<String>,
}

pub(crate) fn prior_of(r: &Refund) -> PriorRefund {
    PriorRefund {
        amount_minor: r.amount.minor,
        status: r.status,
        items: r.items.iter().map(|i| ItemQuantity { sku: i.sku.clone(), quantity: i.quantity }).collect(),
    }
}

fn not_found(id: RefundId) -> AppError {
    AppError::new(ErrorCode::RefundNotFound, format!("no refund {id}"))
}

impl App {
    /// Creates a void or refund for (part of) a sale and queues it for the
    /// acquirer, in one transaction: the refund, its audit event, its
    /// outbox job and the idempotency record commit together or not at all.
    pub async fn request_refund(
        &self,
        actor: &Actor,
        request: RefundRequest,
        idem: Option<Idempotency<Refund>>,
    ) -> Result<Replay<Refund>, AppError> {
        if request.note.as_ref().is_some_and(|n| n.chars().count() > MAX_NOTE_CHARS) {
            return Err(AppError::validation("note", format!("note is longer than {MAX_NOTE_CHARS} characters")));
        }
        let actor = actor.clone();
        let answer = refundry_store::write(&self.store, move |tx| {
            if let Some(stored) = idempotency::check(tx, actor.merchant_id, ENDPOINT, idem.as_ref())? {
                return Ok(Replay::Stored(stored));
            }
            let refund = request_refund_tx(tx, &actor, &request)?;
            idempotency::remember(tx, actor.merchant_id, ENDPOINT, idem.as_ref(), &refund)?;
            Ok::<_, AppError>(Replay::Fresh(refund))
        })
        .await?;
        if let Replay::Fresh(refund) = &answer {
            metrics::counter!("refundry_refunds_requested_total", "type" => refund.refund_type.as_str()).increment(1);
            self.jobs_waiting.notify_one();
        }
        Ok(answer)
    }

    pub async fn refund(&self, actor: &Actor, id: RefundId) -> Result<Refund, AppError> {
        let merchant = actor.merchant_id;
        refundry_store::read(&self.store, move |tx| tx.find_refund(merchant, id)?.ok_or_else(|| not_found(id))).await
    }

    pub async fn list_refunds(&self, actor: &Actor, mut query: RefundQuery) -> Result<Page<Refund>, AppError> {
        let limit = query.limit.clamp(1, crate::sales::MAX_PAGE);
        query.limit = limit + 1;
        let merchant = actor.merchant_id;
        refundry_store::read(&self.store, move |tx| Ok(Page::of(tx.list_refunds(merchant, &query)?, limit))).await
    }
}

fn request_refund_tx(tx: &mut dyn Tx, actor: &Actor, request: &RefundRequest) -> Result<Refund, AppError> {
    let merchant = actor.merchant_id;
    // the lock makes the refunds read below complete until commit
    let sale = tx
        .lock_sale(merchant, request.sale_id)?
        .ok_or_else(|| AppError::new(ErrorCode::SaleNotFound, format!("no sale {}", request.sale_id)))?;
    let priors: Vec<PriorRefund> = tx.refunds_of_sale(merchant, sale.id)?.iter().map(prior_of).collect();
    let batch_settled = match &sale.batch_no {
        Some(batch) => tx.find_batch(merchant, &sale.terminal_id, batch)?.is_some(),
        None => false,
    };
    let plan = plan_refund(&sale, &priors, &request.ask, SettlementState { batch_settled })?;
    let now = crate::now();
    let refund = Refund {
        id: RefundId::generate(),
        merchant_id: merchant,
        sale_id: sale.id,
        refund_type: plan.refund_type,
        status: RefundStatus::Pending,
        amount: plan.amount,
        reason: request.reason,
        note: request.note.clone(),
        items: plan.items,
        failure_reason: None,
        acquirer_reference: None,
        attempts: 0,
        requested_by: actor.label(),
        created_at: now,
        updated_at: now,
        completed_at: None,
    };
    tx.insert_refund(&refund)?;
    let payload = serde_json::to_string(&RefundJob { refund_id: refund.id.to_string() })
        .map_err(|e| AppError::new(ErrorCode::Internal, format!("cannot encode job: {e}")))?;
    tx.enqueue(&NewJob { kind: EXECUTE_REFUND.to_owned(), payload, run_after: now })?;
    let data = serde_json::json!({
        "sale_id": sale.id.to_string(),
        "type": refund.refund_type.as_str(),
        "amount": refund.amount.minor,
        "currency": refund.amount.currency.code(),
        "reason": refund.reason.as_str(),
        "status": refund.status.as_str(),
    });
    audit::record(tx, actor, "refund.requested", &refund.id.to_string(), data, now)?;
    Ok(refund)
}
