//! API keys: `rk_<key id>_<secret>`. Only a SHA-256 of the secret is
//! stored; the secret is shown once, at creation.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use rand::RngCore;
use refundry_core::ids::{KeyId, StoreId};
use refundry_store::model::ApiKeyRecord;
use uuid::Uuid;

use crate::{Actor, App, AppError, ErrorCode, Principal, audit};

/// Every scope a key can hold.
pub const ALL_SCOPES: &[&str] =
    &["sales:write", "refunds:write", "refunds:approve", "disputes:write", "reports:read", "admin"];

#[derive(Default)]
pub(crate) struct KeyCache {
    entries: Mutex<HashMap<KeyId, (ApiKeyRecord, Instant)>>,
}

/// A key just made: its id and the one-time secret.
pub struct NewKey {
    pub id: KeyId,
    pub secret: String,
}

use crate::token::hash as secret_hash;

/// Splits `rk_<32 hex>_<64 hex>` into key id and secret.
fn parse_token(token: &str) -> Option<(KeyId, &str)> {
    let (id_hex, secret) = crate::token::split(token, "rk_")?;
    KeyId::parse(&format!("{}{id_hex}", KeyId::PREFIX)).ok().map(|id| (id, secret))
}

impl App {
    /// Makes a key for the merchant. The secret is returned once and never
    /// stored.
    pub async fn create_key(&self, actor: &Actor, name: &str, scopes: &[&str]) -> Result<NewKey, AppError> {
        self.create_pinned_key(actor, name, scopes, None, None).await
    }

    /// A key that only sees and touches one store's (or one terminal's) sales.
    pub async fn create_pinned_key(
        &self,
        actor: &Actor,
        name: &str,
        scopes: &[&str],
        store_id: Option<StoreId>,
        terminal_id: Option<String>,
    ) -> Result<NewKey, AppError> {
        if name.trim().is_empty() || name.chars().count() > 100 {
            return Err(AppError::validation("name", "a key's name must be 1 to 100 characters"));
        }
        if let Some(bad) = scopes.iter().find(|s| !ALL_SCOPES.contains(s)) {
            return Err(AppError::validation("scopes", format!("unknown scope {bad}")));
        }
        let id = KeyId::generate();
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        let secret = hex::encode(bytes);
        let record = ApiKeyRecord {
            id,
            merchant_id: actor.merchant_id,
            name: name.trim().to_owned(),
            secret_sha256: secret_hash(&secret),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            store_id,
            terminal_id,
            created_at: crate::now(),
            revoked_at: None,
        };
        let actor = actor.clone();
        refundry_store::write(&self.store, move |tx| {
            if let Some(store) = record.store_id
                && tx.find_store(actor.merchant_id, store)?.is_none()
            {
                return Err(
                    AppError::new(ErrorCode::UnknownStore, format!("no store {store}")).with("field", "store_id")
                );
            }
            tx.insert_key(&record)?;
            let data = serde_json::json!({"after": {"name": record.name, "scopes": record.scopes,
                "store_id": record.store_id.map(|s| s.to_string()), "terminal_id": record.terminal_id}});
            audit::record(tx, &actor, "api_key.created", &record.id.to_string(), data, record.created_at)
        })
        .await?;
        let token = format!("rk_{}_{secret}", id.uuid().simple());
        Ok(NewKey { id, secret: token })
    }

    /// The merchant's keys, oldest first (their secrets are not kept).
    pub async fn keys(&self, actor: &Actor) -> Result<Vec<ApiKeyRecord>, AppError> {
        let merchant = actor.merchant_id;
        refundry_store::read(&self.store, move |tx| Ok(tx.keys_of(merchant)?)).await
    }

    /// Resolves a bearer token to the acting key. Verified keys are cached
    /// briefly so that a request does not cost a database read.
    pub async fn authenticate(&self, token: &str, source: &str) -> Result<Actor, AppError> {
        let unauthorized = || AppError::new(ErrorCode::Unauthorized, "a valid API key is required");
        let (id, secret) = parse_token(token).ok_or_else(unauthorized)?;
        let record = match self.cached_key(id) {
            Some(record) => record,
            None => {
                let record = refundry_store::read(&self.store, move |tx| tx.find_key(id).map_err(AppError::from))
                    .await?
                    .ok_or_else(unauthorized)?;
                self.key_cache
                    .entries
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(id, (record.clone(), Instant::now()));
                record
            }
        };
        // both sides are fixed-length digests: comparing them leaks nothing
        // useful about the secret, but compare without early exit anyway
        let given = secret_hash(secret);
        let same = given.iter().zip(record.secret_sha256.iter()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0;
        if !same || record.revoked_at.is_some() {
            return Err(unauthorized());
        }
        Ok(Actor {
            merchant_id: record.merchant_id,
            principal: Principal::ApiKey { key: id, operator: None },
            scopes: record.scopes,
            store_pin: record.store_id,
            terminal_pin: record.terminal_id,
            source: source.to_owned(),
        })
    }

    fn cached_key(&self, id: KeyId) -> Option<ApiKeyRecord> {
        let entries = self.key_cache.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.get(&id).filter(|(_, at)| at.elapsed() < self.config.key_cache_ttl).map(|(record, _)| record.clone())
    }
}

/// For tests: a token that looks valid but names no key.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("rk_{}_{}", Uuid::now_v7().simple(), hex::encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_parse_only_in_their_exact_shape() {
        let token = random_token();
        assert!(parse_token(&token).is_some());
        assert!(parse_token(&token[..token.len() - 1]).is_none());
        assert!(parse_token("Bearer abc").is_none());
        assert!(parse_token(&token.replace("rk_", "sk_")).is_none());
    }
}
