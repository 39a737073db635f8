//! The append-only, hash-chained audit log.
//!
//! Each merchant has its own chain: event `n` stores the hash of event
//! `n-1`, and its own hash covers that link and every field of the event.
//! Editing, removing or reordering a stored event breaks the chain at that
//! event, which [`verify_chain`] names.

use jiff::Timestamp;
use refundry_core::ids::MerchantId;
use refundry_store::Tx;
use refundry_store::model::AuditEvent;

use crate::{Actor, AppError};

pub use refundry_store::deferred::{GENESIS_HASH, event_hash};

/// Records one event for the merchant's chain, inside the caller's
/// transaction, so the change and its record commit together. The store
/// links it into the chain (seq, previous hash, hash) as the transaction
/// commits, so a command takes the chain head only for that last moment.
pub fn record(
    tx: &mut dyn Tx,
    actor: &Actor,
    action: &str,
    subject: &str,
    data: serde_json::Value,
    at: Timestamp,
) -> Result<(), AppError> {
    let event = AuditEvent {
        merchant_id: actor.merchant_id,
        seq: 0,
        at,
        actor: actor.label(),
        source: actor.source.clone(),
        action: action.to_owned(),
        subject: subject.to_owned(),
        // the chain hashes this text as stored, so verifying needs no
        // re-encoding; the same text as `Display` writes, through a byte
        // buffer rather than a formatter (it is in every audited write)
        data: serde_json::to_string(&data).unwrap_or_default(),
        prev_hash: String::new(),
        hash: String::new(),
    };
    // every audited change is also a webhook event, queued in the same commit
    crate::webhooks::emit(tx, &event)?;
    tx.append_audit(event)?;
    Ok(())
}

/// Where a chain stops being trustworthy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainBreak {
    /// The event's content no longer matches its hash: it was altered.
    Altered { seq: i64 },
    /// The event does not follow the one before it: an event was removed or
    /// the order changed.
    Broken { seq: i64, expected_seq: i64 },
    /// The chain ends before the head recorded beside it: the newest events
    /// were removed.
    Truncated { last_seq: i64, head_seq: i64 },
}

/// Checks a merchant's whole chain, page by page. `Ok(n)` is the number of
/// events verified.
pub async fn verify_chain(app: &crate::App, merchant: MerchantId) -> Result<Result<u64, ChainBreak>, AppError> {
    let mut after = 0i64;
    let mut prev_hash = GENESIS_HASH.to_owned();
    let mut checked = 0u64;
    loop {
        let page =
            refundry_store::read(&app.store, move |tx| tx.audit_events(merchant, after, 1000).map_err(AppError::from))
                .await?;
        if page.is_empty() {
            let head =
                refundry_store::read(&app.store, move |tx| tx.audit_head(merchant).map_err(AppError::from)).await?;
            return Ok(match head {
                Some((head_seq, head_hash)) if head_seq != after || head_hash != prev_hash => {
                    Err(ChainBreak::Truncated { last_seq: after, head_seq })
                }
                _ => Ok(checked),
            });
        }
        for e in page {
            if e.seq != after + 1 || e.prev_hash != prev_hash {
                return Ok(Err(ChainBreak::Broken { seq: e.seq, expected_seq: after + 1 }));
            }
            if event_hash(&e) != e.hash {
                return Ok(Err(ChainBreak::Altered { seq: e.seq }));
            }
            after = e.seq;
            prev_hash = e.hash;
            checked += 1;
        }
    }
}

impl crate::App {
    /// The merchant's events after `after_seq`, oldest first.
    pub async fn audit_events(
        &self,
        actor: &Actor,
        after_seq: i64,
        limit: u32,
    ) -> Result<crate::sales::Page<AuditEvent>, AppError> {
        let limit = limit.clamp(1, 500);
        let merchant = actor.merchant_id;
        refundry_store::read(&self.store, move |tx| {
            Ok(crate::sales::Page::of(tx.audit_events(merchant, after_seq.max(0), limit + 1)?, limit))
        })
        .await
    }

    /// The merchant's events matching `query`, newest first, one page.
    pub async fn search_audit(
        &self,
        actor: &Actor,
        mut query: refundry_store::model::AuditQuery,
    ) -> Result<crate::sales::Page<AuditEvent>, AppError> {
        let limit = query.limit.clamp(1, 500);
        query.limit = limit + 1;
        let merchant = actor.merchant_id;
        refundry_store::read(&self.store, move |tx| {
            Ok(crate::sales::Page::of(tx.search_audit(merchant, &query)?, limit))
        })
        .await
    }
}
