//! A bounded in-memory cache of verified bytes.
//!
//! The kernel's page cache keeps what readers read (files are opened with `FOPEN_KEEP_CACHE`:
//! a snapshot never changes), so this cache only has to hold what a read verified but did not
//! hand out: the rest of a chunk cut by a read's boundaries, or an Ogg header region rebuilt
//! for one of its chunks. Eviction is first in, first out: cheap under a mutex and good enough
//! for what mostly is a stream of sequential reads. Only verified bytes are ever inserted.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};

/// Verified bytes by key, at most `capacity` bytes in all.
pub struct BoundedCache<K> {
    inner: Mutex<Inner<K>>,
    capacity: usize,
}

struct Inner<K> {
    map: HashMap<K, Arc<[u8]>>,
    order: VecDeque<K>,
    bytes: usize,
}

impl<K: Hash + Eq + Clone> BoundedCache<K> {
    /// A cache holding at most `capacity` bytes.
    pub fn new(capacity: usize) -> Self {
        BoundedCache {
            inner: Mutex::new(Inner {
                map: HashMap::new(),
                order: VecDeque::new(),
                bytes: 0,
            }),
            capacity,
        }
    }

    /// The bytes under `key`, if cached.
    pub fn get(&self, key: &K) -> Option<Arc<[u8]>> {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.map.get(key).cloned()
    }

    /// Keeps `bytes` under `key`, evicting the oldest entries to stay within the bound. Values
    /// larger than the whole cache are not kept.
    pub fn insert(&self, key: K, bytes: Arc<[u8]>) {
        if bytes.len() > self.capacity {
            return;
        }
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if inner.map.contains_key(&key) {
            return;
        }
        while inner.bytes + bytes.len() > self.capacity {
            let Some(old) = inner.order.pop_front() else {
                break;
            };
            if let Some(v) = inner.map.remove(&old) {
                inner.bytes -= v.len();
            }
        }
        inner.bytes += bytes.len();
        inner.order.push_back(key.clone());
        inner.map.insert(key, bytes);
    }

    /// Bytes held now.
    #[cfg(test)]
    pub fn bytes(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stays_within_its_bound() {
        let cache = BoundedCache::new(10);
        cache.insert(1, Arc::from(&[0u8; 4][..]));
        cache.insert(2, Arc::from(&[0u8; 4][..]));
        cache.insert(3, Arc::from(&[0u8; 4][..]));
        assert!(cache.bytes() <= 10);
        assert!(cache.get(&1).is_none());
        assert!(cache.get(&3).is_some());
        cache.insert(4, Arc::from(&[0u8; 11][..]));
        assert!(cache.get(&4).is_none());
    }
}
