//! Wiring: open the store, build the first runtime, bind the listeners, run
//! until a signal, then drain and flush. `serve` and `demo` both start here,
//! and so do the integration tests (on port 0).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;

use crate::admin::{self, Admin};
use crate::cache::{self, TokenCache};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::proxy::{self, Gateway, Runtime};
use crate::registry::{Registry, RegistryError};
use crate::reload::{self, ReloadState};
use crate::store::{Store, StoreError};

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The config file's repositories could not be registered.
    #[error("registering config repositories: {0}")]
    Registry(#[from] RegistryError),
    /// Routes, upstreams or TLS could not be built.
    #[error(transparent)]
    Runtime(#[from] proxy::RuntimeError),
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
}

/// A started gateway.
pub struct Running {
    /// Where the proxy listener is bound (the real port when 0 was asked).
    pub proxy_addr: SocketAddr,
    /// Where the admin listener is bound.
    pub admin_addr: SocketAddr,
    /// The admin side's state.
    pub admin: Arc<Admin>,
    /// The shared data-plane state.
    pub gateway: Arc<Gateway>,
    stop: Arc<watch::Sender<bool>>,
    task: JoinHandle<()>,
}

impl Running {
    /// Stops accepting, drains in-flight requests, flushes the store and waits.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }

    /// Waits until the gateway stops by itself (after a signal).
    pub async fn wait(self) {
        let _ = self.task.await;
    }
}

/// Opens the store, binds the listeners and starts serving.
/// `until` ends the gateway when it completes (a signal, or a test's stop).
pub async fn start(
    config: Config,
    until: impl Future<Output = ()> + Send + 'static,
) -> Result<Running, StartError> {
    let store = Store::open(&config.store.path)?;
    let registry = Arc::new(Registry::open(store.clone(), config.account.default_role)?);
    let added = registry.sync_config(&config.repositories, crate::now_ms())?;
    store.flush().await?;
    let tokens = Arc::new(TokenCache::new(
        store.clone(),
        config.cache.ttl,
        config.cache.max_entries,
    ));
    let flush_every = config.cache.last_used_flush;

    let config = Arc::new(config);
    let runtime = Runtime::build(Arc::clone(&config), 1)?;
    let metrics = Arc::new(Metrics::new(&tokens));
    metrics.config_generation.set(1);
    let gateway = Arc::new(Gateway {
        runtime: ArcSwap::from_pointee(runtime),
        tokens: Arc::clone(&tokens),
        registry,
        metrics,
        reloads: ReloadState::default(),
    });

    let workers = config.server.worker_count();
    let proxy_listeners =
        proxy::listener::bind(config.server.listen, workers).map_err(|source| {
            StartError::Bind {
                addr: config.server.listen,
                source,
            }
        })?;
    let proxy_addr = proxy_listeners[0]
        .local_addr()
        .map_err(|source| StartError::Bind {
            addr: config.server.listen,
            source,
        })?;
    let (admin_listener, admin_addr) = bind(config.admin.listen).await?;
    let scheme = if config.server.tls.is_some() {
        "https"
    } else {
        "http"
    };
    tracing::info!(addr = %proxy_addr, scheme, workers, repositories_added = added, "proxy listening");
    tracing::info!(addr = %admin_addr, "admin listening");
    if !admin_addr.ip().is_loopback() {
        tracing::warn!(
            addr = %admin_addr,
            "the admin listener is reachable beyond this machine over plain HTTP: \
             sessions and passwords cross the network unencrypted; bind it to loopback or put TLS in front"
        );
    }
    let admin = Arc::new(Admin::new(Arc::clone(&gateway)));

    // Watch the file only when there is one: the demo runs an embedded config.
    let watcher = match config.source.is_file() {
        true => match reload::spawn_watcher(&gateway, config.source.clone()) {
            Ok(task) => Some(task),
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch the config file; reload with SIGHUP");
                None
            }
        },
        false => None,
    };

    let (stop, mut stopped) = watch::channel(false);
    let stop = Arc::new(stop);
    let writer = cache::spawn_last_used_writer(&tokens, flush_every);
    let admin_task = tokio::spawn(admin::serve(
        admin_listener,
        Arc::clone(&admin),
        stopped_signal(stop.subscribe()),
    ));
    let workers_done = spawn_proxy_workers(proxy_listeners, &gateway, &stop);

    let stopper = Arc::clone(&stop);
    let task = tokio::spawn(async move {
        tokio::select! {
            () = until => {}
            _ = stopped.wait_for(|s| *s) => {}
        }
        let _ = stopper.send(true);
        let _ = workers_done.await;
        admin_task.abort();
        writer.abort();
        if let Some(w) = watcher {
            w.abort();
        }
        if let Err(e) = tokens.flush_last_used() {
            tracing::warn!(error = %e, "could not write last-used times at shutdown");
        }
        match store.flush().await {
            Ok(()) => tracing::info!("store flushed; stopped"),
            Err(e) => tracing::error!(error = %e, "store flush at shutdown failed"),
        }
    });

    Ok(Running {
        proxy_addr,
        admin_addr,
        admin,
        gateway,
        stop,
        task,
    })
}

async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), StartError> {
    let fail = |source| StartError::Bind { addr, source };
    let listener = TcpListener::bind(addr).await.map_err(fail)?;
    let bound = listener.local_addr().map_err(fail)?;
    Ok((listener, bound))
}

/// Starts one proxy worker thread per listener, each a single-threaded tokio
/// runtime: nginx's layout. A request is accepted, decided and forwarded on
/// one thread with its own upstream pool, so no request wakes another thread.
/// The returned channel closes when every worker has drained and stopped.
fn spawn_proxy_workers(
    listeners: Vec<std::net::TcpListener>,
    gateway: &Arc<Gateway>,
    stop: &Arc<watch::Sender<bool>>,
) -> tokio::sync::oneshot::Receiver<()> {
    let config = &gateway.runtime.load().config;
    let permits = Arc::new(Semaphore::new(config.server.max_connections));
    let (all_done, done) = tokio::sync::oneshot::channel();
    let finished = Arc::new(FinishGuard(Some(all_done)));
    for (index, listener) in listeners.into_iter().enumerate() {
        let (gateway, permits, stopped) =
            (Arc::clone(gateway), Arc::clone(&permits), stop.subscribe());
        let finished = Arc::clone(&finished);
        let spawned = std::thread::Builder::new().name(format!("repogate-proxy-{index}")).spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a single-threaded runtime builds with the OS defaults");
            runtime.block_on(async move {
                proxy::forward::set_worker(index);
                match TcpListener::from_std(listener) {
                    Ok(listener) => proxy::listener::serve(listener, gateway, stopped_signal(stopped), permits).await,
                    Err(e) => tracing::error!(error = %e, worker = index, "proxy worker cannot use its socket"),
                }
            });
            drop(finished);
        });
        if let Err(e) = spawned {
            tracing::error!(error = %e, worker = index, "cannot start proxy worker thread");
        }
    }
    done
}

/// Signals the shutdown task when the last worker drops its clone.
struct FinishGuard(Option<tokio::sync::oneshot::Sender<()>>);

impl Drop for FinishGuard {
    fn drop(&mut self) {
        if let Some(done) = self.0.take() {
            let _ = done.send(());
        }
    }
}

async fn stopped_signal(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Completes on SIGTERM or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("interrupt received; shutting down"),
        () = term => tracing::info!("SIGTERM received; shutting down"),
    }
}
