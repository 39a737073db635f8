//! Refund policy: stored per merchant with per-store overrides, versioned,
//! and applied to every refund request through the core's pure `decide`.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use jiff::Timestamp;
use refundry_core::ids::StoreId;
use refundry_core::policy::{ActorFacts, Decision, OtherCashierRule, PolicyRequest, RefundPolicy, decide};
use refundry_core::refund::{PriorRefund, RefundReason};
use refundry_core::sale::Sale;
use refundry_store::Tx;
use refundry_store::model::PolicyRecord;
use serde::{Deserialize, Serialize};

use crate::{Actor, App, AppError, ErrorCode, audit};

/// The policy as it is stored and sent: every rule by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyDoc {
    pub refund_window_days_card: u32,
    pub refund_window_days_wallet: u32,
    pub refund_window_days_cash: u32,
    pub no_questions_days: u32,
    pub approval_above_minor: i64,
    pub approval_above_share_bps: u32,
    pub large_sale_minor: i64,
    pub large_sale_approval_above_minor: i64,
    pub allowed_reasons: Vec<String>,
    pub cash_refund_limit_minor: i64,
    pub cashier_daily_limit_minor: i64,
    /// `allow`, `require_approval` or `reject`.
    pub other_cashier: String,
    /// Refund-abuse rules; the core's defaults when left out.
    #[serde(default)]
    pub abuse: crate::abuse::AbuseDoc,
}

impl From<&RefundPolicy> for PolicyDoc {
    fn from(p: &RefundPolicy) -> PolicyDoc {
        PolicyDoc {
            refund_window_days_card: p.refund_window_days_card,
            refund_window_days_wallet: p.refund_window_days_wallet,
            refund_window_days_cash: p.refund_window_days_cash,
            no_questions_days: p.no_questions_days,
            approval_above_minor: p.approval_above_minor,
            approval_above_share_bps: p.approval_above_share_bps,
            large_sale_minor: p.large_sale_minor,
            large_sale_approval_above_minor: p.large_sale_approval_above_minor,
            allowed_reasons: p.allowed_reasons.iter().map(|r| r.as_str().to_owned()).collect(),
            cash_refund_limit_minor: p.cash_refund_limit_minor,
            cashier_daily_limit_minor: p.cashier_daily_limit_minor,
            other_cashier: p.other_cashier.as_str().to_owned(),
            abuse: crate::abuse::AbuseDoc::default(),
        }
    }
}

impl PolicyDoc {
    /// Parses and checks the rules; the error names the field.
    pub fn into_policy(self) -> Result<RefundPolicy, AppError> {
        // checked here so a bad rule is refused when written, not when used
        self.abuse.clone().into_rules(&jiff::tz::TimeZone::UTC)?;
        let invalid =
            |field: &str, detail: String| AppError::new(ErrorCode::InvalidPolicy, detail).with("field", field);
        let allowed_reasons = self
            .allowed_reasons
            .iter()
            .map(|r| RefundReason::parse(r).ok_or_else(|| invalid("allowed_reasons", format!("unknown reason {r}"))))
            .collect::<Result<Vec<_>, _>>()?;
        let other_cashier = OtherCashierRule::parse(&self.other_cashier).ok_or_else(|| {
            invalid("other_cashier", "other_cashier must be allow, require_approval or reject".into())
        })?;
        let policy = RefundPolicy {
            refund_window_days_card: self.refund_window_days_card,
            refund_window_days_wallet: self.refund_window_days_wallet,
            refund_window_days_cash: self.refund_window_days_cash,
            no_questions_days: self.no_questions_days,
            approval_above_minor: self.approval_above_minor,
            approval_above_share_bps: self.approval_above_share_bps,
            large_sale_minor: self.large_sale_minor,
            large_sale_approval_above_minor: self.large_sale_approval_above_minor,
            allowed_reasons,
            cash_refund_limit_minor: self.cash_refund_limit_minor,
            cashier_daily_limit_minor: self.cashier_daily_limit_minor,
            other_cashier,
        };
        policy.validate().map_err(|e| invalid(e.field, e.to_string()))?;
        Ok(policy)
    }
}

/// A policy in force: its version (0 is the built-in default) and where it
/// applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyInForce {
    pub version: i64,
    pub store_id: Option<StoreId>,
    pub policy: RefundPolicy,
    pub abuse: crate::abuse::AbuseDoc,
    pub created_at: Option<Timestamp>,
}

impl PolicyInForce {
    /// The whole document, abuse rules included.
    pub fn doc(&self) -> PolicyDoc {
        PolicyDoc { abuse: self.abuse.clone(), ..PolicyDoc::from(&self.policy) }
    }
}

pub(crate) fn in_force(tx: &mut dyn Tx, actor: &Actor, store: Option<StoreId>) -> Result<PolicyInForce, AppError> {
    match tx.current_policy(actor.merchant_id, store)? {
        None => Ok(PolicyInForce {
            version: 0,
            store_id: None,
            policy: RefundPolicy::default(),
            abuse: crate::abuse::AbuseDoc::default(),
            created_at: None,
        }),
        Some(record) => {
            let parsed = parse_stored(&record)?;
            Ok(PolicyInForce {
                version: record.version,
                store_id: record.store_id,
                abuse: parsed.1.clone(),
                policy: parsed.0.clone(),
                created_at: Some(record.created_at),
            })
        }
    }
}

type Parsed = Arc<(RefundPolicy, crate::abuse::AbuseDoc)>;

/// Stored policies parsed once, by their text: every refund asks for the
/// policy in force, a stored version never changes, and parsing it each
/// time was a few percent of the single writer's time. Keyed by the text
/// itself, so no stale entry can answer for a different document.
fn parse_stored(record: &PolicyRecord) -> Result<Parsed, AppError> {
    const KEPT: usize = 256;
    static PARSED: LazyLock<Mutex<HashMap<String, Parsed>>> = LazyLock::new(Mutex::default);
    let cached = PARSED.lock().ok().and_then(|kept| kept.get(&record.body).cloned());
    if let Some(parsed) = cached {
        return Ok(parsed);
    }
    let doc: PolicyDoc = serde_json::from_str(&record.body).map_err(|e| {
        AppError::new(ErrorCode::Internal, format!("stored policy {} is unreadable: {e}", record.version))
    })?;
    let abuse = doc.abuse.clone();
    let parsed = Arc::new((doc.into_policy()?, abuse));
    if let Ok(mut kept) = PARSED.lock() {
        if kept.len() >= KEPT {
            kept.clear();
        }
        kept.insert(record.body.clone(), Arc::clone(&parsed));
    }
    Ok(parsed)
}

/// The stored form of a decision: outcome and every reason in both languages.
pub fn decision_json(d: &Decision) -> String {
    // written straight from the decision, not through a `Value`: this is in
    // every refund's write; keys sorted, as a `Value` printed them
    #[derive(serde::Serialize)]
    struct Stored<'a> {
        outcome: &'static str,
        reasons: Vec<Reason<'a>>,
    }
    #[derive(serde::Serialize)]
    struct Reason<'a> {
        code: &'static str,
        en: &'a str,
        outcome: &'static str,
        zh: &'a str,
    }
    let reasons =
        d.reasons.iter().map(|r| Reason { code: r.code, en: &r.en, outcome: r.outcome.as_str(), zh: &r.zh }).collect();
    serde_json::to_string(&Stored { outcome: d.outcome.as_str(), reasons }).unwrap_or_default()
}

/// The business day (`YYYY-MM-DD` in the merchant's time zone) of an instant.
pub(crate) fn business_day(t: Timestamp, config: &crate::AppConfig) -> String {
    t.to_zoned(config.business_tz.clone()).date().to_string()
}

/// Keeps the requester's daily total in step with a refund that starts or
/// stops holding money (`sign` +1 or −1), on the day it was asked for.
pub(crate) fn hold_daily(
    tx: &mut dyn Tx,
    refund: &refundry_store::model::Refund,
    sign: i64,
    config: &crate::AppConfig,
) -> Result<(), AppError> {
    let day = business_day(refund.created_at, config);
    tx.add_daily_total(refund.merchant_id, &refund.requested_by, &day, sign * refund.amount.minor)?;
    Ok(())
}

/// A refund as the policy and the abuse rules are asked about it.
pub(crate) struct Asked<'a> {
    pub sale: &'a Sale,
    pub priors: &'a [PriorRefund],
    pub amount_minor: i64,
    pub reason: RefundReason,
    /// The token of the card presented for the refund, if any.
    pub refund_card_token: Option<&'a str>,
    /// The sale's store's people over the last weeks.
    pub cashiers: &'a [refundry_core::detect::CashierActivity],
}

/// Asks the policy in force at the sale's store about a refund by `actor`,
/// then its abuse rules: those set to hold add their reason to the
/// decision; those set to alert are returned to be recorded with the refund.
pub(crate) fn decide_refund(
    tx: &mut dyn Tx,
    actor: &Actor,
    asked: &Asked<'_>,
    config: &crate::AppConfig,
) -> Result<(i64, Decision, Vec<refundry_core::detect::AbuseSignal>), AppError> {
    let Asked { sale, priors, amount_minor, reason, refund_card_token, cashiers } = *asked;
    let now = crate::now();
    let policy = in_force(tx, actor, Some(sale.store_id))?;
    let day = business_day(now, config);
    let facts = ActorFacts {
        user: actor.person().map(|p| p.id.to_string()),
        refunded_today_minor: tx.daily_total(actor.merchant_id, &actor.identity(), &day)?,
    };
    let request =
        PolicyRequest { sale, sale_cashier: sale.cashier.as_deref(), priors, amount_minor, reason, actor: &facts, now };
    let mut decision = decide(&policy.policy, &request);
    let rules = policy.abuse.clone().into_rules(&config.business_tz)?;
    let ask = crate::abuse::Ask {
        sale,
        amount: refundry_core::money::Money::new(amount_minor, sale.amount.currency),
        refund_card_token,
        approval_limit_minor: policy.policy.approval_limit_minor(sale.amount.minor),
        cashiers,
    };
    let signals = crate::abuse::signals(tx, actor, &rules, &ask, config)?;
    crate::abuse::hold(&mut decision, &signals);
    let alerts = signals.into_iter().filter(|s| s.action == refundry_core::detect::AbuseAction::Alert).collect();
    Ok((policy.version, decision, alerts))
}

impl App {
    /// The policy in force for a store (or merchant-wide).
    pub async fn policy(&self, actor: &Actor, store: Option<StoreId>) -> Result<PolicyInForce, AppError> {
        let actor = actor.clone();
        refundry_store::read(&self.store, move |tx| in_force(tx, &actor, store)).await
    }

    /// Writes a new version of the merchant's (or a store's) policy; the
    /// audit event holds the rules before and after.
    pub async fn set_policy(
        &self,
        actor: &Actor,
        store: Option<StoreId>,
        doc: PolicyDoc,
    ) -> Result<PolicyInForce, AppError> {
        let policy = doc.clone().into_policy()?;
        let actor = actor.clone();
        refundry_store::write(&self.store, move |tx| {
            if let Some(store) = store
                && tx.find_store(actor.merchant_id, store)?.is_none()
            {
                return Err(
                    AppError::new(ErrorCode::UnknownStore, format!("no store {store}")).with("field", "store_id")
                );
            }
            let before = in_force(tx, &actor, store)?;
            let now = crate::now();
            let record = PolicyRecord {
                merchant_id: actor.merchant_id,
                version: tx.latest_policy_version(actor.merchant_id)? + 1,
                store_id: store,
                body: serde_json::to_string(&doc).map_err(|e| AppError::new(ErrorCode::Internal, e.to_string()))?,
                created_by: actor.identity(),
                created_at: now,
            };
            tx.insert_policy(&record)?;
            let data = serde_json::json!({
                "store_id": store.map(|s| s.to_string()),
                "version": record.version,
                "before": {"version": before.version, "rules": before.doc()},
                "after": doc,
            });
            audit::record(tx, &actor, "policy.changed", &format!("policy:{}", record.version), data, now)?;
            Ok(PolicyInForce {
                version: record.version,
                store_id: store,
                policy: policy.clone(),
                abuse: doc.abuse.clone(),
                created_at: Some(now),
            })
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use refundry_core::policy::{Decision, Outcome, PolicyReason};

    use super::decision_json;

    /// The stored text is what release builds wrote through a
    /// `serde_json::Value` before (keys sorted; a test build's features may
    /// keep insertion order instead), and reads back as that `Value`.
    #[test]
    fn a_decision_is_stored_as_its_value_printed() {
        let reason =
            |code, outcome, en: &str| PolicyReason { code, outcome, en: en.into(), zh: format!("「{en}」\n") };
        let decision = Decision {
            outcome: Outcome::RequiresApproval,
            reasons: vec![
                reason("over_amount", Outcome::RequiresApproval, "over \"500.00\""),
                reason("within_policy", Outcome::Approve, "ok"),
            ],
        };
        let stored = decision_json(&decision);
        assert_eq!(
            stored,
            r#"{"outcome":"requires_approval","reasons":[{"code":"over_amount","en":"over \"500.00\"","outcome":"requires_approval","zh":"「over \"500.00\"」\n"},{"code":"within_policy","en":"ok","outcome":"approve","zh":"「ok」\n"}]}"#
        );
        let value = serde_json::json!({
            "outcome": decision.outcome.as_str(),
            "reasons": decision.reasons.iter().map(|r| serde_json::json!({
                "code": r.code, "outcome": r.outcome.as_str(), "en": r.en, "zh": r.zh,
            })).collect::<Vec<_>>(),
        });
        assert_eq!(serde_json::from_str::<serde_json::Value>(&stored).unwrap(), value);
    }
}
