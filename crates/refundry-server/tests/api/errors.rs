use refundry_server::ServerConfig;
use reqwest::StatusCode;
use serde_json::Value;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_speak_the_callers_language() {
    let mut t = spawn().await;
    let res = t
        .get("/v1/sales/sale_0000000000000000000000000000abcd")
        .header("Accept-Language", "zh-CN,zh;q=0.9")
        .send()
        .await
        .unwrap();
    let p = problem(res, StatusCode::NOT_FOUND, "sale_not_found").await;
    assert_eq!(p["title"], "未找到该笔交易");
    assert_eq!(p["type"], "/problems/sale_not_found");
    let res = t.get("/v1/nowhere").header("Accept-Language", "zh").send().await.unwrap();
    let p = problem(res, StatusCode::NOT_FOUND, "not_found").await;
    assert_eq!(p["title"], "资源不存在");
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_bodies_get_problems_not_crashes() {
    let mut t = spawn_with(ServerConfig { max_body_bytes: 4096, ..ServerConfig::default() }).await;
    let url = format!("{}/v1/sales", t.base);
    let big = format!("{{\"note\": \"{}\"}}", "x".repeat(10_000));
    let res = t
        .client
        .post(&url)
        .bearer_auth(&t.key)
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    problem(res, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;
    let deep = format!("{}{}", "[".repeat(40), "]".repeat(40));
    let res = t
        .client
        .post(&url)
        .bearer_auth(&t.key)
        .header("content-type", "application/json")
        .body(deep)
        .send()
        .await
        .unwrap();
    problem(res, StatusCode::BAD_REQUEST, "invalid_request").await;
    let res = t
        .client
        .post(&url)
        .bearer_auth(&t.key)
        .header("content-type", "application/json")
        .body("{\"amount\":")
        .send()
        .await
        .unwrap();
    problem(res, StatusCode::BAD_REQUEST, "invalid_request").await;
    let res =
        t.client.post(&url).bearer_auth(&t.key).header("content-type", "text/plain").body("{}").send().await.unwrap();
    problem(res, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type").await;
    let res = t.client.delete(&url).bearer_auth(&t.key).send().await.unwrap();
    problem(res, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed").await;
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_health_readiness_and_metrics_are_served() {
    let mut t = spawn().await;
    let doc: Value = t.client.get(format!("{}/v1/openapi.json", t.base)).send().await.unwrap().json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in ["/v1/sales", "/v1/sales/{id}", "/v1/refunds", "/v1/refunds/{id}", "/v1/batches/settle"] {
        assert!(doc["paths"].get(path).is_some(), "{path} documented");
    }
    assert!(doc["components"]["securitySchemes"]["api_key"].is_object());
    assert_eq!(t.client.get(format!("{}/healthz", t.base)).send().await.unwrap().status(), StatusCode::OK);
    assert_eq!(t.client.get(format!("{}/readyz", t.base)).send().await.unwrap().status(), StatusCode::OK);
    t.create_sale(card_sale()).await;
    let metrics = t.client.get(format!("{}/metrics", t.base)).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("refundry_http_requests_total"), "{metrics}");
    // how long the store's batches take, commit included: the tail of write latency
    assert!(metrics.contains("refundry_store_batch_seconds"), "{metrics}");
    t.shutdown().await;
}
