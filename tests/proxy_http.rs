//! HTTP behaviour of the data plane, observed from a real upstream: credential
//! swap, exact paths, header hygiene, streamed bodies in flat memory, upstream
//! failures, HTTP/2, TLS and graceful shutdown.

mod common;
#[path = "common/tls.rs"]
mod tls;

use std::future::Future as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use common::*;
use http::{Method, Request, StatusCode, Version};
use http_body_util::{BodyExt, Either, Full};
use hyper::body::{Body, Frame, SizeHint};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use repogate::access::Role;

const GITLAB: &str = "[[routes]]\nprefix = \"/\"\nupstream = \"up\"\npreset = \"gitlab\"\n";
const ISSUES: &str = "/api/v4/projects/acme%2Fwidgets/issues";
const MIB: u64 = 1024 * 1024;

async fn gitlab_gateway() -> (TestUpstream, Gate, String) {
    let up = upstream().await;
    let gate = gateway(&upstream_route(&up, GITLAB)).await;
    gate.add_repo("acme/widgets").await;
    let token = gate.mint(false, &[("acme/widgets", Role::Developer)]).await;
    (up, gate, token)
}

#[tokio::test]
async fn upstream_never_sees_the_repogate_token_whichever_header_carried_it() {
    let (up, gate, token) = gitlab_gateway().await;
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("git:{token}"))
    );
    let bearer = format!("Bearer {token}");

    for (header, value) in [
        ("authorization", bearer.as_str()),
        ("authorization", basic.as_str()),
        ("private-token", token.as_str()),
        ("x-gitlab-token", token.as_str()),
    ] {
        let reply = send(Method::GET, &gate.url(ISSUES), &[(header, value)], "").await;
        assert_eq!(reply.status, 200, "{header}: {:?}", reply.body);

        // Neither the secret nor even the public id (`rgt_…`) travels on.
        let seen = up.last();
        let leaked = seen.headers.iter().find(|(_, value)| {
            let value = String::from_utf8_lossy(value.as_bytes());
            value.contains(&token[16..48]) || value.contains("rgt_")
        });
        assert!(
            leaked.is_none(),
            "{header}: the token arrived as {leaked:?}"
        );
        let injected: Vec<_> = seen.headers.get_all("private-token").iter().collect();
        assert_eq!(injected, ["real-upstream-secret"], "{header}");
        assert!(!seen.headers.contains_key("authorization"), "{header}");
        assert!(!seen.headers.contains_key("x-gitlab-token"), "{header}");
    }
    assert_eq!(up.count(), 4);
}

#[tokio::test]
async fn encoded_path_segments_reach_the_upstream_byte_for_byte() {
    let up = upstream().await;
    let gate = gateway(&upstream_route(&up, GITLAB)).await;
    gate.add_repo("group/project").await;
    let grant = [("group/project", Role::Developer)];
    let token = gate.mint(false, &grant).await;

    for target in [
        "/api/v4/projects/group%2Fproject",
        "/api/v4/projects/group%2fproject/issues",
        "/api/v4/projects/group%2Fproject/repository/files/docs%2FREAD%20ME.md/raw?ref=feature%2Fx",
        "/api/v4/projects/group%2Fproject/repository/tree?path=a%2Fb&recursive=true",
    ] {
        let reply = get(&gate.url(target), &token).await;
        assert_eq!(reply.status, 200, "{target}: {:?}", reply.body);
        assert_eq!(up.last().target, target);
    }
}

#[tokio::test]
async fn hop_by_hop_headers_are_dropped_both_ways_and_forwarding_headers_are_ours() {
    let (up, gate, token) = gitlab_gateway().await;
    let bearer = format!("Bearer {token}");
    let host = gate.running.proxy_addr.to_string();

    let reply = send(
        Method::GET,
        &gate.url(ISSUES),
        &[
            ("authorization", &bearer),
            // Names headers we set ourselves: those must still leave with our values.
            ("connection", "x-client-hop, x-forwarded-for, private-token"),
            ("x-client-hop", "1"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("upgrade", "websocket"),
            ("proxy-authorization", "Basic Zm9vOmJhcg=="),
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-host", "evil.example"),
            ("x-forwarded-proto", "https"),
            ("x-kept", "yes"),
        ],
        "",
    )
    .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);

    let seen = up.last().headers;
    let gone = [
        "x-client-hop",
        "keep-alive",
        "te",
        "upgrade",
        "proxy-authorization",
    ];
    for name in gone {
        assert!(!seen.contains_key(name), "{name} reached the upstream");
    }
    assert!(!text(&seen, "connection").contains("x-client-hop"));
    assert_eq!(seen["x-kept"], "yes");
    let forwarded_for: Vec<_> = seen.get_all("x-forwarded-for").iter().collect();
    assert_eq!(forwarded_for, ["127.0.0.1"]);
    assert_eq!(seen["x-forwarded-proto"], "http");
    assert_eq!(seen["x-forwarded-host"], host.as_str());
    let injected: Vec<_> = seen.get_all("private-token").iter().collect();
    assert_eq!(injected, ["real-upstream-secret"]);

    // The upstream's own hop header stays between it and us.
    assert_eq!(reply.headers["x-upstream"], "yes");
    assert!(
        !reply.headers.contains_key("x-up-hop"),
        "{:?}",
        reply.headers
    );
    assert!(!text(&reply.headers, "connection").contains("x-up-hop"));
}

/// A header's value as text; empty when absent.
fn text(headers: &http::HeaderMap, name: &str) -> String {
    let value = headers.get(name).map(|v| v.to_str().unwrap());
    value.unwrap_or_default().to_owned()
}

/// The process's resident set size, from `/proc/self/status`.
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("Linux /proc");
    let line = status.lines().find(|l| l.starts_with("VmRSS:"));
    let line = line.expect("a VmRSS line");
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

/// Highest RSS seen so far in a transfer.
#[derive(Clone, Default)]
struct Peak(Arc<AtomicU64>);

impl Peak {
    fn sample(&self) {
        self.0.fetch_max(rss(), Ordering::Relaxed);
    }

    fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A streaming upload body that samples RSS every 32 frames (2 MiB) while
/// it is sent, so buffering anywhere on the way shows up as a peak.
struct Sampled {
    inner: Zeros,
    frames: u64,
    peak: Peak,
}

impl Body for Sampled {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        self.frames += 1;
        if self.frames % 32 == 0 {
            self.peak.sample();
        }
        std::pin::Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The transfers measure the whole process, so they take turns.
static MEMORY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const BIG: u64 = 100 * MIB;
/// The most RSS may grow while 100 MiB pass through, in MiB.
const FLAT_MIB: u64 = 50;

/// A gateway whose upstream waits long enough for a 100 MiB body in a debug build.
async fn transfer_gateway() -> (TestUpstream, Gate, String) {
    let up = upstream().await;
    let config = format!(
        "[[upstreams]]\nname = \"up\"\nurl = \"http://{}\"\ntimeout = \"60s\"\n{GITLAB}\
         [[routes]]\nprefix = \"/download/\"\nupstream = \"up\"\n\
         [[routes.rules]]\nmethods = [\"GET\"]\npath = \"/download/*\"\naction = \"read\"\n\
         repo_from = {{ query = \"repo\" }}\n",
        up.addr
    );
    let gate = gateway(&config).await;
    gate.add_repo("acme/widgets").await;
    let token = gate.mint(false, &[("acme/widgets", Role::Developer)]).await;
    // Warm the pools and the token cache so setup does not count as growth.
    assert_eq!(get(&gate.url(ISSUES), &token).await.status, 200);
    (up, gate, token)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hundred_mib_upload_streams_to_the_upstream_in_flat_memory() {
    let _turn = MEMORY.lock().await;
    let (up, gate, token) = transfer_gateway().await;
    let client: Client<_, Either<Full<Bytes>, Sampled>> =
        Client::builder(TokioExecutor::new()).build_http();
    let peak = Peak::default();
    let before = rss();

    let body = Sampled {
        inner: Zeros::new(BIG),
        frames: 0,
        peak: peak.clone(),
    };
    let req = Request::post(gate.url("/acme/widgets.git/git-receive-pack"))
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/x-git-receive-pack-request")
        .body(Either::Right(body))
        .unwrap();
    let response = client.request(req).await.expect("the gateway answers");
    assert_eq!(response.status(), 200);
    response.into_body().collect().await.unwrap();
    peak.sample();

    let seen = up.last();
    assert_eq!(seen.target, "/acme/widgets.git/git-receive-pack");
    assert_eq!(seen.body_len, BIG);
    let grown = peak.get().saturating_sub(before) / MIB;
    assert!(
        grown < FLAT_MIB,
        "RSS grew by {grown} MiB during the upload"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hundred_mib_download_streams_to_the_client_in_flat_memory() {
    let _turn = MEMORY.lock().await;
    let (_up, gate, token) = transfer_gateway().await;
    let peak = Peak::default();
    let before = rss();

    let url = gate.url(&format!("/download/{BIG}?repo=acme/widgets"));
    let req = Request::get(url)
        .header("authorization", format!("Bearer {token}"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = client().request(req).await.expect("the gateway answers");
    assert_eq!(response.status(), 200);

    let mut body = response.into_body();
    let (mut received, mut frames) = (0u64, 0u64);
    while let Some(frame) = body.frame().await {
        if let Some(data) = frame.expect("the body streams").data_ref() {
            received += data.len() as u64;
            frames += 1;
            if frames % 32 == 0 {
                peak.sample();
            }
        }
    }
    peak.sample();

    assert_eq!(received, BIG);
    assert!(frames > 1, "the body arrived in one frame");
    let grown = peak.get().saturating_sub(before) / MIB;
    assert!(
        grown < FLAT_MIB,
        "RSS grew by {grown} MiB during the download"
    );
}

#[tokio::test]
async fn unreachable_upstream_gets_502_and_the_gateway_keeps_serving() {
    let up = upstream().await;
    // A port that was just free: nothing listens there any more.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = closed.local_addr().unwrap();
    drop(closed);
    let config = format!(
        "{}[[routes]]\nprefix = \"/dead/\"\nupstream = \"dead\"\n\
         [[routes.rules]]\npath = \"/dead/**\"\naction = \"read\"\n\
         [[upstreams]]\nname = \"dead\"\nurl = \"http://{dead}\"\nconnect_timeout = \"1s\"\n",
        upstream_route(&up, GITLAB)
    );
    let gate = gateway(&config).await;
    gate.add_repo("acme/widgets").await;
    let admin = gate.mint(true, &[]).await;

    for _ in 0..2 {
        let reply = get(&gate.url("/dead/x"), &admin).await;
        assert_eq!(reply.status, 502, "{:?}", reply.body);
        let body = reply.json();
        assert_eq!(body["error"], "upstream_unavailable");
        assert!(body["message"].as_str().unwrap().contains("dead"), "{body}");
    }

    let reply = get(&gate.url(ISSUES), &admin).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(up.last().target, ISSUES);
    assert_eq!(up.count(), 1);
}

#[tokio::test]
async fn slow_upstream_gets_504_after_its_timeout() {
    let up = upstream().await;
    let slow = "[[routes]]\nprefix = \"/slow\"\nupstream = \"up\"\n\
                [[routes.rules]]\npath = \"/slow\"\naction = \"read\"\n";
    let gate = gateway(&upstream_route(&up, &format!("{GITLAB}{slow}"))).await;
    gate.add_repo("acme/widgets").await;
    let admin = gate.mint(true, &[]).await;

    let started = Instant::now();
    let reply = get(&gate.url("/slow"), &admin).await;
    let waited = started.elapsed();
    assert_eq!(
        reply.status,
        StatusCode::GATEWAY_TIMEOUT,
        "{:?}",
        reply.body
    );
    assert_eq!(reply.json()["error"], "upstream_timeout");
    assert_eq!(up.last().target, "/slow", "the upstream got the request");
    // The upstream answers after 3 s; the configured timeout is 1 s.
    let in_time = (900..2500).contains(&waited.as_millis());
    assert!(in_time, "answered after {waited:?}");

    assert_eq!(get(&gate.url(ISSUES), &admin).await.status, 200);
}

#[tokio::test]
async fn http2_with_prior_knowledge_is_served() {
    let (up, gate, token) = gitlab_gateway().await;
    let client: TestClient = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http();

    let req = Request::get(gate.url(ISSUES))
        .header("authorization", format!("Bearer {token}"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = client.request(req).await.expect("the gateway speaks h2c");
    assert_eq!(response.status(), 200);
    assert_eq!(response.version(), Version::HTTP_2);
    assert_eq!(response.headers()["x-upstream"], "yes");

    let seen = up.last();
    assert_eq!(seen.target, ISSUES);
    assert_eq!(seen.headers["private-token"], "real-upstream-secret");
    assert!(!seen.headers.contains_key("authorization"));
    let authority = gate.running.proxy_addr.to_string();
    assert_eq!(seen.headers["x-forwarded-host"], authority.as_str());
}

#[tokio::test]
async fn https_is_served_over_http1_and_http2_and_says_so_upstream() {
    let up = upstream().await;
    let (gate, https) = tls::tls_gateway(&upstream_route(&up, GITLAB)).await;
    gate.add_repo("acme/widgets").await;
    let token = gate.mint(false, &[("acme/widgets", Role::Viewer)]).await;

    for version in [Version::HTTP_11, Version::HTTP_2] {
        let req = Request::get(gate.url(ISSUES))
            .header("authorization", format!("Bearer {token}"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let response = https.client(version).request(req).await;
        let response = response.expect("the TLS handshake and request succeed");
        assert_eq!(response.status(), 200, "{version:?}");
        assert_eq!(response.version(), version);

        let seen = up.last();
        assert_eq!(seen.target, ISSUES, "{version:?}");
        assert_eq!(seen.headers["x-forwarded-proto"], "https", "{version:?}");
        assert_eq!(seen.headers["private-token"], "real-upstream-secret");
    }
    assert_eq!(up.count(), 2);
}

#[tokio::test]
async fn https_upstream_is_reached_when_its_ca_file_is_trusted_and_refused_otherwise() {
    let up = tls::https_upstream().await;
    let route = |name: &str, prefix: &str| {
        format!(
            "[[routes]]\nprefix = \"{prefix}\"\nupstream = \"{name}\"\n\
             [[routes.rules]]\npath = \"{prefix}**\"\naction = \"read\"\n"
        )
    };
    let config = format!(
        "[[upstreams]]\nname = \"trusted\"\nurl = \"https://{addr}\"\nca_file = \"{ca}\"\n\
         headers = {{ \"PRIVATE-TOKEN\" = \"real-upstream-secret\" }}\n\
         [[upstreams]]\nname = \"webpki\"\nurl = \"https://{addr}\"\n{}{}",
        route("trusted", "/trusted/"),
        route("webpki", "/webpki/"),
        addr = up.addr,
        ca = up.ca_file.display(),
    );
    let gate = gateway(&config).await;
    let admin = gate.mint(true, &[]).await;

    for i in 0..3 {
        let reply = get(&gate.url(&format!("/trusted/{i}")), &admin).await;
        assert_eq!(reply.status, 200, "{:?}", reply.body);
        assert_eq!(reply.body, "secure");
    }
    let host = up.addr.to_string();
    let seen = up.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3);
    assert!(
        seen.iter()
            .all(|(h, t)| *h == host && t == "real-upstream-secret"),
        "{seen:?}"
    );

    // The same server, but checked against the public roots: not trusted.
    let reply = get(&gate.url("/webpki/x"), &admin).await;
    assert_eq!(reply.status, 502, "{:?}", reply.body);
    assert_eq!(reply.json()["error"], "upstream_unavailable");
    assert_eq!(up.seen.lock().unwrap().len(), 3, "no request went through");
}

/// An upload that sends `left` chunks of 1 KiB, one every `every`: a client
/// on a slow link.
struct Trickle {
    left: u32,
    every: Duration,
    wait: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
}

impl Body for Trickle {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if self.left == 0 {
            return std::task::Poll::Ready(None);
        }
        let every = self.every;
        let wait = self
            .wait
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(every)));
        std::task::ready!(wait.as_mut().poll(cx));
        self.wait = None;
        self.left -= 1;
        std::task::Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(&[0; 1024])))))
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(u64::from(self.left) * 1024)
    }
}

/// The upstream `timeout` bounds the wait for its answer, which starts once
/// the request body is sent: a push that takes longer to upload than the
/// timeout is not cut off with 504 while the upstream is still receiving it.
#[tokio::test]
async fn slow_client_upload_is_not_cut_off_by_the_upstream_response_timeout() {
    let (up, gate, token) = gitlab_gateway().await;
    let client: Client<_, Trickle> = Client::builder(TokioExecutor::new()).build_http();
    let body = Trickle {
        left: 4,
        every: Duration::from_millis(400),
        wait: None,
    };

    // Four chunks 400 ms apart take 1.6 s to send; the upstream's timeout is 1 s
    // and it answers as soon as it has the body.
    let req = Request::post(gate.url("/acme/widgets.git/git-receive-pack"))
        .header("authorization", format!("Bearer {token}"))
        .body(body)
        .unwrap();
    let response = client.request(req).await.expect("the gateway answers");
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();

    assert_eq!(status, 200, "{body:?}");
    assert_eq!(up.last().body_len, 4 * 1024);
}

/// Whether a fresh connection to `addr` gets an HTTP answer within a second;
/// a refused connection, a reset or silence are all "not served".
async fn served(addr: std::net::SocketAddr) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let attempt = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
        let request = format!("GET {ISSUES} HTTP/1.1\r\nhost: {addr}\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).await.ok()?;
        Some(head.starts_with(b"HTTP/1.1 "))
    };
    let answered = tokio::time::timeout(Duration::from_secs(1), attempt).await;
    answered.ok().flatten().unwrap_or(false)
}

#[tokio::test]
async fn graceful_shutdown_answers_the_request_in_flight_and_takes_no_new_connections() {
    const GRACE: Duration = Duration::from_secs(10);
    let up = upstream().await;
    let dir = tempfile::tempdir().unwrap();
    // The upstream answers `/slow` after 3 s, well inside its 10 s timeout.
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nshutdown_grace = \"{}s\"\n\
         [admin]\nlisten = \"127.0.0.1:0\"\n[store]\npath = \"{}\"\n\
         [[upstreams]]\nname = \"up\"\nurl = \"http://{}\"\ntimeout = \"10s\"\n\
         [[routes]]\nprefix = \"/slow\"\nupstream = \"up\"\n\
         [[routes.rules]]\npath = \"/slow\"\naction = \"read\"\n{GITLAB}",
        GRACE.as_secs(),
        dir.path().join("db").display(),
        up.addr,
    );
    let config = load_config(&dir, &text);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let until = async {
        let _ = stopped.await;
    };
    let running = repogate::app::start(config, until).await.unwrap();
    let addr = running.proxy_addr;
    let base = format!("http://{addr}");
    let gate = Gate { dir, running, base };
    gate.add_repo("acme/widgets").await;
    let admin = gate.mint(true, &[]).await;
    assert!(served(addr).await, "the gateway serves before shutdown");

    let slow = gate.url("/slow");
    let in_flight = tokio::spawn(async move { get(&slow, &admin).await });
    let deadline = Instant::now() + Duration::from_secs(2);
    while !up.seen.lock().unwrap().iter().any(|s| s.target == "/slow") {
        assert!(
            Instant::now() < deadline,
            "/slow never reached the upstream"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let began = Instant::now();
    stop.send(()).unwrap();
    // The listeners close as the workers see the stop; until then a
    // connection may still be taken. They must be closed well before the
    // in-flight request (due 3 s after it reached the upstream) is answered.
    while served(addr).await {
        let waited = began.elapsed();
        assert!(
            waited < Duration::from_secs(2),
            "new connections still served after {waited:?}"
        );
    }
    assert!(
        !in_flight.is_finished(),
        "the slow request was answered too early to test a drain"
    );

    let reply = in_flight.await.expect("the in-flight request is answered");
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(reply.json()["target"], "/slow");

    let Gate {
        running, dir: _dir, ..
    } = gate;
    // Cut off at the grace, it would end GRACE after `began`: it must end by draining.
    let left = GRACE.saturating_sub(began.elapsed());
    let ended = tokio::time::timeout(left, running.wait()).await;
    assert!(ended.is_ok(), "the gateway did not finish within the grace");
    assert!(
        !served(addr).await,
        "a connection was served after shutdown"
    );
}
