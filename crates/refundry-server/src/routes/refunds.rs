use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use refundry_app::ErrorCode;
use refundry_app::idempotency::Replay;
use refundry_core::ids::{RefundId, SaleId};
use refundry_core::refund::RefundStatus;
use refundry_store::model::{Refund, RefundQuery};
use serde::Deserialize;
use utoipa::IntoParams;

use super::{idempotency, respond, stored_json};
use crate::auth::Auth;
use crate::dto::{CreateRefund, DecideRefund, PreviewDto, RefundDto, RefundList, bad_query, parse_store};
use crate::guard::parse_body;
use crate::problem::{ApiError, Problem};
use crate::state::AppState;

fn render(refund: &Refund) -> refundry_app::idempotency::StoredResponse {
    stored_json(StatusCode::CREATED, &RefundDto::from(refund))
}

/// Give back all or part of a sale. A whole card sale whose batch is not
/// settled is voided (撤销); anything else is refunded (退货) to the
/// original payment method. The refund is queued for the acquirer in the
/// same transaction and moves pending → processing → succeeded | failed;
/// a cash refund is handed back from the drawer, so it is `succeeded` in
/// this answer already.
#[utoipa::path(
    post, path = "/v1/refunds", tag = "refunds",
    request_body = CreateRefund,
    params(("Idempotency-Key" = String, Header, description = "Required. The same key and body answer with the first result and do nothing more; the same key with another body is refused.")),
    responses(
        (status = 201, description = "Created (or the first answer again, with Idempotent-Replayed: true)", body = RefundDto),
        (status = 400, description = "No Idempotency-Key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such sale", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Idempotency-Key reused with another body", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "More than is refundable, unknown item, invalid field", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn create_refund(
    State(state): State<AppState>,
    auth: Auth,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    auth.require("refunds:write")?;
    let req = parse_body::<CreateRefund>(&headers, &body)?;
    let actor = auth.acting(&state, req.operator.as_deref(), "refunds:write").await?;
    let request = req.into_request()?;
    let idem = idempotency(&headers, "/v1/refunds", &body, true, Box::new(render))?;
    Ok(match state.app.request_refund(&actor, request, idem).await? {
        Replay::Fresh(refund) => respond(render(&refund), false),
        Replay::Stored(stored) => respond(stored, true),
    })
}

#[utoipa::path(
    get, path = "/v1/refunds/{id}", tag = "refunds",
    params(("id" = String, Path, description = "re_…")),
    responses(
        (status = 200, body = RefundDto),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn get_refund(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<RefundDto>, ApiError> {
    let refund = state.app.refund(auth.reader(), refund_id(&id)?).await?;
    Ok(Json(RefundDto::from(&refund)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RefundSearch {
    /// Only the refunds of this sale.
    pub sale_id: Option<String>,
    pub status: Option<String>,
    /// Only refunds of sales of this store.
    pub store_id: Option<String>,
    /// 1 to 100, default 20.
    pub limit: Option<u32>,
    pub starting_after: Option<String>,
}

/// Refunds, newest first, optionally of one sale.
#[utoipa::path(
    get, path = "/v1/refunds", tag = "refunds",
    params(RefundSearch),
    responses((status = 200, body = RefundList)),
    security(("api_key" = []))
)]
pub async fn list_refunds(
    State(state): State<AppState>,
    auth: Auth,
    Query(q): Query<RefundSearch>,
) -> Result<Json<RefundList>, ApiError> {
    let query = RefundQuery {
        sale_id: q
            .sale_id
            .as_deref()
            .map(|s| SaleId::parse(s).map_err(|e| bad_query("sale_id", e.to_string())))
            .transpose()?,
        status: q
            .status
            .as_deref()
            .map(|s| RefundStatus::parse(s).ok_or_else(|| bad_query("status", "unknown refund status")))
            .transpose()?,
        starting_after: q
            .starting_after
            .as_deref()
            .map(|c| RefundId::parse(c).map_err(|e| bad_query("starting_after", e.to_string())))
            .transpose()?,
        store_id: parse_store("store_id", q.store_id.as_deref())?,
        requested_by: None,
        limit: q.limit.unwrap_or(20),
    };
    Ok(Json(refund_list(state.app.list_refunds(auth.reader(), query).await?)))
}

/// What a refund request would do — void or refund, how much, and the
/// policy's decision with its reasons — without doing anything.
#[utoipa::path(
    post, path = "/v1/refunds/preview", tag = "refunds",
    request_body = CreateRefund,
    responses((status = 200, body = PreviewDto), (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = []))
)]
pub async fn preview_refund(
    State(state): State<AppState>,
    auth: Auth,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<PreviewDto>, ApiError> {
    auth.require("refunds:write")?;
    let req = parse_body::<CreateRefund>(&headers, &body)?;
    let actor = auth.acting(&state, req.operator.as_deref(), "refunds:write").await?;
    let preview = state.app.preview_refund(&actor, req.into_request()?).await?;
    Ok(Json(PreviewDto::from(&preview)))
}

/// A page of refunds with the cursor to the next.
fn refund_list(page: refundry_app::sales::Page<Refund>) -> RefundList {
    let data: Vec<RefundDto> = page.items.iter().map(RefundDto::from).collect();
    let next_cursor = if page.has_more { data.last().map(|r| r.id.clone()) } else { None };
    RefundList { object: "list", data, has_more: page.has_more, next_cursor }
}

fn refund_id(id: &str) -> Result<RefundId, ApiError> {
    RefundId::parse(id).map_err(|_| ApiError::new(ErrorCode::RefundNotFound, format!("no refund {id}")))
}

fn decide_body(headers: &HeaderMap, body: &Bytes) -> Result<DecideRefund, ApiError> {
    if body.is_empty() { Ok(DecideRefund::default()) } else { parse_body::<DecideRefund>(headers, body) }
}

/// A supervisor approves a refund waiting in `requires_approval`; it then
/// goes to the acquirer. The approver may not be the requester.
#[utoipa::path(
    post, path = "/v1/refunds/{id}/approve", tag = "approvals",
    params(("id" = String, Path, description = "re_…")),
    request_body(content = DecideRefund, description = "Optional note"),
    responses(
        (status = 200, body = RefundDto),
        (status = 403, description = "No refunds:approve, or the approver is the requester (approver_is_requester)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not waiting for approval, or expired", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn approve_refund(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<RefundDto>, ApiError> {
    auth.require("refunds:approve")?;
    let req = decide_body(&headers, &body)?;
    let actor = auth.acting(&state, req.operator.as_deref(), "refunds:approve").await?;
    let refund = state.app.approve_refund(&actor, refund_id(&id)?, req.note).await?;
    Ok(Json(RefundDto::from(&refund)))
}

/// A supervisor rejects a refund waiting in `requires_approval`, with a note.
#[utoipa::path(
    post, path = "/v1/refunds/{id}/reject", tag = "approvals",
    params(("id" = String, Path, description = "re_…")),
    request_body = DecideRefund,
    responses(
        (status = 200, body = RefundDto),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn reject_refund(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<RefundDto>, ApiError> {
    auth.require("refunds:approve")?;
    let req = decide_body(&headers, &body)?;
    let actor = auth.acting(&state, req.operator.as_deref(), "refunds:approve").await?;
    let refund = state.app.reject_refund(&actor, refund_id(&id)?, req.note.unwrap_or_default()).await?;
    Ok(Json(RefundDto::from(&refund)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ApprovalSearch {
    /// Only refunds of sales of this store.
    pub store_id: Option<String>,
    /// Only refunds asked for by this identity (`user:usr_…` or `key:key_…`).
    pub requested_by: Option<String>,
    pub limit: Option<u32>,
    pub starting_after: Option<String>,
}

/// The approval queue (待审批): refunds waiting for a supervisor, newest
/// first, each with the reasons it waits.
#[utoipa::path(get, path = "/v1/approvals", tag = "approvals", params(ApprovalSearch), responses((status = 200, body = RefundList)), security(("api_key" = [])))]
pub async fn list_approvals(
    State(state): State<AppState>,
    auth: Auth,
    Query(q): Query<ApprovalSearch>,
) -> Result<Json<RefundList>, ApiError> {
    let actor = auth.require("refunds:approve")?;
    let query = RefundQuery {
        sale_id: None,
        status: Some(RefundStatus::RequiresApproval),
        store_id: parse_store("store_id", q.store_id.as_deref())?,
        requested_by: q.requested_by,
        starting_after: q
            .starting_after
            .as_deref()
            .map(|c| RefundId::parse(c).map_err(|e| bad_query("starting_after", e.to_string())))
            .transpose()?,
        limit: q.limit.unwrap_or(20),
    };
    Ok(Json(refund_list(state.app.list_refunds(actor, query).await?)))
}

/// Send a failed refund again: the same refund, a new attempt.
#[utoipa::path(
    post, path = "/v1/refunds/{id}/retry", tag = "refunds",
    params(("id" = String, Path, description = "re_…")),
    responses((status = 200, body = RefundDto), (status = 409, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = []))
)]
pub async fn retry_refund(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<RefundDto>, ApiError> {
    let actor = auth.require("refunds:write")?;
    let refund = state.app.retry_refund(actor, refund_id(&id)?).await?;
    Ok(Json(RefundDto::from(&refund)))
}

/// Record that the money reached the customer, at a time between the
/// refund's completion and now (422 `validation_failed` otherwise).
#[utoipa::path(
    post, path = "/v1/refunds/{id}/arrived", tag = "refunds",
    params(("id" = String, Path, description = "re_…")),
    request_body(content = crate::dto::MarkArrived, description = "Optional time, now if left out"),
    responses(
        (status = 200, body = RefundDto),
        (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")
    ),
    security(("api_key" = []))
)]
pub async fn mark_arrived(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<RefundDto>, ApiError> {
    let actor = auth.require("refunds:write")?;
    let req = if body.is_empty() { crate::dto::MarkArrived::default() } else { parse_body(&headers, &body)? };
    let at = req.arrived_at.as_deref().map(|t| crate::dto::parse_time("arrived_at", t)).transpose()?;
    let refund = state.app.mark_arrived(actor, refund_id(&id)?, at).await?;
    Ok(Json(RefundDto::from(&refund)))
}

/// Every call made to the acquirer about the refund: when, what was sent
/// (masked), what came back, how long it took.
#[utoipa::path(
    get, path = "/v1/refunds/{id}/attempts", tag = "refunds",
    params(("id" = String, Path, description = "re_…")),
    responses((status = 200, body = crate::dto::AcquirerCallList), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = []))
)]
pub async fn list_attempts(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<crate::dto::AcquirerCallList>, ApiError> {
    let calls = state.app.acquirer_calls(auth.reader(), refund_id(&id)?).await?;
    Ok(Json(crate::dto::AcquirerCallList {
        object: "list",
        data: calls.iter().map(crate::dto::AcquirerCallDto::from).collect(),
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SlipQuery {
    /// `text` (80 mm), `text58` (58 mm), `escpos` (bytes for the printer,
    /// 80 mm) or `pdf`. Default `text`.
    pub format: Option<String>,
    /// `zh-CN` (default) or `en`.
    pub locale: Option<String>,
}

/// The refund slip (退款单据): plain text for thermal paper, ESC/POS bytes,
/// or PDF. Card numbers show as first 6 / last 4 at most, the customer's
/// contact masked.
#[utoipa::path(
    get, path = "/v1/refunds/{id}/slip", tag = "refunds",
    params(("id" = String, Path, description = "re_…"), SlipQuery),
    responses(
        (status = 200, description = "text/plain, application/octet-stream or application/pdf"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn get_slip(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Query(q): Query<SlipQuery>,
) -> Result<Response, ApiError> {
    use axum::response::IntoResponse;
    use refundry_app::refunds::SlipWording;
    use refundry_slips::{Locale, Width};
    let locale = match q.locale.as_deref() {
        None | Some("zh-CN") | Some("zh") => Locale::Zh,
        Some("en") => Locale::En,
        Some(_) => return Err(bad_query("locale", "locale must be zh-CN or en")),
    };
    let facts = state.app.slip_facts(auth.reader(), refund_id(&id)?).await?;
    let r = &facts.refund;
    let wording = SlipWording {
        reason: r.reason.as_str().replace('_', " "),
        operator: r.requested_by.clone(),
        approver: r.decided_by.clone(),
        locale,
    };
    let slip = facts.slip(wording, state.app.config.business_tz.clone());
    let answer =
        |ctype: &'static str, body: Vec<u8>| ([(axum::http::header::CONTENT_TYPE, ctype)], body).into_response();
    Ok(match q.format.as_deref().unwrap_or("text") {
        "text" => answer("text/plain; charset=utf-8", refundry_slips::text(&slip, Width::Mm80).into_bytes()),
        "text58" => answer("text/plain; charset=utf-8", refundry_slips::text(&slip, Width::Mm58).into_bytes()),
        "escpos" => answer("application/octet-stream", refundry_slips::escpos(&slip, Width::Mm80)),
        "pdf" => answer(
            "application/pdf",
            refundry_slips::pdf(&slip)
                .map_err(|e| ApiError::new(ErrorCode::Internal, format!("the PDF could not be made: {e}")))?,
        ),
        _ => return Err(bad_query("format", "format must be text, text58, escpos or pdf")),
    })
}
