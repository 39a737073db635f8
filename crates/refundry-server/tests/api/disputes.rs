use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::*;

fn dispute(sale: &Value, case_ref: &str, amount: i64) -> Value {
    json!({"sale_id": sale["id"], "case_ref": case_ref, "network": "visa", "reason_code": "13.1",
        "amount": amount, "due_by": "2030-12-20T00:00:00+08:00"})
}

async fn move_case(t: &TestApp, id: &str, event: &str) -> reqwest::Response {
    t.post(&format!("/v1/disputes/{id}/events"), &json!({"event": event})).send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_dispute_blocks_refunds_and_a_lost_one_counts_like_a_refund() {
    let mut t = spawn().await;
    let sale = t.create_sale(card_sale()).await;
    let res = t.post("/v1/disputes", &dispute(&sale, "CB-1", 6000)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let case: Value = res.json().await.unwrap();
    assert_eq!((case["stage"].as_str(), case["status"].as_str()), (Some("chargeback"), Some("needs_response")));
    assert_eq!(case["category"], "consumer_dispute");
    let id = case["id"].as_str().unwrap();

    let res = t.refund("d1", json!({"sale_id": sale["id"], "amount": 1000, "reason": "defective"})).await;
    problem(res, StatusCode::UNPROCESSABLE_ENTITY, "sale_disputed").await;

    assert_eq!(move_case(&t, id, "submit_evidence").await.status(), StatusCode::OK);
    let lost: Value = move_case(&t, id, "lose").await.json().await.unwrap();
    assert_eq!(lost["status"], "lost");
    let s: Value = t.get_json(&format!("/v1/sales/{}", sale["id"].as_str().unwrap())).await;
    assert_eq!(s["refundable_amount"], 4000, "the lost 60.00 is gone");
    let res = t.refund("d2", json!({"sale_id": sale["id"], "amount": 4001, "reason": "defective"})).await;
    let p = problem(res, StatusCode::UNPROCESSABLE_ENTITY, "refund_exceeds_refundable").await;
    assert_eq!(p["refundable_amount"], 4000);
    assert_eq!(
        t.refund("d3", json!({"sale_id": sale["id"], "amount": 4000, "reason": "defective"})).await.status(),
        StatusCode::CREATED
    );
    // a lost case is final
    problem(move_case(&t, id, "win").await, StatusCode::CONFLICT, "dispute_transition_not_allowed").await;
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retrieval_request_is_answered_and_the_same_case_is_one_case() {
    let mut t = spawn().await;
    let sale = t.create_sale(card_sale()).await;
    let mut body = dispute(&sale, "RR-9", 10000);
    body["stage"] = json!("retrieval_request");
    let first: Value = t.post("/v1/disputes", &body).send().await.unwrap().json().await.unwrap();
    let again: Value = t.post("/v1/disputes", &body).send().await.unwrap().json().await.unwrap();
    assert_eq!(first["id"], again["id"], "imported twice, one case");
    let id = first["id"].as_str().unwrap();
    problem(move_case(&t, id, "lose").await, StatusCode::CONFLICT, "dispute_transition_not_allowed").await;
    let closed: Value = move_case(&t, id, "respond_to_retrieval").await.json().await.unwrap();
    assert_eq!(closed["status"], "closed");
    assert_eq!(
        t.refund("r1", json!({"sale_id": sale["id"], "amount": 1000, "reason": "defective"})).await.status(),
        StatusCode::CREATED
    );
    let list: Value = t.get_json(&format!("/v1/disputes?sale_id={}", sale["id"].as_str().unwrap())).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sale_already_refunded_answers_the_dispute_with_the_refund() {
    let mut t = spawn().await;
    let sale = t.create_sale(card_sale()).await;
    let refund: Value = t
        .refund("x", json!({"sale_id": sale["id"], "amount": 10000, "reason": "defective"}))
        .await
        .json()
        .await
        .unwrap();
    t.settled_refund(refund["id"].as_str().unwrap()).await;
    let case: Value =
        t.post("/v1/disputes", &dispute(&sale, "CB-2", 10000)).send().await.unwrap().json().await.unwrap();
    let audit: Value = t.get_json("/v1/audit-events?limit=500").await;
    let opened = audit["data"].as_array().unwrap().iter().find(|e| e["action"] == "dispute.opened").unwrap();
    assert_eq!(opened["subject"], case["id"]);
    // the whole unsettled card sale was voided: the cardholder was never charged
    assert_eq!(opened["data"]["refund_evidence"]["code"], "sale_voided", "{opened}");
    t.shutdown().await;
}

/// Refunds racing a chargeback on the same sale: none is created once the
/// case is open, and together they never exceed the sale.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refunds_racing_a_dispute_never_slip_past_it() {
    let mut t = spawn().await;
    let sale = t.create_sale(card_sale()).await;
    let refunds = (0..20)
        .map(|i| t.refund(format!("race-{i}"), json!({"sale_id": sale["id"], "amount": 300, "reason": "other"})));
    let case = t.post("/v1/disputes", &dispute(&sale, "CB-RACE", 5000)).send();
    let (answers, case) = tokio::join!(join_all(refunds), case);
    let case: Value = case.unwrap().json().await.unwrap();
    let opened: jiff::Timestamp = case["opened_at"].as_str().unwrap().parse().unwrap();
    let mut made = 0;
    for res in answers {
        match res.status() {
            StatusCode::CREATED => {
                let r: Value = res.json().await.unwrap();
                let at: jiff::Timestamp = r["created_at"].as_str().unwrap().parse().unwrap();
                assert!(at <= opened, "a refund was made after the case opened");
                made += 1;
            }
            StatusCode::UNPROCESSABLE_ENTITY => {
                let p: Value = res.json().await.unwrap();
                assert_eq!(p["code"], "sale_disputed");
            }
            other => panic!("unexpected {other}"),
        }
    }
    let list: Value = t.get_json(&format!("/v1/refunds?sale_id={}&limit=100", sale["id"].as_str().unwrap())).await;
    assert_eq!(list["data"].as_array().unwrap().len(), made);
    t.shutdown().await;
}

async fn import(t: &TestApp, csv: &str) -> (StatusCode, Value) {
    let res = t
        .client
        .post(format!("{}/v1/disputes/import", t.base))
        .bearer_auth(&t.key)
        .header("content-type", "text/csv")
        .body(csv.to_owned())
        .send()
        .await
        .unwrap();
    (res.status(), res.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dispute_file_imports_whole_or_not_at_all_and_only_once() {
    let mut t = spawn().await;
    let first = t.create_sale(card_sale()).await;
    let mut other = card_sale();
    other["rrn"] = json!("999999999999");
    other["voucher_no"] = json!("000777");
    t.create_sale(other).await;
    let header = "case_ref,network,reason_code,stage,amount,currency,due_by,rrn,voucher_no,terminal_id,note\n";
    let bad = format!(
        "{header}CB-A,visa,13.1,chargeback,5000,cny,2030-12-20T00:00:00Z,123456789012,,,\n\
         CB-B,visa,13.1,chargeback,-5,cny,2030-12-20T00:00:00Z,999999999999,,,\n\
         CB-C,visa,13.1,chargeback,100,cny,2030-12-20T00:00:00Z,000000000000,,,\n\
         CB-D,visa,13.1,chargeback,100,cny,2030-12-20T00:00:00Z,,,,card 4111 1111 1111 1111\n"
    );
    let (status, report) = import(&t, &bad).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let rows: Vec<(u64, String)> = report["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["row"].as_u64().unwrap(), e["field"].as_str().unwrap().to_owned()))
        .collect();
    assert!(rows.contains(&(3, "amount".into())), "{report}");
    assert!(rows.contains(&(5, "sensitive_card_data".into())), "{report}");
    assert!(!report.to_string().contains("4111"), "the card number is not echoed");
    let list: Value = t.get_json("/v1/disputes").await;
    assert!(list["data"].as_array().unwrap().is_empty(), "nothing changed");

    let good = format!(
        "{header}CB-A,visa,13.1,chargeback,5000,cny,2030-12-20T00:00:00Z,123456789012,,,\n\
         CB-B,mastercard,4853,,3000,cny,2030-12-21T00:00:00+08:00,,000777,T0001,found by voucher\n"
    );
    let (status, report) = import(&t, &good).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!((report["opened"].as_u64(), report["already_known"].as_u64()), (Some(2), Some(0)));
    let (_, again) = import(&t, &good).await;
    assert_eq!((again["opened"].as_u64(), again["already_known"].as_u64()), (Some(0), Some(2)));
    let list: Value = t.get_json("/v1/disputes").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 2);
    let res = t.refund("after-import", json!({"sale_id": first["id"], "amount": 100, "reason": "other"})).await;
    problem(res, StatusCode::UNPROCESSABLE_ENTITY, "sale_disputed").await;
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chargeback_ratio_is_held_against_the_networks_programmes() {
    let mut t = spawn().await;
    // a chargeback counts in the month it was recorded: the sales and the
    // report are of this month (business time, Asia/Shanghai)
    let now = jiff::Timestamp::now().to_zoned(jiff::tz::TimeZone::get("Asia/Shanghai").unwrap());
    let month_start = now.first_of_month().unwrap().start_of_day().unwrap().timestamp();
    let mut last = None;
    for i in 0..3 {
        let mut s = card_sale();
        s["captured_at"] = json!((month_start + jiff::SignedDuration::from_secs(i)).to_string());
        last = Some(t.create_sale(s).await);
    }
    t.post("/v1/disputes", &dispute(last.as_ref().unwrap(), "CB-R1", 1000)).send().await.unwrap();
    let month = now.strftime("%Y-%m");
    let report: Value = t.get_json(&format!("/v1/reports/chargeback-ratio?month={month}")).await;
    let visa = report["programmes"].as_array().unwrap().iter().find(|p| p["programme"] == "visa_vamp").unwrap();
    assert_eq!(visa["chargebacks"], 1);
    assert_eq!(visa["sales"], 3);
    assert_eq!(visa["count_ratio_bps"], 3333, "1 of 3 card sales");
    // far above the ratio, but far below the 1,500 reports the programme needs
    assert_ne!(visa["level"], "excessive");
    assert!(!visa["reasons"][0]["zh"].as_str().unwrap().is_empty());
    let res = t.get("/v1/reports/chargeback-ratio?month=nope").send().await.unwrap();
    problem(res, StatusCode::BAD_REQUEST, "invalid_request").await;
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_case_left_unanswered_past_its_deadline_is_marked_past_due() {
    let mut t = spawn().await;
    let sale = t.create_sale(card_sale()).await;
    let mut late = dispute(&sale, "CB-LATE", 1000);
    late["due_by"] = json!("2026-01-01T00:00:00Z");
    let case: Value = t.post("/v1/disputes", &late).send().await.unwrap().json().await.unwrap();
    let on_time: Value =
        t.post("/v1/disputes", &dispute(&sale, "CB-ON-TIME", 1000)).send().await.unwrap().json().await.unwrap();
    let id = case["id"].as_str().unwrap();
    let mut status = String::new();
    for _ in 0..200 {
        let now: Value = t.get_json(&format!("/v1/disputes/{id}")).await;
        status = now["status"].as_str().unwrap().to_owned();
        if status == "past_due" {
            assert!(now["days_left"].as_i64().unwrap() < 0);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert_eq!(status, "past_due");
    let other: Value = t.get_json(&format!("/v1/disputes/{}", on_time["id"].as_str().unwrap())).await;
    assert_eq!(other["status"], "needs_response", "a case with time left is untouched");
    // the merchant can still concede a late case
    assert_eq!(move_case(&t, id, "accept").await.status(), StatusCode::OK);
    t.shutdown().await;
}
