use axum::Json;
use axum::extract::{Query, State};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::auth::Auth;
use crate::dto::{AuditEventDto, AuditList};
use crate::problem::ApiError;
use crate::state::AppState;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditPage {
    /// Events after this position in the chain (0: from the start).
    pub after_seq: Option<i64>,
    /// 1 to 500, default 100.
    pub limit: Option<u32>,
}

/// The merchant's audit log, oldest first, with each event's place in the
/// hash chain.
#[utoipa::path(get, path = "/v1/audit-events", tag = "audit", params(AuditPage), responses((status = 200, body = AuditList)), security(("api_key" = [])))]
pub async fn list_audit_events(
    State(state): State<AppState>,
    auth: Auth,
    Query(q): Query<AuditPage>,
) -> Result<Json<AuditList>, ApiError> {
    let actor = auth.require("reports:read")?;
    let page = state.app.audit_events(actor, q.after_seq.unwrap_or(0), q.limit.unwrap_or(100)).await?;
    let data: Vec<AuditEventDto> = page.items.iter().map(AuditEventDto::from).collect();
    let next_cursor = if page.has_more { data.last().map(|e| e.seq) } else { None };
    Ok(Json(AuditList { object: "list", data, has_more: page.has_more, next_cursor }))
}
