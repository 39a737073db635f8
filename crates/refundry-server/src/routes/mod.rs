pub mod audit;
pub mod batches;
pub mod corrections;
pub mod disputes;
pub mod health;
pub mod operations;
pub mod people;
pub mod policy;
pub mod refunds;
pub mod sales;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use refundry_app::ErrorCode;
use refundry_app::idempotency::{Idempotency, Render, StoredResponse};
use serde::Serialize;

use crate::problem::ApiError;

pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// JSON answer with the given status, as stored for idempotent replay.
pub fn stored_json<T: Serialize>(status: StatusCode, body: &T) -> StoredResponse {
    StoredResponse { status: status.as_u16(), body: serde_json::to_string(body).unwrap_or_default() }
}

pub fn respond(stored: StoredResponse, replayed: bool) -> Response {
    let mut response = Response::new(Body::from(stored.body));
    *response.status_mut() = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if replayed {
        response.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    response
}

/// Reads the `Idempotency-Key` header into a claim on this request.
pub fn idempotency<T>(
    headers: &HeaderMap,
    path: &str,
    body: &[u8],
    required: bool,
    render: Render<T>,
) -> Result<Option<Idempotency<T>>, ApiError> {
    let Some(value) = headers.get(IDEMPOTENCY_KEY) else {
        return if required {
            Err(ApiError::new(
                ErrorCode::IdempotencyKeyRequired,
                "send an Idempotency-Key header (a UUID is a good choice) so a retry cannot pay twice",
            ))
        } else {
            Ok(None)
        };
    };
    let key = value
        .to_str()
        .map_err(|_| ApiError::new(ErrorCode::InvalidRequest, "Idempotency-Key must be visible ASCII"))?;
    Ok(Some(Idempotency::new(key.to_owned(), "POST", path, body, render)?))
}
