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
use std::sync::OnceLock;
use tokio::sync::Semaphore;

/// Renders that may run at once: one per core. Renders are CPU-bound, so more at once would
/// not finish sooner, and each holds its points and buffers meanwhile: unbounded, a flood of
/// distinct tiles ran one render (and one selection of up to millions of points) per
/// connection, and the process grew without end past its cache budget
/// (benches/key-explosion.sh).
fn render_slots() -> &'static Semaphore {
    static SLOTS: OnceLock<Semaphore> = OnceLock::new();
    SLOTS.get_or_init(|| {
        Semaphore::new(std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get))
    })
}

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
    // Held until the image is encoded. Taken before a selection that runs here (it can hold
    // millions of points); after one that runs in the database, whose waits must not keep
    // other renders from the CPU. Never closed, so acquiring cannot fail.
    let slot = || async {
        render_slots()
            .acquire()
            .await
            .map_err(|e| ServiceError::Render(e.to_string()))
    };
    let early_slot = if layer.source.selects_in_process() {
        Some(slot().await?)
    } else {
        None
    };
    let points = layer.render_input(&vp, &style, tile, filters).await?;
    let _slot = match early_slot {
        Some(held) => held,
        None => slot().await?,
    };
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
