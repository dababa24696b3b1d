//! Upstream faults: an upstream that resets mid-response, hangs up without
//! answering, answers garbage, trickles its body, is down, or never answers.
//!
//! Each time the client gets a clean JSON 502/504 or, when the response head
//! had already gone out, a cut stream; the gateway keeps serving a second,
//! healthy upstream right after; and once the faulty upstream behaves again
//! (same address, now a real HTTP server) the next request through the same
//! gateway and pool is answered by it.

mod common;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const GITLAB: &str = "[[routes]]\nprefix = \"/\"\nupstream = \"up\"\npreset = \"gitlab\"\n";
const ISSUES: &str = "/api/v4/projects/acme%2Fwidgets/issues";

/// How the raw upstream treats each connection it accepts from now on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// A real HTTP/1.1 server that answers `healthy`.
    Healthy,
    /// A head promising 1000 bytes, 10 of them, then a TCP reset.
    ResetMidBody,
    /// Reads the request and closes without a byte of answer.
    HangUp,
    /// Answers `HELLO\r\n\r\n`, which is not HTTP.
    Garbage,
    /// A head promising [`TRICKLED`] bytes, then one byte every 500 ms.
    Trickle,
    /// A head promising 1000 bytes, 10 of them, then silence on an open connection.
    StallMidBody,
    /// Reads the request and never answers.
    Hold,
    /// Answers `healthy` with keep-alive, then closes the connection at once,
    /// as a server does when its keep-alive timeout runs out.
    AnswerThenClose,
}

/// Bytes of the trickled body; at 500 ms each it outlasts the 1 s timeout.
const TRICKLED: usize = 5;

/// A hand-written upstream on loopback whose behaviour can be switched.
struct RawUpstream {
    addr: SocketAddr,
    mode: Arc<Mutex<Mode>>,
    /// Connections accepted, whatever the mode.
    accepted: Arc<AtomicUsize>,
    /// Targets of the requests answered while healthy.
    served: Arc<Mutex<Vec<String>>>,
    /// The accept loop; the listener goes when it ends.
    accepting: tokio::task::JoinHandle<()>,
}

impl RawUpstream {
    async fn start(mode: Mode) -> RawUpstream {
        RawUpstream::bind("127.0.0.1:0".parse().unwrap(), mode).await
    }

    async fn bind(addr: SocketAddr, mode: Mode) -> RawUpstream {
        let listener = TcpListener::bind(addr).await.expect("the port is free");
        let addr = listener.local_addr().unwrap();
        let mode = Arc::new(Mutex::new(mode));
        let accepted = Arc::new(AtomicUsize::new(0));
        let served = Arc::new(Mutex::new(Vec::new()));
        let accepting = tokio::spawn({
            let (mode, accepted, served) = (mode.clone(), accepted.clone(), served.clone());
            async move {
                while let Ok((stream, _)) = listener.accept().await {
                    accepted.fetch_add(1, Ordering::SeqCst);
                    let mode = *mode.lock().unwrap();
                    tokio::spawn(misbehave(stream, mode, Arc::clone(&served)));
                }
            }
        });
        RawUpstream {
            addr,
            mode,
            accepted,
            served,
            accepting,
        }
    }

    /// Stops listening: connections to its address are refused from now on.
    async fn stop(&mut self) {
        self.accepting.abort();
        let _ = (&mut self.accepting).await;
    }

    fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    fn served(&self) -> Vec<String> {
        self.served.lock().unwrap().clone()
    }
}

async fn misbehave(mut stream: TcpStream, mode: Mode, served: Arc<Mutex<Vec<String>>>) {
    if mode == Mode::Healthy {
        return serve_healthy(stream, served).await;
    }
    if !read_head(&mut stream).await {
        return;
    }
    match mode {
        Mode::Healthy => unreachable!("handled above"),
        Mode::ResetMidBody => {
            let head = "HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n0123456789";
            let _ = stream.write_all(head.as_bytes()).await;
            // Let the gateway read what was sent: a reset discards unread data.
            tokio::time::sleep(Duration::from_millis(200)).await;
            reset(stream);
        }
        Mode::HangUp => drop(stream),
        Mode::Garbage => {
            let _ = stream.write_all(b"HELLO\r\n\r\n").await;
        }
        Mode::Trickle => {
            let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {TRICKLED}\r\n\r\n");
            let _ = stream.write_all(head.as_bytes()).await;
            for _ in 0..TRICKLED {
                tokio::time::sleep(Duration::from_millis(500)).await;
                if stream.write_all(b"x").await.is_err() {
                    return;
                }
            }
        }
        Mode::StallMidBody => {
            let head = "HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n0123456789";
            let _ = stream.write_all(head.as_bytes()).await;
            // Open and silent until the gateway gives up on it, or long past the test.
            let mut sink = [0u8; 1024];
            let held = async { while stream.read(&mut sink).await.is_ok_and(|n| n > 0) {} };
            let _ = tokio::time::timeout(Duration::from_secs(30), held).await;
        }
        Mode::AnswerThenClose => {
            served
                .lock()
                .unwrap()
                .push("answered, then closed".to_owned());
            let reply = "HTTP/1.1 200 OK\r\ncontent-length: 7\r\n\r\nhealthy";
            let _ = stream.write_all(reply.as_bytes()).await;
        }
        Mode::Hold => {
            // Until the gateway gives up on the connection, or long past the test.
            let mut sink = [0u8; 1024];
            let held = async { while stream.read(&mut sink).await.is_ok_and(|n| n > 0) {} };
            let _ = tokio::time::timeout(Duration::from_secs(30), held).await;
        }
    }
}

/// Reads up to the end of a request head; false if the peer went away first.
async fn read_head(stream: &mut TcpStream) -> bool {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    true
}

/// Closes with a TCP RST instead of a FIN.
#[allow(deprecated)] // SO_LINGER blocks on drop only for a non-zero linger; zero resets at once.
fn reset(stream: TcpStream) {
    stream.set_linger(Some(Duration::ZERO)).expect("SO_LINGER");
    drop(stream);
}

async fn serve_healthy(stream: TcpStream, served: Arc<Mutex<Vec<String>>>) {
    let service = service_fn(move |req: Request<Incoming>| {
        let served = Arc::clone(&served);
        async move {
            served.lock().unwrap().push(req.uri().to_string());
            Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from("healthy"))))
        }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

/// A gateway with the faulty upstream at `/bad/` and a healthy one at `/`.
struct Rig {
    bad: RawUpstream,
    good: TestUpstream,
    gate: Gate,
    admin: String,
}

async fn rig(bad: RawUpstream) -> Rig {
    let good = upstream().await;
    let config = format!(
        "{}[[upstreams]]\nname = \"bad\"\nurl = \"http://{}\"\ntimeout = \"1s\"\n\
         connect_timeout = \"1s\"\n[[routes]]\nprefix = \"/bad/\"\nupstream = \"bad\"\n\
         [[routes.rules]]\npath = \"/bad/**\"\naction = \"read\"\n",
        upstream_route(&good, GITLAB),
        bad.addr
    );
    let gate = gateway(&config).await;
    gate.add_repo("acme/widgets").await;
    // The `/bad/` rule names no repository, so only an admin token passes it.
    let admin = gate.mint(true, &[]).await;
    Rig {
        bad,
        good,
        gate,
        admin,
    }
}

/// Fails the test instead of hanging when `fut` takes longer than `secs`.
async fn within<T>(secs: u64, what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), fut)
        .await
        .unwrap_or_else(|_| panic!("{what} took more than {secs}s"))
}

impl Rig {
    async fn get_bad(&self, path: &str) -> Reply {
        within(10, path, get(&self.gate.url(path), &self.admin)).await
    }

    /// The healthy upstream answers through the same gateway.
    async fn good_route_answers(&self) {
        let before = self.good.count();
        let reply = within(5, "healthy route", get(&self.gate.url(ISSUES), &self.admin)).await;
        assert_eq!(reply.status, 200, "{:?}", reply.body);
        assert_eq!(self.good.count(), before + 1);
        assert_eq!(self.good.last().target, ISSUES);
    }

    /// The faulty upstream behaves again: the next request is answered by it.
    async fn recovers(&self) {
        self.bad.set(Mode::Healthy);
        let reply = self.get_bad("/bad/after").await;
        assert_eq!(reply.status, 200, "{:?}", reply.body);
        assert_eq!(reply.body, "healthy");
        assert_eq!(
            self.bad.served().last().map(String::as_str),
            Some("/bad/after")
        );
    }
}

/// Asserts a clean JSON error body with `code` that names the upstream.
fn assert_json_error(reply: &Reply, status: u16, code: &str) {
    assert_eq!(reply.status, status, "{:?}", reply.body);
    assert_eq!(reply.headers["content-type"], "application/json");
    let body = reply.json();
    assert_eq!(body["error"], code, "{body}");
    assert!(body["message"].as_str().unwrap().contains("bad"), "{body}");
}

/// Sends a GET and reads the body frame by frame: the head, the bytes that
/// arrived, and the error that ended the body, if one did.
async fn get_streamed(rig: &Rig, path: &str) -> (StatusCode, usize, Option<hyper::Error>) {
    let req = Request::get(rig.gate.url(path))
        .header("authorization", format!("Bearer {}", rig.admin))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = within(5, "response head", client().request(req))
        .await
        .expect("the gateway answers");
    let status = response.status();
    let mut body = response.into_body();
    let mut received = 0;
    loop {
        match within(10, "response body", body.frame()).await {
            None => return (status, received, None),
            Some(Ok(frame)) => received += frame.data_ref().map_or(0, Bytes::len),
            Some(Err(e)) => return (status, received, Some(e)),
        }
    }
}

/// Whether the body ended before its promised length (hyper reports an
/// `UnexpectedEof` I/O error under a body error).
fn ends_early(error: &hyper::Error) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = cause {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return io.kind() == std::io::ErrorKind::UnexpectedEof;
        }
        cause = e.source();
    }
    false
}

#[tokio::test]
async fn upstream_reset_mid_response_cuts_the_client_stream_with_an_error() {
    let rig = rig(RawUpstream::start(Mode::ResetMidBody).await).await;

    let (status, received, error) = get_streamed(&rig, "/bad/reset").await;

    // The head had gone out, so there is no error status to give: the
    // promised 1000 bytes never come and the client's read fails.
    assert_eq!(status, 200);
    assert!(received <= 10, "received {received} bytes");
    let error = error.expect("the body read fails rather than ending short and clean");
    assert!(ends_early(&error), "{error:?}");
    rig.good_route_answers().await;
    rig.recovers().await;
}

/// An upstream that goes silent mid-body on an open connection would hold
/// the client forever; the gateway cuts the stream once the silence outlasts
/// the upstream `timeout` (1 s here).
#[tokio::test]
async fn upstream_stalling_mid_body_cuts_the_client_stream_after_the_timeout() {
    let rig = rig(RawUpstream::start(Mode::StallMidBody).await).await;
    let started = Instant::now();

    let (status, received, error) = get_streamed(&rig, "/bad/stall").await;

    assert_eq!(status, 200);
    assert_eq!(received, 10, "the bytes sent before the stall arrive");
    let error = error.expect("the body read fails rather than hanging or ending clean");
    assert!(ends_early(&error), "{error:?}");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900),
        "not before the 1 s timeout: {took:?}"
    );
    rig.good_route_answers().await;
    rig.recovers().await;
}

#[tokio::test]
async fn upstream_hanging_up_without_answering_gets_502() {
    let rig = rig(RawUpstream::start(Mode::HangUp).await).await;

    let reply = rig.get_bad("/bad/hangup").await;

    assert_json_error(&reply, 502, "upstream_unavailable");
    assert_eq!(rig.bad.accepted.load(Ordering::SeqCst), 1, "no retry");
    rig.good_route_answers().await;
    rig.recovers().await;
}

#[tokio::test]
async fn upstream_answering_garbage_gets_502() {
    let rig = rig(RawUpstream::start(Mode::Garbage).await).await;

    let reply = rig.get_bad("/bad/garbage").await;

    assert_json_error(&reply, 502, "upstream_unavailable");
    assert!(!String::from_utf8_lossy(&reply.body).contains("HELLO"));
    rig.good_route_answers().await;
    rig.recovers().await;
}

/// A body that trickles in, each piece within the upstream `timeout` of the
/// last, is streamed on for as long as it takes, past the `timeout` in all:
/// cutting a slow download short is the client's call, not the gateway's.
/// Meanwhile other requests are served without waiting for it.
#[tokio::test]
async fn trickling_upstream_body_streams_past_the_timeout_while_others_are_served() {
    let rig = Arc::new(rig(RawUpstream::start(Mode::Trickle).await).await);
    let started = Instant::now();

    let slow = tokio::spawn({
        let rig = Arc::clone(&rig);
        async move { get_streamed(&rig, "/bad/trickle").await }
    });
    for _ in 0..5 {
        let asked = Instant::now();
        rig.good_route_answers().await;
        assert!(
            asked.elapsed() < Duration::from_millis(500),
            "{:?}",
            asked.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (status, received, error) = slow.await.unwrap();

    assert_eq!(status, 200);
    assert!(error.is_none(), "{error:?}");
    assert_eq!(received, TRICKLED, "the whole body arrived");
    let took = started.elapsed();
    assert!(
        took > Duration::from_secs(2),
        "longer than the 1 s timeout: {took:?}"
    );
    rig.good_route_answers().await;
    rig.recovers().await;
}

#[tokio::test]
async fn upstream_that_is_down_gets_502_and_is_used_once_it_is_up() {
    let mut rig = rig(RawUpstream::start(Mode::Healthy).await).await;
    let addr = rig.bad.addr;
    rig.bad.stop().await;

    let asked = Instant::now();
    let reply = rig.get_bad("/bad/down").await;
    assert_json_error(&reply, 502, "upstream_unavailable");
    assert!(asked.elapsed() < Duration::from_secs(1), "refused at once");
    rig.good_route_answers().await;

    // Back on the same address.
    rig.bad = RawUpstream::bind(addr, Mode::Healthy).await;
    let reply = rig.get_bad("/bad/up").await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(rig.bad.served(), ["/bad/up"]);
}

#[tokio::test]
async fn upstream_that_never_answers_gets_504_after_its_timeout() {
    let rig = rig(RawUpstream::start(Mode::Hold).await).await;

    let asked = Instant::now();
    let reply = rig.get_bad("/bad/hold").await;
    let waited = asked.elapsed();

    assert_json_error(&reply, 504, "upstream_timeout");
    let in_time = (900..2500).contains(&waited.as_millis());
    assert!(in_time, "answered after {waited:?}; the timeout is 1 s");
    rig.good_route_answers().await;
    rig.recovers().await;
}

#[tokio::test]
async fn keep_alive_connections_to_the_upstream_are_reused() {
    let rig = rig(RawUpstream::start(Mode::Healthy).await).await;
    // One client connection, so every request lands on the same proxy worker
    // (each worker keeps its own upstream connections).
    let client = client();

    for i in 0..5 {
        let req = Request::get(rig.gate.url(&format!("/bad/{i}")))
            .header("authorization", format!("Bearer {}", rig.admin))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let response = within(5, "keep-alive request", client.request(req))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, "healthy");
    }

    assert_eq!(rig.bad.served().len(), 5);
    assert_eq!(
        rig.bad.accepted.load(Ordering::SeqCst),
        1,
        "one upstream connection"
    );
}

#[tokio::test]
async fn a_pooled_connection_the_upstream_closed_is_replaced_without_failing_a_request() {
    let rig = rig(RawUpstream::start(Mode::AnswerThenClose).await).await;

    for i in 0..4 {
        let reply = rig.get_bad(&format!("/bad/{i}")).await;
        assert_eq!(reply.status, 200, "request {i}: {:?}", reply.body);
        assert_eq!(reply.body, "healthy");
    }

    assert_eq!(rig.bad.served().len(), 4);
    assert_eq!(
        rig.bad.accepted.load(Ordering::SeqCst),
        4,
        "a new connection each time"
    );
    rig.recovers().await;
}
