//! The refund policy editor: a form over the policy document's fields,
//! showing the version in force. The app checks the rules and names the
//! field it refuses, shown next to it; nothing is written then. A preview
//! runs the core's pure `decide` on the typed rules and a sample refund,
//! without saving anything. The abuse rules are kept as they are (the API
//! edits them).

use askama::Template;
use axum::extract::{Form, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use refundry_app::policy::PolicyDoc;
use refundry_core::card::{First6, Last4};
use refundry_core::ids::{MerchantId, SaleId, StoreId};
use refundry_core::money::{Currency, Money};
use refundry_core::policy::{ActorFacts, OtherCashierRule, PolicyRequest, RefundPolicy, decide};
use refundry_core::refund::RefundReason;
use refundry_core::sale::{CardBrand, EntryMode, PaymentMethod, Sale, Wallet};
use serde::Deserialize;

use crate::Web;
use crate::format::{major, parse_major};
use crate::nav::Area;
use crate::page::{Ctx, FieldErrors, PageResult, Staff, render};
use crate::pages::views::{ReasonLine, decision_reasons};

/// Policy amounts are in the sales' minor units; the page reads and writes
/// them in yuan.
const CURRENCY: Currency = Currency::CNY;

const DAY_FIELDS: &[&str] =
    &["refund_window_days_card", "refund_window_days_wallet", "refund_window_days_cash", "no_questions_days"];
const MONEY_FIELDS: &[&str] = &[
    "approval_above_minor",
    "large_sale_minor",
    "large_sale_approval_above_minor",
    "cash_refund_limit_minor",
    "cashier_daily_limit_minor",
];
const SHARE_FIELD: &str = "approval_above_share_bps";

/// One number of the form: its name (the document's), label and text.
pub struct NumberField {
    pub name: &'static str,
    pub label: &'static str,
    pub hint: &'static str,
    pub value: String,
    pub money: bool,
}

/// The form as typed (or as the policy in force has it).
#[derive(Clone, Default)]
pub struct Typed {
    fields: Vec<(String, String)>,
}

impl Typed {
    fn get(&self, name: &str) -> &str {
        self.fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.trim()).unwrap_or("")
    }

    fn all(&self, name: &str) -> Vec<&str> {
        self.fields.iter().filter(|(k, _)| k == name).map(|(_, v)| v.as_str()).collect()
    }

    fn of(doc: &PolicyDoc) -> Typed {
        let days = [
            doc.refund_window_days_card,
            doc.refund_window_days_wallet,
            doc.refund_window_days_cash,
            doc.no_questions_days,
        ];
        let money = [
            doc.approval_above_minor,
            doc.large_sale_minor,
            doc.large_sale_approval_above_minor,
            doc.cash_refund_limit_minor,
            doc.cashier_daily_limit_minor,
        ];
        let mut fields: Vec<(String, String)> =
            DAY_FIELDS.iter().zip(days).map(|(k, v)| (k.to_string(), v.to_string())).collect();
        fields.extend(MONEY_FIELDS.iter().zip(money).map(|(k, v)| (k.to_string(), major(v, CURRENCY))));
        fields.push((SHARE_FIELD.into(), doc.approval_above_share_bps.to_string()));
        fields.push(("other_cashier".into(), doc.other_cashier.clone()));
        fields.extend(doc.allowed_reasons.iter().map(|r| ("allowed_reasons".to_owned(), r.clone())));
        fields.extend(
            [("sample_method", "card"), ("sample_sale", "600.00"), ("sample_amount", "600.00")]
                .into_iter()
                .chain([("sample_days", "3"), ("sample_reason", "customer_request")])
                .map(|(k, v)| (k.to_owned(), v.to_owned())),
        );
        Typed { fields }
    }

    /// The document the form describes; the abuse rules are the ones in force.
    fn doc(&self, ctx: &Ctx, in_force: &PolicyDoc) -> Result<PolicyDoc, FieldErrors> {
        let mut errors = FieldErrors::default();
        let mut whole = |name: &str| match self.get(name).parse::<u32>() {
            Ok(n) => n,
            Err(_) => {
                errors.add(name, ctx.t("settings.whole_number"));
                0
            }
        };
        let days: Vec<u32> = DAY_FIELDS.iter().map(|f| whole(f)).collect();
        let share = whole(SHARE_FIELD);
        let money: Vec<i64> = MONEY_FIELDS
            .iter()
            .map(|f| match amount(self.get(f)) {
                Ok(minor) => minor,
                Err(key) => {
                    errors.add(f, ctx.t(key));
                    0
                }
            })
            .collect();
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(PolicyDoc {
            refund_window_days_card: days[0],
            refund_window_days_wallet: days[1],
            refund_window_days_cash: days[2],
            no_questions_days: days[3],
            approval_above_minor: money[0],
            approval_above_share_bps: share,
            large_sale_minor: money[1],
            large_sale_approval_above_minor: money[2],
            allowed_reasons: self.all("allowed_reasons").into_iter().map(str::to_owned).collect(),
            cash_refund_limit_minor: money[3],
            cashier_daily_limit_minor: money[4],
            other_cashier: self.get("other_cashier").to_owned(),
            abuse: in_force.abuse.clone(),
        })
    }
}

/// A policy amount in minor units: zero turns a limit off, so it is taken.
fn amount(text: &str) -> Result<i64, &'static str> {
    if !text.is_empty() && text.trim_start_matches(['¥', '￥']).chars().all(|c| matches!(c, '0' | '.')) {
        return Ok(0);
    }
    parse_major(text, CURRENCY).map_err(|e| e.key())
}

/// What the policy would decide for the sample.
pub struct PreviewView {
    pub outcome: &'static str,
    pub outcome_code: &'static str,
    pub reasons: Vec<ReasonLine>,
}

#[derive(Template)]
#[template(path = "settings/policy.html")]
struct PolicyPage<'a> {
    ctx: &'a Ctx,
    version: i64,
    since: String,
    numbers: Vec<NumberField>,
    reasons: Vec<(&'static str, &'static str, bool)>,
    other_cashier: Vec<(&'static str, &'static str, bool)>,
    sample_methods: Vec<(&'static str, &'static str, bool)>,
    sample_reasons: Vec<(&'static str, &'static str, bool)>,
    form: Typed,
    errors: FieldErrors,
    preview: Option<PreviewView>,
    saved: bool,
}

impl PolicyPage<'_> {
    fn typed(&self, name: &str) -> String {
        self.form.get(name).to_owned()
    }
}

#[derive(Deserialize, Default)]
pub struct Done {
    #[serde(default)]
    saved: Option<i64>,
}

async fn page(
    web: &Web,
    staff: &Staff,
    form: Option<Typed>,
    errors: FieldErrors,
    preview: Option<PreviewView>,
    saved: bool,
) -> PageResult {
    let ctx = &staff.ctx;
    let in_force = web.app.policy(&staff.actor, None).await.map_err(|e| ctx.app_error(&e))?;
    let form = form.unwrap_or_else(|| Typed::of(&in_force.doc()));
    let label = |name: &str| ctx.t(&format!("settings.policy_field.{name}"));
    let mut numbers: Vec<NumberField> = DAY_FIELDS
        .iter()
        .map(|n| NumberField {
            name: n,
            label: label(n),
            hint: ctx.t("settings.days"),
            value: String::new(),
            money: false,
        })
        .collect();
    numbers.extend(MONEY_FIELDS.iter().map(|n| NumberField {
        name: n,
        label: label(n),
        hint: ctx.t("settings.yuan_zero_off"),
        value: String::new(),
        money: true,
    }));
    numbers.push(NumberField {
        name: SHARE_FIELD,
        label: label(SHARE_FIELD),
        hint: ctx.t("settings.bps"),
        value: String::new(),
        money: false,
    });
    for n in &mut numbers {
        n.value = form.get(n.name).to_owned();
    }
    let ticked = form.all("allowed_reasons");
    let reasons = RefundReason::ALL
        .iter()
        .map(|r| (r.as_str(), ctx.t(&format!("reason.{}", r.as_str())), ticked.contains(&r.as_str())))
        .collect();
    let choice = |code: &'static str, key: String, current: &str| (code, ctx.t(&key), code == current);
    let other_cashier = OtherCashierRule::ALL
        .iter()
        .map(|o| choice(o.as_str(), format!("settings.other_cashier.{}", o.as_str()), form.get("other_cashier")))
        .collect();
    let sample_methods = ["card", "wallet", "cash"]
        .into_iter()
        .map(|m| choice(m, format!("settings.sample_method.{m}"), form.get("sample_method")))
        .collect();
    let sample_reasons = RefundReason::ALL
        .iter()
        .map(|r| choice(r.as_str(), format!("reason.{}", r.as_str()), form.get("sample_reason")))
        .collect();
    let page = PolicyPage {
        ctx,
        version: in_force.version,
        since: in_force.created_at.map(|t| ctx.time(t)).unwrap_or_default(),
        numbers,
        reasons,
        other_cashier,
        sample_methods,
        sample_reasons,
        form,
        errors,
        preview,
        saved,
    };
    Ok(render(&page))
}

pub async fn form(State(web): State<Web>, mut staff: Staff, Query(q): Query<Done>) -> PageResult {
    staff.enter(Area::Settings)?;
    page(&web, &staff, None, FieldErrors::default(), None, q.saved.is_some()).await
}

/// Saves the typed policy as a new version, or (`action=preview`) only
/// shows what it would decide for the sample.
pub async fn submit(State(web): State<Web>, mut staff: Staff, Form(fields): Form<Vec<(String, String)>>) -> PageResult {
    staff.enter(Area::Settings)?;
    let ctx = &staff.ctx;
    let form = Typed { fields };
    let in_force = web.app.policy(&staff.actor, None).await.map_err(|e| ctx.app_error(&e))?;
    let unprocessable = StatusCode::UNPROCESSABLE_ENTITY;
    let outcome = match form.doc(ctx, &in_force.doc()) {
        Err(errors) => Err((errors, unprocessable)),
        Ok(doc) if form.get("action") == "preview" => doc
            .into_policy()
            .map_err(|e| (FieldErrors::from_app(ctx, &e, "form"), unprocessable))
            .and_then(|policy| sample_decision(ctx, &form, &policy).map_err(|errors| (errors, unprocessable)))
            .map(Some),
        Ok(doc) => match web.app.set_policy(&staff.actor, None, doc).await {
            Ok(saved) => return Ok(Redirect::to(&format!("/settings/policy?saved={}", saved.version)).into_response()),
            Err(e) => Err((FieldErrors::from_app(ctx, &e, "form"), crate::page::status_of(e.code))),
        },
    };
    match outcome {
        Ok(preview) => page(&web, &staff, Some(form), FieldErrors::default(), preview, false).await,
        Err((errors, status)) => {
            Ok((status, page(&web, &staff, Some(form), errors, None, false).await?).into_response())
        }
    }
}

/// The typed policy's decision for the sample refund the form describes.
fn sample_decision(ctx: &Ctx, form: &Typed, policy: &RefundPolicy) -> Result<PreviewView, FieldErrors> {
    let mut errors = FieldErrors::default();
    let sale_minor =
        parse_major(form.get("sample_sale"), CURRENCY).map_err(|e| errors.add("sample_sale", ctx.t(e.key())));
    let ask_minor =
        parse_major(form.get("sample_amount"), CURRENCY).map_err(|e| errors.add("sample_amount", ctx.t(e.key())));
    let days =
        form.get("sample_days").parse::<u16>().map_err(|_| errors.add("sample_days", ctx.t("settings.whole_number")));
    let reason = RefundReason::parse(form.get("sample_reason"));
    let (Ok(sale_minor), Ok(ask_minor), Ok(days), Some(reason)) = (sale_minor, ask_minor, days, reason) else {
        if errors.is_empty() {
            errors.add("sample_reason", ctx.t("counter.choose_reason"));
        }
        return Err(errors);
    };
    let payment_method = match form.get("sample_method") {
        "wallet" => PaymentMethod::Wallet { wallet: Wallet::ALL[0] },
        "cash" => PaymentMethod::Cash,
        _ => PaymentMethod::Card {
            brand: CardBrand::UnionPay,
            first6: First6::parse("622202").expect("six digits"),
            last4: Last4::parse("0000").expect("four digits"),
            entry_mode: EntryMode::Chip,
        },
    };
    let now = jiff::Timestamp::now();
    let captured_at = now - jiff::SignedDuration::from_hours(24 * i64::from(days));
    let sale = Sale {
        id: SaleId::generate(),
        merchant_id: MerchantId::generate(),
        store_id: StoreId::generate(),
        terminal_id: "SAMPLE".into(),
        amount: Money::new(sale_minor, CURRENCY),
        payment_method,
        voucher_no: None,
        rrn: None,
        auth_code: None,
        batch_no: None,
        captured_at,
        created_at: captured_at,
        items: Vec::new(),
        cashier: None,
    };
    let actor = ActorFacts { user: None, refunded_today_minor: 0 };
    let request = PolicyRequest {
        sale: &sale,
        sale_cashier: None,
        priors: &[],
        amount_minor: ask_minor,
        reason,
        actor: &actor,
        now,
    };
    let decision = decide(policy, &request);
    Ok(PreviewView {
        outcome: ctx.t(&format!("outcome.{}", decision.outcome.as_str())),
        outcome_code: decision.outcome.as_str(),
        reasons: decision_reasons(ctx, &decision),
    })
}
