use std::sync::Arc;
use std::time::Duration;

use refundry_app::jobs::RunnerConfig;
use refundry_app::keys::ALL_SCOPES;
use refundry_app::{Actor, App, AppConfig};
use refundry_connectors::sandbox::SandboxAcquirer;
use refundry_server::{Running, ServerConfig};
use refundry_store::testing::{self, TestStore};
use reqwest::{RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};
use tempfile::TempDir;

pub struct TestApp {
    pub base: String,
    pub key: String,
    pub client: reqwest::Client,
    pub app: App,
    pub sandbox: Arc<SandboxAcquirer>,
    pub dir: TempDir,
    pub db: TestStore,
    running: Option<Running>,
}

pub async fn spawn() -> TestApp {
    spawn_with(ServerConfig::default()).await
}

pub async fn spawn_with(server: ServerConfig) -> TestApp {
    spawn_configured(server, AppConfig::default()).await
}

pub async fn spawn_configured(server: ServerConfig, base: AppConfig) -> TestApp {
    spawn_full(server, base, None).await
}

/// With another connector than the sandbox (which stays in `sandbox`, idle).
/// The job runner's waits are made short; its other settings are `base`'s.
pub async fn spawn_full(
    server: ServerConfig,
    base: AppConfig,
    processor: Option<Arc<dyn refundry_connectors::Processor>>,
) -> TestApp {
    let jobs = RunnerConfig {
        base_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(100),
        poll_interval: Duration::from_millis(20),
        maintenance_interval: Duration::from_millis(50),
        ..base.jobs.clone()
    };
    spawn_exact(server, AppConfig { jobs, ..base }, processor).await
}

/// With `config` exactly as given, job runner timings included.
pub async fn spawn_exact(
    server: ServerConfig,
    config: AppConfig,
    processor: Option<Arc<dyn refundry_connectors::Processor>>,
) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let db = testing::open(dir.path());
    let store = Arc::clone(&db.store);
    let sandbox = Arc::new(SandboxAcquirer::new(Duration::ZERO));
    let processor = processor.unwrap_or_else(|| sandbox.clone());
    let app = App::new(store, processor, config);
    let (merchant, _) = app.default_merchant().await.unwrap();
    let key = app.create_key(&Actor::system(merchant.id, "test"), "test key", ALL_SCOPES).await.unwrap().secret;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let running = refundry_server::start(app.clone(), listener, server).await.unwrap();
    TestApp {
        base: format!("http://{}", running.addr),
        key,
        client: reqwest::Client::new(),
        app,
        sandbox,
        dir,
        db,
        running: Some(running),
    }
}

impl TestApp {
    pub fn get(&self, path: &str) -> RequestBuilder {
        self.client.get(format!("{}{path}", self.base)).bearer_auth(&self.key)
    }

    /// The JSON answer of a GET with the merchant's key, whatever its status.
    pub async fn get_json(&self, path: &str) -> Value {
        let res = self.get(path).send().await.unwrap();
        let status = res.status();
        let text = res.text().await.unwrap();
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("GET {path} answered {status} without JSON ({e}): {text}"))
    }

    /// The actions of the audit events about `subject`, oldest first.
    pub async fn audit_actions_about(&self, subject: &str) -> Vec<String> {
        let audit = self.get_json("/v1/audit-events?limit=500").await;
        audit["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["subject"] == subject)
            .map(|e| e["action"].as_str().unwrap().to_owned())
            .collect()
    }

    pub fn post(&self, path: &str, body: &Value) -> RequestBuilder {
        self.client.post(format!("{}{path}", self.base)).bearer_auth(&self.key).json(body)
    }

    /// A person of the default merchant, logged in: their session token.
    pub async fn person(&self, username: &str, role: &str) -> String {
        self.person_at(username, role, None).await
    }

    pub async fn person_at(&self, username: &str, role: &str, store_id: Option<&str>) -> String {
        let body = json!({"username": username, "display_name": username, "role": role,
            "password": "correct horse battery", "store_id": store_id});
        let res = self.post("/v1/users", &body).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::CREATED, "{}", res.text().await.unwrap());
        self.log_in(username).await
    }

    pub async fn log_in(&self, username: &str) -> String {
        let body = json!({"username": username, "password": "correct horse battery"});
        let res = self.client.post(format!("{}/v1/sessions", self.base)).json(&body).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::CREATED, "{}", res.text().await.unwrap());
        let session: Value = res.json().await.unwrap();
        session["token"].as_str().unwrap().to_owned()
    }

    /// POST with another token.
    pub fn post_as(&self, token: &str, path: &str, body: &Value) -> RequestBuilder {
        self.client.post(format!("{}{path}", self.base)).bearer_auth(token).json(body)
    }

    pub fn get_as(&self, token: &str, path: &str) -> RequestBuilder {
        self.client.get(format!("{}{path}", self.base)).bearer_auth(token)
    }

    /// A key of a second, unrelated merchant.
    pub async fn other_merchant_key(&self) -> String {
        let (m, _) = self.app.create_merchant("Other merchant", "Other store").await.unwrap();
        self.app.create_key(&Actor::system(m.id, "test"), "other", ALL_SCOPES).await.unwrap().secret
    }

    pub async fn create_sale(&self, body: Value) -> Value {
        let res = self.post("/v1/sales", &body).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::CREATED, "{}", res.text().await.unwrap());
        res.json().await.unwrap()
    }

    pub async fn refund(&self, key: impl AsRef<str>, body: Value) -> Response {
        self.post("/v1/refunds", &body).header("Idempotency-Key", key.as_ref()).send().await.unwrap()
    }

    /// Waits until the refund reaches a final status.
    pub async fn settled_refund(&self, id: &str) -> Value {
        for _ in 0..200 {
            let r: Value = self.get(&format!("/v1/refunds/{id}")).send().await.unwrap().json().await.unwrap();
            if matches!(r["status"].as_str(), Some("succeeded" | "failed")) {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("refund {id} did not finish");
    }

    /// Whether any stored row (or, on SQLite, any byte of the database
    /// files) holds `needle`.
    pub fn stored_anywhere(&self, needle: &str) -> bool {
        match &self.db.scratch {
            None => std::fs::read_dir(self.dir.path()).unwrap().any(|entry| {
                let bytes = std::fs::read(entry.unwrap().path()).unwrap();
                String::from_utf8_lossy(&bytes).contains(needle)
            }),
            Some(scratch) => {
                let mut client = scratch.client();
                let (schema, needle) = (scratch.schema.clone(), needle.to_owned());
                std::thread::spawn(move || {
                    let tables = client
                        .query(
                            "SELECT table_name::text FROM information_schema.tables WHERE table_schema = $1",
                            &[&schema],
                        )
                        .unwrap();
                    tables.iter().any(|row| {
                        let table: String = row.get(0);
                        let sql = format!("SELECT EXISTS(SELECT 1 FROM {table} t WHERE row_to_json(t)::text LIKE $1)");
                        client.query_one(&sql, &[&format!("%{needle}%")]).unwrap().get::<_, bool>(0)
                    })
                })
                .join()
                .unwrap()
            }
        }
    }

    pub async fn shutdown(&mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown().await;
        }
    }
}

/// The time `minutes` before now as a terminal in China sends it (`+08:00`,
/// whole seconds). Sales are made this recently so that they stay inside
/// every policy window (seven days for a refund without questions asked,
/// thirty for cash) on whatever day the tests run.
pub fn minutes_ago(minutes: i64) -> String {
    seconds_ago(minutes * 60)
}

/// As [`minutes_ago`], to the second.
pub fn seconds_ago(seconds: i64) -> String {
    in_china(jiff::Timestamp::from_second(jiff::Timestamp::now().as_second() - seconds).unwrap())
}

/// `at` as a terminal in China sends it: RFC 3339 at `+08:00`, with a
/// fraction of a second only where it has one.
pub fn in_china(at: jiff::Timestamp) -> String {
    at.to_zoned(jiff::tz::TimeZone::fixed(jiff::tz::offset(8))).strftime("%Y-%m-%dT%H:%M:%S%.f%:z").to_string()
}

/// A card sale of 100.00 CNY made an hour ago: two teas at 30.00 and a cup
/// at 40.00.
pub fn card_sale() -> Value {
    json!({
        "amount": 10000,
        "currency": "cny",
        "payment_method": {"type": "card", "brand": "unionpay", "first6": "622202", "last4": "1234", "entry_mode": "chip"},
        "voucher_no": "000123",
        "rrn": "123456789012",
        "auth_code": "A1B2C3",
        "terminal_id": "T0001",
        "batch_no": "000001",
        "captured_at": minutes_ago(60),
        "items": [
            {"sku": "tea", "name": "乌龙茶 Oolong", "quantity": 2, "unit_amount": 3000},
            {"sku": "cup", "name": "杯子 Cup", "quantity": 1, "unit_amount": 4000}
        ]
    })
}

pub async fn problem(res: Response, status: StatusCode, code: &str) -> Value {
    assert_eq!(res.status(), status);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["status"], status.as_u16());
    body
}
