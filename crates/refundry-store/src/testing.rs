//! For tests of every layer: a store on the backend the test run asks for.
//!
//! `REFUNDRY_TEST_DATABASE` unset (or `sqlite`) gives a fresh SQLite file;
//! a `postgres://` URL gives a fresh schema in that database, dropped when
//! the returned guard goes away, so tests run in parallel without seeing
//! each other.

use std::path::Path;
use std::sync::Arc;

use crate::Store;
use crate::postgres::{PgOptions, PgStore};
use crate::sqlite::{SqliteOptions, SqliteStore};

pub const ENV: &str = "REFUNDRY_TEST_DATABASE";

/// The PostgreSQL URL this test run uses, if any.
pub fn postgres_url() -> Option<String> {
    std::env::var(ENV).ok().filter(|u| u.starts_with("postgres://") || u.starts_with("postgresql://"))
}

/// A PostgreSQL schema of one test.
pub struct Scratch {
    base: String,
    pub schema: String,
    /// Connects to the schema (its `search_path`).
    pub url: String,
}

impl Scratch {
    pub fn new(base: &str) -> Scratch {
        let schema = format!("t_{}", uuid::Uuid::now_v7().simple());
        let (base_owned, ddl) = (base.to_owned(), format!("CREATE SCHEMA {schema}"));
        std::thread::spawn(move || {
            let mut client = postgres::Client::connect(&base_owned, postgres::NoTls).expect("PostgreSQL for tests");
            client.batch_execute(&ddl).expect("create test schema");
        })
        .join()
        .expect("create test schema");
        let sep = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{sep}options=-csearch_path%3D{schema}");
        Scratch { base: base.to_owned(), schema, url }
    }

    /// A direct connection to the schema, for tests that look under the hood.
    pub fn client(&self) -> postgres::Client {
        let url = self.url.clone();
        std::thread::spawn(move || postgres::Client::connect(&url, postgres::NoTls).expect("connect"))
            .join()
            .expect("connect")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let (base, ddl) = (self.base.clone(), format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema));
        let _ = std::thread::spawn(move || {
            if let Ok(mut client) = postgres::Client::connect(&base, postgres::NoTls) {
                let _ = client.batch_execute(&ddl);
            }
        })
        .join();
    }
}

/// A store for one test, and what keeps its database alive.
pub struct TestStore {
    pub store: Arc<dyn Store>,
    pub scratch: Option<Scratch>,
}

/// Opens a fresh store on the backend of this test run; SQLite files go in
/// `dir`. Call inside a Tokio runtime.
pub fn open(dir: &Path) -> TestStore {
    // tests run side by side against one server: a few connections each
    // keep them under its max_connections
    open_with(dir, SqliteOptions::default(), PgOptions { writers: 2, readers: 3, ..PgOptions::default() })
}

pub fn open_with(dir: &Path, sqlite: SqliteOptions, pg: PgOptions) -> TestStore {
    match postgres_url() {
        Some(base) => {
            let scratch = Scratch::new(&base);
            let store = PgStore::open(&scratch.url, pg).expect("open PostgreSQL store");
            TestStore { store: Arc::new(store), scratch: Some(scratch) }
        }
        None => {
            let store = SqliteStore::open(dir.join("test.db"), sqlite).expect("open SQLite store");
            TestStore { store: Arc::new(store), scratch: None }
        }
    }
}
