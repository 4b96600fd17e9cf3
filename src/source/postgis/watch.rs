//! The database watcher: a background task that finds imported layers, keeps every PostGIS
//! layer's data version current, and records whether the database is reachable, so the
//! server starts and keeps running while the database is down and recovers by itself.

use super::attributes::AttributeColumns;
use super::layer::{imported_layout, PostgisLayer, TableLayout};
use super::status::DbStatus;
use super::{lock, DbError, TableName};
use crate::metrics::Metrics;
use crate::source::{valid_layer_name, PointSource};
use deadpool_postgres::Pool;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often the watcher reads the data versions, on a fixed tick (see [`spawn`]). Tiles are
/// never served from data older than one period past a write, plus that read's own few
/// queries (the data-version policy).
pub const POLL: Duration = Duration::from_secs(1);

/// Where the watcher puts the layers it serves: the server's layer registry, which
/// implements this so that sources never depend on the layers built over them.
pub trait LayerCatalog: Send + Sync {
    fn contains(&self, name: &str) -> bool;

    /// Serves `source` as the layer `name`, drawn from bins at zooms denser than
    /// `aggregate_above` points per tile; refused when the name is taken.
    fn add(
        &self,
        name: &str,
        source: Arc<dyn PointSource>,
        aggregate_above: u64,
    ) -> Result<(), String>;
}

/// What `/health` reports about the database, and what the routes need to know about it.
pub struct Database {
    pub pool: Pool,
    /// Reachability, shared with the layers: their queries report to it too, so it changes
    /// at the first failed or successful contact, not at the next poll.
    status: Arc<DbStatus>,
    /// True once the layer list has been read: before, an unknown layer may just not be
    /// known yet (503), after it is unknown (404).
    discovered: AtomicBool,
    /// Set when the watcher's first look has ended, well or not: requests that arrive at
    /// start-up wait for it rather than answer 503 at once ([`Self::first_look`]). Checking
    /// it is one atomic load, as every request on a database layer does.
    looked: tokio::sync::SetOnce<()>,
    /// Every PostGIS layer by name (imported and declared), for version updates.
    layers: Mutex<HashMap<String, Arc<PostgisLayer>>>,
    aggregate_above: u64,
    metrics: Arc<Metrics>,
    /// The tables the config declares (`schema.table`), with whether each was last found with
    /// its data-version trigger (None: not looked at yet). Without it, writes to the table
    /// are not seen; only `db init` or `pyramid` install it, never the server.
    declared_triggers: Mutex<HashMap<String, Option<bool>>>,
    /// The last error of each layer whose statistics refresh fails, logged once per change.
    refresh_errors: Mutex<HashMap<String, String>>,
    /// True while a statistics refresh runs beside the looks: at most one at a time.
    refreshing: AtomicBool,
}

impl Database {
    pub fn new(pool: Pool, aggregate_above: u64, metrics: Arc<Metrics>) -> Database {
        Database {
            pool,
            status: Arc::new(DbStatus::default()),
            discovered: AtomicBool::new(false),
            looked: tokio::sync::SetOnce::new(),
            layers: Mutex::new(HashMap::new()),
            aggregate_above,
            metrics,
            declared_triggers: Mutex::new(HashMap::new()),
            refresh_errors: Mutex::new(HashMap::new()),
            refreshing: AtomicBool::new(false),
        }
    }

    pub fn reachable(&self) -> bool {
        self.status.reachable()
    }

    pub fn discovered(&self) -> bool {
        self.discovered.load(Ordering::Acquire)
    }

    /// Whether the watcher's first look at the database has ended (well or not).
    pub fn looked(&self) -> bool {
        self.looked.initialized()
    }

    /// Waits for the watcher's first look at the database to end, at most as long as a
    /// request may wait for a connection (the pool's wait timeout). A server started just
    /// before its first requests then answers them with the database's layers (the first
    /// look is quick next to that wait) instead of 503; a database that is down costs a request at
    /// most that wait, and only until the first look has failed.
    pub async fn first_look(&self) {
        let wait = self.pool.timeouts().wait.unwrap_or(Duration::from_secs(2));
        // Past the wait: answer with what is known now.
        let _ = tokio::time::timeout(wait, self.looked.wait()).await;
    }

    pub fn last_error(&self) -> Option<String> {
        self.status.last_error()
    }

    /// Adds a layer declared over an existing table (from the config).
    pub fn declare(
        &self,
        catalog: &dyn LayerCatalog,
        name: &str,
        layout: TableLayout,
    ) -> Result<(), String> {
        let table = layout.table.key();
        self.add_layer(catalog, name, layout, true)?;
        lock(&self.declared_triggers).insert(table, None);
        Ok(())
    }

    /// The declared tables last found without their data-version trigger: writes to them
    /// are not seen (`/health` lists them).
    pub fn tables_without_trigger(&self) -> Vec<String> {
        let mut tables: Vec<String> = lock(&self.declared_triggers)
            .iter()
            .filter(|(_, has)| **has == Some(false))
            .map(|(table, _)| table.clone())
            .collect();
        tables.sort();
        tables
    }

    /// Looks for the data-version trigger of every declared table, and logs each change:
    /// the server reads the catalog only, it never installs one.
    async fn check_triggers(&self, client: &deadpool_postgres::Object) -> Result<(), DbError> {
        let tables: Vec<String> = lock(&self.declared_triggers).keys().cloned().collect();
        if tables.is_empty() {
            return Ok(());
        }
        let quoted: Vec<String> = tables
            .iter()
            .map(|key| TableName::parse(key).map(|t| t.quoted()))
            .collect::<Result<_, _>>()?;
        let rows = client
            .query(
                "SELECT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'twine_data_version' \
                         AND tgrelid = to_regclass(t)) \
                 FROM unnest($1::text[]) WITH ORDINALITY AS u(t, i) ORDER BY i",
                &[&quoted],
            )
            .await?;
        let mut known = lock(&self.declared_triggers);
        for (table, row) in tables.iter().zip(&rows) {
            let has: bool = row.get(0);
            let before = known.insert(table.clone(), Some(has)).flatten();
            if before != Some(has) && !has {
                tracing::warn!(
                    table = %table,
                    "no data-version trigger on this table: writes to it are not seen until \
                     the server restarts; run `twine-heatmap db init --config FILE` once with \
                     a role that may create triggers"
                );
            } else if before == Some(false) && has {
                tracing::info!(table = %table, "data-version trigger found: writes are seen");
            }
        }
        Ok(())
    }

    /// Checks every declared table now (see [`PostgisLayer::check`]): each problem as
    /// `layer NAME: ...`. Fails only when the database cannot be asked.
    pub async fn check_declared(&self) -> Result<Vec<String>, DbError> {
        let layers: Vec<Arc<PostgisLayer>> = self.lock_layers().values().cloned().collect();
        let mut problems = Vec::new();
        for layer in layers.iter().filter(|l| l.is_declared()) {
            if let Some(problem) = layer.check().await? {
                problems.push(format!("layer {}: {problem}", layer.name()));
            }
        }
        problems.sort();
        Ok(problems)
    }

    /// The declared layers last found misconfigured, with their problems, by name.
    pub fn misconfigured(&self) -> Vec<(String, String)> {
        let mut found: Vec<(String, String)> = self
            .lock_layers()
            .values()
            .filter_map(|l| l.problem().map(|p| (l.name().to_string(), p.to_string())))
            .collect();
        found.sort();
        found
    }

    /// Serves `layout` as layer `name` (declared in the config, or imported).
    fn add_layer(
        &self,
        catalog: &dyn LayerCatalog,
        name: &str,
        layout: TableLayout,
        declared: bool,
    ) -> Result<(), String> {
        let source = Arc::new(
            PostgisLayer::new(
                self.pool.clone(),
                self.status.clone(),
                layout,
                self.metrics.clone(),
            )
            .named(name, declared),
        );
        catalog.add(name, source.clone(), self.aggregate_above)?;
        self.lock_layers().insert(name.to_string(), source);
        Ok(())
    }

    fn lock_layers(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<PostgisLayer>>> {
        lock(&self.layers)
    }

    /// Records a look's outcome in the shared status. Every change is logged there; the first
    /// look's failure is logged here too, as it is no change (the status starts unreachable).
    fn record(&self, result: &Result<(), DbError>) {
        match result {
            Ok(()) => {
                self.status.contact_ok();
            }
            Err(e) => {
                let changed = self.status.contact_failed(&e.to_string());
                if !self.looked() && !changed {
                    tracing::warn!(error = %e, "database unreachable; tiles of its layers answer 503 until it is back");
                }
            }
        }
    }

    /// Logs a layer's failing statistics refresh once per change of its error, not at
    /// every look.
    fn record_refresh(&self, layer: &PostgisLayer, result: Result<(), String>) {
        let mut errors = lock(&self.refresh_errors);
        match result {
            Ok(()) => {
                if errors.remove(layer.name()).is_some() {
                    tracing::info!(layer = %layer.name(), "layer statistics refreshed again");
                }
            }
            Err(e) => {
                if errors.get(layer.name()) != Some(&e) {
                    tracing::warn!(layer = %layer.name(), table = %layer.table().key(), error = %e, "cannot refresh layer statistics");
                    errors.insert(layer.name().to_string(), e);
                }
            }
        }
    }

    /// One look at the database (new imported layers, triggers, versions), its outcome
    /// recorded in the shared status. Whether it succeeded.
    async fn poll(&self, catalog: &dyn LayerCatalog) -> bool {
        let result = self.look(catalog).await;
        // Recorded before any statistics: their queries report their own failures, which a
        // success recorded after them would hide until the next poll.
        self.record(&result);
        result.is_ok()
    }

    /// Checks every declared table and refreshes every layer's statistics (count, bounds,
    /// aggregation grid) for its current data version: a full scan of each layer whose data
    /// changed, which may take seconds on a large table.
    async fn refresh_statistics(&self) {
        let layers: Vec<Arc<PostgisLayer>> = self.lock_layers().values().cloned().collect();
        for layer in layers {
            // A declared table is checked at every look (a few catalog reads), so that one
            // dropped or altered under the server is named in /health at once; a
            // misconfigured layer has no statistics to refresh.
            if !matches!(layer.check().await, Ok(None)) {
                continue;
            }
            let result = layer.refresh().await.map_err(|e| e.to_string());
            self.record_refresh(&layer, result);
        }
    }

    /// New imported layers and every layer's data version: the watcher's own queries, reads
    /// only, so that a read-only role or a hot standby can serve (`import`, `pyramid` and
    /// `db init` create the schema and the triggers). Without the `twine` schema there is
    /// nothing imported and no version to read: the declared layers are served as they are.
    async fn look(&self, catalog: &dyn LayerCatalog) -> Result<(), DbError> {
        let client = self.pool.get().await?;
        let row = client
            .query_one(
                "SELECT to_regclass('twine.layers') IS NOT NULL, \
                        to_regclass('twine.versions') IS NOT NULL",
                &[],
            )
            .await?;
        let (has_layers, has_versions): (bool, bool) = (row.get(0), row.get(1));
        let imported = if has_layers {
            client
                // Through to_jsonb: a database imported into before layers had time and
                // category columns lacks them, and the server's role may not add them.
                .query(
                    "SELECT name, table_name, attribution, to_jsonb(l) ->> 'time_column', \
                     ARRAY(SELECT jsonb_array_elements_text(\
                         coalesce(to_jsonb(l) -> 'category_columns', '[]'::jsonb))) \
                     FROM twine.layers l",
                    &[],
                )
                .await?
        } else {
            Vec::new()
        };
        for row in imported {
            let (name, table, attribution): (String, String, Option<String>) =
                (row.get(0), row.get(1), row.get(2));
            if catalog.contains(&name) || !valid_layer_name(&name) {
                continue;
            }
            let (time, categories): (Option<String>, Vec<String>) = (row.get(3), row.get(4));
            let attributes = match AttributeColumns::new(time.as_deref(), &categories, None) {
                Ok(attributes) => attributes,
                Err(e) => {
                    tracing::warn!(layer = %name, error = %e, "imported layer not served");
                    continue;
                }
            };
            let layout = imported_layout(TableName::parse(&table)?, attribution, attributes)?;
            if let Err(e) = self.add_layer(catalog, &name, layout, false) {
                tracing::warn!(layer = %name, error = %e, "imported layer not served");
            } else {
                tracing::info!(layer = %name, table = %table, "serving imported layer");
            }
        }
        let versions: HashMap<String, i64> = if has_versions {
            client
                .query("SELECT table_name, version FROM twine.versions", &[])
                .await?
                .iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect()
        } else {
            HashMap::new()
        };
        self.check_triggers(&client).await?;
        drop(client);
        // Known now: a request for any other layer is for one that does not exist.
        self.discovered.store(true, Ordering::Release);
        let layers: Vec<Arc<PostgisLayer>> = self.lock_layers().values().cloned().collect();
        // Every version before any statistics scan ([`Self::poll`]): a slow scan of one
        // layer must not hold back the others' new versions (and so their cache keys).
        for layer in &layers {
            layer.set_version(
                versions
                    .get(&layer.table().key())
                    .copied()
                    .unwrap_or(0)
                    .max(0) as u64,
            );
        }
        Ok(())
    }
}

/// Runs the watcher until the process ends.
///
/// The data versions are read on a fixed tick of [`POLL`], whatever else the watcher does:
/// the statistics refresh that follows a change runs in a task of its own (one at a time),
/// since a scan of a large table takes seconds and would otherwise hold back the next read
/// of every layer's version, and so the freshness promise.
pub fn spawn(db: Arc<Database>, catalog: impl LayerCatalog + 'static) {
    // On the current thread, as the server runs its tasks (the watcher need not be `Send`).
    tokio::task::spawn_local(async move {
        // The first tick is at once; the next ones are counted from it, not from the end of
        // each look. A look slower than the tick (a slow database) is followed by the next
        // at once, then the tick resumes from there, rather than a burst to catch up.
        let mut tick = tokio::time::interval(POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The first look includes the statistics, as one step: requests at start-up wait
        // for it ([`Database::first_look`]) and then find counts and bounds, and `/health`
        // says the database was checked once it has ended. Only at start-up can a refresh
        // delay a look; the next look comes at once if it did.
        tick.tick().await;
        if db.poll(&catalog).await {
            db.refresh_statistics().await;
        }
        // Only the watcher sets this, so the first set is the only one.
        let _ = db.looked.set(());
        loop {
            tick.tick().await;
            if db.poll(&catalog).await && !db.refreshing.swap(true, Ordering::AcqRel) {
                let db = db.clone();
                tokio::task::spawn_local(async move {
                    // Cleared even if the refresh panics, or no refresh would run again.
                    let _done = ClearOnDrop(&db.refreshing);
                    db.refresh_statistics().await;
                });
            }
        }
    });
}

/// Clears its flag when dropped.
struct ClearOnDrop<'a>(&'a AtomicBool);

impl Drop for ClearOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}
