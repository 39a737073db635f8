//! Cash refunds: the cashier hands the money back from the drawer, so there
//! is no acquirer to ask and the refund is done when it is recorded.

use async_trait::async_trait;

use crate::{Outcome, Processor, ProcessorError, RefundOrder};

#[derive(Debug, Default, Clone, Copy)]
pub struct CashDrawer;

impl CashDrawer {
    /// The drawer's answer, known without asking anyone: the refund job
    /// records it in the same commit that starts the attempt.
    pub fn answer(&self, order: &RefundOrder) -> Outcome {
        // no trace number: nothing is sent; the refund's own id names it
        Outcome::Approved { acquirer_reference: format!("CASH-{}", order.reference) }
    }
}

#[async_trait]
impl Processor for CashDrawer {
    fn name(&self) -> &'static str {
        "cash_drawer"
    }

    async fn submit(&self, order: &RefundOrder) -> Result<Outcome, ProcessorError> {
        Ok(self.answer(order))
    }

    async fn inquire(&self, order: &RefundOrder) -> Result<Option<Outcome>, ProcessorError> {
        // handing cash over cannot be lost in transit: answer as submit did
        self.submit(order).await.map(Some)
    }
}
