use std::time::Duration;

use refundry_app::AppConfig;
use refundry_server::ServerConfig;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::*;

/// A sale of 800.00: over the 500.00 a cashier may refund alone.
fn big_sale() -> Value {
    let mut s = card_sale();
    s["amount"] = json!(80000);
    s["items"] = json!([{"sku": "kettle", "name": "电水壶 Kettle", "quantity": 1, "unit_amount": 80000}]);
    s
}

/// The refund as `token`'s approval answers it.
async fn approved_by(t: &TestApp, token: &str, id: &str, body: Value) -> Value {
    let res = t.post_as(token, &format!("/v1/refunds/{id}/approve"), &body).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    res.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refund_over_the_limit_waits_for_a_supervisor_who_is_not_the_requester() {
    let mut t = spawn().await;
    let cashier = t.person("wang.fang", "cashier").await;
    let supervisor = t.person("li.qiang", "supervisor").await;
    let sale = t.post_as(&cashier, "/v1/sales", &big_sale()).send().await.unwrap().json::<Value>().await.unwrap();
    let body = json!({"sale_id": sale["id"], "amount": 60000, "reason": "defective"});

    let preview: Value = t.post_as(&cashier, "/v1/refunds/preview", &body).send().await.unwrap().json().await.unwrap();
    assert_eq!(preview["decision"]["outcome"], "requires_approval");
    assert_eq!(preview["decision"]["reasons"][0]["code"], "amount_over_limit");
    assert!(preview["decision"]["reasons"][0]["zh"].as_str().unwrap().contains("600.00 CNY"));

    let res = t.post_as(&cashier, "/v1/refunds", &body).header("Idempotency-Key", "big-1").send().await.unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let refund: Value = res.json().await.unwrap();
    assert_eq!(refund["status"], "requires_approval");
    assert_eq!(refund["decision"]["outcome"], "requires_approval");
    assert!(refund["approval_expires_at"].is_string());
    let id = refund["id"].as_str().unwrap();
    // waiting refunds hold their amount
    let s: Value = t.get_json(&format!("/v1/sales/{}", sale["id"].as_str().unwrap())).await;
    assert_eq!(s["refundable_amount"], 20000);

    // the cashier has no refunds:approve; even an admin-made cashier cannot approve their own
    let res = t.post_as(&cashier, &format!("/v1/refunds/{id}/approve"), &json!({})).send().await.unwrap();
    let p = problem(res, StatusCode::FORBIDDEN, "forbidden").await;
    assert_eq!(p["required_scope"], "refunds:approve");

    let queue: Value = t.get_as(&supervisor, "/v1/approvals").send().await.unwrap().json().await.unwrap();
    assert_eq!(queue["data"][0]["id"], id);

    let approved = approved_by(&t, &supervisor, id, json!({"note": "checked the kettle"})).await;
    assert_eq!(approved["status"], "pending");
    assert_eq!(approved["decision_note"], "checked the kettle");
    assert!(approved["decided_by"].as_str().unwrap().starts_with("user:usr_"));
    assert_eq!(t.settled_refund(id).await["status"], "succeeded");
    let res = t.post_as(&supervisor, &format!("/v1/refunds/{id}/approve"), &json!({})).send().await.unwrap();
    problem(res, StatusCode::CONFLICT, "refund_not_awaiting_approval").await;
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approved_cash_refund_is_handed_over_at_once_by_the_supervisors_leave() {
    let mut t = spawn().await;
    let cashier = t.person("wang.fang", "cashier").await;
    let supervisor = t.person("li.qiang", "supervisor").await;
    let mut cash = big_sale();
    cash["payment_method"] = json!({"type": "cash"});
    let sale = t.post_as(&cashier, "/v1/sales", &cash).send().await.unwrap().json::<Value>().await.unwrap();
    let body = json!({"sale_id": sale["id"], "amount": 60000, "reason": "defective"});
    let res = t.post_as(&cashier, "/v1/refunds", &body).header("Idempotency-Key", "big-cash").send().await.unwrap();
    let refund: Value = res.json().await.unwrap();
    assert_eq!(refund["status"], "requires_approval", "the drawer waits for the supervisor too");
    let id = refund["id"].as_str().unwrap();
    let approved = approved_by(&t, &supervisor, id, json!({})).await;
    assert_eq!(approved["status"], "succeeded", "{approved}");
    assert_eq!(approved["acquirer_reference"], format!("CASH-{id}"));
    let actions = t.audit_actions_about(id).await;
    assert_eq!(actions, ["refund.requested", "refund.approved", "refund.sent", "refund.succeeded"]);
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supervisor_cannot_approve_their_own_refund() {
    let mut t = spawn().await;
    let supervisor = t.person("li.qiang", "supervisor").await;
    let other = t.person("zhao.min", "supervisor").await;
    let sale = t.create_sale(big_sale()).await;
    let body = json!({"sale_id": sale["id"], "amount": 70000, "reason": "defective"});
    let refund: Value = t
        .post_as(&supervisor, "/v1/refunds", &body)
        .header("Idempotency-Key", "own")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = refund["id"].as_str().unwrap();
    let res = t.post_as(&supervisor, &format!("/v1/refunds/{id}/approve"), &json!({})).send().await.unwrap();
    problem(res, StatusCode::FORBIDDEN, "approver_is_requester").await;
    let res =
        t.post_as(&supervisor, &format!("/v1/refunds/{id}/reject"), &json!({"note": "mine"})).send().await.unwrap();
    problem(res, StatusCode::FORBIDDEN, "approver_is_requester").await;
    // a rejection needs a reason
    let res = t.post_as(&other, &format!("/v1/refunds/{id}/reject"), &json!({})).send().await.unwrap();
    problem(res, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    let rejected: Value = t
        .post_as(&other, &format!("/v1/refunds/{id}/reject"), &json!({"note": "no receipt"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(rejected["status"], "rejected");
    let s: Value = t.get_json(&format!("/v1/sales/{}", sale["id"].as_str().unwrap())).await;
    assert_eq!(s["refundable_amount"], 80000, "a rejected refund frees the sale");
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminal_key_names_the_cashier_and_the_supervisor_as_operators() {
    let mut t = spawn().await;
    t.person("wang.fang", "cashier").await;
    t.person("li.qiang", "supervisor").await;
    let mut sale_body = big_sale();
    sale_body["operator"] = json!("wang.fang");
    let sale = t.create_sale(sale_body).await;
    let body = json!({"sale_id": sale["id"], "amount": 60000, "reason": "defective", "operator": "wang.fang"});
    let refund: Value = t.refund("op-1", body).await.json().await.unwrap();
    assert_eq!(refund["status"], "requires_approval");
    assert!(refund["requested_by"].as_str().unwrap().starts_with("user:usr_"));
    let id = refund["id"].as_str().unwrap();
    // the same key, the same cashier: refused; the supervisor at the same terminal: approved
    let res = t.post(&format!("/v1/refunds/{id}/approve"), &json!({"operator": "wang.fang"})).send().await.unwrap();
    problem(res, StatusCode::FORBIDDEN, "forbidden").await;
    let res = t.post(&format!("/v1/refunds/{id}/approve"), &json!({})).send().await.unwrap();
    problem(res, StatusCode::FORBIDDEN, "forbidden").await;
    let res = t.post(&format!("/v1/refunds/{id}/approve"), &json!({"operator": "li.qiang"})).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(t.settled_refund(id).await["status"], "succeeded");
    let res = t.post("/v1/sales", &json!({"operator": "nobody"})).send().await.unwrap();
    assert!(res.status().is_client_error());
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_nobody_gives_expires_and_frees_the_sale() {
    let config = AppConfig { approval_ttl: Duration::from_millis(200), ..AppConfig::default() };
    let mut t = spawn_configured(ServerConfig::default(), config).await;
    let cashier = t.person("wang.fang", "cashier").await;
    let supervisor = t.person("li.qiang", "supervisor").await;
    let sale = t.create_sale(big_sale()).await;
    let body = json!({"sale_id": sale["id"], "amount": 60000, "reason": "defective"});
    let refund: Value = t
        .post_as(&cashier, "/v1/refunds", &body)
        .header("Idempotency-Key", "x")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = refund["id"].as_str().unwrap();
    let mut status = String::new();
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let r: Value = t.get_json(&format!("/v1/refunds/{id}")).await;
        status = r["status"].as_str().unwrap().to_owned();
        if status == "expired" {
            break;
        }
    }
    assert_eq!(status, "expired");
    let res = t.post_as(&supervisor, &format!("/v1/refunds/{id}/approve"), &json!({})).send().await.unwrap();
    problem(res, StatusCode::CONFLICT, "refund_not_awaiting_approval").await;
    let s: Value = t.get_json(&format!("/v1/sales/{}", sale["id"].as_str().unwrap())).await;
    assert_eq!(s["refundable_amount"], 80000);
    t.shutdown().await;
}
