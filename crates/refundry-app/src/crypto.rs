//! Secrets at rest: customer contact data and webhook signing secrets.
//!
//! XChaCha20-Poly1305 with a random 192-bit nonce per value, and the
//! record's id as associated data, so a ciphertext copied onto another row
//! does not decrypt. Each value names the key that sealed it
//! (`v1:<key id>:<base64>`); rotating means adding a new key in front: new
//! values use it, old ones still open with theirs until re-sealed.

use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD as B64;
use chacha20poly1305::aead::{Aead, KeyInit, OsRng, Payload};
use chacha20poly1305::{AeadCore, XChaCha20Poly1305, XNonce};
use zeroize::Zeroizing;

use crate::{AppError, ErrorCode};

/// The keys that seal and open secrets; the first one seals.
#[derive(Clone)]
pub struct Vault {
    keys: Vec<(String, XChaCha20Poly1305)>,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|(id, _)| id.as_str()).collect();
        write!(f, "Vault(keys: {ids:?})")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("encryption key {0}")]
pub struct KeyError(String);

impl Vault {
    /// Keys as `id:64 hex digits`, the one to seal with first.
    pub fn from_specs(specs: &[String]) -> Result<Vault, KeyError> {
        if specs.is_empty() {
            return Err(KeyError("list is empty".into()));
        }
        let keys = specs
            .iter()
            .map(|spec| {
                let (id, hex_key) = spec.split_once(':').ok_or_else(|| KeyError("must look like id:hex".into()))?;
                if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
                    return Err(KeyError(format!("id {id:?} must be letters, digits or '-'")));
                }
                let bytes = Zeroizing::new(hex::decode(hex_key).map_err(|_| KeyError(format!("{id} is not hex")))?);
                if bytes.len() != 32 {
                    return Err(KeyError(format!("{id} must be 32 bytes (64 hex digits)")));
                }
                Ok((id.to_owned(), XChaCha20Poly1305::new_from_slice(&bytes).map_err(|_| KeyError(id.to_owned()))?))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Vault { keys })
    }

    /// A fresh random key spec, for `refundry` to write on first start.
    pub fn generate_spec(id: &str) -> String {
        let key = XChaCha20Poly1305::generate_key(&mut OsRng);
        format!("{id}:{}", hex::encode(key))
    }

    pub fn seal(&self, plaintext: &str, record_id: &str) -> Result<String, AppError> {
        let (id, cipher) = &self.keys[0];
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let sealed = cipher
            .encrypt(&nonce, Payload { msg: plaintext.as_bytes(), aad: record_id.as_bytes() })
            .map_err(|_| AppError::new(ErrorCode::Internal, "encryption failed"))?;
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&sealed);
        Ok(format!("v1:{id}:{}", B64.encode(bytes)))
    }

    pub fn open(&self, sealed: &str, record_id: &str) -> Result<Zeroizing<String>, AppError> {
        let broken = || AppError::new(ErrorCode::Internal, "a stored secret cannot be opened (wrong key or altered)");
        let mut parts = sealed.splitn(3, ':');
        let (Some("v1"), Some(id), Some(body)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(broken());
        };
        let (_, cipher) = self.keys.iter().find(|(k, _)| k == id).ok_or_else(broken)?;
        let bytes = B64.decode(body).map_err(|_| broken())?;
        if bytes.len() < 24 {
            return Err(broken());
        }
        let (nonce, ciphertext) = bytes.split_at(24);
        let plain = cipher
            .decrypt(XNonce::from_slice(nonce), Payload { msg: ciphertext, aad: record_id.as_bytes() })
            .map_err(|_| broken())?;
        String::from_utf8(plain).map(Zeroizing::new).map_err(|_| broken())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vault(ids: &[&str]) -> Vault {
        Vault::from_specs(&ids.iter().map(|id| Vault::generate_spec(id)).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn a_sealed_value_opens_only_on_its_own_record() {
        let v = vault(&["k1"]);
        let sealed = v.seal("13800138000", "re_1").unwrap();
        assert!(sealed.starts_with("v1:k1:") && !sealed.contains("13800138000"));
        assert_eq!(v.open(&sealed, "re_1").unwrap().as_str(), "13800138000");
        assert!(v.open(&sealed, "re_2").is_err());
        assert_ne!(v.seal("13800138000", "re_1").unwrap(), sealed, "random nonces");
    }

    #[test]
    fn rotation_keeps_old_values_readable() {
        let old = Vault::generate_spec("old");
        let sealed = Vault::from_specs(std::slice::from_ref(&old)).unwrap().seal("a@b.cn", "re_1").unwrap();
        let rotated = Vault::from_specs(&[Vault::generate_spec("new"), old]).unwrap();
        assert_eq!(rotated.open(&sealed, "re_1").unwrap().as_str(), "a@b.cn");
        assert!(rotated.seal("x", "re_1").unwrap().starts_with("v1:new:"));
    }

    #[test]
    fn bad_keys_are_named() {
        assert!(Vault::from_specs(&["k1:abcd".into()]).unwrap_err().to_string().contains("32 bytes"));
        assert!(Vault::from_specs(&["nocolon".into()]).is_err());
        assert!(Vault::from_specs(&[]).is_err());
    }
}
