//! A record's history for people: every audit event about a sale and its
//! refunds, and every call to the acquirer, in the order they happened.

use refundry_core::ids::{RefundId, SaleId};
use refundry_store::model::{AcquirerCall, AuditEvent};

use crate::{Actor, App, AppError};

/// The most events one timeline shows; a refund has a handful.
const MAX_EVENTS: u32 = 500;

/// What a timeline holds, oldest first.
#[derive(Debug, Clone, Default)]
pub struct Timeline {
    pub events: Vec<AuditEvent>,
    pub calls: Vec<AcquirerCall>,
}

impl App {
    /// The sale's events and those of each of its refunds.
    pub async fn sale_timeline(&self, actor: &Actor, id: SaleId) -> Result<Timeline, AppError> {
        let actor = actor.clone();
        refundry_store::read(&self.store, move |tx| {
            crate::sales::load_view(tx, &actor, id)?;
            let mut events = tx.audit_events_about(actor.merchant_id, &id.to_string(), MAX_EVENTS)?;
            for refund in tx.refunds_of_sale(actor.merchant_id, id)? {
                events.extend(tx.audit_events_about(actor.merchant_id, &refund.id.to_string(), MAX_EVENTS)?);
            }
            events.sort_by_key(|e| e.seq);
            Ok(Timeline { events, calls: Vec::new() })
        })
        .await
    }

    /// The refund's events and its acquirer calls.
    pub async fn refund_timeline(&self, actor: &Actor, id: RefundId) -> Result<Timeline, AppError> {
        let events = {
            let actor = actor.clone();
            refundry_store::read(&self.store, move |tx| {
                Ok::<_, AppError>(tx.audit_events_about(actor.merchant_id, &id.to_string(), MAX_EVENTS)?)
            })
            .await?
        };
        // checks the refund is visible to the actor
        let calls = self.acquirer_calls(actor, id).await?;
        Ok(Timeline { events, calls })
    }
}
