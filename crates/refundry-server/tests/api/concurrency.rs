use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::*;

/// 50 cashiers press "refund 30.00" on the same 100.00 sale at once: exactly
/// three succeed, and together they never exceed the sale.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_simultaneous_refunds_never_exceed_the_sale() {
    let mut t = spawn().await;
    let sale = t.create_sale(card_sale()).await;
    let id = sale["id"].as_str().unwrap().to_owned();
    let requests = (0..50).map(|i| {
        let body = json!({"sale_id": id, "amount": 3000, "reason": "customer_request"});
        t.refund(format!("concurrent-{i}"), body)
    });
    let answers = join_all(requests).await;
    let mut created = 0;
    for res in answers {
        match res.status() {
            StatusCode::CREATED => created += 1,
            StatusCode::UNPROCESSABLE_ENTITY => {
                let p: Value = res.json().await.unwrap();
                assert_eq!(p["code"], "refund_exceeds_refundable");
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(created, 3);
    let list: Value = t.get_json(&format!("/v1/refunds?sale_id={id}&limit=100")).await;
    let total: i64 = list["data"].as_array().unwrap().iter().map(|r| r["amount"].as_i64().unwrap()).sum();
    assert_eq!(total, 9000);
    let s: Value = t.get_json(&format!("/v1/sales/{id}")).await;
    assert_eq!(s["refundable_amount"], 1000);
    t.shutdown().await;
}

/// A terminal retries the same request 20 times at once: one refund.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_simultaneous_requests_with_one_key_make_one_refund() {
    let mut t = spawn().await;
    let sale = t.create_sale(card_sale()).await;
    let id = sale["id"].as_str().unwrap().to_owned();
    let body = json!({"sale_id": id, "amount": 2500, "reason": "duplicate"});
    let answers = join_all((0..20).map(|_| t.refund("one-key", body.clone()))).await;
    let mut bodies = Vec::new();
    for res in answers {
        assert_eq!(res.status(), StatusCode::CREATED);
        bodies.push(res.bytes().await.unwrap());
    }
    assert!(bodies.windows(2).all(|w| w[0] == w[1]), "every answer is the first answer");
    let list: Value = t.get_json(&format!("/v1/refunds?sale_id={id}")).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    let done = t.settled_refund(list["data"][0]["id"].as_str().unwrap()).await;
    assert_eq!(t.sandbox.times_applied(done["id"].as_str().unwrap()), 1);
    t.shutdown().await;
}

/// The same retry, for everything the sale has left: a twin that waited for
/// the first to finish must replay its answer, not refuse because the first
/// refund used the sale up.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_simultaneous_requests_with_one_key_for_the_whole_sale_all_get_the_one_refund() {
    let mut t = spawn().await;
    let sale = t.create_sale(card_sale()).await;
    let id = sale["id"].as_str().unwrap().to_owned();
    let body = json!({"sale_id": id, "amount": sale["amount"], "reason": "duplicate"});
    let answers = join_all((0..20).map(|_| t.refund("one-key-all", body.clone()))).await;
    let mut bodies = Vec::new();
    for res in answers {
        let status = res.status();
        let text = res.text().await.unwrap();
        assert_eq!(status, StatusCode::CREATED, "{text}");
        bodies.push(text);
    }
    assert!(bodies.windows(2).all(|w| w[0] == w[1]), "every answer is the first answer");
    let list: Value = t.get_json(&format!("/v1/refunds?sale_id={id}")).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    t.shutdown().await;
}
