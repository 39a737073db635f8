//! The landing page after log-in (a tile per area this person may open)
//! and the language switch.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, header};
use axum::response::Response;
use serde::Deserialize;

use crate::Web;
use crate::i18n::Lang;
use crate::nav::{Area, Link};
use crate::page::{Ctx, Staff, local_path, redirect_with_cookie, render};
use crate::session::{LANG, set_cookie};

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage<'a> {
    ctx: &'a Ctx,
    tiles: Vec<Link>,
    waiting: Option<usize>,
}

pub async fn home(State(web): State<Web>, mut staff: Staff) -> Response {
    if let Err(r) = staff.enter(Area::Home) {
        return r;
    }
    let tiles = staff.ctx.nav.iter().filter(|l| l.href != "/").cloned().collect();
    let waiting = if staff.may(Area::Approvals) {
        crate::pages::approvals::waiting(&web, &staff.actor).await.ok().map(|p| p.len())
    } else {
        None
    };
    render(&HomePage { ctx: &staff.ctx, tiles, waiting })
}

#[derive(Deserialize)]
pub struct Switch {
    to: String,
}

/// Sets the `lang` cookie for a year and goes back to the page the link
/// was on (its path from `Referer`: a path in the query string could trip
/// the card-number guard on an id's digits).
pub async fn switch_language(State(web): State<Web>, headers: HeaderMap, Query(q): Query<Switch>) -> Response {
    let lang = Lang::parse(&q.to).unwrap_or(Lang::ZhCn);
    let cookie = set_cookie(LANG, lang.tag(), Some(365 * 24 * 3600), web.config.secure_cookies);
    let back = headers
        .get(header::REFERER)
        .and_then(|v| v.to_str().ok())
        .and_then(|r| r.parse::<axum::http::Uri>().ok())
        .and_then(|u| u.path_and_query().map(|p| p.as_str().to_owned()));
    redirect_with_cookie(&local_path(back.as_deref()), &cookie)
}
