//! The start-up scan: the index rebuilt from the files' metadata (sizes as allocated on
//! disk, folders included), leftover temp files and whatever is no tile where a tile belongs
//! removed. Nothing is followed through a link, and nothing but a layer's name file is read.

use super::files::{footprint, read_small, Rejection};
use super::format::{read_key, MAX_FILE_LEN};
use super::index::{Entry, Index};
use super::{remove_file_logged, KeyHash, LAYER_NAME_FILE, TILE_SUFFIX, TMP_MARKER};
use std::fs::{self, Metadata};
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// A layer's name file holds a layer name (at most 64 characters): anything longer is not
/// one of ours.
const MAX_NAME_FILE: u64 = 4096;

/// 32 bytes from 64 lowercase hex digits.
fn parse_hash(hex_text: &str) -> Option<KeyHash> {
    fn digit(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        }
    }
    let text = hex_text.as_bytes();
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
        *byte = (digit(pair[0])? << 4) | digit(pair[1])?;
    }
    Some(out)
}

fn is_lower_hex(name: &str, len: usize) -> bool {
    name.len() == len && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A tile file found at open.
struct Found {
    hash: KeyHash,
    layer: usize,
    /// Allocated bytes.
    size: u64,
    mtime: SystemTime,
}

/// A layer folder found at open.
struct FoundLayer {
    dir: String,
    /// From `layer.txt`, if present and readable.
    name: Option<String>,
    /// One tile of the layer, to recover the name from its header if `layer.txt` is gone.
    sample: Option<PathBuf>,
}

#[derive(Default)]
pub(super) struct Scan {
    layers: Vec<FoundLayer>,
    tiles: Vec<Found>,
    /// Everything else the walk met (folders, name files, the lock, strays) and what each
    /// takes on disk.
    folders: Vec<(PathBuf, u64)>,
    rejected: [u64; Rejection::ALL.len()],
    /// The file system's allocation unit, for [`footprint`].
    block: u64,
    /// Whether to delete leftover temp files and rejected entries: only a process that holds
    /// the folder's lock may, since temp files may be another process's writes in flight.
    tidy: bool,
}

impl Scan {
    fn note(&mut self, path: PathBuf, meta: &Metadata) {
        let size = footprint(meta, self.block);
        self.folders.push((path, size));
    }

    /// Counts a rejected entry and, when tidying, unlinks it (a link goes, never its
    /// target); returns whether it is gone.
    fn reject(&mut self, path: &Path, why: Rejection) -> bool {
        self.rejected[why.slot()] += 1;
        tracing::warn!(path = %path.display(), reason = why.label(), "disk tile cache: found a file that is no tile");
        self.tidy && remove_file_logged(path)
    }
}

/// Walks `<root>/<layer>/<shard>/` reading metadata only (plus each `layer.txt`) and, when
/// `tidy`, deletes leftover temp files and rejected entries. Unreadable sub-folders are
/// skipped, not fatal: a cache that starts colder beats a server that doesn't start.
pub(super) fn scan_root(root: &Path, block: u64, tidy: bool) -> io::Result<Scan> {
    let mut scan = Scan {
        block,
        tidy,
        ..Scan::default()
    };
    // The folder itself may be a link: the operator's choice, so followed.
    scan.note(root.to_path_buf(), &fs::metadata(root)?);
    let entries = fs::read_dir(root)?;
    for (entry, name, meta) in folder_entries(entries, &mut scan) {
        if is_lower_hex(&name, 16) && meta.is_dir() {
            scan.note(entry.path(), &meta);
            scan_layer(&entry.path(), &name, &mut scan);
        } else {
            stray_or_link(&entry.path(), &name, 16, &meta, &mut scan);
        }
    }
    Ok(scan)
}

/// An entry that is no folder of ours: a link named like one is rejected (a put would
/// otherwise write through it), anything else only counted.
fn stray_or_link(path: &Path, name: &str, hex_len: usize, meta: &Metadata, scan: &mut Scan) {
    if is_lower_hex(name, hex_len)
        && meta.file_type().is_symlink()
        && scan.reject(path, Rejection::Symlink)
    {
        return;
    }
    scan.note(path.to_path_buf(), meta);
}

fn scan_layer(path: &Path, dir: &str, scan: &mut Scan) {
    let name_path = path.join(LAYER_NAME_FILE);
    let name = match read_small(&name_path, MAX_NAME_FILE) {
        Some(Ok(bytes)) => String::from_utf8(bytes).ok(),
        Some(Err(why)) => {
            scan.reject(&name_path, why);
            None
        }
        None => None,
    };
    let layer = scan.layers.len();
    scan.layers.push(FoundLayer {
        dir: dir.to_string(),
        name,
        sample: None,
    });
    for (entry, name, meta) in sub_folder_entries(path, scan) {
        if is_lower_hex(&name, 2) && meta.is_dir() {
            scan.note(entry.path(), &meta);
            scan_shard(&entry.path(), &name, layer, scan);
        } else {
            stray_or_link(&entry.path(), &name, 2, &meta, scan);
        }
    }
}

/// [`folder_entries`] of a layer or shard folder; one that cannot be read is logged and
/// skipped.
fn sub_folder_entries(path: &Path, scan: &mut Scan) -> Vec<(fs::DirEntry, String, Metadata)> {
    match fs::read_dir(path) {
        Ok(entries) => folder_entries(entries, scan),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "disk tile cache: skipping folder");
            Vec::new()
        }
    }
}

/// The entries of a cache folder with their names and metadata (of the entry itself, never
/// a link's target); leftover temporary files are removed when tidying.
fn folder_entries(entries: fs::ReadDir, scan: &mut Scan) -> Vec<(fs::DirEntry, String, Metadata)> {
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        // `DirEntry::metadata` does not follow links.
        let Ok(meta) = entry.metadata() else { continue };
        if name.contains(TMP_MARKER) && scan.tidy && remove_file_logged(&entry.path()) {
            continue;
        }
        found.push((entry, name, meta));
    }
    found
}

fn scan_shard(path: &Path, shard: &str, layer: usize, scan: &mut Scan) {
    for (entry, name, meta) in sub_folder_entries(path, scan) {
        let hash = name
            .strip_suffix(TILE_SUFFIX)
            .filter(|stem| stem.starts_with(shard))
            .and_then(parse_hash);
        let Some(hash) = hash else {
            scan.note(entry.path(), &meta);
            continue;
        };
        let kind = meta.file_type();
        let refused = if kind.is_symlink() {
            Some(Rejection::Symlink)
        } else if !kind.is_file() {
            Some(Rejection::NotRegular)
        } else if meta.len() > MAX_FILE_LEN {
            Some(Rejection::TooLarge)
        } else {
            None
        };
        if let Some(why) = refused {
            if !scan.reject(&entry.path(), why) {
                scan.note(entry.path(), &meta);
            }
            continue;
        }
        let found_layer = &mut scan.layers[layer];
        if found_layer.sample.is_none() {
            found_layer.sample = Some(entry.path());
        }
        scan.tiles.push(Found {
            hash,
            layer,
            size: footprint(&meta, scan.block),
            mtime: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
        });
    }
}

/// The index for a scan: LRU order by mtime, oldest first.
pub(super) fn build_index(mut scan: Scan) -> Index {
    let mut index = Index::new();
    let ids: Vec<usize> = scan
        .layers
        .iter()
        .map(|found| {
            let (name, on_disk) = layer_name(found);
            index.layer_id(&found.dir, &name, on_disk)
        })
        .collect();
    for (path, size) in &scan.folders {
        index.set_folder_bytes(path, *size);
    }
    index.rejected = scan.rejected;
    scan.tiles.sort_by_key(|t| t.mtime);
    for tile in scan.tiles {
        let entry = Entry {
            layer: ids[tile.layer],
            size: tile.size,
        };
        index.insert(tile.hash, entry);
    }
    index
}

/// A found layer's name and whether `layer.txt` holds it. Without `layer.txt` (a crash
/// between creating the folder and writing it), a tile header tells the name; failing
/// that, a placeholder built from the folder name.
fn layer_name(found: &FoundLayer) -> (String, bool) {
    if let Some(name) = &found.name {
        return (name.clone(), true);
    }
    let from_tile = found
        .sample
        .as_deref()
        .and_then(read_key)
        .map(|k| k.layer.to_string());
    let name = from_tile.unwrap_or_else(|| format!("?{}", found.dir));
    (name, false)
}

#[cfg(test)]
mod tests {
    use super::super::tests::*;
    use super::super::*;
    use super::*;
    use std::fs::File;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn restart_keeps_entries() {
        let dir = TempDir::new("restart");
        let keys: Vec<TileKey> = (0..20)
            .map(|i| key(["a", "b"][i % 2], 1, i as u32))
            .collect();
        let before = {
            let cache = DiskCache::open(&dir.0, 1 << 20).unwrap();
            for (i, k) in keys.iter().enumerate() {
                cache.put(k, &png(i as u32, 100 + i));
            }
            cache.stats()
        };
        let cache = DiskCache::open(&dir.0, 1 << 20).unwrap();
        assert_eq!(durable(&cache.stats()), durable(&before));
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(cache.get(k), Some(png(i as u32, 100 + i)));
        }
    }
    #[test]
    fn lowered_budget_at_reopen_evicts_oldest() {
        let dir = TempDir::new("lowered");
        let block = block_size(&dir.0);
        let one = round_up(file_size(&key("l", 1, 0), 500), block);
        {
            let cache = DiskCache::open(&dir.0, 1 << 20).unwrap();
            for i in 0..10 {
                cache.put(&key("l", 1, i), &png(i, 500));
            }
        }
        // mtime is the only order a restart knows; pin it (writes within one clock tick
        // share an mtime) so tile 9 is oldest and tile 0 newest.
        let base = SystemTime::now() - Duration::from_secs(3600);
        for i in 0..10u32 {
            let k = key("l", 1, i);
            let path = tile_path(&dir.0, &layer_dir_name("l"), &k.hash_hex());
            let when = base + Duration::from_secs(u64::from(10 - i));
            File::options()
                .write(true)
                .open(&path)
                .unwrap()
                .set_modified(when)
                .unwrap();
        }
        let folders = DiskCache::open_unlocked(&dir.0)
            .unwrap()
            .stats()
            .folder_bytes;
        let budget = folders + one * 3;
        let cache = DiskCache::open(&dir.0, budget).unwrap();
        let s = cache.stats();
        assert_eq!((s.files, s.evictions), (3, 7));
        assert!(du(&dir.0) <= budget);
        for i in 0..10 {
            assert_eq!(cache.get(&key("l", 1, i)).is_some(), i < 3, "tile {i}");
        }
    }

    #[test]
    fn leftover_temp_files_are_removed_at_open() {
        let dir = TempDir::new("leftover");
        let k = key("l", 1, 1);
        let (tile, layer_folder) = {
            let cache = DiskCache::open(&dir.0, 1 << 20).unwrap();
            cache.put(&k, &png(1, 100));
            let tile = path_of(&cache, &k);
            (tile.clone(), dir.0.join(layer_dir_name("l")))
        };
        let stray_tile = tile.with_file_name(format!("{}.tile.tmp-999-7", k.hash_hex()));
        let stray_name = layer_folder.join("layer.txt.tmp-999-8");
        fs::write(&stray_tile, b"half a til").unwrap();
        fs::write(&stray_name, b"l").unwrap();

        let cache = DiskCache::open(&dir.0, 1 << 20).unwrap();
        assert!(!stray_tile.exists());
        assert!(!stray_name.exists());
        assert!(files_with(&dir.0, "")
            .iter()
            .all(|p| !p.to_string_lossy().contains(TMP_MARKER)));
        assert_eq!(cache.get(&k), Some(png(1, 100)));
        assert_eq!(cache.stats().files, 1);
    }
    /// Creates 100,000 small tiles through `put`, reopens, and prints how long the index
    /// rebuild took (reported, not asserted: timing depends on the machine). A measurement,
    /// not a check, so it is not part of the test run:
    /// `cargo test --release --lib rebuild_100k -- --ignored --nocapture`.
    #[test]
    #[ignore = "a measurement; run with --ignored"]
    fn rebuild_100k_files_timing() {
        const N: u32 = 100_000;
        let dir = TempDir::new("rebuild100k");
        let writers = 4;
        let started = Instant::now();
        {
            let cache = Arc::new(DiskCache::open(&dir.0, u64::MAX).unwrap());
            let threads: Vec<_> = (0..writers)
                .map(|t| {
                    let cache = cache.clone();
                    std::thread::spawn(move || {
                        for i in (t..N).step_by(writers as usize) {
                            let layer = ["roads", "crimes", "trees"][(i % 3) as usize];
                            cache.put(&key(layer, 1, i), &png(i, 64));
                        }
                    })
                })
                .collect();
            for t in threads {
                t.join().unwrap();
            }
            assert_eq!(cache.stats().files, u64::from(N));
        }
        let written = started.elapsed();
        let started = Instant::now();
        let cache = DiskCache::open(&dir.0, u64::MAX).unwrap();
        let rebuilt = started.elapsed();
        let s = cache.stats();
        println!(
            "disk cache: wrote {N} tiles in {written:?}; reopen rebuilt {} files ({} bytes) in {rebuilt:?}",
            s.files, s.bytes
        );
        assert_eq!(s.files, u64::from(N));
        assert_eq!(s.per_layer.len(), 3);
        assert_eq!(cache.get(&key("trees", 1, 2)), Some(png(2, 64)));
    }
}
