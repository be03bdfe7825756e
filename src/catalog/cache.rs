//! A cache of answers computed from one index generation (facet counts, filter options), bounded by
//! bytes.
//!
//! Every index commit bumps the generation, and an answer is valid only for the generation it was
//! computed at. The first lookup at a newer generation replaces the cache with an empty one, so a stale
//! answer is never served and older entries, which could never be hit again, do not fill the budget
//! under a write-heavy load. Entries are weighed by an estimate of the heap bytes they hold
//! ([`Weigh`]); the cache keeps at most its byte budget.

use std::hash::Hash;
use std::sync::Arc;
use std::sync::{PoisonError, RwLock};
use std::time::Duration;

/// An estimate of the heap bytes a cached value holds.
pub trait Weigh {
    fn weigh(&self) -> usize;
}

impl Weigh for String {
    fn weigh(&self) -> usize {
        std::mem::size_of::<String>() + self.len()
    }
}

impl<T: Weigh> Weigh for Vec<T> {
    fn weigh(&self) -> usize {
        std::mem::size_of::<Vec<T>>() + self.iter().map(Weigh::weigh).sum::<usize>()
    }
}

impl<A: Weigh, B: Weigh> Weigh for (A, B) {
    fn weigh(&self) -> usize {
        self.0.weigh() + self.1.weigh()
    }
}

impl<T: Weigh> Weigh for Option<T> {
    fn weigh(&self) -> usize {
        std::mem::size_of::<Option<T>>() + self.as_ref().map_or(0, Weigh::weigh)
    }
}

impl Weigh for () {
    fn weigh(&self) -> usize {
        0
    }
}

impl Weigh for u64 {
    fn weigh(&self) -> usize {
        8
    }
}

impl Weigh for u128 {
    fn weigh(&self) -> usize {
        16
    }
}

impl<K: Weigh, V: Weigh> Weigh for std::collections::BTreeMap<K, V> {
    fn weigh(&self) -> usize {
        // A B-tree node's bookkeeping, spread over its entries.
        const PER_ENTRY: usize = 16;
        self.iter().map(|(key, value)| key.weigh() + value.weigh() + PER_ENTRY).sum()
    }
}

impl<T: Weigh> Weigh for Arc<T> {
    fn weigh(&self) -> usize {
        (**self).weigh()
    }
}

impl Weigh for modelcat_index::PropertyOptions {
    fn weigh(&self) -> usize {
        match self {
            modelcat_index::PropertyOptions::Strings(values) => values.weigh(),
            modelcat_index::PropertyOptions::Range { .. } => 16,
        }
    }
}

/// Entries unused this long are dropped even within the budget.
const IDLE: Duration = Duration::from_secs(600);

/// Answers by key at the newest generation seen, at most `max_bytes` of them. Cheap to clone.
#[derive(Clone)]
pub struct GenerationCache<K, V> {
    /// The newest generation seen and its entries. A newer generation replaces the whole cache (moka's
    /// `invalidate_all` is lazy and timestamp-based: entries inserted right after it were dropped too).
    current: Arc<RwLock<Arc<(u64, moka::sync::Cache<K, V>)>>>,
    max_bytes: u64,
}

impl<K, V> GenerationCache<K, V>
where
    K: Hash + Eq + Weigh + Send + Sync + 'static,
    V: Weigh + Clone + Send + Sync + 'static,
{
    pub fn new(max_bytes: u64) -> GenerationCache<K, V> {
        let current = Arc::new(RwLock::new(Arc::new((0, Self::entries(max_bytes)))));
        GenerationCache { current, max_bytes }
    }

    fn entries(max_bytes: u64) -> moka::sync::Cache<K, V> {
        moka::sync::Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|key: &K, value: &V| u32::try_from(key.weigh() + value.weigh() + 64).unwrap_or(u32::MAX))
            .time_to_idle(IDLE)
            .build()
    }

    /// The answer for `key` at `generation`, computed once by `compute` when missing. A lookup at an
    /// older generation than one already seen (a reader that raced a commit) computes without caching.
    pub fn get_or_compute<E: Send + Sync + 'static>(
        &self,
        generation: u64,
        key: K,
        compute: impl FnOnce() -> Result<V, E>,
    ) -> Result<V, Arc<E>> {
        let mut current = self.current.read().unwrap_or_else(PoisonError::into_inner).clone();
        if current.0 < generation {
            let mut slot = self.current.write().unwrap_or_else(PoisonError::into_inner);
            if slot.0 < generation {
                *slot = Arc::new((generation, Self::entries(self.max_bytes)));
            }
            current = slot.clone();
        }
        if current.0 > generation {
            return compute().map_err(Arc::new);
        }
        current.1.try_get_with(key, compute)
    }

    /// The answer held for `key` at `generation`, if any (never one of another generation).
    pub fn get(&self, generation: u64, key: &K) -> Option<V> {
        let current = self.current.read().unwrap_or_else(PoisonError::into_inner).clone();
        if current.0 == generation { current.1.get(key) } else { None }
    }

    /// Holds `value` for `key` at `generation`, unless a newer generation has been seen.
    pub fn insert(&self, generation: u64, key: K, value: V) {
        let _ = self.get_or_compute(generation, key, || Ok::<_, ()>(value));
    }

    fn newest(&self) -> Arc<(u64, moka::sync::Cache<K, V>)> {
        let current = self.current.read().unwrap_or_else(PoisonError::into_inner).clone();
        current.1.run_pending_tasks();
        current
    }

    /// The estimated bytes held by the newest generation's entries.
    pub fn bytes(&self) -> u64 {
        self.newest().1.weighted_size()
    }

    /// The newest generation's entries.
    pub fn entries_held(&self) -> u64 {
        self.newest().1.entry_count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(size: usize) -> Arc<Vec<String>> {
        Arc::new(vec!["x".repeat(size)])
    }

    #[test]
    fn stays_within_its_byte_budget_across_generations_and_keys() {
        let cache: GenerationCache<String, Arc<Vec<String>>> = GenerationCache::new(100_000);
        for generation in 1..=200u64 {
            for key in 0..50 {
                let computed = cache.get_or_compute(generation, format!("query {key}"), || Ok::<_, ()>(value(1000)));
                assert_eq!(computed.unwrap()[0].len(), 1000);
            }
            assert!(cache.bytes() <= 100_000, "{} bytes at generation {generation}", cache.bytes());
        }
        // Within one generation, keys beyond the budget evict others.
        for key in 0..1000 {
            let _ = cache.get_or_compute(201, format!("query {key}"), || Ok::<_, ()>(value(1000)));
        }
        assert!(cache.bytes() <= 100_000, "{}", cache.bytes());
        assert!(
            cache.entries_held() >= 50,
            "the budget holds about 90 entries of this size, not {}",
            cache.entries_held()
        );
    }

    #[test]
    fn a_newer_generation_drops_older_entries_and_an_older_one_is_not_cached() {
        let cache: GenerationCache<String, Arc<Vec<String>>> = GenerationCache::new(1_000_000);
        let _ = cache.get_or_compute(5, "a".into(), || Ok::<_, ()>(value(10)));
        let _ = cache.get_or_compute(5, "b".into(), || Ok::<_, ()>(value(10)));
        assert_eq!(cache.entries_held(), 2);
        let _ = cache.get_or_compute(6, "a".into(), || Ok::<_, ()>(value(20)));
        assert_eq!(cache.entries_held(), 1);
        let mut computed = false;
        let old = cache.get_or_compute(5, "a".into(), || {
            computed = true;
            Ok::<_, ()>(value(10))
        });
        assert!(computed, "an older generation's answer is computed, never served from the cache");
        assert_eq!(old.unwrap()[0].len(), 10);
        assert_eq!(cache.get_or_compute(6, "a".into(), || Err(())).unwrap()[0].len(), 20);
        assert_eq!(cache.entries_held(), 1);
    }
}
