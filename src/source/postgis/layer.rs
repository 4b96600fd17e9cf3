//! A layer over a PostGIS table: point and bin queries through the GiST index (`&&` against
//! `ST_TileEnvelope`), bound parameters only, aggregation in SQL, and the layer's statistics.
//!
//! A table in any SRID is read as the same points a file would give: the query's area is
//! turned into an envelope in the table's own SRID without ever crossing the antimeridian
//! (see [`Frame`]), and every point is then checked in world units against the area, so an
//! envelope only has to hold the area's points, never to be exact.

use super::pyramid::{self, Pyramid};
use super::status::DbStatus;
use super::{pg_message, pool_message, DbError, Ident, TableName};
use crate::metrics::Metrics;
use crate::render::WorldPoint;
use crate::source::aggregate::{sort_bins, Bin, CellRange};
use crate::source::filter::{ColumnType, FilterDef, FilterValue};
use crate::source::{CountGrid, FilterValues, LayerInfo, PointQuery, PointSource, SourceError};
use crate::tile::{world_x_to_lon, world_y_to_lat, WorldBox, HALF_WORLD_M, MAX_LAT};
use async_trait::async_trait;
use deadpool_postgres::{Pool, PoolError, TimeoutType};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio_postgres::types::ToSql;
use tokio_postgres::GenericClient;

/// How a layer maps onto its table (from `import`'s registry or the config).
#[derive(Debug, Clone)]
pub struct TableLayout {
    pub table: TableName,
    pub geometry: Ident,
    pub weight: Option<Ident>,
    /// A column giving the points' order (imported tables have `seq`).
    pub seq: Option<Ident>,
    /// Shared with every request until the database gives the columns' types.
    pub filters: Arc<[FilterDef]>,
    pub attribution: Option<String>,
}

/// How a table's SRID relates to Web Mercator: it decides how a query's area (world units)
/// becomes an envelope the GiST index can answer in the table's own SRID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Frame {
    /// EPSG:3857: `ST_TileEnvelope` or a box in metres, as they are.
    WebMercator,
    /// Longitude and latitude in degrees (4326, 4269, any geographic SRID). A Web Mercator
    /// rectangle is exactly a lon/lat rectangle, so the envelope is built in degrees, clipped
    /// to the world: transforming a Mercator envelope that reaches past ±180° into degrees
    /// would wrap it around the antimeridian and select the wrong strip.
    Geographic,
    /// Any other (projected) SRID: the area, clipped to the table's extent, is densified and
    /// transformed. Outside a projection's area PROJ folds or fails, so an area is never
    /// carried beyond where the table's points are.
    Projected,
}

/// Envelopes in degrees are widened by this much so that no point on an area's edge is
/// missed by rounding (PROJ's Mercator and ours differ in the last bits); the exact test in
/// world units decides. 1e-9° is about 0.1 mm.
const DEGREES_SLACK: f64 = 1e-9;

/// What is learned from the database on first contact: the SRID and the filter types.
#[derive(Debug, Clone)]
struct Resolved {
    frame: Frame,
    /// Queries yielding x, y (world units), w, seq within a tile envelope ($1..$4: z, x, y,
    /// margin; Web Mercator tables only) or a box ($1..$4: metres for Web Mercator and
    /// projected tables, degrees for geographic ones), then one parameter per declared filter
    /// ($5...), then, for tables not in Web Mercator, the area in world units (x0, y0, x1,
    /// y1) that every point is checked against.
    inner_tile: String,
    inner_box: String,
    /// The whole table, no parameters (statistics).
    inner_all: String,
    /// The declared filters with their columns' types, shared by every request.
    filters: Arc<[FilterDef]>,
}

/// Statistics recomputed when the data version changes (count and bounds go to `info`).
struct Stats {
    version: u64,
    grid: Arc<CountGrid>,
    /// The points' bounds in world units (None: no points), which queries of a projected
    /// table are clipped to.
    bounds: Option<WorldBox>,
    /// The layer's bin pyramid, when one was built from this very version.
    pyramid: Option<Arc<Pyramid>>,
}

/// What one scan of a whole table tells: the count grid's cells, and the bounds (world
/// units) and number of its points.
pub struct TableStats {
    pub grid: CountGrid,
    /// None for an empty table.
    pub bounds: Option<WorldBox>,
}

/// Scans every point of `inner_all` (an [`inner_sql`] query without envelope) once.
pub async fn scan_stats(
    client: &impl GenericClient,
    inner_all: &str,
) -> Result<TableStats, tokio_postgres::Error> {
    scan_stats_with(client, inner_all, &[]).await
}

/// [`scan_stats`] of an inner query with parameters.
async fn scan_stats_with(
    client: &impl GenericClient,
    inner_all: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<TableStats, tokio_postgres::Error> {
    let cells = 1u32 << crate::source::grid::LEVEL;
    let sql = format!(
        "SELECT floor(x * {cells})::int8, floor(y * {cells})::int8, count(*)::int8, \
         min(x), min(y), max(x), max(y) FROM ({inner_all}) s GROUP BY 1, 2"
    );
    let rows = client.query(&sql, params).await?;
    let mut cells = Vec::with_capacity(rows.len());
    let (mut x0, mut y0, mut x1, mut y1) = (f64::MAX, f64::MAX, f64::MIN, f64::MIN);
    for row in &rows {
        let (cx, cy, n): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
        cells.push((
            CountGrid::clamp_cell(cx),
            CountGrid::clamp_cell(cy),
            n.max(0) as u64,
        ));
        x0 = x0.min(row.get(3));
        y0 = y0.min(row.get(4));
        x1 = x1.max(row.get(5));
        y1 = y1.max(row.get(6));
    }
    Ok(TableStats {
        grid: CountGrid::from_cells(cells),
        bounds: (!rows.is_empty()).then_some(WorldBox { x0, y0, x1, y1 }),
    })
}

/// The layout of a table `twine-heatmap import` created.
pub fn imported_layout(
    table: TableName,
    attribution: Option<String>,
) -> Result<TableLayout, DbError> {
    Ok(TableLayout {
        table,
        geometry: Ident::new("geom")?,
        weight: Some(Ident::new("weight")?),
        seq: Some(Ident::new("seq")?),
        filters: Arc::from([]),
        attribution,
    })
}

/// The query of all points of an imported table (geometry in EPSG:3857), for statistics.
pub fn imported_inner_all(table: &TableName) -> Result<String, DbError> {
    Ok(inner_sql(
        &imported_layout(table.clone(), None)?,
        3857,
        Frame::WebMercator,
        None,
        &[],
    ))
}

pub struct PostgisLayer {
    pool: Pool,
    /// Shared with the watcher and every other layer: each contact with the database
    /// reports to it, so `/health` turns `degraded` at the first failed request.
    status: Arc<DbStatus>,
    metrics: Arc<Metrics>,
    layout: TableLayout,
    resolved: tokio::sync::OnceCell<Resolved>,
    stats: tokio::sync::Mutex<Option<Arc<Stats>>>,
    info: Mutex<LayerInfo>,
    version: AtomicU64,
    /// Count grids of filtered points by (data version, canonical filter values): one scan
    /// of the matching rows per distinct filter, then reused.
    filtered_grids: Mutex<lru::LruCache<(u64, String), Arc<CountGrid>>>,
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
            pool,
            status,
            metrics,
            layout,
            resolved: tokio::sync::OnceCell::new(),
            stats: tokio::sync::Mutex::new(None),
            info: Mutex::new(info),
            version: AtomicU64::new(0),
            filtered_grids: Mutex::new(lru::LruCache::new(
                std::num::NonZeroUsize::MIN.saturating_add(FILTERED_GRIDS - 1),
            )),
        }
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

    /// Maps a database call's result, reporting the contact to the shared status: an answer
    /// means the database is there, a lost connection that it is not.
    fn checked<T, E: Into<DbError>>(&self, result: Result<T, E>) -> Result<T, SourceError> {
        match result {
            Ok(value) => {
                self.status.contact_ok();
                Ok(value)
            }
            Err(e) => Err(self.failed(e)),
        }
    }

    fn failed(&self, e: impl Into<DbError>) -> SourceError {
        let e = e.into();
        if lost_contact(&e) {
            self.status.contact_failed(&e.to_string());
        }
        db_error(e)
    }

    /// Learns the geometry's SRID and the filter columns' types, once.
    async fn resolved(&self) -> Result<&Resolved, SourceError> {
        self.resolved
            .get_or_try_init(|| async {
                let client = self.client().await?;
                self.checked(resolve(&client, &self.layout).await)
            })
            .await
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
        let (grid, bounds) = match &pyramid {
            Some(p) => (self.pyramid_grid(&client, p).await?, Some(p.bounds)),
            None => {
                let scanned = self.timed(scan_stats(&**client, &inner)).await?;
                (scanned.grid, scanned.bounds)
            }
        };
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
            bounds,
            pyramid: pyramid.map(Arc::new),
        });
        *guard = Some(stats.clone());
        Ok(stats)
    }

    /// The count grid from the pyramid's zoom 2, whose pixels are the grid's cells.
    async fn pyramid_grid(
        &self,
        client: &deadpool_postgres::Object,
        pyramid: &Pyramid,
    ) -> Result<CountGrid, SourceError> {
        let everything = CellRange {
            x0: i64::MIN / 4,
            x1: i64::MAX / 4,
            y0: i64::MIN / 4,
            y1: i64::MAX / 4,
        };
        let bins = self
            .pyramid_bins(client, pyramid, pyramid::GRID_ZOOM, &everything)
            .await?;
        Ok(CountGrid::from_cells(bins.iter().map(|b| {
            (
                CountGrid::clamp_cell(b.bx),
                CountGrid::clamp_cell(b.by),
                b.count,
            )
        })))
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
        Metrics::inc(&self.metrics.pyramid_queries);
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

    /// Runs one database call, counted and timed for `/metrics`.
    async fn timed<T>(
        &self,
        call: impl std::future::Future<Output = Result<T, tokio_postgres::Error>>,
    ) -> Result<T, SourceError> {
        let started = std::time::Instant::now();
        Metrics::inc(&self.metrics.db_queries);
        let result = call.await;
        self.metrics
            .db_query_seconds
            .observe(started.elapsed().as_secs_f64());
        self.checked(result)
    }

    /// Runs one query through the connection's statement cache: a layer sends the same few
    /// statements again and again, so each is parsed and planned once per connection.
    async fn timed_query(
        &self,
        client: &deadpool_postgres::Object,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>, SourceError> {
        self.timed(async {
            let statement = client.prepare_cached(sql).await?;
            client.query(&statement, params).await
        })
        .await
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
        if !q.filters.0.is_empty() {
            return Ok(None);
        }
        let pyramid = self.stats().await?.pyramid.clone();
        Ok(pyramid.and_then(|p| p.zoom_of(scale).map(|z| (p, z))))
    }

    /// The density reference for cells of `cell` world units (a power of two) from the
    /// current pyramid, without a scan: the heaviest pixel of the zoom whose pixels are those
    /// cells (recorded at build), or, for cells larger than zoom 0's pixels, blocks of zoom
    /// 0's bins. None without a current pyramid that knows.
    async fn pyramid_max_cell_weight(&self, cell: f64) -> Result<Option<f64>, SourceError> {
        let Some(pyramid) = self.stats().await?.pyramid.clone() else {
            return Ok(None);
        };
        // Pixels of zoom z are 2^-(8 + z) of the world.
        let zoom = -cell.log2() - 8.0;
        if zoom >= 0.0 {
            let recorded = pyramid
                .max_weights
                .as_ref()
                .and_then(|m| m.get(zoom as usize))
                .copied();
            return Ok(recorded.filter(|_| zoom <= f64::from(pyramid.max_zoom)));
        }
        let everything = CellRange {
            x0: i64::MIN / 4,
            x1: i64::MAX / 4,
            y0: i64::MIN / 4,
            y1: i64::MAX / 4,
        };
        let client = self.client().await?;
        let bins = self.pyramid_bins(&client, &pyramid, 0, &everything).await?;
        let k = (cell * 256.0).round() as i64;
        Ok(Some(crate::source::aggregate::max_block_weight(
            bins.iter().map(|b| (b.bx, b.by, b.weight)),
            k,
        )))
    }
}

fn params_ref(params: &[Box<dyn ToSql + Sync + Send>]) -> Vec<&(dyn ToSql + Sync)> {
    params
        .iter()
        .map(|p| p.as_ref() as &(dyn ToSql + Sync))
        .collect()
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
        let rows = self
            .timed_query(&client, &sql, &params_ref(&params))
            .await?;
        Ok(rows
            .iter()
            .map(|r| WorldPoint {
                x: r.get(0),
                y: r.get(1),
                w: r.get(2),
                seq: r.get::<_, i64>(3).clamp(0, i64::from(u32::MAX)) as u32,
            })
            .collect())
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
        let rows = self
            .timed_query(&client, &sql, &params_ref(&params))
            .await?;
        let mut bins: Vec<Bin> = rows
            .iter()
            .map(|r| Bin {
                bx: r.get(0),
                by: r.get(1),
                count: r.get::<_, i64>(2).max(0) as u64,
                weight: r.get(3),
                wx: r.get(4),
                wy: r.get(5),
            })
            .collect();
        sort_bins(&mut bins);
        Ok(bins)
    }

    async fn count_grid(&self) -> Result<Arc<CountGrid>, SourceError> {
        self.stats().await.map(|s| s.grid.clone())
    }

    async fn filtered_count_grid(
        &self,
        filters: &FilterValues,
    ) -> Result<Arc<CountGrid>, SourceError> {
        if filters.0.is_empty() {
            return self.count_grid().await;
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
        if let Some(grid) = cached {
            return Ok(grid);
        }
        // The whole world through the same box query every request uses, filters bound.
        let world = PointQuery {
            area: WorldBox::WORLD,
            tile: None,
            filters,
        };
        let (inner, params) = self.inner(&world).await?;
        let client = self.client().await?;
        let grid = Arc::new(
            self.timed(scan_stats_with(&**client, &inner, &params_ref(&params)))
                .await?
                .grid,
        );
        if let Ok(mut grids) = self.filtered_grids.lock() {
            grids.put(key, grid.clone());
        }
        Ok(grid)
    }

    async fn max_cell_weight(&self, cell: f64, filters: &FilterValues) -> Result<f64, SourceError> {
        if filters.0.is_empty() {
            if let Some(max) = self.pyramid_max_cell_weight(cell).await? {
                return Ok(max);
            }
        }
        // One scan of the points that pass the filters (the layer keeps the answer).
        let world = PointQuery {
            area: WorldBox::WORLD,
            tile: None,
            filters,
        };
        let (inner, mut params) = self.inner(&world).await?;
        params.push(Box::new(1.0 / cell));
        let n = params.len();
        // The same cells and the same weights (positive, finite) as the memory store counts.
        let sql = format!(
            "SELECT coalesce(max(s), 1)::float8 FROM (SELECT sum(w::float8) AS s FROM ({inner}) p \
             WHERE w > 0 AND w < 'Infinity'::float4 GROUP BY floor(x * ${n}), floor(y * ${n})) c"
        );
        let client = self.client().await?;
        let rows = self
            .timed_query(&client, &sql, &params_ref(&params))
            .await?;
        Ok(rows.first().map_or(1.0, |r| r.get(0)))
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

    fn filters(&self) -> Arc<[FilterDef]> {
        self.resolved
            .get()
            .map_or_else(|| self.layout.filters.clone(), |r| r.filters.clone())
    }
}

/// `area` ∩ `within`, edges included; None when they do not meet.
fn clip(area: &WorldBox, within: &WorldBox) -> Option<WorldBox> {
    let clipped = WorldBox {
        x0: area.x0.max(within.x0),
        y0: area.y0.max(within.y0),
        x1: area.x1.min(within.x1),
        y1: area.y1.min(within.y1),
    };
    // Written so that NaN gives None.
    (clipped.x0 <= clipped.x1 && clipped.y0 <= clipped.y1).then_some(clipped)
}

/// West, south, east, north in Web Mercator metres.
fn metres_envelope(area: &WorldBox) -> [f64; 4] {
    let (x0, y0) = crate::tile::world_to_metres(area.x0, area.y1);
    let (x1, y1) = crate::tile::world_to_metres(area.x1, area.y0);
    [x0, y0, x1, y1]
}

/// West, south, east, north in degrees of an area within the world, a little wider (see
/// [`DEGREES_SLACK`]) but never past ±180°. An envelope that reaches the world's north or
/// south edge (±85.0511°) reaches the pole: points beyond are drawn on that edge.
fn degrees_envelope(area: &WorldBox) -> [f64; 4] {
    let west = (world_x_to_lon(area.x0) - DEGREES_SLACK).max(-180.0);
    let east = (world_x_to_lon(area.x1) + DEGREES_SLACK).min(180.0);
    let north = world_y_to_lat(area.y0) + DEGREES_SLACK;
    let south = world_y_to_lat(area.y1) - DEGREES_SLACK;
    [
        west,
        if south <= -MAX_LAT { -90.0 } else { south },
        east,
        if north >= MAX_LAT { 90.0 } else { north },
    ]
}

/// Where the memory store puts a point beyond the north or south edge: y of ±[`MAX_LAT`]
/// after the same round trip through metres (0 and 1 - 2^-52, not 1). A geographic table's
/// such points get these very values, so that every area holds them or not as a file's.
fn edge_y() -> (f64, f64) {
    use crate::tile::{lat_to_world_y, metres_to_world, world_to_metres};
    let edge = |lat: f64| {
        let (mx, my) = world_to_metres(0.5, lat_to_world_y(lat));
        metres_to_world(mx, my).1
    };
    (edge(MAX_LAT), edge(-MAX_LAT))
}

/// Four bound values, or four NULLs.
fn option_array(values: Option<[f64; 4]>) -> [Option<f64>; 4] {
    values.map_or([None; 4], |v| v.map(Some))
}

/// The query of a table with geometry SRID `srid` yielding world units: points within
/// `envelope` (none: the whole table, for statistics) that pass the declared filters
/// (`$5...`) and, outside Web Mercator, lie in the area given after the filters.
fn inner_sql(
    layout: &TableLayout,
    srid: i32,
    frame: Frame,
    envelope: Option<&str>,
    filters: &[FilterDef],
) -> String {
    let geom = layout.geometry.quoted();
    let lat = MAX_LAT;
    let point = match frame {
        Frame::WebMercator => geom.clone(),
        // Latitudes beyond Web Mercator's square are moved to its edge before transforming,
        // as a file's are: PROJ maps the poles to a finite but meaningless y (and other PROJ
        // versions refuse them), never to the edge.
        Frame::Geographic => format!(
            "ST_Transform(CASE WHEN ST_Y({geom}) > {lat:?} THEN ST_SetSRID(ST_MakePoint(ST_X({geom}), {lat:?}), {srid}) \
             WHEN ST_Y({geom}) < -{lat:?} THEN ST_SetSRID(ST_MakePoint(ST_X({geom}), -{lat:?}), {srid}) \
             ELSE {geom} END, 3857)"
        ),
        Frame::Projected => format!("ST_Transform({geom}, 3857)"),
    };
    // A NULL weight says nothing, as a file's point without one: it weighs 1.
    let weight = layout.weight.as_ref().map_or("1::float4".to_string(), |w| {
        format!("coalesce({}::float4, 1::float4)", w.quoted())
    });
    let seq = layout.seq.as_ref().map_or("0::int8".to_string(), |s| {
        format!("coalesce({}::int8, 0::int8)", s.quoted())
    });
    let mut conditions = vec![format!("{geom} IS NOT NULL")];
    match (envelope, frame) {
        (Some(envelope), _) => {
            let envelope = match frame {
                Frame::WebMercator | Frame::Geographic => envelope.to_string(),
                // The transformed box must hold the image of the whole rectangle, whose
                // sides curve in the table's SRID. Transforming the corners only missed
                // 560 km of a 6,000 km box in LAEA Europe (3035); densified to 64
                // segments a side it misses at most 1/80,000th of the side (77 m), and a
                // 1/256th of the side (in Web Mercator metres, never shorter than the
                // table's metres or feet) is added. Points are then checked exactly.
                Frame::Projected => format!(
                    "ST_Expand(ST_Transform(ST_Segmentize({envelope}, \
                     greatest($3::float8 - $1::float8, $4::float8 - $2::float8, 1) / 64), {srid}), \
                     greatest($3::float8 - $1::float8, $4::float8 - $2::float8, 1) / 256)"
                ),
            };
            // The GiST index answers `&&` on the raw column.
            conditions.push(format!("{geom} && {envelope}"));
            for (i, def) in filters.iter().enumerate() {
                let cast = def.ty.map_or("text", ColumnType::cast);
                // "$n IS NULL OR column op $n": one statement serves any set of given filters.
                let n = 5 + i;
                conditions.push(format!(
                    "(${n}::{cast} IS NULL OR {} {} ${n}::{cast})",
                    def.column.quoted(),
                    def.op.sql()
                ));
            }
        }
        // The whole table: empty points have no coordinates to count (`&&` skips them).
        (None, Frame::WebMercator | Frame::Projected) => {
            conditions.push(format!("NOT ST_IsEmpty({geom})"));
        }
        // The whole world in degrees: longitudes past ±180° are not drawn (a file cannot
        // hold them), and neither are NaN, infinite or empty points.
        (None, Frame::Geographic) => {
            conditions.push(format!(
                "{geom} && ST_MakeEnvelope(-180, -90, 180, 90, {srid})"
            ));
        }
    }
    let half = HALF_WORLD_M;
    let size = 2.0 * HALF_WORLD_M;
    let table = layout.table.quoted();
    let conditions = conditions.join(" AND ");
    // World units exactly as tile::metres_to_world computes them, in float8.
    let mut y = format!("({half:?}::float8 - ST_Y(p)) / {size:?}::float8");
    let mut latitude = String::new();
    if frame == Frame::Geographic {
        let (north, south) = edge_y();
        y = format!(
            "CASE WHEN lat >= {lat:?} THEN {north:?}::float8 WHEN lat <= -{lat:?} THEN {south:?}::float8 ELSE {y} END"
        );
        latitude = format!(", ST_Y({geom}) AS lat");
    }
    // Outside Web Mercator, `OFFSET 0` keeps the planner from pushing the tests on x and y
    // below the transform, which would repeat it for each test (five times a row).
    let fence = if frame == Frame::WebMercator {
        ""
    } else {
        " OFFSET 0"
    };
    let points = format!(
        "SELECT (ST_X(p) + {half:?}::float8) / {size:?}::float8 AS x, {y} AS y, w, seq \
         FROM (SELECT {point} AS p{latitude}, {weight} AS w, {seq} AS seq \
         FROM {table} WHERE {conditions}{fence}) q"
    );
    if frame == Frame::WebMercator {
        return points;
    }
    // Transformed points are checked against the area in world units, as the memory store
    // checks its points: the envelope only has to hold them. y is moved onto the world's
    // edge when rounding (or a projected point beyond ±85.0511°) puts it past; NaN and
    // infinite coordinates (transforms of junk) are dropped.
    let area = match envelope {
        Some(_) => {
            let n = 5 + filters.len();
            [n, n + 1, n + 2, n + 3].map(|i| format!("${i}::float8"))
        }
        None => ["0", "0", "1", "1"].map(|v| format!("{v}::float8")),
    };
    format!(
        "SELECT x, y, w, seq FROM (SELECT x, least(greatest(y, 0::float8), 1::float8) AS y, w, seq \
         FROM ({points}) t WHERE abs(y) < 'Infinity'::float8) c \
         WHERE x >= {} AND x <= {} AND y >= {} AND y <= {}",
        area[0], area[2], area[1], area[3]
    )
}

async fn resolve(
    client: &tokio_postgres::Client,
    layout: &TableLayout,
) -> Result<Resolved, DbError> {
    let declared: i32 = client
        .query_opt(
            "SELECT srid FROM geometry_columns WHERE f_table_schema = $1 AND f_table_name = $2 AND f_geometry_column = $3",
            &[&layout.table.schema.as_str(), &layout.table.table.as_str(), &layout.geometry.as_str()],
        )
        .await?
        .map(|r| r.get(0))
        .ok_or_else(|| {
            DbError::Other(format!(
                "{}: no geometry column {:?} (see geometry_columns)",
                layout.table.key(),
                layout.geometry.as_str()
            ))
        })?;
    let srid = if declared > 0 {
        declared
    } else {
        // A column declared as plain `geometry` has no SRID of its own: its rows say.
        client
            .query_opt(
                &format!(
                    "SELECT ST_SRID({geom}) FROM {table} WHERE {geom} IS NOT NULL LIMIT 1",
                    geom = layout.geometry.quoted(),
                    table = layout.table.quoted()
                ),
                &[],
            )
            .await?
            .map_or(0, |r| r.get(0))
    };
    // Any SRID PostGIS knows; geographic ones are those in degrees of longitude and latitude.
    let geographic: Option<bool> = client
        .query_opt(
            "SELECT coalesce(proj4text ~ '\\+proj=(longlat|latlong)\\M' \
             OR srtext LIKE 'GEOGCS[%' OR srtext LIKE 'GEOGCRS[%', false) \
             FROM spatial_ref_sys WHERE srid = $1",
            &[&srid],
        )
        .await?
        .map(|r| r.get(0));
    let frame = match geographic {
        _ if srid == 3857 => Frame::WebMercator,
        Some(true) => Frame::Geographic,
        Some(false) => Frame::Projected,
        None if srid == 0 => {
            return Err(DbError::Other(format!(
                "{}.{}: the geometries have no SRID (the column declares none and its rows say \
                 0, or it has no rows yet); declare it, e.g. geometry(Point, 4326)",
                layout.table.key(),
                layout.geometry.as_str()
            )))
        }
        None => {
            return Err(DbError::Other(format!(
                "{}.{}: SRID {srid} is not in spatial_ref_sys, so PostGIS cannot transform it",
                layout.table.key(),
                layout.geometry.as_str()
            )))
        }
    };
    let mut filters = Vec::new();
    for def in layout.filters.iter() {
        let ty: Option<String> = client
            .query_opt(
                "SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a \
                 WHERE a.attrelid = to_regclass($1) AND a.attname = $2 AND NOT a.attisdropped",
                &[&layout.table.quoted(), &def.column.as_str()],
            )
            .await?
            .map(|r| r.get(0));
        let ty = ty.ok_or_else(|| {
            DbError::Other(format!(
                "{}: no column {:?}",
                layout.table.key(),
                def.column.as_str()
            ))
        })?;
        let ty = ColumnType::from_pg(&ty).ok_or_else(|| {
            DbError::Other(format!(
                "{}.{}: filters on type {ty} are not supported",
                layout.table.key(),
                def.column.as_str()
            ))
        })?;
        filters.push(FilterDef {
            ty: Some(ty),
            ..def.clone()
        });
    }
    let filters: Arc<[FilterDef]> = filters.into();
    // The WHERE of the filters is appended after the inner query's envelope test.
    let tile = "ST_TileEnvelope($1::int4, $2::int4, $3::int4, margin => $4::float8)";
    let bbox = match frame {
        Frame::Geographic => {
            format!("ST_MakeEnvelope($1::float8, $2::float8, $3::float8, $4::float8, {srid})")
        }
        Frame::WebMercator | Frame::Projected => {
            "ST_MakeEnvelope($1::float8, $2::float8, $3::float8, $4::float8, 3857)".to_string()
        }
    };
    Ok(Resolved {
        frame,
        inner_tile: inner_sql(layout, srid, frame, Some(tile), &filters),
        inner_box: inner_sql(layout, srid, frame, Some(&bbox), &filters),
        inner_all: inner_sql(layout, srid, frame, None, &filters),
        filters,
    })
}

/// Maps pool failures: no connection within the wait, or the database is down (503).
fn pool_error(e: PoolError) -> SourceError {
    SourceError::Unavailable(match e {
        PoolError::Timeout(_) => {
            "every database connection stayed busy past the pool's wait".to_string()
        }
        other => format!("cannot reach the database: {}", pool_message(&other)),
    })
}

/// Whether a failure means the database cannot be reached: no connection could be opened
/// (or none in time), or the connection broke or was shut down under the query. Not a pool
/// whose connections are all busy (the database answers, just not to us yet), a statement
/// timeout, a bad value or a missing table: the database answered those.
fn lost_contact(e: &DbError) -> bool {
    match e {
        DbError::Pool(PoolError::Timeout(TimeoutType::Wait)) => false,
        DbError::Pool(_) => true,
        DbError::Postgres(pg) => match pg.code() {
            // No SQLSTATE: the client's own failure. Only a closed connection or an I/O
            // error says the server is gone (not, say, a value that failed to encode).
            None => {
                pg.is_closed()
                    || std::error::Error::source(pg).is_some_and(|s| s.is::<std::io::Error>())
            }
            // Class 08 (connection exception); 57P01-57P03: the server is shutting down,
            // crashed, or is not accepting connections (also pg_terminate_backend).
            Some(code) => {
                code.code().starts_with("08") || matches!(code.code(), "57P01" | "57P02" | "57P03")
            }
        },
        _ => false,
    }
}

/// Maps query failures: cancelled by statement_timeout (504), bad filter value (400), or
/// the database went away (503).
fn db_error(e: impl Into<DbError>) -> SourceError {
    match e.into() {
        DbError::Postgres(pg) => {
            let code = pg.code().cloned();
            if code == Some(tokio_postgres::error::SqlState::QUERY_CANCELED) {
                SourceError::Timeout
            } else if code.as_ref().is_some_and(|c| c.code().starts_with("22")) {
                SourceError::BadFilter {
                    param: "filter".into(),
                    detail: pg_message(&pg),
                }
            } else {
                SourceError::Unavailable(format!("database error: {}", pg_message(&pg)))
            }
        }
        DbError::Pool(p) => pool_error(p),
        other => SourceError::Unavailable(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_pool_is_not_a_lost_database() {
        // All connections busy: the database answers others, so /health stays ok.
        assert!(!lost_contact(&DbError::Pool(PoolError::Timeout(
            TimeoutType::Wait
        ))));
        // No connection could be opened in time: it is not there.
        assert!(lost_contact(&DbError::Pool(PoolError::Timeout(
            TimeoutType::Create
        ))));
        assert!(lost_contact(&DbError::Pool(PoolError::Closed)));
        assert!(!lost_contact(&DbError::Other(
            "corrupt pyramid block".into()
        )));
    }
}
