//! Versioned migrations for PostgreSQL, embedded in the binary. An advisory
//! lock makes instances that start together take turns: the first applies,
//! the others find nothing left to do.

use super::client::Client;
use crate::StoreError;

const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "init", include_str!("../../../../migrations/postgres/0001_init.sql")),
    (2, "sale_holdings", include_str!("../../../../migrations/postgres/0002_sale_holdings.sql")),
    (3, "store_history", include_str!("../../../../migrations/postgres/0003_store_history.sql")),
    (4, "holdings_at_insert", include_str!("../../../../migrations/postgres/0004_holdings_at_insert.sql")),
    (5, "fewer_key_locks", include_str!("../../../../migrations/postgres/0005_fewer_key_locks.sql")),
    (6, "brin_time_indexes", include_str!("../../../../migrations/postgres/0006_brin_time_indexes.sql")),
];

/// An arbitrary constant naming Refundry's migration lock.
const LOCK_KEY: i64 = 0x5265_6675_6e64_7279;

pub fn run(client: &mut Client) -> Result<Vec<String>, StoreError> {
    client.execute("SELECT pg_advisory_lock($1)", &[&LOCK_KEY])?;
    let result = apply(client);
    let unlocked = client.execute("SELECT pg_advisory_unlock($1)", &[&LOCK_KEY]);
    let applied = result?;
    unlocked?;
    Ok(applied)
}

fn apply(client: &mut Client) -> Result<Vec<String>, StoreError> {
    client.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version BIGINT PRIMARY KEY,
            name TEXT NOT NULL,
            applied_at BIGINT NOT NULL
        )",
    )?;
    let mut applied = Vec::new();
    for (version, name, sql) in MIGRATIONS {
        client.batch_execute("BEGIN")?;
        let mut migrate = || {
            let done: bool = client
                .query_one("SELECT EXISTS(SELECT 1 FROM schema_migrations WHERE version = $1)", &[version])?
                .get(0);
            if !done {
                client.batch_execute(sql)?;
                client.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
                    &[version, name, &jiff::Timestamp::now().as_microsecond()],
                )?;
            }
            client.batch_execute("COMMIT")?;
            Ok::<_, StoreError>(!done)
        };
        match migrate() {
            Ok(true) => applied.push(format!("{version:04}_{name}")),
            Ok(false) => {}
            Err(e) => {
                let _ = client.batch_execute("ROLLBACK");
                return Err(e);
            }
        }
    }
    Ok(applied)
}
