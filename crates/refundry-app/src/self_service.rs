//! The customer's own refund request, with no log-in: they prove they hold
//! a sale by four facts from the receipt (voucher number or RRN, date,
//! amount, card's last 4). Anything short of all four matching answers the
//! same "no match", so the page tells a stranger nothing. The request goes
//! through the merchant's policy like any other, and always waits for a
//! person: a customer's word alone never sends money.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use jiff::civil::Date;
use refundry_core::card::Last4;
use refundry_core::ids::{MerchantId, RefundId};
use refundry_core::policy::{Decision, Outcome, PolicyReason};
use refundry_core::refund::{RefundAsk, RefundReason};
use refundry_core::sale::PaymentMethod;
use refundry_store::model::{Refund, SaleQuery};

use crate::idempotency::{Idempotency, Replay};
use crate::notify::CustomerContact;
use crate::refunds::RefundRequest;
use crate::sales::SaleView;
use crate::{Actor, App, AppError, ErrorCode, Principal};

/// How the customer is named in the audit log: `system:self-service`.
pub const CUSTOMER: &str = "self-service";

/// The reason code every self-service request carries.
pub const NEEDS_REVIEW: &str = "customer_self_service";

/// What the receipt says; all four must match one sale.
#[derive(Debug, Clone)]
pub struct ReceiptFacts {
    /// The voucher number (凭证号) or the RRN (参考号).
    pub reference: String,
    pub date: Date,
    pub amount_minor: i64,
    pub last4: Last4,
}

/// The customer, acting on one merchant's sales from `source`.
pub fn customer_actor(merchant: MerchantId, source: &str) -> Actor {
    Actor {
        merchant_id: merchant,
        principal: Principal::System(CUSTOMER),
        scopes: vec!["refunds:write".to_owned()],
        store_pin: None,
        terminal_pin: None,
        source: source.to_owned(),
    }
}

pub fn is_customer(actor: &Actor) -> bool {
    actor.principal == Principal::System(CUSTOMER)
}

/// A customer's request always waits for a supervisor, whatever else the
/// policy says (a rejection stays a rejection).
pub(crate) fn reviewed(actor: &Actor, mut decision: Decision) -> Decision {
    if !is_customer(actor) || decision.outcome != Outcome::Approve {
        return decision;
    }
    decision.reasons.retain(|r| r.code != refundry_core::policy::codes::WITHIN_POLICY);
    decision.reasons.push(PolicyReason {
        code: NEEDS_REVIEW,
        outcome: Outcome::RequiresApproval,
        en: "The customer asked on the self-service page; a supervisor checks every such request.".into(),
        zh: "顾客通过自助页面申请退款，此类申请均需主管审核。".into(),
    });
    decision.outcome = Outcome::RequiresApproval;
    decision
}

fn no_match() -> AppError {
    AppError::new(ErrorCode::SaleNotFound, "no sale matches these receipt details")
}

impl App {
    /// The merchant `/self-service` serves on an install with one merchant:
    /// the first one made.
    pub async fn first_merchant(&self) -> Result<Option<MerchantId>, AppError> {
        refundry_store::read(&self.store, |tx| Ok(tx.first_merchant()?.map(|m| m.id))).await
    }

    /// The one sale all four facts match, or `sale_not_found`.
    pub async fn find_receipt(&self, actor: &Actor, facts: &ReceiptFacts) -> Result<SaleView, AppError> {
        let tz = self.config.business_tz.clone();
        let from = facts.date.to_zoned(tz.clone()).map_err(|_| no_match())?.timestamp();
        let next = facts.date.tomorrow().map_err(|_| no_match())?;
        let to = next.to_zoned(tz).map_err(|_| no_match())?.timestamp();
        let query = |voucher: bool| SaleQuery {
            voucher_no: voucher.then(|| facts.reference.clone()),
            rrn: (!voucher).then(|| facts.reference.clone()),
            last4: Some(facts.last4.as_str().to_owned()),
            amount_minor: Some(facts.amount_minor),
            captured_from: Some(from),
            captured_to: Some(to),
            limit: 2,
            ..SaleQuery::default()
        };
        let mut found = self.search_sales(actor, query(true)).await?.items;
        if found.is_empty() {
            found = self.search_sales(actor, query(false)).await?.items;
        }
        // two sales with the same four facts: the customer cannot tell which
        let [view] = <[SaleView; 1]>::try_from(found).map_err(|_| no_match())?;
        let card_matches =
            matches!(&view.sale.payment_method, PaymentMethod::Card { last4, .. } if *last4 == facts.last4);
        if card_matches { Ok(view) } else { Err(no_match()) }
    }

    /// Asks for the rest of the sale back. Returns the refund and the token
    /// of its status page.
    pub async fn customer_refund(
        &self,
        actor: &Actor,
        facts: &ReceiptFacts,
        reason: RefundReason,
        customer: CustomerContact,
        idem: Option<Idempotency<Refund>>,
    ) -> Result<Replay<Refund>, AppError> {
        let view = self.find_receipt(actor, facts).await?;
        let request = RefundRequest {
            sale_id: view.sale.id,
            ask: RefundAsk::Amount(view.refundable_minor),
            reason,
            note: Some("self-service".into()),
            customer: Some(customer),
            card_token: None,
        };
        self.request_refund(actor, request, idem).await
    }

    /// An unguessable, unforgeable link to one refund's status: the ids
    /// sealed with the vault, so nothing needs storing.
    pub fn status_token(&self, refund: &Refund) -> Result<String, AppError> {
        let sealed = self.config.vault.seal(&format!("{}/{}", refund.merchant_id, refund.id), "self-service-status")?;
        Ok(B64.encode(sealed))
    }

    /// The refund a status token names, or `refund_not_found`.
    pub async fn refund_by_token(&self, token: &str) -> Result<Refund, AppError> {
        let unknown = || AppError::new(ErrorCode::RefundNotFound, "no refund for this link");
        let sealed = B64.decode(token).ok().and_then(|b| String::from_utf8(b).ok()).ok_or_else(unknown)?;
        let plain = self.config.vault.open(&sealed, "self-service-status").map_err(|_| unknown())?;
        let (merchant, refund) = plain.split_once('/').ok_or_else(unknown)?;
        let merchant = MerchantId::parse(merchant).map_err(|_| unknown())?;
        let refund = RefundId::parse(refund).map_err(|_| unknown())?;
        self.refund(&customer_actor(merchant, CUSTOMER), refund).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use refundry_core::policy::codes;

    fn approve() -> Decision {
        Decision {
            outcome: Outcome::Approve,
            reasons: vec![PolicyReason {
                code: codes::WITHIN_POLICY,
                outcome: Outcome::Approve,
                en: "ok".into(),
                zh: "ok".into(),
            }],
        }
    }

    #[test]
    fn a_customers_request_always_waits_for_a_supervisor() {
        let merchant = MerchantId::generate();
        let reviewed = reviewed(&customer_actor(merchant, "203.0.113.9"), approve());
        assert_eq!(reviewed.outcome, Outcome::RequiresApproval);
        assert_eq!(reviewed.codes(), vec![NEEDS_REVIEW]);
        // staff and systems are decided by the policy alone
        assert_eq!(reviewed_by_system(merchant).outcome, Outcome::Approve);
    }

    fn reviewed_by_system(merchant: MerchantId) -> Decision {
        reviewed(&Actor::system(merchant, "test"), approve())
    }

    #[test]
    fn a_rejection_stays_a_rejection() {
        let mut d = approve();
        d.outcome = Outcome::Reject;
        d.reasons[0].outcome = Outcome::Reject;
        assert_eq!(reviewed(&customer_actor(MerchantId::generate(), "x"), d).outcome, Outcome::Reject);
    }
}
