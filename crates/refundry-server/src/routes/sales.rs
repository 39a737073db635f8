use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use refundry_app::idempotency::Replay;
use refundry_app::sales::SaleView;
use refundry_core::card::Last4;
use refundry_core::ids::SaleId;
use refundry_store::model::SaleQuery;
use serde::Deserialize;
use utoipa::IntoParams;

use super::{idempotency, respond, stored_json};
use crate::auth::Auth;
use crate::dto::{CreateSale, SaleDto, SaleList, bad_query, parse_time};
use crate::guard::parse_body;
use crate::problem::{ApiError, Problem};
use crate::state::AppState;

fn render(view: &SaleView) -> refundry_app::idempotency::StoredResponse {
    stored_json(StatusCode::CREATED, &SaleDto::from(view))
}

/// Record a completed POS payment.
#[utoipa::path(
    post, path = "/v1/sales", tag = "sales",
    request_body = CreateSale,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retried request safe: the same key and body answer with the first result.")),
    responses(
        (status = 201, description = "Recorded", body = SaleDto),
        (status = 422, description = "Invalid, or holds card data", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn create_sale(
    State(state): State<AppState>,
    auth: Auth,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    auth.require("sales:write")?;
    let req = parse_body::<CreateSale>(&headers, &body)?;
    let actor = auth.acting(&state, req.operator.as_deref(), "sales:write").await?;
    let new = req.into_new_sale()?;
    let idem = idempotency(&headers, "/v1/sales", &body, false, Box::new(render))?;
    Ok(match state.app.record_sale(&actor, new, idem).await? {
        Replay::Fresh(view) => respond(render(&view), false),
        Replay::Stored(stored) => respond(stored, true),
    })
}

/// A sale with what has been refunded and what is left.
#[utoipa::path(
    get, path = "/v1/sales/{id}", tag = "sales",
    params(("id" = String, Path, description = "sale_…")),
    responses(
        (status = 200, body = SaleDto),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn get_sale(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<SaleDto>, ApiError> {
    let id = SaleId::parse(&id)
        .map_err(|_| ApiError::new(refundry_app::ErrorCode::SaleNotFound, format!("no sale {id}")))?;
    let view = state.app.sale(auth.reader(), id).await?;
    Ok(Json(SaleDto::from(&view)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SaleSearch {
    /// Only sales of this store.
    pub store_id: Option<String>,
    /// 凭证号, exact.
    pub voucher_no: Option<String>,
    /// 参考号, exact.
    pub rrn: Option<String>,
    /// Card last 4 digits.
    pub last4: Option<String>,
    /// Amount in minor units, exact.
    pub amount: Option<i64>,
    pub terminal_id: Option<String>,
    /// Captured at or after (RFC 3339).
    pub captured_from: Option<String>,
    /// Captured before (RFC 3339).
    pub captured_to: Option<String>,
    /// 1 to 100, default 20.
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub starting_after: Option<String>,
}

/// Find sales, newest first: by voucher no., RRN, card last 4, amount,
/// terminal and time.
#[utoipa::path(
    get, path = "/v1/sales", tag = "sales",
    params(SaleSearch),
    responses((status = 200, body = SaleList)),
    security(("api_key" = []))
)]
pub async fn list_sales(
    State(state): State<AppState>,
    auth: Auth,
    Query(q): Query<SaleSearch>,
) -> Result<Json<SaleList>, ApiError> {
    if let Some(l4) = &q.last4 {
        Last4::parse(l4).map_err(|e| bad_query("last4", e.to_string()))?;
    }
    let query = SaleQuery {
        store_id: crate::dto::parse_store("store_id", q.store_id.as_deref())?,
        voucher_no: q.voucher_no,
        rrn: q.rrn,
        last4: q.last4,
        amount_minor: q.amount,
        terminal_id: q.terminal_id,
        captured_from: q.captured_from.as_deref().map(|t| parse_time("captured_from", t)).transpose()?,
        captured_to: q.captured_to.as_deref().map(|t| parse_time("captured_to", t)).transpose()?,
        starting_after: q
            .starting_after
            .as_deref()
            .map(|c| SaleId::parse(c).map_err(|e| bad_query("starting_after", e.to_string())))
            .transpose()?,
        limit: q.limit.unwrap_or(20),
    };
    let page = state.app.search_sales(auth.reader(), query).await?;
    let data: Vec<SaleDto> = page.items.iter().map(SaleDto::from).collect();
    let next_cursor = if page.has_more { data.last().map(|s| s.id.clone()) } else { None };
    Ok(Json(SaleList { object: "list", data, has_more: page.has_more, next_cursor }))
}
