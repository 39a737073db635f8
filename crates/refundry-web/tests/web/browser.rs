//! The back office in headless Chromium, as a cashier, a supervisor and a
//! customer use it, with a screenshot of each main page in both languages.
//!
//! Needs `chromium` and `chromedriver` (Debian: chromium, chromium-driver).
//! Without them the test says it was skipped, unless
//! REFUNDRY_REQUIRE_BROWSER=1 (set by CI), which makes it fail.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use thirtyfour::prelude::*;

use crate::support::{self, PASSWORD, TestWeb};

const CHROMIUM: &[&str] = &["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"];
const DRIVER: &[&str] = &["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"];

fn first_existing(paths: &[&str]) -> Option<String> {
    paths.iter().find(|p| Path::new(p).exists()).map(|p| p.to_string())
}

/// chromedriver on a free port, stopped when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    async fn start(binary: &str) -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(binary)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let started = Instant::now();
        while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            assert!(started.elapsed() < Duration::from_secs(20), "chromedriver did not listen");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Driver { child, url: format!("http://127.0.0.1:{port}") }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn screenshot_dir() -> PathBuf {
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    let dir = target.join("web-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

struct Browser {
    driver: WebDriver,
    web: TestWeb,
    shots: PathBuf,
}

impl Browser {
    async fn go(&self, path: &str) {
        self.driver.goto(self.web.url(path)).await.unwrap();
    }

    async fn el(&self, css: &str) -> WebElement {
        self.driver
            .query(By::Css(css))
            .wait(Duration::from_secs(10), Duration::from_millis(50))
            .first()
            .await
            .unwrap_or_else(|e| panic!("no {css}: {e}"))
    }

    async fn text(&self) -> String {
        self.el("main").await.text().await.unwrap()
    }

    /// Waits until the CSS selector matches (htmx swaps, polling).
    async fn wait_for(&self, css: &str, timeout: Duration) {
        let started = Instant::now();
        loop {
            if !self.driver.find_all(By::Css(css)).await.unwrap().is_empty() {
                return;
            }
            if started.elapsed() > timeout {
                let source = self.driver.source().await.unwrap_or_default();
                panic!("{css} did not appear in {timeout:?}; page:\n{source}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn shot(&self, name: &str) {
        let lang = self.el("html").await.attr("lang").await.unwrap().unwrap_or_default();
        self.driver.screenshot(&self.shots.join(format!("{name}.{lang}.png"))).await.unwrap();
    }

    /// The page in the current language, then in the other, then back:
    /// the switch link on every page returns to the page it was on.
    async fn shots_both(&self, name: &str) {
        self.shot(name).await;
        self.el("[data-testid=lang-switch]").await.click().await.unwrap();
        self.wait_for("main", Duration::from_secs(5)).await;
        self.shot(name).await;
        self.el("[data-testid=lang-switch]").await.click().await.unwrap();
        self.wait_for("main", Duration::from_secs(5)).await;
    }

    async fn log_in(&self, username: &str) {
        self.go("/login").await;
        self.el("#username").await.send_keys(username).await.unwrap();
        self.el("#password").await.send_keys(PASSWORD.to_owned() + Key::Enter).await.unwrap();
        self.wait_for("nav", Duration::from_secs(10)).await;
    }

    async fn log_out(&self) {
        self.el("form[action='/logout'] button").await.click().await.unwrap();
        self.wait_for("#username", Duration::from_secs(5)).await;
    }
}

#[tokio::test]
async fn cashier_supervisor_and_customer_in_a_real_browser() {
    let (Some(chromium), Some(chromedriver)) = (first_existing(CHROMIUM), first_existing(DRIVER)) else {
        if std::env::var("REFUNDRY_REQUIRE_BROWSER").as_deref() == Ok("1") {
            panic!("REFUNDRY_REQUIRE_BROWSER=1 but chromium or chromedriver is missing");
        }
        println!(
            "SKIPPED: the browser tests need chromium and chromedriver (apt-get install chromium chromium-driver)"
        );
        eprintln!(
            "SKIPPED: the browser tests need chromium and chromedriver (apt-get install chromium chromium-driver)"
        );
        return;
    };
    let chromedriver = Driver::start(&chromedriver).await;
    let mut caps = DesiredCapabilities::chrome();
    caps.set_binary(&chromium).unwrap();
    caps.set_headless().unwrap();
    caps.set_no_sandbox().unwrap();
    caps.set_disable_dev_shm_usage().unwrap();
    caps.add_arg("--window-size=1280,1100").unwrap();
    caps.add_arg("--lang=zh-CN").unwrap();
    caps.add_experimental_option("prefs", serde_json::json!({"intl.accept_languages": "zh-CN,zh"})).unwrap();
    let driver = WebDriver::new(&chromedriver.url, caps).await.expect("a Chromium session");
    let b = Browser { driver, web: support::spawn().await, shots: screenshot_dir() };
    let result = flow(&b).await;
    b.driver.clone().quit().await.ok();
    drop(chromedriver);
    result
}

async fn flow(b: &Browser) {
    let sale = b.web.big_sale.clone();
    // the browser speaks Chinese: so does the log-in page
    b.go("/login").await;
    assert!(b.text().await.contains("登录"), "{}", b.text().await);
    b.shots_both("login").await;

    // a cashier finds the sale with the keyboard alone
    b.log_in("cashier.wang").await;
    b.shots_both("home").await;
    b.go("/counter").await;
    b.shots_both("counter-search").await;
    b.el("#voucher").await.send_keys(sale.voucher.clone() + Key::Enter).await.unwrap();
    b.wait_for("[data-testid=submit-refund]", Duration::from_secs(10)).await;
    // one item back: the policy asks for a supervisor before anything is sent
    let qty = b.el("#qty-0").await;
    qty.send_keys("1").await.unwrap();
    b.wait_for("[data-outcome=requires_approval]", Duration::from_secs(10)).await;
    assert!(b.text().await.contains("需主管审批"));
    b.shots_both("counter-refund").await;
    // the language switch reloaded the page: pick the item again, Enter submits
    b.el("#qty-0").await.send_keys("1").await.unwrap();
    b.wait_for("[data-outcome=requires_approval]", Duration::from_secs(10)).await;
    b.el("#qty-0").await.send_keys(Key::Enter).await.unwrap();
    b.wait_for("[data-status=requires_approval]", Duration::from_secs(10)).await;
    b.shots_both("refund-waiting").await;
    let refund_url = b.driver.current_url().await.unwrap().path().to_owned();
    b.log_out().await;

    // a supervisor approves it
    b.log_in("supervisor.li").await;
    b.go("/approvals").await;
    assert!(b.text().await.contains("¥600.00"));
    b.shots_both("approvals").await;
    b.el("input[name=note]").await.send_keys("已核对商品").await.unwrap();
    b.el("[data-testid=approve]").await.click().await.unwrap();
    b.wait_for(".notice.good", Duration::from_secs(10)).await;

    // the refund page follows it by itself to succeeded
    b.go(&refund_url).await;
    b.wait_for("[data-status=succeeded]", Duration::from_secs(20)).await;
    assert!(b.text().await.contains("已批准"), "the timeline shows the approval");
    b.shots_both("refund-succeeded").await;

    // the slip
    b.el("[data-testid=print-slip]").await.click().await.unwrap();
    b.wait_for("[data-testid=slip-text]", Duration::from_secs(10)).await;
    let slip = b.el("[data-testid=slip-text]").await.text().await.unwrap();
    assert!(slip.contains("退款单据") && slip.contains("622202******4321"), "{slip}");
    b.shots_both("slip").await;

    // switch language: the same page in English
    b.el("[data-testid=lang-switch]").await.click().await.unwrap();
    b.wait_for("html[lang=en]", Duration::from_secs(5)).await;
    assert!(b.text().await.contains("Refund slip"));
    b.go("/sales").await;
    b.shots_both("sales").await;
    b.go(&format!("/sales/{}", sale.id)).await;
    b.shots_both("sale").await;
    b.go("/refunds").await;
    b.shots_both("refunds").await;

    // the dashboard draws its charts from the figures in its tables
    b.go("/dashboard").await;
    b.wait_for(".chart[data-chart=days] canvas", Duration::from_secs(10)).await;
    assert!(b.text().await.contains("¥600.00"), "this month's refunds include the coat");
    b.shots_both("dashboard").await;
    b.go("/audit").await;
    b.el("[data-testid=audit-chain] button").await.click().await.unwrap();
    b.wait_for(".chain.ok", Duration::from_secs(10)).await;
    b.shots_both("audit").await;
    b.log_out().await;

    // the customer asks on the self-service page, in English now
    let small = b.web.small_sale.clone();
    b.go("/self-service").await;
    b.shots_both("self-service").await;
    b.el("#reference").await.send_keys(&small.voucher).await.unwrap();
    set_date(b, "#date", &small.date).await;
    b.el("#amount").await.send_keys(small.amount).await.unwrap();
    b.el("#last4").await.send_keys(small.last4.clone() + Key::Enter).await.unwrap();
    b.wait_for("[data-testid=self-found]", Duration::from_secs(10)).await;
    b.shot("self-service-found").await;
    b.el("#email").await.send_keys("customer@example.cn").await.unwrap();
    b.el("[data-testid=self-request]").await.click().await.unwrap();
    b.wait_for("[data-testid=self-status][data-status=requires_approval]", Duration::from_secs(10)).await;
    assert!(b.driver.current_url().await.unwrap().path().starts_with("/self-service/status/"));
    b.shots_both("self-service-status").await;

    cases_and_settings(b).await;
}

/// The case pages (a risk analyst's disputes, a supervisor's wrong
/// charges) and the administrator's settings, in both languages.
async fn cases_and_settings(b: &Browser) {
    use refundry_core::ids::SaleId;
    let system = refundry_app::Actor::system(b.web.merchant, "test");
    let small = SaleId::parse(&b.web.small_sale.id).unwrap();
    let dispute = refundry_app::disputes::NewDispute {
        sale_id: small,
        case_ref: "CB-2030-0042".into(),
        network: refundry_core::dispute::Network::UnionPay,
        reason_code: "4514".into(),
        stage: refundry_core::dispute::DisputeStage::Chargeback,
        amount_minor: 2_200,
        due_by: "2030-03-01T00:00:00Z".parse().unwrap(),
        note: None,
    };
    let dispute = b.web.app.open_dispute(&system, dispute).await.unwrap();
    let correction = refundry_app::corrections::NewCorrection {
        sale_id: small,
        kind: "duplicate_charge".into(),
        cause: "operator_error".into(),
        responsible_party: None,
        note: Some("扣了两次 charged twice".into()),
    };
    let correction = b.web.app.open_correction(&system, correction).await.unwrap();

    b.log_in("risk.chen").await;
    b.go("/disputes").await;
    b.shots_both("disputes").await;
    b.go(&format!("/disputes/{}", dispute.id)).await;
    b.wait_for("[data-testid=evidence-summary]", Duration::from_secs(5)).await;
    // a file from disk through the browser's own multipart form
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("chat.txt");
    std::fs::write(&file, "顾客确认已收到退款 / customer confirmed the refund\n").unwrap();
    b.el("#evidence-note").await.send_keys("聊天记录").await.unwrap();
    b.el("#file").await.send_keys(file.to_str().unwrap()).await.unwrap();
    b.el("[data-testid=evidence-form] button[type=submit]").await.click().await.unwrap();
    b.wait_for("[data-testid=evidence-file]", Duration::from_secs(10)).await;
    assert!(b.text().await.contains("chat.txt"));
    b.shots_both("dispute").await;
    b.log_out().await;

    b.log_in("supervisor.li").await;
    b.go("/corrections").await;
    b.shots_both("corrections").await;
    b.go(&format!("/corrections/{}", correction.id)).await;
    b.shots_both("correction").await;
    b.log_out().await;

    b.log_in("admin.zhao").await;
    for page in ["policy", "users", "keys", "webhooks"] {
        b.go(&format!("/settings/{page}")).await;
        b.shots_both(&format!("settings-{page}")).await;
    }
}

/// Date inputs take keys in the browser's locale order; setting the value
/// directly is locale-proof.
async fn set_date(b: &Browser, css: &str, value: &str) {
    let el = b.el(css).await;
    b.driver
        .execute("arguments[0].value = arguments[1];", vec![el.to_json().unwrap(), serde_json::json!(value)])
        .await
        .unwrap();
}
