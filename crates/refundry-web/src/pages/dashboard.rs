//! The dashboard (概览): the figures of `refundry_app::reports` as charts and,
//! beneath them, as tables, which are what screen readers and browsers
//! without JavaScript get. The charts read their data from a JSON block
//! (`#dashboard-data`) since the pages allow no inline script.

use askama::Template;
use axum::extract::State;
use refundry_app::reports::{Dashboard, Period, Spread, Tally};
use refundry_core::money::{Currency, Money};
use refundry_core::ratio::{LevelThreshold, RatioThresholds};
use serde_json::json;

use crate::Web;
use crate::format;
use crate::nav::Area;
use crate::page::{Ctx, PageResult, Staff, render};

/// One period's tile.
pub struct PeriodView {
    pub label: &'static str,
    pub count: u64,
    pub amount: String,
    pub sales_count: u64,
    pub sales_amount: String,
    pub amount_rate: String,
    pub count_rate: String,
}

/// One line of a "by …" table.
pub struct Line {
    pub name: String,
    pub count: u64,
    pub amount: String,
}

/// A "by …" table of this month.
pub struct Group {
    pub title: &'static str,
    pub testid: &'static str,
    pub lines: Vec<Line>,
}

pub struct TimingView {
    pub label: &'static str,
    pub count: usize,
    pub median: String,
    pub p90: String,
}

pub struct RatioView {
    pub programme: &'static str,
    pub level_code: &'static str,
    pub level: &'static str,
    pub disputes: u64,
    pub sales: u64,
    pub count_rate: String,
    pub amount_rate: String,
    pub thresholds: Vec<(&'static str, String)>,
    pub reasons: Vec<String>,
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct DashboardPage<'a> {
    ctx: &'a Ctx,
    periods: Vec<PeriodView>,
    groups: Vec<Group>,
    by_day: Vec<Line>,
    timings: Vec<TimingView>,
    timing_capped: bool,
    ratios: Vec<RatioView>,
    chart_json: String,
}

pub async fn show(State(web): State<Web>, mut staff: Staff) -> PageResult {
    staff.enter(Area::Dashboard)?;
    let ctx = &staff.ctx;
    let d = web.app.dashboard(&staff.actor).await.map_err(|e| ctx.app_error(&e))?;
    let cur = d.currency;
    let line =
        |name: String, t: &Tally| Line { name, count: t.count, amount: format::money(Money::new(t.amount_minor, cur)) };
    let by_reason: Vec<Line> =
        d.by_reason.iter().map(|(code, t)| line(ctx.t(&format!("reason.{code}")).to_owned(), t)).collect();
    let by_store: Vec<Line> = d.by_store.iter().map(|(id, name, t)| line(store_name(id, name), t)).collect();
    let by_cashier: Vec<Line> = d.by_cashier.iter().map(|(who, t)| line(ctx.who(who), t)).collect();
    let by_day: Vec<Line> = d.by_day.iter().map(|(day, t)| line(day.to_string(), t)).collect();
    let chart_json = chart_data(ctx, &d, [&by_reason, &by_store, &by_cashier]);
    let page = DashboardPage {
        ctx,
        periods: periods(ctx, &d),
        groups: vec![
            Group { title: ctx.t("dashboard.by_reason"), testid: "dashboard-reasons", lines: by_reason },
            Group { title: ctx.t("dashboard.by_store"), testid: "dashboard-stores", lines: by_store },
            Group { title: ctx.t("dashboard.by_cashier"), testid: "dashboard-cashiers", lines: by_cashier },
        ],
        by_day,
        timings: timings(ctx, &d),
        timing_capped: d.timing_capped,
        ratios: ratios(ctx, &d),
        chart_json,
    };
    Ok(render(&page))
}

fn store_name(id: &refundry_core::ids::StoreId, name: &str) -> String {
    if name.is_empty() { id.to_string() } else { name.to_owned() }
}

fn periods(ctx: &Ctx, d: &Dashboard) -> Vec<PeriodView> {
    let view = |key: &str, p: &Period| PeriodView {
        label: ctx.t(key),
        count: p.refunds.count,
        amount: format::money(Money::new(p.refunds.amount_minor, d.currency)),
        sales_count: p.sales.count,
        sales_amount: format::money(Money::new(p.sales.amount_minor, d.currency)),
        amount_rate: percent(p.amount_rate_bps()),
        count_rate: percent(p.count_rate_bps()),
    };
    vec![view("dashboard.today", &d.today_period), view("dashboard.week", &d.week), view("dashboard.month", &d.month)]
}

/// Basis points as `3.37 %`; a dash without a base.
pub fn percent(bps: Option<i64>) -> String {
    match bps {
        Some(b) => format!("{}.{:02} %", b / 100, b % 100),
        None => "–".to_owned(),
    }
}

fn timings(ctx: &Ctx, d: &Dashboard) -> Vec<TimingView> {
    let view = |key: &str, s: &Option<Spread>| TimingView {
        label: ctx.t(key),
        count: s.map(|s| s.count).unwrap_or(0),
        median: s.map(|s| duration(ctx, s.median_s)).unwrap_or_else(|| "–".into()),
        p90: s.map(|s| duration(ctx, s.p90_s)).unwrap_or_else(|| "–".into()),
    };
    vec![view("dashboard.to_completed", &d.to_completed), view("dashboard.to_arrived", &d.to_arrived)]
}

/// A span of seconds as people say it: the two largest units.
pub fn duration(ctx: &Ctx, seconds: i64) -> String {
    let s = seconds.max(0);
    let (d, h, m) = (s / 86_400, s % 86_400 / 3_600, s % 3_600 / 60);
    let unit = |n: i64, key: &str| format!("{n} {}", ctx.t(key));
    match (d, h, m) {
        (0, 0, 0) => unit(s, "dashboard.unit_s"),
        (0, 0, m) => unit(m, "dashboard.unit_min"),
        (0, h, m) => format!("{} {}", unit(h, "dashboard.unit_h"), unit(m, "dashboard.unit_min")),
        (d, h, _) => format!("{} {}", unit(d, "dashboard.unit_d"), unit(h, "dashboard.unit_h")),
    }
}

fn ratios(ctx: &Ctx, d: &Dashboard) -> Vec<RatioView> {
    d.chargebacks
        .iter()
        .map(|(w, t)| {
            let a = &w.assessment;
            RatioView {
                programme: ctx.t(&format!("dashboard.programme_{}", a.programme.as_str())),
                level_code: a.level.as_str(),
                level: ctx.t(&format!("dashboard.level_{}", a.level.as_str())),
                disputes: w.stats.disputes_count,
                sales: w.stats.sales_count,
                count_rate: percent(a.count_ratio_bps.map(|b| i64::try_from(b).unwrap_or(i64::MAX))),
                amount_rate: percent(a.amount_ratio_bps.map(|b| i64::try_from(b).unwrap_or(i64::MAX))),
                thresholds: thresholds(ctx, t),
                reasons: a.reasons.iter().map(|r| if ctx.lang.is_zh() { r.zh.clone() } else { r.en.clone() }).collect(),
            }
        })
        .collect()
}

fn thresholds(ctx: &Ctx, t: &RatioThresholds) -> Vec<(&'static str, String)> {
    let at = |l: &LevelThreshold| {
        format!("≥ {} · ≥ {} {}", percent(Some(i64::from(l.ratio_bps))), l.min_count, ctx.t("dashboard.disputes_unit"))
    };
    [("monitored", t.monitored), ("excessive", t.excessive), ("high_excessive", t.high_excessive)]
        .into_iter()
        .filter_map(|(level, l)| l.map(|l| (ctx.t(&format!("dashboard.level_{level}")), at(&l))))
        .collect()
}

/// The charts' data: names already in the visitor's language, amounts as
/// decimal strings in major units (ECharts reads them as numbers; nothing
/// here is added up in floating point).
fn chart_data(ctx: &Ctx, d: &Dashboard, [reasons, stores, cashiers]: [&Vec<Line>; 3]) -> String {
    let major = |minor: i64, cur: Currency| format::major(minor, cur);
    let pairs = |lines: &[Line], tallies: Vec<i64>| {
        lines
            .iter()
            .zip(tallies)
            .map(|(l, minor)| json!({"name": l.name, "value": major(minor, d.currency), "count": l.count}))
            .collect::<Vec<_>>()
    };
    let v = json!({
        "labels": {
            "amount": ctx.t("dashboard.amount"),
            "count": ctx.t("dashboard.count"),
            "currency": d.currency.code().to_uppercase(),
        },
        "days": {
            "dates": d.by_day.iter().map(|(day, _)| day.strftime("%m-%d").to_string()).collect::<Vec<_>>(),
            "amounts": d.by_day.iter().map(|(_, t)| major(t.amount_minor, d.currency)).collect::<Vec<_>>(),
            "counts": d.by_day.iter().map(|(_, t)| t.count).collect::<Vec<_>>(),
        },
        "reasons": pairs(reasons, d.by_reason.iter().map(|(_, t)| t.amount_minor).collect()),
        "stores": pairs(stores, d.by_store.iter().map(|(_, _, t)| t.amount_minor).collect()),
        "cashiers": pairs(cashiers, d.by_cashier.iter().map(|(_, t)| t.amount_minor).collect()),
    });
    // inside <script type="application/json">: no `<` may end the block early
    v.to_string().replace('<', "\\u003c").replace('>', "\\u003e").replace('&', "\\u0026")
}

#[cfg(test)]
mod tests {
    #[test]
    fn basis_points_read_as_percent() {
        assert_eq!(super::percent(Some(337)), "3.37 %");
        assert_eq!(super::percent(Some(10_000)), "100.00 %");
        assert_eq!(super::percent(Some(5)), "0.05 %");
        assert_eq!(super::percent(None), "–");
    }
}
