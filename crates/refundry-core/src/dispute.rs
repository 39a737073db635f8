//! Chargebacks (退单 / 拒付) and retrieval requests (调单): the case
//! lifecycle, the networks' reason codes, deadlines, the evidence summary a
//! merchant submits, and the rules that keep a sale from being lost twice
//! (once to a refund and once to a chargeback).
//!
//! A case moves in two coordinates: the [`DisputeStage`] (which cycle the
//! issuer is in: retrieval request, chargeback, pre-arbitration) and the
//! [`DisputeStatus`] within it (needs a response, evidence submitted, won,
//! lost…). [`DisputeState::on`] is the one table of legal moves.

use crate::card::MaskedCard;
use crate::ids::RefundId;
use crate::money::{AmountError, Money};
use crate::refund::{PriorRefund, RefundStatus, RefundType, held_minor};
use crate::sale::{CardBrand, EntryMode, PaymentMethod, Sale, Wallet, wire_enum};
use jiff::Timestamp;
use jiff::tz::TimeZone;
use std::fmt;

wire_enum!(
    /// The card network a dispute comes through.
    Network {
        UnionPay = "unionpay", Visa = "visa", Mastercard = "mastercard", Amex = "amex", Jcb = "jcb",
        Other = "other",
    }
);

wire_enum!(
    /// What the issuer says went wrong, in the four groups Visa uses since
    /// Visa Claims Resolution and the other networks' codes fall into.
    DisputeCategory {
        Fraud = "fraud", Authorization = "authorization", ProcessingError = "processing_error",
        ConsumerDispute = "consumer_dispute",
    }
);

wire_enum!(
    /// Which cycle of the dispute the issuer is in:
    ///
    /// - `retrieval_request` (调单): the issuer asks for the sale's
    ///   documents; no money has moved yet.
    /// - `chargeback` (退单 / 拒付): the issuer has taken the money back; the
    ///   merchant may contest.
    /// - `pre_arbitration`: the second cycle (UnionPay's 二次退单): the
    ///   issuer contests the merchant's answer, or the merchant contests a
    ///   loss.
    DisputeStage { RetrievalRequest = "retrieval_request", Chargeback = "chargeback", PreArbitration = "pre_arbitration" }
);

wire_enum!(
    /// Where a case is within its stage:
    ///
    /// - `needs_response`: waiting for the merchant's answer before `due_by`;
    /// - `evidence_submitted`: the merchant's answer (representment) is with
    ///   the acquirer and the network;
    /// - `accepted`: the merchant conceded;
    /// - `won`, `lost`: decided;
    /// - `closed`: a retrieval request that was answered (or otherwise
    ///   ended) without a chargeback;
    /// - `past_due`: `due_by` passed without an answer.
    DisputeStatus {
        NeedsResponse = "needs_response", EvidenceSubmitted = "evidence_submitted", Accepted = "accepted",
        Won = "won", Lost = "lost", Closed = "closed", PastDue = "past_due",
    }
);

wire_enum!(
    /// What may happen to a case:
    ///
    /// - `respond_to_retrieval`: the merchant sent the documents the
    ///   retrieval request asked for;
    /// - `escalate`: the issuer turned a retrieval request into a chargeback;
    /// - `submit_evidence`: the merchant contested with evidence
    ///   (representment, 再请款);
    /// - `accept`: the merchant conceded;
    /// - `win`: the network or the issuer decided for the merchant, or the
    ///   issuer withdrew the chargeback;
    /// - `lose`: the network or the issuer decided for the cardholder;
    /// - `pre_arbitration`: the issuer (or the merchant, after a loss) opened
    ///   the second cycle;
    /// - `mark_past_due`: the response deadline passed without an answer.
    DisputeEvent {
        RespondToRetrieval = "respond_to_retrieval", Escalate = "escalate", SubmitEvidence = "submit_evidence",
        Accept = "accept", Win = "win", Lose = "lose", PreArbitration = "pre_arbitration",
        MarkPastDue = "mark_past_due",
    }
);

impl Network {
    /// The network a card brand's disputes come through. Discover and
    /// Diners have their own rules that Refundry does not know: `other`.
    pub fn of_brand(brand: CardBrand) -> Network {
        match brand {
            CardBrand::UnionPay => Network::UnionPay,
            CardBrand::Visa => Network::Visa,
            CardBrand::Mastercard => Network::Mastercard,
            CardBrand::Amex => Network::Amex,
            CardBrand::Jcb => Network::Jcb,
            CardBrand::Discover | CardBrand::Diners | CardBrand::Other => Network::Other,
        }
    }

    /// Whether a second cycle may follow the chargeback. Visa has
    /// pre-arbitration after the merchant's representment (or, in the
    /// allocation flow, after the issuer's decision); Mastercard has
    /// pre-arbitration after the second presentment; UnionPay has the second
    /// chargeback (二次退单) before arbitration. American Express decides a
    /// dispute itself after the merchant's reply, with no second cycle. For
    /// JCB and other networks the acquirer's file is the authority, so the
    /// move is not refused.
    pub fn has_pre_arbitration(self) -> bool {
        !matches!(self, Network::Amex)
    }
}

/// A case's place in its lifecycle: a stage and a status within it. Only
/// the combinations in [`DisputeState::ALL`] exist: a retrieval request is
/// never won or lost (no money moved), and only a retrieval request is
/// closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DisputeState {
    stage: DisputeStage,
    status: DisputeStatus,
}

/// A move [`DisputeState::on`] refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a {from} dispute on {network} cannot {event}")]
pub struct IllegalTransition {
    pub from: DisputeState,
    pub network: Network,
    pub event: DisputeEvent,
}

impl DisputeState {
    /// Every state a case can be in.
    pub const ALL: &'static [DisputeState] = &[
        DisputeState { stage: DisputeStage::RetrievalRequest, status: DisputeStatus::NeedsResponse },
        DisputeState { stage: DisputeStage::RetrievalRequest, status: DisputeStatus::PastDue },
        DisputeState { stage: DisputeStage::RetrievalRequest, status: DisputeStatus::Closed },
        DisputeState { stage: DisputeStage::Chargeback, status: DisputeStatus::NeedsResponse },
        DisputeState { stage: DisputeStage::Chargeback, status: DisputeStatus::EvidenceSubmitted },
        DisputeState { stage: DisputeStage::Chargeback, status: DisputeStatus::PastDue },
        DisputeState { stage: DisputeStage::Chargeback, status: DisputeStatus::Accepted },
        DisputeState { stage: DisputeStage::Chargeback, status: DisputeStatus::Won },
        DisputeState { stage: DisputeStage::Chargeback, status: DisputeStatus::Lost },
        DisputeState { stage: DisputeStage::PreArbitration, status: DisputeStatus::NeedsResponse },
        DisputeState { stage: DisputeStage::PreArbitration, status: DisputeStatus::EvidenceSubmitted },
        DisputeState { stage: DisputeStage::PreArbitration, status: DisputeStatus::PastDue },
        DisputeState { stage: DisputeStage::PreArbitration, status: DisputeStatus::Accepted },
        DisputeState { stage: DisputeStage::PreArbitration, status: DisputeStatus::Won },
        DisputeState { stage: DisputeStage::PreArbitration, status: DisputeStatus::Lost },
    ];

    /// A stage and status read back from storage; `None` for a combination
    /// that cannot exist.
    pub fn new(stage: DisputeStage, status: DisputeStatus) -> Option<DisputeState> {
        let state = DisputeState { stage, status };
        DisputeState::ALL.contains(&state).then_some(state)
    }

    /// A case as it arrives from the acquirer: at any stage, waiting for the
    /// merchant (a chargeback often comes without a retrieval request first).
    pub fn opened(stage: DisputeStage) -> DisputeState {
        DisputeState { stage, status: DisputeStatus::NeedsResponse }
    }

    pub fn stage(self) -> DisputeStage {
        self.stage
    }

    pub fn status(self) -> DisputeStatus {
        self.status
    }

    /// The one place that says which moves are legal. Every state is listed
    /// so that a new state cannot be added without deciding its moves.
    ///
    /// | from | event | to |
    /// | --- | --- | --- |
    /// | retrieval_request / needs_response | respond_to_retrieval | retrieval_request / closed |
    /// | retrieval_request / needs_response | escalate | chargeback / needs_response |
    /// | retrieval_request / needs_response | mark_past_due | retrieval_request / past_due |
    /// | retrieval_request / past_due | respond_to_retrieval (a late answer) | retrieval_request / closed |
    /// | retrieval_request / past_due | escalate | chargeback / needs_response |
    /// | retrieval_request / closed | escalate (answering does not stop a chargeback) | chargeback / needs_response |
    /// | chargeback or pre_arbitration / needs_response | submit_evidence | same stage / evidence_submitted |
    /// | chargeback or pre_arbitration / needs_response | accept | same stage / accepted |
    /// | chargeback or pre_arbitration / needs_response | mark_past_due | same stage / past_due |
    /// | chargeback or pre_arbitration / needs_response | win (the issuer withdraws) | same stage / won |
    /// | chargeback or pre_arbitration / evidence_submitted | win, lose | same stage / won, lost |
    /// | chargeback or pre_arbitration / past_due | win (withdrawn), lose, accept | same stage / won, lost, accepted |
    /// | chargeback / evidence_submitted or lost | pre_arbitration, where the network has it | pre_arbitration / needs_response |
    ///
    /// Nothing else: won and accepted are the end, and so is lost except for
    /// a chargeback's second cycle.
    pub fn on(self, network: Network, event: DisputeEvent) -> Result<DisputeState, IllegalTransition> {
        use DisputeEvent as E;
        use DisputeStage as G;
        use DisputeStatus as S;
        let stage = self.stage;
        let to = |stage, status| Some(DisputeState { stage, status });
        let second_cycle = network.has_pre_arbitration();
        let next = match (stage, self.status, event) {
            (G::RetrievalRequest, S::NeedsResponse | S::PastDue, E::RespondToRetrieval) => {
                to(G::RetrievalRequest, S::Closed)
            }
            (G::RetrievalRequest, S::NeedsResponse | S::PastDue | S::Closed, E::Escalate) => {
                to(G::Chargeback, S::NeedsResponse)
            }
            (G::RetrievalRequest, S::NeedsResponse, E::MarkPastDue) => to(G::RetrievalRequest, S::PastDue),
            (G::RetrievalRequest, S::NeedsResponse | S::PastDue | S::Closed, _) => None,
            // Not states of a retrieval request; `new` never makes them.
            (G::RetrievalRequest, S::EvidenceSubmitted | S::Accepted | S::Won | S::Lost, _) => None,

            (G::Chargeback | G::PreArbitration, S::NeedsResponse, E::SubmitEvidence) => to(stage, S::EvidenceSubmitted),
            (G::Chargeback | G::PreArbitration, S::NeedsResponse | S::PastDue, E::Accept) => to(stage, S::Accepted),
            (G::Chargeback | G::PreArbitration, S::NeedsResponse, E::MarkPastDue) => to(stage, S::PastDue),
            (G::Chargeback | G::PreArbitration, S::NeedsResponse | S::EvidenceSubmitted | S::PastDue, E::Win) => {
                to(stage, S::Won)
            }
            (G::Chargeback | G::PreArbitration, S::EvidenceSubmitted | S::PastDue, E::Lose) => to(stage, S::Lost),
            (G::Chargeback, S::EvidenceSubmitted | S::Lost, E::PreArbitration) if second_cycle => {
                to(G::PreArbitration, S::NeedsResponse)
            }
            (G::Chargeback | G::PreArbitration, S::NeedsResponse | S::EvidenceSubmitted | S::PastDue, _) => None,
            (G::Chargeback | G::PreArbitration, S::Lost | S::Won | S::Accepted, _) => None,
            // Not a state of a chargeback; `new` never makes it.
            (G::Chargeback | G::PreArbitration, S::Closed, _) => None,
        };
        next.ok_or(IllegalTransition { from: self, network, event })
    }

    /// See [`DisputeStatus::is_open`].
    pub fn is_open(self) -> bool {
        self.status.is_open()
    }

    /// See [`DisputeStatus::counts_against_sale`].
    pub fn counts_against_sale(self) -> bool {
        self.status.counts_against_sale()
    }

    /// See [`DisputeStatus::is_final`].
    pub fn is_final(self) -> bool {
        self.status.is_final()
    }

    /// Evidence may still be added: the case waits for the merchant's
    /// answer or the answer is with the network. A case past its deadline
    /// or decided takes none: the network would not read it.
    pub fn takes_evidence(self) -> bool {
        match self.status {
            DisputeStatus::NeedsResponse | DisputeStatus::EvidenceSubmitted => true,
            DisputeStatus::PastDue
            | DisputeStatus::Accepted
            | DisputeStatus::Won
            | DisputeStatus::Lost
            | DisputeStatus::Closed => false,
        }
    }

    /// The case waits for the merchant, so its deadline matters.
    pub fn awaits_response(self) -> bool {
        self.status == DisputeStatus::NeedsResponse
    }

    /// The case is (or was) a chargeback, not only a retrieval request: what
    /// the networks' chargeback ratios count, once per case.
    pub fn is_chargeback(self) -> bool {
        self.stage != DisputeStage::RetrievalRequest
    }
}

impl fmt::Display for DisputeState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.stage, self.status)
    }
}

impl DisputeStatus {
    /// The case is still being worked: the sale may not be refunded
    /// (`sale_disputed`), so that the customer is not paid twice.
    pub fn is_open(self) -> bool {
        match self {
            DisputeStatus::NeedsResponse | DisputeStatus::EvidenceSubmitted | DisputeStatus::PastDue => true,
            DisputeStatus::Accepted | DisputeStatus::Won | DisputeStatus::Lost | DisputeStatus::Closed => false,
        }
    }

    /// The disputed amount went back to the cardholder for good, so it holds
    /// part of the sale's refundable amount like a refund does.
    pub fn counts_against_sale(self) -> bool {
        match self {
            DisputeStatus::Accepted | DisputeStatus::Lost => true,
            DisputeStatus::NeedsResponse
            | DisputeStatus::EvidenceSubmitted
            | DisputeStatus::PastDue
            | DisputeStatus::Won
            | DisputeStatus::Closed => false,
        }
    }

    /// No further movement is expected (a lost chargeback may still get a
    /// second cycle, and a closed retrieval request a chargeback, as a failed
    /// refund may be retried).
    pub fn is_final(self) -> bool {
        !self.is_open()
    }
}

/// Stable codes of the sentences this module gives. Part of the API.
pub mod codes {
    /// An open dispute blocks refunds of the sale.
    pub const SALE_DISPUTED: &str = "sale_disputed";
    /// The sale was refunded in full before or during the dispute: the refund answers it.
    pub const SALE_REFUNDED_IN_FULL: &str = "sale_refunded_in_full";
    /// Part of the disputed amount was already refunded.
    pub const SALE_REFUNDED_IN_PART: &str = "sale_refunded_in_part";
    /// The sale was voided (撤销): the cardholder was never charged.
    pub const SALE_VOIDED: &str = "sale_voided";
}

/// Every code this module's sentences carry.
pub const DISPUTE_CODES: &[&str] =
    &[codes::SALE_DISPUTED, codes::SALE_REFUNDED_IN_FULL, codes::SALE_REFUNDED_IN_PART, codes::SALE_VOIDED];

/// A stable code and a sentence in Simplified Chinese and English.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisputeReason {
    /// One of [`DISPUTE_CODES`].
    pub code: &'static str,
    pub zh: String,
    pub en: String,
}

// ---------------------------------------------------------------------------
// Reason codes

/// Reason codes Refundry knows, with their category and the network's
/// title. Visa: the Visa Claims Resolution codes (10 fraud, 11
/// authorization, 12 processing errors, 13 consumer disputes). Mastercard:
/// the message reason codes of the Chargeback Guide, grouped as Mastercard
/// groups them. American Express: the A (authorization), C (card member
/// dispute), F (fraud) and P (processing) codes; FR4/FR6 (immediate
/// chargeback programmes), M and R codes have no category and give `None`.
///
/// UnionPay publishes its dispute reason codes only to its members, and
/// acquirers' files differ; rather than guess, UnionPay codes give `None`.
/// The acquirer's dispute file usually carries the category itself: take it
/// from there. JCB likewise.
const REASON_CODES: &[ReasonRow] = {
    use DisputeCategory::{Authorization as A, ConsumerDispute as C, Fraud as F, ProcessingError as P};
    use Network::{Amex, Mastercard as Mc, Visa};
    &[
        (Visa, "10.1", F, "EMV liability shift counterfeit fraud"),
        (Visa, "10.2", F, "EMV liability shift non-counterfeit fraud"),
        (Visa, "10.3", F, "Other fraud: card-present environment"),
        (Visa, "10.4", F, "Other fraud: card-absent environment"),
        (Visa, "10.5", F, "Visa Fraud Monitoring Program"),
        (Visa, "11.1", A, "Card recovery bulletin"),
        (Visa, "11.2", A, "Declined authorization"),
        (Visa, "11.3", A, "No authorization"),
        (Visa, "12.1", P, "Late presentment"),
        (Visa, "12.2", P, "Incorrect transaction code"),
        (Visa, "12.3", P, "Incorrect currency"),
        (Visa, "12.4", P, "Incorrect account number"),
        (Visa, "12.5", P, "Incorrect amount"),
        (Visa, "12.6", P, "Duplicate processing or paid by other means"),
        (Visa, "12.7", P, "Invalid data"),
        (Visa, "13.1", C, "Merchandise/services not received"),
        (Visa, "13.2", C, "Cancelled recurring transaction"),
        (Visa, "13.3", C, "Not as described or defective merchandise/services"),
        (Visa, "13.4", C, "Counterfeit merchandise"),
        (Visa, "13.5", C, "Misrepresentation"),
        (Visa, "13.6", C, "Credit not processed"),
        (Visa, "13.7", C, "Cancelled merchandise/services"),
        (Visa, "13.8", C, "Original credit transaction not accepted"),
        (Visa, "13.9", C, "Non-receipt of cash or load transaction value"),
        (Mc, "4807", A, "Warning bulletin file"),
        (Mc, "4808", A, "Authorization-related chargeback"),
        (Mc, "4812", A, "Account number not on file"),
        (Mc, "4831", P, "Transaction amount differs"),
        (Mc, "4834", P, "Point-of-interaction error"),
        (Mc, "4837", F, "No cardholder authorization"),
        (Mc, "4840", F, "Fraudulent processing of transactions"),
        (Mc, "4841", C, "Cancelled recurring or digital goods transactions"),
        (Mc, "4842", P, "Late presentment"),
        (Mc, "4846", P, "Correct transaction currency code not provided"),
        (Mc, "4849", F, "Questionable merchant activity"),
        (Mc, "4853", C, "Cardholder dispute"),
        (Mc, "4854", C, "Cardholder dispute, not elsewhere classified (U.S. region only)"),
        (Mc, "4855", C, "Goods or services not provided"),
        (Mc, "4859", C, "Addendum, no-show, or ATM dispute"),
        (Mc, "4860", C, "Credit not processed"),
        (Mc, "4862", F, "Counterfeit transaction, magnetic stripe POS fraud"),
        (Mc, "4863", F, "Cardholder does not recognize, potential fraud"),
        (Mc, "4870", F, "Chip liability shift"),
        (Mc, "4871", F, "Chip/PIN liability shift"),
        (Amex, "A01", A, "Charge amount exceeds authorization amount"),
        (Amex, "A02", A, "No valid authorization"),
        (Amex, "A08", A, "Authorization approval expired"),
        (Amex, "C02", C, "Credit not processed"),
        (Amex, "C04", C, "Goods/services returned or refused"),
        (Amex, "C05", C, "Goods/services cancelled"),
        (Amex, "C08", C, "Goods/services not received or only partially received"),
        (Amex, "C14", C, "Paid by other means"),
        (Amex, "C18", C, "\"No show\" or CARDeposit cancelled"),
        (Amex, "C28", C, "Cancelled recurring billing"),
        (Amex, "C31", C, "Goods/services not as described"),
        (Amex, "C32", C, "Goods/services damaged or defective"),
        (Amex, "F10", F, "Missing imprint"),
        (Amex, "F14", F, "Missing signature"),
        (Amex, "F24", F, "No card member authorization"),
        (Amex, "F29", F, "Card not present"),
        (Amex, "FR2", F, "Fraud full recourse program"),
        (Amex, "P01", P, "Unassigned card number"),
        (Amex, "P03", P, "Credit processed as charge"),
        (Amex, "P04", P, "Charge processed as credit"),
        (Amex, "P05", P, "Incorrect charge amount"),
        (Amex, "P07", P, "Late submission"),
        (Amex, "P08", P, "Duplicate charge"),
        (Amex, "P22", P, "Non-matching card number"),
        (Amex, "P23", P, "Currency discrepancy"),
    ]
};

/// Network, code, category, the network's English title.
type ReasonRow = (Network, &'static str, DisputeCategory, &'static str);

fn reason_row(network: Network, reason_code: &str) -> Option<&'static ReasonRow> {
    let code = reason_code.trim().to_ascii_uppercase();
    // Visa's sub-codes (12.6.1 duplicate processing, 12.6.2 paid by other
    // means) belong to their parent code.
    let code = match network {
        Network::Visa => code.splitn(3, '.').take(2).collect::<Vec<_>>().join("."),
        _ => code,
    };
    REASON_CODES.iter().find(|(n, c, _, _)| *n == network && *c == code)
}

/// The category of a network's reason code, when Refundry knows the code.
/// Surrounding spaces and letter case are ignored; Visa sub-codes such as
/// `12.6.1` take their parent's category. `None` for unknown codes and for
/// every UnionPay and JCB code (see the table's note): take the category
/// from the acquirer's file then.
pub fn categorize(network: Network, reason_code: &str) -> Option<DisputeCategory> {
    reason_row(network, reason_code).map(|row| row.2)
}

/// The network's English title of a reason code Refundry knows.
pub fn reason_code_title(network: Network, reason_code: &str) -> Option<&'static str> {
    reason_row(network, reason_code).map(|row| row.3)
}

// ---------------------------------------------------------------------------
// Deadlines

/// Days before `due_by` from which a case is on the reminder list, unless
/// the merchant sets otherwise.
pub const DEFAULT_REMIND_WITHIN_DAYS: u32 = 3;

const SECONDS_PER_DAY: i64 = 86_400;

/// How a case stands against its response deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeadlineState {
    /// Whole days of 86400 seconds left, rounded down: 0 on the last day,
    /// negative once past (one second late is -1).
    pub days_left: i64,
    /// Not past due, and `due_by` is at most the reminder window away.
    pub reminder_due: bool,
    /// `now` is after `due_by`; `due_by` itself is still in time.
    pub past_due: bool,
}

/// Where `now` stands against `due_by`, with a reminder from
/// `remind_within_days` days before it. Whether a past-due case is marked
/// `past_due` is for the caller to do with [`DisputeEvent::MarkPastDue`],
/// when the case [awaits a response](DisputeState::awaits_response).
pub fn deadline_status(due_by: Timestamp, now: Timestamp, remind_within_days: u32) -> DeadlineState {
    let left = due_by.duration_since(now).as_secs();
    let past_due = left < 0;
    DeadlineState {
        days_left: left.div_euclid(SECONDS_PER_DAY),
        reminder_due: !past_due && left <= i64::from(remind_within_days) * SECONDS_PER_DAY,
        past_due,
    }
}

// ---------------------------------------------------------------------------
// No double loss

/// An earlier dispute of the same sale, as far as the refund arithmetic and
/// the refund block care.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriorDispute {
    /// The acquirer's case number.
    pub case_ref: String,
    pub state: DisputeState,
    /// The disputed amount, in the sale's currency.
    pub amount: Money,
}

/// Sum of the disputes that took money back for good (lost or accepted).
pub fn held_by_disputes(disputes: &[PriorDispute]) -> Result<i64, AmountError> {
    disputes
        .iter()
        .filter(|d| d.state.counts_against_sale())
        .try_fold(0i64, |acc, d| acc.checked_add(d.amount.minor).ok_or(AmountError::Overflow))
}

/// What is still refundable on a sale once its disputes are counted:
/// captured, less every refund that counts, less every lost or accepted
/// dispute. Never negative. A dispute in another currency than the sale is
/// refused rather than added.
pub fn refundable_with_disputes(
    sale: &Sale,
    priors: &[PriorRefund],
    disputes: &[PriorDispute],
) -> Result<Money, AmountError> {
    if disputes.iter().any(|d| d.amount.currency != sale.amount.currency) {
        return Err(AmountError::CurrencyMismatch);
    }
    let held = held_minor(priors)?.checked_add(held_by_disputes(disputes)?).ok_or(AmountError::Overflow)?;
    Ok(Money::new(sale.amount.minor.saturating_sub(held).max(0), sale.amount.currency))
}

/// `sale_disputed` when any dispute of the sale is open: the sale may not be
/// refunded at the counter while the issuer is taking (or may take) the
/// money back, or the customer would be paid twice.
pub fn sale_disputed(disputes: &[PriorDispute]) -> Option<DisputeReason> {
    let open: Vec<&str> = disputes.iter().filter(|d| d.state.is_open()).map(|d| d.case_ref.as_str()).collect();
    if open.is_empty() {
        return None;
    }
    let refs = open.join(", ");
    Some(DisputeReason {
        code: codes::SALE_DISPUTED,
        zh: format!("该笔交易存在未结案的争议（案件 {refs}），争议处理完毕前不能退款，以免重复损失。"),
        en: format!(
            "The sale has an open dispute (case {refs}); it cannot be refunded until the dispute ends, \
             so that the customer is not paid twice."
        ),
    })
}

/// A refund or void of the disputed sale, as the dispute desk sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundRecord {
    pub id: RefundId,
    pub refund_type: RefundType,
    pub amount: Money,
    pub status: RefundStatus,
    pub created_at: Timestamp,
    /// When the acquirer confirmed it, if it did.
    pub succeeded_at: Option<Timestamp>,
    /// The acquirer's reference for the refund, when it gave one.
    pub rrn: Option<String>,
}

/// The refunds that answer a dispute: the customer already has the money.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundEvidence {
    /// `sale_refunded_in_full`, `sale_refunded_in_part` or `sale_voided`.
    pub code: &'static str,
    /// The succeeded refunds and voids, oldest first.
    pub refund_ids: Vec<RefundId>,
    pub total: Money,
    /// The refunds add up to at least the disputed amount (false when the
    /// currencies differ: the desk compares them itself then).
    pub covers_dispute: bool,
    /// When the last of them was confirmed.
    pub last_at: Timestamp,
    pub zh: String,
    pub en: String,
}

/// When the sale was already refunded or voided, the refunds that answer
/// the dispute (a credit was processed; Visa 13.6, Mastercard 4860, Amex
/// C02 ask for exactly that). Only succeeded refunds count: one that is
/// still pending or processing proves nothing yet. `None` when there is none.
pub fn refund_as_evidence(refunds: &[RefundRecord], disputed: Money) -> Option<RefundEvidence> {
    let mut done: Vec<&RefundRecord> = refunds.iter().filter(|r| r.status == RefundStatus::Succeeded).collect();
    done.sort_by_key(|r| (r.succeeded_at.unwrap_or(r.created_at), r.id));
    // Refunds are made in the sale's currency; anything else is left out
    // rather than added.
    let currency = done.first()?.amount.currency;
    done.retain(|r| r.amount.currency == currency);
    let total_minor = done.iter().try_fold(0i64, |acc, r| acc.checked_add(r.amount.minor)).unwrap_or(i64::MAX);
    let total = Money::new(total_minor, currency);
    let covers_dispute = currency == disputed.currency && total_minor >= disputed.minor;
    let last_at = done.iter().map(|r| r.succeeded_at.unwrap_or(r.created_at)).max().unwrap_or(Timestamp::UNIX_EPOCH);
    let voided = done.iter().any(|r| r.refund_type == RefundType::Void);
    let ids = done.iter().map(|r| r.id.to_string()).collect::<Vec<_>>().join(", ");
    let (code, zh, en) = if voided {
        (
            codes::SALE_VOIDED,
            format!("该笔交易已于结算前撤销（{ids}，{last_at}），持卡人未被扣款。"),
            format!("The sale was voided before settlement ({ids}, {last_at}); the cardholder was never charged."),
        )
    } else if covers_dispute {
        (
            codes::SALE_REFUNDED_IN_FULL,
            format!("争议金额 {disputed} 已全额退还持卡人：退款 {ids} 共 {total}，最后一笔于 {last_at} 成功。"),
            format!(
                "The disputed {disputed} was already refunded to the cardholder: refund {ids}, {total} in all, \
                 the last confirmed at {last_at}."
            ),
        )
    } else {
        (
            codes::SALE_REFUNDED_IN_PART,
            format!("争议金额 {disputed} 中已有 {total} 退还持卡人（退款 {ids}，最后一笔于 {last_at} 成功）。"),
            format!(
                "{total} of the disputed {disputed} was already refunded to the cardholder \
                 (refund {ids}, the last confirmed at {last_at})."
            ),
        )
    };
    Some(RefundEvidence {
        code,
        refund_ids: done.iter().map(|r| r.id).collect(),
        total,
        covers_dispute,
        last_at,
        zh,
        en,
    })
}

// ---------------------------------------------------------------------------
// Evidence and the summary submitted with it

wire_enum!(
    /// What a piece of evidence is: the POS slip (签购单) or till `receipt`,
    /// the cardholder's `signature` (on the slip or the terminal's screen),
    /// `refund_proof` that the money was given back, `delivery_proof` that
    /// the goods or service reached the customer, `correspondence` with the
    /// customer, or `other`.
    EvidenceKind {
        Receipt = "receipt", Signature = "signature", RefundProof = "refund_proof",
        DeliveryProof = "delivery_proof", Correspondence = "correspondence", Other = "other",
    }
);

/// One file of evidence, as the caller stored it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evidence {
    pub kind: EvidenceKind,
    /// What it shows, in the merchant's words.
    pub description: String,
    pub file_name: String,
    /// The file's checksum as the caller computed it, e.g. `sha256:…`.
    pub checksum: String,
    pub added_at: Timestamp,
}

wire_enum!(
    /// The language of a summary: Simplified Chinese, English, or both
    /// (Chinese first), for a case that goes to a network abroad.
    SummaryLocale { ZhCn = "zh-CN", En = "en", Bilingual = "zh-CN+en" }
);

/// Everything the summary says about a case.
#[derive(Debug, Clone, Copy)]
pub struct CaseFacts<'a> {
    /// The acquirer's case number.
    pub case_ref: &'a str,
    pub merchant_name: &'a str,
    pub network: Network,
    pub reason_code: &'a str,
    /// From the acquirer's file; when `None`, [`categorize`] is asked.
    pub category: Option<DisputeCategory>,
    pub state: DisputeState,
    pub amount: Money,
    pub opened_at: Timestamp,
    pub due_by: Timestamp,
    pub sale: &'a Sale,
    /// The sale's refunds and voids (only succeeded ones are mentioned).
    pub refunds: &'a [RefundRecord],
    /// Times are written in this zone (the store's).
    pub time_zone: &'a TimeZone,
}

/// A plain-text summary of a case for submission with its evidence: the
/// sale's references and amounts, the timeline, a refund that answers the
/// dispute, and the list of evidence with the checksums the caller gave.
/// Card numbers appear only masked (first 6, last 4); nothing about the
/// customer is written.
pub fn evidence_summary(case: &CaseFacts<'_>, evidence: &[Evidence], locale: SummaryLocale) -> String {
    match locale {
        SummaryLocale::ZhCn => summary(case, evidence, &ZH),
        SummaryLocale::En => summary(case, evidence, &EN),
        SummaryLocale::Bilingual => {
            let (zh, en) = (summary(case, evidence, &ZH), summary(case, evidence, &EN));
            format!("{zh}\n----------------------------------------\n\n{en}")
        }
    }
}

/// The fixed words of a summary in one language.
struct Words {
    title: &'static str,
    merchant: &'static str,
    network: &'static str,
    reason_code: &'static str,
    category: &'static str,
    unknown_category: &'static str,
    stage: &'static str,
    status: &'static str,
    disputed_amount: &'static str,
    respond_by: &'static str,
    sale: &'static str,
    sale_id: &'static str,
    amount: &'static str,
    captured: &'static str,
    payment: &'static str,
    references: &'static str,
    terminal: &'static str,
    batch: &'static str,
    voucher: &'static str,
    rrn: &'static str,
    auth_code: &'static str,
    items: &'static str,
    timeline: &'static str,
    sale_captured: &'static str,
    dispute_opened: &'static str,
    evidence_added: &'static str,
    response_due: &'static str,
    refunded: &'static str,
    evidence: &'static str,
    no_evidence: &'static str,
    file: &'static str,
    checksum: &'static str,
    added: &'static str,
    sep: &'static str,
    /// Between fields on one line.
    fields: &'static str,
    zh: bool,
}

impl Words {
    fn paren(&self, s: impl fmt::Display) -> String {
        if self.zh { format!("（{s}）") } else { format!(" ({s})") }
    }
}

const ZH: Words = Words {
    title: "争议应答材料",
    merchant: "商户",
    network: "卡组织",
    reason_code: "原因码",
    category: "类别",
    unknown_category: "未知",
    stage: "阶段",
    status: "状态",
    disputed_amount: "争议金额",
    respond_by: "应答截止",
    sale: "原交易",
    sale_id: "交易编号",
    amount: "金额",
    captured: "交易时间",
    payment: "支付方式",
    references: "交易凭据",
    terminal: "终端号",
    batch: "批次号",
    voucher: "凭证号",
    rrn: "参考号",
    auth_code: "授权码",
    items: "商品明细",
    timeline: "时间线",
    sale_captured: "交易完成",
    dispute_opened: "收到争议",
    evidence_added: "添加证据",
    response_due: "应答截止",
    refunded: "已退还持卡人",
    evidence: "证据清单",
    no_evidence: "（尚无证据）",
    file: "文件",
    checksum: "校验值",
    added: "添加于",
    sep: "：",
    fields: "；",
    zh: true,
};

const EN: Words = Words {
    title: "Dispute response",
    merchant: "Merchant",
    network: "Network",
    reason_code: "Reason code",
    category: "Category",
    unknown_category: "unknown",
    stage: "Stage",
    status: "Status",
    disputed_amount: "Disputed amount",
    respond_by: "Respond by",
    sale: "Original sale",
    sale_id: "Sale id",
    amount: "Amount",
    captured: "Captured",
    payment: "Payment",
    references: "References",
    terminal: "terminal",
    batch: "batch",
    voucher: "voucher no.",
    rrn: "RRN",
    auth_code: "authorization code",
    items: "Items",
    timeline: "Timeline",
    sale_captured: "Sale captured",
    dispute_opened: "Dispute received",
    evidence_added: "Evidence added",
    response_due: "Response due",
    refunded: "Already refunded to the cardholder",
    evidence: "Evidence",
    no_evidence: "(no evidence yet)",
    file: "file",
    checksum: "checksum",
    added: "added",
    sep: ": ",
    fields: "; ",
    zh: false,
};

fn summary(case: &CaseFacts<'_>, evidence: &[Evidence], w: &Words) -> String {
    let tz = case.time_zone;
    let sale = case.sale;
    let at = |t: Timestamp| local_time(t, tz);
    let (sep, fs) = (w.sep, w.fields);
    let mut out = String::new();
    let mut line = |s: String| {
        out.push_str(&s);
        out.push('\n');
    };

    line(format!("{} {}", w.title, case.case_ref));
    line(format!("{}{sep}{}", w.merchant, case.merchant_name));
    let code = case.reason_code.trim();
    let title = reason_code_title(case.network, code).filter(|_| !w.zh).map(|t| format!(" ({t})")).unwrap_or_default();
    let category = case.category.or_else(|| categorize(case.network, code));
    let category = category.map_or(w.unknown_category, |c| category_name(c, w.zh));
    line(format!(
        "{}{sep}{}{fs}{}{sep}{code}{title}{fs}{}{sep}{category}",
        w.network,
        network_name(case.network, w.zh),
        w.reason_code,
        w.category
    ));
    line(format!(
        "{}{sep}{}{fs}{}{sep}{}",
        w.stage,
        stage_name(case.state.stage(), w.zh),
        w.status,
        status_name(case.state.status(), w.zh)
    ));
    line(format!("{}{sep}{}{fs}{}{sep}{}", w.disputed_amount, case.amount, w.respond_by, at(case.due_by)));
    line(String::new());

    line(w.sale.to_owned());
    line(format!("- {}{sep}{}", w.sale_id, sale.id));
    line(format!("- {}{sep}{}", w.amount, sale.amount));
    line(format!("- {}{sep}{}", w.captured, at(sale.captured_at)));
    line(format!("- {}{sep}{}", w.payment, payment_text(&sale.payment_method, w.zh)));
    let mut refs = vec![format!("{} {}", w.terminal, sale.terminal_id)];
    let optional =
        [(w.batch, &sale.batch_no), (w.voucher, &sale.voucher_no), (w.rrn, &sale.rrn), (w.auth_code, &sale.auth_code)];
    refs.extend(optional.iter().filter_map(|(label, v)| v.as_ref().map(|v| format!("{label} {v}"))));
    line(format!("- {}{sep}{}", w.references, refs.join(if w.zh { "，" } else { ", " })));
    if !sale.items.is_empty() {
        line(format!("- {}{}", w.items, sep.trim_end()));
        for item in &sale.items {
            let unit = Money::new(item.unit_amount_minor, sale.amount.currency);
            line(format!("  - {} ({}) × {} @ {unit}", item.name, item.sku, item.quantity));
        }
    }
    line(String::new());

    let succeeded: Vec<&RefundRecord> = case.refunds.iter().filter(|r| r.status == RefundStatus::Succeeded).collect();
    let mut timeline: Vec<(Timestamp, u8, String)> = vec![
        (sale.captured_at, 0, format!("{}{}", w.sale_captured, w.paren(sale.amount))),
        (case.opened_at, 2, w.dispute_opened.to_owned()),
        (case.due_by, 4, w.response_due.to_owned()),
    ];
    for r in &succeeded {
        let what = refund_line(r, w.zh);
        timeline.push((r.succeeded_at.unwrap_or(r.created_at), 1, what));
    }
    for e in evidence {
        timeline.push((e.added_at, 3, format!("{}{sep}{}", w.evidence_added, evidence_kind_name(e.kind, w.zh))));
    }
    timeline.sort_by_key(|a| (a.0, a.1));
    line(w.timeline.to_owned());
    for (t, _, what) in &timeline {
        line(format!("- {}  {what}", at(*t)));
    }
    line(String::new());

    if let Some(answer) = refund_as_evidence(case.refunds, case.amount) {
        line(w.refunded.to_owned());
        line(if w.zh { answer.zh } else { answer.en });
        line(String::new());
    }

    line(format!("{}{}", w.evidence, w.paren(evidence.len())));
    if evidence.is_empty() {
        line(w.no_evidence.to_owned());
    }
    for (i, e) in evidence.iter().enumerate() {
        line(format!(
            "{}. {}{sep}{} — {} {} — {} {} — {} {}",
            i + 1,
            evidence_kind_name(e.kind, w.zh),
            e.description,
            w.file,
            e.file_name,
            w.checksum,
            e.checksum,
            w.added,
            at(e.added_at)
        ));
    }
    out
}

fn local_time(t: Timestamp, tz: &TimeZone) -> String {
    t.to_zoned(tz.clone()).strftime("%Y-%m-%d %H:%M:%S %:z").to_string()
}

fn refund_line(r: &RefundRecord, zh: bool) -> String {
    let rrn = r.rrn.as_deref();
    match (zh, r.refund_type) {
        (true, RefundType::Void) => {
            format!("撤销 {} 成功（{}）{}", r.id, r.amount, rrn.map(|v| format!("，参考号 {v}")).unwrap_or_default())
        }
        (true, RefundType::Refund) => {
            format!("退货 {} 成功（{}）{}", r.id, r.amount, rrn.map(|v| format!("，参考号 {v}")).unwrap_or_default())
        }
        (false, RefundType::Void) => {
            format!("Void {} of {} succeeded{}", r.id, r.amount, rrn.map(|v| format!(", RRN {v}")).unwrap_or_default())
        }
        (false, RefundType::Refund) => format!(
            "Refund {} of {} succeeded{}",
            r.id,
            r.amount,
            rrn.map(|v| format!(", RRN {v}")).unwrap_or_default()
        ),
    }
}

fn payment_text(method: &PaymentMethod, zh: bool) -> String {
    match method {
        PaymentMethod::Card { brand, first6, last4, entry_mode } => {
            let masked = MaskedCard { first6, last4 };
            if zh {
                format!("银行卡 {} {masked}（{}）", brand_name(*brand), entry_mode_zh(*entry_mode))
            } else {
                format!("card, {} {masked} ({entry_mode})", brand_name(*brand))
            }
        }
        PaymentMethod::Wallet { wallet } => {
            if zh {
                format!("移动支付（{}）", wallet_zh(*wallet))
            } else {
                format!("wallet ({wallet})")
            }
        }
        PaymentMethod::Cash => (if zh { "现金" } else { "cash" }).to_owned(),
    }
}

fn brand_name(brand: CardBrand) -> &'static str {
    match brand {
        CardBrand::UnionPay => "UnionPay",
        CardBrand::Visa => "Visa",
        CardBrand::Mastercard => "Mastercard",
        CardBrand::Amex => "American Express",
        CardBrand::Jcb => "JCB",
        CardBrand::Discover => "Discover",
        CardBrand::Diners => "Diners Club",
        CardBrand::Other => "other",
    }
}

fn entry_mode_zh(mode: EntryMode) -> &'static str {
    match mode {
        EntryMode::Chip => "芯片",
        EntryMode::Contactless => "非接触",
        EntryMode::Swipe => "磁条",
        EntryMode::Manual => "手工输入",
        EntryMode::Fallback => "降级交易",
    }
}

fn wallet_zh(wallet: Wallet) -> &'static str {
    match wallet {
        Wallet::Alipay => "支付宝",
        Wallet::WechatPay => "微信支付",
        Wallet::UnionPayQr => "银联二维码",
        Wallet::Other => "其他",
    }
}

/// A network's name for people.
fn network_name(network: Network, zh: bool) -> &'static str {
    match (network, zh) {
        (Network::UnionPay, true) => "银联",
        (Network::UnionPay, false) => "UnionPay",
        (Network::Visa, _) => "Visa",
        (Network::Mastercard, true) => "万事达卡",
        (Network::Mastercard, false) => "Mastercard",
        (Network::Amex, true) => "美国运通",
        (Network::Amex, false) => "American Express",
        (Network::Jcb, _) => "JCB",
        (Network::Other, true) => "其他卡组织",
        (Network::Other, false) => "other network",
    }
}

fn category_name(category: DisputeCategory, zh: bool) -> &'static str {
    match (category, zh) {
        (DisputeCategory::Fraud, true) => "欺诈",
        (DisputeCategory::Authorization, true) => "授权",
        (DisputeCategory::ProcessingError, true) => "处理差错",
        (DisputeCategory::ConsumerDispute, true) => "消费争议",
        (c, false) => c.as_str(),
    }
}

fn stage_name(stage: DisputeStage, zh: bool) -> &'static str {
    match (stage, zh) {
        (DisputeStage::RetrievalRequest, true) => "调单",
        (DisputeStage::Chargeback, true) => "退单（拒付）",
        (DisputeStage::PreArbitration, true) => "预仲裁（二次退单）",
        (s, false) => s.as_str(),
    }
}

fn status_name(status: DisputeStatus, zh: bool) -> &'static str {
    match (status, zh) {
        (DisputeStatus::NeedsResponse, true) => "待应答",
        (DisputeStatus::EvidenceSubmitted, true) => "已提交证据",
        (DisputeStatus::Accepted, true) => "商户已接受",
        (DisputeStatus::Won, true) => "申诉成功",
        (DisputeStatus::Lost, true) => "申诉失败",
        (DisputeStatus::Closed, true) => "已结案",
        (DisputeStatus::PastDue, true) => "已逾期",
        (s, false) => s.as_str(),
    }
}

fn evidence_kind_name(kind: EvidenceKind, zh: bool) -> &'static str {
    match (kind, zh) {
        (EvidenceKind::Receipt, true) => "签购单/小票",
        (EvidenceKind::Signature, true) => "持卡人签名",
        (EvidenceKind::RefundProof, true) => "退款凭证",
        (EvidenceKind::DeliveryProof, true) => "交付凭证",
        (EvidenceKind::Correspondence, true) => "沟通记录",
        (EvidenceKind::Other, true) => "其他",
        (k, false) => k.as_str(),
    }
}

#[cfg(test)]
mod tests;
