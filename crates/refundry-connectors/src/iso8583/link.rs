//! The TCP connection to the acquirer host: opened when first needed,
//! signed on (0800) before it carries money, kept for the next message and
//! opened again after it breaks.
//!
//! One message is on the line at a time: the processor holds the link's
//! lock for an order's whole exchange, repeats and reversal included, so
//! an answer always belongs to the request waiting for it. A host that
//! answers in 200 ms thus serves about five orders a second per processor;
//! CUP POS hosts expect no more from one terminal.

use std::sync::Arc;

use futures_util::{FutureExt, SinkExt, StreamExt};
use refundry_iso8583::builders::{self, SignOnRequest};
use refundry_iso8583::cup::Field60;
use refundry_iso8583::{Dialect, Message, MessageCodec, ResponseStatus, mac, response_code_meaning};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout, timeout_at};
use tokio_util::codec::Framed;

use super::config::Settings;
use super::orders::answers;

/// The application header after the TPDU (60 31 00 31 00 00: application
/// type 60, software version 31 00, terminal status and processing
/// request). Hosts check it loosely; it is one constant to change if an
/// acquirer wants another.
const HEADER: [u8; 6] = [0x60, 0x31, 0x00, 0x31, 0x00, 0x00];

/// The trace number sign-ons go out with. Refundry numbers its refunds
/// from 1 up, so the top of the range stays clear of them; a sign-on moves
/// no money and hosts do not de-duplicate it.
const SIGN_ON_STAN: u32 = 999_999;

/// Operator number in a sign-on (field 63): Refundry is one operator.
const OPERATOR: &str = "01 ";

/// Why an exchange gave no usable answer.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Nothing left this process: no connection could be opened or
    /// signed on, so the host cannot have seen the message.
    NotSent(String),
    /// The message may have reached the host; what it did is unknown.
    NoAnswer(Lost),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lost {
    Timeout,
    /// The connection broke while sending or waiting.
    Dropped,
    /// An answer came whose MAC is wrong or missing: it may be forged or
    /// the keys are out of step, so it says nothing.
    BadMac,
}

type Connection = Framed<TcpStream, MessageCodec>;

pub(crate) struct Link {
    settings: Arc<Settings>,
    dialect: Dialect,
    connection: Option<Connection>,
}

impl Link {
    pub fn new(settings: Arc<Settings>) -> Link {
        Link { settings, dialect: Dialect::china_unionpay_pos(), connection: None }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Forgets the connection, so the next exchange connects and signs on
    /// afresh (after a timeout, a broken line, or a host asking for it).
    pub fn reset(&mut self) {
        self.connection = None;
    }

    /// Sends a financial message (signed when a key is configured) and
    /// waits for its answer, whose MAC is checked.
    pub async fn exchange(&mut self, request: &Message) -> Result<Message, Failure> {
        let mut outgoing = self.framed(request);
        if let Some(key) = &self.settings.mac {
            // Our own message failing to encode is a bug, not a network
            // event: nothing was sent.
            mac::sign(&self.dialect, &mut outgoing, key).map_err(|e| Failure::NotSent(format!("signing: {e}")))?;
        }
        let mut connection = match self.connection.take() {
            Some(mut c) => {
                if still_open(&mut c) {
                    c
                } else {
                    tracing::debug!("the host closed the idle connection; reconnecting");
                    self.open().await?
                }
            }
            None => self.open().await?,
        };
        tracing::debug!(mti = %outgoing.mti, stan = outgoing.stan(), "sending");
        let answer = match send_and_wait(&mut connection, &outgoing, self.settings.response_timeout).await {
            Ok(answer) => answer,
            // A late answer would arrive on this connection: drop it.
            Err(lost) => return Err(Failure::NoAnswer(lost)),
        };
        self.check_mac(&answer)?;
        tracing::debug!(mti = %answer.mti, stan = answer.stan(), code = answer.response_code(), "answered");
        self.connection = Some(connection);
        Ok(answer)
    }

    fn check_mac(&self, answer: &Message) -> Result<(), Failure> {
        let Some(key) = &self.settings.mac else { return Ok(()) };
        let code = answer.response_code().unwrap_or_default();
        // A declined or failed answer may come unsigned (a host that cannot
        // check our MAC cannot sign either), but an approval must be signed:
        // believing an unsigned "00" would let anyone on the path approve.
        let must_sign = response_code_meaning(code).status == ResponseStatus::Approved;
        if answer.mac().is_none() && !must_sign {
            return Ok(());
        }
        match mac::verify(&self.dialect, answer, key) {
            Ok(()) => Ok(()),
            Err(e) => {
                tracing::warn!(mti = %answer.mti, stan = answer.stan(), code, error = %e, "answer's MAC refused");
                Err(Failure::NoAnswer(Lost::BadMac))
            }
        }
    }

    fn framed(&self, message: &Message) -> Message {
        let mut m = message.clone();
        m.tpdu = Some(self.settings.tpdu);
        m.header = HEADER.to_vec();
        m
    }

    async fn open(&self) -> Result<Connection, Failure> {
        let s = &self.settings;
        let stream = match timeout(s.connect_timeout, TcpStream::connect(&s.addr)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => return Err(Failure::NotSent(format!("cannot connect to {}: {e}", s.addr))),
            Err(_) => return Err(Failure::NotSent(format!("connecting to {} timed out", s.addr))),
        };
        // Messages are small and each waits for its answer: send at once.
        let _ = stream.set_nodelay(true);
        let mut connection = Framed::new(stream, MessageCodec::new(self.dialect.clone()));
        self.sign_on(&mut connection).await?;
        tracing::info!(addr = %s.addr, "connected and signed on");
        Ok(connection)
    }

    /// The sign-on moves no money, so any failure here means the financial
    /// message was never sent.
    async fn sign_on(&self, connection: &mut Connection) -> Result<(), Failure> {
        let s = &self.settings;
        let request = SignOnRequest {
            terminal: s.terminal.clone(),
            stan: SIGN_ON_STAN,
            operator: OPERATOR.into(),
            keys: s.key_mode,
        };
        let request = builders::sign_on(&request).map_err(|e| Failure::NotSent(format!("sign-on: {e}")))?;
        let answer = send_and_wait(connection, &self.framed(&request), s.response_timeout)
            .await
            .map_err(|lost| Failure::NotSent(format!("sign-on got no answer ({lost:?})")))?;
        let code = answer.response_code().unwrap_or_default();
        if code != "00" {
            return Err(Failure::NotSent(format!("sign-on refused with response code {code:?}")));
        }
        // Working keys in field 62 are not taken: the MAC key is configured.
        // The batch is, and the host naming another one is worth a look.
        if let Some(batch) = answer.text(60).and_then(|t| Field60::parse(t).ok()).map(|f| f.batch)
            && batch != s.terminal.batch
        {
            tracing::warn!(host_batch = batch, our_batch = s.terminal.batch, "the host signed on with another batch");
        }
        Ok(())
    }
}

async fn send_and_wait(
    connection: &mut Connection,
    request: &Message,
    wait: std::time::Duration,
) -> Result<Message, Lost> {
    let deadline = Instant::now() + wait;
    let exchange = async {
        if let Err(e) = connection.send(request).await {
            tracing::warn!(error = %e, "sending failed");
            return Err(Lost::Dropped);
        }
        loop {
            match connection.next().await {
                Some(Ok(answer)) if answers(request, &answer) => return Ok(answer),
                Some(Ok(other)) => {
                    tracing::debug!(mti = %other.mti, stan = other.stan(), "ignoring an answer to another message");
                }
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "unreadable answer; closing the connection");
                    return Err(Lost::Dropped);
                }
                None => return Err(Lost::Dropped),
            }
        }
    };
    timeout_at(deadline, exchange).await.unwrap_or(Err(Lost::Timeout))
}

/// Whether an idle connection is still usable, without waiting: the host
/// may have closed it, or a late answer may sit in it. Sending on a closed
/// connection would turn "not sent" into "unknown".
fn still_open(connection: &mut Connection) -> bool {
    loop {
        match connection.next().now_or_never() {
            None => return true,
            Some(Some(Ok(late))) => {
                tracing::debug!(mti = %late.mti, stan = late.stan(), "discarding a late answer");
            }
            Some(Some(Err(_)) | None) => return false,
        }
    }
}
