//! The door: card secrets are refused before anything reads a request, and
//! bodies are parsed into request types with errors that name the field.

use axum::extract::Request;
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use refundry_app::{AppError, ErrorCode};
use refundry_core::card::{contains_card_number, is_forbidden_key, luhn_valid, value_is_sensitive};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::problem::ApiError;

/// Deepest JSON nesting accepted; real requests need four or five levels.
const MAX_DEPTH: usize = 16;

fn sensitive(path: &str) -> ApiError {
    // the detail names where, never what
    ApiError(
        AppError::new(
            ErrorCode::SensitiveCardData,
            format!("{path} holds card data that must never be sent: send only first6 and last4"),
        )
        .with("field", path),
    )
}

/// Finds the first place in a JSON document that holds card secrets: a
/// forbidden field name, or a value that is a full card number.
pub fn find_card_data(value: &Value) -> Option<String> {
    walk(value, "", "")
}

fn walk(value: &Value, path: &str, key: &str) -> Option<String> {
    match value {
        Value::Object(map) => map.iter().find_map(|(k, v)| {
            let child = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
            if is_forbidden_key(k) { Some(child) } else { walk(v, &child, k) }
        }),
        Value::Array(items) => items.iter().enumerate().find_map(|(i, v)| walk(v, &format!("{path}[{i}]"), key)),
        Value::String(s) => {
            // our ids (`sale_…`) are skipped by the detector itself
            value_is_sensitive(key, s).then(|| path.to_owned())
        }
        // amounts are bounded well below card-number length; other numbers
        // are checked as their digits
        Value::Number(n) if !key.ends_with("amount") => {
            let digits = n.to_string();
            ((13..=19).contains(&digits.len()) && luhn_valid(digits.as_bytes())).then(|| path.to_owned())
        }
        _ => None,
    }
}

fn depth(value: &Value) -> usize {
    match value {
        Value::Object(map) => 1 + map.values().map(depth).max().unwrap_or(0),
        Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// Parses a JSON body into `T` after refusing card secrets anywhere in it.
pub fn parse_body<T: DeserializeOwned>(headers: &HeaderMap, body: &[u8]) -> Result<T, ApiError> {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(';').next().is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json")));
    if !json {
        return Err(ApiError::new(ErrorCode::UnsupportedMediaType, "send the body as Content-Type: application/json"));
    }
    // serde_json stops at 128 levels; refuse deep documents before walking them
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            ErrorCode::InvalidRequest,
            format!("the body is not valid JSON ({} at line {}, column {})", classify(&e), e.line(), e.column()),
        )
    })?;
    if depth(&value) > MAX_DEPTH {
        return Err(ApiError::new(
            ErrorCode::InvalidRequest,
            format!("the body is nested deeper than {MAX_DEPTH} levels"),
        ));
    }
    if let Some(path) = find_card_data(&value) {
        metrics::counter!("refundry_card_data_refused_total").increment(1);
        return Err(sensitive(&path));
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        let field = e.path().to_string();
        ApiError(AppError::new(ErrorCode::InvalidRequest, format!("{field}: {}", e.inner())).with("field", field))
    })
}

fn classify(e: &serde_json::Error) -> &'static str {
    match e.classify() {
        serde_json::error::Category::Eof => "unexpected end",
        serde_json::error::Category::Syntax => "syntax error",
        serde_json::error::Category::Data => "wrong data",
        serde_json::error::Category::Io => "read error",
    }
}

/// Refuses card numbers in query strings too: a URL ends up in access logs
/// and browser history.
pub async fn refuse_card_data_in_query(request: Request, next: Next) -> Response {
    if let Some(query) = request.uri().query() {
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            if is_forbidden_key(&key) || contains_card_number(&value) {
                return sensitive(&key).into_response();
            }
        }
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn card_numbers_are_found_anywhere_and_named_by_path() {
        let body = json!({"note": "ok", "items": [{"sku": "a"}, {"name": "4111 1111 1111 1111"}]});
        assert_eq!(find_card_data(&body).as_deref(), Some("items[1].name"));
        let body = json!({"payment_method": {"type": "card", "CVV": "123"}});
        assert_eq!(find_card_data(&body).as_deref(), Some("payment_method.CVV"));
        assert_eq!(find_card_data(&json!({"x": 4111111111111111u64})).as_deref(), Some("x"));
    }

    #[test]
    fn our_ids_are_never_card_numbers_but_ids_with_a_card_number_are() {
        // a real sale id whose digits hold a Luhn-valid 13-digit run
        assert!(refundry_core::card::luhn_valid(b"8732195337407"));
        assert_eq!(find_card_data(&json!({"sale_id": "sale_01a218065ec8732195337407bbf75fa9"})), None);
        assert_eq!(find_card_data(&json!({"note": "for sale_01a218065ec8732195337407bbf75fa9"})), None);
        assert!(find_card_data(&json!({"sale_id": "sale_4111111111111111"})).is_some());
    }

    #[tokio::test]
    async fn our_ids_pass_in_query_strings_and_card_numbers_do_not() {
        use axum::{Router, body::Body, routing::get};
        use tower::ServiceExt;
        let app = Router::new()
            .route("/", get(|| async { "ok" }))
            .layer(axum::middleware::from_fn(refuse_card_data_in_query));
        let status = |uri: &'static str| {
            let app = app.clone();
            async move { app.oneshot(Request::get(uri).body(Body::empty()).unwrap()).await.unwrap().status() }
        };
        assert_eq!(status("/?sale_id=sale_01a218065ec8732195337407bbf75fa9").await, 200);
        assert_eq!(status("/?q=4111111111111111").await, 422);
        assert_eq!(status("/?sale_id=sale_4111111111111111").await, 422);
    }

    #[test]
    fn ordinary_sales_pass() {
        let body = json!({
            "amount": 1234567890123i64, "currency": "cny", "rrn": "123456789012", "voucher_no": "000123",
            "payment_method": {"type": "card", "first6": "622202", "last4": "1234"},
            "items": [{"sku": "6901234567892", "quantity": 1, "unit_amount": 100}],
            "captured_at": "2026-11-26T10:00:00+08:00"
        });
        assert_eq!(find_card_data(&body), None);
    }
}
