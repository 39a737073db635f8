//! Where the machine's CPU went during a measured window, read from
//! `/proc` (Linux): the load generator itself, the server's HTTP and app
//! threads, its database writer threads, the PostgreSQL backends, and the
//! rest. Client and server share the machine, so the sum per refund says
//! how many refunds per second the machine's cores could carry at all.

use std::collections::HashMap;
use std::time::Instant;

use procfs::CurrentSI;
use procfs::process::Process;

/// The parts CPU time is split into, in report order.
pub const PARTS: [&str; 5] =
    ["load generator", "server: HTTP and app", "server: database writer", "PostgreSQL backends", "rest of the machine"];

/// The index in [`PARTS`] of the server's database writer threads.
pub const WRITER: usize = 2;

/// The index in [`PARTS`] of PostgreSQL's backends, which a SQLite run has not.
pub const POSTGRES: usize = 3;

/// Threads of the server that run the database writer (their names are
/// set by the store: `refundry-sqlite`, `refundry-pg-writer-N`).
fn is_writer_thread(comm: &str) -> bool {
    comm.starts_with("refundry-sqlite") || comm.starts_with("refundry-pg")
}

/// CPU seconds used so far, by part, and by the whole machine.
#[derive(Debug, Clone)]
pub struct CpuSample {
    at: Instant,
    parts: [f64; 4],
    /// PostgreSQL's processes by id: they come and go, and one that ended
    /// takes its time with it, so a window counts each process's own change.
    postgres: HashMap<i32, f64>,
    machine_busy: f64,
}

/// Reads the counters now. `server`: the server's process id. `None` where
/// `/proc` cannot be read (not Linux).
pub fn sample(server: u32) -> Option<CpuSample> {
    let tick = procfs::ticks_per_second() as f64;
    let secs = |s: &procfs::process::Stat| (s.utime + s.stime) as f64 / tick;
    let at = Instant::now();
    let mut parts = [0.0; 4];
    // a process's own counters keep the time of its threads that ended (a
    // runtime's blocking threads come and go); the writer threads live as
    // long as the server, so they are counted by thread
    parts[0] = secs(&Process::myself().ok()?.stat().ok()?);
    let server = Process::new(server as i32).ok()?;
    let server_total = secs(&server.stat().ok()?);
    for task in server.tasks().ok()?.flatten() {
        if let Ok(stat) = task.stat()
            && is_writer_thread(&stat.comm)
        {
            parts[2] += secs(&stat);
        }
    }
    parts[1] = (server_total - parts[2]).max(0.0);
    let mut postgres = HashMap::new();
    for process in procfs::process::all_processes().ok()?.flatten() {
        if let Ok(stat) = process.stat()
            && stat.comm == "postgres"
        {
            postgres.insert(stat.pid, secs(&stat));
        }
    }
    let total = procfs::KernelStats::current().ok()?.total;
    let busy_ticks = total.user
        + total.nice
        + total.system
        + total.irq.unwrap_or(0)
        + total.softirq.unwrap_or(0)
        + total.steal.unwrap_or(0);
    Some(CpuSample { at, parts, postgres, machine_busy: busy_ticks as f64 / tick })
}

/// CPU used between two samples.
#[derive(Debug, Clone)]
pub struct CpuUse {
    pub seconds: f64,
    pub cores: usize,
    /// Cores busy on average, by [`PARTS`].
    pub busy: [f64; 5],
}

impl CpuUse {
    pub fn between(start: &CpuSample, end: &CpuSample) -> CpuUse {
        let seconds = end.at.duration_since(start.at).as_secs_f64().max(1e-9);
        let mut busy = [0.0; 5];
        for (i, b) in busy.iter_mut().take(3).enumerate() {
            *b = (end.parts[i] - start.parts[i]).max(0.0) / seconds;
        }
        let postgres: f64 =
            end.postgres.iter().map(|(pid, now)| (now - start.postgres.get(pid).unwrap_or(&0.0)).max(0.0)).sum();
        busy[POSTGRES] = postgres / seconds;
        let machine = (end.machine_busy - start.machine_busy).max(0.0) / seconds;
        busy[4] = (machine - busy[..4].iter().sum::<f64>()).max(0.0);
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        CpuUse { seconds, cores, busy }
    }

    /// Cores busy in all, and idle.
    pub fn total(&self) -> f64 {
        self.busy.iter().sum()
    }

    pub fn idle(&self) -> f64 {
        (self.cores as f64 - self.total()).max(0.0)
    }

    /// CPU microseconds per unit of work done at `rate` per second.
    pub fn micros_per(&self, part: usize, rate: f64) -> f64 {
        if rate > 0.0 { self.busy[part] / rate * 1e6 } else { 0.0 }
    }

    /// CPU µs of every part together per unit, at `rate` units a second.
    pub fn total_micros_per(&self, rate: f64) -> f64 {
        if rate > 0.0 { self.total() / rate * 1e6 } else { 0.0 }
    }

    /// The rate at which the machine's cores would all be busy, if every
    /// part's cost per unit stayed as measured.
    pub fn bound(&self, rate: f64) -> f64 {
        let per_unit = self.total() / rate.max(1e-9);
        if per_unit > 0.0 { self.cores as f64 / per_unit } else { 0.0 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(parts: [f64; 4], machine_busy: f64, after: std::time::Duration, base: Instant) -> CpuSample {
        CpuSample { at: base + after, parts, postgres: HashMap::new(), machine_busy }
    }

    #[test]
    fn splits_the_machine_and_bounds_the_rate() {
        let base = Instant::now();
        let start = at([1.0, 2.0, 3.0, 0.0], 10.0, std::time::Duration::ZERO, base);
        let end = at([1.5, 3.0, 4.5, 0.0], 13.5, std::time::Duration::from_secs(2), base);
        let used = CpuUse::between(&start, &end);
        assert_eq!(used.busy, [0.25, 0.5, 0.75, 0.0, 0.25]);
        assert_eq!(used.total(), 1.75);
        // 1,000 refunds/s at 1.75 cores: 1,750 µs of CPU each, of which the writer 750
        assert!((used.micros_per(2, 1000.0) - 750.0).abs() < 1e-9);
        assert!((used.total_micros_per(1000.0) - 1750.0).abs() < 1e-9);
        assert_eq!(used.total_micros_per(0.0), 0.0, "nothing done, nothing to share out");
        assert!((used.bound(1000.0) - used.cores as f64 / 0.00175).abs() < 1e-6);
    }

    #[test]
    fn a_database_process_counts_its_own_change_and_a_new_one_all_its_time() {
        let base = Instant::now();
        let mut start = at([0.0; 4], 0.0, std::time::Duration::ZERO, base);
        start.postgres = HashMap::from([(10, 5.0), (11, 7.0)]);
        let mut end = at([0.0; 4], 4.0, std::time::Duration::from_secs(1), base);
        // 11 ended (its time is gone), 12 started
        end.postgres = HashMap::from([(10, 6.0), (12, 0.5)]);
        let used = CpuUse::between(&start, &end);
        assert_eq!(used.busy[POSTGRES], 1.5);
        assert_eq!(used.busy[4], 2.5);
    }

    #[test]
    fn reads_this_process() {
        let me = std::process::id();
        let Some(first) = sample(me) else { return };
        let spin = Instant::now();
        let mut x = 0u64;
        while spin.elapsed() < std::time::Duration::from_millis(200) {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        let used = CpuUse::between(&first, &sample(me).expect("read once, read again"));
        // this process is both the load generator and the "server" here
        assert!(used.busy[0] > 0.0, "{used:?}");
    }
}
