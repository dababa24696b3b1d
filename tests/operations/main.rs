//! Operations: the config file reloaded while traffic flows (by the file
//! watcher, as an operator's editor triggers it, and by a direct call where a
//! test needs a deterministic moment), a renewed TLS certificate, the metrics
//! scrape, and the readiness and status endpoints an orchestrator polls; and
//! the real binary as a child process for SIGHUP, its log lines and its
//! start-up order.

#[path = "../common/mod.rs"]
mod common;
#[path = "../common/tls.rs"]
mod tls;

mod health;
mod load;
mod logs;
mod process;
mod reload;
mod signals;
mod tls_renewal;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::*;
use http::Method;
use repogate::access::Role;
use serde_json::Value;

/// The gitlab preset on the test upstream, for every path.
const GITLAB: &str = "[[routes]]\nprefix = \"/\"\nupstream = \"up\"\npreset = \"gitlab\"\n";
/// The repositories the tests' tokens are granted on.
const REPOS: &str =
    "[[repositories]]\nname = \"acme/widgets\"\n[[repositories]]\nname = \"acme/gadgets\"\n";
/// A read the gitlab preset maps to `read` on acme/widgets.
const ISSUES: &str = "/api/v4/projects/acme%2Fwidgets/issues";
/// The same read on acme/gadgets.
const GADGET_ISSUES: &str = "/api/v4/projects/acme%2Fgadgets/issues";
/// How long a test waits for the file watcher before failing.
const WATCH_DEADLINE: Duration = Duration::from_secs(5);

/// A gateway with the `admin` user logged in, for status polling.
struct Ops {
    gate: Gate,
    session: String,
}

impl Ops {
    /// Starts a gateway from `rest` plus the `admin` user and logs in.
    async fn start(rest: &str) -> Ops {
        let gate = gateway(&format!("{}{rest}", admin_user())).await;
        let body = r#"{"user":"admin","password":"pw"}"#;
        let reply = send(Method::POST, &gate.admin_url("/admin/v1/login"), &[], body).await;
        assert_eq!(reply.status, 200, "login: {:?}", reply.body);
        let session = reply.json()["session"].as_str().unwrap().to_owned();
        Ops { gate, session }
    }

    /// `GET /admin/v1/status`.
    async fn status(&self) -> Value {
        let auth = format!("Bearer {}", self.session);
        let url = self.gate.admin_url("/admin/v1/status");
        let reply = send(Method::GET, &url, &[("authorization", &auth)], "").await;
        assert_eq!(reply.status, 200, "status: {:?}", reply.body);
        reply.json()
    }

    /// Polls the status until `done` holds, failing after the watch deadline.
    async fn wait_for(&self, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + WATCH_DEADLINE;
        loop {
            let status = self.status().await;
            if done(&status) {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the watcher never reloaded to {what}; status: {status:#}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Rewrites the config file after the admin user block (which `rest` must not repeat).
    fn rewrite(&self, rest: &str) -> String {
        rewrite_config(&self.gate, &format!("{}{rest}", admin_user()))
    }
}

fn config_path(gate: &Gate) -> PathBuf {
    gate.dir.path().join("repogate.toml")
}

/// Replaces everything after the harness's `[server]`, `[admin]` and
/// `[store]` tables with `rest`, writing a temporary file and renaming it
/// over the config as editors do. Returns the whole new text.
fn rewrite_config(gate: &Gate, rest: &str) -> String {
    let path = config_path(gate);
    let current = std::fs::read_to_string(&path).unwrap();
    let head = config_text(&gate.dir, "");
    assert!(
        current.starts_with(&head),
        "the harness's tables moved:\n{current}"
    );

    let text = format!("{head}{rest}");
    let temporary = gate.dir.path().join("repogate.toml.partial");
    std::fs::write(&temporary, &text).unwrap();
    std::fs::rename(&temporary, &path).unwrap();
    text
}

/// The 1-based line of `text` that reads exactly `line`.
fn line_of(text: &str, line: &str) -> usize {
    text.lines()
        .position(|l| l == line)
        .unwrap_or_else(|| panic!("no line {line:?} in\n{text}"))
        + 1
}

/// The value of one series in a scrape, 0 when the series is absent.
fn sample(scrape: &str, series: &str) -> f64 {
    scrape
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0.0, |v| {
            let value = v.split_whitespace().next().unwrap_or("");
            value.parse().unwrap_or_else(|_| panic!("{series} = {v:?}"))
        })
}

async fn scrape(gate: &Gate) -> String {
    let reply = send(Method::GET, &gate.admin_url("/metrics"), &[], "").await;
    assert_eq!(reply.status, 200);
    String::from_utf8(reply.body.to_vec()).unwrap()
}

#[tokio::test]
async fn readiness_and_status_after_start() {
    let up = upstream().await;
    let ops = Ops::start(&upstream_route(&up, GITLAB)).await;

    let ready = send(Method::GET, &ops.gate.admin_url("/readyz"), &[], "").await;
    assert_eq!(ready.status, 200);
    assert_eq!(ready.json()["generation"], 1, "{:?}", ready.body);
    let health = send(Method::GET, &ops.gate.admin_url("/healthz"), &[], "").await;
    assert_eq!(health.status, 200);

    let status = ops.status().await;
    assert_eq!(status["generation"], 1, "{status:#}");
    assert!(status["last_reload"].is_null(), "{status:#}");
    let metrics = scrape(&ops.gate).await;
    assert_eq!(sample(&metrics, "repogate_config_generation"), 1.0);
}

#[tokio::test]
async fn metrics_move_with_traffic() {
    let up = upstream().await;
    let gate = gateway(&format!("{}{REPOS}", upstream_route(&up, GITLAB))).await;
    let token = gate.mint(false, &[("acme/widgets", Role::Viewer)]).await;
    let before = scrape(&gate).await;

    let (allowed, denied, anonymous) = (5, 3, 2);
    for _ in 0..allowed {
        assert_eq!(get(&gate.url(ISSUES), &token).await.status, 200);
    }
    for _ in 0..denied {
        assert_eq!(get(&gate.url(GADGET_ISSUES), &token).await.status, 403);
    }
    for _ in 0..anonymous {
        let reply = send(Method::GET, &gate.url(ISSUES), &[], "").await;
        assert_eq!(reply.status, 401);
    }
    let after = scrape(&gate).await;

    let moved = |series: &str| sample(&after, series) - sample(&before, series);
    let requests = |decision: &str, status: u16| {
        moved(&format!(
            "repogate_requests_total{{route=\"/\",decision=\"{decision}\",status=\"{status}\"}}"
        ))
    };
    assert_eq!(requests("Allowed", 200), allowed as f64, "{after}");
    assert_eq!(requests("Denied", 403), denied as f64, "{after}");
    assert_eq!(requests("Denied", 401), anonymous as f64, "{after}");
    let resolved = (allowed + denied) as f64;
    assert_eq!(moved("repogate_tokens_resolved_total"), resolved, "{after}");
    // The first resolution reads the store; every later one is a hit.
    assert_eq!(
        moved("repogate_token_cache_hits_total"),
        resolved - 1.0,
        "{after}"
    );
    assert_eq!(moved("repogate_token_cache_misses_total"), 1.0, "{after}");
    let upstream_count = "repogate_upstream_duration_seconds_count";
    assert_eq!(moved(upstream_count), allowed as f64, "{after}");
    let request_count = "repogate_request_duration_seconds_count";
    assert_eq!(moved(request_count), resolved + anonymous as f64, "{after}");

    assert!(
        !after.contains("rgt_"),
        "a token id reached the scrape:\n{after}"
    );
    assert!(!after.contains(&token[16..48]));
}
