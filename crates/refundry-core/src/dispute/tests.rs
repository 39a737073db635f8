use super::*;
use crate::card::{First6, Last4};
use crate::ids::{MerchantId, SaleId, StoreId};
use crate::money::Currency;
use crate::sale::LineItem;
use jiff::SignedDuration;
use proptest::prelude::*;

const DAY: i64 = 86_400;

fn st(stage: DisputeStage, status: DisputeStatus) -> DisputeState {
    DisputeState::new(stage, status).expect("a listed state")
}

fn cny(minor: i64) -> Money {
    Money::new(minor, Currency::CNY)
}

fn at(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn card_sale(amount: i64) -> Sale {
    Sale {
        id: SaleId::generate(),
        merchant_id: MerchantId::generate(),
        store_id: StoreId::generate(),
        terminal_id: "T1".into(),
        amount: cny(amount),
        payment_method: PaymentMethod::Card {
            brand: CardBrand::Visa,
            first6: First6::parse("411111").unwrap(),
            last4: Last4::parse("1111").unwrap(),
            entry_mode: EntryMode::Chip,
        },
        voucher_no: Some("000123".into()),
        rrn: Some("123456789012".into()),
        auth_code: Some("A1B2C3".into()),
        batch_no: Some("000001".into()),
        captured_at: at("2025-03-01T02:00:00Z"),
        created_at: at("2025-03-01T02:00:00Z"),
        items: vec![
            LineItem { sku: "tea".into(), name: "龙井茶".into(), quantity: 2, unit_amount_minor: 30_000 },
            LineItem { sku: "cup".into(), name: "Cup".into(), quantity: 1, unit_amount_minor: 60_000 },
        ],
        cashier: Some("usr_1".into()),
    }
}

fn refund(amount: i64, status: RefundStatus, refund_type: RefundType, when: &str) -> RefundRecord {
    RefundRecord {
        id: RefundId::generate(),
        refund_type,
        amount: cny(amount),
        status,
        created_at: at(when),
        succeeded_at: (status == RefundStatus::Succeeded).then(|| at(when) + SignedDuration::from_secs(60)),
        rrn: Some("998877665544".into()),
    }
}

fn prior_dispute(state: DisputeState, amount: i64) -> PriorDispute {
    PriorDispute { case_ref: "CB-1".into(), state, amount: cny(amount) }
}

/// The documented table of `DisputeState::on`, written out independently:
/// (from, event, to, needs a network with a second cycle).
fn documented_table() -> Vec<(DisputeState, DisputeEvent, DisputeState, bool)> {
    use DisputeEvent as E;
    use DisputeStage as G;
    use DisputeStatus as S;
    let mut t = vec![
        (st(G::RetrievalRequest, S::NeedsResponse), E::RespondToRetrieval, st(G::RetrievalRequest, S::Closed), false),
        (st(G::RetrievalRequest, S::NeedsResponse), E::Escalate, st(G::Chargeback, S::NeedsResponse), false),
        (st(G::RetrievalRequest, S::NeedsResponse), E::MarkPastDue, st(G::RetrievalRequest, S::PastDue), false),
        (st(G::RetrievalRequest, S::PastDue), E::RespondToRetrieval, st(G::RetrievalRequest, S::Closed), false),
        (st(G::RetrievalRequest, S::PastDue), E::Escalate, st(G::Chargeback, S::NeedsResponse), false),
        (st(G::RetrievalRequest, S::Closed), E::Escalate, st(G::Chargeback, S::NeedsResponse), false),
        (st(G::Chargeback, S::EvidenceSubmitted), E::PreArbitration, st(G::PreArbitration, S::NeedsResponse), true),
        (st(G::Chargeback, S::Lost), E::PreArbitration, st(G::PreArbitration, S::NeedsResponse), true),
    ];
    for g in [G::Chargeback, G::PreArbitration] {
        t.extend([
            (st(g, S::NeedsResponse), E::SubmitEvidence, st(g, S::EvidenceSubmitted), false),
            (st(g, S::NeedsResponse), E::Accept, st(g, S::Accepted), false),
            (st(g, S::NeedsResponse), E::MarkPastDue, st(g, S::PastDue), false),
            (st(g, S::NeedsResponse), E::Win, st(g, S::Won), false),
            (st(g, S::EvidenceSubmitted), E::Win, st(g, S::Won), false),
            (st(g, S::EvidenceSubmitted), E::Lose, st(g, S::Lost), false),
            (st(g, S::PastDue), E::Win, st(g, S::Won), false),
            (st(g, S::PastDue), E::Lose, st(g, S::Lost), false),
            (st(g, S::PastDue), E::Accept, st(g, S::Accepted), false),
        ]);
    }
    t
}

#[test]
fn lifecycle_moves_only_along_the_documented_arrows() {
    let table = documented_table();
    let mut checked = 0;
    for network in Network::ALL {
        for from in DisputeState::ALL {
            for event in DisputeEvent::ALL {
                let expected = table
                    .iter()
                    .find(|(f, e, _, _)| f == from && e == event)
                    .filter(|(_, _, _, second)| !second || network.has_pre_arbitration())
                    .map(|t| t.2);
                let got = from.on(*network, *event);
                assert_eq!(got.ok(), expected, "{from} on {network} + {event}");
                if expected.is_none() {
                    assert_eq!(
                        got,
                        Err(IllegalTransition { from: *from, network: *network, event: *event }),
                        "refusal names the move"
                    );
                }
                checked += 1;
            }
        }
    }
    assert_eq!(checked, Network::ALL.len() * 15 * 8);
}

#[test]
fn amex_has_no_second_cycle_the_others_do() {
    let lost = st(DisputeStage::Chargeback, DisputeStatus::Lost);
    assert!(lost.on(Network::Amex, DisputeEvent::PreArbitration).is_err());
    for network in [Network::Visa, Network::Mastercard, Network::UnionPay, Network::Jcb, Network::Other] {
        let next = lost.on(network, DisputeEvent::PreArbitration).unwrap();
        assert_eq!((next.stage(), next.status()), (DisputeStage::PreArbitration, DisputeStatus::NeedsResponse));
    }
    let pre_arb_lost = st(DisputeStage::PreArbitration, DisputeStatus::Lost);
    assert!(pre_arb_lost.on(Network::Visa, DisputeEvent::PreArbitration).is_err(), "there is no third cycle");
}

#[test]
fn only_the_listed_stage_and_status_pairs_exist() {
    let mut count = 0;
    for stage in DisputeStage::ALL {
        for status in DisputeStatus::ALL {
            let state = DisputeState::new(*stage, *status);
            let retrieval_only = *status == DisputeStatus::Closed;
            let money_moved = matches!(
                status,
                DisputeStatus::EvidenceSubmitted | DisputeStatus::Accepted | DisputeStatus::Won | DisputeStatus::Lost
            );
            let expected = match stage {
                DisputeStage::RetrievalRequest => !money_moved,
                DisputeStage::Chargeback | DisputeStage::PreArbitration => !retrieval_only,
            };
            assert_eq!(state.is_some(), expected, "{stage} / {status}");
            count += usize::from(expected);
        }
    }
    assert_eq!(count, DisputeState::ALL.len());
    let unique: std::collections::HashSet<_> = DisputeState::ALL.iter().collect();
    assert_eq!(unique.len(), DisputeState::ALL.len());
}

#[test]
fn every_state_is_reachable_from_a_case_as_it_arrives() {
    let mut seen: Vec<DisputeState> = DisputeStage::ALL.iter().map(|g| DisputeState::opened(*g)).collect();
    let mut i = 0;
    while i < seen.len() {
        for event in DisputeEvent::ALL {
            if let Ok(next) = seen[i].on(Network::Visa, *event)
                && !seen.contains(&next)
            {
                seen.push(next);
            }
        }
        i += 1;
    }
    for state in DisputeState::ALL {
        assert!(seen.contains(state), "{state} unreachable");
    }
}

#[test]
fn open_cases_block_refunds_and_lost_or_accepted_ones_count_against_the_sale() {
    use DisputeStatus as S;
    for status in DisputeStatus::ALL {
        let open = matches!(status, S::NeedsResponse | S::EvidenceSubmitted | S::PastDue);
        assert_eq!(status.is_open(), open, "{status}");
        assert_eq!(status.is_final(), !open, "{status}");
        assert_eq!(status.counts_against_sale(), matches!(status, S::Lost | S::Accepted), "{status}");
        assert!(!(status.is_open() && status.counts_against_sale()), "{status}");
    }
    let retrieval = DisputeState::opened(DisputeStage::RetrievalRequest);
    assert!(retrieval.is_open() && retrieval.awaits_response() && !retrieval.is_chargeback());
    let submitted = st(DisputeStage::Chargeback, S::EvidenceSubmitted);
    assert!(submitted.is_open() && !submitted.awaits_response() && submitted.is_chargeback());
}

#[test]
fn evidence_is_taken_only_while_the_answer_can_still_be_read() {
    use DisputeStatus as S;
    for (stage, status) in [
        (DisputeStage::RetrievalRequest, S::NeedsResponse),
        (DisputeStage::RetrievalRequest, S::Closed),
        (DisputeStage::Chargeback, S::NeedsResponse),
        (DisputeStage::Chargeback, S::EvidenceSubmitted),
        (DisputeStage::Chargeback, S::PastDue),
        (DisputeStage::Chargeback, S::Accepted),
        (DisputeStage::Chargeback, S::Won),
        (DisputeStage::Chargeback, S::Lost),
        (DisputeStage::PreArbitration, S::NeedsResponse),
    ] {
        let Some(state) = DisputeState::new(stage, status) else { continue };
        let expected = matches!(status, S::NeedsResponse | S::EvidenceSubmitted);
        assert_eq!(state.takes_evidence(), expected, "{state}");
    }
}

#[test]
fn wire_names_round_trip() {
    for n in Network::ALL {
        assert_eq!(Network::parse(n.as_str()), Some(*n));
    }
    for c in DisputeCategory::ALL {
        assert_eq!(DisputeCategory::parse(c.as_str()), Some(*c));
    }
    for e in DisputeEvent::ALL {
        assert_eq!(DisputeEvent::parse(e.as_str()), Some(*e));
    }
    for k in EvidenceKind::ALL {
        assert_eq!(EvidenceKind::parse(k.as_str()), Some(*k));
    }
    assert_eq!(DisputeStage::parse("retrieval_request"), Some(DisputeStage::RetrievalRequest));
    assert_eq!(DisputeStatus::parse("past_due"), Some(DisputeStatus::PastDue));
    assert_eq!(SummaryLocale::parse("zh-CN"), Some(SummaryLocale::ZhCn));
    assert_eq!(Network::of_brand(CardBrand::Discover), Network::Other);
    assert_eq!(Network::of_brand(CardBrand::UnionPay), Network::UnionPay);
    let state = st(DisputeStage::Chargeback, DisputeStatus::NeedsResponse);
    assert_eq!(state.to_string(), "chargeback (needs_response)");
}

#[test]
fn dispute_codes_are_unique_snake_case() {
    let unique: std::collections::HashSet<_> = DISPUTE_CODES.iter().collect();
    assert_eq!(unique.len(), DISPUTE_CODES.len());
    assert!(DISPUTE_CODES.iter().all(|c| c.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')));
}

#[test]
fn reason_codes_are_categorized_from_the_networks_tables() {
    use DisputeCategory as C;
    let cases = [
        (Network::Visa, "10.4", Some(C::Fraud)),
        (Network::Visa, "10.5", Some(C::Fraud)),
        (Network::Visa, "11.2", Some(C::Authorization)),
        (Network::Visa, "12.6", Some(C::ProcessingError)),
        (Network::Visa, "12.6.1", Some(C::ProcessingError)),
        (Network::Visa, " 13.6 ", Some(C::ConsumerDispute)),
        (Network::Visa, "13.9", Some(C::ConsumerDispute)),
        (Network::Visa, "13.10", None),
        (Network::Visa, "14.1", None),
        (Network::Visa, "83", None),
        (Network::Mastercard, "4837", Some(C::Fraud)),
        (Network::Mastercard, "4871", Some(C::Fraud)),
        (Network::Mastercard, "4808", Some(C::Authorization)),
        (Network::Mastercard, "4834", Some(C::ProcessingError)),
        (Network::Mastercard, "4846", Some(C::ProcessingError)),
        (Network::Mastercard, "4853", Some(C::ConsumerDispute)),
        (Network::Mastercard, "4860", Some(C::ConsumerDispute)),
        (Network::Mastercard, "10.4", None),
        (Network::Visa, "4837", None),
        (Network::Amex, "f29", Some(C::Fraud)),
        (Network::Amex, "C08", Some(C::ConsumerDispute)),
        (Network::Amex, "P08", Some(C::ProcessingError)),
        (Network::Amex, "A02", Some(C::Authorization)),
        (Network::Amex, "FR4", None),
        (Network::UnionPay, "4515", None),
        (Network::UnionPay, "1001", None),
        (Network::Jcb, "4515", None),
        (Network::Other, "10.4", None),
        (Network::Visa, "", None),
    ];
    for (network, code, expected) in cases {
        assert_eq!(categorize(network, code), expected, "{network} {code:?}");
    }
    assert_eq!(reason_code_title(Network::Visa, "13.1"), Some("Merchandise/services not received"));
    assert_eq!(reason_code_title(Network::Mastercard, "4863"), Some("Cardholder does not recognize, potential fraud"));
}

#[test]
fn reason_code_table_is_consistent() {
    let mut seen = std::collections::HashSet::new();
    for (network, code, category, title) in REASON_CODES {
        assert!(seen.insert((network, code)), "{network} {code} twice");
        assert!(!title.is_empty() && title.is_ascii());
        assert_eq!(code.trim(), *code);
        if *network == Network::Visa {
            // Visa's groups are the first number: 10 fraud … 13 consumer.
            let expected = match &code[..2] {
                "10" => DisputeCategory::Fraud,
                "11" => DisputeCategory::Authorization,
                "12" => DisputeCategory::ProcessingError,
                _ => DisputeCategory::ConsumerDispute,
            };
            assert_eq!(*category, expected, "{code}");
        }
        if *network == Network::Amex {
            let expected = match &code[..1] {
                "A" => DisputeCategory::Authorization,
                "C" => DisputeCategory::ConsumerDispute,
                "F" => DisputeCategory::Fraud,
                _ => DisputeCategory::ProcessingError,
            };
            assert_eq!(*category, expected, "{code}");
        }
        assert_ne!(*network, Network::UnionPay, "UnionPay codes are not guessed");
    }
    let visa = REASON_CODES.iter().filter(|r| r.0 == Network::Visa).count();
    assert_eq!(visa, 5 + 3 + 7 + 9);
}

#[test]
fn deadline_on_the_last_second_is_in_time_and_one_second_later_past_due() {
    let due = at("2025-06-10T15:59:59Z");
    let on_time = deadline_status(due, due, 3);
    assert_eq!(on_time, DeadlineState { days_left: 0, reminder_due: true, past_due: false });
    let late = deadline_status(due, due + SignedDuration::from_secs(1), 3);
    assert_eq!(late, DeadlineState { days_left: -1, reminder_due: false, past_due: true });
    let long_late = deadline_status(due, due + SignedDuration::from_secs(DAY + 1), 3);
    assert_eq!(long_late.days_left, -2);
}

#[test]
fn reminder_starts_exactly_n_days_before_the_deadline() {
    let due = at("2025-06-10T15:59:59Z");
    let exactly = deadline_status(due, due - SignedDuration::from_secs(3 * DAY), 3);
    assert_eq!(exactly, DeadlineState { days_left: 3, reminder_due: true, past_due: false });
    let one_second_earlier = deadline_status(due, due - SignedDuration::from_secs(3 * DAY + 1), 3);
    assert_eq!(one_second_earlier, DeadlineState { days_left: 3, reminder_due: false, past_due: false });
    let ten_hours = deadline_status(due, due - SignedDuration::from_hours(10), DEFAULT_REMIND_WITHIN_DAYS);
    assert_eq!((ten_hours.days_left, ten_hours.reminder_due), (0, true));
    let no_reminder = deadline_status(due, due - SignedDuration::from_hours(10), 0);
    assert!(!no_reminder.reminder_due, "a zero-day window reminds only at the deadline itself");
    assert!(deadline_status(due, due, 0).reminder_due);
}

#[test]
fn lost_and_accepted_disputes_count_against_the_refundable_amount() {
    let sale = card_sale(120_000);
    let priors = [PriorRefund { amount_minor: 20_000, status: RefundStatus::Succeeded, items: vec![] }];
    let lost = prior_dispute(st(DisputeStage::Chargeback, DisputeStatus::Lost), 50_000);
    let accepted = prior_dispute(st(DisputeStage::PreArbitration, DisputeStatus::Accepted), 10_000);
    let won = prior_dispute(st(DisputeStage::Chargeback, DisputeStatus::Won), 90_000);
    let open = prior_dispute(DisputeState::opened(DisputeStage::Chargeback), 90_000);
    let left = refundable_with_disputes(&sale, &priors, &[lost.clone(), accepted, won, open]).unwrap();
    assert_eq!(left, cny(40_000));
    let too_much = prior_dispute(st(DisputeStage::Chargeback, DisputeStatus::Lost), 200_000);
    assert_eq!(refundable_with_disputes(&sale, &priors, &[too_much]).unwrap(), cny(0), "never negative");
    let mut usd = lost;
    usd.amount = Money::new(1, Currency::parse("usd").unwrap());
    assert_eq!(refundable_with_disputes(&sale, &priors, &[usd]), Err(AmountError::CurrencyMismatch));
}

#[test]
fn an_open_dispute_blocks_refunds_with_sale_disputed() {
    let closed = prior_dispute(st(DisputeStage::RetrievalRequest, DisputeStatus::Closed), 1);
    let lost = prior_dispute(st(DisputeStage::Chargeback, DisputeStatus::Lost), 1);
    assert_eq!(sale_disputed(&[closed.clone(), lost]), None);
    for status in [DisputeStatus::NeedsResponse, DisputeStatus::EvidenceSubmitted, DisputeStatus::PastDue] {
        let mut open = prior_dispute(st(DisputeStage::Chargeback, status), 1);
        open.case_ref = "CB-2025-7".into();
        let reason = sale_disputed(&[closed.clone(), open]).expect("blocked");
        assert_eq!(reason.code, codes::SALE_DISPUTED);
        assert!(reason.en.contains("CB-2025-7") && reason.zh.contains("CB-2025-7"));
        assert!(!reason.en.contains("CB-1"), "closed cases are not named");
    }
    let retrieval = prior_dispute(DisputeState::opened(DisputeStage::RetrievalRequest), 1);
    assert!(sale_disputed(&[retrieval]).is_some(), "a retrieval request is part of the dispute");
}

#[test]
fn a_sale_refunded_in_full_answers_the_dispute_with_the_refund() {
    let refunds = [
        refund(50_000, RefundStatus::Succeeded, RefundType::Refund, "2025-03-02T02:00:00Z"),
        refund(70_000, RefundStatus::Succeeded, RefundType::Refund, "2025-03-03T02:00:00Z"),
        refund(10_000, RefundStatus::Failed, RefundType::Refund, "2025-03-01T03:00:00Z"),
    ];
    let answer = refund_as_evidence(&refunds, cny(120_000)).expect("refunded");
    assert_eq!(answer.code, codes::SALE_REFUNDED_IN_FULL);
    assert!(answer.covers_dispute);
    assert_eq!(answer.total, cny(120_000));
    assert_eq!(answer.refund_ids, vec![refunds[0].id, refunds[1].id], "succeeded only, oldest first");
    assert_eq!(answer.last_at, at("2025-03-03T02:01:00Z"));
    assert!(answer.en.contains("1200.00 CNY") && answer.zh.contains("1200.00 CNY"));
}

#[test]
fn a_partial_refund_answers_part_of_the_dispute() {
    let refunds = [refund(50_000, RefundStatus::Succeeded, RefundType::Refund, "2025-03-02T02:00:00Z")];
    let answer = refund_as_evidence(&refunds, cny(120_000)).unwrap();
    assert_eq!(answer.code, codes::SALE_REFUNDED_IN_PART);
    assert!(!answer.covers_dispute);
    let other_currency = refund_as_evidence(&refunds, Money::new(100, Currency::parse("usd").unwrap())).unwrap();
    assert!(!other_currency.covers_dispute, "amounts in different currencies are not compared");
}

#[test]
fn a_void_answers_the_dispute_and_pending_refunds_do_not() {
    let void = [refund(120_000, RefundStatus::Succeeded, RefundType::Void, "2025-03-01T02:05:00Z")];
    assert_eq!(refund_as_evidence(&void, cny(120_000)).unwrap().code, codes::SALE_VOIDED);
    let in_flight = [
        refund(120_000, RefundStatus::Processing, RefundType::Refund, "2025-03-02T02:00:00Z"),
        refund(120_000, RefundStatus::Pending, RefundType::Refund, "2025-03-02T02:00:00Z"),
        refund(120_000, RefundStatus::Canceled, RefundType::Refund, "2025-03-02T02:00:00Z"),
    ];
    assert_eq!(refund_as_evidence(&in_flight, cny(120_000)), None);
    assert_eq!(refund_as_evidence(&[], cny(120_000)), None);
}

fn summary_case<'a>(sale: &'a Sale, refunds: &'a [RefundRecord], tz: &'a TimeZone) -> CaseFacts<'a> {
    CaseFacts {
        case_ref: "CB-2025-0042",
        merchant_name: "西湖茶社",
        network: Network::Visa,
        reason_code: "13.1",
        category: None,
        state: DisputeState::opened(DisputeStage::Chargeback),
        amount: cny(120_000),
        opened_at: at("2025-03-20T01:00:00Z"),
        due_by: at("2025-04-18T15:59:59Z"),
        sale,
        refunds,
        time_zone: tz,
    }
}

fn evidence_list() -> Vec<Evidence> {
    vec![
        Evidence {
            kind: EvidenceKind::Receipt,
            description: "POS slip, signed".into(),
            file_name: "slip.jpg".into(),
            checksum: "sha256:9f86d081884c7d65".into(),
            added_at: at("2025-03-21T02:00:00Z"),
        },
        Evidence {
            kind: EvidenceKind::DeliveryProof,
            description: "Courier receipt".into(),
            file_name: "sf-express.pdf".into(),
            checksum: "sha256:60303ae22b998861".into(),
            added_at: at("2025-03-21T03:00:00Z"),
        },
    ]
}

#[test]
fn evidence_summary_lists_references_amounts_timeline_and_checksums() {
    let sale = card_sale(120_000);
    let tz = TimeZone::get("Asia/Shanghai").unwrap();
    let refunds = [];
    let case = summary_case(&sale, &refunds, &tz);
    let en = evidence_summary(&case, &evidence_list(), SummaryLocale::En);
    for expected in [
        "CB-2025-0042",
        "Visa",
        "13.1 (Merchandise/services not received)",
        "consumer_dispute",
        "1200.00 CNY",
        &sale.id.to_string(),
        "411111******1111",
        "RRN 123456789012",
        "authorization code A1B2C3",
        "voucher no. 000123",
        "batch 000001",
        "2025-03-01 10:00:00 +08:00  Sale captured",
        "2025-04-18 23:59:59 +08:00  Response due",
        "1. receipt: POS slip, signed",
        "sha256:9f86d081884c7d65",
        "2. delivery_proof: Courier receipt",
        "Evidence (2)",
    ] {
        assert!(en.contains(expected), "{expected:?} missing from\n{en}");
    }
    // The timeline is in order: sale, dispute, evidence, deadline.
    let pos = |s: &str| en.find(s).unwrap();
    assert!(pos("Sale captured") < pos("Dispute received"));
    assert!(pos("Dispute received") < pos("Evidence added"));
    assert!(pos("Evidence added") < pos("Response due"));
    assert!(!en.contains("Already refunded"));
}

#[test]
fn evidence_summary_in_chinese_and_both() {
    let sale = card_sale(120_000);
    let tz = TimeZone::get("Asia/Shanghai").unwrap();
    let refunds = [refund(120_000, RefundStatus::Succeeded, RefundType::Refund, "2025-03-05T02:00:00Z")];
    let case = summary_case(&sale, &refunds, &tz);
    let zh = evidence_summary(&case, &evidence_list(), SummaryLocale::ZhCn);
    for expected in [
        "争议应答材料 CB-2025-0042",
        "消费争议",
        "退单（拒付）",
        "参考号 123456789012",
        "签购单/小票",
        "已退还持卡人",
        "龙井茶",
    ] {
        assert!(zh.contains(expected), "{expected:?} missing from\n{zh}");
    }
    assert!(zh.contains(&refunds[0].id.to_string()));
    let both = evidence_summary(&case, &evidence_list(), SummaryLocale::Bilingual);
    let en = evidence_summary(&case, &evidence_list(), SummaryLocale::En);
    assert!(both.starts_with(&zh) && both.ends_with(&en));
    assert!(en.contains("Already refunded to the cardholder") && en.contains("Refund re_"));
}

#[test]
fn evidence_summary_never_holds_a_card_number() {
    let sale = card_sale(120_000);
    let tz = TimeZone::UTC;
    let case = summary_case(&sale, &[], &tz);
    for locale in SummaryLocale::ALL {
        let text = evidence_summary(&case, &evidence_list(), *locale);
        assert!(!crate::card::contains_card_number(&text), "{text}");
    }
}

#[test]
fn evidence_summary_takes_the_category_from_the_acquirer_when_given() {
    let sale = card_sale(120_000);
    let tz = TimeZone::UTC;
    let mut case = summary_case(&sale, &[], &tz);
    case.network = Network::UnionPay;
    case.reason_code = "4515";
    let unknown = evidence_summary(&case, &[], SummaryLocale::En);
    assert!(unknown.contains("Category: unknown") && unknown.contains("(no evidence yet)"));
    case.category = Some(DisputeCategory::Fraud);
    assert!(evidence_summary(&case, &[], SummaryLocale::En).contains("Category: fraud"));
    assert!(evidence_summary(&case, &[], SummaryLocale::ZhCn).contains("类别：欺诈"));
}

proptest! {
    /// Whatever events arrive, in whatever order, a case stays in a listed
    /// state; a refused event leaves it where it was; won and accepted cases
    /// never move again, and a lost one only into a second cycle.
    #[test]
    fn random_events_keep_a_case_in_its_documented_states(
        stage in proptest::sample::select(DisputeStage::ALL.to_vec()),
        network in proptest::sample::select(Network::ALL.to_vec()),
        events in proptest::collection::vec(proptest::sample::select(DisputeEvent::ALL.to_vec()), 0..30),
    ) {
        let mut state = DisputeState::opened(stage);
        let mut was_chargeback = state.is_chargeback();
        for event in events {
            match state.on(network, event) {
                Ok(next) => {
                    prop_assert!(DisputeState::ALL.contains(&next));
                    prop_assert!(!matches!(state.status(), DisputeStatus::Won | DisputeStatus::Accepted));
                    if state.status() == DisputeStatus::Lost {
                        prop_assert_eq!(next.stage(), DisputeStage::PreArbitration);
                    }
                    // A chargeback never goes back to being a retrieval request.
                    prop_assert!(!was_chargeback || next.is_chargeback());
                    state = next;
                    was_chargeback |= state.is_chargeback();
                }
                Err(e) => prop_assert_eq!(e.from, state),
            }
        }
    }

    /// Disputes and refunds together never make the refundable amount
    /// negative nor larger than captured less the refunds.
    #[test]
    fn disputes_only_ever_lower_what_is_left_to_refund(
        captured in 1i64..=1_000_000,
        refunded in 0i64..=1_000_000,
        disputes in proptest::collection::vec(
            (proptest::sample::select(DisputeState::ALL.to_vec()), 1i64..=1_000_000), 0..5),
    ) {
        let sale = card_sale(captured);
        let priors = [PriorRefund { amount_minor: refunded, status: RefundStatus::Succeeded, items: vec![] }];
        let disputes: Vec<PriorDispute> = disputes.into_iter().map(|(s, a)| prior_dispute(s, a)).collect();
        let with = refundable_with_disputes(&sale, &priors, &disputes).unwrap();
        let without = crate::refund::refundable(&sale, &priors).unwrap();
        prop_assert!(with.minor >= 0);
        prop_assert!(with.minor <= without.minor);
        let none_counts = disputes.iter().all(|d| !d.state.counts_against_sale());
        if none_counts {
            prop_assert_eq!(with, without);
        }
    }
}
