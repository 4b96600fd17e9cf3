//! The tile cache over real HTTP: X-Cache tiers, strong ETags and 304s, Cache-Control bands,
//! normalized keys, a disk tier that survives a restart and refuses corrupt files, budgets,
//! invalidation by data version, and one render plus one database query for 64 concurrent
//! requests of a missing tile.

mod common;

use common::pg;
use common::process::ServeProcess;
use common::scratch::{allocated_under, tile_files, Scratch};
use common::{eventually, metric, wait_until, TestServer};
use std::time::{Duration, Instant};
use twine_heatmap::app::ServeArgs;

/// The demo server with `toml` as its config file (kept in `dir`).
fn demo_server_with_config(dir: &Scratch, toml: &str) -> TestServer {
    TestServer::from_args(&ServeArgs {
        config: Some(dir.file("config.toml", toml)),
        ..ServeArgs::default()
    })
}

#[test]
fn memory_tier_etags_and_cache_control() {
    let dir = Scratch::new("cache-http-memory");
    let s = demo_server_with_config(
        &dir,
        "[[cache.control]]\nzooms = \"0-5\"\nvalue = \"public, max-age=86400\"\n\
         [[cache.control]]\nzooms = \"6-24\"\nvalue = \"public, max-age=60\"\n",
    );
    let first = s.get("/tiles/demo/3/4/2.png?scheme=fire&radius=20");
    assert_eq!(first.status, 200);
    assert_eq!(first.header("x-cache"), Some("miss"));
    let etag = first.header("etag").expect("etag").to_string();
    assert!(
        etag.starts_with('"') && etag.len() > 10,
        "strong etag: {etag}"
    );
    assert_eq!(first.header("cache-control"), Some("public, max-age=86400"));
    // The same request spelled differently shares the entry.
    let again = s.get("/tiles/demo/3/4/2.png?radius=20&max=1.0&blur=15&style=smooth&scheme=fire");
    assert_eq!(again.header("x-cache"), Some("hit-memory"));
    assert_eq!(again.body, first.body);
    assert_eq!(again.header("etag"), Some(etag.as_str()));
    let memory = &s.get("/health").json()["cache"]["memory"];
    assert_eq!(memory["tiles"], 1, "{memory}");
    assert_eq!(memory["budget"], 256_000_000u64, "{memory}");
    assert!(
        memory["bytes"].as_u64().unwrap_or(0) > first.body.len() as u64,
        "{memory}"
    );
    // 304 on a matching If-None-Match (also inside a list), 200 on another.
    let not_modified = ureq::get(&format!(
        "{}/tiles/demo/3/4/2.png?scheme=fire&radius=20",
        s.base
    ))
    .set("If-None-Match", &format!("\"other\", {etag}"))
    .call()
    .expect("304");
    assert_eq!(not_modified.status(), 304);
    assert_eq!(not_modified.header("etag"), Some(etag.as_str()));
    let other = ureq::get(&format!(
        "{}/tiles/demo/3/4/2.png?scheme=fire&radius=20",
        s.base
    ))
    .set("If-None-Match", "\"nope\"")
    .call()
    .expect("200");
    assert_eq!(other.status(), 200);
    // A deeper zoom gets the other band; empty tiles are cached too.
    let deep = s.get("/tiles/demo/9/10/200.png");
    assert_eq!(deep.header("cache-control"), Some("public, max-age=60"));
    assert_eq!(deep.header("x-cache"), Some("miss"));
    assert_eq!(
        s.get("/tiles/demo/9/10/200.png").header("x-cache"),
        Some("hit-memory")
    );
    assert!(metric(&s, "twine_cache_hits_total{tier=\"memory\"}") >= 2.0);
}

#[test]
fn a_memory_hit_answered_before_routing_equals_the_routed_answer() {
    // The middleware answers memory hits itself (http::tiles::memory_hit); a path with a
    // percent-escape takes the routed handler instead, which the router decodes to the same
    // tile. Both must give the same answer, and both count as tile requests. A
    // Cache-Control band per zoom makes the answer depend on the tile's zoom.
    let dir = Scratch::new("cache-http-early-hit");
    let s = demo_server_with_config(
        &dir,
        "[[cache.control]]\nzooms = \"3\"\nvalue = \"public, max-age=3333\"\n",
    );
    let (fast, routed) = (
        "/tiles/demo/3/4/2.png?scheme=fire",
        "/tiles/%64emo/3/4/2.png?scheme=fire",
    );
    assert_eq!(s.get(fast).header("x-cache"), Some("miss"));
    let tile_requests = || metric(&s, "twine_request_seconds_count{route=\"tile\"}");
    let before = tile_requests();
    let mut answers = Vec::new();
    for (method, path) in [
        ("GET", fast),
        ("GET", routed),
        ("HEAD", fast),
        ("HEAD", routed),
    ] {
        let mut answer = s.request(method, path, &[]);
        assert_eq!(answer.status, 200, "{method} {path}");
        assert_eq!(
            answer.header("x-cache"),
            Some("hit-memory"),
            "{method} {path}"
        );
        // The date, and the request id that each answer has its own of.
        answer
            .headers
            .retain(|(name, _)| name != "date" && name != "x-request-id");
        answer.headers.sort();
        answers.push(answer);
    }
    assert_eq!(tile_requests() - before, 4.0);
    assert_eq!(
        answers[0].header("cache-control"),
        Some("public, max-age=3333")
    );
    assert_eq!(answers[0].headers, answers[1].headers);
    assert_eq!(answers[0].body, answers[1].body);
    assert!(!answers[0].body.is_empty());
    for head in &answers[2..] {
        assert_eq!(head.headers, answers[0].headers);
        assert!(head.body.is_empty());
    }
    // Only reads are answered early: another method still gets the routed 405.
    assert_eq!(s.request("DELETE", fast, &[]).status, 405);
}

#[test]
fn the_memory_budget_holds() {
    let budget = 200_000u64;
    let s = TestServer::from_args(&ServeArgs {
        cache_memory: Some(budget.to_string()),
        ..ServeArgs::default()
    });
    for x in 0..16 {
        for y in 0..8 {
            assert_eq!(s.get(&format!("/tiles/demo/4/{x}/{y}.png")).status, 200);
            assert!(metric(&s, "twine_cache_bytes{tier=\"memory\"}") <= budget as f64);
        }
    }
    assert!(metric(&s, "twine_cache_evictions_total{tier=\"memory\"}") > 0.0);
}

/// `serve` of the demo layer as a process, with `dir` as its disk tier and no memory tier:
/// stopped (dropped) before another server takes the same folder.
fn disk_only_server(dir: &std::path::Path) -> ServeProcess {
    let dir = dir.to_str().expect("utf-8 path");
    ServeProcess::start(&["--cache-dir", dir, "--cache-memory", "0"])
}

#[test]
fn the_disk_tier_survives_restarts_and_refuses_corrupt_files() {
    let dir = Scratch::new("cache-http-disk");
    let s = disk_only_server(&dir);
    let first = s.get("/tiles/demo/5/16/10.png");
    assert_eq!(first.header("x-cache"), Some("miss"));
    // The disk write happens behind the response.
    wait_for_disk_hit(&s, "/tiles/demo/5/16/10.png", "never a disk hit");
    // A new server on the same folder starts warm (once the first has stopped: a folder
    // serves one server at a time).
    drop(s);
    let restarted = disk_only_server(&dir);
    let warm = restarted.get("/tiles/demo/5/16/10.png");
    assert_eq!(warm.header("x-cache"), Some("hit-disk"));
    assert_eq!(warm.body, first.body);
    // /health tells the tiers' state: memory off here, the disk tier's use and budget.
    let cache = &restarted.get("/health").json()["cache"];
    assert_eq!(cache["memory"], "off", "{cache}");
    let disk = &cache["disk"];
    assert_eq!(disk["tiles"], 1, "{cache}");
    assert_eq!(disk["budget"], 1_000_000_000u64, "{cache}");
    assert_eq!(disk["writable"], true, "{cache}");
    assert_eq!(disk["dir"], dir.to_string_lossy().as_ref(), "{cache}");
    assert!(
        disk["bytes"].as_u64().unwrap_or(0) > first.body.len() as u64,
        "{cache}"
    );
    // Damage every tile file: it is detected, never served, and rendered again.
    let mut damaged = 0;
    for entry in tile_files(&dir) {
        let mut bytes = std::fs::read(&entry).expect("read");
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0xff;
        std::fs::write(&entry, &bytes).expect("write");
        damaged += 1;
    }
    assert!(damaged > 0);
    drop(restarted);
    let fresh = disk_only_server(&dir);
    let again = fresh.get("/tiles/demo/5/16/10.png");
    assert_eq!(again.header("x-cache"), Some("miss"));
    assert_eq!(again.body, first.body);
    assert_eq!(
        fresh.get("/health").json()["cache"]["disk"]["corrupt_discarded"],
        1
    );
    // The re-rendered tile is written back (behind the response): wait for it.
    wait_for_disk_hit(
        &fresh,
        "/tiles/demo/5/16/10.png",
        "the re-rendered tile was never written back",
    );
    // Truncated files too.
    for entry in tile_files(&dir) {
        let bytes = std::fs::read(&entry).expect("read");
        std::fs::write(&entry, &bytes[..bytes.len() / 3]).expect("write");
    }
    drop(fresh);
    let last = disk_only_server(&dir);
    let truncated = last.get("/tiles/demo/5/16/10.png");
    assert_eq!(truncated.header("x-cache"), Some("miss"));
    assert_eq!(truncated.body, first.body);
    // Written back too; waiting for it also keeps the write from landing in the scratch
    // folder after the test has removed it.
    wait_for_disk_hit(
        &last,
        "/tiles/demo/5/16/10.png",
        "the tile re-rendered over a truncated file was never written back",
    );
}

/// GET `path` with every wait bounded (30 s), so that a request the server never answers
/// fails the test rather than hanging the run: (status, X-Cache, body).
fn get_within(server: &TestServer, path: &str) -> (u16, String, Vec<u8>) {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(30))
        .build();
    let response = match agent.get(&format!("{}{path}", server.base)).call() {
        Ok(r) | Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("GET {path}: no answer within 30 s: {e}"),
    };
    let status = response.status();
    let x_cache = response.header("x-cache").unwrap_or_default().to_string();
    let mut body = Vec::new();
    std::io::Read::read_to_end(&mut response.into_reader(), &mut body)
        .unwrap_or_else(|e| panic!("GET {path}: body not read within 30 s: {e}"));
    (status, x_cache, body)
}

fn mkfifo(path: &std::path::Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("run mkfifo");
    assert!(status.success(), "mkfifo {}", path.display());
}

/// The peak resident memory of process `pid`, in bytes (`VmHWM` in /proc).
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM");
    kb * 1024
}

/// `twine_cache_rejected_files_total{reason}`.
fn rejected(server: &TestServer, reason: &str) -> f64 {
    metric(
        server,
        &format!("twine_cache_rejected_files_total{{reason=\"{reason}\"}}"),
    )
}

/// A FIFO, links to /dev/zero and to a 1 GB file, and a 1 GB file put in the place of cached
/// tiles: each is dropped and counted, never read, and its tile rendered again and served;
/// the server keeps answering (a FIFO once blocked a worker for good, and the links made it
/// read without end). At start-up, FIFOs as a tile and as a layer's name file are dropped too.
#[test]
fn files_in_a_tiles_place_are_dropped_and_counted_never_read() {
    let dir = Scratch::new("cache-http-hostile");
    let cache = dir.join("cache");
    let big = dir.join("big");
    std::fs::File::create(&big)
        .and_then(|f| f.set_len(1 << 30))
        .expect("a 1 GB sparse file");
    let s = disk_only_server(&cache);
    let paths = [
        "/tiles/demo/5/16/10.png",
        "/tiles/demo/5/17/10.png",
        "/tiles/demo/4/8/5.png",
        "/tiles/demo/3/4/2.png",
    ];
    // Each tile's file: the one that appears once it is written.
    let (mut files, mut bodies) = (Vec::new(), Vec::new());
    for path in paths {
        let before = tile_files(&cache);
        bodies.push(s.get(path).body);
        wait_for_disk_hit(&s, path, "never a disk hit");
        let new: Vec<_> = tile_files(&cache)
            .into_iter()
            .filter(|p| !before.contains(p))
            .collect();
        assert_eq!(new.len(), 1, "{path}: {new:?}");
        files.push(new[0].clone());
    }
    for file in &files {
        std::fs::remove_file(file).expect("remove tile");
    }
    mkfifo(&files[0]);
    std::os::unix::fs::symlink("/dev/zero", &files[1]).expect("link");
    std::os::unix::fs::symlink(&big, &files[2]).expect("link");
    std::fs::File::create(&files[3])
        .and_then(|f| f.set_len(1 << 30))
        .expect("a 1 GB sparse tile");

    for (path, body) in paths.iter().zip(&bodies) {
        let (status, x_cache, again) = get_within(&s, path);
        assert_eq!((status, x_cache.as_str()), (200, "miss"), "{path}");
        assert!(again == *body, "{path}: another tile");
        assert_eq!(get_within(&s, "/health").0, 200, "/health after {path}");
    }
    assert_eq!(rejected(&s, "not_regular"), 1.0);
    assert_eq!(rejected(&s, "symlink"), 2.0);
    assert_eq!(rejected(&s, "too_large"), 1.0);
    assert_eq!(rejected(&s, "corrupt"), 0.0);
    // Nothing was read into memory: far below the 1 GB it would have taken.
    let peak = peak_rss(s.pid());
    assert!(peak < 512 << 20, "peak RSS {peak} bytes");
    assert_eq!(std::fs::metadata(&big).expect("big").len(), 1 << 30);
    for path in paths {
        wait_for_disk_hit(&s, path, "the re-rendered tile was never written back");
    }

    // A restart over a FIFO in a tile's place and another as the layer's name file.
    drop(s);
    std::fs::remove_file(&files[0]).expect("remove tile");
    mkfifo(&files[0]);
    let layer_dir = files[0]
        .parent()
        .and_then(|shard| shard.parent())
        .expect("layer folder");
    std::fs::remove_file(layer_dir.join("layer.txt")).expect("remove layer.txt");
    mkfifo(&layer_dir.join("layer.txt"));
    let s = disk_only_server(&cache);
    let (status, x_cache, again) = get_within(&s, paths[0]);
    assert_eq!((status, x_cache.as_str()), (200, "miss"));
    assert!(again == bodies[0]);
    assert_eq!(get_within(&s, paths[1]).1, "hit-disk");
    assert_eq!(rejected(&s, "not_regular"), 2.0);
    wait_for_disk_hit(&s, paths[0], "the tile was never written back");
}

/// A shard folder of the cache made a link to a folder elsewhere (by anyone who can write
/// in the cache folder) is never written through: a tile that belongs in it is written in a
/// real folder made in the link's place, the link is dropped and counted, and nothing
/// lands outside the cache folder.
#[test]
fn shard_folders_that_are_links_are_never_written_through() {
    let dir = Scratch::new("cache-http-linked-shards");
    let (cache, outside) = (dir.join("cache"), dir.join("outside"));
    std::fs::create_dir_all(&outside).expect("outside");
    let s = disk_only_server(&cache);
    // A first tile makes the layer's folder.
    let first = "/tiles/demo/5/16/10.png";
    assert_eq!(s.get(first).status, 200);
    wait_for_disk_hit(&s, first, "never a disk hit");
    let files = tile_files(&cache);
    let shard = files[0].parent().expect("shard folder").to_path_buf();
    let layer = shard.parent().expect("layer folder").to_path_buf();
    // Every shard folder of the layer a link to `outside`: wherever the next tile belongs.
    std::fs::remove_dir_all(&shard).expect("remove the shard folder");
    for b in 0..=255u8 {
        std::os::unix::fs::symlink(&outside, layer.join(format!("{b:02x}"))).expect("link");
    }
    let path = "/tiles/demo/5/17/10.png";
    let reply = s.get(path);
    assert_eq!((reply.status, reply.header("x-cache")), (200, Some("miss")));
    wait_for_disk_hit(
        &s,
        path,
        "the tile was never written inside the cache folder",
    );
    let outside_files: Vec<_> = std::fs::read_dir(&outside)
        .expect("outside")
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(
        outside_files.is_empty(),
        "written outside: {outside_files:?}"
    );
    assert_eq!(rejected(&s, "symlink"), 1.0);
}

/// The disk budget holds in blocks on disk, the folders included: many small tiles (empty
/// ones, a few hundred bytes each, in 4 KiB blocks) keep `du` of the folder within the
/// budget, and `twine_cache_bytes{tier="disk"}` reports that use.
#[test]
fn the_disk_budget_holds_in_allocated_blocks() {
    let dir = Scratch::new("cache-http-du");
    let budget = 2_000_000u64;
    let s = ServeProcess::start(&[
        "--cache-dir",
        dir.to_str().expect("utf-8 path"),
        "--cache-memory",
        "0",
        "--cache-disk",
        "2MB",
    ]);
    // The South Pacific at zoom 12: no demo point near, every tile empty.
    let tiles: Vec<String> = (560..590)
        .flat_map(|x| (2550..2570).map(move |y| format!("/tiles/demo/12/{x}/{y}.png")))
        .collect();
    for path in &tiles {
        assert_eq!(s.get(path).status, 200, "{path}");
    }
    let last = tiles.last().expect("tiles");
    wait_for_disk_hit(&s, last, "the last tile was never written");
    let used = allocated_under(&dir);
    assert!(
        used <= budget + budget / 20,
        "the folder takes {used} bytes on disk, over the {budget}-byte budget"
    );
    let reported = metric(&s, "twine_cache_bytes{tier=\"disk\"}") as u64;
    assert!(reported <= budget, "reported {reported}");
    assert!(
        used <= reported + budget / 20,
        "reported {reported}, on disk {used}"
    );
    assert!(metric(&s, "twine_cache_evictions_total{tier=\"disk\"}") > 0.0);
}

/// Asks for `path` until the disk tier answers it (tiles are written behind the response),
/// failing with `why` after 10 s.
fn wait_for_disk_hit(server: &TestServer, path: &str, why: &str) {
    assert!(
        eventually(10, || server.get(path).header("x-cache")
            == Some("hit-disk")),
        "{why}"
    );
}

/// A declared PostGIS layer: 64 concurrent requests for one missing tile make exactly one
/// render and one database query; after a write to the table the new version's tile is served.
#[test]
fn one_render_per_missing_tile_and_no_stale_tiles_after_a_write() {
    let pid = std::process::id();
    let (layer, table) = (format!("cached{pid}"), format!("cached_{pid}"));
    let db = pg::Db::connect();
    let _table = pg::ScratchTable::create(&db, &table, "geom geometry(Point, 4326)", |t| {
        db.batch(&format!(
            "INSERT INTO {t} SELECT ST_SetSRID(ST_MakePoint(10 + (i % 100) * 0.01, 50 + (i / 100) * 0.01), 4326) FROM generate_series(0, 9999) i;"
        ));
    });
    let dir = Scratch::new("cache-http-pg");
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!("[[layers]]\nname = \"{layer}\"\ntable = \"public.{table}\"\n"),
    )
    .expect("config");
    // The table's data-version trigger, which only `db init` (never the server) installs.
    pg::db_init(&pg::database_url(), &config);
    let s = TestServer::from_args(&ServeArgs {
        config: Some(config),
        database_url: Some(pg::database_url()),
        cache_dir: Some(dir.join("tiles")),
        ..ServeArgs::default()
    });
    // Warm the layer's statistics with another tile.
    wait_until("the layer to be served", 20, || {
        s.get(&format!("/tiles/{layer}/6/33/20.png")).status == 200
    });
    let (renders, queries) = (
        metric(&s, "twine_tiles_rendered_total"),
        metric(&s, "twine_db_queries_total"),
    );
    let url = format!("{}/tiles/{layer}/6/33/21.png?max=0.01", s.base);
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(64));
    let handles: Vec<_> = (0..64)
        .map(|_| {
            let (url, barrier) = (url.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                let r = ureq::get(&url).call().expect("tile");
                let mut body = Vec::new();
                std::io::Read::read_to_end(&mut r.into_reader(), &mut body).expect("body");
                body
            })
        })
        .collect();
    let bodies: Vec<Vec<u8>> = handles
        .into_iter()
        .map(|h| h.join().expect("thread"))
        .collect();
    assert!(bodies.windows(2).all(|w| w[0] == w[1]));
    assert_eq!(
        metric(&s, "twine_tiles_rendered_total") - renders,
        1.0,
        "renders"
    );
    assert_eq!(
        metric(&s, "twine_db_queries_total") - queries,
        1.0,
        "database queries"
    );

    // A write changes the layer's data version: the old tile is no longer served.
    db.batch(&format!(
        "INSERT INTO public.\"{table}\" SELECT ST_SetSRID(ST_MakePoint(10.5, 50.5), 4326) FROM generate_series(1, 5000)"
    ));
    let before = bodies[0].clone();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = s.get(&format!("/tiles/{layer}/6/33/21.png?max=0.01"));
        if now.body != before {
            assert_eq!(now.header("x-cache"), Some("miss"));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "stale tile still served 10 s after the write"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Three tiles went to disk behind their responses (the warm-up tile and both versions
    // of this one): wait for them, so no write lands after the scratch folder is removed.
    wait_until("the tiles to be written to disk", 10, || {
        tile_files(&dir.join("tiles")).len() >= 3
    });
}
