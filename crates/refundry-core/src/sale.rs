//! A sale: a completed POS payment as the acquirer and terminal know it.

use crate::card::{First6, Last4};
use crate::ids::{MerchantId, SaleId, StoreId};
#[cfg(test)]
use crate::money::Currency;
use crate::money::{AmountError, Money};
use jiff::Timestamp;

macro_rules! wire_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            pub fn parse(s: &str) -> Option<$name> {
                match s { $($text => Some($name::$variant),)+ _ => None }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(crate) use wire_enum;

wire_enum!(
    /// Card scheme of a card payment.
    CardBrand {
        UnionPay = "unionpay", Visa = "visa", Mastercard = "mastercard", Amex = "amex",
        Jcb = "jcb", Discover = "discover", Diners = "diners", Other = "other",
    }
);

wire_enum!(
    /// How the card was read at the terminal.
    EntryMode {
        Chip = "chip", Contactless = "contactless", Swipe = "swipe", Manual = "manual",
        Fallback = "fallback",
    }
);

wire_enum!(
    /// QR and app wallets.
    Wallet { Alipay = "alipay", WechatPay = "wechat_pay", UnionPayQr = "unionpay_qr", Other = "other" }
);

/// How the customer paid. Refunds go back the same way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentMethod {
    Card { brand: CardBrand, first6: First6, last4: Last4, entry_mode: EntryMode },
    Wallet { wallet: Wallet },
    Cash,
}

impl PaymentMethod {
    pub fn kind(&self) -> &'static str {
        match self {
            PaymentMethod::Card { .. } => "card",
            PaymentMethod::Wallet { .. } => "wallet",
            PaymentMethod::Cash => "cash",
        }
    }

    /// Only card payments sit in a terminal batch that can still be voided.
    pub fn is_card(&self) -> bool {
        matches!(self, PaymentMethod::Card { .. })
    }
}

/// One line of what was sold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineItem {
    pub sku: String,
    pub name: String,
    pub quantity: u32,
    pub unit_amount_minor: i64,
}

impl LineItem {
    pub fn total_minor(&self) -> Option<i64> {
        self.unit_amount_minor.checked_mul(i64::from(self.quantity))
    }
}

/// A completed payment, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sale {
    pub id: SaleId,
    pub merchant_id: MerchantId,
    pub store_id: StoreId,
    pub terminal_id: String,
    pub amount: Money,
    pub payment_method: PaymentMethod,
    pub voucher_no: Option<String>,
    pub rrn: Option<String>,
    pub auth_code: Option<String>,
    pub batch_no: Option<String>,
    pub captured_at: Timestamp,
    pub created_at: Timestamp,
    pub items: Vec<LineItem>,
    /// Who rang the sale up (a user id), when a person was known.
    pub cashier: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SaleError {
    #[error("amount: {0}")]
    Amount(#[from] AmountError),
    #[error("{field} must be 1 to {max} characters of letters, digits, '-' or '_'")]
    BadReference { field: &'static str, max: usize },
    #[error("items[{index}]: {problem}")]
    BadItem { index: usize, problem: &'static str },
    #[error("items add up to {items_total_minor} but the sale amount is {amount_minor}")]
    ItemsTotalMismatch { items_total_minor: i64, amount_minor: i64 },
    #[error("sku {0} appears on more than one line")]
    DuplicateSku(String),
}

/// Checks a POS reference (voucher no., RRN, auth code, batch, terminal id):
/// short, printable, no spaces. These are matched exactly when searching.
pub fn check_reference(field: &'static str, value: &str, max: usize) -> Result<(), SaleError> {
    let ok = !value.is_empty()
        && value.len() <= max
        && value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok { Ok(()) } else { Err(SaleError::BadReference { field, max }) }
}

/// The most lines one sale may carry.
pub const MAX_ITEMS: usize = 500;

/// Checks line items against the sale amount. When items are given they
/// must add up to the amount exactly, so that refunding every item returns
/// exactly what was paid (discounts belong in the unit amounts).
pub fn check_items(amount: Money, items: &[LineItem]) -> Result<(), SaleError> {
    if items.len() > MAX_ITEMS {
        return Err(SaleError::BadItem { index: MAX_ITEMS, problem: "too many lines (at most 500)" });
    }
    let mut total: i64 = 0;
    let mut seen = std::collections::HashSet::new();
    for (index, item) in items.iter().enumerate() {
        if item.sku.is_empty() || item.sku.len() > 64 {
            return Err(SaleError::BadItem { index, problem: "sku must be 1 to 64 characters" });
        }
        if item.name.chars().count() > 200 {
            return Err(SaleError::BadItem { index, problem: "name is longer than 200 characters" });
        }
        if item.quantity == 0 || item.quantity > 100_000 {
            return Err(SaleError::BadItem { index, problem: "quantity must be 1 to 100000" });
        }
        if item.unit_amount_minor <= 0 {
            return Err(SaleError::BadItem { index, problem: "unit_amount must be positive" });
        }
        if !seen.insert(item.sku.as_str()) {
            return Err(SaleError::DuplicateSku(item.sku.clone()));
        }
        total =
            item.total_minor().and_then(|t| total.checked_add(t)).ok_or(SaleError::Amount(AmountError::Overflow))?;
    }
    if !items.is_empty() && total != amount.minor {
        return Err(SaleError::ItemsTotalMismatch { items_total_minor: total, amount_minor: amount.minor });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(sku: &str, quantity: u32, unit: i64) -> LineItem {
        LineItem { sku: sku.into(), name: sku.into(), quantity, unit_amount_minor: unit }
    }

    #[test]
    fn items_must_add_up_to_the_amount() {
        let amount = Money::new(1000, Currency::CNY);
        assert!(check_items(amount, &[item("a", 2, 300), item("b", 1, 400)]).is_ok());
        assert_eq!(
            check_items(amount, &[item("a", 2, 300)]),
            Err(SaleError::ItemsTotalMismatch { items_total_minor: 600, amount_minor: 1000 })
        );
        assert!(check_items(amount, &[]).is_ok());
    }

    #[test]
    fn bad_items_are_named_by_index() {
        let amount = Money::new(1000, Currency::CNY);
        assert!(matches!(
            check_items(amount, &[item("a", 1, 1000), item("b", 0, 1)]),
            Err(SaleError::BadItem { index: 1, .. })
        ));
        assert!(matches!(
            check_items(amount, &[item("a", 1, 500), item("a", 1, 500)]),
            Err(SaleError::DuplicateSku(_))
        ));
        assert!(matches!(
            check_items(amount, &[item("a", u32::MAX, i64::MAX)]),
            Err(SaleError::BadItem { .. }) | Err(SaleError::Amount(_))
        ));
    }

    #[test]
    fn references_are_short_and_plain() {
        assert!(check_reference("rrn", "123456789012", 12).is_ok());
        assert!(check_reference("rrn", "1234567890123", 12).is_err());
        assert!(check_reference("voucher_no", "00 12", 20).is_err());
        assert!(check_reference("voucher_no", "", 20).is_err());
    }

    #[test]
    fn wire_names_round_trip() {
        for b in CardBrand::ALL {
            assert_eq!(CardBrand::parse(b.as_str()), Some(*b));
        }
        assert_eq!(Wallet::parse("wechat_pay"), Some(Wallet::WechatPay));
        assert_eq!(EntryMode::parse("magic"), None);
    }
}
