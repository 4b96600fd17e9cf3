//! `seed`, `cache purge` and `cache stats` as a user runs them: the real binary on the
//! embedded demo layer (no database), each test in its own cache folder. Seeded tiles must
//! be disk hits for a server on the same folder, a seed stopped by SIGKILL or SIGINT must
//! leave only whole tiles, and purges must remove exactly the tiles they name.

mod common;

use common::process::{run, run_within, signal, twine, ServeProcess};
use common::scratch::{files_under, tile_files, Scratch};
use common::{wait_until, Reply, TestServer};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};
use twine_heatmap::cache::disk::DiskCache;
use twine_heatmap::layer::Layer;
use twine_heatmap::service::tile_key;
use twine_heatmap::source::load::demo_points;
use twine_heatmap::source::memory::MemoryStore;
use twine_heatmap::source::FilterValues;
use twine_heatmap::style::{Query, StyleSpec};
use twine_heatmap::tile::TileCoord;

/// Europe: about 300 tiles at zooms 0-7, small enough that a whole run stays short in a
/// debug build.
const EUROPE: &str = "-10,35,30,60";

/// `--max-rate` of the seeds the stop tests interrupt: at 5 tiles a second the ~300 tiles
/// of [`europe_seed`] take a minute, so on any machine the seed is still running when the
/// test stops it a second or so in, after [`TILES_BEFORE_STOP`] tiles.
const SLOW_RATE: &str = "5";
const TILES_BEFORE_STOP: usize = 5;

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Runs a command that must succeed; returns its stdout.
fn run_ok(args: &[&str]) -> String {
    run(&mut twine(args)).expect_success()
}

/// (seeded, already cached) from the final `seeded N tiles (M already cached) ...` line.
fn summary(stdout: &str) -> (u64, u64) {
    let line = stdout
        .lines()
        .find(|l| l.starts_with("seeded "))
        .unwrap_or_else(|| panic!("no summary line in {stdout:?}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    // Counts are printed with digits grouped: `1,234`.
    let count = |word: &str| -> u64 {
        word.trim_start_matches('(')
            .replace(',', "")
            .parse()
            .expect("a count")
    };
    let (seeded, cached) = (count(words[1]), count(words[3]));
    (seeded, cached)
}

/// Tiles of `layer` that `cache stats` reports (0 when it lists no such layer).
fn stats_tiles(dir: &Path, layer: &str) -> u64 {
    let stdout = run_ok(&["cache", "stats", "--cache-dir", path(dir)]);
    let prefix = format!("layer {layer}: ");
    stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix(&prefix))
        .map_or(0, |rest| {
            rest.split_whitespace()
                .next()
                .and_then(|n| n.parse().ok())
                .expect("tile count")
        })
}

/// Opens the folder as the server does and reads every tile a default-style demo seed of
/// zooms 0..=`max_zoom` can have written: every file must be one of them and whole (no
/// corrupt files), and no temp file may survive the open. Returns the number of tiles.
fn assert_cache_valid(dir: &Path, max_zoom: u8) -> u64 {
    let disk = DiskCache::open(dir, u64::MAX).expect("open the cache");
    let leftovers: Vec<PathBuf> = files_under(dir)
        .into_iter()
        .filter(|p| p.to_string_lossy().contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "temp files after open: {leftovers:?}");
    let layer = Layer::new(
        "demo",
        std::sync::Arc::new(MemoryStore::new(demo_points().expect("demo"), None)),
    );
    let spec = StyleSpec::from_query(&Query::default()).expect("default style");
    let files = disk.stats().files;
    let mut found = 0;
    for z in 0..=max_zoom {
        let n = TileCoord::count(z) as u32;
        for x in 0..n {
            for y in 0..n {
                let key = tile_key(&layer, &spec, &FilterValues::NONE, 1, TileCoord { z, x, y });
                if let Some(png) = disk.get(&key) {
                    assert!(png.starts_with(b"\x89PNG"), "{z}/{x}/{y} is no PNG");
                    found += 1;
                }
            }
        }
    }
    let stats = disk.stats();
    assert_eq!(stats.corrupt, 0, "corrupt tiles found");
    assert_eq!(found, files, "every file on disk is a whole seeded tile");
    found
}

/// `serve` of the demo layer with `cache_dir` as its disk cache, and `extra` flags.
fn serve(cache_dir: &Path, extra: &[&str]) -> ServeProcess {
    ServeProcess::start(&[&["--cache-dir", path(cache_dir)], extra].concat())
}

/// A tile answer, which must be a 200.
fn tile(server: &TestServer, path: &str) -> Reply {
    let reply = server.get(path);
    assert_eq!(reply.status, 200, "GET {path}");
    reply
}

/// Where a tile came from: its X-Cache header.
fn x_cache(server: &TestServer, path: &str) -> String {
    tile(server, path)
        .header("x-cache")
        .unwrap_or_default()
        .to_string()
}

/// `seed` of demo zooms 0-7 over Europe into `dir`, with `extra` flags: the seed the stop
/// tests interrupt and resume.
fn europe_seed<'a>(dir: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
    let args = [
        "seed",
        "--layer",
        "demo",
        "--zoom",
        "0-7",
        "--bbox",
        EUROPE,
        "--cache-dir",
        path(dir),
    ];
    [&args[..], extra].concat()
}

/// Starts [`europe_seed`] two tiles at a time and throttled to [`SLOW_RATE`], and returns it
/// once it has written a few tiles: a stop then lands mid-way, however fast the machine.
fn start_slow_seed(dir: &Path) -> Child {
    let mut child = twine(&europe_seed(
        dir,
        &["--concurrency", "2", "--max-rate", SLOW_RATE],
    ))
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("spawn seed");
    let deadline = Instant::now() + Duration::from_secs(60);
    while tile_files(dir).len() < TILES_BEFORE_STOP {
        assert!(Instant::now() < deadline, "seed wrote no tiles");
        assert!(
            child.try_wait().expect("wait").is_none(),
            "seed ended before it could be stopped"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    child
}

#[test]
fn seeded_tiles_are_disk_hits_in_any_parameter_order() {
    let dir = Scratch::new("cache-cli-hits");
    let seed = [
        "seed",
        "--layer",
        "demo",
        "--zoom",
        "0-3",
        "--cache-dir",
        path(&dir),
    ];
    let first = run_ok(&seed);
    let (seeded, cached) = summary(&first);
    assert!(seeded > 0 && cached == 0, "{first}");
    let size_unit = first
        .lines()
        .find(|l| l.starts_with("seeded "))
        .and_then(|l| l.split_whitespace().last());
    assert!(
        matches!(size_unit, Some("B" | "KB" | "MB" | "GB")),
        "the summary ends with the size written: {first}"
    );
    // Parameters in one order when seeding, the other when requesting.
    run_ok(&[
        "seed",
        "--layer",
        "demo",
        "--zoom",
        "2",
        "--style",
        "scheme=fire&style=dots",
        "--cache-dir",
        path(&dir),
    ]);
    let again = run_ok(&seed);
    assert_eq!(summary(&again), (0, seeded), "a re-run finds every tile");

    let server = serve(&dir, &[]);
    assert_eq!(x_cache(&server, "/tiles/demo/2/1/1.png"), "hit-disk");
    assert_eq!(
        x_cache(&server, "/tiles/demo/2/1/1.png?style=dots&scheme=fire"),
        "hit-disk"
    );
    // Control: what was not seeded is rendered.
    assert_eq!(x_cache(&server, "/tiles/demo/2/1/1@2x.png"), "miss");
}

#[test]
fn max_rate_spaces_renders_and_skips_cached_tiles_at_full_speed() {
    let dir = Scratch::new("cache-cli-max-rate");
    // Zooms 0-1: 5 tiles. At 4 a second the renders start 0.25 s apart, so the last one
    // starts a whole second after the first: a lower bound, which no slow machine breaks.
    let seed = |rate: &'static str| {
        [
            "seed",
            "--layer",
            "demo",
            "--zoom",
            "0-1",
            "--max-rate",
            rate,
            "--cache-dir",
            path(&dir),
        ]
    };
    let started = Instant::now();
    let first = run_ok(&seed("4"));
    let took = started.elapsed();
    assert_eq!(summary(&first), (5, 0), "{first}");
    assert!(
        took >= Duration::from_secs(1),
        "5 tiles at 4/s took {took:?}"
    );
    // The re-run finds every tile on disk and renders none: at one tile per 100 s it would
    // need minutes if skips were throttled too, and run_within stops it after 60 s.
    let rerun = run_within(&mut twine(&seed("0.01")), Duration::from_secs(60));
    assert_eq!(rerun.status.code(), Some(0), "{}", rerun.stderr);
    assert_eq!(summary(&rerun.stdout), (0, 5), "{}", rerun.stdout);
}

#[test]
fn a_seed_killed_mid_way_leaves_only_whole_tiles_and_resumes() {
    let dir = Scratch::new("cache-cli-sigkill");
    let mut child = start_slow_seed(&dir);
    child.kill().expect("SIGKILL");
    let status = child.wait().expect("wait");
    assert!(!status.success(), "killed seed: {status:?}");
    let before = assert_cache_valid(&dir, 7);
    assert!(before > 0);

    let rerun = run_ok(&europe_seed(&dir, &[]));
    let (seeded, cached) = summary(&rerun);
    assert_eq!(cached, before, "the re-run reuses every tile left: {rerun}");
    assert!(seeded > 0, "the kill landed mid-way: {rerun}");
    assert_eq!(stats_tiles(&dir, "demo"), seeded + cached);
    assert_eq!(assert_cache_valid(&dir, 7), seeded + cached);

    // 10°E 50°N at zoom 7.
    let server = serve(&dir, &[]);
    let reply = tile(&server, "/tiles/demo/7/67/43.png");
    assert_eq!(reply.header("x-cache"), Some("hit-disk"));
    let (w, h, _) = reply.rgba();
    assert_eq!((w, h), (256, 256));
}

#[test]
fn sigint_stops_a_seed_with_130_and_a_valid_cache() {
    let dir = Scratch::new("cache-cli-sigint");
    let child = start_slow_seed(&dir);
    signal(&child, "INT");
    let out = child.wait_with_output().expect("wait");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(130), "{stdout}\n{stderr}");
    assert!(stderr.contains("interrupted by SIGINT"), "{stderr}");
    let (seeded, cached) = summary(&stdout);
    assert_eq!(cached, 0);
    assert_eq!(
        assert_cache_valid(&dir, 7),
        seeded,
        "every tile counted is on disk"
    );
}

/// The XYZ tile columns and rows a box in degrees overlaps at zoom `z` (computed here
/// independently of the crate).
fn tiles_in(w: f64, s: f64, e: f64, n: f64, z: u8) -> u64 {
    let count = f64::from(1u32 << z);
    let x = |lon: f64| (lon + 180.0) / 360.0 * count;
    let y = |lat: f64| {
        let r = lat.to_radians();
        (1.0 - (r.tan() + 1.0 / r.cos()).ln() / std::f64::consts::PI) / 2.0 * count
    };
    let cols = x(e).ceil() - x(w).floor();
    let rows = y(s).ceil() - y(n).floor();
    (cols * rows) as u64
}

#[test]
fn purge_removes_exactly_the_matching_tiles() {
    let dir = Scratch::new("cache-cli-purge");
    run_ok(&[
        "seed",
        "--layer",
        "demo",
        "--zoom",
        "0-4",
        "--cache-dir",
        path(&dir),
    ]);
    let purge =
        |args: &[&str]| run_ok(&[&["cache", "purge", "--cache-dir", path(&dir)], args].concat());
    let before = stats_tiles(&dir, "demo");
    let expected = tiles_in(10.0, 10.0, 80.0, 50.0, 3) + tiles_in(10.0, 10.0, 80.0, 50.0, 4);
    assert_eq!(expected, 4 + 12);
    let out = purge(&["--layer", "demo", "--zoom", "3-4", "--bbox", "10,10,80,50"]);
    assert!(
        out.contains(&format!("removed {expected} tiles (")),
        "{out}"
    );
    assert_eq!(stats_tiles(&dir, "demo"), before - expected);
    let other = purge(&["--layer", "other"]);
    assert!(other.contains("removed 0 tiles (0 bytes)"), "{other}");
    assert_eq!(stats_tiles(&dir, "demo"), before - expected);

    {
        let server = serve(&dir, &[]);
        // Inside the box at a purged zoom: gone. Outside the box, or at another zoom: kept.
        assert_eq!(x_cache(&server, "/tiles/demo/3/4/2.png"), "miss");
        assert_eq!(x_cache(&server, "/tiles/demo/4/11/7.png"), "miss");
        assert_eq!(x_cache(&server, "/tiles/demo/4/12/7.png"), "hit-disk");
        assert_eq!(x_cache(&server, "/tiles/demo/2/2/1.png"), "hit-disk");
    }

    let left = stats_tiles(&dir, "demo");
    let all = purge(&["--layer", "demo"]);
    assert!(all.contains(&format!("removed {left} tiles (")), "{all}");
    assert_eq!(stats_tiles(&dir, "demo"), 0);
}

/// `cache stats --cache-dir CACHE --server URL`'s stdout.
fn stats_with_server(cache: &Path, server: &TestServer) -> String {
    run_ok(&[
        "cache",
        "stats",
        "--cache-dir",
        path(cache),
        "--server",
        &server.base,
    ])
}

#[test]
fn stats_lists_each_layer_and_a_servers_memory_tier() {
    let dir = Scratch::new("cache-cli-stats");
    let cache = dir.join("cache");
    let csv = dir.join("stations.csv");
    std::fs::write(&csv, "lon,lat,weight\n13.4,52.5,2\n2.35,48.85,1\n").expect("csv");
    let stations = run_ok(&[
        "seed",
        "--points",
        path(&csv),
        "--layer",
        "stations",
        "--zoom",
        "0-5",
        "--cache-dir",
        path(&cache),
    ]);
    let demo = run_ok(&[
        "seed",
        "--layer",
        "demo",
        "--zoom",
        "0-1",
        "--cache-dir",
        path(&cache),
    ]);
    let stdout = run_ok(&[
        "cache",
        "stats",
        "--cache-dir",
        path(&cache),
        "--cache-disk",
        "10MB",
    ]);
    assert!(
        stdout.contains("of a 10.0 MB budget (--cache-disk; "),
        "{stdout}"
    );
    let stdout = run_ok(&["cache", "stats", "--cache-dir", path(&cache)]);
    assert!(
        stdout.contains("of a 1.0 GB budget (the default; give --cache-disk; "),
        "{stdout}"
    );
    assert_eq!(stats_tiles(&cache, "stations"), summary(&stations).0);
    assert_eq!(stats_tiles(&cache, "demo"), summary(&demo).0);

    // A server of another folder says nothing of this folder's budget.
    let elsewhere = serve(&dir.join("other-cache"), &["--cache-disk", "30MB"]);
    let stdout = stats_with_server(&cache, &elsewhere);
    assert!(
        stdout.contains("(the default; give --cache-disk; "),
        "{stdout}"
    );

    let server = serve(&cache, &["--cache-disk", "20MB"]);
    assert_eq!(x_cache(&server, "/tiles/demo/3/0/0.png"), "miss");
    assert_eq!(x_cache(&server, "/tiles/demo/3/0/0.png"), "hit-memory");
    let stdout = stats_with_server(&cache, &server);
    let memory = stdout
        .lines()
        .find(|l| l.starts_with("memory tier"))
        .unwrap_or_else(|| panic!("no memory line: {stdout}"));
    assert!(!memory.contains(": 0 bytes"), "{memory}");
    assert!(
        stdout.contains("hits: memory 1, disk 0; misses 1"),
        "{stdout}"
    );
    assert!(
        stdout.contains("of a 20.0 MB budget (the server's; "),
        "{stdout}"
    );
}

#[test]
fn errors_name_the_problem() {
    let dir = Scratch::new("cache-cli-errors");
    let cache = path(&dir);
    let seed = |extra: &[&'static str]| [&["seed", "--cache-dir", cache][..], extra].concat();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            seed(&["--layer", "nope", "--zoom", "0-2"]),
            "unknown layer \"nope\"",
        ),
        (
            seed(&["--layer", "demo", "--zoom", "9-2"]),
            "--zoom: \"9-2\"",
        ),
        (seed(&["--layer", "demo", "--zoom", "0-99"]), "--zoom"),
        (
            seed(&["--layer", "demo", "--zoom", "0-2", "--bbox", "1,2,3"]),
            "--bbox",
        ),
        (
            seed(&["--layer", "demo", "--zoom", "0-2", "--bbox", "10,0,-10,5"]),
            "--bbox",
        ),
        (
            seed(&["--layer", "demo", "--zoom", "0-2", "--style", "style=bogus"]),
            "\"bogus\" is not a style",
        ),
        (
            seed(&["--layer", "demo", "--zoom", "0-2", "--style", "colour=red"]),
            "--style: colour",
        ),
        (
            seed(&["--layer", "demo", "--zoom", "0-2", "--concurrency", "0"]),
            "--concurrency",
        ),
        (
            seed(&["--layer", "demo", "--zoom", "0-2", "--max-rate", "0"]),
            "--max-rate",
        ),
        (
            seed(&["--layer", "demo", "--zoom", "0-2", "--max-rate", "fast"]),
            "not a number of tiles per second",
        ),
        (
            vec!["seed", "--layer", "demo", "--zoom", "0-2"],
            "--cache-dir",
        ),
        (vec!["cache", "purge", "--layer", "demo"], "--cache-dir"),
        (
            vec![
                "cache",
                "purge",
                "--cache-dir",
                cache,
                "--layer",
                "demo",
                "--zoom",
                "5-1",
            ],
            "--zoom",
        ),
        (
            vec!["cache", "stats", "--cache-dir", "/nonexistent/twine-cache"],
            "/nonexistent/twine-cache",
        ),
        (
            vec![
                "cache",
                "stats",
                "--cache-dir",
                cache,
                "--server",
                "http://127.0.0.1:1",
            ],
            "--server",
        ),
    ];
    for (args, expected) in cases {
        let stderr = run(&mut twine(&args)).expect_failure();
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        // Our own refusals are one line (clap's usage errors carry their own hints).
        if stderr.starts_with("twine-heatmap:") {
            assert_eq!(stderr.trim().lines().count(), 1, "{args:?}: {stderr}");
        }
    }
    assert_eq!(tile_files(&dir).len(), 0, "no failed command wrote a tile");
}

/// Runs `twine-heatmap ARGS` and waits at most 60 s for it to exit: a command that should
/// have refused to start but runs on fails the test (and is stopped) instead of hanging it.
fn run_refused(args: &[&str]) -> (Option<i32>, String) {
    let outcome = run_within(&mut twine(args), Duration::from_secs(60));
    (outcome.status.code(), outcome.stderr)
}

/// A second server on a cache folder in use is refused, naming the folder and the process
/// holding it, and the first keeps serving; so is a seed into that folder, while `cache stats`
/// and `cache purge` still work beside it. Once the first stops, the folder is free again.
#[test]
fn a_second_server_on_a_cache_folder_in_use_is_refused() {
    let dir = Scratch::new("cache-cli-lock");
    let first = serve(&dir, &[]);
    assert_eq!(x_cache(&first, "/tiles/demo/2/1/1.png"), "miss");
    let bind = format!("127.0.0.1:{}", common::process::free_port());
    let (code, stderr) = run_refused(&["serve", "--bind", &bind, "--cache-dir", path(&dir)]);
    assert!(code.is_some_and(|c| c != 0), "exit {code:?}: {stderr}");
    assert!(stderr.contains(path(&dir)), "names the folder: {stderr}");
    assert!(
        stderr.contains(&format!("pid {}", first.pid())),
        "names the holder: {stderr}"
    );
    let (code, stderr) = run_refused(&[
        "seed",
        "--layer",
        "demo",
        "--zoom",
        "0",
        "--cache-dir",
        path(&dir),
    ]);
    assert!(code.is_some_and(|c| c != 0), "exit {code:?}: {stderr}");
    assert!(stderr.contains("in use"), "{stderr}");
    assert!(
        stderr.contains("seed before starting the server"),
        "{stderr}"
    );
    // The first server is untouched.
    assert_eq!(tile(&first, "/tiles/demo/2/2/1.png").status, 200);
    assert_eq!(x_cache(&first, "/tiles/demo/2/1/1.png"), "hit-memory");
    // Stats and purges work beside it.
    wait_until("the tiles to be written", 10, || {
        stats_tiles(&dir, "demo") == 2
    });
    let purged = run_ok(&[
        "cache",
        "purge",
        "--cache-dir",
        path(&dir),
        "--layer",
        "demo",
        "--zoom",
        "2",
    ]);
    assert!(purged.contains("removed 2 tiles ("), "{purged}");
    assert_eq!(tile(&first, "/tiles/demo/2/1/1.png").status, 200);

    drop(first);
    let second = serve(&dir, &[]);
    assert_eq!(tile(&second, "/tiles/demo/2/1/1.png").status, 200);
}
