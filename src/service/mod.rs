//! The tile service: a typed tile or overlay request in; the PNG, its ETag and where it came
//! from out (and raw points for client-side heatmaps). No HTTP here: the routes, `seed` and
//! any other output share it.

pub mod points;
pub mod render;

use crate::cache::key::TileKey;
use crate::cache::{CacheError, CachedTile, Origin, TileCache};
use crate::layer::Layer;
use crate::metrics::Metrics;
use crate::source::{FilterValues, SourceError};
use crate::style::StyleSpec;
use crate::tile::{overlay_viewport, TileCoord, WorldBox};
use std::sync::Arc;
use tracing::Instrument;

pub use points::{points_json, points_or_bins, PointsRequest};
pub use render::render_png;

/// Why the service could not answer.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The layer's point source failed.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// Drawing or encoding the image failed: a fault of the server, not of the request.
    #[error("{0}")]
    Render(String),
    /// The cache could not read or store the tile.
    #[error(transparent)]
    Cache(#[from] CacheError),
}

/// One tile of a layer, checked, with its cache key.
pub struct TileRequest {
    pub layer: Arc<Layer>,
    pub coord: TileCoord,
    /// Pixels per CSS pixel: 1 for 256-pixel tiles, 2 for 512.
    pub ratio: u32,
    pub style: StyleSpec,
    pub filters: FilterValues,
    /// Made once per request: every tile request needs it, memory hits included.
    key: TileKey,
}

impl TileRequest {
    pub fn new(
        layer: Arc<Layer>,
        coord: TileCoord,
        ratio: u32,
        style: StyleSpec,
        filters: FilterValues,
    ) -> TileRequest {
        let key = tile_key(&layer, &style, &filters, ratio, coord);
        TileRequest {
            layer,
            coord,
            ratio,
            style,
            filters,
            key,
        }
    }

    pub fn key(&self) -> &TileKey {
        &self.key
    }
}

/// The cache key of a tile: the layer and its data version, the normalized style and
/// filters, the pixel ratio and the address (`seed` uses it too, so seeded tiles are hits).
pub fn tile_key(
    layer: &Layer,
    spec: &StyleSpec,
    filters: &FilterValues,
    ratio: u32,
    coord: TileCoord,
) -> TileKey {
    TileKey {
        layer: layer.name.clone(),
        version: layer.source.data_version(),
        style: spec.key_style(&filters.canonical(&layer.source.filters())),
        ratio: ratio as u8,
        z: coord.z,
        x: coord.x,
        y: coord.y,
    }
}

/// An image of a layer over any box at any size (not cached).
pub struct OverlayRequest {
    pub layer: Arc<Layer>,
    pub area: WorldBox,
    pub width: u32,
    pub height: u32,
    pub style: StyleSpec,
    pub filters: FilterValues,
}

/// A tile or overlay: its PNG and strong ETag, and which tier answered.
pub struct Answer {
    pub tile: CachedTile,
    pub origin: Origin,
}

/// The tile pipeline over the shared cache: memory, then disk or a render (once for all
/// concurrent requests of a tile).
#[derive(Clone, Copy)]
pub struct TileService<'a> {
    pub cache: &'a TileCache,
    pub metrics: &'a Metrics,
}

impl<'a> TileService<'a> {
    pub fn new(cache: &'a TileCache, metrics: &'a Metrics) -> TileService<'a> {
        TileService { cache, metrics }
    }

    /// The tile when the memory tier holds it: the fast path, which logs nothing.
    pub fn memory_hit(&self, request: &TileRequest) -> Option<Answer> {
        let tile = self.cache.memory_hit(&request.key, self.metrics)?;
        Some(Answer {
            tile,
            origin: Origin::Memory,
        })
    }

    /// The tile from memory, else from disk, else rendered and stored in both tiers.
    pub async fn tile(&self, request: &TileRequest) -> Result<Answer, ServiceError> {
        if let Some(answer) = self.memory_hit(request) {
            return Ok(answer);
        }
        // Everything logged while the tile is looked up on disk, queried and drawn carries
        // the tile's address (not made for memory hits, which log nothing).
        let (layer, coord, ratio) = (&request.layer, request.coord, request.ratio);
        let span = tracing::info_span!(
            "tile",
            layer = %layer.name,
            z = coord.z,
            x = coord.x,
            y = coord.y,
            ratio
        );
        // Boxed: the disk and render path's future is large, and the web server boxes and
        // moves the handler's whole future for every request, memory hits included.
        let (tile, origin) = Box::pin(
            self.cache
                .get_missing(request.key.clone(), self.metrics, || self.render(request))
                .instrument(span),
        )
        .await?;
        Ok(Answer { tile, origin })
    }

    /// Renders the tile into the disk tier unless a whole copy is there already, and waits
    /// for the write: `seed` fills the disk ahead of requests this way. The memory tier is
    /// neither read nor filled (a seed is a separate process from the server that will
    /// serve the tiles), and neither is the single-flight map. `None` when the disk already
    /// held the tile. `pace` is awaited before rendering (and only then): `seed --max-rate`
    /// limits renders, not the quick skips of tiles already on disk.
    pub async fn fill_disk<P, Fut>(
        &self,
        request: &TileRequest,
        pace: P,
    ) -> Result<Option<Answer>, ServiceError>
    where
        P: FnOnce() -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        if self.cache.disk.is_none() {
            return Err(CacheError::NoDiskTier.into());
        }
        if self.cache.on_disk(&request.key).await? {
            return Ok(None);
        }
        pace().await;
        let png = self.render(request).await?;
        let tile = CachedTile::new(png);
        self.cache.store_on_disk(&request.key, &tile).await?;
        Ok(Some(Answer {
            tile,
            origin: Origin::Rendered,
        }))
    }

    /// Draws the tile, without the cache.
    async fn render(&self, request: &TileRequest) -> Result<bytes::Bytes, ServiceError> {
        let coord = request.coord;
        render_png(
            &request.layer,
            coord.viewport(request.ratio),
            &request.style,
            Some(coord),
            &request.filters,
            self.metrics,
        )
        .await
    }

    /// The overlay, rendered for this request: any box at any size is not worth caching,
    /// but it still carries an ETag so clients can revalidate.
    pub async fn overlay(&self, request: &OverlayRequest) -> Result<Answer, ServiceError> {
        let (layer, width, height) = (&request.layer, request.width, request.height);
        let vp = overlay_viewport(&request.area, width, height);
        let span = tracing::info_span!("overlay", layer = %layer.name, width, height);
        let png = render_png(
            layer,
            vp,
            &request.style,
            None,
            &request.filters,
            self.metrics,
        )
        .instrument(span)
        .await?;
        Ok(Answer {
            tile: CachedTile::new(png),
            origin: Origin::Rendered,
        })
    }
}
