//! The storage interface on a PostgreSQL connection inside a transaction.
//!
//! Same statements and the same answers as the SQLite implementation. Where
//! SQLite relies on its single writer, this one takes row locks
//! (`SELECT … FOR UPDATE`), because several Refundry instances may write to
//! the same database at once.

use std::collections::{BTreeMap, HashMap};
use std::ops::RangeInclusive;

use jiff::Timestamp;
use refundry_core::card::{First6, Last4};
use refundry_core::ids::{
    CorrectionId, DisputeId, EvidenceId, IdError, KeyId, MerchantId, RefundId, SaleId, SessionId, StoreId, UserId,
};
use refundry_core::money::{Currency, Money};
use refundry_core::refund::{ItemQuantity, PlannedItem, RefundReason, RefundStatus, RefundType};
use refundry_core::sale::{CardBrand, EntryMode, LineItem, PaymentMethod, Wallet};
use tokio_postgres::types::{FromSql, ToSql};
use tokio_postgres::{Row, Statement};

use super::client::{Client, Param};
use crate::StoreError;
use crate::deferred::Deferred;
use crate::model::*;
use crate::repo::*;
use crate::time::{from_micros, to_micros};

pub struct PgTx<'c> {
    client: &'c mut Client,
    statements: &'c mut HashMap<String, Statement>,
    /// This write job's queue of deferred writes (see [`crate::deferred`]).
    queued: Deferred,
    /// What earlier jobs of the same batch queued.
    batch: Option<&'c Deferred>,
    /// Whether a statement other than a `SELECT` ran: something may have
    /// changed that a refusal would have to undo.
    wrote: bool,
    /// Whether a statement failed; on PostgreSQL that aborts the whole
    /// transaction, not just the statement.
    failed: bool,
    /// Whether new refunds are queued for the batch's commit (a batch run
    /// without savepoints) rather than inserted at once.
    queue_refunds: bool,
}

impl<'c> PgTx<'c> {
    pub fn new(
        client: &'c mut Client,
        statements: &'c mut HashMap<String, Statement>,
        batch: Option<&'c Deferred>,
        queue_refunds: bool,
    ) -> Self {
        PgTx { client, statements, queued: Deferred::default(), batch, wrote: false, failed: false, queue_refunds }
    }

    /// A read or change of refunds first makes sure that no refund it
    /// could concern is queued: one that is would be missing from what the
    /// statement sees. The batch then runs again with savepoints, where
    /// refunds are inserted as they are made. A refund's own id, or its sale,
    /// narrows the check (the job runner moves refunds made in earlier
    /// batches); lists and reports check for any queued refund. A sale's
    /// holdings never need this: they add what is queued.
    fn no_refunds_queued(&mut self) -> Result<()> {
        let queued = self.queued.any_refund_pending(self.batch);
        self.run_again_if(queued)
    }

    /// See [`Self::no_refunds_queued`].
    fn refund_not_queued(&mut self, id: RefundId) -> Result<()> {
        let queued = self.queued.refund_pending(self.batch, id);
        self.run_again_if(queued)
    }

    /// See [`Self::no_refunds_queued`].
    fn no_refunds_of_sale_queued(&mut self, merchant: MerchantId, sale: SaleId) -> Result<()> {
        let queued = self.queued.refunds_pending(self.batch, merchant, sale).next().is_some();
        self.run_again_if(queued)
    }

    fn run_again_if(&mut self, queued: bool) -> Result<()> {
        if !queued {
            return Ok(());
        }
        self.failed = true;
        Err(StoreError::Backend {
            message: "refunds read while new ones are queued; the batch runs again with savepoints".into(),
            retryable: true,
        })
    }

    /// Whether this transaction ran anything but `SELECT`s (a `SELECT` here
    /// never calls a function that writes; data-modifying CTEs begin with
    /// `WITH`).
    pub(crate) fn wrote(&self) -> bool {
        self.wrote
    }

    /// Whether one of its statements failed.
    pub(crate) fn failed(&self) -> bool {
        self.failed
    }

    /// The writes this job deferred, for the batch's commit.
    pub(crate) fn take_deferred(&mut self) -> Deferred {
        std::mem::take(&mut self.queued)
    }

    /// Applies a batch's deferred writes and answers the transaction's id
    /// (none if it wrote nothing), for [`super::commit`]. Two round trips:
    /// the new refunds, idempotency records, acquirer calls and daily
    /// totals (one statement each) with the lock of the audit heads; then
    /// the audit events linked into their chains, the new heads, and the
    /// id. The heads are locked last, at the end of the transaction and in
    /// merchant order, so a merchant's writers serialise only for this
    /// step and never wait on each other in a cycle. Before a merchant's
    /// first event there is no head row to lock: two first appends race to
    /// insert seq 1 and the loser's batch is retried on the primary-key
    /// conflict. A key another writer committed meanwhile fails the batch
    /// on the idempotency records, retryably: run again, its write finds
    /// that key and replays it.
    pub(crate) fn apply_deferred(&mut self, mut deferred: Deferred) -> Result<Option<String>> {
        let mut events = std::mem::take(&mut deferred.audit);
        let mut first = Vec::new();
        if !deferred.refunds.is_empty() {
            first.push(refunds_statement(&deferred.refunds)?);
        }
        if !deferred.idempotency.is_empty() {
            first.push(idempotency_statement(&deferred.idempotency));
        }
        if !deferred.calls.is_empty() {
            first.push(calls_statement(&deferred.calls));
        }
        if !deferred.daily.is_empty() {
            first.push(daily_statement(&deferred.daily));
        }
        if !events.is_empty() {
            let merchants: Vec<String> = crate::deferred::merchants_of(&events).iter().map(|m| m.to_string()).collect();
            first.push(Pending::new(
                "SELECT merchant_id, seq, hash FROM audit_heads WHERE merchant_id = ANY($1)
                 ORDER BY merchant_id FOR UPDATE",
                vec![Box::new(merchants)],
            ));
        }
        let answers = self.send(&first)?;
        let new_heads;
        let mut last = Vec::new();
        if let Some(heads) = answers.last().filter(|_| !events.is_empty()) {
            let heads = heads
                .iter()
                .map(|r| Ok((col_id(r, 0, MerchantId::parse)?, (col(r, 1)?, col(r, 2)?))))
                .collect::<Result<HashMap<_, _>>>()?;
            new_heads = crate::deferred::link(&mut events, &heads)?;
            last.push(audit_statement(&events));
            last.push(heads_statement(&new_heads));
        }
        last.push(Pending::new("SELECT pg_current_xact_id_if_assigned()::text", Vec::new()));
        let answers = self.send(&last)?;
        let xid: Option<Option<String>> =
            answers.last().and_then(|rows| rows.first()).map(|row| col(row, 0)).transpose()?;
        Ok(xid.flatten())
    }

    /// Built statements in one round trip (see [`Client::query_many`]).
    fn send(&mut self, pending: &[Pending<'_>]) -> Result<Vec<Vec<Row>>> {
        let params: Vec<Vec<Param<'_>>> =
            pending.iter().map(|p| p.params.iter().map(|v| &**v as Param<'_>).collect()).collect();
        let statements: Vec<(&str, &[Param<'_>])> =
            pending.iter().zip(&params).map(|(p, params)| (p.sql, params.as_slice())).collect();
        self.query_many(&statements)
    }

    /// A prepared statement, prepared once per connection: every query is
    /// then one round trip instead of two.
    fn stmt(&mut self, sql: &str) -> Result<Statement> {
        let select = sql.trim_start().get(..6).is_some_and(|word| word.eq_ignore_ascii_case("SELECT"));
        self.wrote |= !select;
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let s = self.client.prepare(sql);
        let s = self.noted(s)?;
        self.statements.insert(sql.to_owned(), s.clone());
        Ok(s)
    }

    /// Passes a statement's outcome on, noting a failure.
    fn noted<T>(&mut self, outcome: std::result::Result<T, tokio_postgres::Error>) -> Result<T> {
        self.failed |= outcome.is_err();
        Ok(outcome?)
    }
}

impl PgTx<'_> {
    fn query(&mut self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Row>> {
        let stmt = self.stmt(sql)?;
        let outcome = self.client.query(&stmt, params);
        self.noted(outcome)
    }

    fn query_opt(&mut self, sql: &str, params: &[Param<'_>]) -> Result<Option<Row>> {
        let stmt = self.stmt(sql)?;
        let outcome = self.client.query_opt(&stmt, params);
        self.noted(outcome)
    }

    /// For statements that always answer exactly one row (aggregates,
    /// `INSERT … RETURNING`).
    fn query_one(&mut self, sql: &str, params: &[Param<'_>]) -> Result<Row> {
        let stmt = self.stmt(sql)?;
        let outcome = self.client.query_one(&stmt, params);
        self.noted(outcome)
    }

    /// Statements in one round trip (see [`Client::query_many`]).
    fn query_many(&mut self, statements: &[(&str, &[Param<'_>])]) -> Result<Vec<Vec<Row>>> {
        let prepared = statements.iter().map(|(sql, _)| self.stmt(sql)).collect::<Result<Vec<_>>>()?;
        let sent: Vec<(&Statement, &[Param<'_>])> =
            prepared.iter().zip(statements).map(|(statement, (_, params))| (statement, *params)).collect();
        let answers = self.client.query_many(&sent);
        answers.into_iter().map(|answer| self.noted(answer)).collect()
    }

    /// [`Self::query_many`], for a number of statements known in advance.
    fn query_all<const N: usize>(&mut self, statements: [(&str, &[Param<'_>]); N]) -> Result<[Vec<Row>; N]> {
        let rows = self.query_many(&statements)?;
        Ok(rows.try_into().unwrap_or_else(|_| unreachable!("one answer per statement")))
    }

    fn execute(&mut self, sql: &str, params: &[Param<'_>]) -> Result<u64> {
        let stmt = self.stmt(sql)?;
        let outcome = self.client.execute(&stmt, params);
        self.noted(outcome)
    }
}

/// A statement with its parameters, built before it is sent, so that
/// several can be sent together ([`PgTx::send`]).
struct Pending<'a> {
    sql: &'static str,
    params: Vec<Box<dyn ToSql + Sync + 'a>>,
}

impl<'a> Pending<'a> {
    fn new(sql: &'static str, params: Vec<Box<dyn ToSql + Sync + 'a>>) -> Self {
        Pending { sql, params }
    }
}

/// One column of parameters, taken from each record.
fn column<'a, T, V: ToSql + Sync + 'a>(records: &'a [T], f: impl Fn(&'a T) -> V) -> Box<dyn ToSql + Sync + 'a> {
    Box::new(records.iter().map(f).collect::<Vec<V>>())
}

fn idempotency_statement(records: &[IdempotencyRecord]) -> Pending<'_> {
    Pending::new(
        "INSERT INTO idempotency_keys (merchant_id, endpoint, key, fingerprint, status_code, body, created_at)
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[],
                              $7::bigint[])",
        vec![
            column(records, |r| r.merchant_id.to_string()),
            column(records, |r| r.endpoint.as_str()),
            column(records, |r| r.key.as_str()),
            column(records, |r| r.fingerprint.as_str()),
            column(records, |r| i64::from(r.status_code)),
            column(records, |r| r.body.as_str()),
            column(records, |r| to_micros(r.created_at)),
        ],
    )
}

fn calls_statement(calls: &[AcquirerCall]) -> Pending<'_> {
    // WITH ORDINALITY: ids are given in the order the calls were made
    Pending::new(
        "INSERT INTO acquirer_calls (refund_id, attempt, stan, kind, processor, started_at, duration_ms,
         outcome, response_code, detail)
         SELECT refund_id, attempt, stan, kind, processor, started_at, duration_ms, outcome, response_code, detail
         FROM UNNEST($1::text[], $2::bigint[], $3::bigint[], $4::text[], $5::text[], $6::bigint[],
                     $7::bigint[], $8::text[], $9::text[], $10::text[])
              WITH ORDINALITY AS c (refund_id, attempt, stan, kind, processor, started_at, duration_ms,
                                    outcome, response_code, detail, n)
         ORDER BY n",
        vec![
            column(calls, |c| c.refund_id.to_string()),
            column(calls, |c| i64::from(c.attempt)),
            column(calls, |c| i64::from(c.stan)),
            column(calls, |c| c.kind.as_str()),
            column(calls, |c| c.processor.as_str()),
            column(calls, |c| to_micros(c.started_at)),
            column(calls, |c| c.duration_ms),
            column(calls, |c| c.outcome.as_str()),
            column(calls, |c| c.response_code.as_deref()),
            column(calls, |c| c.detail.as_str()),
        ],
    )
}

fn daily_statement(daily: &BTreeMap<(MerchantId, String, String), i64>) -> Pending<'_> {
    let (mut merchants, mut by, mut days, mut deltas) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for ((merchant, who, day), delta) in daily {
        merchants.push(merchant.to_string());
        by.push(who.as_str());
        days.push(day.as_str());
        deltas.push(*delta);
    }
    // BTreeMap order: every writer takes these rows in the same order
    Pending::new(
        "INSERT INTO daily_refund_totals (merchant_id, requested_by, day, held_minor)
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bigint[])
         ON CONFLICT (merchant_id, requested_by, day)
         DO UPDATE SET held_minor = daily_refund_totals.held_minor + excluded.held_minor",
        vec![Box::new(merchants), Box::new(by), Box::new(days), Box::new(deltas)],
    )
}

fn audit_statement(events: &[AuditEvent]) -> Pending<'_> {
    Pending::new(
        "INSERT INTO audit_events (merchant_id, seq, at, actor, source, action, subject, data, prev_hash, hash)
         SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::bigint[], $4::text[], $5::text[], $6::text[],
                              $7::text[], $8::text[], $9::text[], $10::text[])",
        vec![
            column(events, |e| e.merchant_id.to_string()),
            column(events, |e| e.seq),
            column(events, |e| to_micros(e.at)),
            column(events, |e| e.actor.as_str()),
            column(events, |e| e.source.as_str()),
            column(events, |e| e.action.as_str()),
            column(events, |e| e.subject.as_str()),
            column(events, |e| e.data.as_str()),
            column(events, |e| e.prev_hash.as_str()),
            column(events, |e| e.hash.as_str()),
        ],
    )
}

fn heads_statement(heads: &[(MerchantId, i64, String)]) -> Pending<'_> {
    Pending::new(
        "INSERT INTO audit_heads (merchant_id, seq, hash) SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::text[])
         ON CONFLICT (merchant_id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
        vec![
            column(heads, |(m, _, _)| m.to_string()),
            column(heads, |(_, seq, _)| *seq),
            column(heads, |(_, _, hash)| hash.as_str()),
        ],
    )
}

/// A `WHERE` clause grown one filter at a time: each filter's `$?` becomes
/// the next placeholder number.
struct Filtered {
    sql: String,
    params: Vec<Box<dyn ToSql + Sync>>,
}

impl Filtered {
    fn new(sql: String, first: impl ToSql + Sync + 'static) -> Self {
        Filtered { sql, params: vec![Box::new(first)] }
    }

    fn and(&mut self, condition: &str, value: impl ToSql + Sync + 'static) {
        self.params.push(Box::new(value));
        let placeholder = format!("${}", self.params.len());
        self.sql.push_str(" AND ");
        self.sql.push_str(&condition.replace("$?", &placeholder));
    }

    /// Newest first, one page.
    fn page(mut self, limit: u32) -> Self {
        self.params.push(Box::new(i64::from(limit)));
        self.sql.push_str(&format!(" ORDER BY id DESC LIMIT ${}", self.params.len()));
        self
    }

    fn params(&self) -> Vec<Param<'_>> {
        self.params.iter().map(|p| &**p as Param<'_>).collect()
    }
}

// Decoding. Every column goes through `try_get`: a NULL, a wrong type or an
// out-of-range number in a stored row is corrupt data, never a panic.

fn column_name(r: &Row, idx: usize) -> &str {
    r.columns().get(idx).map_or("?", |c| c.name())
}

fn col<'a, T: FromSql<'a>>(r: &'a Row, idx: usize) -> Result<T> {
    r.try_get(idx).map_err(|e| StoreError::corrupt(format!("column {}: {e}", column_name(r, idx))))
}

/// Counts are BIGINT in the database and narrower in memory.
fn col_narrow<T: TryFrom<i64>>(r: &Row, idx: usize) -> Result<T> {
    let wide: i64 = col(r, idx)?;
    T::try_from(wide).map_err(|_| StoreError::corrupt(format!("column {} out of range", column_name(r, idx))))
}

fn col_time(r: &Row, idx: usize) -> Result<Timestamp> {
    from_micros(col(r, idx)?)
}

fn col_opt_time(r: &Row, idx: usize) -> Result<Option<Timestamp>> {
    col::<Option<i64>>(r, idx)?.map(from_micros).transpose()
}

fn col_id<T>(r: &Row, idx: usize, parse: fn(&str) -> std::result::Result<T, IdError>) -> Result<T> {
    parse(col(r, idx)?).map_err(StoreError::corrupt)
}

fn col_opt_id<T>(r: &Row, idx: usize, parse: fn(&str) -> std::result::Result<T, IdError>) -> Result<Option<T>> {
    col::<Option<&str>>(r, idx)?.map(|s| parse(s).map_err(StoreError::corrupt)).transpose()
}

fn col_sha256(r: &Row, idx: usize) -> Result<[u8; 32]> {
    col::<&[u8]>(r, idx)?.try_into().map_err(|_| StoreError::corrupt(format!("{} length", column_name(r, idx))))
}

fn col_currency(r: &Row, idx: usize) -> Result<Currency> {
    Currency::parse(col(r, idx)?).map_err(StoreError::corrupt)
}

fn parse_wire<T>(text: &str, parse: fn(&str) -> Option<T>, what: &str) -> Result<T> {
    parse(text).ok_or_else(|| StoreError::corrupt(format!("unknown {what} {text:?}")))
}

fn opt_micros(t: Option<Timestamp>) -> Option<i64> {
    t.map(to_micros)
}

fn merchant_from_row(r: &Row) -> Result<Merchant> {
    Ok(Merchant { id: col_id(r, 0, MerchantId::parse)?, name: col(r, 1)?, created_at: col_time(r, 2)? })
}

fn store_from_row(r: &Row, merchant: MerchantId) -> Result<StoreRecord> {
    Ok(StoreRecord {
        id: col_id(r, 0, StoreId::parse)?,
        merchant_id: merchant,
        name: col(r, 1)?,
        created_at: col_time(r, 2)?,
    })
}

impl MerchantRepo for PgTx<'_> {
    fn insert_merchant(&mut self, m: &Merchant) -> Result<()> {
        self.execute(
            "INSERT INTO merchants (id, name, created_at) VALUES ($1, $2, $3)",
            &[&m.id.to_string(), &m.name, &to_micros(m.created_at)],
        )?;
        Ok(())
    }

    fn first_merchant(&mut self) -> Result<Option<Merchant>> {
        Ok(self.merchants("SELECT id, name, created_at FROM merchants ORDER BY id LIMIT 1")?.pop())
    }

    fn all_merchants(&mut self) -> Result<Vec<Merchant>> {
        self.merchants("SELECT id, name, created_at FROM merchants ORDER BY id")
    }

    fn insert_store(&mut self, s: &StoreRecord) -> Result<()> {
        self.execute(
            "INSERT INTO stores (id, merchant_id, name, created_at) VALUES ($1, $2, $3, $4)",
            &[&s.id.to_string(), &s.merchant_id.to_string(), &s.name, &to_micros(s.created_at)],
        )?;
        Ok(())
    }

    fn find_store(&mut self, merchant: MerchantId, id: StoreId) -> Result<Option<StoreRecord>> {
        self.query_opt(
            "SELECT id, name, created_at FROM stores WHERE merchant_id = $1 AND id = $2",
            &[&merchant.to_string(), &id.to_string()],
        )?
        .map(|r| store_from_row(&r, merchant))
        .transpose()
    }

    fn stores_of(&mut self, merchant: MerchantId) -> Result<Vec<StoreRecord>> {
        self.query(
            "SELECT id, name, created_at FROM stores WHERE merchant_id = $1 ORDER BY id",
            &[&merchant.to_string()],
        )?
        .iter()
        .map(|r| store_from_row(r, merchant))
        .collect()
    }

    fn insert_terminal(&mut self, t: &Terminal) -> Result<()> {
        self.execute(
            "INSERT INTO terminals (merchant_id, terminal_id, store_id, created_at) VALUES ($1, $2, $3, $4)",
            &[&t.merchant_id.to_string(), &t.terminal_id, &t.store_id.to_string(), &to_micros(t.created_at)],
        )?;
        Ok(())
    }

    fn reserve_stans(&mut self, merchant: MerchantId, terminal_id: &str, count: u32) -> Result<RangeInclusive<u32>> {
        // the counter's row lock orders concurrent reservations, each of a run
        // of its own; taken once a run, not once a refund, since the row stays
        // locked until the whole batch commits
        let count = crate::repo::stan_count(count);
        let row = self.query_one(
            crate::repo::reserve_stans_sql!("$1", "$2", "$3::bigint"),
            &[&merchant.to_string(), &terminal_id, &i64::from(count)],
        )?;
        crate::repo::stan_run(col(&row, 0)?, count)
    }

    fn find_terminal(&mut self, merchant: MerchantId, terminal_id: &str) -> Result<Option<Terminal>> {
        self.query_opt(
            "SELECT store_id, created_at FROM terminals WHERE merchant_id = $1 AND terminal_id = $2",
            &[&merchant.to_string(), &terminal_id],
        )?
        .map(|r| {
            Ok(Terminal {
                merchant_id: merchant,
                terminal_id: terminal_id.to_owned(),
                store_id: col_id(&r, 0, StoreId::parse)?,
                created_at: col_time(&r, 1)?,
            })
        })
        .transpose()
    }
}

impl PgTx<'_> {
    fn merchants(&mut self, sql: &str) -> Result<Vec<Merchant>> {
        self.query(sql, &[])?.iter().map(merchant_from_row).collect()
    }
}

impl KeyRepo for PgTx<'_> {
    fn keys_of(&mut self, merchant: MerchantId) -> Result<Vec<ApiKeyRecord>> {
        let rows =
            self.query("SELECT id FROM api_keys WHERE merchant_id = $1 ORDER BY id", &[&merchant.to_string()])?;
        // a merchant has a handful of keys: one read each keeps one row mapping
        let mut keys = Vec::with_capacity(rows.len());
        for row in &rows {
            let id = col_id(row, 0, KeyId::parse)?;
            keys.extend(self.find_key(id)?);
        }
        Ok(keys)
    }

    fn insert_key(&mut self, k: &ApiKeyRecord) -> Result<()> {
        self.execute(
            "INSERT INTO api_keys (id, merchant_id, name, secret_sha256, scopes, store_id, terminal_id, created_at, revoked_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            &[
                &k.id.to_string(),
                &k.merchant_id.to_string(),
                &k.name,
                &k.secret_sha256.as_slice(),
                &k.scopes.join(" "),
                &k.store_id.map(|s| s.to_string()),
                &k.terminal_id,
                &to_micros(k.created_at),
                &opt_micros(k.revoked_at),
            ],
        )?;
        Ok(())
    }

    fn find_key(&mut self, id: KeyId) -> Result<Option<ApiKeyRecord>> {
        self.query_opt(
            "SELECT merchant_id, name, secret_sha256, scopes, created_at, revoked_at, store_id, terminal_id
             FROM api_keys WHERE id = $1",
            &[&id.to_string()],
        )?
        .map(|r| {
            Ok(ApiKeyRecord {
                id,
                merchant_id: col_id(&r, 0, MerchantId::parse)?,
                name: col(&r, 1)?,
                secret_sha256: col_sha256(&r, 2)?,
                scopes: col::<&str>(&r, 3)?.split_whitespace().map(str::to_owned).collect(),
                created_at: col_time(&r, 4)?,
                revoked_at: col_opt_time(&r, 5)?,
                store_id: col_opt_id(&r, 6, StoreId::parse)?,
                terminal_id: col(&r, 7)?,
            })
        })
        .transpose()
    }
}

const USER_COLUMNS: &str = "id, merchant_id, username, display_name, role, password_hash, store_id, failed_logins, \
    locked_until, created_at, disabled_at";

fn user_from_row(r: &Row) -> Result<User> {
    Ok(User {
        id: col_id(r, 0, UserId::parse)?,
        merchant_id: col_id(r, 1, MerchantId::parse)?,
        username: col(r, 2)?,
        display_name: col(r, 3)?,
        role: col(r, 4)?,
        password_hash: col(r, 5)?,
        store_id: col_opt_id(r, 6, StoreId::parse)?,
        failed_logins: col_narrow(r, 7)?,
        locked_until: col_opt_time(r, 8)?,
        created_at: col_time(r, 9)?,
        disabled_at: col_opt_time(r, 10)?,
    })
}

impl PgTx<'_> {
    fn users_from(&mut self, sql: &str, params: &[Param<'_>]) -> Result<Vec<User>> {
        self.query(sql, params)?.iter().map(user_from_row).collect()
    }
}

impl UserRepo for PgTx<'_> {
    fn insert_user(&mut self, u: &User) -> Result<()> {
        self.execute(
            &format!("INSERT INTO users ({USER_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"),
            &[
                &u.id.to_string(),
                &u.merchant_id.to_string(),
                &u.username,
                &u.display_name,
                &u.role,
                &u.password_hash,
                &u.store_id.map(|s| s.to_string()),
                &i64::from(u.failed_logins),
                &opt_micros(u.locked_until),
                &to_micros(u.created_at),
                &opt_micros(u.disabled_at),
            ],
        )?;
        Ok(())
    }

    fn update_user(&mut self, u: &User) -> Result<()> {
        let changed = self.execute(
            "UPDATE users SET display_name = $2, role = $3, password_hash = $4, store_id = $5,
             failed_logins = $6, locked_until = $7, disabled_at = $8 WHERE id = $1",
            &[
                &u.id.to_string(),
                &u.display_name,
                &u.role,
                &u.password_hash,
                &u.store_id.map(|s| s.to_string()),
                &i64::from(u.failed_logins),
                &opt_micros(u.locked_until),
                &opt_micros(u.disabled_at),
            ],
        )?;
        if changed == 1 { Ok(()) } else { Err(StoreError::corrupt(format!("user {} is missing", u.id))) }
    }

    fn find_user(&mut self, id: UserId) -> Result<Option<User>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1");
        Ok(self.users_from(&sql, &[&id.to_string()])?.pop())
    }

    fn find_user_by_username(&mut self, username: &str) -> Result<Option<User>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE username = $1");
        Ok(self.users_from(&sql, &[&username])?.pop())
    }

    fn users_of(&mut self, merchant: MerchantId) -> Result<Vec<User>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE merchant_id = $1 ORDER BY username");
        self.users_from(&sql, &[&merchant.to_string()])
    }
}

impl SessionRepo for PgTx<'_> {
    fn insert_session(&mut self, s: &Session) -> Result<()> {
        self.execute(
            "INSERT INTO sessions (id, user_id, secret_sha256, created_at, expires_at, revoked_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &s.id.to_string(),
                &s.user_id.to_string(),
                &s.secret_sha256.as_slice(),
                &to_micros(s.created_at),
                &to_micros(s.expires_at),
                &opt_micros(s.revoked_at),
            ],
        )?;
        Ok(())
    }

    fn find_session(&mut self, id: SessionId) -> Result<Option<Session>> {
        self.query_opt(
            "SELECT user_id, secret_sha256, created_at, expires_at, revoked_at FROM sessions WHERE id = $1",
            &[&id.to_string()],
        )?
        .map(|r| {
            Ok(Session {
                id,
                user_id: col_id(&r, 0, UserId::parse)?,
                secret_sha256: col_sha256(&r, 1)?,
                created_at: col_time(&r, 2)?,
                expires_at: col_time(&r, 3)?,
                revoked_at: col_opt_time(&r, 4)?,
            })
        })
        .transpose()
    }

    fn revoke_session(&mut self, id: SessionId, at: Timestamp) -> Result<()> {
        self.execute(
            "UPDATE sessions SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
            &[&id.to_string(), &to_micros(at)],
        )?;
        Ok(())
    }
}

impl PgTx<'_> {
    /// The policy in force as stored (see `current_policy`).
    fn stored_policy(&mut self, merchant: MerchantId, store: Option<StoreId>) -> Result<Option<PolicyRecord>> {
        // a store's own newest version wins over the merchant-wide one; each
        // is the last entry of its index range, so nothing is sorted
        self.query_opt(
            "(SELECT version, store_id, body, created_by, created_at FROM refund_policies
              WHERE merchant_id = $1 AND store_id = $2 ORDER BY version DESC LIMIT 1)
             UNION ALL
             (SELECT version, store_id, body, created_by, created_at FROM refund_policies
              WHERE merchant_id = $1 AND store_id IS NULL ORDER BY version DESC LIMIT 1)
             LIMIT 1",
            &[&merchant.to_string(), &store.map(|s| s.to_string())],
        )?
        .map(|r| {
            Ok(PolicyRecord {
                merchant_id: merchant,
                version: col(&r, 0)?,
                store_id: col_opt_id(&r, 1, StoreId::parse)?,
                body: col(&r, 2)?,
                created_by: col(&r, 3)?,
                created_at: col_time(&r, 4)?,
            })
        })
        .transpose()
    }
}

impl PolicyRepo for PgTx<'_> {
    fn insert_policy(&mut self, p: &PolicyRecord) -> Result<()> {
        self.execute(
            "INSERT INTO refund_policies (merchant_id, version, store_id, body, created_by, created_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &p.merchant_id.to_string(),
                &p.version,
                &p.store_id.map(|s| s.to_string()),
                &p.body,
                &p.created_by,
                &to_micros(p.created_at),
            ],
        )?;
        self.queued.policies_changed(p.merchant_id);
        Ok(())
    }

    fn current_policy(&mut self, merchant: MerchantId, store: Option<StoreId>) -> Result<Option<PolicyRecord>> {
        if let Some(policy) = self.queued.policy_read(self.batch, merchant, store) {
            return Ok(policy);
        }
        let policy = self.stored_policy(merchant, store)?;
        self.queued.note_policy(merchant, store, policy.as_ref());
        Ok(policy)
    }

    fn latest_policy_version(&mut self, merchant: MerchantId) -> Result<i64> {
        let r = self.query_one(
            "SELECT COALESCE(MAX(version), 0) FROM refund_policies WHERE merchant_id = $1",
            &[&merchant.to_string()],
        )?;
        col(&r, 0)
    }
}

const SALE_COLUMNS: &str = "id, merchant_id, store_id, terminal_id, amount_minor, currency, method, \
    card_brand, card_first6, card_last4, entry_mode, wallet, voucher_no, rrn, auth_code, batch_no, \
    captured_at, created_at, cashier";

/// A sale's items as one JSON array of `[sku, name, quantity, unit]`, read
/// in the same statement as the sale: a second query for them would be a
/// second round trip on every refund.
const SALE_ITEMS: &str = "(SELECT json_agg(json_build_array(i.sku, i.name, i.quantity, i.unit_amount_minor) \
    ORDER BY i.line_no)::text FROM sale_items i WHERE i.sale_id = sales.id)";

/// The sale, with its items from the [`SALE_ITEMS`] column after the rest.
fn sale_from_row(r: &Row) -> Result<Sale> {
    sale_from_row_at(r, 0)
}

/// The sale whose columns start at column `at` of the row.
fn sale_from_row_at(r: &Row, at: usize) -> Result<Sale> {
    let payment_method = match col::<&str>(r, at + 6)? {
        "card" => {
            let card_column =
                |idx| col::<Option<&str>>(r, idx)?.ok_or_else(|| StoreError::corrupt("card sale without card columns"));
            PaymentMethod::Card {
                brand: parse_wire(card_column(at + 7)?, CardBrand::parse, "card brand")?,
                first6: First6::parse(card_column(at + 8)?).map_err(StoreError::corrupt)?,
                last4: Last4::parse(card_column(at + 9)?).map_err(StoreError::corrupt)?,
                entry_mode: parse_wire(card_column(at + 10)?, EntryMode::parse, "entry mode")?,
            }
        }
        "wallet" => PaymentMethod::Wallet {
            wallet: parse_wire(
                col::<Option<&str>>(r, at + 11)?.ok_or_else(|| StoreError::corrupt("wallet sale without wallet"))?,
                Wallet::parse,
                "wallet",
            )?,
        },
        "cash" => PaymentMethod::Cash,
        other => return Err(StoreError::corrupt(format!("unknown payment method {other:?}"))),
    };
    Ok(Sale {
        id: col_id(r, at, SaleId::parse)?,
        merchant_id: col_id(r, at + 1, MerchantId::parse)?,
        store_id: col_id(r, at + 2, StoreId::parse)?,
        terminal_id: col(r, at + 3)?,
        amount: Money::new(col(r, at + 4)?, col_currency(r, at + 5)?),
        payment_method,
        voucher_no: col(r, at + 12)?,
        rrn: col(r, at + 13)?,
        auth_code: col(r, at + 14)?,
        batch_no: col(r, at + 15)?,
        captured_at: col_time(r, at + 16)?,
        created_at: col_time(r, at + 17)?,
        items: items_from_json(r, at + 19)?
            .into_iter()
            .map(|(sku, name, quantity, unit_amount_minor)| {
                Ok(LineItem { sku, name, quantity: narrow(quantity)?, unit_amount_minor })
            })
            .collect::<Result<_>>()?,
        cashier: col(r, at + 18)?,
    })
}

/// Decodes a `json_agg` column of item arrays; NULL when there are none.
fn items_from_json<T: serde::de::DeserializeOwned>(r: &Row, idx: usize) -> Result<Vec<T>> {
    match col::<Option<&str>>(r, idx)? {
        None => Ok(Vec::new()),
        Some(json) => serde_json::from_str(json).map_err(|e| StoreError::corrupt(format!("items: {e}"))),
    }
}

fn narrow(quantity: i64) -> Result<u32> {
    u32::try_from(quantity).map_err(|_| StoreError::corrupt("item quantity out of range"))
}

/// A refund's columns in the order rows are read; a macro, so that
/// statements can be put together from it at compile time.
macro_rules! refund_columns {
    () => {
        "id, merchant_id, sale_id, type, status, amount_minor, currency, reason, note, \
         failure_reason, acquirer_reference, attempts, requested_by, created_at, updated_at, completed_at, \
         policy_version, decision, approval_expires_at, decided_by, decision_note, stan, expected_arrival_at, \
         arrived_at, customer_contact"
    };
}
const REFUND_COLUMNS: &str = refund_columns!();

/// A refund's items as one JSON array of `[sku, quantity, amount]`, as
/// [`SALE_ITEMS`] for sales.
const REFUND_ITEMS: &str = "(SELECT json_agg(json_build_array(i.sku, i.quantity, i.amount_minor) ORDER BY i.sku)::text \
    FROM refund_items i WHERE i.refund_id = refunds.id)";

/// Columns of [`REFUND_COLUMNS`] and [`REFUND_ITEMS`] together.
const REFUND_COLUMN_COUNT: usize = 26;

/// The refund, with its items from the [`REFUND_ITEMS`] column after the rest.
fn refund_from_row(r: &Row) -> Result<Refund> {
    Ok(Refund {
        id: col_id(r, 0, RefundId::parse)?,
        merchant_id: col_id(r, 1, MerchantId::parse)?,
        sale_id: col_id(r, 2, SaleId::parse)?,
        refund_type: parse_wire(col(r, 3)?, RefundType::parse, "refund type")?,
        status: parse_wire(col(r, 4)?, RefundStatus::parse, "refund status")?,
        amount: Money::new(col(r, 5)?, col_currency(r, 6)?),
        reason: parse_wire(col(r, 7)?, RefundReason::parse, "refund reason")?,
        note: col(r, 8)?,
        items: items_from_json(r, 25)?
            .into_iter()
            .map(|(sku, quantity, amount_minor)| Ok(PlannedItem { sku, quantity: narrow(quantity)?, amount_minor }))
            .collect::<Result<_>>()?,
        failure_reason: col(r, 9)?,
        acquirer_reference: col(r, 10)?,
        attempts: col_narrow(r, 11)?,
        requested_by: col(r, 12)?,
        created_at: col_time(r, 13)?,
        updated_at: col_time(r, 14)?,
        completed_at: col_opt_time(r, 15)?,
        policy_version: col(r, 16)?,
        decision: col(r, 17)?,
        approval_expires_at: col_opt_time(r, 18)?,
        decided_by: col(r, 19)?,
        decision_note: col(r, 20)?,
        stan: col::<Option<i64>>(r, 21)?.map(u32::try_from).transpose().map_err(StoreError::corrupt)?,
        expected_arrival_at: col_opt_time(r, 22)?,
        arrived_at: col_opt_time(r, 23)?,
        customer_contact: col(r, 24)?,
    })
}

impl PgTx<'_> {
    fn sales_from(&mut self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Sale>> {
        self.query(sql, params)?.iter().map(sale_from_row).collect()
    }

    fn refunds_from(&mut self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Refund>> {
        self.query(sql, params)?.iter().map(refund_from_row).collect()
    }
}

impl SaleRepo for PgTx<'_> {
    fn insert_sale(&mut self, s: &Sale) -> Result<()> {
        let (brand, first6, last4, entry, wallet) = match &s.payment_method {
            PaymentMethod::Card { brand, first6, last4, entry_mode } => {
                (Some(brand.as_str()), Some(first6.as_str()), Some(last4.as_str()), Some(entry_mode.as_str()), None)
            }
            PaymentMethod::Wallet { wallet } => (None, None, None, None, Some(wallet.as_str())),
            PaymentMethod::Cash => (None, None, None, None, None),
        };
        let id = s.id.to_string();
        self.execute(
            &format!(
                "INSERT INTO sales ({SALE_COLUMNS}) VALUES
                 ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)"
            ),
            &[
                &id,
                &s.merchant_id.to_string(),
                &s.store_id.to_string(),
                &s.terminal_id,
                &s.amount.minor,
                &s.amount.currency.code(),
                &s.payment_method.kind(),
                &brand,
                &first6,
                &last4,
                &entry,
                &wallet,
                &s.voucher_no,
                &s.rrn,
                &s.auth_code,
                &s.batch_no,
                &to_micros(s.captured_at),
                &to_micros(s.created_at),
                &s.cashier,
            ],
        )?;
        for (line_no, item) in s.items.iter().enumerate() {
            let line_no = i64::try_from(line_no).map_err(StoreError::corrupt)?;
            self.execute(
                "INSERT INTO sale_items (sale_id, line_no, sku, name, quantity, unit_amount_minor)
                 VALUES ($1, $2, $3, $4, $5, $6)",
                &[&id, &line_no, &item.sku, &item.name, &i64::from(item.quantity), &item.unit_amount_minor],
            )?;
        }
        Ok(())
    }

    fn find_sale(&mut self, merchant: MerchantId, id: SaleId) -> Result<Option<Sale>> {
        let sql = format!("SELECT {SALE_COLUMNS}, {SALE_ITEMS} FROM sales WHERE merchant_id = $1 AND id = $2");
        Ok(self.sales_from(&sql, &[&merchant.to_string(), &id.to_string()])?.pop())
    }

    fn lock_sale(&mut self, merchant: MerchantId, id: SaleId) -> Result<Option<Sale>> {
        Ok(self.sales_from(&LOCK_SALE, &[&merchant.to_string(), &id.to_string()])?.pop())
    }

    fn search_sales(&mut self, merchant: MerchantId, q: &SaleQuery) -> Result<Vec<Sale>> {
        let mut f = Filtered::new(
            format!("SELECT {SALE_COLUMNS}, {SALE_ITEMS} FROM sales WHERE merchant_id = $1"),
            merchant.to_string(),
        );
        if let Some(v) = q.store_id {
            f.and("store_id = $?", v.to_string());
        }
        if let Some(v) = &q.voucher_no {
            f.and("voucher_no = $?", v.clone());
        }
        if let Some(v) = &q.rrn {
            f.and("rrn = $?", v.clone());
        }
        if let Some(v) = &q.last4 {
            f.and("card_last4 = $?", v.clone());
        }
        if let Some(v) = q.amount_minor {
            f.and("amount_minor = $?", v);
        }
        if let Some(v) = &q.terminal_id {
            f.and("terminal_id = $?", v.clone());
        }
        if let Some(v) = q.captured_from {
            f.and("captured_at >= $?", to_micros(v));
        }
        if let Some(v) = q.captured_to {
            f.and("captured_at < $?", to_micros(v));
        }
        if let Some(v) = q.starting_after {
            f.and("id < $?", v.to_string());
        }
        let f = f.page(q.limit);
        self.sales_from(&f.sql, &f.params())
    }

    fn find_batch(&mut self, merchant: MerchantId, terminal_id: &str, batch_no: &str) -> Result<Option<BatchRecord>> {
        self.query_opt(
            "SELECT settled_at FROM batches WHERE merchant_id = $1 AND terminal_id = $2 AND batch_no = $3",
            &[&merchant.to_string(), &terminal_id, &batch_no],
        )?
        .map(|r| {
            Ok(BatchRecord {
                merchant_id: merchant,
                terminal_id: terminal_id.to_owned(),
                batch_no: batch_no.to_owned(),
                settled_at: col_time(&r, 0)?,
            })
        })
        .transpose()
    }

    fn insert_batch(&mut self, b: &BatchRecord) -> Result<()> {
        self.execute(
            "INSERT INTO batches (merchant_id, terminal_id, batch_no, settled_at) VALUES ($1, $2, $3, $4)",
            &[&b.merchant_id.to_string(), &b.terminal_id, &b.batch_no, &to_micros(b.settled_at)],
        )?;
        Ok(())
    }
}

/// A row of a sale's running sums, from column `at` on: status, amount or
/// SKU and quantity.
fn holding_at(r: &Row, at: usize) -> Result<(RefundStatus, Option<i64>, Option<ItemQuantity>)> {
    let item = match col::<Option<String>>(r, at + 2)? {
        Some(sku) => Some(ItemQuantity { sku, quantity: col_narrow(r, at + 3)? }),
        None => None,
    };
    let status: String = col(r, at)?;
    Ok((parse_wire(&status, RefundStatus::parse, "refund status")?, col(r, at + 1)?, item))
}

/// A sale, read and held until the transaction ends: another instance
/// refunding the same sale waits here, so its check of what is left sees
/// this transaction's refund.
static LOCK_SALE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!("SELECT {SALE_COLUMNS}, {SALE_ITEMS} FROM sales WHERE merchant_id = $1 AND id = $2 FOR UPDATE")
});

/// What holds part of a sale, in one statement: its disputes' columns
/// first, then its holdings' (status, amount, SKU, quantity; as
/// [`holding_at`] reads them). Rows of one fill the other's columns with
/// NULLs, and the holdings' sort last. Item quantities only when asked.
fn holdings_sql(items: bool) -> &'static str {
    static SQL: std::sync::LazyLock<[String; 2]> = std::sync::LazyLock::new(|| {
        let nulls = vec!["NULL"; DISPUTE_COLUMN_COUNT].join(", ");
        let disputes = format!(
            "SELECT {DISPUTE_COLUMNS}, NULL::text, NULL::bigint, NULL::text, NULL::bigint FROM disputes
             WHERE merchant_id = $1 AND sale_id = $2
             UNION ALL SELECT {nulls}, status, amount_minor, NULL, NULL FROM sale_holdings
             WHERE merchant_id = $1 AND sale_id = $2 AND amount_minor > 0"
        );
        let items = format!(
            " UNION ALL SELECT {nulls}, status, NULL, sku, quantity FROM sale_item_holdings
             WHERE merchant_id = $1 AND sale_id = $2 AND quantity > 0"
        );
        [format!("{disputes} ORDER BY 1"), format!("{disputes}{items} ORDER BY 1")]
    });
    &SQL[usize::from(items)]
}

impl PgTx<'_> {
    /// The sale from rows of [`LOCK_SALE`], with its holdings from rows
    /// of [`holdings_sql`] read after it.
    fn locked_from(&self, sales: &[Row], held: &[Row]) -> Result<Option<(Sale, HoldingsAndDisputes)>> {
        let Some(sale) = sales.first().map(sale_from_row).transpose()? else { return Ok(None) };
        let held = self.held_from(&sale, held)?;
        Ok(Some((sale, held)))
    }

    /// The sale's disputes and holdings from rows of [`holdings_sql`], with
    /// the refunds of the sale queued earlier in the batch, which are not in
    /// its stored sums yet.
    fn held_from(&self, sale: &Sale, rows: &[Row]) -> Result<HoldingsAndDisputes> {
        let mut disputes = Vec::new();
        let mut stored = Vec::new();
        for row in rows {
            if col::<Option<&str>>(row, 0)?.is_some() {
                disputes.push(dispute_from_row(row)?);
            } else {
                stored.push(holding_at(row, DISPUTE_COLUMN_COUNT));
            }
        }
        let pending = self.queued.refunds_pending(self.batch, sale.merchant_id, sale.id).flat_map(|r| {
            let items = r
                .items
                .iter()
                .map(|i| (r.status, None, Some(ItemQuantity { sku: i.sku.clone(), quantity: i.quantity })));
            std::iter::once((r.status, Some(r.amount.minor), None)).chain(items)
        });
        let holdings = crate::repo::fold_holdings(stored.into_iter().chain(pending.map(Ok)))?;
        Ok((holdings, disputes))
    }
}

impl PgTx<'_> {
    /// Inserts refunds as [`refunds_statement`] does, at once.
    fn insert_refunds(&mut self, refunds: &[Refund]) -> Result<()> {
        let statement = refunds_statement(refunds)?;
        self.send(std::slice::from_ref(&statement))?;
        Ok(())
    }
}

/// Inserts refunds with their items and adds them to their sales' sums
/// (see migration 0004), all in one statement: the refunds queued by a
/// batch, or one refund made in a savepoint. The sums are added up here
/// first, so that each row of them is written once, in key order.
fn refunds_statement(refunds: &[Refund]) -> Result<Pending<'_>> {
    const SQL: &str = concat!(
        "WITH refund AS (INSERT INTO refunds (",
        refund_columns!(),
        ") SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[],
             $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::bigint[], $13::text[],
             $14::bigint[], $15::bigint[], $16::bigint[], $17::bigint[], $18::text[], $19::bigint[],
             $20::text[], $21::text[], $22::bigint[], $23::bigint[], $24::bigint[], $25::text[])
         ), items AS (
             INSERT INTO refund_items (refund_id, sku, quantity, amount_minor)
             SELECT * FROM UNNEST($26::text[], $27::text[], $28::bigint[], $29::bigint[])
         ), item_sums AS (
             INSERT INTO sale_item_holdings (merchant_id, sale_id, status, sku, quantity)
             SELECT * FROM UNNEST($30::text[], $31::text[], $32::text[], $33::text[], $34::bigint[])
             ON CONFLICT (merchant_id, sale_id, status, sku)
             DO UPDATE SET quantity = sale_item_holdings.quantity + EXCLUDED.quantity
         )
         INSERT INTO sale_holdings (merchant_id, sale_id, status, amount_minor)
         SELECT * FROM UNNEST($35::text[], $36::text[], $37::text[], $38::bigint[])
         ON CONFLICT (merchant_id, sale_id, status)
         DO UPDATE SET amount_minor = sale_holdings.amount_minor + EXCLUDED.amount_minor"
    );
    let ids: Vec<String> = refunds.iter().map(|r| r.id.to_string()).collect();
    let merchants: Vec<String> = refunds.iter().map(|r| r.merchant_id.to_string()).collect();
    let sales: Vec<String> = refunds.iter().map(|r| r.sale_id.to_string()).collect();
    let (mut item_refunds, mut skus, mut quantities, mut amounts) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut item_sums: BTreeMap<(&str, &str, &str, &str), i64> = BTreeMap::new();
    let mut sums: BTreeMap<(&str, &str, &str), i64> = BTreeMap::new();
    // summed as the database would, refusing rather than wrapping
    let add = |sum: &mut i64, n: i64| -> Result<()> {
        *sum = sum.checked_add(n).ok_or_else(|| StoreError::corrupt("a batch's refunds of one sale overflow"))?;
        Ok(())
    };
    for (n, r) in refunds.iter().enumerate() {
        let status = r.status.as_str();
        add(sums.entry((&merchants[n], &sales[n], status)).or_default(), r.amount.minor)?;
        for item in &r.items {
            item_refunds.push(ids[n].clone());
            skus.push(item.sku.as_str());
            quantities.push(i64::from(item.quantity));
            amounts.push(item.amount_minor);
            add(item_sums.entry((&merchants[n], &sales[n], status, &item.sku)).or_default(), i64::from(item.quantity))?;
        }
    }
    // the sums' keys, owned: they outlive this function in the statement
    let owned = |keys: Vec<&str>| keys.into_iter().map(str::to_owned).collect::<Vec<String>>();
    let mut item_keys: [Vec<&str>; 4] = Default::default();
    for (m, s, st, sku) in item_sums.keys() {
        item_keys[0].push(m);
        item_keys[1].push(s);
        item_keys[2].push(st);
        item_keys[3].push(sku);
    }
    let [item_merchants, item_sales, item_statuses, item_skus] = item_keys.map(owned);
    let mut sum_keys: [Vec<&str>; 3] = Default::default();
    for (m, s, st) in sums.keys() {
        sum_keys[0].push(m);
        sum_keys[1].push(s);
        sum_keys[2].push(st);
    }
    let [sum_merchants, sum_sales, sum_statuses] = sum_keys.map(owned);
    let item_totals: Vec<i64> = item_sums.values().copied().collect();
    let sum_totals: Vec<i64> = sums.values().copied().collect();
    let params: Vec<Box<dyn ToSql + Sync + '_>> = vec![
        Box::new(ids),
        Box::new(merchants),
        Box::new(sales),
        column(refunds, |r| r.refund_type.as_str()),
        column(refunds, |r| r.status.as_str()),
        column(refunds, |r| r.amount.minor),
        column(refunds, |r| r.amount.currency.code()),
        column(refunds, |r| r.reason.as_str()),
        column(refunds, |r| r.note.as_deref()),
        column(refunds, |r| r.failure_reason.as_deref()),
        column(refunds, |r| r.acquirer_reference.as_deref()),
        column(refunds, |r| i64::from(r.attempts)),
        column(refunds, |r| r.requested_by.as_str()),
        column(refunds, |r| to_micros(r.created_at)),
        column(refunds, |r| to_micros(r.updated_at)),
        column(refunds, |r| opt_micros(r.completed_at)),
        column(refunds, |r| r.policy_version),
        column(refunds, |r| r.decision.as_str()),
        column(refunds, |r| opt_micros(r.approval_expires_at)),
        column(refunds, |r| r.decided_by.as_deref()),
        column(refunds, |r| r.decision_note.as_deref()),
        column(refunds, |r| r.stan.map(i64::from)),
        column(refunds, |r| opt_micros(r.expected_arrival_at)),
        column(refunds, |r| opt_micros(r.arrived_at)),
        column(refunds, |r| r.customer_contact.as_deref()),
        Box::new(item_refunds),
        Box::new(skus),
        Box::new(quantities),
        Box::new(amounts),
        Box::new(item_merchants),
        Box::new(item_sales),
        Box::new(item_statuses),
        Box::new(item_skus),
        Box::new(item_totals),
        Box::new(sum_merchants),
        Box::new(sum_sales),
        Box::new(sum_statuses),
        Box::new(sum_totals),
    ];
    Ok(Pending::new(SQL, params))
}

impl RefundRepo for PgTx<'_> {
    fn insert_refund(&mut self, r: &Refund) -> Result<()> {
        if self.queue_refunds {
            self.queued.refunds.push(r.clone());
            return Ok(());
        }
        self.insert_refunds(std::slice::from_ref(r))
    }

    fn update_refund(&mut self, r: &Refund) -> Result<()> {
        self.refund_not_queued(r.id)?;
        let changed = self.execute(
            "UPDATE refunds SET status = $2, failure_reason = $3, acquirer_reference = $4, attempts = $5,
             updated_at = $6, completed_at = $7, approval_expires_at = $8, decided_by = $9, decision_note = $10,
             stan = $11, expected_arrival_at = $12, arrived_at = $13
             WHERE id = $1",
            &[
                &r.id.to_string(),
                &r.status.as_str(),
                &r.failure_reason,
                &r.acquirer_reference,
                &i64::from(r.attempts),
                &to_micros(r.updated_at),
                &opt_micros(r.completed_at),
                &opt_micros(r.approval_expires_at),
                &r.decided_by,
                &r.decision_note,
                &r.stan.map(i64::from),
                &opt_micros(r.expected_arrival_at),
                &opt_micros(r.arrived_at),
            ],
        )?;
        if changed == 1 { Ok(()) } else { Err(StoreError::corrupt(format!("refund {} is missing", r.id))) }
    }

    fn find_refund(&mut self, merchant: MerchantId, id: RefundId) -> Result<Option<Refund>> {
        self.refund_not_queued(id)?;
        let sql = format!("SELECT {REFUND_COLUMNS}, {REFUND_ITEMS} FROM refunds WHERE merchant_id = $1 AND id = $2");
        Ok(self.refunds_from(&sql, &[&merchant.to_string(), &id.to_string()])?.pop())
    }

    fn find_refund_any_merchant(&mut self, id: RefundId) -> Result<Option<Refund>> {
        self.refund_not_queued(id)?;
        let sql = format!("SELECT {REFUND_COLUMNS}, {REFUND_ITEMS} FROM refunds WHERE id = $1");
        Ok(self.refunds_from(&sql, &[&id.to_string()])?.pop())
    }

    fn lock_refund(&mut self, id: RefundId) -> Result<Option<Refund>> {
        self.refund_not_queued(id)?;
        // two instances moving the same refund take turns; the second reads
        // the status the first committed
        let sql = format!("SELECT {REFUND_COLUMNS}, {REFUND_ITEMS} FROM refunds WHERE id = $1 FOR UPDATE");
        Ok(self.refunds_from(&sql, &[&id.to_string()])?.pop())
    }

    fn lock_refund_with_sale(&mut self, id: RefundId) -> Result<Option<(Refund, Option<Sale>)>> {
        self.refund_not_queued(id)?;
        // one round trip instead of two for every attempt the job runner makes
        let sql = format!(
            "SELECT * FROM (SELECT {REFUND_COLUMNS}, {REFUND_ITEMS} FROM refunds WHERE id = $1 FOR UPDATE) r
             LEFT JOIN LATERAL (SELECT {SALE_COLUMNS}, {SALE_ITEMS} FROM sales
                 WHERE sales.merchant_id = r.merchant_id AND sales.id = r.sale_id) s ON true"
        );
        let Some(row) = self.query(&sql, &[&id.to_string()])?.pop() else { return Ok(None) };
        let refund = refund_from_row(&row)?;
        let sale = match col::<Option<&str>>(&row, REFUND_COLUMN_COUNT)? {
            None => None,
            Some(_) => Some(sale_from_row_at(&row, REFUND_COLUMN_COUNT)?),
        };
        Ok(Some((refund, sale)))
    }

    fn refunds_of_sale(&mut self, merchant: MerchantId, sale: SaleId) -> Result<Vec<Refund>> {
        self.no_refunds_of_sale_queued(merchant, sale)?;
        let sql = format!(
            "SELECT {REFUND_COLUMNS}, {REFUND_ITEMS} FROM refunds WHERE merchant_id = $1 AND sale_id = $2 ORDER BY id"
        );
        self.refunds_from(&sql, &[&merchant.to_string(), &sale.to_string()])
    }

    fn holdings_and_disputes(&mut self, sale: &Sale) -> Result<HoldingsAndDisputes> {
        let sql = holdings_sql(!sale.items.is_empty());
        let rows = self.query(sql, &[&sale.merchant_id.to_string(), &sale.id.to_string()])?;
        self.held_from(sale, &rows)
    }

    fn lock_sale_with_holdings(
        &mut self,
        merchant: MerchantId,
        id: SaleId,
    ) -> Result<Option<(Sale, HoldingsAndDisputes)>> {
        // one round trip instead of two for every refund: the holdings are
        // sent with the lock, and the server reads them once the lock is
        // held, with a snapshot of their own. Whether the sale has items is
        // not known yet: they are asked for either way.
        let (merchant, id) = (merchant.to_string(), id.to_string());
        let [sales, held] =
            self.query_all([(&LOCK_SALE, &[&merchant, &id]), (holdings_sql(true), &[&merchant, &id])])?;
        self.locked_from(&sales, &held)
    }

    fn find_key_or_lock_sale(
        &mut self,
        merchant: MerchantId,
        endpoint: &str,
        key: &str,
        sale: SaleId,
    ) -> Result<KeyOrSale> {
        if let Some(queued) = self.queued.idempotency_pending(self.batch, merchant, endpoint, key) {
            return Ok(KeyOrSale::Used(queued));
        }
        // one round trip for the three; the key is read last, with a
        // snapshot taken once the lock is held
        let (merchant_text, id) = (merchant.to_string(), sale.to_string());
        let [sales, held, used] = self.query_all([
            (&LOCK_SALE, &[&merchant_text, &id]),
            (holdings_sql(true), &[&merchant_text, &id]),
            (FIND_KEY, &[&merchant_text, &endpoint, &key]),
        ])?;
        match used.first() {
            Some(row) => Ok(KeyOrSale::Used(key_record(merchant, endpoint, key, row)?)),
            None => Ok(KeyOrSale::New(self.locked_from(&sales, &held)?)),
        }
    }

    fn list_refunds(&mut self, merchant: MerchantId, q: &RefundQuery) -> Result<Vec<Refund>> {
        self.no_refunds_queued()?;
        let mut f = Filtered::new(
            format!("SELECT {REFUND_COLUMNS}, {REFUND_ITEMS} FROM refunds WHERE merchant_id = $1"),
            merchant.to_string(),
        );
        if let Some(sale) = q.sale_id {
            f.and("sale_id = $?", sale.to_string());
        }
        if let Some(status) = q.status {
            f.and("status = $?", status.as_str());
        }
        if let Some(store) = q.store_id {
            f.and("sale_id IN (SELECT id FROM sales WHERE store_id = $?)", store.to_string());
        }
        if let Some(who) = &q.requested_by {
            f.and("requested_by = $?", who.clone());
        }
        if let Some(after) = q.starting_after {
            f.and("id < $?", after.to_string());
        }
        let f = f.page(q.limit);
        self.refunds_from(&f.sql, &f.params())
    }

    fn daily_total(&mut self, merchant: MerchantId, requested_by: &str, day: &str) -> Result<i64> {
        // read once a batch: as with any read of it, a total other writers
        // commit meanwhile counts from their commit on
        let key = (merchant, requested_by.to_owned(), day.to_owned());
        if let Some(total) = self.queued.daily_total(self.batch, &key) {
            return Ok(total);
        }
        let row = self.query_opt(
            "SELECT held_minor FROM daily_refund_totals WHERE merchant_id = $1 AND requested_by = $2 AND day = $3",
            &[&merchant.to_string(), &requested_by, &day],
        )?;
        let stored: i64 = row.map(|r| col(&r, 0)).transpose()?.unwrap_or(0);
        Ok(self.queued.daily_read(self.batch, key, stored))
    }

    fn add_daily_total(&mut self, merchant: MerchantId, requested_by: &str, day: &str, delta_minor: i64) -> Result<()> {
        *self.queued.daily.entry((merchant, requested_by.to_owned(), day.to_owned())).or_default() += delta_minor;
        Ok(())
    }

    fn refund_groups(
        &mut self,
        merchant: MerchantId,
        from: Timestamp,
        to: Timestamp,
        utc_offset_s: i64,
    ) -> Result<Vec<RefundGroup>> {
        self.no_refunds_queued()?;
        self.query(
            "SELECT (r.created_at + $4::BIGINT * 1000000) / 86400000000 AS day, r.reason, s.store_id, r.requested_by, r.status,
                    COUNT(*)::BIGINT, SUM(r.amount_minor)::BIGINT
               FROM refunds r JOIN sales s ON s.id = r.sale_id
              WHERE r.merchant_id = $1 AND r.created_at >= $2 AND r.created_at < $3
              GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5",
            &[&merchant.to_string(), &to_micros(from), &to_micros(to), &utc_offset_s],
        )?
        .iter()
        .map(|r| {
            Ok(RefundGroup {
                day: col(r, 0)?,
                reason: col(r, 1)?,
                store_id: col_id(r, 2, StoreId::parse)?,
                requested_by: col(r, 3)?,
                status: col(r, 4)?,
                count: col_narrow(r, 5)?,
                amount_minor: col(r, 6)?,
            })
        })
        .collect()
    }

    fn refund_durations(
        &mut self,
        merchant: MerchantId,
        from: Timestamp,
        to: Timestamp,
        limit: u32,
    ) -> Result<Vec<RefundDuration>> {
        self.no_refunds_queued()?;
        self.query(
            "SELECT (completed_at - created_at) / 1000000, (arrived_at - created_at) / 1000000 FROM refunds
              WHERE merchant_id = $1 AND created_at >= $2 AND created_at < $3 AND status = 'succeeded'
                AND completed_at IS NOT NULL
              ORDER BY 1 LIMIT $4",
            &[&merchant.to_string(), &to_micros(from), &to_micros(to), &i64::from(limit)],
        )?
        .iter()
        .map(|r| Ok(RefundDuration { to_completed_s: col(r, 0)?, to_arrived_s: col(r, 1)? }))
        .collect()
    }

    fn cashier_activity(
        &mut self,
        merchant: MerchantId,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<(StoreId, String, u64, u64)>> {
        self.cashier_activity_rows(merchant, from, to)
    }

    fn record_call(&mut self, c: &AcquirerCall) -> Result<()> {
        self.queued.calls.push(c.clone());
        Ok(())
    }

    fn calls_of(&mut self, refund: RefundId) -> Result<Vec<AcquirerCall>> {
        let rows = self.query(
            "SELECT attempt, stan, kind, processor, started_at, duration_ms, outcome, response_code, detail
             FROM acquirer_calls WHERE refund_id = $1 ORDER BY id",
            &[&refund.to_string()],
        )?;
        rows.iter()
            .map(|r| {
                Ok(AcquirerCall {
                    refund_id: refund,
                    attempt: col_narrow(r, 0)?,
                    stan: col_narrow(r, 1)?,
                    kind: col(r, 2)?,
                    processor: col(r, 3)?,
                    started_at: col_time(r, 4)?,
                    duration_ms: col(r, 5)?,
                    outcome: col(r, 6)?,
                    response_code: col(r, 7)?,
                    detail: col(r, 8)?,
                })
            })
            .chain(self.queued.calls_pending(self.batch, refund).into_iter().map(Ok))
            .collect()
    }

    fn expired_approvals(&mut self, now: Timestamp, limit: u32) -> Result<Vec<Refund>> {
        self.no_refunds_queued()?;
        let sql = format!(
            "SELECT {REFUND_COLUMNS}, {REFUND_ITEMS} FROM refunds WHERE status = 'requires_approval' AND approval_expires_at <= $1
             ORDER BY approval_expires_at LIMIT $2"
        );
        self.refunds_from(&sql, &[&to_micros(now), &i64::from(limit)])
    }
}

impl OutboxRepo for PgTx<'_> {
    fn enqueue(&mut self, job: &NewJob) -> Result<i64> {
        let now = to_micros(Timestamp::now());
        let r = self.query_one(
            "INSERT INTO outbox (merchant_id, kind, payload, state, attempts, run_after, created_at, updated_at)
             VALUES ($5, $1, $2, 'ready', 0, $3, $4, $4) RETURNING id",
            &[&job.kind, &job.payload, &to_micros(job.run_after), &now, &job.merchant_id.map(|m| m.to_string())],
        )?;
        col(&r, 0)
    }

    fn claim_jobs(&mut self, now: Timestamp, lease_until: Timestamp, limit: u32) -> Result<Vec<Job>> {
        // SKIP LOCKED: runners on other instances claiming at the same moment
        // take the next jobs instead of waiting for these or taking them twice
        let rows = self.query(
            "UPDATE outbox SET state = 'running', attempts = attempts + 1, lease_until = $2, updated_at = $1
             WHERE id IN (
                SELECT id FROM outbox
                WHERE state IN ('ready', 'running')
                  AND ((state = 'ready' AND run_after <= $1) OR (state = 'running' AND lease_until <= $1))
                ORDER BY id LIMIT $3
                FOR UPDATE SKIP LOCKED)
             RETURNING id, kind, payload, attempts",
            &[&to_micros(now), &to_micros(lease_until), &i64::from(limit)],
        )?;
        let mut jobs = rows
            .iter()
            .map(|r| Ok(Job { id: col(r, 0)?, kind: col(r, 1)?, payload: col(r, 2)?, attempts: col_narrow(r, 3)? }))
            .collect::<Result<Vec<_>>>()?;
        jobs.sort_by_key(|j| j.id);
        Ok(jobs)
    }

    fn complete_job(&mut self, id: i64, now: Timestamp) -> Result<()> {
        self.execute(
            "UPDATE outbox SET state = 'done', lease_until = NULL, updated_at = $2 WHERE id = $1",
            &[&id, &to_micros(now)],
        )?;
        Ok(())
    }

    fn reschedule_job(&mut self, id: i64, run_after: Timestamp, error: &str) -> Result<()> {
        self.execute(
            "UPDATE outbox SET state = 'ready', lease_until = NULL, run_after = $2, last_error = $3,
             updated_at = $2 WHERE id = $1",
            &[&id, &to_micros(run_after), &error],
        )?;
        Ok(())
    }

    fn bury_job(&mut self, id: i64, now: Timestamp, error: &str) -> Result<()> {
        self.execute(
            "UPDATE outbox SET state = 'dead', lease_until = NULL, last_error = $3, updated_at = $2 WHERE id = $1",
            &[&id, &to_micros(now), &error],
        )?;
        Ok(())
    }

    fn list_jobs(&mut self, merchant: Option<MerchantId>, state: &str, limit: u32) -> Result<Vec<JobRecord>> {
        let indexed = crate::repo::outbox_state_index_predicate(state);
        let rows = self.query(
            &format!(
                "SELECT id, kind, payload, state, attempts, run_after, last_error, created_at, updated_at, merchant_id
                 FROM outbox WHERE {indexed}state = $1 AND ($3::TEXT IS NULL OR merchant_id = $3)
                 ORDER BY id DESC LIMIT $2"
            ),
            &[&state, &i64::from(limit), &merchant.map(|m| m.to_string())],
        )?;
        rows.iter()
            .map(|r| {
                Ok(JobRecord {
                    id: col(r, 0)?,
                    merchant_id: col_opt_id(r, 9, MerchantId::parse)?,
                    kind: col(r, 1)?,
                    payload: col(r, 2)?,
                    state: col(r, 3)?,
                    attempts: col_narrow(r, 4)?,
                    run_after: col_time(r, 5)?,
                    last_error: col(r, 6)?,
                    created_at: col_time(r, 7)?,
                    updated_at: col_time(r, 8)?,
                })
            })
            .collect()
    }

    fn revive_job(&mut self, merchant: Option<MerchantId>, id: i64, now: Timestamp) -> Result<bool> {
        let changed = self.execute(
            "UPDATE outbox SET state = 'ready', attempts = 0, run_after = $2, updated_at = $2
             WHERE id = $1 AND state = 'dead' AND ($3::TEXT IS NULL OR merchant_id = $3)",
            &[&id, &to_micros(now), &merchant.map(|m| m.to_string())],
        )?;
        Ok(changed == 1)
    }

    fn unfinished_jobs(&mut self) -> Result<u64> {
        let r = self.query_one("SELECT COUNT(*) FROM outbox WHERE state IN ('ready', 'running')", &[])?;
        col_narrow(&r, 0)
    }
}

const FIND_KEY: &str = "SELECT fingerprint, status_code, body, created_at FROM idempotency_keys
                        WHERE merchant_id = $1 AND endpoint = $2 AND key = $3";

fn key_record(merchant: MerchantId, endpoint: &str, key: &str, row: &Row) -> Result<IdempotencyRecord> {
    Ok(IdempotencyRecord {
        merchant_id: merchant,
        endpoint: endpoint.to_owned(),
        key: key.to_owned(),
        fingerprint: col(row, 0)?,
        status_code: col_narrow(row, 1)?,
        body: col(row, 2)?,
        created_at: col_time(row, 3)?,
    })
}

impl IdempotencyRepo for PgTx<'_> {
    fn find_idempotency(
        &mut self,
        merchant: MerchantId,
        endpoint: &str,
        key: &str,
    ) -> Result<Option<IdempotencyRecord>> {
        if let Some(queued) = self.queued.idempotency_pending(self.batch, merchant, endpoint, key) {
            return Ok(Some(queued));
        }
        self.query_opt(FIND_KEY, &[&merchant.to_string(), &endpoint, &key])?
            .map(|row| key_record(merchant, endpoint, key, &row))
            .transpose()
    }

    fn insert_idempotency(&mut self, r: &IdempotencyRecord) -> Result<()> {
        // written with the batch's deferred writes, one statement for all
        self.queued.idempotency.push(r.clone());
        Ok(())
    }

    fn prune_idempotency(&mut self, older_than: Timestamp) -> Result<u64> {
        self.execute("DELETE FROM idempotency_keys WHERE created_at < $1", &[&to_micros(older_than)])
    }
}

fn audit_head_from_row(r: &Row) -> Result<(i64, String)> {
    Ok((col(r, 0)?, col(r, 1)?))
}

fn audit_event_from_row(r: &Row) -> Result<AuditEvent> {
    Ok(AuditEvent {
        merchant_id: col_id(r, 0, MerchantId::parse)?,
        seq: col(r, 1)?,
        at: col_time(r, 2)?,
        actor: col(r, 3)?,
        source: col(r, 4)?,
        action: col(r, 5)?,
        subject: col(r, 6)?,
        data: col(r, 7)?,
        prev_hash: col(r, 8)?,
        hash: col(r, 9)?,
    })
}

impl AuditRepo for PgTx<'_> {
    fn append_audit(&mut self, event: AuditEvent) -> Result<()> {
        self.queued.audit.push(event);
        Ok(())
    }

    fn audit_head(&mut self, merchant: MerchantId) -> Result<Option<(i64, String)>> {
        self.query_opt("SELECT seq, hash FROM audit_heads WHERE merchant_id = $1", &[&merchant.to_string()])?
            .map(|r| audit_head_from_row(&r))
            .transpose()
    }

    fn audit_events(&mut self, merchant: MerchantId, after_seq: i64, limit: u32) -> Result<Vec<AuditEvent>> {
        self.query(
            "SELECT merchant_id, seq, at, actor, source, action, subject, data, prev_hash, hash FROM audit_events
             WHERE merchant_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
            &[&merchant.to_string(), &after_seq, &i64::from(limit)],
        )?
        .iter()
        .map(audit_event_from_row)
        .collect()
    }

    fn audit_events_about(&mut self, merchant: MerchantId, subject: &str, limit: u32) -> Result<Vec<AuditEvent>> {
        self.query(
            "SELECT merchant_id, seq, at, actor, source, action, subject, data, prev_hash, hash FROM audit_events
             WHERE merchant_id = $1 AND subject = $2 ORDER BY seq LIMIT $3",
            &[&merchant.to_string(), &subject, &i64::from(limit)],
        )?
        .iter()
        .map(audit_event_from_row)
        .collect()
    }

    fn search_audit(&mut self, merchant: MerchantId, q: &AuditQuery) -> Result<Vec<AuditEvent>> {
        let mut f = Filtered::new(
            "SELECT merchant_id, seq, at, actor, source, action, subject, data, prev_hash, hash FROM audit_events
             WHERE merchant_id = $1"
                .to_owned(),
            merchant.to_string(),
        );
        if let Some(action) = &q.action {
            f.and("action = $?", action.clone());
        }
        if let Some(actor) = &q.actor {
            // a person acting through a key is recorded as `user:… via key:…`
            f.and("(actor = $? OR left(actor, length($?) + 5) = $? || ' via ')", actor.clone());
        }
        if let Some(subject) = &q.subject {
            f.and("subject = $?", subject.clone());
        }
        if let Some(from) = q.from {
            f.and("at >= $?", to_micros(from));
        }
        if let Some(to) = q.to {
            f.and("at < $?", to_micros(to));
        }
        if let Some(before) = q.before_seq {
            f.and("seq < $?", before);
        }
        f.params.push(Box::new(i64::from(q.limit)));
        f.sql.push_str(&format!(" ORDER BY seq DESC LIMIT ${}", f.params.len()));
        self.query(&f.sql, &f.params())?.iter().map(audit_event_from_row).collect()
    }
}

const ENDPOINT_COLUMNS: &str = "id, merchant_id, url, events, secret, created_at, disabled_at";
const DELIVERY_COLUMNS: &str =
    "id, endpoint_id, event_id, event_type, payload, attempt, at, status_code, duration_ms, error";

fn endpoint_from_row(r: &Row) -> Result<WebhookEndpoint> {
    Ok(WebhookEndpoint {
        id: col(r, 0)?,
        merchant_id: col_id(r, 1, MerchantId::parse)?,
        url: col(r, 2)?,
        events: col::<&str>(r, 3)?.split_whitespace().map(str::to_owned).collect(),
        secret: col(r, 4)?,
        created_at: col_time(r, 5)?,
        disabled_at: col_opt_time(r, 6)?,
    })
}

fn delivery_from_row(r: &Row) -> Result<WebhookDelivery> {
    Ok(WebhookDelivery {
        id: col(r, 0)?,
        endpoint_id: col(r, 1)?,
        event_id: col(r, 2)?,
        event_type: col(r, 3)?,
        payload: col(r, 4)?,
        attempt: col_narrow(r, 5)?,
        at: col_time(r, 6)?,
        status_code: col::<Option<i64>>(r, 7)?.map(u16::try_from).transpose().map_err(StoreError::corrupt)?,
        duration_ms: col(r, 8)?,
        error: col(r, 9)?,
    })
}

impl WebhookRepo for PgTx<'_> {
    fn insert_endpoint(&mut self, e: &WebhookEndpoint) -> Result<()> {
        self.queued.endpoints_changed(e.merchant_id);
        self.execute(
            &format!("INSERT INTO webhook_endpoints ({ENDPOINT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"),
            &[
                &e.id,
                &e.merchant_id.to_string(),
                &e.url,
                &e.events.join(" "),
                &e.secret,
                &to_micros(e.created_at),
                &opt_micros(e.disabled_at),
            ],
        )?;
        Ok(())
    }

    fn endpoints_of(&mut self, merchant: MerchantId) -> Result<Vec<WebhookEndpoint>> {
        if let Some(endpoints) = self.queued.endpoints_read(self.batch, merchant) {
            return Ok(endpoints);
        }
        let sql = format!("SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE merchant_id = $1 ORDER BY id");
        let endpoints =
            self.query(&sql, &[&merchant.to_string()])?.iter().map(endpoint_from_row).collect::<Result<Vec<_>>>()?;
        self.queued.note_endpoints(merchant, &endpoints);
        Ok(endpoints)
    }

    fn find_endpoint(&mut self, id: &str) -> Result<Option<WebhookEndpoint>> {
        let sql = format!("SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = $1");
        self.query_opt(&sql, &[&id])?.as_ref().map(endpoint_from_row).transpose()
    }

    fn record_delivery(&mut self, d: &WebhookDelivery) -> Result<i64> {
        let row = self.query_one(
            "INSERT INTO webhook_deliveries (endpoint_id, event_id, event_type, payload, attempt, at, status_code,
             duration_ms, error) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
            &[
                &d.endpoint_id,
                &d.event_id,
                &d.event_type,
                &d.payload,
                &i64::from(d.attempt),
                &to_micros(d.at),
                &d.status_code.map(i64::from),
                &d.duration_ms,
                &d.error,
            ],
        )?;
        col(&row, 0)
    }

    fn deliveries_of(&mut self, endpoint: &str, limit: u32) -> Result<Vec<WebhookDelivery>> {
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE endpoint_id = $1 ORDER BY id DESC LIMIT $2"
        );
        self.query(&sql, &[&endpoint, &i64::from(limit)])?.iter().map(delivery_from_row).collect()
    }

    fn find_delivery(&mut self, id: i64) -> Result<Option<WebhookDelivery>> {
        let sql = format!("SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE id = $1");
        self.query_opt(&sql, &[&id])?.as_ref().map(delivery_from_row).transpose()
    }
}

const DISPUTE_COLUMNS: &str = "id, merchant_id, sale_id, case_ref, network, reason_code, category, stage, status, \
    amount_minor, currency, due_by, note, opened_at, updated_at";

const DISPUTE_COLUMN_COUNT: usize = 15;

fn dispute_from_row(r: &Row) -> Result<DisputeRecord> {
    Ok(DisputeRecord {
        id: col_id(r, 0, DisputeId::parse)?,
        merchant_id: col_id(r, 1, MerchantId::parse)?,
        sale_id: col_id(r, 2, SaleId::parse)?,
        case_ref: col(r, 3)?,
        network: col(r, 4)?,
        reason_code: col(r, 5)?,
        category: col(r, 6)?,
        stage: col(r, 7)?,
        status: col(r, 8)?,
        amount: Money::new(col(r, 9)?, col_currency(r, 10)?),
        due_by: col_time(r, 11)?,
        note: col(r, 12)?,
        opened_at: col_time(r, 13)?,
        updated_at: col_time(r, 14)?,
    })
}

impl DisputeRepo for PgTx<'_> {
    fn insert_dispute(&mut self, d: &DisputeRecord) -> Result<()> {
        self.execute(
            &format!(
                "INSERT INTO disputes ({DISPUTE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
            ),
            &[
                &d.id.to_string(),
                &d.merchant_id.to_string(),
                &d.sale_id.to_string(),
                &d.case_ref,
                &d.network,
                &d.reason_code,
                &d.category,
                &d.stage,
                &d.status,
                &d.amount.minor,
                &d.amount.currency.code(),
                &to_micros(d.due_by),
                &d.note,
                &to_micros(d.opened_at),
                &to_micros(d.updated_at),
            ],
        )?;
        Ok(())
    }

    fn update_dispute(&mut self, d: &DisputeRecord) -> Result<()> {
        self.execute(
            "UPDATE disputes SET stage = $2, status = $3, category = $4, note = $5, updated_at = $6 WHERE id = $1",
            &[&d.id.to_string(), &d.stage, &d.status, &d.category, &d.note, &to_micros(d.updated_at)],
        )?;
        Ok(())
    }

    fn find_dispute(&mut self, merchant: MerchantId, id: DisputeId) -> Result<Option<DisputeRecord>> {
        let sql = format!("SELECT {DISPUTE_COLUMNS} FROM disputes WHERE merchant_id = $1 AND id = $2");
        self.query_opt(&sql, &[&merchant.to_string(), &id.to_string()])?.as_ref().map(dispute_from_row).transpose()
    }

    fn find_dispute_by_case(&mut self, merchant: MerchantId, case_ref: &str) -> Result<Option<DisputeRecord>> {
        let sql = format!("SELECT {DISPUTE_COLUMNS} FROM disputes WHERE merchant_id = $1 AND case_ref = $2");
        self.query_opt(&sql, &[&merchant.to_string(), &case_ref])?.as_ref().map(dispute_from_row).transpose()
    }

    fn disputes_of_sale(&mut self, merchant: MerchantId, sale: SaleId) -> Result<Vec<DisputeRecord>> {
        let sql = format!("SELECT {DISPUTE_COLUMNS} FROM disputes WHERE merchant_id = $1 AND sale_id = $2 ORDER BY id");
        self.query(&sql, &[&merchant.to_string(), &sale.to_string()])?.iter().map(dispute_from_row).collect()
    }

    fn overdue_disputes(&mut self, now: Timestamp, limit: u32) -> Result<Vec<DisputeRecord>> {
        let sql = format!(
            "SELECT {DISPUTE_COLUMNS} FROM disputes WHERE status = 'needs_response' AND due_by <= $1 ORDER BY due_by LIMIT $2"
        );
        self.query(&sql, &[&to_micros(now), &i64::from(limit)])?.iter().map(dispute_from_row).collect()
    }

    fn disputes_due_without_notice(
        &mut self,
        now: Timestamp,
        until: Timestamp,
        kind: &str,
        limit: u32,
    ) -> Result<Vec<DisputeRecord>> {
        let sql = format!(
            "SELECT {DISPUTE_COLUMNS} FROM disputes d WHERE status = 'needs_response' AND due_by > $1 AND due_by <= $2
             AND NOT EXISTS (SELECT 1 FROM notices_sent n
                             WHERE n.merchant_id = d.merchant_id AND n.subject = d.id AND n.kind = $3)
             ORDER BY due_by LIMIT $4"
        );
        self.query(&sql, &[&to_micros(now), &to_micros(until), &kind, &i64::from(limit)])?
            .iter()
            .map(dispute_from_row)
            .collect()
    }

    fn insert_evidence(&mut self, e: &EvidenceRecord, bytes: Option<&[u8]>) -> Result<()> {
        let file = e.file.as_ref();
        self.execute(
            &format!(
                "INSERT INTO dispute_evidence ({EVIDENCE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
            ),
            &[
                &e.id.to_string(),
                &e.merchant_id.to_string(),
                &e.dispute_id.to_string(),
                &e.kind,
                &e.note,
                &file.map(|f| f.name.clone()),
                &file.map(|f| f.content_type.clone()),
                &file.map(|f| f.size_bytes),
                &file.map(|f| f.sha256.clone()),
                &e.added_by,
                &to_micros(e.added_at),
            ],
        )?;
        if let Some(bytes) = bytes {
            self.execute(
                "INSERT INTO dispute_evidence_files (evidence_id, bytes) VALUES ($1, $2)",
                &[&e.id.to_string(), &bytes],
            )?;
        }
        Ok(())
    }

    fn evidence_of(&mut self, merchant: MerchantId, dispute: DisputeId) -> Result<Vec<EvidenceRecord>> {
        let sql = format!(
            "SELECT {EVIDENCE_COLUMNS} FROM dispute_evidence WHERE merchant_id = $1 AND dispute_id = $2 ORDER BY id"
        );
        self.query(&sql, &[&merchant.to_string(), &dispute.to_string()])?.iter().map(evidence_from_row).collect()
    }

    fn evidence_with_file(
        &mut self,
        merchant: MerchantId,
        dispute: DisputeId,
        id: EvidenceId,
    ) -> Result<Option<(EvidenceRecord, Option<Vec<u8>>)>> {
        let sql = format!(
            "SELECT {EVIDENCE_COLUMNS} FROM dispute_evidence WHERE merchant_id = $1 AND dispute_id = $2 AND id = $3"
        );
        let Some(row) = self.query_opt(&sql, &[&merchant.to_string(), &dispute.to_string(), &id.to_string()])? else {
            return Ok(None);
        };
        let record = evidence_from_row(&row)?;
        let bytes = self
            .query_opt("SELECT bytes FROM dispute_evidence_files WHERE evidence_id = $1", &[&id.to_string()])?
            .map(|r| col::<Vec<u8>>(&r, 0))
            .transpose()?;
        Ok(Some((record, bytes)))
    }

    fn dispute_stats(&mut self, merchant: MerchantId, from: Timestamp, to: Timestamp) -> Result<(u64, i64)> {
        let r = self.query_one(
            "SELECT COUNT(*)::BIGINT, COALESCE(SUM(amount_minor), 0)::BIGINT FROM disputes
             WHERE merchant_id = $1 AND stage <> 'retrieval_request' AND opened_at >= $2 AND opened_at < $3",
            &[&merchant.to_string(), &to_micros(from), &to_micros(to)],
        )?;
        Ok((col_narrow(&r, 0)?, col(&r, 1)?))
    }

    fn sale_stats(
        &mut self,
        merchant: MerchantId,
        from: Timestamp,
        to: Timestamp,
        cards_only: bool,
    ) -> Result<(u64, i64)> {
        let r = self.query_one(
            "SELECT COUNT(*)::BIGINT, COALESCE(SUM(amount_minor), 0)::BIGINT FROM sales
             WHERE merchant_id = $1 AND captured_at >= $2 AND captured_at < $3 AND (NOT $4 OR method = 'card')",
            &[&merchant.to_string(), &to_micros(from), &to_micros(to), &cards_only],
        )?;
        Ok((col_narrow(&r, 0)?, col(&r, 1)?))
    }

    fn list_disputes(
        &mut self,
        merchant: MerchantId,
        starting_after: Option<DisputeId>,
        limit: u32,
    ) -> Result<Vec<DisputeRecord>> {
        let sql = format!(
            "SELECT {DISPUTE_COLUMNS} FROM disputes WHERE merchant_id = $1 AND ($2::TEXT IS NULL OR id < $2)
             ORDER BY id DESC LIMIT $3"
        );
        self.query(&sql, &[&merchant.to_string(), &starting_after.map(|d| d.to_string()), &i64::from(limit)])?
            .iter()
            .map(dispute_from_row)
            .collect()
    }
}

const EVIDENCE_COLUMNS: &str =
    "id, merchant_id, dispute_id, kind, note, file_name, content_type, size_bytes, sha256, added_by, added_at";

fn evidence_from_row(r: &Row) -> Result<EvidenceRecord> {
    let id: String = col(r, 0)?;
    let file = match (col(r, 5)?, col(r, 6)?, col(r, 7)?, col(r, 8)?) {
        (Some(name), Some(content_type), Some(size_bytes), Some(sha256)) => {
            Some(EvidenceFile { name, content_type, size_bytes, sha256 })
        }
        (None, None, None, None) => None,
        _ => return Err(StoreError::corrupt(format!("evidence {id} has half a file"))),
    };
    Ok(EvidenceRecord {
        id: EvidenceId::parse(&id).map_err(StoreError::corrupt)?,
        merchant_id: col_id(r, 1, MerchantId::parse)?,
        dispute_id: col_id(r, 2, DisputeId::parse)?,
        kind: col(r, 3)?,
        note: col(r, 4)?,
        file,
        added_by: col(r, 9)?,
        added_at: col_time(r, 10)?,
    })
}

impl NoticeRepo for PgTx<'_> {
    fn claim_notice(&mut self, merchant: MerchantId, subject: &str, kind: &str, at: Timestamp) -> Result<bool> {
        // a second instance inserting the same row waits for the first to
        // commit, then inserts nothing
        let n = self.execute(
            "INSERT INTO notices_sent (merchant_id, subject, kind, sent_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT DO NOTHING",
            &[&merchant.to_string(), &subject, &kind, &to_micros(at)],
        )?;
        Ok(n == 1)
    }
}

const CORRECTION_COLUMNS: &str = "id, merchant_id, store_id, sale_id, kind, evidence, cause, responsible_party, status, \
    refund_id, resolution_note, opened_by, summary_zh, summary_en, opened_at, updated_at";

fn correction_from_row(r: &Row) -> Result<CorrectionRecord> {
    Ok(CorrectionRecord {
        id: col_id(r, 0, CorrectionId::parse)?,
        merchant_id: col_id(r, 1, MerchantId::parse)?,
        store_id: col_id(r, 2, StoreId::parse)?,
        sale_id: col_id(r, 3, SaleId::parse)?,
        kind: col(r, 4)?,
        evidence: col(r, 5)?,
        cause: col(r, 6)?,
        responsible_party: col(r, 7)?,
        status: col(r, 8)?,
        refund_id: col_opt_id(r, 9, RefundId::parse)?,
        resolution_note: col(r, 10)?,
        opened_by: col(r, 11)?,
        summary_zh: col(r, 12)?,
        summary_en: col(r, 13)?,
        opened_at: col_time(r, 14)?,
        updated_at: col_time(r, 15)?,
    })
}

impl PgTx<'_> {
    pub(crate) fn cashier_activity_rows(
        &mut self,
        merchant: MerchantId,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<(StoreId, String, u64, u64)>> {
        self.no_refunds_queued()?;
        self.query(
            "SELECT store_id, who, SUM(sales)::BIGINT, SUM(refunds)::BIGINT FROM (
                 SELECT store_id, cashier AS who, 1 AS sales, 0 AS refunds FROM sales
                  WHERE merchant_id = $1 AND captured_at >= $2 AND captured_at < $3 AND cashier IS NOT NULL
                 UNION ALL
                 SELECT s.store_id, CASE WHEN r.requested_by LIKE 'user:%' THEN substr(r.requested_by, 6) ELSE r.requested_by END,
                        0, 1
                   FROM refunds r JOIN sales s ON s.id = r.sale_id
                  WHERE r.merchant_id = $1 AND r.created_at >= $2 AND r.created_at < $3
             ) activity GROUP BY store_id, who ORDER BY store_id, who",
            &[&merchant.to_string(), &to_micros(from), &to_micros(to)],
        )?
        .iter()
        .map(|r| Ok((col_id(r, 0, StoreId::parse)?, col(r, 1)?, col_narrow(r, 2)?, col_narrow(r, 3)?)))
        .collect()
    }
}

impl CorrectionRepo for PgTx<'_> {
    fn insert_sale_signals(
        &mut self,
        merchant: MerchantId,
        sale: SaleId,
        card_fingerprint: Option<&str>,
        order_ref: Option<&str>,
        captured_at: Timestamp,
    ) -> Result<()> {
        self.execute(
            "INSERT INTO sale_signals (sale_id, merchant_id, card_fingerprint, order_ref, captured_at)
             VALUES ($1, $2, $3, $4, $5)",
            &[&sale.to_string(), &merchant.to_string(), &card_fingerprint, &order_ref, &to_micros(captured_at)],
        )?;
        Ok(())
    }

    fn sale_signals(&mut self, merchant: MerchantId, sale: SaleId) -> Result<Option<(Option<String>, Option<String>)>> {
        self.query_opt(
            "SELECT card_fingerprint, order_ref FROM sale_signals WHERE merchant_id = $1 AND sale_id = $2",
            &[&merchant.to_string(), &sale.to_string()],
        )?
        .map(|r| Ok((col(&r, 0)?, col(&r, 1)?)))
        .transpose()
    }

    fn sales_with_fingerprint(
        &mut self,
        merchant: MerchantId,
        fingerprint: &str,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<Sale>> {
        let sql = format!(
            "SELECT {SALE_COLUMNS}, {SALE_ITEMS} FROM sales WHERE merchant_id = $1 AND id IN (
                 SELECT sale_id FROM sale_signals WHERE merchant_id = $1 AND card_fingerprint = $2
                 AND captured_at >= $3 AND captured_at <= $4 ORDER BY captured_at LIMIT 100)
             ORDER BY captured_at, id"
        );
        self.sales_from(&sql, &[&merchant.to_string(), &fingerprint, &to_micros(from), &to_micros(to)])
    }

    fn store_sale_amounts(
        &mut self,
        merchant: MerchantId,
        store: StoreId,
        before: SaleId,
        limit: u32,
    ) -> Result<Vec<i64>> {
        self.query(
            "SELECT amount_minor FROM sales WHERE merchant_id = $1 AND store_id = $2 AND id < $3
             ORDER BY id DESC LIMIT $4",
            &[&merchant.to_string(), &store.to_string(), &before.to_string(), &i64::from(limit)],
        )?
        .iter()
        .map(|r| col(r, 0))
        .collect()
    }

    fn insert_correction(&mut self, c: &CorrectionRecord) -> Result<bool> {
        let n = self.execute(
            &format!(
                "INSERT INTO corrections ({CORRECTION_COLUMNS}) VALUES
                 ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) ON CONFLICT DO NOTHING"
            ),
            &[
                &c.id.to_string(),
                &c.merchant_id.to_string(),
                &c.store_id.to_string(),
                &c.sale_id.to_string(),
                &c.kind,
                &c.evidence,
                &c.cause,
                &c.responsible_party,
                &c.status,
                &c.refund_id.map(|r| r.to_string()),
                &c.resolution_note,
                &c.opened_by,
                &c.summary_zh,
                &c.summary_en,
                &to_micros(c.opened_at),
                &to_micros(c.updated_at),
            ],
        )?;
        Ok(n == 1)
    }

    fn update_correction(&mut self, c: &CorrectionRecord) -> Result<()> {
        self.execute(
            "UPDATE corrections SET cause = $2, responsible_party = $3, status = $4, refund_id = $5,
             resolution_note = $6, updated_at = $7 WHERE id = $1",
            &[
                &c.id.to_string(),
                &c.cause,
                &c.responsible_party,
                &c.status,
                &c.refund_id.map(|r| r.to_string()),
                &c.resolution_note,
                &to_micros(c.updated_at),
            ],
        )?;
        Ok(())
    }

    fn find_correction(&mut self, merchant: MerchantId, id: CorrectionId) -> Result<Option<CorrectionRecord>> {
        let sql = format!("SELECT {CORRECTION_COLUMNS} FROM corrections WHERE merchant_id = $1 AND id = $2");
        self.query_opt(&sql, &[&merchant.to_string(), &id.to_string()])?.as_ref().map(correction_from_row).transpose()
    }

    fn find_correction_of_sale(
        &mut self,
        merchant: MerchantId,
        sale: SaleId,
        kind: &str,
    ) -> Result<Option<CorrectionRecord>> {
        let sql = format!(
            "SELECT {CORRECTION_COLUMNS} FROM corrections WHERE merchant_id = $1 AND sale_id = $2 AND kind = $3"
        );
        self.query_opt(&sql, &[&merchant.to_string(), &sale.to_string(), &kind])?
            .as_ref()
            .map(correction_from_row)
            .transpose()
    }

    fn list_corrections(
        &mut self,
        merchant: MerchantId,
        status: Option<&str>,
        starting_after: Option<CorrectionId>,
        limit: u32,
    ) -> Result<Vec<CorrectionRecord>> {
        let sql = format!(
            "SELECT {CORRECTION_COLUMNS} FROM corrections WHERE merchant_id = $1 AND ($2::TEXT IS NULL OR status = $2)
             AND ($3::TEXT IS NULL OR id < $3) ORDER BY id DESC LIMIT $4"
        );
        self.query(&sql, &[&merchant.to_string(), &status, &starting_after.map(|c| c.to_string()), &i64::from(limit)])?
            .iter()
            .map(correction_from_row)
            .collect()
    }
}
