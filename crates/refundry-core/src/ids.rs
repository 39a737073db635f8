//! Identifiers: a UUID v7 (time-ordered, so the newest sorts last) shown
//! with a readable prefix that says what it names, e.g. `re_01936f…`.

use std::fmt;
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a valid {kind} id (expected `{prefix}` followed by 32 hex digits)")]
pub struct IdError {
    pub kind: &'static str,
    pub prefix: &'static str,
}

macro_rules! prefixed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $kind:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Uuid);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            /// A fresh id; ids made later sort after ids made earlier.
            pub fn generate() -> Self {
                $name(Uuid::now_v7())
            }

            pub fn parse(s: &str) -> Result<Self, IdError> {
                let err = IdError { kind: $kind, prefix: $prefix };
                let hex = s.strip_prefix($prefix).ok_or(err.clone())?;
                if hex.len() != 32 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
                    return Err(err);
                }
                Uuid::parse_str(hex).map($name).map_err(|_| err)
            }

            pub fn uuid(&self) -> Uuid {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                // one write of the whole id: every id bound to a statement
                // goes through `to_string`, which then allocates once
                const LEN: usize = $prefix.len() + 32;
                let mut text = [0u8; LEN];
                text[..$prefix.len()].copy_from_slice($prefix.as_bytes());
                self.0.simple().encode_lower(&mut text[$prefix.len()..]);
                f.write_str(std::str::from_utf8(&text).map_err(|_| fmt::Error)?)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self, f)
            }
        }
    };
}

prefixed_id!(
    /// A merchant: the tenant that owns stores, terminals, keys and sales.
    MerchantId, "mch_", "merchant");
prefixed_id!(
    /// A store (门店) of a merchant.
    StoreId, "st_", "store");
prefixed_id!(
    /// A captured POS payment.
    SaleId, "sale_", "sale");
prefixed_id!(
    /// A refund or void of (part of) a sale.
    RefundId, "re_", "refund");
prefixed_id!(
    /// An API key. The secret part is never an id and never stored.
    KeyId, "key_", "API key");
prefixed_id!(
    /// A chargeback or retrieval request (退单/拒付, 调单).
    DisputeId, "dp_", "dispute");
prefixed_id!(
    /// One item of evidence on a dispute case: a receipt, a signature, …
    EvidenceId, "ev_", "evidence item");
prefixed_id!(
    /// A correction case (错收): a charge that was likely wrong.
    CorrectionId, "cor_", "correction case");
prefixed_id!(
    /// A person who logs in: cashier, supervisor, finance, risk or admin.
    UserId, "usr_", "user");
prefixed_id!(
    /// A log-in session. Like keys, only a hash of its secret is stored.
    SessionId, "ses_", "session");

/// Whether the text has the shape of one of our ids (a short lower-case
/// prefix, `_`, 32 hex digits). They are UUIDs in hex: one in a few hundred
/// holds a 13-digit run that happens to pass Luhn, and the card-data guards
/// must not refuse them as card numbers.
pub fn looks_like_id(s: &str) -> bool {
    s.split_once('_').is_some_and(|(prefix, hex)| {
        (2..=5).contains(&prefix.len())
            && prefix.bytes().all(|b| b.is_ascii_lowercase())
            && hex.len() == 32
            && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_through_their_text() {
        let id = SaleId::generate();
        let text = id.to_string();
        assert!(text.starts_with("sale_"));
        assert_eq!(text.len(), 5 + 32);
        assert_eq!(SaleId::parse(&text).unwrap(), id);
    }

    #[test]
    fn an_id_prints_as_its_prefix_and_lower_case_hex() {
        let uuid = Uuid::from_u128(0x0193_6f2a_7b00_7c3d_8e9f_a0b1_c2d3_e4f5);
        assert_eq!(MerchantId(uuid).to_string(), "mch_01936f2a7b007c3d8e9fa0b1c2d3e4f5");
        assert_eq!(format!("[{}]", CorrectionId(uuid)), "[cor_01936f2a7b007c3d8e9fa0b1c2d3e4f5]");
        assert_eq!(format!("{:?}", StoreId(uuid)), "st_01936f2a7b007c3d8e9fa0b1c2d3e4f5");
    }

    #[test]
    fn wrong_prefix_or_shape_is_refused() {
        let id = SaleId::generate().to_string();
        assert!(RefundId::parse(&id).is_err());
        assert!(SaleId::parse("sale_xyz").is_err());
        assert!(SaleId::parse(&id.to_uppercase()).is_err());
    }

    #[test]
    fn later_ids_sort_after_earlier_ones() {
        let a = RefundId::generate();
        let b = RefundId::generate();
        assert!(a.to_string() < b.to_string());
    }
}
