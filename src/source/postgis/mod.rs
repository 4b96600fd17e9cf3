//! PostGIS: connection pool, identifier checking and quoting, and the project's own schema.
//! Point queries live in `layer`, the `import` command in `import`.

pub mod admin;
pub mod attributes;
pub mod check;
mod failure;
pub mod import;
pub mod layer;
pub mod pyramid;
pub mod reference;
pub mod status;
pub mod table_sql;
pub mod time_pyramid;
pub mod watch;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use std::str::FromStr;
use std::time::Duration;

/// The project's tables and trigger function (`twine` schema), created if missing.
pub const SCHEMA_SQL: &str = include_str!("sql/schema.sql");

/// Why a database operation failed, with what the user needs to act on it.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("invalid database URL: {0}")]
    Url(String),
    #[error("{0:?} is not a valid SQL identifier: use 1 to 63 ASCII letters, digits, '_' or '-', not starting with a digit or '-'")]
    Identifier(String),
    #[error("database: {}", pg_message(.0))]
    Postgres(#[from] tokio_postgres::Error),
    #[error("database pool: {}", pool_message(.0))]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("{0}")]
    Other(String),
}

/// A PostgreSQL error on one line: the server's message with its detail and hint, or the
/// client's error with its causes. The client library's own text is only "db error" or
/// "error connecting to server", which says nothing of what went wrong.
pub fn pg_message(e: &tokio_postgres::Error) -> String {
    let text = match e.as_db_error() {
        Some(db) => {
            let mut text = format!("{}: {}", db.severity(), db.message());
            if let Some(detail) = db.detail() {
                text.push_str(&format!(" ({detail})"));
            }
            if let Some(hint) = db.hint() {
                text.push_str(&format!(" (hint: {hint})"));
            }
            text
        }
        None => with_causes(e),
    };
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A pool failure on one line; a failed connection says why (its PostgreSQL message).
pub fn pool_message(e: &deadpool_postgres::PoolError) -> String {
    match e {
        deadpool_postgres::PoolError::Backend(pg) => {
            format!("cannot open a connection: {}", pg_message(pg))
        }
        other => other.to_string(),
    }
}

/// `error connecting to server: Connection refused (os error 111)`: an error with its causes.
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

/// A checked SQL identifier (a table, column or schema name from config or import).
/// Only `[A-Za-z_][A-Za-z0-9_-]*` up to 63 bytes is accepted, and it is always quoted, so
/// it can never carry SQL.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Ident(String);

impl Ident {
    pub fn new(name: &str) -> Result<Ident, DbError> {
        let ok = !name.is_empty()
            && name.len() <= 63
            && name
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if ok {
            Ok(Ident(name.to_string()))
        } else {
            Err(DbError::Identifier(name.chars().take(80).collect()))
        }
    }

    /// The name as written in SQL: always double-quoted.
    pub fn quoted(&self) -> String {
        format!("\"{}\"", self.0)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `schema.table`, or `table` in `public`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TableName {
    pub schema: Ident,
    pub table: Ident,
}

impl TableName {
    pub fn parse(text: &str) -> Result<TableName, DbError> {
        match text.split_once('.') {
            Some((schema, table)) => Ok(TableName {
                schema: Ident::new(schema)?,
                table: Ident::new(table)?,
            }),
            None => Ok(TableName {
                schema: Ident::new("public")?,
                table: Ident::new(text)?,
            }),
        }
    }

    /// The table `import` creates for a layer: `twine."points_<layer>"`.
    pub fn for_imported_layer(layer: &str) -> Result<TableName, DbError> {
        Ok(TableName {
            schema: Ident::new("twine")?,
            table: Ident::new(&format!("points_{layer}"))?,
        })
    }

    /// `"schema"."table"` for SQL text.
    pub fn quoted(&self) -> String {
        format!("{}.{}", self.schema.quoted(), self.table.quoted())
    }

    /// `schema.table` as stored in `twine.versions` (the trigger's TG_TABLE_SCHEMA.TG_TABLE_NAME).
    pub fn key(&self) -> String {
        format!("{}.{}", self.schema.as_str(), self.table.as_str())
    }
}

/// Pool settings: how many connections, how long a request may wait for one, and how long a
/// statement may run before PostgreSQL cancels it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PoolSettings {
    pub max_size: usize,
    pub wait: Duration,
    pub statement_timeout: Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        PoolSettings {
            max_size: 16,
            wait: Duration::from_secs(2),
            statement_timeout: Duration::from_secs(10),
        }
    }
}

/// Builds a pool for `url`. No connection is made yet, so a database that is down at
/// start-up does not stop the server; every connection gets `statement_timeout`.
pub fn pool(url: &str, settings: PoolSettings) -> Result<Pool, DbError> {
    let mut config =
        tokio_postgres::Config::from_str(url).map_err(|e| DbError::Url(e.to_string()))?;
    // Custom plans: the point queries' optional conditions (`$n IS NULL OR column >= $n`)
    // then fold to the given ones, so a narrow time window reads through the time column's
    // index (a generic plan can use neither, and scans every point under the tile).
    let mut ours = format!(
        "-c statement_timeout={} -c plan_cache_mode=force_custom_plan",
        settings.statement_timeout.as_millis()
    );
    // Random reads at the cost of a cached or SSD page (PostgreSQL's default, 4, is a
    // spinning disk's), unless the URL's options set it. At 4 the planner joined a tile's
    // few thousand points (GiST) with a month's million (time index) to spare heap pages
    // that, spatially clustered, were few: 240 ms against 4 ms for a filtered sparse tile.
    if !config
        .get_options()
        .is_some_and(|given| given.contains("random_page_cost"))
    {
        ours.push_str(" -c random_page_cost=1.1");
    }
    add_session_options(&mut config, &ours);
    config.connect_timeout(settings.wait.max(Duration::from_secs(1)));
    config.application_name("twine-heatmap");
    let manager = Manager::from_config(
        config,
        tokio_postgres::NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(settings.max_size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(settings.wait))
        .create_timeout(Some(settings.wait.max(Duration::from_secs(1))))
        .recycle_timeout(Some(Duration::from_secs(2)))
        .build()
        .map_err(|e| DbError::Other(format!("cannot build the database pool: {e}")))
}

/// Adds `ours` (`-c name=value ...`) to the session options given in the URL, after them so
/// that ours win, with `client_min_messages=warning`: the schema's "already exists, skipping"
/// notices would otherwise be logged at every start and import; they say nothing.
pub fn add_session_options(config: &mut tokio_postgres::Config, ours: &str) {
    let ours = format!("{ours} -c client_min_messages=warning");
    let options = match config.get_options() {
        Some(given) => format!("{given} {ours}"),
        None => ours,
    };
    config.options(options);
}

/// Locks a mutex whose every use reads or writes one whole value (a layer's state, the
/// watcher's maps), so that a lock poisoned by a panic still holds a valid one.
pub(super) fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// Advisory lock taken around schema changes: concurrent `CREATE OR REPLACE` of the same
/// objects (two imports, or an import and a starting server) otherwise fail with "tuple
/// concurrently updated". Any number will do as long as everyone uses the same one.
pub const SCHEMA_LOCK_KEY: i64 = 0x7477_696e_6568_6d70;

/// Creates (or migrates) the project's schema objects, unless the database already has
/// this build's: `twine.schema_state` holds the md5 of the schema.sql that made them. Call
/// inside a transaction; it takes [`SCHEMA_LOCK_KEY`] (until the transaction ends) only when
/// it changes something.
///
/// Why not always run it: `CREATE OR REPLACE FUNCTION twine.bump_version` waits for every
/// transaction that holds the function, and each import holds it from its layer's trigger to
/// its commit. Run every time, an import of a small layer waited out a 10M-point one (half an
/// hour).
pub async fn ensure_schema(client: &tokio_postgres::Client) -> Result<(), DbError> {
    if schema_is_current(client).await? {
        return Ok(());
    }
    client
        .batch_execute(&format!("SELECT pg_advisory_xact_lock({SCHEMA_LOCK_KEY})"))
        .await?;
    client.batch_execute(SCHEMA_SQL).await?;
    client
        .execute(
            "WITH gone AS (DELETE FROM twine.schema_state) \
             INSERT INTO twine.schema_state (digest) VALUES (md5($1))",
            &[&SCHEMA_SQL],
        )
        .await?;
    Ok(())
}

/// Whether the table (or other relation) `name` exists, for objects a newer schema adds.
pub(super) async fn relation_exists(
    client: &impl tokio_postgres::GenericClient,
    name: &str,
) -> Result<bool, DbError> {
    Ok(client
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&name])
        .await?
        .get(0))
}

/// Whether `twine.schema_state` records this build's schema.sql.
async fn schema_is_current(client: &tokio_postgres::Client) -> Result<bool, DbError> {
    if !relation_exists(client, "twine.schema_state").await? {
        return Ok(false);
    }
    Ok(client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM twine.schema_state WHERE digest = md5($1))",
            &[&SCHEMA_SQL],
        )
        .await?
        .get(0))
}

/// Installs (or refreshes) the data-version trigger on `table`.
pub async fn ensure_version_trigger(
    client: &tokio_postgres::Client,
    table: &TableName,
) -> Result<(), DbError> {
    client
        .batch_execute(&format!(
            "CREATE OR REPLACE TRIGGER twine_data_version \
             AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {} \
             FOR EACH STATEMENT EXECUTE FUNCTION twine.bump_version()",
            table.quoted()
        ))
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_checked_and_quoted() {
        assert_eq!(
            Ident::new("quakes").map(|i| i.quoted()).ok(),
            Some("\"quakes\"".to_string())
        );
        assert_eq!(
            Ident::new("my-layer_2").map(|i| i.quoted()).ok(),
            Some("\"my-layer_2\"".to_string())
        );
        for bad in [
            "",
            "1abc",
            "-x",
            "a b",
            "a\"b",
            "a;drop table x",
            "x'--",
            "ä",
            &"a".repeat(64),
        ] {
            assert!(Ident::new(bad).is_err(), "{bad:?}");
        }
        let t = TableName::parse("public.quakes").expect("table");
        assert_eq!(t.quoted(), "\"public\".\"quakes\"");
        assert_eq!(
            TableName::parse("quakes").expect("table").key(),
            "public.quakes"
        );
        assert!(TableName::parse("a.b.c").is_err());
        assert_eq!(
            TableName::for_imported_layer("demo").expect("t").quoted(),
            "\"twine\".\"points_demo\""
        );
    }
}
