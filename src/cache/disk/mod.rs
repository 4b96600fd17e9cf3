//! The disk tier of the tile cache: rendered PNG tiles kept as files under `--cache-dir`,
//! bounded in bytes and evicted least-recently-used first.
//!
//! Layout: `<dir>/<layer hash, 16 hex>/<key hash, first 2 hex>/<key hash, 64 hex>.tile`,
//! plus one `layer.txt` per layer folder holding the layer's name (so per-layer stats after a
//! restart need no tile reads), and `.lock`, which keeps a second server out (`lock`). Every
//! name on disk comes from a hash, never from a request. The file format is described in the
//! `format` module, the index rebuild at start-up in `scan`.
//!
//! The budget counts what the folder takes on disk, as `du` does: each file's allocated
//! blocks (a 700-byte tile takes a 4 KiB block), and the folders and small files too.
//! Files are opened as `files` describes: a link, FIFO, device or oversized file in a
//! tile's place is dropped and counted, never read.
//!
//! All methods do blocking file I/O: callers run them on a blocking thread pool. One mutex
//! guards the in-memory index; reads and tile writes happen outside it, while the rename that
//! publishes a tile and the unlinks that evict one happen under it, so the index and the
//! files never disagree about which tiles exist.

mod files;
mod format;
mod index;
mod lock;
mod scan;

pub use files::Rejection;
pub use lock::FolderInUse;

use super::nowait::{self, Cached};
use super::{content_digest, ContentDigest};
use crate::cache::key::{hex, text_hash, TileKey};
use files::{block_size, footprint, open_regular, read_bounded, real_folder, round_up, Opened};
use format::{decode, encode, read_key, MAX_FILE_LEN, UNKNOWN_FORMAT};
use index::{Entry, Index};
use lock::{lock_folder, FolderLock};
use scan::{build_index, scan_root};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

const TILE_SUFFIX: &str = ".tile";
/// Marks an in-flight write; anything carrying it at open was left by a killed process.
const TMP_MARKER: &str = ".tmp-";
const LAYER_NAME_FILE: &str = "layer.txt";

/// SHA-256 of a key's text: the index key, and (in hex) the file name.
type KeyHash = [u8; 32];

/// A tile found in the index: its hash, its file, and its key's text (to check the file).
#[derive(Debug)]
pub struct Located {
    hash: KeyHash,
    path: PathBuf,
    text: String,
    /// The file, once opened and accepted, and its length: a read that would have waited on
    /// the device hands it to the blocking pool rather than opening it again.
    opened: Option<(File, u64)>,
}

/// A snapshot of the disk tier. Bytes are allocated bytes on disk (whole blocks), as `du`
/// counts them and as the budget bounds them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskStats {
    /// All the tier takes on disk: its tile files, plus `folder_bytes`.
    pub bytes: u64,
    /// Of `bytes`, what the folders, the layers' name files and the lock file take.
    pub folder_bytes: u64,
    /// Tile files.
    pub files: u64,
    pub budget: u64,
    /// Layer name → (tile files, their bytes), for layers holding at least one tile.
    pub per_layer: BTreeMap<String, (u64 /*files*/, u64 /*bytes*/)>,
    pub evictions: u64,
    pub write_errors: u64,
    /// Tile files that failed the format's checks (also counted in `rejected`).
    pub corrupt: u64,
    /// Files dropped rather than read, by [`Rejection`] (in the order of [`Rejection::ALL`]).
    pub rejected: [u64; Rejection::ALL.len()],
    /// Whether the last write failed (disk full or unwritable): tiles are then served from
    /// memory and renders only, until a write succeeds again.
    pub write_failing: bool,
}

/// What `/metrics` reads of the disk tier at every scrape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskTotals {
    /// Allocated bytes on disk, as [`DiskStats::bytes`].
    pub bytes: u64,
    pub evictions: u64,
    /// Files dropped rather than read, by [`Rejection`] (in the order of [`Rejection::ALL`]).
    pub rejected: [u64; Rejection::ALL.len()],
}

/// The disk tier. `Send + Sync`: share one behind an `Arc`.
pub struct DiskCache {
    dir: PathBuf,
    budget: u64,
    /// The file system's allocation unit: what a new tile is reckoned to take before it is
    /// written and its real footprint can be read.
    block: u64,
    index: Mutex<Index>,
    /// Makes temp file names unique within this process (the pid covers other processes).
    tmp_seq: AtomicU64,
    /// Held for as long as the cache is open, by [`DiskCache::open`]; none for
    /// [`DiskCache::open_unlocked`].
    _lock: Option<FolderLock>,
}

impl fmt::Debug for DiskCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DiskCache")
            .field("dir", &self.dir)
            .field("budget", &self.budget)
            .finish_non_exhaustive()
    }
}

impl DiskCache {
    /// Opens (creating) `dir` for this process alone and rebuilds the index from the files
    /// there (a restart keeps the cache warm). `budget` = max bytes on disk, counted in
    /// allocated blocks, folders included.
    ///
    /// Takes the folder's lock, held until the cache is dropped: while another process
    /// holds it, this fails with an error of kind `WouldBlock` that wraps [`FolderInUse`].
    /// Only metadata is read: the LRU order is the files' mtime, oldest first. Leftover temp
    /// files and anything that is not a tile where a tile belongs are deleted, and if the
    /// files exceed `budget` (lowered since the last run) the oldest are evicted now.
    pub fn open(dir: &Path, budget: u64) -> io::Result<DiskCache> {
        fs::create_dir_all(dir)?;
        let lock = lock_folder(dir)?;
        DiskCache::open_with(dir, budget, Some(lock))
    }

    /// Opens an existing folder to read its stats and purge tiles, whether or not another
    /// process holds it: takes no lock, deletes nothing at open (temp files may belong to
    /// a running writer) and evicts nothing (no budget).
    pub fn open_unlocked(dir: &Path) -> io::Result<DiskCache> {
        DiskCache::open_with(dir, u64::MAX, None)
    }

    fn open_with(dir: &Path, budget: u64, lock: Option<FolderLock>) -> io::Result<DiskCache> {
        let started = Instant::now();
        let block = block_size(dir);
        let tidy = lock.is_some();
        let index = build_index(scan_root(dir, block, tidy)?);
        let cache = DiskCache {
            dir: dir.to_path_buf(),
            budget,
            block,
            index: Mutex::new(index),
            tmp_seq: AtomicU64::new(0),
            _lock: lock,
        };
        let mut index = cache.lock();
        cache.evict_to(&mut index, budget, None);
        tracing::info!(
            dir = %dir.display(),
            files = index.lru.len(),
            bytes = index.used(),
            // Admin commands open the folder with no budget (u64::MAX): left out of the log.
            budget = (budget != u64::MAX).then_some(budget),
            evicted = index.evictions,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "disk tile cache opened"
        );
        drop(index);
        Ok(cache)
    }

    /// The tile, or None. A truncated or corrupt file is detected (checksum), removed,
    /// counted, never returned.
    pub fn get(&self, key: &TileKey) -> Option<Vec<u8>> {
        self.get_with_digest(key).map(|(png, _)| png)
    }

    /// The tile and its content digest (as stored by [`DiskCache::put_with_digest`]).
    pub fn get_with_digest(&self, key: &TileKey) -> Option<(Vec<u8>, ContentDigest)> {
        self.read(self.locate(key)?)
    }

    /// As [`DiskCache::get_with_digest`] when the file is wholly in the page cache, without
    /// blocking. Otherwise `Err` with the located file: finish with [`DiskCache::read`] on a
    /// blocking thread. Hot tiles are then served like nginx serves files, on the request's
    /// own thread, without a hand-off to the blocking pool.
    pub fn get_if_cached(
        &self,
        key: &TileKey,
    ) -> Result<Option<(Vec<u8>, ContentDigest)>, Located> {
        let Some(mut located) = self.locate(key) else {
            return Ok(None);
        };
        let Some((file, len)) = self.open_located(&located) else {
            return Ok(None);
        };
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        let max = usize::try_from(MAX_FILE_LEN).unwrap_or(usize::MAX);
        match nowait::read_if_cached(&file, len, max) {
            Ok(Cached::WouldBlock) => {
                located.opened = Some((file, len as u64));
                Err(located)
            }
            Ok(Cached::Bytes(bytes)) => Ok(self.check(&located, bytes)),
            Err(e) => {
                self.read_failed(&located, &e);
                Ok(None)
            }
        }
    }

    /// Reads a located tile's file (blocking), with a bounded read.
    pub fn read(&self, mut located: Located) -> Option<(Vec<u8>, ContentDigest)> {
        let (file, len) = match located.opened.take() {
            Some(opened) => opened,
            None => self.open_located(&located)?,
        };
        match read_bounded(&file, len, MAX_FILE_LEN) {
            Ok(Ok(bytes)) => self.check(&located, bytes),
            Ok(Err(why)) => {
                self.reject(&located.hash, &located.path, why, "grew past the bound");
                None
            }
            Err(e) => {
                self.read_failed(&located, &e);
                None
            }
        }
    }

    /// Opens a located tile's file if it is a regular file within [`MAX_FILE_LEN`]; anything
    /// else is dropped (and counted), a vanished file forgotten.
    fn open_located(&self, located: &Located) -> Option<(File, u64)> {
        match open_regular(&located.path, MAX_FILE_LEN) {
            Ok(Opened::Regular(file, len)) => Some((file, len)),
            Ok(Opened::Rejected(why)) => {
                self.reject(&located.hash, &located.path, why, why.label());
                None
            }
            Err(e) => {
                self.read_failed(located, &e);
                None
            }
        }
    }

    /// A failed open or read: a vanished file is forgotten, anything else logged.
    fn read_failed(&self, located: &Located, e: &io::Error) {
        if e.kind() == io::ErrorKind::NotFound {
            self.forget_missing(&located.hash, &located.path);
        } else {
            tracing::warn!(path = %located.path.display(), error = %e, "disk tile cache: read failed");
        }
    }

    /// The index entry's file, if the tile is indexed; the key's text is made and hashed
    /// once here.
    fn locate(&self, key: &TileKey) -> Option<Located> {
        let text = key.text();
        let hash = text_hash(&text);
        let mut index = self.lock();
        let &Entry { layer, .. } = index.lru.get(&hash)?;
        let path = self.tile_path(&index.layers[layer].dir, &hex(&hash));
        Some(Located {
            hash,
            path,
            text,
            opened: None,
        })
    }

    /// The tile from a read of its file (done outside the lock: a concurrent eviction
    /// unlinks, a concurrent put renames, and either way the open file is a complete one).
    fn check(&self, located: &Located, mut file: Vec<u8>) -> Option<(Vec<u8>, ContentDigest)> {
        let Located {
            hash, path, text, ..
        } = located;
        if file.len() as u64 > MAX_FILE_LEN {
            self.reject(hash, path, Rejection::TooLarge, "grew past the bound");
            return None;
        }
        match decode(&file, text) {
            Ok((payload, digest)) => {
                // The payload is cut out of the file's own buffer rather than copied into a
                // new one: a disk hit reads each byte once.
                file.truncate(payload.end);
                file.drain(..payload.start);
                Some((file, digest))
            }
            Err(why) => {
                self.reject(hash, path, Rejection::Corrupt, why);
                None
            }
        }
    }

    /// Stores atomically (unique temp file in the same folder, then rename), evicting
    /// least-recently-used tiles first so the budget holds. Never fails to the caller: a
    /// failed write (disk full, read-only) is counted and logged once until a write
    /// succeeds again. A tile larger than the whole budget is not stored.
    pub fn put(&self, key: &TileKey, png: &[u8]) {
        self.put_with_digest(key, png, &content_digest(png));
    }

    /// As [`DiskCache::put`], with the tile's content digest already computed.
    pub fn put_with_digest(&self, key: &TileKey, png: &[u8], digest: &ContentDigest) {
        let text = key.text();
        let Some(file) = encode(&text, png, digest) else {
            tracing::debug!(
                key_len = text.len(),
                "disk tile cache: key too long to store"
            );
            return;
        };
        // Reckoned in whole blocks until written, plus one block for a folder the write may
        // create or grow: what the folder can take while the write is in flight.
        let reserve = round_up(file.len() as u64, self.block) + self.block;
        let hash = text_hash(&text);
        let hash_hex = hex(&hash);
        let layer_dir = layer_dir_name(&key.layer);
        let Some((layer, write_name)) = self.reserve(reserve, &layer_dir, &key.layer) else {
            tracing::debug!(
                size = file.len(),
                budget = self.budget,
                "disk tile cache: tile exceeds budget"
            );
            return;
        };
        let final_path = self.tile_path(&layer_dir, &hash_hex);
        let name = write_name.then_some(&*key.layer);
        let written = self.write_temp(&layer_dir, name, &final_path, &file);

        let mut index = self.lock();
        index.reserved = index.reserved.saturating_sub(reserve);
        let result = written.and_then(|(tmp, size)| publish(&tmp, &final_path).map(|()| size));
        match result {
            Ok(size) => {
                if write_name {
                    index.layers[layer].name_on_disk = true;
                    self.measure(&mut index, &self.dir.join(&layer_dir).join(LAYER_NAME_FILE));
                    self.measure(&mut index, &self.dir);
                }
                if let Some(shard_dir) = final_path.parent() {
                    self.measure(&mut index, shard_dir);
                }
                self.measure(&mut index, &self.dir.join(&layer_dir));
                index.insert(hash, Entry { layer, size });
                self.evict_to(&mut index, self.budget, Some(&hash));
                let recovered = std::mem::replace(&mut index.write_failing, false);
                drop(index);
                if recovered {
                    tracing::info!("disk tile cache: writes succeed again");
                }
            }
            Err(e) => {
                index.write_errors += 1;
                let first = !std::mem::replace(&mut index.write_failing, true);
                drop(index);
                if first {
                    tracing::warn!(
                        dir = %self.dir.display(),
                        error = %e,
                        "disk tile cache: write failed; tiles are not being cached on disk \
                         (further failures are counted, not logged, until a write succeeds)"
                    );
                }
            }
        }
    }

    /// Removes every tile whose key matches; returns (files, bytes) removed.
    ///
    /// Reads the key text from each file's header (the predicate is opaque, so every tile
    /// is a candidate): an offline/admin operation, not one for the request path.
    pub fn purge(&self, matches: &dyn Fn(&TileKey) -> bool) -> (u64, u64) {
        let candidates: Vec<(KeyHash, PathBuf)> = {
            let index = self.lock();
            index
                .lru
                .iter()
                .map(|(hash, entry)| {
                    let path = self.tile_path(&index.layers[entry.layer].dir, &hex(hash));
                    (*hash, path)
                })
                .collect()
        };
        let (mut files, mut bytes) = (0, 0);
        for (hash, path) in candidates {
            // A header that can't be read or doesn't name this file's key is left for
            // `get` to find and discard as corrupt.
            let Some(key) = read_key(&path).filter(|k| k.hash() == hash) else {
                continue;
            };
            if !matches(&key) {
                continue;
            }
            let mut index = self.lock();
            if let Some(entry) = index.remove(&hash) {
                remove_file_logged(&path);
                files += 1;
                bytes += entry.size;
            }
        }
        (files, bytes)
    }

    /// The cache's folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Bytes held, evictions and files rejected so far: what `/metrics` reads at every
    /// scrape, without the per-layer table of [`DiskCache::stats`].
    pub fn totals(&self) -> DiskTotals {
        let index = self.lock();
        DiskTotals {
            bytes: index.used(),
            evictions: index.evictions,
            rejected: index.rejected,
        }
    }

    pub fn stats(&self) -> DiskStats {
        let index = self.lock();
        let mut per_layer = BTreeMap::new();
        for layer in index.layers.iter().filter(|l| l.files > 0) {
            let slot: &mut (u64, u64) = per_layer.entry(layer.name.clone()).or_default();
            slot.0 += layer.files;
            slot.1 += layer.bytes;
        }
        DiskStats {
            bytes: index.used(),
            folder_bytes: index.folder_bytes,
            files: index.lru.len() as u64,
            budget: self.budget,
            per_layer,
            evictions: index.evictions,
            write_errors: index.write_errors,
            corrupt: index.rejected[Rejection::Corrupt.slot()],
            rejected: index.rejected,
            write_failing: index.write_failing,
        }
    }

    /// A panic elsewhere while holding the lock leaves counts that are at worst slightly
    /// off, which is no reason to take the whole cache down: recover the guard.
    fn lock(&self) -> MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn tile_path(&self, layer_dir: &str, hash_hex: &str) -> PathBuf {
        tile_path(&self.dir, layer_dir, hash_hex)
    }

    fn tmp_path(&self, target: &Path) -> PathBuf {
        let seq = self.tmp_seq.fetch_add(1, Ordering::Relaxed);
        let mut name = target.file_name().unwrap_or_default().to_os_string();
        name.push(format!("{TMP_MARKER}{}-{seq}", std::process::id()));
        target.with_file_name(name)
    }

    /// Makes room for `size` bytes (a tile about to be written) and reserves them; returns
    /// the layer id and whether this put must (also) write the layer's name file. None when
    /// even an empty cache could not hold it beside its folders.
    fn reserve(&self, size: u64, layer_dir: &str, layer_name: &str) -> Option<(usize, bool)> {
        let mut index = self.lock();
        if size.saturating_add(index.folder_bytes) > self.budget {
            return None;
        }
        self.evict_to(&mut index, self.budget.saturating_sub(size), None);
        index.reserved += size;
        let layer = index.layer_id(layer_dir, layer_name, false);
        Some((layer, !index.layers[layer].name_on_disk))
    }

    /// Writes the tile to a fresh temp file beside `final_path` (creating folders, and the
    /// layer's name file when `layer_name` is given); returns the temp file's path and the
    /// bytes it takes on disk.
    fn write_temp(
        &self,
        layer_dir: &str,
        layer_name: Option<&str>,
        final_path: &Path,
        file: &[u8],
    ) -> io::Result<(PathBuf, u64)> {
        // The cache folder itself may be a link (the operator's choice); what is below it is
        // the server's own and never followed.
        fs::create_dir_all(&self.dir)?;
        let layer_path = self.dir.join(layer_dir);
        self.folder_to_write_in(&layer_path)?;
        if let Some(shard_dir) = final_path.parent().filter(|d| *d != layer_path) {
            self.folder_to_write_in(shard_dir)?;
        }
        if let Some(name) = layer_name {
            let name_path = self.dir.join(layer_dir).join(LAYER_NAME_FILE);
            let tmp = self.tmp_path(&name_path);
            write_new(&tmp, name.as_bytes(), self.block)?;
            publish(&tmp, &name_path)?;
        }
        let tmp = self.tmp_path(final_path);
        let size = write_new(&tmp, file, self.block)?;
        Ok((tmp, size))
    }

    /// Makes `path` (a layer or shard folder) a real folder to write in. A link in its place
    /// is dropped as one in a tile's place is (unlinked, its target left alone, counted as
    /// `symlink`) and a real folder made instead: nothing is ever written through a link out
    /// of the cache folder.
    fn folder_to_write_in(&self, path: &Path) -> io::Result<()> {
        let Err(why) = real_folder(path)? else {
            return Ok(());
        };
        tracing::warn!(path = %path.display(), reason = why.label(), "disk tile cache: found a link where a cache folder belongs; removed");
        remove_file_logged(path);
        self.lock().rejected[why.slot()] += 1;
        match real_folder(path)? {
            Ok(()) => Ok(()),
            Err(why) => Err(io::Error::other(format!(
                "{} is a {} again where a folder of the cache belongs",
                path.display(),
                why.label()
            ))),
        }
    }

    /// Records what the folder or small file at `path` takes on disk now (folders grow as
    /// they gain entries). Links are not followed below the cache folder, which itself may
    /// be one (the operator's choice, as the scan takes it).
    fn measure(&self, index: &mut Index, path: &Path) {
        let meta = if path == self.dir {
            fs::metadata(path)
        } else {
            fs::symlink_metadata(path)
        };
        let size = meta.map_or(0, |meta| footprint(&meta, self.block));
        index.set_folder_bytes(path, size);
    }

    /// Evicts least-recently-used tiles until the stored plus reserved bytes fit in
    /// `limit`, stopping at `keep` (the tile just stored). Unlinks under the lock so a
    /// concurrent put of the same key can't have its fresh file deleted afterwards.
    fn evict_to(&self, index: &mut Index, limit: u64, keep: Option<&KeyHash>) {
        while index.used() + index.reserved > limit {
            match index.lru.peek_lru() {
                None => return,
                Some((hash, _)) if Some(hash) == keep => return,
                Some(_) => {}
            }
            let Some((hash, entry)) = index.pop_lru() else {
                return;
            };
            remove_file_logged(&self.tile_path(&index.layers[entry.layer].dir, &hex(&hash)));
            index.evictions += 1;
        }
    }

    /// Drops a tile whose file is not one to serve: its entry, and the directory entry in
    /// its place (unlinked, so a link goes and its target stays), counted by reason.
    fn reject(&self, hash: &KeyHash, path: &Path, rejection: Rejection, why: &str) {
        let mut index = self.lock();
        index.remove(hash);
        remove_file_logged(path);
        index.rejected[rejection.slot()] += 1;
        drop(index);
        if why == UNKNOWN_FORMAT {
            // Written by another version of the server: expected after an upgrade, once
            // per old tile, so not worth a warning each.
            tracing::debug!(path = %path.display(), "disk tile cache: discarded a tile of another format");
        } else {
            tracing::warn!(path = %path.display(), reason = rejection.label(), why, "disk tile cache: discarded a file that is no tile");
        }
    }

    /// Drops the entry of a tile whose file vanished (deleted by hand), unless a
    /// concurrent put has meanwhile stored it again.
    fn forget_missing(&self, hash: &KeyHash, path: &Path) {
        let mut index = self.lock();
        if !path.exists() {
            index.remove(hash);
        }
    }
}

/// `<root>/<layer folder>/<first 2 hex>/<hash hex>.tile`: sharded so no folder holds more
/// than a few hundred files per 100,000 tiles.
fn tile_path(root: &Path, layer_dir: &str, hash_hex: &str) -> PathBuf {
    let shard = hash_hex.get(..2).unwrap_or("00");
    // Built in one buffer of the final size: every disk hit makes one, and chained joins
    // would reallocate it three times.
    let mut path = PathBuf::with_capacity(
        root.as_os_str().len() + layer_dir.len() + shard.len() + hash_hex.len() + 8,
    );
    path.push(root);
    path.push(layer_dir);
    path.push(shard);
    path.push(hash_hex);
    path.as_mut_os_string().push(TILE_SUFFIX);
    path
}

/// The folder of a layer: 16 hex of its name's SHA-256.
fn layer_dir_name(layer: &str) -> String {
    hex(&Sha256::digest(layer.as_bytes())[..8])
}

/// Creates `path` (which must not exist) holding `bytes`; returns what it takes on disk
/// (see [`footprint`]). Removes it again on failure so a full disk leaves no partial temp
/// file behind.
fn write_new(path: &Path, bytes: &[u8], block: u64) -> io::Result<u64> {
    let result = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .and_then(|mut f| {
            f.write_all(bytes)?;
            Ok(footprint(&f.metadata()?, block))
        });
    if result.is_err() {
        let _ = fs::remove_file(path);
    }
    result
}

/// Moves a finished temp file into place (atomic: readers see the old file or the new).
fn publish(tmp: &Path, target: &Path) -> io::Result<()> {
    let result = fs::rename(tmp, target);
    if result.is_err() {
        let _ = fs::remove_file(tmp);
    }
    result
}

/// Unlinks `path` (a link itself, never its target); returns whether it is gone.
fn remove_file_logged(path: &Path) -> bool {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            tracing::warn!(path = %path.display(), error = %e, "disk tile cache: remove failed");
            false
        }
        _ => true,
    }
}

/// The scratch folder of the cache's tests, for the tile cache's own tests too.
#[cfg(test)]
pub(crate) use tests::TempDir;

#[cfg(test)]
mod tests {
    use super::*;
    use format::{CHECKSUM_LEN, HEAD_LEN, PAYLOAD_LEN_BYTES};
    use std::sync::Arc;
    use std::time::SystemTime;

    /// A unique folder under the system temp dir, removed on drop.
    pub(crate) struct TempDir(pub(crate) PathBuf);

    impl TempDir {
        pub(crate) fn new(tag: &str) -> TempDir {
            static SEQ: AtomicU64 = AtomicU64::new(0);
            let nanos = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0);
            let name = format!(
                "twine-disk-{tag}-{}-{}-{nanos}",
                std::process::id(),
                SEQ.fetch_add(1, Ordering::Relaxed)
            );
            let path = std::env::temp_dir().join(name);
            fs::create_dir_all(&path).unwrap();
            TempDir(path)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    pub(super) fn key(layer: &str, version: u64, x: u32) -> TileKey {
        TileKey {
            layer: layer.into(),
            version,
            style: "density;radius=12;palette=fire".into(),
            ratio: 1,
            z: 10,
            x,
            y: 7,
        }
    }

    pub(super) fn png(seed: u32, len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u32 ^ seed.wrapping_mul(31)) as u8)
            .collect()
    }

    /// Every file under `dir` ending in `suffix` (recursive).
    pub(super) fn files_with(dir: &Path, suffix: &str) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in fs::read_dir(&d).unwrap().flatten() {
                let p = e.path();
                if e.file_type().unwrap().is_dir() {
                    stack.push(p);
                } else if p.to_string_lossy().ends_with(suffix) {
                    out.push(p);
                }
            }
        }
        out
    }

    /// What the tile files under `dir` take on disk, as the cache reckons it.
    pub(super) fn tile_bytes_on_disk(dir: &Path) -> u64 {
        let block = block_size(dir);
        files_with(dir, TILE_SUFFIX)
            .iter()
            .map(|p| footprint(&fs::symlink_metadata(p).unwrap(), block))
            .sum()
    }

    /// What `dir` and everything under it take on disk (allocated blocks, links not
    /// followed): what `du -s --block-size=1` reports.
    pub(super) fn du(dir: &Path) -> u64 {
        let mut total = 0;
        let mut stack = vec![dir.to_path_buf()];
        while let Some(path) = stack.pop() {
            let meta = fs::symlink_metadata(&path).unwrap();
            total += std::os::unix::fs::MetadataExt::blocks(&meta) * 512;
            if meta.is_dir() {
                stack.extend(fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            }
        }
        total
    }

    /// The tiles' share of a snapshot: all it holds but the folders.
    pub(super) fn tile_bytes(s: &DiskStats) -> u64 {
        s.bytes - s.folder_bytes
    }

    /// What a tile file of `payload_len` bytes takes on disk: whole blocks.
    pub(super) fn on_disk(cache: &DiskCache, k: &TileKey, payload_len: usize) -> u64 {
        round_up(file_size(k, payload_len), cache.block)
    }

    /// `n` keys of `layer` whose files share one shard folder, so that the folders stop
    /// growing after the first tile and budgets can be counted in tiles.
    pub(super) fn keys_in_one_shard(layer: &str, n: usize) -> Vec<TileKey> {
        (0..)
            .map(|x| key(layer, 1, x))
            .filter(|k| k.hash_hex().starts_with("00"))
            .take(n)
            .collect()
    }

    /// A budget for `tiles` tiles of `payload_len` bytes of `keys_in_one_shard(layer, _)`
    /// beside the folders they need, and one such tile's footprint. Measured by storing
    /// one in `dir` and purging it again (its folders stay, as they would).
    pub(super) fn budget_for_tiles(
        dir: &Path,
        layer: &str,
        payload_len: usize,
        tiles: f64,
    ) -> (u64, u64) {
        let cache = DiskCache::open(dir, u64::MAX).unwrap();
        let k = keys_in_one_shard(layer, 1).remove(0);
        cache.put(&k, &png(0, payload_len));
        let s = cache.stats();
        let one = tile_bytes(&s);
        assert_eq!(one, on_disk(&cache, &k, payload_len));
        assert_eq!(cache.purge(&|_| true).0, 1);
        ((s.folder_bytes as f64 + one as f64 * tiles) as u64, one)
    }

    pub(super) fn path_of(cache: &DiskCache, k: &TileKey) -> PathBuf {
        cache.tile_path(&layer_dir_name(&k.layer), &k.hash_hex())
    }

    pub(super) fn file_size(k: &TileKey, payload_len: usize) -> u64 {
        (HEAD_LEN + k.text().len() + PAYLOAD_LEN_BYTES + payload_len + CHECKSUM_LEN) as u64
    }

    /// Stats that survive a restart (the counters are per process).
    pub(super) fn durable(s: &DiskStats) -> (u64, u64, u64, BTreeMap<String, (u64, u64)>) {
        (s.bytes, s.files, s.budget, s.per_layer.clone())
    }

    /// The layout of existing cache folders: a change would leave them cold after an upgrade.
    #[test]
    fn tile_files_live_at_root_layer_shard_hash() {
        let hash = "ff00aa".repeat(10) + "abcd";
        assert_eq!(
            tile_path(Path::new("/var/cache/twine"), "0123456789abcdef", &hash),
            Path::new(&format!("/var/cache/twine/0123456789abcdef/ff/{hash}.tile"))
        );
    }

    #[test]
    fn disk_cache_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<DiskCache>();
    }

    #[test]
    fn round_trip() {
        let dir = TempDir::new("roundtrip");
        let cache = DiskCache::open(&dir.0, 1 << 20).unwrap();
        let k = key("crimes", 1, 3);
        assert_eq!(cache.get(&k), None);
        cache.put(&k, &png(1, 500));
        assert_eq!(cache.get(&k), Some(png(1, 500)));
        // Any other field differing is another tile.
        assert_eq!(cache.get(&key("crimes", 2, 3)), None);
        assert_eq!(
            cache.get(&TileKey {
                ratio: 2,
                ..k.clone()
            }),
            None
        );
        // Overwriting replaces, and the accounting follows.
        cache.put(&k, &png(2, 300));
        assert_eq!(cache.get(&k), Some(png(2, 300)));
        let s = cache.stats();
        assert_eq!((s.files, tile_bytes(&s)), (1, on_disk(&cache, &k, 300)));
        assert_eq!(tile_bytes(&s), tile_bytes_on_disk(&dir.0));
        assert_eq!(s.bytes, du(&dir.0));
        // The path is made of hashes only.
        let rel = path_of(&cache, &k);
        let rel = rel
            .strip_prefix(&dir.0)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        assert!(!rel.contains("crimes"), "{rel}");
    }

    #[test]
    fn hits_come_with_the_stored_digest_with_or_without_blocking() {
        let dir = TempDir::new("digest");
        let cache = DiskCache::open(&dir.0, 1 << 20).unwrap();
        let k = key("l", 1, 7);
        let tile = png(3, 900);
        let digest = content_digest(&tile);
        cache.put_with_digest(&k, &tile, &digest);
        assert_eq!(cache.get_with_digest(&k), Some((tile.clone(), digest)));
        // Just written, so in the page cache: read without blocking (Linux).
        match cache.get_if_cached(&k) {
            Ok(found) => assert_eq!(found, Some((tile, digest))),
            Err(_) => {
                #[cfg(target_os = "linux")]
                panic!("a tile just written was not read from the page cache");
            }
        }
        assert!(matches!(cache.get_if_cached(&key("l", 1, 8)), Ok(None)));
    }

    #[test]
    fn file_deleted_by_hand_is_a_miss() {
        let dir = TempDir::new("vanished");
        let cache = DiskCache::open(&dir.0, 1 << 20).unwrap();
        let k = key("l", 1, 1);
        cache.put(&k, &png(1, 100));
        fs::remove_file(path_of(&cache, &k)).unwrap();
        assert_eq!(cache.get(&k), None);
        let s = cache.stats();
        assert_eq!((s.files, tile_bytes(&s), s.corrupt), (0, 0, 0));
    }

    /// A tracing writer that appends into a shared buffer.
    #[derive(Clone)]
    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl Write for Capture {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn failed_writes_are_counted_and_logged_once() {
        // Tests run as root, where a 0555 folder doesn't stop writes: instead put a
        // regular file where the layer's folder must go, so creating it fails.
        let dir = TempDir::new("readonly");
        let cache = DiskCache::open(&dir.0, 1 << 20).unwrap();
        let blocker = dir.0.join(layer_dir_name("blocked"));
        fs::write(&blocker, b"not a folder").unwrap();

        let log = Arc::new(Mutex::new(Vec::new()));
        let writer = Capture(log.clone());
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(move || writer.clone())
            .finish();
        let warnings = || {
            let text = String::from_utf8(log.lock().unwrap().clone()).unwrap();
            text.matches("disk tile cache: write failed").count()
        };
        tracing::subscriber::with_default(subscriber, || {
            for i in 0..5 {
                cache.put(&key("blocked", 1, i), &png(i, 100));
                assert_eq!(cache.get(&key("blocked", 1, i)), None);
            }
            assert_eq!(cache.stats().write_errors, 5);
            assert!(cache.stats().write_failing);
            assert_eq!(warnings(), 1);

            // A success re-arms the warning.
            cache.put(&key("fine", 1, 0), &png(0, 100));
            assert!(cache.get(&key("fine", 1, 0)).is_some());
            assert!(!cache.stats().write_failing);
            cache.put(&key("blocked", 1, 9), &png(9, 100));
            assert_eq!(warnings(), 2);
        });
        let s = cache.stats();
        assert_eq!(
            (s.write_errors, s.files, tile_bytes(&s)),
            (6, 1, on_disk(&cache, &key("fine", 1, 0), 100))
        );
        assert!(files_with(&dir.0, "")
            .iter()
            .all(|p| !p.to_string_lossy().contains(TMP_MARKER)));
    }

    #[test]
    fn purge_by_predicate() {
        let dir = TempDir::new("purge");
        let cache = DiskCache::open(&dir.0, 1 << 20).unwrap();
        for i in 0..10 {
            cache.put(&key("a", 1, i), &png(i, 100));
            cache.put(&key("a", 2, i), &png(i, 100));
            cache.put(&key("b", 1, i), &png(i, 100));
        }
        let one = on_disk(&cache, &key("a", 1, 0), 100);
        let (files, bytes) = cache.purge(&|k| &*k.layer == "a" && k.version == 1);
        assert_eq!((files, bytes), (10, 10 * one));
        for i in 0..10 {
            assert_eq!(cache.get(&key("a", 1, i)), None);
            assert!(cache.get(&key("a", 2, i)).is_some());
            assert!(cache.get(&key("b", 1, i)).is_some());
        }
        let s = cache.stats();
        assert_eq!((s.files, tile_bytes(&s)), (20, tile_bytes_on_disk(&dir.0)));
        assert_eq!(s.corrupt, 0);
        assert_eq!(cache.purge(&|_| false), (0, 0));
        assert_eq!(cache.purge(&|_| true).0, 20);
        assert_eq!(tile_bytes_on_disk(&dir.0), 0);
    }

    #[test]
    fn per_layer_stats() {
        let dir = TempDir::new("layers");
        let expected = {
            let cache = DiskCache::open(&dir.0, 1 << 20).unwrap();
            for i in 0..3 {
                cache.put(&key("alpha", 1, i), &png(i, 100));
            }
            for i in 0..5 {
                cache.put(&key("beta\nodd/../name", 1, i), &png(i, 200));
            }
            let s = cache.stats();
            let alpha = (3, 3 * on_disk(&cache, &key("alpha", 1, 0), 100));
            let beta = (5, 5 * on_disk(&cache, &key("beta\nodd/../name", 1, 0), 200));
            assert_eq!(s.per_layer.get("alpha"), Some(&alpha));
            assert_eq!(s.per_layer.get("beta\nodd/../name"), Some(&beta));
            assert_eq!(s.per_layer.len(), 2);
            assert_eq!(tile_bytes(&s), alpha.1 + beta.1);
            s.per_layer
        };
        // After a restart the names come from layer.txt; without it, from a tile header.
        assert_eq!(
            DiskCache::open(&dir.0, 1 << 20).unwrap().stats().per_layer,
            expected
        );
        fs::remove_file(dir.0.join(layer_dir_name("alpha")).join(LAYER_NAME_FILE)).unwrap();
        let cache = DiskCache::open(&dir.0, 1 << 20).unwrap();
        assert_eq!(cache.stats().per_layer, expected);
        // The next put there writes layer.txt again.
        cache.put(&key("alpha", 1, 50), &png(50, 10));
        let name = dir.0.join(layer_dir_name("alpha")).join(LAYER_NAME_FILE);
        assert_eq!(fs::read_to_string(name).unwrap(), "alpha");
    }

    #[test]
    fn concurrent_gets_and_puts_keep_the_books() {
        let dir = TempDir::new("concurrent");
        // Folders for the 60 keys' shards, then 25 tiles.
        let block = block_size(&dir.0);
        let folders = 4 * block + 60 * block;
        let budget = folders + 25 * round_up(file_size(&key("l", 1, 0), 300), block);
        let cache = Arc::new(DiskCache::open(&dir.0, budget).unwrap());
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let cache = cache.clone();
                std::thread::spawn(move || {
                    for i in 0..300u32 {
                        // Overlapping keys: threads race to put the same tiles.
                        let k = key("l", 1, (i * 7 + t) % 60);
                        if let Some(bytes) = cache.get(&k) {
                            assert_eq!(bytes, png(k.x, 300));
                        }
                        cache.put(&k, &png(k.x, 300));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let s = cache.stats();
        assert_eq!(tile_bytes(&s), tile_bytes_on_disk(&dir.0));
        assert_eq!(s.files as usize, files_with(&dir.0, TILE_SUFFIX).len());
        assert!(s.bytes <= budget);
        assert!(du(&dir.0) <= s.bytes, "{} > {}", du(&dir.0), s.bytes);
        assert_eq!((s.write_errors, s.corrupt), (0, 0));
        assert!(files_with(&dir.0, "")
            .iter()
            .all(|p| !p.to_string_lossy().contains(TMP_MARKER)));
    }
}
