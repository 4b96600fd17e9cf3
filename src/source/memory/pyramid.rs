//! The bin pyramid of a layer held in memory: each dense zoom's one-pixel bins, built once at
//! load on every core, so a dense tile reads the few thousand bins it covers instead of
//! every point under it.
//!
//! Bins are those of [`crate::source::aggregate::bins_in`] (cells `floor(x * 256 * 2^z)`):
//! the finest level is summed from the points in the store's order, exactly as `bins_in`
//! sums them, and each coarser level merges 2 x 2 bins of the level above.

use crate::render::WorldPoint;
use crate::source::aggregate::{Bin, CellRange};

/// The finest zoom a pyramid may hold: its pixel indices (256 * 2^z per axis) stay in u32.
pub const MAX_LEVEL: u8 = 22;

/// Levels are kept from zoom 0 up while all of them together hold at most this many bins
/// per point: past that, a level's bins are nearly as many as the points under it (reading
/// them saves little over binning the points), and the pyramid would outgrow the points.
/// With bins quadrupling from level to level, the top level then holds up to about 3/4 of a
/// bin per point. Each bin takes [`BIN_BYTES`], so a pyramid takes at most 40 bytes a point.
pub const MAX_BINS_PER_POINT: usize = 1;

/// Bytes one stored bin takes.
pub const BIN_BYTES: usize = std::mem::size_of::<StoredBin>();

/// One bin as stored: pixel column and row at the level's zoom, then the sums of
/// [`Bin`].
#[derive(Debug, Clone, Copy, PartialEq)]
struct StoredBin {
    bx: u32,
    by: u32,
    count: u32,
    weight: f64,
    wx: f64,
    wy: f64,
}

impl StoredBin {
    fn add(&mut self, other: &StoredBin) {
        self.count += other.count;
        self.weight += other.weight;
        self.wx += other.wx;
        self.wy += other.wy;
    }

    fn as_bin(&self) -> Bin {
        Bin {
            bx: i64::from(self.bx),
            by: i64::from(self.by),
            count: u64::from(self.count),
            weight: self.weight,
            wx: self.wx,
            wy: self.wy,
        }
    }
}

/// One zoom's bins, sorted by (row, column), with where each non-empty row starts.
#[derive(Debug, Default, Clone, PartialEq)]
struct Level {
    bins: Vec<StoredBin>,
    /// (row, index of its first bin) for every row that has bins, ascending.
    rows: Vec<(u32, u32)>,
}

impl Level {
    fn from_sorted(bins: Vec<StoredBin>) -> Level {
        let mut rows = Vec::new();
        for (i, b) in bins.iter().enumerate() {
            if rows.last().map_or(true, |&(by, _)| by != b.by) {
                rows.push((b.by, i as u32));
            }
        }
        Level { bins, rows }
    }

    /// The bins of the row at `rows[i]`.
    fn row(&self, i: usize) -> &[StoredBin] {
        let start = self.rows[i].1 as usize;
        let end = self
            .rows
            .get(i + 1)
            .map_or(self.bins.len(), |&(_, s)| s as usize);
        &self.bins[start..end]
    }
}

/// What a pyramid costs, for the log and `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PyramidSize {
    /// Zooms 0..levels are held.
    pub levels: u8,
    pub bins: u64,
    pub bytes: u64,
}

/// Levels 0..=top of a layer's bins.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Pyramid {
    levels: Vec<Level>,
}

impl Pyramid {
    /// Builds levels `0..=top` (at most [`MAX_LEVEL`]) of the store's `points`, keeping only
    /// the levels within budget ([`MAX_BINS_PER_POINT`]).
    ///
    /// `row_starts[r]` is where the store's row `r` of `row_starts.len() - 1` (a power of
    /// two) begins in `points`, which are in store order. The rows are cut into `threads`
    /// bands of about equal points, each built on its own thread: a band starts and ends on
    /// a pixel row of zoom 0, so on one of every zoom, and its bins are a run of every level.
    /// `on_level` is called as a band finishes a level (for a progress bar).
    pub fn build(
        points: &[WorldPoint],
        row_starts: &[usize],
        top: u8,
        threads: usize,
        on_level: &(dyn Fn() + Sync),
    ) -> Pyramid {
        let top = top.min(MAX_LEVEL);
        let rows = row_starts.len().saturating_sub(1).max(1);
        // Store rows that together make whole pixel rows of `top`, and of zoom 0.
        let rows_per_group = (rows >> (8 + u32::from(top)).min(63)).max(1);
        let rows_per_unit = (rows >> 8).max(1);
        let bands = band_rows(row_starts, rows_per_unit, threads.max(1));
        let per_band: Vec<Vec<Vec<StoredBin>>> = std::thread::scope(|scope| {
            let handles: Vec<_> = bands
                .windows(2)
                .map(|band| {
                    let groups: Vec<usize> = (band[0]..=band[1])
                        .step_by(rows_per_group)
                        .map(|r| row_starts[r] - row_starts[band[0]])
                        .collect();
                    let band_points = &points[row_starts[band[0]]..row_starts[band[1]]];
                    scope.spawn(move || {
                        // Levels top, top - 1, ..., 0.
                        let mut levels = vec![bin_groups(band_points, &groups, top)];
                        on_level();
                        for _ in 0..top {
                            let coarser = coarsen(levels.last().map_or(&[][..], |l| &l[..]));
                            levels.push(coarser);
                            on_level();
                        }
                        levels
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_default())
                .collect()
        });
        let budget = points.len() * MAX_BINS_PER_POINT;
        let mut levels = Vec::new();
        let mut kept = 0;
        for z in 0..=usize::from(top) {
            let index = usize::from(top) - z;
            let count: usize = per_band
                .iter()
                .map(|l| l.get(index).map_or(0, Vec::len))
                .sum();
            kept += count;
            if kept > budget {
                break;
            }
            let mut bins = Vec::with_capacity(count);
            for band in &per_band {
                if let Some(level) = band.get(index) {
                    bins.extend_from_slice(level);
                }
            }
            levels.push(Level::from_sorted(bins));
        }
        Pyramid { levels }
    }

    /// The level whose pixels are `scale` cells per world unit, if the pyramid holds it.
    pub fn level_of(&self, scale: f64) -> Option<usize> {
        crate::source::aggregate::pixel_zoom(scale)
            .map(usize::from)
            .filter(|&z| z < self.levels.len())
    }

    /// The bins of `cells` at level `z` ([`Pyramid::level_of`]), sorted by (row, column).
    pub fn bins(&self, z: usize, cells: &CellRange) -> Vec<Bin> {
        let Some(level) = self.levels.get(z) else {
            return Vec::new();
        };
        // Each row's run of bins in range first, so the answer is allocated once.
        let first_row = level
            .rows
            .partition_point(|&(by, _)| i64::from(by) < cells.y0);
        let runs: Vec<&[StoredBin]> = (first_row..level.rows.len())
            .take_while(|&i| i64::from(level.rows[i].0) < cells.y1)
            .map(|i| {
                let row = level.row(i);
                let start = row.partition_point(|b| i64::from(b.bx) < cells.x0);
                let end = row.partition_point(|b| i64::from(b.bx) < cells.x1);
                &row[start..end.max(start)]
            })
            .collect();
        let mut out = Vec::with_capacity(runs.iter().map(|r| r.len()).sum());
        for run in runs {
            out.extend(run.iter().map(StoredBin::as_bin));
        }
        out
    }

    /// The largest total weight in any `k` x `k` block of level `z`'s pixels (blocks
    /// aligned to the world's origin), if the pyramid holds that level.
    pub fn max_block_weight(&self, z: usize, k: u32) -> Option<f64> {
        let level = self.levels.get(z)?;
        let k = k.max(1);
        if k == 1 {
            return Some(level.bins.iter().fold(0.0, |m, b| m.max(b.weight)));
        }
        Some(crate::source::aggregate::max_block_weight(
            level
                .bins
                .iter()
                .map(|b| (i64::from(b.bx), i64::from(b.by), b.weight)),
            i64::from(k),
        ))
    }

    /// The coarsest level at which blocks of `cell` world units are whole numbers of
    /// pixels, with that number: there the blocks nest the pixels exactly.
    pub fn block_level(&self, cell: f64) -> Option<(usize, u32)> {
        (0..self.levels.len()).find_map(|z| {
            let k = cell * 256.0 * (z as f64).exp2();
            (k >= 1.0 && k <= f64::from(1u32 << 20) && k == k.round()).then_some((z, k as u32))
        })
    }

    pub fn size(&self) -> PyramidSize {
        let bins: u64 = self.levels.iter().map(|l| l.bins.len() as u64).sum();
        let rows: u64 = self.levels.iter().map(|l| l.rows.len() as u64).sum();
        PyramidSize {
            levels: self.levels.len() as u8,
            bins,
            bytes: bins * BIN_BYTES as u64 + rows * 8,
        }
    }
}

/// The finest zoom, up to `top`, whose levels together surely fit the budget
/// ([`MAX_BINS_PER_POINT`]), from an upper bound on each level's bins: a count-grid cell
/// (a pixel of zoom 2) holds at most as many bins as it has points, or as it has pixels;
/// zooms 0 and 1 have exactly as many bins as pixels with a point.
/// Building only that far keeps the build's own memory within the budget too (it holds
/// every level it makes until the end). Zoom 0 always fits: it has at most one bin a point.
pub fn finest_within_budget(points: &[WorldPoint], top: u8) -> u8 {
    use crate::source::grid::{CountGrid, LEVEL};
    let side = 1usize << LEVEL;
    let mut cells = vec![0u32; side * side];
    for p in points {
        let cell = CountGrid::cell(p.y) as usize * side + CountGrid::cell(p.x) as usize;
        cells[cell] = cells[cell].saturating_add(1);
    }
    let budget = (points.len() * MAX_BINS_PER_POINT) as u64;
    let mut total = 0u64;
    let mut finest = 0;
    for z in 0..=top.min(MAX_LEVEL) {
        let bound = if z < LEVEL - 8 {
            // Pixels coarser than the cells: exactly the pixels that hold a point.
            let shift = LEVEL - 8 - z;
            let mut occupied = std::collections::HashSet::new();
            for (i, _) in cells.iter().enumerate().filter(|(_, &n)| n > 0) {
                occupied.insert(((i % side) >> shift, (i / side) >> shift));
            }
            occupied.len() as u64
        } else {
            let pixels_per_cell = 1u64 << (2 * u32::from(z + 8 - LEVEL));
            cells
                .iter()
                .map(|&n| u64::from(n).min(pixels_per_cell))
                .sum()
        };
        total += bound;
        if total > budget {
            break;
        }
        finest = z;
    }
    finest
}

/// Row boundaries cutting `row_starts`' rows into up to `threads` bands of about equal
/// points, each a whole number of `unit` rows: 0, ..., the row count.
fn band_rows(row_starts: &[usize], unit: usize, threads: usize) -> Vec<usize> {
    let rows = row_starts.len().saturating_sub(1);
    let total = row_starts.last().copied().unwrap_or(0);
    let mut bounds = vec![0];
    for t in 1..threads {
        let target = total * t / threads;
        let row = row_starts.partition_point(|&s| s < target);
        let row = (row / unit * unit).min(rows);
        if row > bounds.last().copied().unwrap_or(0) {
            bounds.push(row);
        }
    }
    if bounds.last() != Some(&rows) {
        bounds.push(rows);
    }
    bounds
}

/// The bins at zoom `z` of the points in `groups` (boundaries in `points`; groups share no
/// pixel row and come in row order), sorted by (row, column). Within a bin the points are
/// summed in store order, as [`crate::source::aggregate::bins_in`] sums them.
fn bin_groups(points: &[WorldPoint], groups: &[usize], z: u8) -> Vec<StoredBin> {
    let scale = 256.0 * f64::from(z).exp2();
    // No clamp at the far edge, as in `bins_in`: a point at x = 1 is in column 256 * 2^z,
    // outside every tile's cells (store points lie in [0, 1], so no cell is negative).
    let cell = |v: f64| (v * scale).floor() as u64;
    let mut out = Vec::new();
    let mut keyed: Vec<(u64, u32)> = Vec::new();
    for w in groups.windows(2) {
        let group = &points[w[0]..w[1]];
        keyed.clear();
        keyed.extend(
            group
                .iter()
                .enumerate()
                .map(|(i, p)| ((cell(p.y) << 32) | cell(p.x), i as u32)),
        );
        // (key, index) orders equal keys by store order: the sums run in that order.
        keyed.sort_unstable();
        let mut current: Option<StoredBin> = None;
        for &(key, i) in &keyed {
            let p = &group[i as usize];
            let w = f64::from(p.w);
            let (bx, by) = ((key & 0xffff_ffff) as u32, (key >> 32) as u32);
            match &mut current {
                Some(b) if b.bx == bx && b.by == by => {
                    b.count += 1;
                    b.weight += w;
                    b.wx += w * p.x;
                    b.wy += w * p.y;
                }
                _ => {
                    out.extend(current.take());
                    current = Some(StoredBin {
                        bx,
                        by,
                        count: 1,
                        weight: w,
                        wx: w * p.x,
                        wy: w * p.y,
                    });
                }
            }
        }
        out.extend(current);
    }
    out
}

/// The level half as fine: rows 2r and 2r + 1 merge into row r, columns likewise. Each
/// coarse bin sums its (up to four) fine bins in (row, column) order.
fn coarsen(fine: &[StoredBin]) -> Vec<StoredBin> {
    let mut out: Vec<StoredBin> = Vec::with_capacity(fine.len() / 2);
    let mut pair: Vec<StoredBin> = Vec::new();
    let mut i = 0;
    while i < fine.len() {
        let row = fine[i].by / 2;
        let mut j = i;
        while j < fine.len() && fine[j].by / 2 == row {
            j += 1;
        }
        pair.clear();
        pair.extend(fine[i..j].iter().map(|b| StoredBin {
            bx: b.bx / 2,
            by: row,
            ..*b
        }));
        // Stable: equal columns keep (row, column) order, so sums run in that order.
        pair.sort_by_key(|b| b.bx);
        for b in &pair {
            match out.last_mut() {
                Some(last) if last.by == row && last.bx == b.bx => last.add(b),
                _ => out.push(*b),
            }
        }
        i = j;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::aggregate::bins_in;

    fn cloud() -> Vec<WorldPoint> {
        let mut pts = crate::synth::clustered_points_weighted(100_000, 5, [0.3, 0.2, 0.4, 0.3]);
        // Points on the world's edges and corners, and a heavy duplicate.
        for (i, (x, y)) in [(0.0, 0.0), (1.0, 1.0), (0.0, 1.0), (0.5, 0.5), (0.5, 0.5)]
            .into_iter()
            .enumerate()
        {
            pts.push(WorldPoint {
                x,
                y,
                w: 2.0,
                seq: 100_000 + i as u32,
            });
        }
        pts
    }

    /// The pyramid of a store of `points` on two threads, and the store's points (in store
    /// order, as the pyramid summed them).
    fn pyramid_of(points: Vec<WorldPoint>, top: u8) -> (Pyramid, Vec<WorldPoint>) {
        let store = super::super::MemoryStore::new(points, None);
        let pyramid = Pyramid::build(store.all(), &store.row_starts(), top, 2, &|| {});
        (pyramid, store.all().to_vec())
    }

    /// The same cells and counts; sums equal up to the order they were added in.
    fn assert_close(got: &[Bin], expected: &[Bin], z: usize) {
        assert_eq!(got.len(), expected.len(), "zoom {z}");
        assert!(!got.is_empty(), "zoom {z}");
        for (g, e) in got.iter().zip(expected) {
            assert_eq!((g.bx, g.by, g.count), (e.bx, e.by, e.count), "zoom {z}");
            for (a, b) in [(g.weight, e.weight), (g.wx, e.wx), (g.wy, e.wy)] {
                assert!(
                    (a - b).abs() <= 1e-9 * b.abs().max(1.0),
                    "zoom {z}: {a} vs {b}"
                );
            }
        }
    }

    #[test]
    fn levels_equal_binning_the_points() {
        let (pyramid, pts) = pyramid_of(cloud(), 9);
        assert!(pyramid.levels.len() >= 4, "{}", pyramid.levels.len());
        for z in 0..pyramid.levels.len() {
            let scale = 256.0 * (z as f64).exp2();
            assert_eq!(pyramid.level_of(scale), Some(z));
            let cells = CellRange {
                x0: (0.33 * scale) as i64,
                x1: (0.36 * scale) as i64 + 3,
                y0: (0.22 * scale) as i64,
                y1: (0.27 * scale) as i64,
            };
            assert_close(&pyramid.bins(z, &cells), &bins_in(&pts, scale, &cells), z);
            // The whole world, edges included.
            let all = CellRange::of(&crate::tile::WorldBox::WORLD, scale);
            assert_close(&pyramid.bins(z, &all), &bins_in(&pts, scale, &all), z);
        }
    }

    #[test]
    fn levels_past_the_budget_are_left_out() {
        let (pyramid, pts) = pyramid_of(cloud(), 22);
        let size = pyramid.size();
        assert!(size.levels < 22, "{size:?}");
        assert!(
            size.bins as usize <= pts.len() * MAX_BINS_PER_POINT,
            "{size:?}"
        );
        assert_eq!(
            size.bytes,
            size.bins * BIN_BYTES as u64
                + pyramid
                    .levels
                    .iter()
                    .map(|l| l.rows.len() as u64 * 8)
                    .sum::<u64>()
        );
    }

    #[test]
    fn the_bound_never_lets_a_level_past_the_budget() {
        let points = cloud();
        let finest = finest_within_budget(&points, 22);
        let (pyramid, _) = pyramid_of(points.clone(), finest);
        // Everything built was kept: the bound is an upper bound.
        assert_eq!(pyramid.size().levels, finest + 1);
        // A scatter where every point is a bin of its own at every zoom: zoom 0 alone takes
        // the whole budget.
        let spread: Vec<WorldPoint> = (0..10_000u32)
            .map(|i| WorldPoint {
                x: (f64::from(i % 100) + 0.5) / 100.0,
                y: (f64::from(i / 100) + 0.5) / 100.0,
                w: 1.0,
                seq: i,
            })
            .collect();
        assert_eq!(finest_within_budget(&spread, 5), 0);
        assert_eq!(finest_within_budget(&[], 5), 5);
    }

    #[test]
    fn block_weights_equal_the_points_reference() {
        let (pyramid, pts) = pyramid_of(cloud(), 8);
        for (z, radius) in [(0usize, 25u32), (2, 10), (3, 25), (3, 1), (3, 8)] {
            let cell = f64::from(radius) / (256.0 * (z as f64).exp2());
            let (level, k) = pyramid.block_level(cell).expect("a level");
            assert!(level <= z);
            let from_bins = pyramid.max_block_weight(level, k).expect("level");
            let from_points = crate::render::density::reference_max(&pts, 1.0 / cell, 1.0);
            assert!(
                (from_bins - from_points).abs() <= 1e-9 * from_points,
                "zoom {z} radius {radius}: {from_bins} vs {from_points}"
            );
        }
        assert_eq!(pyramid.block_level(0.3 / 256.0), None);
    }

    #[test]
    fn an_empty_store_has_empty_levels() {
        let (pyramid, _) = pyramid_of(Vec::new(), 4);
        assert_eq!(pyramid.size().bins, 0);
        assert!(pyramid
            .bins(0, &CellRange::of(&crate::tile::WorldBox::WORLD, 256.0))
            .is_empty());
    }
}
