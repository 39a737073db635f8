//! Embedded SQLite: one writer thread with group commit, a pool of readers.
//!
//! SQLite allows one writer at a time; instead of many connections taking
//! turns at the file lock, one thread owns the only writing connection. It
//! takes every write that is queued (up to [`MAX_BATCH`]), runs each inside
//! in one `BEGIN IMMEDIATE` transaction, and commits once, with
//! `synchronous=FULL`: one fsync pays for the whole batch. That single
//! writer is also what makes "never refund more than captured" hold under
//! concurrency: a refund's read-check-write cannot interleave with
//! another's.
//!
//! A job that is refused must leave nothing behind while the rest of its
//! batch commits. Nearly every refusal comes before the job has written
//! anything (the checks come first), so jobs run without savepoints, which
//! cost a copy of every page a job touches; only when a job is refused
//! after writing is the batch rolled back and run again with a savepoint
//! around each job ([`run_batch`]).
//!
//! Copying the WAL back into the database file (a checkpoint, with its own
//! fsync) is done by a thread of its own, so the writer never waits for it.
//!
//! The writing connections open through a VFS of ours ([`wal_writes`]) that
//! hands a commit's WAL frames to the file in a few large writes instead of
//! two system calls a page.

mod migrate;
mod repos;
mod wal_writes;

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};

use crate::StoreError;
use crate::deferred::Deferred;
use crate::store::{ReadJob, ReadSlots, Store, Verdict, WriteJob};
pub use repos::SqliteTx;

/// Most writes grouped into one commit.
pub const MAX_BATCH: usize = 512;

/// Bytes in front of each page in the WAL file.
const WAL_FRAME_HEADER: i64 = 24;

#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// Writes waiting for the writer before new ones are refused.
    pub write_queue: usize,
    /// Read connections kept open.
    pub readers: usize,
    pub busy_timeout: Duration,
    /// WAL frames (pages) past which the writer finishes a checkpoint
    /// itself, between two batches, so that the WAL starts over. Every
    /// write waits during that pause; 32,768 (a WAL of 135 MB at 4 KiB
    /// pages) pauses half as often as 16,384 did, and measured ×1.04 in
    /// both mixes (pairs taken in turn), reads no slower for the longer
    /// WAL index.
    pub wal_restart_frames: i64,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            write_queue: 16_384,
            readers: 8,
            busy_timeout: Duration::from_secs(5),
            wal_restart_frames: 32_768,
        }
    }
}

pub struct SqliteStore {
    writes: SyncSender<Box<dyn WriteJob>>,
    readers: Arc<ReaderPool>,
    read_slots: ReadSlots,
    runtime: tokio::runtime::Handle,
}

/// Read-only connections kept between reads, and what opens a new one.
struct ReaderPool {
    idle: Mutex<Vec<Connection>>,
    path: PathBuf,
    options: SqliteOptions,
}

impl ReaderPool {
    /// An idle connection, or a new one when none is.
    fn take(&self) -> Result<Connection, StoreError> {
        let idle = self.idle.lock().map_err(|_| StoreError::Unavailable)?.pop();
        match idle {
            Some(conn) => Ok(conn),
            None => open_connection(&self.path, true, &self.options),
        }
    }

    /// Keeps `conn` for the next read, unless the pool is full.
    fn give_back(&self, conn: Connection) {
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < self.options.readers
        {
            idle.push(conn);
        }
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database file, brings its schema up to
    /// date, and starts the writer thread. Must be called inside a Tokio
    /// runtime: reads run on its blocking pool.
    pub fn open(path: impl AsRef<Path>, options: SqliteOptions) -> Result<SqliteStore, StoreError> {
        let path = path.as_ref().to_path_buf();
        let mut writer = open_connection(&path, false, &options)?;
        migrate::run(&mut writer)?;
        writer.pragma_update(None, "wal_autocheckpoint", 0)?;
        let checkpointer = open_connection(&path, false, &options)?;
        let (writes, queue) = sync_channel(options.write_queue);
        let (committed, commits) = sync_channel(1);
        // journal_size_limit: a WAL that grew in a burst is cut back when it
        // starts over, but not below twice the size at which it starts over
        // in steady use: a limit under that size cut the file back at every
        // restart and the next commits grew it again, a few milliseconds of
        // the writer's time each round
        let page_size: i64 = writer.query_row("PRAGMA page_size", [], |r| r.get(0))?;
        let wal_bytes = options.wal_restart_frames.saturating_mul(page_size + WAL_FRAME_HEADER);
        writer.pragma_update(None, "journal_size_limit", wal_bytes.saturating_mul(2).max(64 * 1024 * 1024))?;
        let restart = Arc::new(AtomicBool::new(false));
        let (restart_due, restart_frames) = (Arc::clone(&restart), options.wal_restart_frames);
        let spawn_failed = |e: std::io::Error| StoreError::Backend { message: e.to_string(), retryable: false };
        std::thread::Builder::new()
            .name("refundry-sqlite-checkpoint".into())
            .spawn(move || checkpoint_loop(checkpointer, commits, restart_due, restart_frames))
            .map_err(spawn_failed)?;
        std::thread::Builder::new()
            .name("refundry-sqlite-writer".into())
            .spawn(move || writer_loop(writer, queue, committed, restart))
            .map_err(spawn_failed)?;
        Ok(SqliteStore {
            writes,
            read_slots: ReadSlots::new(options.readers),
            readers: Arc::new(ReaderPool { idle: Mutex::new(Vec::new()), path, options }),
            runtime: tokio::runtime::Handle::current(),
        })
    }

    /// Applies pending migrations without starting a store.
    pub fn migrate(path: impl AsRef<Path>) -> Result<Vec<String>, StoreError> {
        let mut conn = open_connection(path.as_ref(), false, &SqliteOptions::default())?;
        migrate::run(&mut conn)
    }

    pub fn path(&self) -> &Path {
        &self.readers.path
    }
}

fn open_connection(path: &Path, read_only: bool, options: &SqliteOptions) -> Result<Connection, StoreError> {
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    // the connections that write hand each commit's WAL frames to the file
    // in a few large writes (see wal_writes), relying on synchronous=FULL
    let conn = if read_only {
        Connection::open_with_flags(path, flags)?
    } else {
        Connection::open_with_flags_and_vfs(path, flags, wal_writes::register()?)?
    };
    conn.busy_timeout(options.busy_timeout)?;
    // WAL lets readers work beside the writer; FULL makes each commit
    // durable across power loss, which money needs.
    if !read_only {
        conn.pragma_update(None, "journal_mode", "WAL")?;
    }
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // a refund touches a few dozen pages; keep the hot ones in memory
    // rather than re-reading them from the OS on every write
    // (not more: after a b-tree page split SQLite walks every cached page
    // at commit, and with 64 MiB that walk was a seventh of the writer)
    conn.pragma_update(None, "cache_size", -8_192)?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    // plans never depend on bound values: otherwise a statement whose
    // parameter is weighed against a partial index (the job claim) is
    // prepared again whenever the value changes, which is every time
    conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    // every statement the store runs stays prepared (searches add variants)
    conn.set_prepared_statement_cache_capacity(512);
    Ok(conn)
}

fn writer_loop(
    conn: Connection,
    queue: Receiver<Box<dyn WriteJob>>,
    committed: SyncSender<()>,
    restart: Arc<AtomicBool>,
) {
    while let Ok(first) = queue.recv() {
        let mut batch = Vec::with_capacity(64);
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        metrics::histogram!("refundry_store_commit_batch_size").record(batch.len() as f64);
        let started = Instant::now();
        let (jobs, outcome) = run_batch(&conn, batch);
        // recorded before anyone is answered: whoever reads the metrics
        // after an answer sees the batch that gave it
        metrics::histogram!("refundry_store_batch_seconds").record(started.elapsed().as_secs_f64());
        for job in jobs {
            job.finish(outcome.clone());
        }
        if restart.swap(false, Ordering::Relaxed) {
            // The checkpointer copies frames while the writer appends more,
            // so it never catches up and the WAL never starts over: it grew
            // past a gigabyte under load, and every page read searched its
            // index. Between batches nothing is appended; what is left to
            // copy is small, and the next write starts the WAL over. Every
            // write queued meanwhile waits: the pause is measured, since it
            // is what sets the tail of write latency under load.
            let paused = Instant::now();
            if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                tracing::warn!(error = %e, "the writer's WAL checkpoint failed");
            }
            metrics::histogram!("refundry_store_wal_restart_seconds").record(paused.elapsed().as_secs_f64());
        }
        // a nudge already waiting is enough
        let _ = committed.try_send(());
    }
    tracing::debug!("sqlite writer stopped");
}

/// Copies committed WAL frames into the database file every few commits.
/// PASSIVE never blocks the writer or the readers; frames a reader still
/// needs are copied on a later round. Once the WAL holds `restart_frames`,
/// it catches up as far as it can and asks the writer to finish the job
/// (see [`writer_loop`]). Stops with the writer.
fn checkpoint_loop(conn: Connection, commits: Receiver<()>, restart: Arc<AtomicBool>, restart_frames: i64) {
    yield_to_the_writer();
    let mut pending = 0;
    while commits.recv().is_ok() {
        pending += 1;
        // the nudges say "something committed"; the WAL's size says whether
        // a checkpoint is due, checked every few commits
        if pending < 16 {
            continue;
        }
        pending = 0;
        match checkpoint(&conn) {
            Ok((frames, copied)) if frames >= restart_frames => {
                catch_up(&conn, copied);
                restart.store(true, Ordering::Relaxed);
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "WAL checkpoint failed; it is tried again after later commits"),
        }
    }
    tracing::debug!("sqlite checkpointer stopped");
}

/// The checkpointer's niceness. Its copies are behind no one's answer,
/// while every write waits for the writer; on two busy cores the writer
/// waited for a core a sixth of its time, and with the checkpointer at
/// nice 10 the create mix ran ×1.07 faster (10 pairs taken in turn), its
/// p99 lower. Falling behind is safe: the writer then copies the rest
/// itself before the WAL starts over.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
const CHECKPOINTER_NICE: i32 = 10;

/// Lowers the calling thread's priority to [`CHECKPOINTER_NICE`], never
/// raising it (on Linux, `setpriority` on a thread id touches that thread
/// alone; raising one's own niceness needs no privilege).
fn yield_to_the_writer() {
    #[cfg(target_os = "linux")]
    {
        use rustix::process::{getpriority_process, setpriority_process};
        let me = Some(rustix::thread::gettid());
        let lowered = getpriority_process(me).and_then(|nice| {
            if nice < CHECKPOINTER_NICE { setpriority_process(me, CHECKPOINTER_NICE) } else { Ok(()) }
        });
        if let Err(e) = lowered {
            tracing::debug!(error = %e, "the checkpointer's priority could not be lowered");
        }
    }
}

/// Frames left to copy below which the writer is asked to finish.
const CATCH_UP_FRAMES: i64 = 256;
/// Checkpoints run back to back at most while catching up.
const CATCH_UP_ROUNDS: usize = 8;

/// Checkpoints again and again, each round copying what the writer
/// appended during the one before, until a round has little left to copy.
/// What the writer must still copy itself, while every write waits, is
/// then what one short round leaves behind: its pause shrank from the
/// 12-45 ms of copying sixteen commits' frames to a few milliseconds.
fn catch_up(conn: &Connection, mut copied: i64) {
    for _ in 0..CATCH_UP_ROUNDS {
        match checkpoint(conn) {
            // fewer copied than before: the WAL started over meanwhile
            Ok((_, now)) if now - copied <= CATCH_UP_FRAMES => return,
            Ok((_, now)) => copied = now,
            Err(e) => {
                tracing::warn!(error = %e, "WAL checkpoint failed while catching up");
                return;
            }
        }
    }
}

/// One PASSIVE checkpoint: the frames in the WAL, and how many of them are
/// now in the database file.
fn checkpoint(conn: &Connection) -> rusqlite::Result<(i64, i64)> {
    let started = Instant::now();
    let counts = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| Ok((r.get(1)?, r.get(2)?)));
    metrics::histogram!("refundry_store_checkpoint_seconds").record(started.elapsed().as_secs_f64());
    counts
}

/// A batch's jobs, with its commit's outcome to answer them with.
type Ran = (Vec<Box<dyn WriteJob>>, Result<(), StoreError>);

/// Runs a batch in one transaction and commits it: first without
/// savepoints; if a job was refused after it wrote, everything is rolled
/// back and the batch runs again with a savepoint around each job (the jobs
/// may run more than once, as [`crate::write`] says).
fn run_batch(conn: &Connection, mut batch: Vec<Box<dyn WriteJob>>) -> Ran {
    if let Err(e) = exec(conn, "BEGIN IMMEDIATE") {
        return (batch, Err(e.into()));
    }
    let deferred = match run_unguarded(conn, &mut batch) {
        Some(deferred) => deferred,
        None => {
            metrics::counter!("refundry_store_batch_replays_total").increment(1);
            if let Err(e) = exec(conn, "ROLLBACK").and_then(|()| exec(conn, "BEGIN IMMEDIATE")) {
                return (batch, Err(e.into()));
            }
            let mut deferred = Deferred::default();
            for job in batch.iter_mut() {
                let kept = run_in_savepoint(conn, job.as_mut(), &deferred);
                deferred.absorb(kept);
            }
            deferred
        }
    };
    // the rows every write touches are written last, just before commit
    let committed =
        SqliteTx::new(conn).apply_deferred(deferred).and_then(|()| exec(conn, "COMMIT").map_err(StoreError::from));
    if let Err(e) = &committed {
        tracing::error!(error = %e, "commit failed; the whole batch was rolled back");
        let _ = exec(conn, "ROLLBACK");
    }
    (batch, committed)
}

/// Runs the jobs one after another in the open transaction; returns the
/// writes they deferred, or `None` as soon as a job was refused (or
/// panicked) after changing a row, which only a rollback can undo.
fn run_unguarded(conn: &Connection, batch: &mut [Box<dyn WriteJob>]) -> Option<Deferred> {
    let mut deferred = Deferred::default();
    for job in batch.iter_mut() {
        let changes = conn.total_changes();
        let mut tx = SqliteTx::in_batch(conn, &deferred);
        let verdict = std::panic::catch_unwind(AssertUnwindSafe(|| job.run(&mut tx)));
        if matches!(verdict, Ok(Verdict::Commit)) {
            let kept = tx.take_deferred();
            deferred.absorb(kept);
        } else if conn.total_changes() != changes {
            return None;
        } else if verdict.is_err() {
            tracing::error!("a write job panicked before writing; nothing of it is kept");
        }
    }
    Some(deferred)
}

/// Runs one job in its own savepoint; returns the writes it deferred if it
/// is kept.
fn run_in_savepoint(conn: &Connection, job: &mut dyn WriteJob, batch: &Deferred) -> Deferred {
    if exec(conn, "SAVEPOINT job").is_err() {
        return Deferred::default();
    }
    let mut tx = SqliteTx::in_batch(conn, batch);
    let verdict = std::panic::catch_unwind(AssertUnwindSafe(|| job.run(&mut tx)));
    let keep = matches!(verdict, Ok(Verdict::Commit));
    if verdict.is_err() {
        tracing::error!("a write job panicked; its changes were rolled back");
    }
    let closed =
        if keep { exec(conn, "RELEASE job") } else { exec(conn, "ROLLBACK TO job").and(exec(conn, "RELEASE job")) };
    if let Err(e) = closed {
        tracing::error!(error = %e, "could not close a savepoint");
    }
    if keep { tx.take_deferred() } else { Deferred::default() }
}

/// Runs a statement kept prepared: the writer opens and closes a savepoint
/// for every write, and parsing those each time showed in profiles.
fn exec(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

impl Store for SqliteStore {
    fn submit_write(&self, job: Box<dyn WriteJob>) -> Result<(), Box<dyn WriteJob>> {
        self.writes.try_send(job).map_err(|e| match e {
            TrySendError::Full(job) | TrySendError::Disconnected(job) => job,
        })
    }

    fn submit_read(&self, job: ReadJob) {
        let readers = Arc::clone(&self.readers);
        self.read_slots.run(&self.runtime, move || {
            let conn = match readers.take() {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::error!(error = %e, "cannot open a read connection");
                    return; // dropping the job answers its caller with Unavailable
                }
            };
            // a deferred transaction gives the job one consistent snapshot
            if exec(&conn, "BEGIN").is_ok() {
                let mut tx = SqliteTx::new(&conn);
                let _ = std::panic::catch_unwind(AssertUnwindSafe(|| job(&mut tx)));
                let _ = exec(&conn, "COMMIT");
            }
            readers.give_back(conn);
        });
    }

    fn backend(&self) -> &'static str {
        "sqlite"
    }

    fn ping(&self) -> Result<(), StoreError> {
        let conn = self.readers.take()?;
        conn.query_row("SELECT 1", [], |_| Ok(()))?;
        self.readers.give_back(conn);
        Ok(())
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    #[test]
    fn the_checkpointer_gives_way_on_its_own_thread_only() {
        fn nice_of(stat: &str) -> i64 {
            // the fields after the parenthesised name: nice is the 19th field
            let fields: Vec<&str> = stat.rsplit_once(')').unwrap().1.split_whitespace().collect();
            fields[16].parse().unwrap()
        }
        let before = nice_of(&std::fs::read_to_string("/proc/thread-self/stat").unwrap());
        let lowered = std::thread::spawn(|| {
            super::yield_to_the_writer();
            nice_of(&std::fs::read_to_string("/proc/thread-self/stat").unwrap())
        })
        .join()
        .unwrap();
        assert_eq!(lowered, before.max(i64::from(super::CHECKPOINTER_NICE)));
        assert_eq!(nice_of(&std::fs::read_to_string("/proc/thread-self/stat").unwrap()), before);
    }
}
