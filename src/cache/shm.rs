//! Memory-tier tiles kept in a shared-memory file (a Linux memfd), so that the HTTP layer
//! can send them with `sendfile` instead of copying each one into the socket.
//!
//! Why: on a memory hit, copying the PNG into the socket was the largest single cost of the
//! server (a fifth of its CPU under `benches/load.sh`); nginx serving the same PNGs as files
//! avoids it with `sendfile`. Here a tile's bytes are a page-aligned range of one memfd,
//! mapped read-only so the rest of the program reads them as ordinary `Bytes`, and the
//! vendored actix-http asks [`resolve`] whether a body chunk lies in that range.
//!
//! The kernel keeps references to the pages it sent until the client has them, so a range's
//! bytes must never change in place (see `actix_http::h1::zero_copy`). Hence:
//! - tiles are written once, with `pwrite`, into a range that holds no pages (never used, or
//!   freed), and the mapping is read-only;
//! - a range is freed, when the last `Bytes` of its tile is dropped, by punching a hole in
//!   the file: whole pages leave the file, the kernel's own references keep the old
//!   contents, and the next `pwrite` there gets new pages;
//! - ranges are whole pages, and the arena is only used when the kernel gives shared memory
//!   small pages only (transparent huge pages off for shmem): punching part of a huge page
//!   would zero it in place.
//!
//! Anything that does not fit (no memfd, huge pages on, a very large tile, the range full)
//! stays on the heap and is written the ordinary way.

use actix_web::web::Bytes;

/// Tiles smaller than this stay on the heap: their copy is cheap, and a whole page for a
/// small tile would waste most of it.
pub const MIN_TILE_BYTES: usize = 4096;

/// The footprint counted against the memory budget for a tile held as `bytes`: whole pages
/// for a tile in the arena, its length otherwise.
pub fn footprint(bytes: &Bytes) -> u64 {
    match arena::existing() {
        Some(arena) if arena.holds(bytes) => arena.pages(bytes.len()) * arena.page,
        _ => bytes.len() as u64,
    }
}

/// `png` as arena-backed bytes when it is large enough and the arena can take it; else the
/// same `Bytes` (no copy).
pub fn share(png: &Bytes) -> Bytes {
    if png.len() < MIN_TILE_BYTES {
        return png.clone();
    }
    match arena::get().and_then(|arena| arena.store(png)) {
        Some(shared) => shared,
        None => png.clone(),
    }
}

/// Bytes of shared memory the arena's file holds now: the pages of its tiles, including
/// evicted ones still being sent; 0 without an arena. (Pages already punched out but still
/// referenced by the kernel's socket buffers are no longer the file's, and not counted.)
pub fn resident_bytes() -> u64 {
    arena::existing().map_or(0, |arena| arena.resident_bytes())
}

/// Bytes the HTTP layer has sent with `sendfile` so far.
pub fn sendfile_bytes() -> u64 {
    actix_http::h1::zero_copy::sent_bytes()
}

#[cfg(target_os = "linux")]
mod arena {
    use actix_web::web::Bytes;
    use std::fs::File;
    use std::os::fd::{AsRawFd, FromRawFd, RawFd};
    use std::os::unix::fs::{FileExt, MetadataExt};
    use std::sync::{Mutex, OnceLock};

    /// Address space reserved for the arena. Only pages that hold tiles use memory; the
    /// reservation only bounds the total size of the tiles in it at once (with room for
    /// fragmentation: a freed range is reused by tiles of the same page count).
    const RESERVED_BYTES: u64 = 64 << 30;

    /// Tiles of more pages than this (1 MiB) stay on the heap; the demo's 512 px tiles are
    /// under 100 KB.
    const MAX_PAGES: u64 = 256;

    static ARENA: OnceLock<Option<Arena>> = OnceLock::new();

    pub struct Arena {
        file: File,
        /// Address of the read-only mapping of the whole reservation.
        base: usize,
        pub page: u64,
        free: Mutex<Ranges>,
    }

    /// Page ranges of the file that hold no pages and may be written.
    struct Ranges {
        /// First offset never handed out.
        next: u64,
        /// Freed ranges by page count (index = pages).
        freed: Vec<Vec<u64>>,
    }

    /// The arena, created (and registered with the HTTP layer) on first use; `None` where it
    /// cannot be used, with the reason logged once.
    pub fn get() -> Option<&'static Arena> {
        ARENA
            .get_or_init(|| match Arena::create() {
                Ok(arena) => {
                    if !actix_http::h1::zero_copy::set_resolver(super::resolve) {
                        tracing::warn!("another sendfile resolver is registered");
                    }
                    Some(arena)
                }
                Err(why) => {
                    tracing::info!(%why, "memory-cache tiles stay on the heap (no sendfile)");
                    None
                }
            })
            .as_ref()
    }

    /// The arena if it was created already (never creates it).
    pub fn existing() -> Option<&'static Arena> {
        ARENA.get().and_then(Option::as_ref)
    }

    impl Arena {
        fn create() -> Result<Arena, String> {
            small_pages_only()?;
            // SAFETY: sysconf has no preconditions.
            let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
            let page = u64::try_from(page).map_err(|_| "no page size".to_string())?;
            // SAFETY: the name is a NUL-terminated string; the flags are valid.
            let fd = unsafe { libc::memfd_create(c"twine-tile-cache".as_ptr(), libc::MFD_CLOEXEC) };
            if fd < 0 {
                return Err(format!("memfd_create: {}", std::io::Error::last_os_error()));
            }
            // SAFETY: `fd` was just opened and is owned by nothing else.
            let file = unsafe { File::from_raw_fd(fd) };
            // Growing a memfd allocates no pages.
            file.set_len(RESERVED_BYTES)
                .map_err(|e| format!("ftruncate: {e}"))?;
            // SAFETY: a fresh mapping of the whole file (nothing else is at that address);
            // read-only, so no byte of it is ever changed through it.
            let base = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    RESERVED_BYTES as usize,
                    libc::PROT_READ,
                    libc::MAP_SHARED | libc::MAP_NORESERVE,
                    file.as_raw_fd(),
                    0,
                )
            };
            if base == libc::MAP_FAILED {
                return Err(format!("mmap: {}", std::io::Error::last_os_error()));
            }
            // Belt and braces to `small_pages_only`: faults through this mapping never ask
            // for huge pages.
            // SAFETY: the range is the mapping just made.
            unsafe { libc::madvise(base, RESERVED_BYTES as usize, libc::MADV_NOHUGEPAGE) };
            Ok(Arena {
                file,
                base: base as usize,
                page,
                free: Mutex::new(Ranges {
                    next: 0,
                    freed: vec![Vec::new(); MAX_PAGES as usize + 1],
                }),
            })
        }

        pub fn pages(&self, len: usize) -> u64 {
            (len as u64).div_ceil(self.page)
        }

        pub fn holds(&self, bytes: &[u8]) -> bool {
            self.offset_of(bytes).is_some()
        }

        pub fn offset_of(&self, bytes: &[u8]) -> Option<u64> {
            let start = (bytes.as_ptr() as usize).checked_sub(self.base)? as u64;
            (start + bytes.len() as u64 <= RESERVED_BYTES).then_some(start)
        }

        pub fn fd(&self) -> RawFd {
            self.file.as_raw_fd()
        }

        fn ranges(&self) -> std::sync::MutexGuard<'_, Ranges> {
            // Each critical section leaves the lists consistent, so a poisoned lock is usable.
            self.free.lock().unwrap_or_else(|e| e.into_inner())
        }

        /// A copy of `png` in the arena, or `None` (too large, or the reservation is full,
        /// or the write failed).
        pub fn store(&'static self, png: &[u8]) -> Option<Bytes> {
            let pages = self.pages(png.len());
            if pages == 0 || pages > MAX_PAGES {
                return None;
            }
            let offset = {
                let mut ranges = self.ranges();
                match ranges.freed[pages as usize].pop() {
                    Some(offset) => offset,
                    None if ranges.next + pages * self.page <= RESERVED_BYTES => {
                        ranges.next += pages * self.page;
                        ranges.next - pages * self.page
                    }
                    None => return None,
                }
            };
            let region = Region {
                arena: self,
                offset,
                len: png.len(),
            };
            // On failure `region` is dropped, which frees the range again.
            self.file.write_all_at(png, offset).ok()?;
            Some(Bytes::from_owner(region))
        }

        /// Punches the range out of the file and lists it as free.
        fn release(&self, offset: u64, pages: u64) {
            let (Ok(at), Ok(len)) = (
                libc::off_t::try_from(offset),
                libc::off_t::try_from(pages * self.page),
            ) else {
                return;
            };
            let mode = libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE;
            // SAFETY: a valid descriptor and a page-aligned range inside the file.
            if unsafe { libc::fallocate(self.fd(), mode, at, len) } != 0 {
                // The pages stay; the range is not reused (it would be written in place).
                tracing::warn!(
                    error = %std::io::Error::last_os_error(),
                    "could not free a memory-cache range"
                );
                return;
            }
            self.ranges().freed[pages as usize].push(offset);
        }

        pub fn resident_bytes(&self) -> u64 {
            self.file.metadata().map_or(0, |m| m.blocks() * 512)
        }
    }

    /// One tile's range; the `Bytes` made from it free the range when the last is dropped.
    struct Region {
        arena: &'static Arena,
        offset: u64,
        len: usize,
    }

    impl AsRef<[u8]> for Region {
        fn as_ref(&self) -> &[u8] {
            // SAFETY: the range lies inside the mapping (checked when it was handed out),
            // was fully written before the `Bytes` were made, and is not changed while this
            // region lives: only `release`, run by its drop, touches it.
            unsafe {
                std::slice::from_raw_parts(
                    (self.arena.base + self.offset as usize) as *const u8,
                    self.len,
                )
            }
        }
    }

    impl Drop for Region {
        fn drop(&mut self) {
            self.arena.release(self.offset, self.arena.pages(self.len));
        }
    }

    /// Whether shared memory gets small pages only: punching a hole in part of a huge page
    /// zeroes it in place, under the kernel's feet. Missing files mean a kernel without
    /// transparent huge pages.
    fn small_pages_only() -> Result<(), String> {
        let root = std::path::Path::new("/sys/kernel/mm/transparent_hugepage");
        let setting = |path: &std::path::Path| -> Result<Option<String>, String> {
            match std::fs::read_to_string(path) {
                Ok(text) => Ok(super::selected(&text).map(str::to_string)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(format!("{}: {e}", path.display())),
            }
        };
        if let Some(top) = setting(&root.join("shmem_enabled"))? {
            if top != "never" && top != "deny" {
                return Err(format!("shmem huge pages are '{top}'"));
            }
        }
        let sizes = match std::fs::read_dir(root) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(format!("{}: {e}", root.display())),
        };
        for entry in sizes.flatten() {
            let path = entry.path().join("shmem_enabled");
            if !entry
                .file_name()
                .to_string_lossy()
                .starts_with("hugepages-")
            {
                continue;
            }
            if let Some(size) = setting(&path)? {
                if size != "never" && size != "inherit" {
                    return Err(format!("{} is '{size}'", path.display()));
                }
            }
        }
        Ok(())
    }
}

#[cfg(not(target_os = "linux"))]
mod arena {
    use actix_web::web::Bytes;

    pub struct Arena {
        pub page: u64,
    }

    impl Arena {
        pub fn holds(&self, _: &[u8]) -> bool {
            false
        }
        pub fn pages(&self, _: usize) -> u64 {
            0
        }
        pub fn store(&'static self, _: &[u8]) -> Option<Bytes> {
            None
        }
        pub fn resident_bytes(&self) -> u64 {
            0
        }
    }

    pub fn get() -> Option<&'static Arena> {
        None
    }

    pub fn existing() -> Option<&'static Arena> {
        None
    }
}

/// The HTTP layer's resolver: where a body chunk lies in the arena's file, if it does.
#[cfg(target_os = "linux")]
fn resolve(chunk: &[u8]) -> Option<(std::os::fd::RawFd, u64)> {
    let arena = arena::existing()?;
    Some((arena.fd(), arena.offset_of(chunk)?))
}

/// The selected value of a sysfs setting listing its choices, as in `always [never] deny`.
fn selected(setting: &str) -> Option<&str> {
    setting
        .split_whitespace()
        .find(|word| word.starts_with('['))
        .map(|word| word.trim_matches(['[', ']']))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_selected_setting_is_the_bracketed_one() {
        assert_eq!(
            selected("always within_size advise [never] deny force\n"),
            Some("never")
        );
        assert_eq!(selected("[inherit] never"), Some("inherit"));
        assert_eq!(selected(""), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn large_tiles_go_to_whole_pages_of_the_arena_and_small_ones_stay() {
        // A machine whose shared memory may use huge pages refuses the arena (and serves
        // from the heap); this test, and tests/zero_copy.rs, then fail and say why.
        let arena = arena::get()
            .expect("no tile arena: see the log line 'memory-cache tiles stay on the heap'");
        let png = Bytes::from((0..10_000u32).map(|i| i as u8).collect::<Vec<u8>>());
        let shared = share(&png);
        assert_eq!(shared, png);
        assert!(arena.holds(&shared));
        assert_eq!(
            footprint(&shared),
            10_000u64.div_ceil(arena.page) * arena.page
        );
        let offset = arena.offset_of(&shared).expect("offset");
        assert_eq!(offset % arena.page, 0, "ranges start on a page");
        assert_eq!(resolve(&shared[100..]), Some((arena.fd(), offset + 100)));

        let small = Bytes::from(vec![7u8; MIN_TILE_BYTES - 1]);
        let kept = share(&small);
        assert!(!arena.holds(&kept));
        assert_eq!(footprint(&kept), small.len() as u64);
        assert_eq!(resolve(&kept), None);
    }
}
