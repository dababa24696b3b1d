//! Keep-alive connections to one upstream, pooled per proxy worker.
//!
//! `forward` checks a connection out before sending and the response body
//! checks it back in when it ends, so a connection carries one exchange at a
//! time, as HTTP/1.1 allows. Each worker has its own idle list: a connection's
//! task runs on the worker that opened it, a worker never hands one to
//! another thread, and the list's lock is only ever taken by that worker.
//!
//! Upstreams are spoken to over HTTP/1.1 (what nginx's `proxy_pass` does too).
//! We build on hyper's connection API rather than hyper-util's pooled client
//! because the load benchmark showed that client's shared, hashed pool and
//! its extra task hop costing more CPU per request than all of repogate's own
//! checks together (BENCHMARKS.md).

use std::future::poll_fn;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::{Duration, Instant};

use http::{Request, Response, Uri};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use tower_service::Service;

use super::forward::{BoxError, TimedBody};
use super::RequestBody;

/// The request body type every pooled connection sends.
pub type Body = TimedBody<RequestBody>;

/// Most idle connections one worker keeps per upstream; beyond it a
/// returned connection is closed.
const MAX_IDLE_PER_WORKER: usize = 256;

/// How long an idle connection is kept. Servers close idle keep-alive
/// connections after a while (nginx: 75 s); reusing one just as the server
/// closes it fails the request, so we let go first.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Why no connection could be had.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// TCP connect, TLS handshake or the HTTP/1.1 handshake failed.
    #[error("cannot connect: {0}")]
    Failed(BoxError),
    /// Connecting took longer than the upstream's `connect_timeout`.
    #[error("connecting took longer than {0:?}")]
    TimedOut(Duration),
}

/// The idle connections of one worker.
type IdleList = Arc<Mutex<Vec<Idle>>>;

struct Idle {
    sender: http1::SendRequest<Body>,
    since: Instant,
}

/// The pool of one upstream: its connector and an idle list per worker.
pub struct Pool {
    connector: HttpsConnector<HttpConnector>,
    /// `scheme://authority` of the upstream, what the connector dials.
    origin: Uri,
    connect_timeout: Duration,
    idle: Box<[IdleList]>,
}

/// A connection checked out for one exchange. Once sent on, the response
/// body holds it and releases it to its worker's idle list when it ends;
/// dropped instead, it closes.
pub struct Conn {
    sender: http1::SendRequest<Body>,
    home: IdleList,
}

impl Pool {
    /// An empty pool with one idle list per worker.
    pub fn new(
        connector: HttpsConnector<HttpConnector>,
        origin: Uri,
        connect_timeout: Duration,
        workers: usize,
    ) -> Pool {
        let idle = (0..workers.max(1)).map(|_| IdleList::default()).collect();
        Pool {
            connector,
            origin,
            connect_timeout,
            idle,
        }
    }

    /// A ready connection for `worker`: its newest idle one that is still
    /// open, else a new one.
    pub async fn checkout(&self, worker: usize) -> Result<Conn, ConnectError> {
        let home = self.home(worker);
        while let Some(mut idle) = pop(home) {
            if idle.since.elapsed() >= IDLE_TIMEOUT || idle.sender.is_closed() {
                continue;
            }
            if ready_soon(&mut idle.sender).await {
                let home = Arc::clone(home);
                return Ok(Conn {
                    sender: idle.sender,
                    home,
                });
            }
        }
        self.connect(worker).await
    }

    /// Opens a new connection for `worker`; its task runs on the calling
    /// worker's event loop.
    pub async fn connect(&self, worker: usize) -> Result<Conn, ConnectError> {
        let handshake = async {
            let mut connector = self.connector.clone();
            poll_fn(|cx| connector.poll_ready(cx)).await?;
            let io = connector.call(self.origin.clone()).await?;
            let (sender, connection) = http1::Builder::new().handshake(io).await?;
            Ok::<_, BoxError>((sender, connection))
        };
        let (sender, connection) = tokio::time::timeout(self.connect_timeout, handshake)
            .await
            .map_err(|_| ConnectError::TimedOut(self.connect_timeout))?
            .map_err(ConnectError::Failed)?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "upstream connection ended with an error");
            }
        });
        Ok(Conn {
            sender,
            home: Arc::clone(self.home(worker)),
        })
    }

    fn home(&self, worker: usize) -> &IdleList {
        &self.idle[worker % self.idle.len()]
    }
}

/// Whether an idle connection is ready for a request. It was released as
/// its response body ended, and its task may not have run since; one turn of
/// the event loop settles that. A connection still busy after it (its request
/// body still going, which happens when the upstream answered early) is
/// dropped, and closes once that exchange is over.
async fn ready_soon(sender: &mut http1::SendRequest<Body>) -> bool {
    if let Poll::Ready(ready) = poll_fn(|cx| Poll::Ready(sender.poll_ready(cx))).await {
        return ready.is_ok();
    }
    tokio::task::yield_now().await;
    let ready = poll_fn(|cx| Poll::Ready(sender.poll_ready(cx))).await;
    matches!(ready, Poll::Ready(Ok(())))
}

fn pop(home: &IdleList) -> Option<Idle> {
    lock(home).pop()
}

fn lock(home: &IdleList) -> std::sync::MutexGuard<'_, Vec<Idle>> {
    // The list holds plain values; a panic elsewhere cannot leave it half-changed.
    home.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Conn {
    /// Sends one request. When the connection turns out to have closed
    /// before the request was written, the request comes back for a retry.
    pub async fn send(
        mut self,
        request: Request<Body>,
    ) -> Result<(Response<Incoming>, Conn), SendError> {
        match self.sender.try_send_request(request).await {
            Ok(response) => Ok((response, self)),
            Err(mut e) => match e.take_message() {
                Some(request) => Err(SendError::Unsent(Box::new(request), e.into_error())),
                None => Err(SendError::Failed(e.into_error())),
            },
        }
    }
}

/// Why a send failed.
pub enum SendError {
    /// Nothing was written; the request can go on another connection.
    Unsent(Box<Request<Body>>, hyper::Error),
    /// The exchange failed after the request was (at least partly) written.
    Failed(hyper::Error),
}

impl Conn {
    /// Returns the connection to its worker's idle list.
    pub fn release(self) {
        let mut idle = lock(&self.home);
        if idle.len() < MAX_IDLE_PER_WORKER {
            idle.push(Idle {
                sender: self.sender,
                since: Instant::now(),
            });
        }
    }
}
