//! Refundry's web pages: the back office for cashiers, supervisors and
//! back-office staff, and the customer's self-service page.
//!
//! Layout of the crate:
//! - [`page`]: what every page shares (language, log-in, CSRF token, the
//!   navigation) and how a page answers errors;
//! - [`nav`]: the one list of back-office areas and the scope each needs;
//! - [`i18n`]: the message catalogues (`i18n/en.toml`, `i18n/zh-CN.toml`);
//! - [`session`] and [`csrf`]: the log-in cookie and the form tokens;
//! - [`assets`]: CSS and scripts compiled into the binary;
//! - [`pages`]: one module (and its templates) per area.
//!
//! Pages are rendered on the server with askama; htmx swaps parts of a
//! page (the policy preview, a refund's status) without a JavaScript build.

// A page's error is a ready response (an error page in the visitor's
// language); its size does not matter next to rendering the page.
#![allow(clippy::result_large_err)]

pub mod assets;
pub mod card_guard;
pub mod csrf;
pub mod format;
pub mod i18n;
pub mod nav;
pub mod page;
pub mod pages;
pub mod session;

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;

use axum::Router;
use axum::middleware;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use refundry_app::App;

/// How the pages behave.
#[derive(Debug, Clone)]
pub struct WebConfig {
    /// Mark cookies `Secure` (sent over HTTPS only). Off only for plain-HTTP
    /// use on this machine: the binary turns it off when it listens on a
    /// loopback address, unless told otherwise.
    pub secure_cookies: bool,
    /// Self-service look-ups and requests one client address may make per
    /// minute (0: no limit): four receipt facts are hard to guess, and this
    /// keeps them so.
    pub self_service_per_minute: u32,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig { secure_cookies: true, self_service_per_minute: 10 }
    }
}

/// What every handler gets; cloned for each extractor and middleware that
/// takes it, hence the app behind one `Arc`.
#[derive(Clone)]
pub struct Web {
    pub app: Arc<App>,
    pub config: Arc<WebConfig>,
    pub(crate) self_service_limit: Option<Arc<DefaultKeyedRateLimiter<IpAddr>>>,
}

/// The pages, to be merged beside the `/v1` API.
pub fn router(app: App, config: WebConfig) -> Router {
    let self_service_limit = NonZeroU32::new(config.self_service_per_minute).map(|n| {
        let burst = NonZeroU32::new((n.get() / 2).max(1)).unwrap_or(n);
        Arc::new(RateLimiter::keyed(Quota::per_minute(n).allow_burst(burst)))
    });
    let web = Web { app: Arc::new(app), config: Arc::new(config), self_service_limit };
    pages::routes()
        .layer(middleware::from_fn_with_state(web.clone(), csrf::guard))
        .layer(middleware::from_fn(card_guard::refuse_card_data))
        .route("/assets/{hash}/{name}", axum::routing::get(assets::serve))
        .layer(middleware::from_fn(secure_headers))
        .with_state(web)
}

/// Scripts only from our own files, no framing (a hidden frame could click
/// a form for the user), Referer only to ourselves (the language switch
/// reads it to come back).
async fn secure_headers(request: axum::extract::Request, next: middleware::Next) -> axum::response::Response {
    use axum::http::{HeaderValue, header};
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; \
             frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    response
}
