//! Prometheus metrics, served as text on the admin listener's `/metrics`.
//!
//! Labels carry route prefixes, decisions, statuses and upstream names, never
//! a token id or secret: those would leak identities and grow without bound.

use std::fmt::Write as _;
use std::sync::Arc;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};

use crate::cache::TokenCache;

/// A shared label value (a route prefix or upstream name) cloned without copying.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct Label(pub Arc<str>);

impl EncodeLabelValue for Label {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        encoder.write_str(&self.0)
    }
}

/// How a proxied request ended.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
pub enum Decision {
    /// Allowed and forwarded (whatever the upstream answered).
    Allowed,
    /// Refused by the access decision or token checks (401, 403).
    Denied,
    /// Refused before any decision: bad path, no route, no rule (400, 404).
    Refused,
    /// Allowed, but the upstream failed (502, 504).
    Failed,
}

/// Labels of `repogate_requests_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The matched route's prefix, or `none`.
    pub route: Label,
    /// How it ended.
    pub decision: Decision,
    /// The status sent to the client.
    pub status: u16,
}

/// Labels of `repogate_reloads_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReloadLabels {
    /// `ok` or `error`.
    pub result: &'static str,
}

fn latency_histogram() -> Histogram {
    // 100 µs to about 3.3 s, doubling.
    Histogram::new(exponential_buckets(0.0001, 2.0, 16))
}

/// Every metric repogate keeps.
pub struct Metrics {
    registry: Registry,
    /// The route label of requests that matched no route.
    pub no_route: Arc<str>,
    /// Proxied requests by route, decision and status.
    pub requests: Family<RequestLabels, Counter>,
    /// Whole proxied request time, to the response head. Unlabelled: a
    /// labelled family costs a hash lookup per request, and the per-route
    /// split is in `requests`.
    pub request_seconds: Histogram,
    /// Time spent waiting for the upstream's response head.
    pub upstream_seconds: Histogram,
    /// Tokens resolved and verified.
    pub tokens_resolved: Counter,
    /// Config reloads by result.
    pub reloads: Family<ReloadLabels, Counter>,
    /// The generation of the running config.
    pub config_generation: Gauge,
    /// Client connections open on the proxy listener.
    pub open_connections: Gauge,
    /// Failed admin logins.
    pub login_failures: Counter,
}

impl Metrics {
    /// Registers every metric, including the cache's own hit and miss counters.
    pub fn new(cache: &TokenCache) -> Metrics {
        let metrics = Metrics {
            registry: Registry::with_prefix("repogate"),
            no_route: Arc::from("none"),
            requests: Family::default(),
            request_seconds: latency_histogram(),
            upstream_seconds: latency_histogram(),
            tokens_resolved: Counter::default(),
            reloads: Family::default(),
            config_generation: Gauge::default(),
            open_connections: Gauge::default(),
            login_failures: Counter::default(),
        };
        let mut registry = metrics.registry;
        registry.register(
            "requests",
            "Proxied requests by route, decision and status",
            metrics.requests.clone(),
        );
        registry.register_with_unit(
            "request_duration",
            "Proxied request time to the response head",
            Unit::Seconds,
            metrics.request_seconds.clone(),
        );
        registry.register_with_unit(
            "upstream_duration",
            "Time waiting for the upstream's response head",
            Unit::Seconds,
            metrics.upstream_seconds.clone(),
        );
        let (hits, misses) = cache.counters();
        registry.register(
            "token_cache_hits",
            "Token resolutions served from memory",
            hits,
        );
        registry.register(
            "token_cache_misses",
            "Token resolutions that read the store",
            misses,
        );
        registry.register(
            "tokens_resolved",
            "Tokens resolved and verified",
            metrics.tokens_resolved.clone(),
        );
        registry.register(
            "config_reloads",
            "Config reloads by result",
            metrics.reloads.clone(),
        );
        registry.register(
            "config_generation",
            "Generation of the running config",
            metrics.config_generation.clone(),
        );
        registry.register(
            "open_connections",
            "Open proxy client connections",
            metrics.open_connections.clone(),
        );
        registry.register(
            "admin_login_failures",
            "Failed admin logins",
            metrics.login_failures.clone(),
        );
        Metrics {
            registry,
            ..metrics
        }
    }

    /// The OpenMetrics text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String");
        out
    }
}
