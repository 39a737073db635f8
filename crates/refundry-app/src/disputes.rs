//! Chargebacks and retrieval requests (退单/拒付, 调单) from the acquirer:
//! opened against a sale, moved through the core's state machine, and held
//! against the sale: while a case is open the sale cannot be refunded (no
//! double loss), and a lost or accepted case counts like a refund.

use jiff::Timestamp;
use refundry_core::dispute::{
    DisputeEvent, DisputeStage, DisputeState, DisputeStatus, Network, PriorDispute, RefundRecord, categorize,
    refund_as_evidence,
};
use refundry_core::ids::{DisputeId, SaleId};
use refundry_core::money::Money;
use refundry_store::model::DisputeRecord;

use crate::sales::{Page, visible_sale};
use crate::{Actor, App, AppError, ErrorCode, audit};

/// A case as the acquirer reports it.
#[derive(Debug, Clone)]
pub struct NewDispute {
    pub sale_id: SaleId,
    /// The acquirer's case number: importing the same case again changes nothing.
    pub case_ref: String,
    pub network: Network,
    pub reason_code: String,
    /// `retrieval_request` (调单) or `chargeback`.
    pub stage: DisputeStage,
    pub amount_minor: i64,
    pub due_by: Timestamp,
    pub note: Option<String>,
}

pub(crate) fn state_of(d: &DisputeRecord) -> Result<DisputeState, AppError> {
    let corrupt = || AppError::new(ErrorCode::Internal, format!("dispute {} has an unknown state", d.id));
    let stage = DisputeStage::parse(&d.stage).ok_or_else(corrupt)?;
    let status = DisputeStatus::parse(&d.status).ok_or_else(corrupt)?;
    DisputeState::new(stage, status).ok_or_else(corrupt)
}

pub(crate) fn network_of(d: &DisputeRecord) -> Network {
    Network::parse(&d.network).unwrap_or(Network::Other)
}

/// The sale's cases as the refund arithmetic sees them.
pub(crate) fn priors(disputes: &[DisputeRecord]) -> Result<Vec<PriorDispute>, AppError> {
    disputes
        .iter()
        .map(|d| Ok(PriorDispute { case_ref: d.case_ref.clone(), state: state_of(d)?, amount: d.amount }))
        .collect()
}

/// A refund as the dispute module of the core reads it.
pub(crate) fn refund_record(r: &refundry_store::model::Refund) -> RefundRecord {
    RefundRecord {
        id: r.id,
        refund_type: r.refund_type,
        amount: r.amount,
        status: r.status,
        created_at: r.created_at,
        succeeded_at: r.completed_at,
        rrn: r.acquirer_reference.clone(),
    }
}

/// How cases are watched: evidence limits, deadline reminders and the
/// chargeback-ratio thresholds alerts are raised against.
#[derive(Debug, Clone)]
pub struct DisputeConfig {
    /// The largest evidence file taken.
    pub evidence_max_file_bytes: usize,
    /// Days before a case's response deadline at which a reminder is sent,
    /// each once per case (7, 3 and 1 by default).
    pub reminder_days: Vec<u32>,
    /// Mastercard's Excessive Chargeback Program unless set otherwise.
    pub mastercard_ecp: refundry_core::ratio::RatioThresholds,
    /// Visa's VAMP for the month unless set otherwise.
    pub visa_vamp: Option<refundry_core::ratio::RatioThresholds>,
}

impl Default for DisputeConfig {
    fn default() -> Self {
        DisputeConfig {
            evidence_max_file_bytes: crate::evidence::DEFAULT_MAX_FILE_BYTES,
            reminder_days: vec![7, 3, 1],
            mastercard_ecp: refundry_core::ratio::RatioThresholds::mastercard_ecp(),
            visa_vamp: None,
        }
    }
}

fn not_found(id: DisputeId) -> AppError {
    AppError::new(ErrorCode::DisputeNotFound, format!("no dispute {id}"))
}

impl App {
    /// Opens a case, or answers with the existing one for the same case
    /// number. The audit event says when the sale's refunds already answer it.
    pub async fn open_dispute(&self, actor: &Actor, new: NewDispute) -> Result<DisputeRecord, AppError> {
        crate::sales::check_ref("case_ref", &new.case_ref, 40)?;
        if new.reason_code.is_empty() || new.reason_code.len() > 16 {
            return Err(AppError::validation("reason_code", "reason_code must be 1 to 16 characters"));
        }
        let actor = actor.clone();
        refundry_store::write(&self.store, move |tx| {
            if let Some(existing) = tx.find_dispute_by_case(actor.merchant_id, &new.case_ref)? {
                return Ok(existing);
            }
            let sale = tx.lock_sale(actor.merchant_id, new.sale_id)?;
            let sale = visible_sale(&actor, sale, new.sale_id)?;
            let amount = Money::positive(new.amount_minor, sale.amount.currency)
                .map_err(|e| AppError::from_amount("amount", e))?;
            if amount.minor > sale.amount.minor {
                return Err(AppError::validation("amount", "a dispute cannot be for more than the sale"));
            }
            let now = crate::now();
            let state = DisputeState::opened(new.stage);
            let record = DisputeRecord {
                id: DisputeId::generate(),
                merchant_id: actor.merchant_id,
                sale_id: sale.id,
                case_ref: new.case_ref.clone(),
                network: new.network.as_str().to_owned(),
                reason_code: new.reason_code.clone(),
                category: categorize(new.network, &new.reason_code).map(|c| c.as_str().to_owned()),
                stage: state.stage().as_str().to_owned(),
                status: state.status().as_str().to_owned(),
                amount,
                due_by: new.due_by,
                note: new.note.clone(),
                opened_at: now,
                updated_at: now,
            };
            tx.insert_dispute(&record)?;
            // a sale already refunded answers the dispute with the refund
            let refunds: Vec<RefundRecord> =
                tx.refunds_of_sale(actor.merchant_id, sale.id)?.iter().map(refund_record).collect();
            let evidence = refund_as_evidence(&refunds, amount)
                .map(|e| serde_json::json!({"code": e.code, "en": e.en, "zh": e.zh}));
            let data = serde_json::json!({
                "sale_id": sale.id.to_string(), "case_ref": record.case_ref, "network": record.network,
                "reason_code": record.reason_code, "category": record.category, "amount": amount.minor,
                "after": {"stage": record.stage, "status": record.status}, "refund_evidence": evidence,
            });
            audit::record(tx, &actor, "dispute.opened", &record.id.to_string(), data, now)?;
            Ok(record)
        })
        .await
    }

    /// Moves a case: responded, escalated, evidence submitted, accepted,
    /// won, lost, pre-arbitration, past due.
    pub async fn move_dispute(
        &self,
        actor: &Actor,
        id: DisputeId,
        event: DisputeEvent,
        note: Option<String>,
    ) -> Result<DisputeRecord, AppError> {
        let actor = actor.clone();
        refundry_store::write(&self.store, move |tx| {
            let found = tx.find_dispute(actor.merchant_id, id)?.ok_or_else(|| not_found(id))?;
            // the sale's row, as a refund of it takes: a refund and a case
            // that reopens never both pass on stale reads of each other
            tx.lock_sale(actor.merchant_id, found.sale_id)?;
            let mut record = tx.find_dispute(actor.merchant_id, id)?.ok_or_else(|| not_found(id))?;
            let before = state_of(&record)?;
            let after = before.on(network_of(&record), event).map_err(|e| {
                AppError::new(ErrorCode::DisputeTransitionNotAllowed, e.to_string())
                    .with("stage", record.stage.clone())
                    .with("dispute_status", record.status.clone())
            })?;
            let now = crate::now();
            record.stage = after.stage().as_str().to_owned();
            record.status = after.status().as_str().to_owned();
            if note.is_some() {
                record.note = note.clone();
            }
            record.updated_at = now;
            tx.update_dispute(&record)?;
            let data = serde_json::json!({
                "event": event.as_str(),
                "before": {"stage": before.stage().as_str(), "status": before.status().as_str()},
                "after": {"stage": record.stage, "status": record.status},
                "note": note,
            });
            audit::record(tx, &actor, &format!("dispute.{}", event.as_str()), &record.id.to_string(), data, now)?;
            Ok(record)
        })
        .await
    }

    pub async fn dispute(&self, actor: &Actor, id: DisputeId) -> Result<DisputeRecord, AppError> {
        let merchant = actor.merchant_id;
        refundry_store::read(&self.store, move |tx| tx.find_dispute(merchant, id)?.ok_or_else(|| not_found(id))).await
    }

    pub async fn disputes(
        &self,
        actor: &Actor,
        sale: Option<SaleId>,
        starting_after: Option<DisputeId>,
        limit: u32,
    ) -> Result<Page<DisputeRecord>, AppError> {
        let (merchant, limit) = (actor.merchant_id, limit.clamp(1, crate::sales::MAX_PAGE));
        refundry_store::read(&self.store, move |tx| {
            let rows = match sale {
                Some(sale) => {
                    let mut all = tx.disputes_of_sale(merchant, sale)?;
                    all.reverse();
                    all.into_iter()
                        .filter(|d| starting_after.is_none_or(|a| d.id < a))
                        .take(limit as usize + 1)
                        .collect()
                }
                None => tx.list_disputes(merchant, starting_after, limit + 1)?,
            };
            Ok(Page::of(rows, limit))
        })
        .await
    }
}

/// One row of an acquirer's dispute file, as read.
#[derive(Debug, Clone, serde::Deserialize)]
struct CsvRow {
    case_ref: String,
    network: String,
    reason_code: String,
    #[serde(default)]
    stage: Option<String>,
    amount: String,
    #[serde(default)]
    currency: Option<String>,
    due_by: String,
    #[serde(default)]
    rrn: Option<String>,
    #[serde(default)]
    voucher_no: Option<String>,
    #[serde(default)]
    terminal_id: Option<String>,
    #[serde(default)]
    note: Option<String>,
}

/// A problem with one row: its number in the file (the header is row 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    pub row: usize,
    pub field: String,
    pub message: String,
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    pub rows: usize,
    pub opened: usize,
    pub already_known: usize,
    pub errors: Vec<RowError>,
}

/// Reads the file: UTF-8 (with or without BOM), or GB18030/GBK as Chinese
/// acquirers' files often are.
fn decode(bytes: &[u8]) -> String {
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    match std::str::from_utf8(bytes) {
        Ok(text) => text.to_owned(),
        Err(_) => encoding_rs::GB18030.decode(bytes).0.into_owned(),
    }
}

/// The most rows one file may hold.
pub const MAX_IMPORT_ROWS: usize = 50_000;

struct Parsed {
    row: usize,
    new: NewDispute,
    rrn: Option<String>,
    voucher: Option<(String, String)>,
}

fn parse_rows(bytes: &[u8]) -> Result<Vec<Parsed>, Vec<RowError>> {
    let text = decode(bytes);
    let mut reader = csv::ReaderBuilder::new().trim(csv::Trim::All).from_reader(text.as_bytes());
    let mut parsed = Vec::new();
    let mut errors = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (i, record) in reader.deserialize::<CsvRow>().enumerate() {
        let row = i + 2;
        if row > MAX_IMPORT_ROWS + 1 {
            errors.push(RowError {
                row,
                field: String::new(),
                message: format!("a file holds at most {MAX_IMPORT_ROWS} rows"),
            });
            break;
        }
        let r = match record {
            Ok(r)
                if [&r.case_ref, &r.reason_code, &r.amount, &r.due_by]
                    .into_iter()
                    .chain([&r.rrn, &r.voucher_no, &r.terminal_id, &r.note].into_iter().flatten())
                    .any(|cell| refundry_core::card::contains_card_number(cell)) =>
            {
                // never echoed: the row number says where
                errors.push(RowError {
                    row,
                    field: "sensitive_card_data".into(),
                    message: "this row holds a full card number; send only references".into(),
                });
                continue;
            }
            Ok(r) => r,
            Err(e) => {
                errors.push(RowError { row, field: String::new(), message: format!("unreadable row: {e}") });
                continue;
            }
        };
        let mut bad =
            |field: &str, message: &str| errors.push(RowError { row, field: field.into(), message: message.into() });
        let network = Network::parse(&r.network.to_ascii_lowercase());
        if network.is_none() {
            bad("network", "network must be unionpay, visa, mastercard, amex, jcb or other");
        }
        let stage = match r.stage.as_deref().map(str::to_ascii_lowercase).as_deref() {
            None | Some("") | Some("chargeback") => Some(DisputeStage::Chargeback),
            Some("retrieval_request") => Some(DisputeStage::RetrievalRequest),
            Some(_) => {
                bad("stage", "stage must be retrieval_request or chargeback");
                None
            }
        };
        let amount = r.amount.parse::<i64>().ok().filter(|a| *a > 0);
        if amount.is_none() {
            bad("amount", "amount must be a positive whole number of minor units (fen)");
        }
        if r.currency
            .as_deref()
            .is_some_and(|c| !c.is_empty() && c != "cny" && refundry_core::money::Currency::parse(c).is_err())
        {
            bad("currency", "currency must be a lower-case ISO 4217 code");
        }
        let due_by = r.due_by.parse::<Timestamp>().ok();
        if due_by.is_none() {
            bad("due_by", "due_by must be an RFC 3339 time");
        }
        let rrn = r.rrn.filter(|s| !s.is_empty());
        let voucher = match (r.voucher_no.filter(|s| !s.is_empty()), r.terminal_id.filter(|s| !s.is_empty())) {
            (Some(v), Some(t)) => Some((v, t)),
            _ => None,
        };
        if rrn.is_none() && voucher.is_none() {
            bad("rrn", "name the sale by rrn, or by voucher_no and terminal_id");
        }
        if crate::sales::check_ref("case_ref", &r.case_ref, 40).is_err() {
            bad("case_ref", "case_ref must be 1 to 40 letters, digits, '-' or '_'");
        } else if !seen.insert(r.case_ref.clone()) {
            bad("case_ref", "the same case appears twice in the file");
        }
        if r.reason_code.is_empty() || r.reason_code.len() > 16 {
            bad("reason_code", "reason_code must be 1 to 16 characters");
        }
        if let (Some(network), Some(stage), Some(amount_minor), Some(due_by)) = (network, stage, amount, due_by) {
            let new = NewDispute {
                sale_id: SaleId::generate(), // found below
                case_ref: r.case_ref,
                network,
                reason_code: r.reason_code,
                stage,
                amount_minor,
                due_by,
                note: r.note.filter(|n| !n.is_empty()),
            };
            parsed.push(Parsed { row, new, rrn, voucher });
        }
    }
    if errors.is_empty() { Ok(parsed) } else { Err(errors) }
}

impl App {
    /// Imports an acquirer's dispute file (CSV). Every row is checked first,
    /// sales found by RRN or voucher number and terminal; any bad row
    /// refuses the whole file, named by row number, and nothing changes.
    /// Cases already known (by case number) are left as they are, so the
    /// same file imported twice opens each case once. `progress` is told
    /// after each row.
    pub async fn import_disputes(
        &self,
        actor: &Actor,
        bytes: &[u8],
        progress: impl Fn(usize, usize) + Send + Sync + 'static,
    ) -> Result<ImportReport, AppError> {
        let parsed = match parse_rows(bytes) {
            Ok(parsed) => parsed,
            Err(errors) => return Ok(ImportReport { rows: 0, errors, ..ImportReport::default() }),
        };
        let rows = parsed.len();
        let reader = actor.clone();
        let (found, errors) = refundry_store::read(&self.store, move |tx| {
            let mut found = Vec::with_capacity(parsed.len());
            let mut errors = Vec::new();
            for mut p in parsed {
                let query = refundry_store::model::SaleQuery {
                    rrn: p.rrn.clone(),
                    voucher_no: p.voucher.as_ref().map(|v| v.0.clone()),
                    terminal_id: p.voucher.as_ref().map(|v| v.1.clone()),
                    store_id: reader.store_pin,
                    limit: 2,
                    ..Default::default()
                };
                let sales = tx.search_sales(reader.merchant_id, &query)?;
                match sales.as_slice() {
                    [sale] if p.new.amount_minor > sale.amount.minor => errors.push(RowError {
                        row: p.row,
                        field: "amount".into(),
                        message: "a dispute cannot be for more than the sale".into(),
                    }),
                    [sale] => {
                        p.new.sale_id = sale.id;
                        found.push(p);
                    }
                    [] => errors.push(RowError { row: p.row, field: "rrn".into(), message: "no sale matches".into() }),
                    _ => errors.push(RowError {
                        row: p.row,
                        field: "rrn".into(),
                        message: "more than one sale matches; give voucher_no and terminal_id".into(),
                    }),
                }
            }
            Ok::<_, AppError>((found, errors))
        })
        .await?;
        if !errors.is_empty() {
            return Ok(ImportReport { rows, errors, ..ImportReport::default() });
        }
        let mut report = ImportReport { rows, ..ImportReport::default() };
        for (i, p) in found.into_iter().enumerate() {
            let known = {
                let (merchant, case_ref) = (actor.merchant_id, p.new.case_ref.clone());
                refundry_store::read(&self.store, move |tx| {
                    Ok::<_, AppError>(tx.find_dispute_by_case(merchant, &case_ref)?.is_some())
                })
                .await?
            };
            match self.open_dispute(actor, p.new).await {
                Ok(_) if known => report.already_known += 1,
                Ok(_) => report.opened += 1,
                Err(e) => report.errors.push(RowError {
                    row: p.row,
                    field: e
                        .extra
                        .iter()
                        .find(|(k, _)| *k == "field")
                        .map(|(_, v)| v.as_str().unwrap_or("").to_owned())
                        .unwrap_or_default(),
                    message: e.detail,
                }),
            }
            progress(i + 1, rows);
        }
        Ok(report)
    }
}

/// A month's chargeback ratio under one card network's programme.
#[derive(Debug, Clone)]
pub struct RatioWatch {
    pub assessment: refundry_core::ratio::RatioAssessment,
    pub stats: refundry_core::ratio::MonthStats,
}

impl App {
    /// The merchant's chargeback ratios for `month` against the networks'
    /// monitoring programmes: Mastercard's (this month's chargebacks ÷ last
    /// month's sales) and Visa's VAMP (this month's disputes ÷ this month's
    /// card sales; Refundry sees no fraud reports, so those are not counted).
    pub async fn chargeback_ratios(
        &self,
        actor: &Actor,
        month: jiff::civil::Date,
    ) -> Result<Vec<RatioWatch>, AppError> {
        use refundry_core::ratio::{MonthStats, RatioThresholds, assess};
        let tz = self.config.business_tz.clone();
        let watch = &self.config.disputes;
        let start = |d: jiff::civil::Date| d.first_of_month().to_zoned(tz.clone()).map(|z| z.timestamp());
        let bad = |_| AppError::validation("month", "month is out of range");
        let this = start(month).map_err(bad)?;
        let next = start(month.first_of_month().checked_add(jiff::ToSpan::months(1)).map_err(bad)?).map_err(bad)?;
        let last = start(month.first_of_month().checked_sub(jiff::ToSpan::months(1)).map_err(bad)?).map_err(bad)?;
        let merchant = actor.merchant_id;
        let (disputes, last_sales, this_cards) = refundry_store::read(&self.store, move |tx| {
            Ok::<_, AppError>((
                tx.dispute_stats(merchant, this, next)?,
                tx.sale_stats(merchant, last, this, false)?,
                tx.sale_stats(merchant, this, next, true)?,
            ))
        })
        .await?;
        let currency = refundry_core::money::Currency::CNY;
        let mastercard = MonthStats {
            currency,
            sales_count: last_sales.0,
            sales_minor: last_sales.1,
            disputes_count: disputes.0,
            disputes_minor: disputes.1,
        };
        let visa = MonthStats { sales_count: this_cards.0, sales_minor: this_cards.1, ..mastercard };
        Ok(vec![
            RatioWatch { assessment: assess(&mastercard, &watch.mastercard_ecp), stats: mastercard },
            RatioWatch {
                assessment: assess(&visa, &watch.visa_vamp.unwrap_or_else(|| RatioThresholds::visa_vamp(month))),
                stats: visa,
            },
        ])
    }
}

impl App {
    /// Marks the cases whose answer is late: their deadline passed while
    /// they still needed a response. Each move is audited (and so sent to
    /// webhooks as `dispute.mark_past_due`). Returns how many.
    pub async fn mark_overdue_disputes(&self) -> Result<usize, AppError> {
        refundry_store::write(&self.store, |tx| {
            let now = crate::now();
            let mut marked = 0;
            for case in tx.overdue_disputes(now, 200)? {
                let mut record = match tx.find_dispute(case.merchant_id, case.id)? {
                    Some(r) if r.status == "needs_response" => r,
                    _ => continue,
                };
                let before = state_of(&record)?;
                let Ok(after) = before.on(network_of(&record), DisputeEvent::MarkPastDue) else { continue };
                record.stage = after.stage().as_str().to_owned();
                record.status = after.status().as_str().to_owned();
                record.updated_at = now;
                tx.update_dispute(&record)?;
                let data = serde_json::json!({
                    "event": "mark_past_due", "due_by": record.due_by.to_string(),
                    "before": {"status": before.status().as_str()}, "after": {"status": record.status},
                });
                let actor = Actor::system(record.merchant_id, "deadline-watch");
                audit::record(tx, &actor, "dispute.mark_past_due", &record.id.to_string(), data, now)?;
                marked += 1;
            }
            Ok(marked)
        })
        .await
    }
}
