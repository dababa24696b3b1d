//! repogate: a reverse-proxy authorization gateway for repository APIs.
//!
//! The modules follow a request: `route` finds the repository and action,
//! `cache` resolves the token, `access` decides, and `proxy` forwards. Beside
//! the request path, `admin` mints and revokes tokens into `store`, and
//! `config` loads the one TOML file that drives a deployment.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod access;
pub mod admin;
pub mod app;
pub mod backup;
pub mod cache;
pub mod cli;
pub mod config;
pub mod demo;
pub mod logging;
pub mod metrics;
pub mod password;
pub mod proxy;
pub mod registry;
pub mod reload;
pub mod route;
pub mod store;
pub mod tls;
pub mod token;

/// The current time as Unix milliseconds.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
