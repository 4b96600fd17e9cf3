//! Time and category filters on PostGIS layers over real HTTP: imported layers (`import
//! --time --category`, with weights and with every weight 1) and declared tables (`time`,
//! `categories`: a timestamptz table in EPSG:4269 whose empty categories are NULL, and a
//! `timestamp` table in EPSG:4326) draw the same tiles, overlays and `/points`, filtered, as
//! the same points pre-filtered into a file, with bin pyramids present (which a filtered
//! request must not read); TileJSON describes them as it does a file's; bad values get a 400
//! naming the parameter; tables whose columns cannot serve are refused at start-up.

mod common;

use common::pg;
use common::scratch::Scratch;
use common::time_rows::{cases, csv, points_answer, rows, tiles, Row, POINTS_PATHS};
use common::{equal_share, wait_until, TestServer};
use std::fmt::Write;
use twine_heatmap::app::ServeArgs;

/// How the PostGIS layer under test holds the points.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Imported,
    /// Imported with every weight 1: its time pyramid's entries leave weights out.
    ImportedUnweighted,
    /// timestamptz, EPSG:4269 (geographic, not 4326), NULL for the empty kind.
    DeclaredTz,
    /// timestamp without time zone (UTC), EPSG:4326.
    DeclaredNaive,
}

struct Fixture<'a> {
    server: TestServer,
    layer: String,
    _table: Option<pg::ScratchTable<'a>>,
    _imported: Option<pg::TestLayer<'a>>,
    _dir: Scratch,
}

const AGGREGATE_ABOVE: u64 = 300;

/// Creates `public."table"` in `srid` holding `rows` (id = the file's row index, so the dots
/// style draws them in the file's order) with the time in a `time_type` column.
fn create_table<'a>(
    db: &'a pg::Db,
    table: &str,
    srid: i32,
    time_type: &str,
    rows: &[Row],
) -> pg::ScratchTable<'a> {
    let columns = format!(
        "id int PRIMARY KEY, geom geometry(Point, {srid}), w real, t {time_type}, kind text, size varchar(4)"
    );
    pg::ScratchTable::create(db, table, &columns, |t| {
        let mut sql = format!("INSERT INTO {t} (id, geom, w, t, kind, size) VALUES ");
        for (i, r) in rows.iter().enumerate() {
            let time = r.time.map_or("NULL".to_owned(), |ms| {
                let iso = chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms)
                    .expect("time")
                    .format("%Y-%m-%d %H:%M:%S%.3f");
                // A timestamptz literal with its zone; a timestamp one in UTC wall-clock time.
                if time_type == "timestamptz" {
                    format!("'{iso}+00'")
                } else {
                    format!("'{iso}'")
                }
            });
            let kind = if r.kind.is_empty() {
                "NULL".to_owned()
            } else {
                format!("'{}'", r.kind)
            };
            let _ = write!(
                sql,
                "{}({i}, ST_SetSRID(ST_MakePoint({:?}, {:?}), {srid}), {}, {time}, {kind}, '{}')",
                if i > 0 { ", " } else { "" },
                r.lon,
                r.lat,
                r.w,
                r.size
            );
        }
        db.batch(&sql);
    })
}

/// Serves the PostGIS layer of `kind` holding [`rows`], with its bin pyramid, and a file
/// layer `case{i}` of the points each case keeps (plus `all`, the file with attributes).
fn fixture<'a>(db: &'a pg::Db, kind: Kind) -> (Fixture<'a>, Vec<Row>) {
    let mut rows = rows();
    if kind == Kind::ImportedUnweighted {
        for r in &mut rows {
            r.w = 1;
        }
    }
    let pid = std::process::id();
    let dir = Scratch::new(&format!("postgis-time-{kind:?}"));
    let all_csv = dir.file("all.csv", &csv(&rows, true));
    let mut config = format!(
        "aggregate_above = {AGGREGATE_ABOVE}\n[[layers]]\nname = \"all\"\nfile = {:?}\ntime = \"time\"\ncategories = [\"kind\", \"size\"]\n",
        all_csv.display().to_string()
    );
    for (i, case) in cases().iter().enumerate() {
        let kept: Vec<Row> = rows.iter().filter(|r| (case.keeps)(r)).cloned().collect();
        let file = dir.file(&format!("case{i}.csv"), &csv(&kept, false));
        let _ = write!(
            config,
            "[[layers]]\nname = \"case{i}\"\nfile = {:?}\n",
            file.display().to_string()
        );
    }
    let above = AGGREGATE_ABOVE.to_string();
    let (layer, table, imported) = match kind {
        Kind::Imported | Kind::ImportedUnweighted => {
            let imported = pg::TestLayer::new(db, "time");
            let flags = [
                "--time",
                "time",
                "--category",
                "kind",
                "--category",
                "size",
                "--aggregate-above",
                &above,
            ];
            pg::import(&imported.name, &all_csv, &flags);
            (imported.name.clone(), None, Some(imported))
        }
        Kind::DeclaredTz | Kind::DeclaredNaive => {
            let (srid, time_type) = match kind {
                Kind::DeclaredTz => (4269, "timestamptz"),
                _ => (4326, "timestamp"),
            };
            let name = format!("ptime_{pid}_{srid}");
            let table = create_table(db, &name, srid, time_type, &rows);
            let layer = format!("pt{pid}x{srid}");
            let _ = write!(
                config,
                "[[layers]]\nname = \"{layer}\"\ntable = \"public.{name}\"\nweight = \"w\"\nseq = \"id\"\n\
                 time = \"t\"\ncategories = [\"kind\", \"size\"]\n\
                 [[layers.filters]]\nparam = \"minw\"\ncolumn = \"w\"\nop = \">=\"\n"
            );
            (layer, Some(table), None)
        }
    };
    let config_path = dir.file("config.toml", &config);
    if table.is_some() {
        // The declared table's pyramid (and its data-version trigger), as a deployment
        // builds it: filtered requests must go past it.
        let path = config_path.display().to_string();
        pg::pyramid(&layer, &["--config", &path, "--aggregate-above", &above]);
    }
    let server = TestServer::from_args(&ServeArgs {
        config: Some(config_path),
        database_url: Some(pg::database_url()),
        ..ServeArgs::default()
    });
    wait_until(&format!("{layer} listed with its points"), 60, || {
        server.layer_count(&layer) == Some(rows.len() as u64)
    });
    let tilejson = server.get(&format!("/tiles/{layer}.json")).json();
    assert!(
        tilejson["heatmap"]["aggregatedZooms"]
            .as_array()
            .is_some_and(|z| !z.is_empty()),
        "{layer} has no aggregated zooms: the pyramid is what the filters must go past"
    );
    let fixture = Fixture {
        server,
        layer,
        _table: table,
        _imported: imported,
        _dir: dir,
    };
    (fixture, rows)
}

/// Asserts that two points answers hold the same points or bins: positions and weights
/// within 1e-9 (a declared table's points come through PROJ), counts exactly.
fn assert_same_points(what: &str, a: &serde_json::Value, b: &serde_json::Value) {
    assert_eq!(a["count"], b["count"], "{what}: counts differ");
    assert_eq!(a["aggregated"], b["aggregated"], "{what}");
    let (p, q) = (
        a["data"].as_array().expect("data"),
        b["data"].as_array().expect("data"),
    );
    assert_eq!(p.len(), q.len(), "{what}");
    for (u, v) in p.iter().zip(q) {
        for i in 0..3 {
            let (x, y) = (
                u[i].as_f64().unwrap_or(f64::NAN),
                v[i].as_f64().unwrap_or(f64::NAN),
            );
            assert!(
                (x - y).abs() <= 1e-9 * x.abs().max(1.0),
                "{what}: {u} != {v}"
            );
        }
    }
}

/// Every case, on tiles z0-z8 in the three styles, `/points` in both forms and an overlay:
/// the PostGIS layer filtered draws (>= 99.9 % of pixels) and answers what the file of the
/// passing points does.
fn filtered_layer_equals_the_prefiltered_file(kind: Kind) {
    let db = pg::Db::connect();
    let (f, rows) = fixture(&db, kind);
    let (server, layer) = (&f.server, f.layer.as_str());
    let mut compared = 0;
    let mut drawn = 0;
    let mut failures = Vec::new();
    for (i, case) in cases().iter().enumerate() {
        // The timestamp table differs from the timestamptz one only in how windows are
        // bound, and the unweighted import from the weighted one in the time pyramid's
        // entries: their category cases would repeat the others'.
        if matches!(kind, Kind::DeclaredNaive | Kind::ImportedUnweighted)
            && !case.query.contains("from")
            && !case.query.contains("to=")
        {
            continue;
        }
        for style in ["style=smooth", "style=dots", "style=density"] {
            for z in 0..=8u8 {
                for (x, y) in tiles(z, &rows) {
                    let path = format!("/tiles/{layer}/{z}/{x}/{y}.png?{style}&{}", case.query);
                    let filtered = server.get(&path);
                    let expected = server.get(&format!("/tiles/case{i}/{z}/{x}/{y}.png?{style}"));
                    assert_eq!(
                        filtered.status,
                        200,
                        "{path}: {}",
                        String::from_utf8_lossy(&filtered.body)
                    );
                    let share = equal_share(&filtered, &expected);
                    if share < 0.999 {
                        failures.push(format!("{path}: {:.2}% equal", share * 100.0));
                    }
                    compared += 1;
                    drawn += usize::from(expected.rgba().2.chunks(4).any(|p| p[3] != 0));
                }
            }
        }
        for path in POINTS_PATHS {
            let ask = |name: &str, extra: &str| points_answer(server, path, name, extra);
            let (pg_answer, file_answer) = (
                ask(layer, &format!("&{}", case.query)),
                ask(&format!("case{i}"), ""),
            );
            let what = format!("{path} {}", case.query);
            if matches!(kind, Kind::Imported | Kind::ImportedUnweighted) {
                // Imported points are the file's to the bit.
                assert_eq!(pg_answer, file_answer, "{what}");
            } else {
                assert_same_points(&what, &pg_answer, &file_answer);
            }
        }
        let overlay = |name: &str, extra: &str| {
            server.get(&format!(
                "/heatmap.png?layer={name}&bbox=-180,-80,180,80&width=600&height=300&style=density{extra}"
            ))
        };
        let share = equal_share(
            &overlay(layer, &format!("&{}", case.query)),
            &overlay(&format!("case{i}"), ""),
        );
        assert!(share >= 0.999, "overlay {}: {share}", case.query);
    }
    assert!(
        failures.is_empty(),
        "{} of {compared} tiles differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        compared > 1000 && drawn > 300,
        "{compared} compared, {drawn} drawn"
    );
    // Those windows and categories were read from the layer's time pyramid (with a part per
    // category value), not only summed from its points.
    let bins = format!("tb_{layer}");
    let (parts, weighted): (Vec<String>, Option<bool>) = db
        .query(
            "SELECT part_columns, weighted FROM twine.time_pyramids WHERE bins_table = $1",
            &[&bins],
        )
        .first()
        .map(|r| (r.get(0), r.get(1)))
        .unwrap_or_default();
    assert!(parts.iter().any(|c| c == "kind"), "{bins}: parts {parts:?}");
    // Entries carry weights only where some weight is not 1.
    assert_eq!(
        weighted,
        Some(kind != Kind::ImportedUnweighted),
        "{bins}: weighted"
    );
    wait_until(&format!("{bins} read by the server"), 15, || {
        let reads: i64 = db
            .query(
                "SELECT coalesce(idx_scan, 0) + coalesce(seq_scan, 0) FROM pg_stat_user_tables \
                 WHERE relid = to_regclass('twine.' || quote_ident($1))",
                &[&bins],
            )
            .first()
            .map_or(0, |r| r.get(0));
        reads > 0
    });
}

#[test]
fn an_imported_layer_filtered_draws_like_the_prefiltered_file() {
    filtered_layer_equals_the_prefiltered_file(Kind::Imported);
}

#[test]
fn an_imported_layer_of_unit_weights_filtered_draws_like_the_prefiltered_file() {
    filtered_layer_equals_the_prefiltered_file(Kind::ImportedUnweighted);
}

#[test]
fn a_declared_timestamptz_table_in_4269_filtered_draws_like_the_prefiltered_file() {
    filtered_layer_equals_the_prefiltered_file(Kind::DeclaredTz);
}

#[test]
fn a_declared_timestamp_table_filtered_draws_like_the_prefiltered_file() {
    filtered_layer_equals_the_prefiltered_file(Kind::DeclaredNaive);
}

/// TileJSON's `heatmap.time` and `heatmap.categories` of the PostGIS layer: those of the
/// file of the same points. Declared filters keep working beside them.
fn describes_like_the_file(kind: Kind) {
    let db = pg::Db::connect();
    let (f, rows) = fixture(&db, kind);
    let (server, layer) = (&f.server, f.layer.as_str());
    let heatmap = |name: &str| server.get(&format!("/tiles/{name}.json")).json()["heatmap"].clone();
    let (pg_doc, file_doc) = (heatmap(layer), heatmap("all"));
    assert_eq!(pg_doc["time"]["min"], file_doc["time"]["min"]);
    assert_eq!(pg_doc["time"]["max"], file_doc["time"]["max"]);
    assert_eq!(pg_doc["time"]["bucket"], "day");
    assert_eq!(pg_doc["categories"], file_doc["categories"]);
    if kind == Kind::Imported {
        assert_eq!(pg_doc["time"]["column"], "time");
        return;
    }
    assert_eq!(pg_doc["time"]["column"], "t");
    // The declared filter on the weight, alone and with a window and a category.
    let count = |q: &str| {
        let reply = server.get(&format!("/points/{layer}/0/0/0.json?limit=100000&{q}"));
        assert_eq!(
            reply.status,
            200,
            "{q}: {}",
            String::from_utf8_lossy(&reply.body)
        );
        reply.json()["count"].as_u64().unwrap_or(u64::MAX)
    };
    let expected = |keep: &dyn Fn(&Row) -> bool| rows.iter().filter(|r| keep(r)).count() as u64;
    assert_eq!(count("minw=3"), expected(&|r| r.w >= 3));
    let spring = |r: &Row| {
        r.time
            .is_some_and(|t| (1_709_251_200_000..1_717_200_000_000).contains(&t))
    };
    assert_eq!(
        count("minw=2&from=2024-03-01&to=2024-06-01&category.kind=a,"),
        expected(&|r| r.w >= 2 && spring(r) && (r.kind == "a" || r.kind.is_empty()))
    );
}

#[test]
fn tilejson_describes_an_imported_layers_time_and_categories_like_the_files() {
    describes_like_the_file(Kind::Imported);
}

#[test]
fn tilejson_describes_a_declared_tables_time_and_categories_like_the_files() {
    describes_like_the_file(Kind::DeclaredTz);
}

#[test]
fn bad_values_on_a_postgis_layer_are_refused_by_name() {
    let db = pg::Db::connect();
    let (f, _) = fixture(&db, Kind::Imported);
    let layer = f.layer.as_str();
    let refused = |path: &str, param: &str| {
        let reply = f.server.get(path);
        assert_eq!(
            reply.status,
            400,
            "{path}: {}",
            String::from_utf8_lossy(&reply.body)
        );
        let body = reply.json();
        assert_eq!(body["parameter"], param, "{path}: {body}");
        body["detail"].as_str().unwrap_or_default().to_owned()
    };
    for route in [
        format!("/tiles/{layer}/1/0/0.png?"),
        format!("/heatmap.png?layer={layer}&bbox=-10,-10,10,10&width=64&height=64&"),
        format!("/points/{layer}/1/0/0.json?"),
        format!("/points/{layer}?bbox=-10,-10,10,10&"),
    ] {
        assert!(refused(&format!("{route}from=yesterday"), "from").contains("ISO 8601"));
        refused(&format!("{route}to=2024-02-30"), "to");
        refused(&format!("{route}from=2024-02-02&to=2024-02-01"), "from");
        let detail = refused(&format!("{route}category=a"), "category");
        assert!(detail.contains("category.kind, category.size"), "{detail}");
        refused(&format!("{route}category.colour=red"), "category.colour");
    }
    // Values that would be SQL if they were spliced: bound, they match nothing.
    let reply = f.server.get(&format!(
        "/points/{layer}/0/0/0.json?category.kind=a'%20OR%20'1'='1,x%22;%20DROP%20TABLE%20t;--"
    ));
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["count"], 0);
}

#[test]
fn declared_time_and_category_columns_that_cannot_serve_stop_start_up() {
    let db = pg::Db::connect();
    let name = format!("ptime_bad_{}", std::process::id());
    let _table = pg::ScratchTable::create(
        &db,
        &name,
        "geom geometry(Point, 4326), d date, when_text text, kind text",
        |t| {
            db.batch(&format!(
                "INSERT INTO {t} (geom, d, when_text, kind) \
                 SELECT ST_SetSRID(ST_MakePoint(i, i), 4326), date '2024-01-01' + i, 'soon', 'a' \
                 FROM generate_series(0, 9) i"
            ))
        },
    );
    let dir = Scratch::new("postgis-time-misconfigured");
    let layer = |label: &str, extra: &str| {
        format!("[[layers]]\nname = \"{label}\"\ntable = \"public.{name}\"\n{extra}\n")
    };
    let config = dir.file(
        "config.toml",
        &[
            layer("gooddate", "time = \"d\"\ncategories = [\"kind\"]"),
            layer("missingtime", "time = \"t\""),
            layer("texttime", "time = \"when_text\""),
            layer("missingcategory", "categories = [\"colour\"]"),
            layer("geomcategory", "categories = [\"geom\"]"),
        ]
        .concat(),
    );
    let stderr = pg::serve_refused(&config);
    let table = format!("public.{name}");
    for expected in [
        format!("layer missingtime: time column t of {table}: no such column"),
        format!("layer texttime: time column when_text of {table}: is text, not a timestamptz, timestamp or date"),
        format!("layer missingcategory: category column colour of {table}: no such column"),
        format!("layer geomcategory: category column geom of {table}: is geometry(Point,4326)"),
    ] {
        assert!(stderr.contains(&expected), "{expected:?} not in:\n{stderr}");
    }
    assert!(!stderr.contains("layer gooddate"), "{stderr}");
    // A name that cannot be an SQL identifier is refused before the database is asked.
    let config = dir.file("ident.toml", &layer("q", "time = \"t; drop\""));
    let stderr = pg::serve_refused(&config);
    assert!(
        stderr.contains("layer \"q\"") && stderr.contains("not a valid SQL identifier"),
        "{stderr}"
    );
}

#[test]
fn a_date_column_is_midnight_utc_and_windows_cut_at_days() {
    let db = pg::Db::connect();
    let name = format!("ptime_date_{}", std::process::id());
    let _table = pg::ScratchTable::create(&db, &name, "geom geometry(Point, 4326), d date", |t| {
        db.batch(&format!(
            "INSERT INTO {t} (geom, d) SELECT ST_SetSRID(ST_MakePoint(i, i), 4326), \
             date '2024-01-01' + i FROM generate_series(0, 9) i; \
             INSERT INTO {t} (geom, d) VALUES (ST_SetSRID(ST_MakePoint(1, 1), 4326), NULL)"
        ))
    });
    let dir = Scratch::new("postgis-time-date");
    let config = dir.file(
        "config.toml",
        &format!("[[layers]]\nname = \"days\"\ntable = \"public.{name}\"\ntime = \"d\"\n"),
    );
    let server = TestServer::with_database(config, pg::database_url());
    wait_until("days listed", 60, || server.layer_count("days") == Some(11));
    let count = |q: &str| {
        server.get(&format!("/points/days/0/0/0.json?{q}")).json()["count"]
            .as_u64()
            .unwrap_or(u64::MAX)
    };
    assert_eq!(count(""), 11);
    assert_eq!(count("from=2024-01-03&to=2024-01-05"), 2);
    assert_eq!(
        count("from=2024-01-02T23:59:59.999Z&to=2024-01-03T00:00:00.001Z"),
        1
    );
    assert_eq!(count("from=2024-01-03T00:00:00.001Z&to=2024-01-04"), 0);
    assert_eq!(
        count("from=2024-01-03T01:00:00%2B01:00&to=2024-01-03T01:00:00.001%2B01:00"),
        1
    );
    assert_eq!(count("to=2030-01-01"), 10);
    let time = server.get("/tiles/days.json").json()["heatmap"]["time"].clone();
    assert_eq!(time["min"], "2024-01-01T00:00:00Z");
    assert_eq!(time["max"], "2024-01-10T00:00:00Z");
    assert_eq!(time["bucket"], "hour");
}

#[test]
fn import_refuses_bad_times_and_names_and_keeps_columns_across_files() {
    let db = pg::Db::connect();
    let layer = pg::TestLayer::new(&db, "timeimp");
    let dir = Scratch::new("postgis-time-import");
    let url = pg::database_url();
    let bad = dir.file(
        "bad.csv",
        "lon,lat,when,kind\n1,2,2024-01-01,a\n3,4,soon,b\n",
    );
    let stderr = pg::import_into(&url, &layer.name, &["--time", "when"], &[&bad]).expect_failure();
    assert!(
        stderr.contains("bad.csv:3: time column \"when\": \"soon\" is not"),
        "{stderr}"
    );
    assert!(
        !layer.exists(),
        "a bad file must leave the database untouched"
    );
    for (flags, needle) in [
        (&["--time", "geom"][..], "--time \"geom\""),
        (
            &["--category", "a b"][..],
            "--category \"a b\": \"a b\" is not a valid SQL identifier",
        ),
        (&["--time", "when", "--category", "when"][..], "named twice"),
        (&["--time", "missing"][..], "no column \"missing\""),
    ] {
        let good = dir.file("good.csv", "lon,lat,when,kind\n1,2,2024-01-01,a\n");
        let stderr = pg::import_into(&url, &layer.name, flags, &[&good]).expect_failure();
        assert!(
            stderr.contains(needle),
            "{flags:?}: {needle:?} not in {stderr}"
        );
        assert!(!layer.exists(), "{flags:?}");
    }
    // A first file with the time and one category, a second adding another category.
    let first = dir.file(
        "first.csv",
        "lon,lat,when,kind\n1,2,2024-01-01T12:00:00+02:00,a\n3,4,,b\n",
    );
    let second = dir.file("second.csv", "lon,lat,when,size\n5,6,2024-02-01,l\n");
    pg::import(
        &layer.name,
        &first,
        &["--time", "when", "--category", "kind"],
    );
    pg::import(
        &layer.name,
        &second,
        &["--time", "when", "--category", "size"],
    );
    let rows = db.query(
        &format!(
            "SELECT seq, extract(epoch FROM \"when\")::float8, kind, size FROM {} ORDER BY seq",
            layer.table()
        ),
        &[],
    );
    type Stored = (i64, Option<f64>, Option<String>, Option<String>);
    let got: Vec<Stored> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    assert_eq!(
        got,
        vec![
            (0, Some(1_704_103_200.0), Some("a".into()), None),
            (1, None, Some("b".into()), None),
            (2, Some(1_706_745_600.0), None, Some("l".into())),
        ]
    );
    let registered = db.query(
        "SELECT time_column, category_columns FROM twine.layers WHERE name = $1",
        &[&layer.name],
    );
    let (time, categories): (Option<String>, Vec<String>) =
        (registered[0].get(0), registered[0].get(1));
    assert_eq!(
        (time.as_deref(), categories),
        (Some("when"), vec!["kind".to_owned(), "size".to_owned()])
    );
    // Another time column for the same layer is refused, and the layer keeps its rows.
    let other = dir.file("other.csv", "lon,lat,t2\n1,2,2024-01-01\n");
    let stderr = pg::import_into(&url, &layer.name, &["--time", "t2"], &[&other]).expect_failure();
    assert!(
        stderr.contains("its times are in column when, not t2"),
        "{stderr}"
    );
    let stderr =
        pg::import_into(&url, &layer.name, &["--category", "when"], &[&first]).expect_failure();
    assert!(
        stderr.contains("when is its time column, not a category"),
        "{stderr}"
    );
    // A column of the wrong type (added by hand) is named.
    db.batch(&format!(
        "ALTER TABLE {} ADD COLUMN colour integer",
        layer.table()
    ));
    let colours = dir.file("colours.csv", "lon,lat,colour\n1,2,red\n");
    let stderr =
        pg::import_into(&url, &layer.name, &["--category", "colour"], &[&colours]).expect_failure();
    assert!(
        stderr.contains("column colour of twine.points_"),
        "{stderr}"
    );
    assert!(stderr.contains("is integer, not text"), "{stderr}");
    assert_eq!(layer.count(), 3);
    // Served with both categories, and the rows without a value as the empty one.
    let server = TestServer::from_args(&ServeArgs {
        database_url: Some(url),
        ..ServeArgs::default()
    });
    wait_until("the imported layer", 60, || {
        server.layer_count(&layer.name) == Some(3)
    });
    let count = |q: &str| {
        let reply = server.get(&format!("/points/{}/0/0/0.json?{q}", layer.name));
        assert_eq!(
            reply.status,
            200,
            "{q}: {}",
            String::from_utf8_lossy(&reply.body)
        );
        reply.json()["count"].as_u64().unwrap_or(u64::MAX)
    };
    assert_eq!(count("category.kind="), 1);
    assert_eq!(count("category.size=&category.kind=a,b"), 2);
    assert_eq!(
        count("from=2024-01-01T10:00:00Z&to=2024-01-01T10:00:00.001Z"),
        1
    );
    assert_eq!(count("from=2024-01-01"), 2);
}
