//! Scratch space for tests that run the binary or write files: a folder per test under the
//! system temp dir, removed when dropped, and the files found below a folder.

use std::io::Write;
use std::path::{Path, PathBuf};

/// A folder of its own for one test, removed (with what is in it) when dropped.
pub struct Scratch(PathBuf);

impl Scratch {
    /// An empty folder `twine-{label}-{pid}` under the temp dir; what a crashed earlier run
    /// of the same process id left there is removed first.
    pub fn new(label: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("twine-{label}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Scratch(dir)
    }

    /// Writes `content` to `name` in the folder; returns its path.
    pub fn file(&self, name: &str, content: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::File::create(&path)
            .and_then(|mut f| f.write_all(content.as_bytes()))
            .expect("write scratch file");
        path
    }
}

impl std::ops::Deref for Scratch {
    type Target = Path;

    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Every file below `dir`, in no particular order. A folder that cannot be read (not made
/// yet, or removed meanwhile by the program under test) holds none.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out
}

/// The disk cache's tile files (`*.tile`) below `dir`.
pub fn tile_files(dir: &Path) -> Vec<PathBuf> {
    files_under(dir)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "tile"))
        .collect()
}

/// What `dir` and everything below it take on disk, in allocated blocks, links not followed:
/// what `du -s --block-size=1 DIR` reports.
pub fn allocated_under(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        // Gone meanwhile (a temp file renamed, a tile evicted): it takes nothing.
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        total += meta.blocks() * 512;
        if meta.is_dir() {
            if let Ok(entries) = std::fs::read_dir(&path) {
                stack.extend(entries.flatten().map(|e| e.path()));
            }
        }
    }
    total
}
