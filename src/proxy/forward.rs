//! Forwarding an allowed request to its upstream over a pooled connection.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use tokio::sync::oneshot;
use tokio::time::Sleep;

use http::header::{self, HeaderName, HeaderValue};
use http::request::Parts;
use http::uri::PathAndQuery;
use http::{Request, Response, Uri, Version};
use hyper_util::client::legacy::connect::HttpConnector;

use super::error::ProxyError;
use super::headers::{self, ClientInfo};
use super::pool::{self, Conn, ConnectError, Pool, SendError};
use super::{ProxyBody, RequestBody};
use crate::config;
use crate::tls;

/// One configured upstream with its own connection pool.
pub struct Upstream {
    /// Name from the config file, for errors and logs.
    pub name: String,
    /// Path prefix from the upstream URL, without a trailing `/`.
    base_path: String,
    /// Headers added to every forwarded request: `Host` for the upstream,
    /// then the configured ones (the upstream's credential).
    inject: Vec<(HeaderName, HeaderValue)>,
    /// Longest wait for the response head, and for each next piece of the
    /// response body.
    timeout: Duration,
    /// Idle keep-alive connections, per proxy worker.
    pool: Pool,
}

thread_local! {
    /// The proxy worker running on this thread (0 elsewhere).
    static WORKER: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Marks the current thread as proxy worker `index`.
pub fn set_worker(index: usize) {
    WORKER.with(|w| w.set(index));
}

/// Why an upstream client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The URL or a header is unusable (normally caught by config validation).
    #[error("upstream {name}: {message}")]
    Invalid {
        /// Upstream name.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// The CA file could not be used.
    #[error("upstream {name}: {source}")]
    Tls {
        /// Upstream name.
        name: String,
        /// The TLS error.
        source: tls::TlsError,
    },
}

/// How an upstream failed before its response head arrived.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamFailure {
    /// No connection could be made.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// The exchange on an open connection failed.
    #[error(transparent)]
    Exchange(#[from] hyper::Error),
}

impl Upstream {
    /// Builds the pool for one `[[upstreams]]` entry, with an idle list per worker.
    pub fn build(cfg: &config::Upstream, workers: usize) -> Result<Upstream, BuildError> {
        let invalid = |message: String| BuildError::Invalid {
            name: cfg.name.clone(),
            message,
        };
        let uri = config::parse_base_url(&cfg.url).map_err(invalid)?;
        let parts = uri.into_parts();
        let authority = parts.authority.expect("validated URL has a host");
        let host = HeaderValue::from_str(authority.as_str()).map_err(|e| invalid(e.to_string()))?;
        let mut inject = vec![(header::HOST, host)];
        for (k, v) in &cfg.headers {
            let name = HeaderName::from_bytes(k.as_bytes()).map_err(|e| invalid(e.to_string()))?;
            let mut value =
                HeaderValue::from_str(v.expose()).map_err(|e| invalid(e.to_string()))?;
            value.set_sensitive(true);
            inject.push((name, value));
        }

        let tls = tls::client_config(cfg.ca_file.as_deref()).map_err(|source| BuildError::Tls {
            name: cfg.name.clone(),
            source,
        })?;
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let origin = Uri::builder()
            .scheme(parts.scheme.expect("validated URL has a scheme"))
            .authority(authority)
            .path_and_query("/")
            .build()
            .map_err(|e| invalid(e.to_string()))?;

        Ok(Upstream {
            name: cfg.name.clone(),
            base_path: parts
                .path_and_query
                .map(|p| p.path().trim_end_matches('/').to_owned())
                .unwrap_or_default(),
            inject,
            timeout: cfg.timeout,
            pool: Pool::new(connector, origin, cfg.connect_timeout, workers),
        })
    }

    /// Sends the request upstream and returns its response head with the body
    /// streaming behind it. The path goes upstream exactly as received, less
    /// the first `strip` bytes (a route prefix with `strip_prefix`).
    /// The upstream's `timeout` runs from the moment the request body has been
    /// sent in full, so a long push is not cut short; a client that stalls
    /// its body for longer than `body_idle` is cut off instead. Once the head
    /// is in, the same `timeout` bounds each wait for the next piece of the
    /// response body: a slow download goes on, a dead one is cut.
    pub async fn forward(
        &self,
        mut parts: Parts,
        body: RequestBody,
        strip: usize,
        client: ClientInfo<'_>,
        body_idle: Duration,
    ) -> Result<Response<ProxyBody>, ProxyError> {
        let authority = parts.uri.authority();
        headers::prepare_request(&mut parts.headers, client, authority, &self.inject);
        parts.uri = self.target(&parts.uri, strip)?;
        parts.version = Version::HTTP_11;

        // A request without a body has been sent as soon as it starts.
        let (sent_tx, sent_rx) = match body.is_end_stream() {
            true => (None, None),
            false => {
                let (tx, rx) = oneshot::channel();
                (Some(OnEnd::Sent(tx)), Some(rx))
            }
        };
        let body = TimedBody::new(body, body_idle, sent_tx, || Box::new(ClientStalled));
        let exchange = self.exchange(Request::from_parts(parts, body));
        // A dropped sender (the body abandoned) starts the clock as well.
        let deadline = async {
            if let Some(sent) = sent_rx {
                let _ = sent.await;
            }
            tokio::time::sleep(self.timeout).await;
        };
        let (response, conn) = tokio::select! {
            result = exchange => result?,
            () = deadline => {
                let seconds = self.timeout.as_secs();
                return Err(ProxyError::UpstreamTimeout { upstream: self.name.clone(), seconds });
            }
        };

        let (mut head, body) = response.into_parts();
        headers::prepare_response(&mut head.headers);
        let on_end = Some(OnEnd::Release(conn));
        let body = TimedBody::new(body, self.timeout, on_end, || Box::new(UpstreamStalled));
        Ok(Response::from_parts(
            head,
            http_body_util::Either::Left(body),
        ))
    }

    /// One exchange on a pooled connection. A connection that turns out to
    /// have closed before the request went out is replaced once by a new one.
    async fn exchange(
        &self,
        request: Request<pool::Body>,
    ) -> Result<(Response<Incoming>, Conn), ProxyError> {
        let worker = WORKER.with(|w| w.get());
        let conn = self
            .pool
            .checkout(worker)
            .await
            .map_err(|e| self.failed(e))?;
        let error = match conn.send(request).await {
            Ok(exchanged) => return Ok(exchanged),
            Err(SendError::Unsent(request, _)) => {
                let conn = self.pool.connect(worker).await;
                match conn.map_err(|e| self.failed(e))?.send(*request).await {
                    Ok(exchanged) => return Ok(exchanged),
                    Err(SendError::Unsent(_, e) | SendError::Failed(e)) => e,
                }
            }
            Err(SendError::Failed(e)) => e,
        };
        match stalled(&error) {
            true => Err(ProxyError::ClientStalled),
            false => Err(self.failed(error)),
        }
    }

    fn failed(&self, source: impl Into<UpstreamFailure>) -> ProxyError {
        ProxyError::Upstream {
            upstream: self.name.clone(),
            source: source.into(),
        }
    }

    /// The request target upstream (origin form): the base path, then the
    /// received path (less `strip` bytes of route prefix) and query.
    fn target(&self, received: &Uri, strip: usize) -> Result<Uri, ProxyError> {
        let path_and_query = match (self.base_path.is_empty(), strip, received.path_and_query()) {
            // The common case: forwarded as received, without copying or re-parsing.
            (true, 0, Some(pq)) => pq.clone(),
            _ => {
                let (path, query) = (&received.path()[strip..], received.query());
                let mut full = String::with_capacity(
                    self.base_path.len() + path.len() + query.map_or(0, |q| q.len() + 1),
                );
                full.push_str(&self.base_path);
                full.push_str(path);
                if let Some(q) = query {
                    full.push('?');
                    full.push_str(q);
                }
                PathAndQuery::try_from(full).map_err(http::Error::from)?
            }
        };
        Ok(Uri::from(path_and_query))
    }
}

/// The client stopped sending its request body for longer than allowed.
#[derive(Debug, thiserror::Error)]
#[error("client stopped sending its request body")]
struct ClientStalled;

/// The upstream stopped sending its response body for longer than its `timeout`.
#[derive(Debug, thiserror::Error)]
#[error("upstream stopped sending its response body")]
struct UpstreamStalled;

/// A boxed error, as bodies and connectors report them.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn stalled(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(e) = cause {
        if e.is::<ClientStalled>() {
            return true;
        }
        cause = e.source();
    }
    false
}

/// What happens when a body has passed through in full.
pub enum OnEnd {
    /// A request body: start the upstream's clock.
    Sent(oneshot::Sender<()>),
    /// A response body: its connection is free for the next request.
    Release(Conn),
}

impl OnEnd {
    fn fire(self) {
        match self {
            OnEnd::Sent(sent) => {
                let _ = sent.send(());
            }
            OnEnd::Release(conn) => conn.release(),
        }
    }
}

/// A body passing through that fails when its sender goes quiet for longer
/// than `idle`, and does its `OnEnd` once it has passed in full (never after
/// an error). Only time spent waiting on the sender counts: while the
/// receiver is slow to take data the body is not polled and no clock runs.
pub struct TimedBody<B> {
    inner: B,
    idle: Duration,
    /// Armed while the sender has nothing for us; reset by every frame.
    stall: Option<Pin<Box<Sleep>>>,
    on_end: Option<OnEnd>,
    /// The error a stall ends the body with, which names the side that stalled.
    stalled: fn() -> BoxError,
}

impl<B: Body> TimedBody<B> {
    fn new(inner: B, idle: Duration, on_end: Option<OnEnd>, stalled: fn() -> BoxError) -> Self {
        let mut body = TimedBody {
            inner,
            idle,
            stall: None,
            on_end,
            stalled,
        };
        if body.inner.is_end_stream() {
            body.finish();
        }
        body
    }

    fn finish(&mut self) {
        if let Some(on_end) = self.on_end.take() {
            on_end.fire();
        }
    }
}

impl<B> Body for TimedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Err(e))) => {
                // A failed body leaves its connection unusable: never check it in.
                this.on_end = None;
                Poll::Ready(Some(Err(e.into())))
            }
            Poll::Ready(frame) => {
                this.stall = None;
                if frame.is_none() || this.inner.is_end_stream() {
                    this.finish();
                }
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => {
                let idle = this.idle;
                let stall = this
                    .stall
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(idle)));
                match stall.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        this.on_end = None;
                        Poll::Ready(Some(Err((this.stalled)())))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
