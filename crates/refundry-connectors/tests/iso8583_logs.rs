//! Logs, in a test binary of their own: the capture is the process-wide
//! subscriber, which tests on other threads would otherwise race with.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::*;
use refundry_connectors::Processor;
use refundry_connectors::simulator::Behaviour;
use refundry_core::refund::RefundType;

/// Collects everything logged, to look for what must never be there.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn logs_name_messages_but_never_the_mac_key() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::set_global_default(subscriber).unwrap();
    let host = host(Some(KEY)).await;
    let p = processor(&host, Some(KEY));
    host.set_script(&[Behaviour::TimeoutAfterApplying]);
    approved_rrn(&p.submit(&order(RefundType::Refund, 60)).await.unwrap());
    host.set_script(&[Behaviour::WrongMacAfterApplying]);
    assert_eq!(p.submit(&order(RefundType::Void, 61)).await, Ok(reversed_void()));
    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("approved") && logs.contains("re_60") && logs.contains("reversal"), "{logs}");
    for secret in [KEY.to_string(), KEY.to_lowercase()] {
        assert!(!logs.contains(&secret), "{secret} in the logs:\n{logs}");
    }
}
