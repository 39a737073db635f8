//! Records as stored. Sales are the core's [`Sale`]; the rest are plain
//! structs that the app turns into answers.

use jiff::Timestamp;
use refundry_core::ids::{
    CorrectionId, DisputeId, EvidenceId, KeyId, MerchantId, RefundId, SaleId, SessionId, StoreId, UserId,
};
use refundry_core::money::Money;
use refundry_core::refund::{PlannedItem, RefundReason, RefundStatus, RefundType};

pub use refundry_core::sale::Sale;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merchant {
    pub id: MerchantId,
    pub name: String,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreRecord {
    pub id: StoreId,
    pub merchant_id: MerchantId,
    pub name: String,
    pub created_at: Timestamp,
}

/// A POS terminal (终端), known by the terminal number the acquirer gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Terminal {
    pub merchant_id: MerchantId,
    pub terminal_id: String,
    pub store_id: StoreId,
    pub created_at: Timestamp,
}

/// An API key. Only a SHA-256 of the secret is kept: the secret is 256
/// random bits, so a slow password hash would add nothing but latency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    pub id: KeyId,
    pub merchant_id: MerchantId,
    pub name: String,
    pub secret_sha256: [u8; 32],
    pub scopes: Vec<String>,
    /// A key pinned to a store only sees and touches that store's sales.
    pub store_id: Option<StoreId>,
    /// A key pinned to a terminal only records and refunds that terminal's sales.
    pub terminal_id: Option<String>,
    pub created_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
}

/// A person of a merchant who logs in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    pub merchant_id: MerchantId,
    pub username: String,
    pub display_name: String,
    /// `cashier`, `supervisor`, `finance`, `risk` or `admin`.
    pub role: String,
    /// Argon2id PHC string.
    pub password_hash: String,
    pub store_id: Option<StoreId>,
    pub failed_logins: u32,
    pub locked_until: Option<Timestamp>,
    pub created_at: Timestamp,
    pub disabled_at: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: SessionId,
    pub user_id: UserId,
    pub secret_sha256: [u8; 32],
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
}

/// One version of a refund policy: merchant-wide (`store_id` none) or a
/// store's override. Versions only grow; a refund records the one it was
/// decided under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyRecord {
    pub merchant_id: MerchantId,
    pub version: i64,
    pub store_id: Option<StoreId>,
    /// JSON of the policy's rules.
    pub body: String,
    pub created_by: String,
    pub created_at: Timestamp,
}

/// A terminal batch the terminal reported settled (批结算).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchRecord {
    pub merchant_id: MerchantId,
    pub terminal_id: String,
    pub batch_no: String,
    pub settled_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refund {
    pub id: RefundId,
    pub merchant_id: MerchantId,
    pub sale_id: SaleId,
    pub refund_type: RefundType,
    pub status: RefundStatus,
    pub amount: Money,
    pub reason: RefundReason,
    pub note: Option<String>,
    pub items: Vec<PlannedItem>,
    pub failure_reason: Option<String>,
    pub acquirer_reference: Option<String>,
    pub attempts: u32,
    /// Who asked: `user:usr_…`, or `key:key_…` when a key acted without
    /// naming an operator. The approver may never be the same.
    pub requested_by: String,
    pub policy_version: i64,
    /// JSON of the policy decision (outcome and reasons) it was created under.
    pub decision: String,
    pub approval_expires_at: Option<Timestamp>,
    /// Who approved or rejected it, and why.
    pub decided_by: Option<String>,
    pub decision_note: Option<String>,
    /// The STAN of the current attempt's message, recorded before it is sent.
    pub stan: Option<u32>,
    /// When the money should reach the customer (T+N by payment method).
    pub expected_arrival_at: Option<Timestamp>,
    /// When it did, once known.
    pub arrived_at: Option<Timestamp>,
    /// The customer's contact for the confirmation, sealed by the app.
    pub customer_contact: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub completed_at: Option<Timestamp>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SaleQuery {
    /// Only sales of this store (a store-pinned key) or terminal.
    pub store_id: Option<StoreId>,
    pub voucher_no: Option<String>,
    pub rrn: Option<String>,
    pub last4: Option<String>,
    pub amount_minor: Option<i64>,
    pub terminal_id: Option<String>,
    pub captured_from: Option<Timestamp>,
    pub captured_to: Option<Timestamp>,
    /// Newest first; the page starts after this id.
    pub starting_after: Option<SaleId>,
    pub limit: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RefundQuery {
    pub sale_id: Option<SaleId>,
    pub status: Option<RefundStatus>,
    /// Refunds of sales of this store.
    pub store_id: Option<StoreId>,
    pub requested_by: Option<String>,
    pub starting_after: Option<RefundId>,
    pub limit: u32,
}

/// One group of refunds asked for in a period, as the dashboard adds them
/// up: the same business day, reason, store, requester and status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundGroup {
    /// Days since 1970-01-01 in the business time zone.
    pub day: i64,
    pub reason: String,
    pub store_id: StoreId,
    pub requested_by: String,
    pub status: String,
    pub count: u64,
    pub amount_minor: i64,
}

/// How long a succeeded refund took, in seconds from its request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefundDuration {
    pub to_completed_s: i64,
    /// To the money reaching the customer, where that was recorded.
    pub to_arrived_s: Option<i64>,
}

/// Which audit events to list, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    pub action: Option<String>,
    /// The actor, or a person acting through a key (`user:… via key:…`).
    pub actor: Option<String>,
    pub subject: Option<String>,
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
    /// Events before this position in the chain: the next page.
    pub before_seq: Option<i64>,
    pub limit: u32,
}

/// Work to do after a commit: written in the same transaction as the change
/// that calls for it, so it can be neither lost nor invented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewJob {
    /// Whose work it is (operators of one merchant see only theirs).
    pub merchant_id: Option<MerchantId>,
    pub kind: String,
    pub payload: String,
    pub run_after: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub id: i64,
    pub kind: String,
    pub payload: String,
    /// Including the current one.
    pub attempts: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyRecord {
    pub merchant_id: MerchantId,
    pub endpoint: String,
    pub key: String,
    pub fingerprint: String,
    pub status_code: u16,
    pub body: String,
    pub created_at: Timestamp,
}

/// One link of a merchant's hash-chained audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    pub merchant_id: MerchantId,
    pub seq: i64,
    pub at: Timestamp,
    pub actor: String,
    /// Where the actor came from (client IP), or the component for
    /// Refundry's own actions.
    pub source: String,
    pub action: String,
    pub subject: String,
    /// Canonical JSON of what changed.
    pub data: String,
    pub prev_hash: String,
    pub hash: String,
}

/// One call to the acquirer about a refund, as recorded after it returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcquirerCall {
    pub refund_id: RefundId,
    pub attempt: u32,
    pub stan: u32,
    /// `submit` or `inquire`.
    pub kind: String,
    pub processor: String,
    pub started_at: Timestamp,
    pub duration_ms: i64,
    /// approved, declined, timeout, unavailable or not_received.
    pub outcome: String,
    pub response_code: Option<String>,
    /// What was sent and what came back, masked: never card data.
    pub detail: String,
}

/// An outbox job as operators see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRecord {
    pub id: i64,
    pub merchant_id: Option<MerchantId>,
    pub kind: String,
    pub payload: String,
    /// ready, running, done or dead.
    pub state: String,
    pub attempts: u32,
    pub run_after: Timestamp,
    pub last_error: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// Where a merchant wants to hear about changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEndpoint {
    pub id: String,
    pub merchant_id: MerchantId,
    pub url: String,
    /// Event types (`refund.succeeded`, …) or `*`.
    pub events: Vec<String>,
    /// The signing secret (encrypted at rest by the app).
    pub secret: String,
    pub created_at: Timestamp,
    pub disabled_at: Option<Timestamp>,
}

/// One try at delivering one event to one endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookDelivery {
    pub id: i64,
    pub endpoint_id: String,
    pub event_id: String,
    pub event_type: String,
    pub payload: String,
    pub attempt: u32,
    pub at: Timestamp,
    pub status_code: Option<u16>,
    pub duration_ms: i64,
    pub error: Option<String>,
}

/// A chargeback or retrieval request as stored; the app maps the wire
/// names to the core's state machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisputeRecord {
    pub id: DisputeId,
    pub merchant_id: MerchantId,
    pub sale_id: SaleId,
    /// The acquirer's case number.
    pub case_ref: String,
    pub network: String,
    pub reason_code: String,
    pub category: Option<String>,
    pub stage: String,
    pub status: String,
    pub amount: Money,
    /// The response deadline.
    pub due_by: Timestamp,
    pub note: Option<String>,
    pub opened_at: Timestamp,
    pub updated_at: Timestamp,
}

/// One item of evidence on a case; the file's bytes are read apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvidenceRecord {
    pub id: EvidenceId,
    pub merchant_id: MerchantId,
    pub dispute_id: DisputeId,
    /// receipt, signature, refund_proof, delivery_proof, correspondence or other.
    pub kind: String,
    pub note: Option<String>,
    pub file: Option<EvidenceFile>,
    pub added_by: String,
    pub added_at: Timestamp,
}

/// What is known of an attached file without reading it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvidenceFile {
    /// Sanitised: no path, no control characters.
    pub name: String,
    /// As sniffed from the bytes, never as the caller said.
    pub content_type: String,
    pub size_bytes: i64,
    /// Lower-case hex SHA-256 of the bytes.
    pub sha256: String,
}

/// A correction case (错收) as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorrectionRecord {
    pub id: CorrectionId,
    pub merchant_id: MerchantId,
    pub store_id: StoreId,
    /// The charge suspected to be wrong.
    pub sale_id: SaleId,
    /// duplicate_charge, extra_zero, amount_outlier, missing_order or other.
    pub kind: String,
    /// The finding's evidence as JSON text.
    pub evidence: String,
    /// operator_error, system_fault, transmission_error or other.
    pub cause: String,
    pub responsible_party: Option<String>,
    /// open, refunded or dismissed.
    pub status: String,
    pub refund_id: Option<RefundId>,
    pub resolution_note: Option<String>,
    /// Who opened it: a person, a key, or `system:wrong-charge-watch`.
    pub opened_by: String,
    pub summary_zh: String,
    pub summary_en: String,
    pub opened_at: Timestamp,
    pub updated_at: Timestamp,
}
