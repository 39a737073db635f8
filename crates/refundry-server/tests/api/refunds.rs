use refundry_connectors::sandbox::SandboxMode;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::*;

async fn refund_ok(t: &TestApp, key: &str, body: Value) -> Value {
    let res = t.refund(key, body).await;
    assert_eq!(res.status(), StatusCode::CREATED, "{}", res.text().await.unwrap());
    res.json().await.unwrap()
}

async fn sale_state(t: &TestApp, id: &str) -> (i64, i64) {
    let s: Value = t.get_json(&format!("/v1/sales/{id}")).await;
    (s["refunded_amount"].as_i64().unwrap(), s["refundable_amount"].as_i64().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_unsettled_card_sale_is_voided_and_reaches_succeeded() {
    let mut t = spawn().await;
    let sale = t.create_sale(card_sale()).await;
    let id = sale["id"].as_str().unwrap();
    let refund = refund_ok(&t, "k1", json!({"sale_id": id, "amount": 10000, "reason": "customer_request"})).await;
    assert!(refund["id"].as_str().unwrap().starts_with("re_"));
    assert_eq!(refund["type"], "void");
    assert_eq!(refund["status"], "pending");
    let done = t.settled_refund(refund["id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "succeeded");
    assert!(done["acquirer_reference"].as_str().is_some());
    assert_eq!(sale_state(&t, id).await, (10000, 0));
    assert_eq!(t.sandbox.times_applied(refund["id"].as_str().unwrap()), 1);
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_settlement_the_whole_sale_is_refunded_not_voided() {
    let mut t = spawn().await;
    let sale = t.create_sale(card_sale()).await;
    t.post("/v1/batches/settle", &json!({"terminal_id": "T0001", "batch_no": "000001"})).send().await.unwrap();
    let refund = refund_ok(&t, "k1", json!({"sale_id": sale["id"], "amount": 10000, "reason": "defective"})).await;
    assert_eq!(refund["type"], "refund");
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_refunds_by_amount_and_items_add_up_to_the_sale_and_no_further() {
    let mut t = spawn().await;
    let sale = t.create_sale(card_sale()).await;
    let id = sale["id"].as_str().unwrap();
    let by_items =
        refund_ok(&t, "a", json!({"sale_id": id, "items": [{"sku": "tea", "quantity": 1}], "reason": "defective"}))
            .await;
    assert_eq!((by_items["type"].as_str(), by_items["amount"].as_i64()), (Some("refund"), Some(3000)));
    assert_eq!(by_items["items"], json!([{"sku": "tea", "quantity": 1, "amount": 3000}]));
    refund_ok(&t, "b", json!({"sale_id": id, "amount": 2500, "reason": "service_issue", "note": "slow"})).await;
    assert_eq!(sale_state(&t, id).await, (5500, 4500));

    let res =
        t.refund("c", json!({"sale_id": id, "items": [{"sku": "tea", "quantity": 2}], "reason": "defective"})).await;
    let p = problem(res, StatusCode::UNPROCESSABLE_ENTITY, "item_quantity_exceeds_refundable").await;
    assert_eq!(p["remaining_quantity"], 1);
    let res = t.refund("d", json!({"sale_id": id, "amount": 4501, "reason": "defective"})).await;
    let p = problem(res, StatusCode::UNPROCESSABLE_ENTITY, "refund_exceeds_refundable").await;
    assert_eq!(p["refundable_amount"], 4500);
    let res =
        t.refund("e", json!({"sale_id": id, "items": [{"sku": "cake", "quantity": 1}], "reason": "defective"})).await;
    problem(res, StatusCode::UNPROCESSABLE_ENTITY, "item_not_on_sale").await;
    assert_eq!(sale_state(&t, id).await, (5500, 4500), "refused requests changed nothing");

    refund_ok(&t, "f", json!({"sale_id": id, "amount": 4500, "reason": "defective"})).await;
    assert_eq!(sale_state(&t, id).await, (10000, 0));
    let list: Value = t.get_json(&format!("/v1/refunds?sale_id={id}")).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 3);
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declined_refund_fails_with_a_reason_and_frees_the_amount() {
    let mut t = spawn().await;
    let sale = t.create_sale(card_sale()).await;
    let id = sale["id"].as_str().unwrap();
    t.sandbox.set_mode(SandboxMode::Decline);
    let refund = refund_ok(&t, "k1", json!({"sale_id": id, "amount": 6000, "reason": "defective"})).await;
    let done = t.settled_refund(refund["id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "failed");
    assert_eq!(done["failure_reason"], "declined");
    assert_eq!(sale_state(&t, id).await, (0, 10000));
    t.sandbox.set_mode(SandboxMode::Approve);
    let again = refund_ok(&t, "k2", json!({"sale_id": id, "amount": 10000, "reason": "defective"})).await;
    assert_eq!(t.settled_refund(again["id"].as_str().unwrap()).await["status"], "succeeded");
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_lost_in_transit_is_recovered_by_inquiry_not_resent() {
    let mut t = spawn().await;
    let sale = t.create_sale(card_sale()).await;
    t.sandbox.set_mode(SandboxMode::TimeoutAfterApplying);
    let refund = refund_ok(&t, "k1", json!({"sale_id": sale["id"], "amount": 1000, "reason": "defective"})).await;
    let id = refund["id"].as_str().unwrap();
    // the first attempt applied the refund and lost the answer
    for _ in 0..100 {
        if t.sandbox.times_applied(id) == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    t.sandbox.set_mode(SandboxMode::Approve);
    let done = t.settled_refund(id).await;
    assert_eq!(done["status"], "succeeded");
    assert_eq!(done["attempts"], 1, "the retry asked; it did not send again");
    assert_eq!(t.sandbox.times_applied(id), 1);
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_key_and_body_answer_the_same_bytes_and_do_nothing_more() {
    let mut t = spawn().await;
    let sale = t.create_sale(card_sale()).await;
    let body = json!({"sale_id": sale["id"], "amount": 1000, "reason": "defective"});
    let first = t.refund("same", body.clone()).await;
    assert_eq!(first.status(), StatusCode::CREATED);
    let first = first.bytes().await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let again = t.refund("same", body.clone()).await;
    assert_eq!(again.status(), StatusCode::CREATED);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.bytes().await.unwrap(), first);
    let other_body = json!({"sale_id": sale["id"], "amount": 1001, "reason": "defective"});
    problem(t.refund("same", other_body).await, StatusCode::CONFLICT, "idempotency_key_reused").await;
    let list: Value = t.get_json("/v1/refunds").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_request_stores_nothing_so_the_key_can_be_retried() {
    let mut t = spawn().await;
    let sale = t.create_sale(card_sale()).await;
    let too_much = json!({"sale_id": sale["id"], "amount": 20000, "reason": "defective"});
    problem(t.refund("retry-me", too_much).await, StatusCode::UNPROCESSABLE_ENTITY, "refund_exceeds_refundable").await;
    let fixed = json!({"sale_id": sale["id"], "amount": 2000, "reason": "defective"});
    assert_eq!(t.refund("retry-me", fixed).await.status(), StatusCode::CREATED);
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refunds_need_an_idempotency_key_and_a_valid_request() {
    let mut t = spawn().await;
    let sale = t.create_sale(card_sale()).await;
    let body = json!({"sale_id": sale["id"], "amount": 100, "reason": "defective"});
    let res = t.post("/v1/refunds", &body).send().await.unwrap();
    problem(res, StatusCode::BAD_REQUEST, "idempotency_key_required").await;
    let cases = [
        (json!({"sale_id": sale["id"], "reason": "defective"}), "validation_failed"),
        (json!({"sale_id": sale["id"], "amount": 100, "items": [], "reason": "defective"}), "validation_failed"),
        (json!({"sale_id": sale["id"], "amount": 100, "reason": "felt like it"}), "validation_failed"),
        (json!({"sale_id": sale["id"], "amount": 0, "reason": "defective"}), "validation_failed"),
        (
            json!({"sale_id": sale["id"], "items": [{"sku": "tea", "quantity": 0}], "reason": "defective"}),
            "validation_failed",
        ),
    ];
    for (i, (body, code)) in cases.into_iter().enumerate() {
        problem(t.refund(&format!("v{i}"), body).await, StatusCode::UNPROCESSABLE_ENTITY, code).await;
    }
    let missing = json!({"sale_id": "sale_0000000000000000000000000000abcd", "amount": 1, "reason": "defective"});
    problem(t.refund("nf", missing).await, StatusCode::NOT_FOUND, "sale_not_found").await;
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refunds_list_filters_by_status_and_pages() {
    let mut t = spawn().await;
    let sale = t.create_sale(card_sale()).await;
    for i in 0..5 {
        let r = refund_ok(&t, &format!("k{i}"), json!({"sale_id": sale["id"], "amount": 100, "reason": "other"})).await;
        t.settled_refund(r["id"].as_str().unwrap()).await;
    }
    let page: Value = t.get_json("/v1/refunds?status=succeeded&limit=2").await;
    assert_eq!(page["data"].as_array().unwrap().len(), 2);
    assert_eq!(page["has_more"], true);
    let cursor = page["next_cursor"].as_str().unwrap();
    let rest: Value = t.get_json(&format!("/v1/refunds?status=succeeded&limit=10&starting_after={cursor}")).await;
    assert_eq!(rest["data"].as_array().unwrap().len(), 3);
    let none: Value = t.get_json("/v1/refunds?status=failed").await;
    assert!(none["data"].as_array().unwrap().is_empty());
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_refund_slip_prints_as_text_escpos_and_pdf_with_the_card_masked() {
    let mut t = spawn().await;
    let sale = t.create_sale(card_sale()).await;
    let body = json!({"sale_id": sale["id"], "items": [{"sku": "tea", "quantity": 1}], "reason": "defective",
        "customer": {"phone": "13800138000"}});
    let refund = refund_ok(&t, "slip-1", body).await;
    let id = refund["id"].as_str().unwrap();
    t.settled_refund(id).await;
    let text = t.get(&format!("/v1/refunds/{id}/slip")).send().await.unwrap().text().await.unwrap();
    assert!(text.contains(id) || text.contains(&id[..20]), "{text}");
    assert!(text.contains("1234"), "last 4 shown: {text}");
    assert!(!text.contains("6222021234"), "never more of the card: {text}");
    assert!(text.contains("138****8000"), "the contact masked: {text}");
    assert!(text.contains("乌龙茶"), "{text}");
    let narrow =
        t.get(&format!("/v1/refunds/{id}/slip?format=text58&locale=en")).send().await.unwrap().text().await.unwrap();
    assert!(
        narrow.lines().all(|l| l.chars().map(|c| if c.is_ascii() { 1 } else { 2 }).sum::<usize>() <= 32),
        "{narrow}"
    );
    let escpos = t.get(&format!("/v1/refunds/{id}/slip?format=escpos")).send().await.unwrap().bytes().await.unwrap();
    assert_eq!(&escpos[..2], b"\x1b@", "starts by resetting the printer");
    let pdf = t.get(&format!("/v1/refunds/{id}/slip?format=pdf")).send().await.unwrap();
    assert_eq!(pdf.headers()["content-type"], "application/pdf");
    let pdf = pdf.bytes().await.unwrap();
    assert!(pdf.starts_with(b"%PDF") && pdf.len() < 100_000, "{} bytes", pdf.len());
    let res = t.get(&format!("/v1/refunds/{id}/slip?format=docx")).send().await.unwrap();
    problem(res, StatusCode::BAD_REQUEST, "invalid_request").await;
    t.shutdown().await;
}
