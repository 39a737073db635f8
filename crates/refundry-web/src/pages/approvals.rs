//! The approval queue (待审批): refunds waiting for a supervisor, each with
//! the policy's reasons; approve or reject with a note. That the approver
//! is not the requester is the app's rule; its refusal shows on the row.

use askama::Template;
use axum::extract::{Form, Path, Query, State};
use axum::response::{IntoResponse, Redirect};
use refundry_app::{Actor, AppError};
use refundry_core::ids::RefundId;
use refundry_core::refund::RefundStatus;
use refundry_store::model::{Refund, RefundQuery};
use serde::Deserialize;

use super::views::{ReasonLine, RefundRow, stored_reasons};
use crate::Web;
use crate::nav::Area;
use crate::page::{Ctx, PageResult, Staff, render};

/// The queue, oldest request first, so nobody waits behind newer ones.
pub async fn waiting(web: &Web, actor: &Actor) -> Result<Vec<Refund>, AppError> {
    let query = RefundQuery { status: Some(RefundStatus::RequiresApproval), limit: 100, ..RefundQuery::default() };
    let mut refunds = web.app.list_refunds(actor, query).await?.items;
    refunds.reverse();
    Ok(refunds)
}

pub struct Waiting {
    pub refund: RefundRow,
    pub reasons: Vec<ReasonLine>,
    pub expires: String,
    pub note: String,
    pub error: Option<String>,
}

#[derive(Template)]
#[template(path = "approvals.html")]
struct QueuePage<'a> {
    ctx: &'a Ctx,
    rows: Vec<Waiting>,
    done: Option<(String, &'static str)>,
}

#[derive(Deserialize)]
pub struct Done {
    done: Option<String>,
    outcome: Option<String>,
}

fn rows(ctx: &Ctx, refunds: &[Refund]) -> Vec<Waiting> {
    refunds
        .iter()
        .map(|r| Waiting {
            refund: RefundRow::of(ctx, r),
            reasons: stored_reasons(ctx, &r.decision),
            expires: r.approval_expires_at.map(|t| ctx.time(t)).unwrap_or_default(),
            note: String::new(),
            error: None,
        })
        .collect()
}

pub async fn queue(State(web): State<Web>, mut staff: Staff, Query(q): Query<Done>) -> PageResult {
    staff.enter(Area::Approvals)?;
    let ctx = &staff.ctx;
    let refunds = waiting(&web, &staff.actor).await.map_err(|e| ctx.app_error(&e))?;
    let done = q.done.filter(|d| RefundId::parse(d).is_ok()).map(|d| {
        let outcome =
            if q.outcome.as_deref() == Some("approved") { "approvals.approved" } else { "approvals.rejected" };
        (d, ctx.t(outcome))
    });
    Ok(render(&QueuePage { ctx, rows: rows(ctx, &refunds), done }))
}

#[derive(Deserialize)]
pub struct Decision {
    decision: String,
    #[serde(default)]
    note: String,
}

pub async fn decide(
    State(web): State<Web>,
    mut staff: Staff,
    Path(id): Path<String>,
    Form(f): Form<Decision>,
) -> PageResult {
    staff.enter(Area::Approvals)?;
    let ctx = &staff.ctx;
    let refund_id = ctx.id(&id, RefundId::parse)?;
    let note = f.note.trim().to_owned();
    let result = match f.decision.as_str() {
        "approve" => {
            web.app.approve_refund(&staff.actor, refund_id, Some(note.clone()).filter(|n| !n.is_empty())).await
        }
        "reject" if note.is_empty() => Err(AppError::validation("note", ctx.t("approvals.say_why"))),
        "reject" => web.app.reject_refund(&staff.actor, refund_id, note.clone()).await,
        _ => Err(AppError::validation("decision", "decision must be approve or reject")),
    };
    match result {
        Ok(r) => {
            let outcome = if r.status == RefundStatus::Rejected { "rejected" } else { "approved" };
            Ok(Redirect::to(&format!("/approvals?done={}&outcome={outcome}", r.id)).into_response())
        }
        Err(e) => {
            let refunds = waiting(&web, &staff.actor).await.map_err(|e| ctx.app_error(&e))?;
            let mut rows = rows(ctx, &refunds);
            let message = if ctx.lang.is_zh() && e.code != refundry_app::ErrorCode::ValidationFailed {
                ctx.error_title(e.code)
            } else {
                format!("{}: {}", ctx.error_title(e.code), e.detail)
            };
            match rows.iter_mut().find(|w| w.refund.id == id) {
                Some(row) => {
                    row.note = note;
                    row.error = Some(message);
                }
                // it left the queue meanwhile: say so above the list
                None => return Err(ctx.app_error(&e)),
            }
            let page = QueuePage { ctx, rows, done: None };
            Ok((crate::page::status_of(e.code), render(&page)).into_response())
        }
    }
}
