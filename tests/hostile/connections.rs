//! The connection cap: past `[server] max_connections`, new connections wait
//! in the kernel's accept queue, unanswered, until an open one closes.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use repogate::access::Role;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use crate::common::*;
use crate::ISSUES;

/// How long an answer may take on a noisy CI box before it counts as none.
const ANSWERED_WITHIN: Duration = Duration::from_secs(5);
/// How long a connection past the cap is watched for an answer it must not get.
const UNANSWERED_FOR: Duration = Duration::from_secs(1);

/// A gateway capped at `max_connections` with `workers` proxy workers, its
/// upstream, and a viewer token on `acme/widgets`.
struct Capped {
    up: TestUpstream,
    gate: Gate,
    token: String,
    /// Runs beside other tests, not beside one that measures memory.
    _turn: tokio::sync::RwLockReadGuard<'static, ()>,
}

async fn capped(max_connections: usize, workers: usize) -> Capped {
    let _turn = crate::PROCESS.read().await;
    let up = upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let route = "[[routes]]\nprefix = \"/\"\nupstream = \"up\"\npreset = \"gitlab\"\n";
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nmax_connections = {max_connections}\n\
         workers = {workers}\n[admin]\nlisten = \"127.0.0.1:0\"\n[store]\npath = \"{}\"\n{}",
        dir.path().join("db").display(),
        upstream_route(&up, route),
    );
    let gate = gateway_from_text(dir, &text).await;
    gate.add_repo("acme/widgets").await;
    let token = gate.mint(false, &[("acme/widgets", Role::Viewer)]).await;
    Capped {
        up,
        gate,
        token,
        _turn,
    }
}

/// One HTTP/1.1 keep-alive connection of its own, open until dropped.
struct Conn {
    sender: SendRequest<Full<Bytes>>,
    io: JoinHandle<()>,
}

impl Conn {
    /// Connects. The TCP handshake completes even past the cap: the kernel
    /// queues the connection whether or not the gateway accepts it.
    async fn open(addr: SocketAddr) -> Conn {
        let stream = TcpStream::connect(addr).await.expect("the kernel takes it");
        let (sender, connection) = http1::handshake(TokioIo::new(stream)).await.unwrap();
        let io = tokio::spawn(async move {
            let _ = connection.await;
        });
        Conn { sender, io }
    }

    /// A GET of the allowed issues path on this connection; its status once
    /// the whole response is read.
    fn get(&mut self, token: &str) -> impl Future<Output = StatusCode> + 'static {
        let req = Request::get(ISSUES)
            .header("host", "gate")
            .header("authorization", format!("Bearer {token}"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let sent = self.sender.send_request(req);
        async move {
            let response = sent.await.expect("the gateway answers");
            let status = response.status();
            // Read to the end, so the connection is idle and reusable.
            response
                .into_body()
                .collect()
                .await
                .expect("the body reads");
            status
        }
    }

    /// A GET that must be answered promptly.
    async fn served(&mut self, token: &str) -> StatusCode {
        let answer = tokio::time::timeout(ANSWERED_WITHIN, self.get(token)).await;
        answer.unwrap_or_else(|_| panic!("no answer within {ANSWERED_WITHIN:?}"))
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.io.abort();
    }
}

#[tokio::test]
async fn third_connection_waits_unanswered_past_a_cap_of_two_until_one_of_the_first_two_closes() {
    // One worker, so the kernel's choice of socket plays no part; with
    // several, see the next test.
    let Capped {
        up, gate, token, ..
    } = &capped(2, 1).await;
    let addr = gate.running.proxy_addr;

    let mut first = Conn::open(addr).await;
    assert_eq!(first.served(token).await, 200);
    let mut second = Conn::open(addr).await;
    assert_eq!(second.served(token).await, 200);
    assert_eq!(up.count(), 2);

    let mut third = Conn::open(addr).await;
    let mut answer = pin!(third.get(token));
    let early = tokio::time::timeout(UNANSWERED_FOR, answer.as_mut()).await;
    assert!(early.is_err(), "answered past the cap: {early:?}");
    assert_eq!(
        up.count(),
        2,
        "the request past the cap reached the upstream"
    );

    // Still open connections keep being served while the third waits.
    assert_eq!(second.served(token).await, 200);
    assert_eq!(up.count(), 3);

    drop(first);
    let late = tokio::time::timeout(ANSWERED_WITHIN, answer).await;
    assert_eq!(late.expect("answered once a connection closed"), 200);
    assert_eq!(up.count(), 4);
    assert_eq!(up.last().target, ISSUES);
}

/// Each worker has its own SO_REUSEPORT socket and the kernel picks which
/// one queues a connection; a worker idle in `accept()` must not hold a
/// permit that a connection queued on another worker's socket needs. With a
/// cap of 2, two workers and one open connection, 12 fresh connections one
/// at a time, each under the cap, are all served.
#[tokio::test]
async fn every_connection_under_the_cap_is_served_whichever_worker_socket_the_kernel_picks() {
    let Capped { gate, token, .. } = &capped(2, 2).await;
    let addr = gate.running.proxy_addr;
    let mut held = Conn::open(addr).await;
    assert_eq!(held.served(token).await, 200);

    // With one connection held, each of these is the second of two: under
    // the cap. The kernel spreads them over both workers' sockets.
    for attempt in 1..=12 {
        let mut conn = Conn::open(addr).await;
        let answer = tokio::time::timeout(ANSWERED_WITHIN, conn.get(token)).await;
        assert!(
            answer.is_ok(),
            "connection {attempt} (the second of two, under the cap) was not answered"
        );
        assert_eq!(answer.unwrap(), 200);
    }
    assert_eq!(held.served(token).await, 200);
}
