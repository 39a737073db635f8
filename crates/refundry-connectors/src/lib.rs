//! Connectors turn an approved refund into the acquirer's language and back.
//!
//! Every call carries the refund's id as its idempotency reference, so the
//! acquirer can recognise a retry; an unknown outcome (timeout, dropped
//! connection, a crash of Refundry between sending and recording) is
//! resolved by [`Processor::inquire`] before anything is sent again.

pub mod cash;
pub mod iso8583;
pub mod sandbox;
pub mod simulator;

use async_trait::async_trait;
use refundry_core::money::Money;
use refundry_core::refund::RefundType;

/// What the acquirer needs to give money back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundOrder {
    /// Our refund id: the idempotency reference of every message about it.
    pub reference: String,
    /// Which attempt this is (1, 2, … after a resubmission of a failed refund).
    pub attempt: u32,
    /// The system trace audit number (STAN, 流水号) of this attempt's
    /// message, unique per terminal; recorded before the message is sent, so
    /// an inquiry or reversal after a crash names the same message.
    pub stan: u32,
    pub refund_type: RefundType,
    pub amount: Money,
    pub terminal_id: String,
    /// The original sale's references, as the acquirer knows the sale.
    pub original_rrn: Option<String>,
    pub original_auth_code: Option<String>,
    /// 凭证号: on China UnionPay POS slips this is the original STAN.
    pub original_voucher_no: Option<String>,
    pub original_batch_no: Option<String>,
    /// The original transaction's date, MMDD in the acquirer's time zone.
    pub original_date: String,
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
    /// The terminal whose trace numbers (STAN) this connector's messages
    /// use, when it speaks as one terminal of its own; `None`: each sale's
    /// terminal.
    fn stan_terminal(&self) -> Option<&str> {
        None
    }
    async fn submit(&self, order: &RefundOrder) -> Result<Outcome, ProcessorError>;
    /// Resolves an earlier submission of `order` (same reference and STAN)
    /// whose answer was never recorded: by asking, by repeating an advice
    /// the acquirer de-duplicates, or by reversing it (冲正) — whatever the
    /// connector's protocol says. `None` when the acquirer never received
    /// it, so it is safe to submit.
    async fn inquire(&self, order: &RefundOrder) -> Result<Option<Outcome>, ProcessorError>;
}
