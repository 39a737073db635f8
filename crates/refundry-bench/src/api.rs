//! The HTTP side: one shared keep-alive HTTP/1.1 client (reqwest's pool)
//! and the few calls both tools make.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::{Value, json};

/// 1,000.00 CNY: each sale is this much cash, so many refunds fit.
pub const SALE_AMOUNT: i64 = 100_000;

/// Policy limits raised so every refund is approved at once.
pub const NO_LIMIT: i64 = 1_000_000_000_000;

pub fn http_client(pool: usize) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .pool_max_idle_per_host(pool.max(1))
        .pool_idle_timeout(Duration::from_secs(90))
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(30))
        .connect_timeout(Duration::from_secs(5))
        .build()?)
}

/// An answer: status and raw body.
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
    /// `Idempotent-Replayed: true`: the stored answer of an earlier request.
    pub replayed: bool,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// The problem `code` of an error answer, or "" when there is none.
    pub fn code(&self) -> String {
        self.json()["code"].as_str().unwrap_or_default().to_owned()
    }
}

#[derive(Clone)]
pub struct Api {
    pub http: reqwest::Client,
    pub base: String,
    auth: String,
}

impl Api {
    pub fn new(http: reqwest::Client, base: &str, key: &str) -> Api {
        Api { http, base: base.to_owned(), auth: format!("Bearer {key}") }
    }

    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.get(format!("{}{path}", self.base)).header("authorization", &self.auth)
    }

    /// A POST of JSON bytes (sent as they are, so a retry sends the same
    /// body), with an Idempotency-Key when given.
    pub fn post(&self, path: &str, body: Vec<u8>, idempotency_key: Option<&str>) -> reqwest::RequestBuilder {
        let mut req = self
            .http
            .post(format!("{}{path}", self.base))
            .header("authorization", &self.auth)
            .header("content-type", "application/json")
            .body(body);
        if let Some(key) = idempotency_key {
            req = req.header("idempotency-key", key);
        }
        req
    }

    pub async fn send(req: reqwest::RequestBuilder) -> Result<Answer, reqwest::Error> {
        let res = req.send().await?;
        let status = res.status().as_u16();
        let replayed = res.headers().get("idempotent-replayed").is_some_and(|v| v == "true");
        let body = res.bytes().await?.to_vec();
        Ok(Answer { status, body, replayed })
    }

    async fn expect(req: reqwest::RequestBuilder, status: u16, what: &str) -> anyhow::Result<Value> {
        let answer = Api::send(req).await.with_context(|| format!("{what}: no answer"))?;
        if answer.status != status {
            bail!("{what}: {} {}", answer.status, String::from_utf8_lossy(&answer.body));
        }
        Ok(answer.json())
    }

    /// Raises the policy limits (PUT /v1/policy with the rules in force, the
    /// approval, large-sale, cash and cashier-daily limits set out of
    /// reach) so every refund is approved at once.
    pub async fn raise_policy_limits(&self) -> anyhow::Result<i64> {
        let policy = Api::expect(self.get("/v1/policy"), 200, "GET /v1/policy").await?;
        let mut rules = policy["rules"].clone();
        for field in [
            "approval_above_minor",
            "large_sale_approval_above_minor",
            "cash_refund_limit_minor",
            "cashier_daily_limit_minor",
        ] {
            rules[field] = json!(NO_LIMIT);
        }
        let body = serde_json::to_vec(&json!({ "rules": rules }))?;
        let req = self.http.put(format!("{}/v1/policy", self.base)).header("authorization", &self.auth);
        let written =
            Api::expect(req.header("content-type", "application/json").body(body), 200, "PUT /v1/policy").await?;
        Ok(written["version"].as_i64().unwrap_or_default())
    }

    /// Records one sale of [`SALE_AMOUNT`] without items, paid by the card
    /// ending in `card_last4` (a batch not yet settled) or else in cash;
    /// answers its id.
    pub async fn create_sale(&self, voucher_no: &str, card_last4: Option<&str>) -> anyhow::Result<String> {
        let captured_at = jiff::Timestamp::now()
            .checked_sub(jiff::SignedDuration::from_secs(60))
            .context("clock out of range")?
            .to_string();
        let method = match card_last4 {
            Some(last4) => {
                json!({"type": "card", "brand": "unionpay", "first6": "622202", "last4": last4, "entry_mode": "chip"})
            }
            None => json!({"type": "cash"}),
        };
        let body = json!({
            "amount": SALE_AMOUNT, "currency": "cny", "payment_method": method,
            "voucher_no": voucher_no, "terminal_id": "T0001", "captured_at": captured_at,
        });
        let sale = Api::expect(self.post("/v1/sales", serde_json::to_vec(&body)?, None), 201, "POST /v1/sales").await?;
        Ok(sale["id"].as_str().context("the sale has no id")?.to_owned())
    }

    /// Whether any refund is in `status` (the first page of the list).
    pub async fn any_refund_in(&self, status: &str) -> anyhow::Result<bool> {
        let list =
            Api::expect(self.get(&format!("/v1/refunds?status={status}&limit=1")), 200, "GET /v1/refunds").await?;
        Ok(list["data"].as_array().is_some_and(|d| !d.is_empty()))
    }

    /// Polls until no refund is pending or processing; answers how long it
    /// took, or `None` after `timeout`.
    pub async fn wait_all_final(&self, timeout: Duration) -> anyhow::Result<Option<Duration>> {
        let started = std::time::Instant::now();
        loop {
            let mut open = false;
            for status in ["pending", "processing"] {
                match self.any_refund_in(status).await {
                    Ok(false) => {}
                    // a busy or restarting server: ask again
                    Ok(true) | Err(_) => open = true,
                }
                if open {
                    break;
                }
            }
            if !open {
                return Ok(Some(started.elapsed()));
            }
            if started.elapsed() > timeout {
                return Ok(None);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// How the loaded sales were paid. A card refund goes through the outbox
/// to the acquirer (the sandbox) in a second transaction; a cash refund is
/// settled in its request's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Tenders {
    Cash,
    Card,
    /// Every other sale by card, the rest in cash.
    Mixed,
}

impl Tenders {
    fn card(self, i: usize) -> bool {
        match self {
            Tenders::Cash => false,
            Tenders::Card => true,
            Tenders::Mixed => i.is_multiple_of(2),
        }
    }

    /// "cash", "card", "card and cash (every other sale)".
    pub fn describe(self) -> &'static str {
        match self {
            Tenders::Cash => "cash",
            Tenders::Card => "card (UnionPay, batch not settled)",
            Tenders::Mixed => "card (every other sale) and cash",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Tenders::Cash => "cash",
            Tenders::Card => "card",
            Tenders::Mixed => "mixed",
        }
    }
}

/// Sales made for a run.
pub struct Loaded {
    /// (sale id, voucher number), in voucher order.
    pub sales: Vec<(String, String)>,
    /// Sales whose id the server's card-data guard takes for a card number
    /// (`422 sensitive_card_data` when the id is sent in a refund body): a
    /// false positive on the server's own ids. Left out of `sales`.
    pub refused_as_card_data: Vec<String>,
}

/// Records `count` sales with `clients` concurrent requests, each with its
/// own voucher number (`00000001`, …), and asks for a preview of a 1.00
/// refund of each to leave out those whose id the server refuses to be sent
/// back (see [`Loaded::refused_as_card_data`]).
pub async fn load_sales(api: &Api, count: usize, clients: usize, tenders: Tenders) -> anyhow::Result<Loaded> {
    let bar = crate::progress(count as u64, "{msg:>24} [{bar:40}] {pos}/{len} {elapsed}");
    bar.set_message("loading sales");
    let next = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..clients.min(count).max(1))
        .map(|_| {
            let (api, next, bar) = (api.clone(), Arc::clone(&next), bar.clone());
            tokio::spawn(async move {
                let mut made = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= count {
                        return Ok::<_, anyhow::Error>(made);
                    }
                    let voucher_no = format!("{:08}", i + 1);
                    // one card per sale, as at a real counter: one card paying
                    // the same amount again and again is what the duplicate
                    // charge detector is there to flag
                    let last4 = tenders.card(i).then(|| format!("{:04}", i % 10_000));
                    let id = api.create_sale(&voucher_no, last4.as_deref()).await?;
                    let body = serde_json::to_vec(&json!({"sale_id": id, "amount": 100, "reason": "other"}))?;
                    let preview = Api::send(api.post("/v1/refunds/preview", body, None))
                        .await
                        .context("POST /v1/refunds/preview: no answer")?;
                    let refused = match (preview.status, preview.code().as_str()) {
                        (200, _) => false,
                        (422, "sensitive_card_data") => true,
                        (status, _) => bail!(
                            "POST /v1/refunds/preview of a new sale: {status} {}",
                            String::from_utf8_lossy(&preview.body)
                        ),
                    };
                    made.push((i, id, voucher_no, refused));
                    bar.inc(1);
                }
            })
        })
        .collect();
    let mut sales = Vec::with_capacity(count);
    for h in handles {
        sales.extend(h.await.context("a loading task failed")??);
    }
    bar.finish_and_clear();
    sales.sort_by_key(|(i, ..)| *i);
    let refused_as_card_data: Vec<String> =
        sales.iter().filter(|(.., refused)| *refused).map(|(_, id, ..)| id.clone()).collect();
    let sales: Vec<(String, String)> =
        sales.into_iter().filter(|(.., refused)| !refused).map(|(_, id, voucher, _)| (id, voucher)).collect();
    if sales.is_empty() {
        bail!("the server refused every sale id as card data");
    }
    if !refused_as_card_data.is_empty() {
        crate::say(format!(
            "WARNING: the server answers 422 sensitive_card_data when these sale ids are sent in a refund body \
             (its card-number guard takes a digit run in its own id for a card number); they are left out: {}",
            refused_as_card_data.join(", ")
        ));
    }
    Ok(Loaded { sales, refused_as_card_data })
}
