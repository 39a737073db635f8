//! Random malformed and hostile requests: every one gets a 4xx
//! problem+json, and none of them changes anything.

use proptest::prelude::*;
use serde_json::{Value, json};

use crate::support::*;

fn hostile_string() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("' OR 1=1 --".to_owned()),
        Just("'; DROP TABLE refunds; --".to_owned()),
        Just("<script>alert(1)</script>".to_owned()),
        Just("../../etc/passwd".to_owned()),
        Just("\u{0000}\u{202e}\u{feff}".to_owned()),
        Just("${jndi:ldap://x}".to_owned()),
        Just("x".repeat(100_000)),
        "\\PC{0,40}",
    ]
}

fn hostile_number() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!(-1)),
        Just(json!(0)),
        Just(json!(i64::MIN)),
        Just(json!(u64::MAX)),
        Just(json!(1e300)),
        Just(json!(-0.5)),
        Just(json!(12.34)),
        Just(json!("100")),
        Just(json!(null)),
        Just(json!([1])),
    ]
}

/// A body that is almost a valid sale or refund, with one field made hostile.
fn body(sale_id: String) -> impl Strategy<Value = (String, Value)> {
    let fields = prop_oneof![
        Just("amount"),
        Just("currency"),
        Just("terminal_id"),
        Just("voucher_no"),
        Just("rrn"),
        Just("captured_at"),
        Just("payment_method"),
        Just("items"),
        Just("reason"),
        Just("sale_id"),
        Just("note"),
        Just("operator"),
    ];
    (any::<bool>(), fields, prop_oneof![hostile_number(), hostile_string().prop_map(Value::String)], 0..6u8).prop_map(
        move |(is_sale, field, value, depth)| {
            let mut b =
                if is_sale { card_sale() } else { json!({"sale_id": sale_id, "amount": 100, "reason": "defective"}) };
            let mut v = value;
            for _ in 0..depth {
                v = json!({ "nested": v });
            }
            b[field] = v;
            (if is_sale { "/v1/sales" } else { "/v1/refunds" }.to_owned(), b)
        },
    )
}

#[test]
fn hostile_requests_get_problems_and_change_nothing() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let mut t = rt.block_on(spawn());
    let sale = rt.block_on(t.create_sale(card_sale()));
    let sale_id = sale["id"].as_str().unwrap().to_owned();
    let before = rt.block_on(async {
        let s: Value = t.get_json("/v1/sales?limit=100").await;
        let r: Value = t.get_json("/v1/refunds?limit=100").await;
        (s["data"].as_array().unwrap().len(), r["data"].as_array().unwrap().len())
    });
    let config = ProptestConfig {
        cases: 200,
        failure_persistence: None,
        rng_seed: proptest::test_runner::RngSeed::Fixed(8583),
        ..ProptestConfig::default()
    };
    let accepted = std::cell::Cell::new((0usize, 0usize));
    proptest!(config, |((path, b) in body(sale_id.clone()), key in "[a-z]{8}")| {
        let (status, ctype, problem) = rt.block_on(async {
            let res = t.post(&path, &b).header("Idempotency-Key", key).send().await.unwrap();
            let status = res.status();
            let ctype = res.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
            (status, ctype, res.json::<Value>().await.unwrap_or(Value::Null))
        });
        // a hostile value may still be harmless (a note with odd text): then
        // it is a valid request; everything else must be refused cleanly
        if status.is_success() {
            // optional fields may be left empty (null) or hold free text
            let optional: &[&str] = if path == "/v1/refunds" {
                &["note", "operator", "items"]
            } else {
                &["voucher_no", "operator", "rrn"]
            };
            // a plain reference such as "100" is a fine voucher number
            let plain = |v: &Value| {
                v.as_str().is_some_and(|s| (1..=12).contains(&s.len()) && s.bytes().all(|c| c.is_ascii_alphanumeric()))
            };
            let harmless = optional
                .iter()
                .any(|f| b.get(f).is_some_and(|v| v.is_null() || plain(v) || (*f == "note" && v.is_string())));
            prop_assert!(harmless, "{path} {b} was accepted");
            let (s, r) = accepted.get();
            accepted.set(if path == "/v1/sales" { (s + 1, r) } else { (s, r + 1) });
        } else {
            prop_assert!(status.is_client_error(), "{path} {b}: {status} {problem}");
            prop_assert_eq!(ctype, "application/problem+json");
            prop_assert!(problem["code"].is_string());
        }
    });
    let after = rt.block_on(async {
        let s: Value = t.get_json("/v1/sales?limit=100").await;
        let r: Value = t.get_json("/v1/refunds?limit=100").await;
        (s["data"].as_array().unwrap().len(), r["data"].as_array().unwrap().len())
    });
    let (s, r) = accepted.get();
    assert_eq!((before.0 + s, before.1 + r), after, "refused requests changed nothing");
    rt.block_on(t.shutdown());
}
