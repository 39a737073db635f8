//! Refunds: a list by status, and a page per refund whose status part
//! refreshes itself (htmx polling) until the refund reaches a final state,
//! with its timeline and its slip.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use refundry_app::Actor;
use refundry_app::refunds::SlipWording;
use refundry_core::ids::RefundId;
use refundry_core::refund::RefundStatus;
use refundry_slips::{Slip, Width};
use refundry_store::model::RefundQuery;
use serde::Deserialize;

use super::views::{ReasonLine, RefundRow, Step, steps, stored_reasons, tone};
use crate::Web;
use crate::nav::Area;
use crate::page::{Ctx, PageResult, Staff, render};

const PAGE: u32 = 25;

pub struct StatusChoice {
    pub code: &'static str,
    pub label: &'static str,
    pub selected: bool,
}

#[derive(Template)]
#[template(path = "refunds/list.html")]
struct ListPage<'a> {
    ctx: &'a Ctx,
    statuses: Vec<StatusChoice>,
    refunds: Vec<RefundRow>,
    next: Option<String>,
}

#[derive(Deserialize)]
pub struct Filter {
    #[serde(default)]
    status: String,
    #[serde(default)]
    after: String,
}

pub async fn list(State(web): State<Web>, mut staff: Staff, Query(f): Query<Filter>) -> PageResult {
    staff.enter(Area::Refunds)?;
    let ctx = &staff.ctx;
    let status = RefundStatus::parse(&f.status);
    let query =
        RefundQuery { status, starting_after: RefundId::parse(&f.after).ok(), limit: PAGE, ..RefundQuery::default() };
    let found = web.app.list_refunds(&staff.actor, query).await.map_err(|e| ctx.app_error(&e))?;
    let next = match (found.has_more, found.items.last()) {
        (true, Some(last)) => Some(format!("status={}&after={}", status.map(|s| s.as_str()).unwrap_or(""), last.id)),
        _ => None,
    };
    let statuses = RefundStatus::ALL
        .iter()
        .map(|s| StatusChoice {
            code: s.as_str(),
            label: ctx.t(&format!("status.{}", s.as_str())),
            selected: Some(*s) == status,
        })
        .collect();
    Ok(render(&ListPage { ctx, statuses, refunds: found.items.iter().map(|r| RefundRow::of(ctx, r)).collect(), next }))
}

/// What the live part of a refund's page shows.
pub struct Live {
    pub refund: RefundRow,
    pub tone: &'static str,
    pub reasons: Vec<ReasonLine>,
    pub failure: String,
    pub decided_by: String,
    pub decision_note: String,
    pub arrival: String,
    pub steps: Vec<Step>,
}

#[derive(Template)]
#[template(path = "refunds/detail.html")]
struct DetailPage<'a> {
    ctx: &'a Ctx,
    live: Live,
    sale_id: String,
    may_see_sale: bool,
    items: Vec<(String, u32, String)>,
    note: String,
}

#[derive(Template)]
#[template(path = "refunds/live.html")]
struct LivePart<'a> {
    ctx: &'a Ctx,
    live: Live,
}

async fn live_of(
    web: &Web,
    actor: &Actor,
    ctx: &Ctx,
    id: RefundId,
) -> Result<(Live, refundry_store::model::Refund), Response> {
    let refund = web.app.refund(actor, id).await.map_err(|e| ctx.app_error(&e))?;
    let timeline = web.app.refund_timeline(actor, id).await.map_err(|e| ctx.app_error(&e))?;
    let live = Live {
        refund: RefundRow::of(ctx, &refund),
        tone: tone(refund.status),
        reasons: stored_reasons(ctx, &refund.decision),
        failure: refund.failure_reason.clone().unwrap_or_default(),
        decided_by: refund.decided_by.as_deref().map(|d| ctx.who(d)).unwrap_or_default(),
        decision_note: refund.decision_note.clone().unwrap_or_default(),
        arrival: refund.expected_arrival_at.map(|t| ctx.time(t)).unwrap_or_default(),
        steps: steps(ctx, &timeline),
    };
    Ok((live, refund))
}

pub async fn detail(State(web): State<Web>, mut staff: Staff, Path(id): Path<String>) -> PageResult {
    staff.enter(Area::Refunds)?;
    let ctx = &staff.ctx;
    let (live, refund) = live_of(&web, &staff.actor, ctx, ctx.id(&id, RefundId::parse)?).await?;
    let sale = web.app.sale(&staff.actor, refund.sale_id).await.map_err(|e| ctx.app_error(&e))?;
    let items = refund
        .items
        .iter()
        .map(|i| {
            let name = sale.sale.items.iter().find(|l| l.sku == i.sku).map(|l| l.name.clone()).unwrap_or(i.sku.clone());
            (name, i.quantity, crate::format::major(i.amount_minor, refund.amount.currency))
        })
        .collect();
    let page = DetailPage {
        ctx,
        live,
        sale_id: refund.sale_id.to_string(),
        may_see_sale: staff.may(Area::Sales),
        items,
        note: refund.note.clone().unwrap_or_default(),
    };
    Ok(render(&page))
}

/// The part of the page htmx polls.
pub async fn live(State(web): State<Web>, mut staff: Staff, Path(id): Path<String>) -> PageResult {
    staff.enter(Area::Refunds)?;
    let ctx = &staff.ctx;
    let (live, _) = live_of(&web, &staff.actor, ctx, ctx.id(&id, RefundId::parse)?).await?;
    Ok(render(&LivePart { ctx, live }))
}

async fn slip(web: &Web, staff: &Staff, id: RefundId) -> Result<Slip, Response> {
    let ctx = &staff.ctx;
    let facts = web.app.slip_facts(&staff.actor, id).await.map_err(|e| ctx.app_error(&e))?;
    let r = &facts.refund;
    let wording = SlipWording {
        reason: ctx.t(&format!("reason.{}", r.reason.as_str())).to_owned(),
        operator: ctx.who(&r.requested_by),
        approver: r.decided_by.as_deref().map(|d| ctx.who(d)),
        locale: if ctx.lang.is_zh() { refundry_slips::Locale::Zh } else { refundry_slips::Locale::En },
    };
    Ok(facts.slip(wording, ctx.tz.clone()))
}

#[derive(Template)]
#[template(path = "refunds/slip.html")]
struct SlipPage<'a> {
    ctx: &'a Ctx,
    id: String,
    text: String,
}

#[derive(Deserialize)]
pub struct SlipWidth {
    width: Option<String>,
}

/// The slip on screen (80 mm text), ready to print, with downloads.
pub async fn slip_page(
    State(web): State<Web>,
    mut staff: Staff,
    Path(id): Path<String>,
    Query(q): Query<SlipWidth>,
) -> PageResult {
    staff.enter(Area::Refunds)?;
    let id = staff.ctx.id(&id, RefundId::parse)?;
    let slip = slip(&web, &staff, id).await?;
    let width = if q.width.as_deref() == Some("58") { Width::Mm58 } else { Width::Mm80 };
    let text = refundry_slips::text(&slip, width);
    Ok(render(&SlipPage { ctx: &staff.ctx, id: id.to_string(), text }))
}

/// `slip.txt`, `slip-58.txt`, `slip.bin` (ESC/POS) or `slip.pdf`.
pub async fn slip_file(
    State(web): State<Web>,
    mut staff: Staff,
    Path((id, file)): Path<(String, String)>,
) -> PageResult {
    staff.enter(Area::Refunds)?;
    let ctx = &staff.ctx;
    let id = ctx.id(&id, RefundId::parse)?;
    let slip = slip(&web, &staff, id).await?;
    let (ctype, body): (&str, Vec<u8>) = match file.as_str() {
        "slip.txt" => ("text/plain; charset=utf-8", refundry_slips::text(&slip, Width::Mm80).into_bytes()),
        "slip-58.txt" => ("text/plain; charset=utf-8", refundry_slips::text(&slip, Width::Mm58).into_bytes()),
        "slip.bin" => ("application/octet-stream", refundry_slips::escpos(&slip, Width::Mm80)),
        "slip.pdf" => match refundry_slips::pdf(&slip) {
            Ok(pdf) => ("application/pdf", pdf),
            Err(e) => {
                tracing::error!(error = %e, "a slip PDF could not be made");
                return Err(ctx.error(
                    axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                    ctx.t("error.internal"),
                    ctx.t("page.try_again"),
                ));
            }
        },
        _ => return Err(ctx.not_found()),
    };
    let disposition = format!("attachment; filename=\"{id}-{file}\"");
    Ok(([(header::CONTENT_TYPE, ctype.to_owned()), (header::CONTENT_DISPOSITION, disposition)], body).into_response())
}
