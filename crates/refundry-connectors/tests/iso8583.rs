//! The ISO 8583 processor against the simulated acquirer host, over real
//! TCP on 127.0.0.1: approvals, declines, lost answers, dropped lines, a
//! restart between sending and recording, and MACs that do not match. The
//! simulator's counters prove money moved at most once.

mod common;

use std::sync::Arc;

use common::*;
use futures_util::{SinkExt, StreamExt};
use refundry_connectors::iso8583::Iso8583Processor;
use refundry_connectors::simulator::{Behaviour, Simulator, SimulatorConfig};
use refundry_connectors::{Outcome, Processor, ProcessorError};
use refundry_core::refund::RefundType;
use refundry_iso8583::{Dialect, Message, MessageCodec, Mti, Tpdu};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::Framed;

#[tokio::test]
async fn a_refund_is_approved_with_the_hosts_rrn() {
    let host = host(Some(KEY)).await;
    let p = processor(&host, Some(KEY));
    let outcome = p.submit(&order(RefundType::Refund, 1)).await.unwrap();
    let rrn = approved_rrn(&outcome);
    assert!(rrn.len() == 12 && rrn.bytes().all(|b| b.is_ascii_digit()), "{rrn}");
    assert_ne!(rrn, "123456789012", "the refund's own RRN, not the sale's");
    assert_eq!(host.times_applied(TERMINAL, 1), 1);
    assert_eq!((host.received("0800"), host.received("0220"), host.received("0221")), (1, 1, 0));
}

#[tokio::test]
async fn a_void_is_approved() {
    let host = host(Some(KEY)).await;
    let p = processor(&host, Some(KEY));
    let outcome = p.submit(&order(RefundType::Void, 2)).await.unwrap();
    approved_rrn(&outcome);
    assert!(host.in_effect(TERMINAL, 2));
    assert_eq!((host.received("0200"), host.received("0400")), (1, 0));
}

#[tokio::test]
async fn a_decline_carries_the_mapped_reason_and_the_hosts_code() {
    let host = host(Some(KEY)).await;
    let p = processor(&host, Some(KEY));
    host.set_script(&[Behaviour::Decline("51".into()), Behaviour::Decline("05".into())]);
    let refund = order(RefundType::Refund, 3);
    let declined = Outcome::Declined { reason: "insufficient_funds".into(), response_code: "51".into() };
    assert_eq!(p.submit(&refund).await, Ok(declined.clone()));
    let void = p.submit(&order(RefundType::Void, 4)).await;
    assert_eq!(void, Ok(Outcome::Declined { reason: "do_not_honor".into(), response_code: "05".into() }));
    assert_eq!((host.times_applied(TERMINAL, 3), host.times_applied(TERMINAL, 4)), (0, 0));
    // The host remembers a final refusal: asking again gives it again.
    assert_eq!(p.inquire(&refund).await, Ok(Some(declined)));
    assert_eq!(host.times_applied(TERMINAL, 3), 0);
}

#[tokio::test]
async fn a_void_whose_answer_times_out_is_reversed_and_declined() {
    let host = host(Some(KEY)).await;
    let p = processor(&host, Some(KEY));
    host.set_script(&[Behaviour::TimeoutAfterApplying]);
    assert_eq!(p.submit(&order(RefundType::Void, 5)).await, Ok(reversed_void()));
    assert_eq!(host.times_applied(TERMINAL, 5), 1);
    assert!(host.reversed(TERMINAL, 5), "applied, then reversed: net zero");
    assert!(!host.in_effect(TERMINAL, 5));
    assert_eq!((host.received("0200"), host.received("0400")), (1, 1));
}

#[tokio::test]
async fn a_refund_whose_answer_times_out_is_repeated_and_applied_once() {
    let host = host(Some(KEY)).await;
    let p = processor(&host, Some(KEY));
    host.set_script(&[Behaviour::TimeoutAfterApplying]);
    let outcome = p.submit(&order(RefundType::Refund, 6)).await.unwrap();
    approved_rrn(&outcome);
    assert_eq!(host.times_applied(TERMINAL, 6), 1);
    assert_eq!((host.received("0220"), host.received("0221"), host.received("0400")), (1, 1, 0));
}

#[tokio::test]
async fn a_connection_dropped_after_applying_keeps_both_guarantees() {
    let host = host(Some(KEY)).await;
    let p = processor(&host, Some(KEY));
    host.set_script(&[Behaviour::DropAfterApplying]);
    approved_rrn(&p.submit(&order(RefundType::Refund, 7)).await.unwrap());
    assert_eq!(host.times_applied(TERMINAL, 7), 1);
    host.set_script(&[Behaviour::DropAfterApplying]);
    assert_eq!(p.submit(&order(RefundType::Void, 8)).await, Ok(reversed_void()));
    assert_eq!((host.times_applied(TERMINAL, 8), host.reversed(TERMINAL, 8)), (1, true));
    // Each drop cost a new connection, and each new connection a sign-on.
    assert_eq!((host.connections(), host.received("0800")), (3, 3));
}

#[tokio::test]
async fn a_connection_dropped_before_applying_is_resolved_the_same_way() {
    let host = host(Some(KEY)).await;
    let p = processor(&host, Some(KEY));
    host.set_script(&[Behaviour::DropBeforeApplying]);
    approved_rrn(&p.submit(&order(RefundType::Refund, 9)).await.unwrap());
    assert_eq!(host.times_applied(TERMINAL, 9), 1, "the repeat of an unseen advice applies it");
    host.set_script(&[Behaviour::DropBeforeApplying]);
    assert_eq!(p.submit(&order(RefundType::Void, 10)).await, Ok(reversed_void()));
    assert_eq!(host.times_applied(TERMINAL, 10), 0);
}

#[tokio::test]
async fn after_a_crash_an_inquiry_repeats_the_refund_advice_without_applying_it_twice() {
    let host = host(Some(KEY)).await;
    let refund = order(RefundType::Refund, 11);
    {
        let before_crash = processor(&host, Some(KEY));
        host.set_script(&vec![Behaviour::TimeoutAfterApplying; 1 + MAX_REPEATS as usize]);
        assert_eq!(before_crash.submit(&refund).await, Err(ProcessorError::Timeout));
        assert_eq!(host.script_left(), 0);
    }
    let after_restart = processor(&host, Some(KEY));
    let outcome = after_restart.inquire(&refund).await.unwrap().expect("an advice repeat always settles");
    approved_rrn(&outcome);
    assert_eq!(host.times_applied(TERMINAL, 11), 1);
    assert_eq!(host.received("0220"), 1, "an inquiry never sends a fresh advice");
    assert_eq!(host.received("0221"), 1 + MAX_REPEATS as u64);
}

#[tokio::test]
async fn after_a_crash_an_inquiry_reverses_the_void() {
    let host = host(Some(KEY)).await;
    let void = order(RefundType::Void, 12);
    {
        let before_crash = processor(&host, Some(KEY));
        let mut script = vec![Behaviour::TimeoutAfterApplying];
        script.extend(vec![Behaviour::DropBeforeApplying; 1 + MAX_REPEATS as usize]);
        host.set_script(&script);
        assert_eq!(before_crash.submit(&void).await, Err(ProcessorError::Timeout));
        assert!(host.in_effect(TERMINAL, 12), "no reversal got through before the crash");
    }
    let after_restart = processor(&host, Some(KEY));
    assert_eq!(after_restart.inquire(&void).await, Ok(Some(reversed_void())));
    assert_eq!((host.times_applied(TERMINAL, 12), host.reversed(TERMINAL, 12)), (1, true));
    assert_eq!(host.received("0200"), 1, "an inquiry never sends a fresh void");
}

#[tokio::test]
async fn an_inquiry_about_messages_the_host_never_saw_moves_money_at_most_once() {
    let host = host(Some(KEY)).await;
    let p = processor(&host, Some(KEY));
    let refund = order(RefundType::Refund, 13);
    approved_rrn(&p.inquire(&refund).await.unwrap().unwrap());
    assert_eq!(host.times_applied(TERMINAL, 13), 1);
    assert_eq!(p.inquire(&order(RefundType::Void, 14)).await, Ok(Some(reversed_void())));
    assert_eq!(host.times_applied(TERMINAL, 14), 0);
    assert_eq!((host.received("0200"), host.received("0220")), (0, 0));
}

#[tokio::test]
async fn an_unreachable_host_is_unavailable_and_nothing_is_sent() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let p = Iso8583Processor::new(config(addr, Some(KEY))).unwrap();
    for kind in [RefundType::Refund, RefundType::Void] {
        assert!(matches!(p.submit(&order(kind, 15)).await, Err(ProcessorError::Unavailable(_))));
        assert!(matches!(p.inquire(&order(kind, 15)).await, Err(ProcessorError::Unavailable(_))));
    }
}

#[tokio::test]
async fn a_host_with_another_mac_key_refuses_everything_and_nothing_is_approved() {
    let host = host(Some(OTHER_KEY)).await;
    let p = processor(&host, Some(KEY));
    assert_eq!(p.submit(&order(RefundType::Refund, 16)).await, Err(ProcessorError::Timeout));
    assert_eq!(p.submit(&order(RefundType::Void, 17)).await, Err(ProcessorError::Timeout));
    assert_eq!((host.times_applied(TERMINAL, 16), host.times_applied(TERMINAL, 17)), (0, 0));
    assert_eq!(host.received("0221"), MAX_REPEATS as u64);
    assert_eq!(host.received("0400"), 1 + MAX_REPEATS as u64);
}

#[tokio::test]
async fn an_answer_with_a_wrong_mac_is_not_believed() {
    let host = host(Some(KEY)).await;
    let p = processor(&host, Some(KEY));
    host.set_script(&[Behaviour::WrongMacAfterApplying]);
    approved_rrn(&p.submit(&order(RefundType::Refund, 18)).await.unwrap());
    assert_eq!((host.times_applied(TERMINAL, 18), host.received("0221")), (1, 1));
    host.set_script(&[Behaviour::WrongMacAfterApplying]);
    assert_eq!(p.submit(&order(RefundType::Void, 19)).await, Ok(reversed_void()));
    assert_eq!((host.times_applied(TERMINAL, 19), host.reversed(TERMINAL, 19)), (1, true));
}

#[tokio::test]
async fn an_unsigned_approval_is_not_believed_when_a_key_is_configured() {
    let host = host(None).await;
    let p = processor(&host, Some(KEY));
    assert_eq!(p.submit(&order(RefundType::Refund, 20)).await, Err(ProcessorError::Timeout));
    assert_eq!(host.times_applied(TERMINAL, 20), 1, "applied once, however often repeated");
}

#[tokio::test]
async fn a_passing_refusal_is_repeated_not_final() {
    let host = host(Some(KEY)).await;
    let p = processor(&host, Some(KEY));
    host.set_script(&[Behaviour::Decline("96".into())]);
    approved_rrn(&p.submit(&order(RefundType::Refund, 21)).await.unwrap());
    assert_eq!(host.times_applied(TERMINAL, 21), 1);
    host.set_script(&[Behaviour::Decline("96".into())]);
    assert_eq!(p.submit(&order(RefundType::Void, 22)).await, Ok(reversed_void()));
    assert_eq!(host.times_applied(TERMINAL, 22), 0);
}

#[tokio::test]
async fn one_connection_and_one_sign_on_serve_many_orders() {
    let host = host(None).await;
    let p = processor(&host, None);
    for stan in 30..35 {
        approved_rrn(&p.submit(&order(RefundType::Refund, stan)).await.unwrap());
    }
    assert_eq!((host.connections(), host.received("0800"), host.received("0220")), (1, 1, 5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_orders_take_turns_on_the_line_and_each_applies_once() {
    let host = host(Some(KEY)).await;
    let p = Arc::new(processor(&host, Some(KEY)));
    let mut tasks = tokio::task::JoinSet::new();
    for stan in 100..120 {
        let p = p.clone();
        let kind = if stan % 2 == 0 { RefundType::Refund } else { RefundType::Void };
        tasks.spawn(async move { p.submit(&order(kind, stan)).await });
    }
    while let Some(result) = tasks.join_next().await {
        approved_rrn(&result.unwrap().unwrap());
    }
    assert!((100..120).all(|stan| host.times_applied(TERMINAL, stan) == 1));
    assert_eq!(host.connections(), 1);
}

#[tokio::test]
async fn random_misbehaviour_never_moves_money_twice() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sim = SimulatorConfig {
        decline_rate_pct: 20,
        timeout_rate_pct: 15,
        drop_rate_pct: 15,
        mac_key_hex: Some(KEY.into()),
        seed: 2024,
        ..SimulatorConfig::default()
    };
    let host = Simulator::start(listener, sim).await;
    let p = processor(&host, Some(KEY));
    for stan in 200..230 {
        let kind = if stan % 3 == 0 { RefundType::Void } else { RefundType::Refund };
        let order = order(kind, stan);
        let mut result = p.submit(&order).await;
        // As the job runner does: an unknown outcome is asked about, never resent.
        while result == Err(ProcessorError::Timeout) {
            result = p.inquire(&order).await.map(|o| o.expect("CUP inquiries always settle"));
        }
        let outcome = result.unwrap();
        assert!(host.times_applied(TERMINAL, stan) <= 1, "stan {stan}");
        let stands = host.in_effect(TERMINAL, stan);
        assert_eq!(matches!(outcome, Outcome::Approved { .. }), stands, "stan {stan}: {outcome:?}");
    }
}

#[tokio::test]
async fn an_order_the_host_cannot_take_is_declined_without_sending() {
    let host = host(None).await;
    let p = processor(&host, None);
    let mut no_rrn = order(RefundType::Refund, 40);
    no_rrn.original_rrn = None;
    let outcome = p.submit(&no_rrn).await.unwrap();
    assert!(matches!(outcome, Outcome::Declined { ref reason, .. } if reason == "invalid_order"), "{outcome:?}");
    assert_eq!(p.inquire(&no_rrn).await, Ok(None));
    assert_eq!(host.connections(), 0);
}

#[tokio::test]
async fn the_simulator_survives_nonsense_and_answers_what_it_can_read() {
    let host = host(None).await;
    // Bytes that are no message: the host hangs up.
    let mut raw = TcpStream::connect(host.addr()).await.unwrap();
    raw.write_all(&[0x00, 0x05, 0xde, 0xad, 0xbe, 0xef, 0x00]).await.unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(raw.read(&mut buf).await.unwrap(), 0);
    // A frame longer than any POS message: refused before it is read.
    let mut raw = TcpStream::connect(host.addr()).await.unwrap();
    raw.write_all(&[0xff, 0xff, 0x60]).await.unwrap();
    assert_eq!(raw.read(&mut buf).await.unwrap(), 0);
    // A void without its original's references: a format error.
    let mut framed = Framed::new(TcpStream::connect(host.addr()).await.unwrap(), MessageCodec::new(cup()));
    let mut bare = Message::new(Mti::FINANCIAL_REQUEST);
    bare.tpdu = Some(Tpdu::new([0, 3], [0, 0]));
    bare.header = vec![0x60, 0x31, 0x00, 0x31, 0x00, 0x00];
    bare.set_text(3, "200000").set_text(11, "000050").set_text(41, TERMINAL);
    framed.send(&bare).await.unwrap();
    let answer = framed.next().await.unwrap().unwrap();
    assert_eq!((answer.mti, answer.response_code()), (Mti::FINANCIAL_RESPONSE, Some("30")));
    assert_eq!(host.times_applied(TERMINAL, 50), 0);
    // And it still serves a real terminal.
    approved_rrn(&processor(&host, None).submit(&order(RefundType::Refund, 51)).await.unwrap());
}

fn cup() -> Dialect {
    Dialect::china_unionpay_pos()
}
