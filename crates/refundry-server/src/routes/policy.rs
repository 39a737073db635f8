use axum::Json;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::auth::Auth;
use crate::dto::{PolicyDto, PutPolicy, parse_store};
use crate::guard::parse_body;
use crate::problem::{ApiError, Problem};
use crate::state::AppState;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PolicyScope {
    /// The store whose policy is in force (its override, else the merchant's).
    pub store_id: Option<String>,
}

/// The refund policy in force.
#[utoipa::path(get, path = "/v1/policy", tag = "policy", params(PolicyScope), responses((status = 200, body = PolicyDto)), security(("api_key" = [])))]
pub async fn get_policy(
    State(state): State<AppState>,
    auth: Auth,
    Query(q): Query<PolicyScope>,
) -> Result<Json<PolicyDto>, ApiError> {
    let store = parse_store("store_id", q.store_id.as_deref())?;
    let policy = state.app.policy(auth.reader(), store).await?;
    Ok(Json(PolicyDto::from(&policy)))
}

/// Write a new version of the merchant's policy, or of a store's override
/// (admin). Refunds keep the version they were decided under.
#[utoipa::path(
    put, path = "/v1/policy", tag = "policy",
    request_body = PutPolicy,
    responses((status = 200, body = PolicyDto), (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = []))
)]
pub async fn put_policy(
    State(state): State<AppState>,
    auth: Auth,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<PolicyDto>, ApiError> {
    let actor = auth.require("admin")?;
    let req = parse_body::<PutPolicy>(&headers, &body)?;
    let store = parse_store("store_id", req.store_id.as_deref())?;
    let policy = state.app.set_policy(actor, store, req.rules).await?;
    Ok(Json(PolicyDto::from(&policy)))
}
