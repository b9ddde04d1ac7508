//! A small map whose entries expire: for reads on every request (an access key, a bucket
//! alias) that may be a little stale but must not cost a quorum read each time.
//!
//! Why a TTL and not invalidation alone: a change made through another node is never
//! announced here, so an entry's age is the only bound on how stale it can be. Changes made
//! through this node call `invalidate`, so they show at once here.
//!
//! A read racing an invalidation must not store what the change replaced: `generation`
//! before the read, `put_if_unchanged` after it.
//!
//! Time is `seam::monotonic_now` (tokio's clock, simulated under turmoil): the wall clock
//! can jump and would make entries live too long or too short. Bounded: when full, expired
//! entries are dropped, and if none were, the whole map (a burst of distinct names, e.g.
//! an attacker trying ids, costs reads, never memory).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::seam::monotonic_now;

pub struct TtlCache<K, V> {
    ttl: Duration,
    entries_max: usize,
    inner: Mutex<Inner<K, V>>,
}

struct Inner<K, V> {
    entries: BTreeMap<K, (Instant, V)>,
    /// Bumped by every invalidation.
    generation: u64,
}

impl<K: Ord + Clone, V: Clone> TtlCache<K, V> {
    /// A cache keeping each value for `ttl`, at most `entries_max` values at once. A zero
    /// `ttl` turns caching off.
    pub fn new(ttl: Duration, entries_max: usize) -> Self {
        assert!(entries_max > 0, "a cache holds something");
        let inner = Inner { entries: BTreeMap::new(), generation: 0 };
        TtlCache { ttl, entries_max, inner: Mutex::new(inner) }
    }

    /// The value stored for `key` less than `ttl` ago.
    pub fn get(&self, key: &K) -> Option<V> {
        let inner = self.inner.lock().unwrap();
        let (stored_at, value) = inner.entries.get(key)?;
        (monotonic_now().duration_since(*stored_at) < self.ttl).then(|| value.clone())
    }

    /// Taken before reading a value to `put_if_unchanged`.
    pub fn generation(&self) -> u64 {
        self.inner.lock().unwrap().generation
    }

    pub fn put(&self, key: K, value: V) {
        let generation = self.generation();
        self.put_if_unchanged(key, value, generation);
    }

    /// Stores `value` unless something was invalidated since `generation` was taken (the
    /// value may then be older than the change: better to read it again next time).
    pub fn put_if_unchanged(&self, key: K, value: V, generation: u64) {
        if self.ttl.is_zero() {
            return;
        }
        let now = monotonic_now();
        let mut inner = self.inner.lock().unwrap();
        if inner.generation != generation {
            return;
        }
        let entries = &mut inner.entries;
        if entries.len() >= self.entries_max && !entries.contains_key(&key) {
            entries.retain(|_, (at, _)| now.duration_since(*at) < self.ttl);
            if entries.len() >= self.entries_max {
                entries.clear();
            }
        }
        entries.insert(key, (now, value));
    }

    /// Forgets `key`: the next `get` misses and the caller reads the truth again.
    pub fn invalidate(&self, key: &K) {
        let mut inner = self.inner.lock().unwrap();
        inner.generation += 1;
        inner.entries.remove(key);
    }

    pub fn clear(&self) {
        let mut inner = self.inner.lock().unwrap();
        inner.generation += 1;
        inner.entries.clear();
    }

    pub fn len(&self) -> usize {
        self.inner.lock().unwrap().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn entries_expire_after_the_ttl_and_on_invalidation() {
        let cache = TtlCache::new(Duration::from_secs(2), 8);
        cache.put("a", 1);
        assert_eq!(cache.get(&"a"), Some(1));
        tokio::time::sleep(Duration::from_millis(1999)).await;
        assert_eq!(cache.get(&"a"), Some(1), "still fresh just before the ttl");
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert_eq!(cache.get(&"a"), None, "expired at the ttl");
        cache.put("b", 2);
        cache.invalidate(&"b");
        assert_eq!(cache.get(&"b"), None);
        // A read that began before an invalidation does not store its (older) answer.
        let before = cache.generation();
        cache.invalidate(&"c");
        cache.put_if_unchanged("c", 3, before);
        assert_eq!(cache.get(&"c"), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_cache_drops_expired_entries_then_everything() {
        let cache = TtlCache::new(Duration::from_secs(1), 2);
        cache.put(1, ());
        tokio::time::sleep(Duration::from_secs(1)).await;
        cache.put(2, ());
        cache.put(3, ());
        assert_eq!(cache.len(), 2, "the expired entry made room");
        assert_eq!((cache.get(&2), cache.get(&3)), (Some(()), Some(())));
        cache.put(4, ());
        assert_eq!(cache.len(), 1, "nothing expired: cleared, never above the bound");
        let off = TtlCache::new(Duration::ZERO, 2);
        off.put(1, ());
        assert!(off.is_empty(), "a zero ttl caches nothing");
    }
}
