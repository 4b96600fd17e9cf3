//! A layer over a PostGIS table: point and bin queries through the GiST index (`&&` against
//! an envelope in the table's SRID, see [`super::table_sql`]), bound parameters only,
//! aggregation in SQL, and the layer's statistics.

mod attributes;
mod calls;
mod time;

use super::check::{check_layout, Problem, ProblemState};
use super::pyramid::{self, Pyramid};
use super::reference::{self, CellWeight, CellWeights, FINE_SEARCH_ROW_BUDGET};
use super::status::DbStatus;
use super::table_sql::{
    clip, degrees_envelope, metres_envelope, option_array, params_ref, resolve, scan_stats,
    scan_stats_with, Frame, Resolved,
};
pub use super::table_sql::{imported_inner_all, imported_layout, TableLayout};
use super::time_pyramid::{self, TimePyramid};
use super::{lock, DbError, TableName};
use crate::metrics::Metrics;
use crate::render::WorldPoint;
use crate::source::aggregate::{sort_bins, Bin, CellRange};
use crate::source::attributes::{AttributeSchema, AttributeSummary};
use crate::source::filter::{FilterDef, FilterValue};
use crate::source::{CountGrid, FilterValues, LayerInfo, PointQuery, PointSource, SourceError};
use crate::tile::WorldBox;
use async_trait::async_trait;
use deadpool_postgres::Pool;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio_postgres::types::ToSql;

/// Statistics recomputed when the data version changes (count and bounds go to `info`).
struct Stats {
    version: u64,
    grid: Arc<CountGrid>,
    /// The grid cells' rows and weights, for density references without a pyramid.
    cells: Arc<CellWeights>,
    /// The points' bounds in world units (None: no points), which queries of a projected
    /// table are clipped to.
    bounds: Option<WorldBox>,
    /// The layer's bin pyramid, when one was built from this very version.
    pyramid: Option<Arc<Pyramid>>,
    /// Its time pyramid, likewise.
    time_pyramid: Option<Arc<TimePyramid>>,
}

pub struct PostgisLayer {
    pool: Pool,
    /// Shared with the watcher and every other layer: each contact with the database
    /// reports to it, so `/health` turns `degraded` at the first failed request.
    status: Arc<DbStatus>,
    metrics: Arc<Metrics>,
    layout: TableLayout,
    /// The layer's name, for messages, and whether the config declares it (a table the
    /// server is told about, not one `import` made): declared tables are checked.
    name: String,
    declared: bool,
    /// What the last check found wrong with a declared table; while set, every query of the
    /// layer fails with it instead of reaching the table.
    problem: ProblemState,
    /// Learned at first use; forgotten when a check finds the table changed for the worse,
    /// so that a fixed table is learned again.
    resolved: Mutex<Option<Arc<Resolved>>>,
    stats: tokio::sync::Mutex<Option<Arc<Stats>>>,
    info: Mutex<LayerInfo>,
    version: AtomicU64,
    /// Count grids and cell weights of filtered points by (data version, canonical filter
    /// values): one scan of the matching rows per distinct filter, then reused.
    filtered_grids: Mutex<lru::LruCache<(u64, String), Counted>>,
    /// The densest tile of each zoom 0..=8 by (time pyramid version, canonical window).
    window_densest: Mutex<lru::LruCache<(u64, String), time::Densest>>,
    /// The time and category columns requests may filter on, if any.
    schema: Option<AttributeSchema>,
    /// Their extent and values, for TileJSON: computed with the statistics.
    summary: Mutex<Option<AttributeSummary>>,
}

/// A count grid with its cells' weights, as one statistics scan gives them.
#[derive(Clone)]
struct Counted {
    grid: Arc<CountGrid>,
    cells: Arc<CellWeights>,
}

/// Filtered count grids kept per layer (each is at most 1024 x 1024 cells, usually far less).
const FILTERED_GRIDS: usize = 64;

impl PostgisLayer {
    pub fn new(
        pool: Pool,
        status: Arc<DbStatus>,
        layout: TableLayout,
        metrics: Arc<Metrics>,
    ) -> PostgisLayer {
        let info = LayerInfo {
            bounds: WorldBox::WORLD.to_lonlat(),
            count: 0,
            attribution: layout.attribution.clone(),
        };
        PostgisLayer {
            schema: layout.attributes.schema(),
            summary: Mutex::new(None),
            pool,
            status,
            metrics,
            layout,
            name: String::new(),
            declared: false,
            problem: ProblemState::default(),
            resolved: Mutex::new(None),
            stats: tokio::sync::Mutex::new(None),
            info: Mutex::new(info),
            version: AtomicU64::new(0),
            filtered_grids: Mutex::new(lru::LruCache::new(
                std::num::NonZeroUsize::MIN.saturating_add(FILTERED_GRIDS - 1),
            )),
            window_densest: Mutex::new(lru::LruCache::new(
                std::num::NonZeroUsize::MIN.saturating_add(time::WINDOW_DENSEST - 1),
            )),
        }
    }

    /// Names the layer (for messages) and says whether the config declares it.
    pub fn named(mut self, name: &str, declared: bool) -> PostgisLayer {
        self.name = name.to_string();
        self.declared = declared;
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn is_declared(&self) -> bool {
        self.declared
    }

    /// What the last check found wrong with the declared table, if anything.
    pub fn problem(&self) -> Option<Problem> {
        self.problem.get()
    }

    /// Checks a declared table (nothing to check for an imported one) and records what it
    /// found, logging a change. Only a failed contact is an error; a problem is a result.
    pub async fn check(&self) -> Result<Option<Problem>, DbError> {
        if !self.declared {
            return Ok(None);
        }
        let client = self.pool.get().await?;
        let found = check_layout(&**client, &self.layout).await?;
        if found.is_some() {
            *lock(&self.resolved) = None;
        }
        self.problem.record(&self.name, found.clone());
        Ok(found)
    }

    fn misconfigured(&self, problem: &impl std::fmt::Display) -> SourceError {
        SourceError::Misconfigured(format!("layer {}: {problem}", self.name))
    }

    pub fn table(&self) -> &TableName {
        &self.layout.table
    }

    /// Called by the watcher with the table's version from `twine.versions`.
    pub fn set_version(&self, version: u64) {
        self.version.store(version, Ordering::Release);
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, SourceError> {
        // A checkout alone is no contact (an idle connection is handed out unchecked), so
        // only its failure is reported.
        self.pool.get().await.map_err(|e| self.failed(e))
    }

    /// Learns the geometry's SRID and the filter columns' types at first use (again after a
    /// check found a problem); a misconfigured layer answers with its problem.
    async fn resolved(&self) -> Result<Arc<Resolved>, SourceError> {
        if let Some(problem) = self.problem.get() {
            return Err(self.misconfigured(&problem));
        }
        if let Some(resolved) = lock(&self.resolved).clone() {
            return Ok(resolved);
        }
        let client = self.client().await?;
        let resolved = match resolve(&client, &self.layout).await {
            Ok(r) => Arc::new(r),
            // What the catalog refused (a missing column, an SRID PostGIS does not know...)
            // is the declaration's fault, not the database's.
            Err(DbError::Other(problem)) if self.declared => {
                return Err(self.misconfigured(&problem))
            }
            Err(e) => return Err(self.failed(e)),
        };
        self.status.contact_ok();
        *lock(&self.resolved) = Some(resolved.clone());
        Ok(resolved)
    }

    /// The inner query and its parameters for `q`.
    async fn inner(
        &self,
        q: &PointQuery<'_>,
    ) -> Result<(String, Vec<Box<dyn ToSql + Sync + Send>>), SourceError> {
        let resolved = self.resolved().await?;
        let mut params: Vec<Box<dyn ToSql + Sync + Send>> = Vec::new();
        // What the memory store reads: the area clipped to the world (a padded tile reaches
        // past it; points beyond one edge are asked for separately, shifted, by the caller).
        let world = clip(&q.area, &WorldBox::WORLD);
        let base = match (resolved.frame, q.tile) {
            (Frame::WebMercator, Some((tile, margin))) => {
                params.push(Box::new(i32::from(tile.z)));
                params.push(Box::new(tile.x as i32));
                params.push(Box::new(tile.y as i32));
                params.push(Box::new(margin));
                &resolved.inner_tile
            }
            (Frame::WebMercator, None) => {
                for v in metres_envelope(&q.area) {
                    params.push(Box::new(v));
                }
                &resolved.inner_box
            }
            // The tile, if any, is ignored: its margin area is `q.area`, and an envelope
            // built from the area never needs transforming across the antimeridian.
            (Frame::Geographic, _) => {
                // None (an area outside the world) binds NULLs: `geom && NULL` selects nothing.
                for v in option_array(world.map(|a| degrees_envelope(&a))) {
                    params.push(Box::new(v));
                }
                &resolved.inner_box
            }
            (Frame::Projected, _) => {
                // Only where the table has points: beyond a projection's area, transforming
                // an envelope gives garbage or an error (see docs/srid.md).
                let bounds = self.stats().await?.bounds;
                let near = world.and_then(|a| bounds.and_then(|b| clip(&a, &b)));
                for v in option_array(near.map(|a| metres_envelope(&a))) {
                    params.push(Box::new(v));
                }
                &resolved.inner_box
            }
        };
        for (i, def) in resolved.filters.iter().enumerate() {
            let value = q.filters.0.iter().find(|(k, _)| *k == i).map(|(_, v)| v);
            params.push(match (value, def.ty) {
                (Some(v), _) => v.to_boxed_sql(),
                (None, Some(ty)) => FilterValue::null_of(ty),
                (None, None) => Box::new(Option::<String>::None),
            });
        }
        params.extend(self.attribute_params(&resolved, q.filters));
        if resolved.frame != Frame::WebMercator {
            // The exact test, in world units, as the memory store makes it.
            let area = world.unwrap_or(q.area);
            for v in [area.x0, area.y0, area.x1, area.y1] {
                params.push(Box::new(v));
            }
        }
        Ok((base.clone(), params))
    }

    /// Count grid, exact bounds and count, recomputed when the data changed: from the
    /// layer's pyramid when it was built from the current version, else in one scan.
    async fn stats(&self) -> Result<Arc<Stats>, SourceError> {
        let version = self.version.load(Ordering::Acquire);
        let mut guard = self.stats.lock().await;
        if let Some(s) = guard.as_ref().filter(|s| s.version == version) {
            return Ok(s.clone());
        }
        // Resolved first: it may need a connection of its own, and with a pool of one the
        // connection taken below would never come back to it.
        let inner = self.resolved().await?.inner_all.clone();
        let client = self.client().await?;
        let pyramid = self.checked(pyramid::find(&**client, &self.layout.table).await)?;
        if let Some(p) = pyramid.as_ref().filter(|p| p.version != version) {
            tracing::warn!(
                table = %self.layout.table.key(),
                pyramid_version = p.version,
                data_version = version,
                "the bin pyramid is older than the table's data: dense tiles are summed from \
                 the points until `twine-heatmap pyramid` rebuilds it"
            );
        }
        let pyramid = pyramid.filter(|p| p.version == version && version > 0);
        let time_pyramid = self
            .checked(time_pyramid::find(&**client, &self.layout.table).await)?
            .filter(|p| p.version == version && version > 0);
        let (grid, cells, bounds) = match &pyramid {
            Some(p) => {
                let (grid, cells) = self.pyramid_grid(&client, p).await?;
                (grid, cells, Some(p.bounds))
            }
            None => {
                let scanned = self.timed(scan_stats(&**client, &inner)).await?;
                (scanned.grid, scanned.cells, scanned.bounds)
            }
        };
        self.refresh_summary(&client).await?;
        if let Some(p) = &pyramid {
            tracing::debug!(table = %self.layout.table.key(), max_zoom = p.max_zoom, "using the bin pyramid");
        }
        let info = LayerInfo {
            bounds: bounds.unwrap_or(WorldBox::WORLD).to_lonlat(),
            count: grid.total(),
            attribution: self.layout.attribution.clone(),
        };
        if let Ok(mut shared) = self.info.lock() {
            *shared = info;
        }
        let stats = Arc::new(Stats {
            version,
            grid: Arc::new(grid),
            cells: Arc::new(cells),
            bounds,
            pyramid: pyramid.map(Arc::new),
            time_pyramid: time_pyramid.map(Arc::new),
        });
        *guard = Some(stats.clone());
        Ok(stats)
    }

    /// The count grid and cell weights from the pyramid's zoom 2, whose pixels are the grid's
    /// cells.
    async fn pyramid_grid(
        &self,
        client: &deadpool_postgres::Object,
        pyramid: &Pyramid,
    ) -> Result<(CountGrid, CellWeights), SourceError> {
        let bins = self
            .pyramid_bins(client, pyramid, pyramid::GRID_ZOOM, &CellRange::EVERYTHING)
            .await?;
        let cells: Vec<CellWeight> = bins
            .iter()
            .map(|b| CellWeight {
                cx: b.bx,
                cy: b.by,
                rows: b.count,
                weight: b.weight,
            })
            .collect();
        let grid = CountGrid::from_cells(cells.iter().map(|c| {
            (
                CountGrid::clamp_cell(c.cx),
                CountGrid::clamp_cell(c.cy),
                c.rows,
            )
        }));
        Ok((grid, CellWeights::new(cells)))
    }

    /// The bins of `cells` at `zoom`, read from the pyramid's blocks.
    async fn pyramid_bins(
        &self,
        client: &deadpool_postgres::Object,
        pyramid: &Pyramid,
        zoom: u8,
        cells: &CellRange,
    ) -> Result<Vec<Bin>, SourceError> {
        let [by0, by1, bx0, bx1] = pyramid::block_params(cells);
        let zoom = i16::from(zoom);
        let rows = self
            .timed_query(
                client,
                &pyramid.blocks_sql,
                &[&zoom, &by0, &by1, &bx0, &bx1],
            )
            .await?;
        self.metrics
            .pyramid_queries
            .with_label_values(&[self.name.as_str()])
            .inc();
        let mut bins = Vec::new();
        for row in &rows {
            pyramid::decode_block(
                row.get(0),
                row.get(1),
                row.get(2),
                Some(row.get(3)),
                cells,
                &mut bins,
            )
            .map_err(|e| SourceError::Unavailable(format!("{}: {e}", pyramid.bins.key())))?;
        }
        sort_bins(&mut bins);
        Ok(bins)
    }

    /// Refreshes the statistics if stale (the watcher calls it, so `/layers` is current).
    pub async fn refresh(&self) -> Result<(), SourceError> {
        self.stats().await.map(|_| ())
    }

    /// The pyramid zoom that answers `bins(q, scale)`, if the layer has a current pyramid
    /// with that zoom and no filter narrows the points (the pyramid holds all of them).
    async fn pyramid_for(
        &self,
        q: &PointQuery<'_>,
        scale: f64,
    ) -> Result<Option<(Arc<Pyramid>, u8)>, SourceError> {
        if !q.filters.is_empty() {
            return Ok(None);
        }
        let pyramid = self.stats().await?.pyramid.clone();
        Ok(pyramid.and_then(|p| p.zoom_of(scale).map(|z| (p, z))))
    }

    /// The count grid and cell weights of the points that pass `filters`: the layer's own
    /// statistics without filters, else one scan of the matching rows per distinct filter
    /// values and data version, then remembered.
    async fn counted(&self, filters: &FilterValues) -> Result<Counted, SourceError> {
        if filters.is_empty() {
            let stats = self.stats().await?;
            return Ok(Counted {
                grid: stats.grid.clone(),
                cells: stats.cells.clone(),
            });
        }
        let key = (
            self.version.load(Ordering::Acquire),
            filters.canonical(&self.filters()),
        );
        let cached = self
            .filtered_grids
            .lock()
            .ok()
            .and_then(|mut grids| grids.get(&key).cloned());
        if let Some(counted) = cached {
            return Ok(counted);
        }
        // The whole world through the same box query every request uses, filters bound.
        let world = PointQuery {
            area: WorldBox::WORLD,
            tile: None,
            filters,
        };
        let (inner, params) = self.inner(&world).await?;
        let client = self.client().await?;
        let scanned = self
            .timed(scan_stats_with(&**client, &inner, &params_ref(&params)))
            .await?;
        let counted = Counted {
            grid: Arc::new(scanned.grid),
            cells: Arc::new(scanned.cells),
        };
        if let Ok(mut grids) = self.filtered_grids.lock() {
            grids.put(key, counted.clone());
        }
        Ok(counted)
    }

    /// The heaviest cell of `cell` world units (finer than the count grid's) inside one grid
    /// cell, from that cell's points (those that pass `filters`): one index-backed query.
    async fn fine_max_in(
        &self,
        cell: f64,
        grid_cell: CellWeight,
        filters: &FilterValues,
    ) -> Result<f64, SourceError> {
        let side = CellWeights::grid_cell();
        // Padded a little, so a point on the cell's edge is not lost to a transform's
        // rounding; the cell test below keeps exactly the cell's own points.
        let pad = side / 16.0;
        let area = WorldBox {
            x0: grid_cell.cx as f64 * side - pad,
            y0: grid_cell.cy as f64 * side - pad,
            x1: (grid_cell.cx + 1) as f64 * side + pad,
            y1: (grid_cell.cy + 1) as f64 * side + pad,
        };
        let query = PointQuery {
            area,
            tile: None,
            filters,
        };
        let (inner, mut params) = self.inner(&query).await?;
        params.push(Box::new(1.0 / cell));
        let n = params.len();
        params.push(Box::new(1.0 / side));
        params.push(Box::new(grid_cell.cx));
        params.push(Box::new(grid_cell.cy));
        // The same cells and the same weights (positive, finite) as the memory store counts,
        // and only the grid cell's own points, as the statistics scan placed them.
        let sql = format!(
            "SELECT coalesce(max(s), 0)::float8 FROM (SELECT sum(w::float8) AS s FROM ({inner}) p \
             WHERE w > 0 AND w < 'Infinity'::float4 \
             AND floor(x * ${g})::int8 = ${cx} AND floor(y * ${g})::int8 = ${cy} \
             GROUP BY floor(x * ${n}), floor(y * ${n})) c",
            g = n + 1,
            cx = n + 2,
            cy = n + 3,
        );
        let client = self.client().await?;
        self.metrics.reference_queries.inc();
        let rows = self
            .timed_query(&client, &sql, &params_ref(&params))
            .await?;
        Ok(rows.first().map_or(0.0, |r| r.get(0)))
    }

    /// The density reference for cells of `cell` world units (a power of two) from the
    /// current pyramid, without a scan: the heaviest pixel of the zoom whose pixels are those
    /// cells (recorded at build). None without a current pyramid that knows.
    async fn pyramid_max_cell_weight(&self, cell: f64) -> Result<Option<f64>, SourceError> {
        let Some(pyramid) = self.stats().await?.pyramid.clone() else {
            return Ok(None);
        };
        // Pixels of zoom z are 2^-(8 + z) of the world. Cells larger than zoom 0's pixels are
        // blocks of the count grid's cells, whose weights the statistics already hold (read
        // from this pyramid's zoom 2): `max_cell_weight` sums them without a query.
        let zoom = -cell.log2() - 8.0;
        if zoom < 0.0 {
            return Ok(None);
        }
        let recorded = pyramid
            .max_weights
            .as_ref()
            .and_then(|m| m.get(zoom as usize))
            .copied();
        Ok(recorded.filter(|_| zoom <= f64::from(pyramid.max_zoom)))
    }
}

#[async_trait]
impl PointSource for PostgisLayer {
    async fn points(
        &self,
        q: &PointQuery<'_>,
        limit: Option<usize>,
    ) -> Result<Vec<WorldPoint>, SourceError> {
        let (inner, mut params) = self.inner(q).await?;
        let mut sql = format!("SELECT x, y, w, seq FROM ({inner}) s");
        if let Some(limit) = limit {
            params.push(Box::new(limit.saturating_add(1) as i64));
            sql.push_str(&format!(" LIMIT ${}", params.len()));
        }
        let client = self.client().await?;
        self.timed_rows(&client, &sql, &params_ref(&params), |r| WorldPoint {
            x: r.get(0),
            y: r.get(1),
            w: r.get(2),
            seq: r.get::<_, i64>(3).clamp(0, i64::from(u32::MAX)) as u32,
        })
        .await
    }

    async fn bins(&self, q: &PointQuery<'_>, scale: f64) -> Result<Vec<Bin>, SourceError> {
        let cells = CellRange::of(&q.area, scale);
        if let Some((pyramid, zoom)) = self.pyramid_for(q, scale).await? {
            let client = self.client().await?;
            return self.pyramid_bins(&client, &pyramid, zoom, &cells).await;
        }
        // Every point of every touched cell: the query reaches one cell past the range, and
        // the range itself is enforced on the computed cells.
        let grown = PointQuery {
            area: cells.query_area(scale),
            tile: q.tile.map(|(t, margin)| {
                let cell_of_tile = f64::from(1u32 << t.z.min(31)) / scale;
                (t, margin + cell_of_tile)
            }),
            filters: q.filters,
        };
        let (inner, mut params) = self.inner(&grown).await?;
        params.push(Box::new(scale));
        let n = params.len();
        for v in [cells.x0, cells.x1, cells.y0, cells.y1] {
            params.push(Box::new(v));
        }
        // floor(x * scale) in float8, exactly as the memory store computes it.
        let sql = format!(
            "SELECT bx, by, count(*)::int8, sum(w::float8), sum(w::float8 * x), sum(w::float8 * y) \
             FROM (SELECT floor(x * ${n})::int8 AS bx, floor(y * ${n})::int8 AS by, x, y, w FROM ({inner}) s) b \
             WHERE bx >= ${} AND bx < ${} AND by >= ${} AND by < ${} \
             GROUP BY bx, by",
            n + 1,
            n + 2,
            n + 3,
            n + 4,
        );
        let client = self.client().await?;
        let mut bins = self
            .timed_rows(&client, &sql, &params_ref(&params), |r| Bin {
                bx: r.get(0),
                by: r.get(1),
                count: r.get::<_, i64>(2).max(0) as u64,
                weight: r.get(3),
                wx: r.get(4),
                wy: r.get(5),
            })
            .await?;
        sort_bins(&mut bins);
        Ok(bins)
    }

    async fn drawn_bins(&self, q: &PointQuery<'_>, scale: f64) -> Result<Vec<Bin>, SourceError> {
        if let Some(bins) = self.window_bins(q, scale).await? {
            return Ok(bins);
        }
        self.bins(q, scale).await
    }

    async fn count_grid(&self) -> Result<Arc<CountGrid>, SourceError> {
        self.stats().await.map(|s| s.grid.clone())
    }

    async fn filtered_dense_from_counts(
        &self,
        zoom: f64,
        aggregate_above: u64,
        filters: &FilterValues,
    ) -> Result<Option<bool>, SourceError> {
        self.window_dense(zoom, aggregate_above, filters).await
    }

    async fn filtered_count_grid(
        &self,
        filters: &FilterValues,
    ) -> Result<Arc<CountGrid>, SourceError> {
        Ok(self.counted(filters).await?.grid)
    }

    async fn max_cell_weight(&self, cell: f64, filters: &FilterValues) -> Result<f64, SourceError> {
        if filters.is_empty() {
            if let Some(max) = self.pyramid_max_cell_weight(cell).await? {
                return Ok(max);
            }
        }
        let cells = self.counted(filters).await?.cells;
        if let Some(max) = cells.block_max(cell) {
            return Ok(max);
        }
        let search = reference::search_fine(&cells, FINE_SEARCH_ROW_BUDGET, |grid_cell| {
            self.fine_max_in(cell, grid_cell, filters)
        })
        .await?;
        if !search.exact {
            tracing::info!(
                table = %self.layout.table.key(),
                cell,
                grid_cells = search.cells,
                rows = search.rows,
                max = search.max,
                "density reference: row budget reached, using the heaviest cell found in the \
                 densest regions (a pyramid gives the exact one)"
            );
        }
        Ok(search.max)
    }

    fn info(&self) -> LayerInfo {
        self.info
            .lock()
            .map(|i| i.clone())
            .unwrap_or_else(|e| e.into_inner().clone())
    }

    fn data_version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    fn misconfigured(&self) -> Option<String> {
        self.problem
            .get()
            .map(|p| format!("layer {}: {p}", self.name))
    }

    fn attribute_schema(&self) -> Option<&AttributeSchema> {
        self.schema.as_ref()
    }

    fn attribute_summary(&self) -> Option<AttributeSummary> {
        self.schema.as_ref()?;
        lock(&self.summary).clone()
    }

    fn filters(&self) -> Arc<[FilterDef]> {
        lock(&self.resolved)
            .as_ref()
            .map_or_else(|| self.layout.filters.clone(), |r| r.filters.clone())
    }
}
