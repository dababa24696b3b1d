//! The hot token cache: resolved token records by id, in a `DashMap`.
//!
//! Every proxied request resolves its token here. A hit costs a shard read
//! lock, an `Arc` clone and one SHA-256 of the presented token; a miss reads
//! sled once. Entries live at most `ttl` and the map holds at most
//! `max_entries`. Revocation and other changes invalidate the entry before the
//! admin call returns, and an epoch counter stops a load that raced an
//! invalidation from putting the old record back. `last_used_at` is kept in
//! the entry and written to the store in batches, never per request.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::mapref::entry::Entry;
use dashmap::DashMap;
use prometheus_client::metrics::counter::Counter;

use crate::store::{Store, StoreError, StoredToken, TokenRecord};
use crate::token::{self, Digest, FormatError, TokenId};

/// How much newer a use must be than the recorded one before the entry is
/// written again; keeps concurrent requests from bouncing one cache line.
const LAST_USED_RESOLUTION_MS: u64 = 1_000;

/// A resolved token as the proxy uses it.
#[derive(Debug)]
pub struct Cached {
    /// The record as it was when loaded.
    pub record: TokenRecord,
    digest: Digest,
    loaded_at: Instant,
    /// Newest use seen, Unix milliseconds (0: none since load).
    last_used: AtomicU64,
    /// Newest use already written to the store.
    flushed: AtomicU64,
}

impl Cached {
    fn new(stored: StoredToken, carried_last_used: u64) -> Self {
        Cached {
            record: stored.record,
            digest: stored.digest,
            loaded_at: Instant::now(),
            last_used: AtomicU64::new(carried_last_used),
            flushed: AtomicU64::new(0),
        }
    }

    fn touch(&self, now_ms: u64) {
        if now_ms >= self.last_used.load(Ordering::Relaxed) + LAST_USED_RESOLUTION_MS {
            self.last_used.fetch_max(now_ms, Ordering::Relaxed);
        }
    }

    fn unflushed(&self) -> Option<u64> {
        let used = self.last_used.load(Ordering::Relaxed);
        (used > self.flushed.load(Ordering::Relaxed)).then_some(used)
    }
}

/// Why a presented token did not resolve to a record.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// Malformed or not a repogate token; decided without the store.
    #[error(transparent)]
    Format(#[from] FormatError),
    /// Well formed, but no token has this id.
    #[error("token {0} is not known")]
    Unknown(TokenId),
    /// The id exists but the secret does not match.
    #[error("token {0} was presented with a wrong secret")]
    WrongSecret(TokenId),
    /// The store could not be read.
    #[error("token store unavailable: {0}")]
    Store(#[from] StoreError),
}

/// Hit and miss counts since start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Resolutions served from memory.
    pub hits: u64,
    /// Resolutions that read the store.
    pub misses: u64,
}

/// The cache itself; share it in an `Arc`.
pub struct TokenCache {
    store: Store,
    entries: DashMap<TokenId, Arc<Cached>>,
    /// Bumped by every invalidation. A load records it before reading the
    /// store and inserts only if it is unchanged, so a record read before a
    /// revoke can never be cached after it.
    epoch: AtomicU64,
    ttl: Duration,
    max_entries: usize,
    /// Prometheus counters, so `/metrics` reads the same numbers as `stats`.
    hits: Counter,
    misses: Counter,
}

impl TokenCache {
    /// An empty cache over `store`.
    pub fn new(store: Store, ttl: Duration, max_entries: usize) -> Self {
        TokenCache {
            store,
            entries: DashMap::new(),
            epoch: AtomicU64::new(0),
            ttl,
            max_entries: max_entries.max(1),
            hits: Counter::default(),
            misses: Counter::default(),
        }
    }

    /// The store behind the cache.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Resolves a presented token: checks its form, finds its record and
    /// verifies the secret in constant time. Validity (revoked, expired) is
    /// the decision's business, so the caller can say which it was.
    pub fn resolve(&self, presented: &str) -> Result<Arc<Cached>, ResolveError> {
        let id = token::parse(presented)?;

        let cached = match self.fresh(&id) {
            Some(hit) => {
                self.hits.inc();
                hit
            }
            None => {
                self.misses.inc();
                self.load(id)?
            }
        };

        if !token::verify(&cached.digest, presented) {
            return Err(ResolveError::WrongSecret(id));
        }
        Ok(cached)
    }

    /// Records that `cached` authorized a request at `now_ms`. Called only
    /// for allowed requests: a refused one is not a use.
    pub fn record_use(&self, cached: &Cached, now_ms: u64) {
        cached.touch(now_ms);
    }

    fn fresh(&self, id: &TokenId) -> Option<Arc<Cached>> {
        let entry = self.entries.get(id)?;
        (entry.loaded_at.elapsed() < self.ttl).then(|| Arc::clone(&entry))
    }

    fn load(&self, id: TokenId) -> Result<Arc<Cached>, ResolveError> {
        let epoch = self.epoch.load(Ordering::SeqCst);
        let stored = self.store.token(&id)?.ok_or(ResolveError::Unknown(id))?;
        Ok(self.admit(id, stored, epoch))
    }

    /// Caches a record read from the store when no invalidation happened
    /// since `epoch` was read; otherwise hands it back uncached.
    fn admit(&self, id: TokenId, stored: StoredToken, epoch: u64) -> Arc<Cached> {
        if self.entries.len() >= self.max_entries && !self.entries.contains_key(&id) {
            self.evict();
        }

        let entry = self.entries.entry(id);
        // Checked under the shard lock that `invalidate` must also take.
        if self.epoch.load(Ordering::SeqCst) != epoch {
            return Arc::new(Cached::new(stored, 0));
        }
        let (used, flushed) = match &entry {
            Entry::Occupied(old) => (
                old.get().last_used.load(Ordering::Relaxed),
                old.get().flushed.load(Ordering::Relaxed),
            ),
            Entry::Vacant(_) => (0, 0),
        };
        let cached = Arc::new(Cached::new(stored, used));
        cached.flushed.store(flushed, Ordering::Relaxed);
        entry.insert(Arc::clone(&cached));
        cached
    }

    /// Drops about a sixteenth of the entries, expired ones first, writing
    /// their unflushed use times to the store.
    fn evict(&self) {
        let want = (self.max_entries / 16).max(1);
        let mut victims: Vec<TokenId> = self
            .entries
            .iter()
            .filter(|e| e.loaded_at.elapsed() >= self.ttl)
            .take(want)
            .map(|e| *e.key())
            .collect();
        if victims.len() < want {
            let more = self
                .entries
                .iter()
                .take(want - victims.len())
                .map(|e| *e.key());
            victims.extend(more.collect::<Vec<_>>());
        }
        for id in victims {
            if let Some((_, old)) = self.entries.remove(&id) {
                self.persist_use(&id, &old);
            }
        }
    }

    /// Forgets `id` so the next request reads the store. Called by every
    /// mutation of a token before that mutation's call returns.
    pub fn invalidate(&self, id: &TokenId) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        if let Some((_, old)) = self.entries.remove(id) {
            self.persist_use(id, &old);
        }
    }

    /// Revokes a token: durable in the store and gone from the cache before
    /// this returns. `None` when no token has this id. Revoking twice keeps
    /// the first revocation time.
    pub async fn revoke(
        &self,
        id: &TokenId,
        now_ms: u64,
    ) -> Result<Option<TokenRecord>, StoreError> {
        let updated = self.store.update_token(id, |r| {
            r.revoked_at.get_or_insert(now_ms);
        })?;
        self.invalidate(id);
        self.store.flush().await?;
        Ok(updated)
    }

    /// Writes every unflushed `last_used_at` to the store in one pass;
    /// returns how many records it touched.
    pub fn flush_last_used(&self) -> Result<usize, StoreError> {
        let pending: Vec<(TokenId, Arc<Cached>)> = self
            .entries
            .iter()
            .filter(|e| e.unflushed().is_some())
            .map(|e| (*e.key(), Arc::clone(e.value())))
            .collect();
        for (id, cached) in &pending {
            self.persist_use(id, cached);
        }
        Ok(pending.len())
    }

    fn persist_use(&self, id: &TokenId, cached: &Cached) {
        let Some(used) = cached.unflushed() else {
            return;
        };
        let written = self.store.update_token(id, |r| {
            r.last_used_at = r.last_used_at.max(Some(used));
        });
        match written {
            Ok(_) => {
                cached.flushed.fetch_max(used, Ordering::Relaxed);
            }
            Err(e) => tracing::warn!(token.id = %id, error = %e, "could not record last use"),
        }
    }

    /// The newest use of `id` seen in memory, which may be newer than the store's.
    pub fn last_used(&self, id: &TokenId) -> Option<u64> {
        let used = self.entries.get(id)?.last_used.load(Ordering::Relaxed);
        (used > 0).then_some(used)
    }

    /// Entries held now.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Hits and misses since start.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.get(),
            misses: self.misses.get(),
        }
    }

    /// The hit and miss counters, for registering with Prometheus.
    pub fn counters(&self) -> (Counter, Counter) {
        (self.hits.clone(), self.misses.clone())
    }
}

/// Writes batched `last_used_at` values every `every` until the cache is dropped.
pub fn spawn_last_used_writer(
    cache: &Arc<TokenCache>,
    every: Duration,
) -> tokio::task::JoinHandle<()> {
    let weak = Arc::downgrade(cache);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            let Some(cache) = weak.upgrade() else { return };
            let _ = cache.flush_last_used();
        }
    })
}

#[cfg(test)]
mod tests {
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
}
