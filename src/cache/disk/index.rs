//! The in-memory index of the tiles on disk: least-recently-used order and per-layer totals.

use super::files::Rejection;
use super::KeyHash;
use lru::LruCache;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// One tile on disk.
pub(super) struct Entry {
    pub(super) layer: usize,
    /// Allocated bytes: what the file takes on disk.
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
    /// Allocated bytes of the tile files.
    pub(super) bytes: u64,
    /// What each folder (and small file: layer names, the lock, strays) takes on disk, by
    /// path, as last measured: folders grow with their entries and never shrink on most file
    /// systems, so they count against the budget like tiles.
    folders: HashMap<PathBuf, u64>,
    /// The sum of `folders`.
    pub(super) folder_bytes: u64,
    /// Bytes of tiles being written right now: eviction makes room for them up front so
    /// the disk never holds more than the budget plus in-flight writes.
    pub(super) reserved: u64,
    pub(super) evictions: u64,
    pub(super) write_errors: u64,
    /// Files dropped rather than read, by [`Rejection::slot`].
    pub(super) rejected: [u64; Rejection::ALL.len()],
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
            folders: HashMap::new(),
            folder_bytes: 0,
            reserved: 0,
            evictions: 0,
            write_errors: 0,
            rejected: [0; Rejection::ALL.len()],
            write_failing: false,
        }
    }

    /// Everything the tier takes on disk: tiles, folders and small files.
    pub(super) fn used(&self) -> u64 {
        self.bytes.saturating_add(self.folder_bytes)
    }

    /// Records what the folder or small file at `path` takes on disk now.
    pub(super) fn set_folder_bytes(&mut self, path: &Path, size: u64) {
        let old = match self.folders.get_mut(path) {
            Some(slot) => std::mem::replace(slot, size),
            None => {
                self.folders.insert(path.to_path_buf(), size);
                0
            }
        };
        self.folder_bytes = self.folder_bytes.saturating_sub(old).saturating_add(size);
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
        // Ten and a half tiles beside the folders, plus the block a put reserves for a
        // folder that may grow.
        let (tiles, one) = budget_for_tiles(&dir.0, "l", 1000, 10.5);
        let budget = tiles + block_size(&dir.0);
        let keys = keys_in_one_shard("l", 200);
        let cache = DiskCache::open(&dir.0, budget).unwrap();
        for (i, k) in keys[..10].iter().enumerate() {
            cache.put(k, &png(i as u32, 1000));
        }
        assert_eq!(cache.stats().files, 10);
        // Reading tile 0 makes tile 1 the least recently used.
        assert!(cache.get(&keys[0]).is_some());
        cache.put(&keys[10], &png(10, 1000));
        assert!(cache.get(&keys[0]).is_some());
        assert!(cache.get(&keys[1]).is_none());
        assert!(cache.get(&keys[2]).is_some());

        for (i, k) in keys.iter().enumerate().skip(11) {
            cache.put(k, &png(i as u32, 1000));
            assert!(du(&dir.0) <= budget);
        }
        let s = cache.stats();
        assert_eq!(s.files, 10);
        assert_eq!(tile_bytes(&s), tile_bytes_on_disk(&dir.0));
        assert_eq!(tile_bytes(&s), 10 * one);
        assert!(s.bytes <= budget);
        assert!(du(&dir.0) <= s.bytes);
        assert_eq!(s.evictions, 190);
        assert!(cache.get(&keys[199]).is_some());
    }

    #[test]
    fn tile_larger_than_budget_is_not_stored() {
        let dir = TempDir::new("oversize");
        let (budget, one) = budget_for_tiles(&dir.0, "l", 200, 2.0);
        let keys = keys_in_one_shard("l", 2);
        let cache = DiskCache::open(&dir.0, budget).unwrap();
        cache.put(&keys[0], &png(0, 200));
        cache.put(&keys[1], &png(1, one as usize * 3));
        assert_eq!(cache.get(&keys[1]), None);
        // Nor does it push out what fits.
        assert!(cache.get(&keys[0]).is_some());
        let s = cache.stats();
        assert_eq!((s.files, s.write_errors, s.evictions), (1, 0, 0));
    }
}
