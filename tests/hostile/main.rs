//! Hostile clients: slow and oversized requests, request smuggling, path
//! tricks, HTTP/2 floods and more connections than the cap, against a
//! gateway with small limits.
//!
//! Malformed HTTP goes over a raw `TcpStream`, since a real client library
//! would refuse to send it. Every refusal is checked against what the real
//! upstream saw: nothing.

#[path = "../common/mod.rs"]
mod common;

mod connections;
mod h2_flood;
mod limits;
mod paths;
mod slow;
mod smuggling;

use std::time::{Duration, Instant};

use common::*;
use repogate::access::Role;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

/// A repository the test token may read and write.
pub const ISSUES: &str = "/api/v4/projects/acme%2Fwidgets/issues";
/// An explicit POST route whose rule needs `write` on the captured repository.
pub const UPLOAD: &str = "/upload/acme/widgets";

/// Limits small enough to hit quickly.
pub const HEADER_READ_TIMEOUT_MS: u64 = 1000;
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
pub const MAX_HEADERS: usize = 20;
pub const ADMIN_MAX_BODY: usize = 4096;

/// A gateway with small limits, its upstream, and a developer token on
/// `acme/widgets` (the only repository it may touch).
pub struct Hostile {
    pub up: TestUpstream,
    pub gate: Gate,
    pub token: String,
    _turn: Turn,
}

/// Tests that measure the process's memory run alone: every other test
/// holds a shared guard for its whole run, they hold the exclusive one.
static PROCESS: RwLock<()> = RwLock::const_new(());

/// This test's turn on [`PROCESS`], held until the test ends.
struct Turn {
    _shared: Option<RwLockReadGuard<'static, ()>>,
    _alone: Option<RwLockWriteGuard<'static, ()>>,
}

impl Hostile {
    /// A gateway for a test that may run beside others.
    pub async fn start() -> Hostile {
        let turn = Turn {
            _shared: Some(PROCESS.read().await),
            _alone: None,
        };
        Hostile::start_with(turn).await
    }

    /// A gateway for a test that measures memory: it waits for the others.
    pub async fn start_alone() -> Hostile {
        let turn = Turn {
            _shared: None,
            _alone: Some(PROCESS.write().await),
        };
        Hostile::start_with(turn).await
    }

    async fn start_with(turn: Turn) -> Hostile {
        let up = upstream().await;
        let dir = tempfile::tempdir().unwrap();
        let routes = "[[routes]]\nprefix = \"/\"\nupstream = \"up\"\npreset = \"gitlab\"\n\
             [[routes]]\nprefix = \"/upload/\"\nupstream = \"up\"\n\
             [[routes.rules]]\nmethods = [\"POST\"]\npath = \"/upload/{repo+}\"\naction = \"write\"\n\
             [[routes]]\nprefix = \"/raw/\"\nupstream = \"up\"\n\
             [[routes.rules]]\nmethods = [\"GET\"]\npath = \"/raw/{repo+}/files/**\"\naction = \"read\"\n\
             [[routes]]\nprefix = \"/git/\"\nupstream = \"up\"\npreset = \"git_http\"\nstrip_prefix = true\n";
        let text = format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nheader_read_timeout = \"{HEADER_READ_TIMEOUT_MS}ms\"\n\
             idle_timeout = \"1s\"\nmax_headers = {MAX_HEADERS}\nmax_header_bytes = {MAX_HEADER_BYTES}\n\
             [admin]\nlisten = \"127.0.0.1:0\"\nmax_body_bytes = {ADMIN_MAX_BODY}\n{}\
             [store]\npath = \"{}\"\n{}",
            admin_user(),
            dir.path().join("db").display(),
            upstream_route(&up, routes),
        );
        let gate = gateway_from_text(dir, &text).await;

        for repo in [
            "acme/widgets",
            "acme/gadgets",
            "acme",
            "widgets",
            "other/widgets",
        ] {
            gate.add_repo(repo).await;
        }
        let token = gate.mint(false, &[("acme/widgets", Role::Developer)]).await;
        Hostile {
            up,
            gate,
            token,
            _turn: turn,
        }
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        self.gate.running.proxy_addr
    }

    /// A normal client is served: 200 from the upstream, promptly.
    pub async fn normal_client_is_served(&self) {
        let asked = Instant::now();
        let reply = tokio::time::timeout(
            Duration::from_secs(3),
            get(&self.gate.url(ISSUES), &self.token),
        )
        .await
        .expect("a normal request is answered within 3 s");
        assert_eq!(reply.status, 200, "{:?}", reply.body);
        assert!(
            asked.elapsed() < Duration::from_secs(1),
            "{:?}",
            asked.elapsed()
        );
    }

    /// Targets the upstream has seen so far.
    pub fn seen_targets(&self) -> Vec<String> {
        let seen = self.up.seen.lock().unwrap();
        seen.iter().map(|s| s.target.clone()).collect()
    }
}

/// What came back on a raw connection.
#[derive(Debug)]
pub struct RawReply {
    /// Everything read, lossily decoded.
    pub text: String,
    /// The gateway closed (or reset) the connection.
    pub closed: bool,
    /// From the first byte written to the close or the end of the wait.
    pub elapsed: Duration,
}

impl RawReply {
    /// The status code of the first response, if one arrived.
    pub fn status(&self) -> Option<u16> {
        let line = self.text.strip_prefix("HTTP/1.1 ")?;
        line.get(..3)?.parse().ok()
    }

    /// How many responses arrived.
    pub fn responses(&self) -> usize {
        self.text.matches("HTTP/1.1 ").count()
    }
}

/// Writes `request` on a fresh connection, then reads until the gateway
/// closes the connection or `wait` passes.
pub async fn raw(addr: std::net::SocketAddr, request: &[u8], wait: Duration) -> RawReply {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let started = Instant::now();
    // A write may fail once the gateway has answered and closed: that is a close.
    let _ = stream.write_all(request).await;
    read_until_closed(&mut stream, started, wait).await
}

/// Reads until EOF, a reset or `wait` since `started`.
pub async fn read_until_closed(
    stream: &mut (impl AsyncRead + Unpin),
    started: Instant,
    wait: Duration,
) -> RawReply {
    let mut bytes = Vec::new();
    let mut buf = [0u8; 8192];
    let closed = loop {
        let left = wait.saturating_sub(started.elapsed());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Err(_) => break false,
            Ok(Ok(0)) | Ok(Err(_)) => break true,
            Ok(Ok(n)) => bytes.extend_from_slice(&buf[..n]),
        }
    };
    RawReply {
        text: String::from_utf8_lossy(&bytes).into_owned(),
        closed,
        elapsed: started.elapsed(),
    }
}

/// The process's resident set size in bytes, from `/proc/self/status`; the
/// gateway runs in this process.
pub fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("Linux /proc");
    let line = status.lines().find(|l| l.starts_with("VmRSS:"));
    let kib: u64 = line
        .expect("a VmRSS line")
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    kib * 1024
}
