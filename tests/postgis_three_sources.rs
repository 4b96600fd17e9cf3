//! One layer's points draw the same tiles from every source, with default settings: a file
//! layer (bins from its in-memory pyramid), the same points imported (bins from the PostGIS
//! pyramid), and the same points in two declared SRID 4326 tables, one without a pyramid
//! (bins summed in SQL) and one given a pyramid by `twine-heatmap pyramid --config`, at zooms
//! 0 to 12, in every style, on clustered data that crowds the antimeridian and the poles,
//! and with a filter against a file of only the points that pass it. Real PostGIS, real
//! `import` and `pyramid`, real HTTP server.

mod common;

use common::pg;
use common::scratch::Scratch;
use common::{wait_until, TestServer};
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use twine_heatmap::synth::{clustered_points, Rng};
use twine_heatmap::tile::{lat_to_world_y, lon_to_world_x, world_x_to_lon, world_y_to_lat};

/// Share of pixels that must be equal between two sources' tiles.
const MIN_EQUAL: f64 = 0.999;

/// One point as users' tables hold it: degrees, a weight, and a category.
#[derive(Clone, Copy)]
struct Row {
    lon: f64,
    lat: f64,
    w: f64,
    kind: i32,
}

/// About 40,000 points: clustered over the world, a dense cluster across the antimeridian
/// (some exactly on ±180°), a heap of duplicates, and points beyond Web Mercator's ±85.05°
/// (up to the poles), which every source draws on the map's edge.
fn rows() -> Vec<Row> {
    let mut rows = Vec::new();
    let weights = [0.5, 1.0, 2.0, 1.3, 0.7];
    let push = |lon: f64, lat: f64, rows: &mut Vec<Row>| {
        let i = rows.len();
        rows.push(Row {
            lon,
            lat,
            w: weights[i % weights.len()],
            kind: (i % 3) as i32,
        });
    };
    for p in clustered_points(25_000, 17, [0.0, 0.05, 1.0, 0.95]) {
        push(world_x_to_lon(p.x), world_y_to_lat(p.y), &mut rows);
    }
    let mut rng = Rng::new(99);
    for i in 0..12_000 {
        let (dx, dy) = rng.normal_pair();
        let lon = 180.0 + dx * 1.5;
        let lon = if lon > 180.0 { lon - 360.0 } else { lon };
        let lon = if i % 500 == 0 {
            [180.0, -180.0][i % 2]
        } else {
            lon
        };
        push(lon, 64.0 + dy, &mut rows);
    }
    for _ in 0..2_000 {
        push(13.4, 52.5, &mut rows);
    }
    for i in 0..200 {
        let lat = [86.0, 89.9, 90.0, -88.0, -90.0][i % 5];
        push(-179.0 + i as f64 * 1.7, lat, &mut rows);
    }
    rows
}

fn write_csv(path: &Path, rows: &[Row]) {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).expect("csv"));
    writeln!(file, "lon,lat,weight").expect("write");
    for r in rows {
        writeln!(file, "{:?},{:?},{}", r.lon, r.lat, r.w).expect("write");
    }
}

/// Tiles to compare at zoom `z`: every tile up to zoom 2; above, the densest tile and its
/// east neighbour, the antimeridian cluster's tiles in the first and last column, and the
/// first and last column on the map's top row.
fn tiles(rows: &[Row], z: u8) -> Vec<(u8, u32, u32)> {
    let n = 1u32 << z;
    if z <= 2 {
        return (0..n)
            .flat_map(|x| (0..n).map(move |y| (z, x, y)))
            .collect();
    }
    let tile = |lon: f64, lat: f64| {
        (
            ((lon_to_world_x(lon) * f64::from(n)) as u32).min(n - 1),
            ((lat_to_world_y(lat) * f64::from(n)) as u32).min(n - 1),
        )
    };
    let mut counts: HashMap<(u32, u32), usize> = HashMap::new();
    for r in rows {
        *counts.entry(tile(r.lon, r.lat)).or_default() += 1;
    }
    let (&(x, y), _) = counts
        .iter()
        .max_by_key(|(k, v)| (**v, **k))
        .expect("points");
    let (_, cy) = tile(180.0, 64.0);
    let mut out = vec![
        (z, x, y),
        (z, (x + 1).min(n - 1), y),
        (z, 0, cy),
        (z, n - 1, cy),
        (z, 0, 0),
        (z, n - 1, n - 1),
    ];
    out.dedup();
    out
}

/// The rows in a new SRID 4326 table with a weight, a category and their order, plus a row
/// without geometry (which no source draws); dropped when the returned guard goes.
fn create_table<'a>(db: &'a pg::Db, table: &str, rows: &[Row]) -> pg::ScratchTable<'a> {
    let columns = "id int8 PRIMARY KEY, geom geometry(Point, 4326), weight float8, kind int4";
    pg::ScratchTable::create(db, table, columns, |t| {
        let ids: Vec<i64> = (0..rows.len() as i64).collect();
        let lon: Vec<f64> = rows.iter().map(|r| r.lon).collect();
        let lat: Vec<f64> = rows.iter().map(|r| r.lat).collect();
        let w: Vec<f64> = rows.iter().map(|r| r.w).collect();
        let kind: Vec<i32> = rows.iter().map(|r| r.kind).collect();
        db.query(
            &format!(
                "INSERT INTO {t} (id, geom, weight, kind) \
                 SELECT id, ST_SetSRID(ST_MakePoint(lon, lat), 4326), w, kind \
                 FROM unnest($1::int8[], $2::float8[], $3::float8[], $4::float8[], $5::int4[]) AS u(id, lon, lat, w, kind)"
            ),
            &[&ids, &lon, &lat, &w, &kind],
        );
        db.batch(&format!(
            "INSERT INTO {t} (id, geom, weight, kind) VALUES (-1, NULL, 5, 1);"
        ));
    })
}

#[test]
fn file_import_and_declared_table_draw_the_same_tiles_with_defaults() {
    let pid = std::process::id();
    let dir = Scratch::new("three-sources");
    let rows = rows();
    let file_layer = format!("file{pid}");
    let csv = dir.join(format!("{file_layer}.csv"));
    write_csv(&csv, &rows);
    // The filtered comparison: a file of only the points of kind 1.
    let kind1_layer = format!("kind{pid}");
    let kind1_csv = dir.join(format!("{kind1_layer}.csv"));
    let kind1: Vec<Row> = rows.iter().copied().filter(|r| r.kind == 1).collect();
    write_csv(&kind1_csv, &kind1);

    let db = pg::Db::connect();
    let imported = pg::TestLayer::new(&db, "three");
    pg::import(&imported.name, &csv, &[]);
    let table_name = format!("three_sources_{pid}");
    let _table = create_table(&db, &table_name, &rows);
    let table_layer = format!("table{pid}");
    let pyramid_table = format!("three_sources_pyr_{pid}");
    let _pyramid_table = create_table(&db, &pyramid_table, &rows);
    let pyramid_layer = format!("tablepyr{pid}");

    // Defaults only: no aggregate_above, no style settings.
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[[layers]]\nname = \"{file_layer}\"\nfile = \"{csv}\"\n\
             [[layers]]\nname = \"{kind1_layer}\"\nfile = \"{kind1}\"\n\
             [[layers]]\nname = \"{table_layer}\"\ntable = \"public.{table_name}\"\n\
             geometry = \"geom\"\nweight = \"weight\"\nseq = \"id\"\n\
             [[layers.filters]]\nparam = \"kind\"\ncolumn = \"kind\"\nop = \"=\"\n\
             [[layers]]\nname = \"{pyramid_layer}\"\ntable = \"public.{pyramid_table}\"\n\
             geometry = \"geom\"\nweight = \"weight\"\nseq = \"id\"\n",
            csv = csv.display(),
            kind1 = kind1_csv.display(),
        ),
    )
    .expect("config");
    pg::pyramid(&pyramid_layer, &["--config", &config.display().to_string()]);
    let server = TestServer::with_database(config, pg::database_url());
    wait_until("the imported layer to be listed", 30, || {
        server.layer(&imported.name).is_some()
    });

    eprintln!("layers: {}", server.get("/layers").json());
    // Every source decides the same zooms from the same points.
    let zooms = |layer: &str| {
        server.get(&format!("/tiles/{layer}.json")).json()["heatmap"]["aggregatedZooms"].clone()
    };
    let aggregated = zooms(&file_layer);
    assert!(
        aggregated.as_array().is_some_and(|z| !z.is_empty()),
        "no zoom is drawn from bins: {aggregated}"
    );
    assert_eq!(aggregated, zooms(&imported.name), "import");
    assert_eq!(aggregated, zooms(&table_layer), "declared table");
    assert_eq!(
        aggregated,
        zooms(&pyramid_layer),
        "declared table with a pyramid"
    );
    // The declared table given a pyramid draws its dense zooms from it: its first tiles
    // (cold; nothing else is requested meanwhile) read pyramid blocks.
    let pyramid_reads = || common::pyramid_queries(&server, &pyramid_layer);
    let before = pyramid_reads();
    for z in 0..=2u32 {
        let tile = server.get(&format!("/tiles/{pyramid_layer}/{z}/0/0.png"));
        assert_eq!(tile.status, 200);
    }
    assert!(
        pyramid_reads() >= before + 3,
        "the declared table's pyramid was not read: {} reads",
        pyramid_reads() - before
    );

    let styles = ["", "?style=dots", "?style=density"];
    let mut worst = (1.0f64, String::new());
    let mut compared = 0;
    let mut drawn = 0;
    for z in 0..=12u8 {
        for (_, x, y) in tiles(&rows, z) {
            for style in styles {
                let path = |layer: &str, extra: &str| {
                    let sep = if style.is_empty() { "?" } else { "&" };
                    let extra = if extra.is_empty() {
                        String::new()
                    } else {
                        format!("{sep}{extra}")
                    };
                    format!("/tiles/{layer}/{z}/{x}/{y}.png{style}{extra}")
                };
                let reference = server.get(&path(&file_layer, ""));
                assert_eq!(reference.status, 200, "{}", path(&file_layer, ""));
                if reference.rgba().2.chunks_exact(4).any(|p| p[3] > 0) {
                    drawn += 1;
                }
                let filtered_reference = server.get(&path(&kind1_layer, ""));
                let pairs = [
                    (&reference, path(&imported.name, "")),
                    (&reference, path(&table_layer, "")),
                    (&reference, path(&pyramid_layer, "")),
                    (&filtered_reference, path(&table_layer, "kind=1")),
                ];
                for (expected, other) in pairs {
                    let got = server.get(&other);
                    assert_eq!(
                        got.status,
                        200,
                        "{other}: {}",
                        String::from_utf8_lossy(&got.body)
                    );
                    let share = common::equal_share(expected, &got);
                    compared += 1;
                    if share < worst.0 {
                        worst = (share, other.clone());
                    }
                    assert!(
                        share >= MIN_EQUAL,
                        "{other}: only {:.3} % of pixels equal the file layer's",
                        share * 100.0
                    );
                }
            }
        }
    }
    eprintln!(
        "{compared} tile pairs compared, {drawn} reference tiles with pixels drawn; worst {:.4} % at {}",
        worst.0 * 100.0,
        worst.1
    );
    assert!(drawn > 100, "too few tiles hold anything: {drawn}");
}

/// The density style's default `max` on a declared table without a pyramid: at zooms whose
/// reference cells are the count grid's cells or larger it comes from the statistics scan
/// the table needs anyway (no query of its own); above, from a search of the densest grid
/// cells (a few index-backed queries on clustered data, bounded by a row budget); and it is
/// the file layer's reference either way, so the tiles are the file's.
#[test]
fn a_table_without_a_pyramid_finds_density_references_without_scanning_it() {
    let pid = std::process::id();
    let dir = Scratch::new("density-reference");
    let rows = rows();
    let file_layer = format!("dfile{pid}");
    let csv = dir.join(format!("{file_layer}.csv"));
    write_csv(&csv, &rows);
    let db = pg::Db::connect();
    let table_name = format!("density_reference_{pid}");
    let _table = create_table(&db, &table_name, &rows);
    let table_layer = format!("dtable{pid}");
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[[layers]]\nname = \"{file_layer}\"\nfile = \"{csv}\"\n\
             [[layers]]\nname = \"{table_layer}\"\ntable = \"public.{table_name}\"\n\
             geometry = \"geom\"\nweight = \"weight\"\nseq = \"id\"\n",
            csv = csv.display(),
        ),
    )
    .expect("config");
    let server = TestServer::with_database(config, pg::database_url());
    // Only this test's requests ask for density references on this server.
    let reference_queries = || common::metric(&server, "twine_db_reference_queries_total");
    // The statistics scan, once, before anything is counted.
    assert_eq!(
        server
            .get(&format!("/tiles/{table_layer}/0/0/0.png"))
            .status,
        200
    );
    let mut fine_zooms = 0;
    for z in [0u8, 3, 7, 9, 13] {
        let (_, x, y) = tiles(&rows, z)[0];
        let tile = |layer: &str, extra: &str| {
            server.get(&format!(
                "/tiles/{layer}/{z}/{x}/{y}.png?style=density{extra}"
            ))
        };
        let before = reference_queries();
        let drawn = tile(&table_layer, "");
        assert_eq!(drawn.status, 200);
        let extra = reference_queries() - before;
        // Reference cells for radius 25: 25 px at zoom z rounded to a power of two; the
        // count grid's cells are 2^-10 of the world.
        let cell_log2 = (25.0 / (256.0 * 2f64.powi(i32::from(z)))).log2().round();
        if cell_log2 >= -10.0 {
            assert_eq!(
                extra, 0.0,
                "z{z}: the reference at a grid zoom queried the table"
            );
        } else {
            fine_zooms += 1;
            assert!(
                (1.0..=20.0).contains(&extra),
                "z{z}: the fine reference search ran {extra} queries"
            );
        }
        let share = common::equal_share(&tile(&file_layer, ""), &drawn);
        assert!(
            share >= MIN_EQUAL,
            "z{z}: only {:.3} % of pixels equal the file layer's",
            share * 100.0
        );
    }
    assert!(fine_zooms >= 2);
}
