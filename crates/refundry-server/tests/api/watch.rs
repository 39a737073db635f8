use jiff::{SignedDuration, Timestamp, ToSpan};
use refundry_app::AppConfig;
use refundry_app::disputes::DisputeConfig;
use refundry_core::ratio::{LevelThreshold, Programme, RatioThresholds};
use refundry_server::ServerConfig;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::*;

async fn events(t: &TestApp, action: &str) -> Vec<Value> {
    let audit: Value = t.get("/v1/audit-events?limit=500").send().await.unwrap().json().await.unwrap();
    audit["data"].as_array().unwrap().iter().filter(|e| e["action"] == action).cloned().collect()
}

async fn open(t: &TestApp, sale: &Value, case_ref: &str, due_by: &str) -> String {
    let body = json!({"sale_id": sale["id"], "case_ref": case_ref, "network": "mastercard", "reason_code": "4853",
        "amount": 1000, "due_by": due_by});
    let res = t.post("/v1/disputes", &body).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let case: Value = res.json().await.unwrap();
    case["id"].as_str().unwrap().to_owned()
}

fn before(due: &str, hours: i64) -> Timestamp {
    due.parse::<Timestamp>().unwrap() - SignedDuration::from_hours(hours)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reminders_go_out_once_per_case_and_threshold_before_the_deadline() {
    let mut t = spawn().await;
    let sale = t.create_sale(card_sale()).await;
    let due = "2030-12-20T00:00:00Z";
    let early = open(&t, &sale, "CB-REMIND-1", due).await;
    // reaches the merchant with two days left: the 7-day reminder is moot
    let late = open(&t, &sale, "CB-REMIND-2", "2030-12-16T00:00:00Z").await;
    let answered = open(&t, &sale, "CB-REMIND-3", due).await;
    let res = t.post(&format!("/v1/disputes/{answered}/events"), &json!({"event": "submit_evidence"})).send().await;
    assert_eq!(res.unwrap().status(), StatusCode::OK);

    let app = &t.app;
    assert_eq!(app.send_deadline_reminders(before(due, 19 * 24)).await.unwrap(), 0, "nineteen days out");
    // 6.5 days before `early`, 2.5 days before `late`
    assert_eq!(app.send_deadline_reminders(before(due, 156)).await.unwrap(), 2);
    assert_eq!(app.send_deadline_reminders(before(due, 156)).await.unwrap(), 0, "a second tick sends nothing");
    assert_eq!(app.send_deadline_reminders(before(due, 150)).await.unwrap(), 0);
    // two instances at once: one of them sends
    let (a, b) =
        tokio::join!(app.send_deadline_reminders(before(due, 60)), app.send_deadline_reminders(before(due, 60)));
    assert_eq!(a.unwrap() + b.unwrap(), 1, "the 3-day reminder of `early`, once");
    assert_eq!(app.send_deadline_reminders(before(due, 12)).await.unwrap(), 1, "the 1-day reminder of `early`");
    assert_eq!(app.send_deadline_reminders(before(due, 1)).await.unwrap(), 0);

    let sent = events(&t, "dispute.deadline_reminder").await;
    let of = |case: &str| -> Vec<u64> {
        sent.iter().filter(|e| e["subject"] == case).map(|e| e["data"]["days_before"].as_u64().unwrap()).collect()
    };
    assert_eq!(of(&early), [7, 3, 1]);
    assert_eq!(of(&late), [3], "only the tightest threshold it was inside when first seen");
    assert!(of(&answered).is_empty(), "an answered case needs no reminder");
    let first = sent.iter().find(|e| e["subject"] == early.as_str()).unwrap();
    assert_eq!(first["data"]["case_ref"], "CB-REMIND-1");
    assert!(!first["data"]["zh"].as_str().unwrap().is_empty() && !first["data"]["en"].as_str().unwrap().is_empty());
    t.shutdown().await;
}

/// Low thresholds so a handful of cases reach them: monitored at 10 % and
/// 2 chargebacks, excessive at 20 % and 3, nearing at half of the first.
fn low_thresholds() -> AppConfig {
    let mastercard_ecp = RatioThresholds {
        programme: Programme::MastercardEcp,
        monitored: Some(LevelThreshold { ratio_bps: 1000, min_count: 2 }),
        excessive: Some(LevelThreshold { ratio_bps: 2000, min_count: 3 }),
        high_excessive: None,
        nearing_percent: 50,
    };
    AppConfig { disputes: DisputeConfig { mastercard_ecp, ..DisputeConfig::default() }, ..AppConfig::default() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ratio_alerts_are_raised_once_per_month_programme_and_level() {
    let mut t = spawn_configured(ServerConfig::default(), low_thresholds()).await;
    // Mastercard divides this month's chargebacks by last month's sales;
    // cases open now, so the sales are dated last month
    let tz = jiff::tz::TimeZone::get("Asia/Shanghai").unwrap();
    let now = Timestamp::now();
    let last_month = now.to_zoned(tz.clone()).date().first_of_month().checked_sub(1.month()).unwrap();
    let mut sales = Vec::new();
    for i in 0..10 {
        let mut s = card_sale();
        s["voucher_no"] = json!(format!("{:06}", 500 + i));
        s["rrn"] = json!(format!("{:012}", 900_000 + i));
        s["captured_at"] = json!(format!("{last_month}T1{i}:00:00+08:00"));
        sales.push(t.create_sale(s).await);
    }
    let app = &t.app;
    let counts = |warning: usize, exceeded: usize| (warning, exceeded);
    let seen = async |t: &TestApp| {
        counts(events(t, "chargeback_ratio.warning").await.len(), events(t, "chargeback_ratio.exceeded").await.len())
    };
    app.check_chargeback_ratios(now).await.unwrap();
    assert_eq!(seen(&t).await, (0, 0), "no chargebacks, no alert");

    open(&t, &sales[0], "CB-RATIO-1", "2030-12-20T00:00:00Z").await;
    app.check_chargeback_ratios(now).await.unwrap();
    app.check_chargeback_ratios(now).await.unwrap();
    assert_eq!(seen(&t).await, (1, 0), "1 of 10: nearing, said once");
    let warning = &events(&t, "chargeback_ratio.warning").await[0];
    assert_eq!(warning["data"]["programme"], "mastercard_ecp");
    assert_eq!(warning["data"]["level"], "nearing");
    assert_eq!(warning["data"]["count_ratio_bps"], 1000);

    open(&t, &sales[1], "CB-RATIO-2", "2030-12-20T00:00:00Z").await;
    app.check_chargeback_ratios(now).await.unwrap();
    app.check_chargeback_ratios(now).await.unwrap();
    assert_eq!(seen(&t).await, (1, 1), "2 of 10: monitored");

    open(&t, &sales[2], "CB-RATIO-3", "2030-12-20T00:00:00Z").await;
    let (a, b) = tokio::join!(app.check_chargeback_ratios(now), app.check_chargeback_ratios(now));
    a.unwrap();
    b.unwrap();
    assert_eq!(seen(&t).await, (1, 2), "3 of 10: excessive, once across two checkers");
    let levels: Vec<String> = events(&t, "chargeback_ratio.exceeded")
        .await
        .iter()
        .map(|e| e["data"]["level"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(levels, ["monitored", "excessive"]);
    t.shutdown().await;
}
