//! The per-request work that does not touch the network: token parse and
//! resolution from the hot cache, and the access decision.
//!
//! Run with `cargo bench --bench hot_path`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use repogate::access::{
    self, Action, DefaultRole, Grant, Role, Scope, Target, TokenKind, Validity,
};
use repogate::cache::TokenCache;
use repogate::proxy::headers::{self, ClientInfo};
use repogate::route::{Match, Preset, RouteSpec, RouteTable};
use repogate::store::{Store, StoredToken, TokenRecord};
use repogate::token;

fn minted_cache() -> (tempfile::TempDir, TokenCache, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path()).expect("store opens");
    let minted = token::generate().expect("os random");
    let stored = StoredToken {
        digest: minted.digest,
        record: TokenRecord {
            id: minted.id,
            description: "bench".into(),
            scope: Scope {
                kind: TokenKind::Enterprise,
                grants: [(
                    "acme/widgets".to_string(),
                    Grant {
                        role: Role::Developer,
                        repo_seq: 3,
                    },
                )]
                .into(),
                minted_seq: 10,
            },
            created_at: 0,
            created_by: "bench".into(),
            expires_at: None,
            last_used_at: None,
            revoked_at: None,
        },
    };
    store.insert_token(&stored).expect("insert");
    let cache = TokenCache::new(store, Duration::from_secs(3600), 1000);
    (dir, cache, minted.secret.expose().to_owned())
}

fn resolve_and_decide(c: &mut Criterion) {
    let (_dir, cache, secret) = minted_cache();
    cache.resolve(&secret).expect("warm the cache");
    let target = Target::Registered {
        name: "acme/widgets",
        created_seq: 3,
    };

    c.bench_function("token parse", |b| {
        b.iter(|| token::parse(black_box(&secret)))
    });
    // What the proxy does per request: resolve, decide, record the use.
    c.bench_function("cache-hit resolve + decide + record use", |b| {
        b.iter(|| {
            let cached = cache.resolve(black_box(&secret)).expect("resolves");
            let validity = Validity {
                revoked_at: cached.record.revoked_at,
                expires_at: cached.record.expires_at,
            };
            let decision = access::decide(
                &cached.record.scope,
                validity,
                target,
                Action::Write,
                DefaultRole::NO_ACCESS,
                1,
            );
            cache.record_use(&cached, repogate::now_ms());
            decision
        })
    });
}

fn route_match(c: &mut Criterion) {
    let spec = RouteSpec {
        prefix: "/",
        strip_prefix: false,
        preset: Some(Preset::Gitlab),
        rules: &[],
        upstream: 0,
    };
    let table = RouteTable::compile([spec]).expect("the gitlab preset compiles");
    let cases = [
        (
            "gitlab GET issues (read)",
            Method::GET,
            "/api/v4/projects/acme%2Fwidgets/issues",
            None,
        ),
        (
            "gitlab POST approve (review)",
            Method::POST,
            "/api/v4/projects/acme%2Fwidgets/merge_requests/7/approve",
            None,
        ),
        (
            "git info/refs (clone)",
            Method::GET,
            "/acme/widgets.git/info/refs",
            Some("service=git-upload-pack"),
        ),
    ];
    for (name, method, path, query) in cases {
        c.bench_function(&format!("route match: {name}"), |b| {
            b.iter(|| matches!(table.find(&method, black_box(path), query), Match::Found(_)))
        });
    }
}

fn header_rewrite(c: &mut Criterion) {
    let mut incoming = HeaderMap::new();
    for (k, v) in [
        ("host", "gate.example"),
        ("user-agent", "ci-runner/16.0"),
        ("accept", "application/json"),
        ("private-token", "rgt_not_checked_here"),
        ("x-forwarded-for", "6.6.6.6"),
        ("connection", "keep-alive"),
    ] {
        incoming.insert(HeaderName::from_static(k), HeaderValue::from_static(v));
    }
    let inject = [(
        HeaderName::from_static("private-token"),
        HeaderValue::from_static("glpat-upstream"),
    )];
    incoming.insert(http::header::HOST, HeaderValue::from_static("gate.example"));
    let forwarded_for = headers::forwarded_for([127, 0, 0, 1].into());
    let client = ClientInfo {
        forwarded_for: &forwarded_for,
        proto: "http",
    };
    c.bench_function("header rewrite (request)", |b| {
        b.iter_batched(
            || incoming.clone(),
            |mut headers| {
                headers::prepare_request(&mut headers, client, None, &inject);
                headers
            },
            criterion::BatchSize::SmallInput,
        )
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = resolve_and_decide, route_match, header_rewrite
}
criterion_main!(benches);
