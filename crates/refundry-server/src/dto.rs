//! The wire format: request and response bodies, and their conversion from
//! and into domain types. Only this crate knows JSON shapes.

use jiff::Timestamp;
use jiff::fmt::temporal::DateTimePrinter;
use refundry_app::sales::{NewSale, SaleView};
use refundry_app::{AppError, ErrorCode};
use refundry_core::card::{First6, Last4};
use refundry_core::ids::{SaleId, StoreId};
use refundry_core::money::{Currency, Money};
use refundry_core::refund::{ItemQuantity, RefundAsk, RefundReason};
use refundry_core::sale::{CardBrand, EntryMode, LineItem, PaymentMethod, Wallet};
use refundry_store::model::{BatchRecord, Refund};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::problem::ApiError;

fn invalid(field: &str, detail: impl Into<String>) -> ApiError {
    ApiError(AppError::validation(field, detail))
}

fn one_of<T: Copy>(
    field: &str,
    text: &str,
    parse: fn(&str) -> Option<T>,
    all: &[T],
    name: fn(T) -> &'static str,
) -> Result<T, ApiError> {
    parse(text).ok_or_else(|| {
        let allowed: Vec<&str> = all.iter().map(|v| name(*v)).collect();
        invalid(field, format!("{field} must be one of: {}", allowed.join(", ")))
    })
}

pub fn parse_currency(field: &str, code: &str) -> Result<Currency, ApiError> {
    Currency::parse(code).map_err(|_| invalid(field, format!("{field} must be a lower-case ISO 4217 code such as cny")))
}

pub fn parse_time(field: &str, text: &str) -> Result<Timestamp, ApiError> {
    text.parse::<Timestamp>()
        .map_err(|_| invalid(field, format!("{field} must be an RFC 3339 time such as 2026-11-26T10:00:00+08:00")))
}

pub fn rfc3339(t: Timestamp) -> String {
    // whole microseconds, UTC, `Z`: what the store keeps
    const PRINTER: DateTimePrinter = DateTimePrinter::new().precision(Some(6));
    PRINTER.timestamp_to_string(&t)
}

// ---------- sales ----------

#[derive(Debug, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum PaymentMethodBody {
    /// A card: brand, first 6 and last 4 digits as on the slip. Never the
    /// full number.
    Card {
        #[schema(example = "unionpay")]
        brand: String,
        #[schema(example = "622202")]
        first6: String,
        #[schema(example = "1234")]
        last4: String,
        #[schema(example = "chip")]
        entry_mode: String,
        /// The acquirer's opaque card token, when the terminal has one: only
        /// a keyed HMAC of it is kept, to recognise the same card charged
        /// twice. Without it, first 6 + last 4 are used (weaker).
        #[serde(default)]
        fingerprint: Option<String>,
    },
    Wallet {
        #[schema(example = "alipay")]
        wallet: String,
    },
    Cash,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemBody {
    #[schema(example = "6901234567892")]
    pub sku: String,
    #[schema(example = "美式咖啡 Americano")]
    pub name: String,
    #[schema(example = 2)]
    pub quantity: u32,
    /// Price of one unit, in minor units.
    #[schema(example = 1800)]
    pub unit_amount: i64,
}

/// A completed POS payment.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSale {
    /// Captured amount in minor units (fen for cny).
    #[schema(example = 3600)]
    pub amount: i64,
    #[schema(example = "cny")]
    pub currency: String,
    pub payment_method: PaymentMethodBody,
    /// 凭证号, as printed on the slip.
    #[schema(example = "000123")]
    pub voucher_no: Option<String>,
    /// 参考号 (retrieval reference number), 12 characters.
    #[schema(example = "123456789012")]
    pub rrn: Option<String>,
    /// 授权码.
    #[schema(example = "A1B2C3")]
    pub auth_code: Option<String>,
    /// 终端号. A terminal seen for the first time joins `store_id` (or the
    /// merchant's first store).
    #[schema(example = "T0001")]
    pub terminal_id: String,
    /// 批次号. Until this batch is settled, refunding a whole card sale voids it.
    #[schema(example = "000001")]
    pub batch_no: Option<String>,
    #[schema(example = "2026-11-26T10:00:00+08:00")]
    pub captured_at: String,
    pub store_id: Option<String>,
    #[serde(default)]
    pub items: Vec<ItemBody>,
    /// With an API key: the username of the cashier at the terminal.
    #[schema(example = "wang.fang")]
    pub operator: Option<String>,
    /// The till's order for this sale, where the till sends orders.
    #[schema(example = "ORD-20261126-0042")]
    pub order_ref: Option<String>,
}

impl CreateSale {
    pub fn into_new_sale(self) -> Result<NewSale, ApiError> {
        let currency = parse_currency("currency", &self.currency)?;
        let amount =
            Money::positive(self.amount, currency).map_err(|e| ApiError(AppError::from_amount("amount", e)))?;
        let mut card_token = None;
        let payment_method = match self.payment_method {
            PaymentMethodBody::Card { brand, first6, last4, entry_mode, fingerprint } => {
                card_token = fingerprint;
                PaymentMethod::Card {
                    brand: one_of("payment_method.brand", &brand, CardBrand::parse, CardBrand::ALL, CardBrand::as_str)?,
                    first6: First6::parse(&first6).map_err(|e| invalid("payment_method.first6", e.to_string()))?,
                    last4: Last4::parse(&last4).map_err(|e| invalid("payment_method.last4", e.to_string()))?,
                    entry_mode: one_of(
                        "payment_method.entry_mode",
                        &entry_mode,
                        EntryMode::parse,
                        EntryMode::ALL,
                        EntryMode::as_str,
                    )?,
                }
            }
            PaymentMethodBody::Wallet { wallet } => PaymentMethod::Wallet {
                wallet: one_of("payment_method.wallet", &wallet, Wallet::parse, Wallet::ALL, Wallet::as_str)?,
            },
            PaymentMethodBody::Cash => PaymentMethod::Cash,
        };
        let captured_at = parse_time("captured_at", &self.captured_at)?;
        if captured_at > Timestamp::now() + jiff::SignedDuration::from_mins(10) {
            return Err(invalid("captured_at", "captured_at is in the future"));
        }
        let store_id =
            self.store_id.map(|s| StoreId::parse(&s).map_err(|e| invalid("store_id", e.to_string()))).transpose()?;
        let items = self
            .items
            .into_iter()
            .map(|i| LineItem { sku: i.sku, name: i.name, quantity: i.quantity, unit_amount_minor: i.unit_amount })
            .collect();
        Ok(NewSale {
            amount,
            payment_method,
            voucher_no: self.voucher_no,
            rrn: self.rrn,
            auth_code: self.auth_code,
            terminal_id: self.terminal_id,
            batch_no: self.batch_no,
            captured_at,
            store_id,
            items,
            card_token,
            order_ref: self.order_ref,
        })
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PaymentMethodDto {
    Card { brand: String, first6: String, last4: String, entry_mode: String },
    Wallet { wallet: String },
    Cash,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ItemDto {
    pub sku: String,
    pub name: String,
    pub quantity: u32,
    pub unit_amount: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SaleDto {
    #[schema(example = "sale_0193a4b1c2d37e8f9a0b1c2d3e4f5a6b")]
    pub id: String,
    /// Always `sale`.
    pub object: &'static str,
    pub amount: i64,
    pub currency: String,
    pub payment_method: PaymentMethodDto,
    pub voucher_no: Option<String>,
    pub rrn: Option<String>,
    pub auth_code: Option<String>,
    pub terminal_id: String,
    pub batch_no: Option<String>,
    pub store_id: String,
    pub captured_at: String,
    pub created_at: String,
    pub items: Vec<ItemDto>,
    /// Held by voids and refunds that have not failed (in progress or done).
    pub refunded_amount: i64,
    /// What may still be refunded: amount − refunded_amount.
    pub refundable_amount: i64,
}

impl From<&SaleView> for SaleDto {
    fn from(v: &SaleView) -> SaleDto {
        let s = &v.sale;
        SaleDto {
            id: s.id.to_string(),
            object: "sale",
            amount: s.amount.minor,
            currency: s.amount.currency.code().to_owned(),
            payment_method: match &s.payment_method {
                PaymentMethod::Card { brand, first6, last4, entry_mode } => PaymentMethodDto::Card {
                    brand: brand.as_str().into(),
                    first6: first6.as_str().into(),
                    last4: last4.as_str().into(),
                    entry_mode: entry_mode.as_str().into(),
                },
                PaymentMethod::Wallet { wallet } => PaymentMethodDto::Wallet { wallet: wallet.as_str().into() },
                PaymentMethod::Cash => PaymentMethodDto::Cash,
            },
            voucher_no: s.voucher_no.clone(),
            rrn: s.rrn.clone(),
            auth_code: s.auth_code.clone(),
            terminal_id: s.terminal_id.clone(),
            batch_no: s.batch_no.clone(),
            store_id: s.store_id.to_string(),
            captured_at: rfc3339(s.captured_at),
            created_at: rfc3339(s.created_at),
            items: s
                .items
                .iter()
                .map(|i| ItemDto {
                    sku: i.sku.clone(),
                    name: i.name.clone(),
                    quantity: i.quantity,
                    unit_amount: i.unit_amount_minor,
                })
                .collect(),
            refunded_amount: v.refunded_minor,
            refundable_amount: v.refundable_minor,
        }
    }
}

// ---------- batches ----------

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettleBatch {
    #[schema(example = "T0001")]
    pub terminal_id: String,
    #[schema(example = "000001")]
    pub batch_no: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BatchDto {
    /// Always `batch`.
    pub object: &'static str,
    pub terminal_id: String,
    pub batch_no: String,
    pub settled_at: String,
}

impl From<&BatchRecord> for BatchDto {
    fn from(b: &BatchRecord) -> BatchDto {
        BatchDto {
            object: "batch",
            terminal_id: b.terminal_id.clone(),
            batch_no: b.batch_no.clone(),
            settled_at: rfc3339(b.settled_at),
        }
    }
}

// ---------- refunds ----------

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefundItemBody {
    #[schema(example = "6901234567892")]
    pub sku: String,
    #[schema(example = 1)]
    pub quantity: u32,
}

/// Give back all or part of a sale: name either `amount` or `items`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRefund {
    /// The acquirer's token of the card presented for the refund, when the
    /// terminal reads one: a card other than the one that paid is held for
    /// a supervisor (or alerted), as the abuse rules say.
    pub card_fingerprint: Option<String>,
    #[schema(example = "sale_0193a4b1c2d37e8f9a0b1c2d3e4f5a6b")]
    pub sale_id: String,
    /// Minor units. Either this or `items`.
    #[schema(example = 1800)]
    pub amount: Option<i64>,
    /// Items and quantities to give back, priced as sold. Either this or `amount`.
    pub items: Option<Vec<RefundItemBody>>,
    /// One of customer_request, defective, wrong_charge, duplicate,
    /// service_issue, fraud, other.
    #[schema(example = "defective")]
    pub reason: String,
    #[schema(example = "cup was cracked")]
    pub note: Option<String>,
    /// With an API key: the username of the cashier at the terminal.
    #[schema(example = "wang.fang")]
    pub operator: Option<String>,
    /// Where to send the confirmation when the refund succeeds. Stored
    /// encrypted; shown nowhere.
    pub customer: Option<CustomerBody>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomerBody {
    #[schema(example = "wang.fang@example.cn")]
    pub email: Option<String>,
    #[schema(example = "13800138000")]
    pub phone: Option<String>,
    /// `zh-CN` (default) or `en`.
    pub locale: Option<String>,
}

impl CustomerBody {
    fn into_contact(self) -> Result<refundry_app::notify::CustomerContact, ApiError> {
        use refundry_core::contact::{Email, Phone};
        let email = self
            .email
            .as_deref()
            .map(Email::parse)
            .transpose()
            .map_err(|e| invalid("customer.email", e.to_string()))?;
        let phone = self
            .phone
            .as_deref()
            .map(Phone::parse)
            .transpose()
            .map_err(|e| invalid("customer.phone", e.to_string()))?;
        if email.is_none() && phone.is_none() {
            return Err(invalid("customer", "give an email or a phone, or leave customer out"));
        }
        let locale = match self.locale.as_deref() {
            None | Some("zh-CN") | Some("zh") => "zh-CN",
            Some("en") => "en",
            Some(_) => return Err(invalid("customer.locale", "locale must be zh-CN or en")),
        };
        Ok(refundry_app::notify::CustomerContact { email, phone, locale: locale.to_owned() })
    }
}

impl CreateRefund {
    pub fn into_request(self) -> Result<refundry_app::refunds::RefundRequest, ApiError> {
        let sale_id = SaleId::parse(&self.sale_id).map_err(|e| invalid("sale_id", e.to_string()))?;
        let ask = match (self.amount, self.items) {
            (Some(amount), None) => RefundAsk::Amount(amount),
            (None, Some(items)) => {
                RefundAsk::Items(items.into_iter().map(|i| ItemQuantity { sku: i.sku, quantity: i.quantity }).collect())
            }
            _ => return Err(invalid("amount", "name either amount or items, not both and not neither")),
        };
        let reason = one_of("reason", &self.reason, RefundReason::parse, RefundReason::ALL, RefundReason::as_str)?;
        let customer = self.customer.map(CustomerBody::into_contact).transpose()?;
        Ok(refundry_app::refunds::RefundRequest {
            sale_id,
            ask,
            reason,
            note: self.note,
            customer,
            card_token: self.card_fingerprint,
        })
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RefundItemDto {
    pub sku: String,
    pub quantity: u32,
    pub amount: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RefundDto {
    #[schema(example = "re_0193a4b1c2d37e8f9a0b1c2d3e4f5a6b")]
    pub id: String,
    /// Always `refund`.
    pub object: &'static str,
    pub sale_id: String,
    /// `void` (撤销: whole unsettled card sale) or `refund` (退货).
    #[serde(rename = "type")]
    pub refund_type: String,
    /// requires_approval, pending, processing, succeeded, failed, rejected,
    /// expired or canceled.
    pub status: String,
    pub amount: i64,
    pub currency: String,
    pub reason: String,
    pub note: Option<String>,
    pub items: Vec<RefundItemDto>,
    pub failure_reason: Option<String>,
    pub acquirer_reference: Option<String>,
    pub attempts: u32,
    /// `user:usr_…`, or `key:key_…` when a key acted without an operator.
    pub requested_by: String,
    /// The refund policy version it was decided under (0: built-in default).
    pub policy_version: i64,
    pub decision: DecisionDto,
    /// A refund waiting for a supervisor expires at this time.
    pub approval_expires_at: Option<String>,
    /// Who approved or rejected it, and their note.
    pub decided_by: Option<String>,
    pub decision_note: Option<String>,
    /// When the money should reach the customer (T+N by payment method).
    pub expected_arrival_at: Option<String>,
    /// When it did, once known.
    pub arrived_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub completed_at: Option<String>,
}

/// The policy's decision: the outcome and every reason, each with a stable
/// code and a sentence in English and Simplified Chinese.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DecisionDto {
    /// approve, requires_approval or reject.
    pub outcome: String,
    pub reasons: Vec<ReasonDto>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ReasonDto {
    #[schema(example = "amount_over_limit")]
    pub code: String,
    pub outcome: String,
    pub en: String,
    pub zh: String,
}

impl From<&refundry_core::policy::Decision> for DecisionDto {
    fn from(d: &refundry_core::policy::Decision) -> DecisionDto {
        DecisionDto {
            outcome: d.outcome.as_str().into(),
            reasons: d
                .reasons
                .iter()
                .map(|r| ReasonDto {
                    code: r.code.into(),
                    outcome: r.outcome.as_str().into(),
                    en: r.en.clone(),
                    zh: r.zh.clone(),
                })
                .collect(),
        }
    }
}

impl From<&Refund> for RefundDto {
    fn from(r: &Refund) -> RefundDto {
        RefundDto {
            id: r.id.to_string(),
            object: "refund",
            sale_id: r.sale_id.to_string(),
            refund_type: r.refund_type.as_str().into(),
            status: r.status.as_str().into(),
            amount: r.amount.minor,
            currency: r.amount.currency.code().into(),
            reason: r.reason.as_str().into(),
            note: r.note.clone(),
            items: r
                .items
                .iter()
                .map(|i| RefundItemDto { sku: i.sku.clone(), quantity: i.quantity, amount: i.amount_minor })
                .collect(),
            failure_reason: r.failure_reason.clone(),
            acquirer_reference: r.acquirer_reference.clone(),
            attempts: r.attempts,
            requested_by: r.requested_by.clone(),
            policy_version: r.policy_version,
            // written by the app from the same shape; an unreadable one is shown empty
            decision: serde_json::from_str(&r.decision)
                .unwrap_or(DecisionDto { outcome: String::new(), reasons: Vec::new() }),
            approval_expires_at: r.approval_expires_at.map(rfc3339),
            decided_by: r.decided_by.clone(),
            decision_note: r.decision_note.clone(),
            expected_arrival_at: r.expected_arrival_at.map(rfc3339),
            arrived_at: r.arrived_at.map(rfc3339),
            created_at: rfc3339(r.created_at),
            updated_at: rfc3339(r.updated_at),
            completed_at: r.completed_at.map(rfc3339),
        }
    }
}

// ---------- lists ----------

#[derive(Debug, Serialize, ToSchema)]
pub struct SaleList {
    /// Always `list`.
    pub object: &'static str,
    pub data: Vec<SaleDto>,
    pub has_more: bool,
    /// Pass as `starting_after` for the next page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RefundList {
    pub object: &'static str,
    pub data: Vec<RefundDto>,
    pub has_more: bool,
    pub next_cursor: Option<String>,
}

pub fn bad_query(field: &str, detail: impl Into<String>) -> ApiError {
    ApiError(AppError::new(ErrorCode::InvalidRequest, detail).with("field", field))
}

// ---------- approvals ----------

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecideRefund {
    /// Required to reject; optional to approve.
    pub note: Option<String>,
    /// With an API key: the username of the supervisor deciding.
    pub operator: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PreviewDto {
    /// Always `refund_preview`.
    pub object: &'static str,
    #[serde(rename = "type")]
    pub refund_type: String,
    pub amount: i64,
    pub currency: String,
    pub items: Vec<RefundItemDto>,
    pub refundable_amount: i64,
    pub policy_version: i64,
    pub decision: DecisionDto,
}

impl From<&refundry_app::refunds::Preview> for PreviewDto {
    fn from(p: &refundry_app::refunds::Preview) -> PreviewDto {
        PreviewDto {
            object: "refund_preview",
            refund_type: p.plan.refund_type.as_str().into(),
            amount: p.plan.amount.minor,
            currency: p.plan.amount.currency.code().into(),
            items: p
                .plan
                .items
                .iter()
                .map(|i| RefundItemDto { sku: i.sku.clone(), quantity: i.quantity, amount: i.amount_minor })
                .collect(),
            refundable_amount: p.refundable_minor,
            policy_version: p.policy_version,
            decision: DecisionDto::from(&p.decision),
        }
    }
}

// ---------- people, sessions, keys ----------

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LogIn {
    #[schema(example = "wang.fang")]
    pub username: String,
    pub password: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserDto {
    pub id: String,
    /// Always `user`.
    pub object: &'static str,
    pub username: String,
    pub display_name: String,
    /// cashier, supervisor, finance, risk or admin.
    pub role: String,
    pub store_id: Option<String>,
    pub locked_until: Option<String>,
    pub created_at: String,
}

impl From<&refundry_store::model::User> for UserDto {
    fn from(u: &refundry_store::model::User) -> UserDto {
        UserDto {
            id: u.id.to_string(),
            object: "user",
            username: u.username.clone(),
            display_name: u.display_name.clone(),
            role: u.role.clone(),
            store_id: u.store_id.map(|s| s.to_string()),
            locked_until: u.locked_until.map(rfc3339),
            created_at: rfc3339(u.created_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionDto {
    /// Always `session`.
    pub object: &'static str,
    /// Send as `Authorization: Bearer …`. Shown once.
    pub token: String,
    pub expires_at: String,
    pub user: UserDto,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    #[schema(example = "wang.fang")]
    pub username: String,
    #[schema(example = "王芳")]
    pub display_name: String,
    #[schema(example = "cashier")]
    pub role: String,
    /// At least 10 characters.
    pub password: String,
    /// A person of one store only sees that store's sales.
    pub store_id: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    #[schema(example = "counter T0001")]
    pub name: String,
    /// Any of sales:write, refunds:write, refunds:approve, disputes:write, reports:read, admin.
    pub scopes: Vec<String>,
    pub store_id: Option<String>,
    pub terminal_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct KeyDto {
    pub id: String,
    /// Always `api_key`.
    pub object: &'static str,
    /// The secret, shown this once.
    pub secret: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MeDto {
    /// Always `principal`.
    pub object: &'static str,
    /// `user:usr_…` or `key:key_…`.
    pub identity: String,
    pub merchant_id: String,
    pub scopes: Vec<String>,
    pub user: Option<String>,
    pub role: Option<String>,
    pub store_id: Option<String>,
    pub terminal_id: Option<String>,
}

// ---------- policy ----------

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutPolicy {
    /// Absent: the merchant-wide policy; present: that store's override.
    pub store_id: Option<String>,
    #[schema(value_type = Object)]
    pub rules: refundry_app::policy::PolicyDoc,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PolicyDto {
    /// Always `refund_policy`.
    pub object: &'static str,
    /// 0 is the built-in default.
    pub version: i64,
    pub store_id: Option<String>,
    #[schema(value_type = Object)]
    pub rules: refundry_app::policy::PolicyDoc,
    pub created_at: Option<String>,
}

impl From<&refundry_app::policy::PolicyInForce> for PolicyDto {
    fn from(p: &refundry_app::policy::PolicyInForce) -> PolicyDto {
        PolicyDto {
            object: "refund_policy",
            version: p.version,
            store_id: p.store_id.map(|s| s.to_string()),
            rules: p.doc(),
            created_at: p.created_at.map(rfc3339),
        }
    }
}

// ---------- audit ----------

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEventDto {
    /// Position in the merchant's chain, from 1.
    pub seq: i64,
    pub at: String,
    /// Who: `user:usr_…`, `key:key_…`, `user:… via key:…` or `system:…`.
    pub actor: String,
    /// From where: the client address, or the component.
    pub source: String,
    #[schema(example = "refund.approved")]
    pub action: String,
    pub subject: String,
    /// What changed (before and after where there was a before).
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
    pub prev_hash: String,
    pub hash: String,
}

impl From<&refundry_store::model::AuditEvent> for AuditEventDto {
    fn from(e: &refundry_store::model::AuditEvent) -> AuditEventDto {
        AuditEventDto {
            seq: e.seq,
            at: rfc3339(e.at),
            actor: e.actor.clone(),
            source: e.source.clone(),
            action: e.action.clone(),
            subject: e.subject.clone(),
            data: serde_json::from_str(&e.data).unwrap_or(serde_json::Value::Null),
            prev_hash: e.prev_hash.clone(),
            hash: e.hash.clone(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditList {
    pub object: &'static str,
    pub data: Vec<AuditEventDto>,
    pub has_more: bool,
    /// Pass as `after_seq` for the next page.
    pub next_cursor: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserList {
    pub object: &'static str,
    pub data: Vec<UserDto>,
}

pub fn parse_store(field: &str, id: Option<&str>) -> Result<Option<StoreId>, ApiError> {
    id.map(|s| StoreId::parse(s).map_err(|e| invalid(field, e.to_string()))).transpose()
}

// ---------- acquirer calls, jobs, webhooks ----------

#[derive(Debug, Serialize, ToSchema)]
pub struct AcquirerCallDto {
    pub attempt: u32,
    /// The message's trace number (STAN).
    pub stan: u32,
    /// submit or inquire.
    pub kind: String,
    pub processor: String,
    pub started_at: String,
    pub duration_ms: i64,
    /// approved, declined, timeout, unavailable or not_received.
    pub outcome: String,
    pub response_code: Option<String>,
    /// What was sent and what came back, masked.
    pub detail: String,
}

impl From<&refundry_store::model::AcquirerCall> for AcquirerCallDto {
    fn from(c: &refundry_store::model::AcquirerCall) -> AcquirerCallDto {
        AcquirerCallDto {
            attempt: c.attempt,
            stan: c.stan,
            kind: c.kind.clone(),
            processor: c.processor.clone(),
            started_at: rfc3339(c.started_at),
            duration_ms: c.duration_ms,
            outcome: c.outcome.clone(),
            response_code: c.response_code.clone(),
            detail: c.detail.clone(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AcquirerCallList {
    pub object: &'static str,
    pub data: Vec<AcquirerCallDto>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MarkArrived {
    /// When the money arrived (RFC 3339); now when absent.
    pub arrived_at: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct JobDto {
    pub id: i64,
    pub kind: String,
    /// ready, running, done or dead.
    pub state: String,
    pub attempts: u32,
    pub run_after: String,
    pub last_error: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&refundry_store::model::JobRecord> for JobDto {
    fn from(j: &refundry_store::model::JobRecord) -> JobDto {
        JobDto {
            id: j.id,
            kind: j.kind.clone(),
            state: j.state.clone(),
            attempts: j.attempts,
            run_after: rfc3339(j.run_after),
            last_error: j.last_error.clone(),
            created_at: rfc3339(j.created_at),
            updated_at: rfc3339(j.updated_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct JobList {
    pub object: &'static str,
    pub data: Vec<JobDto>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhookEndpoint {
    #[schema(example = "https://pos.example.cn/refundry/events")]
    pub url: String,
    /// Event types such as refund.succeeded, or `*` for all.
    pub events: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookEndpointDto {
    pub id: String,
    /// Always `webhook_endpoint`.
    pub object: &'static str,
    pub url: String,
    pub events: Vec<String>,
    /// The signing secret: in the answer to its creation only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    pub created_at: String,
}

impl WebhookEndpointDto {
    pub fn of(e: &refundry_store::model::WebhookEndpoint, secret: Option<String>) -> WebhookEndpointDto {
        WebhookEndpointDto {
            id: e.id.clone(),
            object: "webhook_endpoint",
            url: e.url.clone(),
            events: e.events.clone(),
            secret,
            created_at: rfc3339(e.created_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookEndpointList {
    pub object: &'static str,
    pub data: Vec<WebhookEndpointDto>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookDeliveryDto {
    pub id: i64,
    pub event_id: String,
    pub event_type: String,
    pub attempt: u32,
    pub at: String,
    pub status_code: Option<u16>,
    pub duration_ms: i64,
    pub error: Option<String>,
}

impl From<&refundry_store::model::WebhookDelivery> for WebhookDeliveryDto {
    fn from(d: &refundry_store::model::WebhookDelivery) -> WebhookDeliveryDto {
        WebhookDeliveryDto {
            id: d.id,
            event_id: d.event_id.clone(),
            event_type: d.event_type.clone(),
            attempt: d.attempt,
            at: rfc3339(d.at),
            status_code: d.status_code,
            duration_ms: d.duration_ms,
            error: d.error.clone(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookDeliveryList {
    pub object: &'static str,
    pub data: Vec<WebhookDeliveryDto>,
}

// ---------- disputes ----------

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateDispute {
    pub sale_id: String,
    /// The acquirer's case number; the same case twice is one case.
    #[schema(example = "CB20261126001")]
    pub case_ref: String,
    /// unionpay, visa, mastercard, amex, jcb or other.
    #[schema(example = "visa")]
    pub network: String,
    /// The network's reason code, e.g. 13.1 (Visa) or 4853 (Mastercard).
    #[schema(example = "13.1")]
    pub reason_code: String,
    /// retrieval_request (调单) or chargeback (default).
    pub stage: Option<String>,
    pub amount: i64,
    /// The response deadline (RFC 3339).
    pub due_by: String,
    pub note: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DisputeEventBody {
    /// respond_to_retrieval, escalate, submit_evidence, accept, win, lose,
    /// pre_arbitration or mark_past_due.
    pub event: String,
    pub note: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DisputeDto {
    #[schema(example = "dp_0193a4b1c2d37e8f9a0b1c2d3e4f5a6b")]
    pub id: String,
    /// Always `dispute`.
    pub object: &'static str,
    pub sale_id: String,
    pub case_ref: String,
    pub network: String,
    pub reason_code: String,
    /// fraud, authorization, processing_error or consumer_dispute, when the code is known.
    pub category: Option<String>,
    pub stage: String,
    pub status: String,
    pub amount: i64,
    pub currency: String,
    pub due_by: String,
    /// Whole days to the deadline (negative once past).
    pub days_left: i64,
    pub note: Option<String>,
    pub opened_at: String,
    pub updated_at: String,
}

impl From<&refundry_store::model::DisputeRecord> for DisputeDto {
    fn from(d: &refundry_store::model::DisputeRecord) -> DisputeDto {
        let left = refundry_core::dispute::deadline_status(d.due_by, Timestamp::now(), 3);
        DisputeDto {
            id: d.id.to_string(),
            object: "dispute",
            sale_id: d.sale_id.to_string(),
            case_ref: d.case_ref.clone(),
            network: d.network.clone(),
            reason_code: d.reason_code.clone(),
            category: d.category.clone(),
            stage: d.stage.clone(),
            status: d.status.clone(),
            amount: d.amount.minor,
            currency: d.amount.currency.code().into(),
            due_by: rfc3339(d.due_by),
            days_left: left.days_left,
            note: d.note.clone(),
            opened_at: rfc3339(d.opened_at),
            updated_at: rfc3339(d.updated_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DisputeList {
    pub object: &'static str,
    pub data: Vec<DisputeDto>,
    pub has_more: bool,
    pub next_cursor: Option<String>,
}

/// One item of evidence. The file travels as base64 inside the JSON, so the
/// body goes through the same checks as every other (card data refused,
/// unknown fields refused).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddEvidence {
    /// receipt, signature, refund_proof, delivery_proof, correspondence or other.
    #[schema(example = "receipt")]
    pub kind: String,
    /// What the item shows, in the merchant's words (at most 1000 characters).
    pub note: Option<String>,
    pub file: Option<EvidenceUpload>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EvidenceUpload {
    /// Kept without its path and with unsafe characters removed.
    #[schema(example = "签购单.pdf")]
    pub name: String,
    /// The file's bytes in standard base64. PDF, PNG, JPEG or UTF-8 plain
    /// text, as told by the bytes themselves.
    pub content_base64: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EvidenceDto {
    #[schema(example = "ev_0193a4b1c2d37e8f9a0b1c2d3e4f5a6b")]
    pub id: String,
    /// Always `evidence`.
    pub object: &'static str,
    pub dispute_id: String,
    pub kind: String,
    pub note: Option<String>,
    pub file: Option<EvidenceFileDto>,
    pub added_by: String,
    pub added_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EvidenceFileDto {
    pub name: String,
    /// As sniffed from the bytes.
    pub content_type: String,
    pub size_bytes: i64,
    /// Lower-case hex SHA-256 of the bytes; checked again on every download.
    pub sha256: String,
}

impl From<&refundry_store::model::EvidenceRecord> for EvidenceDto {
    fn from(e: &refundry_store::model::EvidenceRecord) -> EvidenceDto {
        EvidenceDto {
            id: e.id.to_string(),
            object: "evidence",
            dispute_id: e.dispute_id.to_string(),
            kind: e.kind.clone(),
            note: e.note.clone(),
            file: e.file.as_ref().map(|f| EvidenceFileDto {
                name: f.name.clone(),
                content_type: f.content_type.clone(),
                size_bytes: f.size_bytes,
                sha256: f.sha256.clone(),
            }),
            added_by: e.added_by.clone(),
            added_at: rfc3339(e.added_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EvidenceList {
    /// Always `list`.
    pub object: &'static str,
    /// Oldest first.
    pub data: Vec<EvidenceDto>,
}

// ---------- corrections ----------

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCorrection {
    pub sale_id: String,
    /// duplicate_charge, extra_zero, amount_outlier, missing_order or other.
    #[schema(example = "duplicate_charge")]
    pub kind: String,
    /// operator_error, system_fault, transmission_error or other.
    #[schema(example = "operator_error")]
    pub cause: String,
    /// Who is answerable: a cashier, the acquirer, the till vendor…
    pub responsible_party: Option<String>,
    pub note: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefundCorrection {
    /// What to give back, in minor units. By default the whole duplicate
    /// charge, or what an extra zero added; other kinds must say.
    pub amount: Option<i64>,
    pub note: Option<String>,
    /// Corrects the cause the case was opened with.
    pub cause: Option<String>,
    pub responsible_party: Option<String>,
    /// With an API key: the username of the person at the counter.
    pub operator: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DismissCorrection {
    /// Why the charge was right after all.
    pub reason: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CorrectionDto {
    #[schema(example = "cor_0193a4b1c2d37e8f9a0b1c2d3e4f5a6b")]
    pub id: String,
    /// Always `correction`.
    pub object: &'static str,
    pub sale_id: String,
    pub store_id: String,
    pub kind: String,
    /// What the finding rests on: the sales, amounts, minutes apart, the
    /// store's usual amounts, the amount probably meant.
    #[schema(value_type = Object)]
    pub evidence: serde_json::Value,
    pub cause: String,
    pub responsible_party: Option<String>,
    /// open, refunded or dismissed.
    pub status: String,
    pub refund_id: Option<String>,
    pub resolution_note: Option<String>,
    pub opened_by: String,
    pub zh: String,
    pub en: String,
    pub opened_at: String,
    pub updated_at: String,
}

impl From<&refundry_store::model::CorrectionRecord> for CorrectionDto {
    fn from(c: &refundry_store::model::CorrectionRecord) -> CorrectionDto {
        CorrectionDto {
            id: c.id.to_string(),
            object: "correction",
            sale_id: c.sale_id.to_string(),
            store_id: c.store_id.to_string(),
            kind: c.kind.clone(),
            evidence: serde_json::from_str(&c.evidence).unwrap_or_default(),
            cause: c.cause.clone(),
            responsible_party: c.responsible_party.clone(),
            status: c.status.clone(),
            refund_id: c.refund_id.map(|r| r.to_string()),
            resolution_note: c.resolution_note.clone(),
            opened_by: c.opened_by.clone(),
            zh: c.summary_zh.clone(),
            en: c.summary_en.clone(),
            opened_at: rfc3339(c.opened_at),
            updated_at: rfc3339(c.updated_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CorrectionList {
    pub object: &'static str,
    pub data: Vec<CorrectionDto>,
    pub has_more: bool,
    pub next_cursor: Option<String>,
}

/// A case closed by a refund, with that refund.
#[derive(Debug, Serialize, ToSchema)]
pub struct CorrectionRefundDto {
    pub correction: CorrectionDto,
    pub refund: RefundDto,
}

#[cfg(test)]
mod tests {
    use jiff::Timestamp;

    use super::rfc3339;

    #[test]
    fn times_are_printed_in_utc_to_the_microsecond() {
        let at = |s: &str| s.parse::<Timestamp>().unwrap();
        assert_eq!(rfc3339(at("2026-11-26T10:00:00+08:00")), "2026-11-26T02:00:00.000000Z");
        assert_eq!(rfc3339(at("2026-11-26T02:00:00.1234567Z")), "2026-11-26T02:00:00.123456Z");
        assert_eq!(rfc3339(at("1999-12-31T23:59:59.000001Z")), "1999-12-31T23:59:59.000001Z");
    }
}
