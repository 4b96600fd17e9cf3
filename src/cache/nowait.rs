//! Reading a small file only if the page cache already holds all of it, so that a disk
//! cache hit can be served on the request's own thread without ever waiting on a device.
//!
//! Linux's `preadv2(..., RWF_NOWAIT)` returns EAGAIN instead of starting I/O. Elsewhere (or
//! on file systems without it) every read reports [`Cached::WouldBlock`] and callers take the
//! blocking path.

use std::fs::File;
use std::io;
use std::path::Path;

/// What a non-blocking read found.
#[derive(Debug)]
pub enum Cached {
    /// The whole file, read from memory.
    Bytes(Vec<u8>),
    /// Some of it would have to come from the device: read it on a blocking thread.
    WouldBlock,
}

/// Reads all of `path` if it is in the page cache. Opening the file itself may touch the
/// device when its directory entry is cold; for the hot tiles this serves, it is cached.
///
/// `expected_len` is the size the caller believes the file has (the disk tier's index knows
/// it), so one `preadv2` of one byte more than that reads it, without an `fstat` first. A
/// file that is longer is still read whole (by doubling the buffer), one that is shorter up
/// to its end.
pub fn read_if_cached(path: &Path, expected_len: usize) -> io::Result<Cached> {
    let file = File::open(path)?;
    // A first buffer of at most 16 MiB whatever the guess (tiles are far smaller).
    let mut buf = vec![0u8; expected_len.saturating_add(1).min(16 << 20)];
    let mut done = 0;
    loop {
        if done == buf.len() {
            buf.resize(buf.len().saturating_mul(2), 0);
        }
        match read_nowait(&file, &mut buf[done..], done)? {
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
        for expected in [
            data.len(),
            0,
            1,
            4096,
            data.len() - 1,
            data.len() + 1,
            1 << 20,
        ] {
            match read_if_cached(&path, expected).expect("read") {
                Cached::Bytes(bytes) => assert!(bytes == data, "expected length {expected}"),
                // Allowed where RWF_NOWAIT is missing; on Linux a fresh file is cached.
                Cached::WouldBlock => {
                    #[cfg(target_os = "linux")]
                    panic!("a file just written was not read from the page cache");
                }
            }
        }
        let missing = read_if_cached(&dir.join("missing"), 10);
        assert_eq!(
            missing.err().map(|e| e.kind()),
            Some(io::ErrorKind::NotFound)
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
