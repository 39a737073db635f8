use std::sync::Arc;

use tokio::sync::oneshot;

use crate::{StoreError, Tx};

/// What a write job asks of its transaction once it has run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Keep the job's changes.
    Commit,
    /// Undo the job's changes (a business rule said no).
    Rollback,
    /// Undo and run the job again in a fresh transaction (serialization
    /// failure, deadlock).
    Retry,
}

/// A unit of writing: run inside a transaction, then told whether the
/// transaction committed.
pub trait WriteJob: Send {
    fn run(&mut self, tx: &mut dyn Tx) -> Verdict;
    fn finish(self: Box<Self>, committed: Result<(), StoreError>);
}

pub type ReadJob = Box<dyn FnOnce(&mut dyn Tx) + Send>;

/// At most as many reads at once as the pool keeps connections: one more
/// waits, without holding a thread, for a connection to come free rather
/// than opening one the pool would not keep (on PostgreSQL a new session,
/// on SQLite a file open and a parse of the whole schema, for one read).
#[derive(Clone)]
pub(crate) struct ReadSlots(Arc<tokio::sync::Semaphore>);

impl ReadSlots {
    pub(crate) fn new(slots: usize) -> ReadSlots {
        ReadSlots(Arc::new(tokio::sync::Semaphore::new(slots.max(1))))
    }

    /// Runs `read` on the runtime's blocking pool once a slot is free. If
    /// the runtime stops first, `read` is dropped unrun (its job answers
    /// its caller with `Unavailable`).
    pub(crate) fn run(&self, runtime: &tokio::runtime::Handle, read: impl FnOnce() + Send + 'static) {
        let slots = Arc::clone(&self.0);
        runtime.spawn(async move {
            let Ok(_slot) = slots.acquire_owned().await else { return };
            let _ = tokio::task::spawn_blocking(read).await;
        });
    }
}

/// A database behind the storage interface.
pub trait Store: Send + Sync + 'static {
    /// Queues a write. Refuses at once with [`StoreError::Overloaded`] when
    /// the queue is full rather than letting latency grow without bound.
    fn submit_write(&self, job: Box<dyn WriteJob>) -> Result<(), Box<dyn WriteJob>>;
    fn submit_read(&self, job: ReadJob);
    /// `sqlite` or `postgres`, for logs and metrics.
    fn backend(&self) -> &'static str;
    /// Whether the database answers (for `/readyz`).
    fn ping(&self) -> Result<(), StoreError>;
}

/// Lets the store see whether a use case's error came from storage, and so
/// whether running the transaction again may help.
pub trait AsStoreError {
    fn as_store_error(&self) -> Option<&StoreError>;
}

impl AsStoreError for StoreError {
    fn as_store_error(&self) -> Option<&StoreError> {
        Some(self)
    }
}

struct TypedJob<F, R, E> {
    f: F,
    result: Option<Result<R, E>>,
    reply: oneshot::Sender<Result<R, E>>,
}

impl<F, R, E> WriteJob for TypedJob<F, R, E>
where
    F: FnMut(&mut dyn Tx) -> Result<R, E> + Send,
    R: Send,
    E: From<StoreError> + AsStoreError + Send,
{
    fn run(&mut self, tx: &mut dyn Tx) -> Verdict {
        let result = (self.f)(tx);
        let verdict = match &result {
            Ok(_) => Verdict::Commit,
            Err(e) if e.as_store_error().is_some_and(StoreError::is_retryable) => Verdict::Retry,
            Err(_) => Verdict::Rollback,
        };
        self.result = Some(result);
        verdict
    }

    fn finish(self: Box<Self>, committed: Result<(), StoreError>) {
        let _ = self.reply.send(answer_of(committed, self.result));
    }
}

/// A write job's answer, from how its batch ended and its own last run.
fn answer_of<R, E>(committed: Result<(), StoreError>, result: Option<Result<R, E>>) -> Result<R, E>
where
    E: From<StoreError> + AsStoreError,
{
    match (committed, result) {
        // it met a conflict and was to run again, but its batch failed
        // first (a lost connection, say): the conflict is not its answer
        (Err(e), Some(Err(last))) if last.as_store_error().is_some_and(StoreError::is_retryable) => Err(E::from(e)),
        // a refused job was rolled back whatever the commit did
        (_, Some(Err(e))) => Err(e),
        (Ok(()), Some(Ok(r))) => Ok(r),
        // the batch failed: that is the answer, also for a job that never
        // got to run
        (Err(e), _) => Err(E::from(e)),
        (Ok(()), None) => Err(E::from(StoreError::JobPanicked)),
    }
}

/// Runs `f` in a write transaction and answers once it is durably committed.
/// `f` may run more than once (after a retryable conflict), so it must not
/// have effects outside the transaction.
pub async fn write<R, E, F>(store: &Arc<dyn Store>, f: F) -> Result<R, E>
where
    F: FnMut(&mut dyn Tx) -> Result<R, E> + Send + 'static,
    R: Send + 'static,
    E: From<StoreError> + AsStoreError + Send + 'static,
{
    let (reply, answer) = oneshot::channel();
    let job = Box::new(TypedJob { f, result: None, reply });
    if store.submit_write(job).is_err() {
        return Err(E::from(StoreError::Overloaded));
    }
    answer.await.unwrap_or_else(|_| Err(E::from(StoreError::Unavailable)))
}

/// Runs `f` on a consistent snapshot, without blocking the async runtime.
pub async fn read<R, E, F>(store: &Arc<dyn Store>, f: F) -> Result<R, E>
where
    F: FnOnce(&mut dyn Tx) -> Result<R, E> + Send + 'static,
    R: Send + 'static,
    E: From<StoreError> + Send + 'static,
{
    let (reply, answer) = oneshot::channel();
    store.submit_read(Box::new(move |tx| {
        let _ = reply.send(f(tx));
    }));
    answer.await.unwrap_or_else(|_| Err(E::from(StoreError::Unavailable)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(committed: Result<(), StoreError>, result: Option<Result<u8, StoreError>>) -> Result<u8, StoreError> {
        answer_of(committed, result)
    }

    #[test]
    fn a_committed_job_gets_its_result_and_a_refused_one_its_refusal() {
        assert_eq!(answer(Ok(()), Some(Ok(7))).unwrap(), 7);
        let refused = answer(Err(StoreError::Unavailable), Some(Err(StoreError::corrupt("refused"))));
        assert!(matches!(refused, Err(StoreError::Corrupt(_))), "{refused:?}");
        assert!(matches!(answer(Err(StoreError::Unavailable), Some(Ok(7))), Err(StoreError::Unavailable)));
        assert!(matches!(answer(Err(StoreError::Unavailable), None), Err(StoreError::Unavailable)));
        assert!(matches!(answer(Ok(()), None), Err(StoreError::JobPanicked)));
    }

    #[test]
    fn a_job_waiting_to_run_again_when_its_batch_fails_gets_the_failure_not_its_conflict() {
        // the same Idempotency-Key sent twice at once: the second met the
        // first's key (a conflict, run again to replay it), then PostgreSQL
        // went away before it ran again
        let lost =
            answer(Err(StoreError::Unavailable), Some(Err(StoreError::Duplicate("idempotency_keys_pkey".into()))));
        assert!(matches!(lost, Err(StoreError::Unavailable)), "{lost:?}");
        // conflicts on every try, and nothing else went wrong: the conflict
        let gave_up = answer(Ok(()), Some(Err(StoreError::Duplicate("idempotency_keys_pkey".into()))));
        assert!(matches!(gave_up, Err(StoreError::Duplicate(_))), "{gave_up:?}");
    }
}
