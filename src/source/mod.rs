//! Point sources: where a layer's points come from (the embedded memory store; PostGIS later).
//!
//! `PointSource` is the boundary every source implements: "points within this world box".

pub mod aggregate;
pub mod load;
pub mod memory;

use crate::render::WorldPoint;
use crate::tile::WorldBox;
use async_trait::async_trait;

/// Failures of a point source, mapped to HTTP statuses in `crate::error`.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("the point source is unavailable: {0}")]
    Unavailable(String),
    #[error("the point query timed out")]
    Timeout,
}

/// What a layer tells clients about itself.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerInfo {
    /// West, south, east, north in degrees; the whole world for an empty layer.
    pub bounds: [f64; 4],
    pub count: u64,
    pub attribution: Option<String>,
}

/// A layer's points, queryable by area.
#[async_trait]
pub trait PointSource: Send + Sync {
    /// Every point inside `area` (edges included), in an order that is the same for every
    /// query, so order-dependent styles draw the same pixels in every tile.
    async fn points(&self, area: &WorldBox) -> Result<Vec<WorldPoint>, SourceError>;

    /// The largest total weight in any `cell` x `cell` square (world units) of the grid
    /// aligned to the world's origin: the density style's per-zoom reference.
    async fn max_cell_weight(&self, cell: f64) -> Result<f64, SourceError>;

    fn info(&self) -> LayerInfo;
}
