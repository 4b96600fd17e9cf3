//! Point sources: where a layer's points come from (the embedded memory store or PostGIS).
//!
//! `PointSource` is the boundary every source implements: "points (or pixel bins with counts
//! and weight sums) within this world box".

pub mod aggregate;
pub mod attributes;
pub mod filter;
pub mod grid;
pub mod load;
pub mod memory;
pub mod postgis;

use crate::render::WorldPoint;
use crate::tile::{TileCoord, WorldBox};
use async_trait::async_trait;
use std::sync::Arc;

pub use aggregate::Bin;
pub use filter::{FilterDef, FilterValues};
pub use grid::CountGrid;

/// Failures of a point source; each transport maps them to its own answers (HTTP statuses).
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The database is down or every connection stayed busy past the pool's wait (503).
    #[error("the point source is unavailable: {0}")]
    Unavailable(String),
    /// A query ran past `statement_timeout` and was cancelled (504).
    #[error("the point query took too long and was cancelled")]
    Timeout,
    /// The layer's table cannot be drawn as configured (missing, not points, a column
    /// missing or of the wrong type): a fault of the server's configuration that retrying
    /// does not cure (500, no Retry-After). The message names the layer, table and column.
    #[error("{0}")]
    Misconfigured(String),
    /// A declared filter's value was refused by the database (400).
    #[error("invalid value for `{param}`: {detail}")]
    BadFilter { param: String, detail: String },
}

/// Layer names become URL path segments: 1 to 64 ASCII letters, digits, `_` or `-`.
pub fn valid_layer_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// What a layer tells clients about itself.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerInfo {
    /// West, south, east, north in degrees; the whole world for an empty layer.
    pub bounds: [f64; 4],
    pub count: u64,
    pub attribution: Option<String>,
}

/// Which points a request needs.
#[derive(Debug, Clone, Copy)]
pub struct PointQuery<'a> {
    pub area: WorldBox,
    /// The tile and its margin (as a fraction of the tile's size) when the area is a padded
    /// tile, so PostGIS can use `ST_TileEnvelope(z, x, y, margin => m)`.
    pub tile: Option<(TileCoord, f64)>,
    /// Values of the layer's declared filters from the query string.
    pub filters: &'a FilterValues,
}

/// A layer's points, queryable by area.
#[async_trait]
pub trait PointSource: Send + Sync {
    /// The points inside the query's area (edges included). With `limit`, at most
    /// `limit + 1` points are returned: more than `limit` means "there are more".
    async fn points(
        &self,
        q: &PointQuery<'_>,
        limit: Option<usize>,
    ) -> Result<Vec<WorldPoint>, SourceError>;

    /// The points of the square cells of the global grid with `scale` cells per world unit
    /// (`floor(x * scale)`) that the area touches ([`aggregate::CellRange`]): whole cells,
    /// never cut by the area's edges, sorted by (row, column).
    async fn bins(&self, q: &PointQuery<'_>, scale: f64) -> Result<Vec<Bin>, SourceError>;

    /// [`PointSource::bins`] for drawing, which places each bin at its cell's centre: their
    /// counts and weights are exact, but a source may put their position sums (`wx`, `wy`)
    /// at the cells' centres when that saves work.
    async fn drawn_bins(&self, q: &PointQuery<'_>, scale: f64) -> Result<Vec<Bin>, SourceError> {
        self.bins(q, scale).await
    }

    /// Point counts over the whole layer on a fixed coarse grid, for choosing aggregation by
    /// estimate (the same estimate for every source holding the same points).
    async fn count_grid(&self) -> Result<Arc<CountGrid>, SourceError>;

    /// The count grid of only the points that pass `filters` (not empty), so that a filtered
    /// request chooses bins exactly as the same points without the filter would. Sources
    /// without filters have nothing to narrow.
    async fn filtered_count_grid(
        &self,
        filters: &FilterValues,
    ) -> Result<Arc<CountGrid>, SourceError> {
        let _ = filters;
        self.count_grid().await
    }

    /// Whether the densest tile at `zoom` holds more than `aggregate_above` of the points
    /// that pass `filters`, when the source knows it without
    /// [`PointSource::filtered_count_grid`] (which is asked otherwise).
    async fn filtered_dense_from_counts(
        &self,
        zoom: f64,
        aggregate_above: u64,
        filters: &FilterValues,
    ) -> Result<Option<bool>, SourceError> {
        let _ = (zoom, aggregate_above, filters);
        Ok(None)
    }

    /// The largest total weight (of positive weights) in any `cell` x `cell` square (world
    /// units; a power of two: the layer's reference cell for the zoom) of the grid aligned to
    /// the world's origin, over the points that pass `filters`: the density style's
    /// per-zoom reference.
    async fn max_cell_weight(&self, cell: f64, filters: &FilterValues) -> Result<f64, SourceError>;

    fn info(&self) -> LayerInfo;

    /// Whether selecting points and bins runs on this process's CPU and memory (a memory
    /// store) rather than in a database: then a render's slot is taken before the selection.
    fn selects_in_process(&self) -> bool {
        false
    }

    /// Why the layer cannot be drawn as configured (`layer NAME: ...`), if it cannot: every
    /// request for it then gets that answer, cached tiles included.
    fn misconfigured(&self) -> Option<String> {
        None
    }

    /// Changes whenever the layer's points change (import, or a write to a declared table).
    fn data_version(&self) -> u64 {
        0
    }

    /// The time and category columns this layer declares, if any: requests may then filter
    /// on them (`from`, `to`, `category`).
    fn attribute_schema(&self) -> Option<&attributes::AttributeSchema> {
        None
    }

    /// The time extent and category values of a layer that declares them, for TileJSON.
    fn attribute_summary(&self) -> Option<attributes::AttributeSummary> {
        None
    }

    /// The filters this layer declares (query parameters bound to columns). Shared, not
    /// copied: every tile request reads them up to three times.
    fn filters(&self) -> std::sync::Arc<[FilterDef]> {
        static NONE: std::sync::LazyLock<std::sync::Arc<[FilterDef]>> =
            std::sync::LazyLock::new(|| std::sync::Arc::from(Vec::new()));
        NONE.clone()
    }
}
