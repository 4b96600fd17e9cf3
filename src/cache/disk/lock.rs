//! The lock that gives a cache folder to one process at a time: an advisory `flock` on
//! `<folder>/.lock`, held while the process keeps the folder open, with the holder's pid
//! written in the file so that a process refused can name it.
//!
//! A process that writes tiles under a budget (`serve`, `seed`) holds it: two of them on
//! one folder would each count only their own files against the budget, and the folder
//! would hold the sum. The kernel drops the lock when its holder exits, even by SIGKILL, so
//! a stale lock file never stands in the way.

use super::files::{open_regular, read_bounded, Opened};
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The lock file's name in the cache folder.
pub(super) const LOCK_FILE: &str = ".lock";

/// The held lock; dropping it (closing the file) releases it.
#[derive(Debug)]
pub(super) struct FolderLock {
    _file: File,
}

/// Why a cache folder could not be locked: another process holds it.
#[derive(Debug)]
pub struct FolderInUse {
    pub dir: PathBuf,
    /// The holder's process id, when its lock file names one.
    pub pid: Option<u32>,
}

impl fmt::Display for FolderInUse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the cache folder {} is in use by another twine-heatmap process",
            self.dir.display()
        )?;
        if let Some(pid) = self.pid {
            write!(f, " (pid {pid})")?;
        }
        f.write_str(
            "; a cache folder serves one server (or seed) at a time: stop that process, or \
             give this one a folder of its own with --cache-dir",
        )
    }
}

impl std::error::Error for FolderInUse {}

/// Takes the lock of `dir` without waiting, and writes this process's id into the lock
/// file. A held lock is an error of kind `WouldBlock` wrapping [`FolderInUse`].
pub(super) fn lock_folder(dir: &Path) -> io::Result<FolderLock> {
    let path = dir.join(LOCK_FILE);
    // No link followed (a link planted there cannot make us truncate its target), no wait
    // on a FIFO; what opens must be a regular file.
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(&path)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    if !file.metadata()?.file_type().is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is not a regular file", path.display()),
        ));
    }
    // SAFETY: the descriptor belongs to `file`, open for the whole call.
    let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if locked != 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EWOULDBLOCK) {
            return Err(e);
        }
        let holder = FolderInUse {
            dir: dir.to_path_buf(),
            pid: holder_pid(&path),
        };
        return Err(io::Error::new(io::ErrorKind::WouldBlock, holder));
    }
    file.set_len(0)?;
    file.write_all(format!("{}\n", std::process::id()).as_bytes())?;
    Ok(FolderLock { _file: file })
}

/// The pid a lock file names (written by its holder once locked; none while it is being
/// written, or if the file is not what we wrote).
fn holder_pid(path: &Path) -> Option<u32> {
    const MAX_LEN: u64 = 32;
    let Opened::Regular(file, len) = open_regular(path, MAX_LEN).ok()? else {
        return None;
    };
    let text = read_bounded(&file, len, MAX_LEN).ok()?.ok()?;
    std::str::from_utf8(&text).ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::super::tests::TempDir;
    use super::*;

    #[test]
    fn a_second_lock_is_refused_naming_the_holder_until_the_first_is_dropped() {
        let dir = TempDir::new("lock");
        let first = lock_folder(&dir.0).unwrap();
        let refused = lock_folder(&dir.0).unwrap_err();
        assert_eq!(refused.kind(), io::ErrorKind::WouldBlock);
        let text = refused.to_string();
        assert!(text.contains(&dir.0.display().to_string()), "{text}");
        assert!(
            text.contains(&format!("(pid {})", std::process::id())),
            "{text}"
        );
        drop(first);
        assert!(lock_folder(&dir.0).is_ok());
    }

    #[test]
    fn a_link_in_place_of_the_lock_file_is_not_followed() {
        let dir = TempDir::new("lock-link");
        let target = dir.0.join("precious");
        std::fs::write(&target, b"keep me").unwrap();
        std::os::unix::fs::symlink(&target, dir.0.join(LOCK_FILE)).unwrap();
        assert!(lock_folder(&dir.0).is_err());
        assert_eq!(std::fs::read(&target).unwrap(), b"keep me");
    }
}
