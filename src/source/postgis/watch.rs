//! The database watcher: a background task that finds imported layers, keeps every PostGIS
//! layer's data version current, and records whether the database is reachable, so the
//! server starts and keeps running while the database is down and recovers by itself.

use super::layer::{imported_layout, PostgisLayer, TableLayout};
use super::status::DbStatus;
use super::{ensure_schema, ensure_version_trigger, DbError, TableName, SCHEMA_LOCK_KEY};
use crate::metrics::Metrics;
use crate::source::{valid_layer_name, PointSource};
use deadpool_postgres::Pool;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often the watcher looks at the database. Tiles are never served from data older
/// than one period past a write (the data-version policy).
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
        let source = Arc::new(PostgisLayer::new(
            self.pool.clone(),
            self.status.clone(),
            layout,
            self.metrics.clone(),
        ));
        catalog.add(name, source.clone(), self.aggregate_above)?;
        self.lock_layers().insert(name.to_string(), source);
        Ok(())
    }

    fn lock_layers(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<PostgisLayer>>> {
        // Each use is a single insert or clone, so a poisoned lock still holds a valid map.
        self.layers.lock().unwrap_or_else(|e| e.into_inner())
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

    /// One look at the database (schema, new imported layers, triggers, versions), then the
    /// layers' statistics.
    async fn poll(&self, catalog: &dyn LayerCatalog, prepared: &mut bool) {
        let result = self.look(catalog, prepared).await;
        // Recorded before the statistics: their queries report their own failures, which a
        // success recorded after them would hide until the next poll.
        self.record(&result);
        if result.is_ok() {
            let layers: Vec<Arc<PostgisLayer>> = self.lock_layers().values().cloned().collect();
            for layer in layers {
                if let Err(e) = layer.refresh().await {
                    tracing::warn!(table = %layer.table().key(), error = %e, "cannot refresh layer statistics");
                }
            }
        }
        // Only the watcher sets this, so the first set is the only one.
        let _ = self.looked.set(());
    }

    /// Schema, new imported layers, triggers and versions: the watcher's own queries.
    async fn look(&self, catalog: &dyn LayerCatalog, prepared: &mut bool) -> Result<(), DbError> {
        let mut client = self.pool.get().await?;
        if !*prepared {
            let tx = client.transaction().await?;
            tx.batch_execute(&format!("SELECT pg_advisory_xact_lock({SCHEMA_LOCK_KEY})"))
                .await?;
            ensure_schema(tx.client()).await?;
            tx.commit().await?;
            let declared: Vec<Arc<PostgisLayer>> = self.lock_layers().values().cloned().collect();
            for layer in declared {
                // Declared tables may belong to someone else: without the right to add a
                // trigger, the layer still works, only without data-version updates.
                if let Err(e) = ensure_version_trigger(&client, layer.table()).await {
                    tracing::warn!(table = %layer.table().key(), error = %e, "cannot install the data-version trigger");
                }
            }
            *prepared = true;
        }
        for row in client
            .query(
                "SELECT name, table_name, attribution FROM twine.layers",
                &[],
            )
            .await?
        {
            let (name, table, attribution): (String, String, Option<String>) =
                (row.get(0), row.get(1), row.get(2));
            if catalog.contains(&name) || !valid_layer_name(&name) {
                continue;
            }
            let layout = imported_layout(TableName::parse(&table)?, attribution)?;
            if let Err(e) = self.declare(catalog, &name, layout) {
                tracing::warn!(layer = %name, error = %e, "imported layer not served");
            } else {
                tracing::info!(layer = %name, table = %table, "serving imported layer");
            }
        }
        let versions: HashMap<String, i64> = client
            .query("SELECT table_name, version FROM twine.versions", &[])
            .await?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
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
pub fn spawn(db: Arc<Database>, catalog: impl LayerCatalog + 'static) {
    // On the current thread, as the server runs its tasks (the watcher need not be `Send`).
    tokio::task::spawn_local(async move {
        let mut prepared = false;
        loop {
            db.poll(&catalog, &mut prepared).await;
            tokio::time::sleep(POLL).await;
        }
    });
}
