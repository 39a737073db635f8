//! An acquirer host that speaks China UnionPay POS ISO 8583 over TCP, for
//! tests and demos of [`crate::iso8583::Iso8583Processor`].
//!
//! It answers sign-on (0800) and echo tests (0820); applies voids (0200)
//! and refund advices (0220, repeats 0221) at most once per (terminal,
//! STAN); answers a repeated advice with its first answer; undoes an
//! applied void on its reversal (0400) and acknowledges the reversal of a
//! message it never saw with 00. It can decline, keep silent after
//! applying, or close the connection before or after applying, at random
//! (seeded) or as scripted, and counts what it applied so tests can prove
//! "never twice". With a MAC key it refuses unsigned or wrongly signed
//! financial messages (A0, nothing applied) and signs its answers.
//!
//! Hostile bytes close the connection; a message that decodes but lacks
//! what a void or refund needs is answered 30. Nothing here panics on input.

mod ledger;
mod reply;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use refundry_iso8583::{CupEcbMac, Dialect, Message, MessageCodec, mac};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::codec::Framed;

use self::ledger::{Action, Ledger, Rates};

/// How the simulated host behaves when no script says otherwise.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SimulatorConfig {
    /// Added before every answer.
    pub latency: Duration,
    /// Chance (0–100) that a new void or refund is declined (05).
    pub decline_rate_pct: u8,
    /// Chance that a financial message is applied but never answered.
    pub timeout_rate_pct: u8,
    /// Chance that the connection is closed after a financial message is
    /// read and applied. Drops are drawn first, then timeouts, then declines.
    pub drop_rate_pct: u8,
    /// The terminal's MAC key as 16 or 32 hex digits; `None` checks and
    /// signs nothing.
    pub mac_key_hex: Option<String>,
    /// Seeds the random choices, the RRNs and the authorization codes.
    pub seed: u64,
}

impl std::fmt::Debug for SimulatorConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimulatorConfig")
            .field("latency", &self.latency)
            .field("decline_rate_pct", &self.decline_rate_pct)
            .field("timeout_rate_pct", &self.timeout_rate_pct)
            .field("drop_rate_pct", &self.drop_rate_pct)
            .field("mac_key_hex", &self.mac_key_hex.as_ref().map(|_| "<redacted>"))
            .field("seed", &self.seed)
            .finish()
    }
}

/// How the host treats one financial message (void, advice, repeat or
/// reversal), overriding the configured chances. Repeats and reversals
/// take script entries too, so a test can lose them as well.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Behaviour {
    Approve,
    /// Answer with this response code. A final refusal (51, 05…) is
    /// remembered and given again to repeats; a passing one (96, 91…) is
    /// not, so a repeat is processed anew. For a reversal: refuse it.
    Decline(String),
    /// Apply, then never answer (the connection stays open).
    TimeoutAfterApplying,
    /// Apply, then close the connection without answering.
    DropAfterApplying,
    /// Close the connection at once: nothing is applied.
    DropBeforeApplying,
    /// Apply and answer, with a MAC that does not match the answer.
    WrongMacAfterApplying,
}

/// The simulated acquirer host.
pub struct Simulator;

impl Simulator {
    /// Serves `listener` until the handle is dropped.
    pub async fn start(listener: TcpListener, config: SimulatorConfig) -> SimulatorHandle {
        let addr = listener.local_addr().unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        let key = match &config.mac_key_hex {
            None => Key::None,
            Some(hex) => match CupEcbMac::from_hex(hex) {
                Ok(k) => Key::Good(Box::new(k)),
                // Like a host whose key is broken: every MAC fails (A0).
                Err(e) => {
                    tracing::error!(error = %e, "simulator MAC key unreadable; refusing every financial message");
                    Key::Unreadable
                }
            },
        };
        let rates = Rates {
            decline: config.decline_rate_pct.min(100),
            timeout: config.timeout_rate_pct.min(100),
            drop: config.drop_rate_pct.min(100),
        };
        let shared = Arc::new(Shared {
            ledger: Mutex::new(Ledger::new(config.seed, rates, config.latency)),
            key,
            dialect: Dialect::china_unionpay_pos(),
        });
        let accept = tokio::spawn(accept(listener, shared.clone()));
        tracing::info!(%addr, "acquirer simulator listening");
        SimulatorHandle { addr, shared, accept }
    }
}

/// Controls and counters of a running simulator; dropping it stops the
/// simulator and closes its connections.
pub struct SimulatorHandle {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
}

impl SimulatorHandle {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// How often the void or refund with this terminal and STAN moved
    /// money: 0 or 1. A reversal does not lower it; see [`Self::reversed`].
    pub fn times_applied(&self, terminal_id: &str, stan: u32) -> u32 {
        self.shared.ledger().times_applied(terminal_id, stan)
    }

    /// Whether an applied void was undone by its reversal.
    pub fn reversed(&self, terminal_id: &str, stan: u32) -> bool {
        self.shared.ledger().reversed(terminal_id, stan)
    }

    /// Whether the transaction stands: applied and not reversed.
    pub fn in_effect(&self, terminal_id: &str, stan: u32) -> bool {
        let ledger = self.shared.ledger();
        ledger.times_applied(terminal_id, stan) > 0 && !ledger.reversed(terminal_id, stan)
    }

    /// How many messages of this type (`"0220"`) arrived, refused ones included.
    pub fn received(&self, mti: &str) -> u64 {
        self.shared.ledger().received(mti)
    }

    /// How many connections were accepted.
    pub fn connections(&self) -> u64 {
        self.shared.ledger().connections
    }

    /// Replaces the script: the next financial messages are treated as
    /// listed, one entry each, before the configured chances apply again.
    pub fn set_script(&self, script: &[Behaviour]) {
        self.shared.ledger().script = script.iter().cloned().collect::<VecDeque<_>>();
    }

    /// Script entries not yet used.
    pub fn script_left(&self) -> usize {
        self.shared.ledger().script.len()
    }

    /// Changes the chances (percent, capped at 100) of declines, timeouts
    /// and drops.
    pub fn set_rates(&self, decline_rate_pct: u8, timeout_rate_pct: u8, drop_rate_pct: u8) {
        self.shared.ledger().rates = Rates {
            decline: decline_rate_pct.min(100),
            timeout: timeout_rate_pct.min(100),
            drop: drop_rate_pct.min(100),
        };
    }

    pub fn set_latency(&self, latency: Duration) {
        self.shared.ledger().latency = latency;
    }
}

impl Drop for SimulatorHandle {
    fn drop(&mut self) {
        // The accept task owns the connection tasks: aborting it ends all.
        self.accept.abort();
    }
}

enum Next {
    Answer(Message),
    KeepQuiet,
    HangUp,
}

enum Key {
    None,
    Good(Box<CupEcbMac>),
    Unreadable,
}

struct Shared {
    ledger: Mutex<Ledger>,
    key: Key,
    dialect: Dialect,
}

impl Shared {
    fn ledger(&self) -> MutexGuard<'_, Ledger> {
        // A poisoned lock only means a task panicked mid-call; the maps are fine.
        self.ledger.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// What to do about one request, and how long to wait before answering.
    fn respond(&self, request: &Message) -> (Next, Duration) {
        let mut ledger = self.ledger();
        ledger.count(request);
        let latency = ledger.latency;
        let financial = matches!(request.mti.as_str(), "0200" | "0220" | "0221" | "0400" | "0401");
        if financial && !self.mac_accepted(request) {
            tracing::warn!(mti = %request.mti, stan = request.stan(), "host: MAC refused (A0)");
            // Unsigned: a host that cannot check our key cannot sign either.
            let next = reply::answer(request, "A0").map_or(Next::HangUp, Next::Answer);
            return (next, latency);
        }
        let next = match ledger.handle(request) {
            Action::Reply { answer, corrupt_mac } if financial => {
                self.seal(answer, corrupt_mac).map_or(Next::HangUp, Next::Answer)
            }
            Action::Reply { answer, .. } => Next::Answer(answer),
            Action::Silent => Next::KeepQuiet,
            Action::Close => Next::HangUp,
        };
        (next, latency)
    }

    fn mac_accepted(&self, request: &Message) -> bool {
        match &self.key {
            Key::None => true,
            Key::Good(key) => mac::verify(&self.dialect, request, key.as_ref()).is_ok(),
            Key::Unreadable => false,
        }
    }

    fn seal(&self, mut answer: Message, corrupt: bool) -> Option<Message> {
        if let Key::Good(key) = &self.key {
            mac::sign(&self.dialect, &mut answer, key.as_ref()).ok()?;
        }
        if corrupt {
            let mut wrong = answer.mac().map_or_else(|| b"00000000".to_vec(), <[u8]>::to_vec);
            if let Some(first) = wrong.first_mut() {
                *first ^= 0x01;
            }
            answer.set_bytes(64, wrong);
        }
        Some(answer)
    }
}

async fn accept(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    shared.ledger().connections += 1;
                    connections.spawn(serve(stream, shared.clone()));
                }
                Err(e) => {
                    // Out of file descriptors and the like: pause, not spin.
                    tracing::warn!(error = %e, "simulator accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn serve(stream: TcpStream, shared: Arc<Shared>) {
    let _ = stream.set_nodelay(true);
    let mut framed = Framed::new(stream, MessageCodec::new(shared.dialect.clone()));
    while let Some(frame) = framed.next().await {
        let request = match frame {
            Ok(request) => request,
            Err(e) => {
                // Out of step with the stream: nothing after this can be read.
                tracing::debug!(error = %e, "simulator: unreadable frame; closing");
                return;
            }
        };
        let (answer, latency) = match shared.respond(&request) {
            (Next::Answer(answer), latency) => (answer, latency),
            (Next::KeepQuiet, _) => continue,
            (Next::HangUp, _) => return,
        };
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        if framed.send(&answer).await.is_err() {
            return;
        }
    }
}
