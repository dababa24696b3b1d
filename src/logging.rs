//! Logging setup: a tracing subscriber whose filter can be swapped on reload.

use std::io::IsTerminal;
use std::sync::OnceLock;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, reload, EnvFilter, Registry};

use crate::config::{Log, LogFormat};

/// The installed subscriber's handle, for reloads.
static HANDLE: OnceLock<LogHandle> = OnceLock::new();

/// Applies `[log] level` from a reloaded config to the installed subscriber,
/// unless `RUST_LOG` chose the filter or no subscriber was installed here.
pub fn apply(log: &Log) {
    if let Some(handle) = HANDLE.get() {
        handle.apply(log);
    }
}

/// Lets a reload change the log filter of the running process.
pub struct LogHandle {
    filter: reload::Handle<EnvFilter, Registry>,
    /// Set when `RUST_LOG` chose the filter; the config file then does not.
    from_env: bool,
}

impl LogHandle {
    /// Applies `[log] level` from a reloaded config (unless `RUST_LOG` rules).
    pub fn apply(&self, log: &Log) {
        if self.from_env {
            return;
        }
        if let Ok(filter) = EnvFilter::try_new(&log.level) {
            let _ = self.filter.reload(filter);
        }
    }
}

/// Installs the global subscriber. `RUST_LOG`, when set, overrides `[log] level`.
pub fn init(log: &Log) {
    let env = std::env::var("RUST_LOG").ok().filter(|v| !v.is_empty());
    let from_env = env.is_some();
    let filter = EnvFilter::try_new(env.as_deref().unwrap_or(&log.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let (filter, handle) = reload::Layer::new(filter);

    let registry = tracing_subscriber::registry().with(filter);
    let installed = match log.format {
        LogFormat::Text => registry
            .with(
                fmt::layer()
                    .with_target(false)
                    // Colour codes only for a person at a terminal, not in files or journald.
                    .with_ansi(std::io::stderr().is_terminal())
                    .with_writer(std::io::stderr),
            )
            .try_init(),
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
    };
    if installed.is_err() {
        eprintln!("repogate: a log subscriber was already installed; keeping it");
        return;
    }
    let _ = HANDLE.set(LogHandle {
        filter: handle,
        from_env,
    });
}
