//! The data plane: accept a request, find its route, resolve its token,
//! decide, and forward it with the upstream's credential.
//!
//! [`Gateway::handle`] is the outer handler: it loads the current
//! [`Runtime`] once, runs the inner steps with `?`, and turns any failure
//! into a response in one place (`error.rs`), logging denials once.

pub mod credential;
pub mod error;
mod form;
pub mod forward;
pub mod headers;
pub mod listener;
mod pool;
pub mod redact;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{header, Request, Response};
use http_body_util::{Either, Full};
use hyper::body::Incoming;

use crate::access::{self, Action, Target, Validity};
use crate::cache::{ResolveError, TokenCache};
use crate::config::Config;
use crate::metrics::{Decision, Label, Metrics, RequestLabels};
use crate::registry::Registry;
use crate::reload::ReloadState;
use crate::route::{Match, RepoRef, RouteTable};
use crate::token::TokenId;
use credential::Credential;
use error::{GitClient, ProxyError};
use forward::Upstream;
use headers::ClientInfo;

/// Body of a request on its way upstream: streamed as received, or the
/// buffered copy of a small form that was read to find the repository.
pub type RequestBody = Either<Incoming, Full<Bytes>>;
/// Body of a response to the client: the upstream's stream (cut when the
/// upstream stalls), or our JSON error.
pub type ProxyBody = Either<forward::TimedBody<Incoming>, Full<Bytes>>;

/// Headers some frameworks honour to run a request as another method.
const METHOD_OVERRIDES: [&str; 3] = [
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

/// Everything one config file builds for the data plane. Swapped whole on
/// reload; a request keeps the one it started with.
pub struct Runtime {
    /// The validated config this was built from.
    pub config: Arc<Config>,
    /// Counts successful loads: 1 at start, +1 per reload.
    pub generation: u64,
    /// Compiled routes.
    pub routes: RouteTable,
    /// One pooled client per `[[upstreams]]` entry, in config order.
    pub upstreams: Vec<Upstream>,
    /// TLS for new inbound connections, when `[server] tls` is set.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
}

/// Why a runtime could not be built from a config.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// A route did not compile.
    #[error(transparent)]
    Route(#[from] crate::route::RouteError),
    /// An upstream client could not be built.
    #[error(transparent)]
    Upstream(#[from] forward::BuildError),
    /// The inbound certificate or key could not be used.
    #[error("server.tls: {0}")]
    Tls(#[from] crate::tls::TlsError),
}

impl Runtime {
    /// Builds routes, upstream clients and TLS from a validated config.
    pub fn build(config: Arc<Config>, generation: u64) -> Result<Runtime, RuntimeError> {
        let specs = config.routes.iter().map(|route| {
            let upstream = config
                .upstreams
                .iter()
                .position(|u| u.name == route.upstream);
            crate::config::route_spec(
                route,
                upstream.expect("config validation checked upstream names"),
            )
        });
        let routes = RouteTable::compile(specs)?;
        let upstreams = config
            .upstreams
            .iter()
            .map(|u| Upstream::build(u, config.server.worker_count()))
            .collect::<Result<_, _>>()?;
        let tls = match &config.server.tls {
            Some(t) => Some(crate::tls::server_config(&t.cert, &t.key)?.into()),
            None => None,
        };
        Ok(Runtime {
            generation,
            routes,
            upstreams,
            tls,
            config,
        })
    }
}

/// The shared state of the data plane.
pub struct Gateway {
    /// The current runtime; replaced atomically on reload.
    pub runtime: ArcSwap<Runtime>,
    /// Resolved tokens.
    pub tokens: Arc<TokenCache>,
    /// Registered repositories and the default role.
    pub registry: Arc<Registry>,
    /// Counters and histograms for `/metrics`.
    pub metrics: Arc<Metrics>,
    /// The outcome of the last config reload, for status and metrics.
    pub reloads: ReloadState,
}

/// What the listener knows about the connection a request came on.
#[derive(Clone, Debug)]
pub struct Connection {
    /// The client's address.
    pub peer: SocketAddr,
    /// Whether repogate terminated TLS on it.
    pub tls: bool,
    /// `peer`'s address as an `X-Forwarded-For` value, made once for all
    /// the requests of the connection.
    forwarded_for: http::HeaderValue,
}

impl Connection {
    /// A connection from `peer`, over TLS or not.
    pub fn new(peer: SocketAddr, tls: bool) -> Connection {
        Connection {
            peer,
            tls,
            forwarded_for: headers::forwarded_for(peer.ip()),
        }
    }
}

/// What a request turned out to be about, filled in step by step for the
/// log lines and metrics written once it ends.
#[derive(Default)]
struct Trail {
    route: Option<Arc<str>>,
    action: Option<Action>,
    git: bool,
    token: Option<TokenId>,
    repo: Option<String>,
    upstream: Option<Duration>,
}

impl Gateway {
    /// Handles one proxied request from start to finish.
    pub async fn handle(&self, req: Request<Incoming>, conn: &Connection) -> Response<ProxyBody> {
        let started = Instant::now();
        let runtime = self.runtime.load_full();
        tracing::trace!(
            method = %req.method(),
            path = redact::path(req.uri()),
            headers = ?redact::Headers(req.headers()),
            client.ip = %conn.peer.ip(),
            "request received"
        );
        let access_log = runtime
            .config
            .log
            .access_log
            .then(|| (req.method().clone(), req.uri().path().to_owned()));
        let from_git = req
            .headers()
            .get(header::USER_AGENT)
            .is_some_and(|ua| ua.as_bytes().starts_with(b"git/"));

        let mut trail = Trail::default();
        let (response, decision) = match self
            .authorize_and_forward(&runtime, req, conn, &mut trail)
            .await
        {
            Ok(response) => (response, Decision::Allowed),
            Err(err) => {
                log_failure(&err, conn, &trail);
                let decision = err.decision();
                let git = match (trail.git, from_git) {
                    (false, _) => GitClient::No,
                    (true, false) => GitClient::GitRoute,
                    (true, true) => GitClient::Git,
                };
                (err.into_response(git), decision)
            }
        };

        self.record(&trail, decision, response.status(), started);
        if let Some((method, path)) = access_log {
            tracing::info!(
                target: "repogate::access",
                %method,
                path,
                route = trail.route.as_deref().unwrap_or("-"),
                repo = trail.repo.as_deref().unwrap_or("-"),
                action = trail.action.map_or("-", Action::as_str),
                decision = ?decision,
                status = response.status().as_u16(),
                upstream_ms = trail.upstream.map(|d| d.as_secs_f64() * 1000.0),
                token.id = trail.token.as_ref().map(TokenId::as_str).unwrap_or("-"),
                client.ip = %conn.peer.ip(),
                "access"
            );
        }
        response
    }

    fn record(
        &self,
        trail: &Trail,
        decision: Decision,
        status: http::StatusCode,
        started: Instant,
    ) {
        let route = Label(
            trail
                .route
                .clone()
                .unwrap_or_else(|| Arc::clone(&self.metrics.no_route)),
        );
        let labels = RequestLabels {
            route,
            decision,
            status: status.as_u16(),
        };
        self.metrics.requests.get_or_create(&labels).inc();
        self.metrics
            .request_seconds
            .observe(started.elapsed().as_secs_f64());
        if let Some(upstream) = trail.upstream {
            self.metrics
                .upstream_seconds
                .observe(upstream.as_secs_f64());
        }
    }

    async fn authorize_and_forward(
        &self,
        runtime: &Runtime,
        req: Request<Incoming>,
        conn: &Connection,
        trail: &mut Trail,
    ) -> Result<Response<ProxyBody>, ProxyError> {
        let (parts, body) = req.into_parts();
        if METHOD_OVERRIDES
            .iter()
            .any(|h| parts.headers.contains_key(*h))
        {
            return Err(ProxyError::MethodOverride);
        }

        // Route first: it says which repository and action the request is about.
        let path = parts.uri.path();
        let matched = match runtime.routes.find(&parts.method, path, parts.uri.query()) {
            Match::BadPath(e) => return Err(ProxyError::BadPath(e)),
            Match::NoRoute => return Err(ProxyError::NoRoute),
            Match::NoRule { route } => {
                trail.route = Some(Arc::clone(&route.prefix));
                return Err(ProxyError::NoRule {
                    prefix: Arc::clone(&route.prefix),
                });
            }
            Match::Found(m) => m,
        };
        let (route, action) = (matched.route, matched.action);
        trail.route = Some(Arc::clone(&route.prefix));
        trail.action = Some(action);
        trail.git = matched.git;
        let strip = path.len() - matched.forward_path.len();
        let repo_ref = match matched.repo {
            RepoRef::Name(name) => RepoSource::Name(name.into_owned()),
            RepoRef::Form(field) => RepoSource::Form(field),
            RepoRef::None => RepoSource::None,
        };

        // Then the token: cheap format checks before the cache, the cache before the store.
        if credential::query_has_credential(parts.uri.query()) {
            return Err(ProxyError::ForeignCredential);
        }
        let presented = match credential::extract(&parts.headers) {
            Credential::Missing => return Err(ProxyError::MissingToken),
            Credential::Foreign => return Err(ProxyError::ForeignCredential),
            Credential::Token(t) => t,
        };
        let now = crate::now_ms();
        let cached = match self.tokens.resolve(&presented) {
            Ok(cached) => cached,
            Err(err) => {
                // The denial is logged with the repository the request named.
                if let RepoSource::Name(name) = repo_ref {
                    trail.repo = Some(name);
                }
                return Err(err.into());
            }
        };
        self.metrics.tokens_resolved.inc();
        trail.token = Some(cached.record.id);

        // Only a form-field source needs the body before deciding.
        let (repo, body) = match repo_ref {
            RepoSource::Name(name) => (Some(name), Either::Left(body)),
            RepoSource::None => (None, Either::Left(body)),
            RepoSource::Form(field) => form::repo_from_form(&parts, body, field).await?,
        };

        let found = repo.as_deref().and_then(|name| self.registry.lookup(name));
        trail.repo = found.as_ref().map(|r| r.name.clone()).or(repo);
        let target = match (&found, trail.repo.as_deref()) {
            (Some(record), _) => Target::Registered {
                name: &record.name,
                created_seq: record.created_seq,
            },
            (None, Some(name)) => Target::Unregistered(name),
            (None, None) => Target::Every,
        };
        let validity = Validity {
            revoked_at: cached.record.revoked_at,
            expires_at: cached.record.expires_at,
        };
        let default = self.registry.default_role();
        if let Err(denial) =
            access::decide(&cached.record.scope, validity, target, action, default, now)
        {
            return Err(ProxyError::Denied {
                token: cached.record.id,
                denial,
                repo: trail.repo.clone(),
                action,
            });
        }
        // Only an allowed request counts as a use of the token.
        self.tokens.record_use(&cached, now);

        // Finally forward, with the client's credential swapped for the upstream's.
        let upstream = &runtime.upstreams[route.upstream];
        let client = ClientInfo {
            forwarded_for: &conn.forwarded_for,
            proto: if conn.tls { "https" } else { "http" },
        };
        let sent = Instant::now();
        let idle = runtime.config.server.idle_timeout;
        let result = upstream.forward(parts, body, strip, client, idle).await;
        trail.upstream = Some(sent.elapsed());
        result
    }
}

/// Where the repository name comes from, owned so the request can move on.
enum RepoSource<'t> {
    Name(String),
    Form(&'t str),
    None,
}

/// One log event per failed request: denials at info with who and what,
/// upstream failures at warn, other refusals at info.
fn log_failure(err: &ProxyError, conn: &Connection, trail: &Trail) {
    let action = trail.action.map_or("-", Action::as_str);
    let (status, code) = err.status();
    match err {
        ProxyError::Denied {
            token,
            denial,
            repo,
            ..
        } => tracing::info!(
            token.id = %token,
            repo = repo.as_deref().unwrap_or("-"),
            action,
            reason = %denial,
            client.ip = %conn.peer.ip(),
            status = status.as_u16(),
            "request denied"
        ),
        ProxyError::Token(ResolveError::Unknown(id) | ResolveError::WrongSecret(id)) => {
            tracing::info!(
                token.id = %id,
                repo = trail.repo.as_deref().unwrap_or("-"),
                action,
                reason = %err,
                client.ip = %conn.peer.ip(),
                status = status.as_u16(),
                "request denied"
            )
        }
        // git asks once without credentials before every operation: routine, not a denial.
        ProxyError::MissingToken => {
            tracing::debug!(client.ip = %conn.peer.ip(), status = status.as_u16(), "no token; challenged")
        }
        ProxyError::Upstream { .. } | ProxyError::UpstreamTimeout { .. } => {
            tracing::warn!(error = %err, client.ip = %conn.peer.ip(), status = status.as_u16(), "upstream failed")
        }
        _ => tracing::info!(
            code,
            reason = %err,
            client.ip = %conn.peer.ip(),
            status = status.as_u16(),
            "request refused"
        ),
    }
}
