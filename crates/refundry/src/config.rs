//! Configuration: built-in defaults, then a TOML file, then `REFUNDRY_*`
//! environment variables, then command-line flags; later ones win.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `sqlite:PATH` (embedded, the default) or `postgres://USER@HOST:PORT/DB`.
    pub database_url: String,
    /// Address the HTTP server binds.
    pub listen: SocketAddr,
    /// `text` for people, `json` for log collectors.
    pub log_format: String,
    /// A tracing filter such as `info` or `refundry=debug,info`.
    pub log_level: String,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Requests per second one client address may make (0: unlimited).
    pub rate_limit_per_second: u32,
    /// How many above that it may make at once.
    pub rate_limit_burst: u32,
    /// How long idempotency keys are remembered, in hours (at least 24).
    pub idempotency_ttl_hours: u64,
    pub jobs: JobsConfig,
    pub sandbox: SandboxConfig,
    pub postgres: PostgresConfig,
    /// Keys that seal customer contact data and webhook secrets at rest, as
    /// `id:64-hex-digits`, the one to seal with first (rotation: put a new
    /// key in front, keep the old ones). Empty with SQLite: a key file
    /// beside the database is made on first start and used.
    pub encryption_keys: Vec<String>,
    pub arrival: ArrivalConfig,
    /// Who executes refunds: `sandbox` (built in, for demos and tests) or
    /// `iso8583` (an acquirer host, configured in `[iso8583]`).
    pub processor: String,
    /// The acquirer host, terminal, batch and MAC key for `processor = "iso8583"`.
    #[serde(skip_serializing, default)]
    pub iso8583: Option<refundry_connectors::iso8583::Iso8583Config>,
    pub notify: NotifySection,
    pub web: WebSection,
    pub disputes: DisputesSection,
    pub corrections: CorrectionsSection,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorrectionsSection {
    /// 64 hex digits: the key of the card fingerprint (HMAC-SHA256). Unset:
    /// derived from the first encryption key. Changing it makes earlier
    /// sales' cards unrecognisable to the duplicate detector.
    #[serde(skip_serializing)]
    pub card_fingerprint_key: Option<String>,
    /// The same card and amount within this many minutes is a duplicate.
    pub duplicate_window_minutes: u32,
    /// The till sends an `order_ref` with every sale: one without is suspect.
    pub orders_expected: bool,
}

impl Default for CorrectionsSection {
    fn default() -> Self {
        CorrectionsSection {
            card_fingerprint_key: None,
            duplicate_window_minutes: refundry_core::detect::DEFAULT_DUPLICATE_WINDOW_MINUTES,
            orders_expected: false,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DisputesSection {
    /// Largest evidence file taken, in bytes.
    pub evidence_max_file_bytes: usize,
    /// Days before a case's response deadline at which a reminder is sent.
    pub reminder_days: Vec<u32>,
}

impl Default for DisputesSection {
    fn default() -> Self {
        let d = refundry_app::disputes::DisputeConfig::default();
        DisputesSection { evidence_max_file_bytes: d.evidence_max_file_bytes, reminder_days: d.reminder_days }
    }
}

/// The web pages.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebSection {
    /// Mark cookies `Secure` (HTTPS only). Unset: on, except when `listen`
    /// is a loopback address (plain HTTP on this machine, the demo).
    pub secure_cookies: Option<bool>,
    /// Self-service look-ups and requests per client address per minute (0: no limit).
    pub self_service_per_minute: u32,
}

impl Config {
    /// Whether cookies are `Secure`: as configured, else unless the server
    /// only listens on this machine.
    pub fn secure_cookies(&self) -> bool {
        self.web.secure_cookies.unwrap_or(!self.listen.ip().is_loopback())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct NotifySection {
    /// `smtp://host:25`, `smtp://host:587?tls=required` or `smtps://user:pass@host:465`.
    pub smtp_url: Option<String>,
    pub from: Option<String>,
    /// The merchant's SMS gateway (POST, signed like webhooks).
    pub sms_gateway_url: Option<String>,
    pub sms_gateway_secret: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArrivalConfig {
    /// Days until a card refund reaches the cardholder (T+N).
    pub card_days: u32,
    /// Days until a wallet refund arrives.
    pub wallet_days: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresConfig {
    /// Writer connections (each groups queued writes into one commit); see
    /// `PgOptions::writers` for why two.
    pub writers: usize,
    /// Read connections kept open.
    pub readers: usize,
    pub connect_timeout_secs: u64,
    /// The server cancels any statement (and lock wait) longer than this.
    pub statement_timeout_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobsConfig {
    /// Attempts before a job is set aside as dead.
    pub max_attempts: u32,
    /// Jobs run at once.
    pub concurrency: usize,
    /// Seconds a runner holds a job before another may take it over.
    pub lease_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SandboxConfig {
    /// Simulated acquirer latency, in milliseconds.
    pub latency_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            database_url: "sqlite:refundry.db".into(),
            listen: "127.0.0.1:8080".parse().expect("valid address"),
            log_format: "text".into(),
            log_level: "info".into(),
            max_body_bytes: 256 * 1024,
            rate_limit_per_second: 500,
            rate_limit_burst: 1000,
            idempotency_ttl_hours: 24,
            jobs: JobsConfig { max_attempts: 12, concurrency: 128, lease_secs: 60 },
            sandbox: SandboxConfig { latency_ms: 50 },
            postgres: PostgresConfig { writers: 2, readers: 8, connect_timeout_secs: 5, statement_timeout_secs: 30 },
            encryption_keys: Vec::new(),
            arrival: ArrivalConfig { card_days: 7, wallet_days: 1 },
            processor: "sandbox".into(),
            iso8583: None,
            notify: NotifySection::default(),
            web: WebSection { secure_cookies: None, self_service_per_minute: 10 },
            disputes: DisputesSection::default(),
            corrections: CorrectionsSection::default(),
        }
    }
}

/// Values given as flags, which override everything else.
#[derive(Debug, Default, Serialize)]
pub struct Overrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<String>,
}

impl Config {
    /// `file` is the `--config` path; without it `refundry.toml` is read
    /// when it exists.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> anyhow::Result<Config> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        match file {
            Some(path) => {
                if !path.exists() {
                    bail!("config file {} does not exist", path.display());
                }
                figment = figment.merge(Toml::file_exact(path));
            }
            None => figment = figment.merge(Toml::file("refundry.toml")),
        }
        let config: Config = figment
            .merge(
                Env::prefixed("REFUNDRY_")
                    .ignore(&[
                        "CONFIG",
                        "PASSWORD",
                        "TEST_DATABASE",
                        "TEST_POSTGRES",
                        "REQUIRE_POSTGRES",
                        "REQUIRE_BROWSER",
                    ])
                    .split("__"),
            )
            .merge(Serialized::defaults(overrides))
            .extract()
            .context("invalid configuration")?;
        config.check()?;
        Ok(config)
    }

    /// A configuration from TOML text alone (defaults for what it leaves out).
    pub fn from_toml_str(text: &str) -> anyhow::Result<Config> {
        let config: Config = Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::string(text))
            .extract()
            .context("invalid configuration")?;
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> anyhow::Result<()> {
        if self.idempotency_ttl_hours < 24 {
            bail!("idempotency_ttl_hours must be at least 24: clients retry for a day");
        }
        if !matches!(self.log_format.as_str(), "text" | "json") {
            bail!("log_format must be text or json");
        }
        match (self.processor.as_str(), &self.iso8583) {
            ("sandbox", _) | ("iso8583", Some(_)) => {}
            ("iso8583", None) => bail!(
                "processor = \"iso8583\" needs an [iso8583] section (addr, terminal_id, merchant_id, batch_no, …)"
            ),
            (other, _) => bail!("processor must be sandbox or iso8583, not {other:?}"),
        }
        if self.jobs.max_attempts == 0 || self.jobs.concurrency == 0 {
            bail!("jobs.max_attempts and jobs.concurrency must be at least 1");
        }
        self.database()?;
        Ok(())
    }

    pub fn database(&self) -> anyhow::Result<Database> {
        Database::parse(&self.database_url)
    }

    pub fn idempotency_ttl(&self) -> Duration {
        Duration::from_secs(self.idempotency_ttl_hours * 3600)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Database {
    Sqlite(PathBuf),
    /// A `postgres://` or `postgresql://` URL, kept whole for the driver.
    Postgres(String),
}

impl Database {
    pub fn parse(url: &str) -> anyhow::Result<Database> {
        if let Some(path) = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) {
            if path.is_empty() || path == ":memory:" {
                bail!("database_url needs a file path, e.g. sqlite:refundry.db");
            }
            return Ok(Database::Sqlite(PathBuf::from(path)));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Database::Postgres(url.to_owned()));
        }
        bail!("database_url must look like sqlite:PATH or postgres://USER@HOST:PORT/DB")
    }

    /// For messages: the URL without a password.
    pub fn describe(&self) -> String {
        match self {
            Database::Sqlite(path) => path.display().to_string(),
            Database::Postgres(url) => match url.split_once('@') {
                Some((_, rest)) => format!("postgres://…@{rest}"),
                None => url.clone(),
            },
        }
    }
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment::Jail's own signature
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_parse() {
        assert_eq!(Database::parse("sqlite:a.db").unwrap(), Database::Sqlite("a.db".into()));
        assert_eq!(Database::parse("sqlite:///tmp/a.db").unwrap(), Database::Sqlite("/tmp/a.db".into()));
        assert!(Database::parse("mysql://x").is_err());
        let pg = Database::parse("postgres://app:secret@db:5432/refundry").unwrap();
        assert_eq!(pg.describe(), "postgres://…@db:5432/refundry");
        assert!(Database::parse("sqlite::memory:").is_err());
    }

    #[test]
    fn flags_override_the_environment_and_files() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "refundry.toml",
                "listen = \"127.0.0.1:9000\"\nlog_level = \"debug\"\n[jobs]\nmax_attempts = 3\n",
            )?;
            jail.set_env("REFUNDRY_LISTEN", "127.0.0.1:9100");
            jail.set_env("REFUNDRY_JOBS__CONCURRENCY", "7");
            let c = Config::load(None, &Overrides::default()).map_err(|e| e.to_string())?;
            assert_eq!(c.listen.port(), 9100);
            assert_eq!(c.log_level, "debug");
            assert_eq!((c.jobs.max_attempts, c.jobs.concurrency), (3, 7));
            let flags = Overrides { listen: Some("127.0.0.1:9200".parse().unwrap()), ..Overrides::default() };
            assert_eq!(Config::load(None, &flags).map_err(|e| e.to_string())?.listen.port(), 9200);
            Ok(())
        });
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("refundry.toml", "lisen = \"x\"\n")?;
            let err = Config::load(None, &Overrides::default()).unwrap_err();
            assert!(format!("{err:#}").contains("lisen"), "{err:#}");
            Ok(())
        });
    }
}
