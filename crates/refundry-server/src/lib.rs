//! Refundry's HTTP face: the `/v1` API, problem+json errors, the OpenAPI
//! document, health, readiness and metrics. It maps HTTP to app commands
//! and back and nothing more; only this crate knows JSON shapes.

pub mod auth;
pub mod dto;
pub mod guard;
pub mod limiter;
pub mod problem;
pub mod routes;
pub mod state;

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use refundry_app::App;
use refundry_app::jobs::JobRunner;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tower_http::LatencyUnit;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Refundry API",
        description = "Voids, refunds and chargebacks for point-of-sale merchants. Amounts are integer minor units with a lower-case ISO 4217 currency; errors are RFC 9457 problem+json with a stable `code`.",
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "sales", description = "Completed POS payments"),
        (name = "batches", description = "Terminal batch settlement (批结算)"),
        (name = "refunds", description = "Voids (撤销) and refunds (退货)"),
        (name = "approvals", description = "Four-eyes approval of refunds over the policy's limits (待审批)"),
        (name = "policy", description = "Refund policy, versioned, per merchant and store"),
        (name = "people", description = "Users, roles, log-in sessions and API keys"),
        (name = "audit", description = "The hash-chained audit log"),
        (name = "disputes", description = "Chargebacks and retrieval requests (退单/拒付, 调单)"),
        (name = "corrections", description = "Wrong charges (错收): duplicates, extra zeros, charges without an order"),
        (name = "webhooks", description = "Signed event deliveries to the merchant's systems"),
        (name = "operations", description = "Outbox jobs that gave up, for operators"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                Http::builder().scheme(HttpAuthScheme::Bearer).bearer_format("rk_<id>_<secret>").build(),
            ),
        );
    }
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Largest request body accepted.
    pub max_body_bytes: usize,
    /// Largest body of an evidence upload (the file in base64 and its JSON).
    pub max_evidence_body_bytes: usize,
    /// Requests per second one client address may make (0: no limit), and
    /// how many it may make at once above that.
    pub rate_limit_per_second: u32,
    pub rate_limit_burst: u32,
    /// A request that takes longer is answered 503 (the command it started
    /// still finishes or rolls back as a whole).
    pub request_timeout: Duration,
    /// The web back office and self-service pages, served beside the API.
    pub web: refundry_web::WebConfig,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_body_bytes: 256 * 1024,
            max_evidence_body_bytes: evidence_body_bytes(refundry_app::evidence::DEFAULT_MAX_FILE_BYTES),
            request_timeout: Duration::from_secs(30),
            rate_limit_per_second: 500,
            rate_limit_burst: 1000,
            web: refundry_web::WebConfig::default(),
        }
    }
}

/// The body an evidence file of `max_file_bytes` needs: base64 makes 4
/// bytes of 3, and the JSON around it is small.
pub fn evidence_body_bytes(max_file_bytes: usize) -> usize {
    max_file_bytes.div_ceil(3) * 4 + 64 * 1024
}

/// The body limit of a request: evidence uploads carry files, everything
/// else is small. Applied before anything reads the body.
#[derive(Debug, Clone, Copy)]
struct BodyLimits {
    default: usize,
    evidence: usize,
}

async fn limit_body(State(limits): State<BodyLimits>, request: Request, next: Next) -> Response {
    use axum::response::IntoResponse;
    use tower::{Layer, ServiceExt};
    let path = request.uri().path();
    let evidence = request.method() == axum::http::Method::POST
        && path.starts_with("/v1/disputes/")
        && path.ends_with("/evidence");
    let limit = if evidence { limits.evidence } else { limits.default };
    let declared = request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return axum::http::StatusCode::PAYLOAD_TOO_LARGE.into_response();
    }
    // a body without a length (chunked) is cut off where it passes the limit
    match DefaultBodyLimit::max(limit).layer(next).oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    }
}

/// The Prometheus recorder, installed once per process.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            // another recorder may already be set (tests); metrics then go there
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// The OpenAPI document and the API routes, from the same code.
pub fn api() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(routes::sales::create_sale, routes::sales::list_sales))
        .routes(routes!(routes::sales::get_sale))
        .routes(routes!(routes::batches::settle_batch))
        .routes(routes!(routes::refunds::create_refund, routes::refunds::list_refunds))
        .routes(routes!(routes::refunds::get_refund))
        .routes(routes!(routes::refunds::preview_refund))
        .routes(routes!(routes::refunds::approve_refund))
        .routes(routes!(routes::refunds::reject_refund))
        .routes(routes!(routes::refunds::list_approvals))
        .routes(routes!(routes::people::log_in))
        .routes(routes!(routes::people::log_out))
        .routes(routes!(routes::people::me))
        .routes(routes!(routes::people::create_user, routes::people::list_users))
        .routes(routes!(routes::people::create_key))
        .routes(routes!(routes::policy::get_policy, routes::policy::put_policy))
        .routes(routes!(routes::audit::list_audit_events))
        .routes(routes!(routes::refunds::retry_refund))
        .routes(routes!(routes::refunds::mark_arrived))
        .routes(routes!(routes::refunds::list_attempts))
        .routes(routes!(routes::refunds::get_slip))
        .routes(routes!(routes::disputes::create_dispute, routes::disputes::list_disputes))
        .routes(routes!(routes::disputes::get_dispute))
        .routes(routes!(routes::disputes::import_disputes))
        .routes(routes!(routes::disputes::chargeback_ratio))
        .routes(routes!(routes::disputes::move_dispute))
        .routes(routes!(routes::disputes::add_evidence, routes::disputes::list_evidence))
        .routes(routes!(routes::disputes::get_evidence_file))
        .routes(routes!(routes::disputes::evidence_summary))
        .routes(routes!(routes::corrections::create_correction, routes::corrections::list_corrections))
        .routes(routes!(routes::corrections::get_correction))
        .routes(routes!(routes::corrections::refund_correction))
        .routes(routes!(routes::corrections::dismiss_correction))
        .routes(routes!(routes::operations::list_jobs))
        .routes(routes!(routes::operations::retry_job))
        .routes(routes!(routes::operations::create_webhook_endpoint, routes::operations::list_webhook_endpoints))
        .routes(routes!(routes::operations::list_deliveries))
        .routes(routes!(routes::operations::redeliver))
        .split_for_parts()
}

pub fn openapi_json() -> String {
    api().1.to_pretty_json().unwrap_or_default()
}

pub fn router(app: App, config: &ServerConfig) -> Router {
    let state = AppState { app: std::sync::Arc::new(app.clone()), metrics: metrics_handle() };
    let (api, doc) = api();
    let doc = std::sync::Arc::new(doc);
    let pages = refundry_web::router(app, config.web.clone());
    api.route("/v1/openapi.json", get(move || async move { Json(doc.as_ref().clone()) }))
        .route("/healthz", get(routes::health::healthz))
        .route("/readyz", get(routes::health::readyz))
        .route("/metrics", get(routes::health::metrics))
        // the pages refuse card data themselves, with a page instead of JSON
        .layer(middleware::from_fn(guard::refuse_card_data_in_query))
        .with_state(state)
        .merge(pages)
        .layer(middleware::from_fn_with_state(limiter::Limiter::new(config), limiter::limit))
        .layer(middleware::from_fn_with_state(
            BodyLimits { default: config.max_body_bytes, evidence: config.max_evidence_body_bytes },
            limit_body,
        ))
        .layer(middleware::from_fn(track_requests))
        .layer(middleware::from_fn(problem::localize))
        .layer(CatchPanicLayer::new())
        .layer(
            // the path only: query strings may carry what logs must not
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request| {
                    let id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("-");
                    tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
                })
                .on_response(DefaultOnResponse::new().level(Level::INFO).latency_unit(LatencyUnit::Micros)),
        )
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
}

async fn track_requests(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().as_str().to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    let labels = [("method", method), ("route", route), ("status", status)];
    metrics::counter!("refundry_http_requests_total", &labels).increment(1);
    metrics::histogram!("refundry_http_request_duration_seconds", &labels).record(started.elapsed().as_secs_f64());
    response
}

/// A server and its job runner, running until [`Running::shutdown`].
pub struct Running {
    pub addr: SocketAddr,
    stop: watch::Sender<bool>,
    server: JoinHandle<std::io::Result<()>>,
    runner: JoinHandle<()>,
}

impl Running {
    /// Stops taking requests, lets requests and jobs in flight finish.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.server.await;
        let _ = self.runner.await;
    }

    /// Waits until the server stops by itself (or is told to by `stop`).
    pub async fn wait(self) -> std::io::Result<()> {
        let result = self.server.await.unwrap_or(Ok(()));
        let _ = self.stop.send(true);
        let _ = self.runner.await;
        result
    }

    pub fn stopper(&self) -> watch::Sender<bool> {
        self.stop.clone()
    }
}

/// Binds, serves the API and starts the outbox job runner.
pub async fn start(app: App, listener: TcpListener, config: ServerConfig) -> std::io::Result<Running> {
    let addr = listener.local_addr()?;
    let (stop, stopped) = watch::channel(false);
    let runner = tokio::spawn(JobRunner::new(app.clone(), stopped.clone()).run());
    let router = router(app, &config);
    let mut server_stopped = stopped;
    let server = tokio::spawn(async move {
        axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(async move {
                let _ = server_stopped.wait_for(|stop| *stop).await;
            })
            .await
    });
    Ok(Running { addr, stop, server, runner })
}
