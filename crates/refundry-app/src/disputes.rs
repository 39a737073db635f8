//! Chargebacks and retrieval requests (退单/拒付, 调单) from the acquirer:
//! opened against a sale, moved through the core's state machine, and held
//! against the sale: while a case is open the sale cannot be refunded (no
//! double loss), and a lost or accepted case counts like a refund.

use jiff::Timestamp;
use refundry_core::dispute::{
    DisputeEvent, DisputeStage, DisputeState, DisputeStatus, Network, PriorDispute, RefundRecord, categorize,
    refund_as_evidence,
};
use refundry_core::ids::{DisputeId, SaleId};
use refundry_core::money::Money;
use refundry_store::Tx;
use refundry_store::model::DisputeRecord;

use crate::sales::{Page, visible_sale};
use crate::{Actor, App, AppError, ErrorCode, audit};

/// A case as the acquirer reports it.
#[derive(Debug, Clone)]
pub struct NewDispute {
    pub sale_id: SaleId,
    /// The acquirer's case number: importing the same case again changes nothing.
    pub case_ref: String,
    pub network: Network,
    pub reason_code: String,
    /// `retrieval_request` (调单) or `chargeback`.
    pub stage: DisputeStage,
    pub amount_minor: i64,
    pub due_by: Timestamp,
    pub note: Option<String>,
}

fn state_of(d: &DisputeRecord) -> Result<DisputeState, AppError> {
    let corrupt = || AppError::new(ErrorCode::Internal, format!("dispute {} has an unknown state", d.id));
    let stage = DisputeStage::parse(&d.stage).ok_or_else(corrupt)?;
    let status = DisputeStatus::parse(&d.status).ok_or_else(corrupt)?;
    DisputeState::new(stage, status).ok_or_else(corrupt)
}

fn network_of(d: &DisputeRecord) -> Network {
    Network::parse(&d.network).unwrap_or(Network::Other)
}

/// The sale's cases as the refund arithmetic sees them.
pub(crate) fn priors(tx: &mut dyn Tx, actor: &Actor, sale: SaleId) -> Result<Vec<PriorDispute>, AppError> {
    tx.disputes_of_sale(actor.merchant_id, sale)?
        .iter()
        .map(|d| Ok(PriorDispute { case_ref: d.case_ref.clone(), state: state_of(d)?, amount: d.amount }))
        .collect()
}

fn not_found(id: DisputeId) -> AppError {
    AppError::new(ErrorCode::DisputeNotFound, format!("no dispute {id}"))
}

impl App {
    /// Opens a case, or answers with the existing one for the same case
    /// number. The audit event says when the sale's refunds already answer it.
    pub async fn open_dispute(&self, actor: &Actor, new: NewDispute) -> Result<DisputeRecord, AppError> {
        crate::sales::check_ref("case_ref", &new.case_ref, 40)?;
        if new.reason_code.is_empty() || new.reason_code.len() > 16 {
            return Err(AppError::validation("reason_code", "reason_code must be 1 to 16 characters"));
        }
        let actor = actor.clone();
        refundry_store::write(&self.store, move |tx| {
            audit::lock_chain(tx, actor.merchant_id)?;
            if let Some(existing) = tx.find_dispute_by_case(actor.merchant_id, &new.case_ref)? {
                return Ok(existing);
            }
            let sale = tx.lock_sale(actor.merchant_id, new.sale_id)?;
            let sale = visible_sale(&actor, sale, new.sale_id)?;
            let amount = Money::positive(new.amount_minor, sale.amount.currency)
                .map_err(|e| AppError::from_amount("amount", e))?;
            if amount.minor > sale.amount.minor {
                return Err(AppError::validation("amount", "a dispute cannot be for more than the sale"));
            }
            let now = crate::now();
            let state = DisputeState::opened(new.stage);
            let record = DisputeRecord {
                id: DisputeId::generate(),
                merchant_id: actor.merchant_id,
                sale_id: sale.id,
                case_ref: new.case_ref.clone(),
                network: new.network.as_str().to_owned(),
                reason_code: new.reason_code.clone(),
                category: categorize(new.network, &new.reason_code).map(|c| c.as_str().to_owned()),
                stage: state.stage().as_str().to_owned(),
                status: state.status().as_str().to_owned(),
                amount,
                due_by: new.due_by,
                note: new.note.clone(),
                opened_at: now,
                updated_at: now,
            };
            tx.insert_dispute(&record)?;
            // a sale already refunded answers the dispute with the refund
            let refunds: Vec<RefundRecord> = tx
                .refunds_of_sale(actor.merchant_id, sale.id)?
                .iter()
                .map(|r| RefundRecord {
                    id: r.id,
                    refund_type: r.refund_type,
                    amount: r.amount,
                    status: r.status,
                    created_at: r.created_at,
                    succeeded_at: r.completed_at,
                    rrn: r.acquirer_reference.clone(),
                })
                .collect();
            let evidence = refund_as_evidence(&refunds, amount)
                .map(|e| serde_json::json!({"code": e.code, "en": e.en, "zh": e.zh}));
            let data = serde_json::json!({
                "sale_id": sale.id.to_string(), "case_ref": record.case_ref, "network": record.network,
                "reason_code": record.reason_code, "category": record.category, "amount": amount.minor,
                "after": {"stage": record.stage, "status": record.status}, "refund_evidence": evidence,
            });
            audit::record(tx, &actor, "dispute.opened", &record.id.to_string(), data, now)?;
            Ok(record)
        })
        .await
    }

    /// Moves a case: responded, escalated, evidence submitted, accepted,
    /// won, lost, pre-arbitration, past due.
    pub async fn move_dispute(
        &self,
        actor: &Actor,
        id: DisputeId,
        event: DisputeEvent,
        note: Option<String>,
    ) -> Result<DisputeRecord, AppError> {
        let actor = actor.clone();
        refundry_store::write(&self.store, move |tx| {
            audit::lock_chain(tx, actor.merchant_id)?;
            let mut record = tx.find_dispute(actor.merchant_id, id)?.ok_or_else(|| not_found(id))?;
            let before = state_of(&record)?;
            let after = before.on(network_of(&record), event).map_err(|e| {
                AppError::new(ErrorCode::DisputeTransitionNotAllowed, e.to_string())
                    .with("stage", record.stage.clone())
                    .with("dispute_status", record.status.clone())
            })?;
            let now = crate::now();
            record.stage = after.stage().as_str().to_owned();
            record.status = after.status().as_str().to_owned();
            if note.is_some() {
                record.note = note.clone();
            }
            record.updated_at = now;
            tx.update_dispute(&record)?;
            let data = serde_json::json!({
                "event": event.as_str(),
                "before": {"stage": before.stage().as_str(), "status": before.status().as_str()},
                "after": {"stage": record.stage, "status": record.status},
                "note": note,
            });
            audit::record(tx, &actor, &format!("dispute.{}", event.as_str()), &record.id.to_string(), data, now)?;
            Ok(record)
        })
        .await
    }

    pub async fn dispute(&self, actor: &Actor, id: DisputeId) -> Result<DisputeRecord, AppError> {
        let merchant = actor.merchant_id;
        refundry_store::read(&self.store, move |tx| tx.find_dispute(merchant, id)?.ok_or_else(|| not_found(id))).await
    }

    pub async fn disputes(
        &self,
        actor: &Actor,
        sale: Option<SaleId>,
        starting_after: Option<DisputeId>,
        limit: u32,
    ) -> Result<Page<DisputeRecord>, AppError> {
        let (merchant, limit) = (actor.merchant_id, limit.clamp(1, crate::sales::MAX_PAGE));
        refundry_store::read(&self.store, move |tx| {
            let rows = match sale {
                Some(sale) => {
                    let mut all = tx.disputes_of_sale(merchant, sale)?;
                    all.reverse();
                    all.into_iter()
                        .filter(|d| starting_after.is_none_or(|a| d.id < a))
                        .take(limit as usize + 1)
                        .collect()
                }
                None => tx.list_disputes(merchant, starting_after, limit + 1)?,
            };
            Ok(Page::of(rows, limit))
        })
        .await
    }
}
