//! A tiny benchmark run against a debug `refundry serve`: both mixes, the
//! ceilings, and the report written to a temp file. Needs the debug
//! `refundry` binary (see `common::refundry_binary`).

mod common;

use refundry_bench::DbKind;
use refundry_bench::Tenders;
use refundry_bench::load::{self, LoadOptions, MixChoice, Setup};

#[test]
fn a_tiny_load_run_writes_its_table() {
    let dir = tempfile::tempdir().unwrap();
    let report_path = dir.path().join("BENCHMARKS.md");
    std::fs::write(
        &report_path,
        "# Benchmarks\n\n<!-- refundry-bench:postgres:start -->\nkept\n<!-- refundry-bench:postgres:end -->\n",
    )
    .unwrap();
    let report = load::run(LoadOptions {
        refundry: Some(common::refundry_binary()),
        setup: Setup {
            db: DbKind::Sqlite,
            warmup_seconds: 0.5,
            clients: 4,
            sales: 50,
            tenders: Tenders::Mixed,
            postgres_url: None,
        },
        seconds: 2.0,
        mix: MixChoice::Both,
        ceiling_seconds: 1.0,
        report: report_path.clone(),
        ..LoadOptions::default()
    })
    .expect("the load run could be carried out");

    let written = std::fs::read_to_string(&report_path).unwrap();
    assert!(
        written
            .contains("| mix | throughput req/s | flows/s | p50 ms | p99 ms | p99.9 ms | errors | time to all-final |")
    );
    assert!(written.contains("| counter | ") && written.contains("| create | "), "{written}");
    assert!(written.contains("--db sqlite --sales 50 --tenders mixed --clients 4 --seconds 2"), "{written}");
    assert!(written.contains("paid by card (every other sale) and cash"), "{written}");
    assert!(written.contains("Where the CPU went") && written.contains("| server: database writer |"), "{written}");
    assert!(written.contains("kept"), "the other database's section is kept");
    assert_eq!(report.mixes.len(), 2);
    for mix in &report.mixes {
        assert!(mix.requests_per_s > 0.0 && mix.flows_per_s > 0.0, "{mix:?}");
        assert_eq!(mix.error_count(), 0, "{mix:?}");
        assert_eq!(mix.exhausted, 0);
        assert!(mix.time_to_all_final_s.is_some(), "every refund became final");
        let cpu = mix.cpu.as_ref().expect("/proc is read on Linux");
        assert!(cpu.busy[0] > 0.0 && cpu.busy[1] > 0.0, "the load generator and the server both worked: {cpu:?}");
    }
    assert!(report.http_ceiling.requests_per_s > 0.0);
    assert!(report.commit_ceiling_per_s > 0.0);
}
