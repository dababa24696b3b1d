//! The per-request work that does not touch the network: token parse and
//! resolution from the hot cache, and the access decision.
//!
//! Run with `cargo bench --bench hot_path`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use repogate::access::{
    self, Action, DefaultRole, Grant, Role, Scope, Target, TokenKind, Validity,
};
use repogate::cache::TokenCache;
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
    c.bench_function("cache-hit resolve + decide", |b| {
        b.iter(|| {
            let cached = cache.resolve(black_box(&secret)).expect("resolves");
            let validity = Validity {
                revoked_at: cached.record.revoked_at,
                expires_at: cached.record.expires_at,
            };
            access::decide(
                &cached.record.scope,
                validity,
                target,
                Action::Write,
                DefaultRole::NO_ACCESS,
                1,
            )
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = resolve_and_decide
}
criterion_main!(benches);
