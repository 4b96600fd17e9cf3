//! Raw points for client-side heatmaps: the points themselves up to a limit, else bins
//! aggregated in the source.

use super::ServiceError;
use crate::layer::Layer;
use crate::source::aggregate::{self, PointsAnswer};
use crate::source::PointQuery;

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
