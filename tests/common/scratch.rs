//! Scratch space for tests that run the binary or write files: a folder per test under the
//! system temp dir, removed when dropped, and a free loopback port.

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

/// A loopback port that was free a moment ago, for servers started as processes.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}
