//! The one TOML file that drives a deployment (DESIGN.md §5).
//!
//! This module sits before everything else: `load` turns the file into a
//! validated [`Config`] at start, on `check-config`, and on every reload. The
//! types here are the schema; each field's doc states its default and unit.
//! Validation and error locations live in `load.rs`.

mod load;
mod secret;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::access::{DefaultRole, Plan};
use crate::route::{Preset, RuleSpec};

pub(crate) use load::route_spec;
pub use load::{load, load_str, parse_base_url, ConfigError};
pub use secret::SecretString;

/// A whole config file, validated.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The proxy listener.
    #[serde(default)]
    pub server: Server,
    /// The admin listener and its users.
    #[serde(default)]
    pub admin: Admin,
    /// Where tokens and repositories are kept.
    #[serde(default)]
    pub store: Store,
    /// The hot token cache.
    #[serde(default)]
    pub cache: Cache,
    /// Plan and company default role.
    #[serde(default)]
    pub account: Account,
    /// Logging.
    #[serde(default)]
    pub log: Log,
    /// The APIs repogate forwards to.
    #[serde(default)]
    pub upstreams: Vec<Upstream>,
    /// Which path prefix goes to which upstream, under which rules.
    #[serde(default)]
    pub routes: Vec<Route>,
    /// Repositories registered at start (more can be added through the admin API).
    #[serde(default)]
    pub repositories: Vec<Repository>,
    /// The file this was loaded from (set by `load`, not read from TOML).
    #[serde(skip)]
    pub source: PathBuf,
}

/// `[server]`: the proxy listener.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Server {
    /// Address to accept proxied traffic on. Default `127.0.0.1:8080`.
    pub listen: SocketAddr,
    /// TLS termination; plain HTTP when absent.
    pub tls: Option<Tls>,
    /// How long a client may take to send its request headers. Default 10s.
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// Largest request head (request line plus headers) accepted, in bytes;
    /// larger gets 431. Default 65536.
    pub max_header_bytes: usize,
    /// Most request headers accepted; more gets 431. Default 100.
    pub max_headers: usize,
    /// Most client connections open at once; further ones wait in the
    /// kernel's accept queue. Default 4096.
    pub max_connections: usize,
    /// Proxy worker threads, each with its own event loop, listening socket
    /// (SO_REUSEPORT) and upstream connection pools; 0 means one per CPU.
    /// Default 0.
    pub workers: usize,
    /// How long a client may leave a keep-alive connection idle, or go
    /// without sending body data it promised. Default 60s.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// How long shutdown waits for in-flight requests. Default 30s.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
}

impl Server {
    /// The number of proxy workers: `workers`, or one per CPU when 0.
    pub fn worker_count(&self) -> usize {
        match self.workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }
}

/// `[server.tls]`: a PEM certificate chain and private key.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    /// PEM certificate chain, leaf first; relative to the config file.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1); relative to the config file.
    pub key: PathBuf,
}

/// `[admin]`: the admin listener.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Admin {
    /// Address of the admin API, health and metrics. Default `127.0.0.1:9090`.
    pub listen: SocketAddr,
    /// How long an admin session lasts after login. Default 15m.
    #[serde(with = "humantime_serde")]
    pub session_ttl: Duration,
    /// Largest admin request body, in bytes; larger gets 413. Default 1048576.
    pub max_body_bytes: usize,
    /// Most argon2 password checks running at once; each takes about 19 MiB
    /// and tens of milliseconds of CPU. Default 2.
    pub login_concurrency: usize,
    /// Admin users who may log in.
    pub users: Vec<AdminUser>,
}

/// `[[admin.users]]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminUser {
    /// Login name.
    pub name: String,
    /// argon2id PHC string from `repogate hash-password`; may be `${env:NAME}`
    /// or `${file:PATH}`.
    pub password_hash: SecretString,
}

/// `[store]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Store {
    /// sled folder; relative to the config file. Default `data/repogate.db`.
    pub path: PathBuf,
}

/// `[cache]`: the hot token cache.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Cache {
    /// How long a resolved token is trusted before the store is read again.
    /// Revocations do not wait for it: they invalidate at once. Default 5m.
    #[serde(with = "humantime_serde")]
    pub ttl: Duration,
    /// Most tokens held in memory. Default 100000.
    pub max_entries: usize,
    /// How often batched `last_used_at` times are written. Default 10s.
    #[serde(with = "humantime_serde")]
    pub last_used_flush: Duration,
}

/// `[account]`
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Account {
    /// `freemium`, `premium` or `enterprise`. Default `enterprise`.
    pub plan: Plan,
    /// Role of enterprise tokens on repositories created after them, until
    /// an admin sets another through the API: `no_access`, `viewer`,
    /// `developer` or `reviewer`. Default `no_access`.
    pub default_role: DefaultRole,
}

/// `[log]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Log {
    /// A tracing filter such as `info` or `repogate=debug`; `RUST_LOG`
    /// overrides it. Default `info`.
    pub level: String,
    /// `text` or `json`. Default `text`.
    pub format: LogFormat,
    /// One event per proxied request. Default false.
    pub access_log: bool,
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// `[[upstreams]]`: an API repogate forwards to.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Upstream {
    /// Name routes refer to.
    pub name: String,
    /// Base URL, `http` or `https`; a path here is prepended to forwarded paths.
    pub url: String,
    /// Headers added to every forwarded request, typically the upstream's own
    /// credential. Values may use `${env:NAME}` and `${file:PATH}`.
    #[serde(default)]
    pub headers: BTreeMap<String, SecretString>,
    /// Longest wait for a TCP (and TLS) connection. Default 5s.
    #[serde(default = "default_connect_timeout", with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Longest wait for the upstream's response head (504 after), and for
    /// each next piece of its body (the stream is cut after). Default 60s.
    #[serde(default = "default_upstream_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// PEM CA bundle to trust instead of the webpki roots; relative to the
    /// config file.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

/// `[[routes]]`: a path prefix bound to an upstream.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// Path prefix; the longest matching prefix wins.
    pub prefix: String,
    /// Name of an `[[upstreams]]` entry.
    pub upstream: String,
    /// A built-in rule set, tried after `rules`.
    #[serde(default)]
    pub preset: Option<Preset>,
    /// Remove the prefix before matching rules and forwarding. Default false.
    #[serde(default)]
    pub strip_prefix: bool,
    /// Explicit rules, tried in order before the preset's.
    #[serde(default)]
    pub rules: Vec<RuleSpec>,
}

/// `[[repositories]]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Repository {
    /// Canonical name, e.g. `acme/widgets`.
    pub name: String,
    /// Other names requests may use, e.g. GitLab's numeric project id.
    #[serde(default)]
    pub aliases: Vec<String>,
}

fn default_connect_timeout() -> Duration {
    Duration::from_secs(5)
}

fn default_upstream_timeout() -> Duration {
    Duration::from_secs(60)
}

impl Default for Server {
    fn default() -> Self {
        Server {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            tls: None,
            header_read_timeout: Duration::from_secs(10),
            max_header_bytes: 64 * 1024,
            max_headers: 100,
            max_connections: 4096,
            workers: 0,
            idle_timeout: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

impl Default for Admin {
    fn default() -> Self {
        Admin {
            listen: SocketAddr::from(([127, 0, 0, 1], 9090)),
            session_ttl: Duration::from_secs(15 * 60),
            max_body_bytes: 1024 * 1024,
            login_concurrency: 2,
            users: Vec::new(),
        }
    }
}

impl Default for Store {
    fn default() -> Self {
        Store {
            path: PathBuf::from("data/repogate.db"),
        }
    }
}

impl Default for Cache {
    fn default() -> Self {
        Cache {
            ttl: Duration::from_secs(5 * 60),
            max_entries: 100_000,
            last_used_flush: Duration::from_secs(10),
        }
    }
}

impl Default for Log {
    fn default() -> Self {
        Log {
            level: "info".into(),
            format: LogFormat::Text,
            access_log: false,
        }
    }
}
