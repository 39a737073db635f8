//! The storage interface: one trait per aggregate, all synchronous, all
//! inside the caller's transaction.

use std::ops::RangeInclusive;

use jiff::Timestamp;
use refundry_core::ids::{
    CorrectionId, DisputeId, EvidenceId, KeyId, MerchantId, RefundId, SaleId, SessionId, StoreId, UserId,
};
use refundry_core::refund::{ItemQuantity, PriorRefund, RefundStatus};

use crate::StoreError;
use crate::model::*;

pub type Result<T> = std::result::Result<T, StoreError>;

/// What holds part of a sale: its refunds as the arithmetic needs them, and
/// its disputes (see [`RefundRepo::holdings_and_disputes`]).
pub type HoldingsAndDisputes = (Vec<PriorRefund>, Vec<DisputeRecord>);

/// What [`RefundRepo::find_key_or_lock_sale`] found.
#[derive(Debug)]
#[expect(clippy::large_enum_variant, reason = "one per refund, moved once: a box would cost more than the copy")]
pub enum KeyOrSale {
    /// The key was used before: its record.
    Used(IdempotencyRecord),
    /// The key is new: the sale, locked, with its holdings; `None` when
    /// there is no such sale.
    New(Option<(Sale, HoldingsAndDisputes)>),
}

pub trait MerchantRepo {
    fn insert_merchant(&mut self, merchant: &Merchant) -> Result<()>;
    /// The oldest merchant: the default one of a single-merchant install.
    fn first_merchant(&mut self) -> Result<Option<Merchant>>;
    fn all_merchants(&mut self) -> Result<Vec<Merchant>>;
    fn insert_store(&mut self, store: &StoreRecord) -> Result<()>;
    fn find_store(&mut self, merchant: MerchantId, id: StoreId) -> Result<Option<StoreRecord>>;
    fn stores_of(&mut self, merchant: MerchantId) -> Result<Vec<StoreRecord>>;
    fn insert_terminal(&mut self, terminal: &Terminal) -> Result<()>;
    fn find_terminal(&mut self, merchant: MerchantId, terminal_id: &str) -> Result<Option<Terminal>>;
    /// Reserves the terminal's next `count` STANs (1 to 999999 and round
    /// again; `count` taken as 1 to [`STAN_MAX`]): a run that never
    /// crosses the wrap; when it would, the numbers left before 999999 are
    /// skipped and the run starts at 1. Once the transaction commits the
    /// run is the caller's alone, used or not.
    fn reserve_stans(&mut self, merchant: MerchantId, terminal_id: &str, count: u32) -> Result<RangeInclusive<u32>>;
}

/// The largest trace number a terminal sends (field 11 has six digits).
pub const STAN_MAX: u32 = 999_999;

/// The SQL of a STAN reservation, the same in both dialects but for how
/// parameters are named: the counter moves on by the run's length, or
/// starts again at the run's length when the run would pass [`STAN_MAX`]
/// (written out as 999999: `concat!` takes only literals).
macro_rules! reserve_stans_sql {
    ($merchant:literal, $terminal:literal, $count:literal) => {
        concat!(
            "INSERT INTO terminal_counters (merchant_id, terminal_id, last_stan) VALUES (",
            $merchant,
            ", ",
            $terminal,
            ", ",
            $count,
            ")
             ON CONFLICT (merchant_id, terminal_id) DO UPDATE SET last_stan = CASE
                 WHEN terminal_counters.last_stan + ",
            $count,
            " > 999999 THEN ",
            $count,
            "
                 ELSE terminal_counters.last_stan + ",
            $count,
            " END
             RETURNING last_stan"
        )
    };
}
pub(crate) use reserve_stans_sql;

/// A reservation's length, within what a terminal can count.
pub(crate) fn stan_count(count: u32) -> u32 {
    count.clamp(1, STAN_MAX)
}

/// The run of STANs that ends at `last`, `count` long.
pub(crate) fn stan_run(last: i64, count: u32) -> Result<RangeInclusive<u32>> {
    let corrupt = || crate::StoreError::corrupt(format!("STAN counter at {last} after a run of {count}"));
    let last = u32::try_from(last).ok().filter(|&l| l <= STAN_MAX).ok_or_else(corrupt)?;
    let first = last.checked_sub(count - 1).filter(|&f| f >= 1).ok_or_else(corrupt)?;
    Ok(first..=last)
}

pub trait KeyRepo {
    fn insert_key(&mut self, key: &ApiKeyRecord) -> Result<()>;
    fn find_key(&mut self, id: KeyId) -> Result<Option<ApiKeyRecord>>;
    /// The merchant's keys, oldest first.
    fn keys_of(&mut self, merchant: MerchantId) -> Result<Vec<ApiKeyRecord>>;
}

pub trait UserRepo {
    fn insert_user(&mut self, user: &User) -> Result<()>;
    /// Writes role, display name, store, password hash, lock-out state and
    /// disabled time.
    fn update_user(&mut self, user: &User) -> Result<()>;
    fn find_user(&mut self, id: UserId) -> Result<Option<User>>;
    fn find_user_by_username(&mut self, username: &str) -> Result<Option<User>>;
    fn users_of(&mut self, merchant: MerchantId) -> Result<Vec<User>>;
}

pub trait SessionRepo {
    fn insert_session(&mut self, session: &Session) -> Result<()>;
    fn find_session(&mut self, id: SessionId) -> Result<Option<Session>>;
    fn revoke_session(&mut self, id: SessionId, at: Timestamp) -> Result<()>;
}

pub trait PolicyRepo {
    fn insert_policy(&mut self, policy: &PolicyRecord) -> Result<()>;
    /// The newest version for the store, else the newest merchant-wide one.
    fn current_policy(&mut self, merchant: MerchantId, store: Option<StoreId>) -> Result<Option<PolicyRecord>>;
    fn latest_policy_version(&mut self, merchant: MerchantId) -> Result<i64>;
}

pub trait SaleRepo {
    fn insert_sale(&mut self, sale: &Sale) -> Result<()>;
    fn find_sale(&mut self, merchant: MerchantId, id: SaleId) -> Result<Option<Sale>>;
    /// Reads the sale and holds it against concurrent refunds until the
    /// transaction ends (the single writer on SQLite; `FOR UPDATE` on
    /// databases with many writers).
    fn lock_sale(&mut self, merchant: MerchantId, id: SaleId) -> Result<Option<Sale>>;
    fn search_sales(&mut self, merchant: MerchantId, query: &SaleQuery) -> Result<Vec<Sale>>;
    fn find_batch(&mut self, merchant: MerchantId, terminal_id: &str, batch_no: &str) -> Result<Option<BatchRecord>>;
    fn insert_batch(&mut self, batch: &BatchRecord) -> Result<()>;
}

pub trait RefundRepo {
    fn insert_refund(&mut self, refund: &Refund) -> Result<()>;
    /// Writes status, failure, acquirer reference, attempts and times.
    fn update_refund(&mut self, refund: &Refund) -> Result<()>;
    fn find_refund(&mut self, merchant: MerchantId, id: RefundId) -> Result<Option<Refund>>;
    /// Same as [`RefundRepo::find_refund`] but for the job runner, which
    /// knows the id from its own outbox row.
    fn find_refund_any_merchant(&mut self, id: RefundId) -> Result<Option<Refund>>;
    /// Reads the refund and holds it against concurrent changes until the
    /// transaction ends (status moves must not race).
    fn lock_refund(&mut self, id: RefundId) -> Result<Option<Refund>>;
    /// [`lock_refund`](RefundRepo::lock_refund), with the refund's sale
    /// (`None` if it is missing), which a backend may read in the same
    /// statement.
    fn lock_refund_with_sale(&mut self, id: RefundId) -> Result<Option<(Refund, Option<Sale>)>>;
    fn refunds_of_sale(&mut self, merchant: MerchantId, sale: SaleId) -> Result<Vec<Refund>>;
    /// All that holds part of the sale, which a backend may read in one
    /// statement: what its refunds hold, as the arithmetic needs it (one
    /// entry per status, with the amounts and the item quantities of that
    /// status's refunds summed), and its disputes (as
    /// [`DisputeRepo::disputes_of_sale`]). Read for every new refund, so the
    /// holdings come from running sums the database keeps (migrations 0002
    /// and 0004) rather than from each earlier refund. Item quantities are
    /// read only for a sale with items: refunds of one without have none.
    fn holdings_and_disputes(&mut self, sale: &Sale) -> Result<HoldingsAndDisputes>;
    /// [`SaleRepo::lock_sale`], then [`RefundRepo::holdings_and_disputes`]
    /// read once the lock is held, which a backend may do in one round trip.
    fn lock_sale_with_holdings(
        &mut self,
        merchant: MerchantId,
        id: SaleId,
    ) -> Result<Option<(Sale, HoldingsAndDisputes)>>;
    /// What a new refund under an idempotency key reads first, which a
    /// backend may send in one round trip: the key's record (as
    /// [`IdempotencyRepo::find_idempotency`]) or, when the key is new,
    /// [`Self::lock_sale_with_holdings`]. The key's record is as of once
    /// the lock is held: the same request sent twice at once finds the
    /// other's key when its lock is granted. A backend that sends them
    /// together holds the sale of a used key as well, until the write ends.
    fn find_key_or_lock_sale(
        &mut self,
        merchant: MerchantId,
        endpoint: &str,
        key: &str,
        sale: SaleId,
    ) -> Result<KeyOrSale>;
    fn list_refunds(&mut self, merchant: MerchantId, query: &RefundQuery) -> Result<Vec<Refund>>;
    /// What `requested_by` holds in refunds made on business day `day`
    /// (`YYYY-MM-DD`), for the cashier's daily limit.
    fn daily_total(&mut self, merchant: MerchantId, requested_by: &str, day: &str) -> Result<i64>;
    /// Moves that total by `delta_minor` (a refund made, or released by a
    /// failure, rejection or expiry). Applied as the transaction commits
    /// (see [`crate::deferred`]); [`RefundRepo::daily_total`] counts it before.
    fn add_daily_total(&mut self, merchant: MerchantId, requested_by: &str, day: &str, delta_minor: i64) -> Result<()>;
    /// Refunds waiting for approval whose approval time ran out.
    fn expired_approvals(&mut self, now: Timestamp, limit: u32) -> Result<Vec<Refund>>;
    /// Per store and person, sales rung up and refunds asked for in
    /// [from, to): (store, user id, sales, refunds). A refund's person is
    /// its `requested_by` without the `user:` prefix.
    fn cashier_activity(
        &mut self,
        merchant: MerchantId,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<(StoreId, String, u64, u64)>>;
    /// Refunds asked for in [from, to), counted and summed per group (see
    /// [`RefundGroup`]); the day is taken `utc_offset_s` seconds from UTC.
    fn refund_groups(
        &mut self,
        merchant: MerchantId,
        from: Timestamp,
        to: Timestamp,
        utc_offset_s: i64,
    ) -> Result<Vec<RefundGroup>>;
    /// Succeeded refunds asked for in [from, to): how long each took, fastest
    /// first, at most `limit`.
    fn refund_durations(
        &mut self,
        merchant: MerchantId,
        from: Timestamp,
        to: Timestamp,
        limit: u32,
    ) -> Result<Vec<RefundDuration>>;
    /// Queues the call with the batch's deferred writes (see
    /// [`crate::deferred`]): it is written just before the batch commits.
    fn record_call(&mut self, call: &AcquirerCall) -> Result<()>;
    /// The refund's calls in the order made, those queued by this write
    /// and its batch included.
    fn calls_of(&mut self, refund: RefundId) -> Result<Vec<AcquirerCall>>;
}

pub trait DisputeRepo {
    fn insert_dispute(&mut self, dispute: &DisputeRecord) -> Result<()>;
    /// Writes stage, status, category, note and updated_at.
    fn update_dispute(&mut self, dispute: &DisputeRecord) -> Result<()>;
    fn find_dispute(&mut self, merchant: MerchantId, id: DisputeId) -> Result<Option<DisputeRecord>>;
    fn find_dispute_by_case(&mut self, merchant: MerchantId, case_ref: &str) -> Result<Option<DisputeRecord>>;
    fn disputes_of_sale(&mut self, merchant: MerchantId, sale: SaleId) -> Result<Vec<DisputeRecord>>;
    /// Cases still waiting for the merchant's answer whose deadline passed.
    fn overdue_disputes(&mut self, now: Timestamp, limit: u32) -> Result<Vec<DisputeRecord>>;
    /// Cases still waiting for the merchant's answer whose deadline is in
    /// (now, until] and that have no notice `kind` yet, soonest first.
    fn disputes_due_without_notice(
        &mut self,
        now: Timestamp,
        until: Timestamp,
        kind: &str,
        limit: u32,
    ) -> Result<Vec<DisputeRecord>>;
    /// Stores the item and, when given, its file's bytes.
    fn insert_evidence(&mut self, evidence: &EvidenceRecord, bytes: Option<&[u8]>) -> Result<()>;
    /// The case's evidence, oldest first, without the files' bytes.
    fn evidence_of(&mut self, merchant: MerchantId, dispute: DisputeId) -> Result<Vec<EvidenceRecord>>;
    /// One item and its file's bytes (`None` when it has no file).
    fn evidence_with_file(
        &mut self,
        merchant: MerchantId,
        dispute: DisputeId,
        id: EvidenceId,
    ) -> Result<Option<(EvidenceRecord, Option<Vec<u8>>)>>;
    /// Chargebacks (not retrieval requests) opened in [from, to): count and sum.
    fn dispute_stats(&mut self, merchant: MerchantId, from: Timestamp, to: Timestamp) -> Result<(u64, i64)>;
    /// Sales captured in [from, to): count and sum (card sales only when
    /// `cards_only`).
    fn sale_stats(
        &mut self,
        merchant: MerchantId,
        from: Timestamp,
        to: Timestamp,
        cards_only: bool,
    ) -> Result<(u64, i64)>;
    /// Newest first.
    fn list_disputes(
        &mut self,
        merchant: MerchantId,
        starting_after: Option<DisputeId>,
        limit: u32,
    ) -> Result<Vec<DisputeRecord>>;
}

pub trait CorrectionRepo {
    /// What the detectors know of a sale beyond the sale: the card's keyed
    /// fingerprint and the till's order reference.
    fn insert_sale_signals(
        &mut self,
        merchant: MerchantId,
        sale: SaleId,
        card_fingerprint: Option<&str>,
        order_ref: Option<&str>,
        captured_at: Timestamp,
    ) -> Result<()>;
    /// (card fingerprint, order reference) of a sale, when recorded.
    fn sale_signals(&mut self, merchant: MerchantId, sale: SaleId) -> Result<Option<(Option<String>, Option<String>)>>;
    /// Sales of the same card fingerprint captured in [from, to], oldest
    /// first, at most 100, read in one statement (a weak fingerprint may
    /// match many sales of a busy store).
    fn sales_with_fingerprint(
        &mut self,
        merchant: MerchantId,
        fingerprint: &str,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<Sale>>;
    /// Amounts of the store's sales recorded before `before`, newest first.
    fn store_sale_amounts(
        &mut self,
        merchant: MerchantId,
        store: StoreId,
        before: SaleId,
        limit: u32,
    ) -> Result<Vec<i64>>;
    /// False when the sale already has a case of that kind.
    fn insert_correction(&mut self, correction: &CorrectionRecord) -> Result<bool>;
    /// Writes cause, responsible party, status, refund, note and updated_at.
    fn update_correction(&mut self, correction: &CorrectionRecord) -> Result<()>;
    fn find_correction(&mut self, merchant: MerchantId, id: CorrectionId) -> Result<Option<CorrectionRecord>>;
    fn find_correction_of_sale(
        &mut self,
        merchant: MerchantId,
        sale: SaleId,
        kind: &str,
    ) -> Result<Option<CorrectionRecord>>;
    /// Newest first, of one status or all.
    fn list_corrections(
        &mut self,
        merchant: MerchantId,
        status: Option<&str>,
        starting_after: Option<CorrectionId>,
        limit: u32,
    ) -> Result<Vec<CorrectionRecord>>;
}

pub trait NoticeRepo {
    /// Records that the notice (`kind` about `subject`) is sent; false when
    /// it already was, by this instance or another, and must not be again.
    fn claim_notice(&mut self, merchant: MerchantId, subject: &str, kind: &str, at: Timestamp) -> Result<bool>;
}

pub trait WebhookRepo {
    fn insert_endpoint(&mut self, endpoint: &WebhookEndpoint) -> Result<()>;
    fn endpoints_of(&mut self, merchant: MerchantId) -> Result<Vec<WebhookEndpoint>>;
    fn find_endpoint(&mut self, id: &str) -> Result<Option<WebhookEndpoint>>;
    fn record_delivery(&mut self, delivery: &WebhookDelivery) -> Result<i64>;
    fn deliveries_of(&mut self, endpoint: &str, limit: u32) -> Result<Vec<WebhookDelivery>>;
    fn find_delivery(&mut self, id: i64) -> Result<Option<WebhookDelivery>>;
}

pub trait OutboxRepo {
    fn enqueue(&mut self, job: &NewJob) -> Result<i64>;
    /// Takes up to `limit` jobs that are due, or whose lease ran out because
    /// the runner that took them died, and leases them until `lease_until`.
    fn claim_jobs(&mut self, now: Timestamp, lease_until: Timestamp, limit: u32) -> Result<Vec<Job>>;
    fn complete_job(&mut self, id: i64, now: Timestamp) -> Result<()>;
    fn reschedule_job(&mut self, id: i64, run_after: Timestamp, error: &str) -> Result<()>;
    fn bury_job(&mut self, id: i64, now: Timestamp, error: &str) -> Result<()>;
    /// Jobs not yet done or dead.
    fn unfinished_jobs(&mut self) -> Result<u64>;
    /// Jobs in a state, newest first; of one merchant, or all.
    fn list_jobs(&mut self, merchant: Option<MerchantId>, state: &str, limit: u32) -> Result<Vec<JobRecord>>;
    /// Puts a dead job (of the merchant, when given) back in the queue;
    /// false when there was no such dead job.
    fn revive_job(&mut self, merchant: Option<MerchantId>, id: i64, now: Timestamp) -> Result<bool>;
}

pub trait IdempotencyRepo {
    /// The record of the key, those inserted earlier in this write and its
    /// batch included.
    fn find_idempotency(
        &mut self,
        merchant: MerchantId,
        endpoint: &str,
        key: &str,
    ) -> Result<Option<IdempotencyRecord>>;
    /// Writes the record with the transaction. A backend with several
    /// writers may queue it with the batch's deferred writes (see
    /// [`crate::deferred`]); a key another writer took meanwhile then fails
    /// the whole batch, which runs again (retryably), instead of this write
    /// alone.
    fn insert_idempotency(&mut self, record: &IdempotencyRecord) -> Result<()>;
    fn prune_idempotency(&mut self, older_than: Timestamp) -> Result<u64>;
}

pub trait AuditRepo {
    /// Queues the event for the merchant's chain. Its `seq`, `prev_hash` and
    /// `hash` are given when the transaction commits (see [`crate::chain`]);
    /// if the write is rolled back the event goes with it.
    fn append_audit(&mut self, event: AuditEvent) -> Result<()>;
    /// The head recorded beside the chain, without locking it.
    fn audit_head(&mut self, merchant: MerchantId) -> Result<Option<(i64, String)>>;
    fn audit_events(&mut self, merchant: MerchantId, after_seq: i64, limit: u32) -> Result<Vec<AuditEvent>>;
    /// The events about one subject (a sale, a refund…), oldest first: a
    /// record's timeline.
    fn audit_events_about(&mut self, merchant: MerchantId, subject: &str, limit: u32) -> Result<Vec<AuditEvent>>;
    /// The events that match every filter given, newest first.
    fn search_audit(&mut self, merchant: MerchantId, query: &AuditQuery) -> Result<Vec<AuditEvent>>;
}

/// Everything a use case may touch inside one transaction.
pub trait Tx:
    MerchantRepo
    + KeyRepo
    + UserRepo
    + SessionRepo
    + PolicyRepo
    + SaleRepo
    + RefundRepo
    + OutboxRepo
    + IdempotencyRepo
    + AuditRepo
    + WebhookRepo
    + DisputeRepo
    + NoticeRepo
    + CorrectionRepo
{
}

impl<T> Tx for T where
    T: MerchantRepo
        + KeyRepo
        + UserRepo
        + SessionRepo
        + PolicyRepo
        + SaleRepo
        + RefundRepo
        + OutboxRepo
        + IdempotencyRepo
        + AuditRepo
        + WebhookRepo
        + DisputeRepo
        + NoticeRepo
        + CorrectionRepo
{
}

/// The predicate of the outbox's partial index that holds `state`'s jobs,
/// to stand beside `state = <parameter>` in a listing: a planner picks a
/// partial index only when the query names its predicate.
pub(crate) fn outbox_state_index_predicate(state: &str) -> &'static str {
    match state {
        "ready" | "running" => "state IN ('ready', 'running') AND ",
        "dead" => "state = 'dead' AND ",
        _ => "",
    }
}

/// Gathers rows of (status, amount | quantity of one SKU), as the stores
/// read them from the running sums (or any finer split of the same), into
/// one [`PriorRefund`] per status with its amounts and each SKU's
/// quantities added up.
pub(crate) fn fold_holdings(
    rows: impl IntoIterator<Item = Result<(RefundStatus, Option<i64>, Option<ItemQuantity>)>>,
) -> Result<Vec<PriorRefund>> {
    let mut out: Vec<PriorRefund> = Vec::new();
    for row in rows {
        let (status, amount_minor, item) = row?;
        let at = match out.iter().position(|p| p.status == status) {
            Some(at) => at,
            None => {
                out.push(PriorRefund { amount_minor: 0, status, items: Vec::new() });
                out.len() - 1
            }
        };
        let holding = &mut out[at];
        if let Some(amount_minor) = amount_minor {
            holding.amount_minor = holding.amount_minor.checked_add(amount_minor).ok_or_else(|| {
                crate::StoreError::Corrupt(format!("refunds of one sale overflow in {}", status.as_str()))
            })?;
        }
        if let Some(item) = item {
            match holding.items.iter_mut().find(|i| i.sku == item.sku) {
                Some(same) => {
                    same.quantity = same.quantity.checked_add(item.quantity).ok_or_else(|| {
                        crate::StoreError::Corrupt(format!("refunds of one sale overflow {}", item.sku))
                    })?
                }
                None => holding.items.push(item),
            }
        }
    }
    out.sort_by_key(|p| p.status.as_str());
    out.iter_mut().for_each(|p| p.items.sort_by(|a, b| a.sku.cmp(&b.sku)));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(sku: &str, quantity: u32) -> Option<ItemQuantity> {
        Some(ItemQuantity { sku: sku.into(), quantity })
    }

    #[test]
    fn holdings_add_up_per_status_and_per_sku() {
        use RefundStatus::{Failed, Pending, Succeeded};
        let rows = [
            (Succeeded, Some(300), None),
            (Pending, Some(100), None),
            (Succeeded, Some(200), None),
            (Succeeded, None, item("tea", 1)),
            (Failed, Some(50), None),
            (Succeeded, None, item("cup", 1)),
            (Succeeded, None, item("tea", 2)),
        ];
        let held = fold_holdings(rows.into_iter().map(Ok)).unwrap();
        let by = |s: RefundStatus| held.iter().find(|p| p.status == s).unwrap();
        assert_eq!(held.len(), 3);
        assert_eq!(by(Succeeded).amount_minor, 500);
        assert_eq!(by(Succeeded).items, [item("cup", 1).unwrap(), item("tea", 3).unwrap()]);
        assert_eq!((by(Pending).amount_minor, by(Failed).amount_minor), (100, 50));
        // already summed rows fold to the same answer
        let summed =
            [(Succeeded, Some(500), None), (Succeeded, None, item("tea", 3)), (Succeeded, None, item("cup", 1))];
        let again = fold_holdings(summed.into_iter().map(Ok)).unwrap();
        assert_eq!(again[0].amount_minor, 500);
        assert_eq!(again[0].items, by(Succeeded).items);
    }

    #[test]
    fn an_overflowing_sum_is_an_error_not_a_wrap() {
        let rows = [(RefundStatus::Succeeded, Some(i64::MAX), None), (RefundStatus::Succeeded, Some(1), None)];
        assert!(fold_holdings(rows.into_iter().map(Ok)).is_err());
    }
}
