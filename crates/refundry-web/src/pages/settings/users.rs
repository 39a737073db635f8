//! People and their roles: the list, and a form to add someone.

use askama::Template;
use axum::extract::{Form, Query, State};
use axum::response::{IntoResponse, Redirect};
use refundry_app::users::{NewUser, Role};
use refundry_app::{AppError, ErrorCode};
use refundry_core::ids::StoreId;
use refundry_store::model::User;
use serde::Deserialize;

use super::optional;
use crate::Web;
use crate::nav::Area;
use crate::page::{Ctx, FieldErrors, PageResult, Staff, render};

pub struct UserRow {
    pub username: String,
    pub display_name: String,
    pub role: &'static str,
    pub store: String,
    pub created: String,
    pub locked: bool,
    pub disabled: bool,
}

#[derive(Default, Deserialize)]
pub struct Typed {
    #[serde(default)]
    username: String,
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    store_id: String,
}

#[derive(Template)]
#[template(path = "settings/users.html")]
struct UsersPage<'a> {
    ctx: &'a Ctx,
    users: Vec<UserRow>,
    roles: Vec<(&'static str, &'static str, bool)>,
    form: Typed,
    errors: FieldErrors,
    created: String,
}

#[derive(Deserialize, Default)]
pub struct Done {
    #[serde(default)]
    created: String,
}

fn row(ctx: &Ctx, u: &User) -> UserRow {
    let now = jiff::Timestamp::now();
    UserRow {
        username: u.username.clone(),
        display_name: u.display_name.clone(),
        role: ctx.t(&format!("role.{}", u.role)),
        store: u.store_id.map(|s| s.to_string()).unwrap_or_default(),
        created: ctx.time(u.created_at),
        locked: u.locked_until.is_some_and(|t| t > now),
        disabled: u.disabled_at.is_some(),
    }
}

async fn page(web: &Web, staff: &Staff, form: Typed, errors: FieldErrors, created: String) -> PageResult {
    let ctx = &staff.ctx;
    let users = web.app.users(&staff.actor).await.map_err(|e| ctx.app_error(&e))?;
    let chosen = if form.role.is_empty() { "cashier" } else { form.role.as_str() };
    let roles = Role::ALL.iter().map(|r| (r.as_str(), ctx.t(&format!("role.{}", r.as_str())), r.as_str() == chosen));
    let page = UsersPage {
        ctx,
        users: users.iter().map(|u| row(ctx, u)).collect(),
        roles: roles.collect(),
        // a password is never written back into a page
        form: Typed { password: String::new(), ..form },
        errors,
        created,
    };
    Ok(render(&page))
}

pub async fn list(State(web): State<Web>, mut staff: Staff, Query(q): Query<Done>) -> PageResult {
    staff.enter(Area::Settings)?;
    page(&web, &staff, Typed::default(), FieldErrors::default(), q.created).await
}

pub async fn create(State(web): State<Web>, mut staff: Staff, Form(form): Form<Typed>) -> PageResult {
    staff.enter(Area::Settings)?;
    let ctx = &staff.ctx;
    let store_id = match optional(&form.store_id).map(|s| StoreId::parse(&s)) {
        None => Ok(None),
        Some(Ok(id)) => Ok(Some(id)),
        Some(Err(_)) => Err(AppError::new(ErrorCode::UnknownStore, "not a store id").with("field", "store_id")),
    };
    let result = match (Role::parse(&form.role), store_id) {
        (None, _) => Err(AppError::validation("role", ctx.t("settings.choose_role"))),
        (_, Err(e)) => Err(e),
        (Some(role), Ok(store_id)) => {
            let new = NewUser {
                username: form.username.trim().to_owned(),
                display_name: form.display_name.clone(),
                role,
                password: form.password.clone(),
                store_id,
            };
            web.app.create_user(&staff.actor, new).await
        }
    };
    match result {
        Ok(user) => {
            let name: String = form_urlencoded::byte_serialize(user.username.as_bytes()).collect();
            Ok(Redirect::to(&format!("/settings/users?created={name}")).into_response())
        }
        Err(e) => {
            let errors = FieldErrors::from_app(ctx, &e, "username");
            let status = crate::page::status_of(e.code);
            Ok((status, page(&web, &staff, form, errors, String::new()).await?).into_response())
        }
    }
}
