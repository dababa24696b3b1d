//! The inbound listener: accept, optionally terminate TLS, serve HTTP/1.1 and
//! HTTP/2 with limits, and drain gracefully on shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use super::{Connection, Gateway};
use crate::config;

/// Most HTTP/2 streams a client may have open on one connection.
const MAX_H2_STREAMS: u32 = 256;

/// Builds the HTTP server settings from `[server]`. Listener-level settings
/// (address, connection cap) are read once at start; changing them needs a restart.
fn http_builder(server: &config::Server) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(server.header_read_timeout)
        .max_buf_size(server.max_header_bytes.max(8192))
        .max_headers(server.max_headers);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(server.max_header_bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(MAX_H2_STREAMS)
        .max_pending_accept_reset_streams(64)
        .max_local_error_reset_streams(256)
        .keep_alive_interval(Some(server.idle_timeout))
        .keep_alive_timeout(Duration::from_secs(20));
    builder
}

/// Binds one listening socket per proxy worker to `addr`, all with
/// SO_REUSEPORT, so the kernel spreads new connections across the workers'
/// own event loops. With port 0 the first socket picks the port and the
/// others join it.
///
/// SO_REUSEPORT would also let a second gateway (same user, same address)
/// join the group and silently take half the connections, so a fixed port
/// is first bound once without it: if anything holds the port, that fails
/// with "address in use" as a plain bind would.
pub fn bind(addr: SocketAddr, workers: usize) -> std::io::Result<Vec<std::net::TcpListener>> {
    if addr.port() != 0 {
        let probe = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        probe.set_reuse_address(true)?;
        probe.bind(&addr.into())?;
    }
    let mut addr = addr;
    let mut listeners = Vec::with_capacity(workers);
    for _ in 0..workers.max(1) {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        socket.set_reuse_address(true)?;
        socket.set_reuse_port(true)?;
        socket.set_nonblocking(true)?;
        socket.bind(&addr.into())?;
        socket.listen(1024)?;
        let listener: std::net::TcpListener = socket.into();
        addr = listener.local_addr()?;
        listeners.push(listener);
    }
    Ok(listeners)
}

/// Serves proxied traffic on `listener` until `shutdown` completes, then
/// stops accepting and waits up to `[server] shutdown_grace` for in-flight
/// requests. `permits` caps connections across all workers: each costs
/// buffers and a task, and past the cap new clients wait in the kernel's
/// backlog instead of exhausting memory.
pub async fn serve(
    listener: TcpListener,
    gateway: Arc<Gateway>,
    shutdown: impl Future<Output = ()>,
    permits: Arc<Semaphore>,
) {
    let server = gateway.runtime.load().config.server.clone();
    let builder = Arc::new(http_builder(&server));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);

    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Typically out of file descriptors: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // The permit is taken for a connection in hand: a worker idle in
        // `accept` must not sit on one while the kernel queues a connection
        // on another worker's socket. Past the cap, each worker holds at most
        // one accepted connection unserved until a permit frees.
        let permit = tokio::select! {
            permit = Arc::clone(&permits).acquire_owned() => permit.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let (gateway, builder, watcher) = (
            Arc::clone(&gateway),
            Arc::clone(&builder),
            graceful.watcher(),
        );
        let handshake_timeout = server.header_read_timeout;
        tokio::spawn(async move {
            let open = gateway.metrics.open_connections.clone();
            open.inc();
            serve_connection(stream, peer, gateway, &builder, watcher, handshake_timeout).await;
            open.dec();
            drop(permit);
        });
    }

    drop(listener);
    tracing::info!("proxy listener closed; draining in-flight requests");
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all proxied connections finished"),
        () = tokio::time::sleep(server.shutdown_grace) => {
            tracing::warn!(grace = ?server.shutdown_grace, "shutdown grace elapsed; cutting remaining connections")
        }
    }
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    gateway: Arc<Gateway>,
    builder: &auto::Builder<TokioExecutor>,
    watcher: Watcher,
    handshake_timeout: Duration,
) {
    let acceptor = gateway.runtime.load().tls.clone();
    match acceptor {
        None => {
            serve_io(
                stream,
                Connection::new(peer, false),
                gateway,
                builder,
                watcher,
            )
            .await
        }
        Some(acceptor) => {
            match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => {
                    serve_io(tls, Connection::new(peer, true), gateway, builder, watcher).await
                }
                Ok(Err(e)) => {
                    tracing::debug!(client.ip = %peer.ip(), error = %e, "TLS handshake failed")
                }
                Err(_) => tracing::debug!(client.ip = %peer.ip(), "TLS handshake timed out"),
            }
        }
    }
}

async fn serve_io<I>(
    io: I,
    conn: Connection,
    gateway: Arc<Gateway>,
    builder: &auto::Builder<TokioExecutor>,
    watcher: Watcher,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // One shared handle per connection: each request clones this `Arc`,
    // whose count only this connection's worker touches, rather than the
    // gateway's, which every worker would contend for.
    let peer = conn.peer;
    let shared = Arc::new((gateway, conn));
    let service = service_fn(move |req| {
        let shared = Arc::clone(&shared);
        async move {
            let (gateway, conn) = &*shared;
            Ok::<_, Infallible>(gateway.handle(req, conn).await)
        }
    });
    let connection = builder.serve_connection(TokioIo::new(io), service);
    if let Err(e) = watcher.watch(connection).await {
        tracing::debug!(client.ip = %peer.ip(), error = %e, "connection ended with an error");
    }
}
