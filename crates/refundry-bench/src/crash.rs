//! `refundry-bench crash`: the crash suite.
//!
//! Concurrent clients create refunds, each with its own Idempotency-Key (and
//! re-send some keys, some twice at once), while a killer SIGKILLs `refundry
//! serve` at random moments and starts it again on the same database and
//! port. Clients retry an unanswered request with the same key and body, as
//! terminals do. Every acknowledged refund (201) is recorded. Once the last
//! restart is done and every refund is final, the suite checks through the
//! API and directly in the database that:
//!
//! - every acknowledged refund exists with the same id, sale and amount
//!   (else it was *lost*);
//! - no refund exists that no client was told about, no key made a second
//!   refund, and the server's idempotency records map each key to the
//!   refund its client was given (else it was *doubled*);
//! - no sale is refunded beyond its capture;
//! - no outbox job is left ready or running, and none is dead;
//! - each refund has one `refund.requested` event, one `refund.sent` event
//!   per attempt, at most one `refund.succeeded`;
//! - `refundry audit verify` exits 0.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

use crate::api::{Answer, Api};
use crate::db::{self, Database, DbKind};
use crate::say;
use crate::server::{Refundry, Server, resolve_binary};

/// Options of `refundry-bench crash`.
#[derive(Debug, Clone, clap::Args)]
pub struct CrashOptions {
    /// The refundry binary. [default: `refundry` beside this program, e.g. target/release/refundry]
    #[arg(long, value_name = "PATH")]
    pub refundry: Option<PathBuf>,
    /// Database: a fresh SQLite file in a temp dir, or a fresh schema bench_<uuid> in PostgreSQL.
    #[arg(long, value_enum, default_value_t = DbKind::Sqlite)]
    pub db: DbKind,
    /// PostgreSQL URL for --db postgres, e.g. postgres://postgres@127.0.0.1:5432/test.
    #[arg(long, value_name = "URL")]
    pub postgres_url: Option<String>,
    /// Sales loaded first, each 1,000.00 CNY, every other one by card (its refunds go through the outbox to the
    /// sandbox acquirer), the rest in cash (settled in the request's transaction). Refunds are of 1.00 to 50.00; half
    /// of them go to the first tenth of the sales, which run out, so some are refused.
    #[arg(long, default_value_t = 500)]
    pub sales: usize,
    /// Concurrent clients creating refunds.
    #[arg(long, default_value_t = 16)]
    pub clients: usize,
    /// How many times the server is SIGKILLed and started again.
    #[arg(long, default_value_t = 20)]
    pub kills: u32,
    /// The clients go on for at least this many seconds (and until the last restart is done).
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
    /// Shortest time between kills (from the server being ready), in ms.
    #[arg(long, default_value_t = 200)]
    pub min_interval_ms: u64,
    /// Longest time between kills, in ms.
    #[arg(long, default_value_t = 1500)]
    pub max_interval_ms: u64,
    /// Share of requests (in %) that re-send a key already answered, with the same body.
    #[arg(long, default_value_t = 10)]
    pub resend_percent: u32,
    /// Share of new keys (in %) sent twice at the same time.
    #[arg(long, default_value_t = 5)]
    pub duplicate_percent: u32,
    /// With --db postgres: a command that restarts PostgreSQL, run once mid-load, e.g.
    /// "pg_ctlcluster --skip-systemctl-redirect 15 main restart". Without it that step is skipped.
    #[arg(long, value_name = "COMMAND")]
    pub restart_postgres_cmd: Option<String>,
    /// The server's job lease (jobs.lease_secs): a job that was running when the server was killed is taken up again
    /// after this long.
    #[arg(long, default_value_t = 3)]
    pub lease_secs: u64,
    /// The sandbox acquirer's latency, in ms (so kills also land while refunds are being sent).
    #[arg(long, default_value_t = 5)]
    pub sandbox_latency_ms: u64,
    /// Give up waiting for refunds to reach a final status after this many seconds.
    #[arg(long, default_value_t = 180.0)]
    pub final_timeout_seconds: f64,
    /// Seed for the random choices (kill intervals, sales, amounts); printed when not given.
    #[arg(long)]
    pub seed: Option<u64>,
}

impl Default for CrashOptions {
    fn default() -> Self {
        #[derive(Parser)]
        struct Defaults {
            #[command(flatten)]
            options: CrashOptions,
        }
        Defaults::parse_from(["refundry-bench"]).options
    }
}

/// What a crash run found.
#[derive(Debug, Clone, Default)]
pub struct CrashReport {
    /// Kills after which the server came back and answered /readyz.
    pub kills_survived: u32,
    /// Acknowledged refunds (201 answers), each checked through the API and in the database.
    pub acknowledged: usize,
    /// Acknowledged refunds missing, or changed, afterwards.
    pub lost: usize,
    /// Refunds beyond one per key: in the database without an acknowledgement, a second id for one key, a
    /// second `refund.requested`.
    pub doubled: usize,
    /// Requests refused with refund_exceeds_refundable.
    pub refused: u64,
    /// HTTP requests sent, retries included.
    pub requests: u64,
    /// Requests sent again after no answer, a 503 or a 409 in-progress.
    pub retries: u64,
    /// Answered keys sent again.
    pub resent: u64,
    /// New keys sent twice at once.
    pub duplicates: u64,
    /// Sales left out because the server refuses their id in a refund body
    /// as card data (a false positive of its card-number guard).
    pub sales_refused_as_card_data: Vec<String>,
    /// What happened to the PostgreSQL restart step.
    pub postgres_restart: String,
    pub seed: u64,
    /// Every broken invariant, in words. Empty when the run passed.
    pub violations: Vec<String>,
    doubled_keys: BTreeSet<String>,
}

impl CrashReport {
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }

    /// "kills survived: N, acknowledged refunds checked: M, lost: 0, doubled: 0"
    pub fn line(&self) -> String {
        format!(
            "kills survived: {}, acknowledged refunds checked: {}, lost: {}, doubled: {}",
            self.kills_survived, self.acknowledged, self.lost, self.doubled
        )
    }
}

#[derive(Debug, Clone)]
struct Ack {
    key: String,
    id: String,
    sale_id: String,
    amount: i64,
}

impl ClientLog {
    /// An answer no invariant allows (a 500, a 422 other than "used up", a
    /// replay that is not the first answer), counted by kind.
    fn unexpected(&mut self, what: &str, key: &str, answer: &Answer, at: f64) {
        let kind = format!("{what} was answered {} {}", answer.status, answer.code());
        let example = || format!("key {key}: {}", String::from_utf8_lossy(&answer.body));
        let seen =
            self.unexpected.entry(kind).or_insert_with(|| Unexpected { example: example(), ..Unexpected::new(at) });
        seen.count += 1;
        seen.first = seen.first.min(at);
        seen.last = seen.last.max(at);
    }
}

/// Unexpected answers of one kind: how many, the first, and when (seconds
/// into the load).
struct Unexpected {
    count: u64,
    example: String,
    first: f64,
    last: f64,
}

impl Unexpected {
    fn new(at: f64) -> Unexpected {
        Unexpected { count: 0, example: String::new(), first: at, last: at }
    }

    fn merge(&mut self, other: Unexpected) {
        self.count += other.count;
        self.first = self.first.min(other.first);
        self.last = self.last.max(other.last);
    }
}

#[derive(Default)]
struct ClientLog {
    acks: Vec<Ack>,
    refused: u64,
    unanswered: Vec<String>,
    violations: Vec<String>,
    unexpected: BTreeMap<String, Unexpected>,
    /// New keys answered neither 201 nor "used up": (key, sale, amount, body),
    /// sent once more after the load to learn whether a refund was made.
    uncertain: Vec<(String, String, i64, Vec<u8>)>,
    doubled: BTreeSet<String>,
    resent: u64,
    duplicates: u64,
}

struct Shared {
    api: Api,
    sales: Vec<String>,
    run_id: String,
    /// When the clients started.
    started: Instant,
    stop: AtomicBool,
    /// Set when the server is gone for good: unanswered requests give up.
    abandon: AtomicBool,
    requests: AtomicU64,
    retries: AtomicU64,
    resend_percent: u32,
    duplicate_percent: u32,
}

impl Shared {
    /// Sends until there is an answer other than "no answer", 503 or 409
    /// in-progress, with the same key and body each time (as a terminal
    /// does). `None` only when the run is abandoned.
    async fn send_until_answered(&self, key: &str, body: &[u8]) -> Option<Answer> {
        let mut pause = Duration::from_millis(10);
        loop {
            if self.abandon.load(Ordering::Relaxed) {
                return None;
            }
            self.requests.fetch_add(1, Ordering::Relaxed);
            match Api::send(self.api.post("/v1/refunds", body.to_vec(), Some(key))).await {
                Ok(a) if a.status == 503 => {}
                Ok(a) if a.status == 409 && a.code() == "idempotency_request_in_progress" => {}
                Ok(a) => return Some(a),
                Err(_) => {}
            }
            self.retries.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(200));
        }
    }

    async fn client(self: Arc<Self>, index: usize, seed: u64) -> ClientLog {
        let mut rng = StdRng::seed_from_u64(seed.wrapping_add(index as u64 + 1));
        let mut log = ClientLog::default();
        let mut sent: Vec<(Ack, Vec<u8>)> = Vec::new();
        let mut n = 0u64;
        while !self.stop.load(Ordering::Relaxed) {
            let roll = rng.random_range(0..100);
            if roll < self.resend_percent && !sent.is_empty() {
                let (ack, body) = sent[rng.random_range(0..sent.len())].clone();
                log.resent += 1;
                self.resend(&ack, &body, &mut log).await;
                continue;
            }
            n += 1;
            let key = format!("crash-{}-{index}-{n}", self.run_id);
            // half the requests go to the first tenth of the sales, which
            // run out early: refusals race with kills there, while the
            // other sales keep taking refunds to the end
            let hot = (self.sales.len() / 10).max(1);
            let range = if rng.random_bool(0.5) { 0..hot } else { 0..self.sales.len() };
            let sale_id = self.sales[rng.random_range(range)].clone();
            let amount: i64 = rng.random_range(100..=5000);
            let body = serde_json::to_vec(&json!({"sale_id": sale_id, "amount": amount, "reason": "other"}))
                .unwrap_or_default();
            let twice = rng.random_range(0..100) < self.duplicate_percent;
            let answers = if twice {
                log.duplicates += 1;
                let (a, b) = tokio::join!(self.send_until_answered(&key, &body), self.send_until_answered(&key, &body));
                vec![a, b]
            } else {
                vec![self.send_until_answered(&key, &body).await]
            };
            let mut ids = BTreeSet::new();
            let mut statuses = BTreeSet::new();
            let mut errored = false;
            for answer in answers {
                let Some(answer) = answer else {
                    log.unanswered.push(key.clone());
                    continue;
                };
                statuses.insert(answer.status);
                match answer.status {
                    201 => {
                        let refund = answer.json();
                        let id = refund["id"].as_str().unwrap_or_default().to_owned();
                        if refund["amount"].as_i64() != Some(amount) || refund["sale_id"].as_str() != Some(&sale_id) {
                            log.violations
                                .push(format!("key {key}: the 201 answer {refund} is not the refund asked for"));
                        }
                        ids.insert(id);
                    }
                    422 if answer.code() == "refund_exceeds_refundable" => log.refused += 1,
                    _ => {
                        log.unexpected("a new key", &key, &answer, self.started.elapsed().as_secs_f64());
                        errored = true;
                    }
                }
            }
            if ids.len() > 1 {
                log.doubled.insert(key.clone());
                log.violations.push(format!("key {key} sent twice at once made refunds {ids:?}"));
            }
            if statuses.len() > 1 {
                log.violations.push(format!("key {key} sent twice at once was answered {statuses:?}"));
            }
            if errored && ids.is_empty() {
                log.uncertain.push((key.clone(), sale_id.clone(), amount, body.clone()));
            }
            if let Some(id) = ids.into_iter().next() {
                let ack = Ack { key, id, sale_id, amount };
                log.acks.push(ack.clone());
                sent.push((ack, body));
            }
        }
        log
    }

    /// An answered key sent again with the same body must replay the same refund.
    async fn resend(&self, ack: &Ack, body: &[u8], log: &mut ClientLog) {
        let Some(answer) = self.send_until_answered(&ack.key, body).await else { return };
        let id = answer.json()["id"].as_str().unwrap_or_default().to_owned();
        if answer.status == 201 && id == ack.id {
            return;
        }
        if answer.status == 201 {
            log.doubled.insert(ack.key.clone());
            log.violations.push(format!("key {} (refund {}) sent again made refund {id}", ack.key, ack.id));
        } else {
            log.unexpected("an answered key sent again", &ack.key, &answer, self.started.elapsed().as_secs_f64());
        }
    }
}

/// Kills and restarts the server `kills` times at random intervals; once
/// mid-way restarts PostgreSQL when asked to. Answers the kills survived
/// and what happened to the PostgreSQL step.
async fn killer(
    server: &mut Server,
    api: &Api,
    options: &CrashOptions,
    rng: &mut StdRng,
    survived: &mut u32,
    violations: &mut Vec<String>,
    load_started: Instant,
) -> anyhow::Result<String> {
    let http = &api.http;
    let mut pg_note = match (options.db, &options.restart_postgres_cmd) {
        (DbKind::Sqlite, _) => "not applicable (SQLite)".to_owned(),
        (DbKind::Postgres, None) => "skipped: no --restart-postgres-cmd given".to_owned(),
        (DbKind::Postgres, Some(_)) => "not reached (no kills)".to_owned(),
    };
    let mid = options.kills.div_ceil(2).max(1);
    let (low, high) = (options.min_interval_ms, options.max_interval_ms.max(options.min_interval_ms));
    for k in 1..=options.kills {
        tokio::time::sleep(Duration::from_millis(rng.random_range(low..=high))).await;
        if k == mid
            && options.db == DbKind::Postgres
            && let Some(cmd) = options.restart_postgres_cmd.clone()
        {
            say(format!("restarting PostgreSQL {:.1} s into the load: {cmd}", load_started.elapsed().as_secs_f64()));
            let started = Instant::now();
            let status =
                tokio::task::spawn_blocking(move || std::process::Command::new("sh").arg("-c").arg(cmd).status())
                    .await?
                    .context("cannot run --restart-postgres-cmd")?;
            anyhow::ensure!(status.success(), "--restart-postgres-cmd failed: {status}");
            // the server should find the database again by itself: probe a
            // write (a sale no refund uses) until one is made
            let mut probe = 0u32;
            let mut last;
            pg_note = loop {
                probe += 1;
                match api.create_sale(&format!("probe-{probe}"), None).await {
                    Ok(_) => {
                        break format!(
                            "done: PostgreSQL restarted; the server made a write again {:.1} s after the restart began",
                            started.elapsed().as_secs_f64()
                        );
                    }
                    Err(e) => last = format!("{e:#}"),
                }
                if started.elapsed() > Duration::from_secs(30) {
                    let note = format!(
                        "done, but the server made no write in the 30 s after PostgreSQL restarted (last answer: {last}); \
                         it was then killed and restarted"
                    );
                    violations.push(format!("after a PostgreSQL restart the server did not recover by itself: {note}"));
                    break note;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            };
            say(&pg_note);
        }
        server.kill()?;
        let down = Instant::now();
        server.restart(http).await.with_context(|| format!("the server did not come back after kill {k}"))?;
        *survived += 1;
        say(format!(
            "kill {k}/{} {:.1} s into the load: SIGKILL, ready again after {:.2} s",
            options.kills,
            down.duration_since(load_started).as_secs_f64(),
            down.elapsed().as_secs_f64()
        ));
    }
    Ok(pg_note)
}

/// What the HTTP part of the run left for the database checks.
struct Exercised {
    acks: Vec<Ack>,
    unanswered: Vec<String>,
}

/// Runs the crash suite. `Err` when the run itself could not be carried out
/// (no binary, the server did not start); broken invariants are in
/// `CrashReport::violations`.
pub fn run(options: CrashOptions) -> anyhow::Result<CrashReport> {
    anyhow::ensure!(options.sales > 0 && options.clients > 0, "--sales and --clients must be at least 1");
    anyhow::ensure!(
        options.seconds.is_finite() && options.seconds >= 0.0,
        "--seconds must be a number of seconds, not negative"
    );
    anyhow::ensure!(
        options.final_timeout_seconds.is_finite() && options.final_timeout_seconds > 0.0,
        "--final-timeout-seconds must be positive"
    );
    let binary = resolve_binary(options.refundry.as_deref())?;
    let db = Database::fresh(options.db, options.postgres_url.as_deref())?;
    let seed = options.seed.unwrap_or_else(rand::random);
    say(format!("crash suite on {}, seed {seed}", db.describe()));
    let refundry = Refundry::new(
        binary,
        db.url(),
        db.dir(),
        &[
            ("REFUNDRY_SANDBOX__LATENCY_MS", options.sandbox_latency_ms.to_string()),
            ("REFUNDRY_LOG_LEVEL", "warn".into()),
            // the load comes from one address on purpose
            ("REFUNDRY_RATE_LIMIT_PER_SECOND", "0".into()),
            // PostgreSQL instances must be given the keys that seal secrets
            ("REFUNDRY_ENCRYPTION_KEYS", format!("[\"bench:{}\"]", "5a".repeat(32))),
            ("REFUNDRY_JOBS__LEASE_SECS", options.lease_secs.to_string()),
        ],
    );
    let mut report = CrashReport { seed, ..CrashReport::default() };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let exercised = runtime.block_on(exercise(&options, &refundry, &mut report))?;
    drop(runtime);

    let mut lost = BTreeSet::new();
    let mut doubled = std::mem::take(&mut report.doubled_keys);
    check_database(&db, &exercised, &mut report.violations, &mut lost, &mut doubled)?;
    let (ok, said) = refundry.audit_verify()?;
    if !ok {
        report.violations.push(format!("refundry audit verify failed: {said}"));
    }
    report.acknowledged = exercised.acks.len();
    report.lost = lost.len();
    report.doubled = doubled.len();
    Ok(report)
}

async fn exercise(options: &CrashOptions, refundry: &Refundry, report: &mut CrashReport) -> anyhow::Result<Exercised> {
    refundry.migrate()?;
    let key = refundry.create_key("crash")?;
    let http = crate::api::http_client(options.clients)?;
    let mut server = Server::start(refundry.clone(), &http).await?;
    let api = Api::new(http.clone(), &server.base, &key);
    api.raise_policy_limits().await?;
    let loaded = crate::api::load_sales(&api, options.sales, options.clients, crate::api::Tenders::Mixed).await?;
    report.sales_refused_as_card_data = loaded.refused_as_card_data;
    let sales: Vec<String> = loaded.sales.into_iter().map(|(id, _)| id).collect();
    say(format!(
        "{} sales loaded; {} clients create refunds while the server is killed {} times",
        sales.len(),
        options.clients,
        options.kills
    ));

    let shared = Arc::new(Shared {
        api: api.clone(),
        sales,
        run_id: uuid::Uuid::new_v4().simple().to_string()[..8].to_owned(),
        started: Instant::now(),
        stop: AtomicBool::new(false),
        abandon: AtomicBool::new(false),
        requests: AtomicU64::new(0),
        retries: AtomicU64::new(0),
        resend_percent: options.resend_percent,
        duplicate_percent: options.duplicate_percent,
    });
    let started = shared.started;
    let clients: Vec<_> =
        (0..options.clients).map(|i| tokio::spawn(Arc::clone(&shared).client(i, report.seed))).collect();

    let mut rng = StdRng::seed_from_u64(report.seed);
    let killed =
        killer(&mut server, &api, options, &mut rng, &mut report.kills_survived, &mut report.violations, started).await;
    if killed.is_ok() {
        let rest = Duration::from_secs_f64(options.seconds).saturating_sub(started.elapsed());
        tokio::time::sleep(rest).await;
    } else {
        shared.abandon.store(true, Ordering::Relaxed);
    }
    shared.stop.store(true, Ordering::Relaxed);
    // in-flight requests finish (they retry until answered); a server gone
    // for good makes them give up after a minute
    let abandon = {
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(60)).await;
            shared.abandon.store(true, Ordering::Relaxed);
        })
    };
    let mut logs = Vec::new();
    for c in clients {
        logs.push(c.await.context("a client task panicked")?);
    }
    abandon.abort();
    report.postgres_restart = killed?;
    report.requests = shared.requests.load(Ordering::Relaxed);
    report.retries = shared.retries.load(Ordering::Relaxed);

    let mut acks = Vec::new();
    let mut unanswered = Vec::new();
    let mut unexpected: BTreeMap<String, Unexpected> = BTreeMap::new();
    let mut uncertain = Vec::new();
    for log in logs {
        uncertain.extend(log.uncertain);
        for (kind, seen) in log.unexpected {
            match unexpected.get_mut(&kind) {
                Some(all) => all.merge(seen),
                None => {
                    unexpected.insert(kind, seen);
                }
            }
        }
        acks.extend(log.acks);
        unanswered.extend(log.unanswered);
        report.violations.extend(log.violations);
        report.doubled_keys.extend(log.doubled);
        report.refused += log.refused;
        report.resent += log.resent;
        report.duplicates += log.duplicates;
    }
    for (kind, seen) in unexpected {
        report.violations.push(format!(
            "{} × {kind}, {:.1} s to {:.1} s into the load (first: {})",
            seen.count, seen.first, seen.last, seen.example
        ));
    }
    if !unanswered.is_empty() {
        report.violations.push(format!("{} requests never got an answer: {:?}", unanswered.len(), unanswered));
    }
    say(format!(
        "load done after {:.1} s: {} refunds acknowledged, {} refused (sale used up), {} requests, {} retries",
        started.elapsed().as_secs_f64(),
        acks.len(),
        report.refused,
        report.requests,
        report.retries
    ));

    // a key answered with an error is sent once more, as a terminal might:
    // a replayed 201 means the error answer hid a refund that was made
    let mut hidden = Vec::new();
    let acked_before = acks.len();
    let chunk = uncertain.len().div_ceil(options.clients).max(1);
    let resends: Vec<_> = uncertain
        .chunks(chunk)
        .map(|part| {
            let (shared, part) = (Arc::clone(&shared), part.to_vec());
            tokio::spawn(async move {
                let mut out = Vec::new();
                for (key, sale_id, amount, body) in part {
                    if let Some(answer) = shared.send_until_answered(&key, &body).await
                        && answer.status == 201
                    {
                        let id = answer.json()["id"].as_str().unwrap_or_default().to_owned();
                        out.push((answer.replayed, Ack { key, id, sale_id, amount }));
                    }
                }
                out
            })
        })
        .collect();
    for task in resends {
        for (replayed, ack) in task.await.context("a re-sending task panicked")? {
            if replayed {
                hidden.push(format!("{} → {}", ack.key, ack.id));
            }
            acks.push(ack);
        }
    }
    if !uncertain.is_empty() {
        say(format!(
            "{} keys answered with an error were sent once more: {} replayed a refund made earlier, {} made one now",
            uncertain.len(),
            hidden.len(),
            acks.len() - acked_before - hidden.len()
        ));
    }
    if !hidden.is_empty() {
        report.violations.push(format!(
            "{} keys were answered with an error (\"nothing was changed\") although their refund was made; \
             sent again they replay it: {}",
            hidden.len(),
            hidden.join(", ")
        ));
    }

    let waited = api.wait_all_final(Duration::from_secs_f64(options.final_timeout_seconds)).await?;
    match waited {
        Some(d) => say(format!("every refund final {:.2} s after the load", d.as_secs_f64())),
        None => report
            .violations
            .push(format!("refunds still pending or processing {} s after the load", options.final_timeout_seconds)),
    }
    if api.any_refund_in("requires_approval").await? {
        report.violations.push("refunds wait for approval although the policy limits were raised".into());
    }
    // a refund the API cannot show is also looked for in the database,
    // where a missing one is counted as lost
    report.violations.extend(check_api(&api, &acks).await);
    if !report.violations.is_empty() {
        // what the server said about it, before its working directory goes
        let kept = std::path::PathBuf::from(format!("crash-server-{}.log", report.seed));
        match server.keep_log(&kept) {
            Ok(_) => say(format!("the server's log is kept in {}", kept.display())),
            Err(e) => say(format!("WARNING: could not keep the server's log: {e}")),
        }
    }
    server.stop().await?;
    Ok(Exercised { acks, unanswered })
}

/// Every acknowledged refund through GET /v1/refunds/{id}: same sale and
/// amount, and final.
async fn check_api(api: &Api, acks: &[Ack]) -> Vec<String> {
    let chunks: Vec<Vec<Ack>> = acks.chunks(acks.len().div_ceil(8).max(1)).map(<[Ack]>::to_vec).collect();
    let tasks: Vec<_> = chunks
        .into_iter()
        .map(|chunk| {
            let api = api.clone();
            tokio::spawn(async move {
                let mut problems = Vec::new();
                for ack in chunk {
                    let mut tries = 0;
                    let answer = loop {
                        match Api::send(api.get(&format!("/v1/refunds/{}", ack.id))).await {
                            Ok(a) => break Some(a),
                            Err(_) if tries < 20 => {
                                tries += 1;
                                tokio::time::sleep(Duration::from_millis(100)).await;
                            }
                            Err(_) => break None,
                        }
                    };
                    let Some(answer) = answer else {
                        problems.push(format!("GET /v1/refunds/{}: no answer", ack.id));
                        continue;
                    };
                    let refund = answer.json();
                    if answer.status != 200 {
                        problems.push(format!(
                            "acknowledged refund {} (key {}): API answers {}",
                            ack.id, ack.key, answer.status
                        ));
                    } else if refund["amount"].as_i64() != Some(ack.amount) || refund["sale_id"] != ack.sale_id.as_str()
                    {
                        problems.push(format!("acknowledged refund {} changed: API shows {refund}", ack.id));
                    } else if !matches!(refund["status"].as_str(), Some("succeeded" | "failed")) {
                        problems.push(format!("refund {} is {} after the wait", ack.id, refund["status"]));
                    }
                }
                problems
            })
        })
        .collect();
    let mut problems = Vec::new();
    for t in tasks {
        match t.await {
            Ok(p) => problems.extend(p),
            Err(e) => problems.push(format!("an API check task failed: {e}")),
        }
    }
    problems
}

/// The same facts read directly from the database the server wrote.
fn check_database(
    db: &Database,
    exercised: &Exercised,
    violations: &mut Vec<String>,
    lost: &mut BTreeSet<String>,
    doubled: &mut BTreeSet<String>,
) -> anyhow::Result<()> {
    struct Stored {
        sale_id: String,
        amount: i64,
        status: String,
        attempts: i64,
    }
    let mut refunds: HashMap<String, Stored> = HashMap::new();
    for row in
        db.query("SELECT id, sale_id, CAST(amount_minor AS BIGINT), status, CAST(attempts AS BIGINT) FROM refunds")?
    {
        let stored = Stored {
            sale_id: db::text(&row[1]),
            amount: db::int(&row[2])?,
            status: db::text(&row[3]),
            attempts: db::int(&row[4])?,
        };
        refunds.insert(db::text(&row[0]), stored);
    }

    // every acknowledged refund is there, unchanged
    let acked: HashSet<&str> = exercised.acks.iter().map(|a| a.id.as_str()).collect();
    for ack in &exercised.acks {
        match refunds.get(&ack.id) {
            None => {
                lost.insert(ack.id.clone());
                violations.push(format!("acknowledged refund {} (key {}) is not in the database", ack.id, ack.key));
            }
            Some(r) if r.amount != ack.amount || r.sale_id != ack.sale_id => {
                lost.insert(ack.id.clone());
                violations.push(format!(
                    "acknowledged refund {} was {} of {}, the database has {} of {}",
                    ack.id, ack.amount, ack.sale_id, r.amount, r.sale_id
                ));
            }
            Some(_) => {}
        }
    }
    // and nothing else
    for id in refunds.keys().filter(|id| !acked.contains(id.as_str())) {
        doubled.insert(id.clone());
        let hint = if exercised.unanswered.is_empty() { "" } else { " (some requests were never answered)" };
        violations.push(format!("refund {id} is in the database but no client was given it{hint}"));
    }

    // no sale refunded beyond its capture
    let mut held: HashMap<&str, i64> = HashMap::new();
    for r in refunds.values() {
        if !matches!(r.status.as_str(), "failed" | "rejected" | "expired" | "canceled") {
            *held.entry(r.sale_id.as_str()).or_default() += r.amount;
        }
    }
    for row in db.query("SELECT id, CAST(amount_minor AS BIGINT) FROM sales")? {
        let (id, amount) = (db::text(&row[0]), db::int(&row[1])?);
        let refunded = held.get(id.as_str()).copied().unwrap_or(0);
        if refunded > amount {
            violations.push(format!("sale {id} refunded {refunded} of {amount} captured"));
        }
    }

    // one idempotency key, one refund: the server's records agree with the clients'
    let by_key: HashMap<&str, &str> = exercised.acks.iter().map(|a| (a.key.as_str(), a.id.as_str())).collect();
    let mut keys_seen = HashSet::new();
    let rows = db.query(
        "SELECT key, CAST(status_code AS BIGINT), body FROM idempotency_keys WHERE endpoint = 'POST /v1/refunds'",
    )?;
    for row in &rows {
        let key = db::text(&row[0]);
        let stored_id = serde_json::from_str::<serde_json::Value>(&db::text(&row[2]))
            .ok()
            .and_then(|v| v["id"].as_str().map(str::to_owned));
        match by_key.get(key.as_str()) {
            None => {
                violations.push(format!("the server keeps idempotency key {key} that no client was acknowledged for"))
            }
            Some(id) if stored_id.as_deref() != Some(*id) => {
                doubled.insert(key.clone());
                violations
                    .push(format!("idempotency key {key} stores refund {stored_id:?}, its client was given {id}"));
            }
            Some(_) => {}
        }
        keys_seen.insert(key);
    }
    for ack in exercised.acks.iter().filter(|a| !keys_seen.contains(&a.key)) {
        violations.push(format!("acknowledged key {} has no idempotency record: a retry would refund again", ack.key));
    }
    if refunds.len() != rows.len() {
        violations.push(format!("{} refunds but {} idempotency keys", refunds.len(), rows.len()));
    }

    // the outbox is drained
    for row in db.query("SELECT state, CAST(COUNT(*) AS BIGINT) FROM outbox GROUP BY state")? {
        let (state, n) = (db::text(&row[0]), db::int(&row[1])?);
        if state != "done" {
            violations.push(format!("{n} outbox jobs left {state}"));
        }
    }

    // the audit trail of each refund
    let mut events: HashMap<String, BTreeMap<String, i64>> = HashMap::new();
    for row in db.query(
        "SELECT subject, action, CAST(COUNT(*) AS BIGINT) FROM audit_events \
         WHERE action IN ('refund.requested', 'refund.sent', 'refund.succeeded', 'refund.failed') GROUP BY subject, action",
    )? {
        events.entry(db::text(&row[0])).or_default().insert(db::text(&row[1]), db::int(&row[2])?);
    }
    let none = BTreeMap::new();
    for (id, r) in &refunds {
        let e = events.get(id).unwrap_or(&none);
        let count = |action: &str| e.get(action).copied().unwrap_or(0);
        if count("refund.requested") != 1 {
            if count("refund.requested") > 1 {
                doubled.insert(id.clone());
            }
            violations.push(format!("refund {id} has {} refund.requested events", count("refund.requested")));
        }
        if count("refund.sent") != r.attempts || r.attempts < 1 {
            violations.push(format!(
                "refund {id} has {} refund.sent events for {} attempts",
                count("refund.sent"),
                r.attempts
            ));
        }
        if count("refund.succeeded") > 1 {
            violations.push(format!("refund {id} succeeded {} times", count("refund.succeeded")));
        }
        let expected_end = match r.status.as_str() {
            "succeeded" => count("refund.succeeded") == 1,
            "failed" => count("refund.failed") >= 1,
            _ => false,
        };
        if !expected_end {
            violations.push(format!("refund {id} is {} with events {e:?}", r.status));
        }
    }
    Ok(())
}
