//! `refundry-bench load`: the benchmark.
//!
//! Starts `refundry serve` on a fresh database, loads sales, raises the
//! policy limits so refunds are approved at once, then drives concurrent
//! clients over one shared keep-alive HTTP/1.1 pool through two mixes:
//! "counter" (find the sale, preview, refund 1.00, read the refund back) and
//! "create" (POST /v1/refunds only). After each mix it measures how long the
//! job runner takes to bring every refund to a final status. Two ceilings
//! are measured in the same run: the HTTP stack's (GET /healthz of the same
//! server, hammered by the same client code) and the database's
//! durable-commit rate. Prints a summary and writes a Markdown report.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::bail;
use clap::Parser;
use hdrhistogram::Histogram;
use serde_json::json;

use crate::api::Tenders;
use crate::cpu::CpuUse;

use crate::api::{Answer, Api, SALE_AMOUNT};
use crate::db::{Database, DbKind, redact_url};
use crate::server::{Refundry, Server, resolve_binary};
use crate::{machine, progress, report, say};

/// Each refund gives back 1.00 CNY.
pub const REFUND_AMOUNT: i64 = 100;

/// Which mixes to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MixChoice {
    /// The counter flow: GET /v1/sales?voucher_no, POST /v1/refunds/preview,
    /// POST /v1/refunds, GET /v1/refunds/{id}.
    Counter,
    /// POST /v1/refunds only.
    Create,
    /// Counter, then create.
    Both,
}

/// What a run sets up and how hard it drives it, the same for `load` and
/// for each run of `compare`.
#[derive(Debug, Clone, clap::Args)]
pub struct Setup {
    /// Database: a fresh SQLite file in a temp dir, or a fresh schema bench_<uuid> in PostgreSQL.
    #[arg(long, value_enum, default_value_t = DbKind::Sqlite)]
    pub db: DbKind,
    /// PostgreSQL URL for --db postgres, e.g. postgres://postgres@127.0.0.1:5432/test.
    #[arg(long, value_name = "URL")]
    pub postgres_url: Option<String>,
    /// Sales loaded before the mixes, each 1,000.00 CNY without items.
    #[arg(long, default_value_t = 2000)]
    pub sales: usize,
    /// How the sales were paid: a cash refund is settled in its request's transaction; a card refund is queued and
    /// sent to the sandbox acquirer by the job runner, in a second transaction.
    #[arg(long, value_enum, default_value_t = Tenders::Cash)]
    pub tenders: Tenders,
    /// Concurrent clients.
    #[arg(long, default_value_t = 64)]
    pub clients: usize,
    /// Seconds per mix before measuring starts.
    #[arg(long, default_value_t = 3.0)]
    pub warmup_seconds: f64,
}

impl Default for Setup {
    fn default() -> Self {
        LoadOptions::default().setup
    }
}

/// Options of `refundry-bench load`.
#[derive(Debug, Clone, clap::Args)]
pub struct LoadOptions {
    /// The refundry binary. [default: `refundry` beside this program, e.g. target/release/refundry]
    #[arg(long, value_name = "PATH")]
    pub refundry: Option<PathBuf>,
    #[command(flatten)]
    pub setup: Setup,
    /// Measured seconds per mix.
    #[arg(long, default_value_t = 20.0)]
    pub seconds: f64,
    /// Which mixes to run, one after the other.
    #[arg(long, value_enum, default_value_t = MixChoice::Both)]
    pub mix: MixChoice,
    /// Seconds for each ceiling (HTTP, durable commits).
    #[arg(long, default_value_t = 5.0)]
    pub ceiling_seconds: f64,
    /// Markdown report to write or update (the section of this database is replaced).
    #[arg(long, value_name = "PATH", default_value = "BENCHMARKS.md")]
    pub report: PathBuf,
    /// Print the summary only; write no report.
    #[arg(long)]
    pub no_report: bool,
    /// Give up waiting for refunds to reach a final status after this many seconds.
    #[arg(long, default_value_t = 600.0)]
    pub final_timeout_seconds: f64,
    /// Print no summary (a caller prints what it makes of the report).
    #[arg(skip)]
    pub quiet: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        #[derive(Parser)]
        struct Defaults {
            #[command(flatten)]
            options: LoadOptions,
        }
        Defaults::parse_from(["refundry-bench"]).options
    }
}

/// Latency summary in milliseconds.
#[derive(Debug, Clone, Default)]
pub struct Latency {
    pub count: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
}

impl Latency {
    fn of(h: &Histogram<u64>) -> Latency {
        let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        Latency { count: h.len(), p50_ms: ms(0.5), p99_ms: ms(0.99), p999_ms: ms(0.999) }
    }
}

/// One mix's measured window.
#[derive(Debug, Clone)]
pub struct MixResult {
    /// `counter`, `create` or `http ceiling`.
    pub mix: String,
    /// Measured seconds (from the end of warm-up to the last answer).
    pub seconds: f64,
    pub requests_per_s: f64,
    pub flows_per_s: f64,
    /// Every request of the mix.
    pub requests: Latency,
    /// Whole flows (for `create`, the same as the requests).
    pub flows: Latency,
    /// Per request type.
    pub endpoints: Vec<(String, Latency)>,
    /// Failed requests in the measured window, by status and problem code.
    pub errors: BTreeMap<String, u64>,
    /// Failed requests during warm-up.
    pub warmup_errors: BTreeMap<String, u64>,
    /// Refunds refused with 422 refund_exceeds_refundable (sales ran out).
    pub exhausted: u64,
    /// Refunds created, warm-up included.
    pub refunds_made: u64,
    /// Seconds from the last answer until no refund was pending or
    /// processing; `None` when that did not happen in time.
    pub time_to_all_final_s: Option<f64>,
    /// Where the machine's CPU went in the measured window (Linux only).
    pub cpu: Option<CpuUse>,
    /// The store's group commits in the measured window, from its metrics.
    pub commits: Option<crate::commits::Commits>,
}

impl MixResult {
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// What a `load` run measured.
#[derive(Debug, Clone)]
pub struct LoadReport {
    pub database: DbKind,
    pub mixes: Vec<MixResult>,
    /// GET /healthz of the same server by the same clients.
    pub http_ceiling: MixResult,
    pub commit_ceiling_per_s: f64,
    pub commit_ceiling_how: String,
    /// Sales left out because the server refuses their id in a refund body
    /// as card data (a false positive of its card-number guard).
    pub sales_refused_as_card_data: Vec<String>,
    /// The section written to the report.
    pub markdown: String,
    /// Where it was written (None with --no-report).
    pub report_path: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Workload {
    Counter,
    Create,
    Healthz,
}

impl Workload {
    fn name(self) -> &'static str {
        match self {
            Workload::Counter => "counter",
            Workload::Create => "create",
            Workload::Healthz => "http ceiling",
        }
    }
}

const LOOKUP: usize = 0;
const PREVIEW: usize = 1;
const CREATE: usize = 2;
const READ: usize = 3;
const HEALTHZ: usize = 4;
const ENDPOINTS: [&str; 5] = [
    "GET /v1/sales?voucher_no=…",
    "POST /v1/refunds/preview",
    "POST /v1/refunds",
    "GET /v1/refunds/{id}",
    "GET /healthz",
];

fn histogram() -> Histogram<u64> {
    // 1 µs to 10 minutes, 3 significant digits
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
}

fn micros(d: Duration) -> u64 {
    d.as_micros().min(u64::MAX as u128) as u64
}

struct Stats {
    requests: Histogram<u64>,
    flows: Histogram<u64>,
    endpoints: Vec<Histogram<u64>>,
    errors: BTreeMap<String, u64>,
    warmup_errors: BTreeMap<String, u64>,
    exhausted: u64,
    refunds_made: u64,
    last_answer: Option<Instant>,
}

impl Stats {
    fn new() -> Stats {
        Stats {
            requests: histogram(),
            flows: histogram(),
            endpoints: ENDPOINTS.iter().map(|_| histogram()).collect(),
            errors: BTreeMap::new(),
            warmup_errors: BTreeMap::new(),
            exhausted: 0,
            refunds_made: 0,
            last_answer: None,
        }
    }

    fn merge(&mut self, other: Stats) {
        let _ = self.requests.add(&other.requests);
        let _ = self.flows.add(&other.flows);
        for (mine, theirs) in self.endpoints.iter_mut().zip(&other.endpoints) {
            let _ = mine.add(theirs);
        }
        for (k, v) in other.errors {
            *self.errors.entry(k).or_default() += v;
        }
        for (k, v) in other.warmup_errors {
            *self.warmup_errors.entry(k).or_default() += v;
        }
        self.exhausted += other.exhausted;
        self.refunds_made += other.refunds_made;
        self.last_answer = self.last_answer.max(other.last_answer);
    }

    fn error(&mut self, measured: bool, what: String) {
        let map = if measured { &mut self.errors } else { &mut self.warmup_errors };
        *map.entry(what).or_default() += 1;
    }
}

struct Sale {
    id: String,
    voucher_no: String,
}

/// What every client of one workload shares.
struct Run {
    api: Api,
    sales: Arc<Vec<Sale>>,
    next_sale: AtomicUsize,
    next_key: AtomicU64,
    run_id: String,
    measure_from: Instant,
    stop_at: Instant,
    answered: AtomicU64,
}

/// What the load generator reads of a created refund.
#[derive(serde::Deserialize)]
struct Created {
    id: String,
    status: String,
}

impl Run {
    fn pick_sale(&self) -> &Sale {
        // round-robin, so every sale fills up at the same pace
        let i = self.next_sale.fetch_add(1, Ordering::Relaxed) % self.sales.len();
        &self.sales[i]
    }

    fn refund_body(sale: &Sale) -> Vec<u8> {
        serde_json::to_vec(&json!({"sale_id": sale.id, "amount": REFUND_AMOUNT, "reason": "defective"}))
            .unwrap_or_default()
    }

    async fn call(
        &self,
        stats: &mut Stats,
        endpoint: usize,
        measured: bool,
        req: reqwest::RequestBuilder,
        expect: u16,
    ) -> Option<Answer> {
        let started = Instant::now();
        let res = Api::send(req).await;
        let took = micros(started.elapsed());
        self.answered.fetch_add(1, Ordering::Relaxed);
        stats.last_answer = Some(Instant::now());
        if measured {
            stats.requests.saturating_record(took);
            stats.endpoints[endpoint].saturating_record(took);
        }
        let what = match res {
            Ok(answer) if answer.status == expect => return Some(answer),
            Ok(answer) => {
                let code = answer.code();
                if code == "refund_exceeds_refundable" {
                    stats.exhausted += 1;
                }
                if code.is_empty() { answer.status.to_string() } else { format!("{} {code}", answer.status) }
            }
            Err(e) if e.is_timeout() => "no answer (timeout)".into(),
            Err(e) if e.is_connect() => "no answer (connect)".into(),
            Err(_) => "no answer (connection)".into(),
        };
        stats.error(measured, what);
        None
    }

    /// POST /v1/refunds of 1.00 with a fresh key; answers the refund id.
    async fn create_refund(&self, stats: &mut Stats, measured: bool, sale: &Sale) -> Option<String> {
        let key = format!("bench-{}-{}", self.run_id, self.next_key.fetch_add(1, Ordering::Relaxed));
        let req = self.api.post("/v1/refunds", Run::refund_body(sale), Some(&key));
        let answer = self.call(stats, CREATE, measured, req, 201).await?;
        stats.refunds_made += 1;
        // the two fields read, not the whole document: the answer of every
        // request goes through here
        let Ok(refund) = serde_json::from_slice::<Created>(&answer.body) else {
            stats.error(measured, "201 without a refund's id and status".into());
            return None;
        };
        if refund.status == "requires_approval" {
            stats.error(measured, "201 but requires_approval (policy limits not raised?)".into());
        }
        Some(refund.id)
    }

    async fn counter_flow(&self, stats: &mut Stats, measured: bool) {
        let started = Instant::now();
        let sale = self.pick_sale();
        let lookup = self.api.get(&format!("/v1/sales?voucher_no={}", sale.voucher_no));
        let Some(found) = self.call(stats, LOOKUP, measured, lookup, 200).await else { return };
        if found.json()["data"][0]["id"].as_str() != Some(sale.id.as_str()) {
            stats.error(measured, "lookup by voucher_no found another sale".into());
            return;
        }
        let preview = self.api.post("/v1/refunds/preview", Run::refund_body(sale), None);
        if self.call(stats, PREVIEW, measured, preview, 200).await.is_none() {
            return;
        }
        let Some(id) = self.create_refund(stats, measured, sale).await else { return };
        if self.call(stats, READ, measured, self.api.get(&format!("/v1/refunds/{id}")), 200).await.is_none() {
            return;
        }
        if measured {
            stats.flows.saturating_record(micros(started.elapsed()));
        }
    }

    async fn client(self: Arc<Self>, workload: Workload) -> Stats {
        let mut stats = Stats::new();
        let healthz = format!("{}/healthz", self.api.base);
        while Instant::now() < self.stop_at {
            let started = Instant::now();
            let measured = started >= self.measure_from;
            match workload {
                Workload::Counter => self.counter_flow(&mut stats, measured).await,
                Workload::Create => {
                    let sale = self.pick_sale();
                    if self.create_refund(&mut stats, measured, sale).await.is_some() && measured {
                        stats.flows.saturating_record(micros(started.elapsed()));
                    }
                }
                Workload::Healthz => {
                    let req = self.api.http.get(&healthz);
                    if self.call(&mut stats, HEALTHZ, measured, req, 200).await.is_some() && measured {
                        stats.flows.saturating_record(micros(started.elapsed()));
                    }
                }
            }
        }
        stats
    }
}

/// Runs `workload` with `clients` clients: `warmup` unmeasured, then
/// `seconds` measured.
async fn drive(
    api: &Api,
    sales: &Arc<Vec<Sale>>,
    workload: Workload,
    clients: usize,
    (warmup, seconds): (f64, f64),
    server_pid: Option<u32>,
) -> MixResult {
    let now = Instant::now();
    let measure_from = now + Duration::from_secs_f64(warmup);
    let run = Arc::new(Run {
        api: api.clone(),
        sales: Arc::clone(sales),
        next_sale: AtomicUsize::new(0),
        next_key: AtomicU64::new(0),
        run_id: uuid::Uuid::new_v4().simple().to_string()[..12].to_owned(),
        measure_from,
        stop_at: measure_from + Duration::from_secs_f64(seconds),
        answered: AtomicU64::new(0),
    });
    let total_ms = ((warmup + seconds) * 1000.0) as u64;
    let bar = progress(total_ms, "{msg:>24} [{bar:40}] {elapsed}");
    bar.set_message(workload.name());
    let ticker = {
        let (run, bar) = (Arc::clone(&run), bar.clone());
        tokio::spawn(async move {
            let mut last = (Instant::now(), 0u64);
            loop {
                tokio::time::sleep(Duration::from_millis(250)).await;
                let n = run.answered.load(Ordering::Relaxed);
                let rate = (n - last.1) as f64 / last.0.elapsed().as_secs_f64();
                last = (Instant::now(), n);
                bar.set_position(micros(now.elapsed()) / 1000);
                let phase = if Instant::now() < run.measure_from { "warm-up" } else { "measuring" };
                bar.set_message(format!("{} {phase} {rate:.0} req/s", workload.name()));
            }
        })
    };
    let cpu = server_pid.map(|pid| {
        let (from, to) = (run.measure_from, run.stop_at);
        tokio::spawn(async move {
            tokio::time::sleep_until(from.into()).await;
            let start = crate::cpu::sample(pid)?;
            tokio::time::sleep_until(to.into()).await;
            Some(CpuUse::between(&start, &crate::cpu::sample(pid)?))
        })
    });
    let commits = {
        let (api, from, to) = (api.clone(), run.measure_from, run.stop_at);
        tokio::spawn(async move {
            tokio::time::sleep_until(from.into()).await;
            let start = crate::commits::sample(&api).await?;
            tokio::time::sleep_until(to.into()).await;
            let end = crate::commits::sample(&api).await?;
            crate::commits::Commits::between(&start, &end, to.duration_since(from).as_secs_f64())
        })
    };
    let handles: Vec<_> = (0..clients).map(|_| tokio::spawn(Arc::clone(&run).client(workload))).collect();
    let mut stats = Stats::new();
    for h in handles {
        if let Ok(s) = h.await {
            stats.merge(s);
        }
    }
    ticker.abort();
    bar.finish_and_clear();
    let cpu = match cpu {
        Some(sampler) => sampler.await.ok().flatten(),
        None => None,
    };
    let commits = commits.await.ok().flatten();
    let end = stats.last_answer.unwrap_or_else(Instant::now).max(measure_from + Duration::from_millis(1));
    let measured_s = end.duration_since(measure_from).as_secs_f64();
    MixResult {
        mix: workload.name().into(),
        seconds: measured_s,
        requests_per_s: stats.requests.len() as f64 / measured_s,
        flows_per_s: stats.flows.len() as f64 / measured_s,
        requests: Latency::of(&stats.requests),
        flows: Latency::of(&stats.flows),
        endpoints: ENDPOINTS
            .iter()
            .zip(&stats.endpoints)
            .filter(|(_, h)| !h.is_empty())
            .map(|(name, h)| ((*name).to_owned(), Latency::of(h)))
            .collect(),
        errors: stats.errors,
        warmup_errors: stats.warmup_errors,
        exhausted: stats.exhausted,
        refunds_made: stats.refunds_made,
        time_to_all_final_s: None,
        cpu,
        commits,
    }
}

fn check(options: &LoadOptions) -> anyhow::Result<()> {
    if options.setup.sales == 0 || options.setup.clients == 0 {
        bail!("--sales and --clients must be at least 1");
    }
    let positive = |x: f64| x.is_finite() && x > 0.0;
    let not_negative = |x: f64| x.is_finite() && x >= 0.0;
    if !positive(options.seconds) || !positive(options.ceiling_seconds) || !positive(options.final_timeout_seconds) {
        bail!("--seconds, --ceiling-seconds and --final-timeout-seconds must be positive");
    }
    if !not_negative(options.setup.warmup_seconds) {
        bail!("--warmup-seconds must not be negative");
    }
    Ok(())
}

/// Runs the benchmark; writes the report unless `no_report`.
pub fn run(options: LoadOptions) -> anyhow::Result<LoadReport> {
    check(&options)?;
    let binary = resolve_binary(options.refundry.as_deref())?;
    let db = Database::fresh(options.setup.db, options.setup.postgres_url.as_deref())?;
    let refundry = Refundry::new(
        binary,
        db.url(),
        db.dir(),
        &[
            ("REFUNDRY_SANDBOX__LATENCY_MS", "0".into()),
            ("REFUNDRY_LOG_LEVEL", "warn".into()),
            // the load comes from one address on purpose
            ("REFUNDRY_RATE_LIMIT_PER_SECOND", "0".into()),
            // PostgreSQL instances must be given the keys that seal secrets
            ("REFUNDRY_ENCRYPTION_KEYS", format!("[\"bench:{}\"]", "5a".repeat(32))),
        ],
    );
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let driven = runtime.block_on(serve_and_drive(&options, &refundry, &db))?;
    drop(runtime);

    say(format!("measuring the durable-commit ceiling ({} s)", options.ceiling_seconds));
    let (commit_ceiling_per_s, commit_ceiling_how) =
        db.commit_ceiling(options.setup.clients, options.ceiling_seconds)?;

    let mut report = LoadReport {
        database: options.setup.db,
        mixes: driven.mixes,
        http_ceiling: driven.http_ceiling,
        sales_refused_as_card_data: driven.refused_as_card_data,
        commit_ceiling_per_s,
        commit_ceiling_how,
        markdown: String::new(),
        report_path: None,
    };
    report.markdown = markdown(&options, &report, &refundry, &db.describe());
    if !options.quiet {
        print!("{}", summary(&report));
    }
    if !options.no_report {
        report::write(&options.report, options.setup.db.label(), &report.markdown)?;
        say(format!("wrote the {} section of {}", options.setup.db.title(), options.report.display()));
        report.report_path = Some(options.report.clone());
    }
    Ok(report)
}

/// What the HTTP part of a run measured.
struct Driven {
    mixes: Vec<MixResult>,
    http_ceiling: MixResult,
    refused_as_card_data: Vec<String>,
}

async fn serve_and_drive(options: &LoadOptions, refundry: &Refundry, db: &Database) -> anyhow::Result<Driven> {
    refundry.migrate()?;
    let key = refundry.create_key("bench")?;
    let http = crate::api::http_client(options.setup.clients)?;
    let mut server = Server::start(refundry.clone(), &http).await?;
    let api = Api::new(http, &server.base, &key);
    api.raise_policy_limits().await?;

    say(format!("loading {} sales with {} clients", options.setup.sales, options.setup.clients));
    let started = Instant::now();
    let loaded =
        crate::api::load_sales(&api, options.setup.sales, options.setup.clients, options.setup.tenders).await?;
    let refused_as_card_data = loaded.refused_as_card_data;
    let sales: Arc<Vec<Sale>> =
        Arc::new(loaded.sales.into_iter().map(|(id, voucher_no)| Sale { id, voucher_no }).collect());
    say(format!("{} sales in {:.1} s", sales.len(), started.elapsed().as_secs_f64()));

    let workloads = match options.mix {
        MixChoice::Counter => vec![Workload::Counter],
        MixChoice::Create => vec![Workload::Create],
        MixChoice::Both => vec![Workload::Counter, Workload::Create],
    };
    let capacity = sales.len() as u64 * (SALE_AMOUNT / REFUND_AMOUNT) as u64;
    let mut made = 0;
    let mut mixes = Vec::new();
    for workload in workloads {
        say(format!(
            "mix {}: {} clients, {} s warm-up, {} s measured",
            workload.name(),
            options.setup.clients,
            options.setup.warmup_seconds,
            options.seconds
        ));
        // halfway through the warm-up, as autovacuum would soon after the
        // first refunds: the measured part runs on plans made for tables
        // that hold refunds
        let refresh = db.statistics_refresh().map(|refresh| {
            let half = Duration::from_secs_f64(options.setup.warmup_seconds / 2.0);
            tokio::spawn(async move {
                tokio::time::sleep(half).await;
                tokio::task::spawn_blocking(refresh).await
            })
        });
        let window = (options.setup.warmup_seconds, options.seconds);
        let mut result = drive(&api, &sales, workload, options.setup.clients, window, server.pid()).await;
        if let Some(refresh) = refresh {
            match refresh.await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(e))) => say(format!("WARNING: could not refresh the planner statistics: {e:#}")),
                Ok(Err(e)) | Err(e) => say(format!("WARNING: the statistics refresh stopped: {e}")),
            }
        }
        let bar = progress(0, "{spinner} {msg} {elapsed}");
        bar.set_message("waiting until every refund is final");
        bar.enable_steady_tick(Duration::from_millis(100));
        let waited = api.wait_all_final(Duration::from_secs_f64(options.final_timeout_seconds)).await?;
        bar.finish_and_clear();
        result.time_to_all_final_s = waited.map(|d| d.as_secs_f64());
        if api.any_refund_in("requires_approval").await? {
            say("WARNING: some refunds wait for approval: the policy limits were not raised");
        }
        made += result.refunds_made;
        if result.exhausted > 0 {
            say(format!(
                "WARNING: {} refunds were refused with refund_exceeds_refundable: the sales ran out; raise --sales",
                result.exhausted
            ));
        }
        mixes.push(result);
    }
    say(format!("{made} refunds made, {:.1} % of what the sales can give back", made as f64 * 100.0 / capacity as f64));

    say(format!(
        "measuring the HTTP ceiling: GET /healthz, {} clients, {} s",
        options.setup.clients, options.ceiling_seconds
    ));
    let warmup = options.setup.warmup_seconds.min(1.0);
    let window = (warmup, options.ceiling_seconds);
    let http_ceiling = drive(&api, &sales, Workload::Healthz, options.setup.clients, window, server.pid()).await;
    server.stop().await?;
    Ok(Driven { mixes, http_ceiling, refused_as_card_data })
}

/// 12345.6 → "12,346".
fn thousands(x: f64) -> String {
    let n = x.round() as i64;
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

fn ms(x: f64) -> String {
    if x >= 100.0 { format!("{x:.0}") } else { format!("{x:.2}") }
}

fn final_time(r: &MixResult) -> String {
    match r.time_to_all_final_s {
        Some(s) => format!("{s:.3} s"),
        None => "not reached".into(),
    }
}

fn errors_cell(r: &MixResult) -> String {
    let n = r.error_count();
    if n == 0 {
        return "0".into();
    }
    let by: Vec<String> = r.errors.iter().map(|(k, v)| format!("{v} × {k}")).collect();
    format!("{n} ({})", by.join(", "))
}

/// The command that repeats this run.
fn reproduce(options: &LoadOptions) -> String {
    let mut cmd = String::from("target/release/refundry-bench load");
    if let Some(path) = &options.refundry {
        let _ = write!(cmd, " --refundry {}", path.display());
    }
    let _ = write!(cmd, " --db {}", options.setup.db.label());
    if let (DbKind::Postgres, Some(url)) = (options.setup.db, &options.setup.postgres_url) {
        let _ = write!(cmd, " --postgres-url '{}'", redact_url(url));
    }
    let mix = match options.mix {
        MixChoice::Counter => "counter",
        MixChoice::Create => "create",
        MixChoice::Both => "both",
    };
    let _ = write!(
        cmd,
        " --sales {} --tenders {} --clients {} --seconds {} --warmup-seconds {} --mix {mix} --ceiling-seconds {}",
        options.setup.sales,
        options.setup.tenders.label(),
        options.setup.clients,
        options.seconds,
        options.setup.warmup_seconds,
        options.ceiling_seconds
    );
    cmd
}

fn markdown(options: &LoadOptions, r: &LoadReport, refundry: &Refundry, database: &str) -> String {
    let mut md = String::new();
    let now = jiff::Timestamp::now().strftime("%Y-%m-%d %H:%M UTC");
    let binary = refundry.binary.display().to_string();
    let build = if binary.contains("/debug/") { " — a debug build: these numbers say little" } else { "" };
    let _ = writeln!(md, "## {}\n", options.setup.db.title());
    let _ = writeln!(md, "Measured {now} by `refundry-bench load`.\n");
    let _ = writeln!(md, "- Machine: {}; client and server share it.", machine::describe());
    let _ = writeln!(
        md,
        "- Server: {} (`{binary}`{build}), sandbox acquirer latency 0 ms, log level warn.",
        refundry.version()
    );
    let _ = writeln!(md, "- Database: {database}.");
    let _ = writeln!(
        md,
        "- Sizes: {} sales of 1,000.00 CNY without items, paid by {}; refunds of 1.00 by amount, round-robin over the \
         sales; {} concurrent clients over one keep-alive HTTP/1.1 connection pool; per mix {} s warm-up (not \
         measured), then {} s measured.",
        options.setup.sales,
        options.setup.tenders.describe(),
        options.setup.clients,
        options.setup.warmup_seconds,
        options.seconds
    );
    let _ = writeln!(
        md,
        "- Mixes: **counter** = `GET /v1/sales?voucher_no=…`, `POST /v1/refunds/preview`, `POST /v1/refunds` \
         (unique Idempotency-Key), `GET /v1/refunds/{{id}}`; **create** = `POST /v1/refunds` only. A flow is one pass \
         through the mix. Latencies are per request, client-side, end to end."
    );
    if r.database == DbKind::Postgres {
        let _ = writeln!(
            md,
            "- Planner statistics: `ANALYZE` of the schema's tables halfway through each warm-up, as autovacuum \
             does within a minute of a table growing; without it the measured part would run on plans made \
             for the empty tables of a schema seconds old."
        );
    }
    let _ = writeln!(
        md,
        "- Time to all-final: from the last answer of the mix until no refund is pending or processing \
         (a cash refund is settled in its request's own transaction; other methods wait for the job runner).\n"
    );
    let _ = writeln!(md, "Reproduce (from the repository root):\n");
    let _ = writeln!(md, "```sh\ncargo build --release -p refundry -p refundry-bench\n{}\n```\n", reproduce(options));
    let _ =
        writeln!(md, "| mix | throughput req/s | flows/s | p50 ms | p99 ms | p99.9 ms | errors | time to all-final |");
    let _ = writeln!(md, "| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: |");
    for m in &r.mixes {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            m.mix,
            thousands(m.requests_per_s),
            thousands(m.flows_per_s),
            ms(m.requests.p50_ms),
            ms(m.requests.p99_ms),
            ms(m.requests.p999_ms),
            errors_cell(m),
            final_time(m)
        );
    }
    let _ = writeln!(md, "\nLatency by request (ms):\n");
    let _ = writeln!(md, "| mix | request | count | p50 | p99 | p99.9 |");
    let _ = writeln!(md, "| --- | --- | ---: | ---: | ---: | ---: |");
    for m in &r.mixes {
        let mut rows = m.endpoints.clone();
        if m.mix == "counter" {
            rows.push(("whole flow (4 requests)".into(), m.flows.clone()));
        }
        for (name, l) in rows {
            let _ = writeln!(
                md,
                "| {} | {name} | {} | {} | {} | {} |",
                m.mix,
                thousands(l.count as f64),
                ms(l.p50_ms),
                ms(l.p99_ms),
                ms(l.p999_ms)
            );
        }
    }
    let h = &r.http_ceiling;
    let _ = writeln!(md, "\nCeilings, measured in the same run on the same machine:\n");
    let _ = writeln!(md, "| ceiling | value | what |");
    let _ = writeln!(md, "| --- | ---: | --- |");
    let _ = writeln!(
        md,
        "| HTTP | {} req/s | `GET /healthz` of the same running server (same axum stack and middleware) by the same {} clients, {} s; p50 {} ms, p99 {} ms |",
        thousands(h.requests_per_s),
        options.setup.clients,
        options.ceiling_seconds,
        ms(h.requests.p50_ms),
        ms(h.requests.p99_ms)
    );
    let _ = writeln!(
        md,
        "| durable commits | {} commits/s | {}, {} s, server stopped |",
        thousands(r.commit_ceiling_per_s),
        r.commit_ceiling_how,
        options.ceiling_seconds
    );
    let _ = writeln!(md, "\n| mix | req/s ÷ HTTP ceiling | refunds/s ÷ commit ceiling |");
    let _ = writeln!(md, "| --- | ---: | ---: |");
    for m in &r.mixes {
        let _ = writeln!(
            md,
            "| {} | {} | {} |",
            m.mix,
            ratio(m.requests_per_s, h.requests_per_s),
            ratio(m.flows_per_s, r.commit_ceiling_per_s)
        );
    }
    let _ = writeln!(
        md,
        "\nEach flow of either mix creates one refund, so refunds/s = flows/s. The server commits many writes in one \
         transaction (group commit), so refunds/s can exceed the one-row-per-commit ceiling."
    );
    cpu_markdown(&mut md, r);
    commits_markdown(&mut md, r);
    let warmup_errors: u64 = r.mixes.iter().flat_map(|m| m.warmup_errors.values()).sum();
    let exhausted: u64 = r.mixes.iter().map(|m| m.exhausted).sum();
    if warmup_errors > 0 {
        let _ = writeln!(md, "\nErrors during warm-up (not in the table): {warmup_errors}.");
    }
    if !r.sales_refused_as_card_data.is_empty() {
        let _ = writeln!(
            md,
            "\n{} of the {} sales were left out: the server answers `422 sensitive_card_data` when their id is sent in \
             a refund body (its card-number guard takes a digit run in its own id for a card number).",
            r.sales_refused_as_card_data.len(),
            options.setup.sales
        );
    }
    if exhausted > 0 {
        let _ = writeln!(
            md,
            "\n**The sales ran out**: {exhausted} refunds were refused with `refund_exceeds_refundable`; run with more --sales."
        );
    }
    md
}

/// Where the CPU went, per mix and for the HTTP ceiling: cores busy, and
/// CPU µs per refund (per request for the ceiling).
fn cpu_markdown(md: &mut String, r: &LoadReport) {
    let runs: Vec<(&MixResult, &CpuUse, f64)> = r
        .mixes
        .iter()
        .chain(std::iter::once(&r.http_ceiling))
        .filter_map(|m| {
            let rate = if m.mix == "http ceiling" { m.requests_per_s } else { m.flows_per_s };
            m.cpu.as_ref().map(|c| (m, c, rate))
        })
        .collect();
    let Some((_, first, _)) = runs.first() else { return };
    let _ = writeln!(
        md,
        "\nWhere the CPU went in each measured window (from `/proc`; the machine has {} cores, shared by the load \
         generator and the server; the server's HTTP and app threads include SQLite's readers, its writer threads \
         SQLite's WAL checkpointer): cores busy on average, and CPU µs per refund (per request for the HTTP \
         ceiling).\n",
        first.cores
    );
    let _ = write!(md, "| part |");
    for (m, _, _) in &runs {
        let _ = write!(md, " {} cores | {} µs each |", m.mix, m.mix);
    }
    let _ = writeln!(md);
    let _ = writeln!(md, "| --- |{}", " ---: | ---: |".repeat(runs.len()));
    for (i, part) in crate::cpu::PARTS.iter().enumerate() {
        if i == crate::cpu::POSTGRES && r.database != DbKind::Postgres {
            continue;
        }
        let _ = write!(md, "| {part} |");
        for (_, c, rate) in &runs {
            let _ = write!(md, " {:.2} | {} |", c.busy[i], thousands(c.micros_per(i, *rate)));
        }
        let _ = writeln!(md);
    }
    let _ = write!(md, "| **all** |");
    for (_, c, rate) in &runs {
        let _ =
            write!(md, " **{:.2}** (idle {:.2}) | **{}** |", c.total(), c.idle(), thousands(c.total_micros_per(*rate)));
    }
    let _ = writeln!(md);
    let _ = writeln!(
        md,
        "\nAt these costs per refund, the machine's {} cores would be all busy at about: {}.",
        first.cores,
        runs.iter()
            .filter(|(m, _, _)| m.mix != "http ceiling")
            .map(|(m, c, rate)| format!("{} {} refunds/s", m.mix, thousands(c.bound(*rate))))
            .collect::<Vec<_>>()
            .join(", ")
    );
}

/// The store's group commits per mix, as its own metrics counted them.
fn commits_markdown(md: &mut String, r: &LoadReport) {
    let runs: Vec<(&MixResult, &crate::commits::Commits)> =
        r.mixes.iter().filter_map(|m| m.commits.as_ref().map(|c| (m, c))).collect();
    if runs.is_empty() {
        return;
    }
    let sqlite = r.database == DbKind::Sqlite;
    let _ = writeln!(
        md,
        "\nGroup commits in each measured window, from the server's `/metrics` (`refundry_store_batch_seconds`, \
         `refundry_store_commit_batch_size`{}): writes of every kind per batch, and each batch's time from its \
         first statement to its durable commit.{}\n",
        if sqlite { ", `refundry_store_wal_restart_seconds`, `refundry_store_checkpoint_seconds`" } else { "" },
        if sqlite {
            " A WAL restart is the writer's pause, between two batches, to finish copying the WAL into the database \
             file so that the WAL can start over; every write queued meanwhile waits for it. Checkpoints copy the \
             WAL into the database file on a thread of their own, beside the writer."
        } else {
            ""
        }
    );
    let restart_cols =
        if sqlite { " WAL restarts/s | ms per restart | checkpoints/s | ms per checkpoint |" } else { "" };
    let _ = writeln!(md, "| mix | batches/s | writes per batch | ms per batch |{restart_cols}");
    let _ = writeln!(md, "| --- | ---: | ---: | ---: |{}", if sqlite { " ---: | ---: | ---: | ---: |" } else { "" });
    for (m, c) in runs {
        let _ = write!(
            md,
            "| {} | {} | {:.1} | {:.2} |",
            m.mix,
            thousands(c.batches_per_s),
            c.writes_per_batch,
            c.ms_per_batch
        );
        if sqlite {
            let _ = write!(
                md,
                " {:.1} | {:.1} | {:.1} | {:.1} |",
                c.restarts_per_s, c.ms_per_restart, c.checkpoints_per_s, c.ms_per_checkpoint
            );
        }
        let _ = writeln!(md);
    }
}

fn ratio(x: f64, of: f64) -> String {
    let r = if of > 0.0 { x / of } else { 0.0 };
    if r >= 0.1 { format!("{r:.2}") } else { format!("{r:.4}") }
}

/// The summary table printed on stdout.
pub fn summary(r: &LoadReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n{:<14} {:>10} {:>9} {:>8} {:>8} {:>9} {:>7} {:>10}",
        "mix", "req/s", "flows/s", "p50 ms", "p99 ms", "p99.9 ms", "errors", "all-final"
    );
    for m in r.mixes.iter().chain(std::iter::once(&r.http_ceiling)) {
        let fin = if m.mix == "http ceiling" { "-".into() } else { final_time(m) };
        let _ = writeln!(
            out,
            "{:<14} {:>10} {:>9} {:>8} {:>8} {:>9} {:>7} {:>10}",
            m.mix,
            thousands(m.requests_per_s),
            thousands(m.flows_per_s),
            ms(m.requests.p50_ms),
            ms(m.requests.p99_ms),
            ms(m.requests.p999_ms),
            m.error_count(),
            fin
        );
    }
    let _ = writeln!(out, "commit ceiling: {} commits/s ({})", thousands(r.commit_ceiling_per_s), r.commit_ceiling_how);
    for m in &r.mixes {
        let _ = writeln!(
            out,
            "{}: req/s ÷ HTTP ceiling {}, refunds/s ÷ commit ceiling {}",
            m.mix,
            ratio(m.requests_per_s, r.http_ceiling.requests_per_s),
            ratio(m.flows_per_s, r.commit_ceiling_per_s)
        );
        for (k, v) in &m.errors {
            let _ = writeln!(out, "  error {k}: {v}");
        }
        if let Some(c) = &m.cpu {
            let parts: Vec<String> = crate::cpu::PARTS
                .iter()
                .enumerate()
                .filter(|(i, _)| c.busy[*i] >= 0.005)
                .map(|(i, part)| format!("{part} {:.2} ({} µs)", c.busy[i], thousands(c.micros_per(i, m.flows_per_s))))
                .collect();
            let _ = writeln!(
                out,
                "  CPU: {:.2} of {} cores busy, per refund: {}; all busy at ~{} refunds/s",
                c.total(),
                c.cores,
                parts.join(", "),
                thousands(c.bound(m.flows_per_s))
            );
        }
        if let Some(c) = &m.commits {
            let mut line = format!(
                "  commits: {} batches/s of {:.1} writes, {:.2} ms each",
                thousands(c.batches_per_s),
                c.writes_per_batch,
                c.ms_per_batch
            );
            if c.restarts_per_s > 0.0 {
                line += &format!("; WAL restarts {:.1}/s, {:.1} ms each", c.restarts_per_s, c.ms_per_restart);
            }
            if c.checkpoints_per_s > 0.0 {
                line += &format!("; checkpoints {:.1}/s, {:.1} ms each", c.checkpoints_per_s, c.ms_per_checkpoint);
            }
            let _ = writeln!(out, "{line}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_grouped() {
        assert_eq!(thousands(1234567.4), "1,234,567");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(0.0), "0");
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let o = LoadOptions::default();
        assert_eq!((o.setup.sales, o.setup.clients, o.seconds, o.setup.warmup_seconds), (2000, 64, 20.0, 3.0));
        assert_eq!(o.mix, MixChoice::Both);
        assert_eq!(o.report, PathBuf::from("BENCHMARKS.md"));
    }
}
