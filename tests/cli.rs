//! The binary as a user runs it: start-up errors name the file and line, `--points` adds a
//! layer, and SIGTERM / SIGINT stop the server gracefully.

mod common;

use common::process::{run, twine, ServeProcess};
use common::scratch::Scratch;

/// Runs `twine-heatmap ARGS...`, which must fail; returns its stderr.
fn refused(args: &[&str]) -> String {
    run(&mut twine(args)).expect_failure()
}

#[test]
fn malformed_points_files_stop_start_up_naming_file_and_line() {
    let dir = Scratch::new("cli-malformed");
    let csv = dir.file("broken.csv", "lon,lat\n1,2\n3,4\n5,abc\n");
    let err = refused(&[
        "serve",
        "--points",
        csv.to_str().expect("path"),
        "--bind",
        "127.0.0.1:0",
    ]);
    assert!(err.contains("broken.csv:4"), "{err}");
    let json = dir.file("seed.json", "[[50, 10],\n [95, 10]]\n");
    let err = refused(&["serve", "--points", json.to_str().expect("path")]);
    assert!(err.contains("seed.json:2"), "{err}");
    let err = refused(&["serve", "--points", "/nonexistent/where.csv"]);
    assert!(err.contains("/nonexistent/where.csv"), "{err}");
    let bad_config = dir.file("bad.toml", "bind = \"127.0.0.1:0\"\nbogus_key = 1\n");
    let err = refused(&["serve", "--config", bad_config.to_str().expect("path")]);
    assert!(err.contains("bogus_key"), "{err}");
}

/// Runs `serve` with `toml` as its config, which must stop start-up; returns its stderr.
fn start_up_error(dir: &Scratch, toml: &str) -> String {
    let config = dir.file("config.toml", toml);
    refused(&[
        "serve",
        "--config",
        config.to_str().expect("path"),
        "--bind",
        "127.0.0.1:0",
    ])
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
        let server = ServeProcess::start(&args);
        let reply = server.get("/tiles/demo/0/0/0.png");
        assert_eq!(reply.status, 200);
        assert_eq!(
            reply.header("access-control-allow-origin"),
            expected,
            "--cors-allow-origin {flag:?}"
        );
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
        let mut server = ServeProcess::start(&["--points", csv.to_str().expect("path")]);
        let layers = server.get("/layers").json();
        let names: Vec<&str> = layers
            .as_array()
            .expect("list")
            .iter()
            .filter_map(|l| l["name"].as_str())
            .collect();
        assert_eq!(names, vec!["stations"], "--points replaces the demo layer");
        let status = server.signal(sig);
        assert!(status.success(), "exit after SIG{sig}: {status:?}");
        // Logs go to stderr, and without a terminal they carry no color escape codes.
        let log = server.stop();
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
        // The harness leaves RUST_LOG unset: the command's default level.
        let mut cmd = twine(&["cache", "stats", "--cache-dir"]);
        cmd.arg(&*cache);
        if let Some(level) = level {
            cmd.env("RUST_LOG", level);
        }
        let out = run(&mut cmd);
        let stderr = out.stderr.clone();
        let stdout = out.expect_success();
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
