//! Correction cases (错收): a charge that was likely wrong — the same card
//! charged twice within minutes, an extra zero, a charge without an order —
//! found by the core's detectors after each sale, or opened by hand. A case
//! holds its evidence, the cause and the responsible party, and ends with a
//! void or refund made from it (through the normal refund path: policy,
//! idempotency, audit) or dismissed with a reason.
//!
//! The detectors run in an outbox job queued with the sale, not in the
//! sale's transaction: they read the card's recent sales and the store's
//! recent amounts, which the till should not wait for, and the job commits
//! with the sale so no sale escapes them. A job run twice opens nothing
//! twice: a sale has at most one case of each kind.

use hmac::{Hmac, Mac};
use refundry_core::detect::{
    CorrectionCause, DEFAULT_DUPLICATE_WINDOW_MINUTES, Finding, OutlierRules, SaleFacts, amount_outliers,
    duplicate_charges, missing_order,
};
use refundry_core::ids::{CorrectionId, MerchantId, SaleId};
use refundry_core::money::Money;
use refundry_core::refund::{RefundAsk, RefundReason};
use refundry_core::sale::{PaymentMethod, Sale};
use refundry_store::Tx;
use refundry_store::model::{CorrectionRecord, NewJob, Refund};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::idempotency::{self, Idempotency, Replay};
use crate::refunds::RefundRequest;
use crate::sales::Page;
use crate::{Actor, App, AppError, ErrorCode, audit};

pub const DETECT_WRONG_CHARGES: &str = "sale.detect_wrong_charges";

/// The kinds a case may have: the detectors' findings, or `other` by hand.
pub const KINDS: &[&str] = &["duplicate_charge", "extra_zero", "amount_outlier", "missing_order", "other"];

/// How many of the store's recent sales make its "usual".
const STORE_HISTORY: u32 = 500;

/// The key of the card fingerprint: a keyed HMAC-SHA256, so the stored
/// value says nothing about the card to whoever reads the database without
/// the key.
#[derive(Clone)]
pub struct FingerprintKey([u8; 32]);

impl std::fmt::Debug for FingerprintKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FingerprintKey(…)")
    }
}

impl FingerprintKey {
    pub fn new(key: [u8; 32]) -> FingerprintKey {
        FingerprintKey(key)
    }

    /// A random key that lives as long as the process (tests).
    pub fn random() -> FingerprintKey {
        FingerprintKey(rand::random())
    }

    /// Derived from an encryption key spec (`id:64 hex`), so an install
    /// that set no fingerprint key of its own still has a stable one.
    pub fn derived_from_spec(spec: &str) -> Option<FingerprintKey> {
        let hex_key = spec.split_once(':')?.1;
        let bytes = hex::decode(hex_key.trim()).ok()?;
        let mut mac = Hmac::<Sha256>::new_from_slice(&bytes).ok()?;
        mac.update(b"refundry card fingerprint v1");
        Some(FingerprintKey(mac.finalize().into_bytes().into()))
    }

    fn mac(&self, domain: &str, value: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(domain.as_bytes());
        mac.update(&[0]);
        mac.update(value.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// The fingerprint of an acquirer's card token.
    pub fn of_token(&self, token: &str) -> String {
        format!("t:{}", self.mac("token", token))
    }

    /// The fingerprint of a card sale: of the acquirer's card token when the
    /// terminal sends one, else of first 6 + last 4 (weaker: ten thousand
    /// cards of one BIN share it, so it only narrows, never proves).
    pub fn of_sale(&self, method: &PaymentMethod, card_token: Option<&str>) -> Option<String> {
        let PaymentMethod::Card { first6, last4, .. } = method else { return None };
        Some(match card_token {
            Some(token) => self.of_token(token),
            None => format!("b:{}", self.mac("first6last4", &format!("{}{}", first6.as_str(), last4.as_str()))),
        })
    }
}

/// How the wrong-charge detectors run.
#[derive(Debug, Clone)]
pub struct CorrectionConfig {
    pub fingerprint_key: FingerprintKey,
    /// The same card and amount within this many minutes is a duplicate.
    pub duplicate_window_minutes: u32,
    pub outliers: OutlierRules,
    /// The merchant's till sends an order reference with every sale, so a
    /// sale without one is suspect. Off unless set.
    pub orders_expected: bool,
}

impl Default for CorrectionConfig {
    fn default() -> Self {
        CorrectionConfig {
            fingerprint_key: FingerprintKey::random(),
            duplicate_window_minutes: DEFAULT_DUPLICATE_WINDOW_MINUTES,
            outliers: OutlierRules::default(),
            orders_expected: false,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct DetectJob {
    merchant_id: String,
    sale_id: String,
}

/// Called in the sale's transaction: keeps what the detectors need and
/// queues them.
pub(crate) fn after_sale(
    tx: &mut dyn Tx,
    sale: &Sale,
    fingerprint: Option<&str>,
    order_ref: Option<&str>,
) -> Result<(), AppError> {
    if fingerprint.is_some() || order_ref.is_some() {
        tx.insert_sale_signals(sale.merchant_id, sale.id, fingerprint, order_ref, sale.captured_at)?;
    }
    let payload =
        serde_json::to_string(&DetectJob { merchant_id: sale.merchant_id.to_string(), sale_id: sale.id.to_string() })
            .map_err(|e| AppError::new(ErrorCode::Internal, format!("cannot encode job: {e}")))?;
    tx.enqueue(&NewJob {
        merchant_id: Some(sale.merchant_id),
        kind: DETECT_WRONG_CHARGES.to_owned(),
        payload,
        run_after: sale.created_at,
    })?;
    Ok(())
}

fn evidence_json(f: &Finding) -> serde_json::Value {
    let e = &f.evidence;
    serde_json::json!({
        "sale_ids": e.sale_ids.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        "amounts": e.amounts.iter().map(|m| m.minor).collect::<Vec<_>>(),
        "minutes_apart": e.minutes_apart, "seconds_apart": e.seconds_apart,
        "store_median": e.store_median.map(|m| m.minor), "store_p99": e.store_p99.map(|m| m.minor),
        "factor": e.factor, "intended": e.intended.map(|m| m.minor),
    })
}

/// Runs the detectors over one sale: the cases their findings would open.
fn detect(
    tx: &mut dyn Tx,
    config: &CorrectionConfig,
    merchant: MerchantId,
    id: SaleId,
) -> Result<Vec<CorrectionRecord>, AppError> {
    let Some(sale) = tx.find_sale(merchant, id)? else { return Ok(Vec::new()) };
    let (fingerprint, order_ref) = tx.sale_signals(merchant, id)?.unwrap_or((None, None));
    let facts = SaleFacts::of(&sale, fingerprint.clone(), None);
    let mut findings = Vec::new();
    if let Some(fp) = &fingerprint {
        let window = jiff::SignedDuration::from_mins(i64::from(config.duplicate_window_minutes));
        let from = sale.captured_at.checked_sub(window).unwrap_or(sale.captured_at);
        let to = sale.captured_at.checked_add(window).unwrap_or(sale.captured_at);
        let same_card: Vec<SaleFacts> = tx
            .sales_with_fingerprint(merchant, fp, from, to)?
            .iter()
            .map(|s| SaleFacts::of(s, Some(fp.clone()), None))
            .collect();
        findings.extend(
            duplicate_charges(&same_card, config.duplicate_window_minutes)
                .into_iter()
                .filter(|f| f.evidence.sale_ids.contains(&id)),
        );
    }
    let history = tx.store_sale_amounts(merchant, sale.store_id, sale.id, STORE_HISTORY)?;
    findings.extend(amount_outliers(&history, &facts, &config.outliers));
    findings.extend(missing_order(&facts, config.orders_expected, order_ref.is_some()));
    let mut cases = Vec::new();
    for finding in findings {
        let Some(&suspect) = finding.evidence.sale_ids.last() else { continue };
        let store = if suspect == sale.id {
            sale.store_id
        } else {
            tx.find_sale(merchant, suspect)?.map_or(sale.store_id, |s| s.store_id)
        };
        let now = crate::now();
        let record = CorrectionRecord {
            id: CorrectionId::generate(),
            merchant_id: merchant,
            store_id: store,
            sale_id: suspect,
            kind: finding.kind.as_str().to_owned(),
            evidence: evidence_json(&finding).to_string(),
            cause: finding.cause.as_str().to_owned(),
            responsible_party: None,
            status: "open".to_owned(),
            refund_id: None,
            resolution_note: None,
            opened_by: "system:wrong-charge-watch".to_owned(),
            summary_zh: finding.zh.clone(),
            summary_en: finding.en.clone(),
            opened_at: now,
            updated_at: now,
        };
        cases.push(record);
    }
    Ok(cases)
}

/// Inserts the case with its audit event; false when the sale already has
/// one of that kind.
fn open_case(tx: &mut dyn Tx, actor: &Actor, record: &CorrectionRecord) -> Result<bool, AppError> {
    if !tx.insert_correction(record)? {
        return Ok(false);
    }
    let data = serde_json::json!({
        "sale_id": record.sale_id.to_string(), "kind": record.kind, "cause": record.cause,
        "responsible_party": record.responsible_party,
        "evidence": serde_json::from_str::<serde_json::Value>(&record.evidence).unwrap_or_default(),
        "zh": record.summary_zh, "en": record.summary_en, "after": {"status": "open"},
    });
    audit::record(tx, actor, "correction.opened", &record.id.to_string(), data, record.opened_at)?;
    Ok(true)
}

/// Runs the detector job queued with a sale.
pub(crate) async fn run_detect_job(app: &App, job: &refundry_store::model::Job) -> Result<(), AppError> {
    let parsed: DetectJob = serde_json::from_str(&job.payload)
        .map_err(|e| AppError::new(ErrorCode::Internal, format!("bad detector job: {e}")))?;
    let bad = |_| AppError::new(ErrorCode::Internal, "bad id in detector job");
    let merchant = MerchantId::parse(&parsed.merchant_id).map_err(bad)?;
    let sale = SaleId::parse(&parsed.sale_id).map_err(bad)?;
    let config = app.config.clone();
    let id = job.id;
    // the reads run on a snapshot, off the writer; most sales find nothing
    // and then only the job is marked done
    let cases = refundry_store::read(&app.store, move |tx| detect(tx, &config.corrections, merchant, sale)).await?;
    refundry_store::write(&app.store, move |tx| {
        let mut opened = 0;
        if !cases.is_empty() {
            for case in &cases {
                opened += usize::from(open_case(tx, &Actor::system(merchant, "wrong-charge-watch"), case)?);
            }
        }
        if opened > 0 {
            tracing::info!(sale = %sale, opened, "wrong-charge detectors opened correction cases");
        }
        tx.complete_job(id, crate::now())?;
        Ok(())
    })
    .await
}

fn not_found(id: CorrectionId) -> AppError {
    AppError::new(ErrorCode::CorrectionNotFound, format!("no correction case {id}"))
}

fn open_only(record: &CorrectionRecord) -> Result<(), AppError> {
    if record.status != "open" {
        return Err(AppError::new(
            ErrorCode::CorrectionNotOpen,
            format!("the case is {}; only an open case can be refunded or dismissed", record.status),
        )
        .with("correction_status", record.status.clone()));
    }
    Ok(())
}

fn parse_cause(cause: &str) -> Result<CorrectionCause, AppError> {
    CorrectionCause::parse(cause).ok_or_else(|| {
        AppError::validation("cause", "cause must be operator_error, system_fault, transmission_error or other")
    })
}

fn check_text(field: &str, text: Option<&String>, max: usize) -> Result<(), AppError> {
    if let Some(text) = text {
        if text.chars().count() > max {
            return Err(AppError::validation(field, format!("{field} must be at most {max} characters")));
        }
        if refundry_core::card::contains_card_number(text) {
            return Err(AppError::new(ErrorCode::SensitiveCardData, format!("{field} holds a full card number"))
                .with("field", field.to_owned()));
        }
    }
    Ok(())
}

/// A case opened by hand.
#[derive(Debug, Clone)]
pub struct NewCorrection {
    pub sale_id: SaleId,
    /// One of [`KINDS`].
    pub kind: String,
    pub cause: String,
    pub responsible_party: Option<String>,
    pub note: Option<String>,
}

/// How a case ends with money back.
#[derive(Debug, Clone)]
pub struct CorrectionRefund {
    /// What to give back; by default the whole duplicate charge, or what
    /// an extra zero added.
    pub amount_minor: Option<i64>,
    pub note: Option<String>,
    pub cause: Option<String>,
    pub responsible_party: Option<String>,
}

/// The amount a case gives back when the caller names none.
fn default_amount(record: &CorrectionRecord, sale: &Sale) -> Option<i64> {
    let evidence: serde_json::Value = serde_json::from_str(&record.evidence).ok()?;
    match record.kind.as_str() {
        "duplicate_charge" => Some(sale.amount.minor),
        "extra_zero" => evidence["intended"].as_i64().map(|intended| sale.amount.minor - intended),
        _ => None,
    }
}

impl App {
    /// Opens a case by hand (or answers with the sale's case of that kind).
    pub async fn open_correction(&self, actor: &Actor, new: NewCorrection) -> Result<CorrectionRecord, AppError> {
        if !KINDS.contains(&new.kind.as_str()) {
            return Err(AppError::validation(
                "kind",
                "kind must be duplicate_charge, extra_zero, amount_outlier, missing_order or other",
            ));
        }
        let cause = parse_cause(&new.cause)?;
        check_text("note", new.note.as_ref(), 500)?;
        check_text("responsible_party", new.responsible_party.as_ref(), 100)?;
        let actor = actor.clone();
        refundry_store::write(&self.store, move |tx| {
            let sale = tx.find_sale(actor.merchant_id, new.sale_id)?;
            let sale = crate::sales::visible_sale(&actor, sale, new.sale_id)?;
            if let Some(existing) = tx.find_correction_of_sale(actor.merchant_id, sale.id, &new.kind)? {
                return Ok(existing);
            }
            let now = crate::now();
            let note = new.note.clone().unwrap_or_default();
            let record = CorrectionRecord {
                id: CorrectionId::generate(),
                merchant_id: actor.merchant_id,
                store_id: sale.store_id,
                sale_id: sale.id,
                kind: new.kind.clone(),
                evidence: serde_json::json!({"sale_ids": [sale.id.to_string()], "amounts": [sale.amount.minor],
                    "note": new.note})
                .to_string(),
                cause: cause.as_str().to_owned(),
                responsible_party: new.responsible_party.clone(),
                status: "open".to_owned(),
                refund_id: None,
                resolution_note: None,
                opened_by: actor.identity(),
                summary_zh: format!("人工登记的错收：{note}"),
                summary_en: format!("Wrong charge reported by hand: {note}"),
                opened_at: now,
                updated_at: now,
            };
            open_case(tx, &actor, &record)?;
            Ok(record)
        })
        .await
    }

    pub async fn correction(&self, actor: &Actor, id: CorrectionId) -> Result<CorrectionRecord, AppError> {
        let actor = actor.clone();
        refundry_store::read(&self.store, move |tx| visible(tx, &actor, id)).await
    }

    /// Newest first, of one status (open, refunded, dismissed) or all.
    pub async fn corrections(
        &self,
        actor: &Actor,
        status: Option<String>,
        starting_after: Option<CorrectionId>,
        limit: u32,
    ) -> Result<Page<CorrectionRecord>, AppError> {
        let (merchant, limit) = (actor.merchant_id, limit.clamp(1, crate::sales::MAX_PAGE));
        let pin = actor.store_pin;
        refundry_store::read(&self.store, move |tx| {
            let rows = tx.list_corrections(merchant, status.as_deref(), starting_after, limit + 1)?;
            let rows = rows.into_iter().filter(|c| pin.is_none_or(|p| p == c.store_id)).collect();
            Ok(Page::of(rows, limit))
        })
        .await
    }

    /// Gives the money back from the case: a void or refund through the
    /// normal refund path (the policy decides, the request is idempotent,
    /// both are audited), and the case is closed as `refunded` in the same
    /// transaction.
    pub async fn refund_correction(
        &self,
        actor: &Actor,
        id: CorrectionId,
        ask: CorrectionRefund,
        idem: Option<Idempotency<(CorrectionRecord, Refund)>>,
    ) -> Result<Replay<(CorrectionRecord, Refund)>, AppError> {
        check_text("note", ask.note.as_ref(), crate::refunds::MAX_NOTE_CHARS)?;
        check_text("responsible_party", ask.responsible_party.as_ref(), 100)?;
        let cause = ask.cause.as_deref().map(parse_cause).transpose()?;
        let (actor, config, activity) = (actor.clone(), self.config.clone(), self.cashier_activity.snapshot());
        let endpoint = "POST /v1/corrections/{id}/refund";
        let answer = refundry_store::write(&self.store, move |tx| {
            idempotency::once(tx, actor.merchant_id, endpoint, idem.as_ref(), |tx| {
                // the case's sale row first: two resolutions of one case take
                // turns, and the second sees what the first did
                let sale_of_case = visible(tx, &actor, id)?.sale_id;
                tx.lock_sale(actor.merchant_id, sale_of_case)?;
                let mut record = visible(tx, &actor, id)?;
                if !refund_came_to_nothing(tx, &record)? {
                    open_only(&record)?;
                }
                let sale = tx.find_sale(actor.merchant_id, record.sale_id)?.ok_or_else(|| not_found(id))?;
                let amount = ask.amount_minor.or_else(|| default_amount(&record, &sale)).ok_or_else(|| {
                    AppError::validation(
                        "amount",
                        "say how much to give back: this kind of case has no amount of its own",
                    )
                })?;
                Money::positive(amount, sale.amount.currency).map_err(|e| AppError::from_amount("amount", e))?;
                let reason =
                    if record.kind == "duplicate_charge" { RefundReason::Duplicate } else { RefundReason::WrongCharge };
                let request = RefundRequest {
                    sale_id: sale.id,
                    ask: RefundAsk::Amount(amount),
                    reason,
                    note: Some(ask.note.clone().unwrap_or_else(|| format!("correction {id}"))),
                    customer: None,
                    card_token: None,
                };
                let refund = crate::refunds::request_refund_tx(tx, &actor, &request, &config, &activity)?;
                let before = record.status.clone();
                record.status = "refunded".to_owned();
                record.refund_id = Some(refund.id);
                record.resolution_note = ask.note.clone();
                if let Some(cause) = cause {
                    record.cause = cause.as_str().to_owned();
                }
                if ask.responsible_party.is_some() {
                    record.responsible_party = ask.responsible_party.clone();
                }
                record.updated_at = refund.created_at;
                tx.update_correction(&record)?;
                let data = serde_json::json!({
                    "refund_id": refund.id.to_string(), "refund_type": refund.refund_type.as_str(), "amount": amount,
                    "refund_status": refund.status.as_str(), "cause": record.cause,
                    "responsible_party": record.responsible_party,
                    "before": {"status": before}, "after": {"status": record.status},
                });
                audit::record(tx, &actor, "correction.refunded", &record.id.to_string(), data, record.updated_at)?;
                Ok((record, refund))
            })
        })
        .await?;
        crate::idempotency::count_replay(&answer);
        if let Replay::Fresh((_, refund)) = &answer {
            crate::refunds::settled_now(refund);
            self.jobs_waiting.notify_one();
        }
        Ok(answer)
    }

    /// Closes the case without money back, saying why.
    pub async fn dismiss_correction(
        &self,
        actor: &Actor,
        id: CorrectionId,
        reason: String,
    ) -> Result<CorrectionRecord, AppError> {
        if reason.trim().is_empty() {
            return Err(AppError::validation("reason", "say why the case is dismissed"));
        }
        check_text("reason", Some(&reason), 500)?;
        let actor = actor.clone();
        refundry_store::write(&self.store, move |tx| {
            // the case's sale row first: two resolutions of one case take
            // turns, and the second sees what the first did
            let sale_of_case = visible(tx, &actor, id)?.sale_id;
            tx.lock_sale(actor.merchant_id, sale_of_case)?;
            let mut record = visible(tx, &actor, id)?;
            open_only(&record)?;
            record.status = "dismissed".to_owned();
            record.resolution_note = Some(reason.clone());
            record.updated_at = crate::now();
            tx.update_correction(&record)?;
            let data =
                serde_json::json!({"reason": reason, "before": {"status": "open"}, "after": {"status": "dismissed"}});
            audit::record(tx, &actor, "correction.dismissed", &record.id.to_string(), data, record.updated_at)?;
            Ok(record)
        })
        .await
    }
}

/// The case's refund was turned down by a supervisor, expired waiting for
/// one, or was canceled: no money went back, so the case may be refunded
/// again. (A failed refund is retried as itself, not replaced.)
fn refund_came_to_nothing(tx: &mut dyn Tx, record: &CorrectionRecord) -> Result<bool, AppError> {
    use refundry_core::refund::RefundStatus;
    let Some(refund) = record.refund_id.filter(|_| record.status == "refunded") else { return Ok(false) };
    Ok(tx
        .find_refund(record.merchant_id, refund)?
        .is_some_and(|r| matches!(r.status, RefundStatus::Rejected | RefundStatus::Expired | RefundStatus::Canceled)))
}

/// The case, if the actor may see its sale's store.
fn visible(tx: &mut dyn Tx, actor: &Actor, id: CorrectionId) -> Result<CorrectionRecord, AppError> {
    tx.find_correction(actor.merchant_id, id)?
        .filter(|c| actor.store_pin.is_none_or(|pin| pin == c.store_id))
        .ok_or_else(|| not_found(id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use refundry_core::card::{First6, Last4};
    use refundry_core::sale::{CardBrand, EntryMode};

    fn card(first6: &str, last4: &str) -> PaymentMethod {
        PaymentMethod::Card {
            brand: CardBrand::UnionPay,
            first6: First6::parse(first6).unwrap(),
            last4: Last4::parse(last4).unwrap(),
            entry_mode: EntryMode::Chip,
        }
    }

    #[test]
    fn fingerprints_are_keyed_and_never_hold_the_token() {
        let (a, b) = (FingerprintKey::new([1; 32]), FingerprintKey::new([2; 32]));
        let method = card("622202", "1234");
        let fp = a.of_sale(&method, Some("tok_abc")).unwrap();
        assert_eq!(fp, a.of_sale(&method, Some("tok_abc")).unwrap(), "stable");
        assert_ne!(fp, b.of_sale(&method, Some("tok_abc")).unwrap(), "another key, another fingerprint");
        assert_ne!(fp, a.of_sale(&method, Some("tok_abd")).unwrap());
        assert!(!fp.contains("tok_abc"));
        let weak = a.of_sale(&method, None).unwrap();
        assert!(weak.starts_with("b:") && fp.starts_with("t:"), "the two kinds never match each other");
        assert_eq!(a.of_sale(&PaymentMethod::Cash, Some("tok_abc")), None);
    }

    #[test]
    fn a_derived_key_is_stable_and_depends_on_the_spec() {
        let spec = format!("k1:{}", "ab".repeat(32));
        let other = format!("k1:{}", "cd".repeat(32));
        let method = card("622202", "1234");
        let fp = |s: &str| FingerprintKey::derived_from_spec(s).unwrap().of_sale(&method, None);
        assert_eq!(fp(&spec), fp(&spec));
        assert_ne!(fp(&spec), fp(&other));
        assert!(FingerprintKey::derived_from_spec("nonsense").is_none());
    }
}
