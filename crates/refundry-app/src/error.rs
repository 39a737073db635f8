//! Every way a command can be refused, each with a stable machine code.
//! The server maps each code to an HTTP status and titles in one table.

use refundry_core::money::AmountError;
use refundry_core::refund::RefundError;
use refundry_core::sale::SaleError;
use refundry_store::{AsStoreError, StoreError};

macro_rules! codes {
    ($($variant:ident = $text:literal),+ $(,)?) => {
        /// Stable error codes: clients match on these, so they never change
        /// meaning once released.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode { $($variant),+ }

        impl ErrorCode {
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant),+];
            pub fn as_str(self) -> &'static str {
                match self { $(ErrorCode::$variant => $text),+ }
            }
        }
    };
}

codes! {
    InvalidRequest = "invalid_request",
    ValidationFailed = "validation_failed",
    SensitiveCardData = "sensitive_card_data",
    Unauthorized = "unauthorized",
    InvalidCredentials = "invalid_credentials",
    AccountLocked = "account_locked",
    UsernameTaken = "username_taken",
    Forbidden = "forbidden",
    NotFound = "not_found",
    MethodNotAllowed = "method_not_allowed",
    PayloadTooLarge = "payload_too_large",
    RateLimited = "rate_limited",
    UnsupportedMediaType = "unsupported_media_type",
    SaleNotFound = "sale_not_found",
    RefundNotFound = "refund_not_found",
    UnknownStore = "unknown_store",
    TerminalStoreMismatch = "terminal_store_mismatch",
    RefundExceedsRefundable = "refund_exceeds_refundable",
    SaleDisputed = "sale_disputed",
    DisputeNotFound = "dispute_not_found",
    DisputeTransitionNotAllowed = "dispute_transition_not_allowed",
    DisputeClosedToEvidence = "dispute_closed_to_evidence",
    EvidenceNotFound = "evidence_not_found",
    EvidenceFileTooLarge = "evidence_file_too_large",
    EvidenceFileTypeNotAllowed = "evidence_file_type_not_allowed",
    EvidenceFileCorrupt = "evidence_file_corrupt",
    CorrectionNotFound = "correction_not_found",
    CorrectionNotOpen = "correction_not_open",
    RefundRejectedByPolicy = "refund_rejected_by_policy",
    ApproverIsRequester = "approver_is_requester",
    RefundNotAwaitingApproval = "refund_not_awaiting_approval",
    ApprovalExpired = "approval_expired",
    InvalidPolicy = "invalid_policy",
    RefundNotRetryable = "refund_not_retryable",
    RefundNotSucceeded = "refund_not_succeeded",
    JobNotFound = "job_not_found",
    WebhookEndpointNotFound = "webhook_endpoint_not_found",
    WebhookDeliveryNotFound = "webhook_delivery_not_found",
    ItemNotOnSale = "item_not_on_sale",
    ItemQuantityExceedsRefundable = "item_quantity_exceeds_refundable",
    SaleHasNoItems = "sale_has_no_items",
    CurrencyMismatch = "currency_mismatch",
    IdempotencyKeyRequired = "idempotency_key_required",
    IdempotencyKeyReused = "idempotency_key_reused",
    IdempotencyRequestInProgress = "idempotency_request_in_progress",
    Overloaded = "overloaded",
    Unavailable = "unavailable",
    Internal = "internal",
}

/// A refused command. `detail` is for people and never holds card data or
/// customer contact data; `extra` adds machine-readable facts.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{code:?}: {detail}")]
pub struct AppError {
    pub code: ErrorCode,
    pub detail: String,
    pub extra: Vec<(&'static str, serde_json::Value)>,
    store: Option<StoreError>,
}

impl AppError {
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> AppError {
        AppError { code, detail: detail.into(), extra: Vec::new(), store: None }
    }

    pub fn with(mut self, key: &'static str, value: impl Into<serde_json::Value>) -> AppError {
        self.extra.push((key, value.into()));
        self
    }

    pub fn validation(field: &str, detail: impl Into<String>) -> AppError {
        AppError::new(ErrorCode::ValidationFailed, detail).with("field", field)
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> AppError {
        let code = match e {
            StoreError::Overloaded => ErrorCode::Overloaded,
            StoreError::Unavailable => ErrorCode::Unavailable,
            _ => ErrorCode::Internal,
        };
        // a conflict is run again by the store, and is no failure unless it
        // keeps coming back (the store says so then)
        if code == ErrorCode::Internal && !e.is_retryable() {
            tracing::error!(error = %e, "storage failure");
        }
        let detail = match code {
            ErrorCode::Internal => "an internal error occurred; nothing was changed".to_owned(),
            _ => e.to_string(),
        };
        AppError { code, detail, extra: Vec::new(), store: Some(e) }
    }
}

impl AsStoreError for AppError {
    fn as_store_error(&self) -> Option<&StoreError> {
        self.store.as_ref()
    }
}

impl From<RefundError> for AppError {
    fn from(e: RefundError) -> AppError {
        let detail = e.to_string();
        match e {
            RefundError::ExceedsRefundable { requested_minor, refundable_minor } => {
                AppError::new(ErrorCode::RefundExceedsRefundable, detail)
                    .with("requested_amount", requested_minor)
                    .with("refundable_amount", refundable_minor)
            }
            RefundError::UnknownItem { sku } => AppError::new(ErrorCode::ItemNotOnSale, detail).with("sku", sku),
            RefundError::ItemQuantityExceeded { sku, remaining, .. } => {
                AppError::new(ErrorCode::ItemQuantityExceedsRefundable, detail)
                    .with("sku", sku)
                    .with("remaining_quantity", remaining)
            }
            RefundError::SaleHasNoItems => AppError::new(ErrorCode::SaleHasNoItems, detail),
            RefundError::BadItems => AppError::validation("items", detail),
            RefundError::Amount(a) => AppError::from_amount("amount", a),
        }
    }
}

impl From<SaleError> for AppError {
    fn from(e: SaleError) -> AppError {
        let detail = e.to_string();
        match e {
            SaleError::Amount(a) => AppError::from_amount("amount", a),
            SaleError::BadReference { field, .. } => AppError::validation(field, detail),
            SaleError::BadItem { index, .. } => AppError::validation(&format!("items[{index}]"), detail),
            SaleError::ItemsTotalMismatch { .. } | SaleError::DuplicateSku(_) => AppError::validation("items", detail),
        }
    }
}

impl AppError {
    pub fn from_amount(field: &str, e: AmountError) -> AppError {
        match e {
            AmountError::CurrencyMismatch => AppError::new(ErrorCode::CurrencyMismatch, e.to_string()),
            _ => AppError::validation(field, format!("{field}: {e}")),
        }
    }
}
