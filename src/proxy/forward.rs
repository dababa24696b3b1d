//! Forwarding an allowed request to its upstream over a pooled client.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::sync::oneshot;
use tokio::time::Sleep;

use http::header::{HeaderName, HeaderValue};
use http::request::Parts;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Request, Response, Uri, Version};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::error::ProxyError;
use super::headers::{self, ClientInfo};
use super::{ProxyBody, RequestBody};
use crate::config;
use crate::tls;

/// One configured upstream with its own connection pool.
pub struct Upstream {
    /// Name from the config file, for errors and logs.
    pub name: String,
    scheme: Scheme,
    authority: Authority,
    /// Path prefix from the upstream URL, without a trailing `/`.
    base_path: String,
    /// Headers added to every forwarded request (the upstream's credential).
    inject: Vec<(HeaderName, HeaderValue)>,
    /// Longest wait for the response head, and for each next piece of the
    /// response body.
    timeout: Duration,
    /// One pooled client per proxy worker: a connection's task lives on the
    /// worker that opened it, so a worker only reuses its own connections
    /// and never wakes another thread to send a request.
    clients: Vec<Client<HttpsConnector<HttpConnector>, TimedBody<RequestBody>>>,
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

impl Upstream {
    /// Builds the clients for one `[[upstreams]]` entry, one per worker.
    pub fn build(cfg: &config::Upstream, workers: usize) -> Result<Upstream, BuildError> {
        let invalid = |message: String| BuildError::Invalid {
            name: cfg.name.clone(),
            message,
        };
        let uri = config::parse_base_url(&cfg.url).map_err(invalid)?;
        let parts = uri.into_parts();
        let inject = cfg
            .headers
            .iter()
            .map(|(k, v)| {
                let name =
                    HeaderName::from_bytes(k.as_bytes()).map_err(|e| invalid(e.to_string()))?;
                let mut value =
                    HeaderValue::from_str(v.expose()).map_err(|e| invalid(e.to_string()))?;
                value.set_sensitive(true);
                Ok((name, value))
            })
            .collect::<Result<_, BuildError>>()?;

        let tls = tls::client_config(cfg.ca_file.as_deref()).map_err(|source| BuildError::Tls {
            name: cfg.name.clone(),
            source,
        })?;
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(cfg.connect_timeout));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        let clients = (0..workers.max(1))
            .map(|_| {
                Client::builder(TokioExecutor::new())
                    .timer(TokioTimer::new())
                    .pool_timer(TokioTimer::new())
                    .pool_idle_timeout(Duration::from_secs(90))
                    .build(connector.clone())
            })
            .collect();

        Ok(Upstream {
            name: cfg.name.clone(),
            scheme: parts.scheme.expect("validated URL has a scheme"),
            authority: parts.authority.expect("validated URL has a host"),
            base_path: parts
                .path_and_query
                .map(|p| p.path().trim_end_matches('/').to_owned())
                .unwrap_or_default(),
            inject,
            timeout: cfg.timeout,
            clients,
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
        parts.uri = self.uri_for(&parts.uri, strip)?;
        parts.version = Version::HTTP_11;
        headers::prepare_request(&mut parts.headers, client, &self.inject);

        let (sent_tx, sent_rx) = oneshot::channel();
        let body = TimedBody::new(body, body_idle, Some(sent_tx), || Box::new(ClientStalled));
        let client = &self.clients[WORKER.with(|w| w.get()) % self.clients.len()];
        let request = client.request(Request::from_parts(parts, body));
        // A dropped sender (the body abandoned) starts the clock as well.
        let deadline = async {
            let _ = sent_rx.await;
            tokio::time::sleep(self.timeout).await;
        };
        let response = tokio::select! {
            result = request => match result {
                Ok(response) => response,
                Err(source) if stalled(&source) => return Err(ProxyError::ClientStalled),
                Err(source) => {
                    return Err(ProxyError::Upstream { upstream: self.name.clone(), source })
                }
            },
            () = deadline => {
                let seconds = self.timeout.as_secs();
                return Err(ProxyError::UpstreamTimeout { upstream: self.name.clone(), seconds });
            }
        };

        let (mut head, body) = response.into_parts();
        headers::prepare_response(&mut head.headers);
        let body = TimedBody::new(body, self.timeout, None, || Box::new(UpstreamStalled));
        Ok(Response::from_parts(
            head,
            http_body_util::Either::Left(body),
        ))
    }

    /// The upstream URI: our scheme and authority, the base path, and the
    /// received path (less `strip` bytes of route prefix) and query.
    fn uri_for(&self, received: &Uri, strip: usize) -> Result<Uri, ProxyError> {
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
        let mut parts = http::uri::Parts::default();
        parts.scheme = Some(self.scheme.clone());
        parts.authority = Some(self.authority.clone());
        parts.path_and_query = Some(path_and_query);
        Ok(Uri::from_parts(parts).map_err(http::Error::from)?)
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

type BoxError = Box<dyn std::error::Error + Send + Sync>;

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

/// A body passing through that fails when its sender goes quiet for longer
/// than `idle`, and, for a request body, says when it has been sent in full.
/// Only time spent waiting on the sender counts: while the receiver is slow
/// to take data the body is not polled and no clock runs.
pub struct TimedBody<B> {
    inner: B,
    idle: Duration,
    /// Armed while the sender has nothing for us; reset by every frame.
    stall: Option<Pin<Box<Sleep>>>,
    sent: Option<oneshot::Sender<()>>,
    /// The error a stall ends the body with, which names the side that stalled.
    stalled: fn() -> BoxError,
}

impl<B: Body> TimedBody<B> {
    fn new(
        inner: B,
        idle: Duration,
        sent: Option<oneshot::Sender<()>>,
        stalled: fn() -> BoxError,
    ) -> Self {
        let mut body = TimedBody {
            inner,
            idle,
            stall: None,
            sent,
            stalled,
        };
        if body.inner.is_end_stream() {
            body.finish();
        }
        body
    }

    fn finish(&mut self) {
        if let Some(sent) = self.sent.take() {
            let _ = sent.send(());
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
                    Poll::Ready(()) => Poll::Ready(Some(Err((this.stalled)()))),
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
