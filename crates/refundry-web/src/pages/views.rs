//! Records as pages show them: text already in the visitor's language and
//! format, so templates only lay them out.

use refundry_app::sales::SaleView;
use refundry_app::timeline::Timeline;
use refundry_core::refund::RefundStatus;
use refundry_store::model::Refund;

use crate::format;
use crate::page::Ctx;

pub struct SaleRow {
    pub id: String,
    pub when: String,
    pub voucher: String,
    pub rrn: String,
    pub terminal: String,
    pub method: String,
    pub amount: String,
    pub refunded: String,
    pub refundable: String,
    pub fully_refunded: bool,
}

impl SaleRow {
    pub fn of(ctx: &Ctx, v: &SaleView) -> SaleRow {
        let s = &v.sale;
        let cur = s.amount.currency;
        SaleRow {
            id: s.id.to_string(),
            when: ctx.time(s.captured_at),
            voucher: s.voucher_no.clone().unwrap_or_default(),
            rrn: s.rrn.clone().unwrap_or_default(),
            terminal: s.terminal_id.clone(),
            method: format::method(&s.payment_method, ctx.lang),
            amount: ctx.money(s.amount),
            refunded: format::money(refundry_core::money::Money::new(v.refunded_minor, cur)),
            refundable: format::money(refundry_core::money::Money::new(v.refundable_minor, cur)),
            fully_refunded: v.refundable_minor == 0,
        }
    }
}

pub struct RefundRow {
    pub id: String,
    pub sale_id: String,
    pub when: String,
    pub kind: &'static str,
    pub status: &'static str,
    pub status_code: &'static str,
    pub amount: String,
    pub reason: &'static str,
    pub requested_by: String,
    pub final_status: bool,
}

impl RefundRow {
    pub fn of(ctx: &Ctx, r: &Refund) -> RefundRow {
        RefundRow {
            id: r.id.to_string(),
            sale_id: r.sale_id.to_string(),
            when: ctx.time(r.created_at),
            kind: ctx.t(&format!("kind.{}", r.refund_type.as_str())),
            status: ctx.t(&format!("status.{}", r.status.as_str())),
            status_code: r.status.as_str(),
            amount: ctx.money(r.amount),
            reason: ctx.t(&format!("reason.{}", r.reason.as_str())),
            requested_by: ctx.who(&r.requested_by),
            final_status: r.status.is_final(),
        }
    }
}

/// One reason of a policy decision, in the visitor's language.
pub struct ReasonLine {
    pub code: String,
    pub outcome: String,
    pub text: String,
}

/// The reasons stored with a refund's decision.
pub fn stored_reasons(ctx: &Ctx, decision_json: &str) -> Vec<ReasonLine> {
    let v: serde_json::Value = serde_json::from_str(decision_json).unwrap_or_default();
    let lang_key = if ctx.lang.is_zh() { "zh" } else { "en" };
    v["reasons"]
        .as_array()
        .map(|rs| {
            rs.iter()
                .map(|r| ReasonLine {
                    code: r["code"].as_str().unwrap_or_default().to_owned(),
                    outcome: r["outcome"].as_str().unwrap_or_default().to_owned(),
                    text: r[lang_key].as_str().unwrap_or_default().to_owned(),
                })
                .collect()
        })
        .unwrap_or_default()
}

pub fn decision_reasons(ctx: &Ctx, d: &refundry_core::policy::Decision) -> Vec<ReasonLine> {
    d.reasons
        .iter()
        .map(|r| ReasonLine {
            code: r.code.to_owned(),
            outcome: r.outcome.as_str().to_owned(),
            text: if ctx.lang.is_zh() { r.zh.clone() } else { r.en.clone() },
        })
        .collect()
}

/// One line of a timeline.
pub struct Step {
    pub when: String,
    pub what: String,
    pub who: String,
    pub detail: String,
}

/// Audit events and acquirer calls, merged in time order.
pub fn steps(ctx: &Ctx, t: &Timeline) -> Vec<Step> {
    let mut steps: Vec<(jiff::Timestamp, Step)> = t
        .events
        .iter()
        .map(|e| {
            let data: serde_json::Value = serde_json::from_str(&e.data).unwrap_or_default();
            let detail = event_detail(ctx, &e.action, &data);
            let what = action_name(ctx, &e.action);
            (e.at, Step { when: ctx.time(e.at), what, who: ctx.who(&e.actor), detail })
        })
        .collect();
    for c in &t.calls {
        let outcome = c.response_code.as_deref().map(|rc| format!("{} ({rc})", c.outcome)).unwrap_or(c.outcome.clone());
        steps.push((
            c.started_at,
            Step {
                when: ctx.time(c.started_at),
                what: format!("{} #{}", ctx.t("timeline.acquirer_answer"), c.attempt),
                who: c.processor.clone(),
                detail: format!("{} · {outcome} · {} ms · STAN {}", c.kind, c.duration_ms, c.stan),
            },
        ));
    }
    steps.sort_by_key(|(at, _)| *at);
    steps.into_iter().map(|(_, s)| s).collect()
}

pub fn action_name(ctx: &Ctx, action: &str) -> String {
    let key = format!("action.{}", action.replace('.', "_"));
    let text = ctx.t(&key);
    if text == key { action.to_owned() } else { text.to_owned() }
}

fn event_detail(ctx: &Ctx, action: &str, data: &serde_json::Value) -> String {
    let mut parts = Vec::new();
    if let Some(s) = data["after"]["status"].as_str().or(data["status"].as_str()) {
        parts.push(ctx.t(&format!("status.{s}")).to_owned());
    }
    if let Some(channels) = data["channels"].as_array().filter(|c| !c.is_empty()) {
        parts.push(channels.iter().filter_map(|c| c.as_str()).collect::<Vec<_>>().join(", "));
    }
    if let Some(note) = data["note"].as_str().filter(|n| !n.is_empty()) {
        parts.push(note.to_owned());
    }
    if let Some(reason) = data["failure_reason"].as_str().or(data["error"].as_str()) {
        parts.push(reason.to_owned());
    }
    if action == "refund.requested"
        && let Some(outcome) = data["decision"]["outcome"].as_str()
    {
        parts.push(format!("{}: {}", ctx.t("timeline.decision"), ctx.t(&format!("outcome.{outcome}"))));
    }
    parts.join(" · ")
}

/// How far a refund is, for the status badge's colour.
pub fn tone(status: RefundStatus) -> &'static str {
    match status {
        RefundStatus::Succeeded => "good",
        RefundStatus::Failed | RefundStatus::Rejected | RefundStatus::Expired | RefundStatus::Canceled => "bad",
        RefundStatus::RequiresApproval => "wait",
        RefundStatus::Pending | RefundStatus::Processing => "busy",
    }
}

/// A code and its name, for a filter's or a form's choices.
pub struct Choice {
    pub code: &'static str,
    pub label: &'static str,
    pub selected: bool,
}

/// The choices of `codes`, each named by the catalogue key `{prefix}.{code}`.
pub fn choices(ctx: &Ctx, prefix: &str, codes: impl Iterator<Item = &'static str>, current: &str) -> Vec<Choice> {
    codes.map(|code| Choice { code, label: ctx.t(&format!("{prefix}.{code}")), selected: code == current }).collect()
}
