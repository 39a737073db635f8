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
        let answer = match (committed, self.result) {
            // a refused job was rolled back whatever the commit did
            (_, Some(Err(e))) => Err(e),
            (Ok(()), Some(Ok(r))) => Ok(r),
            // the batch failed (a lost connection, say): that is the answer,
            // also for a job that never got to run
            (Err(e), _) => Err(E::from(e)),
            (Ok(()), None) => Err(E::from(StoreError::JobPanicked)),
        };
        let _ = self.reply.send(answer);
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
