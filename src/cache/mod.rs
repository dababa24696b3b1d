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
mod tests;
