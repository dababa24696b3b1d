//! The real `repogate serve` binary as a child process: for what only a
//! process shows (its SIGHUP handler, its log subscriber writing stderr, the
//! order in which it binds and becomes ready).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use http::Method;
use serde_json::Value;
use tempfile::TempDir;

use super::*;

/// How long a debug build on a busy two-core box may take to start or stop.
pub const STARTUP: Duration = Duration::from_secs(30);
/// How long a test waits for a reload, a log line or a metric to show up.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// The `[server]`, `[admin]` and `[store]` tables of a child's config, with
/// `{proxy}`, `{admin}` and `{store}` filled in by [`fill`]. One
/// worker: the box has two cores and several gateways run at once.
pub const HEAD: &str = "[server]\nlisten = \"{proxy}\"\nworkers = 1\n\
                        [admin]\nlisten = \"{admin}\"\n[store]\npath = \"{store}\"\n";

/// A running `repogate serve`, killed when dropped.
pub struct Process {
    child: Child,
    pub dir: TempDir,
    /// The path given to `--config`.
    pub config: PathBuf,
    pub proxy: u16,
    pub admin: u16,
    log: PathBuf,
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Process {
    /// Starts the binary on `HEAD` plus `rest` in `repogate.toml` of a new
    /// folder and waits until `/readyz` answers. Ports are picked free just
    /// before; if another process takes one meanwhile, starts again.
    pub async fn start(rest: &str) -> Process {
        Process::start_with(&format!("{HEAD}{rest}")).await
    }

    /// Like [`Process::start`] with the whole config template given.
    pub async fn start_with(template: &str) -> Process {
        for _ in 0..3 {
            let dir = tempfile::tempdir().unwrap();
            let (proxy, admin) = (free_port(), free_port());
            let config = dir.path().join("repogate.toml");
            std::fs::write(&config, fill(template, dir.path(), proxy, admin)).unwrap();
            let mut process = Process::spawn(dir, config, proxy, admin);
            match process.wait_ready().await {
                Ok(()) => return process,
                Err(log) if log.contains("cannot listen on") => continue,
                Err(log) => panic!("repogate did not start:\n{log}"),
            }
        }
        panic!("three attempts at free ports all clashed");
    }

    /// Spawns `repogate serve --config CONFIG` (already written) with stderr
    /// to a file in `dir`, without waiting for anything.
    pub fn spawn(dir: TempDir, config: PathBuf, proxy: u16, admin: u16) -> Process {
        let log = dir.path().join("stderr.log");
        let stderr = std::fs::File::create(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_repogate"))
            .args(["serve", "--config"])
            .arg(&config)
            .env_remove("RUST_LOG")
            .env_remove("NO_COLOR")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("the repogate binary runs");
        Process {
            child,
            dir,
            config,
            proxy,
            admin,
            log,
        }
    }

    /// `template` with this process's addresses and store folder.
    pub fn fill(&self, template: &str) -> String {
        fill(template, self.dir.path(), self.proxy, self.admin)
    }

    /// Waits until `/readyz` answers 200; the log if the process exits first.
    pub async fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + STARTUP;
        let readyz = self.admin_url("/readyz");
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("exited with {status}:\n{}", self.log()));
            }
            if probe(&readyz).await == Some(200) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        Err(format!("not ready after {STARTUP:?}:\n{}", self.log()))
    }

    /// Whether the process has exited, and how.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().unwrap()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.proxy)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.admin)
    }

    /// Everything the process wrote to stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Every stderr line parsed as JSON; panics on a line that is not.
    pub fn json_lines(&self) -> Vec<Value> {
        json_lines(&self.log())
    }

    /// Polls the JSON log until `count` lines satisfy `wanted`; returns them all.
    pub async fn wait_for_lines(
        &self,
        what: &str,
        count: usize,
        wanted: impl Fn(&Value) -> bool,
    ) -> Vec<Value> {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let lines: Vec<Value> = self.json_lines().into_iter().filter(&wanted).collect();
            if lines.len() >= count {
                return lines;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {count} log lines {what}; log:\n{}",
                lines.len(),
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sends SIGHUP with the system's `kill`.
    pub fn sighup(&self) {
        let status = Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -HUP failed: {status}");
    }

    /// Logs in as `admin` with password `pw`; returns the session.
    pub async fn login(&self) -> String {
        let body = r#"{"user":"admin","password":"pw"}"#;
        let reply = send(Method::POST, &self.admin_url("/admin/v1/login"), &[], body).await;
        assert_eq!(reply.status, 200, "login: {:?}", reply.body);
        reply.json()["session"].as_str().unwrap().to_owned()
    }

    /// `GET /admin/v1/status`.
    pub async fn status(&self, session: &str) -> Value {
        let auth = format!("Bearer {session}");
        let url = self.admin_url("/admin/v1/status");
        let reply = send(Method::GET, &url, &[("authorization", &auth)], "").await;
        assert_eq!(reply.status, 200, "status: {:?}", reply.body);
        reply.json()
    }

    /// Polls the status until `done` holds.
    pub async fn wait_for_status(
        &self,
        session: &str,
        what: &str,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let status = self.status(session).await;
            if done(&status) {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "never reached {what}; status: {status:#}\nlog:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Mints a viewer token on acme/widgets through the admin API; returns
    /// (id, secret).
    pub async fn mint(&self, session: &str) -> (String, String) {
        let auth = format!("Bearer {session}");
        let body = r#"{"description":"operations","grants":{"acme/widgets":"viewer"}}"#;
        let url = self.admin_url("/admin/v1/tokens");
        let reply = send(Method::POST, &url, &[("authorization", &auth)], body).await;
        assert_eq!(reply.status, 201, "mint: {:?}", reply.body);
        let json = reply.json();
        let id = json["id"].as_str().unwrap().to_owned();
        let secret = json["token"].as_str().unwrap().to_owned();
        (id, secret)
    }
}

/// `template` with `{proxy}` and `{admin}` on loopback at those ports and
/// `{store}` a folder in `dir`.
pub fn fill(template: &str, dir: &Path, proxy: u16, admin: u16) -> String {
    template
        .replace("{proxy}", &format!("127.0.0.1:{proxy}"))
        .replace("{admin}", &format!("127.0.0.1:{admin}"))
        .replace("{store}", &dir.join("db").display().to_string())
}

/// Each non-empty line of `log` parsed as JSON; panics on one that is not.
pub fn json_lines(log: &str) -> Vec<Value> {
    log.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("a log line is not JSON ({e}): {l:?}\nlog:\n{log}"))
        })
        .collect()
}

/// Writes `text` beside `path` and renames it over `path`, as editors do.
pub fn replace_file(path: &Path, text: &str) {
    let temporary = path.with_extension("toml.partial");
    std::fs::write(&temporary, text).unwrap();
    std::fs::rename(&temporary, path).unwrap();
}
