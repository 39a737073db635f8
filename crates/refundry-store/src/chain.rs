//! Linking audit events into their merchants' hash chains.
//!
//! A write job only queues its events; the writer links them when the
//! batch they belong to is about to commit, reading (and, where several
//! writers share the database, locking) each chain head for just that
//! moment. A merchant's writes thus run side by side until the last step,
//! instead of waiting on the head from their first statement to commit.

use std::collections::HashMap;

use refundry_core::ids::MerchantId;
use sha2::{Digest, Sha256};

use crate::error::StoreError;
use crate::model::AuditEvent;

/// `prev_hash` of the first event of every chain.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The hash of an event: every field and the link to the event before,
/// each length-prefixed so that no two events hash alike by shifting text
/// between fields.
pub fn event_hash(e: &AuditEvent) -> String {
    let mut h = Sha256::new();
    for part in [
        e.merchant_id.to_string().as_bytes(),
        e.seq.to_string().as_bytes(),
        e.at.as_microsecond().to_string().as_bytes(),
        e.actor.as_bytes(),
        e.source.as_bytes(),
        e.action.as_bytes(),
        e.subject.as_bytes(),
        e.data.as_bytes(),
        e.prev_hash.as_bytes(),
    ] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part);
    }
    hex::encode(h.finalize())
}

/// The merchants with queued events, each once, in one fixed order: heads
/// are locked in this order so that two writers never wait on each other.
pub(crate) fn merchants_of(events: &[AuditEvent]) -> Vec<MerchantId> {
    let mut merchants: Vec<MerchantId> = events.iter().map(|e| e.merchant_id).collect();
    merchants.sort();
    merchants.dedup();
    merchants
}

/// Gives each queued event its place after its merchant's head, in the
/// order queued, and returns the new heads.
pub(crate) fn link(
    events: &mut [AuditEvent],
    heads: &HashMap<MerchantId, (i64, String)>,
) -> Result<Vec<(MerchantId, i64, String)>, StoreError> {
    let mut tips: HashMap<MerchantId, (i64, String)> = HashMap::new();
    for e in events.iter_mut() {
        let (seq, prev) = tips
            .get(&e.merchant_id)
            .or_else(|| heads.get(&e.merchant_id))
            .cloned()
            .unwrap_or_else(|| (0, GENESIS_HASH.to_owned()));
        e.seq = seq.checked_add(1).ok_or_else(|| StoreError::corrupt("audit sequence overflow"))?;
        e.prev_hash = prev;
        e.hash = event_hash(e);
        tips.insert(e.merchant_id, (e.seq, e.hash.clone()));
    }
    let mut out: Vec<_> = tips.into_iter().map(|(m, (seq, hash))| (m, seq, hash)).collect();
    out.sort_by_key(|(m, _, _)| *m);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(merchant: MerchantId, action: &str) -> AuditEvent {
        AuditEvent {
            merchant_id: merchant,
            seq: 0,
            at: jiff::Timestamp::from_second(1_900_000_000).unwrap(),
            actor: "user:wang".into(),
            source: "127.0.0.1".into(),
            action: action.into(),
            subject: "re_1".into(),
            data: "{}".into(),
            prev_hash: String::new(),
            hash: String::new(),
        }
    }

    #[test]
    fn events_continue_each_merchants_chain_in_the_order_queued() {
        let (a, b) = (MerchantId::generate(), MerchantId::generate());
        let mut events = vec![event(a, "one"), event(b, "first"), event(a, "two")];
        let heads = HashMap::from([(a, (41, "ab".repeat(32)))]);
        let new_heads = link(&mut events, &heads).unwrap();
        assert_eq!((events[0].seq, events[0].prev_hash.as_str()), (42, "ab".repeat(32).as_str()));
        assert_eq!((events[1].seq, events[1].prev_hash.as_str()), (1, GENESIS_HASH));
        assert_eq!((events[2].seq, &events[2].prev_hash), (43, &events[0].hash));
        assert!(events.iter().all(|e| event_hash(e) == e.hash));
        let mut expected = vec![(a, 43, events[2].hash.clone()), (b, 1, events[1].hash.clone())];
        expected.sort_by_key(|(m, _, _)| *m);
        assert_eq!(new_heads, expected);
    }

    #[test]
    fn the_hash_covers_every_field() {
        let base = event(MerchantId::generate(), "refund.requested");
        let h = event_hash(&base);
        let mut changed = base.clone();
        changed.data = "{\"amount\":1}".into();
        assert_ne!(event_hash(&changed), h);
        let mut shifted = base.clone();
        shifted.actor = "user:wan".into();
        shifted.source = "g127.0.0.1".into();
        assert_ne!(event_hash(&shifted), h, "text moved between fields changes the hash");
    }
}
