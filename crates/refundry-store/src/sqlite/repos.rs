//! The storage interface on a SQLite connection inside a transaction.

use std::ops::RangeInclusive;

use jiff::Timestamp;
use refundry_core::card::{First6, Last4};
use refundry_core::ids::{
    CorrectionId, DisputeId, EvidenceId, KeyId, MerchantId, RefundId, SaleId, SessionId, StoreId, UserId,
};
use refundry_core::money::{Currency, Money};
use refundry_core::refund::{ItemQuantity, PlannedItem, RefundReason, RefundStatus, RefundType};
use refundry_core::sale::{CardBrand, EntryMode, LineItem, PaymentMethod, Wallet};
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::StoreError;
use crate::deferred::Deferred;
use crate::model::*;
use crate::repo::*;
use crate::time::{from_micros, to_micros};

pub struct SqliteTx<'c> {
    conn: &'c Connection,
    /// This write job's queue of deferred writes (see [`crate::deferred`]).
    queued: Deferred,
    /// What earlier jobs of the same batch queued.
    batch: Option<&'c Deferred>,
}

impl<'c> SqliteTx<'c> {
    pub fn new(conn: &'c Connection) -> Self {
        SqliteTx { conn, queued: Deferred::default(), batch: None }
    }

    /// A write job's transaction, after the batch's earlier jobs.
    pub(crate) fn in_batch(conn: &'c Connection, batch: &'c Deferred) -> Self {
        SqliteTx { conn, queued: Deferred::default(), batch: Some(batch) }
    }

    /// The writes this job deferred, for the batch's commit.
    pub(crate) fn take_deferred(&mut self) -> Deferred {
        std::mem::take(&mut self.queued)
    }

    /// Applies a batch's deferred writes: daily totals, then the audit
    /// events linked into their chains with the new heads. The single
    /// writer orders every append.
    pub(crate) fn apply_deferred(&mut self, deferred: Deferred) -> Result<()> {
        let mut call = self.conn.prepare_cached(
            "INSERT INTO acquirer_calls (refund_id, attempt, stan, kind, processor, started_at, duration_ms, outcome,
             response_code, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )?;
        for c in &deferred.calls {
            call.execute(params![
                c.refund_id.to_string(),
                c.attempt,
                c.stan,
                c.kind,
                c.processor,
                to_micros(c.started_at),
                c.duration_ms,
                c.outcome,
                c.response_code,
                c.detail
            ])?;
        }
        let mut add = self.conn.prepare_cached(
            "INSERT INTO daily_refund_totals (merchant_id, requested_by, day, held_minor) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (merchant_id, requested_by, day) DO UPDATE SET held_minor = held_minor + excluded.held_minor",
        )?;
        for ((merchant, by, day), delta) in &deferred.daily {
            add.execute(params![merchant.to_string(), by, day, delta])?;
        }
        let mut events = deferred.audit;
        if events.is_empty() {
            return Ok(());
        }
        let mut heads = std::collections::HashMap::new();
        for merchant in crate::deferred::merchants_of(&events) {
            if let Some(head) = self.audit_head(merchant)? {
                heads.insert(merchant, head);
            }
        }
        let new_heads = crate::deferred::link(&mut events, &heads)?;
        let mut insert = self.conn.prepare_cached(
            "INSERT INTO audit_events (merchant_id, seq, at, actor, source, action, subject, data, prev_hash, hash)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )?;
        for e in &events {
            insert.execute(params![
                e.merchant_id.to_string(),
                e.seq,
                to_micros(e.at),
                e.actor,
                e.source,
                e.action,
                e.subject,
                e.data,
                e.prev_hash,
                e.hash
            ])?;
        }
        let mut head = self.conn.prepare_cached(
            "INSERT INTO audit_heads (merchant_id, seq, hash) VALUES (?1, ?2, ?3)
             ON CONFLICT (merchant_id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
        )?;
        for (merchant, seq, hash) in new_heads {
            head.execute(params![merchant.to_string(), seq, hash])?;
        }
        Ok(())
    }

    /// Direct SQL, for tests that tamper with stored rows on purpose.
    pub fn connection(&self) -> &Connection {
        self.conn
    }
}

fn parse_id<T>(text: String, parse: fn(&str) -> std::result::Result<T, refundry_core::ids::IdError>) -> Result<T> {
    parse(&text).map_err(StoreError::corrupt)
}

fn parse_wire<T>(text: &str, parse: fn(&str) -> Option<T>, what: &str) -> Result<T> {
    parse(text).ok_or_else(|| StoreError::corrupt(format!("unknown {what} {text:?}")))
}

fn opt_micros(t: Option<Timestamp>) -> Option<i64> {
    t.map(to_micros)
}

fn opt_from_micros(us: Option<i64>) -> Result<Option<Timestamp>> {
    us.map(from_micros).transpose()
}

impl MerchantRepo for SqliteTx<'_> {
    fn insert_merchant(&mut self, m: &Merchant) -> Result<()> {
        self.conn
            .prepare_cached("INSERT INTO merchants (id, name, created_at) VALUES (?1, ?2, ?3)")?
            .execute(params![m.id.to_string(), m.name, to_micros(m.created_at)])?;
        Ok(())
    }

    fn first_merchant(&mut self) -> Result<Option<Merchant>> {
        Ok(self.merchants("SELECT id, name, created_at FROM merchants ORDER BY id LIMIT 1")?.pop())
    }

    fn all_merchants(&mut self) -> Result<Vec<Merchant>> {
        self.merchants("SELECT id, name, created_at FROM merchants ORDER BY id")
    }

    fn insert_store(&mut self, s: &StoreRecord) -> Result<()> {
        self.conn
            .prepare_cached("INSERT INTO stores (id, merchant_id, name, created_at) VALUES (?1, ?2, ?3, ?4)")?
            .execute(params![s.id.to_string(), s.merchant_id.to_string(), s.name, to_micros(s.created_at)])?;
        Ok(())
    }

    fn find_store(&mut self, merchant: MerchantId, id: StoreId) -> Result<Option<StoreRecord>> {
        let row = self
            .conn
            .prepare_cached("SELECT id, name, created_at FROM stores WHERE merchant_id = ?1 AND id = ?2")?
            .query_row(params![merchant.to_string(), id.to_string()], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?))
            })
            .optional()?;
        row.map(|(id, name, at)| {
            Ok(StoreRecord {
                id: parse_id(id, StoreId::parse)?,
                merchant_id: merchant,
                name,
                created_at: from_micros(at)?,
            })
        })
        .transpose()
    }

    fn stores_of(&mut self, merchant: MerchantId) -> Result<Vec<StoreRecord>> {
        let mut stmt =
            self.conn.prepare_cached("SELECT id, name, created_at FROM stores WHERE merchant_id = ?1 ORDER BY id")?;
        let rows = stmt.query_map([merchant.to_string()], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?))
        })?;
        rows.map(|row| {
            let (id, name, at) = row?;
            Ok(StoreRecord {
                id: parse_id(id, StoreId::parse)?,
                merchant_id: merchant,
                name,
                created_at: from_micros(at)?,
            })
        })
        .collect()
    }

    fn insert_terminal(&mut self, t: &Terminal) -> Result<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO terminals (merchant_id, terminal_id, store_id, created_at) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![
                t.merchant_id.to_string(),
                t.terminal_id,
                t.store_id.to_string(),
                to_micros(t.created_at)
            ])?;
        Ok(())
    }

    fn reserve_stans(&mut self, merchant: MerchantId, terminal_id: &str, count: u32) -> Result<RangeInclusive<u32>> {
        let count = crate::repo::stan_count(count);
        let last: i64 = self
            .conn
            .prepare_cached(crate::repo::reserve_stans_sql!("?1", "?2", "?3"))?
            .query_row(params![merchant.to_string(), terminal_id, count], |r| r.get(0))?;
        crate::repo::stan_run(last, count)
    }

    fn find_terminal(&mut self, merchant: MerchantId, terminal_id: &str) -> Result<Option<Terminal>> {
        let row = self
            .conn
            .prepare_cached("SELECT store_id, created_at FROM terminals WHERE merchant_id = ?1 AND terminal_id = ?2")?
            .query_row(params![merchant.to_string(), terminal_id], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
            })
            .optional()?;
        row.map(|(store, at)| {
            Ok(Terminal {
                merchant_id: merchant,
                terminal_id: terminal_id.to_owned(),
                store_id: parse_id(store, StoreId::parse)?,
                created_at: from_micros(at)?,
            })
        })
        .transpose()
    }
}

impl KeyRepo for SqliteTx<'_> {
    fn keys_of(&mut self, merchant: MerchantId) -> Result<Vec<ApiKeyRecord>> {
        let ids: Vec<String> = self
            .conn
            .prepare_cached("SELECT id FROM api_keys WHERE merchant_id = ?1 ORDER BY id")?
            .query_map([merchant.to_string()], |r| r.get(0))?
            .collect::<std::result::Result<_, _>>()?;
        // a merchant has a handful of keys: one read each keeps one row mapping
        let mut keys = Vec::with_capacity(ids.len());
        for id in ids {
            keys.extend(self.find_key(parse_id(id, KeyId::parse)?)?);
        }
        Ok(keys)
    }

    fn insert_key(&mut self, k: &ApiKeyRecord) -> Result<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO api_keys (id, merchant_id, name, secret_sha256, scopes, store_id, terminal_id, created_at, revoked_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?
            .execute(params![
                k.id.to_string(),
                k.merchant_id.to_string(),
                k.name,
                k.secret_sha256.as_slice(),
                k.scopes.join(" "),
                k.store_id.map(|s| s.to_string()),
                k.terminal_id,
                to_micros(k.created_at),
                opt_micros(k.revoked_at)
            ])?;
        Ok(())
    }

    fn find_key(&mut self, id: KeyId) -> Result<Option<ApiKeyRecord>> {
        let row = self
            .conn
            .prepare_cached(
                "SELECT merchant_id, name, secret_sha256, scopes, created_at, revoked_at, store_id, terminal_id
                 FROM api_keys WHERE id = ?1",
            )?
            .query_row([id.to_string()], |r| {
                Ok((
                    (r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, Vec<u8>>(2)?, r.get::<_, String>(3)?),
                    (r.get::<_, i64>(4)?, r.get::<_, Option<i64>>(5)?),
                    (r.get::<_, Option<String>>(6)?, r.get::<_, Option<String>>(7)?),
                ))
            })
            .optional()?;
        row.map(|((merchant, name, hash, scopes), (at, revoked), (store, terminal_id))| {
            Ok(ApiKeyRecord {
                id,
                merchant_id: parse_id(merchant, MerchantId::parse)?,
                name,
                secret_sha256: hash.try_into().map_err(|_| StoreError::corrupt("key hash length"))?,
                scopes: scopes.split_whitespace().map(str::to_owned).collect(),
                store_id: store.map(|s| parse_id(s, StoreId::parse)).transpose()?,
                terminal_id,
                created_at: from_micros(at)?,
                revoked_at: opt_from_micros(revoked)?,
            })
        })
        .transpose()
    }
}

const USER_COLUMNS: &str = "id, merchant_id, username, display_name, role, password_hash, store_id, failed_logins, \
    locked_until, created_at, disabled_at";

fn read_user(r: &Row<'_>) -> rusqlite::Result<UserRow> {
    Ok(UserRow {
        id: r.get(0)?,
        merchant_id: r.get(1)?,
        username: r.get(2)?,
        display_name: r.get(3)?,
        role: r.get(4)?,
        password_hash: r.get(5)?,
        store_id: r.get(6)?,
        failed_logins: r.get(7)?,
        locked_until: r.get(8)?,
        created_at: r.get(9)?,
        disabled_at: r.get(10)?,
    })
}

struct UserRow {
    id: String,
    merchant_id: String,
    username: String,
    display_name: String,
    role: String,
    password_hash: String,
    store_id: Option<String>,
    failed_logins: u32,
    locked_until: Option<i64>,
    created_at: i64,
    disabled_at: Option<i64>,
}

impl UserRow {
    fn into_user(self) -> Result<User> {
        Ok(User {
            id: parse_id(self.id, UserId::parse)?,
            merchant_id: parse_id(self.merchant_id, MerchantId::parse)?,
            username: self.username,
            display_name: self.display_name,
            role: self.role,
            password_hash: self.password_hash,
            store_id: self.store_id.map(|s| parse_id(s, StoreId::parse)).transpose()?,
            failed_logins: self.failed_logins,
            locked_until: opt_from_micros(self.locked_until)?,
            created_at: from_micros(self.created_at)?,
            disabled_at: opt_from_micros(self.disabled_at)?,
        })
    }
}

impl SqliteTx<'_> {
    fn users_from(&self, sql: &str, params: &[Value]) -> Result<Vec<User>> {
        let mut stmt = self.conn.prepare_cached(sql)?;
        let rows = stmt.query_map(rusqlite::params_from_iter(params.iter()), read_user)?;
        rows.map(|row| row?.into_user()).collect()
    }
}

impl UserRepo for SqliteTx<'_> {
    fn insert_user(&mut self, u: &User) -> Result<()> {
        self.conn
            .prepare_cached(&format!(
                "INSERT INTO users ({USER_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
            ))?
            .execute(params![
                u.id.to_string(),
                u.merchant_id.to_string(),
                u.username,
                u.display_name,
                u.role,
                u.password_hash,
                u.store_id.map(|s| s.to_string()),
                u.failed_logins,
                opt_micros(u.locked_until),
                to_micros(u.created_at),
                opt_micros(u.disabled_at),
            ])?;
        Ok(())
    }

    fn update_user(&mut self, u: &User) -> Result<()> {
        let changed = self
            .conn
            .prepare_cached(
                "UPDATE users SET display_name = ?2, role = ?3, password_hash = ?4, store_id = ?5,
                 failed_logins = ?6, locked_until = ?7, disabled_at = ?8 WHERE id = ?1",
            )?
            .execute(params![
                u.id.to_string(),
                u.display_name,
                u.role,
                u.password_hash,
                u.store_id.map(|s| s.to_string()),
                u.failed_logins,
                opt_micros(u.locked_until),
                opt_micros(u.disabled_at),
            ])?;
        if changed == 1 { Ok(()) } else { Err(StoreError::corrupt(format!("user {} is missing", u.id))) }
    }

    fn find_user(&mut self, id: UserId) -> Result<Option<User>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?1");
        Ok(self.users_from(&sql, &[Value::Text(id.to_string())])?.pop())
    }

    fn find_user_by_username(&mut self, username: &str) -> Result<Option<User>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE username = ?1");
        Ok(self.users_from(&sql, &[Value::Text(username.to_owned())])?.pop())
    }

    fn users_of(&mut self, merchant: MerchantId) -> Result<Vec<User>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE merchant_id = ?1 ORDER BY username");
        self.users_from(&sql, &[Value::Text(merchant.to_string())])
    }
}

impl SessionRepo for SqliteTx<'_> {
    fn insert_session(&mut self, s: &Session) -> Result<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO sessions (id, user_id, secret_sha256, created_at, expires_at, revoked_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                s.id.to_string(),
                s.user_id.to_string(),
                s.secret_sha256.as_slice(),
                to_micros(s.created_at),
                to_micros(s.expires_at),
                opt_micros(s.revoked_at),
            ])?;
        Ok(())
    }

    fn find_session(&mut self, id: SessionId) -> Result<Option<Session>> {
        let row = self
            .conn
            .prepare_cached(
                "SELECT user_id, secret_sha256, created_at, expires_at, revoked_at FROM sessions WHERE id = ?1",
            )?
            .query_row([id.to_string()], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, Vec<u8>>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, Option<i64>>(4)?,
                ))
            })
            .optional()?;
        row.map(|(user, hash, created, expires, revoked)| {
            Ok(Session {
                id,
                user_id: parse_id(user, UserId::parse)?,
                secret_sha256: hash.try_into().map_err(|_| StoreError::corrupt("session hash length"))?,
                created_at: from_micros(created)?,
                expires_at: from_micros(expires)?,
                revoked_at: opt_from_micros(revoked)?,
            })
        })
        .transpose()
    }

    fn revoke_session(&mut self, id: SessionId, at: Timestamp) -> Result<()> {
        self.conn
            .prepare_cached("UPDATE sessions SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL")?
            .execute(params![id.to_string(), to_micros(at)])?;
        Ok(())
    }
}

impl SqliteTx<'_> {
    /// The policy in force as stored (see `current_policy`).
    fn stored_policy(&mut self, merchant: MerchantId, store: Option<StoreId>) -> Result<Option<PolicyRecord>> {
        // a store's own newest version wins over the merchant-wide one; each
        // is the last entry of its index range, so nothing is sorted
        let row = self
            .conn
            .prepare_cached(
                "SELECT * FROM (SELECT version, store_id, body, created_by, created_at FROM refund_policies
                                WHERE merchant_id = ?1 AND store_id = ?2 ORDER BY version DESC LIMIT 1)
                 UNION ALL
                 SELECT * FROM (SELECT version, store_id, body, created_by, created_at FROM refund_policies
                                WHERE merchant_id = ?1 AND store_id IS NULL ORDER BY version DESC LIMIT 1)
                 LIMIT 1",
            )?
            .query_row(params![merchant.to_string(), store.map(|s| s.to_string())], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, Option<String>>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, i64>(4)?,
                ))
            })
            .optional()?;
        row.map(|(version, store_id, body, created_by, at)| {
            Ok(PolicyRecord {
                merchant_id: merchant,
                version,
                store_id: store_id.map(|s| parse_id(s, StoreId::parse)).transpose()?,
                body,
                created_by,
                created_at: from_micros(at)?,
            })
        })
        .transpose()
    }
}

impl PolicyRepo for SqliteTx<'_> {
    fn insert_policy(&mut self, p: &PolicyRecord) -> Result<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO refund_policies (merchant_id, version, store_id, body, created_by, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                p.merchant_id.to_string(),
                p.version,
                p.store_id.map(|s| s.to_string()),
                p.body,
                p.created_by,
                to_micros(p.created_at),
            ])?;
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
        Ok(self
            .conn
            .prepare_cached("SELECT COALESCE(MAX(version), 0) FROM refund_policies WHERE merchant_id = ?1")?
            .query_row([merchant.to_string()], |r| r.get(0))?)
    }
}

const SALE_COLUMNS: &str = "id, merchant_id, store_id, terminal_id, amount_minor, currency, method, \
    card_brand, card_first6, card_last4, entry_mode, wallet, voucher_no, rrn, auth_code, batch_no, \
    captured_at, created_at, cashier";

struct SaleRow {
    id: String,
    merchant_id: String,
    store_id: String,
    terminal_id: String,
    amount_minor: i64,
    currency: String,
    method: String,
    card: (Option<String>, Option<String>, Option<String>, Option<String>),
    wallet: Option<String>,
    voucher_no: Option<String>,
    rrn: Option<String>,
    auth_code: Option<String>,
    batch_no: Option<String>,
    captured_at: i64,
    created_at: i64,
    cashier: Option<String>,
}

impl SaleRow {
    fn read(r: &Row<'_>) -> rusqlite::Result<SaleRow> {
        Ok(SaleRow {
            id: r.get(0)?,
            merchant_id: r.get(1)?,
            store_id: r.get(2)?,
            terminal_id: r.get(3)?,
            amount_minor: r.get(4)?,
            currency: r.get(5)?,
            method: r.get(6)?,
            card: (r.get(7)?, r.get(8)?, r.get(9)?, r.get(10)?),
            wallet: r.get(11)?,
            voucher_no: r.get(12)?,
            rrn: r.get(13)?,
            auth_code: r.get(14)?,
            batch_no: r.get(15)?,
            captured_at: r.get(16)?,
            created_at: r.get(17)?,
            cashier: r.get(18)?,
        })
    }

    fn into_sale(self, items: Vec<LineItem>) -> Result<Sale> {
        let payment_method = match self.method.as_str() {
            "card" => {
                let (brand, first6, last4, entry) = self.card;
                let missing = || StoreError::corrupt("card sale without card columns");
                PaymentMethod::Card {
                    brand: parse_wire(&brand.ok_or_else(missing)?, CardBrand::parse, "card brand")?,
                    first6: First6::parse(&first6.ok_or_else(missing)?).map_err(StoreError::corrupt)?,
                    last4: Last4::parse(&last4.ok_or_else(missing)?).map_err(StoreError::corrupt)?,
                    entry_mode: parse_wire(&entry.ok_or_else(missing)?, EntryMode::parse, "entry mode")?,
                }
            }
            "wallet" => PaymentMethod::Wallet {
                wallet: parse_wire(
                    &self.wallet.ok_or_else(|| StoreError::corrupt("wallet sale without wallet"))?,
                    Wallet::parse,
                    "wallet",
                )?,
            },
            "cash" => PaymentMethod::Cash,
            other => return Err(StoreError::corrupt(format!("unknown payment method {other:?}"))),
        };
        Ok(Sale {
            id: parse_id(self.id, SaleId::parse)?,
            merchant_id: parse_id(self.merchant_id, MerchantId::parse)?,
            store_id: parse_id(self.store_id, StoreId::parse)?,
            terminal_id: self.terminal_id,
            amount: Money::new(self.amount_minor, Currency::parse(&self.currency).map_err(StoreError::corrupt)?),
            payment_method,
            voucher_no: self.voucher_no,
            rrn: self.rrn,
            auth_code: self.auth_code,
            batch_no: self.batch_no,
            captured_at: from_micros(self.captured_at)?,
            created_at: from_micros(self.created_at)?,
            items,
            cashier: self.cashier,
        })
    }
}

impl SqliteTx<'_> {
    fn merchants(&self, sql: &str) -> Result<Vec<Merchant>> {
        let mut stmt = self.conn.prepare_cached(sql)?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?)))?;
        rows.map(|row| {
            let (id, name, at) = row?;
            Ok(Merchant { id: parse_id(id, MerchantId::parse)?, name, created_at: from_micros(at)? })
        })
        .collect()
    }

    fn sale_items(&self, sale_id: &str) -> Result<Vec<LineItem>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT sku, name, quantity, unit_amount_minor FROM sale_items WHERE sale_id = ?1 ORDER BY line_no",
        )?;
        let rows = stmt.query_map([sale_id], |r| {
            Ok(LineItem { sku: r.get(0)?, name: r.get(1)?, quantity: r.get(2)?, unit_amount_minor: r.get(3)? })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn sales_from(&self, sql: &str, params: &[Value]) -> Result<Vec<Sale>> {
        let mut stmt = self.conn.prepare_cached(sql)?;
        let rows = stmt
            .query_map(rusqlite::params_from_iter(params.iter()), SaleRow::read)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.into_iter()
            .map(|row| {
                let items = self.sale_items(&row.id)?;
                row.into_sale(items)
            })
            .collect()
    }

    fn refund_items(&self, refund_id: &str) -> Result<Vec<PlannedItem>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT sku, quantity, amount_minor FROM refund_items WHERE refund_id = ?1 ORDER BY sku")?;
        let rows = stmt.query_map([refund_id], |r| {
            Ok(PlannedItem { sku: r.get(0)?, quantity: r.get(1)?, amount_minor: r.get(2)? })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn refunds_from(&self, sql: &str, params: &[Value]) -> Result<Vec<Refund>> {
        let mut stmt = self.conn.prepare_cached(sql)?;
        let rows = stmt
            .query_map(rusqlite::params_from_iter(params.iter()), RefundRow::read)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.into_iter()
            .map(|row| {
                let items = self.refund_items(&row.id)?;
                row.into_refund(items)
            })
            .collect()
    }
}

impl SaleRepo for SqliteTx<'_> {
    fn insert_sale(&mut self, s: &Sale) -> Result<()> {
        let (brand, first6, last4, entry, wallet) = match &s.payment_method {
            PaymentMethod::Card { brand, first6, last4, entry_mode } => {
                (Some(brand.as_str()), Some(first6.as_str()), Some(last4.as_str()), Some(entry_mode.as_str()), None)
            }
            PaymentMethod::Wallet { wallet } => (None, None, None, None, Some(wallet.as_str())),
            PaymentMethod::Cash => (None, None, None, None, None),
        };
        let id = s.id.to_string();
        self.conn
            .prepare_cached(&format!(
                "INSERT INTO sales ({SALE_COLUMNS}) VALUES
                 (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)"
            ))?
            .execute(params![
                id,
                s.merchant_id.to_string(),
                s.store_id.to_string(),
                s.terminal_id,
                s.amount.minor,
                s.amount.currency.code(),
                s.payment_method.kind(),
                brand,
                first6,
                last4,
                entry,
                wallet,
                s.voucher_no,
                s.rrn,
                s.auth_code,
                s.batch_no,
                to_micros(s.captured_at),
                to_micros(s.created_at),
                s.cashier,
            ])?;
        let mut stmt = self.conn.prepare_cached(
            "INSERT INTO sale_items (sale_id, line_no, sku, name, quantity, unit_amount_minor) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        for (line_no, item) in s.items.iter().enumerate() {
            stmt.execute(params![id, line_no as i64, item.sku, item.name, item.quantity, item.unit_amount_minor])?;
        }
        Ok(())
    }

    fn find_sale(&mut self, merchant: MerchantId, id: SaleId) -> Result<Option<Sale>> {
        let sql = format!("SELECT {SALE_COLUMNS} FROM sales WHERE merchant_id = ?1 AND id = ?2");
        let mut found = self.sales_from(&sql, &[Value::Text(merchant.to_string()), Value::Text(id.to_string())])?;
        Ok(found.pop())
    }

    fn lock_sale(&mut self, merchant: MerchantId, id: SaleId) -> Result<Option<Sale>> {
        // Every write already runs on the single writer connection inside
        // BEGIN IMMEDIATE: nothing else can change the sale's refunds.
        self.find_sale(merchant, id)
    }

    fn search_sales(&mut self, merchant: MerchantId, q: &SaleQuery) -> Result<Vec<Sale>> {
        let mut sql = format!("SELECT {SALE_COLUMNS} FROM sales WHERE merchant_id = ?1");
        let mut params = vec![Value::Text(merchant.to_string())];
        let mut filter = |column: &str, op: &str, value: Value| {
            params.push(value);
            sql.push_str(&format!(" AND {column} {op} ?{}", params.len()));
        };
        if let Some(v) = q.store_id {
            filter("store_id", "=", Value::Text(v.to_string()));
        }
        if let Some(v) = &q.voucher_no {
            filter("voucher_no", "=", Value::Text(v.clone()));
        }
        if let Some(v) = &q.rrn {
            filter("rrn", "=", Value::Text(v.clone()));
        }
        if let Some(v) = &q.last4 {
            filter("card_last4", "=", Value::Text(v.clone()));
        }
        if let Some(v) = q.amount_minor {
            filter("amount_minor", "=", Value::Integer(v));
        }
        if let Some(v) = &q.terminal_id {
            filter("terminal_id", "=", Value::Text(v.clone()));
        }
        if let Some(v) = q.captured_from {
            filter("captured_at", ">=", Value::Integer(to_micros(v)));
        }
        if let Some(v) = q.captured_to {
            filter("captured_at", "<", Value::Integer(to_micros(v)));
        }
        if let Some(v) = q.starting_after {
            filter("id", "<", Value::Text(v.to_string()));
        }
        params.push(Value::Integer(i64::from(q.limit)));
        sql.push_str(&format!(" ORDER BY id DESC LIMIT ?{}", params.len()));
        self.sales_from(&sql, &params)
    }

    fn find_batch(&mut self, merchant: MerchantId, terminal_id: &str, batch_no: &str) -> Result<Option<BatchRecord>> {
        let at = self
            .conn
            .prepare_cached(
                "SELECT settled_at FROM batches WHERE merchant_id = ?1 AND terminal_id = ?2 AND batch_no = ?3",
            )?
            .query_row(params![merchant.to_string(), terminal_id, batch_no], |r| r.get::<_, i64>(0))
            .optional()?;
        at.map(|at| {
            Ok(BatchRecord {
                merchant_id: merchant,
                terminal_id: terminal_id.to_owned(),
                batch_no: batch_no.to_owned(),
                settled_at: from_micros(at)?,
            })
        })
        .transpose()
    }

    fn insert_batch(&mut self, b: &BatchRecord) -> Result<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO batches (merchant_id, terminal_id, batch_no, settled_at) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![b.merchant_id.to_string(), b.terminal_id, b.batch_no, to_micros(b.settled_at)])?;
        Ok(())
    }
}

const REFUND_COLUMNS: &str = "id, merchant_id, sale_id, type, status, amount_minor, currency, reason, note, \
    failure_reason, acquirer_reference, attempts, requested_by, created_at, updated_at, completed_at, \
    policy_version, decision, approval_expires_at, decided_by, decision_note, stan, expected_arrival_at, arrived_at, \
    customer_contact";

struct RefundRow {
    id: String,
    merchant_id: String,
    sale_id: String,
    refund_type: String,
    status: String,
    amount_minor: i64,
    currency: String,
    reason: String,
    note: Option<String>,
    failure_reason: Option<String>,
    acquirer_reference: Option<String>,
    attempts: u32,
    requested_by: String,
    created_at: i64,
    updated_at: i64,
    completed_at: Option<i64>,
    policy_version: i64,
    decision: String,
    approval_expires_at: Option<i64>,
    decided_by: Option<String>,
    decision_note: Option<String>,
    stan: Option<u32>,
    expected_arrival_at: Option<i64>,
    arrived_at: Option<i64>,
    customer_contact: Option<String>,
}

impl RefundRow {
    fn read(r: &Row<'_>) -> rusqlite::Result<RefundRow> {
        Ok(RefundRow {
            id: r.get(0)?,
            merchant_id: r.get(1)?,
            sale_id: r.get(2)?,
            refund_type: r.get(3)?,
            status: r.get(4)?,
            amount_minor: r.get(5)?,
            currency: r.get(6)?,
            reason: r.get(7)?,
            note: r.get(8)?,
            failure_reason: r.get(9)?,
            acquirer_reference: r.get(10)?,
            attempts: r.get(11)?,
            requested_by: r.get(12)?,
            created_at: r.get(13)?,
            updated_at: r.get(14)?,
            completed_at: r.get(15)?,
            policy_version: r.get(16)?,
            decision: r.get(17)?,
            approval_expires_at: r.get(18)?,
            decided_by: r.get(19)?,
            decision_note: r.get(20)?,
            stan: r.get(21)?,
            expected_arrival_at: r.get(22)?,
            arrived_at: r.get(23)?,
            customer_contact: r.get(24)?,
        })
    }

    fn into_refund(self, items: Vec<PlannedItem>) -> Result<Refund> {
        Ok(Refund {
            id: parse_id(self.id, RefundId::parse)?,
            merchant_id: parse_id(self.merchant_id, MerchantId::parse)?,
            sale_id: parse_id(self.sale_id, SaleId::parse)?,
            refund_type: parse_wire(&self.refund_type, RefundType::parse, "refund type")?,
            status: parse_wire(&self.status, RefundStatus::parse, "refund status")?,
            amount: Money::new(self.amount_minor, Currency::parse(&self.currency).map_err(StoreError::corrupt)?),
            reason: parse_wire(&self.reason, RefundReason::parse, "refund reason")?,
            note: self.note,
            items,
            failure_reason: self.failure_reason,
            acquirer_reference: self.acquirer_reference,
            attempts: self.attempts,
            requested_by: self.requested_by,
            created_at: from_micros(self.created_at)?,
            updated_at: from_micros(self.updated_at)?,
            completed_at: opt_from_micros(self.completed_at)?,
            policy_version: self.policy_version,
            decision: self.decision,
            approval_expires_at: opt_from_micros(self.approval_expires_at)?,
            decided_by: self.decided_by,
            decision_note: self.decision_note,
            stan: self.stan,
            expected_arrival_at: opt_from_micros(self.expected_arrival_at)?,
            arrived_at: opt_from_micros(self.arrived_at)?,
            customer_contact: self.customer_contact,
        })
    }
}

impl RefundRepo for SqliteTx<'_> {
    fn insert_refund(&mut self, r: &Refund) -> Result<()> {
        let (id, merchant, sale) = (r.id.to_string(), r.merchant_id.to_string(), r.sale_id.to_string());
        self.conn
            .prepare_cached(&format!(
                "INSERT INTO refunds ({REFUND_COLUMNS}) VALUES
                 (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25)"
            ))?
            .execute(params![
                id,
                merchant,
                sale,
                r.refund_type.as_str(),
                r.status.as_str(),
                r.amount.minor,
                r.amount.currency.code(),
                r.reason.as_str(),
                r.note,
                r.failure_reason,
                r.acquirer_reference,
                r.attempts,
                r.requested_by,
                to_micros(r.created_at),
                to_micros(r.updated_at),
                opt_micros(r.completed_at),
                r.policy_version,
                r.decision,
                opt_micros(r.approval_expires_at),
                r.decided_by,
                r.decision_note,
                r.stan,
                opt_micros(r.expected_arrival_at),
                opt_micros(r.arrived_at),
                r.customer_contact,
            ])?;
        // the sale's sums, here rather than in a trigger (migration 0004)
        self.conn
            .prepare_cached(
                "INSERT INTO sale_holdings (merchant_id, sale_id, status, amount_minor) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT DO UPDATE SET amount_minor = amount_minor + excluded.amount_minor",
            )?
            .execute(params![merchant, sale, r.status.as_str(), r.amount.minor])?;
        for item in &r.items {
            self.conn
                .prepare_cached(
                    "INSERT INTO refund_items (refund_id, sku, quantity, amount_minor) VALUES (?1, ?2, ?3, ?4)",
                )?
                .execute(params![id, item.sku, item.quantity, item.amount_minor])?;
            self.conn
                .prepare_cached(
                    "INSERT INTO sale_item_holdings (merchant_id, sale_id, status, sku, quantity)
                     VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT DO UPDATE SET quantity = quantity + excluded.quantity",
                )?
                .execute(params![merchant, sale, r.status.as_str(), item.sku, item.quantity])?;
        }
        Ok(())
    }

    fn update_refund(&mut self, r: &Refund) -> Result<()> {
        let changed = self
            .conn
            .prepare_cached(
                "UPDATE refunds SET status = ?2, failure_reason = ?3, acquirer_reference = ?4, attempts = ?5,
                 updated_at = ?6, completed_at = ?7, approval_expires_at = ?8, decided_by = ?9, decision_note = ?10,
                 stan = ?11, expected_arrival_at = ?12, arrived_at = ?13
                 WHERE id = ?1",
            )?
            .execute(params![
                r.id.to_string(),
                r.status.as_str(),
                r.failure_reason,
                r.acquirer_reference,
                r.attempts,
                to_micros(r.updated_at),
                opt_micros(r.completed_at),
                opt_micros(r.approval_expires_at),
                r.decided_by,
                r.decision_note,
                r.stan,
                opt_micros(r.expected_arrival_at),
                opt_micros(r.arrived_at),
            ])?;
        if changed == 1 { Ok(()) } else { Err(StoreError::corrupt(format!("refund {} is missing", r.id))) }
    }

    fn find_refund(&mut self, merchant: MerchantId, id: RefundId) -> Result<Option<Refund>> {
        let sql = format!("SELECT {REFUND_COLUMNS} FROM refunds WHERE merchant_id = ?1 AND id = ?2");
        Ok(self.refunds_from(&sql, &[Value::Text(merchant.to_string()), Value::Text(id.to_string())])?.pop())
    }

    fn find_refund_any_merchant(&mut self, id: RefundId) -> Result<Option<Refund>> {
        let sql = format!("SELECT {REFUND_COLUMNS} FROM refunds WHERE id = ?1");
        Ok(self.refunds_from(&sql, &[Value::Text(id.to_string())])?.pop())
    }

    fn lock_refund(&mut self, id: RefundId) -> Result<Option<Refund>> {
        // the single writer already serialises every change
        self.find_refund_any_merchant(id)
    }

    fn lock_refund_with_sale(&mut self, id: RefundId) -> Result<Option<(Refund, Option<Sale>)>> {
        // in the process, two statements cost no more than one
        let Some(refund) = self.lock_refund(id)? else { return Ok(None) };
        let sale = self.find_sale(refund.merchant_id, refund.sale_id)?;
        Ok(Some((refund, sale)))
    }

    fn refunds_of_sale(&mut self, merchant: MerchantId, sale: SaleId) -> Result<Vec<Refund>> {
        // a sale's timeline and its dispute evidence list every refund of
        // it: fetch their items in one query, not one per refund
        let sql = format!("SELECT {REFUND_COLUMNS} FROM refunds WHERE merchant_id = ?1 AND sale_id = ?2 ORDER BY id");
        let (merchant, sale) = (merchant.to_string(), sale.to_string());
        let rows = self
            .conn
            .prepare_cached(&sql)?
            .query_map(params![merchant, sale], RefundRow::read)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let mut items: std::collections::HashMap<String, Vec<PlannedItem>> = std::collections::HashMap::new();
        let mut stmt = self.conn.prepare_cached(
            "SELECT i.refund_id, i.sku, i.quantity, i.amount_minor FROM refund_items i
             JOIN refunds r ON r.id = i.refund_id WHERE r.merchant_id = ?1 AND r.sale_id = ?2 ORDER BY i.refund_id, i.sku",
        )?;
        let found = stmt.query_map(params![merchant, sale], |r| {
            Ok((r.get::<_, String>(0)?, PlannedItem { sku: r.get(1)?, quantity: r.get(2)?, amount_minor: r.get(3)? }))
        })?;
        for row in found {
            let (refund, item) = row?;
            items.entry(refund).or_default().push(item);
        }
        rows.into_iter()
            .map(|row| {
                let own = items.remove(&row.id).unwrap_or_default();
                row.into_refund(own)
            })
            .collect()
    }

    fn lock_sale_with_holdings(
        &mut self,
        merchant: MerchantId,
        id: SaleId,
    ) -> Result<Option<(Sale, HoldingsAndDisputes)>> {
        let Some(sale) = self.lock_sale(merchant, id)? else { return Ok(None) };
        let held = self.holdings_and_disputes(&sale)?;
        Ok(Some((sale, held)))
    }

    fn find_key_or_lock_sale(
        &mut self,
        merchant: MerchantId,
        endpoint: &str,
        key: &str,
        sale: SaleId,
    ) -> Result<KeyOrSale> {
        match self.find_idempotency(merchant, endpoint, key)? {
            Some(used) => Ok(KeyOrSale::Used(used)),
            None => Ok(KeyOrSale::New(self.lock_sale_with_holdings(merchant, sale)?)),
        }
    }

    fn holdings_and_disputes(&mut self, sale: &Sale) -> Result<HoldingsAndDisputes> {
        // the sums kept as refunds are inserted and moved (migrations 0002
        // and 0004), one row per status and per status and SKU
        macro_rules! amounts {
            () => {
                "SELECT status, amount_minor, NULL, NULL FROM sale_holdings
                 WHERE merchant_id = ?1 AND sale_id = ?2 AND amount_minor > 0"
            };
        }
        let sql = if sale.items.is_empty() {
            amounts!()
        } else {
            concat!(
                amounts!(),
                " UNION ALL SELECT status, NULL, sku, quantity FROM sale_item_holdings
                 WHERE merchant_id = ?1 AND sale_id = ?2 AND quantity > 0"
            )
        };
        let mut stmt = self.conn.prepare_cached(sql)?;
        let rows = stmt.query_map(params![sale.merchant_id.to_string(), sale.id.to_string()], |r| {
            let item = match r.get::<_, Option<String>>(2)? {
                Some(sku) => Some(ItemQuantity { sku, quantity: r.get(3)? }),
                None => None,
            };
            Ok((r.get::<_, String>(0)?, r.get::<_, Option<i64>>(1)?, item))
        })?;
        let holdings = crate::repo::fold_holdings(rows.map(|row| {
            let (status, amount, item) = row?;
            Ok((parse_wire(&status, RefundStatus::parse, "refund status")?, amount, item))
        }))?;
        // in process, a second statement costs no more than one
        Ok((holdings, self.disputes_of_sale(sale.merchant_id, sale.id)?))
    }

    fn list_refunds(&mut self, merchant: MerchantId, q: &RefundQuery) -> Result<Vec<Refund>> {
        let mut sql = format!("SELECT {REFUND_COLUMNS} FROM refunds WHERE merchant_id = ?1");
        let mut params = vec![Value::Text(merchant.to_string())];
        if let Some(sale) = q.sale_id {
            params.push(Value::Text(sale.to_string()));
            sql.push_str(&format!(" AND sale_id = ?{}", params.len()));
        }
        if let Some(status) = q.status {
            params.push(Value::Text(status.as_str().to_owned()));
            sql.push_str(&format!(" AND status = ?{}", params.len()));
        }
        if let Some(store) = q.store_id {
            params.push(Value::Text(store.to_string()));
            sql.push_str(&format!(" AND sale_id IN (SELECT id FROM sales WHERE store_id = ?{})", params.len()));
        }
        if let Some(who) = &q.requested_by {
            params.push(Value::Text(who.clone()));
            sql.push_str(&format!(" AND requested_by = ?{}", params.len()));
        }
        if let Some(after) = q.starting_after {
            params.push(Value::Text(after.to_string()));
            sql.push_str(&format!(" AND id < ?{}", params.len()));
        }
        params.push(Value::Integer(i64::from(q.limit)));
        sql.push_str(&format!(" ORDER BY id DESC LIMIT ?{}", params.len()));
        self.refunds_from(&sql, &params)
    }

    fn daily_total(&mut self, merchant: MerchantId, requested_by: &str, day: &str) -> Result<i64> {
        let key = (merchant, requested_by.to_owned(), day.to_owned());
        if let Some(total) = self.queued.daily_total(self.batch, &key) {
            return Ok(total);
        }
        let stored = self
            .conn
            .prepare_cached(
                "SELECT held_minor FROM daily_refund_totals WHERE merchant_id = ?1 AND requested_by = ?2 AND day = ?3",
            )?
            .query_row(params![merchant.to_string(), requested_by, day], |r| r.get::<_, i64>(0))
            .optional()?
            .unwrap_or(0);
        Ok(self.queued.daily_read(self.batch, key, stored))
    }

    fn add_daily_total(&mut self, merchant: MerchantId, requested_by: &str, day: &str, delta_minor: i64) -> Result<()> {
        *self.queued.daily.entry((merchant, requested_by.to_owned(), day.to_owned())).or_default() += delta_minor;
        Ok(())
    }

    fn cashier_activity(
        &mut self,
        merchant: MerchantId,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<(StoreId, String, u64, u64)>> {
        self.cashier_activity_rows(merchant, from, to)
    }

    fn refund_groups(
        &mut self,
        merchant: MerchantId,
        from: Timestamp,
        to: Timestamp,
        utc_offset_s: i64,
    ) -> Result<Vec<RefundGroup>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT (r.created_at + ?4 * 1000000) / 86400000000 AS day, r.reason, s.store_id, r.requested_by, r.status,
                    COUNT(*), SUM(r.amount_minor)
               FROM refunds r JOIN sales s ON s.id = r.sale_id
              WHERE r.merchant_id = ?1 AND r.created_at >= ?2 AND r.created_at < ?3
              GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5",
        )?;
        let rows =
            stmt.query_map(params![merchant.to_string(), to_micros(from), to_micros(to), utc_offset_s], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, i64>(5)?,
                    r.get::<_, i64>(6)?,
                ))
            })?;
        rows.map(|row| {
            let (day, reason, store, requested_by, status, count, amount_minor) = row?;
            let store_id = parse_id(store, StoreId::parse)?;
            Ok(RefundGroup { day, reason, store_id, requested_by, status, count: count as u64, amount_minor })
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
        let mut stmt = self.conn.prepare_cached(
            "SELECT (completed_at - created_at) / 1000000, (arrived_at - created_at) / 1000000 FROM refunds
              WHERE merchant_id = ?1 AND created_at >= ?2 AND created_at < ?3 AND status = 'succeeded'
                AND completed_at IS NOT NULL
              ORDER BY 1 LIMIT ?4",
        )?;
        let rows = stmt.query_map(params![merchant.to_string(), to_micros(from), to_micros(to), limit], |r| {
            Ok(RefundDuration { to_completed_s: r.get(0)?, to_arrived_s: r.get(1)? })
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    fn record_call(&mut self, c: &AcquirerCall) -> Result<()> {
        self.queued.calls.push(c.clone());
        Ok(())
    }

    fn calls_of(&mut self, refund: RefundId) -> Result<Vec<AcquirerCall>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT attempt, stan, kind, processor, started_at, duration_ms, outcome, response_code, detail
             FROM acquirer_calls WHERE refund_id = ?1 ORDER BY id",
        )?;
        let rows = stmt.query_map([refund.to_string()], |r| {
            Ok((
                (r.get::<_, u32>(0)?, r.get::<_, u32>(1)?, r.get::<_, String>(2)?, r.get::<_, String>(3)?),
                (r.get::<_, i64>(4)?, r.get::<_, i64>(5)?, r.get::<_, String>(6)?),
                (r.get::<_, Option<String>>(7)?, r.get::<_, String>(8)?),
            ))
        })?;
        rows.map(|row| {
            let ((attempt, stan, kind, processor), (started, duration_ms, outcome), (response_code, detail)) = row?;
            Ok(AcquirerCall {
                refund_id: refund,
                attempt,
                stan,
                kind,
                processor,
                started_at: from_micros(started)?,
                duration_ms,
                outcome,
                response_code,
                detail,
            })
        })
        .chain(self.queued.calls_pending(self.batch, refund).into_iter().map(Ok))
        .collect()
    }

    fn expired_approvals(&mut self, now: Timestamp, limit: u32) -> Result<Vec<Refund>> {
        let sql = format!(
            "SELECT {REFUND_COLUMNS} FROM refunds WHERE status = 'requires_approval' AND approval_expires_at <= ?1
             ORDER BY approval_expires_at LIMIT ?2"
        );
        self.refunds_from(&sql, &[Value::Integer(to_micros(now)), Value::Integer(i64::from(limit))])
    }
}

impl OutboxRepo for SqliteTx<'_> {
    fn enqueue(&mut self, job: &NewJob) -> Result<i64> {
        let now = to_micros(Timestamp::now());
        self.conn
            .prepare_cached(
                "INSERT INTO outbox (merchant_id, kind, payload, state, attempts, run_after, created_at, updated_at)
                 VALUES (?5, ?1, ?2, 'ready', 0, ?3, ?4, ?4)",
            )?
            .execute(params![
                job.kind,
                job.payload,
                to_micros(job.run_after),
                now,
                job.merchant_id.map(|m| m.to_string())
            ])?;
        Ok(self.conn.last_insert_rowid())
    }

    fn claim_jobs(&mut self, now: Timestamp, lease_until: Timestamp, limit: u32) -> Result<Vec<Job>> {
        let mut stmt = self.conn.prepare_cached(
            "UPDATE outbox SET state = 'running', attempts = attempts + 1, lease_until = ?2, updated_at = ?1
             WHERE id IN (
                SELECT id FROM outbox
                WHERE state IN ('ready', 'running')
                  AND ((state = 'ready' AND run_after <= ?1) OR (state = 'running' AND lease_until <= ?1))
                ORDER BY id LIMIT ?3)
             RETURNING id, kind, payload, attempts",
        )?;
        let rows = stmt.query_map(params![to_micros(now), to_micros(lease_until), limit], |r| {
            Ok(Job { id: r.get(0)?, kind: r.get(1)?, payload: r.get(2)?, attempts: r.get(3)? })
        })?;
        let mut jobs = rows.collect::<rusqlite::Result<Vec<_>>>()?;
        jobs.sort_by_key(|j| j.id);
        Ok(jobs)
    }

    fn complete_job(&mut self, id: i64, now: Timestamp) -> Result<()> {
        self.conn
            .prepare_cached("UPDATE outbox SET state = 'done', lease_until = NULL, updated_at = ?2 WHERE id = ?1")?
            .execute(params![id, to_micros(now)])?;
        Ok(())
    }

    fn reschedule_job(&mut self, id: i64, run_after: Timestamp, error: &str) -> Result<()> {
        self.conn
            .prepare_cached(
                "UPDATE outbox SET state = 'ready', lease_until = NULL, run_after = ?2, last_error = ?3,
                 updated_at = ?2 WHERE id = ?1",
            )?
            .execute(params![id, to_micros(run_after), error])?;
        Ok(())
    }

    fn bury_job(&mut self, id: i64, now: Timestamp, error: &str) -> Result<()> {
        self.conn
            .prepare_cached(
                "UPDATE outbox SET state = 'dead', lease_until = NULL, last_error = ?3, updated_at = ?2 WHERE id = ?1",
            )?
            .execute(params![id, to_micros(now), error])?;
        Ok(())
    }

    fn list_jobs(&mut self, merchant: Option<MerchantId>, state: &str, limit: u32) -> Result<Vec<JobRecord>> {
        let indexed = crate::repo::outbox_state_index_predicate(state);
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT id, kind, payload, state, attempts, run_after, last_error, created_at, updated_at, merchant_id
             FROM outbox WHERE {indexed}state = ?1 AND (?3 IS NULL OR merchant_id = ?3) ORDER BY id DESC LIMIT ?2"
        ))?;
        let rows = stmt.query_map(params![state, limit, merchant.map(|m| m.to_string())], |r| {
            Ok((
                (r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?, r.get::<_, String>(3)?),
                (r.get::<_, u32>(4)?, r.get::<_, i64>(5)?, r.get::<_, Option<String>>(6)?),
                (r.get::<_, i64>(7)?, r.get::<_, i64>(8)?, r.get::<_, Option<String>>(9)?),
            ))
        })?;
        rows.map(|row| {
            let ((id, kind, payload, state), (attempts, run_after, last_error), (created, updated, merchant)) = row?;
            Ok(JobRecord {
                id,
                merchant_id: merchant.map(|m| parse_id(m, MerchantId::parse)).transpose()?,
                kind,
                payload,
                state,
                attempts,
                run_after: from_micros(run_after)?,
                last_error,
                created_at: from_micros(created)?,
                updated_at: from_micros(updated)?,
            })
        })
        .collect()
    }

    fn revive_job(&mut self, merchant: Option<MerchantId>, id: i64, now: Timestamp) -> Result<bool> {
        let changed = self
            .conn
            .prepare_cached(
                "UPDATE outbox SET state = 'ready', attempts = 0, run_after = ?2, updated_at = ?2
                 WHERE id = ?1 AND state = 'dead' AND (?3 IS NULL OR merchant_id = ?3)",
            )?
            .execute(params![id, to_micros(now), merchant.map(|m| m.to_string())])?;
        Ok(changed == 1)
    }

    fn unfinished_jobs(&mut self) -> Result<u64> {
        let n: i64 = self
            .conn
            .prepare_cached("SELECT COUNT(*) FROM outbox WHERE state IN ('ready', 'running')")?
            .query_row([], |r| r.get(0))?;
        Ok(n as u64)
    }
}

impl IdempotencyRepo for SqliteTx<'_> {
    fn find_idempotency(
        &mut self,
        merchant: MerchantId,
        endpoint: &str,
        key: &str,
    ) -> Result<Option<IdempotencyRecord>> {
        let row = self
            .conn
            .prepare_cached(
                "SELECT fingerprint, status_code, body, created_at FROM idempotency_keys
                 WHERE merchant_id = ?1 AND endpoint = ?2 AND key = ?3",
            )?
            .query_row(params![merchant.to_string(), endpoint, key], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, u16>(1)?, r.get::<_, String>(2)?, r.get::<_, i64>(3)?))
            })
            .optional()?;
        row.map(|(fingerprint, status_code, body, at)| {
            Ok(IdempotencyRecord {
                merchant_id: merchant,
                endpoint: endpoint.to_owned(),
                key: key.to_owned(),
                fingerprint,
                status_code,
                body,
                created_at: from_micros(at)?,
            })
        })
        .transpose()
    }

    fn insert_idempotency(&mut self, r: &IdempotencyRecord) -> Result<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO idempotency_keys (merchant_id, endpoint, key, fingerprint, status_code, body, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![
                r.merchant_id.to_string(),
                r.endpoint,
                r.key,
                r.fingerprint,
                r.status_code,
                r.body,
                to_micros(r.created_at)
            ])?;
        Ok(())
    }

    fn prune_idempotency(&mut self, older_than: Timestamp) -> Result<u64> {
        let n = self
            .conn
            .prepare_cached("DELETE FROM idempotency_keys WHERE created_at < ?1")?
            .execute([to_micros(older_than)])?;
        Ok(n as u64)
    }
}

impl AuditRepo for SqliteTx<'_> {
    fn append_audit(&mut self, event: AuditEvent) -> Result<()> {
        self.queued.audit.push(event);
        Ok(())
    }

    fn audit_head(&mut self, merchant: MerchantId) -> Result<Option<(i64, String)>> {
        Ok(self
            .conn
            .prepare_cached("SELECT seq, hash FROM audit_heads WHERE merchant_id = ?1")?
            .query_row([merchant.to_string()], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?)
    }

    fn audit_events(&mut self, merchant: MerchantId, after_seq: i64, limit: u32) -> Result<Vec<AuditEvent>> {
        let sql = "SELECT merchant_id, seq, at, actor, source, action, subject, data, prev_hash, hash FROM audit_events
                   WHERE merchant_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3";
        self.audit_from(
            sql,
            &[Value::Text(merchant.to_string()), Value::Integer(after_seq), Value::Integer(i64::from(limit))],
        )
    }

    fn audit_events_about(&mut self, merchant: MerchantId, subject: &str, limit: u32) -> Result<Vec<AuditEvent>> {
        let sql = "SELECT merchant_id, seq, at, actor, source, action, subject, data, prev_hash, hash FROM audit_events
                   WHERE merchant_id = ?1 AND subject = ?2 ORDER BY seq LIMIT ?3";
        self.audit_from(
            sql,
            &[Value::Text(merchant.to_string()), Value::Text(subject.to_owned()), Value::Integer(i64::from(limit))],
        )
    }

    fn search_audit(&mut self, merchant: MerchantId, q: &AuditQuery) -> Result<Vec<AuditEvent>> {
        let mut sql =
            "SELECT merchant_id, seq, at, actor, source, action, subject, data, prev_hash, hash FROM audit_events
                       WHERE merchant_id = ?1"
                .to_owned();
        let mut params = vec![Value::Text(merchant.to_string())];
        let mut and = |condition: &str, value: Value| {
            params.push(value);
            sql.push_str(" AND ");
            sql.push_str(&condition.replace("?#", &format!("?{}", params.len())));
        };
        if let Some(action) = &q.action {
            and("action = ?#", Value::Text(action.clone()));
        }
        if let Some(actor) = &q.actor {
            // a person acting through a key is recorded as `user:… via key:…`
            and("(actor = ?# OR substr(actor, 1, length(?#) + 5) = ?# || ' via ')", Value::Text(actor.clone()));
        }
        if let Some(subject) = &q.subject {
            and("subject = ?#", Value::Text(subject.clone()));
        }
        if let Some(from) = q.from {
            and("at >= ?#", Value::Integer(to_micros(from)));
        }
        if let Some(to) = q.to {
            and("at < ?#", Value::Integer(to_micros(to)));
        }
        if let Some(before) = q.before_seq {
            and("seq < ?#", Value::Integer(before));
        }
        params.push(Value::Integer(i64::from(q.limit)));
        sql.push_str(&format!(" ORDER BY seq DESC LIMIT ?{}", params.len()));
        self.audit_from(&sql, &params)
    }
}

impl SqliteTx<'_> {
    fn audit_from(&self, sql: &str, params: &[Value]) -> Result<Vec<AuditEvent>> {
        let mut stmt = self.conn.prepare_cached(sql)?;
        let rows = stmt.query_map(rusqlite::params_from_iter(params.iter()), |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, String>(6)?,
                r.get::<_, String>(7)?,
                r.get::<_, String>(8)?,
                r.get::<_, String>(9)?,
            ))
        })?;
        rows.map(|row| {
            let (merchant, seq, at, actor, source, action, subject, data, prev_hash, hash) = row?;
            Ok(AuditEvent {
                merchant_id: parse_id(merchant, MerchantId::parse)?,
                seq,
                at: from_micros(at)?,
                actor,
                source,
                action,
                subject,
                data,
                prev_hash,
                hash,
            })
        })
        .collect()
    }
}

const ENDPOINT_COLUMNS: &str = "id, merchant_id, url, events, secret, created_at, disabled_at";
const DELIVERY_COLUMNS: &str =
    "id, endpoint_id, event_id, event_type, payload, attempt, at, status_code, duration_ms, error";

impl SqliteTx<'_> {
    fn endpoints_from(&self, sql: &str, params: &[Value]) -> Result<Vec<WebhookEndpoint>> {
        let mut stmt = self.conn.prepare_cached(sql)?;
        let rows = stmt.query_map(rusqlite::params_from_iter(params.iter()), |r| {
            Ok((
                (r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?, r.get::<_, String>(3)?),
                (r.get::<_, String>(4)?, r.get::<_, i64>(5)?, r.get::<_, Option<i64>>(6)?),
            ))
        })?;
        rows.map(|row| {
            let ((id, merchant, url, events), (secret, created, disabled)) = row?;
            Ok(WebhookEndpoint {
                id,
                merchant_id: parse_id(merchant, MerchantId::parse)?,
                url,
                events: events.split_whitespace().map(str::to_owned).collect(),
                secret,
                created_at: from_micros(created)?,
                disabled_at: opt_from_micros(disabled)?,
            })
        })
        .collect()
    }

    fn deliveries_from(&self, sql: &str, params: &[Value]) -> Result<Vec<WebhookDelivery>> {
        let mut stmt = self.conn.prepare_cached(sql)?;
        let rows = stmt.query_map(rusqlite::params_from_iter(params.iter()), |r| {
            Ok((
                (r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?, r.get::<_, String>(3)?),
                (r.get::<_, String>(4)?, r.get::<_, u32>(5)?, r.get::<_, i64>(6)?),
                (r.get::<_, Option<u16>>(7)?, r.get::<_, i64>(8)?, r.get::<_, Option<String>>(9)?),
            ))
        })?;
        rows.map(|row| {
            let ((id, endpoint_id, event_id, event_type), (payload, attempt, at), (status_code, duration_ms, error)) =
                row?;
            Ok(WebhookDelivery {
                id,
                endpoint_id,
                event_id,
                event_type,
                payload,
                attempt,
                at: from_micros(at)?,
                status_code,
                duration_ms,
                error,
            })
        })
        .collect()
    }
}

impl WebhookRepo for SqliteTx<'_> {
    fn insert_endpoint(&mut self, e: &WebhookEndpoint) -> Result<()> {
        self.queued.endpoints_changed(e.merchant_id);
        self.conn
            .prepare_cached(&format!(
                "INSERT INTO webhook_endpoints ({ENDPOINT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
            ))?
            .execute(params![
                e.id,
                e.merchant_id.to_string(),
                e.url,
                e.events.join(" "),
                e.secret,
                to_micros(e.created_at),
                opt_micros(e.disabled_at)
            ])?;
        Ok(())
    }

    fn endpoints_of(&mut self, merchant: MerchantId) -> Result<Vec<WebhookEndpoint>> {
        if let Some(endpoints) = self.queued.endpoints_read(self.batch, merchant) {
            return Ok(endpoints);
        }
        let sql = format!("SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE merchant_id = ?1 ORDER BY id");
        let endpoints = self.endpoints_from(&sql, &[Value::Text(merchant.to_string())])?;
        self.queued.note_endpoints(merchant, &endpoints);
        Ok(endpoints)
    }

    fn find_endpoint(&mut self, id: &str) -> Result<Option<WebhookEndpoint>> {
        let sql = format!("SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = ?1");
        Ok(self.endpoints_from(&sql, &[Value::Text(id.to_owned())])?.pop())
    }

    fn record_delivery(&mut self, d: &WebhookDelivery) -> Result<i64> {
        self.conn
            .prepare_cached(
                "INSERT INTO webhook_deliveries (endpoint_id, event_id, event_type, payload, attempt, at, status_code,
                 duration_ms, error) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?
            .execute(params![
                d.endpoint_id,
                d.event_id,
                d.event_type,
                d.payload,
                d.attempt,
                to_micros(d.at),
                d.status_code,
                d.duration_ms,
                d.error
            ])?;
        Ok(self.conn.last_insert_rowid())
    }

    fn deliveries_of(&mut self, endpoint: &str, limit: u32) -> Result<Vec<WebhookDelivery>> {
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE endpoint_id = ?1 ORDER BY id DESC LIMIT ?2"
        );
        self.deliveries_from(&sql, &[Value::Text(endpoint.to_owned()), Value::Integer(i64::from(limit))])
    }

    fn find_delivery(&mut self, id: i64) -> Result<Option<WebhookDelivery>> {
        let sql = format!("SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE id = ?1");
        Ok(self.deliveries_from(&sql, &[Value::Integer(id)])?.pop())
    }
}

const DISPUTE_COLUMNS: &str = "id, merchant_id, sale_id, case_ref, network, reason_code, category, stage, status, \
    amount_minor, currency, due_by, note, opened_at, updated_at";

impl SqliteTx<'_> {
    fn disputes_from(&self, sql: &str, params: &[Value]) -> Result<Vec<DisputeRecord>> {
        let mut stmt = self.conn.prepare_cached(sql)?;
        let rows = stmt.query_map(rusqlite::params_from_iter(params.iter()), |r| {
            Ok((
                (r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?, r.get::<_, String>(3)?),
                (r.get::<_, String>(4)?, r.get::<_, String>(5)?, r.get::<_, Option<String>>(6)?),
                (r.get::<_, String>(7)?, r.get::<_, String>(8)?, r.get::<_, i64>(9)?, r.get::<_, String>(10)?),
                (r.get::<_, i64>(11)?, r.get::<_, Option<String>>(12)?, r.get::<_, i64>(13)?, r.get::<_, i64>(14)?),
            ))
        })?;
        rows.map(|row| {
            let (
                (id, merchant, sale, case_ref),
                (network, reason_code, category),
                (stage, status, amount, currency),
                (due, note, opened, updated),
            ) = row?;
            Ok(DisputeRecord {
                id: parse_id(id, DisputeId::parse)?,
                merchant_id: parse_id(merchant, MerchantId::parse)?,
                sale_id: parse_id(sale, SaleId::parse)?,
                case_ref,
                network,
                reason_code,
                category,
                stage,
                status,
                amount: Money::new(amount, Currency::parse(&currency).map_err(StoreError::corrupt)?),
                due_by: from_micros(due)?,
                note,
                opened_at: from_micros(opened)?,
                updated_at: from_micros(updated)?,
            })
        })
        .collect()
    }
}

impl DisputeRepo for SqliteTx<'_> {
    fn insert_dispute(&mut self, d: &DisputeRecord) -> Result<()> {
        self.conn
            .prepare_cached(&format!(
                "INSERT INTO disputes ({DISPUTE_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)"
            ))?
            .execute(params![
                d.id.to_string(),
                d.merchant_id.to_string(),
                d.sale_id.to_string(),
                d.case_ref,
                d.network,
                d.reason_code,
                d.category,
                d.stage,
                d.status,
                d.amount.minor,
                d.amount.currency.code(),
                to_micros(d.due_by),
                d.note,
                to_micros(d.opened_at),
                to_micros(d.updated_at),
            ])?;
        Ok(())
    }

    fn update_dispute(&mut self, d: &DisputeRecord) -> Result<()> {
        self.conn
            .prepare_cached(
                "UPDATE disputes SET stage = ?2, status = ?3, category = ?4, note = ?5, updated_at = ?6 WHERE id = ?1",
            )?
            .execute(params![d.id.to_string(), d.stage, d.status, d.category, d.note, to_micros(d.updated_at)])?;
        Ok(())
    }

    fn find_dispute(&mut self, merchant: MerchantId, id: DisputeId) -> Result<Option<DisputeRecord>> {
        let sql = format!("SELECT {DISPUTE_COLUMNS} FROM disputes WHERE merchant_id = ?1 AND id = ?2");
        Ok(self.disputes_from(&sql, &[Value::Text(merchant.to_string()), Value::Text(id.to_string())])?.pop())
    }

    fn find_dispute_by_case(&mut self, merchant: MerchantId, case_ref: &str) -> Result<Option<DisputeRecord>> {
        let sql = format!("SELECT {DISPUTE_COLUMNS} FROM disputes WHERE merchant_id = ?1 AND case_ref = ?2");
        Ok(self.disputes_from(&sql, &[Value::Text(merchant.to_string()), Value::Text(case_ref.to_owned())])?.pop())
    }

    fn disputes_of_sale(&mut self, merchant: MerchantId, sale: SaleId) -> Result<Vec<DisputeRecord>> {
        let sql = format!("SELECT {DISPUTE_COLUMNS} FROM disputes WHERE merchant_id = ?1 AND sale_id = ?2 ORDER BY id");
        self.disputes_from(&sql, &[Value::Text(merchant.to_string()), Value::Text(sale.to_string())])
    }

    fn overdue_disputes(&mut self, now: Timestamp, limit: u32) -> Result<Vec<DisputeRecord>> {
        let sql = format!(
            "SELECT {DISPUTE_COLUMNS} FROM disputes WHERE status = 'needs_response' AND due_by <= ?1 ORDER BY due_by LIMIT ?2"
        );
        self.disputes_from(&sql, &[Value::Integer(to_micros(now)), Value::Integer(i64::from(limit))])
    }

    fn disputes_due_without_notice(
        &mut self,
        now: Timestamp,
        until: Timestamp,
        kind: &str,
        limit: u32,
    ) -> Result<Vec<DisputeRecord>> {
        let sql = format!(
            "SELECT {DISPUTE_COLUMNS} FROM disputes d WHERE status = 'needs_response' AND due_by > ?1 AND due_by <= ?2
             AND NOT EXISTS (SELECT 1 FROM notices_sent n
                             WHERE n.merchant_id = d.merchant_id AND n.subject = d.id AND n.kind = ?3)
             ORDER BY due_by LIMIT ?4"
        );
        self.disputes_from(
            &sql,
            &[
                Value::Integer(to_micros(now)),
                Value::Integer(to_micros(until)),
                Value::Text(kind.to_owned()),
                Value::Integer(i64::from(limit)),
            ],
        )
    }

    fn insert_evidence(&mut self, e: &EvidenceRecord, bytes: Option<&[u8]>) -> Result<()> {
        let file = e.file.as_ref();
        self.conn
            .prepare_cached(&format!("INSERT INTO dispute_evidence ({EVIDENCE_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"))?
            .execute(params![
                e.id.to_string(),
                e.merchant_id.to_string(),
                e.dispute_id.to_string(),
                e.kind,
                e.note,
                file.map(|f| &f.name),
                file.map(|f| &f.content_type),
                file.map(|f| f.size_bytes),
                file.map(|f| &f.sha256),
                e.added_by,
                to_micros(e.added_at),
            ])?;
        if let Some(bytes) = bytes {
            self.conn
                .prepare_cached("INSERT INTO dispute_evidence_files (evidence_id, bytes) VALUES (?1, ?2)")?
                .execute(params![e.id.to_string(), bytes])?;
        }
        Ok(())
    }

    fn evidence_of(&mut self, merchant: MerchantId, dispute: DisputeId) -> Result<Vec<EvidenceRecord>> {
        let sql = format!(
            "SELECT {EVIDENCE_COLUMNS} FROM dispute_evidence WHERE merchant_id = ?1 AND dispute_id = ?2 ORDER BY id"
        );
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(params![merchant.to_string(), dispute.to_string()], evidence_row)?;
        rows.map(|r| evidence_from(r?)).collect()
    }

    fn evidence_with_file(
        &mut self,
        merchant: MerchantId,
        dispute: DisputeId,
        id: EvidenceId,
    ) -> Result<Option<(EvidenceRecord, Option<Vec<u8>>)>> {
        let sql = format!(
            "SELECT {EVIDENCE_COLUMNS} FROM dispute_evidence WHERE merchant_id = ?1 AND dispute_id = ?2 AND id = ?3"
        );
        let row = self
            .conn
            .prepare_cached(&sql)?
            .query_row(params![merchant.to_string(), dispute.to_string(), id.to_string()], evidence_row)
            .optional()?;
        let Some(row) = row else { return Ok(None) };
        let record = evidence_from(row)?;
        let bytes = self
            .conn
            .prepare_cached("SELECT bytes FROM dispute_evidence_files WHERE evidence_id = ?1")?
            .query_row([id.to_string()], |r| r.get::<_, Vec<u8>>(0))
            .optional()?;
        Ok(Some((record, bytes)))
    }

    fn dispute_stats(&mut self, merchant: MerchantId, from: Timestamp, to: Timestamp) -> Result<(u64, i64)> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT COUNT(*), COALESCE(SUM(amount_minor), 0) FROM disputes
                 WHERE merchant_id = ?1 AND stage <> 'retrieval_request' AND opened_at >= ?2 AND opened_at < ?3",
            )?
            .query_row(params![merchant.to_string(), to_micros(from), to_micros(to)], |r| {
                Ok((r.get::<_, i64>(0)? as u64, r.get(1)?))
            })?)
    }

    fn sale_stats(
        &mut self,
        merchant: MerchantId,
        from: Timestamp,
        to: Timestamp,
        cards_only: bool,
    ) -> Result<(u64, i64)> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT COUNT(*), COALESCE(SUM(amount_minor), 0) FROM sales
                 WHERE merchant_id = ?1 AND captured_at >= ?2 AND captured_at < ?3 AND (?4 = 0 OR method = 'card')",
            )?
            .query_row(params![merchant.to_string(), to_micros(from), to_micros(to), cards_only], |r| {
                Ok((r.get::<_, i64>(0)? as u64, r.get(1)?))
            })?)
    }

    fn list_disputes(
        &mut self,
        merchant: MerchantId,
        starting_after: Option<DisputeId>,
        limit: u32,
    ) -> Result<Vec<DisputeRecord>> {
        let sql = format!(
            "SELECT {DISPUTE_COLUMNS} FROM disputes WHERE merchant_id = ?1 AND (?2 IS NULL OR id < ?2) ORDER BY id DESC LIMIT ?3"
        );
        self.disputes_from(
            &sql,
            &[
                Value::Text(merchant.to_string()),
                starting_after.map(|d| Value::Text(d.to_string())).unwrap_or(Value::Null),
                Value::Integer(i64::from(limit)),
            ],
        )
    }
}

const EVIDENCE_COLUMNS: &str =
    "id, merchant_id, dispute_id, kind, note, file_name, content_type, size_bytes, sha256, added_by, added_at";

type EvidenceRow = (
    (String, String, String, String, Option<String>),
    (Option<String>, Option<String>, Option<i64>, Option<String>),
    (String, i64),
);

fn evidence_row(r: &Row) -> rusqlite::Result<EvidenceRow> {
    Ok((
        (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?),
        (r.get(5)?, r.get(6)?, r.get(7)?, r.get(8)?),
        (r.get(9)?, r.get(10)?),
    ))
}

fn evidence_from(row: EvidenceRow) -> Result<EvidenceRecord> {
    let ((id, merchant, dispute, kind, note), (name, content_type, size, sha256), (added_by, added_at)) = row;
    let file = match (name, content_type, size, sha256) {
        (Some(name), Some(content_type), Some(size_bytes), Some(sha256)) => {
            Some(EvidenceFile { name, content_type, size_bytes, sha256 })
        }
        (None, None, None, None) => None,
        _ => return Err(StoreError::corrupt(format!("evidence {id} has half a file"))),
    };
    Ok(EvidenceRecord {
        id: parse_id(id, EvidenceId::parse)?,
        merchant_id: parse_id(merchant, MerchantId::parse)?,
        dispute_id: parse_id(dispute, DisputeId::parse)?,
        kind,
        note,
        file,
        added_by,
        added_at: from_micros(added_at)?,
    })
}

impl NoticeRepo for SqliteTx<'_> {
    fn claim_notice(&mut self, merchant: MerchantId, subject: &str, kind: &str, at: Timestamp) -> Result<bool> {
        let n = self
            .conn
            .prepare_cached(
                "INSERT INTO notices_sent (merchant_id, subject, kind, sent_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT DO NOTHING",
            )?
            .execute(params![merchant.to_string(), subject, kind, to_micros(at)])?;
        Ok(n == 1)
    }
}

const CORRECTION_COLUMNS: &str = "id, merchant_id, store_id, sale_id, kind, evidence, cause, responsible_party, status, \
    refund_id, resolution_note, opened_by, summary_zh, summary_en, opened_at, updated_at";

type CorrectionRow = (
    (String, String, String, String, String, String),
    (String, Option<String>, String, Option<String>, Option<String>),
    (String, String, String, i64, i64),
);

fn correction_row(r: &Row) -> rusqlite::Result<CorrectionRow> {
    Ok((
        (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?),
        (r.get(6)?, r.get(7)?, r.get(8)?, r.get(9)?, r.get(10)?),
        (r.get(11)?, r.get(12)?, r.get(13)?, r.get(14)?, r.get(15)?),
    ))
}

fn correction_from(row: CorrectionRow) -> Result<CorrectionRecord> {
    let (
        (id, merchant, store, sale, kind, evidence),
        (cause, responsible_party, status, refund, resolution_note),
        (opened_by, summary_zh, summary_en, opened, updated),
    ) = row;
    Ok(CorrectionRecord {
        id: parse_id(id, CorrectionId::parse)?,
        merchant_id: parse_id(merchant, MerchantId::parse)?,
        store_id: parse_id(store, StoreId::parse)?,
        sale_id: parse_id(sale, SaleId::parse)?,
        kind,
        evidence,
        cause,
        responsible_party,
        status,
        refund_id: refund.map(|r| parse_id(r, RefundId::parse)).transpose()?,
        resolution_note,
        opened_by,
        summary_zh,
        summary_en,
        opened_at: from_micros(opened)?,
        updated_at: from_micros(updated)?,
    })
}

impl SqliteTx<'_> {
    fn corrections_from(&self, sql: &str, params: &[Value]) -> Result<Vec<CorrectionRecord>> {
        let mut stmt = self.conn.prepare_cached(sql)?;
        let rows = stmt.query_map(rusqlite::params_from_iter(params.iter()), correction_row)?;
        rows.map(|r| correction_from(r?)).collect()
    }
}

impl SqliteTx<'_> {
    pub(crate) fn cashier_activity_rows(
        &mut self,
        merchant: MerchantId,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<(StoreId, String, u64, u64)>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT store_id, who, SUM(sales), SUM(refunds) FROM (
                 SELECT store_id, cashier AS who, 1 AS sales, 0 AS refunds FROM sales
                  WHERE merchant_id = ?1 AND captured_at >= ?2 AND captured_at < ?3 AND cashier IS NOT NULL
                 UNION ALL
                 SELECT s.store_id, CASE WHEN r.requested_by LIKE 'user:%' THEN substr(r.requested_by, 6) ELSE r.requested_by END,
                        0, 1
                   FROM refunds r JOIN sales s ON s.id = r.sale_id
                  WHERE r.merchant_id = ?1 AND r.created_at >= ?2 AND r.created_at < ?3
             ) activity GROUP BY store_id, who ORDER BY store_id, who",
        )?;
        let rows = stmt.query_map(params![merchant.to_string(), to_micros(from), to_micros(to)], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?, r.get::<_, i64>(3)?))
        })?;
        rows.map(|row| {
            let (store, who, sales, refunds) = row?;
            Ok((parse_id(store, StoreId::parse)?, who, sales as u64, refunds as u64))
        })
        .collect()
    }
}

impl CorrectionRepo for SqliteTx<'_> {
    fn insert_sale_signals(
        &mut self,
        merchant: MerchantId,
        sale: SaleId,
        card_fingerprint: Option<&str>,
        order_ref: Option<&str>,
        captured_at: Timestamp,
    ) -> Result<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO sale_signals (sale_id, merchant_id, card_fingerprint, order_ref, captured_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![
                sale.to_string(),
                merchant.to_string(),
                card_fingerprint,
                order_ref,
                to_micros(captured_at)
            ])?;
        Ok(())
    }

    fn sale_signals(&mut self, merchant: MerchantId, sale: SaleId) -> Result<Option<(Option<String>, Option<String>)>> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT card_fingerprint, order_ref FROM sale_signals WHERE merchant_id = ?1 AND sale_id = ?2",
            )?
            .query_row(params![merchant.to_string(), sale.to_string()], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?)
    }

    fn sales_with_fingerprint(
        &mut self,
        merchant: MerchantId,
        fingerprint: &str,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<Sale>> {
        let sql = format!(
            "SELECT {SALE_COLUMNS} FROM sales WHERE merchant_id = ?1 AND id IN (
                 SELECT sale_id FROM sale_signals WHERE merchant_id = ?1 AND card_fingerprint = ?2
                 AND captured_at >= ?3 AND captured_at <= ?4 ORDER BY captured_at LIMIT 100)
             ORDER BY captured_at, id"
        );
        self.sales_from(
            &sql,
            &[
                Value::Text(merchant.to_string()),
                Value::Text(fingerprint.to_owned()),
                Value::Integer(to_micros(from)),
                Value::Integer(to_micros(to)),
            ],
        )
    }

    fn store_sale_amounts(
        &mut self,
        merchant: MerchantId,
        store: StoreId,
        before: SaleId,
        limit: u32,
    ) -> Result<Vec<i64>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT amount_minor FROM sales WHERE merchant_id = ?1 AND store_id = ?2 AND id < ?3 ORDER BY id DESC LIMIT ?4",
        )?;
        let rows = stmt
            .query_map(params![merchant.to_string(), store.to_string(), before.to_string(), i64::from(limit)], |r| {
                r.get::<_, i64>(0)
            })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    fn insert_correction(&mut self, c: &CorrectionRecord) -> Result<bool> {
        let n = self
            .conn
            .prepare_cached(&format!(
                "INSERT INTO corrections ({CORRECTION_COLUMNS}) VALUES
                 (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16) ON CONFLICT DO NOTHING"
            ))?
            .execute(params![
                c.id.to_string(),
                c.merchant_id.to_string(),
                c.store_id.to_string(),
                c.sale_id.to_string(),
                c.kind,
                c.evidence,
                c.cause,
                c.responsible_party,
                c.status,
                c.refund_id.map(|r| r.to_string()),
                c.resolution_note,
                c.opened_by,
                c.summary_zh,
                c.summary_en,
                to_micros(c.opened_at),
                to_micros(c.updated_at),
            ])?;
        Ok(n == 1)
    }

    fn update_correction(&mut self, c: &CorrectionRecord) -> Result<()> {
        self.conn
            .prepare_cached(
                "UPDATE corrections SET cause = ?2, responsible_party = ?3, status = ?4, refund_id = ?5,
                 resolution_note = ?6, updated_at = ?7 WHERE id = ?1",
            )?
            .execute(params![
                c.id.to_string(),
                c.cause,
                c.responsible_party,
                c.status,
                c.refund_id.map(|r| r.to_string()),
                c.resolution_note,
                to_micros(c.updated_at),
            ])?;
        Ok(())
    }

    fn find_correction(&mut self, merchant: MerchantId, id: CorrectionId) -> Result<Option<CorrectionRecord>> {
        let sql = format!("SELECT {CORRECTION_COLUMNS} FROM corrections WHERE merchant_id = ?1 AND id = ?2");
        Ok(self.corrections_from(&sql, &[Value::Text(merchant.to_string()), Value::Text(id.to_string())])?.pop())
    }

    fn find_correction_of_sale(
        &mut self,
        merchant: MerchantId,
        sale: SaleId,
        kind: &str,
    ) -> Result<Option<CorrectionRecord>> {
        let sql = format!(
            "SELECT {CORRECTION_COLUMNS} FROM corrections WHERE merchant_id = ?1 AND sale_id = ?2 AND kind = ?3"
        );
        Ok(self
            .corrections_from(
                &sql,
                &[Value::Text(merchant.to_string()), Value::Text(sale.to_string()), Value::Text(kind.to_owned())],
            )?
            .pop())
    }

    fn list_corrections(
        &mut self,
        merchant: MerchantId,
        status: Option<&str>,
        starting_after: Option<CorrectionId>,
        limit: u32,
    ) -> Result<Vec<CorrectionRecord>> {
        let sql = format!(
            "SELECT {CORRECTION_COLUMNS} FROM corrections WHERE merchant_id = ?1 AND (?2 IS NULL OR status = ?2)
             AND (?3 IS NULL OR id < ?3) ORDER BY id DESC LIMIT ?4"
        );
        let text = |v: Option<String>| v.map(Value::Text).unwrap_or(Value::Null);
        self.corrections_from(
            &sql,
            &[
                Value::Text(merchant.to_string()),
                text(status.map(str::to_owned)),
                text(starting_after.map(|c| c.to_string())),
                Value::Integer(i64::from(limit)),
            ],
        )
    }
}
