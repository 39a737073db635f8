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
use crate::dto::{CreateRefund, RefundDto, RefundList, bad_query};
use crate::guard::parse_body;
use crate::problem::{ApiError, Problem};
use crate::state::AppState;

fn render(refund: &Refund) -> refundry_app::idempotency::StoredResponse {
    stored_json(StatusCode::CREATED, &RefundDto::from(refund))
}

/// Give back all or part of a sale. A whole card sale whose batch is not
/// settled is voided (撤销); anything else is refunded (退货) to the
/// original payment method. The refund is queued for the acquirer in the
/// same transaction and moves pending → processing → succeeded | failed.
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
    let actor = auth.require("refunds:write")?;
    let request = parse_body::<CreateRefund>(&headers, &body)?.into_request()?;
    let idem = idempotency(&headers, "/v1/refunds", &body, true, Box::new(render))?;
    Ok(match state.app.request_refund(actor, request, idem).await? {
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
    let id = RefundId::parse(&id).map_err(|_| ApiError::new(ErrorCode::RefundNotFound, format!("no refund {id}")))?;
    let refund = state.app.refund(auth.reader(), id).await?;
    Ok(Json(RefundDto::from(&refund)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RefundSearch {
    /// Only the refunds of this sale.
    pub sale_id: Option<String>,
    pub status: Option<String>,
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
        limit: q.limit.unwrap_or(20),
    };
    let page = state.app.list_refunds(auth.reader(), query).await?;
    let data: Vec<RefundDto> = page.items.iter().map(RefundDto::from).collect();
    let next_cursor = if page.has_more { data.last().map(|r| r.id.clone()) } else { None };
    Ok(Json(RefundList { object: "list", data, has_more: page.has_more, next_cursor }))
}
