use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use axum::routing::post;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::*;

#[derive(Default)]
struct Receiver {
    /// (signature header, body) of every request, in order.
    seen: Mutex<Vec<(String, Vec<u8>)>>,
    /// Bodies of the requests answered 200.
    accepted: Mutex<Vec<Vec<u8>>>,
    /// Answers 500 to this many requests first.
    fail_first: Mutex<u32>,
}

async fn start_receiver(fail_first: u32) -> (String, Arc<Receiver>) {
    let receiver = Arc::new(Receiver { fail_first: Mutex::new(fail_first), ..Receiver::default() });
    let state = Arc::clone(&receiver);
    let app = axum::Router::new().route(
        "/hook",
        post(move |headers: HeaderMap, body: Bytes| {
            let state = Arc::clone(&state);
            async move {
                let sig = headers.get("refundry-signature").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
                state.seen.lock().unwrap().push((sig, body.to_vec()));
                let mut fail = state.fail_first.lock().unwrap();
                if *fail > 0 {
                    *fail -= 1;
                    AxumStatus::INTERNAL_SERVER_ERROR
                } else {
                    state.accepted.lock().unwrap().push(body.to_vec());
                    AxumStatus::OK
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, receiver)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_arrives_signed_at_least_once_even_after_failures() {
    let mut t = spawn().await;
    let (url, receiver) = start_receiver(2).await;
    let res = t.post("/v1/webhook-endpoints", &json!({"url": url, "events": ["*"]})).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let endpoint: Value = res.json().await.unwrap();
    let secret = endpoint["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));
    let listed: Value = t.get_json("/v1/webhook-endpoints").await;
    assert!(listed["data"][0].get("secret").is_none(), "the secret is shown once");

    let sale = t.create_sale(card_sale()).await;
    let refund: Value = t
        .refund("wh-1", json!({"sale_id": sale["id"], "amount": 1000, "reason": "defective"}))
        .await
        .json()
        .await
        .unwrap();
    t.settled_refund(refund["id"].as_str().unwrap()).await;

    let wanted = ["sale.recorded", "refund.requested", "refund.sent", "refund.succeeded"];
    let mut types = Vec::new();
    for _ in 0..200 {
        let seen = receiver.seen.lock().unwrap().clone();
        for (sig, body) in &seen {
            let now = jiff::Timestamp::now().as_second();
            assert!(refundry_app::webhooks::verify(&secret, sig, body, now), "a signature did not verify");
        }
        // what the receiver accepted: the failed tries do not count
        types = receiver
            .accepted
            .lock()
            .unwrap()
            .iter()
            .map(|body| serde_json::from_slice::<Value>(body).unwrap()["type"].as_str().unwrap().to_owned())
            .collect();
        if wanted.iter().all(|w| types.iter().any(|t| t == w)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for w in wanted {
        assert!(types.iter().any(|t| t == w), "{w} never arrived: {types:?}");
    }
    // the first two tries failed and were retried: the log shows them (the
    // runner writes a delivery's row after the receiver has answered, so
    // the log may trail what the receiver saw by a moment)
    let path = format!("/v1/webhook-endpoints/{}/deliveries", endpoint["id"].as_str().unwrap());
    let logged = |log: &Value| {
        let rows = log["data"].as_array().unwrap();
        rows.iter().filter(|d| d["status_code"] == 500).count() >= 2
            && rows.iter().any(|d| d["status_code"] == 200 && d["attempt"].as_u64().unwrap() > 1)
    };
    let mut log: Value = t.get_json(&path).await;
    for _ in 0..200 {
        if logged(&log) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        log = t.get_json(&path).await;
    }
    assert!(logged(&log), "two failed tries and a retry that succeeded: {log}");
    let rows = log["data"].as_array().unwrap();

    // a manual redelivery sends the same event again
    let before = receiver.seen.lock().unwrap().len();
    let delivered = rows.iter().find(|d| d["status_code"] == 200).unwrap();
    let res =
        t.post(&format!("/v1/webhook-deliveries/{}/redeliver", delivered["id"]), &json!({})).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let redelivered = |seen: &[(String, Vec<u8>)]| {
        seen[before..]
            .iter()
            .any(|(_, body)| serde_json::from_slice::<Value>(body).unwrap()["id"] == delivered["event_id"])
    };
    for _ in 0..100 {
        if redelivered(&receiver.seen.lock().unwrap()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    assert!(redelivered(&receiver.seen.lock().unwrap()), "the event came again");
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_hears_only_what_it_asked_for() {
    let mut t = spawn().await;
    let (url, receiver) = start_receiver(0).await;
    t.post("/v1/webhook-endpoints", &json!({"url": url, "events": ["refund.succeeded"]})).send().await.unwrap();
    let sale = t.create_sale(card_sale()).await;
    let refund: Value = t
        .refund("wh-2", json!({"sale_id": sale["id"], "amount": 1000, "reason": "defective"}))
        .await
        .json()
        .await
        .unwrap();
    t.settled_refund(refund["id"].as_str().unwrap()).await;
    for _ in 0..100 {
        if !receiver.seen.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let seen = receiver.seen.lock().unwrap().clone();
    let types: Vec<String> = seen
        .iter()
        .map(|(_, b)| serde_json::from_slice::<Value>(b).unwrap()["type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(types, vec!["refund.succeeded"]);
    let res = t.post("/v1/webhook-endpoints", &json!({"url": "ftp://nope", "events": ["*"]})).send().await.unwrap();
    problem(res, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    t.shutdown().await;
}
