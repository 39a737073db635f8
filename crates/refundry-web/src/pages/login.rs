//! Log-in and log-out. The session token from `App::log_in` lives in an
//! HttpOnly, SameSite=Strict cookie.

use askama::Template;
use axum::extract::{Form, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use refundry_app::ErrorCode;
use serde::Deserialize;

use crate::Web;
use crate::page::{Ctx, FieldErrors, Staff, Visitor, local_path, redirect_with_cookie, render};
use crate::session::{SESSION, set_cookie};

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    ctx: &'a Ctx,
    username: &'a str,
    next: &'a str,
    errors: FieldErrors,
}

#[derive(Deserialize)]
pub struct Next {
    next: Option<String>,
}

pub async fn form(visitor: Visitor, Query(q): Query<Next>) -> Response {
    let next = local_path(q.next.as_deref());
    render(&LoginPage { ctx: &visitor.ctx, username: "", next: &next, errors: FieldErrors::default() })
}

#[derive(Deserialize)]
pub struct LogIn {
    username: String,
    password: String,
    next: Option<String>,
}

pub async fn submit(State(web): State<Web>, visitor: Visitor, Form(f): Form<LogIn>) -> Response {
    let next = local_path(f.next.as_deref());
    let ctx = &visitor.ctx;
    match web.app.log_in(f.username.trim(), &f.password, &visitor.source).await {
        Ok(session) => {
            let ttl = web.app.config.session_ttl.as_secs();
            redirect_with_cookie(&next, &set_cookie(SESSION, &session.token, Some(ttl), web.config.secure_cookies))
        }
        Err(e) => {
            let mut errors = FieldErrors::default();
            let field = if e.code == ErrorCode::InvalidCredentials { "password" } else { "username" };
            errors.add(field, ctx.error_title(e.code));
            let status = crate::page::status_of(e.code);
            let status = if status == StatusCode::UNAUTHORIZED { StatusCode::OK } else { status };
            let page = LoginPage { ctx, username: f.username.trim(), next: &next, errors };
            (status, render(&page)).into_response()
        }
    }
}

pub async fn log_out(State(web): State<Web>, staff: Staff) -> Response {
    if let Err(e) = web.app.log_out(&staff.actor, &staff.token).await {
        tracing::warn!(error = %e, "log-out was not recorded");
    }
    redirect_with_cookie("/login", &set_cookie(SESSION, "", Some(0), web.config.secure_cookies))
}
