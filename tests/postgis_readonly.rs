//! Serving from a read-only role, as on a streaming replica: the role has SELECT and USAGE
//! only, and every session it opens is read-only (`default_transaction_read_only`), so any
//! schema, trigger or row the server tried to write would fail. It must still list, draw and
//! follow the layers the writable role imports and the config declares.

mod common;

use common::scratch::Scratch;
use common::{pg, wait_until, TestServer};

/// A login role with read rights only, dropped (with its grants) when the test ends.
struct ReadOnlyRole<'a> {
    db: &'a pg::Db,
    name: String,
}

impl<'a> ReadOnlyRole<'a> {
    /// Creates the role: connect, USAGE on `twine` and `public`, SELECT on the tables there
    /// now and on those the writable role creates in `twine` later (imports and pyramids),
    /// and a session that refuses writes, as a hot standby's.
    fn create(db: &'a pg::Db, public_table: &str) -> ReadOnlyRole<'a> {
        let role = ReadOnlyRole {
            db,
            name: format!("twine_ro_{}", std::process::id()),
        };
        role.drop_role();
        let name = &role.name;
        db.batch(&format!(
            "CREATE ROLE {name} LOGIN PASSWORD 'ro';
             ALTER ROLE {name} SET default_transaction_read_only = on;
             GRANT CONNECT ON DATABASE twine TO {name};
             GRANT USAGE ON SCHEMA twine, public TO {name};
             GRANT SELECT ON ALL TABLES IN SCHEMA twine TO {name};
             ALTER DEFAULT PRIVILEGES FOR ROLE twine IN SCHEMA twine GRANT SELECT ON TABLES TO {name};
             GRANT SELECT ON public.\"{public_table}\" TO {name};"
        ));
        role
    }

    fn url(&self) -> String {
        format!("postgres://{0}:ro@127.0.0.1:5432/twine", self.name)
    }

    fn drop_role(&self) {
        let name = &self.name;
        // Other tests create tables in `twine` meanwhile, and the default privileges grant
        // each one to this role: stop that first, then drop what was granted, again if a
        // table slipped in between (its grant would keep the role from being dropped).
        self.db.batch(&format!(
            "DO $$ BEGIN
                 IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{name}') THEN
                     EXECUTE 'ALTER DEFAULT PRIVILEGES FOR ROLE twine IN SCHEMA twine
                              REVOKE SELECT ON TABLES FROM {name}';
                 END IF;
             END $$;"
        ));
        self.db.batch(&format!(
            "DO $$ BEGIN
                 FOR attempt IN 1..20 LOOP
                     BEGIN
                         IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{name}') THEN
                             RETURN;
                         END IF;
                         EXECUTE 'DROP OWNED BY {name}';
                         EXECUTE 'DROP ROLE {name}';
                         RETURN;
                     EXCEPTION WHEN dependent_objects_still_exist THEN
                         PERFORM pg_sleep(0.1);
                     END;
                 END LOOP;
             END $$;"
        ));
    }
}

impl Drop for ReadOnlyRole<'_> {
    fn drop(&mut self) {
        self.drop_role();
    }
}

#[test]
fn a_read_only_role_serves_imported_and_declared_layers_and_sees_writes() {
    let db = pg::Db::connect();
    let pid = std::process::id();
    let dir = Scratch::new("readonly");
    // An imported layer, by the writable role.
    let imported = pg::TestLayer::new(&db, "ro");
    let first = dir.file(
        "first.csv",
        "lon,lat,weight\n10,10,1\n10.5,10.5,2\n-70,-30,1\n",
    );
    pg::import(&imported.name, &first, &[]);
    // A table the config declares.
    let table = format!("ro_{pid}");
    let _declared_table = pg::ScratchTable::create(
        &db,
        &table,
        "id serial PRIMARY KEY, geom geometry(Point, 4326), mag real",
        |t| {
            db.batch(&format!(
                "INSERT INTO {t} (geom, mag) SELECT ST_SetSRID(ST_MakePoint(i, i / 2.0), 4326), 2 \
                 FROM generate_series(0, 49) i;"
            ))
        },
    );
    let declared = format!("declared{pid}");
    let config = dir.file(
        "config.toml",
        &format!(
            "[[layers]]\nname = \"{declared}\"\ntable = \"public.{table}\"\ngeometry = \"geom\"\nweight = \"mag\"\n"
        ),
    );
    // The documented set-up: the primary's writable role prepares the database once.
    pg::db_init(&pg::database_url(), &config);
    let role = ReadOnlyRole::create(&db, &table);

    let serve = |url: String| {
        TestServer::from_args(&twine_heatmap::app::ServeArgs {
            config: Some(config.clone()),
            database_url: Some(url),
            ..Default::default()
        })
    };
    let reader = serve(role.url());
    let writer = serve(pg::database_url());
    for server in [&reader, &writer] {
        wait_until("both layers listed", 20, || {
            server.layer_count(&imported.name) == Some(3)
                && server.layer_count(&declared) == Some(50)
        });
    }
    let health = reader.get("/health").json();
    assert_eq!(health["status"], "ok", "{health}");
    assert_eq!(health["database"]["status"], "ok", "{health}");
    for layer in [&imported.name, &declared] {
        let path = format!("/tiles/{layer}/0/0/0.png");
        let (a, b) = (reader.get(&path), writer.get(&path));
        assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
        assert_eq!(b.status, 200, "{}", String::from_utf8_lossy(&b.body));
        assert!(
            a.body == b.body,
            "{layer}: the read-only server drew another tile"
        );
    }

    // Writes by the writable role reach the read-only server: an import, and a plain INSERT
    // into the declared table (its trigger from `db init`). Versions are polled, once a
    // second (docs/postgis.md); the bound here is generous.
    let second = dir.file("second.csv", "lon,lat,weight\n20,20,1\n21,21,1\n");
    pg::import(&imported.name, &second, &[]);
    db.batch(&format!(
        "INSERT INTO public.\"{table}\" (geom, mag) VALUES (ST_SetSRID(ST_MakePoint(5, 5), 4326), 1)"
    ));
    wait_until("the writes seen by the read-only server", 10, || {
        reader.layer_count(&imported.name) == Some(5) && reader.layer_count(&declared) == Some(51)
    });
    let path = format!("/tiles/{}/0/0/0.png", imported.name);
    wait_until("the same new tile from both servers", 10, || {
        let (a, b) = (reader.get(&path), writer.get(&path));
        a.status == 200 && a.body == b.body
    });
}
