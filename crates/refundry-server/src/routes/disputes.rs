use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use refundry_app::disputes::NewDispute;
use refundry_app::{AppError, ErrorCode};
use refundry_core::dispute::{DisputeEvent, DisputeStage, Network};
use refundry_core::ids::{DisputeId, SaleId};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::auth::Auth;
use crate::dto::{CreateDispute, DisputeDto, DisputeEventBody, DisputeList, bad_query, parse_time};
use crate::guard::parse_body;
use crate::problem::{ApiError, Problem};
use crate::state::AppState;

fn invalid(field: &str, detail: &str) -> ApiError {
    ApiError(AppError::validation(field, detail))
}

fn dispute_id(id: &str) -> Result<DisputeId, ApiError> {
    DisputeId::parse(id).map_err(|_| ApiError::new(ErrorCode::DisputeNotFound, format!("no dispute {id}")))
}

/// Open a chargeback or retrieval request against a sale, as the acquirer
/// reports it. While it is open the sale cannot be refunded (sale_disputed).
#[utoipa::path(
    post, path = "/v1/disputes", tag = "disputes",
    request_body = CreateDispute,
    responses((status = 201, body = DisputeDto), (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = []))
)]
pub async fn create_dispute(
    State(state): State<AppState>,
    auth: Auth,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<DisputeDto>), ApiError> {
    let actor = auth.require("disputes:write")?;
    let req = parse_body::<CreateDispute>(&headers, &body)?;
    let new = NewDispute {
        sale_id: SaleId::parse(&req.sale_id).map_err(|e| invalid("sale_id", &e.to_string()))?,
        case_ref: req.case_ref,
        network: Network::parse(&req.network)
            .ok_or_else(|| invalid("network", "network must be unionpay, visa, mastercard, amex, jcb or other"))?,
        reason_code: req.reason_code,
        stage: match req.stage.as_deref() {
            None | Some("chargeback") => DisputeStage::Chargeback,
            Some("retrieval_request") => DisputeStage::RetrievalRequest,
            Some(_) => return Err(invalid("stage", "stage must be retrieval_request or chargeback")),
        },
        amount_minor: req.amount,
        due_by: parse_time("due_by", &req.due_by)?,
        note: req.note,
    };
    let record = state.app.open_dispute(actor, new).await?;
    Ok((StatusCode::CREATED, Json(DisputeDto::from(&record))))
}

/// Move a case: respond_to_retrieval, escalate, submit_evidence, accept,
/// win, lose, pre_arbitration, mark_past_due.
#[utoipa::path(
    post, path = "/v1/disputes/{id}/events", tag = "disputes",
    params(("id" = String, Path, description = "dp_…")),
    request_body = DisputeEventBody,
    responses(
        (status = 200, body = DisputeDto),
        (status = 409, description = "Not from where the case is", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn move_dispute(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<DisputeDto>, ApiError> {
    let actor = auth.require("disputes:write")?;
    let req = parse_body::<DisputeEventBody>(&headers, &body)?;
    let event = DisputeEvent::parse(&req.event).ok_or_else(|| invalid("event", "unknown dispute event"))?;
    let record = state.app.move_dispute(actor, dispute_id(&id)?, event, req.note).await?;
    Ok(Json(DisputeDto::from(&record)))
}

#[utoipa::path(
    get, path = "/v1/disputes/{id}", tag = "disputes",
    params(("id" = String, Path, description = "dp_…")),
    responses((status = 200, body = DisputeDto), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = []))
)]
pub async fn get_dispute(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<DisputeDto>, ApiError> {
    let record = state.app.dispute(auth.reader(), dispute_id(&id)?).await?;
    Ok(Json(DisputeDto::from(&record)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DisputeSearch {
    pub sale_id: Option<String>,
    pub limit: Option<u32>,
    pub starting_after: Option<String>,
}

/// Cases, newest first, with days left to answer.
#[utoipa::path(get, path = "/v1/disputes", tag = "disputes", params(DisputeSearch), responses((status = 200, body = DisputeList)), security(("api_key" = [])))]
pub async fn list_disputes(
    State(state): State<AppState>,
    auth: Auth,
    Query(q): Query<DisputeSearch>,
) -> Result<Json<DisputeList>, ApiError> {
    let sale =
        q.sale_id.as_deref().map(|s| SaleId::parse(s).map_err(|e| bad_query("sale_id", e.to_string()))).transpose()?;
    let after = q
        .starting_after
        .as_deref()
        .map(|s| DisputeId::parse(s).map_err(|e| bad_query("starting_after", e.to_string())))
        .transpose()?;
    let page = state.app.disputes(auth.reader(), sale, after, q.limit.unwrap_or(20)).await?;
    let data: Vec<DisputeDto> = page.items.iter().map(DisputeDto::from).collect();
    let next_cursor = if page.has_more { data.last().map(|d| d.id.clone()) } else { None };
    Ok(Json(DisputeList { object: "list", data, has_more: page.has_more, next_cursor }))
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ImportReportDto {
    /// Always `dispute_import`.
    pub object: &'static str,
    pub rows: usize,
    pub opened: usize,
    pub already_known: usize,
    pub errors: Vec<RowErrorDto>,
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct RowErrorDto {
    /// The row's number in the file; the header is row 1.
    pub row: usize,
    pub field: String,
    pub message: String,
}

/// Import the acquirer's dispute file (CSV, UTF-8 or GB18030): columns
/// case_ref, network, reason_code, stage, amount, currency, due_by, rrn,
/// voucher_no, terminal_id, note. Any bad row refuses the whole file (422,
/// every error with its row number) and nothing changes; importing the same
/// file again opens nothing new.
#[utoipa::path(
    post, path = "/v1/disputes/import", tag = "disputes",
    request_body(content = String, content_type = "text/csv"),
    responses((status = 200, body = ImportReportDto), (status = 422, body = ImportReportDto)),
    security(("api_key" = []))
)]
pub async fn import_disputes(
    State(state): State<AppState>,
    auth: Auth,
    body: Bytes,
) -> Result<(StatusCode, Json<ImportReportDto>), ApiError> {
    let actor = auth.require("disputes:write")?;
    let report = state.app.import_disputes(actor, &body, |_, _| {}).await?;
    let status = if report.errors.is_empty() { StatusCode::OK } else { StatusCode::UNPROCESSABLE_ENTITY };
    let dto = ImportReportDto {
        object: "dispute_import",
        rows: report.rows,
        opened: report.opened,
        already_known: report.already_known,
        errors: report
            .errors
            .into_iter()
            .map(|e| RowErrorDto { row: e.row, field: e.field, message: e.message })
            .collect(),
    };
    Ok((status, Json(dto)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RatioQuery {
    /// `YYYY-MM`; the current month when absent.
    pub month: Option<String>,
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct RatioDto {
    /// mastercard_ecp or visa_vamp.
    pub programme: String,
    /// ok, nearing, monitored, excessive or high_excessive.
    pub level: String,
    pub count_ratio_bps: Option<u64>,
    pub amount_ratio_bps: Option<u64>,
    pub chargebacks: u64,
    pub sales: u64,
    pub reasons: Vec<crate::dto::ReasonDto>,
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct RatioReport {
    /// Always `chargeback_ratio`.
    pub object: &'static str,
    pub month: String,
    pub programmes: Vec<RatioDto>,
}

/// The month's chargeback ratios against the card networks' monitoring
/// programmes (Mastercard ECP, Visa VAMP), with the level reached and why.
#[utoipa::path(get, path = "/v1/reports/chargeback-ratio", tag = "disputes", params(RatioQuery), responses((status = 200, body = RatioReport)), security(("api_key" = [])))]
pub async fn chargeback_ratio(
    State(state): State<AppState>,
    auth: Auth,
    Query(q): Query<RatioQuery>,
) -> Result<Json<RatioReport>, ApiError> {
    let actor = auth.require("reports:read")?;
    let month = match q.month.as_deref() {
        Some(m) => format!("{m}-01")
            .parse::<jiff::civil::Date>()
            .map_err(|_| bad_query("month", "month must look like 2026-11"))?,
        None => jiff::Zoned::now().date().first_of_month(),
    };
    let watches = state.app.chargeback_ratios(actor, month).await?;
    let programmes = watches
        .iter()
        .map(|w| RatioDto {
            programme: w.assessment.programme.as_str().into(),
            level: w.assessment.level.as_str().into(),
            count_ratio_bps: w.assessment.count_ratio_bps,
            amount_ratio_bps: w.assessment.amount_ratio_bps,
            chargebacks: w.stats.disputes_count,
            sales: w.stats.sales_count,
            reasons: w
                .assessment
                .reasons
                .iter()
                .map(|r| crate::dto::ReasonDto {
                    code: r.code.into(),
                    outcome: w.assessment.level.as_str().into(),
                    en: r.en.clone(),
                    zh: r.zh.clone(),
                })
                .collect(),
        })
        .collect();
    Ok(Json(RatioReport { object: "chargeback_ratio", month: month.strftime("%Y-%m").to_string(), programmes }))
}
