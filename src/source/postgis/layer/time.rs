//! A PostGIS layer's tiles filtered by a time window, read from its time pyramid: the tile's
//! blocks in two chunks, the partial days at the window's ends summed from the points.

use super::PostgisLayer;
use crate::source::aggregate::{Bin, CellRange};
use crate::source::attributes::AttributeFilter;
use crate::source::postgis::pyramid::block_params;
use crate::source::postgis::time_pyramid::{Row, TimePyramid, WindowSums, COARSEST};
use crate::source::{FilterValues, PointQuery, PointSource, SourceError};
use crate::tile::WorldBox;
use std::sync::Arc;

/// Windows whose densest tiles (at zooms 0..=6, or 0..=8) are kept per layer.
pub(super) const WINDOW_DENSEST: usize = 1024;

/// The point count of the densest tile at each zoom 0..=6 (from the coarsest level) or
/// 0..=8 (from zoom 0's pixels, the zoom 8 tiles).
pub(super) type Densest = Arc<[u64]>;

/// A filter the time pyramid answers.
struct Window {
    pyramid: Arc<TimePyramid>,
    /// `[from, to)` in milliseconds; open ends (and no window) as `i64::MIN` and `i64::MAX`.
    span: (i64, i64),
    categories: Vec<(String, Vec<String>)>,
    parts: Vec<i16>,
}

impl PostgisLayer {
    /// The current time pyramid, the window and the parts to sum, when the pyramid answers
    /// `filters` (see [`TimePyramid::parts_for`]; declared filters are summed from the points).
    async fn time_window(&self, filters: &FilterValues) -> Result<Option<Window>, SourceError> {
        let Some(filter) = filters.1.as_ref().filter(|_| filters.0.is_empty()) else {
            return Ok(None);
        };
        let Some(pyramid) = self.stats().await?.time_pyramid.clone() else {
            return Ok(None);
        };
        let Some(parts) = pyramid.parts_for(filter) else {
            return Ok(None);
        };
        Ok(Some(Window {
            span: filter.window().unwrap_or((i64::MIN, i64::MAX)),
            categories: filter.categories.clone(),
            parts,
            pyramid,
        }))
    }

    /// `drawn_bins` of a time window from the time pyramid, when it has the zoom of `scale`.
    pub(super) async fn window_bins(
        &self,
        q: &PointQuery<'_>,
        scale: f64,
    ) -> Result<Option<Vec<Bin>>, SourceError> {
        let Some(window) = self.time_window(q.filters).await? else {
            return Ok(None);
        };
        let Some(zoom) = window.pyramid.zoom_of(scale) else {
            return Ok(None);
        };
        let cells = CellRange::of(&q.area, scale);
        let sums = self
            .window_sums(q, &window, i16::from(zoom), &cells, scale)
            .await?;
        Ok(Some(sums.into_bins(scale)))
    }

    /// The counts and weights of `cells` at `level` through `window`: whole days from the
    /// pyramid's rows, partial days from the points in the same area.
    async fn window_sums(
        &self,
        q: &PointQuery<'_>,
        window: &Window,
        level: i16,
        cells: &CellRange,
        scale: f64,
    ) -> Result<WindowSums, SourceError> {
        let pyramid = &window.pyramid;
        let mut sums = WindowSums::new(cells, pyramid.weighted);
        let cut = pyramid.window_days(window.span.0, window.span.1);
        if let Some((a, b)) = cut.days {
            let (first, last) = pyramid.chunks(level, (a, b));
            let every = pyramid.chunk_days(level);
            let [by0, by1, bx0, bx1] = block_params(cells);
            let client = self.client().await?;
            let rows = self
                .timed_query(
                    &client,
                    &pyramid.rows_sql,
                    &[&level, &by0, &by1, &bx0, &bx1, &first, &last, &window.parts],
                )
                .await?;
            self.metrics
                .pyramid_queries
                .with_label_values(&[self.name.as_str()])
                .inc();
            let malformed = |e| SourceError::Unavailable(format!("{}: {e}", pyramid.bins.key()));
            for r in &rows {
                let row = Row {
                    block_y: r.get(0),
                    block_x: r.get(1),
                    chunk: r.get(2),
                    base: r.get(3),
                    days: r.get(4),
                };
                let start = i64::from(row.chunk) * every;
                if first == last {
                    sums.apply(&row, Some(a - start), b - start, 1)
                        .map_err(malformed)?;
                } else if row.chunk == last {
                    sums.apply(&row, None, b - start, 1).map_err(malformed)?;
                } else if row.chunk == first {
                    sums.apply(&row, None, a - start, -1).map_err(malformed)?;
                }
            }
        }
        for (from, to) in [cut.head, cut.tail].into_iter().flatten() {
            let part = FilterValues(
                Vec::new(),
                Some(AttributeFilter {
                    from: Some(from),
                    to: Some(to),
                    categories: window.categories.clone(),
                }),
            );
            let query = PointQuery {
                area: q.area,
                tile: q.tile,
                filters: &part,
            };
            // Filtered, so never from the bin pyramid: summed from the points.
            sums.add_bins(&self.bins(&query, scale).await?);
        }
        Ok(sums)
    }

    /// Whether the densest tile at `zoom` holds more than `aggregate_above` points of a time
    /// window, as the memory store decides; None when the layer has no time pyramid for the
    /// filter, or the zoom is deeper than 8 and zoom 8 is dense. Zooms 0-6 are decided from
    /// the coarsest level (two rows); 7 and 8, when the zoom 6 tiles are dense, from zoom 0's
    /// pixels (the world's rows at zoom 0).
    pub(super) async fn window_dense(
        &self,
        zoom: f64,
        aggregate_above: u64,
        filters: &FilterValues,
    ) -> Result<Option<bool>, SourceError> {
        let Some(window) = self.time_window(filters).await? else {
            return Ok(None);
        };
        let key = (window.pyramid.version, filters.canonical(&[]));
        let lock = || {
            self.window_densest
                .lock()
                .unwrap_or_else(|e| e.into_inner())
        };
        // Zooms past those in hand are needed only when the deepest in hand is dense: a
        // tile never holds more points than its parent.
        let answers = |densest: &[u64]| {
            densest.len() > 8
                || zoom < densest.len() as f64
                || densest.last().is_some_and(|&d| d <= aggregate_above)
        };
        let cached = lock().get(&key).cloned();
        let densest = match cached {
            Some(densest) if answers(&densest) => densest,
            _ => {
                let coarse = match cached {
                    Some(coarse) => coarse,
                    None => self.densest_at(&window, filters, COARSEST).await?,
                };
                let densest = if answers(&coarse) {
                    coarse
                } else {
                    self.densest_at(&window, filters, 0).await?
                };
                lock().put(key, densest.clone());
                densest
            }
        };
        Ok(crate::source::grid::dense_from_densest(
            &densest,
            zoom,
            aggregate_above,
        ))
    }

    /// The point count of the densest tile at zooms 0..=8+`level` through `window`, from the
    /// window's counts at `level`, whose cells are the zoom 8+`level` tiles.
    async fn densest_at(
        &self,
        window: &Window,
        filters: &FilterValues,
        level: i16,
    ) -> Result<Densest, SourceError> {
        let deepest = u8::try_from(8 + level).unwrap_or(0);
        let side = 1i64 << deepest;
        // One column and row past the world's: points on its far edges (x or y = 1).
        let world = CellRange {
            x0: 0,
            x1: side + 1,
            y0: 0,
            y1: side + 1,
        };
        let query = PointQuery {
            area: WorldBox {
                x1: (side + 1) as f64 / side as f64,
                y1: (side + 1) as f64 / side as f64,
                ..WorldBox::WORLD
            },
            tile: None,
            filters,
        };
        let scale = side as f64;
        let sums = self
            .window_sums(&query, window, level, &world, scale)
            .await?;
        let mut tiles = vec![0u64; (side * side) as usize];
        for b in sums.into_bins(scale) {
            tiles[(b.by.min(side - 1) * side + b.bx.min(side - 1)) as usize] += b.count;
        }
        Ok(crate::source::grid::densest_per_zoom(tiles, deepest).into())
    }
}
