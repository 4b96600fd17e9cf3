//! Files of the cache folder taken with suspicion: opened without following a link or
//! waiting on a FIFO or device, accepted only as regular files within a size bound and read
//! with a bounded read; and the space a file or folder takes on disk.

use std::fs::{File, Metadata, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

/// Why a file found in the cache folder was dropped rather than read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// A symbolic link where a tile, a layer's name file, or a layer or shard folder belongs.
    Symlink,
    /// A FIFO, socket, device or folder where a file belongs.
    NotRegular,
    /// Larger than any file the server writes there.
    TooLarge,
    /// A regular file that fails the format's checks (truncated, damaged, another key, or
    /// another format version).
    Corrupt,
}

impl Rejection {
    pub const ALL: [Rejection; 4] = [
        Rejection::Symlink,
        Rejection::NotRegular,
        Rejection::TooLarge,
        Rejection::Corrupt,
    ];

    /// The `reason` label of `twine_cache_rejected_files_total`.
    pub fn label(self) -> &'static str {
        match self {
            Rejection::Symlink => "symlink",
            Rejection::NotRegular => "not_regular",
            Rejection::TooLarge => "too_large",
            Rejection::Corrupt => "corrupt",
        }
    }

    /// Its place in [`Rejection::ALL`] (and in per-reason counts kept in that order).
    pub(super) fn slot(self) -> usize {
        self as usize
    }
}

/// What opening a file of the cache folder found.
#[derive(Debug)]
pub(super) enum Opened {
    /// A regular file no larger than the bound, open for reading, and its length.
    Regular(File, u64),
    Rejected(Rejection),
}

/// Opens `path` for reading as a regular file of at most `max_len` bytes.
///
/// `O_NOFOLLOW` makes a link in the file's place fail to open (ELOOP) rather than lead to
/// `/dev/zero` or a huge file elsewhere; `O_NONBLOCK` makes a FIFO open at once instead of
/// waiting for a writer that never comes. The type and size are then checked on the opened
/// descriptor (`fstat`), so a swap after the check cannot slip something else in. Regular
/// files ignore `O_NONBLOCK`, so reads of an accepted file behave as always.
pub(super) fn open_regular(path: &Path, max_len: u64) -> io::Result<Opened> {
    let opened = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path);
    let file = match opened {
        Ok(file) => file,
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Ok(Opened::Rejected(Rejection::Symlink))
        }
        // A socket cannot be opened at all.
        Err(e) if e.raw_os_error() == Some(libc::ENXIO) => {
            return Ok(Opened::Rejected(Rejection::NotRegular))
        }
        Err(e) => return Err(e),
    };
    let meta = file.metadata()?;
    if !meta.file_type().is_file() {
        return Ok(Opened::Rejected(Rejection::NotRegular));
    }
    if meta.len() > max_len {
        return Ok(Opened::Rejected(Rejection::TooLarge));
    }
    Ok(Opened::Regular(file, meta.len()))
}

/// Makes `path`, a folder below the cache folder (a layer's or a shard's), exist as a real
/// folder: created when missing. A link in its place (to anywhere else) is refused, never
/// followed: a tile written through it would land outside the cache folder. Anything else
/// that is no folder fails the write, as an unwritable folder does. The folder's own parent
/// must already be a real one.
pub(super) fn real_folder(path: &Path) -> io::Result<Result<(), Rejection>> {
    let found = match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => match std::fs::create_dir(path) {
            Ok(()) => return Ok(Ok(())),
            // Another writer made it (or something else) meanwhile: look again.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => std::fs::symlink_metadata(path),
            Err(e) => return Err(e),
        },
        found => found,
    }?;
    let kind = found.file_type();
    if kind.is_symlink() {
        Ok(Err(Rejection::Symlink))
    } else if kind.is_dir() {
        Ok(Ok(()))
    } else {
        Err(io::Error::other(format!(
            "{} is not a folder",
            path.display()
        )))
    }
}

/// Reads an opened file to its end, never more than `max_len` bytes: a file that grew past
/// the bound after it was opened is rejected, not read on. `len` is its size at open.
pub(super) fn read_bounded(
    mut file: &File,
    len: u64,
    max_len: u64,
) -> io::Result<Result<Vec<u8>, Rejection>> {
    let capacity = usize::try_from(len.min(max_len).saturating_add(1)).unwrap_or(usize::MAX);
    let mut bytes = Vec::with_capacity(capacity);
    Read::by_ref(&mut file)
        .take(max_len.saturating_add(1))
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max_len {
        return Ok(Err(Rejection::TooLarge));
    }
    Ok(Ok(bytes))
}

/// A small file's whole content (a layer's name file), or why it was refused: `None` when
/// it does not exist or cannot be read.
pub(super) fn read_small(path: &Path, max_len: u64) -> Option<Result<Vec<u8>, Rejection>> {
    match open_regular(path, max_len).ok()? {
        Opened::Regular(file, len) => read_bounded(&file, len, max_len).ok(),
        Opened::Rejected(why) => Some(Err(why)),
    }
}

/// The bytes a file or folder takes on disk: its allocated blocks, what `du` adds up. A
/// small file takes a whole block. Never less than its length rounded up to `block` (the
/// file system's allocation unit), for file systems that allocate only later and report
/// fewer blocks right after a write.
pub(super) fn footprint(meta: &Metadata, block: u64) -> u64 {
    let allocated = meta.blocks().saturating_mul(512);
    allocated.max(round_up(meta.len(), block))
}

/// `len` rounded up to a multiple of `block` (itself when `block` is 0).
pub(super) fn round_up(len: u64, block: u64) -> u64 {
    if block == 0 {
        return len;
    }
    len.div_ceil(block).saturating_mul(block)
}

/// The allocation unit of the file system holding `dir` (`statvfs`'s fundamental block
/// size), or 4 KiB, the common one, when it cannot be asked.
pub(super) fn block_size(dir: &Path) -> u64 {
    const COMMON: u64 = 4096;
    use std::os::unix::ffi::OsStrExt;
    let Ok(path) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return COMMON;
    };
    let mut stats = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `path` is a NUL-terminated string that outlives the call, and `stats` points
    // to writable memory of the type statvfs fills; it is read only when the call succeeds.
    let done = unsafe { libc::statvfs(path.as_ptr(), stats.as_mut_ptr()) };
    if done != 0 {
        return COMMON;
    }
    // SAFETY: statvfs returned 0, so it filled `stats`.
    let stats = unsafe { stats.assume_init() };
    // `c_ulong` is u64 here and u32 on 32-bit targets: `from` widens either way.
    #[allow(clippy::useless_conversion)]
    let unit = u64::from(stats.f_frsize);
    match unit {
        0 => COMMON,
        size => size.min(1 << 20),
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::TempDir;
    use super::*;
    use std::fs;

    #[test]
    fn links_fifos_folders_and_big_files_are_refused_without_waiting() {
        let dir = TempDir::new("files");
        let regular = dir.0.join("regular");
        fs::write(&regular, b"twelve bytes").unwrap();
        let link = dir.0.join("link");
        std::os::unix::fs::symlink(&regular, &link).unwrap();
        let fifo = dir.0.join("fifo");
        let c_fifo = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c_fifo.as_ptr(), 0o600) }, 0);

        let verdict = |path: &Path, max| match open_regular(path, max).unwrap() {
            Opened::Regular(_, len) => Ok(len),
            Opened::Rejected(why) => Err(why),
        };
        assert_eq!(verdict(&regular, 12), Ok(12));
        assert_eq!(verdict(&regular, 11), Err(Rejection::TooLarge));
        assert_eq!(verdict(&link, 100), Err(Rejection::Symlink));
        assert_eq!(verdict(&fifo, 100), Err(Rejection::NotRegular));
        assert_eq!(verdict(&dir.0, 100), Err(Rejection::NotRegular));
        assert_eq!(
            open_regular(&dir.0.join("missing"), 100)
                .err()
                .map(|e| e.kind()),
            Some(io::ErrorKind::NotFound)
        );
        assert_eq!(read_small(&link, 100), Some(Err(Rejection::Symlink)));
        assert_eq!(
            read_small(&regular, 100),
            Some(Ok(b"twelve bytes".to_vec()))
        );
    }

    #[test]
    fn a_read_stops_at_the_bound() {
        let dir = TempDir::new("bounded");
        let path = dir.0.join("grown");
        fs::write(&path, vec![7u8; 1000]).unwrap();
        let file = File::open(&path).unwrap();
        // Opened when it was 10 bytes long; it has grown since.
        assert_eq!(
            read_bounded(&file, 10, 100).unwrap(),
            Err(Rejection::TooLarge)
        );
        let file = File::open(&path).unwrap();
        assert_eq!(
            read_bounded(&file, 1000, 1000).unwrap().unwrap().len(),
            1000
        );
    }

    /// Runs `f` on a thread of its own and gives its result, failing the test if it has
    /// not come within 60 s (a read blocked on a FIFO would otherwise hang the run).
    fn within_a_minute<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(f());
        });
        rx.recv_timeout(std::time::Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("{what}: no answer within 60 s (blocked?)"))
    }

    fn mkfifo(path: &Path) {
        let c_path = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
    }

    /// What an attacker with write access to the folder can put in a tile's place: each is
    /// dropped (its entry and the thing itself, never a link's target) and counted, without
    /// blocking or reading it; the tile is then stored and served again.
    #[test]
    fn things_in_a_tiles_place_are_dropped_and_counted_not_read() {
        use super::super::tests::{key, path_of, png};
        use super::super::DiskCache;
        use std::sync::Arc;
        let dir = TempDir::new("hostile");
        let outside = TempDir::new("hostile-outside");
        let big = outside.0.join("big");
        File::create(&big).unwrap().set_len(1 << 30).unwrap();
        let cache = Arc::new(DiskCache::open(&dir.0, 1 << 30).unwrap());
        type Plant = fn(&Path, &Path);
        let plants: [(&str, Plant, Rejection); 5] = [
            ("fifo", |tile, _| mkfifo(tile), Rejection::NotRegular),
            (
                "link to /dev/zero",
                |tile, _| std::os::unix::fs::symlink("/dev/zero", tile).unwrap(),
                Rejection::Symlink,
            ),
            (
                "link to a 1 GB file",
                |tile, big| std::os::unix::fs::symlink(big, tile).unwrap(),
                Rejection::Symlink,
            ),
            (
                "1 GB sparse file",
                |tile, _| File::create(tile).unwrap().set_len(1 << 30).unwrap(),
                Rejection::TooLarge,
            ),
            (
                "folder",
                |tile, _| fs::create_dir(tile).unwrap(),
                Rejection::NotRegular,
            ),
        ];
        for (i, (what, plant, why)) in plants.into_iter().enumerate() {
            for blocking in [false, true] {
                let k = key("l", 1, i as u32 * 2 + u32::from(blocking));
                cache.put(&k, &png(1, 500));
                let tile = path_of(&cache, &k);
                fs::remove_file(&tile).unwrap();
                plant(&tile, &big);
                let before = cache.stats().rejected[why.slot()];
                let (c, k2) = (cache.clone(), k.clone());
                let found = within_a_minute(what, move || {
                    if blocking {
                        c.get(&k2)
                    } else {
                        match c.get_if_cached(&k2) {
                            Ok(found) => found.map(|(png, _)| png),
                            Err(located) => c.read(located).map(|(png, _)| png),
                        }
                    }
                });
                assert_eq!(found, None, "{what}");
                assert_eq!(cache.stats().rejected[why.slot()], before + 1, "{what}");
                if why != Rejection::NotRegular || what == "fifo" {
                    assert!(fs::symlink_metadata(&tile).is_err(), "{what} left in place");
                }
                // The tile is written again over whatever is left, and served.
                if what != "folder" {
                    cache.put(&k, &png(1, 500));
                    assert_eq!(cache.get(&k), Some(png(1, 500)), "{what}");
                }
            }
        }
        assert_eq!(
            fs::metadata(&big).unwrap().len(),
            1 << 30,
            "a link's target is kept"
        );
        assert_eq!(cache.stats().corrupt, 0);
    }

    /// A layer or shard folder replaced by a link to a folder elsewhere is never written
    /// through: the link is dropped and counted, a real folder made in its place and the tile
    /// written there, and the link's target stays empty. The start-up scan drops such links
    /// without descending into them (nor deleting what they point to).
    #[test]
    fn folders_that_are_links_are_never_written_through() {
        use super::super::tests::{key, path_of, png};
        use super::super::{layer_dir_name, DiskCache};
        use std::os::unix::fs::symlink;
        let dir = TempDir::new("linked-folders");
        let outside = TempDir::new("linked-outside");
        let empty = |p: &Path| fs::read_dir(p).unwrap().count() == 0;
        let links = Rejection::Symlink.slot();
        {
            let cache = DiskCache::open(&dir.0, 1 << 30).unwrap();
            // The tile's shard folder, made a link once the tile is stored; the tile is then
            // written again (as after its file vanished).
            let k = key("l", 1, 0);
            cache.put(&k, &png(1, 500));
            let shard = path_of(&cache, &k).parent().unwrap().to_path_buf();
            fs::remove_dir_all(&shard).unwrap();
            symlink(&outside.0, &shard).unwrap();
            cache.put(&k, &png(2, 500));
            assert!(empty(&outside.0), "written through a shard link");
            assert!(fs::symlink_metadata(&shard).unwrap().is_dir());
            assert_eq!(cache.get(&k), Some(png(2, 500)));
            assert_eq!(cache.stats().rejected[links], 1);

            // A new layer whose folder is a link before its first tile.
            let m = key("m", 1, 0);
            symlink(&outside.0, dir.0.join(layer_dir_name("m"))).unwrap();
            cache.put(&m, &png(3, 500));
            assert!(empty(&outside.0), "written through a layer link");
            assert_eq!(cache.get(&m), Some(png(3, 500)));
            assert_eq!(cache.stats().rejected[links], 2);
        }
        // Links planted while no server runs: a shard folder of "l" and a layer folder, each
        // to a folder holding a file named like a tile.
        let bait = outside.0.join(format!("{}.tile", "ab".repeat(32)));
        fs::write(&bait, b"not ours").unwrap();
        let layer = dir.0.join(layer_dir_name("l"));
        let free_shard = (0..=255u8)
            .map(|b| layer.join(format!("{b:02x}")))
            .find(|p| !p.exists())
            .unwrap();
        symlink(&outside.0, &free_shard).unwrap();
        let layer_link = dir.0.join(layer_dir_name("n"));
        symlink(&outside.0, &layer_link).unwrap();
        let cache = DiskCache::open(&dir.0, 1 << 30).unwrap();
        assert_eq!(
            cache.stats().rejected[links],
            2,
            "both links dropped at open"
        );
        assert_eq!(cache.stats().files, 2, "only the two real tiles");
        assert!(fs::symlink_metadata(&free_shard).is_err());
        assert!(fs::symlink_metadata(&layer_link).is_err());
        assert_eq!(
            fs::read(&bait).unwrap(),
            b"not ours",
            "a link's target is kept"
        );
    }

    /// The start-up scan neither blocks on nor follows what it finds, and drops it.
    #[test]
    fn the_scan_drops_what_is_no_tile_without_blocking() {
        use super::super::tests::{key, path_of, png};
        use super::super::{layer_dir_name, DiskCache, LAYER_NAME_FILE};
        let dir = TempDir::new("hostile-scan");
        let keys: Vec<_> = (0..4).map(|i| key("l", 1, i)).collect();
        {
            let cache = DiskCache::open(&dir.0, 1 << 30).unwrap();
            for k in &keys {
                cache.put(k, &png(1, 500));
            }
            let tiles: Vec<_> = keys.iter().map(|k| path_of(&cache, k)).collect();
            for tile in &tiles[..3] {
                fs::remove_file(tile).unwrap();
            }
            mkfifo(&tiles[0]);
            std::os::unix::fs::symlink("/dev/zero", &tiles[1]).unwrap();
            File::create(&tiles[2]).unwrap().set_len(1 << 30).unwrap();
            let name = dir.0.join(layer_dir_name("l")).join(LAYER_NAME_FILE);
            fs::remove_file(&name).unwrap();
            mkfifo(&name);
        }
        let path = dir.0.clone();
        let cache = within_a_minute("open", move || DiskCache::open(&path, 1 << 30).unwrap());
        let s = cache.stats();
        assert_eq!(s.files, 1);
        assert_eq!(
            s.per_layer.keys().collect::<Vec<_>>(),
            ["l"],
            "name from a tile's header"
        );
        assert_eq!(
            s.rejected,
            [1, 2, 1, 0],
            "link, FIFOs (a tile and the name file), big file"
        );
        for k in &keys[..3] {
            assert!(fs::symlink_metadata(path_of(&cache, k)).is_err());
            assert_eq!(cache.get(k), None);
        }
        assert_eq!(cache.get(&keys[3]), Some(png(1, 500)));
    }

    #[test]
    fn footprints_are_whole_blocks() {
        assert_eq!(round_up(0, 4096), 0);
        assert_eq!(round_up(1, 4096), 4096);
        assert_eq!(round_up(4096, 4096), 4096);
        assert_eq!(round_up(4097, 4096), 8192);
        let dir = TempDir::new("footprint");
        let path = dir.0.join("small");
        fs::write(&path, b"x").unwrap();
        let block = block_size(&dir.0);
        assert!(block >= 512, "{block}");
        assert!(footprint(&fs::metadata(&path).unwrap(), block) >= block);
    }
}
