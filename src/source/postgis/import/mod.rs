//! `twine-heatmap import`: loads points files into a PostGIS layer table.
//!
//! `import --database-url URL --layer NAME [--attribution TEXT] FILE...` writes every FILE into
//! `twine."points_<NAME>"` (`seq bigint` identity, `weight real` default 1,
//! `geom geometry(Point, 3857)`, GiST index on `geom`, the data-version trigger) and registers
//! the layer in `twine.layers`, so that `serve --database-url` serves it. `--time COLUMN` and
//! `--category COLUMN` keep those columns of the files too (see [`columns`]).
//!
//! Each file goes in fully or not at all. It is parsed completely first, so a malformed row
//! stops the import with the loader's `file:line: ...` message before the database is touched;
//! then its rows are written by one binary `COPY` inside one transaction, so a failure in the
//! database leaves the table as it was. Files before a failing one stay imported.
//!
//! Positions are stored as the Web Mercator metres `tile::world_to_metres` gives for the
//! loader's world coordinates; the server converts them back with `metres_to_world`, as the
//! in-memory store does, so both sources see bit-identical points. `seq` numbers rows in file
//! order, continuing after the rows already in the table, but rows are written in Hilbert-curve
//! order of their position so that the rows of a tile sit together on disk: a dense tile then
//! reads a few pages instead of one page per point.

mod columns;
mod copy;
mod hilbert;
mod rebuild;
mod report;

pub use rebuild::{rebuild_declared_pyramid, rebuild_pyramid};

use super::layer::imported_inner_all;
use super::pyramid::{self, Built};
use super::table_sql::{imported_inner_all_timed, scan_stats};
use super::time_pyramid::{self, TimedPoints};
use super::{
    add_session_options, ensure_schema, ensure_version_trigger, pg_message, DbError, Ident,
    TableName,
};
use crate::render::WorldPoint;
use crate::source::load::{load_points_file_with, LoadError, WeightMode};
use crate::source::memory::attributes::Attributes;
use crate::source::valid_layer_name;
use columns::{prepare_columns, KeptColumns};
use copy::{encode_row, COPY_HEADER, COPY_TRAILER, ROW_BYTES};
use futures_util::SinkExt;
use hilbert::spatial_order;
use indicatif::ProgressBar;
use report::{FileReport, Total};
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, Instant};
use tokio_postgres::{Client, Transaction};
/// Why an import stopped. Each message is one line that says what failed and where.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("invalid layer name {name:?}: {reason}")]
    LayerName { name: String, reason: &'static str },
    /// A file could not be read or parsed; the message names the file and line.
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error("invalid database URL: {0}")]
    Url(String),
    #[error("cannot connect to the database: {}", pg_message(.0))]
    Connect(#[source] tokio_postgres::Error),
    #[error("cannot set up the layer table {table}: {}", db_one_line(.source))]
    Setup { table: String, source: DbError },
    #[error("copying {file} failed: {}", pg_message(.source))]
    Copy {
        file: String,
        source: tokio_postgres::Error,
    },
    #[error("building the bin pyramid of {table} failed, so {file} was not imported: {}", db_one_line(.source))]
    Pyramid {
        file: String,
        table: String,
        source: DbError,
    },
    /// A `--time` or `--category` column that cannot be kept.
    #[error("{flag} {name:?}: {reason}")]
    Column {
        flag: &'static str,
        name: String,
        reason: String,
    },
    #[error("no imported layer {0:?} (see twine.layers, or import it first)")]
    UnknownLayer(String),
    #[error("no table {0} (see the config's [[layers]] table)")]
    UnknownTable(String),
    #[error("rebuilding the bin pyramid of {table} failed: {}", db_one_line(.source))]
    Rebuild { table: String, source: DbError },
    #[error("{file} was imported, but analysing {table} failed: {}", pg_message(.source))]
    Analyze {
        file: String,
        table: String,
        source: tokio_postgres::Error,
    },
}

/// Imports every file of `files` in turn into layer `layer` (see the module documentation),
/// keeping the time column `time` and the `categories` columns of each. `aggregate_above`
/// is the server's: the zooms whose densest tile holds more points get pyramid levels.
pub async fn run(
    database_url: &str,
    layer: &str,
    attribution: Option<&str>,
    (time, categories): (Option<&str>, &[String]),
    aggregate_above: u64,
    files: &[PathBuf],
) -> Result<(), ImportError> {
    let mut target = Target::for_layer(layer)?;
    target.kept = KeptColumns::new(time, categories)?;
    // Connect before parsing so that a wrong URL is reported at once, not after a big file.
    let mut client = connect(database_url).await?;
    let started = Instant::now();
    let mut reports = Vec::with_capacity(files.len());
    for path in files {
        let report = import_file(&mut client, &target, path, attribution, aggregate_above).await?;
        eprintln!("{report}");
        reports.push(report);
    }
    eprintln!(
        "{}",
        Total {
            files: &reports,
            elapsed: started.elapsed()
        }
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The layer's table

/// Where a layer's points go.
struct Target {
    layer: String,
    table: TableName,
    index: Ident,
    /// The files' time and category columns the table keeps.
    kept: KeptColumns,
}

impl Target {
    fn for_layer(layer: &str) -> Result<Target, ImportError> {
        let invalid = |reason| ImportError::LayerName {
            name: layer.chars().take(80).collect(),
            reason,
        };
        if !valid_layer_name(layer) {
            return Err(invalid("use 1 to 51 ASCII letters, digits, '_' or '-'"));
        }
        // PostgreSQL would silently truncate a longer index name, and two long layer names
        // could then share one index name; refusing is clearer.
        let too_long = |_| {
            invalid("at most 51 characters can be imported (the table and index names must fit PostgreSQL's 63 bytes)")
        };
        Ok(Target {
            layer: layer.to_owned(),
            table: TableName::for_imported_layer(layer).map_err(too_long)?,
            index: Ident::new(&format!("points_{layer}_geom")).map_err(too_long)?,
            kept: KeptColumns::default(),
        })
    }
}

/// Creates the project's schema objects if missing (or migrates them), in a transaction of
/// its own: they are shared by every layer, and exist without any.
async fn prepare_schema(client: &mut Client) -> Result<(), DbError> {
    let tx = client.transaction().await?;
    ensure_schema(tx.client()).await?;
    tx.commit().await?;
    Ok(())
}

/// Creates the layer's table if missing (with its version trigger) and registers it in
/// `twine.layers`, inside the transaction that then writes its rows: a new layer appears
/// only with its rows, and a killed import leaves neither table nor layer. The GiST index
/// comes with the rows ([`write_file`]).
async fn prepare_layer(
    tx: &Transaction<'_>,
    target: &Target,
    attribution: Option<&str>,
) -> Result<(), DbError> {
    // Two first imports of one layer at once would both try to create its table (the second
    // failing on a duplicate key in the catalog): the second waits here for the first.
    tx.execute(
        "SELECT pg_advisory_xact_lock($1, hashtext($2))",
        &[&LAYER_LOCK_CLASS, &target.table.key()],
    )
    .await?;
    // `seq` and `weight` have defaults so that other programs can write points straight into
    // the table with `INSERT ... (geom)`: docs/postgis.md documents such writes as served at once.
    tx.batch_execute(&format!(
        "CREATE TABLE IF NOT EXISTS {table} (\
             seq bigint GENERATED BY DEFAULT AS IDENTITY, \
             weight real NOT NULL DEFAULT 1, \
             geom geometry(Point, 3857) NOT NULL)",
        table = target.table.quoted(),
    ))
    .await?;
    ensure_write_defaults(tx.client(), &target.table).await?;
    ensure_version_trigger(tx.client(), &target.table).await?;
    tx.execute(
        "INSERT INTO twine.layers (name, table_name, attribution) VALUES ($1, $2, $3) \
         ON CONFLICT (name) DO UPDATE SET table_name = EXCLUDED.table_name, \
             attribution = coalesce(EXCLUDED.attribution, twine.layers.attribution)",
        &[&target.layer, &target.table.key(), &attribution],
    )
    .await?;
    Ok(())
}

/// The first key of the per-layer advisory locks ([`prepare_layer`]); the second is a hash
/// of the table's name.
const LAYER_LOCK_CLASS: i32 = 0x7477_6e6c;

/// Gives a table made by an older `import` (no column defaults) the defaults a new one has,
/// and moves `seq`'s identity past the rows present. ALTER TABLE locks out readers, so it runs
/// only when a default is missing.
async fn ensure_write_defaults(client: &Client, table: &TableName) -> Result<(), DbError> {
    let name = table.quoted();
    let row = client
        .query_one(
            "SELECT \
                 EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass($1) \
                         AND attname = 'seq' AND attidentity = ''), \
                 EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass($1) \
                         AND attname = 'weight' AND NOT atthasdef)",
            &[&name],
        )
        .await?;
    let (seq_lacks_identity, weight_lacks_default): (bool, bool) =
        (row.try_get(0)?, row.try_get(1)?);
    if weight_lacks_default {
        client
            .batch_execute(&format!(
                "ALTER TABLE {name} ALTER COLUMN weight SET DEFAULT 1"
            ))
            .await?;
    }
    if seq_lacks_identity {
        client
            .batch_execute(&format!(
                "ALTER TABLE {name} ALTER COLUMN seq ADD GENERATED BY DEFAULT AS IDENTITY"
            ))
            .await?;
        advance_seq_identity(client, &name).await?;
    }
    Ok(())
}

/// Moves `seq`'s identity past the table's largest `seq`, so that rows inserted without one
/// come after every row imported so far (`import` numbers its rows itself, from 0; identities
/// start at 1, hence the floor).
async fn advance_seq_identity(client: &Client, table: &str) -> Result<(), tokio_postgres::Error> {
    client
        .query_one(
            &format!("SELECT setval(pg_get_serial_sequence($1, 'seq'), greatest(max(seq) + 1, 1), false) \
                 FROM {table}"),
            &[&table],
        )
        .await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Connection

/// One connection is enough: files are written one after the other.
pub(super) async fn connect(url: &str) -> Result<Client, ImportError> {
    let mut config =
        tokio_postgres::Config::from_str(url).map_err(|e| ImportError::Url(pg_message(&e)))?;
    // A big COPY legitimately runs for minutes; a `statement_timeout` meant for the server's
    // tile queries (set on the role or database) must not cut it off. The other options make
    // the server end this session soon after the import dies (killed, or its machine gone)
    // instead of running its statements on and holding its locks: TCP keepalives probe a
    // silent peer (10 s idle, then 3 probes 5 s apart), and a transaction left idle by a
    // stopped (not dead) client is ended after a minute.
    add_session_options(
        &mut config,
        "-c statement_timeout=0 -c idle_in_transaction_session_timeout=60000 \
         -c tcp_keepalives_idle=10 -c tcp_keepalives_interval=5 -c tcp_keepalives_count=3",
    );
    config.application_name("twine-heatmap import");
    config.keepalives_idle(Duration::from_secs(10));
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(10));
    }
    let (client, connection) = config
        .connect(tokio_postgres::NoTls)
        .await
        .map_err(ImportError::Connect)?;
    tokio::spawn(async move {
        // Queries on a broken connection fail with their own error, which is what gets reported.
        if let Err(e) = connection.await {
            tracing::debug!("database connection ended: {e}");
        }
    });
    // A backend busy in a statement (an index build, the pyramid, a lock wait) reads nothing
    // from its client, so it learns of a dead client only when it next writes to it: after
    // its statement, possibly minutes later. PostgreSQL 14+ can check the socket while it
    // works; once a second, so that a killed import's statements end within seconds. (Set
    // with set_config, not in the start-up options: an older server would refuse the
    // unknown setting and the connection with it.)
    client
        .batch_execute(
            "SELECT set_config('client_connection_check_interval', '1000', false) \
             WHERE current_setting('server_version_num')::int >= 140000",
        )
        .await
        .map_err(ImportError::Connect)?;
    Ok(client)
}

fn db_one_line(e: &DbError) -> String {
    match e {
        DbError::Postgres(e) => pg_message(e),
        other => other.to_string(),
    }
}

// ---------------------------------------------------------------------------------------------
// One file

async fn import_file(
    client: &mut Client,
    target: &Target,
    path: &Path,
    attribution: Option<&str>,
    aggregate_above: u64,
) -> Result<FileReport, ImportError> {
    let started = Instant::now();
    let file = path.display().to_string();
    let (mut points, attributes) =
        load_points_file_with(path, WeightMode::FromData, &target.kept.schema())?;
    spatial_order(&mut points);
    // Only now that a file parsed: a bad first file leaves the database untouched. Repeating
    // this for later files is cheap and keeps each file independent of the previous one.
    prepare_schema(client)
        .await
        .map_err(|source| ImportError::Setup {
            table: target.table.key(),
            source,
        })?;
    let progress = crate::progress::bar(&file, points.len() as u64, "rows");
    let written = write_file(
        client,
        target,
        attribution,
        (&points, attributes.as_ref()),
        &progress,
        aggregate_above,
        &file,
    )
    .await;
    progress.finish_and_clear();
    let (pyramid, pyramid_elapsed) = written?;
    if !points.is_empty() {
        // Fresh statistics let the planner use the GiST index for small tile boxes.
        client
            .batch_execute(&format!("ANALYZE {}", target.table.quoted()))
            .await
            .map_err(|source| ImportError::Analyze {
                file: file.clone(),
                table: target.table.key(),
                source,
            })?;
    }
    Ok(FileReport {
        file,
        rows: points.len() as u64,
        elapsed: started.elapsed().saturating_sub(pyramid_elapsed),
        pyramid,
        pyramid_elapsed,
    })
}

/// Rows per COPY message: large enough that per-message overhead is negligible, small
/// enough that the progress bar moves.
const CHUNK_ROWS: usize = 8192;

/// Creates and registers the layer if new, appends `points` (in Hilbert order, `seq` = file
/// index) to its table, makes sure its GiST index exists and rebuilds its bin pyramid, in one
/// transaction.
async fn write_file(
    client: &mut Client,
    target: &Target,
    attribution: Option<&str>,
    (points, attributes): (&[WorldPoint], Option<&Attributes>),
    progress: &ProgressBar,
    aggregate_above: u64,
    file: &str,
) -> Result<(Option<Built>, Duration), ImportError> {
    let copy_error = |source| ImportError::Copy {
        file: file.to_owned(),
        source,
    };
    let table = target.table.quoted();
    // Dropping `tx` on any error below rolls the whole file back.
    let tx = client.transaction().await.map_err(copy_error)?;
    let setup_error = |source| ImportError::Setup {
        table: target.table.key(),
        source,
    };
    prepare_layer(&tx, target, attribution)
        .await
        .map_err(setup_error)?;
    prepare_columns(&tx, &target.layer, &target.table, &target.kept)
        .await
        .map_err(setup_error)?;
    // Two imports into one layer at once would read the same max(seq); this lock (which lets
    // readers through) makes the second wait for the first to commit.
    tx.batch_execute(&format!("LOCK TABLE {table} IN SHARE ROW EXCLUSIVE MODE"))
        .await
        .map_err(copy_error)?;
    if !points.is_empty() {
        copy_rows(&tx, &table, (points, &target.kept, attributes), progress)
            .await
            .map_err(copy_error)?;
    }
    // Into a new table, building the index over all the rows at once (a sorted GiST build)
    // is cheaper than growing it row by row; CREATE INDEX does not block readers.
    // Later files find the index and extend it.
    tx.batch_execute(&format!(
        "CREATE INDEX IF NOT EXISTS {index} ON {table} USING gist (geom)",
        index = target.index.quoted(),
    ))
    .await
    .map_err(copy_error)?;
    let timed = imported_timed_points(&tx, &target.layer, &target.table)
        .await
        .map_err(setup_error)?;
    // A window's partial days are read from the points by time, through this index.
    if let Some(timed) = &timed {
        let index = Ident::new(&format!("points_{}_time", target.layer)).map_err(setup_error)?;
        tx.batch_execute(&format!(
            "CREATE INDEX IF NOT EXISTS {} ON {table} ({})",
            index.quoted(),
            timed.time.quoted(),
        ))
        .await
        .map_err(copy_error)?;
    }
    progress.finish_and_clear();
    let pyramid_started = Instant::now();
    let built = build_pyramid(&tx, target, timed.as_ref(), aggregate_above)
        .await
        .map_err(|source| ImportError::Pyramid {
            file: file.to_owned(),
            table: target.table.key(),
            source,
        })?;
    let pyramid_elapsed = pyramid_started.elapsed();
    tx.commit().await.map_err(copy_error)?;
    Ok((built, pyramid_elapsed))
}

/// Rebuilds the layer's bin pyramid (and, with `timed`, its time pyramid) from every row of
/// its table, at the table's current data version, with a spinner while it runs (minutes for
/// tens of millions of points).
async fn build_pyramid(
    tx: &Transaction<'_>,
    target: &Target,
    timed: Option<&TimedPoints>,
    aggregate_above: u64,
) -> Result<Option<Built>, DbError> {
    let points_sql = imported_inner_all(&target.table)?;
    build_pyramid_of(
        tx,
        &target.layer,
        &target.table,
        (&points_sql, timed),
        aggregate_above,
    )
    .await
}

/// The points of an imported layer's table with their times and categories, when the layer
/// keeps a time column (`import --time`), for its time pyramid: the columns `twine.layers`
/// records for it.
pub(super) async fn imported_timed_points(
    tx: &Transaction<'_>,
    layer: &str,
    table: &TableName,
) -> Result<Option<TimedPoints>, DbError> {
    let Some(row) = tx
        .query_opt(
            "SELECT time_column, category_columns FROM twine.layers WHERE name = $1",
            &[&layer],
        )
        .await?
    else {
        return Ok(None);
    };
    let (time, categories): (Option<String>, Vec<String>) = (row.try_get(0)?, row.try_get(1)?);
    let Some(time) = time else {
        return Ok(None);
    };
    let time = Ident::new(&time)?;
    let columns = categories
        .iter()
        .map(|c| Ident::new(c))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(TimedPoints {
        sql: imported_inner_all_timed(table, &time, &columns)?,
        time,
        categories,
    }))
}

/// [`build_pyramid`] of the points `points_sql` yields from `table`, for `layer`.
pub(super) async fn build_pyramid_of(
    tx: &Transaction<'_>,
    layer: &str,
    table: &TableName,
    (points_sql, timed): (&str, Option<&TimedPoints>),
    aggregate_above: u64,
) -> Result<Option<Built>, DbError> {
    let spinner = ProgressBar::new_spinner();
    spinner.set_message(format!("{layer}: building the bin pyramid"));
    spinner.enable_steady_tick(Duration::from_millis(200));
    let version: i64 = tx
        .query_opt(
            "SELECT version FROM twine.versions WHERE table_name = $1",
            &[&table.key()],
        )
        .await?
        .map_or(0, |row| row.get(0));
    let stats = scan_stats(tx, points_sql).await?;
    let source = pyramid::Source {
        table,
        points_sql,
        version: version.max(0) as u64,
        stats: &stats,
    };
    let built = async {
        let mut built = pyramid::build(tx, layer, &source, aggregate_above).await?;
        spinner.set_message(format!("{layer}: building the time pyramid"));
        let max_zoom = built.map(|b| b.max_zoom);
        let entries =
            time_pyramid::build(tx, layer, table, timed, max_zoom, source.version).await?;
        if let Some(b) = built.as_mut() {
            b.time_entries = entries;
        }
        Ok(built)
    }
    .await;
    spinner.finish_and_clear();
    built
}

/// `COPY`s `points` after the rows already in `table` (`seq` continues from their maximum).
async fn copy_rows(
    tx: &Transaction<'_>,
    table: &str,
    (points, kept, attributes): (&[WorldPoint], &KeptColumns, Option<&Attributes>),
    progress: &ProgressBar,
) -> Result<(), tokio_postgres::Error> {
    let first_seq: i64 = tx
        .query_one(
            &format!("SELECT coalesce(max(seq) + 1, 0) FROM {table}"),
            &[],
        )
        .await?
        .try_get(0)?;
    let sink = tx
        .copy_in::<_, Cursor<Vec<u8>>>(&format!(
            "COPY {table} (seq, weight, geom{}) FROM STDIN (FORMAT binary)",
            kept.copy_list()
        ))
        .await?;
    futures_util::pin_mut!(sink);
    let mut buf = Vec::with_capacity(COPY_HEADER.len() + CHUNK_ROWS * ROW_BYTES);
    buf.extend_from_slice(&COPY_HEADER);
    for chunk in points.chunks(CHUNK_ROWS) {
        for p in chunk {
            encode_row(&mut buf, first_seq + i64::from(p.seq), p, kept.len());
            // The loader numbered the file's points (`seq`) as it kept their attributes.
            kept.encode(&mut buf, attributes, p.seq as usize);
        }
        sink.send(Cursor::new(std::mem::take(&mut buf))).await?;
        progress.inc(chunk.len() as u64);
        buf.reserve(CHUNK_ROWS * ROW_BYTES);
    }
    buf.extend_from_slice(&COPY_TRAILER);
    sink.send(Cursor::new(buf)).await?;
    sink.as_mut().finish().await?;
    advance_seq_identity(tx.client(), table).await
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn point(x: f64, y: f64, w: f32, seq: u32) -> WorldPoint {
        WorldPoint { x, y, w, seq }
    }

    #[test]
    fn layer_names_are_checked_before_anything_else() {
        assert!(Target::for_layer("quakes-2024_v1").is_ok());
        assert!(
            Target::for_layer("1st").is_ok(),
            "the table name starts with points_"
        );
        assert!(Target::for_layer(&"a".repeat(51)).is_ok());
        for bad in [
            "",
            "a b",
            "x\"; drop table t; --",
            "ä",
            &"a".repeat(52),
            &"a".repeat(65),
        ] {
            let err = Target::for_layer(bad)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(err.starts_with("invalid layer name"), "{bad:?}: {err}");
        }
        let target = Target::for_layer("demo").expect("target");
        assert_eq!(target.table.key(), "twine.points_demo");
        assert_eq!(target.index.quoted(), "\"points_demo_geom\"");
    }
}
