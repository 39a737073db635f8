//! Message authentication codes. The host rejects a message whose MAC is
//! wrong (response code A0), so the MAC is computed over exactly the bytes
//! that go on the wire: from the MTI up to the MAC field, headers excluded.

use des::cipher::{Array, BlockCipherEncrypt, KeyInit};
use des::{Des, TdesEde2};

use crate::codec::{self, CodecError};
use crate::dialect::Dialect;
use crate::message::{FieldValue, Message};

/// A MAC algorithm keyed with the terminal's MAC key (MAK).
pub trait Mac {
    /// The 8-byte MAC of the MAC block (the encoded message from the MTI
    /// up to, not including, the MAC field).
    fn compute(&self, mac_block: &[u8]) -> [u8; 8];
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("a MAC key is 8 bytes (DES) or 16 bytes (double-length triple DES), not {0}")]
    Length(usize),
    #[error("a MAC key in hex has 16 or 32 hexadecimal digits")]
    Hex,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MacError {
    #[error("dialect {0} has no MAC field")]
    NoMacField(&'static str),
    #[error("field {mac_field} must be the last field to carry the MAC, but field {after} follows it")]
    FieldAfterMac { mac_field: u8, after: u8 },
    #[error("the message carries no MAC in field {0}")]
    Missing(u8),
    #[error("the MAC in field {0} does not match the message")]
    Mismatch(u8),
    #[error(transparent)]
    Codec(#[from] CodecError),
}

/// China UnionPay's POS "ECB" MAC (银联 ECB 算法):
///
/// 1. pad the MAC block with zero bytes to a multiple of 8 and XOR the
///    8-byte blocks together;
/// 2. write the result as 16 upper-case hex characters;
/// 3. encrypt the first 8 characters with the MAK, XOR the cipher text
///    with the last 8 characters, and encrypt that again;
/// 4. write the result as hex and take its first 8 characters (as ASCII
///    bytes) as the MAC.
///
/// The MAK is single DES (8 bytes); a 16-byte key runs the same steps
/// with double-length triple DES, for acquirers that issue one.
pub struct CupEcbMac {
    key: MacKey,
}

enum MacKey {
    Single(Des),
    Double(TdesEde2),
}

impl CupEcbMac {
    /// The clear MAC key, as decrypted from a sign-on response.
    pub fn from_key(key: &[u8]) -> Result<CupEcbMac, KeyError> {
        let key = match key.len() {
            8 => MacKey::Single(Des::new_from_slice(key).map_err(|_| KeyError::Length(8))?),
            16 => MacKey::Double(TdesEde2::new_from_slice(key).map_err(|_| KeyError::Length(16))?),
            n => return Err(KeyError::Length(n)),
        };
        Ok(CupEcbMac { key })
    }

    /// The key as hexadecimal digits, as configuration holds it.
    pub fn from_hex(hex_key: &str) -> Result<CupEcbMac, KeyError> {
        let key = hex::decode(hex_key.trim()).map_err(|_| KeyError::Hex)?;
        if key.len() != 8 && key.len() != 16 {
            return Err(KeyError::Hex);
        }
        CupEcbMac::from_key(&key)
    }

    fn encrypt(&self, block: [u8; 8]) -> [u8; 8] {
        let mut b = Array::from(block);
        match &self.key {
            MacKey::Single(c) => c.encrypt_block(&mut b),
            MacKey::Double(c) => c.encrypt_block(&mut b),
        }
        b.into()
    }
}

impl std::fmt::Debug for CupEcbMac {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.key {
            MacKey::Single(_) => "DES",
            MacKey::Double(_) => "TDES-EDE2",
        };
        write!(f, "CupEcbMac({kind}, key redacted)")
    }
}

impl Mac for CupEcbMac {
    fn compute(&self, mac_block: &[u8]) -> [u8; 8] {
        let mut x = [0u8; 8];
        for chunk in mac_block.chunks(8) {
            // A short last chunk is zero-padded: XOR with zero is no-op.
            for (acc, b) in x.iter_mut().zip(chunk) {
                *acc ^= b;
            }
        }
        let hex = hex_upper(x);
        let mut left = self.encrypt(first_half(&hex));
        for (l, r) in left.iter_mut().zip(&hex[8..]) {
            *l ^= r;
        }
        first_half(&hex_upper(self.encrypt(left)))
    }
}

fn hex_upper(b: [u8; 8]) -> [u8; 16] {
    let mut out = [0u8; 16];
    // 8 bytes always make 16 hex digits, so this cannot fail.
    let _ = hex::encode_to_slice(b, &mut out);
    out.make_ascii_uppercase();
    out
}

fn first_half(b: &[u8; 16]) -> [u8; 8] {
    let mut out = [0u8; 8];
    out.copy_from_slice(&b[..8]);
    out
}

/// The bytes a MAC covers: the encoded message from the MTI to the MAC
/// field, which must be the last field present.
pub fn mac_block(dialect: &Dialect, message: &Message) -> Result<Vec<u8>, MacError> {
    let mac_field = dialect.layout().mac_field.ok_or(MacError::NoMacField(dialect.name()))?;
    if let Some((&after, _)) = message.fields.range(mac_field + 1..).next() {
        return Err(MacError::FieldAfterMac { mac_field, after });
    }
    let mut with_placeholder = message.clone();
    with_placeholder.fields.insert(mac_field, FieldValue::Bytes(vec![0; 8]));
    let bytes = codec::encode(dialect, &with_placeholder)?;
    let start = dialect.preamble_len();
    Ok(bytes.get(start..bytes.len().saturating_sub(8)).unwrap_or_default().to_vec())
}

/// Computes the MAC and stores it in the dialect's MAC field.
pub fn sign(dialect: &Dialect, message: &mut Message, mac: &dyn Mac) -> Result<(), MacError> {
    let block = mac_block(dialect, message)?;
    let mac_field = dialect.layout().mac_field.ok_or(MacError::NoMacField(dialect.name()))?;
    message.set_bytes(mac_field, mac.compute(&block));
    Ok(())
}

/// Checks a received message's MAC. Decoding is canonical, so re-encoding
/// the message gives back the bytes the host sent.
pub fn verify(dialect: &Dialect, message: &Message, mac: &dyn Mac) -> Result<(), MacError> {
    let mac_field = dialect.layout().mac_field.ok_or(MacError::NoMacField(dialect.name()))?;
    let received = message.bytes(mac_field).ok_or(MacError::Missing(mac_field))?;
    let expected = mac.compute(&mac_block(dialect, message)?);
    // Compare every byte whatever the first difference, so timing says
    // nothing about how much of a forged MAC was right.
    let diff = received.iter().zip(&expected).fold(received.len() ^ 8, |d, (a, b)| d | (a ^ b) as usize);
    if diff == 0 { Ok(()) } else { Err(MacError::Mismatch(mac_field)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn des_itself_matches_the_published_vector() {
        // FIPS 81 / the classic "Now is t" example: anchors the KATs below.
        let mac = CupEcbMac::from_hex("0123456789ABCDEF").unwrap();
        assert_eq!(mac.encrypt(*b"Now is t"), hex::decode("3FA40E8A984D4815").unwrap()[..]);
    }

    #[test]
    fn the_cup_ecb_steps_give_the_known_answers() {
        // Computed outside Rust from the algorithm's definition, with
        // OpenSSL doing the DES: tests/mac_kat.py KEY BLOCK.
        let block = b"0200\x30\x20\x04\xc0\x20\xc0\x98\x11refundry test block";
        let single = CupEcbMac::from_hex("0123456789ABCDEF").unwrap();
        assert_eq!(single.compute(block), *b"8AEB4EB8");
        assert_eq!(single.compute(&[1, 2, 3, 4, 5, 6, 7, 8]), *b"53E663E6");
        let double = CupEcbMac::from_hex("0123456789ABCDEFFEDCBA9876543210").unwrap();
        assert_eq!(double.compute(block), *b"2827B22C");
        assert_eq!(CupEcbMac::from_key(&[0x11; 8]).unwrap().compute(&[]), *b"33C2896B");
    }

    #[test]
    fn trailing_zero_bytes_do_not_change_the_mac() {
        // A consequence of zero padding, and why the MAC block must end
        // exactly where the MAC field begins.
        let mac = CupEcbMac::from_hex("0123456789ABCDEF").unwrap();
        assert_eq!(mac.compute(&[1, 2, 3]), mac.compute(&[1, 2, 3, 0, 0]));
    }

    #[test]
    fn keys_must_be_single_or_double_length() {
        assert!(CupEcbMac::from_key(&[1; 8]).is_ok());
        assert!(CupEcbMac::from_key(&[1; 16]).is_ok());
        assert_eq!(CupEcbMac::from_key(&[1; 24]).unwrap_err(), KeyError::Length(24));
        assert_eq!(CupEcbMac::from_hex("0123").unwrap_err(), KeyError::Hex);
        assert_eq!(CupEcbMac::from_hex("zz23456789ABCDEF").unwrap_err(), KeyError::Hex);
        assert!(!format!("{:?}", CupEcbMac::from_hex("0123456789ABCDEF").unwrap()).contains("0123"));
    }

    #[test]
    fn the_mac_is_eight_hex_characters() {
        let mac = CupEcbMac::from_key(&[0x11; 8]).unwrap();
        let out = mac.compute(b"anything at all");
        assert!(out.iter().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_lowercase()), "{out:?}");
    }
}
