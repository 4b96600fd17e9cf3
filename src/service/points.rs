//! Raw points for client-side heatmaps: the points themselves up to a limit, else bins
//! aggregated in the source; as JSON, made off the I/O workers.

use super::ServiceError;
use crate::layer::Layer;
use crate::source::aggregate::{self, PointsAnswer};
use crate::source::{FilterValues, PointQuery};
use crate::tile::{TileCoord, WorldBox};
use actix_web::web;
use std::sync::Arc;

/// Points as they are up to `limit`; above it, bins of `pixel_scale` pixels per world unit
/// aggregated in the source (without fetching more than `limit + 1` rows first).
pub async fn points_or_bins(
    layer: &Layer,
    query: &PointQuery<'_>,
    limit: u32,
    pixel_scale: f64,
) -> Result<PointsAnswer, ServiceError> {
    let limit = limit as usize;
    let points = layer.source.points(query, Some(limit)).await?;
    if points.len() <= limit {
        return Ok(aggregate::answer_points(points));
    }
    let bins = layer.source.bins(query, pixel_scale).await?;
    Ok(aggregate::answer_bins(bins, limit, pixel_scale))
}

/// A checked raw-points request: [`PointQuery`]'s fields, owned, and the answer's limits.
pub struct PointsRequest {
    pub layer: Arc<Layer>,
    pub area: WorldBox,
    /// The tile and its margin, for the per-tile form.
    pub tile: Option<(TileCoord, f64)>,
    pub filters: FilterValues,
    pub limit: u32,
    /// Bins' pixels per world unit, when there are more points than `limit`.
    pub pixel_scale: f64,
}

/// [`points_or_bins`] reshaped by `shape` (the proof of concept's route gives its own form)
/// and written as JSON, all on the blocking pool. Selecting, binning and writing up to the
/// limit's points take tens of milliseconds of CPU; on an I/O worker they would hold up every
/// connection it serves, cached tiles included. The source's I/O runs in the same task,
/// driven by the worker's runtime (`Handle::block_on`).
pub async fn points_json<T, F>(request: PointsRequest, shape: F) -> Result<Vec<u8>, ServiceError>
where
    T: serde::Serialize,
    F: FnOnce(PointsAnswer) -> T + Send + 'static,
{
    let runtime = tokio::runtime::Handle::current();
    web::block(move || {
        runtime.block_on(async {
            let query = PointQuery {
                area: request.area,
                tile: request.tile,
                filters: &request.filters,
            };
            let answer =
                points_or_bins(&request.layer, &query, request.limit, request.pixel_scale).await?;
            serde_json::to_vec(&shape(answer))
                .map_err(|e| ServiceError::Render(format!("cannot write the points: {e}")))
        })
    })
    .await
    .map_err(|e| ServiceError::Render(format!("points task failed: {e}")))?
}
