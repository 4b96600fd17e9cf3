//! Layers: a named point source plus what is derived from its whole data set (the density
//! style's per-zoom reference), computed once and remembered.

use crate::render::{self, ColorRamp, IndexedImage, Style, Viewport, WorldPoint};
use crate::source::aggregate::{bins_as_points, BinMass};
use crate::source::postgis::watch::LayerCatalog;
use crate::source::{FilterValues, LayerInfo, PointQuery, PointSource, SourceError};
use crate::tile::{TileCoord, WorldBox};
use lru::LruCache;
use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, RwLock};

/// What a render draws: the points themselves, or, at zooms dense enough, pixel bins at
/// their cells' centres (for `dots`, each bin's `w` is its point count).
#[derive(Debug, Clone, PartialEq)]
pub enum RenderInput {
    Points(Vec<WorldPoint>),
    Bins(Vec<WorldPoint>),
}

impl RenderInput {
    /// The points or bins drawn.
    pub fn marks(&self) -> &[WorldPoint] {
        match self {
            RenderInput::Points(marks) | RenderInput::Bins(marks) => marks,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.marks().is_empty()
    }

    /// Draws it: `render::render` for points, `render::render_bins` for bins.
    pub fn render(&self, vp: &Viewport, style: &Style, ramp: &ColorRamp) -> IndexedImage {
        match self {
            RenderInput::Points(points) => render::render(points, vp, style, ramp),
            RenderInput::Bins(bins) => render::render_bins(bins, vp, style, ramp),
        }
    }
}

/// One layer served under `/tiles/{name}/...`.
pub struct Layer {
    /// Shared so tile keys can hold it without copying.
    pub name: Arc<str>,
    pub source: Arc<dyn PointSource>,
    /// Zooms whose densest tile holds more points than this are rendered from one-pixel
    /// bins (aggregated in the source, in SQL for PostGIS) instead of single points.
    pub aggregate_above: u64,
    /// Density references by (cell size in world units, as bits; canonical filter values):
    /// a handful of zooms and radii in practice; bounded because filters may take any value.
    density_refs: Mutex<LruCache<(u64, String), f64>>,
}

impl Layer {
    pub fn new(name: impl Into<Arc<str>>, source: Arc<dyn PointSource>) -> Layer {
        Layer {
            name: name.into(),
            source,
            aggregate_above: DEFAULT_AGGREGATE_ABOVE,
            density_refs: Mutex::new(LruCache::new(NonZeroUsize::MIN.saturating_add(255))),
        }
    }

    /// The layer drawing zooms denser than `points` per tile from bins.
    pub fn with_aggregate_above(mut self, points: u64) -> Layer {
        self.aggregate_above = points;
        self
    }

    pub fn info(&self) -> LayerInfo {
        self.source.info()
    }

    /// The zooms whose tiles are drawn from pixel bins (see [`Layer::aggregate_above`]).
    pub async fn aggregated_zooms(&self) -> Result<Vec<u8>, SourceError> {
        let grid = self.source.count_grid().await?;
        Ok((0..=crate::tile::MAX_ZOOM)
            .filter(|&z| grid.is_dense(f64::from(z), self.aggregate_above))
            .collect())
    }

    /// What the renderer needs for `vp`: every point within the style's reach, or, at zooms
    /// dense enough (by the layer's count estimate, the same for every tile of the zoom, so
    /// tiles stay seamless), one-pixel bins at their cells' centres.
    pub async fn render_input(
        &self,
        vp: &Viewport,
        style: &Style,
        tile: Option<TileCoord>,
        filters: &FilterValues,
    ) -> Result<RenderInput, SourceError> {
        let reach = style.reach_px(vp);
        let area = WorldBox::of_viewport(vp, reach);
        let aggregated = self.draws_bins(vp.zoom, filters).await?;
        let bin_scale = bin_scale(vp.scale_x / vp.pixel_ratio);
        let mut parts = Vec::new();
        // The world wraps at the antimeridian: the reach past x = 0 or x = 1 reads the
        // points at the other edge, shifted by one world width, so edge tiles stay seamless.
        for (piece, shift) in wrapped_pieces(&area) {
            let query = PointQuery {
                area: piece,
                tile: if shift == 0.0 {
                    tile.map(|t| (t, reach / vp.width as f64))
                } else {
                    None
                },
                filters,
            };
            let mut part = if aggregated {
                let mass = match style {
                    Style::Dots(_) => BinMass::Count,
                    Style::Smooth(_) | Style::Density(_) => BinMass::Weight,
                };
                bins_as_points(
                    &self.source.drawn_bins(&query, bin_scale).await?,
                    bin_scale,
                    mass,
                )
            } else {
                self.source.points(&query, None).await?
            };
            for p in &mut part {
                p.x = on_shift_grid(p.x) + shift;
            }
            parts.push((shift, part));
        }
        Ok(if aggregated {
            RenderInput::Bins(merge_bin_rows(parts))
        } else {
            RenderInput::Points(parts.into_iter().flat_map(|(_, part)| part).collect())
        })
    }

    /// Whether tiles at `zoom` are drawn from bins: one rule for every source, decided by
    /// the points the request draws (after its filters), so the same points give the same
    /// tiles from a file, an import or a declared table. The filtered grid is asked for only
    /// when the whole layer is dense there (filtering never adds points).
    pub async fn draws_bins(&self, zoom: f64, filters: &FilterValues) -> Result<bool, SourceError> {
        let dense = self
            .source
            .count_grid()
            .await?
            .is_dense(zoom, self.aggregate_above);
        if !dense || filters.is_empty() {
            return Ok(dense);
        }
        if let Some(dense) = self
            .source
            .filtered_dense_from_counts(zoom, self.aggregate_above, filters)
            .await?
        {
            return Ok(dense);
        }
        Ok(self
            .source
            .filtered_count_grid(filters)
            .await?
            .is_dense(zoom, self.aggregate_above))
    }

    /// The density style's reference for a kernel of `kernel_cell` world units: the largest
    /// weight in any square of [`reference_cell`]`(kernel_cell)` of the layer's points that
    /// pass `filters`, at least 1 so that a sparse layer is not stretched to full color by a
    /// single light point.
    pub async fn density_reference(
        &self,
        kernel_cell: f64,
        filters: &FilterValues,
    ) -> Result<f64, SourceError> {
        let cell = reference_cell(kernel_cell);
        let key = (cell.to_bits(), filters.canonical(&self.source.filters()));
        if let Some(v) = self.lock_refs().get(&key) {
            return Ok(*v);
        }
        let value = self.source.max_cell_weight(cell, filters).await?.max(1.0);
        self.lock_refs().put(key, value);
        Ok(value)
    }

    fn lock_refs(&self) -> std::sync::MutexGuard<'_, LruCache<(u64, String), f64>> {
        // A panic while holding this lock cannot leave the cache inconsistent (single
        // get/put calls), so a poisoned lock is still safe to use.
        self.density_refs.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The side of the density reference's cells for a kernel of `cell` world units: the
/// nearest power of two (in world units), so that the cells are the pixels of one zoom (or
/// whole blocks of zoom 0's), which every bin pyramid holds, and every source cuts them the
/// same way (`floor(x * 2^m)` is exact).
pub fn reference_cell(cell: f64) -> f64 {
    let exponent = cell.log2().round();
    if exponent.is_finite() {
        exponent.clamp(-60.0, 0.0).exp2()
    } else {
        1.0
    }
}

/// The bins drawn at `scale` pixels per world unit: a tile zoom's one-pixel bins for tiles,
/// and for overlays at any other scale those of the nearest tile zoom (bins of 0.7 to 1.4
/// pixels), so every source answers them from its pyramid where it has one.
fn bin_scale(scale: f64) -> f64 {
    let zoom = (scale / 256.0).log2().round();
    let zoom = if zoom.is_finite() {
        zoom.clamp(0.0, f64::from(crate::tile::MAX_ZOOM))
    } else {
        0.0
    };
    256.0 * zoom.exp2()
}

/// `x` rounded to a multiple of 2^-52 of the world (2^-20 of a pixel at zoom 24): then
/// x + 1 and x - 1 are exact, so a copy of a point one world away, moved back, has its
/// original's coordinates to the last bit, and every style draws it at the same place in
/// the tiles on both sides of the antimeridian. Applied to every point, copy or not, so
/// both sides see the same value.
fn on_shift_grid(x: f64) -> f64 {
    // Adding 1 rounds x in [0, 1] to the spacing of [1, 2), 2^-52; subtracting it is exact.
    (x + 1.0) - 1.0
}

/// The bins of the wrapped pieces (each sorted by row, then column) in one (row, unwrapped
/// column) order: renderers that sum in input order (density's cells, smooth's clusters)
/// then sum any two bins in the same order in every render that holds both, across the
/// antimeridian too. Within a row the west copy lies left of the world, and the world left
/// of the east copy; a merge, not a sort, since a tile holds up to ~110,000 bins.
fn merge_bin_rows(mut parts: Vec<(f64, Vec<WorldPoint>)>) -> Vec<WorldPoint> {
    if parts.len() == 1 {
        // A tile within the world's edges: one piece, already in order.
        return parts.pop().map(|(_, bins)| bins).unwrap_or_default();
    }
    parts.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut out = Vec::with_capacity(parts.iter().map(|(_, p)| p.len()).sum());
    let mut heads = vec![0usize; parts.len()];
    loop {
        // The lowest row left; on a tie the westmost piece goes first.
        let mut next: Option<(usize, f64)> = None;
        for (i, (_, part)) in parts.iter().enumerate() {
            if let Some(p) = part.get(heads[i]) {
                if next.map_or(true, |(_, y)| p.y < y) {
                    next = Some((i, p.y));
                }
            }
        }
        let Some((i, y)) = next else { break };
        let part = &parts[i].1;
        while let Some(p) = part.get(heads[i]).filter(|p| p.y == y) {
            out.push(*p);
            heads[i] += 1;
        }
    }
    out
}

/// `area` split at the world's east and west edges: the part inside, and the parts beyond
/// each edge moved into the world, with the x shift that puts their points back.
fn wrapped_pieces(area: &WorldBox) -> Vec<(WorldBox, f64)> {
    let mut pieces = vec![(
        WorldBox {
            x0: area.x0.max(0.0),
            x1: area.x1.min(1.0),
            ..*area
        },
        0.0,
    )];
    if area.x0 < 0.0 {
        pieces.push((
            WorldBox {
                x0: (area.x0 + 1.0).max(0.0),
                x1: 1.0,
                ..*area
            },
            -1.0,
        ));
    }
    if area.x1 > 1.0 {
        pieces.push((
            WorldBox {
                x0: 0.0,
                x1: (area.x1 - 1.0).min(1.0),
                ..*area
            },
            1.0,
        ));
    }
    pieces
}

/// Default of [`Layer::aggregate_above`] for every layer, whatever its source (and of
/// `import --aggregate-above`), so that the same points draw the same tiles from a file, an
/// import or a declared table. Past about 10,000 points (with margins, 20,000 rows)
/// fetching a tile's rows from PostGIS costs more than a cold tile's latency target, while a
/// bin pyramid's blocks of the same area are an order of magnitude cheaper (benches/README.md,
/// "Figures behind design choices").
pub const DEFAULT_AGGREGATE_ABOVE: u64 = 10_000;

pub use crate::source::valid_layer_name;

/// All layers by name, shared by every worker. PostGIS layers can appear while the server
/// runs (found by the database watcher after an import, or once the database is back).
#[derive(Default, Clone)]
pub struct Registry(Arc<RwLock<BTreeMap<String, Arc<Layer>>>>);

impl Registry {
    pub fn insert(&self, layer: Layer) -> Result<(), String> {
        let mut map = self.write();
        if map.contains_key(&*layer.name) {
            return Err(format!("two layers are named {:?}", layer.name));
        }
        map.insert(layer.name.to_string(), Arc::new(layer));
        Ok(())
    }

    pub fn get(&self, name: &str) -> Option<Arc<Layer>> {
        self.read().get(name).cloned()
    }

    pub fn contains(&self, name: &str) -> bool {
        self.read().contains_key(name)
    }

    pub fn names(&self) -> Vec<String> {
        self.read().keys().cloned().collect()
    }

    /// A snapshot of every layer, in name order.
    pub fn all(&self) -> Vec<Arc<Layer>> {
        self.read().values().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    // Writers only insert whole entries, so a poisoned lock still holds a valid map.
    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Arc<Layer>>> {
        self.0.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Arc<Layer>>> {
        self.0.write().unwrap_or_else(|e| e.into_inner())
    }
}

/// The database watcher adds the layers it finds here.
impl LayerCatalog for Registry {
    fn contains(&self, name: &str) -> bool {
        Registry::contains(self, name)
    }

    fn add(
        &self,
        name: &str,
        source: Arc<dyn PointSource>,
        aggregate_above: u64,
    ) -> Result<(), String> {
        self.insert(Layer::new(name, source).with_aggregate_above(aggregate_above))
    }
}

#[cfg(test)]
mod tests {
    use super::bin_scale;

    #[test]
    fn tiles_keep_their_scale_and_overlays_take_the_nearest_zoom() {
        assert_eq!(bin_scale(256.0), 256.0);
        assert_eq!(bin_scale(256.0 * 1024.0), 256.0 * 1024.0);
        assert_eq!(bin_scale(300.0), 256.0);
        assert_eq!(bin_scale(400.0), 512.0);
        assert_eq!(bin_scale(1000.0), 1024.0);
        assert_eq!(bin_scale(10.0), 256.0);
        assert_eq!(bin_scale(f64::INFINITY), 256.0);
        assert_eq!(bin_scale(f64::NAN), 256.0);
        assert_eq!(bin_scale(1e30), 256.0 * 2f64.powi(24));
    }

    #[test]
    fn bins_of_wrapped_pieces_merge_by_row_then_unwrapped_column() {
        use super::merge_bin_rows;
        use crate::render::WorldPoint;
        let at = |x: f64, y: f64| WorldPoint {
            x,
            y,
            w: 1.0,
            seq: 0,
        };
        let main = vec![at(0.1, 0.2), at(0.9, 0.2), at(0.5, 0.4)];
        let west = vec![at(-0.1, 0.2), at(-0.2, 0.3)];
        let east = vec![at(1.05, 0.4), at(1.1, 0.5)];
        let merged = merge_bin_rows(vec![(0.0, main), (-1.0, west), (1.0, east)]);
        let order: Vec<(f64, f64)> = merged.iter().map(|p| (p.x, p.y)).collect();
        assert_eq!(
            order,
            vec![
                (-0.1, 0.2),
                (0.1, 0.2),
                (0.9, 0.2),
                (-0.2, 0.3),
                (0.5, 0.4),
                (1.05, 0.4),
                (1.1, 0.5),
            ]
        );
    }

    #[test]
    fn reference_cells_are_the_nearest_power_of_two() {
        use super::reference_cell;
        // Radius 25 at zoom 3: 25 / 2048 of the world, nearest 32 / 2048 = 2^-6.
        assert_eq!(reference_cell(25.0 / 2048.0), 2f64.powi(-6));
        assert_eq!(reference_cell(20.0 / 2048.0), 2f64.powi(-7));
        assert_eq!(reference_cell(1.0 / 256.0), 2f64.powi(-8));
        assert_eq!(reference_cell(5.0), 1.0);
        assert_eq!(reference_cell(0.0), 1.0);
        assert_eq!(reference_cell(f64::NAN), 1.0);
        assert_eq!(reference_cell(1e-300), 2f64.powi(-60));
    }
}
