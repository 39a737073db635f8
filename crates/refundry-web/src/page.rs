//! What every page shares: the visitor's language, the CSRF token, the
//! person logged in and the navigation bar; rendering; error pages in the
//! visitor's language.

use askama::Template;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use refundry_app::{Actor, AppError, ErrorCode};
use serde::Deserialize;

use crate::csrf::CsrfToken;
use crate::i18n::Lang;
use crate::nav::{self, Area, Link};
use crate::session::{self, LANG, SESSION};
use crate::{Web, assets};

/// A page's answer: the page, or an error page / redirect.
pub type PageResult = Result<Response, Response>;

/// The layout's facts, given to every template as `ctx`.
#[derive(Clone)]
pub struct Ctx {
    pub lang: Lang,
    pub csrf: String,
    /// Path and query of this page, to come back to after switching language.
    pub here: String,
    pub user: Option<String>,
    pub role: Option<&'static str>,
    pub nav: Vec<Link>,
    pub tz: jiff::tz::TimeZone,
    /// `user:usr_…` → the person's name, to show people rather than ids.
    pub people: std::sync::Arc<std::collections::HashMap<String, String>>,
}

impl Ctx {
    pub fn t(&self, key: &str) -> &'static str {
        self.lang.t(key)
    }

    pub fn asset(&self, name: &str) -> String {
        assets::url(name)
    }

    /// The link that switches to the other language (and comes back here).
    pub fn switch_href(&self) -> String {
        format!("/lang?to={}", self.lang.other().tag())
    }

    pub fn other_lang(&self) -> &'static str {
        self.lang.other().name()
    }

    /// An error page in the visitor's language.
    pub fn error(&self, status: StatusCode, title: &str, detail: &str) -> Response {
        let page = ErrorPage { ctx: self, title, detail };
        (status, render(&page)).into_response()
    }

    pub fn forbidden(&self) -> Response {
        self.error(StatusCode::FORBIDDEN, self.t("error.forbidden"), self.t("page.forbidden_detail"))
    }

    pub fn not_found(&self) -> Response {
        self.error(StatusCode::NOT_FOUND, self.t("error.not_found"), self.t("page.not_found_detail"))
    }

    /// An id from the address, or the "not found" page: a malformed id
    /// names nothing.
    pub fn id<T, E>(&self, text: &str, parse: fn(&str) -> Result<T, E>) -> Result<T, Response> {
        parse(text).map_err(|_| self.not_found())
    }

    /// An app error as a page: its title from the catalogue, its detail.
    pub fn app_error(&self, e: &AppError) -> Response {
        self.error(status_of(e.code), &self.error_title(e.code), &e.detail)
    }

    pub fn error_title(&self, code: ErrorCode) -> String {
        self.t(&format!("error.{}", code.as_str())).to_owned()
    }

    pub fn money(&self, m: refundry_core::money::Money) -> String {
        crate::format::money(m)
    }

    pub fn time(&self, t: jiff::Timestamp) -> String {
        crate::format::time(t, &self.tz)
    }

    /// Who did something, by name when it was a person of this merchant.
    pub fn who(&self, identity: &str) -> String {
        match identity.split_once(" via ") {
            Some((person, via)) => format!("{} ({via})", self.who(person)),
            None => self.people.get(identity).cloned().unwrap_or_else(|| match identity {
                "system:self-service" => self.t("who.customer").to_owned(),
                "system:job-runner" | "system:notifier" | "system:approval-expiry" => self.t("who.refundry").to_owned(),
                other => other.to_owned(),
            }),
        }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    ctx: &'a Ctx,
    title: &'a str,
    detail: &'a str,
}

/// The HTTP status an app error answers with on a page.
pub fn status_of(code: ErrorCode) -> StatusCode {
    use ErrorCode as C;
    match code {
        C::Unauthorized | C::InvalidCredentials => StatusCode::UNAUTHORIZED,
        C::Forbidden | C::ApproverIsRequester => StatusCode::FORBIDDEN,
        C::NotFound | C::SaleNotFound | C::RefundNotFound | C::DisputeNotFound => StatusCode::NOT_FOUND,
        C::AccountLocked => StatusCode::LOCKED,
        C::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        C::Overloaded | C::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        C::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        C::RefundNotAwaitingApproval | C::ApprovalExpired | C::IdempotencyKeyReused => StatusCode::CONFLICT,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    }
}

/// Renders a template; a template that fails is a bug, answered 500.
pub fn render<T: Template>(t: &T) -> Response {
    match t.render() {
        Ok(body) => Html(body).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "a page failed to render");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }
    }
}

/// A minimal page for answers made before any page context exists.
pub fn bare_message(lang: Lang, title: &str, detail: &str) -> Html<String> {
    let esc = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
    Html(format!(
        "<!doctype html><html lang=\"{}\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{}</title><link rel=\"stylesheet\" href=\"{}\"></head><body><main class=\"narrow\"><h1>{}</h1><p>{}</p><p><a class=\"button\" href=\"/\">{}</a></p></main></body></html>",
        lang.tag(),
        esc(title),
        assets::url("app.css"),
        esc(title),
        esc(detail),
        esc(lang.t("page.back_home")),
    ))
}

/// The visitor's language: the `lang` cookie, else the browser's.
pub fn lang_of(headers: &HeaderMap) -> Lang {
    session::cookie(headers, LANG).and_then(Lang::parse).unwrap_or_else(|| Lang::from_accept_language(headers))
}

fn ctx_of(parts: &Parts, web: &Web) -> Ctx {
    Ctx {
        lang: lang_of(&parts.headers),
        csrf: parts.extensions.get::<CsrfToken>().map(|t| t.0.clone()).unwrap_or_default(),
        here: parts.uri.path_and_query().map(|p| p.as_str().to_owned()).unwrap_or_else(|| "/".into()),
        user: None,
        role: None,
        nav: Vec::new(),
        tz: web.app.config.business_tz.clone(),
        people: Default::default(),
    }
}

/// Anyone: the log-in and self-service pages.
pub struct Visitor {
    pub ctx: Ctx,
    pub source: String,
}

impl FromRequestParts<Web> for Visitor {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, web: &Web) -> Result<Self, Self::Rejection> {
        Ok(Visitor { ctx: ctx_of(parts, web), source: session::source(parts) })
    }
}

/// A person logged in. Others are sent to the log-in page.
pub struct Staff {
    pub ctx: Ctx,
    pub actor: Actor,
    pub token: String,
}

impl FromRequestParts<Web> for Staff {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, web: &Web) -> Result<Self, Self::Rejection> {
        let mut ctx = ctx_of(parts, web);
        let source = session::source(parts);
        let token = session::cookie(&parts.headers, SESSION).map(str::to_owned);
        let actor = match &token {
            Some(t) => web.app.authenticate_session(t, &source).await.ok(),
            None => None,
        };
        let (Some(actor), Some(token)) = (actor, token) else {
            return Err(to_login(parts, &ctx.here));
        };
        // names for ids on the page; a page without them still works
        if let Ok(users) = web.app.users(&actor).await {
            let names = users.into_iter().map(|u| (format!("user:{}", u.id), u.display_name)).collect();
            ctx.people = std::sync::Arc::new(names);
        }
        let person = actor.person().cloned();
        ctx.user = person.as_ref().map(|p| p.username.clone());
        ctx.role = person.map(|p| ctx.lang.t(&format!("role.{}", p.role.as_str())));
        Ok(Staff { ctx, actor, token })
    }
}

fn to_login(parts: &Parts, here: &str) -> Response {
    let next: String = form_urlencoded::byte_serialize(here.as_bytes()).collect();
    let target = if here == "/" { "/login".to_owned() } else { format!("/login?next={next}") };
    if parts.headers.contains_key("hx-request") {
        // htmx follows this header instead of swapping a log-in page into a fragment
        let mut r = StatusCode::NO_CONTENT.into_response();
        if let Ok(v) = HeaderValue::from_str(&target) {
            r.headers_mut().insert("hx-redirect", v);
        }
        return r;
    }
    Redirect::to(&target).into_response()
}

impl Staff {
    /// Enters an area: the navigation bar marks it, and a person whose role
    /// may not see it gets 403 in their language.
    pub fn enter(&mut self, area: Area) -> Result<(), Response> {
        if !nav::may(&self.actor, area) {
            self.ctx.nav = nav::bar(&self.actor, area, self.ctx.lang);
            return Err(self.ctx.forbidden());
        }
        self.ctx.nav = nav::bar(&self.actor, area, self.ctx.lang);
        Ok(())
    }

    pub fn may(&self, area: Area) -> bool {
        nav::may(&self.actor, area)
    }
}

/// A local path to go back to, never another site.
pub fn local_path(p: Option<&str>) -> String {
    match p {
        Some(p) if p.starts_with('/') && !p.starts_with("//") && !p.contains('\\') => p.to_owned(),
        _ => "/".to_owned(),
    }
}

/// Sends the browser on with a `Set-Cookie`.
pub fn redirect_with_cookie(to: &str, cookie: &str) -> Response {
    let mut r = Redirect::to(to).into_response();
    if let Ok(v) = HeaderValue::from_str(cookie) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

/// A form field's error, shown next to it.
#[derive(Debug, Clone, Default)]
pub struct FieldErrors(pub Vec<(String, String)>);

impl FieldErrors {
    pub fn add(&mut self, field: &str, message: impl Into<String>) {
        self.0.push((field.to_owned(), message.into()));
    }

    pub fn get(&self, field: &str) -> Option<&str> {
        self.0.iter().find(|(f, _)| f == field).map(|(_, m)| m.as_str())
    }

    pub fn has(&self, field: &str) -> bool {
        self.get(field).is_some()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// An app error placed at the field it names (or `fallback`), in the
    /// visitor's language: the title, then the detail when it is English
    /// and the visitor reads English.
    pub fn from_app(ctx: &Ctx, e: &AppError, fallback: &str) -> FieldErrors {
        let field = e
            .extra
            .iter()
            .find(|(k, _)| *k == "field")
            .and_then(|(_, v)| v.as_str())
            .map(|f| f.split('[').next().unwrap_or(f).to_owned())
            .unwrap_or_else(|| fallback.to_owned());
        let mut message = ctx.error_title(e.code);
        if ctx.lang == Lang::En || e.code == ErrorCode::ValidationFailed {
            message = format!("{message}: {}", e.detail);
        }
        let mut errors = FieldErrors::default();
        errors.add(&field, message);
        errors
    }

    /// As [`FieldErrors::from_app`], for a form that has only `fields`: an
    /// error about another field (`file.name`, say) shows at `fallback`.
    pub fn from_app_on_form(ctx: &Ctx, e: &AppError, fallback: &str, fields: &[&str]) -> FieldErrors {
        let mut errors = FieldErrors::from_app(ctx, e, fallback);
        for (field, _) in &mut errors.0 {
            if !fields.contains(&field.as_str()) {
                *field = fallback.to_owned();
            }
        }
        errors
    }
}

/// `?done=…`: what a form just did, for the page it redirects to.
#[derive(Deserialize, Default)]
pub struct DoneQuery {
    #[serde(default)]
    pub done: String,
}
