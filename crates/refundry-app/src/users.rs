//! People: roles, passwords (Argon2id) and log-in sessions.
//!
//! A log-in gives a short-lived session token `rs_<id>_<secret>`; like API
//! keys only a SHA-256 of the secret is stored. Failed log-ins are slowed
//! down and, after `max_failed_logins` in a row, lock the account for
//! `lockout`.

use std::time::Duration;

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use jiff::Timestamp;
use rand::RngCore;
use refundry_core::ids::{SessionId, StoreId, UserId};
use refundry_store::model::{Session, User};

use crate::{Actor, App, AppError, ErrorCode, Principal, UserRef, audit};

macro_rules! roles {
    ($($variant:ident = $text:literal => [$($scope:literal),*]),+ $(,)?) => {
        /// What a person does at the merchant; each role grants scopes.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Role { $($variant),+ }

        impl Role {
            pub const ALL: &'static [Role] = &[$(Role::$variant),+];
            pub fn as_str(self) -> &'static str { match self { $(Role::$variant => $text),+ } }
            pub fn parse(s: &str) -> Option<Role> { match s { $($text => Some(Role::$variant),)+ _ => None } }
            /// The scopes a person in this role holds.
            pub fn scopes(self) -> &'static [&'static str] { match self { $(Role::$variant => &[$($scope),*]),+ } }
        }
    };
}

roles! {
    Cashier = "cashier" => ["sales:write", "refunds:write"],
    Supervisor = "supervisor" => ["sales:write", "refunds:write", "refunds:approve", "reports:read"],
    Finance = "finance" => ["reports:read"],
    Risk = "risk" => ["disputes:write", "reports:read"],
    Admin = "admin" => ["admin"],
}

impl Role {
    /// Whether someone in this role may use `scope`.
    pub fn grants(self, scope: &str) -> bool {
        self.scopes().iter().any(|s| *s == scope || *s == "admin")
    }
}

/// A person to create.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub username: String,
    pub display_name: String,
    pub role: Role,
    pub password: String,
    pub store_id: Option<StoreId>,
}

/// A session just opened: the one-time token and when it ends.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub token: String,
    pub expires_at: Timestamp,
    pub user: User,
}

pub const MIN_PASSWORD_CHARS: usize = 10;

fn check_username(name: &str) -> Result<(), AppError> {
    let ok = (3..=64).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@'));
    if ok { Ok(()) } else { Err(AppError::validation("username", "username must be 3 to 64 of a-z, 0-9, . _ - @")) }
}

fn check_password(password: &str) -> Result<(), AppError> {
    if password.chars().count() < MIN_PASSWORD_CHARS || password.len() > 1024 {
        return Err(AppError::validation(
            "password",
            format!("a password needs at least {MIN_PASSWORD_CHARS} characters"),
        ));
    }
    Ok(())
}

/// Argon2id with the crate's default (OWASP-recommended) parameters, off
/// the async threads: it is deliberately slow.
async fn hash_password(password: String) -> Result<String, AppError> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default().hash_password(password.as_bytes(), &salt).map(|h| h.to_string())
    })
    .await
    .map_err(|_| AppError::new(ErrorCode::Internal, "password hashing failed"))?
    .map_err(|_| AppError::new(ErrorCode::Internal, "password hashing failed"))
}

async fn verify_password(password: String, phc: String) -> bool {
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&phc).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
    })
    .await
    .unwrap_or(false)
}

/// A valid hash of nothing anyone knows: checked when the username is
/// unknown, so that a wrong username costs the same time as a wrong password.
const DECOY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$XvR4ZJu6mYy7Fwgm0bH3nE4iX3Rb0tT2q0x9n3sDkzE";

use crate::after;
use crate::token::hash as sha256;

fn user_ref(u: &User) -> Result<UserRef, AppError> {
    let role = Role::parse(&u.role)
        .ok_or_else(|| AppError::new(ErrorCode::Internal, format!("user {} has an unknown role", u.id)))?;
    Ok(UserRef { id: u.id, username: u.username.clone(), role })
}

/// The actor a logged-in person is.
pub fn actor_of_user(u: &User, source: &str) -> Result<Actor, AppError> {
    let person = user_ref(u)?;
    Ok(Actor {
        merchant_id: u.merchant_id,
        scopes: person.role.scopes().iter().map(|s| s.to_string()).collect(),
        principal: Principal::User(person),
        store_pin: u.store_id,
        terminal_pin: None,
        source: source.to_owned(),
    })
}

fn invalid_login() -> AppError {
    AppError::new(ErrorCode::InvalidCredentials, "the username or password is wrong")
}

impl App {
    pub async fn create_user(&self, actor: &Actor, new: NewUser) -> Result<User, AppError> {
        check_username(&new.username)?;
        check_password(&new.password)?;
        if new.display_name.trim().is_empty() || new.display_name.chars().count() > 100 {
            return Err(AppError::validation("display_name", "display_name must be 1 to 100 characters"));
        }
        let password_hash = hash_password(new.password).await?;
        let user = User {
            id: UserId::generate(),
            merchant_id: actor.merchant_id,
            username: new.username,
            display_name: new.display_name.trim().to_owned(),
            role: new.role.as_str().to_owned(),
            password_hash,
            store_id: new.store_id,
            failed_logins: 0,
            locked_until: None,
            created_at: crate::now(),
            disabled_at: None,
        };
        let actor = actor.clone();
        refundry_store::write(&self.store, move |tx| {
            if let Some(store) = user.store_id
                && tx.find_store(actor.merchant_id, store)?.is_none()
            {
                return Err(AppError::new(ErrorCode::UnknownStore, format!("no store {store}")).with("field", "store_id"));
            }
            if tx.find_user_by_username(&user.username)?.is_some() {
                return Err(AppError::new(ErrorCode::UsernameTaken, "that username is taken").with("field", "username"));
            }
            tx.insert_user(&user)?;
            let data = serde_json::json!({"after": {"username": user.username, "role": user.role, "store_id": user.store_id.map(|s| s.to_string())}});
            audit::record(tx, &actor, "user.created", &user.id.to_string(), data, user.created_at)?;
            Ok(user.clone())
        })
        .await
    }

    pub async fn users(&self, actor: &Actor) -> Result<Vec<User>, AppError> {
        let merchant = actor.merchant_id;
        refundry_store::read(&self.store, move |tx| Ok(tx.users_of(merchant)?)).await
    }

    /// Checks a password and opens a session. Every attempt, good or bad,
    /// is in the audit log; a locked account says so without checking.
    pub async fn log_in(&self, username: &str, password: &str, source: &str) -> Result<NewSession, AppError> {
        let name = username.to_owned();
        let found =
            refundry_store::read(&self.store, move |tx| Ok::<_, AppError>(tx.find_user_by_username(&name)?)).await?;
        let now = crate::now();
        let Some(user) = found else {
            verify_password(password.to_owned(), DECOY_HASH.to_owned()).await;
            return Err(invalid_login());
        };
        if user.disabled_at.is_some() {
            verify_password(password.to_owned(), DECOY_HASH.to_owned()).await;
            return Err(invalid_login());
        }
        if let Some(until) = user.locked_until.filter(|until| *until > now) {
            self.record_login(&user, source, false, "locked").await?;
            return Err(AppError::new(ErrorCode::AccountLocked, "too many failed log-ins; try again later")
                .with("locked_until", until.to_string()));
        }
        if !verify_password(password.to_owned(), user.password_hash.clone()).await {
            let failures = self.record_login(&user, source, false, "wrong_password").await?;
            // slow down guessing: each failure in a row costs more time
            let delay = Duration::from_millis(100u64 << failures.min(5));
            tokio::time::sleep(delay).await;
            return Err(invalid_login());
        }
        let mut secret = [0u8; 32];
        rand::rng().fill_bytes(&mut secret);
        let secret = hex::encode(secret);
        let session = Session {
            id: SessionId::generate(),
            user_id: user.id,
            secret_sha256: sha256(&secret),
            created_at: now,
            expires_at: after(now, self.config.session_ttl),
            revoked_at: None,
        };
        let token = format!("rs_{}_{secret}", session.id.uuid().simple());
        let (actor, stored) = (actor_of_user(&user, source)?, session.clone());
        let mut user = user;
        refundry_store::write(&self.store, move |tx| {
            user.failed_logins = 0;
            user.locked_until = None;
            tx.update_user(&user)?;
            tx.insert_session(&stored)?;
            audit::record(
                tx,
                &actor,
                "user.logged_in",
                &user.id.to_string(),
                serde_json::json!({"session": stored.id.to_string()}),
                now,
            )?;
            Ok::<_, AppError>(user.clone())
        })
        .await
        .map(|user| NewSession { token, expires_at: session.expires_at, user })
    }

    /// Counts a failed log-in (locking the account when it is one too many)
    /// and audits the attempt. Returns the failures in a row.
    async fn record_login(&self, user: &User, source: &str, ok: bool, why: &'static str) -> Result<u32, AppError> {
        let (max, lockout) = (self.config.max_failed_logins, self.config.lockout);
        let actor = actor_of_user(user, source)?;
        let id = user.id;
        refundry_store::write(&self.store, move |tx| {
            let mut user = tx.find_user(id)?.ok_or_else(invalid_login)?;
            let now = crate::now();
            if !ok && why == "wrong_password" {
                user.failed_logins += 1;
                if user.failed_logins >= max {
                    user.locked_until = Some(after(now, lockout));
                }
                tx.update_user(&user)?;
            }
            let data = serde_json::json!({"outcome": why, "failed_logins": user.failed_logins});
            audit::record(tx, &actor, "user.login_failed", &user.id.to_string(), data, now)?;
            Ok(user.failed_logins)
        })
        .await
    }

    /// Resolves a session token to the person.
    pub async fn authenticate_session(&self, token: &str, source: &str) -> Result<Actor, AppError> {
        let unauthorized = || AppError::new(ErrorCode::Unauthorized, "the session is not valid; log in again");
        let (id, secret) = parse_session_token(token).ok_or_else(unauthorized)?;
        let secret = sha256(secret);
        let user = refundry_store::read(&self.store, move |tx| {
            let Some(session) = tx.find_session(id)? else { return Ok(None) };
            let now = crate::now();
            let live = session.revoked_at.is_none() && session.expires_at > now && session.secret_sha256 == secret;
            if !live {
                return Ok(None);
            }
            Ok::<_, AppError>(tx.find_user(session.user_id)?.filter(|u| u.disabled_at.is_none()))
        })
        .await?
        .ok_or_else(unauthorized)?;
        actor_of_user(&user, source)
    }

    pub async fn log_out(&self, actor: &Actor, token: &str) -> Result<(), AppError> {
        let Some((id, _)) = parse_session_token(token) else { return Ok(()) };
        let actor = actor.clone();
        refundry_store::write(&self.store, move |tx| {
            let now = crate::now();
            tx.revoke_session(id, now)?;
            audit::record(tx, &actor, "user.logged_out", &id.to_string(), serde_json::json!({}), now)
        })
        .await
    }

    /// The person a key names as its operator, acting through the key: the
    /// scopes are what both the key and the person's role allow.
    pub async fn with_operator(&self, actor: &Actor, username: &str) -> Result<Actor, AppError> {
        let Principal::ApiKey { key, operator: None } = &actor.principal else {
            return Err(AppError::validation("operator", "operator is only for API keys"));
        };
        let (merchant, name) = (actor.merchant_id, username.to_owned());
        let user = refundry_store::read(&self.store, move |tx| Ok::<_, AppError>(tx.find_user_by_username(&name)?))
            .await?
            .filter(|u| u.merchant_id == merchant && u.disabled_at.is_none())
            .ok_or_else(|| AppError::validation("operator", "operator names no active user of this merchant"))?;
        let person = user_ref(&user)?;
        let mut acting = actor.clone();
        // what both the key and the person may do
        acting.scopes = crate::keys::ALL_SCOPES
            .iter()
            .filter(|s| actor.may(s) && person.role.grants(s))
            .map(|s| s.to_string())
            .collect();
        acting.store_pin = acting.store_pin.or(user.store_id);
        acting.principal = Principal::ApiKey { key: *key, operator: Some(person) };
        Ok(acting)
    }
}

fn parse_session_token(token: &str) -> Option<(SessionId, &str)> {
    let (id_hex, secret) = crate::token::split(token, "rs_")?;
    SessionId::parse(&format!("{}{id_hex}", SessionId::PREFIX)).ok().map(|id| (id, secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_grant_what_the_counter_needs() {
        assert!(Role::Cashier.grants("refunds:write"));
        assert!(!Role::Cashier.grants("refunds:approve"));
        assert!(Role::Supervisor.grants("refunds:approve"));
        assert!(!Role::Finance.grants("refunds:write"));
        assert!(Role::Admin.grants("disputes:write"));
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()), Some(*role));
        }
    }

    #[test]
    fn the_decoy_hash_is_a_valid_phc_string() {
        assert!(PasswordHash::new(DECOY_HASH).is_ok());
    }
}
