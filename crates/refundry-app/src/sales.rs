//! Recording and finding sales.

use jiff::Timestamp;
use refundry_core::ids::{SaleId, StoreId};
use refundry_core::money::Money;
use refundry_core::refund::{PriorRefund, held_minor};
use refundry_core::sale::{LineItem, PaymentMethod, Sale, check_items, check_reference};
use refundry_store::Tx;
use refundry_store::model::{DisputeRecord, Refund, SaleQuery, Terminal};

use crate::idempotency::{self, Idempotency, Replay};
use crate::{Actor, App, AppError, ErrorCode, audit};

/// A completed POS payment as the terminal or back office reports it,
/// already parsed into domain types.
#[derive(Debug, Clone)]
pub struct NewSale {
    pub amount: Money,
    pub payment_method: PaymentMethod,
    pub voucher_no: Option<String>,
    pub rrn: Option<String>,
    pub auth_code: Option<String>,
    pub terminal_id: String,
    pub batch_no: Option<String>,
    pub captured_at: Timestamp,
    pub store_id: Option<StoreId>,
    pub items: Vec<LineItem>,
    /// The acquirer's opaque card token, when the terminal passes it on:
    /// only its keyed fingerprint is kept, never the token.
    pub card_token: Option<String>,
    /// The till's order for this sale, where the till sends one.
    pub order_ref: Option<String>,
}

/// A sale with what has been given back so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaleView {
    pub sale: Sale,
    /// Refunds and voids that hold part of the sale (in progress or done).
    pub refunded_minor: i64,
    pub refundable_minor: i64,
}

pub const MAX_PAGE: u32 = 100;

/// One page of a list, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub has_more: bool,
}

impl<T> Page<T> {
    /// From rows fetched with one more than `limit`.
    pub(crate) fn of(mut rows: Vec<T>, limit: u32) -> Page<T> {
        let has_more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        Page { items: rows, has_more }
    }
}

/// A reference field (letters, digits, '-', '_'), as an app error.
pub(crate) fn check_ref(field: &'static str, value: &str, max: usize) -> Result<(), AppError> {
    Ok(check_reference(field, value, max)?)
}

/// Field limits of POS references, as terminals print them.
fn check_new_sale(s: &NewSale) -> Result<(), AppError> {
    check_reference("terminal_id", &s.terminal_id, 32)?;
    let refs = [
        ("voucher_no", &s.voucher_no, 20),
        ("rrn", &s.rrn, 12),
        ("auth_code", &s.auth_code, 12),
        ("batch_no", &s.batch_no, 12),
        ("order_ref", &s.order_ref, 40),
    ];
    for (field, value, max) in refs {
        if let Some(v) = value {
            check_reference(field, v, max)?;
        }
    }
    check_items(s.amount, &s.items)?;
    if let Some(token) = &s.card_token {
        if token.is_empty() || token.len() > 128 || !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(AppError::validation(
                "payment_method.fingerprint",
                "payment_method.fingerprint must be 1 to 128 visible ASCII characters",
            ));
        }
        if refundry_core::card::contains_card_number(token) {
            return Err(AppError::new(ErrorCode::SensitiveCardData, "send the acquirer's card token, not the card")
                .with("field", "payment_method.fingerprint"));
        }
    }
    Ok(())
}

pub(crate) fn view_of(sale: Sale, refunds: &[Refund]) -> Result<SaleView, AppError> {
    let priors: Vec<PriorRefund> = refunds.iter().map(crate::refunds::prior_of).collect();
    view_with_disputes(sale, &priors, 0)
}

/// `lost_minor`: lost or accepted disputes, which hold money like refunds.
pub(crate) fn view_with_disputes(sale: Sale, priors: &[PriorRefund], lost_minor: i64) -> Result<SaleView, AppError> {
    let held = held_minor(priors).map_err(|e| AppError::from_amount("amount", e))?;
    let refundable_minor = (sale.amount.minor - held - lost_minor).max(0);
    Ok(SaleView { refunded_minor: held.min(sale.amount.minor), refundable_minor, sale })
}

fn lost_to_disputes(disputes: &[DisputeRecord]) -> Result<i64, AppError> {
    let disputes = crate::disputes::priors(disputes)?;
    refundry_core::dispute::held_by_disputes(&disputes).map_err(|e| AppError::from_amount("amount", e))
}

/// The sale, if the actor may see it: a pinned key or user sees only its
/// store's or terminal's sales; anything else is "not found".
pub(crate) fn visible_sale(actor: &Actor, sale: Option<Sale>, id: SaleId) -> Result<Sale, AppError> {
    sale.filter(|s| actor.store_pin.is_none_or(|pin| pin == s.store_id))
        .filter(|s| actor.terminal_pin.as_ref().is_none_or(|pin| *pin == s.terminal_id))
        .ok_or_else(|| AppError::new(ErrorCode::SaleNotFound, format!("no sale {id}")))
}

pub(crate) fn load_view(tx: &mut dyn Tx, actor: &Actor, id: SaleId) -> Result<SaleView, AppError> {
    let sale = tx.find_sale(actor.merchant_id, id)?;
    let sale = visible_sale(actor, sale, id)?;
    let (refunds, disputes) = tx.holdings_and_disputes(&sale)?;
    let lost = lost_to_disputes(&disputes)?;
    view_with_disputes(sale, &refunds, lost)
}

impl App {
    pub async fn record_sale(
        &self,
        actor: &Actor,
        new: NewSale,
        idem: Option<Idempotency<SaleView>>,
    ) -> Result<Replay<SaleView>, AppError> {
        check_new_sale(&new)?;
        let actor = actor.clone();
        // computed before the transaction: the writer only stores it
        let fingerprint =
            self.config.corrections.fingerprint_key.of_sale(&new.payment_method, new.card_token.as_deref());
        let answer = refundry_store::write(&self.store, move |tx| {
            idempotency::once(tx, actor.merchant_id, "POST /v1/sales", idem.as_ref(), |tx| {
                let view = record_sale_tx(tx, &actor, &new)?;
                crate::corrections::after_sale(tx, &view.sale, fingerprint.as_deref(), new.order_ref.as_deref())?;
                Ok(view)
            })
        })
        .await?;
        idempotency::count_replay(&answer);
        if matches!(answer, Replay::Fresh(_)) {
            self.jobs_waiting.notify_one();
        }
        Ok(answer)
    }

    pub async fn sale(&self, actor: &Actor, id: SaleId) -> Result<SaleView, AppError> {
        let actor = actor.clone();
        refundry_store::read(&self.store, move |tx| load_view(tx, &actor, id)).await
    }

    /// Newest first, at most [`MAX_PAGE`] a page.
    pub async fn search_sales(&self, actor: &Actor, mut query: SaleQuery) -> Result<Page<SaleView>, AppError> {
        let limit = query.limit.clamp(1, MAX_PAGE);
        query.limit = limit + 1;
        query.store_id = actor.store_pin.or(query.store_id);
        if let Some(pin) = &actor.terminal_pin {
            query.terminal_id = Some(pin.clone());
        }
        let merchant = actor.merchant_id;
        refundry_store::read(&self.store, move |tx| {
            let sales = tx.search_sales(merchant, &query)?;
            let views = sales
                .into_iter()
                .map(|sale| {
                    let (refunds, disputes) = tx.holdings_and_disputes(&sale)?;
                    let lost = lost_to_disputes(&disputes)?;
                    view_with_disputes(sale, &refunds, lost)
                })
                .collect::<Result<Vec<_>, AppError>>()?;
            Ok(Page::of(views, limit))
        })
        .await
    }
}

/// Resolves the store, registers a terminal seen for the first time, and
/// writes the sale with its audit event.
pub(crate) fn record_sale_tx(tx: &mut dyn Tx, actor: &Actor, new: &NewSale) -> Result<SaleView, AppError> {
    let merchant = actor.merchant_id;
    let now = crate::now();
    if actor.terminal_pin.as_ref().is_some_and(|pin| *pin != new.terminal_id) {
        return Err(AppError::new(ErrorCode::Forbidden, "this key may only record sales of its own terminal"));
    }
    let store_id = match tx.find_terminal(merchant, &new.terminal_id)? {
        Some(terminal) => {
            if new.store_id.is_some_and(|s| s != terminal.store_id) {
                return Err(AppError::new(
                    ErrorCode::TerminalStoreMismatch,
                    format!("terminal {} belongs to store {}", new.terminal_id, terminal.store_id),
                ));
            }
            terminal.store_id
        }
        None => {
            let store_id = match new.store_id {
                Some(id) => {
                    tx.find_store(merchant, id)?
                        .ok_or_else(|| {
                            AppError::new(ErrorCode::UnknownStore, format!("no store {id}")).with("field", "store_id")
                        })?
                        .id
                }
                None => {
                    tx.stores_of(merchant)?
                        .first()
                        .ok_or_else(|| AppError::new(ErrorCode::UnknownStore, "the merchant has no store yet"))?
                        .id
                }
            };
            tx.insert_terminal(&Terminal {
                merchant_id: merchant,
                terminal_id: new.terminal_id.clone(),
                store_id,
                created_at: now,
            })?;
            store_id
        }
    };
    if actor.store_pin.is_some_and(|pin| pin != store_id) {
        return Err(AppError::new(ErrorCode::Forbidden, "this key may only record sales of its own store"));
    }
    let sale = Sale {
        id: SaleId::generate(),
        merchant_id: merchant,
        store_id,
        terminal_id: new.terminal_id.clone(),
        amount: new.amount,
        payment_method: new.payment_method.clone(),
        voucher_no: new.voucher_no.clone(),
        rrn: new.rrn.clone(),
        auth_code: new.auth_code.clone(),
        batch_no: new.batch_no.clone(),
        captured_at: new.captured_at,
        created_at: now,
        items: new.items.clone(),
        // who rang it up: the policy treats refunds by someone else differently
        cashier: actor.person().map(|p| p.id.to_string()),
    };
    tx.insert_sale(&sale)?;
    let data = serde_json::json!({
        "amount": sale.amount.minor,
        "currency": sale.amount.currency.code(),
        "method": sale.payment_method.kind(),
        "terminal_id": sale.terminal_id,
        "voucher_no": sale.voucher_no,
    });
    audit::record(tx, actor, "sale.recorded", &sale.id.to_string(), data, now)?;
    view_of(sale, &[])
}
