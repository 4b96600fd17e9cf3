//! The binary as a user runs it: start-up errors name the file and line, `--points` adds a
//! layer, and SIGTERM / SIGINT stop the server gracefully.

mod common;

use common::scratch::{free_port, Scratch};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_twine-heatmap");

/// The binary without the settings scripts/test.sh exports for other tests (DATABASE_URL
/// would make `serve` wait for database layers instead of serving the demo layer).
fn binary() -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_remove("DATABASE_URL");
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("TWINE_") {
            cmd.env_remove(key);
        }
    }
    cmd
}

/// Runs the binary to its exit: whether it succeeded, and its stderr. A run that should stop
/// at start-up but serves instead is killed after 60 s and counts as a failure of the test,
/// not a hang.
fn run_to_end(args: &[&str]) -> (bool, String) {
    let mut child = binary()
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run");
    let mut stderr = child.stderr.take().expect("stderr");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
        text
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("twine-heatmap {args:?} still running after 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (status.success(), reader.join().unwrap_or_default())
}

#[test]
fn malformed_points_files_stop_start_up_naming_file_and_line() {
    let dir = Scratch::new("cli-malformed");
    let csv = dir.file("broken.csv", "lon,lat\n1,2\n3,4\n5,abc\n");
    let (ok, err) = run_to_end(&[
        "serve",
        "--points",
        csv.to_str().expect("path"),
        "--bind",
        "127.0.0.1:0",
    ]);
    assert!(!ok);
    assert!(err.contains("broken.csv:4"), "{err}");
    let json = dir.file("seed.json", "[[50, 10],\n [95, 10]]\n");
    let (ok, err) = run_to_end(&["serve", "--points", json.to_str().expect("path")]);
    assert!(!ok);
    assert!(err.contains("seed.json:2"), "{err}");
    let (ok, err) = run_to_end(&["serve", "--points", "/nonexistent/where.csv"]);
    assert!(!ok);
    assert!(err.contains("/nonexistent/where.csv"), "{err}");
    let bad_config = dir.file("bad.toml", "bind = \"127.0.0.1:0\"\nbogus_key = 1\n");
    let (ok, err) = run_to_end(&["serve", "--config", bad_config.to_str().expect("path")]);
    assert!(!ok);
    assert!(err.contains("bogus_key"), "{err}");
}

/// Runs `serve` with `toml` as its config, which must stop start-up; returns its stderr.
fn start_up_error(dir: &Scratch, toml: &str) -> String {
    let config = dir.file("config.toml", toml);
    let (ok, err) = run_to_end(&[
        "serve",
        "--config",
        config.to_str().expect("path"),
        "--bind",
        "127.0.0.1:0",
    ]);
    assert!(!ok, "start-up should fail with {toml:?}");
    err
}

#[test]
fn bad_cache_control_values_stop_start_up_naming_the_key() {
    let dir = Scratch::new("cli-cache-control");
    // A value that cannot be a header would otherwise fail every tile response.
    for (toml, key) in [
        (
            "tile_cache_control = \"public,\\nmax-age=60\"\n",
            "tile_cache_control",
        ),
        (
            "[[cache.control]]\nzooms = \"0-5\"\nvalue = \"max-age=60\\u0007\"\n",
            "cache.control value",
        ),
    ] {
        let err = start_up_error(&dir, toml);
        assert!(
            err.contains(key) && err.contains("Cache-Control"),
            "{toml}: {err}"
        );
    }
}

#[test]
fn bad_cors_origins_stop_start_up_naming_the_key() {
    let dir = Scratch::new("cli-cors");
    for value in [
        "maps.example.org",
        "https://maps.example.org/",
        "https://a.org, https://b.org",
        "ftp://maps.example.org",
    ] {
        let err = start_up_error(&dir, &format!("cors_allow_origin = {value:?}\n"));
        assert!(
            err.contains("cors_allow_origin") && err.contains("one origin"),
            "{value}: {err}"
        );
    }
}

/// One configured origin is sent as it is; an empty one turns CORS headers off; the flag
/// wins over the config file.
#[test]
fn cors_origin_from_flag_and_config() {
    let dir = Scratch::new("cli-cors-ok");
    let config = dir.file(
        "cors.toml",
        "cors_allow_origin = \"https://maps.example.org\"\n",
    );
    let config = config.to_str().expect("path");
    for (flag, expected) in [
        (None, Some("https://maps.example.org")),
        (Some(""), None),
        (Some("http://127.0.0.1:3000"), Some("http://127.0.0.1:3000")),
    ] {
        let mut args = vec!["--config", config];
        if let Some(flag) = flag {
            args.extend(["--cors-allow-origin", flag]);
        }
        let server = start(&args);
        let reply = ureq::get(&format!(
            "http://127.0.0.1:{}/tiles/demo/0/0/0.png",
            server.1
        ))
        .call()
        .expect("tile");
        assert_eq!(
            reply.header("access-control-allow-origin"),
            expected,
            "--cors-allow-origin {flag:?}"
        );
    }
}

struct Server(Child, u16);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(args: &[&str]) -> Server {
    let port = free_port();
    let bind = format!("127.0.0.1:{port}");
    let mut child = binary()
        .arg("serve")
        .args(["--bind", &bind])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if ureq::get(&format!("http://{bind}/health")).call().is_ok() {
            return Server(child, port);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("server did not come up on {bind}");
}

/// Sends `sig` and waits (bounded) for the server to exit.
fn signal(server: &mut Server, sig: &str) -> std::process::ExitStatus {
    let pid = server.0.id().to_string();
    assert!(Command::new("kill")
        .args(["-s", sig, &pid])
        .status()
        .expect("kill")
        .success());
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(status) = server.0.try_wait().expect("wait") {
            return status;
        }
        assert!(Instant::now() < deadline, "server did not stop after {sig}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn points_flag_adds_a_layer_and_signals_stop_gracefully() {
    let dir = Scratch::new("cli-points");
    let csv = dir.file(
        "stations.csv",
        "lon,lat,weight\n13.4,52.5,2\n2.35,48.85,1\n",
    );
    for sig in ["TERM", "INT"] {
        let mut server = start(&["--points", csv.to_str().expect("path")]);
        let layers: serde_json::Value = ureq::get(&format!("http://127.0.0.1:{}/layers", server.1))
            .call()
            .expect("layers")
            .into_string()
            .ok()
            .and_then(|body| serde_json::from_str(&body).ok())
            .expect("json");
        let names: Vec<&str> = layers
            .as_array()
            .expect("list")
            .iter()
            .filter_map(|l| l["name"].as_str())
            .collect();
        assert_eq!(names, vec!["stations"], "--points replaces the demo layer");
        let status = signal(&mut server, sig);
        assert!(status.success(), "exit after SIG{sig}: {status:?}");
        // Logs go to stderr, and without a terminal they carry no color escape codes.
        let mut log = String::new();
        if let Some(mut stderr) = server.0.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut stderr, &mut log);
        }
        assert!(log.contains("listening"), "{log}");
        assert!(!log.contains('\x1b'), "escape codes in a log file: {log:?}");
    }
}

/// `cache stats` prints its report on stdout and nothing else, so scripts can read it; the
/// cache's own log lines (at `RUST_LOG=info`) go to stderr, without escape codes.
#[test]
fn cache_stats_stdout_holds_only_the_report() {
    let cache = Scratch::new("cli-stats");
    for level in [None, Some("info")] {
        let mut cmd = binary();
        cmd.args(["cache", "stats", "--cache-dir"]).arg(&*cache);
        match level {
            Some(level) => cmd.env("RUST_LOG", level),
            None => cmd.env_remove("RUST_LOG"),
        };
        let out = cmd.output().expect("run");
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert!(out.status.success(), "{stdout}\n{stderr}");
        assert!(stdout.starts_with("disk tier "), "{level:?}: {stdout:?}");
        assert!(
            stdout
                .lines()
                .all(|l| !l.contains("INFO") && !l.contains('\x1b')),
            "{level:?}: log lines on stdout: {stdout:?}"
        );
        if level.is_some() {
            assert!(stderr.contains("disk tile cache opened"), "{stderr}");
            assert!(!stderr.contains('\x1b'), "{stderr:?}");
        } else {
            assert!(stderr.is_empty(), "the default level is quiet: {stderr:?}");
        }
    }
}
