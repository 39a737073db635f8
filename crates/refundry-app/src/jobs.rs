//! The outbox job runner: takes the work that commands queued in their own
//! transactions and does it, at least once, and without doing a refund's
//! money movement twice (see [`execute_refund`]).

use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use rand::Rng;
use refundry_connectors::{Outcome, Processor, ProcessorError, RefundOrder};
use refundry_core::ids::{MerchantId, RefundId};
use refundry_core::refund::{RefundEvent, RefundStatus};
use refundry_core::sale::PaymentMethod;
use refundry_store::Tx;
use refundry_store::model::{AcquirerCall, Job, Refund};
use serde::{Deserialize, Serialize};
use tokio::sync::{Semaphore, watch};

use crate::stans::StanRuns;
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
            // as many as may run at once: under load a claim waits for a
            // commit like any write, and claiming fewer left slots idle
            claim_batch: 128,
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

use crate::after;

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
            if slots.available_permits() == 0 {
                // every slot is busy: claim again as soon as one frees up,
                // not at the next poll (draining a backlog waited on it)
                tokio::select! {
                    _ = slots.acquire() => {}
                    _ = self.shutdown.changed() => {}
                }
                continue;
            }
            let free = slots.available_permits().min(config.claim_batch as usize) as u32;
            let jobs = self.claim(free, &config).await;
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
/// a supervisor expire, cases past their deadline are marked, reminders of
/// near deadlines and chargeback-ratio alerts are sent, idempotency keys
/// older than their time are dropped.
pub async fn maintain(app: &App) {
    match app.expire_approvals().await {
        Ok(0) => {}
        Ok(n) => tracing::info!(expired = n, "refunds expired waiting for approval"),
        Err(e) => tracing::warn!(error = %e.detail, "could not expire approvals"),
    }
    match app.mark_overdue_disputes().await {
        Ok(0) => {}
        Ok(n) => tracing::info!(marked = n, "disputes past their deadline"),
        Err(e) => tracing::warn!(error = %e.detail, "could not mark overdue disputes"),
    }
    match app.send_deadline_reminders(crate::now()).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(sent = n, "dispute deadline reminders sent"),
        Err(e) => tracing::warn!(error = %e.detail, "could not send dispute deadline reminders"),
    }
    if let Err(e) = app.count_cashier_activity_if_due().await {
        tracing::warn!(error = %e.detail, "could not count cashier activity");
    }
    match app.check_chargeback_ratios(crate::now()).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(raised = n, "chargeback ratio alerts raised"),
        Err(e) => tracing::warn!(error = %e.detail, "could not check chargeback ratios"),
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
        crate::webhooks::DELIVER_WEBHOOK => crate::webhooks::deliver(app, &job).await,
        crate::notify::NOTIFY_CUSTOMER => crate::notify::notify(app, &job).await,
        crate::corrections::DETECT_WRONG_CHARGES => crate::corrections::run_detect_job(app, &job).await,
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
    Send(RefundOrder, Route),
    /// It was sent before and the answer was never recorded: ask first.
    Resume(RefundOrder, Route),
    Done,
    /// A cash refund, settled in the same transaction: its final status.
    Settled(RefundStatus),
    /// The terminal's reserved trace numbers are used up: nothing was
    /// written; reserve more and start again.
    NeedStans(MerchantId, String),
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
    let stan_terminal = app.processor.stan_terminal().map(str::to_owned);
    let mut reservations = 0;
    let (order, route, resume) = loop {
        let (stan_terminal, config, stans) = (stan_terminal.clone(), app.config.clone(), Arc::clone(&app.stans));
        let step = refundry_store::write(&app.store, move |tx| {
            start_attempt(tx, refund_id, job_id, stan_terminal.as_deref(), &stans, &config)
        })
        .await?;
        match step {
            // refunds running beside this one may use up a new run before
            // this one takes from it: try a few times, then leave it to the
            // job's retry
            Step::NeedStans(merchant, terminal) if reservations < 3 => {
                reservations += 1;
                app.stans.reserve(&app.store, merchant, &terminal).await?;
            }
            Step::NeedStans(_, terminal) => {
                return Err(AppError::new(
                    ErrorCode::Unavailable,
                    format!("no trace number of terminal {terminal} was left after {reservations} reservations"),
                ));
            }
            Step::Done => return Ok(()),
            Step::Settled(status) => {
                count_finished(status);
                return Ok(());
            }
            Step::Send(order, route) => break (order, route, false),
            Step::Resume(order, route) => break (order, route, true),
        }
    };
    let processor = app.processor_for(route);
    let mut calls = Vec::new();
    let outcome = if resume {
        match call(processor.as_ref(), refund_id, &order, Call::Inquire, &mut calls).await {
            Ok(Some(outcome)) => Ok(outcome),
            Ok(None) => call(processor.as_ref(), refund_id, &order, Call::Submit, &mut calls)
                .await
                .map(|o| o.expect("a submit answers")),
            Err(e) => Err(e),
        }
    } else {
        call(processor.as_ref(), refund_id, &order, Call::Submit, &mut calls)
            .await
            .map(|o| o.expect("a submit answers"))
    };
    match outcome {
        Ok(outcome) => {
            let (processor, config) = (processor.name(), app.config.clone());
            let finished = refundry_store::write(&app.store, move |tx| {
                calls.iter().try_for_each(|c| tx.record_call(c))?;
                finish_attempt(tx, refund_id, job_id, &outcome, processor, &config)
            })
            .await?;
            finished.into_iter().for_each(count_finished);
            Ok(())
        }
        // unknown or not sent: the refund stays `processing`, and the retry
        // asks the acquirer before anything is sent again
        Err(e) => {
            refundry_store::write(&app.store, move |tx| {
                Ok::<_, AppError>(calls.iter().try_for_each(|c| tx.record_call(c))?)
            })
            .await?;
            Err(AppError::new(ErrorCode::Unavailable, e.to_string()))
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Call {
    Submit,
    Inquire,
}

/// One call to the acquirer, timed and written down.
async fn call(
    processor: &dyn Processor,
    refund_id: RefundId,
    order: &RefundOrder,
    kind: Call,
    calls: &mut Vec<AcquirerCall>,
) -> Result<Option<Outcome>, ProcessorError> {
    let started_at = crate::now();
    let clock = std::time::Instant::now();
    let result = match kind {
        Call::Submit => processor.submit(order).await.map(Some),
        Call::Inquire => processor.inquire(order).await,
    };
    metrics::histogram!("refundry_acquirer_call_seconds", "outcome" => outcome_name(&result))
        .record(clock.elapsed().as_secs_f64());
    calls.push(call_record(processor, refund_id, order, kind, started_at, clock.elapsed(), &result));
    result
}

fn outcome_name(result: &Result<Option<Outcome>, ProcessorError>) -> &'static str {
    match result {
        Ok(Some(Outcome::Approved { .. })) => "approved",
        Ok(Some(Outcome::Declined { .. })) => "declined",
        Ok(None) => "not_received",
        Err(ProcessorError::Timeout) => "timeout",
        Err(ProcessorError::Unavailable(_)) => "unavailable",
    }
}

/// How a call is written down (masked: the order carries no card data,
/// only references).
fn call_record(
    processor: &dyn Processor,
    refund_id: RefundId,
    order: &RefundOrder,
    kind: Call,
    started_at: Timestamp,
    took: Duration,
    result: &Result<Option<Outcome>, ProcessorError>,
) -> AcquirerCall {
    let outcome = outcome_name(result);
    let (response_code, answer) = match result {
        Ok(Some(Outcome::Approved { acquirer_reference })) => (None, format!("approved ref={acquirer_reference}")),
        Ok(Some(Outcome::Declined { reason, response_code })) => {
            (Some(response_code.clone()), format!("declined {reason} ({response_code})"))
        }
        Ok(None) => (None, "the acquirer never received it".to_owned()),
        Err(ProcessorError::Timeout) => (None, "no answer in time".to_owned()),
        Err(ProcessorError::Unavailable(why)) => (None, format!("unavailable: {why}")),
    };
    let sent = format!(
        "{} {} {} stan={:06} attempt={} original_rrn={}",
        order.refund_type,
        order.amount.minor,
        order.amount.currency,
        order.stan,
        order.attempt,
        order.original_rrn.as_deref().unwrap_or("-")
    );
    AcquirerCall {
        refund_id,
        attempt: order.attempt,
        stan: order.stan,
        kind: match kind {
            Call::Submit => "submit",
            Call::Inquire => "inquire",
        }
        .to_owned(),
        processor: processor.name().to_owned(),
        started_at,
        duration_ms: i64::try_from(took.as_millis()).unwrap_or(i64::MAX),
        outcome: outcome.to_owned(),
        response_code,
        detail: format!("sent: {sent}; answer: {answer}"),
    }
}

/// The job's refund, locked against concurrent moves until commit, with
/// its sale.
fn load(tx: &mut dyn Tx, id: RefundId) -> Result<(Refund, refundry_store::model::Sale), AppError> {
    let (refund, sale) = tx
        .lock_refund_with_sale(id)?
        .ok_or_else(|| AppError::new(ErrorCode::Internal, format!("job names refund {id}, which does not exist")))?;
    let sale = sale.ok_or_else(|| AppError::new(ErrorCode::Internal, format!("refund {id} names a missing sale")))?;
    Ok((refund, sale))
}

/// A new attempt, decided but not yet written.
enum Attempt {
    Done,
    /// No reserved trace number of this terminal is left.
    NeedStans(MerchantId, String),
    /// Sent before, and its answer never recorded.
    Resume(Refund, Box<refundry_store::model::Sale>, RefundOrder, Route),
    /// The refund, moved to `processing` (not yet written), and the order
    /// to send.
    Send(Refund, Box<refundry_store::model::Sale>, RefundOrder, Route),
}

/// Starts an attempt: the refund moves to `processing`, committed before
/// anything is sent. A cash refund's whole attempt is done here, in the
/// same transaction: the drawer's answer is known without asking anyone.
fn start_attempt(
    tx: &mut dyn Tx,
    id: RefundId,
    job_id: i64,
    stan_terminal: Option<&str>,
    stans: &StanRuns,
    config: &crate::AppConfig,
) -> Result<Step, AppError> {
    match prepare_attempt(tx, id, job_id, stan_terminal, stans)? {
        Attempt::Done => Ok(Step::Done),
        Attempt::NeedStans(merchant, terminal) => Ok(Step::NeedStans(merchant, terminal)),
        Attempt::Send(refund, sale, order, Route::Cash) => {
            record_sent(tx, &runner(&refund), &refund, refund.updated_at)?;
            settle_cash(tx, refund, &sale, &order, job_id, config)
        }
        Attempt::Resume(refund, sale, order, Route::Cash) => settle_cash(tx, refund, &sale, &order, job_id, config),
        Attempt::Resume(_, _, order, route) => Ok(Step::Resume(order, route)),
        Attempt::Send(refund, _, order, route) => {
            tx.update_refund(&refund)?;
            record_sent(tx, &runner(&refund), &refund, refund.updated_at)?;
            Ok(Step::Send(order, route))
        }
    }
}

/// The refund row is written once here, not at send and again at the
/// answer: PostgreSQL checks the foreign key again when a transaction
/// updates a row it wrote itself, and that check locks the sale, which a
/// refund of the same sale in another transaction may hold.
fn settle_cash(
    tx: &mut dyn Tx,
    refund: Refund,
    sale: &refundry_store::model::Sale,
    order: &RefundOrder,
    job_id: i64,
    config: &crate::AppConfig,
) -> Result<Step, AppError> {
    let drawer = refundry_connectors::cash::CashDrawer;
    let outcome = drawer.answer(order);
    let answered = Ok(Some(outcome.clone()));
    tx.record_call(&call_record(&drawer, refund.id, order, Call::Submit, crate::now(), Duration::ZERO, &answered))?;
    let status = apply_outcome(tx, refund, sale, job_id, &outcome, drawer.name(), config)?;
    Ok(Step::Settled(status))
}

/// `refund.sent` for the refund's current attempt, done by `actor` at `at`.
fn record_sent(tx: &mut dyn Tx, actor: &Actor, refund: &Refund, at: Timestamp) -> Result<(), AppError> {
    let data = serde_json::json!({"status": "processing", "attempt": refund.attempts});
    audit::record(tx, actor, "refund.sent", &refund.id.to_string(), data, at)
}

fn runner(refund: &Refund) -> Actor {
    Actor::system(refund.merchant_id, "job-runner")
}

pub(crate) fn find_sale_of(tx: &mut dyn Tx, refund: &Refund) -> Result<refundry_store::model::Sale, AppError> {
    tx.find_sale(refund.merchant_id, refund.sale_id)?
        .ok_or_else(|| AppError::new(ErrorCode::Internal, format!("refund {} names a missing sale", refund.id)))
}

/// `stan_terminal`: the connector's own terminal, whose trace numbers its
/// messages use; otherwise the sale's terminal.
fn prepare_attempt(
    tx: &mut dyn Tx,
    id: RefundId,
    job_id: i64,
    stan_terminal: Option<&str>,
    stans: &StanRuns,
) -> Result<Attempt, AppError> {
    let (mut refund, sale) = load(tx, id)?;
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
            return Ok(Attempt::Done);
        }
    };
    let route = Route::of(&sale.payment_method);
    if resume && let Some(stan) = refund.stan.or((route == Route::Cash).then_some(NO_STAN)) {
        let order = order_of(&refund, &sale, stan);
        return Ok(Attempt::Resume(refund, Box::new(sale), order, route));
    }
    let now = crate::now();
    // the STAN is committed with `processing`, before anything is sent, so
    // an inquiry or reversal after a crash names the same message; cash
    // sends no message, and takes no number from the terminal's counter
    let stan = match route {
        Route::Cash => NO_STAN,
        Route::Card | Route::Wallet => {
            let terminal = stan_terminal.unwrap_or(&sale.terminal_id);
            let Some(stan) = stans.take(refund.merchant_id, terminal) else {
                return Ok(Attempt::NeedStans(refund.merchant_id, terminal.to_owned()));
            };
            refund.stan = Some(stan);
            stan
        }
    };
    refund.status = refund.status.on(RefundEvent::Send).map_err(illegal)?;
    refund.attempts += 1;
    refund.updated_at = now;
    let order = order_of(&refund, &sale, stan);
    Ok(Attempt::Send(refund, Box::new(sale), order, route))
}

/// The trace number of an order that is no message (cash): outside the
/// 1..=999999 a terminal counts.
const NO_STAN: u32 = 0;

/// Where a refund's money goes back: cash from the drawer at the counter,
/// wallets through the wallet connector, cards through the acquirer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Cash,
    Wallet,
    Card,
}

impl Route {
    fn of(method: &PaymentMethod) -> Route {
        match method {
            PaymentMethod::Cash => Route::Cash,
            PaymentMethod::Wallet { .. } => Route::Wallet,
            PaymentMethod::Card { .. } => Route::Card,
        }
    }
}

fn order_of(refund: &Refund, sale: &refundry_store::model::Sale, stan: u32) -> RefundOrder {
    let tz = jiff::tz::TimeZone::get("Asia/Shanghai").unwrap_or(jiff::tz::TimeZone::UTC);
    RefundOrder {
        reference: refund.id.to_string(),
        attempt: refund.attempts,
        stan,
        refund_type: refund.refund_type,
        amount: refund.amount,
        terminal_id: sale.terminal_id.clone(),
        original_rrn: sale.rrn.clone(),
        original_auth_code: sale.auth_code.clone(),
        original_voucher_no: sale.voucher_no.clone(),
        original_batch_no: sale.batch_no.clone(),
        original_date: sale.captured_at.to_zoned(tz).strftime("%m%d").to_string(),
    }
}

/// Days until refunded money reaches the customer, by how they paid: cash
/// is handed over at the counter; cards and wallets take T+N.
#[derive(Debug, Clone)]
pub struct ArrivalDays {
    pub card: u32,
    pub wallet: u32,
}

impl Default for ArrivalDays {
    fn default() -> Self {
        ArrivalDays { card: 7, wallet: 1 }
    }
}

fn finish_attempt(
    tx: &mut dyn Tx,
    id: RefundId,
    job_id: i64,
    outcome: &Outcome,
    processor: &str,
    config: &crate::AppConfig,
) -> Result<Option<RefundStatus>, AppError> {
    let (refund, sale) = load(tx, id)?;
    if refund.status != RefundStatus::Processing {
        // another runner recorded the answer first
        tx.complete_job(job_id, crate::now())?;
        return Ok(None);
    }
    apply_outcome(tx, refund, &sale, job_id, outcome, processor, config).map(Some)
}

/// Records the acquirer's answer on a `processing` refund (one write of
/// the refund row) and completes its job; answers the status it moved to.
fn apply_outcome(
    tx: &mut dyn Tx,
    mut refund: Refund,
    sale: &refundry_store::model::Sale,
    job_id: i64,
    outcome: &Outcome,
    processor: &str,
    config: &crate::AppConfig,
) -> Result<RefundStatus, AppError> {
    let answered = answer(&mut refund, sale, outcome, processor, config)?;
    tx.update_refund(&refund)?;
    tx.complete_job(job_id, refund.updated_at)?;
    after_answer(tx, &runner(&refund), &refund, answered, config)?;
    Ok(refund.status)
}

/// The audit event an answer makes.
struct Answered {
    action: &'static str,
    data: serde_json::Value,
}

/// Moves a `processing` refund to the acquirer's answer, in memory.
fn answer(
    refund: &mut Refund,
    sale: &refundry_store::model::Sale,
    outcome: &Outcome,
    processor: &str,
    config: &crate::AppConfig,
) -> Result<Answered, AppError> {
    let arrival = &config.arrival;
    let now = crate::now();
    let (event, action, data) = match outcome {
        Outcome::Approved { acquirer_reference } => {
            refund.acquirer_reference = Some(acquirer_reference.clone());
            refund.completed_at = Some(now);
            let days = match &sale.payment_method {
                PaymentMethod::Cash => 0,
                PaymentMethod::Card { .. } => arrival.card,
                PaymentMethod::Wallet { .. } => arrival.wallet,
            };
            refund.expected_arrival_at =
                Some(now.saturating_add(SignedDuration::from_hours(24 * i64::from(days))).unwrap_or(now));
            if days == 0 {
                // cash changed hands at the counter
                refund.arrived_at = Some(now);
            }
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
    Ok(Answered { action, data })
}

/// What follows an answer once the refund row holds it: the customer's
/// confirmation, or the day's limit given back; the audit event.
fn after_answer(
    tx: &mut dyn Tx,
    actor: &Actor,
    refund: &Refund,
    answered: Answered,
    config: &crate::AppConfig,
) -> Result<(), AppError> {
    if refund.status == RefundStatus::Succeeded {
        crate::notify::queue(tx, refund)?;
    } else {
        // a failed refund no longer holds money against the day's limit
        crate::policy::hold_daily(tx, refund, -1, config)?;
    }
    audit::record(tx, actor, answered.action, &refund.id.to_string(), answered.data, refund.updated_at)?;
    Ok(())
}

/// Counts a refund that reached a final status. Called once the
/// transaction that moved it has committed, never inside it: a batch may
/// run its jobs more than once, and a batch that fails moved nothing.
pub(crate) fn count_finished(status: RefundStatus) {
    metrics::counter!("refundry_refunds_finished_total", "status" => status.as_str()).increment(1);
}

/// A cash refund settled at the counter: the drawer's answer, applied to
/// the refund in memory and not yet recorded.
pub(crate) struct CounterSettlement {
    order: RefundOrder,
    outcome: Outcome,
    answered: Answered,
    at: Timestamp,
}

/// A refund going ahead (`pending`, not yet written) whose money goes back
/// from the cash drawer is settled in the same transaction rather than
/// queued: the drawer's answer is known without asking anyone, so the
/// cashier hands the money over with the refund already `succeeded`. The
/// refund passes through `processing` in memory and is written once, by
/// the caller, before [`record_counter_settlement`]. Any other refund
/// answers `None` and is unchanged.
pub(crate) fn settle_at_counter(
    refund: &mut Refund,
    sale: &refundry_store::model::Sale,
    config: &crate::AppConfig,
) -> Result<Option<CounterSettlement>, AppError> {
    if Route::of(&sale.payment_method) != Route::Cash {
        return Ok(None);
    }
    let at = crate::now();
    refund.status = refund.status.on(RefundEvent::Send).map_err(illegal)?;
    refund.attempts += 1;
    refund.updated_at = at;
    let order = order_of(refund, sale, NO_STAN);
    let drawer = refundry_connectors::cash::CashDrawer;
    let outcome = drawer.answer(&order);
    let answered = answer(refund, sale, &outcome, drawer.name(), config)?;
    Ok(Some(CounterSettlement { order, outcome, answered, at }))
}

/// Records a counter settlement after the refund row: the attempt's
/// `refund.sent`, the drawer's answer as the attempt's call, and what
/// follows the answer, each done by `actor` (who let the refund go ahead).
pub(crate) fn record_counter_settlement(
    tx: &mut dyn Tx,
    actor: &Actor,
    refund: &Refund,
    settled: CounterSettlement,
    config: &crate::AppConfig,
) -> Result<(), AppError> {
    let CounterSettlement { order, outcome, answered, at } = settled;
    record_sent(tx, actor, refund, at)?;
    let drawer = refundry_connectors::cash::CashDrawer;
    let answered_call = Ok(Some(outcome));
    tx.record_call(&call_record(&drawer, refund.id, &order, Call::Submit, at, Duration::ZERO, &answered_call))?;
    after_answer(tx, actor, refund, answered, config)
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
