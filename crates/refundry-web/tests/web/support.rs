//! A real server for the page tests: a fresh database (SQLite, or a
//! PostgreSQL schema with REFUNDRY_TEST_DATABASE), the sandbox acquirer,
//! the job runner, one person per role and a few sales.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use refundry_app::jobs::{JobRunner, RunnerConfig};
use refundry_app::sales::NewSale;
use refundry_app::users::{NewUser, Role};
use refundry_app::{Actor, App, AppConfig};
use refundry_connectors::sandbox::SandboxAcquirer;
use refundry_core::card::{First6, Last4};
use refundry_core::ids::MerchantId;
use refundry_core::money::{Currency, Money};
use refundry_core::sale::{CardBrand, EntryMode, LineItem, PaymentMethod};
use refundry_store::testing::{self, TestStore};
use refundry_web::WebConfig;
use tempfile::TempDir;
use tokio::sync::watch;

pub const PASSWORD: &str = "counter-password-1";

/// The people, one per role: (username, role).
pub const PEOPLE: &[(&str, Role)] = &[
    ("cashier.wang", Role::Cashier),
    ("supervisor.li", Role::Supervisor),
    ("finance.zhou", Role::Finance),
    ("risk.chen", Role::Risk),
    ("admin.zhao", Role::Admin),
];

pub struct TestWeb {
    pub base: String,
    pub app: App,
    pub merchant: MerchantId,
    /// A card sale of a 600-yuan coat and a 30-yuan scarf: refunding the
    /// coat is over the policy's 500-yuan limit and needs a supervisor.
    pub big_sale: SaleFacts,
    /// A small card sale within policy.
    pub small_sale: SaleFacts,
    _dir: TempDir,
    _db: TestStore,
    stop: watch::Sender<bool>,
}

#[derive(Clone)]
pub struct SaleFacts {
    pub id: String,
    pub voucher: String,
    pub rrn: String,
    pub last4: String,
    pub amount: &'static str,
    pub date: String,
}

pub async fn spawn() -> TestWeb {
    spawn_with(WebConfig { secure_cookies: false, self_service_per_minute: 0 }).await
}

pub async fn spawn_with(web: WebConfig) -> TestWeb {
    let dir = tempfile::tempdir().unwrap();
    let db = testing::open(dir.path());
    let config = AppConfig {
        jobs: RunnerConfig {
            base_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(100),
            poll_interval: Duration::from_millis(20),
            maintenance_interval: Duration::from_millis(50),
            ..RunnerConfig::default()
        },
        ..AppConfig::default()
    };
    let app = App::new(Arc::clone(&db.store), Arc::new(SandboxAcquirer::new(Duration::ZERO)), config);
    let (merchant, _) = app.create_merchant("蓝山咖啡 Blue Mountain", "人民广场店").await.unwrap();
    let system = Actor::system(merchant.id, "test");
    for (username, role) in PEOPLE {
        let new = NewUser {
            username: username.to_string(),
            display_name: username.to_string(),
            role: *role,
            password: PASSWORD.into(),
            store_id: None,
        };
        app.create_user(&system, new).await.unwrap();
    }
    let big_sale = record(
        &app,
        &system,
        "700001",
        "123456780001",
        "4321",
        63_000,
        "630.00",
        &[("SKU-COAT", "羊毛大衣 Wool coat", 60_000), ("SKU-SCARF", "围巾 Scarf", 3_000)],
    )
    .await;
    let small_sale =
        record(&app, &system, "700002", "123456780002", "8765", 2_200, "22.00", &[("SKU-LATTE", "拿铁 Latte", 2_200)])
            .await;
    let (stop, stopped) = watch::channel(false);
    tokio::spawn(JobRunner::new(app.clone(), stopped.clone()).run());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = refundry_web::router(app.clone(), web);
    let mut server_stopped = stopped;
    tokio::spawn(async move {
        axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(async move {
                let _ = server_stopped.wait_for(|s| *s).await;
            })
            .await
    });
    TestWeb {
        base: format!("http://{addr}"),
        app,
        merchant: merchant.id,
        big_sale,
        small_sale,
        _dir: dir,
        _db: db,
        stop,
    }
}

#[allow(clippy::too_many_arguments)]
async fn record(
    app: &App,
    actor: &Actor,
    voucher: &str,
    rrn: &str,
    last4: &str,
    amount_minor: i64,
    amount: &'static str,
    items: &[(&str, &str, i64)],
) -> SaleFacts {
    // yesterday, so that "today" in any time zone is still inside every window
    let captured_at = Timestamp::now() - jiff::SignedDuration::from_hours(24);
    let new = NewSale {
        amount: Money::new(amount_minor, Currency::CNY),
        payment_method: PaymentMethod::Card {
            brand: CardBrand::UnionPay,
            first6: First6::parse("622202").unwrap(),
            last4: Last4::parse(last4).unwrap(),
            entry_mode: EntryMode::Chip,
        },
        voucher_no: Some(voucher.into()),
        rrn: Some(rrn.into()),
        auth_code: Some("123456".into()),
        terminal_id: "T0001".into(),
        batch_no: Some("000001".into()),
        captured_at,
        store_id: None,
        card_token: None,
        order_ref: None,
        items: items
            .iter()
            .map(|(sku, name, unit)| LineItem {
                sku: sku.to_string(),
                name: name.to_string(),
                quantity: 1,
                unit_amount_minor: *unit,
            })
            .collect(),
    };
    let view = match app.record_sale(actor, new, None).await.unwrap() {
        refundry_app::idempotency::Replay::Fresh(v) => v,
        refundry_app::idempotency::Replay::Stored(_) => unreachable!("no key given"),
    };
    let date = captured_at.to_zoned(app.config.business_tz.clone()).date().to_string();
    SaleFacts {
        id: view.sale.id.to_string(),
        voucher: voucher.into(),
        rrn: rrn.into(),
        last4: last4.into(),
        amount,
        date,
    }
}

impl Drop for TestWeb {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// A browser-like HTTP client: cookies kept, redirects not followed, so
/// tests see each answer.
pub fn client() -> reqwest::Client {
    client_in("en")
}

/// The same, with the browser's language set to `lang`.
pub fn client_in(lang: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(reqwest::header::ACCEPT_LANGUAGE, lang.parse().unwrap());
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .default_headers(headers)
        .build()
        .unwrap()
}

/// The CSRF token of a page.
pub fn csrf_of(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("the page has a form with a CSRF token");
    html[at + 19..].split('"').next().unwrap().to_owned()
}

pub fn field_of(html: &str, name: &str) -> String {
    let needle = format!("name=\"{name}\" value=\"");
    let at = html.find(&needle).unwrap_or_else(|| panic!("no field {name}"));
    html[at + needle.len()..].split('"').next().unwrap().to_owned()
}

impl TestWeb {
    /// Runs one statement (the same in both dialects) on the database
    /// behind the store's back, as someone tampering with it would; returns
    /// the rows changed.
    pub fn tamper(&self, sql: &str) -> u64 {
        match &self._db.scratch {
            Some(scratch) => {
                let mut client = scratch.client();
                let sql = sql.to_owned();
                // the postgres client blocks; keep it off the runtime's threads
                std::thread::spawn(move || client.execute(&sql, &[]).unwrap()).join().unwrap()
            }
            None => {
                let conn = rusqlite::Connection::open(self._dir.path().join("test.db")).unwrap();
                conn.busy_timeout(Duration::from_secs(5)).unwrap();
                conn.execute(sql, []).unwrap() as u64
            }
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A client logged in as `username`.
    pub async fn logged_in(&self, username: &str, lang: &str) -> reqwest::Client {
        let c = client_in(lang);
        let page = c.get(self.url("/login")).send().await.unwrap();
        let html = page.text().await.unwrap();
        let form = [("csrf", csrf_of(&html)), ("username", username.into()), ("password", PASSWORD.into())];
        let r = c.post(self.url("/login")).form(&form).send().await.unwrap();
        assert_eq!(r.status(), 303, "log-in of {username}");
        c
    }
}
