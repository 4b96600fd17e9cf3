//! The memory tier of the tile cache: an LRU (the `lru` crate) bounded by the bytes of the
//! tiles it holds.

use super::key::TileKey;
use super::CachedTile;
use lru::LruCache;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Per-entry overhead counted against the budget besides the PNG (key, bookkeeping), so
/// many tiny tiles cannot exceed the budget unnoticed.
const ENTRY_OVERHEAD: u64 = 256;

pub struct MemoryCache {
    inner: Mutex<Inner>,
    budget: u64,
    evictions: AtomicU64,
}

struct Inner {
    lru: LruCache<TileKey, CachedTile>,
    bytes: u64,
}

fn cost(key: &TileKey, tile: &CachedTile) -> u64 {
    tile.png.len() as u64 + key.style.len() as u64 + key.layer.len() as u64 + ENTRY_OVERHEAD
}

impl MemoryCache {
    pub fn new(budget: u64) -> MemoryCache {
        MemoryCache {
            inner: Mutex::new(Inner {
                lru: LruCache::unbounded(),
                bytes: 0,
            }),
            budget,
            evictions: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Every critical section leaves `bytes` consistent with `lru`, so a poisoned lock is
        // still usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn get(&self, key: &TileKey) -> Option<CachedTile> {
        self.lock().lru.get(key).cloned()
    }

    /// Stores the tile, evicting least-recently-used tiles so the budget always holds. A
    /// tile bigger than the whole budget is not kept.
    pub fn put(&self, key: TileKey, tile: CachedTile) {
        let size = cost(&key, &tile);
        if size > self.budget {
            return;
        }
        let mut inner = self.lock();
        if let Some(old) = inner.lru.pop(&key) {
            inner.bytes -= cost(&key, &old);
        }
        while inner.bytes + size > self.budget {
            match inner.lru.pop_lru() {
                Some((k, t)) => {
                    inner.bytes -= cost(&k, &t);
                    self.evictions.fetch_add(1, Ordering::Relaxed);
                }
                None => break,
            }
        }
        inner.bytes += size;
        inner.lru.put(key, tile);
    }

    /// Removes the tiles `matches` selects; returns how many.
    pub fn purge(&self, matches: &dyn Fn(&TileKey) -> bool) -> u64 {
        let mut inner = self.lock();
        let doomed: Vec<TileKey> = inner
            .lru
            .iter()
            .filter(|(k, _)| matches(k))
            .map(|(k, _)| k.clone())
            .collect();
        for key in &doomed {
            if let Some(t) = inner.lru.pop(key) {
                inner.bytes -= cost(key, &t);
            }
        }
        doomed.len() as u64
    }

    pub fn bytes(&self) -> u64 {
        self.lock().bytes
    }

    /// Tiles held.
    pub fn tiles(&self) -> usize {
        self.lock().lru.len()
    }

    pub fn budget(&self) -> u64 {
        self.budget
    }

    pub fn evictions(&self) -> u64 {
        self.evictions.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn key(i: u32) -> TileKey {
        TileKey {
            layer: "l".into(),
            version: 0,
            style: "s".into(),
            ratio: 1,
            z: 10,
            x: i,
            y: 0,
        }
    }

    fn tile(len: usize) -> CachedTile {
        CachedTile::with_digest(Bytes::from(vec![7u8; len]), [7; 16])
    }

    #[test]
    fn the_budget_holds_and_recent_tiles_stay() {
        let cache = MemoryCache::new(10_000);
        for i in 0..100 {
            cache.put(key(i), tile(1000));
            // Keep tile 0 recently used.
            assert!(cache.get(&key(0)).is_some(), "tile 0 evicted at {i}");
            assert!(cache.bytes() <= 10_000);
        }
        assert!(cache.evictions() > 80);
        assert!(cache.get(&key(1)).is_none());
        cache.put(key(5000), tile(20_000));
        assert!(
            cache.get(&key(5000)).is_none(),
            "a tile over the budget is not kept"
        );
        assert_eq!(cache.purge(&|k| k.x == 0), 1);
        assert!(cache.get(&key(0)).is_none());
    }
}
