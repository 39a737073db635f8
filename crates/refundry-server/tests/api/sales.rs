use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_sale_reads_back_with_its_refundable_amount() {
    let mut t = spawn().await;
    let sent = card_sale();
    let sale = t.create_sale(sent.clone()).await;
    let id = sale["id"].as_str().unwrap();
    assert!(id.starts_with("sale_"));
    assert_eq!(sale["refunded_amount"], 0);
    assert_eq!(sale["refundable_amount"], 10000);
    assert_eq!(sale["payment_method"]["last4"], "1234");
    // sent at +08:00 in whole seconds, read back in UTC to the microsecond
    let captured: jiff::Timestamp = sent["captured_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(sale["captured_at"], format!("{}.000000Z", captured.strftime("%Y-%m-%dT%H:%M:%S")));
    let read: Value = t.get_json(&format!("/v1/sales/{id}")).await;
    assert_eq!(read, sale);
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wallet_and_cash_sales_are_recorded() {
    let mut t = spawn().await;
    let mut wallet = card_sale();
    wallet["payment_method"] = json!({"type": "wallet", "wallet": "wechat_pay"});
    assert_eq!(t.create_sale(wallet).await["payment_method"]["wallet"], "wechat_pay");
    let mut cash = card_sale();
    cash["payment_method"] = json!({"type": "cash"});
    cash["items"] = json!([]);
    assert_eq!(t.create_sale(cash).await["payment_method"]["type"], "cash");
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sales_are_found_by_voucher_rrn_last4_amount_terminal_and_time() {
    let mut t = spawn().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let mut s = card_sale();
        s["voucher_no"] = json!(format!("00010{i}"));
        s["rrn"] = json!(format!("99999999990{i}"));
        s["payment_method"]["last4"] = json!(format!("100{i}"));
        s["terminal_id"] = json!(if i < 3 { "T0001" } else { "T0002" });
        s["captured_at"] = json!(format!("2026-11-2{i}T10:00:00Z"));
        s["amount"] = json!(10000 + i);
        s["items"] = json!([]);
        ids.push(t.create_sale(s).await["id"].as_str().unwrap().to_owned());
    }
    let find = |q: &'static str| {
        let t = &t;
        async move {
            let list: Value = t.get_json(&format!("/v1/sales?{q}")).await;
            list["data"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap().to_owned()).collect::<Vec<_>>()
        }
    };
    assert_eq!(find("voucher_no=000102").await, vec![ids[2].clone()]);
    assert_eq!(find("rrn=999999999904").await, vec![ids[4].clone()]);
    assert_eq!(find("last4=1001").await, vec![ids[1].clone()]);
    assert_eq!(find("amount=10003").await, vec![ids[3].clone()]);
    assert_eq!(find("terminal_id=T0002").await, vec![ids[4].clone(), ids[3].clone()]);
    assert_eq!(
        find("captured_from=2026-11-21T00:00:00Z&captured_to=2026-11-23T00:00:00Z").await,
        vec![ids[2].clone(), ids[1].clone()]
    );
    assert!(find("voucher_no=nothing").await.is_empty());
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_follow_the_cursor_without_gaps_or_repeats() {
    let mut t = spawn().await;
    let mut made = Vec::new();
    for _ in 0..7 {
        made.push(t.create_sale(card_sale()).await["id"].as_str().unwrap().to_owned());
    }
    made.reverse();
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/sales?limit=3&starting_after={c}"),
            None => "/v1/sales?limit=3".to_owned(),
        };
        let page: Value = t.get_json(&path).await;
        seen.extend(page["data"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap().to_owned()));
        if !page["has_more"].as_bool().unwrap() {
            assert!(page["next_cursor"].is_null());
            break;
        }
        cursor = Some(page["next_cursor"].as_str().unwrap().to_owned());
    }
    assert_eq!(seen, made);
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_sales_are_refused_with_the_field_named() {
    let mut t = spawn().await;
    let cases: Vec<(Value, &str, &str)> = vec![
        (json!({"amount": 0}), "validation_failed", "amount"),
        (json!({"amount": -5}), "validation_failed", "amount"),
        (json!({"currency": "CNY"}), "validation_failed", "currency"),
        (json!({"currency": "xyz"}), "validation_failed", "currency"),
        (json!({"amount": 9999}), "validation_failed", "items"),
        (json!({"rrn": "1234567890123"}), "validation_failed", "rrn"),
        (json!({"captured_at": "yesterday"}), "validation_failed", "captured_at"),
        (
            json!({"payment_method": {"type": "card", "brand": "unionpay", "first6": "62220", "last4": "1234", "entry_mode": "chip"}}),
            "validation_failed",
            "payment_method.first6",
        ),
        (json!({"payment_method": {"type": "cheque"}}), "invalid_request", "payment_method"),
        (json!({"amount": "ten"}), "invalid_request", "amount"),
        (json!({"surprise": 1}), "invalid_request", ""),
    ];
    for (patch, code, field) in cases {
        let mut body = card_sale();
        for (k, v) in patch.as_object().unwrap() {
            body[k] = v.clone();
        }
        let res = t.post("/v1/sales", &body).send().await.unwrap();
        let status = if code == "invalid_request" { StatusCode::BAD_REQUEST } else { StatusCode::UNPROCESSABLE_ENTITY };
        let p = problem(res, status, code).await;
        if !field.is_empty() {
            assert!(p["field"].as_str().unwrap_or("").starts_with(field), "{patch}: {p}");
        }
    }
    let list: Value = t.get_json("/v1/sales").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 0, "nothing was recorded");
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_card_numbers_and_card_secrets_are_refused_and_never_stored() {
    let mut t = spawn().await;
    let pan = "6222021234567890128";
    let mut in_note = card_sale();
    in_note["voucher_no"] = json!(pan);
    let mut with_cvv = card_sale();
    with_cvv["payment_method"]["cvv"] = json!("123");
    let mut with_track = card_sale();
    with_track["track2"] = json!(format!("{pan}=2512101"));
    let mut spaced = card_sale();
    spaced["items"][0]["name"] = json!("4111 1111 1111 1111");
    for body in [in_note, with_cvv, with_track, spaced] {
        let res = t.post("/v1/sales", &body).send().await.unwrap();
        let p = problem(res, StatusCode::UNPROCESSABLE_ENTITY, "sensitive_card_data").await;
        assert!(!p.to_string().contains(pan) && !p.to_string().contains("4111 1111"), "the answer echoes no card data");
    }
    let res = t.get(&format!("/v1/sales?rrn={pan}")).send().await.unwrap();
    problem(res, StatusCode::UNPROCESSABLE_ENTITY, "sensitive_card_data").await;
    // a barcode that passes Luhn is a normal sku
    let mut barcode = card_sale();
    barcode["items"][0]["sku"] = json!("6901234567892");
    t.create_sale(barcode).await;
    t.shutdown().await;
    assert!(!t.stored_anywhere(pan), "no card number at rest");
    assert!(!t.stored_anywhere("4111111111111111"), "no card number at rest");
    assert!(t.stored_anywhere("6901234567892"), "the check can find what is stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settling_a_batch_is_idempotent() {
    let mut t = spawn().await;
    let body = json!({"terminal_id": "T0001", "batch_no": "000001"});
    let first: Value = t.post("/v1/batches/settle", &body).send().await.unwrap().json().await.unwrap();
    assert_eq!(first["object"], "batch");
    let again: Value = t.post("/v1/batches/settle", &body).send().await.unwrap().json().await.unwrap();
    assert_eq!(first, again);
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminal_stays_in_its_store() {
    let mut t = spawn().await;
    let actor = refundry_app::Actor::system(t.app.default_merchant().await.unwrap().0.id, "test");
    let other = t.app.create_store(&actor, "Second store").await.unwrap();
    t.create_sale(card_sale()).await;
    let mut moved = card_sale();
    moved["store_id"] = json!(other.id.to_string());
    let res = t.post("/v1/sales", &moved).send().await.unwrap();
    problem(res, StatusCode::UNPROCESSABLE_ENTITY, "terminal_store_mismatch").await;
    let mut new_terminal = card_sale();
    new_terminal["terminal_id"] = json!("T0009");
    new_terminal["store_id"] = json!(other.id.to_string());
    assert_eq!(t.create_sale(new_terminal).await["store_id"], other.id.to_string());
    t.shutdown().await;
}
