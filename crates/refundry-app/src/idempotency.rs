//! "One idempotency key, one effect."
//!
//! A key is scoped to the merchant and the endpoint. Inside the command's
//! own transaction: a stored answer with the same fingerprint is returned
//! byte for byte and nothing else happens; a stored answer with another
//! fingerprint is refused; otherwise the command runs and its answer is
//! stored in the same commit as its effect. A refused command stores
//! nothing, so the client can fix the request and retry with the same key.

use refundry_core::ids::MerchantId;
use refundry_store::Tx;
use refundry_store::model::IdempotencyRecord;
use sha2::{Digest, Sha256};

use crate::{AppError, ErrorCode};

/// The longest key accepted.
pub const MAX_KEY_LEN: usize = 255;

/// An answer as the client received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    pub status: u16,
    pub body: String,
}

/// Renders a command's result into the answer that is stored and sent.
pub type Render<T> = Box<dyn Fn(&T) -> StoredResponse + Send + Sync>;

/// What the client sent: its key and a fingerprint of the request.
pub struct Idempotency<T> {
    pub key: String,
    pub fingerprint: String,
    pub render: Render<T>,
}

impl<T> Idempotency<T> {
    pub fn new(key: String, method: &str, path: &str, body: &[u8], render: Render<T>) -> Result<Self, AppError> {
        if key.is_empty() || key.len() > MAX_KEY_LEN || !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(AppError::new(
                ErrorCode::InvalidRequest,
                format!("Idempotency-Key must be 1 to {MAX_KEY_LEN} visible ASCII characters"),
            ));
        }
        Ok(Idempotency { key, fingerprint: fingerprint(method, path, body), render })
    }
}

/// SHA-256 over method, path and the canonical body (parsed and re-written
/// with sorted keys, so whitespace and key order do not matter).
pub fn fingerprint(method: &str, path: &str, body: &[u8]) -> String {
    let canonical = serde_json::from_slice::<serde_json::Value>(body)
        .map(|v| sorted(v).to_string().into_bytes())
        .unwrap_or_else(|_| body.to_vec());
    let mut h = Sha256::new();
    h.update(method.as_bytes());
    h.update([0]);
    h.update(path.as_bytes());
    h.update([0]);
    h.update(&canonical);
    hex::encode(h.finalize())
}

/// The document with every object's keys in order, whether or not
/// serde_json was built to keep insertion order (a dependency may ask it to).
fn sorted(value: serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(map) => {
            let mut entries: Vec<(String, serde_json::Value)> = map.into_iter().map(|(k, v)| (k, sorted(v))).collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            serde_json::Value::Object(entries.into_iter().collect())
        }
        serde_json::Value::Array(items) => serde_json::Value::Array(items.into_iter().map(sorted).collect()),
        other => other,
    }
}

/// Either the command ran now, or an earlier run's answer is replayed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replay<T> {
    Fresh(T),
    Stored(StoredResponse),
}

/// Runs a command under its key, inside its transaction: the stored answer
/// when the key was used; else the command, its answer stored with its
/// effect.
///
/// A command that refuses is asked about the key once more. The same key
/// sent twice at once runs twice, side by side; on PostgreSQL the second
/// waits on a row the first holds (the sale, for a refund), and once the
/// first commits, the second would otherwise refuse because of the first's
/// own effect ("nothing left to refund") instead of replaying it.
pub(crate) fn once<T>(
    tx: &mut dyn Tx,
    merchant: MerchantId,
    endpoint: &str,
    idem: Option<&Idempotency<T>>,
    command: impl FnOnce(&mut dyn Tx) -> Result<T, AppError>,
) -> Result<Replay<T>, AppError> {
    let used = lookup(tx, merchant, endpoint, idem)?;
    once_found(tx, merchant, endpoint, idem, used, command)
}

/// [`once`], with the key already looked up in this transaction: `used` is
/// its record, if it has one (read together with the command's first read,
/// see [`refundry_store::repo::RefundRepo::find_key_or_lock_sale`]).
pub(crate) fn once_found<T>(
    tx: &mut dyn Tx,
    merchant: MerchantId,
    endpoint: &str,
    idem: Option<&Idempotency<T>>,
    used: Option<IdempotencyRecord>,
    command: impl FnOnce(&mut dyn Tx) -> Result<T, AppError>,
) -> Result<Replay<T>, AppError> {
    if let Some(stored) = answer_of(idem, used)? {
        return Ok(Replay::Stored(stored));
    }
    match command(tx) {
        Ok(result) => {
            remember(tx, merchant, endpoint, idem, &result)?;
            Ok(Replay::Fresh(result))
        }
        // a storage failure may have left the transaction unable to answer
        // anything more; it is retried or reported as it is
        Err(refused) if idem.is_none() || refundry_store::AsStoreError::as_store_error(&refused).is_some() => {
            Err(refused)
        }
        Err(refused) => match answer_of(idem, lookup(tx, merchant, endpoint, idem)?)? {
            Some(stored) => Ok(Replay::Stored(stored)),
            None => Err(refused),
        },
    }
}

/// Counts an answer replayed from its key, once the transaction that found
/// it has committed (inside, a batch that runs its jobs again would count
/// it twice).
pub(crate) fn count_replay<T>(answer: &Replay<T>) {
    if matches!(answer, Replay::Stored(_)) {
        metrics::counter!("refundry_idempotent_replays_total").increment(1);
    }
}

/// The key's record, looked up inside the transaction.
fn lookup<T>(
    tx: &mut dyn Tx,
    merchant: MerchantId,
    endpoint: &str,
    idem: Option<&Idempotency<T>>,
) -> Result<Option<IdempotencyRecord>, AppError> {
    let Some(idem) = idem else { return Ok(None) };
    Ok(tx.find_idempotency(merchant, endpoint, &idem.key)?)
}

/// The stored answer to replay for the key's record, if it has one; a
/// record of another request is refused.
fn answer_of<T>(
    idem: Option<&Idempotency<T>>,
    used: Option<IdempotencyRecord>,
) -> Result<Option<StoredResponse>, AppError> {
    match (idem, used) {
        (Some(idem), Some(rec)) if rec.fingerprint == idem.fingerprint => {
            Ok(Some(StoredResponse { status: rec.status_code, body: rec.body }))
        }
        (Some(_), Some(_)) => Err(AppError::new(
            ErrorCode::IdempotencyKeyReused,
            "this Idempotency-Key was already used with a different request",
        )),
        _ => Ok(None),
    }
}

/// Stores the answer beside the effect, in the same transaction.
fn remember<T>(
    tx: &mut dyn Tx,
    merchant: MerchantId,
    endpoint: &str,
    idem: Option<&Idempotency<T>>,
    result: &T,
) -> Result<(), AppError> {
    let Some(idem) = idem else { return Ok(()) };
    let answer = (idem.render)(result);
    tx.insert_idempotency(&IdempotencyRecord {
        merchant_id: merchant,
        endpoint: endpoint.to_owned(),
        key: idem.key.clone(),
        fingerprint: idem.fingerprint.clone(),
        status_code: answer.status,
        body: answer.body,
        created_at: crate::now(),
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_ignores_whitespace_and_key_order() {
        let a = fingerprint("POST", "/v1/refunds", br#"{"a":1,"b":2}"#);
        let b = fingerprint("POST", "/v1/refunds", b"{ \"b\": 2, \"a\": 1 }");
        assert_eq!(a, b);
        assert_ne!(a, fingerprint("POST", "/v1/refunds", br#"{"a":1,"b":3}"#));
        assert_ne!(a, fingerprint("POST", "/v1/sales", br#"{"a":1,"b":2}"#));
    }
}
