//! Disputes (退单/调单): the case list with filters and days left to answer,
//! and a case page with its state, the moves the state machine allows from
//! there, its evidence (upload and download) and the summary to submit.
//! Every check (moves, file size and type, card numbers) is the app's; the
//! page only places its refusals next to the field they concern.

use askama::Template;
use axum::extract::{Form, Multipart, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use refundry_app::evidence::NewEvidence;
use refundry_app::{AppError, ErrorCode};
use refundry_core::dispute::{
    DEFAULT_REMIND_WITHIN_DAYS, DisputeEvent, DisputeStage, DisputeState, DisputeStatus, EvidenceKind, Network,
    SummaryLocale, deadline_status,
};
use refundry_core::ids::{DisputeId, EvidenceId};
use refundry_store::model::{DisputeRecord, EvidenceRecord};
use serde::Deserialize;

use super::views::{Choice, choices};
use crate::Web;
use crate::nav::Area;
use crate::page::{Ctx, DoneQuery, FieldErrors, PageResult, Staff, render};

pub struct CaseRow {
    pub id: String,
    pub case_ref: String,
    pub network: &'static str,
    pub reason_code: String,
    pub stage: &'static str,
    pub status: &'static str,
    pub status_code: String,
    pub amount: String,
    pub due: String,
    /// "3 days left", "due today", "2 days overdue"; empty once the case
    /// needs nothing more from the merchant.
    pub days_left: String,
    pub overdue: bool,
    pub soon: bool,
}

impl CaseRow {
    fn of(ctx: &Ctx, d: &DisputeRecord) -> CaseRow {
        // the deadline matters while an answer is owed, and once it is missed
        let awaits =
            matches!(DisputeStatus::parse(&d.status), Some(DisputeStatus::NeedsResponse | DisputeStatus::PastDue));
        let deadline = deadline_status(d.due_by, jiff::Timestamp::now(), DEFAULT_REMIND_WITHIN_DAYS);
        let days_left = if !awaits {
            String::new()
        } else if deadline.past_due {
            ctx.t("disputes.days_overdue").replace("{n}", &(-deadline.days_left).to_string())
        } else if deadline.days_left == 0 {
            ctx.t("disputes.due_today").to_owned()
        } else {
            ctx.t("disputes.days_left").replace("{n}", &deadline.days_left.to_string())
        };
        CaseRow {
            id: d.id.to_string(),
            case_ref: d.case_ref.clone(),
            network: ctx.t(&format!("disputes.network.{}", d.network)),
            reason_code: d.reason_code.clone(),
            stage: ctx.t(&format!("disputes.stage.{}", d.stage)),
            status: ctx.t(&format!("disputes.status.{}", d.status)),
            status_code: d.status.clone(),
            amount: ctx.money(d.amount),
            due: ctx.time(d.due_by),
            overdue: awaits && deadline.past_due,
            soon: awaits && deadline.reminder_due,
            days_left,
        }
    }
}

fn state(d: &DisputeRecord) -> Option<DisputeState> {
    DisputeState::new(DisputeStage::parse(&d.stage)?, DisputeStatus::parse(&d.status)?)
}

#[derive(Template)]
#[template(path = "disputes/list.html")]
struct ListPage<'a> {
    ctx: &'a Ctx,
    statuses: Vec<Choice>,
    stages: Vec<Choice>,
    networks: Vec<Choice>,
    cases: Vec<CaseRow>,
    more: bool,
}

#[derive(Deserialize)]
pub struct Filter {
    #[serde(default)]
    status: String,
    #[serde(default)]
    stage: String,
    #[serde(default)]
    network: String,
}

/// The newest cases (one page of the app's largest), filtered here: the
/// app lists cases by sale only.
pub async fn list(State(web): State<Web>, mut staff: Staff, Query(f): Query<Filter>) -> PageResult {
    staff.enter(Area::Disputes)?;
    let ctx = &staff.ctx;
    let page = web
        .app
        .disputes(&staff.actor, None, None, refundry_app::sales::MAX_PAGE)
        .await
        .map_err(|e| ctx.app_error(&e))?;
    let keep = |want: &str, have: &str| want.is_empty() || want == have;
    let mut cases: Vec<&DisputeRecord> = page
        .items
        .iter()
        .filter(|d| keep(&f.status, &d.status) && keep(&f.stage, &d.stage) && keep(&f.network, &d.network))
        .collect();
    // the cases waiting for an answer first, the nearest deadline first
    cases.sort_by_key(|d| (!state(d).is_some_and(|s| s.awaits_response()), d.due_by));
    let page = ListPage {
        ctx,
        statuses: choices(ctx, "disputes.status", DisputeStatus::ALL.iter().map(|s| s.as_str()), &f.status),
        stages: choices(ctx, "disputes.stage", DisputeStage::ALL.iter().map(|s| s.as_str()), &f.stage),
        networks: choices(ctx, "disputes.network", Network::ALL.iter().map(|s| s.as_str()), &f.network),
        cases: cases.into_iter().map(|d| CaseRow::of(ctx, d)).collect(),
        more: page.has_more,
    };
    Ok(render(&page))
}

pub struct EvidenceRow {
    pub id: String,
    pub kind: &'static str,
    pub note: String,
    pub file: Option<(String, String, String)>,
    pub added: String,
    pub added_by: String,
}

impl EvidenceRow {
    fn of(ctx: &Ctx, e: &EvidenceRecord) -> EvidenceRow {
        EvidenceRow {
            id: e.id.to_string(),
            kind: ctx.t(&format!("disputes.evidence_kind.{}", e.kind)),
            note: e.note.clone().unwrap_or_default(),
            file: e.file.as_ref().map(|f| (f.name.clone(), size(f.size_bytes), f.sha256.clone())),
            added: ctx.time(e.added_at),
            added_by: ctx.who(&e.added_by),
        }
    }
}

fn size(bytes: i64) -> String {
    const MIB: i64 = 1024 * 1024;
    match bytes {
        b if b < 1024 => format!("{b} B"),
        b if b >= MIB && b % MIB == 0 => format!("{} MiB", b / MIB),
        b => format!("{} KiB", (b + 1023) / 1024),
    }
}

#[derive(Template)]
#[template(path = "disputes/case.html")]
struct CasePage<'a> {
    ctx: &'a Ctx,
    case: CaseRow,
    sale_id: String,
    category: &'static str,
    note: String,
    opened: String,
    moves: Vec<Choice>,
    takes_evidence: bool,
    evidence: Vec<EvidenceRow>,
    kinds: Vec<Choice>,
    summary: String,
    max_file: String,
    errors: FieldErrors,
    /// What was typed, given back when the form is refused.
    typed_note: String,
    move_note: String,
    done: &'static str,
}

/// What the page shows after a form, good or refused.
#[derive(Default)]
struct Outcome {
    errors: FieldErrors,
    typed_note: String,
    move_note: String,
    kind: String,
    done: &'static str,
}

async fn case_page(web: &Web, staff: &Staff, id: DisputeId, outcome: Outcome) -> Result<Response, Response> {
    let ctx = &staff.ctx;
    let d = web.app.dispute(&staff.actor, id).await.map_err(|e| ctx.app_error(&e))?;
    let evidence = web.app.evidence(&staff.actor, id).await.map_err(|e| ctx.app_error(&e))?;
    let locale = if ctx.lang.is_zh() { SummaryLocale::ZhCn } else { SummaryLocale::En };
    let summary = web.app.evidence_summary(&staff.actor, id, locale).await.map_err(|e| ctx.app_error(&e))?;
    let current = state(&d);
    let network = Network::parse(&d.network).unwrap_or(Network::Other);
    let past_due = jiff::Timestamp::now() > d.due_by;
    // only the moves the state machine takes from here; marking a case past
    // due is for after its deadline
    let moves = DisputeEvent::ALL
        .iter()
        .filter(|e| current.is_some_and(|s| s.on(network, **e).is_ok()))
        .filter(|e| **e != DisputeEvent::MarkPastDue || past_due)
        .map(|e| Choice { code: e.as_str(), label: ctx.t(&format!("disputes.event.{}", e.as_str())), selected: false })
        .collect();
    let kind = if outcome.kind.is_empty() { "receipt" } else { outcome.kind.as_str() };
    let page = CasePage {
        ctx,
        case: CaseRow::of(ctx, &d),
        sale_id: d.sale_id.to_string(),
        category: d.category.as_deref().map(|c| ctx.t(&format!("disputes.category.{c}"))).unwrap_or(""),
        note: d.note.clone().unwrap_or_default(),
        opened: ctx.time(d.opened_at),
        moves,
        takes_evidence: current.is_some_and(|s| s.takes_evidence()),
        evidence: evidence.iter().map(|e| EvidenceRow::of(ctx, e)).collect(),
        kinds: choices(ctx, "disputes.evidence_kind", EvidenceKind::ALL.iter().map(|k| k.as_str()), kind),
        summary,
        max_file: size(web.app.config.disputes.evidence_max_file_bytes as i64),
        errors: outcome.errors,
        typed_note: outcome.typed_note,
        move_note: outcome.move_note,
        done: outcome.done,
    };
    Ok(render(&page))
}

pub async fn case(
    State(web): State<Web>,
    mut staff: Staff,
    Path(id): Path<String>,
    Query(q): Query<DoneQuery>,
) -> PageResult {
    staff.enter(Area::Disputes)?;
    let id = staff.ctx.id(&id, DisputeId::parse)?;
    let done = match q.done.as_str() {
        "moved" => "disputes.moved",
        "evidence" => "disputes.evidence_added",
        _ => "",
    };
    case_page(&web, &staff, id, Outcome { done, ..Outcome::default() }).await
}

const FORM_FIELDS: &[&str] = &["event", "kind", "note", "file"];

/// A refused form: the case page again, with the error at its field and
/// the status the app's refusal has.
async fn refused(
    web: &Web,
    staff: &Staff,
    id: DisputeId,
    e: &AppError,
    fallback: &str,
    outcome: Outcome,
) -> PageResult {
    let errors = FieldErrors::from_app_on_form(&staff.ctx, e, fallback, FORM_FIELDS);
    let page = case_page(web, staff, id, Outcome { errors, ..outcome }).await?;
    Ok((crate::page::status_of(e.code), page).into_response())
}

#[derive(Deserialize)]
pub struct Move {
    event: String,
    #[serde(default)]
    note: String,
}

pub async fn move_case(
    State(web): State<Web>,
    mut staff: Staff,
    Path(id): Path<String>,
    Form(f): Form<Move>,
) -> PageResult {
    staff.enter(Area::Disputes)?;
    let id = staff.ctx.id(&id, DisputeId::parse)?;
    let note = Some(f.note.trim().to_owned()).filter(|n| !n.is_empty());
    let result = match DisputeEvent::parse(&f.event) {
        Some(event) => web.app.move_dispute(&staff.actor, id, event, note).await,
        None => Err(AppError::validation("event", "not a move a case makes")),
    };
    match result {
        Ok(_) => Ok(Redirect::to(&format!("/disputes/{id}?done=moved")).into_response()),
        Err(e) => {
            let outcome = Outcome { move_note: f.note, ..Outcome::default() };
            refused(&web, &staff, id, &e, "event", outcome).await
        }
    }
}

/// The upload form, as read from its multipart body.
#[derive(Default)]
struct Upload {
    kind: String,
    note: String,
    file: Option<(String, Vec<u8>)>,
}

async fn read_upload(mut form: Multipart) -> Result<Upload, AppError> {
    let unreadable = |_| AppError::validation("file", "the form could not be read; send it again");
    let mut upload = Upload::default();
    while let Some(field) = form.next_field().await.map_err(unreadable)? {
        match field.name().unwrap_or_default() {
            "kind" => upload.kind = field.text().await.map_err(unreadable)?,
            "note" => upload.note = field.text().await.map_err(unreadable)?,
            "file" => {
                let name = field.file_name().unwrap_or_default().to_owned();
                let bytes = field.bytes().await.map_err(unreadable)?;
                // a browser sends an empty part when no file was chosen
                if !name.is_empty() || !bytes.is_empty() {
                    upload.file = Some((name, bytes.to_vec()));
                }
            }
            _ => {}
        }
    }
    Ok(upload)
}

pub async fn add_evidence(
    State(web): State<Web>,
    mut staff: Staff,
    Path(id): Path<String>,
    form: Multipart,
) -> PageResult {
    staff.enter(Area::Disputes)?;
    let id = staff.ctx.id(&id, DisputeId::parse)?;
    let upload = match read_upload(form).await {
        Ok(u) => u,
        Err(e) => return refused(&web, &staff, id, &e, "file", Outcome::default()).await,
    };
    let result = match EvidenceKind::parse(&upload.kind) {
        None => Err(AppError::validation("kind", "choose what the evidence is")),
        Some(_) if upload.file.is_none() && upload.note.trim().is_empty() => {
            Err(AppError::validation("file", staff.ctx.t("disputes.file_or_note")))
        }
        Some(kind) => {
            let note = Some(upload.note.trim().to_owned()).filter(|n| !n.is_empty());
            web.app.add_evidence(&staff.actor, id, NewEvidence { kind, note, file: upload.file }).await
        }
    };
    match result {
        Ok(_) => Ok(Redirect::to(&format!("/disputes/{id}?done=evidence#evidence")).into_response()),
        Err(e) => {
            // the file is never echoed back: a card number in it must not be shown
            let typed_note = if e.code == ErrorCode::SensitiveCardData { String::new() } else { upload.note };
            let outcome = Outcome { typed_note, kind: upload.kind, ..Outcome::default() };
            refused(&web, &staff, id, &e, "file", outcome).await
        }
    }
}

/// An item's file, checked against its stored checksum by the app; always
/// a download, never shown inline, so a file cannot act as a page of ours.
pub async fn evidence_file(
    State(web): State<Web>,
    mut staff: Staff,
    Path((id, item)): Path<(String, String)>,
) -> PageResult {
    staff.enter(Area::Disputes)?;
    let ctx = &staff.ctx;
    let id = ctx.id(&id, DisputeId::parse)?;
    let item = ctx.id(&item, EvidenceId::parse)?;
    let (file, bytes) = web.app.evidence_file(&staff.actor, id, item).await.map_err(|e| ctx.app_error(&e))?;
    let encoded: String = form_urlencoded::byte_serialize(file.name.as_bytes()).collect();
    let disposition = format!("attachment; filename=\"evidence\"; filename*=UTF-8''{}", encoded.replace('+', "%20"));
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, file.content_type),
            (header::CONTENT_DISPOSITION, disposition),
            (header::HeaderName::from_static("x-checksum-sha256"), file.sha256),
        ],
        bytes,
    )
        .into_response())
}
