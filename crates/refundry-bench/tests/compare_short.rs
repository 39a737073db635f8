//! A tiny comparison: one pair of runs, the same debug `refundry` as both
//! builds. Needs the debug `refundry` binary (see `common::refundry_binary`).

mod common;

use refundry_bench::DbKind;
use refundry_bench::compare::{self, CompareOptions};
use refundry_bench::load::{MixChoice, Setup};

#[test]
fn one_pair_is_run_and_tabled() {
    let refundry = common::refundry_binary();
    let table = compare::run(CompareOptions {
        baseline: refundry.clone(),
        candidate: refundry,
        pairs: 1,
        setup: Setup {
            db: DbKind::Sqlite,
            postgres_url: None,
            sales: 20,
            tenders: refundry_bench::Tenders::Cash,
            clients: 4,
            warmup_seconds: 0.5,
        },
        seconds: 1.0,
        mix: MixChoice::Create,
    })
    .expect("the comparison could be carried out");
    assert!(table.contains("create: baseline (A) → candidate (B)"), "{table}");
    assert!(table.contains(" of 1 pairs"), "{table}");
    // one row: pair 1, two non-zero rates
    let row = table.lines().find(|l| l.trim_start().starts_with("1 ")).expect("a row for pair 1");
    let rates: Vec<f64> = row.split_whitespace().skip(1).take(3).filter_map(|w| w.parse().ok()).collect();
    assert_eq!(rates.len(), 2, "{row}");
    assert!(rates.iter().all(|r| *r > 0.0), "{row}");
}
