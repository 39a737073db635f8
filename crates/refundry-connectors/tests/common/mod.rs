//! What the ISO 8583 test files share: a simulated host, a processor
//! configured for it, and orders.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use refundry_connectors::iso8583::{Iso8583Config, Iso8583Processor};
use refundry_connectors::simulator::{Simulator, SimulatorConfig, SimulatorHandle};
use refundry_connectors::{Outcome, RefundOrder};
use refundry_core::money::{Currency, Money};
use refundry_core::refund::RefundType;
use tokio::net::TcpListener;

pub const TERMINAL: &str = "12345678";
pub const KEY: &str = "0123456789ABCDEF";
pub const OTHER_KEY: &str = "FEDCBA9876543210";
pub const MAX_REPEATS: u32 = 2;

pub async fn host(mac_key: Option<&str>) -> SimulatorHandle {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let config = SimulatorConfig { mac_key_hex: mac_key.map(String::from), seed: 7, ..SimulatorConfig::default() };
    Simulator::start(listener, config).await
}

/// Half a second per answer: long enough that a loaded machine does not
/// turn an answer into a timeout, short enough for the timeout tests.
pub fn config(addr: SocketAddr, mac_key: Option<&str>) -> Iso8583Config {
    Iso8583Config {
        addr: addr.to_string(),
        terminal_id: TERMINAL.into(),
        merchant_id: "898310048140001".into(),
        tpdu_destination: 3,
        tpdu_source: 0,
        mac_key_hex: mac_key.map(String::from),
        batch_no: "000007".into(),
        connect_timeout: Duration::from_secs(2),
        response_timeout: Duration::from_millis(500),
        max_advice_repeats: MAX_REPEATS,
    }
}

pub fn processor(host: &SimulatorHandle, mac_key: Option<&str>) -> Iso8583Processor {
    Iso8583Processor::new(config(host.addr(), mac_key)).unwrap()
}

pub fn order(refund_type: RefundType, stan: u32) -> RefundOrder {
    RefundOrder {
        reference: format!("re_{stan}"),
        attempt: 1,
        stan,
        refund_type,
        amount: Money::new(1250, Currency::CNY),
        terminal_id: TERMINAL.into(),
        original_rrn: Some("123456789012".into()),
        original_auth_code: Some("A1B2C3".into()),
        original_voucher_no: Some("000042".into()),
        original_batch_no: Some("000006".into()),
        original_date: "0315".into(),
    }
}

pub fn reversed_void() -> Outcome {
    Outcome::Declined { reason: "timed_out_after_reversal".into(), response_code: "98".into() }
}

pub fn approved_rrn(outcome: &Outcome) -> &str {
    match outcome {
        Outcome::Approved { acquirer_reference } => acquirer_reference,
        other => panic!("expected an approval, got {other:?}"),
    }
}
