//! Correction cases (错收): likely wrong charges found by the detectors or
//! reported by hand, closed by a refund made from the case or dismissed.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use refundry_app::corrections::{CorrectionRefund, NewCorrection};
use refundry_app::idempotency::Replay;
use refundry_app::{AppError, ErrorCode};
use refundry_core::ids::{CorrectionId, SaleId};
use refundry_store::model::{CorrectionRecord, Refund};
use serde::Deserialize;
use utoipa::IntoParams;

use super::{idempotency, respond, stored_json};
use crate::auth::Auth;
use crate::dto::{
    CorrectionDto, CorrectionList, CorrectionRefundDto, CreateCorrection, DismissCorrection, RefundCorrection,
    RefundDto, bad_query,
};
use crate::guard::parse_body;
use crate::problem::{ApiError, Problem};
use crate::state::AppState;

fn correction_id(id: &str) -> Result<CorrectionId, ApiError> {
    CorrectionId::parse(id)
        .map_err(|_| ApiError::new(ErrorCode::CorrectionNotFound, format!("no correction case {id}")))
}

/// Report a wrong charge by hand: the sale, what went wrong, the cause and
/// who is answerable. The same sale and kind twice is one case.
#[utoipa::path(
    post, path = "/v1/corrections", tag = "corrections",
    request_body = CreateCorrection,
    responses((status = 201, body = CorrectionDto), (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = []))
)]
pub async fn create_correction(
    State(state): State<AppState>,
    auth: Auth,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<CorrectionDto>), ApiError> {
    let actor = auth.require("refunds:write")?;
    let req = parse_body::<CreateCorrection>(&headers, &body)?;
    let sale_id = SaleId::parse(&req.sale_id).map_err(|e| ApiError(AppError::validation("sale_id", e.to_string())))?;
    let new = NewCorrection {
        sale_id,
        kind: req.kind,
        cause: req.cause,
        responsible_party: req.responsible_party,
        note: req.note,
    };
    let record = state.app.open_correction(actor, new).await?;
    Ok((StatusCode::CREATED, Json(CorrectionDto::from(&record))))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CorrectionSearch {
    /// open, refunded or dismissed.
    pub status: Option<String>,
    pub limit: Option<u32>,
    pub starting_after: Option<String>,
}

/// Correction cases, newest first.
#[utoipa::path(get, path = "/v1/corrections", tag = "corrections", params(CorrectionSearch), responses((status = 200, body = CorrectionList)), security(("api_key" = [])))]
pub async fn list_corrections(
    State(state): State<AppState>,
    auth: Auth,
    Query(q): Query<CorrectionSearch>,
) -> Result<Json<CorrectionList>, ApiError> {
    if q.status.as_deref().is_some_and(|s| !matches!(s, "open" | "refunded" | "dismissed")) {
        return Err(bad_query("status", "status must be open, refunded or dismissed"));
    }
    let after = q
        .starting_after
        .as_deref()
        .map(|s| CorrectionId::parse(s).map_err(|e| bad_query("starting_after", e.to_string())))
        .transpose()?;
    let page = state.app.corrections(auth.reader(), q.status, after, q.limit.unwrap_or(20)).await?;
    let data: Vec<CorrectionDto> = page.items.iter().map(CorrectionDto::from).collect();
    let next_cursor = if page.has_more { data.last().map(|d| d.id.clone()) } else { None };
    Ok(Json(CorrectionList { object: "list", data, has_more: page.has_more, next_cursor }))
}

#[utoipa::path(
    get, path = "/v1/corrections/{id}", tag = "corrections",
    params(("id" = String, Path, description = "cor_…")),
    responses((status = 200, body = CorrectionDto), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = []))
)]
pub async fn get_correction(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<CorrectionDto>, ApiError> {
    let record = state.app.correction(auth.reader(), correction_id(&id)?).await?;
    Ok(Json(CorrectionDto::from(&record)))
}

fn render(answer: &(CorrectionRecord, Refund)) -> refundry_app::idempotency::StoredResponse {
    let dto = CorrectionRefundDto { correction: CorrectionDto::from(&answer.0), refund: RefundDto::from(&answer.1) };
    stored_json(StatusCode::CREATED, &dto)
}

/// Give the money back from the case: a void or refund of the sale through
/// the normal refund path (the refund policy decides; a refund over its
/// limits waits for a supervisor), and the case closes as `refunded`.
#[utoipa::path(
    post, path = "/v1/corrections/{id}/refund", tag = "corrections",
    params(("id" = String, Path, description = "cor_…"), ("Idempotency-Key" = String, Header, description = "Required.")),
    request_body = RefundCorrection,
    responses(
        (status = 201, body = CorrectionRefundDto),
        (status = 409, description = "The case is not open", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn refund_correction(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    auth.require("refunds:write")?;
    let req = parse_body::<RefundCorrection>(&headers, &body)?;
    let actor = auth.acting(&state, req.operator.as_deref(), "refunds:write").await?;
    let id = correction_id(&id)?;
    let ask = CorrectionRefund {
        amount_minor: req.amount,
        note: req.note,
        cause: req.cause,
        responsible_party: req.responsible_party,
    };
    let idem = idempotency(&headers, &format!("/v1/corrections/{id}/refund"), &body, true, Box::new(render))?;
    Ok(match state.app.refund_correction(&actor, id, ask, idem).await? {
        Replay::Fresh(answer) => respond(render(&answer), false),
        Replay::Stored(stored) => respond(stored, true),
    })
}

/// Close the case without money back, saying why.
#[utoipa::path(
    post, path = "/v1/corrections/{id}/dismiss", tag = "corrections",
    params(("id" = String, Path, description = "cor_…")),
    request_body = DismissCorrection,
    responses(
        (status = 200, body = CorrectionDto),
        (status = 409, description = "The case is not open", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn dismiss_correction(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<CorrectionDto>, ApiError> {
    let actor = auth.require("refunds:approve")?;
    let req = parse_body::<DismissCorrection>(&headers, &body)?;
    let record = state.app.dismiss_correction(actor, correction_id(&id)?, req.reason).await?;
    Ok(Json(CorrectionDto::from(&record)))
}
