//! Two tools that drive the real `refundry` binary over HTTP on loopback:
//!
//! - [`load`]: the benchmark. Starts `refundry serve` on a fresh database,
//!   loads sales, drives concurrent clients through the counter refund flow
//!   and through bare refund creation, measures the server's HTTP ceiling and
//!   the database's durable-commit ceiling on the same machine in the same
//!   run, and writes a Markdown report.
//! - [`crash`]: the crash suite. Creates refunds from concurrent clients
//!   while the server is SIGKILLed and restarted, then checks through the API
//!   and directly in the database that no acknowledged refund was lost or
//!   made twice, and that the outbox and the audit log are whole.
//!
//! - [`compare`]: two builds, `load` run for each in turn, and the ratios
//!   of what they measured.
//!
//! All are library functions (`load::run`, `crash::run`, `compare::run`)
//! so tests can call them; `src/main.rs` is a thin clap front.

pub mod compare;
pub mod cpu;
pub mod crash;
pub mod db;
pub mod load;

mod api;
mod commits;
mod machine;
mod report;
mod server;

pub use api::Tenders;
pub use db::DbKind;

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

/// A progress bar on stderr, hidden when stderr is not a terminal.
pub(crate) fn progress(len: u64, template: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// A progress line on stderr, printed above any progress bar.
pub(crate) fn say(line: impl AsRef<str>) {
    eprintln!("refundry-bench: {}", line.as_ref());
}
