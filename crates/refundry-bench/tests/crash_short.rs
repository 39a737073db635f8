//! A short crash run on SQLite: three SIGKILLs of a debug `refundry serve`
//! while clients create refunds; nothing acknowledged is lost or doubled and
//! every other check of the suite passes. Needs the debug `refundry` binary
//! (see `common::refundry_binary`).

mod common;

use refundry_bench::DbKind;
use refundry_bench::crash::{self, CrashOptions};

#[test]
fn three_kills_on_sqlite_lose_and_double_nothing() {
    let report = crash::run(CrashOptions {
        refundry: Some(common::refundry_binary()),
        db: DbKind::Sqlite,
        kills: 3,
        seconds: 3.0,
        sales: 20,
        clients: 4,
        ..CrashOptions::default()
    })
    .expect("the crash run could be carried out");
    println!("{}", report.line());
    assert!(report.passed(), "seed {}: violations: {:#?}", report.seed, report.violations);
    assert_eq!(report.kills_survived, 3);
    assert_eq!((report.lost, report.doubled), (0, 0), "seed {}", report.seed);
    assert!(report.acknowledged >= 1, "no refund was acknowledged: {report:?}");
}
