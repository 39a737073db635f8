//! The customer's self-service page (no log-in).
//!
//! Addressing: `/self-service` serves the install's first merchant (a shop
//! running its own Refundry has exactly one); `/m/{merchant_id}/self-service`
//! serves any merchant of a shared install. The customer proves they hold
//! a sale with four receipt facts; a wrong fact and no sale get the same
//! answer. Look-ups and requests are rate-limited per client address. A
//! request's status page is reached by a sealed token, never the bare id.

use std::net::IpAddr;

use askama::Template;
use axum::extract::{Form, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use refundry_app::idempotency::{Idempotency, Replay, StoredResponse};
use refundry_app::notify::CustomerContact;
use refundry_app::sales::SaleView;
use refundry_app::self_service::{ReceiptFacts, customer_actor};
use refundry_app::{Actor, AppError, ErrorCode};
use refundry_core::card::Last4;
use refundry_core::contact::{Email, Phone};
use refundry_core::ids::MerchantId;
use refundry_core::money::{Currency, Money};
use refundry_core::refund::RefundReason;
use refundry_store::model::Refund;
use serde::Deserialize;

use super::views::{Choice, RefundRow, choices, tone};
use crate::Web;
use crate::format::{self, parse_major};
use crate::page::{Ctx, FieldErrors, PageResult, Visitor, render};

/// Reasons a customer may give; the rest are the staff's to judge.
const CUSTOMER_REASONS: &[RefundReason] = &[
    RefundReason::CustomerRequest,
    RefundReason::Defective,
    RefundReason::WrongCharge,
    RefundReason::Duplicate,
    RefundReason::ServiceIssue,
    RefundReason::Other,
];

#[derive(Debug, Default, Deserialize, Clone)]
pub struct Facts {
    #[serde(default)]
    pub reference: String,
    #[serde(default)]
    pub date: String,
    #[serde(default)]
    pub amount: String,
    #[serde(default)]
    pub last4: String,
}

impl Facts {
    fn parse(&self, ctx: &Ctx) -> Result<ReceiptFacts, FieldErrors> {
        let mut errors = FieldErrors::default();
        let reference = self.reference.trim();
        if reference.is_empty() || reference.len() > 20 || !reference.bytes().all(|b| b.is_ascii_alphanumeric()) {
            errors.add("reference", ctx.t("self.reference_invalid"));
        }
        let date = self
            .date
            .trim()
            .parse::<jiff::civil::Date>()
            .map_err(|_| errors.add("date", ctx.t("form.date_invalid")))
            .ok();
        let amount = parse_major(&self.amount, Currency::CNY).map_err(|e| errors.add("amount", ctx.t(e.key()))).ok();
        let last4 = Last4::parse(self.last4.trim()).map_err(|_| errors.add("last4", ctx.t("form.last4_invalid"))).ok();
        match (date, amount, last4, errors.is_empty()) {
            (Some(date), Some(amount_minor), Some(last4), true) => {
                Ok(ReceiptFacts { reference: reference.to_owned(), date, amount_minor, last4 })
            }
            _ => Err(errors),
        }
    }
}

pub struct Found {
    pub when: String,
    pub amount: String,
    pub refunded: String,
    pub refundable: String,
    pub items: Vec<String>,
    pub can_refund: bool,
}

#[derive(Template)]
#[template(path = "self_service/form.html")]
struct FormPage<'a> {
    ctx: &'a Ctx,
    base: String,
    facts: Facts,
    errors: FieldErrors,
    found: Option<Found>,
    reasons: Vec<Choice>,
    email: String,
    phone: String,
    idem: String,
    problem: Option<String>,
}

impl<'a> FormPage<'a> {
    fn new(ctx: &'a Ctx, base: String) -> FormPage<'a> {
        FormPage {
            ctx,
            base,
            facts: Facts::default(),
            errors: FieldErrors::default(),
            found: None,
            reasons: reasons(ctx, ""),
            email: String::new(),
            phone: String::new(),
            idem: uuid::Uuid::now_v7().simple().to_string(),
            problem: None,
        }
    }
}

fn reasons(ctx: &Ctx, chosen: &str) -> Vec<Choice> {
    choices(ctx, "reason", CUSTOMER_REASONS.iter().map(|r| r.as_str()), chosen)
}

fn base_of(merchant: Option<&str>) -> String {
    match merchant {
        Some(m) => format!("/m/{m}/self-service"),
        None => "/self-service".to_owned(),
    }
}

/// The merchant the page serves.
async fn merchant(web: &Web, ctx: &Ctx, given: Option<&str>) -> Result<MerchantId, Response> {
    match given {
        Some(m) => ctx.id(m, MerchantId::parse),
        None => web.app.first_merchant().await.map_err(|e| ctx.app_error(&e))?.ok_or_else(|| ctx.not_found()),
    }
}

fn limited(web: &Web, visitor: &Visitor) -> Result<(), Response> {
    let Some(limiter) = &web.self_service_limit else { return Ok(()) };
    let ip: IpAddr = visitor.source.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]));
    if limiter.check_key(&ip).is_err() {
        let ctx = &visitor.ctx;
        let mut r = ctx.error(StatusCode::TOO_MANY_REQUESTS, ctx.t("error.rate_limited"), ctx.t("self.slow_down"));
        r.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from_static("60"));
        return Err(r);
    }
    Ok(())
}

pub async fn form(State(web): State<Web>, visitor: Visitor) -> PageResult {
    merchant(&web, &visitor.ctx, None).await?;
    Ok(render(&FormPage::new(&visitor.ctx, base_of(None))))
}

pub async fn form_of(State(web): State<Web>, visitor: Visitor, Path(m): Path<String>) -> PageResult {
    merchant(&web, &visitor.ctx, Some(&m)).await?;
    Ok(render(&FormPage::new(&visitor.ctx, base_of(Some(&m)))))
}

pub async fn look_up(State(web): State<Web>, visitor: Visitor, Form(f): Form<Facts>) -> PageResult {
    look_up_in(web, visitor, None, f).await
}

pub async fn look_up_of(
    State(web): State<Web>,
    visitor: Visitor,
    Path(m): Path<String>,
    Form(f): Form<Facts>,
) -> PageResult {
    look_up_in(web, visitor, Some(m), f).await
}

fn found_of(ctx: &Ctx, view: &SaleView) -> Found {
    let cur = view.sale.amount.currency;
    Found {
        when: ctx.time(view.sale.captured_at),
        amount: ctx.money(view.sale.amount),
        refunded: format::money(Money::new(view.refunded_minor, cur)),
        refundable: format::money(Money::new(view.refundable_minor, cur)),
        items: view.sale.items.iter().map(|i| format!("{} × {}", i.name, i.quantity)).collect(),
        can_refund: view.refundable_minor > 0,
    }
}

/// The same words for "no such sale" and "a fact does not match".
fn no_match(ctx: &Ctx) -> String {
    ctx.t("self.no_match").to_owned()
}

async fn look_up_in(web: Web, visitor: Visitor, m: Option<String>, f: Facts) -> PageResult {
    limited(&web, &visitor)?;
    let ctx = &visitor.ctx;
    let merchant = merchant(&web, ctx, m.as_deref()).await?;
    let mut page = FormPage::new(ctx, base_of(m.as_deref()));
    page.facts = f.clone();
    let facts = match f.parse(ctx) {
        Ok(facts) => facts,
        Err(errors) => {
            page.errors = errors;
            return Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&page)).into_response());
        }
    };
    let actor = customer_actor(merchant, &visitor.source);
    match web.app.find_receipt(&actor, &facts).await {
        Ok(view) => page.found = Some(found_of(ctx, &view)),
        Err(e) if e.code == ErrorCode::SaleNotFound => page.problem = Some(no_match(ctx)),
        Err(e) => return Err(ctx.app_error(&e)),
    }
    Ok(render(&page))
}

#[derive(Deserialize)]
pub struct Ask {
    #[serde(flatten)]
    facts: Facts,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    phone: String,
    #[serde(default)]
    idem: String,
}

pub async fn request(State(web): State<Web>, visitor: Visitor, Form(a): Form<Ask>) -> PageResult {
    request_in(web, visitor, None, a).await
}

pub async fn request_of(
    State(web): State<Web>,
    visitor: Visitor,
    Path(m): Path<String>,
    Form(a): Form<Ask>,
) -> PageResult {
    request_in(web, visitor, Some(m), a).await
}

fn contact(ctx: &Ctx, a: &Ask, errors: &mut FieldErrors) -> Option<CustomerContact> {
    let email = Some(a.email.trim()).filter(|s| !s.is_empty()).and_then(|e| match Email::parse(e) {
        Ok(e) => Some(e),
        Err(_) => {
            errors.add("email", ctx.t("self.email_invalid"));
            None
        }
    });
    let phone = Some(a.phone.trim()).filter(|s| !s.is_empty()).and_then(|p| match Phone::parse(p) {
        Ok(p) => Some(p),
        Err(_) => {
            errors.add("phone", ctx.t("self.phone_invalid"));
            None
        }
    });
    if email.is_none() && phone.is_none() && errors.is_empty() {
        errors.add("email", ctx.t("self.contact_needed"));
    }
    errors.is_empty().then(|| CustomerContact { email, phone, locale: ctx.lang.tag().to_owned() })
}

async fn request_in(web: Web, visitor: Visitor, m: Option<String>, a: Ask) -> PageResult {
    limited(&web, &visitor)?;
    let ctx = &visitor.ctx;
    let merchant = merchant(&web, ctx, m.as_deref()).await?;
    let actor = customer_actor(merchant, &visitor.source);
    let mut page = FormPage::new(ctx, base_of(m.as_deref()));
    page.facts = a.facts.clone();
    page.reasons = reasons(ctx, &a.reason);
    page.email = a.email.clone();
    page.phone = a.phone.clone();
    if !a.idem.is_empty() {
        page.idem = a.idem.clone();
    }
    let facts = match a.facts.parse(ctx) {
        Ok(f) => f,
        Err(errors) => {
            page.errors = errors;
            return Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&page)).into_response());
        }
    };
    // the sale again: the page shows it beside any error
    let view = match web.app.find_receipt(&actor, &facts).await {
        Ok(v) => v,
        Err(e) if e.code == ErrorCode::SaleNotFound => {
            page.problem = Some(no_match(ctx));
            return Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&page)).into_response());
        }
        Err(e) => return Err(ctx.app_error(&e)),
    };
    page.found = Some(found_of(ctx, &view));
    let mut errors = FieldErrors::default();
    let reason = RefundReason::parse(&a.reason).filter(|r| CUSTOMER_REASONS.contains(r));
    if reason.is_none() {
        errors.add("reason", ctx.t("counter.choose_reason"));
    }
    let contact = contact(ctx, &a, &mut errors);
    let (Some(reason), Some(contact)) = (reason, contact) else {
        page.errors = errors;
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&page)).into_response());
    };
    match ask(&web, &actor, &facts, reason, contact, &a).await {
        Ok(token) => Ok(Redirect::to(&format!("/self-service/status/{token}")).into_response()),
        Err(e) => {
            let message = if e.code == ErrorCode::RefundRejectedByPolicy {
                policy_words(ctx, &e)
            } else {
                ctx.error_title(e.code)
            };
            page.problem = Some(message);
            Ok((crate::page::status_of(e.code), render(&page)).into_response())
        }
    }
}

/// Asks once per form: a resent form answers with the same status link.
async fn ask(
    web: &Web,
    actor: &Actor,
    facts: &ReceiptFacts,
    reason: RefundReason,
    contact: CustomerContact,
    a: &Ask,
) -> Result<String, AppError> {
    let app = web.app.clone();
    let render_token =
        Box::new(move |r: &Refund| StoredResponse { status: 303, body: app.status_token(r).unwrap_or_default() });
    let body = format!(
        "{}|{}|{}|{}|{}|{}|{}",
        a.facts.reference, a.facts.date, a.facts.amount, a.facts.last4, a.reason, a.email, a.phone
    );
    let idem = Some(a.idem.trim())
        .filter(|k| !k.is_empty())
        .map(|k| {
            Idempotency::new(
                format!("self-service:{k}"),
                "POST",
                "/self-service/request",
                body.as_bytes(),
                render_token,
            )
        })
        .transpose()?;
    match web.app.customer_refund(actor, facts, reason, contact, idem).await? {
        Replay::Fresh(r) => web.app.status_token(&r),
        Replay::Stored(s) => Ok(s.body),
    }
}

fn policy_words(ctx: &Ctx, e: &AppError) -> String {
    let key = if ctx.lang.is_zh() { "zh" } else { "en" };
    let reasons: Vec<String> = e
        .extra
        .iter()
        .find(|(k, _)| *k == "reasons")
        .and_then(|(_, v)| v.as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|r| r[key].as_str().map(str::to_owned))
        .collect();
    format!("{} {}", ctx.error_title(e.code), reasons.join(" "))
}

pub struct StatusView {
    pub refund: RefundRow,
    pub tone: &'static str,
    pub token: String,
}

#[derive(Template)]
#[template(path = "self_service/status.html")]
struct StatusPage<'a> {
    ctx: &'a Ctx,
    status: StatusView,
}

#[derive(Template)]
#[template(path = "self_service/status_live.html")]
struct StatusLive<'a> {
    ctx: &'a Ctx,
    status: StatusView,
}

async fn status_of(web: &Web, ctx: &Ctx, token: &str) -> Result<StatusView, Response> {
    let refund = web.app.refund_by_token(token).await.map_err(|_| ctx.not_found())?;
    Ok(StatusView { refund: RefundRow::of(ctx, &refund), tone: tone(refund.status), token: token.to_owned() })
}

pub async fn status(State(web): State<Web>, visitor: Visitor, Path(token): Path<String>) -> PageResult {
    let status = status_of(&web, &visitor.ctx, &token).await?;
    Ok(render(&StatusPage { ctx: &visitor.ctx, status }))
}

pub async fn status_live(State(web): State<Web>, visitor: Visitor, Path(token): Path<String>) -> PageResult {
    let status = status_of(&web, &visitor.ctx, &token).await?;
    Ok(render(&StatusLive { ctx: &visitor.ctx, status }))
}
