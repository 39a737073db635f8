//! Refundry's pure domain.
//!
//! Everything here is plain data and pure functions: no IO, no async, no SQL,
//! no HTTP, no JSON. The other crates parse the outside world into these
//! types at the edge and ask these functions what is allowed.
//!
//! - [`money`]: integer minor units with an ISO 4217 currency.
//! - [`card`]: what may be known of a card (brand, first 6, last 4) and the
//!   detector that refuses what may not (full numbers, CVV, track data, PIN).
//! - [`contact`]: customer email and phone, printable only masked.
//! - [`ids`]: prefixed, time-ordered identifiers (`sale_…`, `re_…`).
//! - [`sale`]: a captured POS payment and its line items.
//! - [`refund`]: the refund lifecycle and the arithmetic of "never more than
//!   was captured".
//! - [`policy`]: the merchant's refund policy: approve, ask a supervisor, or
//!   reject, with the reasons in English and Chinese.
//! - [`dispute`]: chargebacks and retrieval requests: the case lifecycle,
//!   reason codes, deadlines, the evidence summary, and no double loss.
//! - [`ratio`]: chargeback ratios held against the card networks' programmes.
//! - [`detect`]: detectors of wrong charges (duplicates, extra zeros, charges
//!   with no order) and refund-abuse rules.

pub mod card;
pub mod contact;
pub mod detect;
pub mod dispute;
pub mod ids;
pub mod money;
pub mod policy;
pub mod ratio;
pub mod refund;
pub mod sale;
