//! A real git smart-HTTP upstream: a small hyper server that runs
//! `git http-backend` as a CGI program for every request it receives.
//!
//! Bodies stream both ways through pipes, so a push is never held whole here
//! either; two threads per request do the blocking pipe I/O.

use std::convert::Infallible;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// What the backend saw of one request, after the gateway rewrote it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: Method,
    /// Path and query as received.
    pub target: String,
    pub headers: HeaderMap,
}

impl Seen {
    /// A header's value as text, or `""` when absent.
    pub fn header(&self, name: &str) -> &str {
        text(&self.headers, name).unwrap_or("")
    }
}

fn text<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The running server. Repositories live under `root` (`GIT_PROJECT_ROOT`).
pub struct GitServer {
    pub addr: SocketAddr,
    pub root: PathBuf,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl GitServer {
    /// Every request so far, oldest first.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

/// Starts the server on an ephemeral loopback port, serving repositories under `root`.
pub async fn start(root: &Path) -> GitServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (root, record) = (root.to_owned(), Arc::clone(&seen));
    let server = GitServer {
        addr,
        root: root.clone(),
        seen,
    };

    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (root, record) = (root.clone(), Arc::clone(&record));
            let service = service_fn(move |req| cgi(req, root.clone(), Arc::clone(&record)));
            tokio::spawn(async move {
                let http = hyper::server::conn::http1::Builder::new();
                let _ = http.serve_connection(TokioIo::new(stream), service).await;
            });
        }
    });
    server
}

/// Runs `git http-backend` for one request and streams its answer back.
async fn cgi(
    req: Request<Incoming>,
    root: PathBuf,
    seen: Arc<Mutex<Vec<Seen>>>,
) -> Result<Response<Piped>, Infallible> {
    let (parts, body) = req.into_parts();
    seen.lock().unwrap().push(Seen {
        method: parts.method.clone(),
        target: parts.uri.to_string(),
        headers: parts.headers.clone(),
    });

    let mut child = command(&parts, &root)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("git http-backend starts");
    let (to_stdin, from_body) = mpsc::channel(4);
    let (to_body, mut from_stdout) = mpsc::channel(4);
    let stdin = child.stdin.take().expect("stdin is piped");
    let stdout = child.stdout.take().expect("stdout is piped");
    std::thread::spawn(move || feed(stdin, from_body));
    std::thread::spawn(move || drain(child, stdout, to_body));
    tokio::spawn(pump(body, to_stdin));

    // The CGI head ends at the first blank line; whatever follows is body.
    let mut out = Vec::new();
    let end = loop {
        if let Some(end) = out.windows(4).position(|w| w == b"\r\n\r\n") {
            break end;
        }
        let chunk = from_stdout.recv().await.expect("http-backend wrote a head");
        out.extend_from_slice(&chunk);
    };
    let rest = Bytes::copy_from_slice(&out[end + 4..]);
    let body = Piped {
        first: Some(rest).filter(|b| !b.is_empty()),
        rx: from_stdout,
    };
    Ok(response(&String::from_utf8_lossy(&out[..end]), body))
}

/// The CGI environment for one request (RFC 3875, plus git's own variables).
fn command(parts: &Parts, root: &Path) -> Command {
    let header = |name| text(&parts.headers, name).unwrap_or("");
    let mut command = Command::new(backend_program());
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", root)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_PROJECT_ROOT", root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        // http-backend refuses receive-pack to anonymous users; the gateway has decided.
        .env("REMOTE_USER", "repogate")
        .env("REMOTE_ADDR", "127.0.0.1")
        .env("REQUEST_METHOD", parts.method.as_str())
        .env("PATH_INFO", parts.uri.path())
        .env("QUERY_STRING", parts.uri.query().unwrap_or(""))
        .env("CONTENT_TYPE", header("content-type"))
        .env("HTTP_CONTENT_ENCODING", header("content-encoding"))
        .env("GIT_PROTOCOL", header("git-protocol"));

    // Without CONTENT_LENGTH (a chunked body) http-backend reads until EOF.
    if let Some(length) = text(&parts.headers, "content-length") {
        command.env("CONTENT_LENGTH", length);
    }
    command
}

/// Builds the response from the CGI head: a `Status:` line and headers.
fn response(head: &str, body: Piped) -> Response<Piped> {
    let mut response = Response::new(body);
    for line in head.split("\r\n") {
        let (name, value) = line.split_once(':').expect("CGI header is `Name: value`");
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") {
            let code = value.split(' ').next().unwrap_or_default();
            *response.status_mut() = StatusCode::from_bytes(code.as_bytes()).expect("a status");
        } else {
            let name = HeaderName::from_bytes(name.as_bytes()).expect("a header name");
            let value = HeaderValue::from_str(value).expect("a header value");
            response.headers_mut().append(name, value);
        }
    }
    response
}

/// `git-http-backend` in the folder `git --exec-path` names, looked up once.
fn backend_program() -> &'static Path {
    static PROGRAM: OnceLock<PathBuf> = OnceLock::new();
    PROGRAM.get_or_init(|| {
        let out = Command::new("git").arg("--exec-path").output();
        let out = out.expect("git is installed");
        let folder = String::from_utf8(out.stdout).expect("exec path is UTF-8");
        Path::new(folder.trim()).join("git-http-backend")
    })
}

/// Moves the request body, frame by frame, to the thread that writes stdin.
async fn pump(mut body: Incoming, to_stdin: mpsc::Sender<Bytes>) {
    while let Some(Ok(frame)) = body.frame().await {
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if to_stdin.send(data).await.is_err() {
            return;
        }
    }
}

/// Writes chunks to the child's stdin; dropping it at the end is the EOF.
fn feed(mut stdin: ChildStdin, mut chunks: mpsc::Receiver<Bytes>) {
    while let Some(chunk) = chunks.blocking_recv() {
        if stdin.write_all(&chunk).is_err() {
            return;
        }
    }
}

/// Reads the child's stdout in chunks until it ends, then reaps the child.
fn drain(mut child: Child, mut stdout: ChildStdout, to_body: mpsc::Sender<Bytes>) {
    let mut buf = vec![0; 64 * 1024];
    while let Ok(n @ 1..) = stdout.read(&mut buf) {
        let chunk = Bytes::copy_from_slice(&buf[..n]);
        if to_body.blocking_send(chunk).is_err() {
            break;
        }
    }
    drop(stdout);
    let _ = child.wait();
}

/// A response body fed by the stdout thread.
pub struct Piped {
    first: Option<Bytes>,
    rx: mpsc::Receiver<Bytes>,
}

impl Body for Piped {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if let Some(first) = self.first.take() {
            return Poll::Ready(Some(Ok(Frame::data(first))));
        }
        let chunk = self.rx.poll_recv(cx);
        chunk.map(|c| c.map(|data| Ok(Frame::data(data))))
    }
}
