//! Two `refundry serve` processes on one PostgreSQL database, hammered
//! through both at once: no sale is refunded beyond its capture, every
//! idempotency key makes exactly one refund, every outbox job runs exactly
//! once (cash refunds have none), and the audit chain holds. Runs in the PostgreSQL pass of
//! scripts/test (REFUNDRY_TEST_DATABASE=postgres://…).

use std::collections::{HashMap, HashSet};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use refundry_store::testing::{self, Scratch};
use serde_json::{Value, json};

mod support;

const SALES: usize = 20;
const SALE_AMOUNT: i64 = 10_000;
const KEYS: usize = 240;
const THREADS: usize = 24;

fn refundry(url: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_refundry"));
    cmd.env_remove("RUST_LOG")
        .env("REFUNDRY_DATABASE_URL", url)
        .env("REFUNDRY_SANDBOX__LATENCY_MS", "2")
        // every instance shares the keys that seal secrets at rest
        .env("REFUNDRY_ENCRYPTION_KEYS", format!("[\"k1:{}\"]", "ab".repeat(32)));
    cmd
}

struct Instance {
    child: Child,
    base: String,
}

impl Instance {
    fn start(url: &str) -> Instance {
        let mut child = refundry(url)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // the thread keeps draining the log until the instance exits
        let (base, _logs) = support::serving(&mut child, Duration::from_secs(30));
        Instance { child, base }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let _ = self.child.wait();
    }
}

fn query_i64(scratch: &Scratch, sql: &'static str) -> Vec<(String, i64)> {
    let mut client = scratch.client();
    std::thread::spawn(move || {
        client.query(sql, &[]).unwrap().iter().map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1))).collect()
    })
    .join()
    .unwrap()
}

#[test]
fn two_instances_on_one_postgres_keep_every_money_invariant() {
    let base = testing::postgres_url().expect("run with REFUNDRY_TEST_DATABASE=postgres://… (scripts/test does)");
    let scratch = Scratch::new(&base);
    let url = scratch.url.clone();
    assert!(refundry(&url).arg("migrate").status().unwrap().success());
    let out = refundry(&url).args(["keys", "create", "--name", "hammer"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let key = String::from_utf8(out.stdout).unwrap().trim().to_owned();

    let instances = [Instance::start(&url), Instance::start(&url)];
    let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    let mut sales = Vec::new();
    // half by card (their refunds go through the outbox to the acquirer),
    // half in cash (settled in the request's own transaction)
    for i in 0..SALES {
        let method = if i.is_multiple_of(2) {
            json!({"type": "card", "brand": "unionpay", "first6": "622202", "last4": "1234", "entry_mode": "chip"})
        } else {
            json!({"type": "cash"})
        };
        let body = json!({"amount": SALE_AMOUNT, "currency": "cny", "payment_method": method,
            "voucher_no": format!("{i:06}"), "terminal_id": "T1", "captured_at": support::an_hour_ago()});
        let sale: Value = client
            .post(format!("{}/v1/sales", instances[i % 2].base))
            .bearer_auth(&key)
            .json(&body)
            .send()
            .unwrap()
            .json()
            .unwrap();
        sales.push(sale["id"].as_str().unwrap().to_owned());
    }

    // every key is sent twice, once to each instance, at the same time
    let work: Vec<(usize, usize)> = (0..KEYS).flat_map(|k| [(k, 0), (k, 1)]).collect();
    let work = Arc::new(Mutex::new(work));
    let answers: Arc<Mutex<Vec<(usize, u16, Value)>>> = Arc::default();
    let bases: Vec<String> = instances.iter().map(|i| i.base.clone()).collect();
    let threads: Vec<_> = (0..THREADS)
        .map(|_| {
            let (work, answers, bases, sales, key, client) =
                (Arc::clone(&work), Arc::clone(&answers), bases.clone(), sales.clone(), key.clone(), client.clone());
            std::thread::spawn(move || {
                loop {
                    let Some((k, instance)) = work.lock().unwrap().pop() else { break };
                    let body = json!({"sale_id": sales[(k * 7) % SALES], "amount": 1000 + (k % 7) as i64 * 500, "reason": "other"});
                    let res = client
                        .post(format!("{}/v1/refunds", bases[instance]))
                        .bearer_auth(&key)
                        .header("Idempotency-Key", format!("hammer-{k}"))
                        .json(&body)
                        .send()
                        .unwrap();
                    let status = res.status().as_u16();
                    answers.lock().unwrap().push((k, status, res.json().unwrap_or(Value::Null)));
                }
            })
        })
        .collect();
    threads.into_iter().for_each(|t| t.join().unwrap());
    let answers = answers.lock().unwrap();

    let mut by_key: HashMap<usize, HashSet<String>> = HashMap::new();
    let mut refused = 0;
    for (k, status, body) in answers.iter() {
        match status {
            201 => {
                by_key.entry(*k).or_default().insert(body["id"].as_str().unwrap().to_owned());
            }
            422 => {
                assert_eq!(body["code"], "refund_exceeds_refundable", "{body}");
                refused += 1;
            }
            other => panic!("unexpected answer {other}: {body}"),
        }
    }
    assert!(by_key.values().all(|ids| ids.len() == 1), "a key made more than one refund");
    assert!(refused > 0, "the load asked for more than was captured, so some must be refused");
    let made: HashSet<&String> = by_key.values().flatten().collect();

    // wait for the acquirer to answer every refund
    let started = Instant::now();
    loop {
        let open =
            query_i64(&scratch, "SELECT 'open', COUNT(*) FROM refunds WHERE status NOT IN ('succeeded', 'failed')");
        if open[0].1 == 0 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "{} refunds never finished", open[0].1);
        std::thread::sleep(Duration::from_millis(100));
    }

    let per_sale = query_i64(
        &scratch,
        "SELECT s.id, COALESCE(SUM(r.amount_minor), 0)::BIGINT FROM sales s LEFT JOIN refunds r ON r.sale_id = s.id
         AND r.status NOT IN ('failed', 'rejected', 'expired', 'canceled') GROUP BY s.id",
    );
    assert_eq!(per_sale.len(), SALES);
    for (sale, refunded) in &per_sale {
        assert!(*refunded <= SALE_AMOUNT, "{sale} refunded {refunded} of {SALE_AMOUNT}");
    }
    let stored = query_i64(&scratch, "SELECT 'refunds', COUNT(*) FROM refunds");
    assert_eq!(stored[0].1 as usize, made.len(), "every stored refund was answered to a client, once");
    let keys = query_i64(&scratch, "SELECT 'keys', COUNT(*) FROM idempotency_keys WHERE endpoint = 'POST /v1/refunds'");
    assert_eq!(keys[0].1 as usize, by_key.len());

    let by_card = query_i64(
        &scratch,
        "SELECT 'card', COUNT(*) FROM refunds r JOIN sales s ON s.id = r.sale_id WHERE s.method = 'card'",
    )[0]
    .1;
    assert!(by_card > 0 && (by_card as usize) < made.len(), "refunds of both kinds: {by_card} of {}", made.len());
    let jobs = query_i64(&scratch, "SELECT state, COUNT(*) FROM outbox WHERE kind = 'refund.execute' GROUP BY state");
    assert_eq!(jobs, vec![("done".to_owned(), by_card)], "every card refund's job ended, none twice, none for cash");
    let detectors = query_i64(
        &scratch,
        "SELECT state, COUNT(*) FROM outbox WHERE kind = 'sale.detect_wrong_charges' GROUP BY state",
    );
    assert_eq!(detectors, vec![("done".to_owned(), SALES as i64)], "every sale was looked at once");
    let sends = query_i64(
        &scratch,
        "SELECT subject, COUNT(*) FROM audit_events WHERE action = 'refund.sent' GROUP BY subject HAVING COUNT(*) <> 1",
    );
    assert!(sends.is_empty(), "refunds sent more than once: {sends:?}");
    let finished = query_i64(
        &scratch,
        "SELECT 'done', COUNT(*) FROM audit_events WHERE action IN ('refund.succeeded', 'refund.failed')",
    );
    assert_eq!(finished[0].1 as usize, made.len());

    drop(instances);
    let verify = refundry(&url).args(["audit", "verify"]).output().unwrap();
    assert!(verify.status.success(), "{}", String::from_utf8_lossy(&verify.stdout));
    println!(
        "two instances: {} requests, {} refunds made, {} refused, {} sales within capture",
        answers.len(),
        made.len(),
        refused,
        per_sale.len()
    );
}
