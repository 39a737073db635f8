//! Refunds and voids sent to an acquirer host as China UnionPay POS ISO 8583
//! messages over TCP, as a POS terminal would send them.
//!
//! | order | sent as | answer lost |
//! | --- | --- | --- |
//! | void | 0200, 60.1 = 23 | reversal 0400 until acknowledged → declined `timed_out_after_reversal` |
//! | refund | 0220 advice, 60.1 = 25 | repeated as 0221 (same STAN) until answered |
//!
//! The processor is one terminal (the configured `terminal_id`): field 41
//! of every message is that terminal, whatever terminal the sale was made
//! on, so `RefundOrder::stan` must be unique for it. One message is on the
//! line at a time.
//!
//! CUP POS has no status inquiry, so [`Processor::inquire`] resolves an
//! unrecorded earlier message by the same means as a lost answer: a void
//! is reversed (a host answers the reversal of a message it never saw with
//! 00), a refund advice is repeated (a host that never saw it applies it
//! once; one that did answers as before). Neither sends a fresh 0200/0220.
//!
//! Logs name messages by MTI, trace number and response code only: orders
//! carry no card data, and neither the MAC key nor MACs are logged.

mod config;
mod flows;
mod link;
mod orders;

use std::sync::Arc;

use async_trait::async_trait;
use refundry_core::refund::RefundType;
use refundry_iso8583::builders::ReversalReason;
use tokio::sync::Mutex;
use tracing::Instrument;

pub use config::{ConfigError, Iso8583Config};

use self::config::Settings;
use self::flows::Start;
use self::link::Link;
use crate::{Outcome, Processor, ProcessorError, RefundOrder};

/// A [`Processor`] speaking ISO 8583 (CUP POS) to one acquirer host.
pub struct Iso8583Processor {
    settings: Arc<Settings>,
    link: Mutex<Link>,
}

impl Iso8583Processor {
    /// Checks the configuration; connects only when the first order comes.
    pub fn new(config: Iso8583Config) -> Result<Iso8583Processor, ConfigError> {
        let settings = Arc::new(Settings::from_config(&config)?);
        let link = Mutex::new(Link::new(settings.clone()));
        Ok(Iso8583Processor { settings, link })
    }
}

impl std::fmt::Debug for Iso8583Processor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Iso8583Processor")
            .field("addr", &self.settings.addr)
            .field("terminal_id", &self.settings.terminal.terminal_id)
            .finish_non_exhaustive()
    }
}

fn span(call: &'static str, order: &RefundOrder) -> tracing::Span {
    tracing::info_span!(
        "iso8583",
        call,
        reference = %order.reference,
        attempt = order.attempt,
        stan = order.stan,
        kind = order.refund_type.as_str(),
    )
}

#[async_trait]
impl Processor for Iso8583Processor {
    fn name(&self) -> &'static str {
        "iso8583"
    }

    fn stan_terminal(&self) -> Option<&str> {
        Some(&self.settings.terminal.terminal_id)
    }

    async fn submit(&self, order: &RefundOrder) -> Result<Outcome, ProcessorError> {
        let work = async {
            let message = match orders::message(&self.settings, order) {
                Ok(message) => message,
                Err(e) => {
                    // Nothing was sent and nothing ever could be: final.
                    tracing::warn!(error = %e, "order refused before sending");
                    return Ok(Outcome::Declined { reason: "invalid_order".into(), response_code: String::new() });
                }
            };
            if order.terminal_id != self.settings.terminal.terminal_id {
                tracing::debug!(sale_terminal = %order.terminal_id, "sent from the configured terminal");
            }
            let max = self.settings.max_repeats;
            let mut link = self.link.lock().await;
            let outcome = match order.refund_type {
                RefundType::Void => flows::void(&mut link, &message, max).await,
                RefundType::Refund => flows::advise(&mut link, &message, max, Start::Fresh).await,
            };
            log_result(&outcome);
            outcome
        };
        work.instrument(span("submit", order)).await
    }

    async fn inquire(&self, order: &RefundOrder) -> Result<Option<Outcome>, ProcessorError> {
        let work = async {
            let Ok(message) = orders::message(&self.settings, order) else {
                // The same check refused it before: it cannot have been sent.
                tracing::warn!("order cannot be built, so it was never sent");
                return Ok(None);
            };
            let max = self.settings.max_repeats;
            let mut link = self.link.lock().await;
            let outcome = match order.refund_type {
                RefundType::Void => {
                    flows::reverse(&mut link, &message, ReversalReason::NoResponse, max, Start::Resolve).await
                }
                RefundType::Refund => flows::advise(&mut link, &message, max, Start::Resolve).await,
            };
            log_result(&outcome);
            outcome.map(Some)
        };
        work.instrument(span("inquire", order)).await
    }
}

fn log_result(result: &Result<Outcome, ProcessorError>) {
    match result {
        Ok(Outcome::Approved { acquirer_reference }) => tracing::info!(rrn = %acquirer_reference, "approved"),
        Ok(Outcome::Declined { reason, response_code }) => tracing::info!(reason, response_code, "declined"),
        Err(e) => tracing::warn!(error = %e, "no outcome"),
    }
}
