//! Settings (admin only): the refund policy, people and roles, API keys and
//! webhooks. Each sub-page is a module; all enter [`Area::Settings`], whose
//! scope (`admin`) is the one the API asks for the same changes.

pub mod keys;
pub mod policy;
pub mod users;
pub mod webhooks;

use askama::Template;
use axum::http::{HeaderValue, header};
use axum::response::Response;

use crate::nav::Area;
use crate::page::{Ctx, PageResult, Staff, render};

#[derive(Template)]
#[template(path = "settings/index.html")]
struct IndexPage<'a> {
    ctx: &'a Ctx,
}

pub async fn index(mut staff: Staff) -> PageResult {
    staff.enter(Area::Settings)?;
    Ok(render(&IndexPage { ctx: &staff.ctx }))
}

/// A page holding a secret shown once: no cache may keep it.
pub fn no_store(mut response: Response) -> Response {
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The empty string as none, trimmed otherwise.
pub fn optional(s: &str) -> Option<String> {
    Some(s.trim().to_owned()).filter(|s| !s.is_empty())
}
