//! Log lines of a tile's slow path carry the tile's address (a `tile` span with layer, z, x,
//! y and ratio), including the render's own line from the blocking thread. Its own test
//! binary: it installs a process-wide subscriber that captures the log text.

mod common;

use common::TestServer;
use std::io::Write;
use std::sync::{Arc, Mutex};
use twine_heatmap::app::ServeArgs;

/// A log sink the test can read back.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
    }
}

#[test]
fn a_tile_miss_logs_with_the_tiles_address() {
    let sink = Captured::default();
    let writer = sink.clone();
    tracing::subscriber::set_global_default(
        tracing_subscriber::fmt()
            .with_ansi(false)
            .with_env_filter("twine_heatmap=debug")
            .with_writer(move || writer.clone())
            .finish(),
    )
    .expect("the only subscriber of this test binary");
    // As `serve` builds it: the demo layer and the default memory tier.
    let s = TestServer::from_args(&ServeArgs::default());
    assert_eq!(
        s.get("/tiles/demo/3/4/2@2x.png").header("x-cache"),
        Some("miss")
    );
    let log = sink.text();
    let rendered = log
        .lines()
        .find(|l| l.contains("rendered"))
        .unwrap_or_else(|| panic!("no render line in:\n{log}"));
    assert!(
        rendered.contains("tile{layer=demo z=3 x=4 y=2 ratio=2}"),
        "{rendered}"
    );
    assert!(rendered.contains("marks="), "{rendered}");
    // A memory hit opens no span and logs nothing of its own.
    let before = sink.text().lines().filter(|l| l.contains("tile{")).count();
    assert_eq!(
        s.get("/tiles/demo/3/4/2@2x.png").header("x-cache"),
        Some("hit-memory")
    );
    let after = sink.text().lines().filter(|l| l.contains("tile{")).count();
    assert_eq!(before, after, "{}", sink.text());
}
