//! Admin mode: minting, listing, revoking and exporting tokens, the
//! repository registry, settings and audit, on a listener of its own.
//!
//! [`Admin::handle`] is the outer handler: it routes, runs the inner handler
//! with `?`, and maps any [`AdminError`] to its response in one place. Every
//! route but login, health and metrics needs a session from login.

pub mod error;
pub mod export;
pub mod mint;
pub mod session;
pub mod tokens;

mod routes;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{header, Request, Response};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Body;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

use crate::password::Verifier;
use crate::proxy::Gateway;
use crate::store::AuditEntry;
use error::AdminError;
use session::{LoginLimiter, Session, Sessions};

/// The admin side's state.
pub struct Admin {
    /// The data plane's shared state: runtime config, token cache, registry.
    pub gateway: Arc<Gateway>,
    sessions: Sessions,
    limiter: LoginLimiter,
    /// Runs argon2 off the async workers, a bounded number at a time.
    verifier: Verifier,
}

/// Who is calling and from where, for audit entries.
pub struct Caller {
    /// The session's admin user.
    pub user: String,
    /// The client address.
    pub client: SocketAddr,
}

impl Admin {
    /// Admin state over a running gateway.
    pub fn new(gateway: Arc<Gateway>) -> Admin {
        let concurrency = gateway.runtime.load().config.admin.login_concurrency;
        Admin {
            gateway,
            sessions: Sessions::default(),
            limiter: LoginLimiter::default(),
            verifier: Verifier::new(concurrency),
        }
    }

    /// Handles one admin request.
    pub async fn handle<B>(&self, req: Request<B>, peer: SocketAddr) -> Response<Full<Bytes>>
    where
        B: Body<Data = Bytes>,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let method = req.method().clone();
        let path = req.uri().path().to_owned();
        match self.route(req, peer).await {
            Ok(response) => response,
            Err(err) => {
                let (status, _) = err.status();
                tracing::debug!(%method, path, status = status.as_u16(), error = %err, "admin request refused");
                err.into_response()
            }
        }
    }

    /// The caller's session, from `Authorization: Bearer`.
    fn session(&self, req: &Request<impl Body>) -> Result<Session, AdminError> {
        let presented = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .ok_or(AdminError::NoSession)?;
        self.sessions
            .check(presented.trim())
            .ok_or(AdminError::NoSession)
    }

    /// Appends an audit entry; a failure is logged, not returned, so an audit
    /// hiccup never turns a done revoke into an error the caller retries.
    fn audit(&self, actor: &str, client: SocketAddr, action: &str, target: &str, outcome: &str) {
        let entry = AuditEntry {
            at: crate::now_ms(),
            actor: actor.to_owned(),
            client: client.ip().to_string(),
            action: action.to_owned(),
            target: target.to_owned(),
            outcome: outcome.to_owned(),
        };
        if let Err(e) = self.gateway.tokens.store().append_audit(&entry) {
            tracing::error!(error = %e, action, "could not append audit entry");
        }
    }
}

/// Reads a body of at most `limit` bytes.
async fn read_body<B>(body: B, limit: usize) -> Result<Bytes, AdminError>
where
    B: Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(AdminError::TooLarge(limit)),
        Err(e) => Err(AdminError::Body(e.to_string())),
    }
}

/// Serves the admin API on `listener` until `shutdown` completes.
pub async fn serve(listener: TcpListener, admin: Arc<Admin>, shutdown: impl Future<Output = ()>) {
    let header_timeout = admin
        .gateway
        .runtime
        .load()
        .config
        .server
        .header_read_timeout;
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    let builder = Arc::new(builder);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!(error = %e, "admin accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => return,
        };
        let (admin, builder) = (Arc::clone(&admin), Arc::clone(&builder));
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let admin = Arc::clone(&admin);
                async move { Ok::<_, Infallible>(admin.handle(req, peer).await) }
            });
            let _ = builder
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
