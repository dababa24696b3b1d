//! Hot reload: the config file is watched (and SIGHUP listened for); a change
//! runs the same `config::load` as start-up, builds a complete new runtime,
//! and swaps it in atomically. Requests already running finish on the runtime
//! they started with. A bad file changes nothing but the reload status.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;

use crate::config::{self, Config};
use crate::metrics::ReloadLabels;
use crate::proxy::{Gateway, Runtime};

/// Editors write in bursts (truncate, write, rename); wait for quiet first.
const DEBOUNCE: Duration = Duration::from_millis(200);

/// The last reload's outcome.
#[derive(Clone, Debug, Serialize)]
pub struct ReloadOutcome {
    /// When it ran, RFC 3339.
    pub at: String,
    /// Whether the new config is now running.
    pub ok: bool,
    /// The error, with file, line and key, when it failed.
    pub error: Option<String>,
    /// The config generation running after it.
    pub generation: u64,
}

/// Reload outcomes, for `/admin/v1/status`.
#[derive(Default)]
pub struct ReloadState {
    last: Mutex<Option<ReloadOutcome>>,
    /// Serialises reloads so two triggers cannot interleave their swaps.
    running: tokio::sync::Mutex<()>,
}

impl ReloadState {
    /// The last outcome, if any reload ran.
    pub fn last(&self) -> Option<ReloadOutcome> {
        self.last.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set(&self, outcome: ReloadOutcome) {
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Some(outcome);
    }
}

/// Why a reload was refused.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The file is invalid.
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// Routes, upstreams or TLS could not be built.
    #[error(transparent)]
    Runtime(#[from] crate::proxy::RuntimeError),
    /// The file's repositories clash with registered ones.
    #[error("registering config repositories: {0}")]
    Registry(#[from] crate::registry::RegistryError),
}

/// Reloads `path` into `gateway` now; returns the new generation.
pub async fn reload(gateway: &Gateway, path: &Path) -> Result<u64, ReloadError> {
    let _one_at_a_time = gateway.reloads.running.lock().await;
    let current = gateway.runtime.load_full();
    let generation = current.generation + 1;

    let result = build(gateway, path, &current.config, generation);
    let metrics = &gateway.metrics;
    let outcome = match &result {
        Ok(runtime) => {
            gateway.runtime.store(Arc::clone(runtime));
            metrics.config_generation.set(generation as i64);
            metrics
                .reloads
                .get_or_create(&ReloadLabels { result: "ok" })
                .inc();
            tracing::info!(generation, file = %path.display(), "config reloaded");
            ReloadOutcome {
                at: now_iso(),
                ok: true,
                error: None,
                generation,
            }
        }
        Err(e) => {
            metrics
                .reloads
                .get_or_create(&ReloadLabels { result: "error" })
                .inc();
            tracing::error!(error = %e, "config reload failed; the running config stays");
            ReloadOutcome {
                at: now_iso(),
                ok: false,
                error: Some(e.to_string()),
                generation: current.generation,
            }
        }
    };
    gateway.reloads.set(outcome);
    result.map(|_| generation)
}

fn build(
    gateway: &Gateway,
    path: &Path,
    old: &Config,
    generation: u64,
) -> Result<Arc<Runtime>, ReloadError> {
    let config = Arc::new(config::load(path)?);
    let runtime = Arc::new(Runtime::build(Arc::clone(&config), generation)?);

    // Only once everything built: registrations are the one side effect.
    gateway
        .registry
        .sync_config(&config.repositories, crate::now_ms())?;
    gateway
        .registry
        .apply_config_default(config.account.default_role);
    crate::logging::apply(&config.log);
    warn_about_restart_only_keys(old, &config);
    Ok(runtime)
}

fn warn_about_restart_only_keys(old: &Config, new: &Config) {
    let (os, ns) = (&old.server, &new.server);
    let (oc, nc) = (&old.cache, &new.cache);
    let changed = [
        ("server.listen", os.listen != ns.listen),
        ("server.workers", os.workers != ns.workers),
        (
            "server.max_connections",
            os.max_connections != ns.max_connections,
        ),
        (
            "server.header_read_timeout",
            os.header_read_timeout != ns.header_read_timeout,
        ),
        (
            "server.max_header_bytes",
            os.max_header_bytes != ns.max_header_bytes,
        ),
        ("server.max_headers", os.max_headers != ns.max_headers),
        ("server.idle_timeout", os.idle_timeout != ns.idle_timeout),
        (
            "server.shutdown_grace",
            os.shutdown_grace != ns.shutdown_grace,
        ),
        ("admin.listen", old.admin.listen != new.admin.listen),
        (
            "admin.login_concurrency",
            old.admin.login_concurrency != new.admin.login_concurrency,
        ),
        ("store.path", old.store.path != new.store.path),
        ("cache.ttl", oc.ttl != nc.ttl),
        ("cache.max_entries", oc.max_entries != nc.max_entries),
        (
            "cache.last_used_flush",
            oc.last_used_flush != nc.last_used_flush,
        ),
        ("log.format", old.log.format != new.log.format),
    ];
    for (key, _) in changed.iter().filter(|(_, differs)| *differs) {
        tracing::warn!(
            key,
            "this setting changed in the file but takes effect only after a restart"
        );
    }
}

fn now_iso() -> String {
    crate::admin::tokens::iso(crate::now_ms())
}

/// Watches the config file's folder (editors replace files by rename, which
/// a watch on the file itself would miss) and listens for SIGHUP; each
/// trigger reloads, once per burst of events. Only changes count: reading the
/// file (as every reload does) does not. Runs until the gateway is dropped.
pub fn spawn_watcher(
    gateway: &Arc<Gateway>,
    path: PathBuf,
) -> Result<tokio::task::JoinHandle<()>, notify::Error> {
    use notify::{EventKind, RecursiveMode, Watcher};

    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let file_name = path.file_name().map(ToOwned::to_owned);
    let folder = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_owned();
    let notify_tx = tx.clone();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else { return };
        let changed = matches!(
            event.kind,
            EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_)
        );
        if changed
            && event
                .paths
                .iter()
                .any(|p| p.file_name() == file_name.as_deref())
        {
            let _ = notify_tx.send(());
        }
    })?;
    watcher.watch(&folder, RecursiveMode::NonRecursive)?;
    spawn_sighup(tx);

    let weak = Arc::downgrade(gateway);
    Ok(tokio::spawn(async move {
        let _keep_watching = watcher;
        while rx.recv().await.is_some() {
            // Editors write in bursts (truncate, write, rename): wait for quiet,
            // then reload once for everything that arrived meanwhile.
            tokio::time::sleep(DEBOUNCE).await;
            while rx.try_recv().is_ok() {}
            let Some(gateway) = weak.upgrade() else {
                return;
            };
            let _ = reload(&gateway, &path).await;
        }
    }))
}

#[cfg(unix)]
fn spawn_sighup(tx: tokio::sync::mpsc::UnboundedSender<()>) {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::hangup()) {
        Ok(mut hup) => {
            tokio::spawn(async move {
                while hup.recv().await.is_some() {
                    tracing::info!("SIGHUP received; reloading config");
                    if tx.send(()).is_err() {
                        return;
                    }
                }
            });
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGHUP; reload by editing the file")
        }
    }
}

#[cfg(not(unix))]
fn spawn_sighup(_tx: tokio::sync::mpsc::UnboundedSender<()>) {}
