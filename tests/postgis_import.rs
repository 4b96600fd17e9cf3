//! `twine-heatmap import` against a real PostGIS (`DATABASE_URL`, else the local development
//! database; these tests fail when it is unreachable). Each test imports into its own layer,
//! named after the process and the test, through the real binary.

mod common;

use common::pg::{self, database_url, Db, TestLayer};
use common::scratch::Scratch;
use std::path::Path;
use twine_heatmap::render::WorldPoint;
use twine_heatmap::source::load::{load_points_file, WeightMode};
use twine_heatmap::tile::world_to_metres;

/// Runs `import --database-url URL --layer LAYER EXTRA... FILES...`: (success, stderr).
fn import_with(url: &str, layer: &str, extra: &[&str], files: &[&Path]) -> (bool, String) {
    pg::import_into(url, layer, extra, files).verdict()
}

fn import(layer: &TestLayer, extra: &[&str], files: &[&Path]) -> (bool, String) {
    import_with(&database_url(), &layer.name, extra, files)
}

/// The points the loader reads from `files`, in file order: what the table must hold.
fn loaded(files: &[&Path]) -> Vec<WorldPoint> {
    files
        .iter()
        .flat_map(|f| load_points_file(f, WeightMode::FromData).expect("load"))
        .collect()
}

/// Deterministic pseudo-random numbers in 0..1 (xorshift), for shuffled inputs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// `n` points spread at random over lon -170..170, lat -60..60, each weighing 1.
fn random_csv(n: usize, seed: u64) -> String {
    let mut rng = Rng(seed);
    let mut csv = String::from("lon,lat,weight\n");
    for _ in 0..n {
        let lon = rng.next() * 340.0 - 170.0;
        let lat = rng.next() * 120.0 - 60.0;
        csv.push_str(&format!("{lon:.6},{lat:.6},1\n"));
    }
    csv
}

#[test]
fn csv_seed_json_and_geojson_go_into_one_layer_exactly() {
    let dir = Scratch::new("import-formats");
    let db = Db::connect();
    let layer = TestLayer::new(&db, "formats");
    let csv = dir.file("cities.csv",
        "lon,lat,weight\n2.35,48.85,3\n-0.1276,51.5072,0.25\n139.69,35.69,0\n-180,85.2,1e30\n180,-89.99,7\n",
    );
    let seed = dir.file("seed.json", "[[40.71, -74.0, 2.5],\n [-33.87, 151.21]]\n");
    let geojson = dir.file(
        "places.geojson",
        r#"{"type": "FeatureCollection", "features": [
            {"type": "Feature", "properties": {"mag": 4.5},
             "geometry": {"type": "Point", "coordinates": [12.49, 41.9]}},
            {"type": "Feature", "properties": null,
             "geometry": {"type": "MultiPoint", "coordinates": [[-58.38, -34.6], [37.62, 55.75]]}}
        ]}"#,
    );

    let (ok, err) = import(&layer, &["--attribution", "Test data"], &[&csv]);
    assert!(ok, "{err}");
    assert!(err.contains("cities.csv: 5 rows in "), "{err}");
    assert_eq!(layer.count(), 5);
    assert_eq!(layer.version(), Some(1), "one COPY, one version");

    let (ok, err) = import(&layer, &[], &[&seed, &geojson]);
    assert!(ok, "{err}");
    assert!(err.contains("seed.json: 2 rows in "), "{err}");
    assert!(err.contains("places.geojson: 3 rows in "), "{err}");
    assert!(err.contains("total: 2 files, 5 rows in "), "{err}");
    assert_eq!(layer.version(), Some(3), "the version moves with each file");

    // Every row, by seq: file order across files and commands, the loader's weights, and
    // exactly world_to_metres of the loader's world coordinates.
    let expected = loaded(&[&csv, &seed, &geojson]);
    let rows = db.query(
        &format!(
            "SELECT seq, weight, ST_X(geom), ST_Y(geom), ST_SRID(geom) FROM {} ORDER BY seq",
            layer.table()
        ),
        &[],
    );
    assert_eq!(rows.len(), expected.len());
    for (i, (row, p)) in rows.iter().zip(&expected).enumerate() {
        let (mx, my) = world_to_metres(p.x, p.y);
        assert_eq!(row.get::<_, i64>(0), i as i64);
        assert_eq!(
            row.get::<_, f32>(1).to_bits(),
            p.w.to_bits(),
            "weight of row {i}"
        );
        assert_eq!(row.get::<_, f64>(2).to_bits(), mx.to_bits(), "x of row {i}");
        assert_eq!(row.get::<_, f64>(3).to_bits(), my.to_bits(), "y of row {i}");
        assert_eq!(row.get::<_, i32>(4), 3857);
    }

    let column = db.query(
        "SELECT srid, type FROM geometry_columns \
         WHERE f_table_schema = 'twine' AND f_table_name = $1 AND f_geometry_column = 'geom'",
        &[&format!("points_{}", layer.name)],
    );
    assert_eq!(column.len(), 1);
    assert_eq!(column[0].get::<_, i32>(0), 3857);
    assert_eq!(column[0].get::<_, String>(1), "POINT");

    let index = db.query(
        "SELECT indexdef FROM pg_indexes WHERE schemaname = 'twine' AND indexname = $1",
        &[&format!("points_{}_geom", layer.name)],
    );
    assert_eq!(index.len(), 1, "GiST index");
    assert!(index[0].get::<_, String>(0).contains("USING gist (geom)"));

    let registered = || {
        db.query(
            "SELECT table_name, attribution FROM twine.layers WHERE name = $1",
            &[&layer.name],
        )
    };
    let rows = registered();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].get::<_, String>(0), layer.key());
    assert_eq!(
        rows[0].get::<_, Option<String>>(1).as_deref(),
        Some("Test data"),
        "kept when not given again"
    );

    // An empty file changes no data (so no version), but a new attribution is recorded.
    let empty = dir.file("empty.csv", "lon,lat\n");
    let (ok, err) = import(&layer, &["--attribution", "New"], &[&empty]);
    assert!(ok, "{err}");
    assert!(err.contains("empty.csv: 0 rows in "), "{err}");
    assert_eq!(layer.version(), Some(3));
    assert_eq!(layer.count(), 10);
    assert_eq!(
        registered()[0].get::<_, Option<String>>(1).as_deref(),
        Some("New")
    );
}

#[test]
fn a_bad_row_stops_at_its_file_and_line_and_earlier_files_stay() {
    let dir = Scratch::new("import-badrow");
    let db = Db::connect();
    let layer = TestLayer::new(&db, "badrow");
    let good = dir.file("good.csv", "lon,lat\n1,2\n3,4\n5,6\n");
    let bad = dir.file("bad.csv", "lon,lat\n1,2\n3,4\n5,95\n7,8\n");

    let (ok, err) = import(&layer, &[], &[&good, &bad]);
    assert!(!ok, "{err}");
    assert!(err.contains("good.csv: 3 rows in "), "{err}");
    assert!(
        err.contains("bad.csv:4: latitude 95 is outside -90..90"),
        "{err}"
    );
    assert_eq!(
        layer.count(),
        3,
        "the good file stays, nothing of the bad one"
    );
    assert_eq!(layer.version(), Some(1));

    let (ok, err) = import(&layer, &[], &[&bad]);
    assert!(!ok, "{err}");
    assert!(err.contains("bad.csv:4:"), "{err}");
    assert_eq!(layer.count(), 3, "unchanged");
    assert_eq!(layer.version(), Some(1), "unchanged");
}

#[test]
fn a_bad_first_file_leaves_the_database_untouched() {
    let dir = Scratch::new("import-badfirst");
    let db = Db::connect();
    let layer = TestLayer::new(&db, "badfirst");
    let bad = dir.file("seed.json", "[[50, 10],\n [50, 10, -1]]\n");
    let (ok, err) = import(&layer, &[], &[&bad]);
    assert!(!ok, "{err}");
    assert!(err.contains("seed.json:2: weight -1 is negative"), "{err}");
    assert!(!layer.exists(), "no table for a layer that never got a row");
    // On a fresh database even the twine schema is not there yet.
    let registered = db.query("SELECT to_regclass('twine.layers') IS NOT NULL", &[])[0]
        .get::<_, bool>(0)
        && !db
            .query("SELECT 1 FROM twine.layers WHERE name = $1", &[&layer.name])
            .is_empty();
    assert!(!registered);
}

#[test]
fn a_database_error_in_the_middle_of_a_copy_rolls_the_file_back() {
    let dir = Scratch::new("import-midcopy");
    let db = Db::connect();
    let layer = TestLayer::new(&db, "midcopy");
    let first = dir.file("first.csv", "lon,lat,weight\n1,2,3\n");
    let (ok, err) = import(&layer, &[], &[&first]);
    assert!(ok, "{err}");
    // The database, not the loader, refuses the heavy point. It is in the north-east corner,
    // where the Hilbert order ends, so 30,000 rows (several COPY messages) precede it.
    db.batch(&format!(
        "ALTER TABLE {} ADD CONSTRAINT light CHECK (weight < 100)",
        layer.table()
    ));
    let mut csv = random_csv(30_000, 7);
    csv.push_str("179.9,84.9,500\n");
    csv.push_str(&random_csv(10, 8).replace("lon,lat,weight\n", ""));
    let big = dir.file("big.csv", &csv);
    let (ok, err) = import(&layer, &[], &[&big]);
    assert!(!ok, "{err}");
    assert!(
        err.contains("copying ") && err.contains("big.csv failed: ERROR: "),
        "{err}"
    );
    assert!(err.contains("\"light\""), "names the constraint: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert_eq!(layer.count(), 1, "rolled back");
    assert_eq!(layer.version(), Some(1), "rolled back");
}

/// Mean distance in metres between consecutive rows in `order`.
fn mean_step(db: &Db, layer: &TestLayer, order: &str) -> f64 {
    let rows = db.query(
        &format!(
            "SELECT ST_X(geom), ST_Y(geom) FROM {} ORDER BY {order}",
            layer.table()
        ),
        &[],
    );
    let xy: Vec<(f64, f64)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    let total: f64 = xy
        .windows(2)
        .map(|w| (w[1].0 - w[0].0).hypot(w[1].1 - w[0].1))
        .sum();
    total / (xy.len() - 1) as f64
}

#[test]
fn rows_are_stored_in_spatial_order_but_numbered_in_file_order() {
    let dir = Scratch::new("import-order");
    let db = Db::connect();
    let layer = TestLayer::new(&db, "order");
    let file = dir.file("random.csv", &random_csv(20_000, 42));
    let (ok, err) = import(&layer, &[], &[&file]);
    assert!(ok, "{err}");
    assert_eq!(layer.count(), 20_000);
    let on_disk = mean_step(&db, &layer, "ctid");
    let in_file = mean_step(&db, &layer, "seq");
    assert!(
        on_disk * 20.0 < in_file,
        "consecutive rows on disk are {on_disk:.0} m apart, in the file {in_file:.0} m"
    );
    // seq is the file order: row i of the file has seq i.
    let expected = loaded(&[&file]);
    let rows = db.query(
        &format!(
            "SELECT ST_X(geom) FROM {} WHERE seq IN (0, 19999) ORDER BY seq",
            layer.table()
        ),
        &[],
    );
    for (row, p) in rows.iter().zip([&expected[0], &expected[19_999]]) {
        assert_eq!(
            row.get::<_, f64>(0).to_bits(),
            world_to_metres(p.x, p.y).0.to_bits()
        );
    }
}

/// (row count, distinct seqs, largest seq) of `layer`'s table.
fn seq_books(db: &Db, layer: &TestLayer) -> (i64, i64, i64) {
    let row = &db.query(
        &format!(
            "SELECT count(*), count(DISTINCT seq), max(seq) FROM {}",
            layer.table()
        ),
        &[],
    )[0];
    (row.get(0), row.get(1), row.get(2))
}

#[test]
fn rows_inserted_with_only_a_position_come_after_the_imported_ones_with_weight_1() {
    let dir = Scratch::new("import-defaults");
    let db = Db::connect();
    let fresh = TestLayer::new(&db, "defaults");
    // A table as earlier versions of `import` made it: no column defaults, two rows already.
    let old = TestLayer::new(&db, "olddefaults");
    db.batch(&format!(
        "CREATE SCHEMA IF NOT EXISTS twine; \
         CREATE TABLE {table} (seq bigint NOT NULL, weight real NOT NULL, \
                               geom geometry(Point, 3857) NOT NULL); \
         INSERT INTO {table} VALUES (0, 2, ST_SetSRID(ST_MakePoint(0, 0), 3857)), \
                                    (7, 2, ST_SetSRID(ST_MakePoint(10, 10), 3857))",
        table = old.table()
    ));
    let file = dir.file("random.csv", &random_csv(100, 7));
    for (layer, rows_before) in [(&fresh, 0), (&old, 2)] {
        let (ok, err) = import(layer, &[], &[&file]);
        assert!(ok, "{}: {err}", layer.name);
        let (count, distinct, imported_max) = seq_books(&db, layer);
        assert_eq!((count, distinct), (rows_before + 100, rows_before + 100));
        db.batch(&format!(
            "INSERT INTO {} (geom) SELECT ST_SetSRID(ST_MakePoint(i * 1000.0, 0), 3857) \
             FROM generate_series(1, 3) i",
            layer.table()
        ));
        let inserted: Vec<(i64, f32)> = db
            .query(
                &format!(
                    "SELECT seq, weight FROM {} WHERE seq > $1 ORDER BY seq",
                    layer.table()
                ),
                &[&imported_max],
            )
            .iter()
            .map(|row| (row.get(0), row.get(1)))
            .collect();
        assert_eq!(
            inserted,
            (1..=3).map(|i| (imported_max + i, 1.0)).collect::<Vec<_>>(),
            "{}",
            layer.name
        );
        // The next import numbers its rows after the inserted ones.
        let (ok, err) = import(layer, &[], &[&file]);
        assert!(ok, "{}: {err}", layer.name);
        assert_eq!(
            seq_books(&db, layer),
            (rows_before + 203, rows_before + 203, imported_max + 3 + 100),
            "{}",
            layer.name
        );
    }
}

#[test]
fn bad_layer_names_and_unreachable_databases_are_clear_errors() {
    let dir = Scratch::new("import-args");
    let file = dir.file("points.csv", "lon,lat\n1,2\n");
    let url = database_url();
    for bad in ["bad name", "x\"; drop table y; --", &"a".repeat(52)] {
        let (ok, err) = import_with(&url, bad, &[], &[&file]);
        assert!(!ok, "{bad:?}");
        assert!(err.contains("invalid layer name"), "{bad:?}: {err}");
    }
    let (ok, err) = import_with(
        "postgres://twine:twine@127.0.0.1:1/twine",
        "unreachable",
        &[],
        &[&file],
    );
    assert!(!ok);
    assert!(err.contains("cannot connect to the database: "), "{err}");
    assert!(err.to_lowercase().contains("refused"), "says why: {err}");
    let (ok, err) = import_with("postgres://127.0.0.1:notaport/x", "badurl", &[], &[&file]);
    assert!(!ok);
    assert!(err.contains("invalid database URL: "), "{err}");
}

#[test]
fn the_longest_layer_name_gets_a_pyramid_that_each_import_replaces() {
    let dir = Scratch::new("import-longname");
    let db = Db::connect();
    // 51 characters, the most `import` accepts: the pyramid's table and key names must fit.
    let prefix = format!("t{}_", std::process::id());
    let layer = TestLayer::new(&db, &"p".repeat(51 - prefix.len()));
    assert_eq!(layer.name.len(), 51);
    let csv = dir.file("few.csv", "lon,lat\n2.35,48.85\n2.36,48.86\n");
    let zooms = || {
        db.query(
            &format!(
                "SELECT min(z)::int, max(z)::int FROM {}",
                layer.bins_table()
            ),
            &[],
        )
        .first()
        .map(|r| (r.get::<_, Option<i32>>(0), r.get::<_, Option<i32>>(1)))
    };
    let pyramid_version = || -> Option<i64> {
        db.query(
            "SELECT version FROM twine.pyramids WHERE table_name = $1",
            &[&layer.key()],
        )
        .first()
        .map(|r| r.get(0))
    };
    // Up to z10 the densest tile holds all points, more than 0; beyond it the estimate
    // spreads the densest z10 tile over its sub-tiles (2 / 4 rounds to 0, 4 / 4 does not),
    // so the second import's pyramid, over 4 points, reaches one zoom further.
    for (round, top) in [(1, 10), (2, 11)] {
        let (ok, err) = import(&layer, &["--aggregate-above", "0"], &[&csv]);
        assert!(ok, "round {round}: {err}");
        assert!(
            err.contains(&format!("bin pyramid: zooms 0-{top},")),
            "round {round}: {err}"
        );
        assert_eq!(zooms(), Some((Some(0), Some(top))));
        assert_eq!(pyramid_version(), layer.version(), "round {round}");
    }
    // Its whole-world zoom holds every point once.
    let rows = db.query(
        &format!(
            "SELECT sum(length(weights) / 10)::int8 FROM {} WHERE z = 0",
            layer.bins_table()
        ),
        &[],
    );
    assert_eq!(
        rows[0].get::<_, Option<i64>>(0),
        Some(1),
        "two close points share a z0 pixel"
    );
    assert_eq!(layer.count(), 4);
}

/// The import's session waiting on `relation` (its query names it), if any: its server pid.
fn import_backend(db: &Db, relation: &str) -> Option<i32> {
    db.query(
        "SELECT pid FROM pg_stat_activity WHERE application_name = 'twine-heatmap import' \
         AND position($1 in query) > 0",
        &[&relation],
    )
    .first()
    .map(|row| row.get(0))
}

#[test]
fn a_killed_first_import_leaves_no_layer_and_its_statements_end() {
    let db = Db::connect();
    let layer = TestLayer::new(&db, "killed");
    let dir = Scratch::new("import-killed");
    let csv = dir.file("few.csv", "lon,lat,weight\n1,1,1\n2,2,1\n3,3,1\n");
    // The schema, as any earlier import or `db init` leaves it.
    db.batch(&format!(
        "BEGIN; SELECT pg_advisory_xact_lock({}); {} COMMIT;",
        twine_heatmap::source::postgis::SCHEMA_LOCK_KEY,
        twine_heatmap::source::postgis::SCHEMA_SQL
    ));
    // The import stops, after its COPY, at the pyramid's step that drops the layer's old bins
    // table: another session holds that table's lock. It is then deterministically still
    // running, past the point where the old import had committed the layer.
    let bins = layer.bins_table();
    let holder = Db::connect();
    // Two batches: in one, BEGIN would take the CREATE into its (uncommitted) transaction.
    holder.batch(&format!("CREATE TABLE IF NOT EXISTS {bins} (x int)"));
    holder.batch(&format!(
        "BEGIN; LOCK TABLE {bins} IN ACCESS EXCLUSIVE MODE"
    ));
    let bins_name = format!("bins_{}", layer.name);
    let mut child = common::process::twine(&[
        "import",
        "--database-url",
        &database_url(),
        "--layer",
        &layer.name,
    ])
    .arg(&csv)
    .stdout(std::process::Stdio::null())
    .spawn()
    .expect("start import");
    let mut backend = None;
    let reached = common::eventually(30, || {
        backend = import_backend(&db, &bins_name);
        backend.is_some()
    });
    if !reached {
        let _ = child.kill();
        let _ = child.wait();
        panic!("the import never reached its pyramid step");
    }
    let registered = || {
        db.query(
            "SELECT count(*) FROM twine.layers WHERE name = $1",
            &[&layer.name],
        )[0]
        .get::<_, i64>(0)
    };
    assert_eq!(
        registered(),
        0,
        "the layer is registered before its rows are in"
    );
    assert!(
        !layer.exists(),
        "the layer's table is visible before its rows are in"
    );

    child.kill().expect("SIGKILL the import");
    child.wait().expect("reap the import");
    // The server notices the dead client while its statement still waits on the lock, and
    // ends the session (rolling everything back): within seconds, not when the lock goes.
    let gone = common::eventually(10, || import_backend(&db, &bins_name).is_none());
    holder.batch("ROLLBACK");
    assert!(
        gone,
        "the killed import's session {backend:?} still ran 10 s after the kill"
    );
    assert_eq!(registered(), 0, "the killed import left its layer");
    assert!(!layer.exists(), "the killed import left its table");
}

#[test]
fn an_import_does_not_wait_for_another_layers_import_to_end() {
    let db = Db::connect();
    let (busy, beside) = (TestLayer::new(&db, "busy"), TestLayer::new(&db, "beside"));
    let dir = Scratch::new("import-beside");
    let csv = dir.file("few.csv", "lon,lat\n1,1\n2,2\n");
    // This build's schema, as the first import leaves it.
    let (ok, stderr) = import(&busy, &[], &[&csv]);
    assert!(ok, "{stderr}");
    // An import in progress holds twine.bump_version from its table's trigger until it
    // commits (half an hour for 10M points); this open transaction does the same.
    let holder = Db::connect();
    let table = format!("public.\"twine_holder_{}\"", std::process::id());
    holder.batch(&format!(
        "BEGIN; CREATE TABLE {table} (x int); \
         CREATE TRIGGER twine_data_version AFTER INSERT ON {table} \
         FOR EACH STATEMENT EXECUTE FUNCTION twine.bump_version()"
    ));
    let outcome = common::process::run_within(
        &mut common::process::twine(&[
            "import",
            "--database-url",
            &database_url(),
            "--layer",
            &beside.name,
            &csv.display().to_string(),
        ]),
        std::time::Duration::from_secs(60),
    );
    holder.batch("ROLLBACK");
    outcome.expect_success();
    assert_eq!(beside.count(), 2);
}
