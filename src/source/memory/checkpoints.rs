//! Dense running counts of a coarse zoom's pixels at every few time units, so that a
//! window's counts there are the difference of two grids read as streams, plus the few
//! units between the checkpoints and the window's ends.

use super::unit_points::UnitPoints;
use crate::source::aggregate::CellRange;

/// How many checkpoints at most: 64 grids of zoom 0 (66,049 counts) are 17 MB, of zoom 1
/// (263,169) 67 MB.
pub const MAX_CHECKPOINTS: usize = 64;

/// A zoom's running counts (and weights) at units `0, every, 2 * every, ...`.
#[derive(Debug)]
pub struct Checkpoints {
    /// Cells per axis: the zoom's `256 * 2^z` pixels, and the far edge's points (x or y = 1)
    /// in a column and row of their own, as [`crate::source::aggregate::bins_in`] puts them.
    width: usize,
    every: i64,
    /// How many units there are: the last checkpoint may stand for fewer than `every`.
    units: i64,
    /// Checkpoint `j` (the points of units before `j * every`) is
    /// `counts[j * cells..(j + 1) * cells]`, row by row.
    counts: Vec<u32>,
    /// The same for weights; `None` when every weight is 1.
    weights: Option<Vec<f64>>,
}

/// A window's counts and weights (`None` when every weight is 1) over `cells`, row by row.
pub struct WindowGrid {
    pub cells: CellRange,
    pub counts: Vec<u32>,
    pub weights: Option<Vec<f64>>,
}

impl WindowGrid {
    /// Visits (column, row, count, weight) of every cell, row by row.
    pub fn for_each(&self, mut visit: impl FnMut(i64, i64, u32, f64)) {
        let cols = (self.cells.x1 - self.cells.x0) as usize;
        if cols == 0 {
            return;
        }
        for (r, row) in self.counts.chunks(cols).enumerate() {
            let y = self.cells.y0 + r as i64;
            for (c, &count) in row.iter().enumerate() {
                let weight = self
                    .weights
                    .as_ref()
                    .map_or(f64::from(count), |w| w[r * cols + c]);
                visit(self.cells.x0 + c as i64, y, count, weight);
            }
        }
    }
}

impl Checkpoints {
    /// Cells per axis at zoom `z`.
    pub fn width(z: u8) -> usize {
        (256usize << z) + 1
    }

    /// Units between checkpoints, for `units` units in at most `most` (2 or more)
    /// checkpoints.
    fn spacing(units: i64, most: usize) -> i64 {
        let most = most.clamp(2, MAX_CHECKPOINTS) as i64;
        (units.max(1) + most - 2) / (most - 1)
    }

    /// What one grid of zoom `z` takes, in bytes.
    pub fn grid_bytes(z: u8, weighted: bool) -> usize {
        Self::width(z) * Self::width(z) * if weighted { 12 } else { 4 }
    }

    /// The checkpoints of zoom `z` over the `units` units of `points`, at most `most`
    /// ([`MAX_CHECKPOINTS`] at most).
    pub fn build(z: u8, units: i64, most: usize, points: &UnitPoints<'_>) -> Checkpoints {
        let (width, every) = (Self::width(z), Self::spacing(units, most));
        let cells = width * width;
        let checkpoints = (units / every + 1) as usize;
        let mut running = vec![0u32; cells];
        let mut running_weights = points.weights.map(|_| vec![0f64; cells]);
        let mut counts = Vec::with_capacity(checkpoints * cells);
        let mut weights = points
            .weights
            .map(|_| Vec::with_capacity(checkpoints * cells));
        for j in 0..checkpoints as i64 {
            points.add_units((j - 1).max(0) * every..j * every, |x, y, w| {
                let cell = y * width + x;
                running[cell] += 1;
                if let Some(rw) = &mut running_weights {
                    rw[cell] += w;
                }
            });
            counts.extend_from_slice(&running);
            if let (Some(all), Some(rw)) = (&mut weights, &running_weights) {
                all.extend_from_slice(rw);
            }
        }
        Checkpoints {
            width,
            every,
            units,
            counts,
            weights,
        }
    }

    /// How many grids there are.
    pub fn grids(&self) -> usize {
        self.counts.len() / (self.width * self.width)
    }

    pub fn bytes(&self) -> usize {
        self.counts.len() * 4 + self.weights.as_ref().map_or(0, |w| w.len() * 8)
    }

    /// The checkpoint nearest unit `u`, the units between them, and whether the checkpoint
    /// is at or before `u`.
    fn nearest(&self, u: i64) -> (i64, std::ops::Range<i64>, bool) {
        let below = u / self.every;
        let last = self.units / self.every;
        if below < last && (below + 1) * self.every - u < u - below * self.every {
            (below + 1, u..(below + 1) * self.every, false)
        } else {
            (below, below * self.every..u, true)
        }
    }

    /// The counts and weights of units `a..b` of `points` in `cells` (clipped to the
    /// zoom's): the difference of the checkpoints nearest `a` and `b`, corrected by the
    /// points of the units between those and `a` and `b`.
    pub fn window(&self, a: i64, b: i64, cells: &CellRange, points: &UnitPoints<'_>) -> WindowGrid {
        let edge = self.width as i64;
        let cells = CellRange {
            x0: cells.x0.clamp(0, edge),
            x1: cells.x1.clamp(0, edge),
            y0: cells.y0.clamp(0, edge),
            y1: cells.y1.clamp(0, edge),
        };
        let (cols, rows) = (
            (cells.x1 - cells.x0) as usize,
            (cells.y1 - cells.y0) as usize,
        );
        let mut counts = vec![0u32; cols * rows];
        let mut weights = self.weights.as_ref().map(|_| vec![0f64; cols * rows]);
        if a >= b {
            return WindowGrid {
                cells,
                counts,
                weights,
            };
        }
        let ((ja, loose_a, a_after), (jb, loose_b, b_after)) = (self.nearest(a), self.nearest(b));
        let grid = self.width * self.width;
        let (lo, hi) = (ja as usize * grid, jb as usize * grid);
        for r in 0..rows {
            let at = (cells.y0 as usize + r) * self.width + cells.x0 as usize;
            let out = r * cols..(r + 1) * cols;
            let (high, low) = (&self.counts[hi + at..], &self.counts[lo + at..]);
            for (c, (&h, &l)) in counts[out.clone()].iter_mut().zip(high.iter().zip(low)) {
                *c = h.wrapping_sub(l);
            }
            if let (Some(ws), Some(all)) = (&mut weights, &self.weights) {
                let (high, low) = (&all[hi + at..], &all[lo + at..]);
                for (w, (&h, &l)) in ws[out].iter_mut().zip(high.iter().zip(low)) {
                    *w = h - l;
                }
            }
        }
        // The units between `a` and its checkpoint: taken out when the checkpoint is before
        // `a` (it counts them), put in when after; the other way round at `b`. Counts may
        // wrap on the way; the result does not.
        for (units, adds) in [(loose_a, !a_after), (loose_b, b_after)] {
            let sign = if adds { 1.0 } else { -1.0 };
            points.add_units(units, |x, y, w| {
                let (x, y) = (x as i64, y as i64);
                if cells.contains(x, y) {
                    let at = (y - cells.y0) as usize * cols + (x - cells.x0) as usize;
                    counts[at] = if adds {
                        counts[at].wrapping_add(1)
                    } else {
                        counts[at].wrapping_sub(1)
                    };
                    if let Some(ws) = &mut weights {
                        ws[at] += sign * w;
                    }
                }
            });
        }
        WindowGrid {
            cells,
            counts,
            weights,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_equal_their_units_summed() {
        // At zoom 0, unit u holds u % 5 points in cell (u * 7) % cells, weight 0.5 each.
        let (units, cells) = (300, Checkpoints::width(0) * Checkpoints::width(0));
        let (mut fine_pixels, mut unit_starts) = (Vec::new(), vec![0u32]);
        for u in 0..units {
            for _ in 0..u % 5 {
                let cell = (u as usize * 7) % cells;
                fine_pixels.push((((cell / 257) as u32) << 16) | (cell % 257) as u32);
            }
            unit_starts.push(fine_pixels.len() as u32);
        }
        let halves = vec![0.5f32; fine_pixels.len()];
        let points = UnitPoints {
            fine_pixels: &fine_pixels,
            weights: Some(&halves),
            unit_starts: &unit_starts,
            fine_shift: 0,
        };
        let checkpoints = Checkpoints::build(0, units, 64, &points);
        assert_eq!(checkpoints.every, 5);
        assert_eq!(checkpoints.bytes(), 61 * Checkpoints::grid_bytes(0, true));
        let everything = CellRange {
            x0: -3,
            x1: 900,
            y0: -1,
            y1: 257,
        };
        let part = CellRange {
            x0: 3,
            x1: 120,
            y0: 1,
            y1: 6,
        };
        for (a, b) in [
            (0, 300),
            (3, 298),
            (5, 10),
            (6, 9),
            (7, 7),
            (0, 1),
            (299, 300),
            (4, 6),
            (8, 14),
            (12, 13),
            (9, 290),
        ] {
            let mut want = vec![0u32; cells];
            points.add_units(a..b, |x, y, _| want[y * 257 + x] += 1);
            for range in [&everything, &part] {
                let grid = checkpoints.window(a, b, range, &points);
                let (x0, y0) = (grid.cells.x0 as usize, grid.cells.y0 as usize);
                let cols = (grid.cells.x1 - grid.cells.x0) as usize;
                assert_eq!(grid.counts.len(), cols * (grid.cells.y1 as usize - y0));
                for (at, &count) in grid.counts.iter().enumerate() {
                    let cell = (y0 + at / cols) * 257 + x0 + at % cols;
                    assert_eq!(count, want[cell], "{a}..{b} cell {cell}");
                }
                let weights = grid.weights.expect("weighted");
                for (w, c) in weights.iter().zip(&grid.counts) {
                    assert!((w - 0.5 * f64::from(*c)).abs() < 1e-9);
                }
            }
        }
        let plain = UnitPoints {
            weights: None,
            ..points
        };
        let unweighted = Checkpoints::build(0, units, 7, &plain);
        assert!(unweighted.window(0, 300, &part, &plain).weights.is_none());
    }

    #[test]
    fn spacing_keeps_checkpoints_few() {
        for most in [2, 16, 64, 100] {
            for units in [1, 2, 40, 63, 64, 65, 731, 17_520] {
                let every = Checkpoints::spacing(units, most);
                let most = most.min(MAX_CHECKPOINTS) as i64;
                assert!(units / every < most, "{units}: {every}");
                // And not much sparser than that needs.
                assert!(every <= units / (most - 2).max(1) + 1, "{units}: {every}");
            }
        }
    }
}
