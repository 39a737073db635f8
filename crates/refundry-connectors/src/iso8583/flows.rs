//! What to send when, for the two kinds of return and their lost answers.
//!
//! A void (0200) is a request: if its answer is lost it is reversed (冲正,
//! 0400) until the host acknowledges the reversal, and the void counts as
//! not done. A refund (0220) is an advice, which CUP never reverses: it is
//! repeated (0221, same STAN) until answered, and the host answers a
//! repeat of something it applied with the first answer, applying nothing
//! again. Either way an unknown outcome ends as `Timeout`, never a guess.

use refundry_iso8583::Message;
use refundry_iso8583::builders::{self, ReversalReason};

use super::link::{Failure, Link, Lost};
use super::orders::{Verdict, repeat_of, reversal_taken, verdict};
use crate::{Outcome, ProcessorError};

/// Whether the host may already hold the message in question when a flow
/// starts: after a submit sent it, yes; in an inquiry, nobody knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Start {
    /// Send the message itself first (submit).
    Fresh,
    /// Only repeats or reversals may go out (inquire).
    Resolve,
}

/// A void's reversal leaves it not done; the code is the reversal's reason.
pub(crate) fn timed_out_after_reversal() -> Outcome {
    Outcome::Declined { reason: "timed_out_after_reversal".into(), response_code: "98".into() }
}

/// Sends a void; an answer that settles nothing leads to its reversal.
pub(crate) async fn void(link: &mut Link, void: &Message, max_repeats: u32) -> Result<Outcome, ProcessorError> {
    let reason = match link.exchange(void).await {
        Ok(answer) => match verdict(&answer, link.settings()) {
            Verdict::Final(outcome) => return Ok(outcome),
            Verdict::Open { code } => {
                tracing::warn!(code, "the void's answer settles nothing; reversing it");
                link.reset();
                ReversalReason::TerminalFailure
            }
        },
        Err(Failure::NotSent(why)) => return Err(ProcessorError::Unavailable(why)),
        Err(Failure::NoAnswer(Lost::BadMac)) => ReversalReason::MacFailure,
        Err(Failure::NoAnswer(lost)) => {
            tracing::warn!(?lost, "no answer to the void; reversing it");
            ReversalReason::NoResponse
        }
    };
    reverse(link, void, reason, max_repeats, Start::Fresh).await
}

/// Reverses a void until the host acknowledges it. An acknowledged
/// reversal means the void does not stand, whether or not it ever arrived.
pub(crate) async fn reverse(
    link: &mut Link,
    void: &Message,
    reason: ReversalReason,
    max_repeats: u32,
    start: Start,
) -> Result<Outcome, ProcessorError> {
    let reversal = match builders::reversal(void, reason) {
        Ok(reversal) => reversal,
        Err(e) => {
            // Cannot happen for a void we built; if it did, the void's fate
            // stays unknown and only a person can settle it.
            tracing::error!(error = %e, "cannot build the reversal");
            return Err(ProcessorError::Timeout);
        }
    };
    let mut maybe_sent = start == Start::Fresh;
    for attempt in 0..=max_repeats {
        match link.exchange(&reversal).await {
            Ok(answer) if reversal_taken(&answer) => {
                tracing::info!(attempt, code = answer.response_code(), "reversal acknowledged");
                return Ok(timed_out_after_reversal());
            }
            Ok(answer) => {
                // A refused reversal may leave the void standing: try again.
                tracing::warn!(attempt, code = answer.response_code(), "reversal not taken");
                maybe_sent = true;
                link.reset();
            }
            Err(Failure::NotSent(why)) if !maybe_sent => return Err(ProcessorError::Unavailable(why)),
            Err(Failure::NotSent(why)) => tracing::warn!(attempt, why, "reversal not sent"),
            Err(Failure::NoAnswer(lost)) => {
                tracing::warn!(attempt, ?lost, "no answer to the reversal");
                maybe_sent = true;
            }
        }
    }
    tracing::error!("the reversal was never acknowledged; the void's outcome is unknown");
    Err(ProcessorError::Timeout)
}

/// Sends a refund advice, then repeats it until an answer settles it.
pub(crate) async fn advise(
    link: &mut Link,
    advice: &Message,
    max_repeats: u32,
    start: Start,
) -> Result<Outcome, ProcessorError> {
    let repeat = repeat_of(advice);
    let mut maybe_sent = false;
    for attempt in 0..=max_repeats {
        let message = if attempt == 0 && start == Start::Fresh { advice } else { &repeat };
        match link.exchange(message).await {
            Ok(answer) => match verdict(&answer, link.settings()) {
                Verdict::Final(outcome) => return Ok(outcome),
                Verdict::Open { code } => {
                    tracing::warn!(attempt, code, "the advice's answer settles nothing; repeating it");
                    maybe_sent = true;
                    // Codes such as 77 and A0 ask for a new sign-on.
                    link.reset();
                }
            },
            Err(Failure::NotSent(why)) if !maybe_sent => return Err(ProcessorError::Unavailable(why)),
            Err(Failure::NotSent(why)) => tracing::warn!(attempt, why, "repeat not sent"),
            Err(Failure::NoAnswer(lost)) => {
                tracing::warn!(attempt, ?lost, "no answer to the advice; repeating it");
                maybe_sent = true;
            }
        }
    }
    tracing::error!("the advice was never answered; its outcome is unknown");
    Err(ProcessorError::Timeout)
}
