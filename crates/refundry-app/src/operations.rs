//! What operators look after: outbox jobs that gave up.

use refundry_core::ids::MerchantId;
use refundry_store::model::JobRecord;

use crate::{Actor, App, AppError, ErrorCode, audit};

pub const JOB_STATES: &[&str] = &["ready", "running", "done", "dead"];

impl App {
    /// Jobs in a state (`dead`: gave up after `max_attempts`), newest first:
    /// the merchant's, or every merchant's for the operator (`None`).
    pub async fn jobs(
        &self,
        merchant: Option<MerchantId>,
        state: &str,
        limit: u32,
    ) -> Result<Vec<JobRecord>, AppError> {
        if !JOB_STATES.contains(&state) {
            return Err(AppError::validation("state", "state must be ready, running, done or dead"));
        }
        let (state, limit) = (state.to_owned(), limit.clamp(1, 500));
        refundry_store::read(&self.store, move |tx| Ok(tx.list_jobs(merchant, &state, limit)?)).await
    }

    /// Puts a dead job back in the queue, with its attempts counted afresh.
    /// `scoped`: only a job of the actor's merchant.
    pub async fn retry_job(&self, actor: &Actor, id: i64, scoped: bool) -> Result<(), AppError> {
        let actor = actor.clone();
        refundry_store::write(&self.store, move |tx| {
            let now = crate::now();
            if !tx.revive_job(scoped.then_some(actor.merchant_id), id, now)? {
                return Err(AppError::new(ErrorCode::JobNotFound, format!("no dead job {id}")));
            }
            audit::record(
                tx,
                &actor,
                "job.retried",
                &format!("job:{id}"),
                serde_json::json!({"after": {"state": "ready"}}),
                now,
            )
        })
        .await?;
        self.jobs_waiting.notify_one();
        Ok(())
    }
}
