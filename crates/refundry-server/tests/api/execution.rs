use std::time::Duration;

use refundry_app::AppConfig;
use refundry_app::jobs::RunnerConfig;
use refundry_connectors::sandbox::SandboxMode;
use refundry_server::ServerConfig;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_refund_is_sent_again_as_a_new_attempt_of_the_same_refund() {
    let mut t = spawn().await;
    let sale = t.create_sale(card_sale()).await;
    t.sandbox.set_mode(SandboxMode::Decline);
    let refund: Value = t
        .refund("r1", json!({"sale_id": sale["id"], "amount": 2000, "reason": "defective"}))
        .await
        .json()
        .await
        .unwrap();
    let id = refund["id"].as_str().unwrap();
    assert_eq!(t.settled_refund(id).await["status"], "failed");
    // the acquirer approves the new attempt (a new message, a new STAN)
    t.sandbox.set_mode(SandboxMode::Approve);
    let res = t.post(&format!("/v1/refunds/{id}/retry"), &json!({})).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let again: Value = res.json().await.unwrap();
    assert_eq!(again["status"], "pending");
    assert_eq!(again["id"], refund["id"], "the same refund");
    let done = t.settled_refund(id).await;
    assert_eq!(done["attempts"], 2);
    let calls: Value = t.get_json(&format!("/v1/refunds/{id}/attempts")).await;
    let calls = calls["data"].as_array().unwrap();
    assert_eq!(calls.len(), 2, "every call is kept");
    assert_eq!(calls[0]["outcome"], "declined");
    assert_ne!(calls[0]["stan"], calls[1]["stan"], "a new attempt is a new message");
    assert!(!calls[0]["detail"].as_str().unwrap().contains("622202"), "no card data in the log");
    let res = t.post(&format!("/v1/refunds/{id}/retry"), &json!({})).send().await.unwrap();
    problem(res, StatusCode::CONFLICT, "refund_not_retryable").await;
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn card_money_is_expected_in_days_and_its_arrival_is_recorded() {
    let mut t = spawn().await;
    let sale = t.create_sale(card_sale()).await;
    let refund: Value = t
        .refund("a1", json!({"sale_id": sale["id"], "amount": 1000, "reason": "defective"}))
        .await
        .json()
        .await
        .unwrap();
    let id = refund["id"].as_str().unwrap();
    let done = t.settled_refund(id).await;
    let completed: jiff::Timestamp = done["completed_at"].as_str().unwrap().parse().unwrap();
    let expected: jiff::Timestamp = done["expected_arrival_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(expected.duration_since(completed), jiff::SignedDuration::from_hours(24 * 7));
    assert!(done["arrived_at"].is_null());
    // before the refund was completed, or a day ahead: refused, nothing changes
    let arrive =
        |at: jiff::Timestamp| t.post(&format!("/v1/refunds/{id}/arrived"), &json!({"arrived_at": in_china(at)})).send();
    let day = jiff::SignedDuration::from_hours(24);
    for wrong in [completed - day, jiff::Timestamp::now() + day] {
        let body = problem(arrive(wrong).await.unwrap(), StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
        assert_eq!(body["field"], "arrived_at", "{body}");
    }
    let unchanged: Value = t.get_json(&format!("/v1/refunds/{id}")).await;
    assert!(unchanged["arrived_at"].is_null());
    // sent at +08:00, read back in UTC
    let res = arrive(completed).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let arrived: Value = res.json().await.unwrap();
    assert_eq!(arrived["arrived_at"], done["completed_at"]);

    let mut cash = card_sale();
    cash["payment_method"] = json!({"type": "cash"});
    let cash = t.create_sale(cash).await;
    let refund: Value = t
        .refund("a2", json!({"sale_id": cash["id"], "amount": 1000, "reason": "defective"}))
        .await
        .json()
        .await
        .unwrap();
    let done = t.settled_refund(refund["id"].as_str().unwrap()).await;
    assert_eq!(done["arrived_at"], done["completed_at"], "cash is handed over at the counter");
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_gives_up_waits_for_an_operator_and_runs_when_retried() {
    let config =
        AppConfig { jobs: RunnerConfig { max_attempts: 2, ..RunnerConfig::default() }, ..AppConfig::default() };
    let mut t = spawn_configured(ServerConfig::default(), config).await;
    let sale = t.create_sale(card_sale()).await;
    t.sandbox.set_mode(SandboxMode::Unavailable);
    let refund: Value = t
        .refund("d1", json!({"sale_id": sale["id"], "amount": 1000, "reason": "defective"}))
        .await
        .json()
        .await
        .unwrap();
    let id = refund["id"].as_str().unwrap();
    let mut dead = Value::Null;
    for _ in 0..200 {
        dead = t.get_json("/v1/jobs?state=dead").await;
        if !dead["data"].as_array().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let job = &dead["data"][0];
    assert_eq!(job["kind"], "refund.execute");
    assert!(job["last_error"].as_str().unwrap().contains("unavailable"), "{job}");
    let stuck: Value = t.get_json(&format!("/v1/refunds/{id}")).await;
    assert_eq!(stuck["status"], "processing", "an unknown outcome is never guessed");
    t.sandbox.set_mode(SandboxMode::Approve);
    let res = t.post(&format!("/v1/jobs/{}/retry", job["id"]), &json!({})).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(t.settled_refund(id).await["status"], "succeeded");
    assert_eq!(t.sandbox.times_applied(id), 1);
    let res = t.post(&format!("/v1/jobs/{}/retry", job["id"]), &json!({})).send().await.unwrap();
    problem(res, StatusCode::NOT_FOUND, "job_not_found").await;
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_drains_as_fast_as_slots_free_up_not_at_each_poll() {
    // two slots and a poll a minute apart: every claim after the first must
    // come from a slot freeing up
    let jobs = RunnerConfig {
        concurrency: 2,
        claim_batch: 2,
        poll_interval: Duration::from_secs(60),
        maintenance_interval: Duration::from_secs(60),
        ..RunnerConfig::default()
    };
    let mut t = spawn_exact(ServerConfig::default(), AppConfig { jobs, ..AppConfig::default() }, None).await;
    let sale = t.create_sale(card_sale()).await;
    let mut ids = Vec::new();
    for n in 0..12 {
        let refund: Value = t
            .refund(format!("b{n}"), json!({"sale_id": sale["id"], "amount": 100, "reason": "defective"}))
            .await
            .json()
            .await
            .unwrap();
        ids.push(refund["id"].as_str().unwrap().to_owned());
    }
    for id in &ids {
        // settled_refund gives each up to 5 s, far less than a poll
        assert_eq!(t.settled_refund(id).await["status"], "succeeded");
    }
    t.shutdown().await;
}
