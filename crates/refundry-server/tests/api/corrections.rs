use refundry_app::AppConfig;
use refundry_app::corrections::CorrectionConfig;
use refundry_core::detect::OutlierRules;
use refundry_server::ServerConfig;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::*;

fn card(token: Option<&str>, amount: i64, at: &str, voucher: u32) -> Value {
    let mut s = card_sale();
    s["amount"] = json!(amount);
    s["items"] = json!([]);
    s["captured_at"] = json!(at);
    s["voucher_no"] = json!(format!("{voucher:06}"));
    s["rrn"] = json!(format!("{:012}", 700_000 + voucher));
    if let Some(token) = token {
        s["payment_method"]["fingerprint"] = json!(token);
    }
    s
}

fn cash(amount: i64, minute: u32) -> Value {
    json!({"amount": amount, "currency": "cny", "payment_method": {"type": "cash"}, "terminal_id": "T0002",
        "captured_at": minutes_ago(120 - i64::from(minute))})
}

/// Waits until every queued job (the detectors among them) has run.
async fn jobs_done(t: &TestApp) {
    for _ in 0..400 {
        let left = refundry_store::read(&t.app.store, |tx| Ok::<_, refundry_app::AppError>(tx.unfinished_jobs()?))
            .await
            .unwrap();
        if left == 0 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("jobs did not finish");
}

async fn cases(t: &TestApp, query: &str) -> Vec<Value> {
    let list: Value = t.get_json(&format!("/v1/corrections{query}")).await;
    list["data"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_card_charged_twice_opens_a_case_that_is_settled_by_a_void_from_it() {
    let mut t = spawn().await;
    let first = t.create_sale(card(Some("acq-tok-77A"), 10000, &seconds_ago(10_800), 1)).await;
    let second = t.create_sale(card(Some("acq-tok-77A"), 10000, &seconds_ago(10_800 - 150), 2)).await;
    // another card, the same amount, the same minutes: not a duplicate
    t.create_sale(card(Some("acq-tok-88B"), 10000, &seconds_ago(10_800 - 180), 3)).await;
    // the same card again, half an hour later: a second purchase
    t.create_sale(card(Some("acq-tok-77A"), 10000, &seconds_ago(10_800 - 2_400), 4)).await;
    jobs_done(&t).await;

    let open = cases(&t, "?status=open").await;
    assert_eq!(open.len(), 1, "{open:?}");
    let case = &open[0];
    assert_eq!(case["kind"], "duplicate_charge");
    assert_eq!(case["sale_id"], second["id"], "the later charge is the suspect");
    assert_eq!(case["evidence"]["sale_ids"], json!([first["id"], second["id"]]));
    assert_eq!(case["evidence"]["minutes_apart"], 2);
    assert!(!case["zh"].as_str().unwrap().is_empty() && !case["en"].as_str().unwrap().is_empty());
    assert!(!t.stored_anywhere("acq-tok-77A"), "only the keyed fingerprint is kept");
    let id = case["id"].as_str().unwrap();

    let path = format!("/v1/corrections/{id}/refund");
    let res = t.post(&path, &json!({"note": "顾客被重复扣款"})).send().await.unwrap();
    problem(res, StatusCode::BAD_REQUEST, "idempotency_key_required").await;
    let body = json!({"note": "顾客被重复扣款", "cause": "transmission_error", "responsible_party": "acquirer"});
    let res = t.post(&path, &body).header("Idempotency-Key", "dup-1").send().await.unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let answer: Value = res.json().await.unwrap();
    assert_eq!(answer["correction"]["status"], "refunded");
    assert_eq!(answer["correction"]["cause"], "transmission_error");
    assert_eq!(answer["correction"]["responsible_party"], "acquirer");
    assert_eq!(answer["refund"]["amount"], 10000, "the whole duplicate charge");
    assert_eq!(answer["refund"]["type"], "void", "an unsettled card sale is voided");
    assert_eq!(answer["refund"]["reason"], "duplicate");
    assert_eq!(answer["correction"]["refund_id"], answer["refund"]["id"]);

    let again = t.post(&path, &body).header("Idempotency-Key", "dup-1").send().await.unwrap();
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let replayed: Value = again.json().await.unwrap();
    assert_eq!(replayed["refund"]["id"], answer["refund"]["id"]);
    let res = t.post(&path, &body).header("Idempotency-Key", "dup-2").send().await.unwrap();
    let p = problem(res, StatusCode::CONFLICT, "correction_not_open").await;
    assert_eq!(p["correction_status"], "refunded");
    let refunds: Value = t.get_json(&format!("/v1/refunds?sale_id={}", second["id"].as_str().unwrap())).await;
    assert_eq!(refunds["data"].as_array().unwrap().len(), 1, "one refund for one case");

    assert_eq!(t.audit_actions_about(id).await, ["correction.opened", "correction.refunded"]);
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_token_first6_and_last4_still_pair_the_charges() {
    let mut t = spawn().await;
    t.create_sale(card(None, 4200, &minutes_ago(240), 11)).await;
    let second = t.create_sale(card(None, 4200, &minutes_ago(239), 12)).await;
    jobs_done(&t).await;
    let open = cases(&t, "").await;
    assert_eq!(open.len(), 1);
    assert_eq!(open[0]["sale_id"], second["id"]);
    t.shutdown().await;
}

fn detecting_config() -> AppConfig {
    AppConfig {
        corrections: CorrectionConfig {
            outliers: OutlierRules { min_history: 20, ..OutlierRules::default() },
            orders_expected: true,
            ..CorrectionConfig::default()
        },
        ..AppConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_extra_zero_and_a_sale_without_its_order_open_cases_that_can_be_dismissed() {
    let mut t = spawn_configured(ServerConfig::default(), detecting_config()).await;
    for i in 0..20 {
        let mut s = cash(3000 + 50 * i, i as u32);
        s["order_ref"] = json!(format!("ORD-{i}"));
        t.create_sale(s).await;
    }
    jobs_done(&t).await;
    assert!(cases(&t, "").await.is_empty(), "the usual day opens nothing");

    let mut typo = cash(35000, 30);
    typo["order_ref"] = json!("ORD-30");
    let typo = t.create_sale(typo).await;
    let no_order = t.create_sale(cash(3100, 31)).await;
    jobs_done(&t).await;
    let open = cases(&t, "?status=open").await;
    let of = |sale: &Value| open.iter().find(|c| c["sale_id"] == sale["id"]).cloned().unwrap();
    let extra = of(&typo);
    assert_eq!(extra["kind"], "extra_zero");
    assert_eq!(extra["evidence"]["intended"], 3500);
    assert_eq!(extra["cause"], "operator_error");
    assert_eq!(of(&no_order)["kind"], "missing_order");
    assert_eq!(open.len(), 2);

    // an extra zero gives back what it added
    let path = format!("/v1/corrections/{}/refund", extra["id"].as_str().unwrap());
    let res = t.post(&path, &json!({})).header("Idempotency-Key", "ez-1").send().await.unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let answer: Value = res.json().await.unwrap();
    assert_eq!(answer["refund"]["amount"], 31500);
    assert_eq!(answer["refund"]["reason"], "wrong_charge");

    let missing = of(&no_order);
    let dismiss = format!("/v1/corrections/{}/dismiss", missing["id"].as_str().unwrap());
    let res = t.post(&dismiss, &json!({"reason": " "})).send().await.unwrap();
    problem(res, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    let res = t.post(&dismiss, &json!({"reason": "收银台断网，订单已补录"})).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let closed: Value = res.json().await.unwrap();
    assert_eq!(
        (closed["status"].as_str(), closed["resolution_note"].as_str()),
        (Some("dismissed"), Some("收银台断网，订单已补录"))
    );
    let res = t.post(&dismiss, &json!({"reason": "again"})).send().await.unwrap();
    problem(res, StatusCode::CONFLICT, "correction_not_open").await;
    assert!(cases(&t, "?status=open").await.is_empty());
    assert_eq!(cases(&t, "?status=dismissed").await.len(), 1);
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_charge_reported_by_hand_is_one_case_and_needs_an_amount() {
    let mut t = spawn().await;
    let sale = t.create_sale(card_sale()).await;
    let body = json!({"sale_id": sale["id"], "kind": "other", "cause": "operator_error",
        "responsible_party": "cashier wang.fang", "note": "按错了商品"});
    let res = t.post("/v1/corrections", &body).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let case: Value = res.json().await.unwrap();
    let again: Value = t.post("/v1/corrections", &body).send().await.unwrap().json().await.unwrap();
    assert_eq!(case["id"], again["id"]);
    let mut bad = body.clone();
    bad["cause"] = json!("gremlins");
    let p = problem(
        t.post("/v1/corrections", &bad).send().await.unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert_eq!(p["field"], "cause");

    let id = case["id"].as_str().unwrap();
    let path = format!("/v1/corrections/{id}/refund");
    let res = t.post(&path, &json!({})).header("Idempotency-Key", "m-1").send().await.unwrap();
    let p = problem(res, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(p["field"], "amount");
    // the refund policy still applies: never more than was paid
    let res = t.post(&path, &json!({"amount": 10001})).header("Idempotency-Key", "m-2").send().await.unwrap();
    problem(res, StatusCode::UNPROCESSABLE_ENTITY, "refund_exceeds_refundable").await;
    let got: Value = t.get_json(&format!("/v1/corrections/{id}")).await;
    assert_eq!(got["status"], "open", "a refused refund leaves the case open");
    let res = t.post(&path, &json!({"amount": 3000})).header("Idempotency-Key", "m-3").send().await.unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);

    let other = t.other_merchant_key().await;
    let res = t.get_as(&other, &format!("/v1/corrections/{id}")).send().await.unwrap();
    problem(res, StatusCode::NOT_FOUND, "correction_not_found").await;
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_case_whose_refund_a_supervisor_rejected_can_be_refunded_again() {
    let mut t = spawn().await;
    let sale = t.create_sale(card(Some("acq-tok-big"), 80000, &minutes_ago(60), 21)).await;
    let body = json!({"sale_id": sale["id"], "kind": "other", "cause": "operator_error"});
    let case: Value = t.post("/v1/corrections", &body).send().await.unwrap().json().await.unwrap();
    let path = format!("/v1/corrections/{}/refund", case["id"].as_str().unwrap());
    // over the 500.00 supervisor limit: the refund waits, as any other would
    let res = t.post(&path, &json!({"amount": 60000})).header("Idempotency-Key", "big-1").send().await.unwrap();
    let first: Value = res.json().await.unwrap();
    assert_eq!(first["refund"]["status"], "requires_approval");
    assert_eq!(first["correction"]["status"], "refunded");
    let res = t.post(&path, &json!({"amount": 60000})).header("Idempotency-Key", "big-2").send().await.unwrap();
    problem(res, StatusCode::CONFLICT, "correction_not_open").await;

    let supervisor = t.person("chen.jing", "supervisor").await;
    let refund = first["refund"]["id"].as_str().unwrap();
    let res = t
        .post_as(&supervisor, &format!("/v1/refunds/{refund}/reject"), &json!({"note": "没有小票"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let res = t.post(&path, &json!({"amount": 40000})).header("Idempotency-Key", "big-3").send().await.unwrap();
    assert_eq!(res.status(), StatusCode::CREATED, "no money went back: the case may be refunded again");
    let second: Value = res.json().await.unwrap();
    assert_ne!(second["refund"]["id"], first["refund"]["id"]);
    assert_eq!(second["correction"]["refund_id"], second["refund"]["id"]);
    t.shutdown().await;
}
