//! Unit tests of `cache`.

use super::*;
use crate::access::{Grant, Role, Scope, TokenKind};

fn setup(ttl: Duration, max: usize) -> (tempfile::TempDir, TokenCache) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    (dir, TokenCache::new(store, ttl, max))
}

fn mint(cache: &TokenCache) -> (String, TokenId) {
    let m = token::generate().unwrap();
    let stored = StoredToken {
        digest: m.digest,
        record: TokenRecord {
            id: m.id,
            description: "t".into(),
            scope: Scope {
                kind: TokenKind::Enterprise,
                grants: [(
                    "r".to_string(),
                    Grant {
                        role: Role::Viewer,
                        repo_seq: 1,
                    },
                )]
                .into(),
                minted_seq: 1,
            },
            created_at: 0,
            created_by: "admin".into(),
            expires_at: None,
            last_used_at: None,
            revoked_at: None,
        },
    };
    cache.store().insert_token(&stored).unwrap();
    (m.secret.expose().to_owned(), m.id)
}

const HOUR: Duration = Duration::from_secs(3600);

#[test]
fn first_use_reads_the_store_and_later_uses_hit_memory() {
    let (_d, cache) = setup(HOUR, 100);
    let (secret, id) = mint(&cache);
    assert_eq!(cache.resolve(&secret).unwrap().record.id, id);
    assert_eq!(cache.resolve(&secret).unwrap().record.id, id);
    assert_eq!(cache.stats(), CacheStats { hits: 1, misses: 1 });
}

#[test]
fn wrong_secret_and_unknown_id_are_told_apart() {
    let (_d, cache) = setup(HOUR, 100);
    let (_, id) = mint(&cache);
    let other = token::generate().unwrap();
    assert!(matches!(
        cache.resolve(other.secret.expose()),
        Err(ResolveError::Unknown(_))
    ));

    // Same id, a different secret with a valid checksum.
    let forged = forge_with_id(&id);
    assert!(matches!(cache.resolve(&forged), Err(ResolveError::WrongSecret(i)) if i == id));
    assert!(matches!(
        cache.resolve("rgt_nope"),
        Err(ResolveError::Format(_))
    ));
}

fn forge_with_id(id: &TokenId) -> String {
    let other = token::generate().unwrap();
    let body = format!(
        "{}{}",
        id.as_str(),
        &other.secret.expose()[token::ID_LEN..token::TOKEN_LEN - 6]
    );
    let sum = crc_suffix(&body);
    format!("{body}{sum}")
}

fn crc_suffix(body: &str) -> String {
    String::from_utf8(checksum_for_tests(body.as_bytes()).to_vec()).unwrap()
}

fn checksum_for_tests(data: &[u8]) -> [u8; 6] {
    const A: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut n = u64::from(crc32fast::hash(data));
    let mut out = [b'0'; 6];
    for d in out.iter_mut().rev() {
        *d = A[(n % 62) as usize];
        n /= 62;
    }
    out
}

#[tokio::test]
async fn revoked_token_is_refused_through_the_cache_right_after_revoke() {
    let (_d, cache) = setup(HOUR, 100);
    let (secret, id) = mint(&cache);
    assert_eq!(cache.resolve(&secret).unwrap().record.revoked_at, None);

    cache.revoke(&id, 50).await.unwrap().unwrap();

    let after = cache.resolve(&secret).unwrap();
    assert_eq!(after.record.revoked_at, Some(50));
}

#[test]
fn the_cache_never_serves_a_record_after_its_invalidation() {
    let (_d, cache) = setup(HOUR, 100);
    let (secret, id) = mint(&cache);
    for round in 0..50u64 {
        let before = cache.resolve(&secret).unwrap();
        cache
            .store()
            .update_token(&id, |r| r.description = format!("v{round}"))
            .unwrap();
        cache.invalidate(&id);
        let after = cache.resolve(&secret).unwrap();
        assert_eq!(after.record.description, format!("v{round}"));
        assert!(!Arc::ptr_eq(&before, &after));
    }
}

#[test]
fn a_load_that_raced_an_invalidation_is_not_cached() {
    let (_d, cache) = setup(HOUR, 100);
    let (secret, id) = mint(&cache);
    // A load reads its epoch and the record; a revoke lands in between.
    let epoch = cache.epoch.load(Ordering::SeqCst);
    let stale = cache.store().token(&id).unwrap().unwrap();
    cache
        .store()
        .update_token(&id, |r| r.revoked_at = Some(3))
        .unwrap();
    cache.invalidate(&id);

    let handed_back = cache.admit(id, stale, epoch);
    assert_eq!(
        handed_back.record.revoked_at, None,
        "the racing load sees its own read"
    );
    assert_eq!(cache.len(), 0, "but it is not cached");
    assert_eq!(cache.resolve(&secret).unwrap().record.revoked_at, Some(3));
}

#[test]
fn concurrent_resolves_never_see_a_revoked_token_as_live_after_invalidation() {
    let (_d, cache) = setup(HOUR, 100);
    let cache = Arc::new(cache);
    let (secret, id) = mint(&cache);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let (cache, secret, stop) = (Arc::clone(&cache), secret.clone(), Arc::clone(&stop));
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let _ = cache.resolve(&secret);
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(20));
    cache
        .store()
        .update_token(&id, |r| r.revoked_at = Some(9))
        .unwrap();
    cache.invalidate(&id);
    for _ in 0..1000 {
        assert_eq!(cache.resolve(&secret).unwrap().record.revoked_at, Some(9));
    }
    stop.store(true, Ordering::Relaxed);
    readers.into_iter().for_each(|r| r.join().unwrap());
}

#[test]
fn entries_older_than_the_ttl_are_reloaded() {
    let (_d, cache) = setup(Duration::ZERO, 100);
    let (secret, _) = mint(&cache);
    cache.resolve(&secret).unwrap();
    cache.resolve(&secret).unwrap();
    assert_eq!(cache.stats(), CacheStats { hits: 0, misses: 2 });
}

#[test]
fn the_cache_stays_within_max_entries() {
    let (_d, cache) = setup(HOUR, 32);
    let tokens: Vec<_> = (0..200).map(|_| mint(&cache)).collect();
    for (secret, _) in &tokens {
        cache.resolve(secret).unwrap();
        assert!(cache.len() <= 32, "{} entries", cache.len());
    }
}

#[test]
fn last_used_is_written_in_batches_not_per_request() {
    let (_d, cache) = setup(HOUR, 100);
    let (secret, id) = mint(&cache);
    let first = cache.resolve(&secret).unwrap();
    cache.record_use(&first, 5_000);
    let second = cache.resolve(&secret).unwrap();
    cache.record_use(&second, 9_000);
    assert_eq!(
        cache
            .store()
            .token(&id)
            .unwrap()
            .unwrap()
            .record
            .last_used_at,
        None
    );
    assert_eq!(cache.last_used(&id), Some(9_000));

    assert_eq!(cache.flush_last_used().unwrap(), 1);
    assert_eq!(
        cache
            .store()
            .token(&id)
            .unwrap()
            .unwrap()
            .record
            .last_used_at,
        Some(9_000)
    );
    assert_eq!(cache.flush_last_used().unwrap(), 0, "nothing new to write");
}

#[test]
fn invalidation_keeps_the_pending_last_use() {
    let (_d, cache) = setup(HOUR, 100);
    let (secret, id) = mint(&cache);
    let cached = cache.resolve(&secret).unwrap();
    cache.record_use(&cached, 7_000);
    cache.invalidate(&id);
    assert_eq!(
        cache
            .store()
            .token(&id)
            .unwrap()
            .unwrap()
            .record
            .last_used_at,
        Some(7_000)
    );
}
