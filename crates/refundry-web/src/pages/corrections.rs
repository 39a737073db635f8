//! Correction cases (错收): likely wrong charges, open ones first; a case
//! page with what was found, its cause and who is answerable, and the two
//! ways to close it: a refund made from the case (through the app, so the
//! refund policy and approvals apply, with an idempotency key per drawn
//! form) or a dismissal with a reason.

use askama::Template;
use axum::extract::{Form, Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use refundry_app::AppError;
use refundry_app::corrections::CorrectionRefund;
use refundry_app::idempotency::{Idempotency, Replay, StoredResponse};
use refundry_core::detect::CorrectionCause;
use refundry_core::ids::CorrectionId;
use refundry_store::model::{CorrectionRecord, Refund};
use serde::Deserialize;

use super::views::{Choice, choices};
use crate::Web;
use crate::format::parse_major;
use crate::nav::Area;
use crate::page::{Ctx, DoneQuery, FieldErrors, PageResult, Staff, render};

/// Dismissing a case is a supervisor's call, as in the API.
const DISMISS_SCOPE: &str = "refunds:approve";
/// Refunding from a case is a refund like any other.
const REFUND_SCOPE: &str = "refunds:write";

pub struct CaseRow {
    pub id: String,
    pub sale_id: String,
    pub kind: &'static str,
    pub cause: &'static str,
    pub status: &'static str,
    pub status_code: String,
    pub summary: String,
    pub opened: String,
    pub opened_by: String,
}

impl CaseRow {
    fn of(ctx: &Ctx, c: &CorrectionRecord) -> CaseRow {
        CaseRow {
            id: c.id.to_string(),
            sale_id: c.sale_id.to_string(),
            kind: ctx.t(&format!("corrections.kind.{}", c.kind)),
            cause: ctx.t(&format!("corrections.cause.{}", c.cause)),
            status: ctx.t(&format!("corrections.status.{}", c.status)),
            status_code: c.status.clone(),
            summary: if ctx.lang.is_zh() { c.summary_zh.clone() } else { c.summary_en.clone() },
            opened: ctx.time(c.opened_at),
            opened_by: ctx.who(&c.opened_by),
        }
    }
}

#[derive(Template)]
#[template(path = "corrections/list.html")]
struct ListPage<'a> {
    ctx: &'a Ctx,
    open: Vec<CaseRow>,
    closed: Vec<CaseRow>,
}

pub async fn list(State(web): State<Web>, mut staff: Staff) -> PageResult {
    staff.enter(Area::Corrections)?;
    let ctx = &staff.ctx;
    let max = refundry_app::sales::MAX_PAGE;
    let open = web.app.corrections(&staff.actor, Some("open".into()), None, max).await;
    let open = open.map_err(|e| ctx.app_error(&e))?.items;
    let all = web.app.corrections(&staff.actor, None, None, max).await.map_err(|e| ctx.app_error(&e))?.items;
    let page = ListPage {
        ctx,
        open: open.iter().map(|c| CaseRow::of(ctx, c)).collect(),
        closed: all.iter().filter(|c| c.status != "open").map(|c| CaseRow::of(ctx, c)).collect(),
    };
    Ok(render(&page))
}

#[derive(Template)]
#[template(path = "corrections/case.html")]
struct CasePage<'a> {
    ctx: &'a Ctx,
    case: CaseRow,
    /// What the finding rests on, as `name: value` lines.
    evidence: Vec<(String, String)>,
    responsible_party: String,
    resolution: String,
    refund_id: String,
    is_open: bool,
    may_refund: bool,
    may_dismiss: bool,
    causes: Vec<Choice>,
    form: Typed,
    errors: FieldErrors,
    done: &'static str,
}

/// What was typed in the forms, given back when one is refused.
#[derive(Default, Deserialize)]
pub struct Typed {
    #[serde(default)]
    amount: String,
    #[serde(default)]
    note: String,
    #[serde(default)]
    cause: String,
    #[serde(default)]
    responsible_party: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    idem: String,
}

fn evidence_lines(json: &str) -> Vec<(String, String)> {
    let value: serde_json::Value = serde_json::from_str(json).unwrap_or_default();
    let Some(map) = value.as_object() else { return Vec::new() };
    map.iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| {
            let text = match v {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Array(items) => items
                    .iter()
                    .map(|i| i.as_str().map(str::to_owned).unwrap_or_else(|| i.to_string()))
                    .collect::<Vec<_>>()
                    .join(", "),
                other => other.to_string(),
            };
            (k.clone(), text)
        })
        .collect()
}

async fn case_page(
    web: &Web,
    staff: &Staff,
    id: CorrectionId,
    mut form: Typed,
    errors: FieldErrors,
    done: &'static str,
) -> Result<Response, Response> {
    let ctx = &staff.ctx;
    let c = web.app.correction(&staff.actor, id).await.map_err(|e| ctx.app_error(&e))?;
    if form.idem.is_empty() || errors.is_empty() {
        // a new key per drawn form: a resent form is one refund, a new one another
        form.idem = uuid::Uuid::now_v7().simple().to_string();
    }
    let cause = if form.cause.is_empty() { c.cause.clone() } else { form.cause.clone() };
    let page = CasePage {
        ctx,
        case: CaseRow::of(ctx, &c),
        evidence: evidence_lines(&c.evidence),
        responsible_party: c.responsible_party.clone().unwrap_or_default(),
        resolution: c.resolution_note.clone().unwrap_or_default(),
        refund_id: c.refund_id.map(|r| r.to_string()).unwrap_or_default(),
        is_open: c.status == "open",
        may_refund: staff.actor.may(REFUND_SCOPE),
        may_dismiss: staff.actor.may(DISMISS_SCOPE),
        causes: choices(ctx, "corrections.cause", CorrectionCause::ALL.iter().map(|k| k.as_str()), &cause),
        form,
        errors,
        done,
    };
    Ok(render(&page))
}

pub async fn case(
    State(web): State<Web>,
    mut staff: Staff,
    Path(id): Path<String>,
    Query(q): Query<DoneQuery>,
) -> PageResult {
    staff.enter(Area::Corrections)?;
    let id = staff.ctx.id(&id, CorrectionId::parse)?;
    let done = match q.done.as_str() {
        "refunded" => "corrections.refunded",
        "dismissed" => "corrections.dismissed",
        _ => "",
    };
    case_page(&web, &staff, id, Typed::default(), FieldErrors::default(), done).await
}

const FORM_FIELDS: &[&str] = &["amount", "note", "cause", "responsible_party", "reason"];

async fn refused(web: &Web, staff: &Staff, id: CorrectionId, e: &AppError, fallback: &str, form: Typed) -> PageResult {
    let errors = FieldErrors::from_app_on_form(&staff.ctx, e, fallback, FORM_FIELDS);
    let page = case_page(web, staff, id, form, errors, "").await?;
    Ok((crate::page::status_of(e.code), page).into_response())
}

pub async fn refund(
    State(web): State<Web>,
    mut staff: Staff,
    Path(id): Path<String>,
    Form(fields): Form<Vec<(String, String)>>,
) -> PageResult {
    staff.enter(Area::Corrections)?;
    if !staff.actor.may(REFUND_SCOPE) {
        return Err(staff.ctx.forbidden());
    }
    let id = staff.ctx.id(&id, CorrectionId::parse)?;
    let get = |name: &str| fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.trim().to_owned()).unwrap_or_default();
    let form = Typed {
        amount: get("amount"),
        note: get("note"),
        cause: get("cause"),
        responsible_party: get("responsible_party"),
        idem: get("idem"),
        ..Typed::default()
    };
    let case = web.app.correction(&staff.actor, id).await.map_err(|e| staff.ctx.app_error(&e))?;
    let currency =
        web.app.sale(&staff.actor, case.sale_id).await.map_err(|e| staff.ctx.app_error(&e))?.sale.amount.currency;
    let amount_minor = if form.amount.is_empty() {
        None
    } else {
        match parse_major(&form.amount, currency) {
            Ok(minor) => Some(minor),
            Err(e) => {
                let e = AppError::validation("amount", staff.ctx.t(e.key()));
                return refused(&web, &staff, id, &e, "amount", form).await;
            }
        }
    };
    let opt = |s: &str| Some(s.to_owned()).filter(|s| !s.is_empty());
    let ask = CorrectionRefund {
        amount_minor,
        note: opt(&form.note),
        cause: opt(&form.cause),
        responsible_party: opt(&form.responsible_party),
    };
    let body: String = {
        let mut s = form_urlencoded::Serializer::new(String::new());
        for (k, v) in fields.iter().filter(|(k, _)| k != crate::csrf::FIELD) {
            s.append_pair(k, v);
        }
        s.finish()
    };
    let path = format!("/corrections/{id}/refund");
    let render_id = Box::new(|a: &(CorrectionRecord, Refund)| StoredResponse { status: 303, body: a.1.id.to_string() });
    let idem = match Idempotency::new(format!("web:{}", form.idem), "POST", &path, body.as_bytes(), render_id) {
        Ok(idem) => idem,
        Err(e) => return refused(&web, &staff, id, &e, "amount", form).await,
    };
    match web.app.refund_correction(&staff.actor, id, ask, Some(idem)).await {
        Ok(Replay::Fresh(_) | Replay::Stored(_)) => {
            Ok(Redirect::to(&format!("/corrections/{id}?done=refunded")).into_response())
        }
        Err(e) => refused(&web, &staff, id, &e, "amount", form).await,
    }
}

#[derive(Deserialize)]
pub struct Dismissal {
    #[serde(default)]
    reason: String,
}

pub async fn dismiss(
    State(web): State<Web>,
    mut staff: Staff,
    Path(id): Path<String>,
    Form(f): Form<Dismissal>,
) -> PageResult {
    staff.enter(Area::Corrections)?;
    if !staff.actor.may(DISMISS_SCOPE) {
        return Err(staff.ctx.forbidden());
    }
    let id = staff.ctx.id(&id, CorrectionId::parse)?;
    let reason = f.reason.trim().to_owned();
    let result = if reason.is_empty() {
        Err(AppError::validation("reason", staff.ctx.t("corrections.say_why")))
    } else {
        web.app.dismiss_correction(&staff.actor, id, reason.clone()).await
    };
    match result {
        Ok(_) => Ok(Redirect::to(&format!("/corrections/{id}?done=dismissed")).into_response()),
        Err(e) => refused(&web, &staff, id, &e, "reason", Typed { reason, ..Typed::default() }).await,
    }
}
