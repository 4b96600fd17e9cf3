//! Layers declared over an existing table (another SRID, a weight column, filters bound to
//! query parameters): typed filters, 400s for values that do not parse, SQL injection
//! attempts that change nothing, and the data version following writes to the table.

mod common;

use common::pg;
use common::scratch::Scratch;
use common::{eventually, TestServer};

struct Fixture {
    server: TestServer,
    db: pg::Db,
    layer: String,
    table: String,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.db.drop_scratch_table(&self.table);
    }
}

/// A table of 2,000 quakes in EPSG:4326 over 2024, half of them `deep`.
fn fixture(test: &str) -> Fixture {
    let pid = std::process::id();
    let (layer, table) = (format!("quakes{pid}{test}"), format!("quakes_{pid}_{test}"));
    let db = pg::Db::connect();
    db.create_point_table(
        &table,
        "id serial PRIMARY KEY, geom geometry(Point, 4326), mag real, time timestamptz, kind text",
        |t| {
            db.batch(&format!(
                "INSERT INTO {t} (geom, mag, time, kind)
                 SELECT ST_SetSRID(ST_MakePoint(-120 + (i % 50) * 0.4, 30 + (i / 50) * 0.3), 4326),
                        1 + (i % 4), timestamptz '2024-01-01 00:00:00+00' + (i * interval '4 hours'),
                        CASE WHEN i % 2 = 0 THEN 'deep' ELSE 'shallow' END
                 FROM generate_series(0, 1999) AS i;"
            ));
        },
    );
    let dir = Scratch::new(&format!("filters-{test}"));
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[[layers]]\nname = \"{layer}\"\ntable = \"public.{table}\"\ngeometry = \"geom\"\nweight = \"mag\"\nseq = \"id\"\n\
             [[layers.filters]]\nparam = \"from\"\ncolumn = \"time\"\nop = \">=\"\n\
             [[layers.filters]]\nparam = \"to\"\ncolumn = \"time\"\nop = \"<\"\n\
             [[layers.filters]]\nparam = \"kind\"\ncolumn = \"kind\"\nop = \"=\"\n\
             [[layers.filters]]\nparam = \"minmag\"\ncolumn = \"mag\"\nop = \">=\"\n"
        ),
    )
    .expect("config");
    let server = TestServer::with_database(config, pg::database_url());
    let fixture = Fixture {
        server,
        db,
        layer,
        table,
    };
    wait_for_count(&fixture, 2000);
    fixture
}

fn wait_for_count(f: &Fixture, expected: u64) {
    let count = || f.server.layer_count(&f.layer).unwrap_or(0);
    assert!(
        eventually(20, || count() == expected),
        "layer count stayed {} (expected {expected})",
        count()
    );
}

fn count(f: &Fixture, query: &str) -> u64 {
    let reply = f
        .server
        .get(&format!("/points/{}?bbox=-179,-80,179,80{query}", f.layer));
    assert_eq!(
        reply.status,
        200,
        "{query}: {}",
        String::from_utf8_lossy(&reply.body)
    );
    reply.json()["count"].as_u64().expect("count")
}

fn sql_count(f: &Fixture, condition: &str) -> u64 {
    let rows = f.db.query(
        &format!(
            "SELECT count(*) FROM public.\"{}\" WHERE {condition}",
            f.table
        ),
        &[],
    );
    rows[0].get::<_, i64>(0) as u64
}

#[test]
fn declared_filters_bind_typed_values_and_refuse_the_rest() {
    let f = fixture("types");
    assert_eq!(count(&f, ""), 2000);
    assert_eq!(
        count(&f, "&from=2024-06-01"),
        sql_count(&f, "time >= '2024-06-01T00:00:00Z'")
    );
    assert_eq!(
        count(&f, "&from=2024-03-01T00:00:00Z&to=2024-04-01"),
        sql_count(
            &f,
            "time >= '2024-03-01T00:00:00Z' AND time < '2024-04-01T00:00:00Z'"
        )
    );
    assert_eq!(count(&f, "&kind=deep"), 1000);
    assert_eq!(
        count(&f, "&kind=deep&minmag=3"),
        sql_count(&f, "kind = 'deep' AND mag >= 3")
    );
    // Tiles and overlays take the same filters and differ with them.
    let all = f.server.get(&format!(
        "/tiles/{}/3/1/3.png?style=density&max=10",
        f.layer
    ));
    let deep = f.server.get(&format!(
        "/tiles/{}/3/1/3.png?style=density&max=10&kind=deep",
        f.layer
    ));
    assert_eq!((all.status, deep.status), (200, 200));
    assert_ne!(all.body, deep.body);
    let overlay = f.server.get(&format!(
        "/heatmap.png?layer={}&bbox=-125,25,-95,45&width=300&height=200&from=2024-02-01",
        f.layer
    ));
    assert_eq!(overlay.status, 200);

    for (query, param) in [
        ("&from=yesterday", "from"),
        ("&from=2024-13-45", "from"),
        ("&to=2024-01-01T25:00:00", "to"),
        ("&minmag=big", "minmag"),
        ("&minmag=NaN", "minmag"),
        ("&kind=", "kind"),
    ] {
        let reply = f
            .server
            .get(&format!("/points/{}?bbox=-179,-80,179,80{query}", f.layer));
        assert_eq!(reply.status, 400, "{query}");
        assert_eq!(reply.json()["parameter"], param, "{query}");
    }
    // Filters are per layer: other layers refuse them as unknown parameters.
    assert_eq!(
        f.server
            .get("/points/nonexistent?bbox=0,0,1,1&kind=deep")
            .status,
        404
    );
}

#[test]
fn sql_injection_attempts_change_nothing_and_get_a_400() {
    let f = fixture("inject");
    let attempts = [
        "kind=deep'%20OR%20'1'='1",
        "kind=x';%20DROP%20TABLE%20public.%22TABLE%22;%20--",
        "from=2024-01-01';%20DELETE%20FROM%20public.%22TABLE%22;%20--",
        "to=2024-01-01%20OR%201=1",
        "minmag=1;%20TRUNCATE%20public.%22TABLE%22",
        "minmag=1)%20OR%20(1=1",
        "kind=deep%00",
        "radius=25;DROP%20TABLE%20x",
        "style=smooth';--",
        "scheme=fire%22;--",
    ];
    for attempt in attempts {
        let query = attempt.replace("TABLE", &f.table);
        for path in [
            format!("/points/{}?bbox=-179,-80,179,80&{query}", f.layer),
            format!("/tiles/{}/2/0/1.png?{query}", f.layer),
            format!("/points/{}/2/0/1.json?{query}", f.layer),
        ] {
            let reply = f.server.get(&path);
            assert_eq!(
                reply.status,
                400,
                "{path}: {}",
                String::from_utf8_lossy(&reply.body)
            );
            assert!(reply.json()["parameter"].is_string(), "{path}");
        }
    }
    let layer_path = format!("/tiles/{}';DROP%20TABLE%20x;--/2/0/1.png", f.layer);
    assert_eq!(f.server.get(&layer_path).status, 404);
    // Nothing changed: same rows, same table, and the layer still answers.
    assert_eq!(sql_count(&f, "true"), 2000);
    assert_eq!(count(&f, ""), 2000);
}

#[test]
fn writes_to_a_declared_table_change_its_data_version() {
    let f = fixture("version");
    let before = f
        .server
        .get(&format!("/tiles/{}/3/1/3.png?style=density&max=5", f.layer));
    f.db.batch(&format!(
        "INSERT INTO public.\"{}\" (geom, mag, time, kind)
         SELECT ST_SetSRID(ST_MakePoint(-100 + i * 0.01, 40), 4326), 4, now(), 'deep' FROM generate_series(1, 500) i",
        f.table
    ));
    // The watcher sees the new version within its period and the layer's statistics follow.
    wait_for_count(&f, 2500);
    let after = f
        .server
        .get(&format!("/tiles/{}/3/1/3.png?style=density&max=5", f.layer));
    assert_ne!(
        before.body, after.body,
        "the tile did not change after the write"
    );
    let versions = f.db.query(
        "SELECT version FROM twine.versions WHERE table_name = $1",
        &[&format!("public.{}", f.table)],
    );
    assert!(versions[0].get::<_, i64>(0) >= 1);
}
