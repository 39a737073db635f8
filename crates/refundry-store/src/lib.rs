//! Refundry's storage.
//!
//! One interface, [`Tx`], made of one trait per aggregate (merchants, keys,
//! sales, refunds, outbox, idempotency, audit); use cases are plain
//! synchronous functions over a `&mut dyn Tx` and never see SQL. A
//! [`Store`] decides how those functions are scheduled:
//!
//! - [`sqlite::SqliteStore`] runs every write on one writer thread that takes
//!   whatever writes are queued, applies each inside its own savepoint of one
//!   transaction and pays for one durable commit (group commit). Callers are
//!   answered only after that commit. Reads run on a pool of read-only WAL
//!   connections.
//!
//! The async helpers [`write`] and [`read`] turn a closure into a job and
//! await its answer.

pub mod deferred;
pub mod error;
pub mod model;
pub mod postgres;
pub mod repo;
pub mod sqlite;
mod store;
pub mod testing;
pub mod time;

pub use error::StoreError;
pub use repo::Tx;
pub use store::{AsStoreError, ReadJob, Store, Verdict, WriteJob, read, write};
