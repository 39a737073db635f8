//! What a slip says: plain data the caller fills in from the refund, its
//! sale and the people involved. The card can only be given as brand, first
//! 6 and last 4, so a full card number has no field to arrive in.

use jiff::Timestamp;
use jiff::tz::TimeZone;
use refundry_core::card::{First6, Last4};
use refundry_core::ids::RefundId;
use refundry_core::money::Money;
use refundry_core::refund::{PlannedItem, RefundStatus, RefundType};
use refundry_core::sale::{CardBrand, PaymentMethod, Sale, Wallet};

/// The language of the slip. Chinese slips carry English beside every
/// label, Chinese first, because staff and customers may read either.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Locale {
    Zh,
    En,
}

/// Thermal paper width. Printers print 12×24-dot ASCII and 24×24-dot
/// hanzi, so a line holds 32 (58 mm) or 48 (80 mm) ASCII columns and half
/// as many hanzi.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Width {
    Mm58,
    Mm80,
}

impl Width {
    /// ASCII characters per line; a hanzi takes two.
    pub fn columns(self) -> usize {
        match self {
            Width::Mm58 => 32,
            Width::Mm80 => 48,
        }
    }
}

/// One refund or void, as its slip shows it.
#[derive(Debug, Clone)]
pub struct Slip {
    pub merchant_name: String,
    pub store_name: String,
    pub terminal_id: String,
    pub refund_id: RefundId,
    /// 撤销 (void) or 退货 (refund).
    pub refund_type: RefundType,
    pub status: RefundStatus,
    pub amount: Money,
    /// Why, in words for people (e.g. the reason's label in the slip's language).
    pub reason: String,
    /// What goes back, when the refund was asked by items; empty otherwise.
    pub items: Vec<SlipItem>,
    pub original: OriginalSale,
    /// Where the money goes back to: the way the customer paid.
    pub tender: Tender,
    pub created_at: Timestamp,
    pub completed_at: Option<Timestamp>,
    /// Who did it (a name or user id).
    pub operator: String,
    /// Who approved it, when a supervisor had to.
    pub approver: Option<String>,
    /// Already masked by the caller (`Phone::masked`, `Email::masked`); the
    /// clear value never reaches a slip.
    pub customer_contact_masked: Option<String>,
    /// Times print in the store's zone (Asia/Shanghai for most merchants).
    pub time_zone: TimeZone,
    pub locale: Locale,
}

/// One line of what goes back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlipItem {
    pub name: String,
    pub quantity: u32,
    /// In the slip amount's currency.
    pub amount_minor: i64,
}

impl SlipItem {
    /// A planned refund line, named as the sale named it.
    pub fn planned(sale: &Sale, item: &PlannedItem) -> SlipItem {
        let name = sale.items.iter().find(|l| l.sku == item.sku).map_or(&item.sku, |l| &l.name);
        SlipItem { name: name.clone(), quantity: item.quantity, amount_minor: item.amount_minor }
    }
}

/// The sale being refunded, by the references the acquirer and the
/// customer's own sale slip know it by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginalSale {
    /// 凭证号
    pub voucher_no: Option<String>,
    /// 参考号 (retrieval reference number)
    pub rrn: Option<String>,
    /// 授权码
    pub auth_code: Option<String>,
    /// 批次号
    pub batch_no: Option<String>,
    pub captured_at: Timestamp,
}

impl OriginalSale {
    pub fn of(sale: &Sale) -> OriginalSale {
        OriginalSale {
            voucher_no: sale.voucher_no.clone(),
            rrn: sale.rrn.clone(),
            auth_code: sale.auth_code.clone(),
            batch_no: sale.batch_no.clone(),
            captured_at: sale.captured_at,
        }
    }
}

/// How the customer paid, so where the money goes back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tender {
    Card { brand: CardBrand, first6: First6, last4: Last4 },
    Wallet(Wallet),
    Cash,
}

impl From<&PaymentMethod> for Tender {
    fn from(method: &PaymentMethod) -> Tender {
        match method {
            PaymentMethod::Card { brand, first6, last4, .. } => {
                Tender::Card { brand: *brand, first6: first6.clone(), last4: last4.clone() }
            }
            PaymentMethod::Wallet { wallet } => Tender::Wallet(*wallet),
            PaymentMethod::Cash => Tender::Cash,
        }
    }
}
