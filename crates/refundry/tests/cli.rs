//! The `refundry` binary as an operator uses it.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

mod support;

fn refundry(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_refundry"));
    cmd.current_dir(dir)
        .env_remove("RUST_LOG")
        .env("REFUNDRY_DATABASE_URL", format!("sqlite:{}", dir.join("cli.db").display()));
    cmd
}

fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    out
}

struct Server {
    child: Child,
    base: String,
    logs: std::thread::JoinHandle<String>,
}

impl Server {
    fn start(dir: &Path, extra_env: &[(&str, &str)]) -> Server {
        let mut cmd = refundry(dir);
        cmd.args(["serve", "--listen", "127.0.0.1:0"]).stdout(Stdio::null()).stderr(Stdio::piped());
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let (base, logs) = support::serving(&mut child, Duration::from_secs(20));
        Server { child, base, logs }
    }

    /// SIGTERM, then everything it logged.
    fn stop(mut self) -> String {
        sigterm(self.child.id());
        let status = self.child.wait().unwrap();
        assert!(status.success(), "graceful stop exits 0, got {status}");
        self.logs.join().unwrap()
    }
}

fn sigterm(pid: u32) {
    let ok = Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap().success();
    assert!(ok);
}

fn create_key(dir: &Path) -> String {
    let out = run_ok(refundry(dir).args(["keys", "create", "--name", "counter T0001"]));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[test]
fn help_explains_every_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_ok(refundry(dir.path()).arg("--help"));
    let help = String::from_utf8(out.stdout).unwrap();
    for sub in ["serve", "migrate", "demo", "keys", "users", "audit", "disputes", "jobs", "acquirer-sim"] {
        assert!(help.contains(sub), "{sub} in --help:\n{help}");
    }
    let out = run_ok(refundry(dir.path()).args(["keys", "create", "--help"]));
    assert!(String::from_utf8(out.stdout).unwrap().contains("--name"));
}

#[test]
fn keys_create_prints_the_secret_alone_and_it_works() {
    let dir = tempfile::tempdir().unwrap();
    let key = create_key(dir.path());
    assert!(key.starts_with("rk_") && !key.contains(char::is_whitespace), "{key:?}");
    assert_eq!(key.len(), 3 + 32 + 1 + 64);
    let server = Server::start(dir.path(), &[]);
    let res =
        reqwest::blocking::Client::new().get(format!("{}/v1/sales", server.base)).bearer_auth(&key).send().unwrap();
    assert_eq!(res.status(), 200);
    server.stop();
}

#[test]
fn migrate_is_repeatable_and_bad_config_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let first = run_ok(refundry(dir.path()).arg("migrate"));
    assert!(String::from_utf8_lossy(&first.stderr).contains("applied 0001_init"));
    let again = run_ok(refundry(dir.path()).arg("migrate"));
    assert!(String::from_utf8_lossy(&again.stderr).contains("up to date"));
    let out = refundry(dir.path()).arg("migrate").env("REFUNDRY_DATABASE_URL", "mysql://nope").output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("database_url"));
}

#[test]
fn card_numbers_sent_to_the_server_appear_in_no_log() {
    let dir = tempfile::tempdir().unwrap();
    let key = create_key(dir.path());
    let server = Server::start(dir.path(), &[("REFUNDRY_LOG_LEVEL", "debug")]);
    let pan = "6222021234567890128";
    let client = reqwest::blocking::Client::new();
    let body = json!({
        "amount": 100, "currency": "cny", "terminal_id": "T1", "captured_at": support::an_hour_ago(),
        "payment_method": {"type": "card", "brand": "unionpay", "first6": "622202", "last4": "0128", "entry_mode": "chip", "card_number": pan}
    });
    let res = client.post(format!("{}/v1/sales", server.base)).bearer_auth(&key).json(&body).send().unwrap();
    assert_eq!(res.status(), 422);
    let res = client.get(format!("{}/v1/sales?rrn={pan}", server.base)).bearer_auth(&key).send().unwrap();
    assert_eq!(res.status(), 422);
    let logs = server.stop();
    assert!(logs.contains("/v1/sales"), "requests are logged: {logs}");
    assert!(!logs.contains(pan), "a card number reached the log");
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        assert!(!String::from_utf8_lossy(&bytes).contains(pan), "a card number reached the disk");
    }
}

#[test]
fn demo_seeds_a_fresh_database_every_time() {
    let dir = tempfile::tempdir().unwrap();
    for _ in 0..2 {
        let out = Command::new(env!("CARGO_BIN_EXE_refundry"))
            .current_dir(dir.path())
            .env_remove("REFUNDRY_DATABASE_URL")
            .args(["demo", "--no-serve"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let key = String::from_utf8(out.stdout).unwrap();
        assert!(key.trim().starts_with("rk_"));
        assert!(String::from_utf8_lossy(&out.stderr).contains("sales"));
    }
    assert!(dir.path().join("refundry-demo.db").exists());
    assert!(!dir.path().join("refundry.db").exists(), "the demo never touches the main database");
}

#[test]
fn audit_verify_names_the_event_that_was_altered() {
    let dir = tempfile::tempdir().unwrap();
    let key = create_key(dir.path());
    let server = Server::start(dir.path(), &[]);
    let client = reqwest::blocking::Client::new();
    let sale: Value = client
        .post(format!("{}/v1/sales", server.base))
        .bearer_auth(&key)
        .json(&json!({"amount": 5000, "currency": "cny", "terminal_id": "T1", "captured_at": support::an_hour_ago(), "payment_method": {"type": "cash"}}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let res = client
        .post(format!("{}/v1/refunds", server.base))
        .bearer_auth(&key)
        .header("Idempotency-Key", "a1")
        .json(&json!({"sale_id": sale["id"], "amount": 5000, "reason": "other"}))
        .send()
        .unwrap();
    assert_eq!(res.status(), 201);
    server.stop();
    let ok = run_ok(refundry(dir.path()).args(["audit", "verify"]));
    assert!(String::from_utf8_lossy(&ok.stderr).contains("chain intact"));

    let conn = rusqlite::Connection::open(dir.path().join("cli.db")).unwrap();
    let changed = conn
        .execute("UPDATE audit_events SET data = replace(data, '5000', '50') WHERE action = 'refund.requested'", [])
        .unwrap();
    assert_eq!(changed, 1);
    let seq: i64 =
        conn.query_row("SELECT seq FROM audit_events WHERE action = 'refund.requested'", [], |r| r.get(0)).unwrap();
    drop(conn);
    let out = refundry(dir.path()).args(["audit", "verify"]).output().unwrap();
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains(&format!("event {seq} was altered")), "{said}");
}

/// The README's curl walk-through, run as written against `refundry demo`.
#[test]
fn the_readme_walkthrough_works_as_written() {
    use std::io::BufRead;
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let block =
        readme.split("<!-- walkthrough:start -->").nth(1).unwrap().split("<!-- walkthrough:end -->").next().unwrap();
    let script: String = block.lines().filter(|l| !l.starts_with("```")).map(|l| format!("{l}\n")).collect();
    assert!(script.contains("export KEY=rk_…"));

    let dir = tempfile::tempdir().unwrap();
    let mut demo = Command::new(env!("CARGO_BIN_EXE_refundry"))
        .current_dir(dir.path())
        .env_remove("REFUNDRY_DATABASE_URL")
        .env_remove("RUST_LOG")
        .args(["demo", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut key = String::new();
    std::io::BufReader::new(demo.stdout.take().unwrap()).read_line(&mut key).unwrap();
    let (base, _logs) = support::serving(&mut demo, Duration::from_secs(20));
    let script = script
        .replace("export KEY=rk_…", &format!("export KEY={}", key.trim()))
        .replace("http://127.0.0.1:8080", &base);
    let out = Command::new("bash").args(["-euo", "pipefail", "-c", &script]).output().unwrap();
    sigterm(demo.id());
    demo.wait().unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(said.contains(r#""status":"succeeded""#), "{said}");
    assert!(said.contains(r#""code":"refund_exceeds_refundable""#), "{said}");
    assert!(said.contains(r#""refunded_amount":2200,"refundable_amount":3700"#), "{said}");
    assert!(said.contains(r#""status":"requires_approval""#), "{said}");
    assert!(said.contains(r#""code":"amount_over_limit""#), "{said}");
    assert!(said.contains(r#""required_scope":"refunds:approve""#), "the cashier cannot approve: {said}");
    assert!(said.contains(r#""decision_note":"machine checked, it leaks""#), "{said}");
}

#[test]
fn audit_verify_notices_removed_events_and_users_are_created_from_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    create_key(dir.path());
    let out = run_ok(
        refundry(dir.path())
            .args(["users", "create", "--username", "li.qiang", "--role", "supervisor"])
            .env("REFUNDRY_PASSWORD", "correct horse battery"),
    );
    assert!(String::from_utf8(out.stdout).unwrap().trim().starts_with("usr_"));
    let out = refundry(dir.path())
        .args(["users", "create", "--username", "li.lei", "--role", "cashier"])
        .env("REFUNDRY_PASSWORD", "short")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 10 characters"));
    run_ok(refundry(dir.path()).args(["audit", "verify"]));

    let conn = rusqlite::Connection::open(dir.path().join("cli.db")).unwrap();
    let last: i64 = conn.query_row("SELECT MAX(seq) FROM audit_events", [], |r| r.get(0)).unwrap();
    conn.execute("DELETE FROM audit_events WHERE seq = ?1", [last]).unwrap();
    drop(conn);
    let out = refundry(dir.path()).args(["audit", "verify"]).output().unwrap();
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains(&format!("the events after {} were removed", last - 1)), "{said}");
}

#[test]
fn disputes_import_from_the_cli_names_bad_rows_and_imports_good_files_once() {
    let dir = tempfile::tempdir().unwrap();
    let key = create_key(dir.path());
    let server = Server::start(dir.path(), &[]);
    let sale = json!({"amount": 5000, "currency": "cny", "terminal_id": "T1", "rrn": "123456789012",
        "captured_at": support::an_hour_ago(), "payment_method": {"type": "cash"}});
    let res = reqwest::blocking::Client::new()
        .post(format!("{}/v1/sales", server.base))
        .bearer_auth(&key)
        .json(&sale)
        .send()
        .unwrap();
    assert_eq!(res.status(), 201);
    server.stop();
    let header = "case_ref,network,reason_code,stage,amount,currency,due_by,rrn,voucher_no,terminal_id,note\n";
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, format!("{header}CB-1,visa,13.1,,5000,cny,not-a-date,123456789012,,,\n")).unwrap();
    let out = refundry(dir.path()).args(["disputes", "import", bad.to_str().unwrap()]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("row 2: due_by"), "{}", String::from_utf8_lossy(&out.stdout));
    let good = dir.path().join("good.csv");
    std::fs::write(&good, format!("{header}CB-1,visa,13.1,,5000,cny,2030-12-20T00:00:00Z,123456789012,,,\n")).unwrap();
    let out = run_ok(refundry(dir.path()).args(["disputes", "import", good.to_str().unwrap()]));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("1 cases opened"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run_ok(refundry(dir.path()).args(["disputes", "import", good.to_str().unwrap()]));
    assert!(String::from_utf8_lossy(&out.stderr).contains("0 cases opened, 1 already known"));
}
