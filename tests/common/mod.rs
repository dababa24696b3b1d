//! Shared test parts: a real hyper upstream on loopback, a gateway started on
//! port 0 over a sled store in a temp folder, and a small HTTP client.
#![allow(dead_code)] // each test binary uses a different subset

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::service::service_fn;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::{TokioExecutor, TokioIo};
use repogate::access::Role;
use repogate::admin::mint::{mint as mint_token, MintRequest};
use repogate::app::{self, Running};
use repogate::store::RepoOrigin;
use tempfile::TempDir;
use tokio::net::TcpListener;

/// What the upstream saw of one request.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: Method,
    /// Path and query exactly as received.
    pub target: String,
    pub headers: HeaderMap,
    pub body_len: u64,
}

/// A real HTTP upstream on loopback that records what reaches it.
pub struct TestUpstream {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
}

impl TestUpstream {
    pub fn last(&self) -> Seen {
        self.seen
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("the upstream saw a request")
    }

    pub fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

/// Starts the upstream. `/slow…` answers after 3 s, `/download/N` streams N
/// bytes, anything else drains the body and answers 200 with the target.
pub async fn upstream() -> TestUpstream {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let record = Arc::clone(&record);
            tokio::spawn(async move {
                let service = service_fn(move |req| answer(req, Arc::clone(&record)));
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    TestUpstream { addr, seen }
}

type UpBody = http_body_util::Either<Full<Bytes>, Zeros>;

async fn answer(
    req: Request<Incoming>,
    seen: Arc<Mutex<Vec<Seen>>>,
) -> Result<Response<UpBody>, Infallible> {
    let (parts, mut body) = req.into_parts();
    let target = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let mut body_len = 0u64;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.map(|f| f.into_data()) {
            body_len += data.map_or(0, |d| d.len() as u64);
        } else {
            break;
        }
    }
    seen.lock().unwrap().push(Seen {
        method: parts.method.clone(),
        target: target.clone(),
        headers: parts.headers.clone(),
        body_len,
    });

    if parts.uri.path().starts_with("/slow") {
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    if let Some(n) = parts.uri.path().strip_prefix("/download/") {
        let n: u64 = n.parse().unwrap_or(0);
        return Ok(Response::new(http_body_util::Either::Right(Zeros::new(n))));
    }
    let json = serde_json::json!({ "target": target, "body_len": body_len });
    let mut response = Response::new(http_body_util::Either::Left(Full::new(Bytes::from(
        json.to_string(),
    ))));
    response
        .headers_mut()
        .insert("connection", "x-up-hop".parse().unwrap());
    response
        .headers_mut()
        .insert("x-up-hop", "1".parse().unwrap());
    response
        .headers_mut()
        .insert("x-upstream", "yes".parse().unwrap());
    Ok(response)
}

/// A body of `left` zero bytes, produced 64 KiB at a time and never held whole.
pub struct Zeros {
    left: u64,
}

impl Zeros {
    pub fn new(n: u64) -> Self {
        Zeros { left: n }
    }
}

impl Body for Zeros {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        static CHUNK: [u8; 64 * 1024] = [0; 64 * 1024];
        if self.left == 0 {
            return std::task::Poll::Ready(None);
        }
        let n = self.left.min(CHUNK.len() as u64);
        self.left -= n;
        std::task::Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(
            &CHUNK[..n as usize],
        )))))
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.left)
    }
}

/// A gateway on port 0 over a store in a temp folder.
pub struct Gate {
    pub dir: TempDir,
    pub running: Running,
    pub base: String,
}

impl Gate {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A URL on the admin listener.
    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.running.admin_addr)
    }

    pub async fn add_repo(&self, name: &str) {
        self.add_repo_with_aliases(name, &[]).await
    }

    pub async fn add_repo_with_aliases(&self, name: &str, aliases: &[&str]) {
        let aliases: Vec<String> = aliases.iter().map(|a| a.to_string()).collect();
        let registry = &self.running.gateway.registry;
        registry
            .add(name, &aliases, RepoOrigin::Admin, repogate::now_ms())
            .unwrap();
    }

    /// Mints a token straight through the minting rules (no admin API).
    pub async fn mint(&self, admin: bool, grants: &[(&str, Role)]) -> String {
        let gw = &self.running.gateway;
        let plan = gw.runtime.load().config.account.plan;
        let req = MintRequest {
            description: "test".into(),
            admin,
            grants: grants.iter().map(|(r, g)| (r.to_string(), *g)).collect(),
            expires_at: None,
            created_by: "test".into(),
        };
        let (secret, _) = mint_token(
            gw.tokens.store(),
            &gw.registry,
            plan,
            req,
            repogate::now_ms(),
        )
        .await
        .unwrap();
        secret.expose().to_owned()
    }
}

/// An `[[admin.users]]` block for user `admin` with password `pw` (hashed once per process).
pub fn admin_user() -> String {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let hash = HASH.get_or_init(|| repogate::password::hash("pw").unwrap());
    format!("[[admin.users]]\nname = \"admin\"\npassword_hash = \"{hash}\"\n")
}

/// Config text with the listeners on port 0 and the store in `dir`, plus `rest`.
pub fn config_text(dir: &TempDir, rest: &str) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[admin]\nlisten = \"127.0.0.1:0\"\n[store]\npath = \"{}\"\n{rest}",
        dir.path().join("db").display()
    )
}

/// Starts a gateway from `rest` (everything but listeners and store).
pub async fn gateway(rest: &str) -> Gate {
    let dir = tempfile::tempdir().unwrap();
    let text = config_text(&dir, rest);
    gateway_from_text(dir, &text).await
}

/// Writes `text` as the config file in `dir` and loads it; an invalid file
/// fails the test with its text.
pub fn load_config(dir: &TempDir, text: &str) -> repogate::config::Config {
    let path = dir.path().join("repogate.toml");
    std::fs::write(&path, text).unwrap();
    repogate::config::load(&path).unwrap_or_else(|e| panic!("test config invalid: {e}\n{text}"))
}

/// Starts a plain-HTTP gateway from a whole config `text` (listeners
/// included), its file and store in `dir`.
pub async fn gateway_from_text(dir: TempDir, text: &str) -> Gate {
    let config = load_config(&dir, text);
    let running = app::start(config, std::future::pending()).await.unwrap();
    let base = format!("http://{}", running.proxy_addr);
    Gate { dir, running, base }
}

/// An upstream block plus one route to it.
pub fn upstream_route(up: &TestUpstream, route: &str) -> String {
    format!(
        "[[upstreams]]\nname = \"up\"\nurl = \"http://{}\"\nheaders = {{ \"PRIVATE-TOKEN\" = \"real-upstream-secret\" }}\ntimeout = \"1s\"\n{route}",
        up.addr
    )
}

pub type TestClient = Client<HttpConnector, Full<Bytes>>;

pub fn client() -> TestClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// A response, read whole.
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|_| panic!("not JSON: {:?}", self.body))
    }
}

/// Sends a request with `headers` and an optional body, and reads the reply.
pub async fn send(method: Method, url: &str, headers: &[(&str, &str)], body: &str) -> Reply {
    let mut req = Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Full::new(Bytes::from(body.to_owned()))).unwrap();
    let response = client()
        .request(req)
        .await
        .expect("request reaches the gateway");
    let (parts, body) = response.into_parts();
    let body = body.collect().await.expect("body reads").to_bytes();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

pub async fn get(url: &str, token: &str) -> Reply {
    let auth = format!("Bearer {token}");
    send(Method::GET, url, &[("authorization", &auth)], "").await
}

/// A port that was free a moment ago, for configs a child process binds.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The status of a GET, or `None` while nothing answers (yet).
pub async fn probe(url: &str) -> Option<u16> {
    let req = Request::get(url).body(Full::new(Bytes::new())).ok()?;
    let reply = tokio::time::timeout(Duration::from_millis(200), client().request(req))
        .await
        .ok()?;
    Some(reply.ok()?.status().as_u16())
}

/// The role table of DESIGN.md §2, written out independently of
/// `src/access.rs`, so a change there cannot move both sides at once.
pub fn table_allows(role: Role, action: repogate::access::Action) -> bool {
    use repogate::access::Action::*;
    let actions: &[repogate::access::Action] = match role {
        Role::NoAccess => &[],
        Role::Viewer => &[Read, Comment, Clone],
        Role::Developer => &[Read, Comment, Clone, Integrate, Write],
        Role::Reviewer => &[Read, Comment, Clone, Integrate, Write, Review],
        Role::Maintainer => &[Read, Comment, Clone, Integrate, Write, Maintain],
        Role::RepositoryAdmin | Role::CompanyAdmin => {
            &[Read, Comment, Clone, Integrate, Write, Review, Maintain]
        }
    };
    actions.contains(&action)
}

/// Every record of a CSV text, the header included, read with the `csv` crate.
pub fn csv_records(bytes: &[u8]) -> Vec<Vec<String>> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(bytes)
        .records()
        .map(|r| {
            r.expect("the export is valid CSV")
                .iter()
                .map(str::to_owned)
                .collect()
        })
        .collect()
}
