//! Request bodies from anyone on the network: the door (card-data refusal,
//! depth limit, JSON parsing) and every request type's conversion into
//! domain types must answer without panicking, whatever the bytes.

#![no_main]

use axum::http::{HeaderMap, HeaderValue, header};
use libfuzzer_sys::fuzz_target;
use refundry_server::dto::{CreateKey, CreateRefund, CreateSale, CreateUser, LogIn, PutPolicy, SettleBatch};
use refundry_server::guard::parse_body;

fuzz_target!(|data: &[u8]| {
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Ok(sale) = parse_body::<CreateSale>(&headers, data) {
        let _ = sale.into_new_sale();
    }
    if let Ok(refund) = parse_body::<CreateRefund>(&headers, data) {
        let _ = refund.into_request();
    }
    let _ = parse_body::<SettleBatch>(&headers, data);
    let _ = parse_body::<LogIn>(&headers, data);
    let _ = parse_body::<CreateUser>(&headers, data);
    let _ = parse_body::<CreateKey>(&headers, data);
    if let Ok(policy) = parse_body::<PutPolicy>(&headers, data) {
        let _ = policy.rules.into_policy();
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = refundry_server::guard::find_card_data(&serde_json::Value::String(text.to_owned()));
    }
});
