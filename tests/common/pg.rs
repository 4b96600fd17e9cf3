//! PostGIS test helpers: a blocking client for the test database and layer names that are
//! unique to one test in one process (test binaries run in parallel against one database).
//!
//! The database is `DATABASE_URL`, else the local development one. Tests that need it fail
//! when it is unreachable rather than skip, so a missing database cannot pass for success.

use super::process::{free_port, run, run_within, twine, Outcome};
use std::path::Path;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, NoTls, Row};

pub const DEFAULT_DATABASE_URL: &str = "postgres://twine:twine@127.0.0.1:5432/twine";

/// `twine-heatmap import --database-url URL --layer LAYER EXTRA... FILES...`, run to its end.
pub fn import_into(url: &str, layer: &str, extra: &[&str], files: &[&Path]) -> Outcome {
    run(twine(&["import", "--database-url", url, "--layer", layer])
        .args(extra)
        .args(files))
}

/// Imports `csv` into `layer` of the test database with `extra` flags; fails the test with
/// the command's output when the import fails.
pub fn import(layer: &str, csv: &Path, extra: &[&str]) {
    import_into(&database_url(), layer, extra, &[csv]).expect_success();
}

/// Runs `twine-heatmap pyramid --database-url <the test database> --layer LAYER EXTRA...`;
/// fails the test with the command's output when it fails.
pub fn pyramid(layer: &str, extra: &[&str]) {
    run(twine(&[
        "pyramid",
        "--database-url",
        &database_url(),
        "--layer",
        layer,
    ])
    .args(extra))
    .expect_success();
}

/// `twine-heatmap db init --database-url URL --config CONFIG`: the schema and the declared
/// tables' data-version triggers, as a deployment prepares its primary; fails the test with
/// the command's output when it fails.
pub fn db_init(url: &str, config: &Path) {
    let config = config.to_string_lossy();
    run(&mut twine(&[
        "db",
        "init",
        "--database-url",
        url,
        "--config",
        &config,
    ]))
    .expect_success();
}

/// Runs `serve --config CONFIG` against the test database, expecting it to refuse to start
/// at once: its stderr. A server that starts instead is stopped after 30 s and fails the test.
pub fn serve_refused(config: &Path) -> String {
    let bind = format!("127.0.0.1:{}", free_port());
    let config = config.to_string_lossy();
    run_within(
        &mut twine(&[
            "serve",
            "--config",
            &config,
            "--database-url",
            &database_url(),
            "--bind",
            &bind,
        ]),
        std::time::Duration::from_secs(30),
    )
    .expect_failure()
}

/// `DATABASE_URL`, or the local development database.
pub fn database_url() -> String {
    std::env::var("DATABASE_URL")
        .ok()
        .filter(|url| !url.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned())
}

/// A connection to the test database with blocking calls, for plain `#[test]`s.
pub struct Db {
    runtime: tokio::runtime::Runtime,
    client: Client,
}

impl Db {
    /// Connects to [`database_url`]; panics (failing the test) when that is not possible.
    pub fn connect() -> Db {
        let url = database_url();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        let client = runtime.block_on(async {
            let (client, connection) = tokio_postgres::connect(&url, NoTls)
                .await
                .unwrap_or_else(|e| {
                    panic!("the test database {url} is unreachable ({e:?}); start PostGIS or set DATABASE_URL")
                });
            tokio::spawn(connection);
            client
        });
        Db { runtime, client }
    }

    pub fn query(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Vec<Row> {
        self.runtime
            .block_on(self.client.query(sql, params))
            .unwrap_or_else(|e| panic!("{sql}: {e:?}"))
    }

    pub fn batch(&self, sql: &str) {
        self.runtime
            .block_on(self.client.batch_execute(sql))
            .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    }

    /// Creates a test's own table of points `public."<name>"` as a user's table would be:
    /// `columns` is its SQL column list, which holds a geometry column `geom`; `fill` writes
    /// its rows, given the table's name for SQL (`public."<name>"`); then `geom` gets a GiST
    /// index and the table fresh planner statistics. A table of that name a crashed run left
    /// is dropped first. The caller drops it when the test ends: [`ScratchTable`], or
    /// [`drop_scratch_table`](Self::drop_scratch_table).
    pub fn create_point_table(&self, name: &str, columns: &str, fill: impl FnOnce(&str)) {
        let table = format!("public.\"{name}\"");
        self.batch(&format!(
            "CREATE EXTENSION IF NOT EXISTS postgis;
             DROP TABLE IF EXISTS {table};
             CREATE TABLE {table} ({columns});"
        ));
        fill(&table);
        self.batch(&format!(
            "CREATE INDEX ON {table} USING gist (geom);
             ANALYZE {table};"
        ));
    }

    /// Drops a test's own table `public."<name>"`, its data-version row (the trigger made
    /// it, or every run would leave one more) and any bin pyramid built for it. Best effort,
    /// as for TestLayer, but said out loud: a table left behind is served by every later test
    /// server on this database.
    pub fn drop_scratch_table(&self, name: &str) {
        let sql = format!(
            "DROP TABLE IF EXISTS public.\"{name}\";
             DO $$ DECLARE bins text; BEGIN
                 IF to_regclass('twine.versions') IS NOT NULL THEN
                     DELETE FROM twine.versions WHERE table_name = 'public.{name}';
                 END IF;
                 IF to_regclass('twine.pyramids') IS NOT NULL THEN
                     FOR bins IN SELECT bins_table FROM twine.pyramids
                                 WHERE table_name = 'public.{name}' LOOP
                         EXECUTE format('DROP TABLE IF EXISTS twine.%I', bins);
                     END LOOP;
                     DELETE FROM twine.pyramids WHERE table_name = 'public.{name}';
                 END IF;
                 IF to_regclass('twine.time_pyramids') IS NOT NULL THEN
                     FOR bins IN SELECT bins_table FROM twine.time_pyramids
                                 WHERE table_name = 'public.{name}' LOOP
                         EXECUTE format('DROP TABLE IF EXISTS twine.%I', bins);
                     END LOOP;
                     DELETE FROM twine.time_pyramids WHERE table_name = 'public.{name}';
                 END IF;
             END $$;"
        );
        if let Err(e) = self.runtime.block_on(self.client.batch_execute(&sql)) {
            eprintln!("could not drop test table {name}: {e:?}");
        }
    }
}

/// A layer `import` may create, named uniquely for this process and test, whose table, index
/// and bookkeeping rows are removed before use and again when it is dropped.
pub struct TestLayer<'a> {
    db: &'a Db,
    pub name: String,
}

impl<'a> TestLayer<'a> {
    /// `test` should be short: imported layer names are limited to 51 characters.
    pub fn new(db: &'a Db, test: &str) -> TestLayer<'a> {
        let layer = TestLayer {
            db,
            name: format!("t{}_{test}", std::process::id()),
        };
        if let Err(e) = layer.remove() {
            panic!("cannot clear layer {}: {e:?}", layer.name);
        }
        layer
    }

    /// `twine."points_<name>"` for SQL text.
    pub fn table(&self) -> String {
        format!("twine.\"points_{}\"", self.name)
    }

    /// `twine.points_<name>`, as in `twine.layers.table_name` and `twine.versions`.
    pub fn key(&self) -> String {
        format!("twine.points_{}", self.name)
    }

    pub fn exists(&self) -> bool {
        let rows = self
            .db
            .query("SELECT to_regclass($1)::text IS NOT NULL", &[&self.table()]);
        rows[0].get(0)
    }

    pub fn count(&self) -> i64 {
        self.db
            .query(&format!("SELECT count(*) FROM {}", self.table()), &[])[0]
            .get(0)
    }

    /// The table's data version, None before the first write.
    pub fn version(&self) -> Option<i64> {
        self.db
            .query(
                "SELECT version FROM twine.versions WHERE table_name = $1",
                &[&self.key()],
            )
            .first()
            .map(|row| row.get(0))
    }

    /// `twine."bins_<name>"`, the layer's bin pyramid, for SQL text.
    pub fn bins_table(&self) -> String {
        format!("twine.\"bins_{}\"", self.name)
    }

    /// Drops the table, its pyramid and its bookkeeping rows (names are test-made, so plain
    /// SQL text).
    fn remove(&self) -> Result<(), tokio_postgres::Error> {
        let sql = format!(
            "DROP TABLE IF EXISTS {table} CASCADE;
             DROP TABLE IF EXISTS {bins};
             DROP TABLE IF EXISTS twine.\"bins_{name}_new\";
             DROP TABLE IF EXISTS twine.\"tb_{name}\";
             DROP TABLE IF EXISTS twine.\"tb_{name}_new\";
             DO $$ BEGIN
                 IF to_regclass('twine.pyramids') IS NOT NULL THEN
                     DELETE FROM twine.pyramids WHERE table_name = '{key}';
                 END IF;
                 IF to_regclass('twine.time_pyramids') IS NOT NULL THEN
                     DELETE FROM twine.time_pyramids WHERE table_name = '{key}';
                 END IF;
                 IF to_regclass('twine.layers') IS NOT NULL THEN
                     DELETE FROM twine.layers WHERE name = '{name}';
                 END IF;
                 IF to_regclass('twine.versions') IS NOT NULL THEN
                     DELETE FROM twine.versions WHERE table_name = '{key}';
                 END IF;
             END $$;",
            table = self.table(),
            bins = self.bins_table(),
            name = self.name,
            key = self.key(),
        );
        self.db.runtime.block_on(self.db.client.batch_execute(&sql))
    }
}

impl Drop for TestLayer<'_> {
    fn drop(&mut self) {
        // Best effort: a failed clean-up must not turn a test failure into an abort.
        let _ = self.remove();
    }
}

/// A test's own table in `public`, dropped when the test ends, passed or failed.
pub struct ScratchTable<'a> {
    db: &'a Db,
    pub name: String,
}

impl<'a> ScratchTable<'a> {
    /// Takes charge of `public."<name>"` (created by the caller).
    pub fn new(db: &'a Db, name: &str) -> ScratchTable<'a> {
        ScratchTable {
            db,
            name: name.to_owned(),
        }
    }

    /// [`Db::create_point_table`], dropped when the returned guard goes.
    pub fn create(db: &'a Db, name: &str, columns: &str, fill: impl FnOnce(&str)) -> Self {
        let table = ScratchTable::new(db, name);
        db.create_point_table(name, columns, fill);
        table
    }
}

impl Drop for ScratchTable<'_> {
    fn drop(&mut self) {
        self.db.drop_scratch_table(&self.name);
    }
}
