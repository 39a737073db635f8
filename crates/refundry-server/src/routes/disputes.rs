use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use refundry_app::disputes::NewDispute;
use refundry_app::evidence::NewEvidence;
use refundry_app::{AppError, ErrorCode};
use refundry_core::dispute::{DisputeEvent, DisputeStage, EvidenceKind, Network, SummaryLocale};
use refundry_core::ids::{DisputeId, EvidenceId, SaleId};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::auth::Auth;
use crate::dto::{
    AddEvidence, CreateDispute, DisputeDto, DisputeEventBody, DisputeList, EvidenceDto, EvidenceList, bad_query,
    parse_time,
};
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

fn evidence_id(id: &str) -> Result<EvidenceId, ApiError> {
    EvidenceId::parse(id).map_err(|_| ApiError::new(ErrorCode::EvidenceNotFound, format!("no evidence {id}")))
}

/// Add an item of evidence to a case that needs a response or whose answer
/// is with the network: its kind, a note and optionally a file (base64 in
/// the JSON; PDF, PNG, JPEG or UTF-8 text as sniffed from the bytes, at most
/// `evidence_max_file_bytes`, 5 MiB by default).
#[utoipa::path(
    post, path = "/v1/disputes/{id}/evidence", tag = "disputes",
    params(("id" = String, Path, description = "dp_…")),
    request_body = AddEvidence,
    responses(
        (status = 201, body = EvidenceDto),
        (status = 409, description = "The case takes no more evidence", body = Problem, content_type = "application/problem+json"),
        (status = 413, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn add_evidence(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<EvidenceDto>), ApiError> {
    use base64::Engine;
    let actor = auth.require("disputes:write")?;
    let req = parse_body::<AddEvidence>(&headers, &body)?;
    let kind = EvidenceKind::parse(&req.kind).ok_or_else(|| {
        invalid("kind", "kind must be receipt, signature, refund_proof, delivery_proof, correspondence or other")
    })?;
    let file = req
        .file
        .map(|f| {
            base64::engine::general_purpose::STANDARD
                .decode(f.content_base64.as_bytes())
                .map(|bytes| (f.name, bytes))
                .map_err(|_| invalid("file.content_base64", "file.content_base64 must be standard base64"))
        })
        .transpose()?;
    let new = NewEvidence { kind, note: req.note, file };
    let record = state.app.add_evidence(actor, dispute_id(&id)?, new).await?;
    Ok((StatusCode::CREATED, Json(EvidenceDto::from(&record))))
}

/// The case's evidence, oldest first, with each file's name, sniffed type,
/// size and SHA-256.
#[utoipa::path(
    get, path = "/v1/disputes/{id}/evidence", tag = "disputes",
    params(("id" = String, Path, description = "dp_…")),
    responses((status = 200, body = EvidenceList), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = []))
)]
pub async fn list_evidence(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<EvidenceList>, ApiError> {
    let items = state.app.evidence(auth.reader(), dispute_id(&id)?).await?;
    Ok(Json(EvidenceList { object: "list", data: items.iter().map(EvidenceDto::from).collect() }))
}

/// An item's file, as stored, after its SHA-256 was checked again (a file
/// altered at rest answers 500 evidence_file_corrupt). The checksum is in
/// the `Digest` header (RFC 3230, `sha-256=` base64).
#[utoipa::path(
    get, path = "/v1/disputes/{id}/evidence/{item}/file", tag = "disputes",
    params(("id" = String, Path, description = "dp_…"), ("item" = String, Path, description = "ev_…")),
    responses(
        (status = 200, description = "The file: application/pdf, image/png, image/jpeg or text/plain"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn get_evidence_file(
    State(state): State<AppState>,
    auth: Auth,
    Path((id, item)): Path<(String, String)>,
) -> Result<axum::response::Response, ApiError> {
    use axum::http::header;
    use axum::response::IntoResponse;
    use base64::Engine;
    let (file, bytes) = state.app.evidence_file(auth.reader(), dispute_id(&id)?, evidence_id(&item)?).await?;
    let digest = hex::decode(&file.sha256).unwrap_or_default();
    let headers = [
        (header::CONTENT_TYPE, file.content_type.clone()),
        // the name was sanitised when stored; RFC 5987 form keeps Chinese names intact
        (header::CONTENT_DISPOSITION, format!("attachment; filename*=UTF-8''{}", percent_encode(&file.name))),
        (
            header::HeaderName::from_static("digest"),
            format!("sha-256={}", base64::engine::general_purpose::STANDARD.encode(digest)),
        ),
        (header::HeaderName::from_static("x-content-type-options"), "nosniff".to_owned()),
    ];
    Ok((headers, bytes).into_response())
}

/// Every byte but unreserved ASCII as %XX (RFC 3986), for a header value.
fn percent_encode(name: &str) -> String {
    name.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SummaryQuery {
    /// zh-CN (default), en, or zh-CN+en for both.
    pub locale: Option<String>,
}

/// The case summary to submit with the evidence (plain text): the sale's
/// references, the timeline, a refund that answers the case, and every
/// item of evidence with its file's SHA-256.
#[utoipa::path(
    get, path = "/v1/disputes/{id}/summary", tag = "disputes",
    params(("id" = String, Path, description = "dp_…"), SummaryQuery),
    responses((status = 200, description = "text/plain"), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = []))
)]
pub async fn evidence_summary(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Query(q): Query<SummaryQuery>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    let locale = match q.locale.as_deref() {
        None => SummaryLocale::ZhCn,
        Some(l) => {
            SummaryLocale::parse(l).ok_or_else(|| bad_query("locale", "locale must be zh-CN, en or zh-CN+en"))?
        }
    };
    let text = state.app.evidence_summary(auth.reader(), dispute_id(&id)?, locale).await?;
    Ok(([(axum::http::header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response())
}
