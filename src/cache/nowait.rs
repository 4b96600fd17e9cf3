//! Reading a small file only if the page cache already holds all of it, so that a disk
//! cache hit can be served on the request's own thread without ever waiting on a device.
//!
//! Linux's `preadv2(..., RWF_NOWAIT)` returns EAGAIN instead of starting I/O. Elsewhere (or
//! on file systems without it) every read reports [`Cached::WouldBlock`] and callers take the
//! blocking path.

use std::fs::File;
use std::io;

/// What a non-blocking read found.
#[derive(Debug)]
pub enum Cached {
    /// The whole file, read from memory.
    Bytes(Vec<u8>),
    /// Some of it would have to come from the device: read it on a blocking thread.
    WouldBlock,
}

/// Reads all of an open `file` if it is in the page cache, but never more than `max_len`
/// bytes and one: a file longer than that comes back with `max_len + 1` bytes, for the
/// caller to refuse, however long it really is.
///
/// `expected_len` is the size the caller believes the file has (its `fstat` at open), so one
/// `preadv2` of one byte more than that reads it. A file that has grown since is read on
/// (by doubling the buffer, up to the bound), one that has shrunk up to its end.
pub fn read_if_cached(file: &File, expected_len: usize, max_len: usize) -> io::Result<Cached> {
    let limit = max_len.saturating_add(1);
    let mut buf = vec![0u8; expected_len.saturating_add(1).min(limit)];
    let mut done = 0;
    loop {
        if done == limit {
            break;
        }
        if done == buf.len() {
            buf.resize(buf.len().saturating_mul(2).min(limit), 0);
        }
        match read_nowait(file, &mut buf[done..], done)? {
            Some(0) => break,
            Some(n) => {
                done += n;
                // Exactly the expected size with room left: the end, since a file that grew
                // would have filled the extra byte. Spares the read that would return 0.
                if done == expected_len && done < buf.len() {
                    break;
                }
            }
            None => return Ok(Cached::WouldBlock),
        }
    }
    buf.truncate(done);
    Ok(Cached::Bytes(buf))
}

/// One `preadv2` with RWF_NOWAIT at `offset`: bytes read, or None if it would block.
#[cfg(target_os = "linux")]
fn read_nowait(file: &File, buf: &mut [u8], offset: usize) -> io::Result<Option<usize>> {
    use std::os::fd::AsRawFd;
    let iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let offset = libc::off_t::try_from(offset)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "offset too large"))?;
    // SAFETY: `iov` describes `buf`, which is valid for writes of its length and outlives
    // the call; the descriptor belongs to `file`, open for the whole call.
    let n = unsafe { libc::preadv2(file.as_raw_fd(), &iov, 1, offset, libc::RWF_NOWAIT) };
    if n >= 0 {
        return Ok(Some(n as usize));
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        // Not cached, or a kernel or file system that does not offer RWF_NOWAIT.
        Some(libc::EAGAIN) | Some(libc::EOPNOTSUPP) | Some(libc::ENOSYS) => Ok(None),
        _ => Err(e),
    }
}

#[cfg(not(target_os = "linux"))]
fn read_nowait(_file: &File, _buf: &mut [u8], _offset: usize) -> io::Result<Option<usize>> {
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_just_written_is_read_from_the_page_cache() {
        let dir = std::env::temp_dir().join(format!("twine-nowait-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("f.bin");
        let data: Vec<u8> = (0..50_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &data).expect("write");
        // The right size, too small a guess (the file grew), too large a guess (it shrank).
        let file = File::open(&path).expect("open");
        let read = |expected, max| match read_if_cached(&file, expected, max).expect("read") {
            Cached::Bytes(bytes) => Some(bytes),
            // Allowed where RWF_NOWAIT is missing; on Linux a fresh file is cached.
            Cached::WouldBlock => {
                #[cfg(target_os = "linux")]
                panic!("a file just written was not read from the page cache");
                #[cfg(not(target_os = "linux"))]
                None
            }
        };
        for expected in [
            data.len(),
            0,
            1,
            4096,
            data.len() - 1,
            data.len() + 1,
            1 << 20,
        ] {
            if let Some(bytes) = read(expected, 1 << 20) {
                assert!(bytes == data, "expected length {expected}");
            }
        }
        // A file longer than the bound: one byte past it is read, never more.
        for (expected, max) in [(0, 100), (100, 100), (data.len(), 40_000), (1 << 20, 999)] {
            if let Some(bytes) = read(expected, max) {
                assert_eq!(bytes, data[..max + 1], "expected {expected}, max {max}");
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
