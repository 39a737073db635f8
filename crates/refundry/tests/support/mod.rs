//! Starting `refundry` on a port the kernel picks (`--listen 127.0.0.1:0`)
//! and learning it from the log, rather than picking a free port first:
//! a port found free and let go may be taken by another test's connection
//! before the server binds it. And the capture time of the sales the tests
//! make.

use std::io::{BufRead, BufReader};
use std::process::Child;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The log line `serve` and `demo` write once they listen, with `addr=`.
const SERVING: &str = "refundry is serving";

/// Waits until `child` logs that it is serving and then answers `/readyz`
/// with 200, each within `within`. Returns its base URL, and a thread that
/// gathers everything it logs on stderr (which must be piped) until it
/// exits. Panics, with that log, if it exits before serving.
pub fn serving(child: &mut Child, within: Duration) -> (String, JoinHandle<String>) {
    let stderr = child.stderr.take().expect("stderr must be piped");
    let (found, addr) = mpsc::channel();
    let logs = std::thread::spawn(move || {
        let mut all = String::new();
        let mut found = Some(found);
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains(SERVING)
                && let Some(addr) = line.split_once("addr=").and_then(|(_, rest)| rest.split_whitespace().next())
                && let Some(found) = found.take()
            {
                let _ = found.send(addr.to_owned());
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    let base = match addr.recv_timeout(within) {
        Ok(addr) => format!("http://{addr}"),
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("not serving after {within:?}"),
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            let status = child.wait().map(|s| s.to_string()).unwrap_or_else(|e| e.to_string());
            panic!("exited before serving ({status}):\n{}", logs.join().unwrap_or_default())
        }
    };
    let started = Instant::now();
    while !reqwest::blocking::get(format!("{base}/readyz")).is_ok_and(|r| r.status().is_success()) {
        assert!(started.elapsed() < within, "serving but not ready after {within:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    (base, logs)
}

/// An hour before now (RFC 3339, UTC): sales captured then stay inside
/// every refund window (thirty days for cash) on whatever day the tests
/// run.
pub fn an_hour_ago() -> String {
    (jiff::Timestamp::now() - jiff::SignedDuration::from_hours(1)).to_string()
}
