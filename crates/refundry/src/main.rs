//! `refundry`: the one binary. Serves the API, runs migrations, seeds a
//! demo, manages keys and checks the audit log.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use refundry_app::jobs::RunnerConfig;
use refundry_app::keys::ALL_SCOPES;
use refundry_app::{App, AppConfig};
use refundry_connectors::sandbox::SandboxAcquirer;
use refundry_server::ServerConfig;
use refundry_store::Store;
use refundry_store::postgres::{PgOptions, PgStore};
use refundry_store::sqlite::{SqliteOptions, SqliteStore};

use refundry::config::{Config, Database, Overrides};

/// Refundry: voids, refunds and chargebacks for point-of-sale merchants.
///
/// Configuration comes from built-in defaults, then a TOML file
/// (`--config`, or ./refundry.toml when present), then REFUNDRY_*
/// environment variables (nested keys with `__`, e.g.
/// REFUNDRY_JOBS__MAX_ATTEMPTS), then flags.
#[derive(Debug, Parser)]
#[command(name = "refundry", version, about, long_about)]
struct Cli {
    /// TOML configuration file.
    #[arg(long, global = true, env = "REFUNDRY_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Database to use: sqlite:PATH (embedded) or postgres://USER@HOST:PORT/DB.
    /// [env: REFUNDRY_DATABASE_URL] [default: sqlite:refundry.db]
    ///
    /// When PostgreSQL runs on the same host, HOST may be its socket
    /// directory, percent-encoded: postgres://USER@%2Fvar%2Frun%2Fpostgresql/DB.
    #[arg(long, global = true, value_name = "URL")]
    database_url: Option<String>,
    /// Log format: text or json. [env: REFUNDRY_LOG_FORMAT]
    #[arg(long, global = true, value_name = "FORMAT")]
    log_format: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the HTTP API and run the refund job runner.
    ///
    /// Applies pending migrations first. Stops gracefully on Ctrl-C or
    /// SIGTERM: requests and refunds in flight are finished.
    Serve {
        /// Address to listen on. [env: REFUNDRY_LISTEN] [default: 127.0.0.1:8080]
        #[arg(long, value_name = "ADDR")]
        listen: Option<std::net::SocketAddr>,
    },
    /// Create or update the database schema, then exit.
    Migrate,
    /// Start from a fresh demo database: a café with two terminals, a few
    /// days of sales and an API key (printed), then serve it.
    ///
    /// Uses sqlite:refundry-demo.db unless --database-url is given, and
    /// always starts that file afresh; an explicitly named database must
    /// be empty.
    Demo {
        /// Address to listen on. [default: 127.0.0.1:8080]
        #[arg(long, value_name = "ADDR")]
        listen: Option<std::net::SocketAddr>,
        /// Days of sales to make up.
        #[arg(long, default_value_t = 3)]
        days: u32,
        /// Seed the data and print the key, but do not serve.
        #[arg(long)]
        no_serve: bool,
        /// Use the in-process sandbox acquirer instead of the ISO 8583
        /// simulator on loopback.
        #[arg(long)]
        sandbox: bool,
    },
    /// Manage API keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Manage the people who log in.
    #[command(subcommand)]
    Users(UsersCommand),
    /// Check the audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Chargebacks from the acquirer.
    #[command(subcommand)]
    Disputes(DisputesCommand),
    /// Look after outbox jobs (acquirer calls, webhooks) that gave up.
    #[command(subcommand)]
    Jobs(JobsCommand),
    /// Run an acquirer host simulator speaking ISO 8583 (China UnionPay POS
    /// layout) over TCP, for demos and tests: approves, declines, times out
    /// or drops connections at the rates given, and never applies one
    /// refund twice.
    AcquirerSim {
        #[arg(long, default_value = "127.0.0.1:5858")]
        listen: std::net::SocketAddr,
        /// Percent of refunds and voids declined.
        #[arg(long, default_value_t = 0)]
        decline_rate: u8,
        /// Percent applied but never answered.
        #[arg(long, default_value_t = 0)]
        timeout_rate: u8,
        /// Percent applied, then the connection dropped.
        #[arg(long, default_value_t = 0)]
        drop_rate: u8,
        #[arg(long, default_value_t = 20)]
        latency_ms: u64,
        /// MAC key (16 or 32 hex digits) shared with Refundry's [iso8583] mac_key_hex.
        #[arg(long, env = "REFUNDRY_SIM_MAC_KEY")]
        mac_key_hex: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum DisputesCommand {
    /// Import the acquirer's dispute file (CSV, UTF-8 or GB18030) into the
    /// default merchant. Every row is checked first: any bad row refuses the
    /// whole file, named by row number, and nothing changes. Importing the
    /// same file again opens nothing new.
    Import { file: PathBuf },
}

#[derive(Debug, Subcommand)]
enum JobsCommand {
    /// List jobs of every merchant in a state, newest first.
    List {
        /// ready, running, done or dead.
        #[arg(long, default_value = "dead")]
        state: String,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Put a dead job back in the queue.
    Retry { id: i64 },
}

#[derive(Debug, Subcommand)]
enum UsersCommand {
    /// Create a person of the default merchant. The password is read from
    /// the REFUNDRY_PASSWORD environment variable, or asked for on the
    /// terminal, never taken as a flag (flags end up in shell history).
    Create {
        /// Log-in name, e.g. wang.fang.
        #[arg(long)]
        username: String,
        /// The name shown in the back office and on slips. [default: the username]
        #[arg(long)]
        display_name: Option<String>,
        /// cashier, supervisor, finance, risk or admin.
        #[arg(long, value_parser = ["cashier", "supervisor", "finance", "risk", "admin"])]
        role: String,
    },
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Create an API key and print its secret, alone, on stdout. The secret
    /// is shown once and stored only as a hash. On a fresh database this
    /// also creates the default merchant with one store.
    Create {
        /// A name people recognise, e.g. "counter terminal T0001".
        #[arg(long)]
        name: String,
        /// Comma-separated scopes. [default: all]
        #[arg(long, value_delimiter = ',', value_parser = clap::builder::PossibleValuesParser::new(ALL_SCOPES))]
        scopes: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Recompute every merchant's hash chain; exit non-zero and name the
    /// first event that was altered, removed or reordered.
    Verify,
}

const DEMO_DATABASE: &str = "refundry-demo.db";

// A refund allocates many small short-lived values across threads (JSON,
// rows, audit text); glibc's allocator took about a tenth of the database
// writer's time with them.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let listen = match &cli.command {
        Command::Serve { listen } | Command::Demo { listen, .. } => *listen,
        _ => None,
    };
    let demo_db = matches!(cli.command, Command::Demo { .. })
        && cli.database_url.is_none()
        && std::env::var_os("REFUNDRY_DATABASE_URL").is_none();
    let overrides = Overrides {
        database_url: if demo_db { Some(format!("sqlite:{DEMO_DATABASE}")) } else { cli.database_url.clone() },
        listen,
        log_format: cli.log_format.clone(),
    };
    let config = Config::load(cli.config.as_deref(), &overrides)?;
    init_logging(&config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(run(cli.command, config, demo_db))
}

fn init_logging(config: &Config) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&config.log_level))
        .context("invalid log_level")?;
    // logs go to stderr: stdout is for answers such as a new key
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    if config.log_format == "json" {
        builder.json().init()
    } else {
        builder.init()
    }
    Ok(())
}

async fn run(command: Command, config: Config, demo_db: bool) -> anyhow::Result<()> {
    match command {
        Command::Migrate => {
            let database = config.database()?;
            let applied = match &database {
                Database::Sqlite(path) => SqliteStore::migrate(path),
                Database::Postgres(url) => PgStore::migrate(url),
            }
            .context("migration failed")?;
            let name = database.describe();
            if applied.is_empty() {
                eprintln!("{name}: schema is up to date");
            }
            for m in applied {
                eprintln!("{name}: applied {m}");
            }
            Ok(())
        }
        Command::Serve { .. } => {
            let app = open_app(&config)?;
            serve(app, &config).await
        }
        Command::Demo { days, no_serve, sandbox, .. } => {
            let database = config.database()?;
            if let (true, Database::Sqlite(path)) = (demo_db, &database) {
                remove_database(path)?;
            }
            // the demo's refunds go to an acquirer simulator over ISO 8583 on
            // loopback, as they would to a real host
            let mut config = config;
            let _simulator = if sandbox || no_serve { None } else { Some(demo_acquirer(&mut config).await?) };
            let mut app = open_app(&config)?;
            if _simulator.is_some() {
                // the simulated host is a card acquirer; wallets refund elsewhere
                app = app.with_wallet_processor(Arc::new(SandboxAcquirer::new(Duration::from_millis(30))));
            }
            if refundry_store::read(&app.store, |tx| tx.first_merchant()).await?.is_some() {
                bail!("{} already holds data; the demo needs an empty database", database.describe());
            }
            let summary = refundry_app::demo::seed(&app, days, jiff::Timestamp::now()).await?;
            eprintln!(
                "demo: {} with {} sales and {} refunds in {}",
                summary.merchant_name,
                summary.sales,
                summary.refunds,
                database.describe()
            );
            let people: Vec<String> = refundry_app::demo::DEMO_PEOPLE
                .iter()
                .map(|(name, _, role)| format!("{name} ({})", role.as_str()))
                .collect();
            eprintln!("demo: people {}, password {}", people.join(", "), refundry_app::demo::DEMO_PASSWORD);
            eprintln!("demo: API key (shown once):");
            println!("{}", summary.key.secret);
            if no_serve {
                return Ok(());
            }
            eprintln!(
                "demo: try  curl -H 'Authorization: Bearer {}' http://{}/v1/sales",
                summary.key.secret, config.listen
            );
            eprintln!(
                "demo: back office  http://{}/  (wang.fang cashier, li.qiang supervisor, password {})",
                config.listen,
                refundry_app::demo::DEMO_PASSWORD
            );
            serve(app, &config).await
        }
        Command::Keys(KeysCommand::Create { name, scopes }) => {
            let app = open_app(&config)?;
            let (merchant, _) = app.default_merchant().await?;
            let actor = refundry_app::Actor::system(merchant.id, "cli");
            let scopes: Vec<&str> =
                if scopes.is_empty() { ALL_SCOPES.to_vec() } else { scopes.iter().map(String::as_str).collect() };
            let key = app.create_key(&actor, &name, &scopes).await?;
            eprintln!("created {} for {} with scopes {}", key.id, merchant.name, scopes.join(","));
            println!("{}", key.secret);
            Ok(())
        }
        Command::Users(UsersCommand::Create { username, display_name, role }) => {
            let app = open_app(&config)?;
            let (merchant, _) = app.default_merchant().await?;
            let password = match std::env::var("REFUNDRY_PASSWORD") {
                Ok(p) => p,
                Err(_) => read_password()?,
            };
            let role = refundry_app::users::Role::parse(&role).context("unknown role")?;
            let actor = refundry_app::Actor::system(merchant.id, "cli");
            let new = refundry_app::users::NewUser {
                display_name: display_name.unwrap_or_else(|| username.clone()),
                username,
                role,
                password,
                store_id: None,
            };
            let user = app.create_user(&actor, new).await.map_err(|e| anyhow::anyhow!(e.detail))?;
            eprintln!("created {} ({}) for {}", user.username, user.role, merchant.name);
            println!("{}", user.id);
            Ok(())
        }
        Command::Disputes(DisputesCommand::Import { file }) => {
            let bytes = std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let app = open_app(&config)?;
            let (merchant, _) = app.default_merchant().await?;
            let actor = refundry_app::Actor::system(merchant.id, "cli");
            let bar = indicatif::ProgressBar::new(0);
            bar.set_style(
                indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} cases {msg}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            let shown = bar.clone();
            let report = app
                .import_disputes(&actor, &bytes, move |done, total| {
                    shown.set_length(total as u64);
                    shown.set_position(done as u64);
                })
                .await
                .map_err(|e| anyhow::anyhow!(e.detail))?;
            bar.finish_and_clear();
            for e in &report.errors {
                println!("row {}: {}: {}", e.row, e.field, e.message);
            }
            if !report.errors.is_empty() {
                bail!("{} rows refused; nothing was imported", report.errors.len());
            }
            eprintln!("{} rows: {} cases opened, {} already known", report.rows, report.opened, report.already_known);
            Ok(())
        }
        Command::Jobs(JobsCommand::List { state, limit }) => {
            let app = open_app(&config)?;
            let jobs = app.jobs(None, &state, limit).await.map_err(|e| anyhow::anyhow!(e.detail))?;
            if jobs.is_empty() {
                eprintln!("no {state} jobs");
            }
            for j in jobs {
                println!(
                    "{}\t{}\t{}\tattempts={}\t{}\t{}",
                    j.id,
                    j.kind,
                    j.state,
                    j.attempts,
                    j.updated_at,
                    j.last_error.unwrap_or_default()
                );
            }
            Ok(())
        }
        Command::Jobs(JobsCommand::Retry { id }) => {
            let app = open_app(&config)?;
            let (merchant, _) = app.default_merchant().await?;
            let actor = refundry_app::Actor::system(merchant.id, "cli");
            app.retry_job(&actor, id, false).await.map_err(|e| anyhow::anyhow!(e.detail))?;
            eprintln!("job {id} is queued again");
            Ok(())
        }
        Command::AcquirerSim { listen, decline_rate, timeout_rate, drop_rate, latency_ms, mac_key_hex } => {
            let rates = [decline_rate, timeout_rate, drop_rate];
            if rates.iter().any(|r| *r > 100) || rates.iter().map(|r| u32::from(*r)).sum::<u32>() > 100 {
                bail!("the rates are percents and together at most 100");
            }
            let listener =
                tokio::net::TcpListener::bind(listen).await.with_context(|| format!("cannot listen on {listen}"))?;
            let config = refundry_connectors::simulator::SimulatorConfig {
                latency: Duration::from_millis(latency_ms),
                decline_rate_pct: decline_rate,
                timeout_rate_pct: timeout_rate,
                drop_rate_pct: drop_rate,
                mac_key_hex,
                seed: rand::random(),
            };
            let handle = refundry_connectors::simulator::Simulator::start(listener, config).await;
            tracing::info!(addr = %handle.addr(), "acquirer simulator is listening; Ctrl-C to stop");
            shutdown_signal().await;
            drop(handle);
            Ok(())
        }
        Command::Audit(AuditCommand::Verify) => {
            let app = open_app(&config)?;
            verify_audit(&app).await
        }
    }
}

fn remove_database(path: &Path) -> anyhow::Result<()> {
    for suffix in ["", "-wal", "-shm", ".key"] {
        let file = PathBuf::from(format!("{}{suffix}", path.display()));
        match std::fs::remove_file(&file) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("cannot remove {}", file.display())),
        }
    }
    Ok(())
}

fn open_app(config: &Config) -> anyhow::Result<App> {
    let database = config.database()?;
    let store: Arc<dyn Store> = match &database {
        Database::Sqlite(path) => {
            SqliteStore::open(path, SqliteOptions::default()).map(|s| Arc::new(s) as Arc<dyn Store>)
        }
        Database::Postgres(url) => {
            let pg = &config.postgres;
            let options = PgOptions {
                writers: pg.writers,
                readers: pg.readers,
                connect_timeout: Duration::from_secs(pg.connect_timeout_secs),
                statement_timeout: Duration::from_secs(pg.statement_timeout_secs),
                ..PgOptions::default()
            };
            PgStore::open(url, options).map(|s| Arc::new(s) as Arc<dyn Store>)
        }
    }
    .map_err(|e| anyhow::anyhow!("cannot open database {}: {e}", database.describe()))?;
    let processor: Arc<dyn refundry_connectors::Processor> = match (config.processor.as_str(), &config.iso8583) {
        ("iso8583", Some(iso)) => Arc::new(
            refundry_connectors::iso8583::Iso8583Processor::new(iso.clone())
                .map_err(|e| anyhow::anyhow!("[iso8583] {e}"))?,
        ),
        _ => Arc::new(SandboxAcquirer::new(Duration::from_millis(config.sandbox.latency_ms))),
    };
    let (vault, first_key) = vault(config, &database)?;
    let fingerprint_key = match &config.corrections.card_fingerprint_key {
        Some(hex_key) => {
            let bytes: [u8; 32] = hex::decode(hex_key)
                .ok()
                .and_then(|b| b.try_into().ok())
                .context("corrections.card_fingerprint_key must be 64 hex digits")?;
            refundry_app::corrections::FingerprintKey::new(bytes)
        }
        None => refundry_app::corrections::FingerprintKey::derived_from_spec(&first_key)
            .context("the first encryption key cannot be read")?,
    };
    let app_config = AppConfig {
        vault,
        corrections: refundry_app::corrections::CorrectionConfig {
            fingerprint_key,
            duplicate_window_minutes: config.corrections.duplicate_window_minutes,
            orders_expected: config.corrections.orders_expected,
            ..refundry_app::corrections::CorrectionConfig::default()
        },
        notify: refundry_app::notify::NotifyConfig {
            smtp_url: config.notify.smtp_url.clone(),
            from: config.notify.from.clone().unwrap_or_else(|| "Refundry <refunds@localhost>".into()),
            sms_gateway_url: config.notify.sms_gateway_url.clone(),
            sms_gateway_secret: config.notify.sms_gateway_secret.clone(),
        },
        arrival: refundry_app::jobs::ArrivalDays { card: config.arrival.card_days, wallet: config.arrival.wallet_days },
        idempotency_ttl: config.idempotency_ttl(),
        jobs: RunnerConfig {
            max_attempts: config.jobs.max_attempts,
            concurrency: config.jobs.concurrency,
            lease: Duration::from_secs(config.jobs.lease_secs),
            ..RunnerConfig::default()
        },
        disputes: refundry_app::disputes::DisputeConfig {
            evidence_max_file_bytes: config.disputes.evidence_max_file_bytes,
            reminder_days: config.disputes.reminder_days.clone(),
            ..refundry_app::disputes::DisputeConfig::default()
        },
        ..AppConfig::default()
    };
    Ok(App::new(store, processor, app_config))
}

async fn serve(app: App, config: &Config) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let server_config = ServerConfig {
        max_body_bytes: config.max_body_bytes,
        max_evidence_body_bytes: refundry_server::evidence_body_bytes(config.disputes.evidence_max_file_bytes),
        rate_limit_per_second: config.rate_limit_per_second,
        rate_limit_burst: config.rate_limit_burst,
        web: refundry_web::WebConfig {
            secure_cookies: config.secure_cookies(),
            self_service_per_minute: config.web.self_service_per_minute,
        },
        ..ServerConfig::default()
    };
    let running = refundry_server::start(app, listener, server_config).await?;
    tracing::info!(addr = %running.addr, "refundry is serving; Ctrl-C to stop");
    let stop = running.stopper();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("stopping: finishing requests and refunds in flight");
        let _ = stop.send(true);
    });
    running.wait().await?;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(term) => term,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

async fn verify_audit(app: &App) -> anyhow::Result<()> {
    let merchants = refundry_store::read(&app.store, |tx| tx.all_merchants()).await?;
    let mut broken = false;
    for m in merchants {
        match refundry_app::audit::verify_chain(app, m.id).await? {
            Ok(n) => eprintln!("{}: {n} events, chain intact", m.id),
            Err(refundry_app::audit::ChainBreak::Altered { seq }) => {
                broken = true;
                println!("{}: event {seq} was altered", m.id);
            }
            Err(refundry_app::audit::ChainBreak::Broken { seq, expected_seq }) => {
                broken = true;
                println!(
                    "{}: chain broken at event {seq} (expected event {expected_seq}): an event was removed or reordered",
                    m.id
                );
            }
            Err(refundry_app::audit::ChainBreak::Truncated { last_seq, head_seq }) => {
                broken = true;
                println!(
                    "{}: the chain ends at event {last_seq} but its head is event {head_seq}: the events after {last_seq} were removed",
                    m.id
                );
            }
        }
    }
    if broken {
        bail!("the audit log failed verification");
    }
    Ok(())
}

fn read_password() -> anyhow::Result<String> {
    use std::io::{BufRead, IsTerminal, Write};
    if !std::io::stdin().is_terminal() {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        return Ok(line.trim_end_matches(['\r', '\n']).to_owned());
    }
    eprint!("password: ");
    std::io::stderr().flush()?;
    // echo stays on: there is no portable way to hide it without a terminal
    // crate; REFUNDRY_PASSWORD is the way for scripts
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

/// Starts the acquirer simulator on a free loopback port and points the
/// ISO 8583 connector at it.
async fn demo_acquirer(config: &mut Config) -> anyhow::Result<refundry_connectors::simulator::SimulatorHandle> {
    use refundry_connectors::simulator::{Simulator, SimulatorConfig};
    let key = "0123456789ABCDEFFEDCBA9876543210";
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let sim = Simulator::start(
        listener,
        SimulatorConfig {
            latency: Duration::from_millis(30),
            mac_key_hex: Some(key.into()),
            seed: 8583,
            ..SimulatorConfig::default()
        },
    )
    .await;
    let iso = serde_json::json!({
        "addr": sim.addr().to_string(),
        "terminal_id": "RF000001",
        "merchant_id": "898310048990001",
        "tpdu_destination": 1,
        "mac_key_hex": key,
        "batch_no": "000001",
    });
    config.iso8583 = Some(serde_json::from_value(iso).context("demo acquirer settings")?);
    config.processor = "iso8583".into();
    eprintln!("demo: refunds go to an ISO 8583 acquirer simulator at {}", sim.addr());
    Ok(sim)
}

/// The keys that seal secrets at rest: configured, or for an embedded
/// database a key file beside it, made on first start (mode 0600).
/// The vault, and the spec of the key it seals with (the card fingerprint
/// key is derived from it when none is set).
fn vault(config: &Config, database: &Database) -> anyhow::Result<(refundry_app::crypto::Vault, String)> {
    use refundry_app::crypto::Vault;
    if !config.encryption_keys.is_empty() {
        let vault = Vault::from_specs(&config.encryption_keys).context("encryption_keys")?;
        return Ok((vault, config.encryption_keys[0].clone()));
    }
    let Database::Sqlite(path) = database else {
        bail!("encryption_keys must be set for PostgreSQL: every instance needs the same keys (see README)");
    };
    let key_file = PathBuf::from(format!("{}.key", path.display()));
    let spec = match std::fs::read_to_string(&key_file) {
        Ok(text) => text.trim().to_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let spec = Vault::generate_spec("k1");
            write_private(&key_file, &spec).with_context(|| format!("cannot write {}", key_file.display()))?;
            tracing::warn!(file = %key_file.display(), "made a new encryption key; back it up with the database");
            spec
        }
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", key_file.display())),
    };
    let specs: Vec<String> = spec.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_owned).collect();
    let vault = Vault::from_specs(&specs).with_context(|| format!("key file {}", key_file.display()))?;
    Ok((vault, specs[0].clone()))
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(text.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()
}
