//! `Authorization: Bearer …` on every /v1 call: an API key (`rk_…`) or a
//! log-in session (`rs_…`).

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header;
use axum::http::request::Parts;
use refundry_app::{Actor, AppError, ErrorCode};

use crate::problem::ApiError;
use crate::state::AppState;

/// The authenticated caller.
pub struct Auth(pub Actor);

/// The bearer token of the request, if any.
pub fn bearer(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}

/// The client's address, for the audit log.
pub fn source(parts: &Parts) -> String {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_else(|| "unknown".to_owned())
}

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let token = bearer(parts).ok_or_else(|| {
            ApiError::new(ErrorCode::Unauthorized, "send Authorization: Bearer with an API key or session token")
        })?;
        let source = source(parts);
        let actor = if token.starts_with("rs_") {
            state.app.authenticate_session(token, &source).await?
        } else {
            state.app.authenticate(token, &source).await?
        };
        Ok(Auth(actor))
    }
}

fn forbidden(scope: &str) -> ApiError {
    ApiError(
        AppError::new(ErrorCode::Forbidden, format!("this caller lacks the {scope} scope"))
            .with("required_scope", scope),
    )
}

impl Auth {
    /// The caller must hold `scope` (or `admin`).
    pub fn require(&self, scope: &str) -> Result<&Actor, ApiError> {
        if self.0.may(scope) { Ok(&self.0) } else { Err(forbidden(scope)) }
    }

    /// The caller, acting as the named operator when a key names one; the
    /// result must hold `scope`.
    pub async fn acting(&self, state: &AppState, operator: Option<&str>, scope: &str) -> Result<Actor, ApiError> {
        let actor = match operator {
            Some(name) => state.app.with_operator(&self.0, name).await?,
            None => self.0.clone(),
        };
        if actor.may(scope) { Ok(actor) } else { Err(forbidden(scope)) }
    }

    /// Reading needs any scope at all: every key may read its merchant's data
    /// (within its pins).
    pub fn reader(&self) -> &Actor {
        &self.0
    }
}
