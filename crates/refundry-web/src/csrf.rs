//! Cross-site request forgery: every POST must carry a token that only a
//! page of ours could have given. The token is an HMAC keyed by the
//! visitor's secret cookie (the session token once logged in), so it needs
//! no storage, survives restarts and works across instances; a forged form
//! on another site cannot read the cookie and so cannot compute it. htmx
//! sends it in the `X-CSRF-Token` header, plain forms in a `csrf` field
//! (URL-encoded, or multipart for the forms that upload a file).

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

use crate::Web;
use crate::session::{SESSION, VISITOR, cookie, set_cookie};

pub const HEADER: &str = "x-csrf-token";
pub const FIELD: &str = "csrf";
/// Forms are small; a larger body is refused before it is read whole.
const MAX_FORM_BYTES: usize = 64 * 1024;
/// `/disputes/{id}/evidence`.
fn is_evidence_upload(path: &str) -> bool {
    path.strip_prefix("/disputes/")
        .and_then(|rest| rest.strip_suffix("/evidence"))
        .is_some_and(|id| !id.is_empty() && !id.contains('/'))
}

/// A multipart form is read whole (up to this) to find its token. Only the
/// evidence upload takes a file: twice the largest evidence file plus room
/// for the fields, so a file somewhat over the limit still reaches the
/// page, which says so next to the field rather than here. Any other path
/// gets no more than a plain form.
fn max_multipart_bytes(web: &Web, path: &str) -> usize {
    if is_evidence_upload(path) {
        web.app.config.disputes.evidence_max_file_bytes.saturating_mul(2).saturating_add(MAX_FORM_BYTES)
    } else {
        MAX_FORM_BYTES
    }
}

/// The token pages put in their forms, for this request's visitor.
#[derive(Debug, Clone)]
pub struct CsrfToken(pub String);

pub fn token_for(secret: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(b"refundry-csrf-v1");
    hex::encode(mac.finalize().into_bytes())
}

fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

pub async fn guard(State(web): State<Web>, request: Request, next: Next) -> Response {
    let headers = request.headers();
    let known = cookie(headers, SESSION).or_else(|| cookie(headers, VISITOR)).map(str::to_owned);
    let (secret, fresh) = match known {
        Some(s) => (s, None),
        None => {
            let mut bytes = [0u8; 32];
            rand::rng().fill_bytes(&mut bytes);
            let v = hex::encode(bytes);
            (v.clone(), Some(v))
        }
    };
    let expected = token_for(&secret);
    let mut request = if is_safe(request.method()) {
        request
    } else {
        let max_multipart = max_multipart_bytes(&web, request.uri().path());
        match checked(request, &expected, max_multipart).await {
            Ok(r) => r,
            Err(Refusal::Token(lang)) => return refused(lang),
            Err(Refusal::TooLarge(lang)) => return too_large(lang),
        }
    };
    request.extensions_mut().insert(CsrfToken(expected));
    let mut response = next.run(request).await;
    if let Some(v) = fresh {
        let c = set_cookie(VISITOR, &v, None, web.config.secure_cookies);
        if let Ok(v) = HeaderValue::from_str(&c) {
            response.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    response
}

/// Why a POST is not let through, with the language to say it in.
enum Refusal {
    Token(crate::i18n::Lang),
    /// An upload far over the file limit: not read to the end to find its token.
    TooLarge(crate::i18n::Lang),
}

/// The request again when its token is right; otherwise why not.
async fn checked(request: Request, expected: &str, max_multipart: usize) -> Result<Request, Refusal> {
    let lang = crate::page::lang_of(request.headers());
    let refuse = Refusal::Token;
    if request.headers().get(HEADER).and_then(|v| v.to_str().ok()).is_some_and(|t| same(t, expected)) {
        return Ok(request);
    }
    let (parts, body) = request.into_parts();
    let content_type = parts.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if let Ok(boundary) = multer::parse_boundary(content_type) {
        let bytes = to_bytes(body, max_multipart).await.map_err(|_| Refusal::TooLarge(lang))?;
        let ok = multipart_token(bytes.clone(), boundary).await.is_some_and(|t| same(&t, expected));
        return if ok { Ok(Request::from_parts(parts, Body::from(bytes))) } else { Err(refuse(lang)) };
    }
    if !content_type.starts_with("application/x-www-form-urlencoded") {
        return Err(refuse(lang));
    }
    let bytes = to_bytes(body, MAX_FORM_BYTES).await.map_err(|_| refuse(lang))?;
    let ok = form_urlencoded::parse(&bytes).any(|(k, v)| k == FIELD && same(&v, expected));
    if ok { Ok(Request::from_parts(parts, Body::from(bytes))) } else { Err(refuse(lang)) }
}

/// The `csrf` field of a multipart body, if it has one.
async fn multipart_token(bytes: axum::body::Bytes, boundary: String) -> Option<String> {
    let stream = Body::from(bytes).into_data_stream();
    let mut form = multer::Multipart::new(stream, boundary);
    while let Ok(Some(field)) = form.next_field().await {
        if field.name() == Some(FIELD) {
            return field.text().await.ok();
        }
    }
    None
}

fn too_large(lang: crate::i18n::Lang) -> Response {
    let body =
        crate::page::bare_message(lang, lang.t("error.evidence_file_too_large"), lang.t("disputes.upload_too_large"));
    (StatusCode::PAYLOAD_TOO_LARGE, body).into_response()
}

fn refused(lang: crate::i18n::Lang) -> Response {
    let body = crate::page::bare_message(lang, lang.t("error.csrf.title"), lang.t("error.csrf.detail"));
    (StatusCode::FORBIDDEN, body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_evidence_upload_is_read_past_a_plain_forms_size() {
        assert!(is_evidence_upload("/disputes/dp_1/evidence"));
        assert!(!is_evidence_upload("/disputes//evidence"));
        assert!(!is_evidence_upload("/disputes/dp_1/x/evidence"));
        assert!(!is_evidence_upload("/login"));
        assert!(!is_evidence_upload("/settings/keys"));
    }

    #[test]
    fn tokens_differ_by_secret_and_compare_in_full() {
        let (a, b) = (token_for("one"), token_for("two"));
        assert_ne!(a, b);
        assert!(same(&a, &token_for("one")));
        assert!(!same(&a, &a[..10]));
    }
}
