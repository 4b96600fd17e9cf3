//! The embedded in-memory point store: points sorted into a fixed grid of cells for fast
//! box queries, with no database, and a bin pyramid for the zooms drawn from bins.

pub mod attributes;
mod checkpoints;
pub mod cubes;
pub mod pyramid;
mod running_sums;
pub mod timecube;
mod unit_points;

use super::aggregate::{Bin, CellRange, CellSums};
use super::{CountGrid, FilterValues, LayerInfo, PointQuery, PointSource, SourceError};
use crate::render::WorldPoint;
use crate::source::attributes::{AttributeFilter, AttributeSchema, AttributeSummary};
use crate::tile::{metres_to_world, world_to_metres, WorldBox};
use async_trait::async_trait;
use attributes::Attributes;
use cubes::TimeCubes;
use lru::LruCache;
use pyramid::{Pyramid, PyramidSize};
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};

/// Points bucketed by a 2^level x 2^level grid over the world, row by row, so the points of
/// a run of cells within one row are one contiguous slice.
pub struct MemoryStore {
    points: Vec<WorldPoint>,
    /// `offsets[row * n + col]` is where that cell's points start; one extra entry at the end.
    offsets: Vec<u32>,
    level: u32,
    info: LayerInfo,
    grid: Arc<CountGrid>,
    /// Bins of the zooms drawn from bins ([`MemoryStore::with_pyramid`]); empty until built.
    pyramid: Pyramid,
    /// Time and category values, by index into `points`, for layers that declare them.
    attributes: Option<Attributes>,
    /// The points by time, with counts through time per pixel, of all points and of each
    /// category value, for layers with a time column (built with the pyramid).
    time_cubes: TimeCubes,
    /// Their summary for TileJSON, made once.
    summary: Option<AttributeSummary>,
    /// Count grids of filtered requests, by filter: bounded because filters take any value.
    filtered_grids: Mutex<LruCache<AttributeFilter, Arc<CountGrid>>>,
    /// The densest tile's points at zooms 0..=8 of the filters the time cubes answer, by
    /// filter.
    window_counts: Mutex<LruCache<AttributeFilter, Arc<[u64]>>>,
}

/// Filters' densest-tile counts remembered per layer (72 bytes each).
const WINDOW_COUNTS: usize = 1024;

/// Filtered count grids remembered per layer (each takes a few kilobytes up to a megabyte).
const FILTERED_GRIDS: usize = 64;

impl MemoryStore {
    /// Builds the index. Points keep their input order within a cell (a stable sort), and
    /// points outside the world square or with a non-finite position are dropped.
    ///
    /// Positions go once through Web Mercator metres and back, as they do when stored in
    /// PostGIS (which keeps metres), so both sources hold bit-identical points.
    pub fn new(points: Vec<WorldPoint>, attribution: Option<String>) -> MemoryStore {
        MemoryStore::with_attributes(points, None, attribution)
    }

    /// [`MemoryStore::new`] with the points' time and category values (`attributes`, in
    /// the order of `points`), which then move with their points.
    pub fn with_attributes(
        mut points: Vec<WorldPoint>,
        attributes: Option<Attributes>,
        attribution: Option<String>,
    ) -> MemoryStore {
        for p in &mut points {
            let (mx, my) = world_to_metres(p.x, p.y);
            (p.x, p.y) = metres_to_world(mx, my);
        }
        let inside = |p: &WorldPoint| {
            p.x.is_finite()
                && p.y.is_finite()
                && (0.0..=1.0).contains(&p.x)
                && (0.0..=1.0).contains(&p.y)
        };
        let kept = points.iter().filter(|p| inside(p)).count();
        let level = grid_level(kept);
        let n = 1usize << level;
        // Points outside the world get no cell and are dropped.
        const OUTSIDE: u32 = u32::MAX;
        let cells: Vec<u32> = points
            .iter()
            .map(|p| {
                if inside(p) {
                    (cell_index(p.y, n) * n + cell_index(p.x, n)) as u32
                } else {
                    OUTSIDE
                }
            })
            .collect();
        let mut offsets = vec![0u32; n * n + 1];
        for &cell in cells.iter().filter(|&&c| c != OUTSIDE) {
            offsets[cell as usize + 1] += 1;
        }
        for i in 1..offsets.len() {
            offsets[i] += offsets[i - 1];
        }
        // A counting sort by cell: stable (points keep their input order within a cell) and
        // linear in the points; a comparison sort was the slowest step of loading large files.
        let mut next = offsets.clone();
        let mut order = vec![0u32; kept];
        for (i, &cell) in cells.iter().enumerate() {
            if cell == OUTSIDE {
                continue;
            }
            order[next[cell as usize] as usize] = i as u32;
            next[cell as usize] += 1;
        }
        drop((cells, next));
        let points: Vec<WorldPoint> = order.iter().map(|&i| points[i as usize]).collect();
        let attributes = attributes.map(|a| a.permuted(&order));
        let info = LayerInfo {
            bounds: bounds_of(&points),
            count: points.len() as u64,
            attribution,
        };
        let grid = Arc::new(count_grid(&points));
        MemoryStore {
            points,
            offsets,
            level,
            info,
            grid,
            pyramid: Pyramid::default(),
            time_cubes: TimeCubes::default(),
            summary: attributes.as_ref().map(Attributes::summary),
            attributes,
            filtered_grids: Mutex::new(LruCache::new(
                NonZeroUsize::new(FILTERED_GRIDS).unwrap_or(NonZeroUsize::MIN),
            )),
            window_counts: Mutex::new(LruCache::new(
                NonZeroUsize::new(WINDOW_COUNTS).unwrap_or(NonZeroUsize::MIN),
            )),
        }
    }

    /// The time and category values of the points, when the layer declares them.
    pub fn attributes(&self) -> Option<&Attributes> {
        self.attributes.as_ref()
    }

    /// Every point inside `area` that passes `filter`, in index order: with no filter (or
    /// one on a store without attributes, which requests cannot make), every point.
    fn query_filtered(&self, area: &WorldBox, filter: Option<&AttributeFilter>) -> Vec<WorldPoint> {
        let mut out = Vec::new();
        self.for_each_filtered(area, filter, |p| out.push(*p));
        out
    }

    fn for_each_filtered(
        &self,
        area: &WorldBox,
        filter: Option<&AttributeFilter>,
        mut visit: impl FnMut(&WorldPoint),
    ) {
        match (filter, &self.attributes) {
            (Some(filter), Some(attributes)) => {
                let selection = attributes.select(filter);
                if let Some(indices) = self.window_indices(area, filter, |i| selection.keeps(i)) {
                    indices
                        .iter()
                        .for_each(|&i| visit(&self.points[i as usize]));
                    return;
                }
                self.for_each_indexed(area, |i, p| {
                    if selection.keeps(i) {
                        visit(p)
                    }
                });
            }
            _ => self.for_each_in(area, visit),
        }
    }

    /// The store indices of the points inside `area` that `keeps`, in store order, read
    /// through the time index when the filter's window holds far fewer points than the area
    /// (`None`: reading the area is cheaper).
    fn window_indices(
        &self,
        area: &WorldBox,
        filter: &AttributeFilter,
        keeps: impl Fn(usize) -> bool,
    ) -> Option<Vec<u32>> {
        let cube = self.time_cubes.all()?;
        let (from, to) = filter.window()?;
        let ranges = self.index_ranges(area);
        let area_points: usize = ranges.iter().map(|&(s, e)| (e - s) as usize).sum();
        // The window's points are read in unit order, each a cache miss in the store's
        // points; the area's are read as a stream: worth it only for far fewer points.
        const RANDOM_READ_COST: usize = 16;
        if cube
            .points_within(from, to)
            .saturating_mul(RANDOM_READ_COST)
            >= area_points
        {
            return None;
        }
        let clipped = clip(area)?;
        let mut indices = Vec::new();
        cube.for_each_within(from, to, &ranges, |i| {
            let p = &self.points[i];
            if clipped.contains(p.x, p.y) && keeps(i) {
                indices.push(i as u32);
            }
        });
        // Store order, as every other read gives them (bins sum in that order).
        indices.sort_unstable();
        Some(indices)
    }

    /// The store indices of the points in the cells under `area`: one range per grid row
    /// (rows of whole width joined), ascending.
    fn index_ranges(&self, area: &WorldBox) -> Vec<(u32, u32)> {
        let Some(clipped) = clip(area) else {
            return Vec::new();
        };
        let n = 1usize << self.level;
        let (c0, c1) = (cell_index(clipped.x0, n), cell_index(clipped.x1, n));
        let mut ranges: Vec<(u32, u32)> = Vec::new();
        for row in cell_index(clipped.y0, n)..=cell_index(clipped.y1, n) {
            let (start, end) = (self.offsets[row * n + c0], self.offsets[row * n + c1 + 1]);
            match ranges.last_mut() {
                Some(last) if last.1 == start => last.1 = end,
                _ if start < end => ranges.push((start, end)),
                _ => {}
            }
        }
        ranges
    }

    /// The whole layer's points that pass `filter`.
    fn all_filtered(&self, filter: &AttributeFilter) -> Vec<WorldPoint> {
        self.query_filtered(&WorldBox::WORLD, Some(filter))
    }

    /// Builds the bin pyramid for the zooms whose densest tile holds more than
    /// `aggregate_above` points (the zooms a layer draws from bins), on every core, with a
    /// progress bar for large layers.
    pub fn with_pyramid(mut self, aggregate_above: u64) -> MemoryStore {
        let Some(dense) = (0..=pyramid::MAX_LEVEL)
            .rev()
            .find(|&z| self.grid.is_dense(f64::from(z), aggregate_above))
        else {
            return self;
        };
        let top = pyramid::finest_within_budget(&self.points, dense);
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(16));
        let started = std::time::Instant::now();
        // Levels done per band: the finest, then one per coarsening.
        let steps = (u64::from(top) + 1) * threads as u64;
        let progress = if self.points.len() >= LARGE_LAYER {
            crate::progress::bar("bin pyramid", steps, "levels")
        } else {
            indicatif::ProgressBar::hidden()
        };
        self.pyramid = Pyramid::build(&self.points, &self.row_starts(), top, threads, &|| {
            progress.inc(1)
        });
        progress.finish_and_clear();
        let PyramidSize {
            levels,
            bins,
            bytes,
        } = self.pyramid.size();
        tracing::info!(
            points = self.points.len(),
            levels,
            bins,
            bytes,
            ms = started.elapsed().as_millis() as u64,
            "bin pyramid built"
        );
        self.build_time_cubes(threads);
        self
    }

    /// The bins at the zoom of `scale` of the points `filter` keeps, from the time cubes,
    /// when they answer it and hold that zoom.
    fn time_cube_bins(
        &self,
        filter: &AttributeFilter,
        scale: f64,
        cells: &CellRange,
    ) -> Option<Vec<Bin>> {
        let z = crate::source::aggregate::pixel_zoom(scale)?;
        self.time_cubes.bins(
            self.attributes.as_ref()?,
            filter,
            z,
            cells,
            &self.index_ranges(&cells.query_area(scale)),
        )
    }

    /// The points of the densest tile at zooms 0..=8 under `filter`, from the time cubes'
    /// counts of zoom 0 pixels (each one a zoom 8 tile), when they answer it.
    fn window_tile_counts(&self, filter: &AttributeFilter) -> Option<Arc<[u64]>> {
        let lock = || self.window_counts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(counts) = lock().get(filter) {
            return Some(counts.clone());
        }
        let pixels = self
            .time_cubes
            .zoom0_counts(self.attributes.as_ref()?, filter)?;
        let counts: Arc<[u64]> = crate::source::grid::densest_per_zoom(pixels, 8).into();
        lock().put(filter.clone(), counts.clone());
        Some(counts)
    }

    /// Indexes the points by time, with counts through time per pixel, for all points and
    /// each category value (layers with a time column).
    fn build_time_cubes(&mut self, threads: usize) {
        let Some(attributes) = self.attributes.as_ref() else {
            return;
        };
        let hourly = self
            .summary
            .as_ref()
            .and_then(|s| s.time.as_ref())
            .is_some_and(|t| t.bucket == crate::source::attributes::TimeBucket::Hour);
        self.time_cubes = TimeCubes::build(&self.points, attributes, hourly, threads);
    }

    /// Where each row of the store's grid starts in [`MemoryStore::all`], plus the end.
    fn row_starts(&self) -> Vec<usize> {
        let n = 1usize << self.level;
        (0..=n).map(|row| self.offsets[row * n] as usize).collect()
    }

    /// Every point inside `area`, edges included, in index order.
    pub fn query(&self, area: &WorldBox) -> Vec<WorldPoint> {
        let mut out = Vec::new();
        self.for_each_in(area, |p| out.push(*p));
        out
    }

    fn for_each_in(&self, area: &WorldBox, mut visit: impl FnMut(&WorldPoint)) {
        self.for_each_indexed(area, |_, p| visit(p));
    }

    /// Like `for_each_in`, with each point's index in the store.
    fn for_each_indexed(&self, area: &WorldBox, mut visit: impl FnMut(usize, &WorldPoint)) {
        let Some(clipped) = clip(area) else {
            return;
        };
        if self.points.is_empty() {
            return;
        }
        let n = 1usize << self.level;
        let (c0, c1) = (cell_index(clipped.x0, n), cell_index(clipped.x1, n));
        for row in cell_index(clipped.y0, n)..=cell_index(clipped.y1, n) {
            let start = self.offsets[row * n + c0] as usize;
            let end = self.offsets[row * n + c1 + 1] as usize;
            for (i, p) in self.points[start..end].iter().enumerate() {
                if clipped.contains(p.x, p.y) {
                    visit(start + i, p);
                }
            }
        }
    }

    pub fn all(&self) -> &[WorldPoint] {
        &self.points
    }
}

#[async_trait]
impl PointSource for MemoryStore {
    fn selects_in_process(&self) -> bool {
        true
    }

    async fn points(
        &self,
        q: &PointQuery<'_>,
        limit: Option<usize>,
    ) -> Result<Vec<WorldPoint>, SourceError> {
        let mut out = Vec::new();
        let cap = limit.map_or(usize::MAX, |l| l.saturating_add(1));
        self.for_each_filtered(&q.area, q.filters.1.as_ref(), |p| {
            if out.len() < cap {
                out.push(*p);
            }
        });
        Ok(out)
    }

    async fn bins(&self, q: &PointQuery<'_>, scale: f64) -> Result<Vec<Bin>, SourceError> {
        let cells = CellRange::of(&q.area, scale);
        if q.filters.1.is_none() {
            if let Some(z) = self.pyramid.level_of(scale) {
                return Ok(self.pyramid.bins(z, &cells));
            }
        }
        // The pyramid holds every point: a filtered request, like a zoom the pyramid lacks,
        // bins its own points, in store order as the pyramid sums them, as they are visited
        // (a copy of a wide box's points would be tens of MB in flight per request).
        let mut sums = CellSums::new(scale, &cells);
        self.for_each_filtered(&cells.query_area(scale), q.filters.1.as_ref(), |p| {
            sums.add(p)
        });
        Ok(sums.into_bins())
    }

    async fn drawn_bins(&self, q: &PointQuery<'_>, scale: f64) -> Result<Vec<Bin>, SourceError> {
        if let Some(filter) = &q.filters.1 {
            let cells = CellRange::of(&q.area, scale);
            if let Some(bins) = self.time_cube_bins(filter, scale, &cells) {
                return Ok(bins);
            }
        }
        self.bins(q, scale).await
    }

    async fn count_grid(&self) -> Result<Arc<CountGrid>, SourceError> {
        Ok(self.grid.clone())
    }

    async fn filtered_count_grid(
        &self,
        filters: &FilterValues,
    ) -> Result<Arc<CountGrid>, SourceError> {
        let Some(filter) = &filters.1 else {
            return Ok(self.grid.clone());
        };
        let lock = || {
            self.filtered_grids
                .lock()
                .unwrap_or_else(|e| e.into_inner())
        };
        if let Some(grid) = lock().get(filter) {
            return Ok(grid.clone());
        }
        let grid = Arc::new(count_grid(&self.all_filtered(filter)));
        lock().put(filter.clone(), grid.clone());
        Ok(grid)
    }

    async fn filtered_dense_from_counts(
        &self,
        zoom: f64,
        aggregate_above: u64,
        filters: &FilterValues,
    ) -> Result<Option<bool>, SourceError> {
        let Some(counts) = filters
            .1
            .as_ref()
            .and_then(|filter| self.window_tile_counts(filter))
        else {
            return Ok(None);
        };
        Ok(crate::source::grid::dense_from_densest(
            &counts,
            zoom,
            aggregate_above,
        ))
    }

    fn attribute_schema(&self) -> Option<&AttributeSchema> {
        self.attributes.as_ref().map(Attributes::schema)
    }

    fn attribute_summary(&self) -> Option<AttributeSummary> {
        self.summary.clone()
    }

    async fn max_cell_weight(&self, cell: f64, filters: &FilterValues) -> Result<f64, SourceError> {
        if let Some(filter) = &filters.1 {
            return Ok(crate::render::density::reference_max(
                &self.all_filtered(filter),
                1.0 / cell,
                1.0,
            ));
        }
        // Where the cells are whole blocks of a level's pixels, its bins give the same sums
        // as the points, at a cost bounded by the level's size.
        if let Some(max) = self
            .pyramid
            .block_level(cell)
            .and_then(|(z, k)| self.pyramid.max_block_weight(z, k))
        {
            return Ok(max);
        }
        Ok(crate::render::density::reference_max(
            &self.points,
            1.0 / cell,
            1.0,
        ))
    }

    fn info(&self) -> LayerInfo {
        self.info.clone()
    }
}

/// Layers from this many points up show a progress bar while their pyramid is built.
const LARGE_LAYER: usize = 1_000_000;

fn count_grid(points: &[WorldPoint]) -> CountGrid {
    let side = 1usize << crate::source::grid::LEVEL;
    let mut cells = vec![0u64; side * side];
    for p in points {
        cells[CountGrid::cell(p.y) as usize * side + CountGrid::cell(p.x) as usize] += 1;
    }
    CountGrid::from_cells(
        cells
            .iter()
            .enumerate()
            .filter(|(_, &n)| n > 0)
            .map(|(i, &n)| ((i % side) as u32, (i / side) as u32, n)),
    )
}

/// About two points per cell, between 16 x 16 and 1024 x 1024 cells.
fn grid_level(count: usize) -> u32 {
    let mut level = 4;
    while level < 10 && (1usize << (2 * level)) * 2 < count {
        level += 1;
    }
    level
}

/// `area` within the world square, if they meet.
fn clip(area: &WorldBox) -> Option<WorldBox> {
    let clipped = WorldBox {
        x0: area.x0.max(0.0),
        y0: area.y0.max(0.0),
        x1: area.x1.min(1.0),
        y1: area.y1.min(1.0),
    };
    (clipped.x0 <= clipped.x1 && clipped.y0 <= clipped.y1).then_some(clipped)
}

fn cell_index(v: f64, n: usize) -> usize {
    ((v * n as f64) as usize).min(n - 1)
}

fn bounds_of(points: &[WorldPoint]) -> [f64; 4] {
    if points.is_empty() {
        return WorldBox::WORLD.to_lonlat();
    }
    let mut b = WorldBox {
        x0: f64::MAX,
        y0: f64::MAX,
        x1: f64::MIN,
        y1: f64::MIN,
    };
    for p in points {
        b.x0 = b.x0.min(p.x);
        b.y0 = b.y0.min(p.y);
        b.x1 = b.x1.max(p.x);
        b.y1 = b.y1.max(p.y);
    }
    b.to_lonlat()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pt(x: f64, y: f64, seq: u32) -> WorldPoint {
        WorldPoint { x, y, w: 1.0, seq }
    }

    #[test]
    fn box_queries_match_a_linear_scan() {
        let mut state = 7u64;
        let mut next = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        let points: Vec<WorldPoint> = (0..20_000).map(|i| pt(next(), next(), i)).collect();
        let store = MemoryStore::new(points.clone(), None);
        for _ in 0..200 {
            let (a, b, c, d) = (next(), next(), next(), next());
            let area = WorldBox {
                x0: a.min(b),
                x1: a.max(b) * 0.3 + a.min(b) * 0.7,
                y0: c.min(d),
                y1: c.max(d),
            };
            let mut expected: Vec<u32> = points
                .iter()
                .filter(|p| area.contains(p.x, p.y))
                .map(|p| p.seq)
                .collect();
            let mut got: Vec<u32> = store.query(&area).iter().map(|p| p.seq).collect();
            expected.sort_unstable();
            got.sort_unstable();
            assert_eq!(got, expected);
        }
    }

    #[test]
    fn queries_outside_the_world_and_edges_are_safe() {
        let store = MemoryStore::new(
            vec![
                pt(0.0, 0.0, 0),
                pt(1.0, 1.0, 1),
                pt(f64::NAN, 0.5, 2),
                pt(1.5, 0.5, 3),
            ],
            None,
        );
        assert_eq!(store.info().count, 2);
        let all = store.query(&WorldBox {
            x0: -5.0,
            y0: -5.0,
            x1: 5.0,
            y1: 5.0,
        });
        assert_eq!(all.len(), 2);
        assert!(store
            .query(&WorldBox {
                x0: 2.0,
                y0: 2.0,
                x1: 3.0,
                y1: 3.0
            })
            .is_empty());
        assert!(store
            .query(&WorldBox {
                x0: 0.6,
                y0: 0.6,
                x1: 0.4,
                y1: 0.4
            })
            .is_empty());
        let empty = MemoryStore::new(Vec::new(), None);
        assert!(empty
            .query(&WorldBox {
                x0: 0.0,
                y0: 0.0,
                x1: 1.0,
                y1: 1.0
            })
            .is_empty());
    }

    #[test]
    fn order_is_the_same_for_overlapping_queries() {
        let points: Vec<WorldPoint> = (0..5000)
            .map(|i| pt((i % 97) as f64 / 97.0, (i % 89) as f64 / 89.0, i))
            .collect();
        let store = MemoryStore::new(points, None);
        let big: Vec<u32> = store
            .query(&WorldBox {
                x0: 0.1,
                y0: 0.1,
                x1: 0.9,
                y1: 0.9,
            })
            .iter()
            .map(|p| p.seq)
            .collect();
        let small: Vec<u32> = store
            .query(&WorldBox {
                x0: 0.3,
                y0: 0.2,
                x1: 0.5,
                y1: 0.6,
            })
            .iter()
            .map(|p| p.seq)
            .collect();
        let filtered: Vec<u32> = big.iter().copied().filter(|s| small.contains(s)).collect();
        assert_eq!(filtered, small);
    }
}
