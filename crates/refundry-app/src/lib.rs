//! Refundry's use cases: one function per thing a user does.
//!
//! Each command is one transaction: it reads what it needs, asks the core
//! what is allowed, and writes the change together with its audit event,
//! its outbox job and its idempotency record. Work for later (calling the
//! acquirer) goes through the outbox and is run by [`jobs::JobRunner`].

pub mod abuse;
pub mod audit;
pub mod batches;
pub mod corrections;
pub mod crypto;
pub mod demo;
pub mod disputes;
pub mod error;
pub mod evidence;
pub mod idempotency;
pub mod jobs;
pub mod keys;
pub mod merchants;
pub mod notify;
pub mod operations;
pub mod policy;
pub mod refunds;
pub mod reports;
pub mod sales;
pub mod self_service;
pub mod stans;
pub mod timeline;
pub mod users;
pub mod watch;
pub mod webhooks;

use std::sync::Arc;
use std::time::Duration;

use refundry_connectors::Processor;
use refundry_core::ids::{KeyId, MerchantId, StoreId, UserId};
use refundry_store::Store;
use tokio::sync::Notify;

pub use error::{AppError, ErrorCode};

/// Who is acting, on behalf of which merchant, from where, and what they
/// may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub merchant_id: MerchantId,
    pub principal: Principal,
    pub scopes: Vec<String>,
    /// A store- or terminal-pinned key (or a user of one store) only sees
    /// and touches that store's or terminal's sales.
    pub store_pin: Option<StoreId>,
    pub terminal_pin: Option<String>,
    /// Where the request came from (client address), for the audit log.
    pub source: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// An API key; a terminal's key names the cashier at the counter as
    /// its operator.
    ApiKey { key: KeyId, operator: Option<UserRef> },
    /// A person logged in with a session.
    User(UserRef),
    /// Refundry itself: the job runner, the demo seeder, the CLI.
    System(&'static str),
}

/// A person, as far as deciding and recording who did what needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRef {
    pub id: UserId,
    pub username: String,
    pub role: users::Role,
}

impl Actor {
    pub fn system(merchant_id: MerchantId, what: &'static str) -> Actor {
        Actor {
            merchant_id,
            principal: Principal::System(what),
            scopes: vec!["admin".to_owned()],
            store_pin: None,
            terminal_pin: None,
            source: what.to_owned(),
        }
    }

    /// The person behind the action, if one is known.
    pub fn person(&self) -> Option<&UserRef> {
        match &self.principal {
            Principal::ApiKey { operator, .. } => operator.as_ref(),
            Principal::User(user) => Some(user),
            Principal::System(_) => None,
        }
    }

    /// Who did it, for four-eyes checks and `requested_by`: the person when
    /// known, otherwise the key or component.
    pub fn identity(&self) -> String {
        match (&self.principal, self.person()) {
            (_, Some(user)) => format!("user:{}", user.id),
            (Principal::ApiKey { key, .. }, None) => format!("key:{key}"),
            (Principal::System(what), None) => format!("system:{what}"),
            (Principal::User(_), None) => unreachable!("a user principal is a person"),
        }
    }

    /// How the actor is named in the audit log: the person and the key
    /// they acted through.
    pub fn label(&self) -> String {
        match &self.principal {
            Principal::ApiKey { key, operator: Some(user) } => format!("user:{} via key:{key}", user.id),
            _ => self.identity(),
        }
    }

    /// Whether the actor holds `scope` (or `admin`).
    pub fn may(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope || s == "admin")
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
    /// How long a log-in session lasts.
    pub session_ttl: Duration,
    /// How long a refund may wait for a supervisor before it expires.
    pub approval_ttl: Duration,
    /// Failed log-ins in a row before the account is locked.
    pub max_failed_logins: u32,
    /// How long a locked account stays locked.
    pub lockout: Duration,
    /// Time zone of the business day (cashier daily limits).
    pub business_tz: jiff::tz::TimeZone,
    /// T+N days until refunded money arrives, by payment method.
    pub arrival: jobs::ArrivalDays,
    /// Keys that seal secrets at rest. The default is a random key that
    /// lives as long as the process: right for tests, wrong for a server
    /// (the binary always passes a persistent one).
    pub vault: crypto::Vault,
    /// How customers are told their refund succeeded.
    pub notify: notify::NotifyConfig,
    /// Evidence limits, deadline reminders, chargeback-ratio thresholds.
    pub disputes: disputes::DisputeConfig,
    /// The card fingerprint key and the wrong-charge detectors' settings.
    pub corrections: corrections::CorrectionConfig,
}

impl Default for AppConfig {
    fn default() -> Self {
        AppConfig {
            idempotency_ttl: Duration::from_secs(24 * 3600),
            jobs: jobs::RunnerConfig::default(),
            key_cache_ttl: Duration::from_secs(5),
            session_ttl: Duration::from_secs(8 * 3600),
            approval_ttl: Duration::from_secs(24 * 3600),
            max_failed_logins: 5,
            lockout: Duration::from_secs(15 * 60),
            business_tz: jiff::tz::TimeZone::get("Asia/Shanghai").unwrap_or(jiff::tz::TimeZone::UTC),
            arrival: jobs::ArrivalDays::default(),
            vault: crypto::Vault::from_specs(&[crypto::Vault::generate_spec("ephemeral")])
                .expect("a generated key is valid"),
            notify: notify::NotifyConfig {
                from: "Refundry <refunds@localhost>".into(),
                ..notify::NotifyConfig::default()
            },
            disputes: disputes::DisputeConfig::default(),
            corrections: corrections::CorrectionConfig::default(),
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
    /// For webhooks and notifications.
    pub(crate) http: reqwest::Client,
    /// Wallet refunds (Alipay, WeChat Pay…), when they go elsewhere than
    /// card refunds; `None`: the same processor.
    pub wallet_processor: Option<Arc<dyn Processor>>,
    /// Each store's people over the last weeks, for the abuse rules.
    pub(crate) cashier_activity: Arc<abuse::ActivityCache>,
    /// Trace numbers reserved ahead for acquirer messages.
    pub(crate) stans: Arc<stans::StanRuns>,
}

impl App {
    pub fn new(store: Arc<dyn Store>, processor: Arc<dyn Processor>, config: AppConfig) -> App {
        App {
            store,
            processor,
            config: Arc::new(config),
            jobs_waiting: Arc::new(Notify::new()),
            key_cache: Arc::new(keys::KeyCache::default()),
            http: reqwest::Client::builder()
                .user_agent(concat!("Refundry/", env!("CARGO_PKG_VERSION")))
                .connect_timeout(Duration::from_secs(5))
                .build()
                .unwrap_or_default(),
            wallet_processor: None,
            cashier_activity: Arc::new(abuse::ActivityCache::default()),
            stans: Arc::new(stans::StanRuns::default()),
        }
    }

    /// Sends wallet refunds to their own connector.
    pub fn with_wallet_processor(mut self, processor: Arc<dyn Processor>) -> App {
        self.wallet_processor = Some(processor);
        self
    }

    /// The connector for a refund's route. Cash needs none: the cashier
    /// hands it back from the drawer, so the refund completes at once.
    pub(crate) fn processor_for(&self, route: jobs::Route) -> Arc<dyn Processor> {
        match route {
            jobs::Route::Cash => Arc::new(refundry_connectors::cash::CashDrawer),
            jobs::Route::Wallet => self.wallet_processor.clone().unwrap_or_else(|| Arc::clone(&self.processor)),
            jobs::Route::Card => Arc::clone(&self.processor),
        }
    }
}

pub(crate) fn now() -> jiff::Timestamp {
    refundry_store::time::now()
}

/// `t` plus a standard duration, saturating at the end of time.
pub(crate) fn after(t: jiff::Timestamp, d: Duration) -> jiff::Timestamp {
    t.saturating_add(jiff::SignedDuration::try_from(d).unwrap_or(jiff::SignedDuration::MAX)).unwrap_or(t)
}

/// Bearer tokens (`rk_…` keys, `rs_…` sessions) are `<prefix><32 hex id>_<64
/// hex secret>`; only a SHA-256 of the secret is ever stored.
pub(crate) mod token {
    use sha2::{Digest, Sha256};

    /// The id's hex and the secret, when the token has exactly that shape.
    pub fn split<'t>(token: &'t str, prefix: &str) -> Option<(&'t str, &'t str)> {
        let (id_hex, secret) = token.strip_prefix(prefix)?.split_once('_')?;
        let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
        (hex(id_hex, 32) && hex(secret, 64)).then_some((id_hex, secret))
    }

    pub fn hash(secret: &str) -> [u8; 32] {
        Sha256::digest(secret.as_bytes()).into()
    }
}
