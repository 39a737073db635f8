//! `refundry-bench`: the benchmark (`load`) and the crash suite (`crash`),
//! both driving the real `refundry` binary over HTTP on loopback.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use refundry_bench::compare::{self, CompareOptions};
use refundry_bench::crash::{self, CrashOptions};
use refundry_bench::load::{self, LoadOptions};

#[derive(Debug, Parser)]
#[command(name = "refundry-bench", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Benchmark a fresh `refundry serve`: the counter and create mixes, the
    /// HTTP and durable-commit ceilings; print a summary and update the
    /// Markdown report.
    Load(LoadOptions),
    /// Create refunds while `refundry serve` is SIGKILLed and restarted,
    /// then check that no acknowledged refund was lost or doubled; exits
    /// non-zero on any violation.
    Crash(CrashOptions),
    /// Compare two builds: `load` for a baseline and a candidate in turn
    /// (A B, B A, ...), each on a fresh database; print every pair and the
    /// ratios candidate ÷ baseline of refunds/s, p99 and CPU per refund.
    Compare(CompareOptions),
}

// The load generator shares the machine it measures: every microsecond it
// spends per request is one the server does not get. glibc's allocator
// was about a seventh of its time (a response body, headers and JSON per
// request), as it was of the server's before the server moved to mimalloc.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Load(options) => match load::run(options) {
            Ok(_) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("refundry-bench load: {e:#}");
                ExitCode::FAILURE
            }
        },
        Command::Compare(options) => match compare::run(options) {
            Ok(table) => {
                print!("{table}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("refundry-bench compare: {e:#}");
                ExitCode::FAILURE
            }
        },
        Command::Crash(options) => match crash::run(options) {
            Ok(report) => {
                for v in report.violations.iter().take(50) {
                    println!("VIOLATION: {v}");
                }
                if report.violations.len() > 50 {
                    println!("… and {} more violations", report.violations.len() - 50);
                }
                println!(
                    "requests: {}, retries: {}, re-sent keys: {}, keys sent twice at once: {}, refused (sale used up): {}",
                    report.requests, report.retries, report.resent, report.duplicates, report.refused
                );
                println!("PostgreSQL restart: {}", report.postgres_restart);
                if !report.sales_refused_as_card_data.is_empty() {
                    println!(
                        "sales left out (the server refuses their id in a refund body as card data): {}",
                        report.sales_refused_as_card_data.join(", ")
                    );
                }
                println!("seed: {}", report.seed);
                println!("{}", report.line());
                if report.passed() {
                    ExitCode::SUCCESS
                } else {
                    println!("FAILED: {} violations", report.violations.len());
                    ExitCode::FAILURE
                }
            }
            Err(e) => {
                eprintln!("refundry-bench crash: {e:#}");
                ExitCode::from(2)
            }
        },
    }
}
