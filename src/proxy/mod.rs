//! The data plane: accept a request, find its route, resolve its token,
//! decide, and forward it with the upstream's credential.
//!
//! [`Gateway::handle`] is the outer handler: it loads the current
//! [`Runtime`] once, runs the inner steps with `?`, and turns any failure
//! into a response in one place (`error.rs`), logging denials once.

pub mod credential;
pub mod error;
pub mod forward;
pub mod headers;
pub mod listener;

use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::request::Parts;
use http::{header, Request, Response};
use http_body_util::{BodyExt, Either, Full, Limited};
use hyper::body::Incoming;

use crate::access::{self, Action, Target, Validity};
use crate::cache::TokenCache;
use crate::config::Config;
use crate::registry::Registry;
use crate::route::{Match, RepoRef, RouteTable};
use credential::Credential;
use error::ProxyError;
use forward::Upstream;
use headers::ClientInfo;

/// Body of a request on its way upstream: streamed as received, or the
/// buffered copy of a small form that was read to find the repository.
pub type RequestBody = Either<Incoming, Full<Bytes>>;
/// Body of a response to the client: the upstream's stream, or our JSON error.
pub type ProxyBody = Either<Incoming, Full<Bytes>>;

/// Largest url-encoded form body read to find a repository name.
const MAX_FORM_BYTES: usize = 64 * 1024;

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
            .map(Upstream::build)
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
}

/// What the listener knows about the connection a request came on.
#[derive(Clone, Copy, Debug)]
pub struct Connection {
    /// The client's address.
    pub peer: SocketAddr,
    /// Whether repogate terminated TLS on it.
    pub tls: bool,
}

/// What the decision was about, kept for the denial log line.
struct Decided {
    action: Action,
    git: bool,
}

impl Gateway {
    /// Handles one proxied request from start to finish.
    pub async fn handle(&self, req: Request<Incoming>, conn: Connection) -> Response<ProxyBody> {
        let runtime = self.runtime.load_full();
        let mut decided = Decided {
            action: Action::Read,
            git: false,
        };
        match self
            .authorize_and_forward(&runtime, req, conn, &mut decided)
            .await
        {
            Ok(response) => response,
            Err(err) => {
                log_failure(&err, conn, decided.action);
                err.into_response(decided.git)
            }
        }
    }

    async fn authorize_and_forward(
        &self,
        runtime: &Runtime,
        req: Request<Incoming>,
        conn: Connection,
        decided: &mut Decided,
    ) -> Result<Response<ProxyBody>, ProxyError> {
        let (parts, body) = req.into_parts();

        // Route first: it says which repository and action the request is about.
        let path = parts.uri.path();
        let matched = match runtime.routes.find(&parts.method, path, parts.uri.query()) {
            Match::BadPath(e) => return Err(ProxyError::BadPath(e)),
            Match::NoRoute => return Err(ProxyError::NoRoute),
            Match::NoRule { route } => {
                return Err(ProxyError::NoRule {
                    prefix: route.prefix.clone(),
                })
            }
            Match::Found(m) => m,
        };
        decided.action = matched.action;
        decided.git = matched.git;
        let route = matched.route;
        let strip = path.len() - matched.forward_path.len();
        let repo_ref = match matched.repo {
            RepoRef::Name(name) => RepoSource::Name(name.into_owned()),
            RepoRef::Form(field) => RepoSource::Form(field),
            RepoRef::None => RepoSource::None,
        };

        // Then the token: cheap format checks before the cache, the cache before the store.
        let presented = match credential::extract(&parts.headers) {
            Credential::Missing => return Err(ProxyError::MissingToken),
            Credential::Foreign => return Err(ProxyError::ForeignCredential),
            Credential::Token(t) => t,
        };
        let now = crate::now_ms();
        let cached = self.tokens.resolve(&presented, now)?;

        // Only a form-field source needs the body before deciding.
        let (repo, body) = match repo_ref {
            RepoSource::Name(name) => (Some(name), Either::Left(body)),
            RepoSource::None => (None, Either::Left(body)),
            RepoSource::Form(field) => repo_from_form(&parts, body, field).await?,
        };

        let found = repo.as_deref().and_then(|name| self.registry.lookup(name));
        let target = match (&found, repo.as_deref()) {
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
        let scope = &cached.record.scope;
        access::decide(
            scope,
            validity,
            target,
            matched_action(decided),
            self.registry.default_role(),
            now,
        )
        .map_err(|denial| ProxyError::Denied {
            token: cached.record.id,
            denial,
            repo: found.as_ref().map(|r| r.name.clone()).or(repo.clone()),
            action: decided.action,
        })?;
        tracing::debug!(token.id = %cached.record.id, repo = repo.as_deref().unwrap_or("-"), action = %decided.action, "allowed");

        // Finally forward, with the client's credential swapped for the upstream's.
        let upstream = &runtime.upstreams[route.upstream];
        let host = parts.headers.get(header::HOST).cloned().or_else(|| {
            parts
                .uri
                .authority()
                .and_then(|a| http::HeaderValue::from_str(a.as_str()).ok())
        });
        let client = ClientInfo {
            ip: conn.peer.ip(),
            proto: if conn.tls { "https" } else { "http" },
            host: host.as_ref(),
        };
        let forward_path = parts.uri.path()[strip..].to_owned();
        upstream.forward(parts, body, &forward_path, client).await
    }
}

fn matched_action(decided: &Decided) -> Action {
    decided.action
}

/// Where the repository name comes from, owned so the request can move on.
enum RepoSource<'t> {
    Name(String),
    Form(&'t str),
    None,
}

/// Reads a small url-encoded body to find `field`. Other bodies (multipart
/// uploads) are streamed untouched and the repository stays unknown, so only
/// tokens holding the action on every repository pass: admin tokens.
async fn repo_from_form(
    parts: &Parts,
    body: Incoming,
    field: &str,
) -> Result<(Option<String>, RequestBody), ProxyError> {
    let is_form = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return Ok((None, Either::Left(body)));
    }
    let bytes = Limited::new(body, MAX_FORM_BYTES)
        .collect()
        .await
        .map_err(|e| ProxyError::Body(e.to_string()))?
        .to_bytes();
    let value = form_urlencoded::parse(&bytes)
        .find(|(k, _)| k == field)
        .map(|(_, v)| v.into_owned());
    Ok((value, Either::Right(Full::new(bytes))))
}

/// One log event per failed request: denials at info with who and what,
/// upstream failures at warn, everything else at debug.
fn log_failure(err: &ProxyError, conn: Connection, action: Action) {
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
            action = %action,
            reason = %denial,
            client.ip = %conn.peer.ip(),
            status = status.as_u16(),
            "request denied"
        ),
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
