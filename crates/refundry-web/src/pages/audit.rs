//! The audit log: the merchant's events newest first, filtered by action,
//! actor, subject and business days, each with what changed; and a check
//! of the whole hash chain.

use askama::Template;
use axum::extract::{Query, State};
use jiff::civil::Date;
use refundry_app::audit::{ChainBreak, verify_chain};
use refundry_core::ids::{RefundId, SaleId};
use refundry_store::model::{AuditEvent, AuditQuery};
use serde::Deserialize;
use serde_json::Value;

use super::views::action_name;
use crate::Web;
use crate::nav::Area;
use crate::page::{Ctx, FieldErrors, PageResult, Staff, render};

const PAGE: u32 = 50;

#[derive(Deserialize, Default)]
pub struct Filter {
    #[serde(default)]
    action: String,
    #[serde(default)]
    actor: String,
    #[serde(default)]
    subject: String,
    /// Business days, `YYYY-MM-DD`, both included.
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    before: String,
    #[serde(default)]
    verify: String,
}

/// One changed field: its name, before, after.
pub struct Change {
    pub field: String,
    pub before: String,
    pub after: String,
}

pub struct EventView {
    pub seq: i64,
    pub when: String,
    pub actor: String,
    /// The log filtered to this action, this actor, this subject.
    pub action_href: String,
    pub actor_href: String,
    pub subject_filter_href: String,
    pub source: String,
    pub action: String,
    pub action_code: String,
    pub subject: String,
    /// The subject's page, when it is a sale or a refund the visitor may open.
    pub subject_href: Option<String>,
    pub changes: Vec<Change>,
    /// Everything else the event recorded, `key: value`.
    pub facts: Vec<(String, String)>,
}

/// What checking the chain found.
pub struct ChainView {
    pub ok: bool,
    pub message: String,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage<'a> {
    ctx: &'a Ctx,
    f: &'a Filter,
    errors: FieldErrors,
    people: Vec<(String, String)>,
    /// The actor filtered on is not one of the people (a key, Refundry).
    actor_unknown: bool,
    dates: [(&'static str, &'static str, &'a str); 2],
    events: Vec<EventView>,
    next: Option<String>,
    chain: Option<ChainView>,
}

pub async fn list(State(web): State<Web>, mut staff: Staff, Query(f): Query<Filter>) -> PageResult {
    staff.enter(Area::Audit)?;
    let ctx = &staff.ctx;
    let mut errors = FieldErrors::default();
    let query = query_of(ctx, &f, &mut errors);
    let (events, next) = if errors.is_empty() {
        let found = web.app.search_audit(&staff.actor, query).await.map_err(|e| ctx.app_error(&e))?;
        let next = match (found.has_more, found.items.last()) {
            (true, Some(last)) => Some(next_query(&f, last.seq)),
            _ => None,
        };
        (found.items.iter().map(|e| event_view(&staff, e)).collect(), next)
    } else {
        (Vec::new(), None)
    };
    let chain = if f.verify == "1" { Some(check_chain(&web, &staff).await?) } else { None };
    let mut people: Vec<(String, String)> = ctx.people.iter().map(|(id, name)| (id.clone(), name.clone())).collect();
    people.sort_by(|a, b| a.1.cmp(&b.1));
    let actor_unknown = !f.actor.is_empty() && !people.iter().any(|p| p.0 == f.actor);
    let dates = [("from", ctx.t("audit.from"), f.from.as_str()), ("to", ctx.t("audit.to"), f.to.as_str())];
    Ok(render(&AuditPage { ctx, f: &f, errors, people, actor_unknown, dates, events, next, chain }))
}

fn query_of(ctx: &Ctx, f: &Filter, errors: &mut FieldErrors) -> AuditQuery {
    let text = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
    let mut day = |field: &str, s: &str, next_day: bool| {
        let s = s.trim();
        if s.is_empty() {
            return None;
        }
        let start = s
            .parse::<Date>()
            .ok()
            .and_then(|d| if next_day { d.tomorrow().ok() } else { Some(d) })
            .and_then(|d| d.to_zoned(ctx.tz.clone()).ok())
            .map(|z| z.timestamp());
        if start.is_none() {
            errors.add(field, ctx.t("audit.bad_date"));
        }
        start
    };
    let from = day("from", &f.from, false);
    let to = day("to", &f.to, true);
    if let (Some(a), Some(b)) = (from, to)
        && a >= b
    {
        errors.add("to", ctx.t("audit.bad_range"));
    }
    AuditQuery {
        action: text(&f.action),
        actor: text(&f.actor),
        subject: text(&f.subject),
        from,
        to,
        before_seq: f.before.trim().parse().ok(),
        limit: PAGE,
    }
}

fn next_query(f: &Filter, last_seq: i64) -> String {
    form_urlencoded::Serializer::new(String::new())
        .append_pair("action", &f.action)
        .append_pair("actor", &f.actor)
        .append_pair("subject", &f.subject)
        .append_pair("from", &f.from)
        .append_pair("to", &f.to)
        .append_pair("before", &last_seq.to_string())
        .finish()
}

fn event_view(staff: &Staff, e: &AuditEvent) -> EventView {
    let ctx = &staff.ctx;
    let data: Value = serde_json::from_str(&e.data).unwrap_or(Value::Null);
    let (changes, facts) = readable(&data);
    EventView {
        seq: e.seq,
        when: ctx.time(e.at),
        actor: ctx.who(&e.actor),
        action_href: filtered("action", &e.action),
        actor_href: filtered("actor", e.actor.split(" via ").next().unwrap_or(&e.actor)),
        subject_filter_href: filtered("subject", &e.subject),
        source: e.source.clone(),
        action: action_name(ctx, &e.action),
        action_code: e.action.clone(),
        subject: e.subject.clone(),
        subject_href: subject_href(staff, &e.subject),
        changes,
        facts,
    }
}

fn filtered(field: &str, value: &str) -> String {
    format!("/audit?{}", form_urlencoded::Serializer::new(String::new()).append_pair(field, value).finish())
}

fn subject_href(staff: &Staff, subject: &str) -> Option<String> {
    if SaleId::parse(subject).is_ok() && staff.may(Area::Sales) {
        Some(format!("/sales/{subject}"))
    } else if RefundId::parse(subject).is_ok() && staff.may(Area::Refunds) {
        Some(format!("/refunds/{subject}"))
    } else {
        None
    }
}

/// An event's data as people read it: `before`/`after` side by side, field
/// by field, and the rest as `key: value`.
pub fn readable(data: &Value) -> (Vec<Change>, Vec<(String, String)>) {
    let Some(obj) = data.as_object() else {
        return (Vec::new(), if data.is_null() { Vec::new() } else { vec![(String::new(), show(data))] });
    };
    let (before, after) = (&data["before"], &data["after"]);
    let mut changes = Vec::new();
    if before.is_object() || after.is_object() {
        let mut fields: Vec<&String> =
            before.as_object().into_iter().chain(after.as_object()).flat_map(|o| o.keys()).collect();
        fields.sort();
        fields.dedup();
        changes = fields
            .into_iter()
            .map(|k| Change { field: k.clone(), before: show(&before[k]), after: show(&after[k]) })
            .collect();
    }
    let facts = obj
        .iter()
        .filter(|(k, _)| changes.is_empty() || (k.as_str() != "before" && k.as_str() != "after"))
        .map(|(k, v)| (k.clone(), show(v)))
        .collect();
    (changes, facts)
}

fn show(v: &Value) -> String {
    match v {
        Value::Null => "–".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

async fn check_chain(web: &Web, staff: &Staff) -> Result<ChainView, axum::response::Response> {
    let ctx = &staff.ctx;
    let result = verify_chain(&web.app, staff.actor.merchant_id).await.map_err(|e| ctx.app_error(&e))?;
    let fill = |key: &str, pairs: &[(&str, i64)]| {
        pairs.iter().fold(ctx.t(key).to_owned(), |text, (name, n)| text.replace(&format!("{{{name}}}"), &n.to_string()))
    };
    Ok(match result {
        Ok(n) => ChainView { ok: true, message: fill("audit.chain_ok", &[("count", n as i64)]) },
        Err(ChainBreak::Altered { seq }) => {
            ChainView { ok: false, message: fill("audit.chain_altered", &[("seq", seq)]) }
        }
        Err(ChainBreak::Broken { seq, expected_seq }) => {
            ChainView { ok: false, message: fill("audit.chain_broken", &[("seq", seq), ("expected", expected_seq)]) }
        }
        Err(ChainBreak::Truncated { last_seq, head_seq }) => {
            ChainView { ok: false, message: fill("audit.chain_truncated", &[("last", last_seq), ("head", head_seq)]) }
        }
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn before_and_after_read_field_by_field() {
        let (changes, facts) = super::readable(
            &json!({"before": {"status": "pending"}, "after": {"status": "succeeded", "rrn": "1"}, "note": "ok"}),
        );
        let rows: Vec<_> = changes.iter().map(|c| (c.field.as_str(), c.before.as_str(), c.after.as_str())).collect();
        assert_eq!(rows, vec![("rrn", "–", "1"), ("status", "pending", "succeeded")]);
        assert_eq!(facts, vec![("note".to_owned(), "ok".to_owned())]);
    }

    #[test]
    fn data_without_before_and_after_is_listed() {
        let (changes, facts) = super::readable(&json!({"amount_minor": 2200, "reason": "defective"}));
        assert!(changes.is_empty());
        assert_eq!(
            facts,
            vec![("amount_minor".to_owned(), "2200".to_owned()), ("reason".to_owned(), "defective".to_owned())]
        );
    }
}
