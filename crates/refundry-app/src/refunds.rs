//! Asking for money back: voids and refunds, the policy's decision, and the
//! supervisor's approval.

use jiff::SignedDuration;
use refundry_core::ids::{RefundId, SaleId};
use refundry_core::policy::Decision;
use refundry_core::refund::{
    ItemQuantity, PriorRefund, RefundAsk, RefundEvent, RefundPlan, RefundReason, RefundStatus, SettlementState,
    plan_refund,
};
use refundry_store::Tx;
use refundry_store::model::{NewJob, Refund, RefundQuery, Sale};
use refundry_store::repo::{HoldingsAndDisputes, KeyOrSale};

use crate::idempotency::{self, Idempotency, Replay};
use crate::jobs::{EXECUTE_REFUND, RefundJob};
use crate::policy::{decide_refund, decision_json};
use crate::sales::{Page, visible_sale};
use crate::{Actor, App, AppError, ErrorCode, audit};

const ENDPOINT: &str = "POST /v1/refunds";

/// The longest free-text note on a refund or a decision.
pub const MAX_NOTE_CHARS: usize = 500;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundRequest {
    pub sale_id: SaleId,
    pub ask: RefundAsk,
    pub reason: RefundReason,
    pub note: Option<String>,
    /// Whom to send the confirmation to; sealed at rest.
    pub customer: Option<crate::notify::CustomerContact>,
    /// The acquirer's token of the card presented for the refund, if any;
    /// only compared by its keyed fingerprint, never kept.
    pub card_token: Option<String>,
}

/// What a request would do, without doing it.
#[derive(Debug, Clone)]
pub struct Preview {
    pub plan: RefundPlan,
    pub decision: Decision,
    pub policy_version: i64,
    pub refundable_minor: i64,
    /// Abuse rules that fired with `alert`: the refund goes on, and each is
    /// recorded as `refund.abuse_alert`.
    pub alerts: Vec<refundry_core::detect::AbuseSignal>,
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

fn check_note(field: &str, note: Option<&String>) -> Result<(), AppError> {
    if note.is_some_and(|n| n.chars().count() > MAX_NOTE_CHARS) {
        return Err(AppError::validation(field, format!("{field} is longer than {MAX_NOTE_CHARS} characters")));
    }
    Ok(())
}

/// How [`evaluate`] reads the sale.
#[expect(clippy::large_enum_variant, reason = "one per request, moved once: a box would cost more than the copy")]
enum SaleRead {
    /// As it is, holding nothing: a preview.
    Plain,
    /// Already read, locked until commit, with its holdings as read under
    /// the lock (`None`: no such sale): a new refund. The lock keeps what
    /// holds part of the sale as read until the refund is written.
    Locked(Option<(Sale, HoldingsAndDisputes)>),
}

/// Plans the request and asks the policy.
fn evaluate(
    tx: &mut dyn Tx,
    actor: &Actor,
    request: &RefundRequest,
    config: &crate::AppConfig,
    activity: &crate::abuse::ActivitySnapshot,
    read: SaleRead,
) -> Result<(Sale, Preview), AppError> {
    let merchant = actor.merchant_id;
    let (sale, held) = match read {
        SaleRead::Locked(locked) => {
            let (sale, held) = locked.unzip();
            (visible_sale(actor, sale, request.sale_id)?, held)
        }
        SaleRead::Plain => (visible_sale(actor, tx.find_sale(merchant, request.sale_id)?, request.sale_id)?, None),
    };
    let priors = match held {
        Some(held) => priors_of(held)?,
        None => holdings(tx, &sale)?,
    };
    let batch_settled = match &sale.batch_no {
        Some(batch) => tx.find_batch(merchant, &sale.terminal_id, batch)?.is_some(),
        None => false,
    };
    let plan = plan_refund(&sale, &priors, &request.ask, SettlementState { batch_settled })?;
    let asked = crate::policy::Asked {
        sale: &sale,
        priors: &priors,
        amount_minor: plan.amount.minor,
        reason: request.reason,
        refund_card_token: request.card_token.as_deref(),
        cashiers: crate::abuse::cashiers_of(activity, merchant, sale.store_id),
    };
    let (policy_version, decision, alerts) = decide_refund(tx, actor, &asked, config)?;
    let decision = crate::self_service::reviewed(actor, decision);
    let refundable_minor = refundry_core::refund::refundable(&sale, &priors).map(|m| m.minor).unwrap_or(0);
    Ok((sale, Preview { plan, decision, policy_version, refundable_minor, alerts }))
}

/// What already holds part of the sale: its refunds, and its lost or
/// accepted disputes. An open dispute refuses the refund (no double loss).
fn holdings(tx: &mut dyn Tx, sale: &Sale) -> Result<Vec<PriorRefund>, AppError> {
    priors_of(tx.holdings_and_disputes(sale)?)
}

/// [`holdings`], from what the store read.
fn priors_of((mut priors, disputes): HoldingsAndDisputes) -> Result<Vec<PriorRefund>, AppError> {
    let disputes = crate::disputes::priors(&disputes)?;
    if let Some(reason) = refundry_core::dispute::sale_disputed(&disputes) {
        return Err(AppError::new(ErrorCode::SaleDisputed, reason.en).with("zh", reason.zh));
    }
    priors.extend(disputes.iter().filter(|d| d.state.counts_against_sale()).map(|d| PriorRefund {
        amount_minor: d.amount.minor,
        status: RefundStatus::Succeeded,
        items: Vec::new(),
    }));
    Ok(priors)
}

/// How far ahead of this server's clock a reported arrival may be: the
/// clock of whoever reports it (a bank, a settlement file) runs apart.
const ARRIVAL_CLOCK_SLACK: jiff::SignedDuration = jiff::SignedDuration::from_mins(5);

/// Money reaches the customer after the acquirer took the refund and not
/// after now: a time outside that is a typo or a wrong row of a statement,
/// and would skew how long refunds are reported to take.
fn check_arrival(refund: &Refund, at: jiff::Timestamp, now: jiff::Timestamp) -> Result<(), AppError> {
    let completed = refund.completed_at.unwrap_or(refund.created_at);
    if at < completed {
        return Err(AppError::validation(
            "arrived_at",
            format!("arrived_at is before the refund was completed ({completed})"),
        )
        .with("zh", "到账时间早于退款完成时间"));
    }
    if at > now.saturating_add(ARRIVAL_CLOCK_SLACK).unwrap_or(now) {
        return Err(
            AppError::validation("arrived_at", "arrived_at is in the future").with("zh", "到账时间晚于当前时间")
        );
    }
    Ok(())
}

/// Counts a refund its own request settled (cash at the counter), once
/// committed: a refund that left the request final was settled in it.
pub(crate) fn settled_now(refund: &Refund) {
    if refund.status.is_final() {
        crate::jobs::count_finished(refund.status);
    }
}

fn rejected(decision: &Decision) -> AppError {
    let reasons: Vec<serde_json::Value> = decision
        .reasons
        .iter()
        .filter(|r| r.outcome == refundry_core::policy::Outcome::Reject)
        .map(|r| serde_json::json!({"code": r.code, "en": r.en, "zh": r.zh}))
        .collect();
    let detail =
        decision.reasons.iter().find(|r| r.outcome == refundry_core::policy::Outcome::Reject).map(|r| r.en.clone());
    AppError::new(
        ErrorCode::RefundRejectedByPolicy,
        detail.unwrap_or_else(|| "the refund policy does not allow this refund".into()),
    )
    .with("reasons", reasons)
}

impl App {
    /// Creates a void or refund for (part of) a sale, in one transaction:
    /// the refund with its policy decision, its audit event, its outbox job
    /// (unless it must wait for a supervisor) and the idempotency record
    /// commit together or not at all.
    pub async fn request_refund(
        &self,
        actor: &Actor,
        request: RefundRequest,
        idem: Option<Idempotency<Refund>>,
    ) -> Result<Replay<Refund>, AppError> {
        check_note("note", request.note.as_ref())?;
        let actor = actor.clone();
        let config = self.config.clone();
        let activity = self.cashier_activity.snapshot();
        let answer = refundry_store::write(&self.store, move |tx| {
            let merchant = actor.merchant_id;
            // the key's lookup goes to the store together with the sale's
            // lock; the key is still answered first
            let (used, locked) = match &idem {
                Some(idem) => match tx.find_key_or_lock_sale(merchant, ENDPOINT, &idem.key, request.sale_id)? {
                    KeyOrSale::Used(record) => (Some(record), None),
                    KeyOrSale::New(locked) => (None, locked),
                },
                None => (None, tx.lock_sale_with_holdings(merchant, request.sale_id)?),
            };
            idempotency::once_found(tx, merchant, ENDPOINT, idem.as_ref(), used, |tx| {
                refund_locked_sale(tx, &actor, &request, &config, &activity, locked)
            })
        })
        .await?;
        idempotency::count_replay(&answer);
        if let Replay::Fresh(refund) = &answer {
            metrics::counter!("refundry_refunds_requested_total", "type" => refund.refund_type.as_str(), "status" => refund.status.as_str())
                .increment(1);
            settled_now(refund);
            self.jobs_waiting.notify_one();
        }
        Ok(answer)
    }

    /// The plan and the policy's decision, changing nothing.
    pub async fn preview_refund(&self, actor: &Actor, request: RefundRequest) -> Result<Preview, AppError> {
        let (actor, config, activity) = (actor.clone(), self.config.clone(), self.cashier_activity.snapshot());
        refundry_store::read(&self.store, move |tx| {
            evaluate(tx, &actor, &request, &config, &activity, SaleRead::Plain).map(|(_, p)| p)
        })
        .await
    }

    pub async fn refund(&self, actor: &Actor, id: RefundId) -> Result<Refund, AppError> {
        let actor = actor.clone();
        refundry_store::read(&self.store, move |tx| visible_refund(tx, &actor, id)).await
    }

    pub async fn list_refunds(&self, actor: &Actor, mut query: RefundQuery) -> Result<Page<Refund>, AppError> {
        let limit = query.limit.clamp(1, crate::sales::MAX_PAGE);
        query.limit = limit + 1;
        query.store_id = actor.store_pin.or(query.store_id);
        let merchant = actor.merchant_id;
        refundry_store::read(&self.store, move |tx| Ok(Page::of(tx.list_refunds(merchant, &query)?, limit))).await
    }

    /// A supervisor approves a waiting refund: it goes to the acquirer. The
    /// approver is a person, and never the one who asked (four eyes).
    pub async fn approve_refund(&self, actor: &Actor, id: RefundId, note: Option<String>) -> Result<Refund, AppError> {
        check_note("note", note.as_ref())?;
        let (actor, config) = (actor.clone(), self.config.clone());
        let refund = refundry_store::write(&self.store, move |tx| {
            let mut refund = awaiting_decision(tx, &actor, id)?;
            refund.status = refund.status.on(RefundEvent::Approve).map_err(|_| not_awaiting(&refund))?;
            let now = crate::now();
            refund.decided_by = Some(actor.identity());
            refund.decision_note = note.clone();
            refund.updated_at = now;
            let approved_as = refund.status;
            let sale = crate::jobs::find_sale_of(tx, &refund)?;
            let settled = crate::jobs::settle_at_counter(&mut refund, &sale, &config)?;
            tx.update_refund(&refund)?;
            if settled.is_none() {
                enqueue_execution(tx, &refund)?;
            }
            let data = serde_json::json!({"before": {"status": "requires_approval"}, "after": {"status": approved_as.as_str()}, "note": note});
            audit::record(tx, &actor, "refund.approved", &refund.id.to_string(), data, now)?;
            if let Some(settled) = settled {
                crate::jobs::record_counter_settlement(tx, &actor, &refund, settled, &config)?;
            }
            Ok::<_, AppError>(refund)
        })
        .await?;
        settled_now(&refund);
        self.jobs_waiting.notify_one();
        Ok(refund)
    }

    /// A supervisor turns a waiting refund down, saying why.
    pub async fn reject_refund(&self, actor: &Actor, id: RefundId, note: String) -> Result<Refund, AppError> {
        if note.trim().is_empty() {
            return Err(AppError::validation("note", "say why the refund is rejected"));
        }
        check_note("note", Some(&note))?;
        let (actor, config) = (actor.clone(), self.config.clone());
        refundry_store::write(&self.store, move |tx| {
            let mut refund = awaiting_decision(tx, &actor, id)?;
            refund.status = refund.status.on(RefundEvent::Reject).map_err(|_| not_awaiting(&refund))?;
            let now = crate::now();
            refund.decided_by = Some(actor.identity());
            refund.decision_note = Some(note.clone());
            refund.updated_at = now;
            refund.completed_at = Some(now);
            tx.update_refund(&refund)?;
            crate::policy::hold_daily(tx, &refund, -1, &config)?;
            let data = serde_json::json!({"before": {"status": "requires_approval"}, "after": {"status": "rejected"}, "note": note});
            audit::record(tx, &actor, "refund.rejected", &refund.id.to_string(), data, now)?;
            Ok(refund)
        })
        .await
    }

    /// Expires refunds that waited for a supervisor longer than allowed;
    /// they stop holding part of their sale. Returns how many.
    pub async fn expire_approvals(&self) -> Result<usize, AppError> {
        let config = self.config.clone();
        refundry_store::write(&self.store, move |tx| {
            let now = crate::now();
            let due = tx.expired_approvals(now, 200)?;
            let mut expired = 0;
            for candidate in due {
                // a supervisor may have decided since the list was read
                let Some(mut refund) =
                    tx.lock_refund(candidate.id)?.filter(|r| r.status == RefundStatus::RequiresApproval)
                else {
                    continue;
                };
                expired += 1;
                refund.status = refund
                    .status
                    .on(RefundEvent::Expire)
                    .map_err(|e| AppError::new(ErrorCode::Internal, e.to_string()))?;
                refund.updated_at = now;
                refund.completed_at = Some(now);
                tx.update_refund(&refund)?;
                crate::policy::hold_daily(tx, &refund, -1, &config)?;
                let actor = Actor::system(refund.merchant_id, "approval-expiry");
                let data =
                    serde_json::json!({"before": {"status": "requires_approval"}, "after": {"status": "expired"}});
                audit::record(tx, &actor, "refund.expired", &refund.id.to_string(), data, now)?;
            }
            Ok(expired)
        })
        .await
    }
}

fn not_awaiting(refund: &Refund) -> AppError {
    AppError::new(
        ErrorCode::RefundNotAwaitingApproval,
        format!("the refund is {}, not waiting for approval", refund.status),
    )
    .with("status", refund.status.as_str())
}

fn visible_refund(tx: &mut dyn Tx, actor: &Actor, id: RefundId) -> Result<Refund, AppError> {
    let refund = tx.find_refund(actor.merchant_id, id)?.ok_or_else(|| not_found(id))?;
    if actor.store_pin.is_some() || actor.terminal_pin.is_some() {
        let sale = tx.find_sale(actor.merchant_id, refund.sale_id)?;
        visible_sale(actor, sale, refund.sale_id).map_err(|_| not_found(id))?;
    }
    Ok(refund)
}

/// Loads a refund a supervisor may decide on, with every four-eyes check.
fn awaiting_decision(tx: &mut dyn Tx, actor: &Actor, id: RefundId) -> Result<Refund, AppError> {
    visible_refund(tx, actor, id)?;
    // two supervisors deciding at once: the second sees the first's answer
    let refund = tx.lock_refund(id)?.ok_or_else(|| not_found(id))?;
    if actor.person().is_none() {
        return Err(AppError::new(
            ErrorCode::Forbidden,
            "an approval is a person's decision: log in, or name the supervisor as operator",
        ));
    }
    if refund.requested_by == actor.identity() {
        return Err(AppError::new(
            ErrorCode::ApproverIsRequester,
            "a refund cannot be approved or rejected by the person who asked for it",
        ));
    }
    if refund.status != RefundStatus::RequiresApproval {
        return Err(not_awaiting(&refund));
    }
    if refund.approval_expires_at.is_some_and(|at| at <= crate::now()) {
        return Err(AppError::new(
            ErrorCode::ApprovalExpired,
            "the refund waited too long for approval; ask for it again",
        ));
    }
    Ok(refund)
}

fn enqueue_execution(tx: &mut dyn Tx, refund: &Refund) -> Result<(), AppError> {
    let payload = serde_json::to_string(&RefundJob { refund_id: refund.id.to_string() })
        .map_err(|e| AppError::new(ErrorCode::Internal, format!("cannot encode job: {e}")))?;
    tx.enqueue(&NewJob {
        merchant_id: Some(refund.merchant_id),
        kind: EXECUTE_REFUND.to_owned(),
        payload,
        run_after: refund.updated_at,
    })?;
    Ok(())
}

pub(crate) fn request_refund_tx(
    tx: &mut dyn Tx,
    actor: &Actor,
    request: &RefundRequest,
    config: &crate::AppConfig,
    activity: &crate::abuse::ActivitySnapshot,
) -> Result<Refund, AppError> {
    let locked = tx.lock_sale_with_holdings(actor.merchant_id, request.sale_id)?;
    refund_locked_sale(tx, actor, request, config, activity, locked)
}

/// [`request_refund_tx`], with the sale already locked and read.
fn refund_locked_sale(
    tx: &mut dyn Tx,
    actor: &Actor,
    request: &RefundRequest,
    config: &crate::AppConfig,
    activity: &crate::abuse::ActivitySnapshot,
    locked: Option<(Sale, HoldingsAndDisputes)>,
) -> Result<Refund, AppError> {
    let (sale, preview) = evaluate(tx, actor, request, config, activity, SaleRead::Locked(locked))?;
    if preview.decision.is_rejected() {
        return Err(rejected(&preview.decision));
    }
    let now = crate::now();
    let needs_approval = preview.decision.needs_approval();
    let ttl = SignedDuration::try_from(config.approval_ttl).unwrap_or(SignedDuration::MAX);
    let id = RefundId::generate();
    let customer_contact = request.customer.as_ref().map(|c| crate::notify::seal(&config.vault, c, id)).transpose()?;
    let mut refund = Refund {
        id,
        merchant_id: actor.merchant_id,
        sale_id: sale.id,
        refund_type: preview.plan.refund_type,
        status: if needs_approval { RefundStatus::RequiresApproval } else { RefundStatus::Pending },
        amount: preview.plan.amount,
        reason: request.reason,
        note: request.note.clone(),
        items: preview.plan.items,
        failure_reason: None,
        acquirer_reference: None,
        attempts: 0,
        requested_by: actor.identity(),
        policy_version: preview.policy_version,
        decision: decision_json(&preview.decision),
        approval_expires_at: needs_approval.then(|| now.saturating_add(ttl).unwrap_or(now)),
        decided_by: None,
        decision_note: None,
        stan: None,
        expected_arrival_at: None,
        arrived_at: None,
        customer_contact,
        created_at: now,
        updated_at: now,
        completed_at: None,
    };
    let requested_as = refund.status;
    let settled = if needs_approval { None } else { crate::jobs::settle_at_counter(&mut refund, &sale, config)? };
    tx.insert_refund(&refund)?;
    crate::policy::hold_daily(tx, &refund, 1, config)?;
    if !needs_approval && settled.is_none() {
        enqueue_execution(tx, &refund)?;
    }
    let data = serde_json::json!({
        "sale_id": sale.id.to_string(),
        "type": refund.refund_type.as_str(),
        "amount": refund.amount.minor,
        "currency": refund.amount.currency.code(),
        "reason": refund.reason.as_str(),
        "after": {"status": requested_as.as_str()},
        "decision": {"outcome": preview.decision.outcome.as_str(), "reasons": preview.decision.codes(), "policy_version": preview.policy_version},
    });
    audit::record(tx, actor, "refund.requested", &refund.id.to_string(), data, now)?;
    for alert in &preview.alerts {
        let data = crate::abuse::alert_data(&refund, alert);
        audit::record(tx, actor, "refund.abuse_alert", &refund.id.to_string(), data, now)?;
    }
    if let Some(settled) = settled {
        crate::jobs::record_counter_settlement(tx, actor, &refund, settled, config)?;
    }
    Ok(refund)
}

impl App {
    /// Sends a failed refund again: the same refund, a new attempt (never a
    /// second refund). It must still fit in the sale, as when it was made.
    pub async fn retry_refund(&self, actor: &Actor, id: RefundId) -> Result<Refund, AppError> {
        let (actor, config) = (actor.clone(), self.config.clone());
        let refund = refundry_store::write(&self.store, move |tx| {
            visible_refund(tx, &actor, id)?;
            let mut refund = tx.lock_refund(id)?.ok_or_else(|| not_found(id))?;
            let next = refund.status.on(RefundEvent::Retry).map_err(|_| {
                AppError::new(ErrorCode::RefundNotRetryable, format!("a {} refund cannot be sent again", refund.status))
                    .with("refund_status", refund.status.as_str())
            })?;
            // a failed refund released its amount; taking it back must fit
            let (sale, held) =
                tx.lock_sale_with_holdings(refund.merchant_id, refund.sale_id)?.ok_or_else(|| not_found(id))?;
            let priors = priors_of(held)?;
            let left = refundry_core::refund::refundable(&sale, &priors).map(|m| m.minor).unwrap_or(0);
            if refund.amount.minor > left {
                return Err(AppError::from(refundry_core::refund::RefundError::ExceedsRefundable {
                    requested_minor: refund.amount.minor,
                    refundable_minor: left,
                }));
            }
            let now = crate::now();
            refund.status = next;
            refund.failure_reason = None;
            refund.updated_at = now;
            refund.completed_at = None;
            let attempts_so_far = refund.attempts;
            let settled = crate::jobs::settle_at_counter(&mut refund, &sale, &config)?;
            tx.update_refund(&refund)?;
            crate::policy::hold_daily(tx, &refund, 1, &config)?;
            if settled.is_none() {
                enqueue_execution(tx, &refund)?;
            }
            let data = serde_json::json!({"before": {"status": "failed"}, "after": {"status": "pending"}, "attempts_so_far": attempts_so_far});
            audit::record(tx, &actor, "refund.retried", &refund.id.to_string(), data, now)?;
            if let Some(settled) = settled {
                crate::jobs::record_counter_settlement(tx, &actor, &refund, settled, &config)?;
            }
            Ok::<_, AppError>(refund)
        })
        .await?;
        settled_now(&refund);
        self.jobs_waiting.notify_one();
        Ok(refund)
    }

    /// Records that the money reached the customer (from a settlement file,
    /// a bank statement or the customer's word).
    pub async fn mark_arrived(
        &self,
        actor: &Actor,
        id: RefundId,
        at: Option<jiff::Timestamp>,
    ) -> Result<Refund, AppError> {
        let actor = actor.clone();
        refundry_store::write(&self.store, move |tx| {
            visible_refund(tx, &actor, id)?;
            let mut refund = tx.lock_refund(id)?.ok_or_else(|| not_found(id))?;
            if refund.status != RefundStatus::Succeeded {
                return Err(AppError::new(ErrorCode::RefundNotSucceeded, "only a succeeded refund can arrive")
                    .with("refund_status", refund.status.as_str()));
            }
            let now = crate::now();
            let at = at.unwrap_or(now);
            check_arrival(&refund, at, now)?;
            let before = refund.arrived_at.map(|t| t.to_string());
            refund.arrived_at = Some(at);
            refund.updated_at = now;
            tx.update_refund(&refund)?;
            let data = serde_json::json!({"before": {"arrived_at": before}, "after": {"arrived_at": refund.arrived_at.map(|t| t.to_string())}});
            audit::record(tx, &actor, "refund.arrived", &refund.id.to_string(), data, now)?;
            Ok(refund)
        })
        .await
    }

    /// Every call made to the acquirer about a refund.
    pub async fn acquirer_calls(
        &self,
        actor: &Actor,
        id: RefundId,
    ) -> Result<Vec<refundry_store::model::AcquirerCall>, AppError> {
        let actor = actor.clone();
        refundry_store::read(&self.store, move |tx| {
            visible_refund(tx, &actor, id)?;
            Ok(tx.calls_of(id)?)
        })
        .await
    }
}

/// What a refund slip shows, gathered in one read.
#[derive(Debug, Clone)]
pub struct SlipFacts {
    pub refund: Refund,
    pub sale: Sale,
    pub merchant_name: String,
    pub store_name: String,
    /// The customer's contact, masked (`w***@example.cn`, `138****8000`).
    pub contact_masked: Option<String>,
}

/// How the caller words a slip: the reason, and the people named on it.
pub struct SlipWording {
    pub reason: String,
    pub operator: String,
    pub approver: Option<String>,
    pub locale: refundry_slips::Locale,
}

impl SlipFacts {
    /// The slip, with times in `time_zone`.
    pub fn slip(&self, wording: SlipWording, time_zone: jiff::tz::TimeZone) -> refundry_slips::Slip {
        use refundry_slips::{OriginalSale, Slip, SlipItem, Tender};
        let (r, sale) = (&self.refund, &self.sale);
        Slip {
            merchant_name: self.merchant_name.clone(),
            store_name: self.store_name.clone(),
            terminal_id: sale.terminal_id.clone(),
            refund_id: r.id,
            refund_type: r.refund_type,
            status: r.status,
            amount: r.amount,
            reason: wording.reason,
            items: r.items.iter().map(|i| SlipItem::planned(sale, i)).collect(),
            original: OriginalSale::of(sale),
            tender: Tender::from(&sale.payment_method),
            created_at: r.created_at,
            completed_at: r.completed_at,
            operator: wording.operator,
            approver: wording.approver,
            customer_contact_masked: self.contact_masked.clone(),
            time_zone,
            locale: wording.locale,
        }
    }
}

impl App {
    pub async fn slip_facts(&self, actor: &Actor, id: RefundId) -> Result<SlipFacts, AppError> {
        let actor = actor.clone();
        let (refund, sale, merchant_name, store_name) = refundry_store::read(&self.store, move |tx| {
            let refund = visible_refund(tx, &actor, id)?;
            let sale = tx.find_sale(actor.merchant_id, refund.sale_id)?.ok_or_else(|| not_found(id))?;
            let merchant = tx.all_merchants()?.into_iter().find(|m| m.id == actor.merchant_id).map(|m| m.name);
            let store = tx.find_store(actor.merchant_id, sale.store_id)?.map(|s| s.name);
            Ok::<_, AppError>((refund, sale, merchant.unwrap_or_default(), store.unwrap_or_default()))
        })
        .await?;
        let contact_masked = match &refund.customer_contact {
            None => None,
            Some(sealed) => {
                let contact = crate::notify::open_contact(&self.config.vault, sealed, refund.id)?;
                contact.email.map(|e| e.masked()).or(contact.phone.map(|p| p.masked()))
            }
        };
        Ok(SlipFacts { refund, sale, merchant_name, store_name, contact_masked })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    use super::*;
    use crate::idempotency::StoredResponse;

    /// The counters recorded so far, summed over their labels.
    fn counted(recorder: &DebuggingRecorder, name: &str) -> u64 {
        recorder
            .snapshotter()
            .snapshot()
            .into_vec()
            .into_iter()
            .filter(|(key, ..)| key.key().name() == name)
            .map(|(.., value)| match value {
                DebugValue::Counter(n) => n,
                _ => 0,
            })
            .sum()
    }

    // The counters are taken on this test's thread: the writer's thread,
    // where the transaction runs, has no recorder. A count made inside the
    // transaction (where a batch that runs its jobs again counts twice) is
    // not seen here.
    #[tokio::test]
    async fn finished_refunds_and_replays_are_counted_by_the_caller_once_committed() {
        let recorder = DebuggingRecorder::new();
        let _local = metrics::set_default_local_recorder(&recorder);
        let dir = tempfile::tempdir().unwrap();
        let store = refundry_store::sqlite::SqliteStore::open(dir.path().join("t.db"), Default::default()).unwrap();
        let sandbox = Arc::new(refundry_connectors::sandbox::SandboxAcquirer::new(std::time::Duration::ZERO));
        let app = App::new(Arc::new(store), sandbox, crate::AppConfig::default());
        let summary = crate::demo::seed(&app, 3, jiff::Timestamp::now()).await.unwrap();
        assert!(summary.refunds > 0);
        let (merchant, _) = app.default_merchant().await.unwrap();
        let actor = Actor::system(merchant.id, "test");
        let finished = app
            .list_refunds(&actor, RefundQuery { limit: 100, ..Default::default() })
            .await
            .unwrap()
            .items
            .iter()
            .filter(|r| r.status.is_final())
            .count();
        assert!(finished > 0, "the demo settles its cash refunds at the counter");
        assert_eq!(counted(&recorder, "refundry_refunds_finished_total"), finished as u64);

        // the same key twice: one refund, one replay
        let sale = app.search_sales(&actor, Default::default()).await.unwrap().items[0].sale.clone();
        for _ in 0..2 {
            let render: crate::idempotency::Render<Refund> =
                Box::new(|r: &Refund| StoredResponse { status: 201, body: r.id.to_string() });
            let request = RefundRequest {
                sale_id: sale.id,
                ask: RefundAsk::Amount(1),
                reason: RefundReason::Defective,
                note: None,
                customer: None,
                card_token: None,
            };
            let idem = Idempotency::new("k-1".into(), "POST", "/v1/refunds", b"{}", render).unwrap();
            app.request_refund(&actor, request, Some(idem)).await.unwrap();
        }
        assert_eq!(counted(&recorder, "refundry_idempotent_replays_total"), 1);
    }
}
