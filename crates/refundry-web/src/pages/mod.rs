//! One module per area; each owns its routes and templates.

pub mod approvals;
pub mod audit;
pub mod corrections;
pub mod counter;
pub mod dashboard;
pub mod disputes;
pub mod home;
pub mod login;
pub mod refunds;
pub mod sales;
pub mod self_service;
pub mod settings;
pub mod views;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};

use crate::Web;

pub fn routes() -> Router<Web> {
    Router::new()
        .route("/", get(home::home))
        .route("/lang", get(home::switch_language))
        .route("/login", get(login::form).post(login::submit))
        .route("/logout", post(login::log_out))
        .route("/counter", get(counter::search))
        .route("/counter/sales/{id}", get(counter::sale))
        .route("/counter/sales/{id}/preview", post(counter::preview))
        .route("/counter/sales/{id}/refund", post(counter::submit))
        .route("/approvals", get(approvals::queue))
        .route("/approvals/{id}", post(approvals::decide))
        .route("/sales", get(sales::list))
        .route("/sales/{id}", get(sales::detail))
        .route("/refunds", get(refunds::list))
        .route("/refunds/{id}", get(refunds::detail))
        .route("/refunds/{id}/live", get(refunds::live))
        .route("/refunds/{id}/slip", get(refunds::slip_page))
        .route("/refunds/{id}/slip/{file}", get(refunds::slip_file))
        .route("/self-service", get(self_service::form).post(self_service::look_up))
        .route("/self-service/request", post(self_service::request))
        .route("/m/{merchant}/self-service", get(self_service::form_of).post(self_service::look_up_of))
        .route("/m/{merchant}/self-service/request", post(self_service::request_of))
        .route("/self-service/status/{token}", get(self_service::status))
        .route("/self-service/status/{token}/live", get(self_service::status_live))
        .route("/dashboard", get(dashboard::show))
        .route("/audit", get(audit::list))
        .merge(case_routes())
}

/// Disputes, corrections and settings.
fn case_routes() -> Router<Web> {
    Router::new()
        .route("/disputes", get(disputes::list))
        .route("/disputes/{id}", get(disputes::case))
        .route("/disputes/{id}/move", post(disputes::move_case))
        // the CSRF guard has already bounded the body by the evidence limit
        .route("/disputes/{id}/evidence", post(disputes::add_evidence).layer(DefaultBodyLimit::disable()))
        .route("/disputes/{id}/evidence/{item}", get(disputes::evidence_file))
        .route("/corrections", get(corrections::list))
        .route("/corrections/{id}", get(corrections::case))
        .route("/corrections/{id}/refund", post(corrections::refund))
        .route("/corrections/{id}/dismiss", post(corrections::dismiss))
        .route("/settings", get(settings::index))
        .route("/settings/policy", get(settings::policy::form).post(settings::policy::submit))
        .route("/settings/users", get(settings::users::list).post(settings::users::create))
        .route("/settings/keys", get(settings::keys::list).post(settings::keys::create))
        .route("/settings/webhooks", get(settings::webhooks::list).post(settings::webhooks::create))
        .route("/settings/webhooks/{id}", get(settings::webhooks::deliveries))
        .route("/settings/webhooks/{id}/deliveries/{delivery}/redeliver", post(settings::webhooks::redeliver))
}
