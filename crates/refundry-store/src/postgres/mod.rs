//! PostgreSQL, for many Refundry instances sharing one database.
//!
//! Like the SQLite store, writes go through writer threads that group
//! queued jobs into one transaction and answer only after the commit. A
//! job that must be undone alone runs in a savepoint of its own (see
//! [`run_batch`]). Unlike SQLite, other instances write at
//! the same time, so the invariants rest on row locks taken inside the
//! transaction (`FOR UPDATE` on the sale, the refund and the merchant's
//! audit-chain head), on unique keys (idempotency), and on `SKIP LOCKED`
//! for the shared outbox. A job that meets a deadlock, a serialization
//! failure or a unique key another writer took first is rolled back to its
//! savepoint and run again in a later transaction, where its own checks see
//! the other writer's committed rows. Idempotency keys are written with the
//! batch's deferred writes, so one another writer took fails the whole
//! batch, which runs again the same way.

mod client;
mod migrate;
mod repos;

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_postgres::{Config, Statement};

pub use repos::PgTx;

use self::client::Client;
use crate::StoreError;
use crate::deferred::Deferred;
use crate::store::{ReadJob, ReadSlots, Store, Verdict, WriteJob};

/// Most writes grouped into one commit.
pub const MAX_BATCH: usize = 256;
/// Times a job is run again after a conflict before its error is returned.
pub const MAX_RETRIES: u32 = 8;

#[derive(Debug, Clone)]
pub struct PgOptions {
    /// Writer threads (connections) of this instance. Two by default: one
    /// runs its batch's statements while the other commits. Every batch
    /// takes its turn through the audit chain's head and the daily totals,
    /// whose locks are held until COMMIT, so more writers mostly wait on
    /// each other: on two cores, 3 and 4 made fewer refunds a second than 2
    /// at more CPU each (BENCHMARKS.md), and 1 far fewer.
    pub writers: usize,
    /// Read connections kept open.
    pub readers: usize,
    /// Writes waiting before new ones are refused.
    pub write_queue: usize,
    pub connect_timeout: Duration,
    /// Any statement running longer is cancelled by the server.
    pub statement_timeout: Duration,
}

impl Default for PgOptions {
    fn default() -> Self {
        PgOptions {
            writers: 2,
            readers: 8,
            write_queue: 16_384,
            connect_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(30),
        }
    }
}

/// A connection with its prepared statements.
struct Conn {
    client: Option<Client>,
    statements: HashMap<String, Statement>,
}

impl Conn {
    fn tx(&mut self) -> PgTx<'_> {
        let client = self.client.as_mut().expect("a connection has its client until dropped");
        PgTx::new(client, &mut self.statements, None, false)
    }

    /// A write job's transaction, after the batch's earlier jobs.
    /// `queue_refunds`: the batch runs without savepoints (see
    /// [`crate::deferred`]).
    fn tx_in<'a>(&'a mut self, batch: &'a Deferred, queue_refunds: bool) -> PgTx<'a> {
        let client = self.client.as_mut().expect("a connection has its client until dropped");
        PgTx::new(client, &mut self.statements, Some(batch), queue_refunds)
    }

    fn client(&mut self) -> &mut Client {
        self.client.as_mut().expect("a connection has its client until dropped")
    }

    fn is_closed(&self) -> bool {
        self.client.as_ref().is_none_or(Client::is_closed)
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        // dropping the client's own runtime blocks, which a Tokio worker
        // thread must not do: close on a plain thread when inside one
        if let Some(client) = self.client.take()
            && tokio::runtime::Handle::try_current().is_ok()
        {
            let _ = std::thread::spawn(move || drop(client)).join();
        }
    }
}

#[derive(Clone)]
struct Connector {
    config: Config,
    statement_timeout: Duration,
}

impl Connector {
    fn connect(&self) -> Result<Conn, StoreError> {
        let mut client = Client::connect(&self.config)?;
        let ms = self.statement_timeout.as_millis();
        client.batch_execute(&format!("SET statement_timeout = {ms}; SET lock_timeout = {ms}"))?;
        Ok(Conn { client: Some(client), statements: HashMap::new() })
    }
}

pub struct PgStore {
    writes: SyncSender<Box<dyn WriteJob>>,
    readers: Arc<Mutex<Vec<Conn>>>,
    read_slots: ReadSlots,
    connector: Connector,
    options: PgOptions,
    runtime: tokio::runtime::Handle,
}

/// Runs blocking PostgreSQL work off the async threads: the `postgres`
/// client drives its own small runtime and must not run on Tokio's.
fn off_runtime<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(f).join().unwrap_or_else(|p| std::panic::resume_unwind(p))
}

impl PgStore {
    /// Connects, brings the schema up to date (safe when several instances
    /// start at once: migrations run under an advisory lock) and starts the
    /// writer threads. `url` is a libpq-style URL or key=value string.
    pub fn open(url: &str, options: PgOptions) -> Result<PgStore, StoreError> {
        let mut config: Config = url.parse().map_err(|e: tokio_postgres::Error| StoreError::Backend {
            message: format!("invalid PostgreSQL URL: {e}"),
            retryable: false,
        })?;
        config.connect_timeout(options.connect_timeout);
        config.application_name("refundry");
        let connector = Connector { config, statement_timeout: options.statement_timeout };
        let first = connector.clone();
        let mut conn = off_runtime(move || first.connect())?;
        let (conn_back, applied) = off_runtime(move || {
            let applied = migrate::run(conn.client());
            (conn, applied)
        });
        applied?;
        let (writes, queue) = sync_channel(options.write_queue);
        let queue = Arc::new(Mutex::new(queue));
        let mut first_writer = Some(conn_back);
        for n in 0..options.writers.max(1) {
            let (queue, connector) = (Arc::clone(&queue), connector.clone());
            let conn = first_writer.take();
            std::thread::Builder::new()
                .name(format!("refundry-pg-writer-{n}"))
                .spawn(move || writer_loop(conn, connector, queue))
                .map_err(|e| StoreError::Backend { message: e.to_string(), retryable: false })?;
        }
        Ok(PgStore {
            writes,
            readers: Arc::new(Mutex::new(Vec::new())),
            read_slots: ReadSlots::new(options.readers),
            connector,
            options,
            runtime: tokio::runtime::Handle::current(),
        })
    }

    /// Applies pending migrations without starting a store.
    pub fn migrate(url: &str) -> Result<Vec<String>, StoreError> {
        let config: Config = url
            .parse()
            .map_err(|e: tokio_postgres::Error| StoreError::Backend { message: e.to_string(), retryable: false })?;
        let connector = Connector { config, statement_timeout: Duration::from_secs(300) };
        off_runtime(move || {
            let mut conn = connector.connect()?;
            migrate::run(conn.client())
        })
    }
}

fn writer_loop(mut conn: Option<Conn>, connector: Connector, queue: Arc<Mutex<Receiver<Box<dyn WriteJob>>>>) {
    loop {
        let batch = {
            let Ok(queue) = queue.lock() else { return };
            let Ok(first) = queue.recv() else { return };
            let mut batch = vec![(first, 0u32)];
            while batch.len() < MAX_BATCH {
                match queue.try_recv() {
                    Ok(job) => batch.push((job, 0)),
                    Err(_) => break,
                }
            }
            batch
        };
        metrics::histogram!("refundry_store_commit_batch_size").record(batch.len() as f64);
        let started = std::time::Instant::now();
        let mut pending = batch;
        while !pending.is_empty() {
            let live = match conn.as_mut().filter(|c| !c.is_closed()) {
                Some(c) => c,
                None => match connector.connect() {
                    Ok(c) => conn.insert(c),
                    Err(e) => {
                        tracing::error!(error = %e, "cannot reach PostgreSQL");
                        pending.into_iter().for_each(|(job, _)| job.finish(Err(StoreError::Unavailable)));
                        conn = None;
                        break;
                    }
                },
            };
            pending = run_batch(live, &connector, pending, started);
        }
    }
}

type Jobs = Vec<(Box<dyn WriteJob>, u32)>;

/// Runs a batch in one transaction. Returns the jobs to run again.
///
/// First without a savepoint per job ([`run_unguarded`]), which nearly
/// always suffices; when a job must be undone alone, the batch runs again
/// with one ([`run_guarded`]).
fn run_batch(conn: &mut Conn, connector: &Connector, batch: Jobs, started: std::time::Instant) -> Jobs {
    match run_unguarded(conn, batch) {
        Ok((deferred, kept)) => finish(conn, connector, deferred, kept, Vec::new(), started),
        Err(batch) => {
            metrics::counter!("refundry_store_batch_replays_total").increment(1);
            run_guarded(conn, connector, batch, started)
        }
    }
}

/// Runs a batch's jobs in one transaction without savepoints: a round trip
/// and a subtransaction fewer per job. That holds as long as every job
/// either keeps its changes or is refused before it changed anything (a
/// refund refused by the policy, or for want of anything left to refund).
/// When a job that changed something is refused, or a statement fails
/// (which on PostgreSQL aborts the whole transaction), the transaction is
/// rolled back and the batch given back whole, its jobs' tries untouched.
fn run_unguarded(conn: &mut Conn, batch: Jobs) -> Result<(Deferred, Jobs), Jobs> {
    if conn.client().batch_execute("BEGIN").is_err() {
        let _ = conn.client().batch_execute("ROLLBACK");
        return Err(batch);
    }
    let mut kept = Vec::with_capacity(batch.len());
    let mut deferred = Deferred::default();
    let mut jobs = batch.into_iter();
    while let Some((mut job, tries)) = jobs.next() {
        let ran = run_job(conn, job.as_mut(), &deferred, true);
        let clean = !ran.failed
            && match ran.verdict {
                Verdict::Commit => true,
                Verdict::Rollback => !ran.wrote,
                Verdict::Retry => false,
            };
        if !clean {
            // after a failed statement the transaction is aborted: going
            // on, the jobs after it and then the commit would fail on it,
            // and the batch would end in errors instead of running again
            let _ = conn.client().batch_execute("ROLLBACK");
            kept.push((job, tries));
            kept.extend(jobs);
            return Err(kept);
        }
        deferred.absorb(ran.queued);
        kept.push((job, tries));
    }
    Ok((deferred, kept))
}

/// Runs a batch in one transaction, each job in the savepoint `job`, so
/// that a refused or conflicting job is undone alone.
///
/// Opening and closing the savepoint are sent together with the statement
/// before them (`BEGIN`, the previous job's `RELEASE`), one round trip per
/// job rather than two; after a job rolled back, the savepoint it leaves
/// serves the next job as it is, and the last one needs no release before
/// `COMMIT`.
fn run_guarded(conn: &mut Conn, connector: &Connector, batch: Jobs, started: std::time::Instant) -> Jobs {
    let mut kept = Vec::with_capacity(batch.len());
    let mut again = Vec::new();
    let mut deferred = Deferred::default();
    let mut opening = Some("BEGIN; SAVEPOINT job");
    let mut jobs = batch.into_iter();
    while let Some((mut job, tries)) = jobs.next() {
        if let Some(sql) = opening.take()
            && let Err(e) = conn.client().batch_execute(sql)
        {
            let err = StoreError::from(e);
            tracing::warn!(error = %err, "could not open a savepoint; the batch's jobs run again");
            let _ = conn.client().batch_execute("ROLLBACK");
            retry_or_fail(std::iter::once((job, tries)).chain(kept), &err, &mut again);
            // those not yet run have nothing to count against them
            again.extend(jobs);
            return counted(again);
        }
        let Ran { verdict, queued, .. } = run_job(conn, job.as_mut(), &deferred, false);
        match verdict {
            Verdict::Commit => opening = Some("RELEASE SAVEPOINT job; SAVEPOINT job"),
            Verdict::Rollback | Verdict::Retry => {
                if let Err(e) = conn.client().batch_execute("ROLLBACK TO SAVEPOINT job") {
                    tracing::error!(error = %e, "could not roll back to a savepoint");
                }
            }
        }
        match verdict {
            Verdict::Retry if tries < MAX_RETRIES => again.push((job, tries + 1)),
            verdict => {
                if verdict == Verdict::Retry {
                    tracing::error!(tries, "a write met conflicts on every try; it is answered with the last one");
                }
                deferred.absorb(queued);
                kept.push((job, tries));
            }
        }
    }
    finish(conn, connector, deferred, kept, again, started)
}

/// Applies the batch's deferred writes, commits, and answers the jobs
/// kept; gives back those to run again.
fn finish(
    conn: &mut Conn,
    connector: &Connector,
    deferred: Deferred,
    kept: Jobs,
    mut again: Jobs,
    started: std::time::Instant,
) -> Jobs {
    // the rows every write touches are written last, just before commit
    let committed = conn.tx().apply_deferred(deferred).and_then(|xid| commit(conn, connector, xid));
    // recorded before anyone is answered: whoever reads the metrics after
    // an answer sees the commit that gave it
    metrics::histogram!("refundry_store_batch_seconds").record(started.elapsed().as_secs_f64());
    match committed {
        Ok(()) => kept.into_iter().for_each(|(job, _)| job.finish(Ok(()))),
        Err(err) => {
            let _ = conn.client().batch_execute("ROLLBACK");
            tracing::warn!(error = %err, "commit failed; the batch's jobs run again");
            retry_or_fail(kept, &err, &mut again);
        }
    }
    counted(again)
}

/// How long a writer keeps asking whether a commit whose answer was lost
/// took effect (PostgreSQL restarting takes some seconds).
const RESOLVE_FOR: Duration = Duration::from_secs(30);

/// Commits the batch. When the connection breaks while COMMIT is in flight
/// (a restart, a killed backend) the transaction may or may not have taken
/// effect; rather than answer every job of the batch "unavailable", which
/// hides a refund that was made behind an error, the writer asks a new
/// connection what became of the transaction: committed, the jobs are
/// answered as usual; rolled back, they run again like any retried job.
/// `xid` is the transaction's id, read with its last writes.
fn commit(conn: &mut Conn, connector: &Connector, xid: Option<String>) -> Result<(), StoreError> {
    let Err(e) = conn.client().batch_execute("COMMIT") else { return Ok(()) };
    if e.as_db_error().is_some_and(|db| !crate::error::lost_connection(db.code().code())) {
        // the server answered, and a COMMIT it refused did not take effect
        return Err(e.into());
    }
    let lost = StoreError::from(e);
    // a transaction that never wrote had nothing to lose
    let Some(xid) = xid else { return Ok(()) };
    match transaction_outcome(connector, &xid, RESOLVE_FOR) {
        Some(true) => {
            tracing::warn!(xid, "the answer to COMMIT was lost; the transaction took effect");
            Ok(())
        }
        Some(false) => {
            tracing::warn!(xid, "the answer to COMMIT was lost; the transaction was rolled back, its jobs run again");
            Err(StoreError::Backend {
                message: "the connection broke during COMMIT, which did not take effect".into(),
                retryable: true,
            })
        }
        None => {
            tracing::error!(xid, "the answer to COMMIT was lost and what became of it could not be learned");
            Err(lost)
        }
    }
}

/// Whether transaction `xid` committed (`Some(true)`) or was rolled back
/// (`Some(false)`), asked on new connections until `patience` runs out;
/// `None` when that could not be learned.
fn transaction_outcome(connector: &Connector, xid: &str, patience: Duration) -> Option<bool> {
    let deadline = std::time::Instant::now() + patience;
    loop {
        let status = connector.connect().and_then(|mut conn| {
            let row = conn.client().query_one("SELECT pg_xact_status($1::text::xid8)", &[&xid])?;
            Ok(row.get::<_, Option<String>>(0))
        });
        match status.as_ref().map(|s| s.as_deref()) {
            Ok(Some("committed")) => return Some(true),
            Ok(Some("aborted")) => return Some(false),
            // too old or unknown to the server: nobody can tell any more
            Ok(None) => return None,
            // "in progress": the broken backend has not finished with it yet;
            // or the server is not back yet
            Ok(Some(_)) | Err(_) => {}
        }
        if std::time::Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Jobs whose transaction failed with `err` run again if it may pass next
/// time and they have tries left; the rest are answered with it.
fn retry_or_fail(jobs: impl IntoIterator<Item = (Box<dyn WriteJob>, u32)>, err: &StoreError, again: &mut Jobs) {
    for (job, tries) in jobs {
        if err.is_retryable() && tries < MAX_RETRIES {
            again.push((job, tries + 1));
        } else {
            job.finish(Err(err.clone()));
        }
    }
}

fn counted(again: Jobs) -> Jobs {
    if !again.is_empty() {
        metrics::counter!("refundry_store_retries_total").increment(again.len() as u64);
    }
    again
}

/// How a job's run went.
struct Ran {
    verdict: Verdict,
    /// The writes it deferred, none when it did not commit.
    queued: Deferred,
    /// Whether it ran anything but reads.
    wrote: bool,
    /// Whether one of its statements failed.
    failed: bool,
}

/// Runs one job in the open transaction (or savepoint).
fn run_job(conn: &mut Conn, job: &mut dyn WriteJob, batch: &Deferred, queue_refunds: bool) -> Ran {
    let mut tx = conn.tx_in(batch, queue_refunds);
    let verdict = std::panic::catch_unwind(AssertUnwindSafe(|| job.run(&mut tx))).unwrap_or_else(|_| {
        tracing::error!("a write job panicked; its changes were rolled back");
        Verdict::Rollback
    });
    let queued = if verdict == Verdict::Commit { tx.take_deferred() } else { Deferred::default() };
    Ran { verdict, queued, wrote: tx.wrote(), failed: tx.failed() }
}

impl Store for PgStore {
    fn submit_write(&self, job: Box<dyn WriteJob>) -> Result<(), Box<dyn WriteJob>> {
        self.writes.try_send(job).map_err(|e| match e {
            TrySendError::Full(job) | TrySendError::Disconnected(job) => job,
        })
    }

    fn submit_read(&self, job: ReadJob) {
        let readers = Arc::clone(&self.readers);
        let (connector, keep) = (self.connector.clone(), self.options.readers);
        self.read_slots.run(&self.runtime, move || read_with(&readers, &connector, keep, job));
    }

    fn backend(&self) -> &'static str {
        "postgres"
    }

    fn ping(&self) -> Result<(), StoreError> {
        self.ping_inner()
    }
}

fn read_with(readers: &Mutex<Vec<Conn>>, connector: &Connector, keep: usize, job: ReadJob) {
    let pooled = readers.lock().ok().and_then(|mut pool| pool.pop()).filter(|c| !c.is_closed());
    // a pooled connection may have died since it was last used, and the
    // server may briefly refuse new ones: try a fresh one, a few times,
    // before giving the caller "unavailable"
    let mut candidate = pooled;
    let mut conn = None;
    for attempt in 0..4u64 {
        let mut c = match candidate.take() {
            Some(c) => c,
            None => match connector.connect() {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, attempt, "cannot open a read connection");
                    std::thread::sleep(std::time::Duration::from_millis(25 * (attempt + 1)));
                    continue;
                }
            },
        };
        match c.client().batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY") {
            Ok(()) => {
                conn = Some(c);
                break;
            }
            Err(e) => tracing::warn!(error = %e, attempt, "a read connection failed; trying a fresh one"),
        }
    }
    let Some(mut conn) = conn else {
        tracing::error!("no read connection; the read is answered as unavailable");
        return; // dropping the job answers its caller with Unavailable
    };
    // one snapshot for the whole job
    {
        let mut tx = conn.tx();
        let _ = std::panic::catch_unwind(AssertUnwindSafe(|| job(&mut tx)));
    }
    let _ = conn.client().batch_execute("COMMIT");
    if let Ok(mut pool) = readers.lock()
        && pool.len() < keep
        && !conn.is_closed()
    {
        pool.push(conn);
    }
}

impl PgStore {
    fn ping_inner(&self) -> Result<(), StoreError> {
        let connector = self.connector.clone();
        let readers = Arc::clone(&self.readers);
        off_runtime(move || {
            let pooled = readers.lock().ok().and_then(|mut pool| pool.pop());
            let mut conn = match pooled {
                Some(conn) => conn,
                None => connector.connect()?,
            };
            conn.client().simple_query("SELECT 1")?;
            if let Ok(mut pool) = readers.lock() {
                pool.push(conn);
            }
            Ok(())
        })
    }
}
