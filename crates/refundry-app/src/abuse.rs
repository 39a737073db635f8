//! Refund-abuse rules in the refund path: the core's `evaluate_abuse` over
//! the request, its sale and the requester's recent refunds. A rule set to
//! `hold_for_approval` adds its reason to the policy's decision (the refund
//! waits for a supervisor); one set to `alert` lets the refund through and
//! records `refund.abuse_alert` (audited, so a webhook).
//!
//! The rules are part of the versioned policy document (`abuse`), so a
//! refund keeps the rules it was decided under. The requester's history is
//! one indexed query, made only when a rule that needs it is on.
//!
//! `cashier_rate_outlier` compares each person's refunds per sale with
//! their peers' over the last 30 days. Counting that per request would put
//! an aggregate over the store's sales on the hot path, so the counts are
//! taken by the maintenance tick (every 5 minutes at most, per instance)
//! and held in memory: the refund path reads a snapshot, no query.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use jiff::civil::Time;
use refundry_core::detect::{
    AbuseAction, AbuseFacts, AbuseRules, AbuseSignal, CashierActivity, CashierRateRule, JustUnderLimitRule,
    OpeningHoursRule, PastRefund, QuickRefundRule, RefundAttempt, evaluate_abuse,
};
use refundry_core::ids::{MerchantId, StoreId};
use refundry_core::money::Money;
use refundry_core::policy::{Decision, Outcome, PolicyReason};
use refundry_core::sale::Sale;
use refundry_store::Tx;
use serde::{Deserialize, Serialize};

use crate::{Actor, AppError, ErrorCode};

/// The most recent refunds of the requester the history rules look at.
const HISTORY_LIMIT: u32 = 200;

/// The rules as the policy document holds them; a rule left out (or
/// `null`) is off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AbuseDoc {
    /// `alert` or `hold_for_approval`: the money would go to a card other
    /// than the one that paid.
    pub refund_to_other_card: Option<String>,
    pub just_under_limit: Option<JustUnderLimitDoc>,
    pub quick_refund_by_same_cashier: Option<QuickRefundDoc>,
    pub outside_opening_hours: Option<OpeningHoursDoc>,
    pub cashier_rate_outlier: Option<CashierRateDoc>,
}

/// Over the last 30 days, in the sale's store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CashierRateDoc {
    pub multiple_of_median: u32,
    pub min_refunds: u64,
    pub min_peers: usize,
    pub action: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JustUnderLimitDoc {
    pub min_count: u32,
    pub days: u32,
    pub within_percent: u32,
    pub action: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuickRefundDoc {
    pub minutes: u32,
    pub action: String,
}

/// Local times `HH:MM` in the business time zone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpeningHoursDoc {
    pub open: String,
    pub close: String,
    pub action: String,
}

impl Default for AbuseDoc {
    /// The core's defaults, less the rule not wired here.
    fn default() -> Self {
        let rules = AbuseRules::default();
        AbuseDoc {
            refund_to_other_card: rules.refund_to_other_card.map(|a| a.as_str().to_owned()),
            just_under_limit: rules.just_under_limit.map(|r| JustUnderLimitDoc {
                min_count: r.min_count,
                days: r.days,
                within_percent: r.within_percent,
                action: r.action.as_str().to_owned(),
            }),
            quick_refund_by_same_cashier: rules
                .quick_refund_by_same_cashier
                .map(|r| QuickRefundDoc { minutes: r.minutes, action: r.action.as_str().to_owned() }),
            outside_opening_hours: None,
            cashier_rate_outlier: rules.cashier_rate_outlier.map(|r| CashierRateDoc {
                multiple_of_median: r.multiple_of_median,
                min_refunds: r.min_refunds,
                min_peers: r.min_peers,
                action: r.action.as_str().to_owned(),
            }),
        }
    }
}

fn invalid(field: &str, detail: &str) -> AppError {
    AppError::new(ErrorCode::InvalidPolicy, detail.to_owned()).with("field", field.to_owned())
}

fn action(field: &str, text: &str) -> Result<AbuseAction, AppError> {
    AbuseAction::parse(text).ok_or_else(|| invalid(field, &format!("{field} must be alert or hold_for_approval")))
}

impl AbuseDoc {
    /// Parses and checks the rules; the error names the field.
    pub fn into_rules(self, time_zone: &jiff::tz::TimeZone) -> Result<AbuseRules, AppError> {
        let refund_to_other_card =
            self.refund_to_other_card.as_deref().map(|a| action("abuse.refund_to_other_card", a)).transpose()?;
        let just_under_limit = self
            .just_under_limit
            .map(|r| {
                if r.min_count < 2 || r.days == 0 || r.days > 90 || r.within_percent == 0 || r.within_percent > 50 {
                    return Err(invalid(
                        "abuse.just_under_limit",
                        "min_count must be at least 2, days 1 to 90, within_percent 1 to 50",
                    ));
                }
                Ok(JustUnderLimitRule {
                    min_count: r.min_count,
                    days: r.days,
                    within_percent: r.within_percent,
                    action: action("abuse.just_under_limit.action", &r.action)?,
                })
            })
            .transpose()?;
        let quick_refund_by_same_cashier = self
            .quick_refund_by_same_cashier
            .map(|r| {
                if r.minutes == 0 || r.minutes > 24 * 60 {
                    return Err(invalid("abuse.quick_refund_by_same_cashier", "minutes must be 1 to 1440"));
                }
                Ok(QuickRefundRule {
                    minutes: r.minutes,
                    action: action("abuse.quick_refund_by_same_cashier.action", &r.action)?,
                })
            })
            .transpose()?;
        let outside_opening_hours = self
            .outside_opening_hours
            .map(|r| {
                let time = |field: &str, text: &str| {
                    text.parse::<Time>().map_err(|_| invalid(field, &format!("{field} must be a time like 09:00")))
                };
                Ok::<_, AppError>(OpeningHoursRule {
                    open: time("abuse.outside_opening_hours.open", &r.open)?,
                    close: time("abuse.outside_opening_hours.close", &r.close)?,
                    time_zone: time_zone.clone(),
                    action: action("abuse.outside_opening_hours.action", &r.action)?,
                })
            })
            .transpose()?;
        let cashier_rate_outlier = self
            .cashier_rate_outlier
            .map(|r| {
                if r.multiple_of_median < 2 || r.min_refunds == 0 || r.min_peers == 0 {
                    return Err(invalid(
                        "abuse.cashier_rate_outlier",
                        "multiple_of_median must be at least 2, min_refunds and min_peers at least 1",
                    ));
                }
                Ok(CashierRateRule {
                    multiple_of_median: r.multiple_of_median,
                    min_refunds: r.min_refunds,
                    min_peers: r.min_peers,
                    action: action("abuse.cashier_rate_outlier.action", &r.action)?,
                })
            })
            .transpose()?;
        Ok(AbuseRules {
            refund_to_other_card,
            just_under_limit,
            cashier_rate_outlier,
            quick_refund_by_same_cashier,
            outside_opening_hours,
        })
    }
}

/// The request as the abuse rules see it.
pub(crate) struct Ask<'a> {
    pub sale: &'a Sale,
    pub amount: Money,
    /// The token of the card presented for the refund, if any.
    pub refund_card_token: Option<&'a str>,
    pub approval_limit_minor: i64,
    /// The store's people over the last 30 days, from the snapshot.
    pub cashiers: &'a [CashierActivity],
}

/// Runs the rules that are on; reads the requester's recent refunds only
/// when a rule needs them.
pub(crate) fn signals(
    tx: &mut dyn Tx,
    actor: &Actor,
    rules: &AbuseRules,
    ask: &Ask<'_>,
    config: &crate::AppConfig,
) -> Result<Vec<AbuseSignal>, AppError> {
    let now = crate::now();
    // the sale's cashier is a user id; so is the requester when a person asks
    let who = actor.person().map(|p| p.id.to_string()).unwrap_or_else(|| actor.identity());
    let fingerprints = &config.corrections.fingerprint_key;
    // only a card presented for the refund can be another card: without
    // one the money goes back the way it came, and nothing is read
    let (sale_card_fingerprint, refund_card_fingerprint) = match (rules.refund_to_other_card, ask.refund_card_token) {
        (Some(_), Some(token)) if ask.sale.payment_method.is_card() => {
            match tx.sale_signals(ask.sale.merchant_id, ask.sale.id)?.and_then(|(fp, _)| fp) {
                Some(fp) if fp.starts_with("t:") => (Some(fp), Some(fingerprints.of_token(token))),
                // the sale's card token is unknown (first 6 + last 4 only):
                // a token cannot be compared with it, so nothing is said
                _ => (None, None),
            }
        }
        (Some(_), Some(token)) => (None, Some(fingerprints.of_token(token))),
        _ => (None, None),
    };
    // the history matters only when this refund is itself just under the limit
    let near_limit = rules.just_under_limit.is_some_and(|r| {
        let floor = i128::from(ask.approval_limit_minor) * i128::from(100u32.saturating_sub(r.within_percent));
        ask.amount.minor <= ask.approval_limit_minor && i128::from(ask.amount.minor) * 100 >= floor
    });
    let history: Vec<PastRefund> = match near_limit {
        true => {
            let query = refundry_store::model::RefundQuery {
                requested_by: Some(actor.identity()),
                limit: HISTORY_LIMIT,
                ..Default::default()
            };
            tx.list_refunds(actor.merchant_id, &query)?
        }
        .into_iter()
        .map(|r| PastRefund {
            refund_id: r.id,
            sale_id: r.sale_id,
            amount: r.amount,
            requested_by: who.clone(),
            requested_at: r.created_at,
            // the limit in force now: earlier refunds were held to it or a stricter one
            approval_limit_minor: ask.approval_limit_minor,
        })
        .collect(),
        false => Vec::new(),
    };
    let request = RefundAttempt {
        refund_id: None,
        sale_id: ask.sale.id,
        amount: ask.amount,
        requested_by: who,
        requested_at: now,
        approval_limit_minor: ask.approval_limit_minor,
        refund_card_fingerprint,
        sale_card_fingerprint,
        sale_cashier: ask.sale.cashier.clone(),
        sale_captured_at: ask.sale.captured_at,
    };
    Ok(evaluate_abuse(rules, &AbuseFacts { request: &request, history: &history, cashiers: ask.cashiers }))
}

/// Adds the signals that hold the refund to the decision's reasons.
pub(crate) fn hold(decision: &mut Decision, signals: &[AbuseSignal]) {
    for s in signals.iter().filter(|s| s.action == AbuseAction::HoldForApproval) {
        decision.reasons.retain(|r| r.code != refundry_core::policy::codes::WITHIN_POLICY);
        decision.reasons.push(PolicyReason {
            code: s.code,
            outcome: Outcome::RequiresApproval,
            en: s.en.clone(),
            zh: s.zh.clone(),
        });
        decision.outcome = decision.outcome.max(Outcome::RequiresApproval);
    }
}

/// The audit record of a signal that only alerts.
pub(crate) fn alert_data(refund: &refundry_store::model::Refund, s: &AbuseSignal) -> serde_json::Value {
    serde_json::json!({
        "refund_id": refund.id.to_string(), "sale_id": refund.sale_id.to_string(), "code": s.code,
        "action": s.action.as_str(), "en": s.en, "zh": s.zh,
        "evidence": {
            "refund_ids": s.evidence.refund_ids.iter().map(|r| r.to_string()).collect::<Vec<_>>(),
            "figures": s.evidence.figures.iter().map(|(k, v)| serde_json::json!({"name": k, "value": v})).collect::<Vec<_>>(),
        },
    })
}

/// Days of activity the cashier comparison looks at.
pub const ACTIVITY_DAYS: i64 = 30;

/// How often the maintenance tick recounts the activity.
const ACTIVITY_REFRESH: Duration = Duration::from_secs(300);

/// Each merchant's people per store: sales rung up and refunds asked for.
pub type ActivitySnapshot = Arc<HashMap<MerchantId, HashMap<StoreId, Vec<CashierActivity>>>>;

/// The snapshot the refund path reads, swapped whole by each recount.
#[derive(Debug, Default)]
pub struct ActivityCache {
    snapshot: RwLock<ActivitySnapshot>,
    counted_at: Mutex<Option<Instant>>,
}

impl ActivityCache {
    pub fn snapshot(&self) -> ActivitySnapshot {
        self.snapshot.read().map(|s| Arc::clone(&s)).unwrap_or_default()
    }

    fn replace(&self, next: ActivitySnapshot) {
        if let Ok(mut s) = self.snapshot.write() {
            *s = next;
        }
    }

    /// True (and the clock reset) when a recount is due.
    fn due(&self) -> bool {
        let Ok(mut at) = self.counted_at.lock() else { return false };
        if at.is_some_and(|t| t.elapsed() < ACTIVITY_REFRESH) {
            return false;
        }
        *at = Some(Instant::now());
        true
    }
}

/// The people of one store in a snapshot.
pub(crate) fn cashiers_of(snapshot: &ActivitySnapshot, merchant: MerchantId, store: StoreId) -> &[CashierActivity] {
    snapshot.get(&merchant).and_then(|stores| stores.get(&store)).map_or(&[], Vec::as_slice)
}

impl crate::App {
    /// Recounts every merchant's activity per store and person over the
    /// last 30 days up to `now`.
    pub async fn count_cashier_activity(&self, now: jiff::Timestamp) -> Result<(), AppError> {
        let from = now.checked_sub(jiff::SignedDuration::from_hours(24 * ACTIVITY_DAYS)).unwrap_or(now);
        let counted = refundry_store::read(&self.store, move |tx| {
            let mut all: HashMap<MerchantId, HashMap<StoreId, Vec<CashierActivity>>> = HashMap::new();
            for merchant in tx.all_merchants()? {
                let stores = all.entry(merchant.id).or_default();
                for (store, cashier, sales_count, refunds_count) in tx.cashier_activity(merchant.id, from, now)? {
                    stores.entry(store).or_default().push(CashierActivity { cashier, sales_count, refunds_count });
                }
            }
            Ok::<_, AppError>(all)
        })
        .await?;
        self.cashier_activity.replace(Arc::new(counted));
        Ok(())
    }

    /// The recount of the maintenance tick, at most every 5 minutes.
    pub(crate) async fn count_cashier_activity_if_due(&self) -> Result<(), AppError> {
        if self.cashier_activity.due() { self.count_cashier_activity(crate::now()).await } else { Ok(()) }
    }
}
