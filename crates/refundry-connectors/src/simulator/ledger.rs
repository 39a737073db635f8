//! What the simulated host remembers and how it answers: each (terminal,
//! STAN) is applied at most once, a repeated advice gets the first answer,
//! a reversal undoes an applied void. Plain state without IO, so the
//! connection code only carries messages to it and back.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use refundry_iso8583::builders::PROC_RETURN;
use refundry_iso8583::cup::{Field60, Field61, message_type};
use refundry_iso8583::{Message, ResponseStatus, response_code_meaning};

use super::{Behaviour, reply};

/// What to do with the connection after a message.
#[derive(Debug)]
pub(super) enum Action {
    Reply {
        answer: Message,
        corrupt_mac: bool,
    },
    /// Say nothing, keep listening: the terminal's timer will run out.
    Silent,
    Close,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Void,
    Refund,
}

/// The first answer to a transaction, given again to its repeats.
#[derive(Debug, Clone)]
struct Stored {
    code: String,
    rrn: String,
    auth: Option<String>,
}

#[derive(Debug)]
struct Txn {
    kind: Kind,
    amount: u64,
    answer: Stored,
    /// How often money moved for it: 0 or 1, or the simulator is wrong.
    applied: u32,
    reversed: bool,
}

type Key = (String, u32);

/// Chances, in percent, of the misbehaviours picked when no script says.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Rates {
    pub decline: u8,
    pub timeout: u8,
    pub drop: u8,
}

#[derive(Debug)]
pub(super) struct Ledger {
    pub script: VecDeque<Behaviour>,
    pub rates: Rates,
    pub latency: Duration,
    pub connections: u64,
    rng: StdRng,
    rrn_prefix: u32,
    rrn_seq: u32,
    txns: HashMap<Key, Txn>,
    /// Reversals of trace numbers never seen: the message they reverse,
    /// should it arrive late, must not be applied.
    reversed_unseen: HashSet<Key>,
    received: HashMap<String, u64>,
}

impl Ledger {
    pub fn new(seed: u64, rates: Rates, latency: Duration) -> Ledger {
        let mut rng = StdRng::seed_from_u64(seed);
        let rrn_prefix = rng.random_range(0..1_000_000);
        Ledger {
            script: VecDeque::new(),
            rates,
            latency,
            connections: 0,
            rng,
            rrn_prefix,
            rrn_seq: 0,
            txns: HashMap::new(),
            reversed_unseen: HashSet::new(),
            received: HashMap::new(),
        }
    }

    pub fn times_applied(&self, terminal_id: &str, stan: u32) -> u32 {
        self.txn(terminal_id, stan).map_or(0, |t| t.applied)
    }

    pub fn reversed(&self, terminal_id: &str, stan: u32) -> bool {
        self.txn(terminal_id, stan).is_some_and(|t| t.reversed)
    }

    fn txn(&self, terminal_id: &str, stan: u32) -> Option<&Txn> {
        self.txns.get(&(terminal_id.to_string(), stan))
    }

    pub fn received(&self, mti: &str) -> u64 {
        self.received.get(mti).copied().unwrap_or(0)
    }

    pub fn count(&mut self, request: &Message) {
        *self.received.entry(request.mti.to_string()).or_default() += 1;
    }

    /// Decides the answer to one request whose MAC (if any) was accepted.
    pub fn handle(&mut self, request: &Message) -> Action {
        match request.mti.as_str() {
            // Sign-on and echo test: always answered, never scripted.
            "0800" | "0820" => reply_with(request, "00"),
            "0200" => self.void(request),
            "0220" | "0221" => self.refund(request),
            "0400" | "0401" => self.reversal(request),
            _ => reply_with(request, "30"),
        }
    }

    fn void(&mut self, request: &Message) -> Action {
        let Some(f) = read_return(request, Kind::Void) else { return reply_with(request, "30") };
        if self.txns.contains_key(&f.key) || self.reversed_unseen.contains(&f.key) {
            // A request is never repeated under its trace number: a second
            // one is a duplicate, answered without applying.
            let behaviour = self.next(false);
            return deliver(&behaviour, reply::answer(request, "94"));
        }
        self.fresh(request, f, Kind::Void)
    }

    fn refund(&mut self, request: &Message) -> Action {
        let Some(f) = read_return(request, Kind::Refund) else { return reply_with(request, "30") };
        let known = match self.txns.get(&f.key) {
            Some(t) if t.kind == Kind::Refund && t.amount == f.amount => Some(t.answer.clone()),
            // The trace number already names something else.
            Some(_) => Some(Stored { code: "94".into(), rrn: String::new(), auth: None }),
            None if self.reversed_unseen.contains(&f.key) => {
                Some(Stored { code: "94".into(), rrn: String::new(), auth: None })
            }
            None => None,
        };
        match known {
            Some(first) => {
                tracing::debug!(stan = f.key.1, code = first.code, "repeated advice: answering as before");
                let behaviour = self.next(false);
                deliver(&behaviour, financial_answer(request, &first))
            }
            None => self.fresh(request, f, Kind::Refund),
        }
    }

    fn fresh(&mut self, request: &Message, f: Return, kind: Kind) -> Action {
        let behaviour = self.next(true);
        let code = match &behaviour {
            Behaviour::DropBeforeApplying => return Action::Close,
            Behaviour::Decline(code) => code.clone(),
            _ => "00".to_string(),
        };
        let status = response_code_meaning(&code).status;
        let auth = (status == ResponseStatus::Approved).then(|| format!("{:06}", self.rng.random_range(0..1_000_000)));
        let stored = Stored { code, rrn: self.next_rrn(), auth };
        let applied = match status {
            ResponseStatus::Approved => 1,
            ResponseStatus::Declined => 0,
            // Busy or failing: the host did not take it, and a repeat is new.
            ResponseStatus::Retry | ResponseStatus::Unknown => {
                return deliver(&behaviour, financial_answer(request, &stored));
            }
        };
        tracing::info!(terminal = %f.key.0, stan = f.key.1, ?kind, code = stored.code, applied, "host: transaction");
        let answer = financial_answer(request, &stored);
        self.txns.insert(f.key, Txn { kind, amount: f.amount, answer: stored, applied, reversed: false });
        deliver(&behaviour, answer)
    }

    fn reversal(&mut self, request: &Message) -> Action {
        let (Some(stan), Some(terminal), Some(_reason), Some(_field60)) = (
            request.stan(),
            request.terminal_id(),
            request.response_code(),
            request.text(60).and_then(|t| Field60::parse(t).ok()),
        ) else {
            return reply_with(request, "30");
        };
        let key = (terminal.to_string(), stan);
        let behaviour = self.next(false);
        let code = match &behaviour {
            Behaviour::DropBeforeApplying => return Action::Close,
            Behaviour::Decline(code) => code.clone(),
            _ => self.reverse(key, request.amount_minor()),
        };
        deliver(&behaviour, reply::answer(request, &code))
    }

    fn reverse(&mut self, key: Key, amount: Option<u64>) -> String {
        let code = match self.txns.get_mut(&key) {
            // Refunds are advices: CUP never reverses them.
            Some(t) if t.kind == Kind::Refund => "12",
            Some(t) if amount.is_some_and(|a| a != t.amount) => "64",
            Some(t) => {
                if t.applied > 0 && !t.reversed {
                    t.reversed = true;
                    tracing::info!(terminal = %key.0, stan = key.1, "host: void reversed");
                }
                "00"
            }
            None => {
                tracing::info!(terminal = %key.0, stan = key.1, "host: reversal of an unknown message");
                self.reversed_unseen.insert(key);
                "00"
            }
        };
        code.to_string()
    }

    /// The script first; then the configured chances (a decline only for
    /// something new, as a repeat or reversal is never declined at random).
    fn next(&mut self, fresh: bool) -> Behaviour {
        if let Some(b) = self.script.pop_front() {
            return b;
        }
        let Rates { decline, timeout, drop } = self.rates;
        if self.roll(drop) {
            Behaviour::DropAfterApplying
        } else if self.roll(timeout) {
            Behaviour::TimeoutAfterApplying
        } else if fresh && self.roll(decline) {
            Behaviour::Decline("05".into())
        } else {
            Behaviour::Approve
        }
    }

    fn roll(&mut self, pct: u8) -> bool {
        pct > 0 && self.rng.random_range(0..100u8) < pct
    }

    /// Twelve digits, unique for this simulator.
    fn next_rrn(&mut self) -> String {
        self.rrn_seq = (self.rrn_seq + 1) % 1_000_000;
        format!("{:06}{:06}", self.rrn_prefix, self.rrn_seq)
    }
}

/// A void or refund as far as the host needs it.
struct Return {
    key: Key,
    amount: u64,
}

/// Checks what a void or refund must carry; `None` is a format error.
fn read_return(request: &Message, kind: Kind) -> Option<Return> {
    if request.processing_code() != Some(PROC_RETURN) {
        return None;
    }
    let amount = request.amount_minor().filter(|&a| a > 0)?;
    let stan = request.stan().filter(|&s| s > 0)?;
    let terminal = request.terminal_id()?.to_string();
    request.merchant_id()?;
    request.rrn()?;
    let field60 = Field60::parse(request.text(60)?).ok()?;
    let original = Field61::parse(request.text(61)?).ok()?;
    let expected = match kind {
        Kind::Void => message_type::VOID,
        Kind::Refund => message_type::REFUND,
    };
    if field60.message_type != expected || (kind == Kind::Refund && original.date_mmdd.is_none()) {
        return None;
    }
    Some(Return { key: (terminal, stan), amount })
}

fn financial_answer(request: &Message, stored: &Stored) -> Option<Message> {
    let mut answer = reply::answer(request, &stored.code)?;
    if !stored.rrn.is_empty() {
        answer.set_text(37, &stored.rrn);
    }
    if let Some(auth) = &stored.auth {
        answer.set_text(38, auth);
    }
    Some(answer)
}

fn reply_with(request: &Message, code: &str) -> Action {
    match reply::answer(request, code) {
        Some(answer) => Action::Reply { answer, corrupt_mac: false },
        None => Action::Close,
    }
}

/// How the behaviour lets the answer reach the terminal.
fn deliver(behaviour: &Behaviour, answer: Option<Message>) -> Action {
    let Some(answer) = answer else { return Action::Close };
    match behaviour {
        Behaviour::TimeoutAfterApplying => Action::Silent,
        Behaviour::DropAfterApplying | Behaviour::DropBeforeApplying => Action::Close,
        Behaviour::WrongMacAfterApplying => Action::Reply { answer, corrupt_mac: true },
        Behaviour::Approve | Behaviour::Decline(_) => Action::Reply { answer, corrupt_mac: false },
    }
}

#[cfg(test)]
mod tests {
    use refundry_iso8583::Mti;

    use super::*;

    fn ledger() -> Ledger {
        Ledger::new(7, Rates::default(), Duration::ZERO)
    }

    fn request(mti: &str, stan: u32, type_60_1: &str) -> Message {
        let mut m = Message::new(Mti::parse(mti).unwrap());
        m.set_text(3, PROC_RETURN).set_text(4, "000000001250").set_text(37, "123456789012");
        m.set_stan(stan).unwrap();
        m.set_text(41, "12345678").set_text(42, "898310048140001");
        m.set_text(60, format!("{type_60_1}000007000")).set_text(61, "0000060000420315");
        m
    }

    fn reversal_of(void: &Message) -> Message {
        let mut r = void.clone();
        r.mti = Mti::REVERSAL_REQUEST;
        r.set_text(39, "98");
        r
    }

    fn code(action: &Action) -> Option<&str> {
        match action {
            Action::Reply { answer, .. } => answer.response_code(),
            _ => None,
        }
    }

    #[test]
    fn a_repeated_advice_gets_the_first_answer_and_applies_nothing() {
        let mut l = ledger();
        let first = l.handle(&request("0220", 5, "25"));
        let again = l.handle(&request("0221", 5, "25"));
        let rrn = |a: &Action| match a {
            Action::Reply { answer, .. } => answer.rrn().map(str::to_string),
            _ => None,
        };
        assert_eq!(code(&first), Some("00"));
        assert_eq!(rrn(&first), rrn(&again));
        assert_eq!(l.times_applied("12345678", 5), 1);
    }

    #[test]
    fn a_repeat_with_another_amount_is_a_duplicate_not_an_approval() {
        let mut l = ledger();
        l.handle(&request("0220", 5, "25"));
        let mut other = request("0221", 5, "25");
        other.set_text(4, "000000000001");
        assert_eq!(code(&l.handle(&other)), Some("94"));
        assert_eq!(l.times_applied("12345678", 5), 1);
    }

    #[test]
    fn a_reversal_undoes_an_applied_void_once() {
        let mut l = ledger();
        let void = request("0200", 9, "23");
        l.handle(&void);
        assert_eq!(code(&l.handle(&reversal_of(&void))), Some("00"));
        assert_eq!(code(&l.handle(&reversal_of(&void))), Some("00"));
        assert_eq!((l.times_applied("12345678", 9), l.reversed("12345678", 9)), (1, true));
    }

    #[test]
    fn a_void_reversed_before_it_arrives_is_never_applied() {
        let mut l = ledger();
        let void = request("0200", 11, "23");
        assert_eq!(code(&l.handle(&reversal_of(&void))), Some("00"));
        assert_eq!(code(&l.handle(&void)), Some("94"));
        assert_eq!(l.times_applied("12345678", 11), 0);
    }

    #[test]
    fn refunds_are_not_reversed() {
        let mut l = ledger();
        let refund = request("0220", 12, "25");
        l.handle(&refund);
        assert_eq!(code(&l.handle(&reversal_of(&refund))), Some("12"));
        assert!(!l.reversed("12345678", 12));
    }

    #[test]
    fn a_passing_refusal_is_forgotten_so_the_repeat_is_new() {
        let mut l = ledger();
        l.script.push_back(Behaviour::Decline("96".into()));
        assert_eq!(code(&l.handle(&request("0220", 13, "25"))), Some("96"));
        assert_eq!(l.times_applied("12345678", 13), 0);
        assert_eq!(code(&l.handle(&request("0221", 13, "25"))), Some("00"));
        assert_eq!(l.times_applied("12345678", 13), 1);
    }

    #[test]
    fn malformed_returns_are_format_errors() {
        let mut l = ledger();
        let mut no_original = request("0220", 14, "25");
        no_original.remove(61);
        assert_eq!(code(&l.handle(&no_original)), Some("30"));
        let wrong_type = request("0200", 15, "25");
        assert_eq!(code(&l.handle(&wrong_type)), Some("30"));
        let answer = Message::new(Mti::FINANCIAL_RESPONSE);
        assert!(matches!(l.handle(&answer), Action::Close));
    }

    #[test]
    fn the_same_seed_gives_the_same_misbehaviour() {
        let rates = Rates { decline: 30, timeout: 30, drop: 30 };
        let mut a = Ledger::new(42, rates, Duration::ZERO);
        let mut b = Ledger::new(42, rates, Duration::ZERO);
        let picks = |l: &mut Ledger| (0..50).map(|_| l.next(true)).collect::<Vec<_>>();
        let (first, second) = (picks(&mut a), picks(&mut b));
        assert_eq!(first, second);
        assert!(first.iter().any(|p| *p != Behaviour::Approve) && first.contains(&Behaviour::Approve));
    }
}
