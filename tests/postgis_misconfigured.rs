//! Declared layers that cannot work: refused at start-up when the database answers (naming
//! the layer, table, column and problem), and, when a table changes under a running server,
//! named in `/health` and answered with a non-retryable error (500, no Retry-After) instead
//! of 503s forever.

mod common;

use common::scratch::Scratch;
use common::{pg, wait_until, TestServer};
use std::time::Duration;

fn layer_toml(name: &str, table: &str, extra: &str) -> String {
    format!(
        "[[layers]]\nname = \"{name}\"\ntable = \"public.{table}\"\ngeometry = \"geom\"\n{extra}\n"
    )
}

#[test]
fn every_kind_of_misconfigured_table_stops_start_up_with_what_is_wrong() {
    let db = pg::Db::connect();
    let pid = std::process::id();
    let name = |what: &str| format!("mc_{pid}_{what}");
    let points = "ST_SetSRID(ST_MakePoint(i, i), 4326)";
    let polygon = "ST_SetSRID(ST_Buffer(ST_MakePoint(i, i), 1), 4326)";
    let fill = |geom: &'static str| {
        let db = &db;
        move |t: &str| {
            db.batch(&format!(
                "INSERT INTO {t} (geom) SELECT {geom} FROM generate_series(0, 9) i"
            ))
        }
    };
    let _tables = [
        pg::ScratchTable::create(
            &db,
            &name("good"),
            "geom geometry(Point, 4326), mag real",
            fill(points),
        ),
        pg::ScratchTable::create(
            &db,
            &name("poly"),
            "geom geometry(Polygon, 4326)",
            fill(polygon),
        ),
        pg::ScratchTable::create(
            &db,
            &name("multi"),
            "geom geometry(MultiPoint, 4326)",
            |t: &str| {
                db.batch(&format!(
                    "INSERT INTO {t} (geom) SELECT ST_Multi({points}) FROM generate_series(0, 9) i"
                ))
            },
        ),
        pg::ScratchTable::create(&db, &name("mixed"), "geom geometry", |t: &str| {
            db.batch(&format!(
                "INSERT INTO {t} (geom) SELECT CASE WHEN i % 2 = 0 THEN {points} ELSE {polygon} END \
                 FROM generate_series(0, 9) i"
            ))
        }),
        pg::ScratchTable::create(
            &db,
            &name("textw"),
            "geom geometry(Point, 4326), mag text",
            fill(points),
        ),
    ];
    let dir = Scratch::new("misconfigured-start");
    let config = dir.file(
        "config.toml",
        &[
            layer_toml("good", &name("good"), "weight = \"mag\""),
            layer_toml("poly", &name("poly"), ""),
            layer_toml("multi", &name("multi"), ""),
            layer_toml("mixed", &name("mixed"), ""),
            layer_toml("missingtable", &name("none"), ""),
            layer_toml("missinggeom", &name("good"), "").replace("\"geom\"", "\"the_geom\""),
            layer_toml("textweight", &name("textw"), "weight = \"mag\""),
            layer_toml("missingweight", &name("good"), "weight = \"magnitude\""),
            layer_toml(
                "missingfilter",
                &name("good"),
                "[[layers.filters]]\nparam = \"from\"\ncolumn = \"time\"\nop = \">=\"",
            ),
        ]
        .concat(),
    );
    let stderr = pg::serve_refused(&config);
    let table = |what: &str| format!("public.{}", name(what));
    for expected in [
        format!(
            "layer poly: geometry column geom of {}: is a POLYGON column",
            table("poly")
        ),
        format!(
            "layer multi: geometry column geom of {}: is a MULTIPOINT column",
            table("multi")
        ),
        format!(
            "layer mixed: geometry column geom of {}: holds POLYGON geometries",
            table("mixed")
        ),
        format!("layer missingtable: table {} does not exist", table("none")),
        format!(
            "layer missinggeom: geometry column the_geom of {}: no such column",
            table("good")
        ),
        format!(
            "layer textweight: weight column mag of {}: is text, not a number",
            table("textw")
        ),
        format!(
            "layer missingweight: weight column magnitude of {}: no such column",
            table("good")
        ),
        format!(
            "layer missingfilter: filter `from` column time of {}: no such column",
            table("good")
        ),
    ] {
        assert!(stderr.contains(&expected), "no {expected:?} in:\n{stderr}");
    }
    assert!(!stderr.contains("layer good:"), "{stderr}");
}

#[test]
fn a_table_changed_under_the_server_is_named_and_answered_without_retry() {
    let db = pg::Db::connect();
    let table = format!("mc_{}_later", std::process::id());
    let _table = pg::ScratchTable::create(
        &db,
        &table,
        "geom geometry(Point, 4326), mag real",
        |t: &str| {
            db.batch(&format!(
                "INSERT INTO {t} (geom, mag) SELECT ST_SetSRID(ST_MakePoint(i, i), 4326), 2 \
                 FROM generate_series(0, 99) i"
            ))
        },
    );
    let dir = Scratch::new("misconfigured-later");
    let config = dir.file(
        "config.toml",
        &layer_toml("later", &table, "weight = \"mag\""),
    );
    let server = TestServer::from_args(&twine_heatmap::app::ServeArgs {
        config: Some(config),
        database_url: Some(pg::database_url()),
        ..Default::default()
    });
    wait_until("the layer served", 20, || {
        server.get("/tiles/later/0/0/0.png").status == 200
    });
    assert_eq!(server.get("/health").json()["status"], "ok");

    // The weight column turns to text (values that do not even parse as numbers).
    db.batch(&format!(
        "ALTER TABLE public.\"{table}\" ALTER COLUMN mag TYPE text USING 'strong'"
    ));
    let problem = |health: &serde_json::Value| {
        health["misconfigured_layers"]
            .as_array()
            .and_then(|list| list.iter().find(|l| l["layer"] == "later"))
            .and_then(|l| l["problem"].as_str().map(str::to_string))
    };
    wait_until("/health naming the layer", 10, || {
        problem(&server.get("/health").json()).is_some()
    });
    let health = server.get("/health").json();
    assert_eq!(health["status"], "degraded", "{health}");
    let said = problem(&health).unwrap_or_default();
    assert!(
        said.contains(&format!(
            "weight column mag of public.{table}: is text, not a number"
        )),
        "{health}"
    );
    for path in [
        // Rendered before the change: a cached tile is not served either.
        "/tiles/later/0/0/0.png",
        "/tiles/later.json",
        "/tiles/later/1/1/0.png",
        "/points/later/1/1/0.json",
        "/heatmap.png?layer=later&bbox=-10,-10,20,20&width=64&height=64",
    ] {
        let answer = server.get(path);
        assert_eq!(
            answer.status,
            500,
            "{path}: {}",
            String::from_utf8_lossy(&answer.body)
        );
        assert!(
            answer.header("retry-after").is_none(),
            "{path}: Retry-After"
        );
        let body = answer.json();
        assert_eq!(body["error"], "layer misconfigured", "{path}: {body}");
        let detail = body["detail"].as_str().unwrap_or_default();
        // The layer is named; its table and column are the operator's (log, /health).
        assert!(
            detail.contains("layer \"later\"") && !detail.contains("mag"),
            "{path}: {body}"
        );
    }

    // Dropped: named too, with the new problem.
    db.batch(&format!("DROP TABLE public.\"{table}\""));
    wait_until("/health naming the missing table", 10, || {
        problem(&server.get("/health").json())
            .is_some_and(|p| p == format!("table public.{table} does not exist"))
    });
    assert_eq!(server.get("/tiles/later/1/0/0.png").status, 500);

    // Fixed: served again, without a restart.
    db.batch(&format!(
        "CREATE TABLE public.\"{table}\" (geom geometry(Point, 4326), mag real);
         INSERT INTO public.\"{table}\" (geom, mag) VALUES (ST_SetSRID(ST_MakePoint(1, 1), 4326), 1);"
    ));
    wait_until("the layer served again", 10, || {
        server.get("/tiles/later/1/1/0.png").status == 200
    });
    let health = server.get("/health").json();
    assert_eq!(health["status"], "ok", "{health}");
}

#[test]
fn a_misconfigured_layer_is_logged_once_not_at_every_look() {
    let db = pg::Db::connect();
    let table = format!("mc_{}_logged", std::process::id());
    let _table = pg::ScratchTable::create(
        &db,
        &table,
        "geom geometry(Point, 4326), mag real",
        |t: &str| {
            db.batch(&format!(
                "INSERT INTO {t} (geom, mag) VALUES (ST_SetSRID(ST_MakePoint(1, 1), 4326), 1)"
            ))
        },
    );
    let dir = Scratch::new("misconfigured-log");
    let config = dir.file(
        "config.toml",
        &layer_toml("logged", &table, "weight = \"mag\""),
    );
    let config = config.to_string_lossy();
    let url = pg::database_url();
    let server =
        common::process::ServeProcess::start(&["--config", &config, "--database-url", &url]);
    wait_until("the layer served", 20, || {
        server.get("/tiles/logged/0/0/0.png").status == 200
    });
    db.batch(&format!(
        "ALTER TABLE public.\"{table}\" ALTER COLUMN mag TYPE text"
    ));
    wait_until("/health naming the layer", 10, || {
        server.get("/health").json()["misconfigured_layers"]
            .as_array()
            .is_some_and(|l| !l.is_empty())
    });
    // Several of the watcher's once-a-second looks find the same problem.
    std::thread::sleep(Duration::from_millis(3500));
    let log = server.stop();
    assert_eq!(
        log.matches("layer misconfigured").count(),
        1,
        "logged once per change: {log}"
    );
    // (Other tests' imported layers come and go in the shared database: only this one's.)
    assert!(
        !log.lines()
            .any(|l| l.contains("cannot refresh layer statistics") && l.contains("layer=logged")),
        "{log}"
    );
}
