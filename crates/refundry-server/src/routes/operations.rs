use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use refundry_app::ErrorCode;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::auth::Auth;
use crate::dto::{
    CreateWebhookEndpoint, JobDto, JobList, WebhookDeliveryDto, WebhookDeliveryList, WebhookEndpointDto,
    WebhookEndpointList,
};
use crate::guard::parse_body;
use crate::problem::{ApiError, Problem};
use crate::state::AppState;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct JobSearch {
    /// ready, running, done or dead (default dead).
    pub state: Option<String>,
    pub limit: Option<u32>,
}

/// The merchant's outbox jobs in a state; `dead` ones gave up after their
/// retries and wait for an operator.
#[utoipa::path(get, path = "/v1/jobs", tag = "operations", params(JobSearch), responses((status = 200, body = JobList)), security(("api_key" = [])))]
pub async fn list_jobs(
    State(state): State<AppState>,
    auth: Auth,
    Query(q): Query<JobSearch>,
) -> Result<Json<JobList>, ApiError> {
    let actor = auth.require("admin")?;
    let jobs =
        state.app.jobs(Some(actor.merchant_id), q.state.as_deref().unwrap_or("dead"), q.limit.unwrap_or(100)).await?;
    Ok(Json(JobList { object: "list", data: jobs.iter().map(JobDto::from).collect() }))
}

/// Put a dead job back in the queue.
#[utoipa::path(
    post, path = "/v1/jobs/{id}/retry", tag = "operations",
    params(("id" = i64, Path)),
    responses((status = 204), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = []))
)]
pub async fn retry_job(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let actor = auth.require("admin")?;
    let id: i64 = id.parse().map_err(|_| ApiError::new(ErrorCode::JobNotFound, format!("no dead job {id}")))?;
    state.app.retry_job(actor, id, true).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Register a webhook endpoint. The answer holds the signing secret, once.
#[utoipa::path(
    post, path = "/v1/webhook-endpoints", tag = "webhooks",
    request_body = CreateWebhookEndpoint,
    responses((status = 201, body = WebhookEndpointDto), (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = []))
)]
pub async fn create_webhook_endpoint(
    State(state): State<AppState>,
    auth: Auth,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<WebhookEndpointDto>), ApiError> {
    let actor = auth.require("admin")?;
    let req = parse_body::<CreateWebhookEndpoint>(&headers, &body)?;
    let (endpoint, secret) = state.app.create_webhook_endpoint(actor, &req.url, req.events).await?;
    Ok((StatusCode::CREATED, Json(WebhookEndpointDto::of(&endpoint, Some(secret)))))
}

#[utoipa::path(get, path = "/v1/webhook-endpoints", tag = "webhooks", responses((status = 200, body = WebhookEndpointList)), security(("api_key" = [])))]
pub async fn list_webhook_endpoints(
    State(state): State<AppState>,
    auth: Auth,
) -> Result<Json<WebhookEndpointList>, ApiError> {
    let actor = auth.require("admin")?;
    let endpoints = state.app.webhook_endpoints(actor).await?;
    Ok(Json(WebhookEndpointList {
        object: "list",
        data: endpoints.iter().map(|e| WebhookEndpointDto::of(e, None)).collect(),
    }))
}

/// The delivery log of an endpoint: every try, its answer and its time.
#[utoipa::path(
    get, path = "/v1/webhook-endpoints/{id}/deliveries", tag = "webhooks",
    params(("id" = String, Path, description = "we_…")),
    responses((status = 200, body = WebhookDeliveryList), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = []))
)]
pub async fn list_deliveries(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<WebhookDeliveryList>, ApiError> {
    let actor = auth.require("admin")?;
    let deliveries = state.app.webhook_deliveries(actor, &id).await?;
    Ok(Json(WebhookDeliveryList { object: "list", data: deliveries.iter().map(WebhookDeliveryDto::from).collect() }))
}

/// Send a logged delivery's event again.
#[utoipa::path(
    post, path = "/v1/webhook-deliveries/{id}/redeliver", tag = "webhooks",
    params(("id" = i64, Path)),
    responses((status = 202), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = []))
)]
pub async fn redeliver(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let actor = auth.require("admin")?;
    let id: i64 =
        id.parse().map_err(|_| ApiError::new(ErrorCode::WebhookDeliveryNotFound, format!("no delivery {id}")))?;
    state.app.redeliver(actor, id).await?;
    Ok(StatusCode::ACCEPTED)
}
