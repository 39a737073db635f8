//! Connectors turn an approved refund into the acquirer's language and back.
//!
//! Every call carries the refund's id as its idempotency reference, so the
//! acquirer can recognise a retry; an unknown outcome (timeout, dropped
//! connection, a crash of Refundry between sending and recording) is
//! resolved by [`Processor::inquire`] before anything is sent again.

pub mod sandbox;

use async_trait::async_trait;
use refundry_core::money::Money;
use refundry_core::refund::RefundType;

/// What the acquirer needs to give money back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundOrder {
    /// Our refund id: the idempotency reference of every message about it.
    pub reference: String,
    pub refund_type: RefundType,
    pub amount: Money,
    pub terminal_id: String,
    /// The original sale's references, as the acquirer knows the sale.
    pub original_rrn: Option<String>,
    pub original_auth_code: Option<String>,
    pub original_voucher_no: Option<String>,
    pub original_batch_no: Option<String>,
}

/// The acquirer's final word on a refund.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Approved {
        acquirer_reference: String,
    },
    /// A stable code users can read (`declined`, `card_closed`…) and the
    /// acquirer's own response code.
    Declined {
        reason: String,
        response_code: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProcessorError {
    /// Sent, but no answer came: the outcome is unknown and must be asked
    /// for, never assumed.
    #[error("the acquirer did not answer in time")]
    Timeout,
    /// Could not reach the acquirer; nothing was sent.
    #[error("the acquirer is unavailable: {0}")]
    Unavailable(String),
}

#[async_trait]
pub trait Processor: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    async fn submit(&self, order: &RefundOrder) -> Result<Outcome, ProcessorError>;
    /// What became of an earlier submission; `None` when the acquirer never
    /// received it, so it is safe to submit.
    async fn inquire(&self, reference: &str) -> Result<Option<Outcome>, ProcessorError>;
}
