use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_without_a_valid_key_are_refused() {
    let mut t = spawn().await;
    let res = t.client.get(format!("{}/v1/sales", t.base)).send().await.unwrap();
    problem(res, StatusCode::UNAUTHORIZED, "unauthorized").await;
    let res = t
        .client
        .get(format!("{}/v1/sales", t.base))
        .bearer_auth(refundry_app::keys::random_token())
        .send()
        .await
        .unwrap();
    problem(res, StatusCode::UNAUTHORIZED, "unauthorized").await;
    let last = if t.key.ends_with('0') { '1' } else { '0' };
    let forged = format!("{}{last}", &t.key[..t.key.len() - 1]);
    let res = t.client.get(format!("{}/v1/sales", t.base)).bearer_auth(forged).send().await.unwrap();
    problem(res, StatusCode::UNAUTHORIZED, "unauthorized").await;
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_merchants_key_never_sees_or_touches_another_merchants_data() {
    let mut t = spawn().await;
    let sale = t.create_sale(card_sale()).await;
    let id = sale["id"].as_str().unwrap();
    let mine = t.refund("mine", json!({"sale_id": id, "amount": 100, "reason": "other"})).await;
    let refund: Value = mine.json().await.unwrap();
    let other = t.other_merchant_key().await;
    let as_other = |path: String| t.client.get(format!("{}{path}", t.base)).bearer_auth(&other);

    problem(as_other(format!("/v1/sales/{id}")).send().await.unwrap(), StatusCode::NOT_FOUND, "sale_not_found").await;
    problem(
        as_other(format!("/v1/refunds/{}", refund["id"].as_str().unwrap())).send().await.unwrap(),
        StatusCode::NOT_FOUND,
        "refund_not_found",
    )
    .await;
    let list: Value = as_other("/v1/sales?rrn=123456789012".into()).send().await.unwrap().json().await.unwrap();
    assert!(list["data"].as_array().unwrap().is_empty());
    let list: Value = as_other(format!("/v1/refunds?sale_id={id}")).send().await.unwrap().json().await.unwrap();
    assert!(list["data"].as_array().unwrap().is_empty());
    let res = t
        .client
        .post(format!("{}/v1/refunds", t.base))
        .bearer_auth(&other)
        .header("Idempotency-Key", "theirs")
        .json(&json!({"sale_id": id, "amount": 100, "reason": "other"}))
        .send()
        .await
        .unwrap();
    problem(res, StatusCode::NOT_FOUND, "sale_not_found").await;
    let s: Value = t.get_json(&format!("/v1/sales/{id}")).await;
    assert_eq!(s["refunded_amount"], 100, "the other merchant changed nothing");
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_without_the_scope_is_forbidden() {
    let mut t = spawn().await;
    let merchant = t.app.default_merchant().await.unwrap().0;
    let reader = t
        .app
        .create_key(&refundry_app::Actor::system(merchant.id, "test"), "reader", &["reports:read"])
        .await
        .unwrap()
        .secret;
    let res =
        t.client.post(format!("{}/v1/sales", t.base)).bearer_auth(&reader).json(&card_sale()).send().await.unwrap();
    let p = problem(res, StatusCode::FORBIDDEN, "forbidden").await;
    assert_eq!(p["required_scope"], "sales:write");
    let res = t.client.get(format!("{}/v1/sales", t.base)).bearer_auth(&reader).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    t.shutdown().await;
}
