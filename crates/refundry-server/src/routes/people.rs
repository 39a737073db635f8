use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use refundry_app::users::{NewUser, Role};
use refundry_app::{AppError, ErrorCode, Principal};

use crate::auth::Auth;
use crate::dto::{CreateKey, CreateUser, KeyDto, LogIn, MeDto, SessionDto, UserDto, UserList, parse_store};
use crate::guard::parse_body;
use crate::problem::{ApiError, Problem};
use crate::state::AppState;

/// The client's address, for the audit log of log-ins.
pub struct Source(pub String);

impl FromRequestParts<AppState> for Source {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, Self::Rejection> {
        Ok(Source(crate::auth::source(parts)))
    }
}

/// Log in with a username and password; the answer holds a short-lived
/// session token. Repeated failures slow down and then lock the account.
#[utoipa::path(
    post, path = "/v1/sessions", tag = "people",
    request_body = LogIn,
    responses(
        (status = 201, body = SessionDto),
        (status = 401, description = "Wrong username or password", body = Problem, content_type = "application/problem+json"),
        (status = 423, description = "Locked after too many failures", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn log_in(
    State(state): State<AppState>,
    Source(source): Source,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<SessionDto>), ApiError> {
    let req = parse_body::<LogIn>(&headers, &body)?;
    let session = state.app.log_in(&req.username, &req.password, &source).await?;
    let dto = SessionDto {
        object: "session",
        token: session.token,
        expires_at: crate::dto::rfc3339(session.expires_at),
        user: UserDto::from(&session.user),
    };
    Ok((StatusCode::CREATED, Json(dto)))
}

/// End the session of the token this request carries.
#[utoipa::path(delete, path = "/v1/sessions/current", tag = "people", responses((status = 204)), security(("api_key" = [])))]
pub async fn log_out(State(state): State<AppState>, auth: Auth, headers: HeaderMap) -> Result<StatusCode, ApiError> {
    let token = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if !token.starts_with("rs_") {
        return Err(ApiError::new(
            ErrorCode::InvalidRequest,
            "only a session token can be logged out; revoke keys instead",
        ));
    }
    state.app.log_out(auth.reader(), token).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Who the caller is and what it may do.
#[utoipa::path(get, path = "/v1/me", tag = "people", responses((status = 200, body = MeDto)), security(("api_key" = [])))]
pub async fn me(auth: Auth) -> Json<MeDto> {
    let a = auth.reader();
    let person = a.person();
    Json(MeDto {
        object: "principal",
        identity: a.identity(),
        merchant_id: a.merchant_id.to_string(),
        scopes: a.scopes.clone(),
        user: person.map(|p| p.username.clone()),
        role: person.map(|p| p.role.as_str().to_owned()),
        store_id: a.store_pin.map(|s| s.to_string()),
        terminal_id: a.terminal_pin.clone(),
    })
}

/// Add a person (admin).
#[utoipa::path(
    post, path = "/v1/users", tag = "people",
    request_body = CreateUser,
    responses(
        (status = 201, body = UserDto),
        (status = 409, description = "Username taken", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
pub async fn create_user(
    State(state): State<AppState>,
    auth: Auth,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<UserDto>), ApiError> {
    let actor = auth.require("admin")?;
    let req = parse_body::<CreateUser>(&headers, &body)?;
    let role = Role::parse(&req.role).ok_or_else(|| {
        ApiError(AppError::validation("role", "role must be cashier, supervisor, finance, risk or admin"))
    })?;
    let new = NewUser {
        username: req.username,
        display_name: req.display_name,
        role,
        password: req.password,
        store_id: parse_store("store_id", req.store_id.as_deref())?,
    };
    let user = state.app.create_user(actor, new).await?;
    Ok((StatusCode::CREATED, Json(UserDto::from(&user))))
}

/// The merchant's people (admin).
#[utoipa::path(get, path = "/v1/users", tag = "people", responses((status = 200, body = UserList)), security(("api_key" = [])))]
pub async fn list_users(State(state): State<AppState>, auth: Auth) -> Result<Json<UserList>, ApiError> {
    let actor = auth.require("admin")?;
    let users = state.app.users(actor).await?;
    Ok(Json(UserList { object: "list", data: users.iter().map(UserDto::from).collect() }))
}

/// Make an API key (admin), optionally pinned to a store or terminal. The
/// secret is in this answer only.
#[utoipa::path(
    post, path = "/v1/keys", tag = "people",
    request_body = CreateKey,
    responses((status = 201, body = KeyDto), (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("api_key" = []))
)]
pub async fn create_key(
    State(state): State<AppState>,
    auth: Auth,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<KeyDto>), ApiError> {
    let actor = auth.require("admin")?;
    if !matches!(actor.principal, Principal::User(_) | Principal::ApiKey { .. }) {
        return Err(ApiError::new(ErrorCode::Forbidden, "keys are made by people or admin keys"));
    }
    let req = parse_body::<CreateKey>(&headers, &body)?;
    let scopes: Vec<&str> = req.scopes.iter().map(String::as_str).collect();
    if scopes.is_empty() {
        return Err(ApiError(AppError::validation("scopes", "name at least one scope")));
    }
    let store = parse_store("store_id", req.store_id.as_deref())?;
    let key = state.app.create_pinned_key(actor, &req.name, &scopes, store, req.terminal_id).await?;
    Ok((StatusCode::CREATED, Json(KeyDto { id: key.id.to_string(), object: "api_key", secret: key.secret })))
}
