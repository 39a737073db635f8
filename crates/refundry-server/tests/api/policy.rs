use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_versions_grow_and_refunds_keep_the_version_they_were_decided_under() {
    let mut t = spawn().await;
    let first: Value = t.get_json("/v1/policy").await;
    assert_eq!(first["version"], 0, "the built-in default");
    let sale = t.create_sale(card_sale()).await;
    let r0: Value =
        t.refund("v0", json!({"sale_id": sale["id"], "amount": 100, "reason": "other"})).await.json().await.unwrap();
    assert_eq!(r0["policy_version"], 0);

    let mut rules = first["rules"].clone();
    rules["allowed_reasons"] = json!(["defective", "wrong_charge"]);
    let put: Value = t
        .client
        .put(format!("{}/v1/policy", t.base))
        .bearer_auth(&t.key)
        .json(&json!({"rules": rules}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(put["version"], 1);

    let res = t.refund("v1-other", json!({"sale_id": sale["id"], "amount": 100, "reason": "other"})).await;
    let p = problem(res, StatusCode::UNPROCESSABLE_ENTITY, "refund_rejected_by_policy").await;
    assert_eq!(p["reasons"][0]["code"], "reason_not_allowed");
    assert!(!p["reasons"][0]["zh"].as_str().unwrap().is_empty());
    let r1: Value = t
        .refund("v1-defective", json!({"sale_id": sale["id"], "amount": 100, "reason": "defective"}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(r1["policy_version"], 1);
    let again: Value = t.get_json(&format!("/v1/refunds/{}", r0["id"].as_str().unwrap())).await;
    assert_eq!(again["policy_version"], 0);

    let audit: Value = t.get_json("/v1/audit-events?limit=500").await;
    let change = audit["data"].as_array().unwrap().iter().find(|e| e["action"] == "policy.changed").unwrap();
    assert_eq!(change["data"]["before"]["version"], 0);
    assert_eq!(change["data"]["after"]["allowed_reasons"], json!(["defective", "wrong_charge"]));
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_override_wins_over_the_merchant_policy_there_only() {
    let mut t = spawn().await;
    let merchant = t.app.default_merchant().await.unwrap().0;
    let second = t.app.create_store(&refundry_app::Actor::system(merchant.id, "test"), "Second").await.unwrap();
    let base: Value = t.get_json("/v1/policy").await;
    let mut strict = base["rules"].clone();
    strict["approval_above_minor"] = json!(0);
    let put = t
        .client
        .put(format!("{}/v1/policy", t.base))
        .bearer_auth(&t.key)
        .json(&json!({"store_id": second.id.to_string(), "rules": strict}))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), StatusCode::OK);
    let mut there = card_sale();
    there["terminal_id"] = json!("T0200");
    there["store_id"] = json!(second.id.to_string());
    let there = t.create_sale(there).await;
    let here = t.create_sale(card_sale()).await;
    let ask = |sale: &Value| json!({"sale_id": sale["id"], "amount": 100, "reason": "defective"});
    let p: Value = t.post("/v1/refunds/preview", &ask(&there)).send().await.unwrap().json().await.unwrap();
    assert_eq!(p["decision"]["outcome"], "requires_approval");
    assert_eq!(p["policy_version"], 1);
    let p: Value = t.post("/v1/refunds/preview", &ask(&here)).send().await.unwrap().json().await.unwrap();
    assert_eq!(p["decision"]["outcome"], "approve");
    assert_eq!(p["policy_version"], 0);
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_policy_is_refused_with_the_field_named_and_changes_nothing() {
    let mut t = spawn().await;
    let base: Value = t.get_json("/v1/policy").await;
    let mut bad = base["rules"].clone();
    bad["approval_above_share_bps"] = json!(20000);
    let res = t
        .client
        .put(format!("{}/v1/policy", t.base))
        .bearer_auth(&t.key)
        .json(&json!({"rules": bad}))
        .send()
        .await
        .unwrap();
    let p = problem(res, StatusCode::UNPROCESSABLE_ENTITY, "invalid_policy").await;
    assert_eq!(p["field"], "approval_above_share_bps");
    let mut unknown = base["rules"].clone();
    unknown["other_cashier"] = json!("sometimes");
    let res = t
        .client
        .put(format!("{}/v1/policy", t.base))
        .bearer_auth(&t.key)
        .json(&json!({"rules": unknown}))
        .send()
        .await
        .unwrap();
    problem(res, StatusCode::UNPROCESSABLE_ENTITY, "invalid_policy").await;
    let now: Value = t.get_json("/v1/policy").await;
    assert_eq!(now["version"], 0);
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_preview_changes_nothing() {
    let mut t = spawn().await;
    let sale = t.create_sale(card_sale()).await;
    let p: Value = t
        .post(
            "/v1/refunds/preview",
            &json!({"sale_id": sale["id"], "items": [{"sku": "tea", "quantity": 2}], "reason": "defective"}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!((p["type"].as_str(), p["amount"].as_i64()), (Some("refund"), Some(6000)));
    assert_eq!(p["decision"]["reasons"][0]["code"], "within_policy");
    let list: Value = t.get_json("/v1/refunds").await;
    assert!(list["data"].as_array().unwrap().is_empty());
    t.shutdown().await;
}
