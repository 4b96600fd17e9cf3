//! Pixel bins and the raw-points answer for client-side heatmaps: points as `[lat, lng, w]`,
//! or, above the limit, bins whose weights still sum to the true total.

use crate::render::WorldPoint;
use crate::tile::{world_x_to_lon, world_y_to_lat, WorldBox};
use serde::Serialize;
use std::collections::HashMap;

/// One cell of a global square grid (`floor(x * scale)`, `floor(y * scale)`), with the
/// count and weight of its points and their weighted position sums.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Bin {
    pub bx: i64,
    pub by: i64,
    pub count: u64,
    pub weight: f64,
    /// Sums of `w * x` and `w * y` (world units), so a bin can sit at its weighted mean.
    pub wx: f64,
    pub wy: f64,
}

impl Bin {
    /// Counts one point in.
    fn add(&mut self, p: &WorldPoint) {
        let w = f64::from(p.w);
        self.count += 1;
        self.weight += w;
        self.wx += w * p.x;
        self.wy += w * p.y;
    }

    /// The weighted mean position; the bin's centre when its weights sum to zero.
    pub fn position(&self, scale: f64) -> (f64, f64) {
        if self.weight > 0.0 {
            (self.wx / self.weight, self.wy / self.weight)
        } else {
            (
                (self.bx as f64 + 0.5) / scale,
                (self.by as f64 + 0.5) / scale,
            )
        }
    }
}

/// The cells of the grid with `scale` cells per world unit that a box touches: columns
/// `x0..x1` and rows `y0..y1` (ends excluded), i.e. every cell meeting the half-open box
/// `[x0, x1) x [y0, y1)` (at least one cell per axis).
///
/// A source answers bins for whole cells, so a bin never depends on where the box cut it:
/// tiles, overlays and precomputed pyramids all see the same bins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CellRange {
    pub x0: i64,
    pub x1: i64,
    pub y0: i64,
    pub y1: i64,
}

impl CellRange {
    /// Every cell any source can hold (with room for `query_area`'s extra cell).
    pub const EVERYTHING: CellRange = CellRange {
        x0: i64::MIN / 4,
        x1: i64::MAX / 4,
        y0: i64::MIN / 4,
        y1: i64::MAX / 4,
    };

    pub fn of(area: &WorldBox, scale: f64) -> CellRange {
        let start = |v: f64| (v * scale).floor() as i64;
        let end = |v0: i64, v: f64| ((v * scale).ceil() as i64).max(v0 + 1);
        let (x0, y0) = (start(area.x0), start(area.y0));
        CellRange {
            x0,
            x1: end(x0, area.x1),
            y0,
            y1: end(y0, area.y1),
        }
    }

    pub fn contains(&self, bx: i64, by: i64) -> bool {
        (self.x0..self.x1).contains(&bx) && (self.y0..self.y1).contains(&by)
    }

    /// The world box these cells cover, grown by one cell on each side so that a point
    /// query over it surely holds every point of every cell despite rounding; the extra
    /// points are dropped by [`CellRange::contains`].
    pub fn query_area(&self, scale: f64) -> WorldBox {
        WorldBox {
            x0: (self.x0 - 1) as f64 / scale,
            y0: (self.y0 - 1) as f64 / scale,
            x1: (self.x1 + 1) as f64 / scale,
            y1: (self.y1 + 1) as f64 / scale,
        }
    }
}

/// The zoom whose pixels `scale` counts per world unit (`256 * 2^z`), if it is one.
pub fn pixel_zoom(scale: f64) -> Option<u8> {
    (0..=crate::tile::MAX_ZOOM).find(|&z| 256.0 * f64::from(z).exp2() == scale)
}

/// Ranges of up to this many cells are binned in a dense array (a tile's range holds about
/// 110,000); larger ones, such as big overlays, in a hash map.
const DENSE_CELLS: i64 = 1 << 20;

/// The bins of the cells in `cells`, from points that include at least all of theirs.
pub fn bins_in(points: &[WorldPoint], scale: f64, cells: &CellRange) -> Vec<Bin> {
    let mut sums = CellSums::new(scale, cells);
    points.iter().for_each(|p| sums.add(p));
    sums.into_bins()
}

/// The bins of a range of cells, summed from points as they come, so that a source bins
/// what it holds without first copying it out. The sums are [`bins_in`]'s: in the order the
/// points come, sorted by (row, column) at the end.
pub struct CellSums {
    scale: f64,
    cells: CellRange,
    width: i64,
    /// Dense ranges (up to [`DENSE_CELLS`]): per cell, 1 + its bin's index in `bins`, or 0.
    /// Four bytes a cell rather than a whole bin's 48: an overlay's million cells cost 4 MB,
    /// not 48, however few of them hold points.
    slots: Vec<u32>,
    /// Larger ranges, such as big overlays: each cell's index in `bins`, hashed.
    sparse: HashMap<(i64, i64), u32>,
    bins: Vec<Bin>,
}

impl CellSums {
    pub fn new(scale: f64, cells: &CellRange) -> CellSums {
        let (width, height) = (cells.x1 - cells.x0, cells.y1 - cells.y0);
        let dense = width.saturating_mul(height) <= DENSE_CELLS;
        CellSums {
            scale,
            cells: *cells,
            width,
            slots: if dense {
                vec![0; (width * height) as usize]
            } else {
                Vec::new()
            },
            sparse: HashMap::new(),
            bins: Vec::new(),
        }
    }

    /// Counts `p` in, if its cell is in the range.
    pub fn add(&mut self, p: &WorldPoint) {
        let (bx, by) = (
            (p.x * self.scale).floor() as i64,
            (p.y * self.scale).floor() as i64,
        );
        if !self.cells.contains(bx, by) {
            return;
        }
        let next = self.bins.len() as u32;
        let index = if self.slots.is_empty() {
            *self.sparse.entry((bx, by)).or_insert(next)
        } else {
            let slot = &mut self.slots
                [((by - self.cells.y0) * self.width + (bx - self.cells.x0)) as usize];
            if *slot == 0 {
                *slot = next + 1;
            }
            *slot - 1
        };
        if index == next {
            self.bins.push(Bin {
                bx,
                by,
                ..Bin::default()
            });
        }
        self.bins[index as usize].add(p);
    }

    /// The bins with points, sorted by (row, column).
    pub fn into_bins(mut self) -> Vec<Bin> {
        if self.slots.is_empty() {
            sort_bins(&mut self.bins);
            return self.bins;
        }
        // Walking the cells in order yields the bins sorted without a sort.
        let mut sorted = Vec::with_capacity(self.bins.len());
        sorted.extend(
            self.slots
                .iter()
                .filter(|&&slot| slot != 0)
                .map(|&slot| self.bins[slot as usize - 1]),
        );
        sorted
    }
}

/// Bins `points` on the grid of `scale` cells per world unit, sorted by (row, column), so
/// every source that holds the same points gives the same bins.
pub fn bin_points(points: &[WorldPoint], scale: f64) -> Vec<Bin> {
    bins_in(points, scale, &CellRange::EVERYTHING)
}

pub fn sort_bins(bins: &mut [Bin]) {
    bins.sort_unstable_by_key(|b| (b.by, b.bx));
}

/// Merges bins into the grid half as fine (`scale / 2`).
fn coarsen(bins: &[Bin]) -> Vec<Bin> {
    let mut index: HashMap<(i64, i64), Bin> = HashMap::new();
    for b in bins {
        let key = (b.bx.div_euclid(2), b.by.div_euclid(2));
        let m = index.entry(key).or_insert(Bin {
            bx: key.0,
            by: key.1,
            ..Bin::default()
        });
        m.count += b.count;
        m.weight += b.weight;
        m.wx += b.wx;
        m.wy += b.wy;
    }
    let mut out: Vec<Bin> = index.into_values().collect();
    sort_bins(&mut out);
    out
}

/// The largest total weight of any `k` x `k` block of the bins' grid (blocks aligned to the
/// grid's origin), from `(column, row, weight)` triples: the density reference from bins.
pub fn max_block_weight(bins: impl Iterator<Item = (i64, i64, f64)>, k: i64) -> f64 {
    let k = k.max(1);
    let mut blocks: HashMap<(i64, i64), f64> = HashMap::new();
    for (bx, by, w) in bins {
        *blocks
            .entry((bx.div_euclid(k), by.div_euclid(k)))
            .or_default() += w;
    }
    blocks.into_values().fold(0.0, f64::max)
}

/// What a bin's point carries as its weight `w`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinMass {
    /// The summed weight of its points.
    Weight,
    /// How many points it holds (for styles that draw every point alike).
    Count,
}

/// Bins as points for the renderers: each at its cell's centre (exact, whatever order the
/// source summed in) with its `mass`; `seq` follows the grid order.
pub fn bins_as_points(bins: &[Bin], scale: f64, mass: BinMass) -> Vec<WorldPoint> {
    bins.iter()
        .enumerate()
        .map(|(i, b)| WorldPoint {
            x: (b.bx as f64 + 0.5) / scale,
            y: (b.by as f64 + 0.5) / scale,
            w: match mass {
                BinMass::Weight => b.weight as f32,
                BinMass::Count => b.count as f32,
            },
            seq: i as u32,
        })
        .collect()
}

/// `{"data": [[lat, lng, w], ...], "count": N, "aggregated": bool}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PointsAnswer {
    pub data: Vec<[f64; 3]>,
    /// How many source points the answer covers (equal to `data.len()` unless aggregated).
    pub count: u64,
    pub aggregated: bool,
    /// Side of one bin in pixels of the requested zoom, when aggregated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bin_px: Option<f64>,
}

/// The answer for at most `limit` points: as they are, in their input order (`seq`).
pub fn answer_points(mut points: Vec<WorldPoint>) -> PointsAnswer {
    points.sort_by_key(|p| p.seq);
    PointsAnswer {
        data: points
            .iter()
            .map(|p| [lat(p.y), lon(p.x), f64::from(p.w)])
            .collect(),
        count: points.len() as u64,
        aggregated: false,
        bin_px: None,
    }
}

/// The answer from one-pixel bins (`scale` = pixels per world unit): bins double in size
/// until at most `limit` remain.
pub fn answer_bins(mut bins: Vec<Bin>, limit: usize, scale: f64) -> PointsAnswer {
    let count = bins.iter().map(|b| b.count).sum();
    let mut bin_px = 1.0;
    // 64 halvings reach a single bin from any i64 grid, so the loop always ends.
    for _ in 0..64 {
        if bins.len() <= limit.max(1) {
            break;
        }
        bins = coarsen(&bins);
        bin_px *= 2.0;
    }
    let cell_scale = scale / bin_px;
    PointsAnswer {
        data: bins
            .iter()
            .map(|b| {
                let (x, y) = b.position(cell_scale);
                [lat(y), lon(x), b.weight]
            })
            .collect(),
        count,
        aggregated: true,
        bin_px: Some(bin_px),
    }
}

/// Degrees rounded to 1e-7 (about 1 cm): enough for any heatmap, and it keeps JSON short.
fn lat(y: f64) -> f64 {
    (world_y_to_lat(y) * 1e7).round() / 1e7
}

fn lon(x: f64) -> f64 {
    (world_x_to_lon(x) * 1e7).round() / 1e7
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cloud(n: u32) -> Vec<WorldPoint> {
        (0..n)
            .map(|i| WorldPoint {
                x: 0.5 + (i % 300) as f64 * 1e-6,
                y: 0.3 + (i / 300) as f64 * 1e-6,
                w: 0.5 + (i % 7) as f32,
                seq: i,
            })
            .collect()
    }

    #[test]
    fn small_answers_are_raw_points_in_input_order() {
        let mut pts = cloud(10);
        pts.reverse();
        let a = answer_points(pts.clone());
        assert!(!a.aggregated);
        assert_eq!(a.data.len(), 10);
        assert_eq!(a.count, 10);
        assert_eq!(a.data[3][2], f64::from(pts[6].w));
    }

    #[test]
    fn aggregated_bins_keep_the_total_weight_and_respect_the_limit() {
        let pts = cloud(30_000);
        let total: f64 = pts.iter().map(|p| f64::from(p.w)).sum();
        let scale = 256.0 * 2f64.powi(14);
        for limit in [1, 50, 1000, 29_999] {
            let a = answer_bins(bin_points(&pts, scale), limit, scale);
            assert!(a.aggregated);
            assert!(a.data.len() <= limit, "{} > {limit}", a.data.len());
            assert_eq!(a.count, 30_000);
            let sum: f64 = a.data.iter().map(|d| d[2]).sum();
            assert!((sum - total).abs() < 1e-9 * total, "{sum} vs {total}");
        }
    }

    #[test]
    fn bins_are_sorted_and_independent_of_point_order() {
        let pts = cloud(5000);
        let mut reversed = pts.clone();
        reversed.reverse();
        let (a, b) = (bin_points(&pts, 1e5), bin_points(&reversed, 1e5));
        assert_eq!(a.len(), b.len());
        assert!(a
            .windows(2)
            .all(|w| (w[0].by, w[0].bx) < (w[1].by, w[1].bx)));
        for (x, y) in a.iter().zip(&b) {
            assert_eq!((x.bx, x.by, x.count), (y.bx, y.by, y.count));
            assert!((x.weight - y.weight).abs() < 1e-9);
        }
    }

    #[test]
    fn dense_and_hashed_binning_agree_and_keep_whole_cells_in_range() {
        let pts = cloud(20_000);
        let scale = 256.0 * 2f64.powi(16);
        let area = WorldBox {
            x0: 0.50005,
            y0: 0.30002,
            x1: 0.50021,
            y1: 0.30006,
        };
        let cells = CellRange::of(&area, scale);
        let dense = bins_in(&pts, scale, &cells);
        let mut hashed = bin_points(&pts, scale);
        hashed.retain(|b| cells.contains(b.bx, b.by));
        assert!(!dense.is_empty());
        assert_eq!(dense, hashed);
        // Every point of a returned cell is counted, even those outside the area.
        let n: u64 = dense.iter().map(|b| b.count).sum();
        let in_cells = pts
            .iter()
            .filter(|p| cells.contains((p.x * scale).floor() as i64, (p.y * scale).floor() as i64))
            .count();
        assert_eq!(n, in_cells as u64);
        let wide = CellRange {
            x0: 0,
            x1: 1 << 20,
            y0: 0,
            y1: 1 << 20,
        };
        assert_eq!(bins_in(&pts, 256.0, &wide), bin_points(&pts, 256.0));
    }

    #[test]
    fn cell_ranges_cover_the_box_with_whole_cells() {
        let scale = 256.0;
        let r = CellRange::of(
            &WorldBox {
                x0: 10.0 / 256.0,
                y0: -5.5 / 256.0,
                x1: 20.0 / 256.0,
                y1: 3.2 / 256.0,
            },
            scale,
        );
        assert_eq!((r.x0, r.x1, r.y0, r.y1), (10, 20, -6, 4));
        let point = CellRange::of(
            &WorldBox {
                x0: 0.5,
                y0: 0.5,
                x1: 0.5,
                y1: 0.5,
            },
            scale,
        );
        assert_eq!((point.x1 - point.x0, point.y1 - point.y0), (1, 1));
    }

    #[test]
    fn zero_weight_bins_still_have_a_position() {
        let pts: Vec<WorldPoint> = (0..5)
            .map(|i| WorldPoint {
                x: 0.5,
                y: 0.5,
                w: 0.0,
                seq: i,
            })
            .collect();
        let a = answer_bins(bin_points(&pts, 256.0), 1, 256.0);
        assert_eq!(a.data.len(), 1);
        assert!(a.data[0][0].is_finite() && a.data[0][1].is_finite());
    }
}
