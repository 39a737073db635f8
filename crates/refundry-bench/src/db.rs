//! The fresh database each run works on: a SQLite file in a temp dir, or a
//! schema `bench_<uuid>` in PostgreSQL (dropped at the end). Also direct
//! read access for the crash suite's checks, and the durable-commit ceiling.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};

/// Which database `refundry serve` runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum DbKind {
    /// Embedded SQLite: a fresh file in a temp dir.
    #[default]
    Sqlite,
    /// PostgreSQL: a fresh schema in the database of --postgres-url.
    Postgres,
}

impl DbKind {
    pub fn label(self) -> &'static str {
        match self {
            DbKind::Sqlite => "sqlite",
            DbKind::Postgres => "postgres",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            DbKind::Sqlite => "SQLite",
            DbKind::Postgres => "PostgreSQL",
        }
    }
}

/// A row of a query answer: every column as text (`None` for NULL).
pub type Row = Vec<Option<String>>;

/// A fresh database for one run. Dropping it removes the temp dir and the
/// PostgreSQL schema.
pub struct Database {
    kind: DbKind,
    dir: tempfile::TempDir,
    sqlite_path: PathBuf,
    pg: Option<PgSchema>,
}

struct PgSchema {
    base_url: String,
    schema: String,
    url: String,
}

/// Runs `f` on a plain thread: the `postgres` crate's blocking client runs
/// its own Tokio runtime and must not be used from inside another one.
pub(crate) fn on_plain_thread<T: Send + 'static>(
    f: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    std::thread::spawn(f).join().map_err(|_| anyhow!("a database thread panicked"))?
}

fn pg_connect(url: &str) -> anyhow::Result<postgres::Client> {
    postgres::Client::connect(url, postgres::NoTls).with_context(|| format!("cannot connect to {}", redact_url(url)))
}

/// The URL with its password replaced by `***`, for reports and messages.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((user_info, host)) => match user_info.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

impl Database {
    /// A fresh database of `kind`; `postgres_url` is needed for PostgreSQL.
    pub fn fresh(kind: DbKind, postgres_url: Option<&str>) -> anyhow::Result<Database> {
        let dir = tempfile::Builder::new().prefix("refundry-bench-").tempdir().context("cannot make a temp dir")?;
        let sqlite_path = dir.path().join("refundry.db");
        let pg = match kind {
            DbKind::Sqlite => None,
            DbKind::Postgres => {
                let Some(base_url) = postgres_url else {
                    bail!("--db postgres needs --postgres-url postgres://USER@HOST:PORT/DB");
                };
                let schema = format!("bench_{}", uuid::Uuid::new_v4().simple());
                let sep = if base_url.contains('?') { '&' } else { '?' };
                let url = format!("{base_url}{sep}options=-csearch_path%3D{schema}");
                let (base, name) = (base_url.to_owned(), schema.clone());
                on_plain_thread(move || {
                    let mut client = pg_connect(&base)?;
                    client.batch_execute(&format!("CREATE SCHEMA {name}")).context("cannot create the schema")?;
                    Ok(())
                })?;
                Some(PgSchema { base_url: base_url.to_owned(), schema, url })
            }
        };
        Ok(Database { kind, dir, sqlite_path, pg })
    }

    pub fn kind(&self) -> DbKind {
        self.kind
    }

    /// What brings the database's planner statistics up to date, as
    /// autovacuum does on its own within a minute of a table growing:
    /// PostgreSQL plans prepared statements from them, and a schema made a
    /// few seconds ago has statistics of empty tables. SQLite keeps none
    /// (its plans do not depend on table sizes): `None`.
    pub fn statistics_refresh(&self) -> Option<impl FnOnce() -> anyhow::Result<()> + Send + 'static> {
        let url = self.pg.as_ref()?.url.clone();
        Some(move || {
            let mut client = pg_connect(&url)?;
            // ANALYZE with no table names would walk every schema
            let tables: Vec<String> = client
                .query("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()", &[])?
                .iter()
                .map(|r| r.get(0))
                .collect();
            for table in tables {
                client
                    .batch_execute(&format!("ANALYZE \"{table}\""))
                    .with_context(|| format!("cannot analyze {table}"))?;
            }
            Ok(())
        })
    }

    /// The temp dir: the server's working directory, and where the SQLite
    /// files live.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The value for `REFUNDRY_DATABASE_URL`.
    pub fn url(&self) -> String {
        match &self.pg {
            None => format!("sqlite:{}", self.sqlite_path.display()),
            Some(pg) => pg.url.clone(),
        }
    }

    /// For reports: which database, where, which version.
    pub fn describe(&self) -> String {
        match &self.pg {
            None => {
                format!(
                    "SQLite {} (bundled; WAL, synchronous=FULL), a fresh file in a temp dir ({})",
                    rusqlite::version(),
                    self.dir.path().display()
                )
            }
            Some(pg) => {
                let url = pg.url.clone();
                let version = on_plain_thread(move || {
                    let mut client = pg_connect(&url)?;
                    let row = client.query_one("SHOW server_version", &[])?;
                    Ok(row.get::<_, String>(0))
                })
                .unwrap_or_else(|_| "?".into());
                format!("PostgreSQL {version} at {}, a fresh schema {}", redact_url(&pg.base_url), pg.schema)
            }
        }
    }

    /// Runs a read-only query and answers every column as text. Write SQL
    /// that both SQLite and PostgreSQL accept.
    pub fn query(&self, sql: &str) -> anyhow::Result<Vec<Row>> {
        match &self.pg {
            None => {
                let conn = rusqlite::Connection::open_with_flags(
                    &self.sqlite_path,
                    rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )
                .with_context(|| format!("cannot open {}", self.sqlite_path.display()))?;
                conn.busy_timeout(Duration::from_secs(10))?;
                let mut stmt = conn.prepare(sql).with_context(|| format!("bad query: {sql}"))?;
                let columns = stmt.column_count();
                let rows = stmt.query_map([], |row| {
                    (0..columns)
                        .map(|i| {
                            Ok(match row.get_ref(i)? {
                                rusqlite::types::ValueRef::Null => None,
                                rusqlite::types::ValueRef::Integer(n) => Some(n.to_string()),
                                rusqlite::types::ValueRef::Real(x) => Some(x.to_string()),
                                rusqlite::types::ValueRef::Text(t) | rusqlite::types::ValueRef::Blob(t) => {
                                    Some(String::from_utf8_lossy(t).into_owned())
                                }
                            })
                        })
                        .collect::<rusqlite::Result<Row>>()
                })?;
                Ok(rows.collect::<rusqlite::Result<Vec<Row>>>()?)
            }
            Some(pg) => {
                let (url, sql) = (pg.url.clone(), sql.to_owned());
                on_plain_thread(move || {
                    let mut client = pg_connect(&url)?;
                    let mut rows = Vec::new();
                    for message in client.simple_query(&sql).with_context(|| format!("bad query: {sql}"))? {
                        if let postgres::SimpleQueryMessage::Row(row) = message {
                            rows.push((0..row.len()).map(|i| row.get(i).map(str::to_owned)).collect());
                        }
                    }
                    Ok(rows)
                })
            }
        }
    }

    /// The durable-commit ceiling: one small row per transaction, for
    /// `seconds`. SQLite: a fresh file beside the server's, WAL and
    /// synchronous=FULL, one thread. PostgreSQL: `connections` connections
    /// at once, each INSERT its own (autocommit) transaction. Answers
    /// commits per second and a description of what was measured.
    pub fn commit_ceiling(&self, connections: usize, seconds: f64) -> anyhow::Result<(f64, String)> {
        let duration = Duration::from_secs_f64(seconds);
        match &self.pg {
            None => {
                let path = self.dir.path().join("commit-ceiling.db");
                let conn = rusqlite::Connection::open(&path)?;
                conn.pragma_update(None, "journal_mode", "WAL")?;
                conn.pragma_update(None, "synchronous", "FULL")?;
                conn.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, at INTEGER NOT NULL, note TEXT NOT NULL)")?;
                let mut insert = conn.prepare("INSERT INTO t (at, note) VALUES (?1, 'commit ceiling')")?;
                let started = Instant::now();
                let mut commits = 0u64;
                while started.elapsed() < duration {
                    conn.execute_batch("BEGIN IMMEDIATE")?;
                    insert.execute([commits as i64])?;
                    conn.execute_batch("COMMIT")?;
                    commits += 1;
                }
                let rate = commits as f64 / started.elapsed().as_secs_f64();
                Ok((rate, "SQLite, WAL + synchronous=FULL, 1 thread, one INSERT per transaction".into()))
            }
            Some(pg) => {
                let url = pg.url.clone();
                let connections = connections.max(1);
                on_plain_thread(move || {
                    let mut setup = pg_connect(&url)?;
                    let max: i64 = setup.query_one("SHOW max_connections", &[])?.get::<_, String>(0).parse()?;
                    // leave room for other sessions on a shared server
                    let connections = connections.min((max as usize).saturating_sub(10).max(1));
                    setup.batch_execute(
                        "CREATE TABLE commit_ceiling (id BIGSERIAL PRIMARY KEY, at BIGINT NOT NULL, note TEXT NOT NULL)",
                    )?;
                    let commits = Arc::new(AtomicU64::new(0));
                    let go = Arc::new(AtomicBool::new(false));
                    let mut threads = Vec::new();
                    for _ in 0..connections {
                        let (url, commits, go) = (url.clone(), Arc::clone(&commits), Arc::clone(&go));
                        threads.push(std::thread::spawn(move || -> anyhow::Result<()> {
                            let mut client = pg_connect(&url)?;
                            let insert = client
                                .prepare("INSERT INTO commit_ceiling (at, note) VALUES ($1, 'commit ceiling')")?;
                            while !go.load(Ordering::Acquire) {
                                std::thread::sleep(Duration::from_millis(1));
                            }
                            let started = Instant::now();
                            let mut n = 0i64;
                            while started.elapsed() < duration {
                                client.execute(&insert, &[&n])?;
                                n += 1;
                            }
                            commits.fetch_add(n as u64, Ordering::Relaxed);
                            Ok(())
                        }));
                    }
                    // connect everyone first, then start the clock together
                    std::thread::sleep(Duration::from_millis(200));
                    let started = Instant::now();
                    go.store(true, Ordering::Release);
                    for t in threads {
                        t.join().map_err(|_| anyhow!("a commit-ceiling thread panicked"))??;
                    }
                    let rate = commits.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
                    let sync: String = setup.query_one("SHOW synchronous_commit", &[])?.get(0);
                    Ok((
                        rate,
                        format!(
                            "PostgreSQL, {connections} connections, one INSERT per (autocommit) transaction, synchronous_commit={sync}"
                        ),
                    ))
                })
            }
        }
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        if let Some(pg) = &self.pg {
            let (base, schema) = (pg.base_url.clone(), pg.schema.clone());
            let dropped = on_plain_thread(move || {
                let mut client = pg_connect(&base)?;
                client.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))?;
                Ok(())
            });
            if let Err(e) = dropped {
                eprintln!("refundry-bench: could not drop schema {}: {e:#}", pg.schema);
            }
        }
    }
}

/// Parses an integer column; a NULL or unparsable cell is an error.
pub(crate) fn int(cell: &Option<String>) -> anyhow::Result<i64> {
    let text = cell.as_deref().context("unexpected NULL")?;
    text.parse().with_context(|| format!("not an integer: {text}"))
}

pub(crate) fn text(cell: &Option<String>) -> String {
    cell.clone().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(redact_url("postgres://u:secret@h:5432/db?x=1"), "postgres://u:***@h:5432/db?x=1");
        assert_eq!(redact_url("postgres://postgres@127.0.0.1:5432/test"), "postgres://postgres@127.0.0.1:5432/test");
        assert_eq!(redact_url("postgres://h/db"), "postgres://h/db");
    }
}
