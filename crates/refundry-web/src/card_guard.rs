//! Card secrets never enter through a page: a full card number typed into
//! any field (a search box, a note) or a query string is refused before a
//! handler sees it, with a page in the visitor's language that names the
//! field, never the value. Nothing is stored or logged.

use axum::body::{Body, to_bytes};
use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use refundry_core::card::{is_forbidden_key, value_is_sensitive};

use crate::csrf;
use crate::page::{bare_message, lang_of};

const MAX_FORM_BYTES: usize = 64 * 1024;

/// Our own tokens are hex or base64 that may hold a Luhn-valid run of
/// digits by chance; they are not typed by people. (Our ids are skipped by
/// the detector itself.)
fn is_ours(field: &str) -> bool {
    field == csrf::FIELD || field == "idem" || field == "after"
}

/// The first field holding card data.
fn offending(pairs: &[u8]) -> Option<String> {
    form_urlencoded::parse(pairs)
        .find(|(k, v)| is_forbidden_key(k) || (!is_ours(k) && value_is_sensitive(k, v)))
        .map(|(k, _)| k.into_owned())
}

pub async fn refuse_card_data(request: Request, next: Next) -> Response {
    let lang = lang_of(request.headers());
    if let Some(field) = request.uri().query().and_then(|q| offending(q.as_bytes())) {
        return refused(lang, &field);
    }
    let form = request
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/x-www-form-urlencoded"));
    if !form {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let Ok(bytes) = to_bytes(body, MAX_FORM_BYTES).await else {
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    };
    if let Some(field) = offending(&bytes) {
        return refused(lang, &field);
    }
    next.run(Request::from_parts(parts, Body::from(bytes))).await
}

fn refused(lang: crate::i18n::Lang, field: &str) -> Response {
    log_refusal(field);
    let detail = format!("{} ({field})", lang.t("page.card_data_detail"));
    (StatusCode::UNPROCESSABLE_ENTITY, bare_message(lang, lang.t("error.sensitive_card_data"), &detail)).into_response()
}

/// Which field, never what was in it.
fn log_refusal(field: &str) {
    tracing::warn!(field, "a page refused card data");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_card_number_in_any_field_is_found_and_our_ids_are_not() {
        assert_eq!(offending(b"rrn=4111111111111111&voucher=1").as_deref(), Some("rrn"));
        assert_eq!(offending(b"note=card+4111+1111+1111+1111").as_deref(), Some("note"));
        assert_eq!(offending(b"cvv=123").as_deref(), Some("cvv"));
        assert_eq!(offending(b"voucher=000105&rrn=664365114582&amount=18.00&date=2030-01-31"), None);
        assert_eq!(offending(b"after=sale_01a218065ec8732195337407bbf75fa9"), None);
    }
}
