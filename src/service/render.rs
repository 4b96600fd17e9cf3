//! Drawing one image: the points (or bins) within the style's reach, the render on the
//! blocking pool, and the PNG, with shared blank tiles for empty ones.

use super::ServiceError;
use crate::layer::Layer;
use crate::metrics::Metrics;
use crate::render::{png, Viewport};
use crate::source::FilterValues;
use crate::style::StyleSpec;
use crate::tile::TileCoord;
use bytes::Bytes;

/// Queries the points within the style's reach of `vp`, renders, and encodes.
pub async fn render_png(
    layer: &Layer,
    vp: Viewport,
    spec: &StyleSpec,
    tile: Option<TileCoord>,
    filters: &FilterValues,
    metrics: &Metrics,
) -> Result<Bytes, ServiceError> {
    metrics.tiles_rendered.inc();
    let style = spec.style.resolve(layer, &vp, filters).await?;
    let points = layer.render_input(&vp, &style, tile, filters).await?;
    if points.is_empty() {
        return Ok(empty(&vp));
    }
    let ramp = spec.ramp.clone();
    // Rendering is CPU-bound (milliseconds for dense tiles): keep it off the I/O workers.
    // The blocking thread does not inherit the request's span: carry it over.
    let span = tracing::Span::current();
    let encoded = tokio::task::spawn_blocking(move || {
        let _in_span = span.enter();
        let started = std::time::Instant::now();
        let img = points.render(&vp, &style, &ramp);
        let blank = img.is_blank();
        let png = if blank {
            Ok(None)
        } else {
            png::encode_indexed(&img).map(Some)
        };
        tracing::debug!(
            marks = points.marks().len(),
            blank,
            ms = started.elapsed().as_secs_f64() * 1e3,
            "rendered"
        );
        png
    })
    .await
    .map_err(|e| ServiceError::Render(format!("render task failed: {e}")))?
    .map_err(|e| ServiceError::Render(e.to_string()))?;
    Ok(match encoded {
        Some(mut bytes) => {
            // Bytes keeps a Vec's whole capacity, and the encoder reserves generously;
            // cached tiles must hold what the cache budget counts.
            bytes.shrink_to_fit();
            Bytes::from(bytes)
        }
        None => empty(&vp),
    })
}

/// The shared empty tile for tile sizes; overlays of other sizes encode their own.
fn empty(vp: &Viewport) -> Bytes {
    if vp.width == vp.height && (vp.width == 256 || vp.width == 512) {
        Bytes::from_static(png::empty_png(vp.width))
    } else {
        Bytes::from(png::encode_empty(vp.width, vp.height))
    }
}
