//! The same points in memory and in PostGIS give identical tiles (all styles) and identical
//! points answers, at several zooms and places, including zooms where tiles are drawn from
//! pixel bins: read from the layer's bin pyramid, or summed in SQL from the points. A direct
//! write to an imported table is served at once (the stale pyramid is set aside) until
//! `twine-heatmap pyramid` rebuilds it. Real PostGIS, real `import`, real HTTP server.

mod common;

use common::pg;
use common::process::{run, twine};
use common::scratch::Scratch;
use common::{eventually, wait_until, TestServer};
use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use twine_heatmap::app::ServeArgs;
use twine_heatmap::synth::clustered_points;
use twine_heatmap::tile::{
    lat_to_world_y, lon_to_world_x, world_x_to_lon, world_y_to_lat, TileCoord,
};

/// 60,000 clustered points over western Europe, with weights whose sums are exact in any
/// order (so sums in SQL and in Rust agree to the bit).
fn write_points(path: &PathBuf) -> Vec<(f64, f64)> {
    let area = [
        lon_to_world_x(-5.0),
        lat_to_world_y(55.0),
        lon_to_world_x(15.0),
        lat_to_world_y(42.0),
    ];
    let points = clustered_points(60_000, 2024, area);
    let mut file = std::fs::File::create(path).expect("csv");
    writeln!(file, "lon,lat,weight").expect("write");
    let mut lonlat = Vec::new();
    for (i, p) in points.iter().enumerate() {
        let (lon, lat) = (world_x_to_lon(p.x), world_y_to_lat(p.y));
        let w = [0.5, 1.0, 2.0, 4.0][i % 4];
        writeln!(file, "{lon:?},{lat:?},{w}").expect("write");
        lonlat.push((lon, lat));
    }
    lonlat
}

/// The densest tile at `z`, and its east neighbour.
fn densest_tiles(points: &[(f64, f64)], z: u8) -> Vec<(u8, u32, u32)> {
    let n = TileCoord::count(z) as f64;
    let mut counts: HashMap<(u32, u32), usize> = HashMap::new();
    for &(lon, lat) in points {
        let key = (
            (lon_to_world_x(lon) * n) as u32,
            (lat_to_world_y(lat) * n) as u32,
        );
        *counts.entry(key).or_default() += 1;
    }
    let (&(x, y), _) = counts
        .iter()
        .max_by_key(|(k, v)| (**v, **k))
        .expect("points");
    vec![(z, x, y), (z, (x + 1).min(n as u32 - 1), y)]
}

#[test]
fn memory_and_postgis_give_identical_tiles_and_points() {
    let dir = Scratch::new("sources-identical");
    let pid = std::process::id();
    let csv = dir.join(format!("mem{pid}.csv"));
    let points = write_points(&csv);
    let db = pg::Db::connect();
    // Two PostGIS layers of the same points: one with a bin pyramid for the aggregated
    // zooms (built by import for the server's threshold), one without (bins summed in SQL
    // from the points on every request).
    let with_pyramid = pg::TestLayer::new(&db, "pyr");
    pg::import(&with_pyramid.name, &csv, &["--aggregate-above", "5000"]);
    let without_pyramid = pg::TestLayer::new(&db, "sql");
    pg::import(
        &without_pyramid.name,
        &csv,
        &["--aggregate-above", "1000000000"],
    );

    // A low aggregation threshold, so the lower zooms are drawn from bins.
    let config = dir.join("config.toml");
    std::fs::write(&config, "aggregate_above = 5000\n").expect("config");
    let args = ServeArgs {
        config: Some(config),
        points: vec![csv.clone()],
        database_url: Some(pg::database_url()),
        ..ServeArgs::default()
    };
    let server = TestServer::from_args(&args);
    let mem_layer = format!("mem{pid}");
    for layer in [&with_pyramid.name, &without_pyramid.name] {
        wait_until(
            &format!("the imported layer {layer} to be listed"),
            20,
            || server.layer(layer).is_some(),
        );
    }

    // Every source chooses the same zooms to draw from bins (from the same estimate).
    let zooms = |layer: &str| {
        server.get(&format!("/tiles/{layer}.json")).json()["heatmap"]["aggregatedZooms"].clone()
    };
    let aggregated_zooms = zooms(&mem_layer);
    assert_eq!(aggregated_zooms, zooms(&with_pyramid.name));
    assert_eq!(aggregated_zooms, zooms(&without_pyramid.name));
    let aggregated_zooms = aggregated_zooms.as_array().expect("zooms").clone();
    let mut tiles = Vec::new();
    for z in [2, 4, 6, 8, 10, 12] {
        tiles.extend(densest_tiles(&points, z));
    }
    let styles = [
        "",
        "?radius=10&blur=8&max=0.05&scheme=fire",
        "?style=dots&dotSize=20",
        "?style=density",
        "?style=density&scale=sqrt&radius=12&max=40",
    ];
    for (pg_layer, pyramid) in [(&with_pyramid.name, true), (&without_pyramid.name, false)] {
        let before = common::pyramid_queries(&server, pg_layer);
        let (mut aggregated, mut single, mut drawn) = (0, 0, 0);
        for &(z, x, y) in &tiles {
            for style in styles {
                for suffix in [".png", "@2x.png"] {
                    let a = server.get(&format!("/tiles/{mem_layer}/{z}/{x}/{y}{suffix}{style}"));
                    let b = server.get(&format!("/tiles/{pg_layer}/{z}/{x}/{y}{suffix}{style}"));
                    assert_eq!(
                        (a.status, b.status),
                        (200, 200),
                        "{pg_layer} {z}/{x}/{y}{suffix}{style}"
                    );
                    assert!(
                        a.body == b.body,
                        "{pg_layer} {z}/{x}/{y}{suffix}{style}: memory and PostGIS tiles differ"
                    );
                    if aggregated_zooms.contains(&serde_json::json!(z)) {
                        aggregated += 1;
                    } else {
                        single += 1;
                    }
                    if a.rgba().2.chunks_exact(4).any(|p| p[3] > 0) {
                        drawn += 1;
                    }
                }
            }
        }
        eprintln!(
            "{pg_layer}: {aggregated} aggregated and {single} single-point renders, {drawn} with pixels drawn"
        );
        assert!(
            aggregated > 0 && single > 0,
            "{aggregated} aggregated, {single} single-point renders"
        );
        assert!(drawn > tiles.len(), "too few tiles hold anything: {drawn}");

        // Points answers: raw, and aggregated above the limit (bins in PostGIS).
        for &(z, x, y) in &tiles {
            for query in ["", "?limit=50", "?limit=1000&radius=30&blur=20"] {
                let a = server
                    .get(&format!("/points/{mem_layer}/{z}/{x}/{y}.json{query}"))
                    .json();
                let b = server
                    .get(&format!("/points/{pg_layer}/{z}/{x}/{y}.json{query}"))
                    .json();
                assert!(a["data"].is_array(), "/points {z}/{x}/{y}{query}: {a}");
                assert_eq!(a, b, "{pg_layer}: /points {z}/{x}/{y}{query}");
            }
        }
        for bbox in ["-5,42,15,55", "2.2,48.7,2.6,49.0", "0,45,5,50"] {
            for query in ["", "&limit=100", "&limit=100&zoom=6"] {
                let a = server
                    .get(&format!("/points/{mem_layer}?bbox={bbox}{query}"))
                    .json();
                let b = server
                    .get(&format!("/points/{pg_layer}?bbox={bbox}{query}"))
                    .json();
                assert!(a["data"].is_array(), "/points bbox={bbox}{query}: {a}");
                assert_eq!(a, b, "{pg_layer}: /points bbox={bbox}{query}");
            }
        }
        // The pyramid answered the aggregated tiles of one layer, and nothing of the other.
        let used = common::pyramid_queries(&server, pg_layer) - before;
        if pyramid {
            assert!(used > 0, "{pg_layer}: no query went to the bin pyramid");
        } else {
            assert_eq!(
                used, 0,
                "{pg_layer} has no pyramid, yet {used} queries used one"
            );
        }
    }
    let info = |name: &str| server.layer(name).expect("layer");
    for pg_layer in [&with_pyramid.name, &without_pyramid.name] {
        assert_eq!(info(&mem_layer)["count"], info(pg_layer)["count"]);
        assert_eq!(info(&mem_layer)["bounds"], info(pg_layer)["bounds"]);
    }
}

/// Runs `twine-heatmap pyramid ARGS...`: (success, stderr).
fn pyramid_command(args: &[&str]) -> (bool, String) {
    run(twine(&["pyramid"]).args(args)).verdict()
}

#[test]
fn a_direct_write_is_served_at_once_and_a_rebuilt_pyramid_takes_over() {
    let dir = Scratch::new("sources-stale");
    let csv = dir.join("stale.csv");
    let points = write_points(&csv);
    let db = pg::Db::connect();
    let layer = pg::TestLayer::new(&db, "stale");
    pg::import(&layer.name, &csv, &["--aggregate-above", "5000"]);
    let config = dir.join("stale.toml");
    std::fs::write(&config, "aggregate_above = 5000\n").expect("config");
    let server = TestServer::with_database(config, pg::database_url());
    let count = || server.layer_count(&layer.name);
    let wait_for_count = |n: u64| {
        assert!(
            eventually(20, || count() == Some(n)),
            "/layers never counted {n} points: {:?}",
            count()
        );
    };
    wait_for_count(points.len() as u64);
    // z2 is drawn from bins (60,000 points over western Europe are one z2 tile).
    let aggregated = server.get(&format!("/tiles/{}.json", layer.name)).json()["heatmap"]
        ["aggregatedZooms"]
        .clone();
    assert!(
        aggregated
            .as_array()
            .is_some_and(|z| z.contains(&serde_json::json!(2))),
        "{aggregated}"
    );
    let (z, x, y) = densest_tiles(&points, 2)[0];
    let tile = format!("/tiles/{}/{z}/{x}/{y}.png", layer.name);
    let before = common::pyramid_queries(&server, &layer.name);
    let original = server.get(&tile);
    assert_eq!(original.status, 200);
    assert!(
        common::pyramid_queries(&server, &layer.name) > before,
        "the tile did not come from the pyramid"
    );

    // Another program writes 2,000 points at the tile's centre straight into the table, giving
    // only their positions (`seq` and `weight` have defaults): the pyramid is now stale, so the
    // server sums bins from the points instead.
    let n = TileCoord::count(z) as f64;
    let lon = world_x_to_lon((f64::from(x) + 0.5) / n);
    let lat = world_y_to_lat((f64::from(y) + 0.5) / n);
    db.batch(&format!(
        "INSERT INTO {} (geom) SELECT \
         ST_Transform(ST_SetSRID(ST_MakePoint({lon} + (i % 40) * 0.01, {lat} + (i / 40) * 0.01), 4326), 3857) \
         FROM generate_series(0, 1999) i",
        layer.table()
    ));
    wait_for_count(points.len() as u64 + 2000);
    let before = common::pyramid_queries(&server, &layer.name);
    let written = server.get(&tile);
    assert_eq!(written.status, 200);
    assert!(
        written.body != original.body,
        "the new points are not in the tile"
    );
    assert_eq!(
        common::pyramid_queries(&server, &layer.name),
        before,
        "a stale pyramid answered"
    );

    // The rebuilt pyramid answers again, with the same tile.
    let (ok, stderr) = pyramid_command(&[
        "--database-url",
        &pg::database_url(),
        "--layer",
        &layer.name,
        "--aggregate-above",
        "5000",
    ]);
    assert!(ok, "pyramid: {stderr}");
    assert!(stderr.contains("bin pyramid: zooms 0-"), "{stderr}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let before = common::pyramid_queries(&server, &layer.name);
        let rebuilt = server.get(&tile);
        assert_eq!(rebuilt.status, 200);
        if common::pyramid_queries(&server, &layer.name) > before {
            assert!(
                rebuilt.body == written.body,
                "the pyramid's tile differs from the points'"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the server never used the rebuilt pyramid"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn requests_at_start_up_wait_for_the_first_look_at_the_database_within_the_pool_wait() {
    let dir = Scratch::new("sources-first-look");
    let csv = dir.file("few.csv", "lon,lat\n2.35,48.85\n13.4,52.52\n");
    let db = pg::Db::connect();
    let layer = pg::TestLayer::new(&db, "firstlook");
    pg::import(&layer.name, &csv, &[]);
    let tile = format!("/tiles/{}/0/0/0.png", layer.name);
    let (lock, unlock) = (
        "BEGIN; LOCK TABLE twine.layers IN ACCESS EXCLUSIVE MODE",
        "ROLLBACK",
    );
    // The lock is held past the pool wait in the second round only.
    for (pool_wait_ms, held_past_wait) in [(5000, false), (300, true)] {
        // The watcher's first look reads twine.layers: a lock on it keeps that look under
        // way while the first request arrives.
        let holder = pg::Db::connect();
        holder.batch(lock);
        let config = dir.file(
            &format!("wait{pool_wait_ms}.toml"),
            &format!("[database]\npool_wait_ms = {pool_wait_ms}\n"),
        );
        let server = TestServer::from_args(&twine_heatmap::app::ServeArgs {
            config: Some(config),
            database_url: Some(pg::database_url()),
            ..Default::default()
        });
        let health = server.get("/health").json();
        assert_eq!(health["database"]["checked"], false, "{health}");
        std::thread::scope(|scope| {
            let request = scope.spawn(|| server.get(&tile));
            if held_past_wait {
                // The wait is bounded: past it, the layer is still unknown and that is a 503.
                let answer = request.join().expect("request thread");
                answer.assert_database_not_reached();
                holder.batch(unlock);
            } else {
                std::thread::sleep(Duration::from_millis(500));
                assert!(
                    !request.is_finished(),
                    "the request did not wait for the first look"
                );
                holder.batch(unlock);
                let answer = request.join().expect("request thread");
                assert_eq!(
                    answer.status,
                    200,
                    "{}",
                    String::from_utf8_lossy(&answer.body)
                );
            }
        });
    }
}

#[test]
fn the_pyramid_command_names_what_is_wrong() {
    let url = pg::database_url();
    let (ok, stderr) = pyramid_command(&["--database-url", &url, "--layer", "no_such_layer_x"]);
    assert!(!ok);
    assert!(
        stderr.contains("no imported layer \"no_such_layer_x\""),
        "{stderr}"
    );
    let (ok, stderr) = pyramid_command(&["--database-url", &url, "--layer", "bad name;"]);
    assert!(!ok);
    assert!(stderr.contains("invalid layer name"), "{stderr}");
    let (ok, stderr) = pyramid_command(&[
        "--database-url",
        "postgres://nobody@127.0.0.1:1/none",
        "--layer",
        "x",
    ]);
    assert!(!ok);
    assert!(
        stderr.contains("cannot connect to the database"),
        "{stderr}"
    );
    let (ok, stderr) = pyramid_command(&[
        "--database-url",
        &url,
        "--layer",
        "x",
        "--aggregate-above",
        "lots",
    ]);
    assert!(!ok);
    assert!(stderr.contains("--aggregate-above"), "{stderr}");

    // With --config: a layer declared over a table that is not there, a file layer, and a
    // config that cannot be read.
    let dir = Scratch::new("pyramid-config");
    let config = dir.file(
        "config.toml",
        "[[layers]]\nname = \"gone\"\ntable = \"public.no_such_table_x\"\n\
         [[layers]]\nname = \"onfile\"\nfile = \"points.csv\"\n",
    );
    let config = config.display().to_string();
    let with_config = |layer: &str| {
        pyramid_command(&[
            "--database-url",
            &url,
            "--layer",
            layer,
            "--config",
            &config,
        ])
    };
    let (ok, stderr) = with_config("gone");
    assert!(!ok);
    assert!(
        stderr.contains("no table public.no_such_table_x"),
        "{stderr}"
    );
    let (ok, stderr) = with_config("onfile");
    assert!(!ok);
    assert!(
        stderr.contains("reads a file: the server builds its pyramid when it loads it"),
        "{stderr}"
    );
    // Not declared there: taken as an imported layer.
    let (ok, stderr) = with_config("no_such_layer_x");
    assert!(!ok);
    assert!(stderr.contains("no imported layer"), "{stderr}");
    let (ok, stderr) = pyramid_command(&[
        "--database-url",
        &url,
        "--layer",
        "x",
        "--config",
        "/nonexistent/twine.toml",
    ]);
    assert!(!ok);
    assert!(stderr.contains("/nonexistent/twine.toml"), "{stderr}");
}

/// The documented freshness promise (docs/postgis.md): once the server has started, tiles
/// never reflect data older than one second past a write. Six times over, a write commits at a new spot of a tile that the
/// memory tier holds, and the tile asked for 1.5 s later must show it. Another layer on the
/// same server, a table of 1,000,000 points written to four times a second, makes every
/// statistics refresh of the watcher take seconds: such a refresh must not hold back the
/// data versions of other layers (or of its own).
#[test]
fn a_tile_asked_for_more_than_a_second_after_a_write_shows_it() {
    let pid = std::process::id();
    let (fresh, busy) = (format!("fresh_{pid}"), format!("busy_{pid}"));
    let db = pg::Db::connect();
    // A few points at the bottom of tile 6/33/21 (lon 5.6-11.3, lat 49.0-52.5), far from
    // the spots written below.
    let _fresh = pg::ScratchTable::create(&db, &fresh, "geom geometry(Point, 4326)", |t| {
        db.batch(&format!(
            "INSERT INTO {t} SELECT ST_SetSRID(ST_MakePoint(6 + i * 0.5, 49.2), 4326) \
             FROM generate_series(0, 9) i;"
        ));
    });
    let _busy = pg::ScratchTable::create(&db, &busy, "geom geometry(Point, 4326)", |t| {
        db.batch(&format!(
            "INSERT INTO {t} SELECT ST_SetSRID(ST_MakePoint(-10 + (i % 1000) * 0.04, \
             35 + (i / 1000) * 0.025), 4326) FROM generate_series(0, 999999) i;"
        ));
    });
    let dir = Scratch::new("sources-fresh");
    let config = dir.join("fresh.toml");
    std::fs::write(
        &config,
        format!(
            "[[layers]]\nname = \"{fresh}\"\ntable = \"public.{fresh}\"\n\n\
             [[layers]]\nname = \"{busy}\"\ntable = \"public.{busy}\"\n"
        ),
    )
    .expect("config");
    let server = TestServer::with_database(config, pg::database_url());
    let tile = format!("/tiles/{fresh}/6/33/21.png");
    wait_until("the layer to be served", 30, || {
        server.get(&tile).status == 200
    });
    // The promise is about a server that has started: its first look at the database,
    // which reads every layer's statistics before anything else (seconds for the busy
    // layer), has ended, as the busy layer's count in /layers shows. Requests may be served
    // before that, once they have waited the pool wait.
    wait_until("the first look at the database to end", 60, || {
        server.layer_count(&busy) == Some(1_000_000)
    });

    // The busy layer's writer: every look of the watcher finds a new version of it.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (stop, busy) = (stop.clone(), busy.clone());
        std::thread::spawn(move || {
            let db = pg::Db::connect();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                db.batch(&format!(
                    "INSERT INTO public.\"{busy}\" VALUES (ST_SetSRID(ST_MakePoint(0, 45), 4326))"
                ));
                std::thread::sleep(Duration::from_millis(250));
            }
        })
    };

    // Tile pixel of a point, at zoom 6 in tile x 33, y 21.
    let pixel = |lon: f64, lat: f64| {
        let px = (lon_to_world_x(lon) * 64.0 - 33.0) * 256.0;
        let py = (lat_to_world_y(lat) * 64.0 - 21.0) * 256.0;
        (px as usize, py as usize)
    };
    let alpha_at = |reply: &common::Reply, (x, y): (usize, usize)| {
        let (w, _, rgba) = reply.rgba();
        rgba[(y * w as usize + x) * 4 + 3]
    };
    // Spots 1° apart (45 px at zoom 6, beyond the default kernel's 40-px reach), so each
    // write lights pixels that were empty before it.
    let mut late = Vec::new();
    for (i, lon) in [6.5, 7.5, 8.5, 9.5, 10.5, 6.5].into_iter().enumerate() {
        let lat = if i == 5 { 51.8 } else { 50.7 };
        let spot = pixel(lon, lat);
        server.get(&tile);
        let cached = server.get(&tile);
        assert_eq!(cached.header("x-cache"), Some("hit-memory"));
        assert_eq!(
            alpha_at(&cached, spot),
            0,
            "spot {i} is empty before its write"
        );

        db.batch(&format!(
            "INSERT INTO public.\"{fresh}\" SELECT \
             ST_SetSRID(ST_MakePoint({lon} + (i % 5) * 0.01, {lat} + (i / 5) * 0.01), 4326) \
             FROM generate_series(0, 24) i"
        ));
        let committed = Instant::now();
        // The promise is one second: the watcher reads the data versions once a second, so
        // a write that commits just after a read is seen at the next, 1 s later, plus that
        // look's own few queries (milliseconds). The other 0.5 s is for scheduling on a busy
        // test machine (two cores shared by parallel test binaries), not for the server:
        // a watcher that waits for statistics scans between looks misses it by seconds.
        std::thread::sleep(Duration::from_millis(1500).saturating_sub(committed.elapsed()));
        let after = server.get(&tile);
        if alpha_at(&after, spot) == 0 {
            late.push(format!(
                "write {i} not shown {:?} after its commit (x-cache {:?})",
                committed.elapsed(),
                after.header("x-cache")
            ));
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().expect("writer");
    assert!(late.is_empty(), "{late:#?}");
}
