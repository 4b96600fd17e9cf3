//! Log sums of bins that share one stencil, gathered pixel by pixel: the same sums, to the
//! last bit, as drawing the bins one by one, in a loop that vectorizes.
//!
//! Tile bins are the centres of aligned cells, so they all sit at the same fraction of a pixel
//! and draw one stencil. A pixel's sum is then a convolution of the grid of bin counts with the
//! stencil. Computed per block of output pixels with the sums held in registers, it costs
//! `pixels × taps` multiply-adds with no per-bin overhead, against `bins × taps` scattered
//! ones: the gain is where nearly every pixel holds a bin (low zooms over dense data).
//!
//! Floating-point sums depend on their order, and seamless tiles need a pixel's value to be
//! the same in every image that holds it. The scatter adds a pixel's bins in ascending (row,
//! column) of their pixels (`place` sorts them); the gather walks stencil rows and columns
//! backwards, which visits those same bins in that same order, and a cell without a bin adds
//! a zero, which changes no sum. [`shared_stencil`] checks that order, so the two agree
//! exactly and either may draw any image.

use super::{Placed, Stencil};

/// Output pixels summed together, held in registers across all of a stencil's taps.
const BLOCK: usize = 16;

/// The one stencil position (`Placed::q`) every bin shares, when the gather can draw them: one
/// stencil, bins strictly ascending by (row, column) (so no two in one cell, and in the
/// scatter's order), and at least two for every five pixels, below which drawing bin by bin
/// is cheaper.
pub(super) fn shared_stencil(placed: &[Placed], w: usize, h: usize) -> Option<usize> {
    // The gather pays for every pixel and tap, the scatter for every bin and tap plus a
    // per-row overhead; they cost about the same at this fill.
    if placed.len() * 5 < w * h * 2 {
        return None;
    }
    one_stencil_in_order(placed)
}

/// The stencil position of every bin when they all share one and come strictly ascending by
/// (row, column), whatever their number.
pub(super) fn one_stencil_in_order(placed: &[Placed]) -> Option<usize> {
    let first = placed.first()?;
    let one_stencil = placed.iter().all(|b| b.q == first.q);
    let ascending = placed
        .windows(2)
        .all(|pair| (pair[0].iy, pair[0].ix) < (pair[1].iy, pair[1].ix));
    (one_stencil && ascending).then_some(first.q as usize)
}

/// For every pixel of a `w` × `h` image, the sum over `placed` of `count * ln(pixVal / 255)`,
/// with `stencil` as every bin's cone; `placed` as [`shared_stencil`] accepts it.
pub(super) fn log_sums(placed: &[Placed], stencil: &Stencil, w: usize, h: usize) -> Vec<f32> {
    let mut sums = vec![0f32; w * h];
    let Some(grid) = CountGrid::new(placed, stencil, w, h) else {
        return sums;
    };
    for (k, out_row) in sums.chunks_exact_mut(w).enumerate() {
        for (block, out) in out_row.chunks_mut(BLOCK).enumerate() {
            let j0 = block * BLOCK;
            let mut acc = [0f32; BLOCK];
            // Bins in ascending (row, column): stencil rows from the last, columns from the
            // last (a bin further left reaches this pixel with a later column of its cone).
            for row in stencil.rows.iter().rev() {
                let taps = row.values.len();
                // Column `t` of the cone reaches pixel `j0` from the bin `t` columns left of
                // where column 0 lands; the last column's bin is the leftmost.
                let leftmost = grid.column(j0 as i64 - row.lo - (taps as i64 - 1));
                let Some(counts) = grid
                    .row(k as i64 - row.dk)
                    .get(leftmost..leftmost + taps - 1 + BLOCK)
                else {
                    continue;
                };
                // Windows from the left: the cone's columns from the last.
                for (window, &value) in counts.windows(BLOCK).zip(row.values.iter().rev()) {
                    let Ok(window) = <&[f32; BLOCK]>::try_from(window) else {
                        continue;
                    };
                    for i in 0..BLOCK {
                        acc[i] += window[i] * value;
                    }
                }
            }
            out.copy_from_slice(&acc[..out.len()]);
        }
    }
    sums
}

/// Bin counts on a grid of the pixels from which the stencil can reach the image, zero where
/// there is no bin, with `BLOCK` spare columns so every block reads a whole slice.
struct CountGrid {
    counts: Vec<f32>,
    /// The pixel of the grid's first cell.
    x0: i64,
    y0: i64,
    /// Cells per grid row.
    stride: usize,
}

impl CountGrid {
    fn new(placed: &[Placed], stencil: &Stencil, w: usize, h: usize) -> Option<CountGrid> {
        let lo = stencil.rows.iter().map(|r| r.lo).min()?;
        let hi = stencil
            .rows
            .iter()
            .map(|r| r.lo + r.values.len() as i64)
            .max()?;
        let dk_lo = stencil.rows.iter().map(|r| r.dk).min()?;
        let dk_hi = stencil.rows.iter().map(|r| r.dk).max()?;
        // Pixel j reads bins j - lo - t for columns t of its cone; pixel row k reads k - dk.
        let (x0, x1) = (1 - hi, w as i64 - lo);
        let (y0, y1) = (-dk_hi, h as i64 - dk_lo);
        let stride = (x1 - x0) as usize + BLOCK;
        let mut counts = vec![0f32; stride * (y1 - y0) as usize];
        for bin in placed {
            let (ix, iy) = (i64::from(bin.ix), i64::from(bin.iy));
            if (x0..x1).contains(&ix) && (y0..y1).contains(&iy) {
                counts[(iy - y0) as usize * stride + (ix - x0) as usize] = bin.count;
            }
        }
        Some(CountGrid {
            counts,
            x0,
            y0,
            stride,
        })
    }

    /// The counts of pixel row `iy` (within the grid for every row of the image).
    fn row(&self, iy: i64) -> &[f32] {
        let start = (iy - self.y0) as usize * self.stride;
        &self.counts[start..start + self.stride]
    }

    /// The index within a row of pixel column `ix`.
    fn column(&self, ix: i64) -> usize {
        (ix - self.x0) as usize
    }
}
