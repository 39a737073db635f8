//! Terminal batches: the day's close (批结算) after which a sale can no
//! longer be voided, only refunded.

use refundry_core::sale::check_reference;
use refundry_store::model::BatchRecord;

use crate::{Actor, App, AppError, audit};

impl App {
    /// Marks a terminal's batch settled. Settling an already settled batch
    /// answers with the first settlement and changes nothing.
    pub async fn settle_batch(
        &self,
        actor: &Actor,
        terminal_id: &str,
        batch_no: &str,
    ) -> Result<BatchRecord, AppError> {
        check_reference("terminal_id", terminal_id, 32)?;
        check_reference("batch_no", batch_no, 12)?;
        let (actor, terminal_id, batch_no) = (actor.clone(), terminal_id.to_owned(), batch_no.to_owned());
        refundry_store::write(&self.store, move |tx| {
            if let Some(done) = tx.find_batch(actor.merchant_id, &terminal_id, &batch_no)? {
                return Ok(done);
            }
            let batch = BatchRecord {
                merchant_id: actor.merchant_id,
                terminal_id: terminal_id.clone(),
                batch_no: batch_no.clone(),
                settled_at: crate::now(),
            };
            tx.insert_batch(&batch)?;
            let subject = format!("batch:{terminal_id}/{batch_no}");
            audit::record(tx, &actor, "batch.settled", &subject, serde_json::json!({}), batch.settled_at)?;
            Ok(batch)
        })
        .await
    }
}
