//! The outbox job runner: takes the work that commands queued in their own
//! transactions and does it, at least once, and without doing a refund's
//! money movement twice (see [`execute_refund`]).

use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use rand::Rng;
use refundry_connectors::{Outcome, ProcessorError, RefundOrder};
use refundry_core::ids::RefundId;
use refundry_core::refund::{RefundEvent, RefundStatus};
use refundry_store::Tx;
use refundry_store::model::{Job, Refund};
use serde::{Deserialize, Serialize};
use tokio::sync::{Semaphore, watch};

use crate::{Actor, App, AppError, ErrorCode, audit};

pub const EXECUTE_REFUND: &str = "refund.execute";

#[derive(Debug, Serialize, Deserialize)]
pub struct RefundJob {
    pub refund_id: String,
}

#[derive(Debug, Clone)]
pub struct RunnerConfig {
    /// A taken job is someone else's to retake after this long.
    pub lease: Duration,
    /// Jobs taken per claim.
    pub claim_batch: u32,
    /// Jobs in flight at once.
    pub concurrency: usize,
    /// Attempts before a job is set aside as dead for an operator.
    pub max_attempts: u32,
    /// First retry delay; doubles each attempt, with jitter, up to `max_backoff`.
    pub base_backoff: Duration,
    pub max_backoff: Duration,
    /// How often to look for due jobs when nobody signals new work.
    pub poll_interval: Duration,
    /// How often to expire stale approvals and forget old idempotency keys.
    pub maintenance_interval: Duration,
}

impl Default for RunnerConfig {
    fn default() -> Self {
        RunnerConfig {
            lease: Duration::from_secs(60),
            claim_batch: 64,
            concurrency: 128,
            max_attempts: 12,
            base_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
            poll_interval: Duration::from_millis(500),
            maintenance_interval: Duration::from_secs(30),
        }
    }
}

/// Delay before attempt `attempts + 1`: exponential with ±20 % jitter so
/// that many failures do not retry in lockstep.
pub fn backoff(config: &RunnerConfig, attempts: u32) -> Duration {
    let exp = config.base_backoff.saturating_mul(1u32 << attempts.saturating_sub(1).min(20));
    let capped = exp.min(config.max_backoff);
    let jitter = rand::rng().random_range(0.8..1.2);
    capped.mul_f64(jitter)
}

fn after(now: Timestamp, d: Duration) -> Timestamp {
    now.saturating_add(SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX)).unwrap_or(now)
}

pub struct JobRunner {
    app: App,
    shutdown: watch::Receiver<bool>,
}

impl JobRunner {
    pub fn new(app: App, shutdown: watch::Receiver<bool>) -> JobRunner {
        JobRunner { app, shutdown }
    }

    /// Runs until `shutdown` turns true, then waits for jobs in flight.
    pub async fn run(mut self) {
        let config = self.app.config.jobs.clone();
        let slots = Arc::new(Semaphore::new(config.concurrency));
        let mut maintained = tokio::time::Instant::now();
        loop {
            if *self.shutdown.borrow() {
                break;
            }
            if maintained.elapsed() >= config.maintenance_interval {
                maintained = tokio::time::Instant::now();
                maintain(&self.app).await;
            }
            let free = slots.available_permits().min(config.claim_batch as usize) as u32;
            let jobs = if free == 0 { Ok(Vec::new()) } else { self.claim(free, &config).await };
            let claimed = match jobs {
                Ok(jobs) => jobs,
                Err(e) => {
                    tracing::warn!(error = %e.detail, "could not claim jobs");
                    Vec::new()
                }
            };
            if claimed.is_empty() {
                tokio::select! {
                    _ = self.app.jobs_waiting.notified() => {}
                    _ = tokio::time::sleep(config.poll_interval) => {}
                    _ = self.shutdown.changed() => {}
                }
                continue;
            }
            for job in claimed {
                let Ok(permit) = Arc::clone(&slots).acquire_owned().await else { break };
                let app = self.app.clone();
                tokio::spawn(async move {
                    run_job(&app, job).await;
                    drop(permit);
                });
            }
        }
        let _ = slots.acquire_many(config.concurrency as u32).await;
    }

    async fn claim(&self, limit: u32, config: &RunnerConfig) -> Result<Vec<Job>, AppError> {
        let lease = config.lease;
        refundry_store::write(&self.app.store, move |tx| {
            let now = crate::now();
            Ok(tx.claim_jobs(now, after(now, lease), limit)?)
        })
        .await
    }
}

/// Housekeeping that is nobody's request: refunds that waited too long for
/// a supervisor expire, idempotency keys older than their time are dropped.
pub async fn maintain(app: &App) {
    match app.expire_approvals().await {
        Ok(0) => {}
        Ok(n) => tracing::info!(expired = n, "refunds expired waiting for approval"),
        Err(e) => tracing::warn!(error = %e.detail, "could not expire approvals"),
    }
    let ttl = app.config.idempotency_ttl;
    let pruned = refundry_store::write(&app.store, move |tx| {
        let cutoff = after(crate::now(), Duration::ZERO)
            .saturating_sub(SignedDuration::try_from(ttl).unwrap_or(SignedDuration::MAX))
            .unwrap_or(Timestamp::UNIX_EPOCH);
        Ok::<_, AppError>(tx.prune_idempotency(cutoff)?)
    })
    .await;
    if let Err(e) = pruned {
        tracing::warn!(error = %e.detail, "could not prune idempotency keys");
    }
}

/// Runs one job to its next resting point and records the result.
pub async fn run_job(app: &App, job: Job) {
    let result = match job.kind.as_str() {
        EXECUTE_REFUND => execute_refund(app, &job).await,
        other => Err(AppError::new(ErrorCode::Internal, format!("unknown job kind {other}"))),
    };
    if let Err(e) = result {
        let config = &app.config.jobs;
        let id = job.id;
        let error = e.detail.clone();
        let give_up = job.attempts >= config.max_attempts;
        let delay = backoff(config, job.attempts);
        let saved = refundry_store::write(&app.store, move |tx| {
            let now = crate::now();
            if give_up {
                tx.bury_job(id, now, &error)?;
            } else {
                tx.reschedule_job(id, after(now, delay), &error)?;
            }
            Ok::<_, AppError>(())
        })
        .await;
        metrics::counter!("refundry_job_failures_total", "kind" => job.kind.clone()).increment(1);
        tracing::warn!(job = job.id, kind = %job.kind, attempts = job.attempts, give_up, error = %e.detail, "job failed");
        if let Err(e) = saved {
            tracing::error!(job = job.id, error = %e.detail, "could not record a job failure; its lease will expire");
        }
    }
}

enum Step {
    Send(RefundOrder),
    /// It was sent before and the answer was never recorded: ask first.
    Resume(RefundOrder),
    Done,
}

/// Executes a refund at the acquirer. The refund moves to `processing`
/// (committed) before anything is sent; finding it already `processing`
/// means an earlier attempt may have reached the acquirer, so the outcome
/// is asked for before anything is sent again.
async fn execute_refund(app: &App, job: &Job) -> Result<(), AppError> {
    let payload: RefundJob = serde_json::from_str(&job.payload)
        .map_err(|e| AppError::new(ErrorCode::Internal, format!("bad job payload: {e}")))?;
    let refund_id = RefundId::parse(&payload.refund_id)
        .map_err(|e| AppError::new(ErrorCode::Internal, format!("bad job payload: {e}")))?;
    let job_id = job.id;
    let step = refundry_store::write(&app.store, move |tx| start_attempt(tx, refund_id, job_id)).await?;
    let outcome = match step {
        Step::Done => return Ok(()),
        Step::Send(order) => app.processor.submit(&order).await,
        Step::Resume(order) => match app.processor.inquire(&order.reference).await {
            Ok(Some(outcome)) => Ok(outcome),
            Ok(None) => app.processor.submit(&order).await,
            Err(e) => Err(e),
        },
    };
    let outcome = match outcome {
        Ok(outcome) => outcome,
        // unknown or not sent: the refund stays `processing` and the retry
        // will inquire first
        Err(e @ (ProcessorError::Timeout | ProcessorError::Unavailable(_))) => {
            return Err(AppError::new(ErrorCode::Unavailable, e.to_string()));
        }
    };
    let processor = app.processor.name();
    refundry_store::write(&app.store, move |tx| finish_attempt(tx, refund_id, job_id, &outcome, processor)).await
}

fn load(tx: &mut dyn Tx, id: RefundId) -> Result<Refund, AppError> {
    tx.lock_refund(id)?
        .ok_or_else(|| AppError::new(ErrorCode::Internal, format!("job names refund {id}, which does not exist")))
}

fn start_attempt(tx: &mut dyn Tx, id: RefundId, job_id: i64) -> Result<Step, AppError> {
    let mut refund = load(tx, id)?;
    let resume = match refund.status {
        RefundStatus::Pending => false,
        RefundStatus::Processing => true,
        // approved later, or finished by an earlier run of this job
        RefundStatus::RequiresApproval
        | RefundStatus::Succeeded
        | RefundStatus::Failed
        | RefundStatus::Rejected
        | RefundStatus::Expired
        | RefundStatus::Canceled => {
            tx.complete_job(job_id, crate::now())?;
            return Ok(Step::Done);
        }
    };
    let sale = tx
        .find_sale(refund.merchant_id, refund.sale_id)?
        .ok_or_else(|| AppError::new(ErrorCode::Internal, format!("refund {id} names a missing sale")))?;
    let order = RefundOrder {
        reference: refund.id.to_string(),
        refund_type: refund.refund_type,
        amount: refund.amount,
        terminal_id: sale.terminal_id.clone(),
        original_rrn: sale.rrn.clone(),
        original_auth_code: sale.auth_code.clone(),
        original_voucher_no: sale.voucher_no.clone(),
        original_batch_no: sale.batch_no.clone(),
    };
    if resume {
        return Ok(Step::Resume(order));
    }
    let now = crate::now();
    refund.status = refund.status.on(RefundEvent::Send).map_err(illegal)?;
    refund.attempts += 1;
    refund.updated_at = now;
    tx.update_refund(&refund)?;
    let actor = Actor::system(refund.merchant_id, "job-runner");
    let data = serde_json::json!({"status": "processing", "attempt": refund.attempts});
    audit::record(tx, &actor, "refund.sent", &refund.id.to_string(), data, now)?;
    Ok(Step::Send(order))
}

fn finish_attempt(
    tx: &mut dyn Tx,
    id: RefundId,
    job_id: i64,
    outcome: &Outcome,
    processor: &str,
) -> Result<(), AppError> {
    let mut refund = load(tx, id)?;
    let now = crate::now();
    if refund.status != RefundStatus::Processing {
        // another runner recorded the answer first
        tx.complete_job(job_id, now)?;
        return Ok(());
    }
    let (event, action, data) = match outcome {
        Outcome::Approved { acquirer_reference } => {
            refund.acquirer_reference = Some(acquirer_reference.clone());
            refund.completed_at = Some(now);
            (
                RefundEvent::Succeed,
                "refund.succeeded",
                serde_json::json!({"acquirer_reference": acquirer_reference, "processor": processor}),
            )
        }
        Outcome::Declined { reason, response_code } => {
            refund.failure_reason = Some(reason.clone());
            (
                RefundEvent::Fail,
                "refund.failed",
                serde_json::json!({"failure_reason": reason, "response_code": response_code, "processor": processor}),
            )
        }
    };
    refund.status = refund.status.on(event).map_err(illegal)?;
    refund.updated_at = now;
    tx.update_refund(&refund)?;
    tx.complete_job(job_id, now)?;
    let actor = Actor::system(refund.merchant_id, "job-runner");
    audit::record(tx, &actor, action, &refund.id.to_string(), data, now)?;
    metrics::counter!("refundry_refunds_finished_total", "status" => refund.status.as_str()).increment(1);
    Ok(())
}

fn illegal(e: refundry_core::refund::IllegalTransition) -> AppError {
    AppError::new(ErrorCode::Internal, e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let config = RunnerConfig::default();
        let first = backoff(&config, 1);
        assert!(first >= Duration::from_millis(800) && first <= Duration::from_millis(1200));
        let fifth = backoff(&config, 5);
        assert!(fifth >= Duration::from_millis(12_800) && fifth <= Duration::from_millis(19_200));
        assert!(backoff(&config, 40) <= config.max_backoff.mul_f64(1.2));
    }
}
