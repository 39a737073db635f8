//! Runs the real `refundry` binary: one-shot commands (migrate, keys create,
//! audit verify) and `refundry serve` as a child process that can be
//! SIGKILLed and started again on the same database and port.

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// `refundry` beside the running program (`target/release/refundry` when
/// this is `target/release/refundry-bench`).
pub fn default_binary() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot find the running program")?;
    let dir = exe.parent().context("the running program has no directory")?;
    Ok(dir.join(format!("refundry{}", std::env::consts::EXE_SUFFIX)))
}

/// The given binary, or the default one; it must exist.
pub fn resolve_binary(given: Option<&Path>) -> anyhow::Result<PathBuf> {
    let path = match given {
        Some(p) => p.to_owned(),
        None => default_binary()?,
    };
    if !path.is_file() {
        bail!(
            "no refundry binary at {}: build it (cargo build --release -p refundry) or pass --refundry PATH",
            path.display()
        );
    }
    Ok(path)
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// How to run the binary against one database.
#[derive(Debug, Clone)]
pub struct Refundry {
    pub binary: PathBuf,
    database_url: String,
    workdir: PathBuf,
    env: Vec<(String, String)>,
}

impl Refundry {
    pub fn new(binary: PathBuf, database_url: String, workdir: &Path, env: &[(&str, String)]) -> Refundry {
        Refundry {
            binary,
            database_url,
            workdir: workdir.to_owned(),
            env: env.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect(),
        }
    }

    /// A command with a clean configuration: no `REFUNDRY_*` or `RUST_LOG`
    /// from the caller's environment, and the temp dir as working directory
    /// so no `./refundry.toml` is read.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(&self.binary);
        cmd.current_dir(&self.workdir).env_remove("RUST_LOG");
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("REFUNDRY_") {
                cmd.env_remove(name);
            }
        }
        cmd.env("REFUNDRY_DATABASE_URL", &self.database_url);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    fn run(&self, args: &[&str]) -> anyhow::Result<std::process::Output> {
        let out = self
            .command()
            .args(args)
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("cannot run {}", self.binary.display()))?;
        Ok(out)
    }

    pub fn migrate(&self) -> anyhow::Result<()> {
        let out = self.run(&["migrate"])?;
        if !out.status.success() {
            bail!("refundry migrate failed: {}", String::from_utf8_lossy(&out.stderr).trim());
        }
        Ok(())
    }

    /// `refundry keys create --name NAME`: the secret is on stdout.
    pub fn create_key(&self, name: &str) -> anyhow::Result<String> {
        let out = self.run(&["keys", "create", "--name", name])?;
        if !out.status.success() {
            bail!("refundry keys create failed: {}", String::from_utf8_lossy(&out.stderr).trim());
        }
        let key = String::from_utf8(out.stdout)?.trim().to_owned();
        if key.is_empty() {
            bail!("refundry keys create printed no key");
        }
        Ok(key)
    }

    /// `refundry audit verify`: whether it exited 0, and what it said.
    pub fn audit_verify(&self) -> anyhow::Result<(bool, String)> {
        let out = self.run(&["audit", "verify"])?;
        let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        Ok((out.status.success(), said.trim().to_owned()))
    }

    pub fn version(&self) -> String {
        self.run(&["--version"])
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_else(|| "refundry (version unknown)".into())
    }
}

/// `refundry serve` on 127.0.0.1:`port`.
pub struct Server {
    refundry: Refundry,
    pub port: u16,
    pub base: String,
    child: Option<Child>,
    log: PathBuf,
}

impl Server {
    /// Starts the server on a free port and waits until `/readyz` answers
    /// 200. A port found free may be taken (by another program's outgoing
    /// connection, say) before the server binds it; then another is tried.
    pub async fn start(refundry: Refundry, http: &reqwest::Client) -> anyhow::Result<Server> {
        let log = refundry.workdir.join("server.log");
        let mut server = Server { refundry, port: 0, base: String::new(), child: None, log };
        for _ in 0..5 {
            server.port = free_port()?;
            server.base = format!("http://127.0.0.1:{}", server.port);
            server.spawn()?;
            match server.wait_ready(http, Duration::from_secs(60)).await {
                Ok(()) => return Ok(server),
                Err(_) if server.log_tail().contains("cannot listen") => continue,
                Err(e) => return Err(e),
            }
        }
        bail!("no free port could be bound in five tries:\n{}", server.log_tail())
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let log = File::options().create(true).append(true).open(&self.log)?;
        let child = self
            .refundry
            .command()
            .args(["serve", "--listen", &format!("127.0.0.1:{}", self.port)])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {}", self.refundry.binary.display()))?;
        self.child = Some(child);
        Ok(())
    }

    /// The running server's process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// The end of the server's log, for error messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    /// Keeps a copy of the server's whole log (every restart) at `to`.
    pub fn keep_log(&self, to: &Path) -> std::io::Result<u64> {
        std::fs::copy(&self.log, to)
    }

    /// Starts the (stopped or killed) server again on the same database and
    /// port, and waits until it is ready. A port still held by the killed
    /// process is retried.
    pub async fn restart(&mut self, http: &reqwest::Client) -> anyhow::Result<()> {
        let started = Instant::now();
        loop {
            self.spawn()?;
            match self.wait_ready(http, Duration::from_secs(60)).await {
                Ok(()) => return Ok(()),
                Err(_) if started.elapsed() < Duration::from_secs(30) && self.log_tail().contains("cannot listen") => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Polls `/readyz` until it answers 200; fails when the process exits.
    pub async fn wait_ready(&mut self, http: &reqwest::Client, timeout: Duration) -> anyhow::Result<()> {
        let started = Instant::now();
        let url = format!("{}/readyz", self.base);
        loop {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                self.child = None;
                bail!("refundry serve exited ({status}) before it was ready:\n{}", self.log_tail());
            }
            let ready = http.get(&url).timeout(Duration::from_secs(2)).send().await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                return Ok(());
            }
            if started.elapsed() > timeout {
                bail!("refundry serve was not ready after {timeout:?}:\n{}", self.log_tail());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGKILL, as a power cut would: nothing is finished.
    pub fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill().context("cannot kill refundry serve")?;
            child.wait()?;
        }
        Ok(())
    }

    /// SIGTERM (graceful: requests and refunds in flight are finished),
    /// then SIGKILL after 30 s.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        let Some(mut child) = self.child.take() else { return Ok(()) };
        let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        let started = Instant::now();
        while child.try_wait()?.is_none() {
            if started.elapsed() > Duration::from_secs(30) {
                child.kill()?;
                child.wait()?;
                bail!("refundry serve did not stop within 30 s of SIGTERM; killed it");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
