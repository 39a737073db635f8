//! Versioned migrations, embedded in the binary and applied in order, each
//! in its own transaction together with its bookkeeping row.

use rusqlite::Connection;

use crate::StoreError;

const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "init", include_str!("../../../../migrations/sqlite/0001_init.sql")),
    (2, "sale_holdings", include_str!("../../../../migrations/sqlite/0002_sale_holdings.sql")),
    (3, "store_history", include_str!("../../../../migrations/sqlite/0003_store_history.sql")),
    (4, "holdings_at_insert", include_str!("../../../../migrations/sqlite/0004_holdings_at_insert.sql")),
];

pub fn run(conn: &mut Connection) -> Result<Vec<String>, StoreError> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version INTEGER PRIMARY KEY,
            name TEXT NOT NULL,
            applied_at INTEGER NOT NULL
        )",
    )?;
    let mut applied = Vec::new();
    for (version, name, sql) in MIGRATIONS {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let done: bool =
            tx.query_row("SELECT EXISTS(SELECT 1 FROM schema_migrations WHERE version = ?1)", [version], |r| r.get(0))?;
        if !done {
            tx.execute_batch(sql)?;
            tx.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?1, ?2, ?3)",
                rusqlite::params![version, name, jiff::Timestamp::now().as_microsecond()],
            )?;
            applied.push(format!("{version:04}_{name}"));
        }
        tx.commit()?;
    }
    Ok(applied)
}
