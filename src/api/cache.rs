//! A small time-bounded cache for lookups every request repeats (API key → org, an org's
//! default agent). Entries live one second, so changes made elsewhere (another node, a
//! restart with a new config) show within that second; this node's own agent changes
//! invalidate at once. Quotas are never decided from here: the insert checks them atomically.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const TTL: Duration = Duration::from_secs(1);
/// Only successful lookups are cached; the bound keeps a huge tenant list from growing it
/// without limit.
const MAX_ENTRIES: usize = 10_000;

pub struct TtlCache<K, V> {
    entries: Mutex<HashMap<K, (Instant, V)>>,
}

impl<K: Eq + Hash, V: Clone> Default for TtlCache<K, V> {
    fn default() -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Eq + Hash, V: Clone> TtlCache<K, V> {
    pub fn get(&self, key: &K) -> Option<V> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .get(key)
            .filter(|(at, _)| at.elapsed() < TTL)
            .map(|(_, v)| v.clone())
    }

    pub fn insert(&self, key: K, value: V) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= MAX_ENTRIES {
            entries.retain(|_, (at, _)| at.elapsed() < TTL);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(key, (Instant::now(), value));
    }

    pub fn clear(&self) {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_after_the_ttl() {
        let cache = TtlCache::default();
        cache.insert("k", 1);
        assert_eq!(cache.get(&"k"), Some(1));
        assert_eq!(cache.get(&"other"), None);
        cache.entries.lock().unwrap().get_mut("k").unwrap().0 -= TTL;
        assert_eq!(cache.get(&"k"), None);
        cache.insert("k", 2);
        cache.clear();
        assert_eq!(cache.get(&"k"), None);
    }
}
