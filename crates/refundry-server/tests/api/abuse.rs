//! The refund-abuse rules through the API, each on a made-up history where
//! it must fire and one where it must not.

use jiff::{SignedDuration, Timestamp};
use refundry_app::abuse::{AbuseDoc, CashierRateDoc, JustUnderLimitDoc, OpeningHoursDoc, QuickRefundDoc};
use refundry_app::policy::PolicyDoc;
use refundry_core::policy::RefundPolicy;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::*;

fn all_off() -> AbuseDoc {
    AbuseDoc {
        refund_to_other_card: None,
        just_under_limit: None,
        quick_refund_by_same_cashier: None,
        outside_opening_hours: None,
        cashier_rate_outlier: None,
    }
}

async fn set_rules(t: &TestApp, abuse: AbuseDoc) {
    let rules = PolicyDoc { abuse, ..PolicyDoc::from(&RefundPolicy::default()) };
    let res = t.client.put(format!("{}/v1/policy", t.base)).bearer_auth(&t.key).json(&json!({"rules": rules}));
    let res = res.send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK, "{}", res.text().await.unwrap());
}

fn sale(amount: i64, token: Option<&str>, captured_at: &str) -> Value {
    let mut s = card_sale();
    s["amount"] = json!(amount);
    s["items"] = json!([]);
    s["captured_at"] = json!(captured_at);
    if let Some(token) = token {
        s["payment_method"]["fingerprint"] = json!(token);
    }
    s
}

fn codes(refund: &Value) -> Vec<String> {
    refund["decision"]["reasons"].as_array().unwrap().iter().map(|r| r["code"].as_str().unwrap().to_owned()).collect()
}

async fn alerts(t: &TestApp, refund: &Value) -> Vec<String> {
    let audit: Value = t.get_json("/v1/audit-events?limit=500").await;
    audit["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "refund.abuse_alert" && e["subject"] == refund["id"])
        .map(|e| e["data"]["code"].as_str().unwrap().to_owned())
        .collect()
}

async fn refund(t: &TestApp, key: &str, body: Value) -> Value {
    let res = t.refund(key, body).await;
    assert_eq!(res.status(), StatusCode::CREATED, "{}", res.text().await.unwrap());
    res.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refund_to_another_card_waits_for_a_supervisor_and_the_same_card_does_not() {
    let mut t = spawn().await;
    set_rules(&t, AbuseDoc { refund_to_other_card: Some("hold_for_approval".into()), ..all_off() }).await;
    let s = t.create_sale(sale(10000, Some("acq-tok-1"), &minutes_ago(60))).await;
    let other = refund(
        &t,
        "oc-1",
        json!({"sale_id": s["id"], "amount": 1000, "reason": "defective",
        "card_fingerprint": "acq-tok-2"}),
    )
    .await;
    assert_eq!(other["status"], "requires_approval");
    assert!(codes(&other).contains(&"refund_to_other_card".to_owned()), "{other}");
    assert!(!other["decision"]["reasons"][0]["zh"].as_str().unwrap().is_empty());
    let same = refund(
        &t,
        "oc-2",
        json!({"sale_id": s["id"], "amount": 1000, "reason": "defective",
        "card_fingerprint": "acq-tok-1"}),
    )
    .await;
    assert_eq!(same["status"], "pending", "{same}");
    let none = refund(&t, "oc-3", json!({"sale_id": s["id"], "amount": 1000, "reason": "defective"})).await;
    assert_eq!(none["status"], "pending", "no card presented: the money goes back the way it came");
    assert!(!t.stored_anywhere("acq-tok-2"));

    // the rule turned off
    set_rules(&t, all_off()).await;
    let off = refund(
        &t,
        "oc-4",
        json!({"sale_id": s["id"], "amount": 1000, "reason": "defective",
        "card_fingerprint": "acq-tok-2"}),
    )
    .await;
    assert_eq!(off["status"], "pending");
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refunds_just_under_the_limit_again_and_again_raise_an_alert() {
    let mut t = spawn().await;
    let rule = JustUnderLimitDoc { min_count: 3, days: 7, within_percent: 10, action: "alert".into() };
    set_rules(&t, AbuseDoc { just_under_limit: Some(rule), ..all_off() }).await;
    // the supervisor limit is 500.00: 460.00 is within 10 % under it
    let mut made = Vec::new();
    for i in 0..3 {
        let s = t.create_sale(sale(50000, None, &minutes_ago(300 - 60 * i))).await;
        made.push(
            refund(&t, &format!("ju-{i}"), json!({"sale_id": s["id"], "amount": 46000, "reason": "defective"})).await,
        );
    }
    assert!(alerts(&t, &made[0]).await.is_empty());
    assert!(alerts(&t, &made[1]).await.is_empty(), "two is not yet a pattern");
    assert_eq!(alerts(&t, &made[2]).await, ["just_under_limit"]);
    assert_eq!(made[2]["status"], "pending", "an alert lets the refund through");
    let s = t.create_sale(sale(50000, None, &minutes_ago(60))).await;
    let small = refund(&t, "ju-small", json!({"sale_id": s["id"], "amount": 20000, "reason": "defective"})).await;
    assert!(alerts(&t, &small).await.is_empty(), "far under the limit");
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cashier_refunding_their_own_fresh_sale_raises_an_alert() {
    let mut t = spawn().await;
    set_rules(
        &t,
        AbuseDoc {
            quick_refund_by_same_cashier: Some(QuickRefundDoc { minutes: 30, action: "alert".into() }),
            ..all_off()
        },
    )
    .await;
    let li = t.person("li.na", "cashier").await;
    let zhou = t.person("zhou.qi", "cashier").await;
    let fresh: Value =
        t.post_as(&li, "/v1/sales", &sale(8000, None, &minutes_ago(5))).send().await.unwrap().json().await.unwrap();
    let old: Value =
        t.post_as(&li, "/v1/sales", &sale(8000, None, &minutes_ago(120))).send().await.unwrap().json().await.unwrap();
    let refund_as = |token: String, sale: Value, key: &'static str| {
        let t = &t;
        async move {
            let res = t
                .post_as(&token, "/v1/refunds", &json!({"sale_id": sale["id"], "amount": 1000, "reason": "defective"}))
                .header("Idempotency-Key", key)
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::CREATED, "{}", res.text().await.unwrap());
            res.json::<Value>().await.unwrap()
        }
    };
    let own_fresh = refund_as(li.clone(), fresh.clone(), "q-1").await;
    assert_eq!(alerts(&t, &own_fresh).await, ["quick_refund_by_same_cashier"]);
    let own_old = refund_as(li.clone(), old, "q-2").await;
    assert!(alerts(&t, &own_old).await.is_empty(), "two hours after the sale");
    let other_fresh = refund_as(zhou, fresh, "q-3").await;
    assert!(alerts(&t, &other_fresh).await.is_empty(), "another cashier");
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refunds_outside_opening_hours_wait_for_a_supervisor() {
    let mut t = spawn().await;
    let tz = jiff::tz::TimeZone::get("Asia/Shanghai").unwrap();
    let hour = Timestamp::now().to_zoned(tz).hour();
    // open for one hour starting two hours from now: now is outside
    let closed = OpeningHoursDoc {
        open: format!("{:02}:00", (hour + 2) % 24),
        close: format!("{:02}:00", (hour + 3) % 24),
        action: "hold_for_approval".into(),
    };
    set_rules(&t, AbuseDoc { outside_opening_hours: Some(closed), ..all_off() }).await;
    let s = t.create_sale(sale(10000, None, &minutes_ago(60))).await;
    let late = refund(&t, "oh-1", json!({"sale_id": s["id"], "amount": 1000, "reason": "defective"})).await;
    assert_eq!(late["status"], "requires_approval");
    assert!(codes(&late).contains(&"outside_opening_hours".to_owned()), "{late}");
    // the same time twice: always open
    let always = OpeningHoursDoc { open: "08:00".into(), close: "08:00".into(), action: "hold_for_approval".into() };
    set_rules(&t, AbuseDoc { outside_opening_hours: Some(always), ..all_off() }).await;
    let open = refund(&t, "oh-2", json!({"sale_id": s["id"], "amount": 1000, "reason": "defective"})).await;
    assert_eq!(open["status"], "pending");
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_abuse_rule_is_refused_when_the_policy_is_written() {
    let mut t = spawn().await;
    let rules = PolicyDoc {
        abuse: AbuseDoc { refund_to_other_card: Some("shout".into()), ..all_off() },
        ..PolicyDoc::from(&RefundPolicy::default())
    };
    let res = t.client.put(format!("{}/v1/policy", t.base)).bearer_auth(&t.key).json(&json!({"rules": rules}));
    let p = problem(res.send().await.unwrap(), StatusCode::UNPROCESSABLE_ENTITY, "invalid_policy").await;
    assert_eq!(p["field"], "abuse.refund_to_other_card");
    let policy: Value = t.get_json("/v1/policy").await;
    assert_eq!(policy["rules"]["abuse"]["refund_to_other_card"], "hold_for_approval", "the defaults still hold");
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cashier_refunding_far_more_often_than_the_peers_raises_an_alert() {
    let mut t = spawn().await;
    let rule = CashierRateDoc { multiple_of_median: 3, min_refunds: 5, min_peers: 3, action: "alert".into() };
    set_rules(&t, AbuseDoc { cashier_rate_outlier: Some(rule), ..all_off() }).await;
    let names = ["peer.a", "peer.b", "peer.c", "odd.one"];
    let mut tokens = Vec::new();
    for name in names {
        tokens.push(t.person(name, "cashier").await);
    }
    // ten sales each; the peers refund one, the odd one out six
    let mut n = 0;
    for (who, token) in tokens.iter().enumerate() {
        let mut sales = Vec::new();
        for _ in 0..10 {
            n += 1;
            let res = t.post_as(token, "/v1/sales", &sale(5000, None, &minutes_ago(600 + n))).send().await.unwrap();
            assert_eq!(res.status(), StatusCode::CREATED);
            sales.push(res.json::<Value>().await.unwrap());
        }
        let refunds = if who == 3 { 6 } else { 1 };
        for sale in sales.iter().take(refunds) {
            let body = json!({"sale_id": sale["id"], "amount": 500, "reason": "defective"});
            let res = t
                .post_as(token, "/v1/refunds", &body)
                .header("Idempotency-Key", format!("cr-{n}-{}", sale["id"]))
                .send();
            assert_eq!(res.await.unwrap().status(), StatusCode::CREATED);
        }
    }
    t.app.count_cashier_activity(Timestamp::now() + SignedDuration::from_secs(1)).await.unwrap();
    let next = |token: String, key: &'static str| {
        let t = &t;
        async move {
            let mine = t.post_as(&token, "/v1/sales", &sale(5000, None, &minutes_ago(300))).send().await.unwrap();
            let mine: Value = mine.json().await.unwrap();
            let body = json!({"sale_id": mine["id"], "amount": 500, "reason": "defective"});
            let res = t.post_as(&token, "/v1/refunds", &body).header("Idempotency-Key", key).send().await.unwrap();
            assert_eq!(res.status(), StatusCode::CREATED);
            res.json::<Value>().await.unwrap()
        }
    };
    let odd = next(tokens[3].clone(), "cr-odd").await;
    assert_eq!(alerts(&t, &odd).await, ["cashier_rate_outlier"], "6 refunds on 10 sales against 1 on 10");
    let peer = next(tokens[0].clone(), "cr-peer").await;
    assert!(alerts(&t, &peer).await.is_empty());
    t.shutdown().await;
}
