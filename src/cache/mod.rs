//! The tile cache: a memory LRU, then a disk LRU, each bounded in bytes, in front of the
//! renderer; concurrent requests for the same missing tile render it once.

pub mod disk;
pub mod key;
pub mod memory;
mod nowait;

use crate::metrics::Metrics;
use bytes::Bytes;
use disk::DiskCache;
use key::TileKey;
use memory::MemoryCache;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use tokio::sync::Semaphore;

/// Most disk writes behind responses in flight at once; a rendered tile beyond it is not
/// written (and counted in `twine_cache_writes_skipped_total{tier="disk"}`). A healthy disk
/// writes a tile in about a millisecond, so only a stalled one (an NFS hang, a dying device)
/// gets near it. Without a bound each miss on a stalled disk would queue one more write on
/// the blocking pool, holding its PNG (up to about 1 MiB) and, once the pool's threads are
/// all stuck in writes, delaying every render queued behind them. 64 writes hold at most
/// 64 MiB and leave the rest of the pool (512 threads) to rendering.
pub const MAX_WRITES_BEHIND: usize = 64;

/// The first 16 bytes of a tile's SHA-256: its strong ETag, kept beside it on disk so a
/// disk hit needs no second pass over the PNG.
pub type ContentDigest = [u8; 16];

pub fn content_digest(png: &[u8]) -> ContentDigest {
    let mut digest = [0u8; 16];
    digest.copy_from_slice(&Sha256::digest(png)[..16]);
    digest
}

/// The strong entity tag of content with `digest`: its quoted lowercase hex (ASCII, so any
/// transport can send it as a header as it is).
pub fn strong_etag(digest: &ContentDigest) -> Bytes {
    Bytes::from(format!("\"{}\"", key::hex(digest)))
}

/// A rendered tile, the digest of its content, and the strong ETag made from it.
#[derive(Debug, Clone, PartialEq)]
pub struct CachedTile {
    pub png: Bytes,
    pub digest: ContentDigest,
    /// Formatted once per tile rather than per response, and shared (a clone is a reference
    /// count): memory hits send it without formatting or allocating.
    etag: Bytes,
}

impl CachedTile {
    pub fn new(png: Bytes) -> CachedTile {
        let digest = content_digest(&png);
        CachedTile::with_digest(png, digest)
    }

    /// A tile whose content digest is already known (stored with it on disk).
    pub fn with_digest(png: Bytes, digest: ContentDigest) -> CachedTile {
        let etag = strong_etag(&digest);
        CachedTile { png, digest, etag }
    }

    /// The strong ETag: the quoted hex of the content digest.
    pub fn etag(&self) -> &Bytes {
        &self.etag
    }
}

/// Where a tile came from (`X-Cache`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Memory,
    Disk,
    Rendered,
}

impl Origin {
    pub fn header(self) -> &'static str {
        match self {
            Origin::Memory => "hit-memory",
            Origin::Disk => "hit-disk",
            Origin::Rendered => "miss",
        }
    }
}

/// Why the cache could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("no disk cache tier: give a cache folder and a disk budget above 0")]
    NoDiskTier,
    /// A blocking disk task ended abnormally (it panicked).
    #[error("{0}")]
    Task(String),
}

type Flight = Arc<tokio::sync::OnceCell<(CachedTile, Origin)>>;

/// Both tiers (either may be off) and the renders in flight.
pub struct TileCache {
    pub memory: Option<MemoryCache>,
    pub disk: Option<Arc<DiskCache>>,
    inflight: Mutex<HashMap<TileKey, Flight>>,
    /// Permits for disk writes behind responses, [`MAX_WRITES_BEHIND`] in all: a write holds
    /// one until it ends (or panics), and a tile finding none is not written.
    writes_behind: Arc<Semaphore>,
}

impl TileCache {
    pub fn new(memory: Option<MemoryCache>, disk: Option<Arc<DiskCache>>) -> TileCache {
        TileCache {
            memory,
            disk,
            inflight: Mutex::new(HashMap::new()),
            writes_behind: Arc::new(Semaphore::new(MAX_WRITES_BEHIND)),
        }
    }

    /// The tile for `key` when the memory tier holds it (counted as a memory hit).
    pub fn memory_hit(&self, key: &TileKey, metrics: &Metrics) -> Option<CachedTile> {
        let tile = self.memory.as_ref()?.get(key)?;
        metrics.hits_memory.inc();
        Some(tile)
    }

    /// The tile for `key` once [`memory_hit`](Self::memory_hit) has found nothing: from
    /// disk, else rendered by `render`, once for all concurrent requests of the key, and
    /// stored in both tiers. A failed render is the caller's error `E`, given to every
    /// request that waited for it.
    pub async fn get_missing<F, Fut, E>(
        &self,
        key: TileKey,
        metrics: &Metrics,
        render: F,
    ) -> Result<(CachedTile, Origin), E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Bytes, E>>,
    {
        let flight = self.flights().entry(key.clone()).or_default().clone();
        let result = flight
            .get_or_try_init(|| self.fill(&key, metrics, render))
            .await
            .cloned();
        // The first to finish retires the flight; later requests find the memory tier.
        {
            let mut map = self.flights();
            if map.get(&key).is_some_and(|f| Arc::ptr_eq(f, &flight)) {
                map.remove(&key);
            }
        }
        result
    }

    /// The renders in flight. Each use is one insert or remove, so a poisoned lock still
    /// holds a valid map.
    fn flights(&self) -> std::sync::MutexGuard<'_, HashMap<TileKey, Flight>> {
        self.inflight.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn fill<F, Fut, E>(
        &self,
        key: &TileKey,
        metrics: &Metrics,
        render: F,
    ) -> Result<(CachedTile, Origin), E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Bytes, E>>,
    {
        let (tile, origin) = match self.read_disk(key).await {
            Some(tile) => {
                metrics.hits_disk.inc();
                (tile, Origin::Disk)
            }
            None => {
                metrics.misses.inc();
                let tile = CachedTile::new(render().await?);
                if let Some(disk) = &self.disk {
                    // Written behind the response: a slow or full disk never delays the
                    // client, and a stalled one holds at most MAX_WRITES_BEHIND writes.
                    match self.writes_behind.clone().try_acquire_owned().ok() {
                        Some(slot) => {
                            let (disk, k, png, digest) =
                                (disk.clone(), key.clone(), tile.png.clone(), tile.digest);
                            tokio::task::spawn_blocking(move || {
                                let _slot = slot;
                                disk.put_with_digest(&k, &png, &digest);
                            });
                        }
                        None => metrics.disk_writes_skipped.inc(),
                    }
                }
                (tile, Origin::Rendered)
            }
        };
        if let Some(memory) = &self.memory {
            memory.put(key.clone(), tile.clone());
        }
        Ok((tile, origin))
    }

    /// The tile from the disk tier: read on this thread when its file is in the page cache,
    /// else on the blocking pool.
    async fn read_disk(&self, key: &TileKey) -> Option<CachedTile> {
        let disk = self.disk.as_ref()?;
        let (png, digest) = match disk.get_if_cached(key) {
            Ok(found) => found?,
            Err(located) => {
                let disk = disk.clone();
                tokio::task::spawn_blocking(move || disk.read(located))
                    .await
                    .ok()
                    .flatten()?
            }
        };
        Some(CachedTile::with_digest(Bytes::from(png), digest))
    }

    /// Whether the disk tier holds a whole tile for `key` (a damaged file fails its checksum
    /// and is dropped, so it counts as absent). False without a disk tier.
    pub async fn on_disk(&self, key: &TileKey) -> Result<bool, CacheError> {
        let Some(disk) = self.disk.clone() else {
            return Ok(false);
        };
        let key = key.clone();
        tokio::task::spawn_blocking(move || disk.get_with_digest(&key).is_some())
            .await
            .map_err(|e| CacheError::Task(format!("disk read task failed: {e}")))
    }

    /// Stores `tile` in the disk tier and returns once it is written (or the write failed,
    /// which the disk tier counts): for filling the disk ahead of requests. The memory tier
    /// is left alone.
    pub async fn store_on_disk(&self, key: &TileKey, tile: &CachedTile) -> Result<(), CacheError> {
        let disk = self.disk.clone().ok_or(CacheError::NoDiskTier)?;
        let (key, png, digest) = (key.clone(), tile.png.clone(), tile.digest);
        tokio::task::spawn_blocking(move || disk.put_with_digest(&key, &png, &digest))
            .await
            .map_err(|e| CacheError::Task(format!("disk write task failed: {e}")))
    }

    /// Removes matching tiles from both tiers; returns (memory tiles, disk files, disk bytes).
    pub fn purge(&self, matches: &dyn Fn(&TileKey) -> bool) -> (u64, u64, u64) {
        let from_memory = self.memory.as_ref().map_or(0, |m| m.purge(matches));
        let (files, bytes) = self.disk.as_ref().map_or((0, 0), |d| d.purge(matches));
        (from_memory, files, bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// What the tile route does: the memory tier, else the disk or a render.
    async fn get_or_render<F, Fut>(
        cache: &TileCache,
        key: TileKey,
        metrics: &Metrics,
        render: F,
    ) -> Result<(CachedTile, Origin), String>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Bytes, String>>,
    {
        match cache.memory_hit(&key, metrics) {
            Some(tile) => Ok((tile, Origin::Memory)),
            None => cache.get_missing(key, metrics, render).await,
        }
    }

    fn key() -> TileKey {
        TileKey {
            layer: "l".into(),
            version: 1,
            style: "s".into(),
            ratio: 1,
            z: 3,
            x: 1,
            y: 2,
        }
    }

    #[tokio::test]
    async fn concurrent_misses_render_once() {
        let cache = Arc::new(TileCache::new(Some(MemoryCache::new(1 << 20)), None));
        let metrics = Arc::new(Metrics::default());
        let renders = Arc::new(AtomicU64::new(0));
        let mut handles = Vec::new();
        for _ in 0..64 {
            let (cache, metrics, renders) = (cache.clone(), metrics.clone(), renders.clone());
            handles.push(tokio::spawn(async move {
                get_or_render(&cache, key(), &metrics, || async move {
                    renders.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    Ok(Bytes::from_static(b"png"))
                })
                .await
            }));
        }
        for h in handles {
            let (tile, _) = h.await.expect("join").expect("tile");
            assert_eq!(tile.png, Bytes::from_static(b"png"));
        }
        assert_eq!(renders.load(Ordering::SeqCst), 1);
        let (_, origin) = get_or_render(&cache, key(), &metrics, || async {
            Ok(Bytes::from_static(b"other"))
        })
        .await
        .expect("tile");
        assert_eq!(origin, Origin::Memory);
    }

    /// A stalled disk: the blocking pool's only thread is stuck (as in a write to a hung
    /// mount), so the writes behind responses queue up. Past [`MAX_WRITES_BEHIND`] they are
    /// skipped and counted, while every miss is still answered; once the disk moves again the
    /// queued writes land and later tiles are written again.
    #[test]
    fn writes_behind_a_stalled_disk_are_bounded_and_counted() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .max_blocking_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let dir = disk::TempDir::new("stalled");
        let disk = Arc::new(DiskCache::open(&dir.0, 1 << 30).expect("open"));
        let cache = TileCache::new(None, Some(disk.clone()));
        let metrics = Metrics::default();
        let miss = |x: u32| {
            let key = TileKey { x, ..key() };
            let cache = &cache;
            let metrics = &metrics;
            async move {
                let (tile, origin) = cache
                    .get_missing(key, metrics, || async move {
                        Ok::<_, String>(Bytes::from(format!("png {x}")))
                    })
                    .await
                    .expect("answered");
                assert_eq!(origin, Origin::Rendered);
                assert_eq!(tile.png, Bytes::from(format!("png {x}")));
            }
        };
        let skipped_beyond_the_bound = 10;
        runtime.block_on(async {
            let (release, stalled) = std::sync::mpsc::channel::<()>();
            let stall = tokio::task::spawn_blocking(move || {
                let _ = stalled.recv();
            });
            for x in 0..(MAX_WRITES_BEHIND + skipped_beyond_the_bound) as u32 {
                miss(x).await;
            }
            assert_eq!(
                metrics.disk_writes_skipped.get(),
                skipped_beyond_the_bound as u64
            );
            assert_eq!(disk.stats().files, 0, "no write has run yet");

            release.send(()).expect("release the disk");
            stall.await.expect("stall");
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
            while cache.writes_behind.available_permits() < MAX_WRITES_BEHIND {
                assert!(std::time::Instant::now() < deadline, "writes never ended");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            assert_eq!(disk.stats().files, MAX_WRITES_BEHIND as u64);
            miss(1000).await;
            while disk.stats().files == MAX_WRITES_BEHIND as u64 {
                assert!(
                    std::time::Instant::now() < deadline,
                    "the next write never ran"
                );
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            assert_eq!(
                metrics.disk_writes_skipped.get(),
                skipped_beyond_the_bound as u64
            );
        });
    }

    #[test]
    fn etags_are_strong_and_follow_the_content() {
        let a = CachedTile::new(Bytes::from_static(b"a"));
        let text = std::str::from_utf8(a.etag()).expect("ascii");
        assert!(text.starts_with('"') && text.ends_with('"') && text.len() == 34);
        assert_eq!(text[1..33], key::hex(&content_digest(b"a")));
        assert_ne!(a.etag(), CachedTile::new(Bytes::from_static(b"b")).etag());
        assert_eq!(a.etag(), CachedTile::new(Bytes::from_static(b"a")).etag());
    }
}
