//! Refundry's use cases: one function per thing a user does.
//!
//! Each command is one transaction: it reads what it needs, asks the core
//! what is allowed, and writes the change together with its audit event,
//! its outbox job and its idempotency record. Work for later (calling the
//! acquirer) goes through the outbox and is run by [`jobs::JobRunner`].

pub mod audit;
pub mod batches;
pub mod demo;
pub mod error;
pub mod idempotency;
pub mod jobs;
pub mod keys;
pub mod merchants;
pub mod refunds;
pub mod sales;

use std::sync::Arc;
use std::time::Duration;

use refundry_connectors::Processor;
use refundry_core::ids::{KeyId, MerchantId};
use refundry_store::Store;
use tokio::sync::Notify;

pub use error::{AppError, ErrorCode};

/// Who is acting, on behalf of which merchant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub merchant_id: MerchantId,
    pub principal: Principal,
    pub scopes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    ApiKey(KeyId),
    /// Refundry itself: the job runner, the demo seeder, the CLI.
    System(&'static str),
}

impl Actor {
    pub fn system(merchant_id: MerchantId, what: &'static str) -> Actor {
        Actor { merchant_id, principal: Principal::System(what), scopes: Vec::new() }
    }

    /// How the actor is named in the audit log and on records.
    pub fn label(&self) -> String {
        match &self.principal {
            Principal::ApiKey(id) => format!("key:{id}"),
            Principal::System(what) => format!("system:{what}"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct AppConfig {
    /// How long idempotency keys are remembered (at least 24 hours).
    pub idempotency_ttl: Duration,
    pub jobs: jobs::RunnerConfig,
    /// How long a verified API key is trusted before it is looked up again
    /// (bounds how late a revocation takes effect).
    pub key_cache_ttl: Duration,
}

impl Default for AppConfig {
    fn default() -> Self {
        AppConfig {
            idempotency_ttl: Duration::from_secs(24 * 3600),
            jobs: jobs::RunnerConfig::default(),
            key_cache_ttl: Duration::from_secs(5),
        }
    }
}

/// The application: storage, connectors and configuration, shared by the
/// HTTP server, the CLI and the job runner.
#[derive(Clone)]
pub struct App {
    pub store: Arc<dyn Store>,
    pub processor: Arc<dyn Processor>,
    pub config: Arc<AppConfig>,
    /// Woken when a command queued outbox work, so refunds start at once.
    pub(crate) jobs_waiting: Arc<Notify>,
    pub(crate) key_cache: Arc<keys::KeyCache>,
}

impl App {
    pub fn new(store: Arc<dyn Store>, processor: Arc<dyn Processor>, config: AppConfig) -> App {
        App {
            store,
            processor,
            config: Arc::new(config),
            jobs_waiting: Arc::new(Notify::new()),
            key_cache: Arc::new(keys::KeyCache::default()),
        }
    }
}

pub(crate) fn now() -> jiff::Timestamp {
    refundry_store::time::now()
}
