//! Refund slips (退款单据): one for every refund and void, in each form a
//! counter needs.
//!
//! - [`text`]: plain text for 58 mm (32 columns) or 80 mm (48 columns)
//!   thermal paper, hanzi two columns wide.
//! - [`escpos`]: the same lines as ESC/POS bytes for a printer in Chinese
//!   mode (GB18030), with a double-size title and a partial cut.
//! - [`pdf`]: the same lines as a one-page PDF with a subset of an embedded
//!   Noto Sans Mono CJK SC.
//!
//! All three print one layout, so they cannot disagree. The
//! input is a plain [`Slip`]: a card is only ever brand, first 6 and last 4,
//! caller text is stripped of control characters, and a full card number
//! typed into free text is starred out before it reaches any form.

mod escpos;
mod layout;
mod pdf;
mod slip;
mod words;

pub use escpos::escpos;
pub use pdf::pdf;
pub use slip::{Locale, OriginalSale, Slip, SlipItem, Tender, Width};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SlipError {
    #[error("the embedded slip font could not be read")]
    Font,
    #[error("the PDF could not be written: {0}")]
    Pdf(String),
}

/// The slip as plain text, one line per paper line, each ending in `\n`.
pub fn text(slip: &Slip, width: Width) -> String {
    let mut out = String::with_capacity(2048);
    for line in layout::build(slip, width.columns()) {
        out.push_str(&line.text);
        out.push('\n');
    }
    out
}
