//! What the server's store said about its group commits during a measured
//! window: two reads of its `/metrics`, one at each end, and the
//! difference. The batches' length and the SQLite writer's pauses while
//! the WAL starts over are what set the tail of write latency, so the
//! report shows them beside the latencies they explain, with the
//! checkpoints that run beside the writer.

use crate::api::Api;

/// Running totals of the store's metrics at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CommitTotals {
    batches: f64,
    batch_seconds: f64,
    writes: f64,
    restarts: f64,
    restart_seconds: f64,
    checkpoints: f64,
    checkpoint_seconds: f64,
}

impl CommitTotals {
    /// Reads the totals out of Prometheus' text format; a metric not yet
    /// recorded counts as zero.
    pub fn parse(text: &str) -> CommitTotals {
        let mut t = CommitTotals::default();
        for line in text.lines() {
            let Some((name, value)) = line.rsplit_once(' ') else { continue };
            let Ok(value) = value.parse::<f64>() else { continue };
            let slot = match name {
                "refundry_store_batch_seconds_count" => &mut t.batches,
                "refundry_store_batch_seconds_sum" => &mut t.batch_seconds,
                "refundry_store_commit_batch_size_sum" => &mut t.writes,
                "refundry_store_wal_restart_seconds_count" => &mut t.restarts,
                "refundry_store_wal_restart_seconds_sum" => &mut t.restart_seconds,
                "refundry_store_checkpoint_seconds_count" => &mut t.checkpoints,
                "refundry_store_checkpoint_seconds_sum" => &mut t.checkpoint_seconds,
                _ => continue,
            };
            *slot = value;
        }
        t
    }
}

/// The store's group commits between two samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Commits {
    pub batches_per_s: f64,
    /// Writes of every kind (refunds, the job runner's, ...) per batch.
    pub writes_per_batch: f64,
    pub ms_per_batch: f64,
    /// SQLite only: how often the writer paused for the WAL to start over,
    /// and for how long each time.
    pub restarts_per_s: f64,
    pub ms_per_restart: f64,
    /// SQLite only: checkpoints of the WAL into the database file, run
    /// beside the writer.
    pub checkpoints_per_s: f64,
    pub ms_per_checkpoint: f64,
}

impl Commits {
    pub fn between(start: &CommitTotals, end: &CommitTotals, seconds: f64) -> Option<Commits> {
        let batches = end.batches - start.batches;
        if batches <= 0.0 || seconds <= 0.0 {
            return None;
        }
        let restarts = end.restarts - start.restarts;
        let checkpoints = end.checkpoints - start.checkpoints;
        let per = |seconds: f64, count: f64| if count > 0.0 { seconds * 1000.0 / count } else { 0.0 };
        Some(Commits {
            batches_per_s: batches / seconds,
            writes_per_batch: (end.writes - start.writes) / batches,
            ms_per_batch: (end.batch_seconds - start.batch_seconds) * 1000.0 / batches,
            restarts_per_s: restarts / seconds,
            ms_per_restart: per(end.restart_seconds - start.restart_seconds, restarts),
            checkpoints_per_s: checkpoints / seconds,
            ms_per_checkpoint: per(end.checkpoint_seconds - start.checkpoint_seconds, checkpoints),
        })
    }
}

/// The totals now, or `None` when the server does not answer.
pub async fn sample(api: &Api) -> Option<CommitTotals> {
    let text = api.get("/metrics").send().await.ok()?.text().await.ok()?;
    Some(CommitTotals::parse(&text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_are_read_from_prometheus_text_and_differenced() {
        let at = |batches: u32, restarts: u32| {
            format!(
                "# TYPE refundry_store_batch_seconds summary\n\
                 refundry_store_batch_seconds{{quantile=\"0.5\"}} 0.002\n\
                 refundry_store_batch_seconds_sum {}\n\
                 refundry_store_batch_seconds_count {batches}\n\
                 refundry_store_commit_batch_size_sum {}\n\
                 refundry_store_wal_restart_seconds_sum {}\n\
                 refundry_store_wal_restart_seconds_count {restarts}\n\
                 refundry_store_checkpoint_seconds_sum {}\n\
                 refundry_store_checkpoint_seconds_count {}\n\
                 refundry_http_requests_total{{status=\"201\"}} 99\n",
                f64::from(batches) * 0.003,
                batches * 20,
                f64::from(restarts) * 0.010,
                f64::from(restarts) * 0.040,
                restarts * 8,
            )
        };
        let (start, end) = (CommitTotals::parse(&at(100, 1)), CommitTotals::parse(&at(700, 4)));
        let c = Commits::between(&start, &end, 2.0).unwrap();
        assert_eq!(c.batches_per_s, 300.0);
        assert!((c.writes_per_batch - 20.0).abs() < 1e-9);
        assert!((c.ms_per_batch - 3.0).abs() < 1e-9);
        assert_eq!(c.restarts_per_s, 1.5);
        assert!((c.ms_per_restart - 10.0).abs() < 1e-9);
        assert_eq!(c.checkpoints_per_s, 12.0);
        assert!((c.ms_per_checkpoint - 5.0).abs() < 1e-9);
        // PostgreSQL has no WAL restarts; a window without batches says nothing
        let pg = Commits::between(&CommitTotals::parse(&at(1, 0)), &CommitTotals::parse(&at(3, 0)), 1.0).unwrap();
        assert_eq!((pg.restarts_per_s, pg.ms_per_restart), (0.0, 0.0));
        assert_eq!((pg.checkpoints_per_s, pg.ms_per_checkpoint), (0.0, 0.0));
        assert_eq!(Commits::between(&start, &start, 2.0), None);
    }
}
