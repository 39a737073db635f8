//! Cookies: the log-in session, the language, and the token that ties
//! forms to a visitor who is not logged in.

use std::net::SocketAddr;

use axum::extract::ConnectInfo;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};

/// The session token from `App::log_in`.
pub const SESSION: &str = "refundry_session";
/// `zh-CN` or `en`, set by the language switch.
pub const LANG: &str = "refundry_lang";
/// A random value for visitors without a session, so their forms carry a
/// CSRF token too (the log-in and the self-service page).
pub const VISITOR: &str = "refundry_visitor";

/// A cookie's value from the request.
pub fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Strict, whole site; `Secure`
/// unless the server runs on plain HTTP locally. `max_age` none: for the
/// browser session; zero: delete.
pub fn set_cookie(name: &str, value: &str, max_age_secs: Option<u64>, secure: bool) -> String {
    let mut c = format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict");
    if let Some(age) = max_age_secs {
        c.push_str(&format!("; Max-Age={age}"));
    }
    if secure {
        c.push_str("; Secure");
    }
    c
}

/// The client's address, for the audit log and the rate limit.
pub fn source(parts: &Parts) -> String {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_else(|| "unknown".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_cookie_among_others() {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, "a=1; refundry_lang=en; b=2".parse().unwrap());
        assert_eq!(cookie(&h, LANG), Some("en"));
        assert_eq!(cookie(&h, SESSION), None);
    }

    #[test]
    fn cookies_are_http_only_and_strict() {
        let c = set_cookie(SESSION, "rs_x", None, true);
        assert!(
            c.contains("HttpOnly") && c.contains("SameSite=Strict") && c.contains("Secure") && c.contains("Path=/")
        );
        assert!(!set_cookie(SESSION, "rs_x", None, false).contains("Secure"));
    }
}
