//! `Authorization: Bearer rk_…` on every /v1 call.

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use refundry_app::{Actor, ErrorCode};

use crate::problem::ApiError;
use crate::state::AppState;

/// The authenticated caller.
pub struct Auth(pub Actor);

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| ApiError::new(ErrorCode::Unauthorized, "send the API key as Authorization: Bearer rk_…"))?;
        let actor = state.app.authenticate(token.trim()).await?;
        Ok(Auth(actor))
    }
}

impl Auth {
    /// The key must hold `scope` (or `admin`).
    pub fn require(&self, scope: &str) -> Result<&Actor, ApiError> {
        let scopes = &self.0.scopes;
        if scopes.iter().any(|s| s == scope || s == "admin") {
            Ok(&self.0)
        } else {
            Err(ApiError(
                refundry_app::AppError::new(ErrorCode::Forbidden, format!("this key lacks the {scope} scope"))
                    .with("required_scope", scope),
            ))
        }
    }

    /// Reading needs any scope at all: every key may read its merchant's data.
    pub fn reader(&self) -> &Actor {
        &self.0
    }
}
