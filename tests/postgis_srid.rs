//! Tables declared in geographic and projected SRIDs draw the same tiles and answer the same
//! points as the same points from a file: edge columns, tiles whose reach crosses ±180°,
//! the poles, filter values, and a UTM or LAEA table near its area and far from it.
//! Real PostGIS, real `import`, real HTTP server.

mod common;

use common::pg;
use common::scratch::Scratch;
use common::{eventually, TestServer};
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use twine_heatmap::app::ServeArgs;
use twine_heatmap::metrics::Metrics;
use twine_heatmap::source::load::{load_points_file, WeightMode};
use twine_heatmap::source::memory::MemoryStore;
use twine_heatmap::source::postgis::layer::{PostgisLayer, TableLayout};
use twine_heatmap::source::postgis::{
    pool, Ident, PoolSettings, TableName, SCHEMA_LOCK_KEY, SCHEMA_SQL,
};
use twine_heatmap::source::{FilterValues, PointSource};
use twine_heatmap::synth::clustered_points;
use twine_heatmap::tile::{
    lat_to_world_y, lon_to_world_x, world_x_to_lon, world_y_to_lat, TileCoord, MAX_LAT,
};

/// Every style, with its defaults: smooth, the seed's dots, kernel density (whose `max` is
/// the layer's reference, so the layers' cell weights must agree too).
const STYLES: [&str; 3] = ["?style=smooth", "?style=dots", "?style=density"];

/// The geographic SRIDs tested, with how a WGS 84 point `{}` is stored in each: NAD83 has
/// the same coordinates (PostGIS applies no datum shift between them and Web Mercator).
const GEOGRAPHIC: [(i32, &str); 2] = [(4326, "{}"), (4269, "ST_SetSRID({}, 4269)")];

/// Deepest zoom whose edge columns are compared tile by tile.
const MAX_ZOOM: u8 = 7;

/// One point as written to the file and to the tables.
#[derive(Debug, Clone, Copy)]
struct Row {
    lon: f64,
    lat: f64,
    /// None: NULL in the tables; the file says 1, what a point without weight weighs.
    weight: Option<f32>,
    deep: bool,
}

impl Row {
    fn file_weight(&self) -> f32 {
        self.weight.unwrap_or(1.0)
    }
}

fn wrap_lon(lon: f64) -> f64 {
    if lon > 180.0 {
        lon - 360.0
    } else if lon < -180.0 {
        lon + 360.0
    } else {
        lon
    }
}

/// Clustered positions in `[west, south, east, north]` degrees; east may pass 180 (the
/// cluster straddles the antimeridian and is wrapped).
fn cluster(count: usize, seed: u64, [w, s, e, n]: [f64; 4]) -> Vec<(f64, f64)> {
    let area = [
        lon_to_world_x(w),
        lat_to_world_y(n),
        lon_to_world_x(e),
        lat_to_world_y(s),
    ];
    clustered_points(count, seed, area)
        .iter()
        .map(|p| (wrap_lon(world_x_to_lon(p.x)), world_y_to_lat(p.y)))
        .collect()
}

/// About 2,900 points crowding the antimeridian: clusters straddling it near Fiji and the
/// Bering Strait, points at longitude exactly ±180, points past ±85.0511° up to the poles,
/// duplicates, NULL weights; and two interior clusters (Europe, the prime meridian). Few
/// enough that no zoom is drawn from bins even at the default thresholds.
fn antimeridian_rows() -> Vec<Row> {
    let mut positions = Vec::new();
    positions.extend(cluster(1200, 11, [178.0, -20.0, 182.5, -14.0]));
    positions.extend(cluster(800, 12, [177.5, 60.0, 183.0, 69.0]));
    for i in 0..40 {
        let lon = if i % 2 == 0 { 180.0 } else { -180.0 };
        let lat = if i < 20 {
            -16.5 + f64::from(i) * 0.05
        } else {
            64.0 + f64::from(i) * 0.03
        };
        positions.push((lon, lat));
    }
    for lat in [85.0, 85.06, 86.5, 89.99, 90.0, -85.06, -87.0, -90.0] {
        for lon in [-180.0, -179.7, -60.0, 0.0, 45.0, 179.8, 180.0] {
            positions.push((lon, lat));
        }
    }
    positions.extend(cluster(500, 13, [5.0, 42.0, 25.0, 55.0]));
    positions.extend(cluster(200, 14, [-1.5, 49.0, 1.5, 53.0]));
    let duplicates: Vec<(f64, f64)> = positions[..100].to_vec();
    positions.extend(duplicates);
    positions
        .into_iter()
        .enumerate()
        .map(|(i, (lon, lat))| Row {
            lon,
            lat,
            weight: (i % 29 != 0).then_some([0.5, 1.0, 2.0, 4.0][i % 4]),
            deep: i % 3 == 0,
        })
        .collect()
}

/// Writes `rows` as `lon,lat,weight`; returns the path.
fn write_csv(dir: &Path, name: &str, rows: &[Row]) -> PathBuf {
    let mut text = String::from("lon,lat,weight\n");
    for r in rows {
        let _ = writeln!(text, "{:?},{:?},{:?}", r.lon, r.lat, r.file_weight());
    }
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write csv");
    path
}

/// Creates `public."table"` in `srid` holding `rows` (id = the file's row index, so the
/// dots style draws them in the file's order), plus rows no file can hold: NULL geometries
/// and empty points. `native` turns the lon/lat point `{}` into the stored geometry
/// (`ST_Transform({}, 32633)` for a projected SRID).
/// Dropped when the returned guard goes.
fn create_table<'a>(
    db: &'a pg::Db,
    table: &str,
    srid: i32,
    rows: &[Row],
    native: &str,
) -> pg::ScratchTable<'a> {
    let columns = format!("id int PRIMARY KEY, geom geometry(Point, {srid}), mag real, kind text");
    pg::ScratchTable::create(db, table, &columns, |t| {
        let mut sql = format!("INSERT INTO {t} (id, geom, mag, kind) VALUES ");
        for (i, r) in rows.iter().enumerate() {
            let point = native.replace(
                "{}",
                &format!("ST_SetSRID(ST_MakePoint({:?}, {:?}), 4326)", r.lon, r.lat),
            );
            let mag = r.weight.map_or("NULL".to_string(), |w| format!("{w:?}"));
            let kind = if r.deep { "deep" } else { "shallow" };
            let _ = write!(
                sql,
                "{}({i}, {point}, {mag}, '{kind}')",
                if i > 0 { ", " } else { "" }
            );
        }
        let n = rows.len();
        for k in 0..10 {
            let geom = if k < 5 {
                "NULL".to_string()
            } else {
                format!("'SRID={srid};POINT EMPTY'")
            };
            let _ = write!(sql, ", ({}, {geom}, 3, 'deep')", n + k);
        }
        db.batch(&sql);
    })
}

/// A declared layer's config: the table, its weight, the id as drawing order, and a filter.
fn layer_config(name: &str, table: &str) -> String {
    format!(
        "[[layers]]\nname = \"{name}\"\ntable = \"public.{table}\"\ngeometry = \"geom\"\n\
         weight = \"mag\"\nseq = \"id\"\n\
         [[layers.filters]]\nparam = \"kind\"\ncolumn = \"kind\"\nop = \"=\"\n"
    )
}

/// The server of one test: file layers, declared tables in several SRIDs, maybe an import.
struct Fixture<'a> {
    server: TestServer,
    _tables: Vec<pg::ScratchTable<'a>>,
    _imported: Option<pg::TestLayer<'a>>,
    _dir: Scratch,
}

/// Names of one fixture's layers.
struct Names {
    /// File layer of every row, and of the rows passing `kind=deep`.
    all: String,
    deep: String,
    /// Declared tables, by SRID.
    declared: Vec<(i32, String)>,
    imported: Option<String>,
}

/// Serves `rows` from a file (and the `deep` ones from another), from declared tables in
/// each of `srids` (with the `native` expression of [`create_table`]) and, with
/// `with_import`, imported; every layer with `aggregate_above`.
fn fixture<'a>(
    db: &'a pg::Db,
    label: &str,
    rows: &[Row],
    srids: &[(i32, &str)],
    with_import: bool,
    aggregate_above: u64,
) -> (Fixture<'a>, Names) {
    let pid = std::process::id();
    let dir = Scratch::new(&format!("srid-{label}"));
    let all = format!("{label}all{pid}");
    let deep = format!("{label}deep{pid}");
    let all_csv = write_csv(&dir, &format!("{all}.csv"), rows);
    let deep_rows: Vec<Row> = rows.iter().filter(|r| r.deep).copied().collect();
    let deep_csv = write_csv(&dir, &format!("{deep}.csv"), &deep_rows);
    let mut config = format!("aggregate_above = {aggregate_above}\n");
    let mut tables = Vec::new();
    let mut declared = Vec::new();
    for &(srid, native) in srids {
        let table = format!("srid_{label}_{srid}_{pid}");
        tables.push(create_table(db, &table, srid, rows, native));
        let name = format!("{label}{srid}x{pid}");
        config.push_str(&layer_config(&name, &table));
        declared.push((srid, name));
    }
    let imported = with_import.then(|| {
        let layer = pg::TestLayer::new(db, &format!("{label}imp"));
        pg::import(&layer.name, &all_csv, &[]);
        layer
    });
    let config_path = dir.file("config.toml", &config);
    let server = TestServer::from_args(&ServeArgs {
        config: Some(config_path),
        points: vec![all_csv, deep_csv],
        database_url: Some(pg::database_url()),
        ..ServeArgs::default()
    });
    let names = Names {
        all,
        deep,
        declared,
        imported: imported.as_ref().map(|l| l.name.clone()),
    };
    let fixture = Fixture {
        server,
        _tables: tables,
        _imported: imported,
        _dir: dir,
    };
    let mut pg_layers: Vec<&str> = names.declared.iter().map(|(_, n)| n.as_str()).collect();
    pg_layers.extend(names.imported.as_deref());
    wait_for_layers(&fixture.server, &pg_layers);
    (fixture, names)
}

/// Waits until every PostGIS layer is listed with its statistics (a non-zero count).
fn wait_for_layers(server: &TestServer, names: &[&str]) {
    for name in names {
        assert!(
            eventually(30, || server.layer_count(name) > Some(0)),
            "{name} never appeared with its points in /layers: {:?}",
            server.layer(name)
        );
    }
}

fn drawn(tile: &common::Reply) -> bool {
    tile.rgba().2.chunks_exact(4).any(|p| p[3] > 0)
}

/// Tile of a position at zoom `z`.
fn tile_of(z: u8, lon: f64, lat: f64) -> (u32, u32) {
    let n = TileCoord::count(z) as f64;
    let max = n as u32 - 1;
    (
        ((lon_to_world_x(lon) * n) as u32).min(max),
        ((lat_to_world_y(lat) * n) as u32).min(max),
    )
}

/// The tiles compared at zoom `z`: both edge columns (x = 0 and x = 2^z - 1) in the rows of
/// the antimeridian clusters, of the points at exactly ±180° and of the poles; and interior
/// tiles over Europe and either side of the prime meridian.
fn tiles_at(z: u8) -> BTreeSet<(u32, u32)> {
    let last = TileCoord::count(z) as u32 - 1;
    let mut tiles = BTreeSet::new();
    for lat in [-18.0, -16.5, -15.0, 62.0, 64.5, 67.0, 90.0, -90.0] {
        let (_, y) = tile_of(z, 0.0, lat);
        tiles.insert((0, y));
        tiles.insert((last, y));
    }
    for (lon, lat) in [(15.0, 48.0), (-0.5, 51.0), (0.5, 51.0)] {
        tiles.insert(tile_of(z, lon, lat));
    }
    tiles
}

/// Compares `layer`'s tiles (with `query` added) with `file`'s at every zoom to MAX_ZOOM in
/// `styles`: returns how many of the file's tiles had anything drawn.
fn compare_tiles(
    server: &TestServer,
    file: &str,
    layer: &str,
    query: &str,
    styles: &[&str],
) -> usize {
    let mut drawn_tiles = 0;
    let mut failures = Vec::new();
    for z in 0..=MAX_ZOOM {
        for (x, y) in tiles_at(z) {
            for style in styles {
                let file_path = format!("/tiles/{file}/{z}/{x}/{y}.png{style}");
                let path = format!("{}{query}", file_path.replacen(file, layer, 1));
                let (a, b) = (server.get(&file_path), server.get(&path));
                assert_eq!(a.status, 200, "{file_path}");
                assert_eq!(
                    b.status,
                    200,
                    "{path}: {}",
                    String::from_utf8_lossy(&b.body)
                );
                let share = common::equal_share(&a, &b);
                if share < 0.999 {
                    failures.push(format!(
                        "{path}: {:.2}% of pixels equal the file's",
                        share * 100.0
                    ));
                }
                if drawn(&a) {
                    drawn_tiles += 1;
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} tiles differ from the file's:\n{}",
        failures.len(),
        failures.join("\n")
    );
    drawn_tiles
}

/// A points answer (JSON), after checking its status.
fn points(server: &TestServer, path: &str) -> serde_json::Value {
    let reply = server.get(path);
    assert_eq!(
        reply.status,
        200,
        "{path}: {}",
        String::from_utf8_lossy(&reply.body)
    );
    reply.json()
}

/// Asserts that two points answers hold the same points (positions within 1e-6°).
fn assert_same_points(path: &str, file: &serde_json::Value, table: &serde_json::Value) {
    assert_eq!(file["count"], table["count"], "{path}: counts differ");
    assert_eq!(file["aggregated"], false, "{path}: aggregated");
    let (a, b) = (
        file["data"].as_array().expect("data"),
        table["data"].as_array().expect("data"),
    );
    assert_eq!(a.len(), b.len(), "{path}");
    for (p, q) in a.iter().zip(b) {
        for i in 0..3 {
            let (u, v) = (
                p[i].as_f64().unwrap_or(f64::NAN),
                q[i].as_f64().unwrap_or(f64::NAN),
            );
            assert!((u - v).abs() < 1e-6, "{path}: {p} != {q}");
        }
    }
}

/// Far above the fixtures' point counts: every layer draws its points singly at every zoom,
/// so the comparisons test where points are found, not how bins are summed.
const SINGLE_POINTS: u64 = 1_000_000_000;

/// The tiles whose points answers are compared: every edge tile of the rows holding data
/// at zooms 2 to 9 (their reach crosses the antimeridian), including 6/63/34 of the issue.
fn point_tiles() -> Vec<(u8, u32, u32)> {
    let mut tiles = vec![(6, 63, 34), (6, 0, 34), (0, 0, 0), (1, 1, 0), (1, 0, 1)];
    for z in 2..=9 {
        for (x, y) in tiles_at(z) {
            tiles.push((z, x, y));
        }
    }
    tiles
}

#[test]
fn geographic_tables_draw_every_zoom_like_the_file() {
    let db = pg::Db::connect();
    let rows = antimeridian_rows();
    let (f, names) = fixture(&db, "tiles", &rows, &GEOGRAPHIC, true, SINGLE_POINTS);
    let mut layers: Vec<&str> = names.declared.iter().map(|(_, n)| n.as_str()).collect();
    layers.extend(names.imported.as_deref());
    for layer in layers {
        let drawn_tiles = compare_tiles(&f.server, &names.all, layer, "", &STYLES);
        // Most compared tiles hold points, or equality would prove little.
        assert!(drawn_tiles > 150, "{layer}: only {drawn_tiles} tiles drawn");
    }
}

#[test]
fn points_near_the_antimeridian_and_the_poles_count_like_the_file() {
    let db = pg::Db::connect();
    let rows = antimeridian_rows();
    let (f, names) = fixture(&db, "points", &rows, &GEOGRAPHIC, true, SINGLE_POINTS);
    let file_info = f.server.layer(&names.all).expect("file layer");
    let mut layers: Vec<&str> = names.declared.iter().map(|(_, n)| n.as_str()).collect();
    layers.extend(names.imported.as_deref());
    // Boxes reaching the map's edges hold the points beyond ±85.0511° (drawn on the edge).
    let bboxes = [
        "170,-25,180,-10".to_string(),
        "-180,-25,-170,-10".to_string(),
        format!("-180,55,180,{MAX_LAT:?}"),
        format!("-180,-{MAX_LAT:?},180,-80"),
        format!("-180,-{MAX_LAT:?},180,{MAX_LAT:?}"),
        "179.9,-17,180,-16".to_string(),
    ];
    for layer in layers {
        let info = f.server.layer(layer).expect("layer");
        assert_eq!(info["count"], file_info["count"], "{layer}: /layers count");
        for (i, (a, b)) in file_info["bounds"]
            .as_array()
            .expect("bounds")
            .iter()
            .zip(info["bounds"].as_array().expect("bounds"))
            .enumerate()
        {
            let (a, b) = (
                a.as_f64().unwrap_or(f64::NAN),
                b.as_f64().unwrap_or(f64::NAN),
            );
            assert!((a - b).abs() < 1e-9, "{layer}: bounds[{i}] {b} != {a}");
        }
        let mut nonempty = 0;
        for (z, x, y) in point_tiles() {
            let path = |name: &str| format!("/points/{name}/{z}/{x}/{y}.json");
            let (a, b) = (
                points(&f.server, &path(&names.all)),
                points(&f.server, &path(layer)),
            );
            assert_same_points(&path(layer), &a, &b);
            if a["count"].as_u64() > Some(0) {
                nonempty += 1;
            }
        }
        assert!(nonempty > 30, "{layer}: only {nonempty} tiles hold points");
        for bbox in &bboxes {
            let path = |name: &str| format!("/points/{name}?bbox={bbox}");
            let (a, b) = (
                points(&f.server, &path(&names.all)),
                points(&f.server, &path(layer)),
            );
            assert_same_points(&path(layer), &a, &b);
        }
    }
    // The issue's tile: every point within its reach, as many as the file gives.
    let issue = points(&f.server, &format!("/points/{}/6/63/34.json", names.all));
    assert!(issue["count"].as_u64() > Some(300), "{issue}");
}

#[test]
fn filter_values_draw_like_a_file_of_the_passing_points() {
    let db = pg::Db::connect();
    let rows = antimeridian_rows();
    let (f, names) = fixture(&db, "filter", &rows, &GEOGRAPHIC, false, SINGLE_POINTS);
    for (_, layer) in &names.declared {
        // At these zooms every layer draws single points (`aggregate_above` is far above the
        // point count); at zooms drawn from bins the choice would come from the whole
        // layer's count grid, not the filtered points', and the files would differ there.
        // The density style's default `max` is the whole layer's reference, which a filter
        // does not change (a file of the passing points has its own): give one.
        let styles = ["?style=smooth", "?style=dots", "?style=density&max=6"];
        let drawn_tiles = compare_tiles(&f.server, &names.deep, layer, "&kind=deep", &styles);
        assert!(drawn_tiles > 150, "{layer}: only {drawn_tiles} tiles drawn");
        for (z, x, y) in point_tiles() {
            let a = points(
                &f.server,
                &format!("/points/{}/{z}/{x}/{y}.json", names.deep),
            );
            let path = format!("/points/{layer}/{z}/{x}/{y}.json?kind=deep");
            assert_same_points(&path, &a, &points(&f.server, &path));
        }
    }
}

#[test]
fn zooms_drawn_from_bins_draw_like_the_file() {
    let db = pg::Db::connect();
    let rows = antimeridian_rows();
    // Low enough that the lower zooms are drawn from bins summed in SQL (declared tables
    // have no pyramid), chosen from each layer's count grid.
    let (f, names) = fixture(&db, "bins", &rows, &[(4326, "{}")], false, 200);
    let (_, layer) = &names.declared[0];
    let zooms = |name: &str| {
        f.server.get(&format!("/tiles/{name}.json")).json()["heatmap"]["aggregatedZooms"].clone()
    };
    let aggregated = zooms(&names.all);
    assert_eq!(zooms(layer), aggregated);
    assert!(
        aggregated.as_array().is_some_and(|z| z.len() >= 3),
        "{aggregated}"
    );
    let mut drawn_tiles = 0;
    let mut failures = Vec::new();
    for z in 0..=4 {
        for (x, y) in tiles_at(z) {
            for style in STYLES {
                let path = |name: &str| format!("/tiles/{name}/{z}/{x}/{y}.png{style}");
                let (a, b) = (f.server.get(&path(&names.all)), f.server.get(&path(layer)));
                assert_eq!(b.status, 200, "{}", path(layer));
                let share = common::equal_share(&a, &b);
                if share < 0.999 {
                    failures.push(format!("{}: {:.2}% equal", path(layer), share * 100.0));
                }
                if drawn(&a) {
                    drawn_tiles += 1;
                }
            }
            // Above the limit, points answers are bins too: the same bins, counted alike.
            let path = |name: &str| format!("/points/{name}/{z}/{x}/{y}.json?limit=20");
            let (a, b) = (
                points(&f.server, &path(&names.all)),
                points(&f.server, &path(layer)),
            );
            assert_eq!(a["count"], b["count"], "{}", path(layer));
            assert_eq!(a["aggregated"], b["aggregated"], "{}", path(layer));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(drawn_tiles > 40, "only {drawn_tiles} tiles drawn");
}

#[test]
fn a_geographic_tables_count_grid_and_cell_weights_equal_the_files() {
    let db = pg::Db::connect();
    let rows = antimeridian_rows();
    let pid = std::process::id();
    let dir = Scratch::new("srid-grid");
    let csv = write_csv(&dir, "grid.csv", &rows);
    let file = MemoryStore::new(
        load_points_file(&csv, WeightMode::FromData).expect("load"),
        None,
    );
    // The layer reads `twine.pyramids`, which a server or an import creates; neither ran here.
    db.batch(&format!(
        "BEGIN; SELECT pg_advisory_xact_lock({SCHEMA_LOCK_KEY}); {SCHEMA_SQL} COMMIT;"
    ));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    for (srid, native) in GEOGRAPHIC {
        let table = format!("srid_grid_{srid}_{pid}");
        let _guard = create_table(&db, &table, srid, &rows, native);
        let layout = TableLayout {
            table: TableName::parse(&format!("public.{table}")).expect("table"),
            geometry: Ident::new("geom").expect("ident"),
            weight: Some(Ident::new("mag").expect("ident")),
            seq: Some(Ident::new("id").expect("ident")),
            filters: Arc::from([]),
            attribution: None,
            attributes: Default::default(),
        };
        runtime.block_on(async {
            let pool = pool(&pg::database_url(), PoolSettings::default()).expect("pool");
            let layer = PostgisLayer::new(
                pool,
                Default::default(),
                layout,
                Arc::new(Metrics::default()),
            );
            let (a, b) = (
                file.count_grid().await.expect("grid"),
                layer.count_grid().await.expect("grid"),
            );
            assert_eq!(a.total(), b.total(), "SRID {srid}: point counts");
            assert!(a == b, "SRID {srid}: the count grids differ");
            for cell in [1.0 / 1024.0, 1.0 / 64.0, 1.0 / 4.0, 1.0] {
                let (a, b) = (
                    file.max_cell_weight(cell, &FilterValues::NONE)
                        .await
                        .expect("weight"),
                    layer
                        .max_cell_weight(cell, &FilterValues::NONE)
                        .await
                        .expect("weight"),
                );
                assert_eq!(a, b, "SRID {srid}: largest weight of cells of {cell}");
            }
            assert_eq!(file.info().count, layer.info().count);
        });
    }
}

/// About 1,500 points over central Europe and the Mediterranean: UTM zone 33N's own area
/// (12°E to 18°E) and a few hundred kilometres either side.
fn zone_rows() -> Vec<Row> {
    cluster(1500, 21, [8.0, 36.0, 24.0, 56.0])
        .into_iter()
        .enumerate()
        .map(|(i, (lon, lat))| Row {
            lon,
            lat,
            weight: Some([0.5, 1.0, 2.0, 4.0][i % 4]),
            deep: i % 2 == 0,
        })
        .collect()
}

#[test]
fn projected_tables_match_the_file_near_their_area_and_answer_cleanly_far_away() {
    let db = pg::Db::connect();
    let rows = zone_rows();
    let (f, names) = fixture(
        &db,
        "proj",
        &rows,
        &[
            (32633, "ST_Transform({}, 32633)"),
            (3035, "ST_Transform({}, 3035)"),
        ],
        false,
        SINGLE_POINTS,
    );
    let mut near = BTreeSet::new();
    for z in 0..=9u8 {
        for (lon, lat) in [(15.0, 45.0), (12.0, 42.0), (18.5, 50.0), (9.0, 53.0)] {
            near.insert((z, tile_of(z, lon, lat)));
        }
    }
    // Far from both projections' areas: the antipodes, the antimeridian, the poles, the
    // Americas, Australia; and the wide tiles that hold both the data and such places.
    let far = [
        (1, (0, 0)),
        (1, (1, 1)),
        (2, (0, 1)),
        (2, (3, 2)),
        (3, (7, 4)),
        (3, (0, 0)),
        (3, (2, 3)),
        (4, (15, 15)),
        (5, (29, 18)),
        (6, (63, 34)),
        (8, (255, 0)),
        (10, (900, 600)),
    ];
    for (_, layer) in &names.declared {
        let mut drawn_tiles = 0;
        for &(z, (x, y)) in near.iter().chain(&far) {
            for style in STYLES {
                let path = |name: &str| format!("/tiles/{name}/{z}/{x}/{y}.png{style}");
                let (a, b) = (f.server.get(&path(&names.all)), f.server.get(&path(layer)));
                assert_eq!(
                    b.status,
                    200,
                    "{}: {}",
                    path(layer),
                    String::from_utf8_lossy(&b.body)
                );
                let share = common::equal_share(&a, &b);
                assert!(
                    share >= 0.999,
                    "{}: {:.2}% of pixels equal the file's",
                    path(layer),
                    share * 100.0
                );
                if drawn(&a) {
                    drawn_tiles += 1;
                }
            }
            let path = |name: &str| format!("/points/{name}/{z}/{x}/{y}.json");
            let (a, b) = (
                points(&f.server, &path(&names.all)),
                points(&f.server, &path(layer)),
            );
            assert_same_points(&path(layer), &a, &b);
        }
        assert!(drawn_tiles >= 25, "{layer}: only {drawn_tiles} tiles drawn");
        let world = format!("-180,-{MAX_LAT:?},180,{MAX_LAT:?}");
        for bbox in [world.as_str(), "8,36,24,56", "100,-50,180,0"] {
            let path = |name: &str| format!("/points/{name}?bbox={bbox}");
            let (a, b) = (
                points(&f.server, &path(&names.all)),
                points(&f.server, &path(layer)),
            );
            assert_same_points(&path(layer), &a, &b);
        }
    }
}
