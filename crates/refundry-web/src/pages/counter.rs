//! Counter refund (收银台退款): find the sale, pick what goes back, see the
//! policy's answer, submit once, watch it finish, print the slip.
//!
//! Keyboard first: the search field has focus, Enter searches, one match
//! opens the sale at once; on the sale the first quantity has focus, Enter
//! submits, Alt+S submits from anywhere.

use askama::Template;
use axum::extract::{Form, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use refundry_app::idempotency::{Idempotency, Replay, StoredResponse};
use refundry_app::refunds::{Preview, RefundRequest};
use refundry_app::sales::SaleView;
use refundry_app::{Actor, AppError, ErrorCode};
use refundry_core::ids::SaleId;
use refundry_core::refund::{ItemQuantity, RefundAsk, RefundReason};
use refundry_store::model::{Refund, RefundQuery, SaleQuery};
use serde::Deserialize;

use super::views::{Choice, ReasonLine, RefundRow, SaleRow, choices, decision_reasons};
use crate::Web;
use crate::format::{self, parse_major};
use crate::nav::Area;
use crate::page::{Ctx, FieldErrors, PageResult, Staff, render};

/// What a sale search may hold; the same fields on the counter and the
/// sales list.
#[derive(Debug, Default, Deserialize, Clone)]
pub struct SaleSearch {
    #[serde(default)]
    pub voucher: String,
    #[serde(default)]
    pub rrn: String,
    #[serde(default)]
    pub last4: String,
    #[serde(default)]
    pub amount: String,
    #[serde(default)]
    pub date: String,
    #[serde(default)]
    pub after: String,
}

impl SaleSearch {
    pub fn is_empty(&self) -> bool {
        [&self.voucher, &self.rrn, &self.last4, &self.amount, &self.date].iter().all(|f| f.trim().is_empty())
    }

    /// The store query, or the fields that are wrong.
    pub fn query(&self, ctx: &Ctx, limit: u32) -> Result<SaleQuery, FieldErrors> {
        let mut errors = FieldErrors::default();
        let text = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
        let mut q = SaleQuery {
            voucher_no: text(&self.voucher),
            rrn: text(&self.rrn),
            last4: text(&self.last4),
            limit,
            ..SaleQuery::default()
        };
        if let Some(l4) = &q.last4
            && (l4.len() != 4 || !l4.bytes().all(|b| b.is_ascii_digit()))
        {
            errors.add("last4", ctx.t("form.last4_invalid"));
        }
        if !self.amount.trim().is_empty() {
            match parse_major(&self.amount, refundry_core::money::Currency::CNY) {
                Ok(minor) => q.amount_minor = Some(minor),
                Err(e) => errors.add("amount", ctx.t(e.key())),
            }
        }
        if !self.date.trim().is_empty() {
            match self.date.trim().parse::<jiff::civil::Date>() {
                Ok(d) => {
                    let start = d.to_zoned(ctx.tz.clone()).map(|z| z.timestamp()).ok();
                    let end = d.tomorrow().ok().and_then(|n| n.to_zoned(ctx.tz.clone()).ok()).map(|z| z.timestamp());
                    q.captured_from = start;
                    q.captured_to = end;
                }
                Err(_) => errors.add("date", ctx.t("form.date_invalid")),
            }
        }
        if !self.after.is_empty() {
            q.starting_after = SaleId::parse(&self.after).ok();
        }
        if errors.is_empty() { Ok(q) } else { Err(errors) }
    }

    /// The search as a query string, for the next page's link.
    pub fn next_page(&self, after: &str) -> String {
        let mut s = form_urlencoded::Serializer::new(String::new());
        for (k, v) in [
            ("voucher", &self.voucher),
            ("rrn", &self.rrn),
            ("last4", &self.last4),
            ("amount", &self.amount),
            ("date", &self.date),
        ] {
            if !v.trim().is_empty() {
                s.append_pair(k, v.trim());
            }
        }
        s.append_pair("after", after);
        s.finish()
    }
}

#[derive(Template)]
#[template(path = "counter/search.html")]
struct SearchPage<'a> {
    ctx: &'a Ctx,
    search: SaleSearch,
    searched: bool,
    sales: Vec<SaleRow>,
    errors: FieldErrors,
}

pub async fn search(State(web): State<Web>, mut staff: Staff, Query(search): Query<SaleSearch>) -> PageResult {
    staff.enter(Area::Counter)?;
    let ctx = &staff.ctx;
    let mut page =
        SearchPage { ctx, search: search.clone(), searched: false, sales: Vec::new(), errors: FieldErrors::default() };
    if search.is_empty() {
        return Ok(render(&page));
    }
    page.searched = true;
    match search.query(ctx, 20) {
        Err(errors) => page.errors = errors,
        Ok(q) => {
            let found = web.app.search_sales(&staff.actor, q).await.map_err(|e| ctx.app_error(&e))?;
            // one match: straight to it, the cashier has nothing to choose
            if let [only] = found.items.as_slice() {
                return Ok(Redirect::to(&format!("/counter/sales/{}", only.sale.id)).into_response());
            }
            page.sales = found.items.iter().map(|v| SaleRow::of(ctx, v)).collect();
        }
    }
    let status = if page.errors.is_empty() { StatusCode::OK } else { StatusCode::UNPROCESSABLE_ENTITY };
    Ok((status, render(&page)).into_response())
}

/// One sold line with what is left of it.
pub struct ItemLine {
    pub index: usize,
    pub sku: String,
    pub name: String,
    pub sold: u32,
    pub refunded: u32,
    pub remaining: u32,
    pub unit: String,
    pub qty: String,
}

/// The policy's answer before submitting.
pub struct PreviewView {
    pub outcome: &'static str,
    pub outcome_code: &'static str,
    pub amount: String,
    pub kind: &'static str,
    pub reasons: Vec<ReasonLine>,
    pub error: Option<String>,
}

#[derive(Template)]
#[template(path = "counter/sale.html")]
struct SalePage<'a> {
    ctx: &'a Ctx,
    sale: SaleRow,
    items: Vec<ItemLine>,
    refunds: Vec<RefundRow>,
    reasons: Vec<Choice>,
    amount: String,
    note: String,
    idem: String,
    errors: FieldErrors,
    preview: Option<PreviewView>,
}

#[derive(Template)]
#[template(path = "counter/preview.html")]
struct PreviewPart<'a> {
    ctx: &'a Ctx,
    preview: Option<PreviewView>,
}

/// The sale, its refunds, and how many of each item are left.
async fn load(web: &Web, actor: &Actor, id: SaleId) -> Result<(SaleView, Vec<Refund>), AppError> {
    let view = web.app.sale(actor, id).await?;
    let query = RefundQuery { sale_id: Some(id), limit: 100, ..RefundQuery::default() };
    let refunds = web.app.list_refunds(actor, query).await?.items;
    Ok((view, refunds))
}

fn item_lines(view: &SaleView, refunds: &[Refund]) -> Vec<ItemLine> {
    let cur = view.sale.amount.currency;
    view.sale
        .items
        .iter()
        .enumerate()
        .map(|(index, item)| {
            let refunded: u32 = refunds
                .iter()
                .filter(|r| r.status.counts_against_sale())
                .flat_map(|r| r.items.iter())
                .filter(|i| i.sku == item.sku)
                .map(|i| i.quantity)
                .sum();
            ItemLine {
                index,
                sku: item.sku.clone(),
                name: item.name.clone(),
                sold: item.quantity,
                refunded,
                remaining: item.quantity.saturating_sub(refunded),
                unit: format::major(item.unit_amount_minor, cur),
                qty: String::new(),
            }
        })
        .collect()
}

async fn reason_choices(web: &Web, actor: &Actor, ctx: &Ctx, view: &SaleView, chosen: &str) -> Vec<Choice> {
    let allowed = match web.app.policy(actor, Some(view.sale.store_id)).await {
        Ok(p) => p.policy.allowed_reasons,
        Err(_) => RefundReason::ALL.to_vec(),
    };
    choices(ctx, "reason", allowed.iter().map(|r| r.as_str()), chosen)
}

pub async fn sale(State(web): State<Web>, mut staff: Staff, Path(id): Path<String>) -> PageResult {
    staff.enter(Area::Counter)?;
    let ctx = &staff.ctx;
    let id = ctx.id(&id, SaleId::parse)?;
    let (view, refunds) = load(&web, &staff.actor, id).await.map_err(|e| ctx.app_error(&e))?;
    let reasons = reason_choices(&web, &staff.actor, ctx, &view, "").await;
    let page = SalePage {
        ctx,
        sale: SaleRow::of(ctx, &view),
        items: item_lines(&view, &refunds),
        refunds: refunds.iter().map(|r| RefundRow::of(ctx, r)).collect(),
        reasons,
        amount: String::new(),
        note: String::new(),
        idem: uuid::Uuid::now_v7().simple().to_string(),
        errors: FieldErrors::default(),
        preview: None,
    };
    Ok(render(&page))
}

/// The refund form as posted: `qty.<index>`, `amount`, `reason`, `note`,
/// `idem`.
struct RefundForm {
    fields: Vec<(String, String)>,
}

impl RefundForm {
    fn get(&self, name: &str) -> &str {
        self.fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.trim()).unwrap_or("")
    }

    /// The request, or the fields that are wrong.
    fn request(&self, ctx: &Ctx, view: &SaleView) -> Result<RefundRequest, FieldErrors> {
        let mut errors = FieldErrors::default();
        let mut items = Vec::new();
        for (i, line) in view.sale.items.iter().enumerate() {
            let raw = self.get(&format!("qty.{i}"));
            if raw.is_empty() {
                continue;
            }
            match raw.parse::<u32>() {
                Ok(0) => {}
                Ok(q) => items.push(ItemQuantity { sku: line.sku.clone(), quantity: q }),
                Err(_) => errors.add(&format!("qty.{i}"), ctx.t("form.quantity_invalid")),
            }
        }
        let amount = self.get("amount");
        let ask = if !items.is_empty() {
            if !amount.is_empty() {
                errors.add("amount", ctx.t("counter.items_or_amount"));
            }
            Some(RefundAsk::Items(items))
        } else if !amount.is_empty() {
            match parse_major(amount, view.sale.amount.currency) {
                Ok(minor) => Some(RefundAsk::Amount(minor)),
                Err(e) => {
                    errors.add("amount", ctx.t(e.key()));
                    None
                }
            }
        } else {
            errors.add("items", ctx.t("counter.pick_something"));
            None
        };
        let reason = RefundReason::parse(self.get("reason"));
        if reason.is_none() {
            errors.add("reason", ctx.t("counter.choose_reason"));
        }
        let note = Some(self.get("note").to_owned()).filter(|n| !n.is_empty());
        match (ask, reason, errors.is_empty()) {
            (Some(ask), Some(reason), true) => {
                Ok(RefundRequest { sale_id: view.sale.id, ask, reason, note, customer: None, card_token: None })
            }
            _ => Err(errors),
        }
    }

    fn fingerprint_body(&self) -> Vec<u8> {
        let mut s = form_urlencoded::Serializer::new(String::new());
        for (k, v) in self.fields.iter().filter(|(k, _)| k != crate::csrf::FIELD) {
            s.append_pair(k, v);
        }
        s.finish().into_bytes()
    }
}

fn preview_view(ctx: &Ctx, p: &Preview) -> PreviewView {
    PreviewView {
        outcome: ctx.t(&format!("outcome.{}", p.decision.outcome.as_str())),
        outcome_code: p.decision.outcome.as_str(),
        amount: ctx.money(p.plan.amount),
        kind: ctx.t(&format!("kind.{}", p.plan.refund_type.as_str())),
        reasons: decision_reasons(ctx, &p.decision),
        error: None,
    }
}

fn preview_error(ctx: &Ctx, e: &AppError) -> PreviewView {
    let mut reasons = Vec::new();
    if let Some((_, serde_json::Value::Array(rs))) = e.extra.iter().find(|(k, _)| *k == "reasons") {
        let key = if ctx.lang.is_zh() { "zh" } else { "en" };
        reasons = rs
            .iter()
            .map(|r| ReasonLine {
                code: r["code"].as_str().unwrap_or_default().to_owned(),
                outcome: "reject".into(),
                text: r[key].as_str().unwrap_or_default().to_owned(),
            })
            .collect();
    }
    let detail =
        if ctx.lang.is_zh() && e.code != ErrorCode::ValidationFailed { String::new() } else { e.detail.clone() };
    PreviewView {
        outcome: ctx.t("outcome.reject"),
        outcome_code: "reject",
        amount: String::new(),
        kind: "",
        reasons,
        error: Some(format!("{} {detail}", ctx.error_title(e.code)).trim().to_owned()),
    }
}

/// The policy's decision for the form as it stands (htmx, on every change).
pub async fn preview(
    State(web): State<Web>,
    mut staff: Staff,
    Path(id): Path<String>,
    Form(fields): Form<Vec<(String, String)>>,
) -> PageResult {
    staff.enter(Area::Counter)?;
    let ctx = &staff.ctx;
    let id = ctx.id(&id, SaleId::parse)?;
    let view = web.app.sale(&staff.actor, id).await.map_err(|e| ctx.app_error(&e))?;
    let form = RefundForm { fields };
    let preview = match form.request(ctx, &view) {
        // nothing chosen yet is not worth an error
        Err(_) => None,
        Ok(request) => Some(match web.app.preview_refund(&staff.actor, request).await {
            Ok(p) => preview_view(ctx, &p),
            Err(e) => preview_error(ctx, &e),
        }),
    };
    Ok(render(&PreviewPart { ctx, preview }))
}

/// Creates the refund. The form carries an idempotency key made when it was
/// drawn, so a double click or a resent form makes one refund.
pub async fn submit(
    State(web): State<Web>,
    mut staff: Staff,
    Path(id): Path<String>,
    Form(fields): Form<Vec<(String, String)>>,
) -> PageResult {
    staff.enter(Area::Counter)?;
    let ctx = &staff.ctx;
    let id = ctx.id(&id, SaleId::parse)?;
    let (view, refunds) = load(&web, &staff.actor, id).await.map_err(|e| ctx.app_error(&e))?;
    let form = RefundForm { fields };
    let outcome = match form.request(ctx, &view) {
        Err(errors) => Err((errors, None)),
        Ok(request) => {
            let key = format!("web:{}", form.get("idem"));
            let path = format!("/counter/sales/{id}/refund");
            let render_id = Box::new(|r: &Refund| StoredResponse { status: 303, body: r.id.to_string() });
            let idem = Idempotency::new(key, "POST", &path, &form.fingerprint_body(), render_id)
                .map_err(|e| ctx.app_error(&e))?;
            match web.app.request_refund(&staff.actor, request, Some(idem)).await {
                Ok(Replay::Fresh(r)) => Ok(r.id.to_string()),
                Ok(Replay::Stored(s)) => Ok(s.body),
                Err(e) => {
                    let preview = (e.code == ErrorCode::RefundRejectedByPolicy).then(|| preview_error(ctx, &e));
                    let fallback = match e.code {
                        ErrorCode::RefundExceedsRefundable => "amount",
                        ErrorCode::ItemQuantityExceedsRefundable | ErrorCode::ItemNotOnSale => "items",
                        _ => "form",
                    };
                    Err((FieldErrors::from_app(ctx, &e, fallback), preview))
                }
            }
        }
    };
    match outcome {
        Ok(refund_id) => Ok(Redirect::to(&format!("/refunds/{refund_id}")).into_response()),
        Err((errors, preview)) => {
            let mut items = item_lines(&view, &refunds);
            for line in &mut items {
                line.qty = form.get(&format!("qty.{}", line.index)).to_owned();
            }
            let page = SalePage {
                ctx,
                sale: SaleRow::of(ctx, &view),
                items,
                refunds: refunds.iter().map(|r| RefundRow::of(ctx, r)).collect(),
                reasons: reason_choices(&web, &staff.actor, ctx, &view, form.get("reason")).await,
                amount: form.get("amount").to_owned(),
                note: form.get("note").to_owned(),
                idem: form.get("idem").to_owned(),
                errors,
                preview,
            };
            Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&page)).into_response())
        }
    }
}
