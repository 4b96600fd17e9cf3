//! The in-memory index of the tiles on disk: least-recently-used order and per-layer totals.

use super::KeyHash;
use lru::LruCache;
use std::collections::HashMap;

/// One tile on disk.
pub(super) struct Entry {
    pub(super) layer: usize,
    pub(super) size: u64,
}

pub(super) struct Layer {
    /// Folder name: 16 hex of the layer name's hash.
    pub(super) dir: String,
    pub(super) name: String,
    /// Whether `layer.txt` is known to hold `name`; if not, the next put writes it.
    pub(super) name_on_disk: bool,
    pub(super) files: u64,
    pub(super) bytes: u64,
}

/// Everything the mutex guards.
pub(super) struct Index {
    /// Least recently used first.
    pub(super) lru: LruCache<KeyHash, Entry>,
    pub(super) layers: Vec<Layer>,
    pub(super) layer_ids: HashMap<String, usize>,
    pub(super) bytes: u64,
    /// Bytes of tiles being written right now: eviction makes room for them up front so
    /// the disk never holds more than the budget plus in-flight writes.
    pub(super) reserved: u64,
    pub(super) evictions: u64,
    pub(super) write_errors: u64,
    pub(super) corrupt: u64,
    /// Set by a failed write and cleared by a successful one, so a full or read-only disk
    /// logs one warning rather than one per tile.
    pub(super) write_failing: bool,
}

impl Index {
    pub(super) fn new() -> Index {
        Index {
            lru: LruCache::unbounded(),
            layers: Vec::new(),
            layer_ids: HashMap::new(),
            bytes: 0,
            reserved: 0,
            evictions: 0,
            write_errors: 0,
            corrupt: 0,
            write_failing: false,
        }
    }

    /// The id of the layer stored in folder `dir`, registering it if new. A real `name`
    /// replaces a placeholder that was never confirmed by `layer.txt`.
    pub(super) fn layer_id(&mut self, dir: &str, name: &str, name_on_disk: bool) -> usize {
        if let Some(&id) = self.layer_ids.get(dir) {
            let layer = &mut self.layers[id];
            if !layer.name_on_disk {
                layer.name = name.to_string();
                layer.name_on_disk = name_on_disk;
            }
            return id;
        }
        self.layers.push(Layer {
            dir: dir.to_string(),
            name: name.to_string(),
            name_on_disk,
            files: 0,
            bytes: 0,
        });
        let id = self.layers.len() - 1;
        self.layer_ids.insert(dir.to_string(), id);
        id
    }

    /// Records a tile as the most recently used, replacing any older entry for its key.
    pub(super) fn insert(&mut self, hash: KeyHash, entry: Entry) {
        self.count(&entry, true);
        if let Some((_, old)) = self.lru.push(hash, entry) {
            self.count(&old, false);
        }
    }

    pub(super) fn remove(&mut self, hash: &KeyHash) -> Option<Entry> {
        let entry = self.lru.pop(hash)?;
        self.count(&entry, false);
        Some(entry)
    }

    pub(super) fn pop_lru(&mut self) -> Option<(KeyHash, Entry)> {
        let (hash, entry) = self.lru.pop_lru()?;
        self.count(&entry, false);
        Some((hash, entry))
    }

    /// Adds (`add`) or subtracts an entry from the totals.
    pub(super) fn count(&mut self, entry: &Entry, add: bool) {
        let layer = &mut self.layers[entry.layer];
        if add {
            self.bytes += entry.size;
            layer.files += 1;
            layer.bytes += entry.size;
        } else {
            self.bytes = self.bytes.saturating_sub(entry.size);
            layer.files = layer.files.saturating_sub(1);
            layer.bytes = layer.bytes.saturating_sub(entry.size);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::*;
    use super::super::*;

    #[test]
    fn budget_holds_and_lru_order() {
        let dir = TempDir::new("budget");
        let k0 = key("l", 1, 0);
        let one = file_size(&k0, 1000);
        let budget = one * 10 + one / 2;
        let cache = DiskCache::open(&dir.0, budget).unwrap();
        for i in 0..10 {
            cache.put(&key("l", 1, i), &png(i, 1000));
        }
        assert_eq!(cache.stats().files, 10);
        // Reading tile 0 makes tile 1 the least recently used.
        assert!(cache.get(&k0).is_some());
        cache.put(&key("l", 1, 10), &png(10, 1000));
        assert!(cache.get(&k0).is_some());
        assert!(cache.get(&key("l", 1, 1)).is_none());
        assert!(cache.get(&key("l", 1, 2)).is_some());

        for i in 11..200 {
            cache.put(&key("l", 1, i), &png(i, 1000));
            assert!(tile_bytes_on_disk(&dir.0) <= budget);
        }
        let s = cache.stats();
        assert_eq!(s.files, 10);
        assert_eq!(s.bytes, tile_bytes_on_disk(&dir.0));
        assert!(s.bytes <= budget);
        assert_eq!(s.evictions, 190);
        assert!(cache.get(&key("l", 1, 199)).is_some());
    }

    #[test]
    fn tile_larger_than_budget_is_not_stored() {
        let dir = TempDir::new("oversize");
        let cache = DiskCache::open(&dir.0, 1000).unwrap();
        cache.put(&key("l", 1, 0), &png(0, 200));
        cache.put(&key("l", 1, 1), &png(1, 2000));
        assert_eq!(cache.get(&key("l", 1, 1)), None);
        // Nor does it push out what fits.
        assert!(cache.get(&key("l", 1, 0)).is_some());
        let s = cache.stats();
        assert_eq!((s.files, s.write_errors, s.evictions), (1, 0, 0));
    }
}
