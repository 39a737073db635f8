//! Refunds and voids through the ISO 8583 connector, over real TCP, to the
//! acquirer simulator: the same guarantees as with the sandbox.

use std::sync::Arc;
use std::time::Duration;

use refundry_app::AppConfig;
use refundry_app::jobs::RunnerConfig;
use refundry_connectors::iso8583::{Iso8583Config, Iso8583Processor};
use refundry_connectors::simulator::{Behaviour, Simulator, SimulatorConfig, SimulatorHandle};
use refundry_server::ServerConfig;
use serde_json::{Value, json};

use crate::support::*;

const TERMINAL: &str = "RF000001";
const MAC_KEY: &str = "0123456789ABCDEFFEDCBA9876543210";

async fn with_acquirer() -> (TestApp, SimulatorHandle) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sim = Simulator::start(
        listener,
        SimulatorConfig { mac_key_hex: Some(MAC_KEY.into()), seed: 7, ..SimulatorConfig::default() },
    )
    .await;
    let config: Iso8583Config = serde_json::from_value(json!({
        "addr": sim.addr().to_string(),
        "terminal_id": TERMINAL,
        "merchant_id": "898310048990001",
        "tpdu_destination": 1,
        "mac_key_hex": MAC_KEY,
        "batch_no": "000001",
        "connect_timeout": "2s",
        "response_timeout": "300ms",
        "max_advice_repeats": 2
    }))
    .unwrap();
    let processor = Arc::new(Iso8583Processor::new(config).unwrap());
    let app_config =
        AppConfig { jobs: RunnerConfig { max_attempts: 50, ..RunnerConfig::default() }, ..AppConfig::default() };
    let t = spawn_full(ServerConfig::default(), app_config, Some(processor)).await;
    (t, sim)
}

async fn stan_of(t: &TestApp, refund: &str) -> u32 {
    let calls: Value = t.get_json(&format!("/v1/refunds/{refund}/attempts")).await;
    calls["data"][0]["stan"].as_u64().unwrap() as u32
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refund_after_settlement_goes_to_the_acquirer_as_an_advice_and_is_applied_once() {
    let (mut t, sim) = with_acquirer().await;
    let sale = t.create_sale(card_sale()).await;
    t.post("/v1/batches/settle", &json!({"terminal_id": "T0001", "batch_no": "000001"})).send().await.unwrap();
    let refund: Value = t
        .refund("iso-1", json!({"sale_id": sale["id"], "amount": 3000, "reason": "defective"}))
        .await
        .json()
        .await
        .unwrap();
    let id = refund["id"].as_str().unwrap();
    let done = t.settled_refund(id).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["acquirer_reference"].as_str().unwrap().len(), 12, "the host's RRN");
    let stan = stan_of(&t, id).await;
    assert_eq!(sim.times_applied(TERMINAL, stan), 1);
    assert!(sim.received("0220") >= 1);
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_void_before_settlement_is_a_0200_and_a_decline_is_read_back() {
    let (mut t, sim) = with_acquirer().await;
    let sale = t.create_sale(card_sale()).await;
    let void: Value = t
        .refund("iso-2", json!({"sale_id": sale["id"], "amount": 10000, "reason": "customer_request"}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(void["type"], "void");
    assert_eq!(t.settled_refund(void["id"].as_str().unwrap()).await["status"], "succeeded");
    assert!(sim.received("0200") >= 1);

    let other = t.create_sale(card_sale()).await;
    sim.set_script(&[Behaviour::Decline("51".into())]);
    let refund: Value = t
        .refund("iso-3", json!({"sale_id": other["id"], "amount": 1000, "reason": "defective"}))
        .await
        .json()
        .await
        .unwrap();
    let done = t.settled_refund(refund["id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "failed");
    assert_eq!(done["failure_reason"], "insufficient_funds", "{done}");
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_void_whose_answer_is_lost_is_reversed_and_fails_plainly() {
    let (mut t, sim) = with_acquirer().await;
    let sale = t.create_sale(card_sale()).await;
    sim.set_script(&[Behaviour::TimeoutAfterApplying]);
    let void: Value = t
        .refund("iso-4", json!({"sale_id": sale["id"], "amount": 10000, "reason": "customer_request"}))
        .await
        .json()
        .await
        .unwrap();
    let id = void["id"].as_str().unwrap();
    let done = t.settled_refund(id).await;
    assert_eq!(done["status"], "failed");
    assert_eq!(done["failure_reason"], "timed_out_after_reversal");
    let stan = stan_of(&t, id).await;
    assert!(sim.reversed(TERMINAL, stan), "冲正 was sent");
    assert!(!sim.in_effect(TERMINAL, stan), "no money moved in the end");
    assert!(sim.received("0400") >= 1);
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refund_whose_answers_keep_getting_lost_is_asked_about_later_and_never_applied_twice() {
    let (mut t, sim) = with_acquirer().await;
    let sale = t.create_sale(card_sale()).await;
    t.post("/v1/batches/settle", &json!({"terminal_id": "T0001", "batch_no": "000001"})).send().await.unwrap();
    // the advice and both repeats are applied-or-not but never answered:
    // the job gives up this round with the refund still `processing`
    sim.set_script(&[Behaviour::TimeoutAfterApplying, Behaviour::TimeoutAfterApplying, Behaviour::DropAfterApplying]);
    let refund: Value = t
        .refund("iso-5", json!({"sale_id": sale["id"], "amount": 2500, "reason": "defective"}))
        .await
        .json()
        .await
        .unwrap();
    let id = refund["id"].as_str().unwrap();
    let done = t.settled_refund(id).await;
    assert_eq!(done["status"], "succeeded");
    assert_eq!(done["attempts"], 1, "one attempt: the later calls asked about the same message");
    let calls: Value = t.get_json(&format!("/v1/refunds/{id}/attempts")).await;
    let calls = calls["data"].as_array().unwrap();
    assert!(calls.len() >= 2, "{calls:?}");
    assert_eq!(calls[0]["outcome"], "timeout");
    assert!(calls[1..].iter().all(|c| c["kind"] == "inquire"), "nothing sent blind: {calls:?}");
    let stan = stan_of(&t, id).await;
    assert_eq!(sim.times_applied(TERMINAL, stan), 1, "applied exactly once");
    tokio::time::sleep(Duration::from_millis(50)).await;
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cash_goes_back_from_the_drawer_and_never_to_the_acquirer() {
    let (mut t, sim) = with_acquirer().await;
    let mut cash = card_sale();
    cash["payment_method"] = json!({"type": "cash"});
    let sale = t.create_sale(cash).await;
    let before = sim.received("0220") + sim.received("0200");
    let refund: Value = t
        .refund("cash-1", json!({"sale_id": sale["id"], "amount": 1500, "reason": "defective"}))
        .await
        .json()
        .await
        .unwrap();
    let id = refund["id"].as_str().unwrap();
    // settled in the request's own commit: the cashier hands the money over
    // with the refund already done, and nothing waits in the queue for it
    assert_eq!(refund["status"], "succeeded", "{refund}");
    assert_eq!(refund["attempts"], 1);
    let done: Value = t.get_json(&format!("/v1/refunds/{id}")).await;
    assert_eq!(done, refund);
    assert_eq!(done["arrived_at"], done["completed_at"]);
    let calls: Value = t.get_json(&format!("/v1/refunds/{id}/attempts")).await;
    let calls = calls["data"].as_array().unwrap();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0]["processor"], "cash_drawer");
    // no message, so no trace number taken from the terminal's counter
    assert_eq!(calls[0]["stan"], 0);
    assert_eq!(done["acquirer_reference"], format!("CASH-{id}"));
    assert_eq!(sim.received("0220") + sim.received("0200"), before, "the acquirer never saw it");
    // asked, sent and answered in one commit, each step in the audit log
    let actions = t.audit_actions_about(id).await;
    assert_eq!(actions, ["refund.requested", "refund.sent", "refund.succeeded"]);
    // the same key answers the same refund, and makes no second one
    let again = t.refund("cash-1", json!({"sale_id": sale["id"], "amount": 1500, "reason": "defective"})).await;
    assert_eq!(again.json::<Value>().await.unwrap(), refund);
    let s: Value = t.get_json(&format!("/v1/sales/{}", sale["id"].as_str().unwrap())).await;
    assert_eq!(s["refunded_amount"], 1500);
    t.shutdown().await;
}

/// A cash refund whose job an earlier version queued (it let the refund go
/// ahead, then queued its execution) is still settled from the drawer by
/// the job runner, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cash_job_queued_by_an_earlier_version_is_still_settled_once() {
    let (mut t, sim) = with_acquirer().await;
    let cashier = t.person("wang.fang", "cashier").await;
    let mut cash = card_sale();
    cash["payment_method"] = json!({"type": "cash"});
    cash["amount"] = json!(80000);
    cash["items"] = json!([{"sku": "kettle", "name": "电水壶 Kettle", "quantity": 1, "unit_amount": 80000}]);
    let sale = t.post_as(&cashier, "/v1/sales", &cash).send().await.unwrap().json::<Value>().await.unwrap();
    let body = json!({"sale_id": sale["id"], "amount": 60000, "reason": "defective"});
    let res = t.post_as(&cashier, "/v1/refunds", &body).header("Idempotency-Key", "old-cash").send().await.unwrap();
    let waiting: Value = res.json().await.unwrap();
    assert_eq!(waiting["status"], "requires_approval", "{waiting}");
    let id = refundry_core::ids::RefundId::parse(waiting["id"].as_str().unwrap()).unwrap();
    // as an earlier version approved: the refund pending, its job queued
    refundry_store::write(&t.app.store, move |tx| {
        let mut refund = tx.lock_refund(id)?.expect("the refund exists");
        refund.status = refundry_core::refund::RefundStatus::Pending;
        tx.update_refund(&refund)?;
        tx.enqueue(&refundry_store::model::NewJob {
            merchant_id: Some(refund.merchant_id),
            kind: "refund.execute".into(),
            payload: json!({"refund_id": id.to_string()}).to_string(),
            run_after: refund.updated_at,
        })?;
        Ok::<_, refundry_app::AppError>(())
    })
    .await
    .unwrap();
    let before = sim.received("0220") + sim.received("0200");
    let done = t.settled_refund(&id.to_string()).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["acquirer_reference"], format!("CASH-{id}"));
    let calls: Value = t.get_json(&format!("/v1/refunds/{id}/attempts")).await;
    assert_eq!(calls["data"].as_array().unwrap().len(), 1);
    assert_eq!(sim.received("0220") + sim.received("0200"), before, "the acquirer never saw it");
    let actions = t.audit_actions_about(&id.to_string()).await;
    assert_eq!(actions, ["refund.requested", "refund.sent", "refund.succeeded"]);
    t.shutdown().await;
}
