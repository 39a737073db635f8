//! Writes to rows that every refund of a merchant touches — the audit
//! chain head and a cashier's daily total — are queued by the write jobs
//! and applied when their batch is about to commit. So are the records of
//! acquirer calls, which nothing reads back inside a write: applied as one
//! statement per batch, they cost PostgreSQL one round trip per batch
//! instead of one per refund.
//!
//! On PostgreSQL the idempotency records are queued too: nothing but a
//! later lookup of the same key reads them, and the lookup sees the
//! queue. One statement a batch instead of a round trip a write; the
//! price is that a key another writer committed meanwhile fails the whole
//! batch (the unique key refuses it), which then runs again and replays.
//!
//! On PostgreSQL a new refund is queued as well, when the batch runs
//! without savepoints, and all of a batch's refunds are inserted in one
//! statement with their sale's sums. The holdings of a sale, read for every
//! new refund, add what is queued for that sale; any other read or change
//! of refunds that could concern a queued one makes the batch run again
//! with savepoints, where refunds are inserted as they are made (see
//! `PgTx::no_refunds_queued`). One statement a batch instead of one a
//! refund: the largest single saving of PostgreSQL's CPU per refund
//! measured (BENCHMARKS.md).
//!
//! Two reads are kept for the rest of the batch too: the policy in force
//! (every refund asks for it, and it changes only when a job writes one,
//! which makes the batch read it afresh) and a daily total as stored (only
//! the batch's own commit moves it). On PostgreSQL each is a round trip per
//! refund saved; a policy or total another writer commits meanwhile
//! counts from the next batch on, as it would for a read made just before
//! that commit.
//!
//! Such a row, written early, stays locked until commit, and every other
//! writer of the merchant waits on it for the whole rest of the batch.
//! Applied last, in one fixed key order, it is locked only for the final
//! statements; a merchant's writes run side by side until then and never
//! wait on each other in a cycle.

use std::collections::{BTreeMap, HashMap};

use refundry_core::ids::{MerchantId, RefundId, SaleId, StoreId};
use sha2::{Digest, Sha256};

use crate::error::StoreError;
use crate::model::{AcquirerCall, AuditEvent, IdempotencyRecord, PolicyRecord, Refund, WebhookEndpoint};

/// What write jobs queued, for their batch's commit.
#[derive(Debug, Default)]
pub struct Deferred {
    /// Audit events in the order recorded; their `seq`, `prev_hash` and
    /// `hash` are given at commit.
    pub audit: Vec<AuditEvent>,
    /// Moves of daily refund totals by (merchant, requested_by, day).
    pub daily: BTreeMap<DailyKey, i64>,
    /// Acquirer calls recorded, in the order recorded.
    pub calls: Vec<AcquirerCall>,
    /// Idempotency records, where the backend queues them.
    pub idempotency: Vec<IdempotencyRecord>,
    /// New refunds, where the backend queues them.
    pub refunds: Vec<Refund>,
    /// Webhook endpoints read, by merchant. Nearly every change emits an
    /// event and looks up its merchant's endpoints; within a batch they are
    /// read once. A job's reads join the batch only when the job is kept,
    /// and a merchant whose endpoints a job changed is read afresh.
    endpoints: HashMap<MerchantId, EndpointsSeen>,
    /// Policies in force read, by merchant and then by store; every refund
    /// asks for its store's. Kept the same way as the endpoints: a merchant
    /// one of whose policies a job wrote is read afresh.
    policies: HashMap<MerchantId, PoliciesSeen>,
    /// Daily totals as stored when the batch first read them. Only the
    /// batch's own commit moves them (see `daily`), so a later read in the
    /// batch adds what is queued to this instead of asking again.
    daily_stored: HashMap<DailyKey, i64>,
}

/// A daily total's row: merchant, requested_by, business day.
type DailyKey = (MerchantId, String, String);

type PoliciesSeen = Seen<HashMap<Option<StoreId>, Option<PolicyRecord>>>;

#[derive(Debug, Clone)]
enum Seen<T> {
    Read(T),
    Changed,
}

type EndpointsSeen = Seen<Vec<WebhookEndpoint>>;

impl Deferred {
    /// A kept job's queue joins its batch's.
    pub fn absorb(&mut self, job: Deferred) {
        self.audit.extend(job.audit);
        self.calls.extend(job.calls);
        self.idempotency.extend(job.idempotency);
        self.refunds.extend(job.refunds);
        for (key, delta) in job.daily {
            *self.daily.entry(key).or_default() += delta;
        }
        for (merchant, seen) in job.endpoints {
            match seen {
                Seen::Changed => {
                    self.endpoints.insert(merchant, Seen::Changed);
                }
                read => {
                    self.endpoints.entry(merchant).or_insert(read);
                }
            }
        }
        for (merchant, seen) in job.policies {
            match (self.policies.get_mut(&merchant), seen) {
                (_, Seen::Changed) => {
                    self.policies.insert(merchant, Seen::Changed);
                }
                (Some(Seen::Read(kept)), Seen::Read(read)) => {
                    for (store, policy) in read {
                        kept.entry(store).or_insert(policy);
                    }
                }
                (Some(Seen::Changed), Seen::Read(_)) => {}
                (None, read) => {
                    self.policies.insert(merchant, read);
                }
            }
        }
        for (key, stored) in job.daily_stored {
            self.daily_stored.entry(key).or_insert(stored);
        }
    }

    /// The merchant's endpoints as read earlier in this job or its batch
    /// (`earlier`), unless either changed them since.
    pub(crate) fn endpoints_read(
        &self,
        earlier: Option<&Deferred>,
        merchant: MerchantId,
    ) -> Option<Vec<WebhookEndpoint>> {
        match self.endpoints.get(&merchant).or_else(|| earlier.and_then(|b| b.endpoints.get(&merchant)))? {
            Seen::Read(endpoints) => Some(endpoints.clone()),
            Seen::Changed => None,
        }
    }

    /// Keeps what was read, unless the job changed the merchant's endpoints.
    pub(crate) fn note_endpoints(&mut self, merchant: MerchantId, endpoints: &[WebhookEndpoint]) {
        self.endpoints.entry(merchant).or_insert_with(|| Seen::Read(endpoints.to_vec()));
    }

    pub(crate) fn endpoints_changed(&mut self, merchant: MerchantId) {
        self.endpoints.insert(merchant, Seen::Changed);
    }

    /// The policy in force for `store` as read earlier in this job or its
    /// batch (`earlier`), unless either wrote one of the merchant's since:
    /// `Some(None)` when it was read and there was none.
    pub(crate) fn policy_read(
        &self,
        earlier: Option<&Deferred>,
        merchant: MerchantId,
        store: Option<StoreId>,
    ) -> Option<Option<PolicyRecord>> {
        match self.policies.get(&merchant).or_else(|| earlier.and_then(|b| b.policies.get(&merchant)))? {
            Seen::Read(stores) => stores.get(&store).cloned(),
            Seen::Changed => None,
        }
    }

    /// Keeps what was read, unless the job wrote one of the merchant's
    /// policies.
    pub(crate) fn note_policy(&mut self, merchant: MerchantId, store: Option<StoreId>, policy: Option<&PolicyRecord>) {
        if let Seen::Read(stores) = self.policies.entry(merchant).or_insert_with(|| Seen::Read(HashMap::new())) {
            stores.entry(store).or_insert_with(|| policy.cloned());
        }
    }

    pub(crate) fn policies_changed(&mut self, merchant: MerchantId) {
        self.policies.insert(merchant, Seen::Changed);
    }

    /// A daily total as it stands in this job: as stored when the batch
    /// first read it, plus what the batch and the job queued; `None` until
    /// the batch has read it.
    pub(crate) fn daily_total(&self, earlier: Option<&Deferred>, key: &DailyKey) -> Option<i64> {
        let stored = self.daily_stored.get(key).or_else(|| earlier.and_then(|b| b.daily_stored.get(key)))?;
        Some(stored + self.daily_pending(earlier, key))
    }

    /// Keeps a daily total as read from the table for the rest of the
    /// batch, and gives it as it stands in this job.
    pub(crate) fn daily_read(&mut self, earlier: Option<&Deferred>, key: DailyKey, stored: i64) -> i64 {
        let pending = self.daily_pending(earlier, &key);
        self.daily_stored.entry(key).or_insert(stored);
        stored + pending
    }

    /// The calls queued for `refund` in `earlier` (the batch so far), then
    /// here: a read of a refund's calls inside a write must see them.
    pub fn calls_pending(&self, earlier: Option<&Deferred>, refund: RefundId) -> Vec<AcquirerCall> {
        self.after(earlier).flat_map(|d| &d.calls).filter(|c| c.refund_id == refund).cloned().collect()
    }

    /// The record queued for a key in `earlier` (the batch so far) or here.
    pub(crate) fn idempotency_pending(
        &self,
        earlier: Option<&Deferred>,
        merchant: MerchantId,
        endpoint: &str,
        key: &str,
    ) -> Option<IdempotencyRecord> {
        self.after(earlier)
            .flat_map(|d| &d.idempotency)
            .find(|r| r.merchant_id == merchant && r.key == key && r.endpoint == endpoint)
            .cloned()
    }

    /// The refunds of `sale` queued in `earlier` (the batch so far) or here:
    /// what they hold of the sale is not in its stored sums yet.
    pub(crate) fn refunds_pending<'a>(
        &'a self,
        earlier: Option<&'a Deferred>,
        merchant: MerchantId,
        sale: SaleId,
    ) -> impl Iterator<Item = &'a Refund> {
        self.after(earlier).flat_map(|d| &d.refunds).filter(move |r| r.merchant_id == merchant && r.sale_id == sale)
    }

    /// Whether the refund `id` is queued in `earlier` (the batch so far) or
    /// here.
    pub(crate) fn refund_pending(&self, earlier: Option<&Deferred>, id: RefundId) -> bool {
        self.after(earlier).flat_map(|d| &d.refunds).any(|r| r.id == id)
    }

    /// Whether a refund is queued in `earlier` (the batch so far) or here.
    pub(crate) fn any_refund_pending(&self, earlier: Option<&Deferred>) -> bool {
        self.after(earlier).any(|d| !d.refunds.is_empty())
    }

    /// What is queued for a daily total, here and in `earlier` (the batch so
    /// far): a read of the total must count refunds not yet applied.
    fn daily_pending(&self, earlier: Option<&Deferred>, key: &DailyKey) -> i64 {
        self.after(earlier).filter_map(|d| d.daily.get(key)).sum()
    }

    /// What `earlier` (the batch so far) queued, then this job: the order
    /// its writes were made in.
    fn after<'a>(&'a self, earlier: Option<&'a Deferred>) -> impl Iterator<Item = &'a Deferred> {
        [earlier, Some(self)].into_iter().flatten()
    }
}

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
    // through a buffer: `hex::encode` collects a String a char at a time,
    // and the writer hashes every audit event
    let mut text = [0u8; 64];
    hex::encode_to_slice(h.finalize(), &mut text).expect("a SHA-256 digest is 32 bytes");
    String::from_utf8_lossy(&text).into_owned()
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

    fn endpoint(merchant: MerchantId, id: &str) -> WebhookEndpoint {
        WebhookEndpoint {
            id: id.into(),
            merchant_id: merchant,
            url: "https://example.com/hook".into(),
            events: vec!["*".into()],
            secret: "sealed".into(),
            created_at: jiff::Timestamp::from_second(1_900_000_000).unwrap(),
            disabled_at: None,
        }
    }

    #[test]
    fn endpoints_read_by_a_kept_job_serve_the_rest_of_its_batch() {
        let (a, b) = (MerchantId::generate(), MerchantId::generate());
        let mut batch = Deferred::default();
        let mut job = Deferred::default();
        assert!(job.endpoints_read(Some(&batch), a).is_none());
        job.note_endpoints(a, &[endpoint(a, "we_1")]);
        assert_eq!(job.endpoints_read(Some(&batch), a).unwrap().len(), 1, "the job itself reads once");
        batch.absorb(job);
        let next = Deferred::default();
        assert_eq!(next.endpoints_read(Some(&batch), a).unwrap()[0].id, "we_1");
        assert!(next.endpoints_read(Some(&batch), b).is_none(), "each merchant is read on its own");
        // a job that is not kept is never absorbed: what it read is gone with it
    }

    #[test]
    fn a_job_that_changes_endpoints_makes_the_batch_read_them_afresh() {
        let a = MerchantId::generate();
        let mut batch = Deferred::default();
        let mut reader = Deferred::default();
        reader.note_endpoints(a, &[]);
        batch.absorb(reader);
        let mut writer = Deferred::default();
        writer.endpoints_changed(a);
        assert!(writer.endpoints_read(Some(&batch), a).is_none(), "the writer sees its own change");
        writer.note_endpoints(a, &[endpoint(a, "we_2")]);
        assert!(writer.endpoints_read(Some(&batch), a).is_none(), "a changed merchant is never kept");
        batch.absorb(writer);
        assert!(Deferred::default().endpoints_read(Some(&batch), a).is_none());
        let mut later = Deferred::default();
        later.note_endpoints(a, &[endpoint(a, "we_2")]);
        batch.absorb(later);
        assert!(Deferred::default().endpoints_read(Some(&batch), a).is_none(), "changed stays changed");
    }

    fn policy(merchant: MerchantId, version: i64) -> PolicyRecord {
        PolicyRecord {
            merchant_id: merchant,
            version,
            store_id: None,
            body: "{}".into(),
            created_by: "user:wang".into(),
            created_at: jiff::Timestamp::from_second(1_900_000_000).unwrap(),
        }
    }

    #[test]
    fn policies_read_serve_the_batch_until_a_job_writes_one() {
        let (a, b) = (MerchantId::generate(), MerchantId::generate());
        let (north, south) = (Some(StoreId::generate()), Some(StoreId::generate()));
        let mut batch = Deferred::default();
        let mut job = Deferred::default();
        assert_eq!(job.policy_read(Some(&batch), a, north), None);
        job.note_policy(a, north, Some(&policy(a, 3)));
        job.note_policy(a, south, None);
        assert_eq!(job.policy_read(Some(&batch), a, north).unwrap().unwrap().version, 3);
        batch.absorb(job);
        let next = Deferred::default();
        assert_eq!(next.policy_read(Some(&batch), a, north).unwrap().unwrap().version, 3);
        assert_eq!(next.policy_read(Some(&batch), a, south), Some(None), "none in force is kept too");
        assert_eq!(next.policy_read(Some(&batch), a, None), None, "each store is read on its own");
        assert_eq!(next.policy_read(Some(&batch), b, north), None, "each merchant is read on its own");

        let mut writer = Deferred::default();
        writer.policies_changed(a);
        assert_eq!(writer.policy_read(Some(&batch), a, north), None, "the writer sees its own policy");
        writer.note_policy(a, north, Some(&policy(a, 4)));
        assert_eq!(writer.policy_read(Some(&batch), a, north), None, "a changed merchant is never kept");
        batch.absorb(writer);
        assert_eq!(Deferred::default().policy_read(Some(&batch), a, north), None);
        let mut later = Deferred::default();
        later.note_policy(a, north, Some(&policy(a, 4)));
        batch.absorb(later);
        assert_eq!(Deferred::default().policy_read(Some(&batch), a, north), None, "changed stays changed");
    }

    #[test]
    fn a_daily_total_is_read_once_a_batch_and_counts_what_is_queued() {
        let a = MerchantId::generate();
        let key = (a, "user:wang".to_owned(), "2026-11-27".to_owned());
        let mut batch = Deferred::default();
        let mut job = Deferred::default();
        assert_eq!(job.daily_total(Some(&batch), &key), None);
        job.daily.insert(key.clone(), 100);
        assert_eq!(job.daily_read(Some(&batch), key.clone(), 500), 600, "as stored, and what the job queued");
        batch.absorb(job);
        let mut next = Deferred::default();
        next.daily.insert(key.clone(), 20);
        assert_eq!(
            next.daily_total(Some(&batch), &key),
            Some(620),
            "as stored before the batch commits, and all queued"
        );
        next.daily_read(Some(&batch), key.clone(), 999);
        batch.absorb(next);
        assert_eq!(batch.daily_total(None, &key), Some(620), "the first read stands for the batch");
    }

    #[test]
    fn the_hash_is_the_one_chains_were_written_with() {
        // worked out apart from this code (SHA-256 over each field's
        // big-endian u64 length and bytes): chains already stored must
        // still verify
        let mut e = event(MerchantId::parse("mch_01936f2a7b007c3d8e9fa0b1c2d3e4f5").unwrap(), "refund.requested");
        e.seq = 7;
        e.prev_hash = GENESIS_HASH.into();
        assert_eq!(event_hash(&e), "0716763007ada1bc3326731f63f08f41b896ac5069d17f44fcfd353158758fb5");
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
