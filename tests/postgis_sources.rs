//! The same points in memory and in PostGIS give identical tiles (all styles) and identical
//! points answers, at several zooms and places, including zooms where tiles are drawn from
//! pixel bins aggregated in SQL. Real PostGIS, real `import`, real HTTP server.

mod common;
#[path = "common/pg.rs"]
mod pg;

use common::TestServer;
use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};
use twine_heatmap::cli::{build_state, ServeArgs};
use twine_heatmap::synth::clustered_points;
use twine_heatmap::tile::{
    lat_to_world_y, lon_to_world_x, world_x_to_lon, world_y_to_lat, TileCoord,
};

const BIN: &str = env!("CARGO_BIN_EXE_twine-heatmap");

fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("twine-sources-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

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
    let dir = temp_dir();
    let pid = std::process::id();
    let csv = dir.join(format!("mem{pid}.csv"));
    let points = write_points(&csv);
    let pg_layer = format!("pg{pid}");
    let out = Command::new(BIN)
        .args([
            "import",
            "--database-url",
            &pg::database_url(),
            "--layer",
            &pg_layer,
        ])
        .arg(&csv)
        .output()
        .expect("import");
    assert!(
        out.status.success(),
        "import: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A low aggregation threshold, so the lower zooms are drawn from SQL bins.
    let config = dir.join("config.toml");
    std::fs::write(&config, "aggregate_above = 5000\n").expect("config");
    let args = ServeArgs {
        config: Some(config),
        points: vec![csv.clone()],
        database_url: Some(pg::database_url()),
        ..ServeArgs::default()
    };
    let (state, _) = build_state(&args).expect("state");
    let server = TestServer::start(state);
    let mem_layer = format!("mem{pid}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !server.get("/layers").json().to_string().contains(&pg_layer) {
        assert!(
            Instant::now() < deadline,
            "the imported layer never appeared"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // Both sources choose the same zooms to draw from bins (from the same estimate).
    let zooms = |layer: &str| {
        server.get(&format!("/tiles/{layer}.json")).json()["heatmap"]["aggregatedZooms"].clone()
    };
    let aggregated_zooms = zooms(&mem_layer);
    assert_eq!(aggregated_zooms, zooms(&pg_layer));
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
    let (mut aggregated, mut single, mut drawn) = (0, 0, 0);
    for &(z, x, y) in &tiles {
        for style in styles {
            for suffix in [".png", "@2x.png"] {
                let a = server.get(&format!("/tiles/{mem_layer}/{z}/{x}/{y}{suffix}{style}"));
                let b = server.get(&format!("/tiles/{pg_layer}/{z}/{x}/{y}{suffix}{style}"));
                assert_eq!(
                    (a.status, b.status),
                    (200, 200),
                    "{z}/{x}/{y}{suffix}{style}"
                );
                assert!(
                    a.body == b.body,
                    "{z}/{x}/{y}{suffix}{style}: memory and PostGIS tiles differ"
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
        "{aggregated} aggregated and {single} single-point renders, {drawn} with pixels drawn"
    );
    assert!(
        aggregated > 0 && single > 0,
        "{aggregated} aggregated, {single} single-point renders"
    );
    assert!(drawn > tiles.len(), "too few tiles hold anything: {drawn}");

    // Points answers: raw, and aggregated above the limit (SQL bins in PostGIS).
    for &(z, x, y) in &tiles {
        for query in ["", "?limit=50", "?limit=1000&radius=30&blur=20"] {
            let a = server
                .get(&format!("/points/{mem_layer}/{z}/{x}/{y}.json{query}"))
                .json();
            let b = server
                .get(&format!("/points/{pg_layer}/{z}/{x}/{y}.json{query}"))
                .json();
            assert!(a["data"].is_array(), "/points {z}/{x}/{y}{query}: {a}");
            assert_eq!(a, b, "/points {z}/{x}/{y}{query}");
        }
    }
    for bbox in ["-5,42,15,55", "2.2,48.7,2.6,49.0", "0,45,5,50"] {
        for query in ["", "&limit=100"] {
            let a = server
                .get(&format!("/points/{mem_layer}?bbox={bbox}{query}"))
                .json();
            let b = server
                .get(&format!("/points/{pg_layer}?bbox={bbox}{query}"))
                .json();
            assert!(a["data"].is_array(), "/points bbox={bbox}{query}: {a}");
            assert_eq!(a, b, "/points bbox={bbox}{query}");
        }
    }
    let info = |name: &str| {
        server
            .get("/layers")
            .json()
            .as_array()
            .expect("layers")
            .iter()
            .find(|l| l["name"] == name)
            .cloned()
            .expect("layer")
    };
    assert_eq!(info(&mem_layer)["count"], info(&pg_layer)["count"]);
    assert_eq!(info(&mem_layer)["bounds"], info(&pg_layer)["bounds"]);
    pg::Db::connect().batch(&format!(
        "DROP TABLE IF EXISTS twine.\"points_{pg_layer}\"; DELETE FROM twine.layers WHERE name = '{pg_layer}'"
    ));
}
