//! The web map in a real browser: runs `tests/browser/e2e.mjs` (headless Debian `chromium`
//! driven by npm `playwright-core`) against this build's `twine-heatmap` binary.
//!
//! Never skipped: without node, chromium or `tests/browser/node_modules` it fails and says to
//! run `scripts/test.sh`, which installs them.

use std::path::{Path, PathBuf};
use std::process::Command;

const SETUP_HINT: &str = "run scripts/test.sh, which installs it (apt-get install chromium; npm ci --prefix tests/browser)";

fn chromium() -> PathBuf {
    std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

fn require(ok: bool, what: &str) {
    assert!(ok, "the browser test needs {what}: {SETUP_HINT}");
}

#[test]
fn browser_web_map_in_headless_chromium() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = root.join("tests/browser");
    let node_version = Command::new("node").arg("--version").output();
    require(
        node_version.as_ref().is_ok_and(|o| o.status.success()),
        "node (Node.js 18 or newer) on PATH",
    );
    require(
        chromium().is_file(),
        "Debian's chromium at /usr/bin/chromium",
    );
    require(
        dir.join("node_modules/playwright-core/package.json")
            .is_file(),
        "playwright-core in tests/browser/node_modules",
    );

    let output = Command::new("node")
        .arg(dir.join("e2e.mjs"))
        .env("TWINE_BIN", env!("CARGO_BIN_EXE_twine-heatmap"))
        .env("CHROMIUM", chromium())
        .current_dir(root)
        .output()
        .expect("run node tests/browser/e2e.mjs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    // Shown with --nocapture (and by nextest on failure): the checks, the continuity figure
    // and where the screenshots are.
    println!("{stdout}");
    eprintln!("{stderr}");
    assert!(
        output.status.success(),
        "the browser test failed ({}); screenshots in artifacts/browser/\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}",
        output.status
    );
    assert!(
        stdout.contains("CONTINUITY:"),
        "the browser test passed without reporting the continuity figure:\n{stdout}"
    );
}
