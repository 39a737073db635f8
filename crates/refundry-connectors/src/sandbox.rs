//! A built-in acquirer for demos and tests. It keeps what it applied in
//! memory, keyed by reference, so a resubmission is recognised, and counts
//! how often each refund was applied so tests can prove "never twice".

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;

use crate::{Outcome, Processor, ProcessorError, RefundOrder};

/// How the sandbox answers the next submissions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SandboxMode {
    #[default]
    Approve,
    Decline,
    /// Applies the refund but loses the answer, like a network timeout
    /// after the acquirer acted.
    TimeoutAfterApplying,
    /// Unreachable: nothing is applied.
    Unavailable,
}

#[derive(Debug, Default)]
struct Ledger {
    mode: SandboxMode,
    /// By (reference, STAN): one message, one answer. A new attempt of the
    /// same refund is a new message.
    outcomes: HashMap<(String, u32), Outcome>,
    applied: HashMap<String, u32>,
    submissions: u64,
}

#[derive(Debug, Default)]
pub struct SandboxAcquirer {
    latency: Duration,
    ledger: Mutex<Ledger>,
}

impl SandboxAcquirer {
    pub fn new(latency: Duration) -> SandboxAcquirer {
        SandboxAcquirer { latency, ledger: Mutex::default() }
    }

    pub fn set_mode(&self, mode: SandboxMode) {
        self.ledger().mode = mode;
    }

    /// How many times the refund with this reference moved money (0 or 1,
    /// unless something is badly wrong).
    pub fn times_applied(&self, reference: &str) -> u32 {
        self.ledger().applied.get(reference).copied().unwrap_or(0)
    }

    pub fn submissions(&self) -> u64 {
        self.ledger().submissions
    }

    fn ledger(&self) -> std::sync::MutexGuard<'_, Ledger> {
        // a poisoned lock only means a test panicked mid-call; the map is fine
        self.ledger.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl Processor for SandboxAcquirer {
    fn name(&self) -> &'static str {
        "sandbox"
    }

    async fn submit(&self, order: &RefundOrder) -> Result<Outcome, ProcessorError> {
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
        let mut ledger = self.ledger();
        ledger.submissions += 1;
        // a real acquirer answers a repeated message with the first answer
        let message = (order.reference.clone(), order.stan);
        if let Some(known) = ledger.outcomes.get(&message) {
            return Ok(known.clone());
        }
        // and never moves the money of one refund twice
        if ledger.applied.contains_key(&order.reference) {
            let n = ledger.applied.len();
            return Ok(Outcome::Approved { acquirer_reference: format!("SBX{n:09}") });
        }
        let outcome = match ledger.mode {
            SandboxMode::Unavailable => {
                return Err(ProcessorError::Unavailable("sandbox set to unavailable".into()));
            }
            SandboxMode::Decline => Outcome::Declined { reason: "declined".into(), response_code: "05".into() },
            SandboxMode::Approve | SandboxMode::TimeoutAfterApplying => {
                *ledger.applied.entry(order.reference.clone()).or_default() += 1;
                let n = ledger.applied.len();
                Outcome::Approved { acquirer_reference: format!("SBX{n:09}") }
            }
        };
        ledger.outcomes.insert(message, outcome.clone());
        if ledger.mode == SandboxMode::TimeoutAfterApplying {
            return Err(ProcessorError::Timeout);
        }
        Ok(outcome)
    }

    async fn inquire(&self, order: &RefundOrder) -> Result<Option<Outcome>, ProcessorError> {
        let ledger = self.ledger();
        if ledger.mode == SandboxMode::Unavailable {
            return Err(ProcessorError::Unavailable("sandbox set to unavailable".into()));
        }
        Ok(ledger.outcomes.get(&(order.reference.clone(), order.stan)).cloned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use refundry_core::money::{Currency, Money};
    use refundry_core::refund::RefundType;

    fn order(reference: &str) -> RefundOrder {
        RefundOrder {
            reference: reference.into(),
            attempt: 1,
            stan: 1,
            refund_type: RefundType::Refund,
            amount: Money::new(100, Currency::CNY),
            terminal_id: "T1".into(),
            original_rrn: None,
            original_auth_code: None,
            original_voucher_no: None,
            original_batch_no: None,
            original_date: "1126".into(),
        }
    }

    #[tokio::test]
    async fn a_repeated_reference_is_applied_once() {
        let acq = SandboxAcquirer::default();
        let first = acq.submit(&order("re_1")).await.unwrap();
        let again = acq.submit(&order("re_1")).await.unwrap();
        assert_eq!(first, again);
        assert_eq!(acq.times_applied("re_1"), 1);
    }

    #[tokio::test]
    async fn a_lost_answer_is_found_by_inquiry() {
        let acq = SandboxAcquirer::default();
        acq.set_mode(SandboxMode::TimeoutAfterApplying);
        assert_eq!(acq.submit(&order("re_2")).await, Err(ProcessorError::Timeout));
        acq.set_mode(SandboxMode::Approve);
        assert!(matches!(acq.inquire(&order("re_2")).await, Ok(Some(Outcome::Approved { .. }))));
        assert_eq!(acq.inquire(&order("re_3")).await, Ok(None));
    }
}
