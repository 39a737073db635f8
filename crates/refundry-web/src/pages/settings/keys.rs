//! API keys: the list (names, scopes, pins; never secrets, which are not
//! kept) and a form that makes a key and shows its secret once, in the
//! answer to the form only.

use askama::Template;
use axum::extract::{Form, State};
use axum::response::IntoResponse;
use refundry_app::keys::ALL_SCOPES;
use refundry_app::{AppError, ErrorCode};
use refundry_core::ids::StoreId;
use refundry_store::model::ApiKeyRecord;

use super::{no_store, optional};
use crate::Web;
use crate::nav::Area;
use crate::page::{Ctx, FieldErrors, PageResult, Staff, render};

pub struct KeyRow {
    pub id: String,
    pub name: String,
    pub scopes: String,
    pub pin: String,
    pub created: String,
    pub revoked: bool,
}

fn row(ctx: &Ctx, k: &ApiKeyRecord) -> KeyRow {
    let pin = [k.store_id.map(|s| s.to_string()), k.terminal_id.clone()].into_iter().flatten();
    KeyRow {
        id: k.id.to_string(),
        name: k.name.clone(),
        scopes: k.scopes.join(" "),
        pin: pin.collect::<Vec<_>>().join(" · "),
        created: ctx.time(k.created_at),
        revoked: k.revoked_at.is_some(),
    }
}

#[derive(Default)]
pub struct Typed {
    name: String,
    scopes: Vec<String>,
    store_id: String,
    terminal_id: String,
}

#[derive(Template)]
#[template(path = "settings/keys.html")]
struct KeysPage<'a> {
    ctx: &'a Ctx,
    keys: Vec<KeyRow>,
    /// Every scope, and whether the form has it ticked.
    scopes: Vec<(&'static str, bool)>,
    form: Typed,
    errors: FieldErrors,
    /// The secret of the key just made: in this answer and nowhere else.
    secret: Option<String>,
}

async fn page(web: &Web, staff: &Staff, form: Typed, errors: FieldErrors, secret: Option<String>) -> PageResult {
    let ctx = &staff.ctx;
    let keys = web.app.keys(&staff.actor).await.map_err(|e| ctx.app_error(&e))?;
    let scopes = ALL_SCOPES.iter().map(|s| (*s, form.scopes.iter().any(|t| t == s))).collect();
    let page = KeysPage { ctx, keys: keys.iter().map(|k| row(ctx, k)).collect(), scopes, form, errors, secret };
    Ok(no_store(render(&page)))
}

pub async fn list(State(web): State<Web>, mut staff: Staff) -> PageResult {
    staff.enter(Area::Settings)?;
    page(&web, &staff, Typed::default(), FieldErrors::default(), None).await
}

pub async fn create(State(web): State<Web>, mut staff: Staff, Form(fields): Form<Vec<(String, String)>>) -> PageResult {
    staff.enter(Area::Settings)?;
    let ctx = &staff.ctx;
    let get = |name: &str| fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()).unwrap_or_default();
    let form = Typed {
        name: get("name"),
        scopes: fields.iter().filter(|(k, _)| k == "scope").map(|(_, v)| v.clone()).collect(),
        store_id: get("store_id"),
        terminal_id: get("terminal_id"),
    };
    let store_id = match optional(&form.store_id).map(|s| StoreId::parse(&s)) {
        None => Ok(None),
        Some(Ok(id)) => Ok(Some(id)),
        Some(Err(_)) => Err(AppError::new(ErrorCode::UnknownStore, "not a store id").with("field", "store_id")),
    };
    let result = match store_id {
        Err(e) => Err(e),
        Ok(_) if form.scopes.is_empty() => Err(AppError::validation("scopes", ctx.t("settings.choose_scope"))),
        Ok(store_id) => {
            let scopes: Vec<&str> = form.scopes.iter().map(String::as_str).collect();
            let terminal = optional(&form.terminal_id);
            web.app.create_pinned_key(&staff.actor, &form.name, &scopes, store_id, terminal).await
        }
    };
    match result {
        Ok(key) => page(&web, &staff, Typed::default(), FieldErrors::default(), Some(key.secret)).await,
        Err(e) => {
            let errors = FieldErrors::from_app(ctx, &e, "name");
            let status = crate::page::status_of(e.code);
            Ok((status, page(&web, &staff, form, errors, None).await?).into_response())
        }
    }
}
