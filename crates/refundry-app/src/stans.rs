//! Trace numbers (STANs) for acquirer messages, handed out from runs
//! reserved ahead.
//!
//! Every card refund needs the next number of one terminal's counter, and
//! on PostgreSQL a counter row taken inside a write stays locked until its
//! whole batch commits: with one counter per terminal (and a connector's
//! own terminal for every refund) the writers queued on that row one batch
//! after another. So a run of numbers is reserved in a write of its own,
//! and refunds take from it in memory. A run is only handed out after its
//! reservation committed, so two instances never share a number; numbers
//! of a run not used when the process stops, or taken by a write that was
//! rolled back, are skipped. An acquirer asks a terminal's STANs to be
//! unique, not gapless.

use std::collections::HashMap;
use std::ops::RangeInclusive;
use std::sync::Mutex;

use refundry_core::ids::MerchantId;
use refundry_store::Store;

use crate::error::AppError;

/// Numbers reserved at a time. A reservation holds the counter's row for
/// a batch; at this size it is needed once in a few hundred refunds, and
/// a restart skips at most this many of a terminal's 999,999.
pub const RUN: u32 = 256;

#[derive(Default)]
pub struct StanRuns {
    free: Mutex<HashMap<MerchantId, HashMap<String, RangeInclusive<u32>>>>,
    /// One reservation at a time: refunds that found the run empty together
    /// wait for one new run instead of each reserving its own.
    reserving: tokio::sync::Mutex<()>,
}

impl StanRuns {
    /// The terminal's next reserved number, if any is left.
    pub fn take(&self, merchant: MerchantId, terminal: &str) -> Option<u32> {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        free.get_mut(&merchant)?.get_mut(terminal)?.next()
    }

    fn put(&self, merchant: MerchantId, terminal: &str, run: RangeInclusive<u32>) {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        free.entry(merchant).or_default().insert(terminal.to_owned(), run);
    }

    fn is_empty(&self, merchant: MerchantId, terminal: &str) -> bool {
        let free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        free.get(&merchant).and_then(|t| t.get(terminal)).is_none_or(|run| run.is_empty())
    }

    /// Reserves a new run for the terminal once its run is used up (unless
    /// another caller did so meanwhile). The run is handed out only after
    /// its reservation committed.
    pub async fn reserve(
        &self,
        store: &std::sync::Arc<dyn Store>,
        merchant: MerchantId,
        terminal: &str,
    ) -> Result<(), AppError> {
        let _one_at_a_time = self.reserving.lock().await;
        if !self.is_empty(merchant, terminal) {
            return Ok(());
        }
        let owned = terminal.to_owned();
        let run =
            refundry_store::write(store, move |tx| Ok::<_, AppError>(tx.reserve_stans(merchant, &owned, RUN)?)).await?;
        self.put(merchant, terminal, run);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_come_in_order_from_the_run_and_stop_at_its_end() {
        let runs = StanRuns::default();
        let m = MerchantId::generate();
        assert_eq!(runs.take(m, "T1"), None, "nothing before a reservation");
        runs.put(m, "T1", 7..=9);
        assert_eq!((runs.take(m, "T1"), runs.take(m, "T1")), (Some(7), Some(8)));
        assert!(!runs.is_empty(m, "T1"));
        assert_eq!(runs.take(m, "T1"), Some(9));
        assert!(runs.is_empty(m, "T1"));
        assert_eq!(runs.take(m, "T1"), None);
    }

    #[test]
    fn each_terminal_of_each_merchant_has_its_own_run() {
        let runs = StanRuns::default();
        let (a, b) = (MerchantId::generate(), MerchantId::generate());
        runs.put(a, "T1", 1..=1);
        runs.put(a, "T2", 50..=51);
        runs.put(b, "T1", 900..=900);
        assert_eq!(runs.take(a, "T1"), Some(1));
        assert_eq!(runs.take(a, "T1"), None);
        assert_eq!(runs.take(a, "T2"), Some(50));
        assert_eq!(runs.take(b, "T1"), Some(900));
        assert!(runs.is_empty(b, "T3"));
    }
}
