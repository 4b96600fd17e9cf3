//! The `density` style: a kernel density estimate of the points' weights, mapped to the ramp.
//!
//! The value of a pixel is the sum, over all points, of the point's weight times a smooth
//! kernel of the distance between the pixel and the point, with the kernel 1 at its centre
//! and 0 from `radius` pixels on (`radius` scales with the viewport's pixel ratio).
//!
//! # Kernel
//!
//! The kernel is a truncated Gaussian with sigma = r / 3, shifted down by its value at r and
//! rescaled so that it is exactly 1 at the centre and exactly 0 from r on:
//!
//! ```text
//! g(d) = (exp(-d² / 2σ²) - exp(-4.5)) / (1 - exp(-4.5)),  |d| < r;  0 otherwise
//! k(dx, dy) = g(dx) · g(dy)
//! ```
//!
//! It is separable, which is what makes the style fast: points are first binned into the
//! pixel cells of the global pixel grid (their pixel is the floor of their global pixel
//! coordinates), then the cells are convolved with `g` along rows and then along columns, so a
//! render costs O(points + pixels · r) instead of O(pixels · r²). The price is that the
//! support is the square |dx|, |dy| < r rather than a disc: inside the disc the kernel is the
//! radially symmetric Gaussian to within 1.1% of its peak, and between the disc and the
//! square's corners it is below 0.9% of its peak, which no palette shows as more than a faint
//! rim. The shift makes the kernel continuous at the edge of its support, so there is no
//! visible step where a plain truncated Gaussian would drop from 1.1% to 0.
//!
//! # Seamless tiles
//!
//! A pixel's value is computed from the same cells, in the same order, whatever the extent of
//! the image: cell sums accumulate in input order (in f64), and each convolution pass adds its
//! terms in ascending grid order. So given the same points in the same relative order, a
//! mosaic of tiles equals one render of the same area bit for bit (tested below).
//!
//! # Color
//!
//! With `t = v / max` (Linear), `sqrt(v / max)` (Sqrt) or `ln(1 + v) / ln(1 + max)` (Log),
//! clamped to [0, 1], a pixel's palette index is 0 (transparent) where `v <= 0` and
//! `max(1, ceil(255 t))` elsewhere, so any density at all is drawn. `max` is resolved by the
//! caller (see [`reference_max`]), never from one tile, or tiles would not match.

use super::fastfloor::{floor_f64, floor_i64};
use super::{DensityParams, DensityScale, IndexedImage, Palette, Viewport, WorldPoint};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// The largest kernel radius in image pixels. Larger requests are drawn with this radius
/// (and [`reach_px`] reports it), so an absurd `radius` cannot make a render allocate or
/// compute without bound.
pub const MAX_RADIUS_PX: f64 = 1024.0;

/// The kernel's value at its radius before the shift: exp(-r² / 2σ²) with σ = r / 3.
const EDGE: f64 = 0.011_108_996_538_242_306; // exp(-4.5)

/// How far (in image pixels) from the image a point can still change a pixel: the kernel
/// radius, `radius * pixel_ratio` (capped at [`MAX_RADIUS_PX`]).
pub fn reach_px(p: &DensityParams, pixel_ratio: f64) -> f64 {
    kernel_radius(p.radius, pixel_ratio)
}

/// The kernel radius in image pixels. A pixel ratio that is not a positive number is taken
/// as 1 rather than producing a NaN or negative reach.
fn kernel_radius(radius: u32, pixel_ratio: f64) -> f64 {
    let ratio = if pixel_ratio.is_finite() && pixel_ratio > 0.0 {
        pixel_ratio
    } else {
        1.0
    };
    (f64::from(radius) * ratio).min(MAX_RADIUS_PX)
}

/// The 1-D kernel at integer offsets -half..=half, where `half` is the largest offset still
/// strictly inside the radius (offsets at or beyond it weigh exactly 0, so they are left out).
fn kernel_taps(r: f64) -> Vec<f64> {
    // Every integer offset strictly below r; r <= MAX_RADIUS_PX keeps this small.
    let half = if r > 0.0 {
        (r.ceil() as usize).saturating_sub(1)
    } else {
        0
    };
    let sigma = r / 3.0;
    (0..=2 * half)
        .map(|i| {
            let d = i.abs_diff(half) as f64;
            if d == 0.0 {
                // Exactly 1, also for r < 1 where sigma would make the formula 0/0.
                1.0
            } else {
                ((-(d * d) / (2.0 * sigma * sigma)).exp() - EDGE) / (1.0 - EDGE)
            }
        })
        .collect()
}

/// Renders the density of `points` into `vp` with `palette` (entry 0 should be transparent:
/// it is used for every pixel without density).
///
/// Points whose weight is NaN, infinite, zero or negative, or whose coordinates are not
/// finite, are ignored, as are points beyond [`reach_px`] of the image.
pub fn render(
    points: &[WorldPoint],
    vp: &Viewport,
    p: &DensityParams,
    palette: &Palette,
) -> IndexedImage {
    let values = density_values(points, vp, p);
    let pixels = match values {
        Some(values) => {
            let to_index = IndexMap::new(p);
            values.iter().map(|&v| to_index.index(v)).collect()
        }
        None => Vec::new(),
    };
    IndexedImage {
        width: vp.width,
        height: vp.height,
        pixels,
        palette: palette.clone(),
    }
}

/// Maps a density to a palette index (see the module documentation).
struct IndexMap {
    scale: DensityScale,
    max: f64,
    /// ln(1 + max), computed once for the Log scale.
    log_max: f64,
}

impl IndexMap {
    fn new(p: &DensityParams) -> IndexMap {
        // A NaN, zero or negative max has no meaning; one unit of weight is the least
        // surprising reference (+inf is kept: it maps all density to index 1).
        let max = if p.max > 0.0 { p.max } else { 1.0 };
        IndexMap {
            scale: p.scale,
            max,
            log_max: max.ln_1p(),
        }
    }

    #[inline]
    fn index(&self, v: f64) -> u8 {
        // NaN cannot reach here (weights are filtered), but would be kept transparent.
        if v.is_nan() || v <= 0.0 {
            return 0;
        }
        let t = match self.scale {
            DensityScale::Linear => v / self.max,
            DensityScale::Sqrt => (v / self.max).sqrt(),
            DensityScale::Log => v.ln_1p() / self.log_max,
        };
        let level = t.clamp(0.0, 1.0) * 255.0;
        // ceil without a libm call: `as u8` truncates (and saturates, mapping NaN to 0, which
        // the final max(1) turns into "visible").
        let trunc = level as u8;
        let ceil = trunc + u8::from(f64::from(trunc) < level);
        ceil.max(1)
    }
}

/// The density of every pixel of `vp`, row-major, or `None` when the image is too large to
/// address (only possible on 32-bit targets; sizes are validated upstream).
fn density_values(points: &[WorldPoint], vp: &Viewport, p: &DensityParams) -> Option<Vec<f64>> {
    let w = vp.width as usize;
    let h = vp.height as usize;
    let mut out = vec![0.0f64; w.checked_mul(h)?];
    if w == 0 || h == 0 {
        return Some(out);
    }

    let taps = kernel_taps(kernel_radius(p.radius, vp.pixel_ratio));
    let half = taps.len() / 2;
    // The grid of cells that can reach the image: the image plus `half` cells on each side.
    // Image pixel x is grid column x + half.
    let gw = w.checked_add(2 * half)?;
    let gh = h.checked_add(2 * half)?;
    let mut grid = vec![0.0f64; gw.checked_mul(gh)?];

    // Past 2^50 pixels the grid arithmetic below would no longer be exact; no real viewport
    // is there, so such an image is simply empty.
    const MAX_ORIGIN: f64 = (1u64 << 50) as f64;
    if !(vp.origin_x.abs() <= MAX_ORIGIN && vp.origin_y.abs() <= MAX_ORIGIN) {
        return Some(out);
    }
    // A point's cell is floor(world * scale) on the global grid. For a fractional origin the
    // image's pixels do not lie on that grid, so it is shifted by the origin's fraction; for
    // the integer origins of tiles the shift is 0.0 and changes nothing.
    let (ox_int, ox_frac) = split_origin(vp.origin_x);
    let (oy_int, oy_frac) = split_origin(vp.origin_y);
    // The grid's first cell is global cell (x_lo, y_lo).
    let x_lo = (ox_int - half as i64) as f64;
    let y_lo = (oy_int - half as i64) as f64;
    let (sx, sy) = (vp.scale_x, vp.scale_y);
    if x_lo >= 0.0 && y_lo >= 0.0 {
        // With a non-negative integer x_lo, gx - x_lo is exact for every gx >= x_lo (the
        // difference is a multiple of gx's ulp and no larger than gx), and negative for every
        // gx < x_lo, so truncating it gives floor(gx) - x_lo without a floor per point.
        bin_points(points, &mut grid, gw, gh, |pt| {
            ((pt.x * sx - ox_frac) - x_lo, (pt.y * sy - oy_frac) - y_lo)
        });
    } else {
        // Grids reaching left of or above the world's origin: floor first, then subtract.
        bin_points(points, &mut grid, gw, gh, |pt| {
            (
                floor_f64(pt.x * sx - ox_frac) - x_lo,
                floor_f64(pt.y * sy - oy_frac) - y_lo,
            )
        });
    }

    // Rows pass, in place: grid row gy becomes, in its first w entries, its convolution with
    // the taps for image columns 0..w. Each output adds its terms in ascending grid column
    // order whichever of the two methods computes it, and a cell without weight adds exactly
    // +0.0 or nothing, which leaves a sum unchanged: the result depends only on the cells.
    let mut used = vec![false; gh];
    let mut cells = vec![0.0f64; gw];
    let all_taps: Vec<(f64, usize)> = taps.iter().copied().zip(0..).collect();
    for (gy, used) in used.iter_mut().enumerate() {
        let row = &mut grid[gy * gw..(gy + 1) * gw];
        let nonzero = row.iter().filter(|&&v| v != 0.0).count();
        if nonzero == 0 {
            continue;
        }
        *used = true;
        cells.copy_from_slice(row);
        let out_row = &mut row[..w];
        if nonzero * 4 < w {
            // Few cells: scatter each into the outputs it reaches, in ascending column order.
            // For column x the tap is taps[gc - x], by symmetry taps[x + 2*half - gc].
            out_row.fill(0.0);
            for (gc, &v) in cells.iter().enumerate() {
                if v == 0.0 {
                    continue;
                }
                let x0 = gc.saturating_sub(2 * half);
                let x1 = gc.min(w - 1);
                let t0 = x0 + 2 * half - gc;
                for (o, &k) in out_row[x0..=x1].iter_mut().zip(&taps[t0..]) {
                    *o += k * v;
                }
            }
        } else {
            // Many cells: gather, out[x] = sum over j of taps[j] * cells[x + j].
            weighted_sum(&cells, &all_taps, out_row);
        }
    }

    // Columns pass: image row y sums grid rows y ..= y + 2*half in ascending order, skipping
    // rows without weight.
    let mut terms: Vec<(f64, usize)> = Vec::with_capacity(taps.len());
    for (y, out_row) in out.chunks_exact_mut(w).enumerate() {
        terms.clear();
        terms.extend(
            taps.iter()
                .enumerate()
                .filter(|&(j, _)| used[y + j])
                .map(|(j, &k)| (k, (y + j) * gw)),
        );
        if !terms.is_empty() {
            weighted_sum(&grid, &terms, out_row);
        }
    }
    Some(out)
}

/// Outputs computed together by [`weighted_sum`]: enough independent sums to keep the
/// floating-point units busy, few enough to stay in registers.
const LANES: usize = 16;

/// `out[x] = sum over (k, offset) in terms, in order, of k * src[offset + x]`, starting from
/// 0.0. Blocks of [`LANES`] outputs are accumulated in registers across all terms, so each
/// term costs one load per output rather than a load and a store; every output still adds
/// its terms in the given order, so the blocking never changes a result.
/// Every `offset + out.len()` must be at most `src.len()`.
fn weighted_sum(src: &[f64], terms: &[(f64, usize)], out: &mut [f64]) {
    let mut blocks = out.chunks_exact_mut(LANES);
    let mut x0 = 0;
    for block in &mut blocks {
        let mut acc = [0.0f64; LANES];
        for &(k, offset) in terms {
            if let Some(s) = src
                .get(offset + x0..)
                .and_then(|s| s.first_chunk::<LANES>())
            {
                for (a, &v) in acc.iter_mut().zip(s) {
                    *a += k * v;
                }
            }
        }
        block.copy_from_slice(&acc);
        x0 += LANES;
    }
    for (i, o) in blocks.into_remainder().iter_mut().enumerate() {
        let mut acc = 0.0f64;
        for &(k, offset) in terms {
            if let Some(&v) = src.get(offset + x0 + i) {
                acc += k * v;
            }
        }
        *o = acc;
    }
}

/// Splits an origin (|origin| <= 2^52) into its integer part and its fraction (0.0 for
/// integers, keeping tile math exact).
fn split_origin(origin: f64) -> (i64, f64) {
    let int = floor_i64(origin);
    (int, origin - int as f64)
}

/// True for weights that count: positive and finite (not NaN, zero, negative or infinite).
/// One integer comparison: exactly the bit patterns 1..=0x7f7f_ffff are such f32s.
#[inline(always)]
fn weight_counts(w: f32) -> bool {
    w.to_bits().wrapping_sub(1) < 0x7f7f_ffff
}

/// Adds each point's weight to its grid cell, in input order. `cell` gives the point's
/// position in cells from the grid's first cell, with an exact integer part; the cell is
/// that integer part, and points outside 0..gw x 0..gh (or NaN) are skipped.
#[inline(always)]
fn bin_points(
    points: &[WorldPoint],
    grid: &mut [f64],
    gw: usize,
    gh: usize,
    cell: impl Fn(&WorldPoint) -> (f64, f64),
) {
    let (gw_f, gh_f) = (gw as f64, gh as f64);
    for pt in points {
        let (cx, cy) = cell(pt);
        // Non-short-circuit `&`: one predictable branch instead of six (this loop is most of
        // the cost of rendering a million points).
        let keep = weight_counts(pt.w) & (cx >= 0.0) & (cx < gw_f) & (cy >= 0.0) & (cy < gh_f);
        if !keep {
            continue;
        }
        // In range and >= 0, so truncation is the floor and the index is in the grid.
        grid[cy as usize * gw + cx as usize] += f64::from(pt.w);
    }
}

/// The per-layer, per-zoom reference density used when a request gives no `max`: the largest
/// total weight in any `radius_px` x `radius_px` pixel cell at that zoom.
///
/// Cells lie on the global pixel grid at `scale` (pixels per world unit, `256 * 2^z * ratio`
/// for tiles): cell (i, j) holds the points with `floor(x * scale / radius_px) == i` and
/// likewise for y. Pass all points of the layer, not one tile's, so that every tile of the
/// zoom uses the same reference. Cells are at least one pixel wide. Points with NaN, infinite,
/// zero or negative weights, or non-finite positions, are ignored. Never returns 0: with no
/// weight at all (or a nonsensical `scale`) the reference is 1.0.
pub fn reference_max(points: &[WorldPoint], scale: f64, radius_px: f64) -> f64 {
    if !(scale.is_finite() && scale > 0.0) {
        return 1.0;
    }
    let cell_px = if radius_px.is_finite() {
        radius_px.max(1.0)
    } else {
        1.0
    };
    let per_world = scale / cell_px;
    // Cell indices are kept well inside i64 (and exact in f64); points further out are far
    // outside the world and are left out rather than folded onto one cell.
    const LIMIT: f64 = (1u64 << 52) as f64;
    let cell_of = |pt: &WorldPoint| -> Option<(i64, i64, f64)> {
        if !weight_counts(pt.w) {
            return None;
        }
        let (x, y) = (pt.x * per_world, pt.y * per_world);
        if !(x.abs() < LIMIT && y.abs() < LIMIT) {
            return None;
        }
        Some((floor_i64(x), floor_i64(y), f64::from(pt.w)))
    };

    // Usually the layer covers few cells (low zooms, or a regional layer): then a dense array
    // over their bounding box is far faster than a hash map. Both sum each cell in input
    // order, so they agree exactly.
    let mut bounds: Option<(i64, i64, i64, i64)> = None;
    let mut valid = 0usize;
    for (cx, cy, _) in points.iter().filter_map(cell_of) {
        valid += 1;
        bounds = Some(bounds.map_or((cx, cy, cx, cy), |(x0, y0, x1, y1)| {
            (x0.min(cx), y0.min(cy), x1.max(cx), y1.max(cy))
        }));
    }
    let Some((x0, y0, x1, y1)) = bounds else {
        return 1.0;
    };
    // Up to 2^20 cells (8 MiB) always, up to 2^23 for layers large enough to be worth it.
    let dense_limit = valid.clamp(1 << 20, 1 << 23) as u128;
    let (nx, ny) = ((x1 - x0) as u128 + 1, (y1 - y0) as u128 + 1);
    let max = if nx * ny <= dense_limit {
        // nx * ny fits the limit, so these are small.
        let (nx, ny) = (nx as usize, ny as usize);
        let mut sums = vec![0.0f64; nx * ny];
        for (cx, cy, w) in points.iter().filter_map(cell_of) {
            sums[(cy - y0) as usize * nx + (cx - x0) as usize] += w;
        }
        sums.into_iter().fold(0.0f64, f64::max)
    } else {
        let mut sums: HashMap<(i64, i64), f64, BuildHasherDefault<CellHasher>> = HashMap::default();
        for (cx, cy, w) in points.iter().filter_map(cell_of) {
            *sums.entry((cx, cy)).or_insert(0.0) += w;
        }
        sums.into_values().fold(0.0f64, f64::max)
    };
    if max > 0.0 && max.is_finite() {
        max
    } else {
        1.0
    }
}

/// A fast hasher for cell keys (two i64s). std's SipHash guards against keys chosen to
/// collide, but these come from the layer's own points (loaded by the operator, not sent with
/// requests), and SipHash would dominate the cost of `reference_max` for millions of points.
#[derive(Default)]
struct CellHasher(u64);

impl Hasher for CellHasher {
    fn finish(&self) -> u64 {
        // Final avalanche so that the low bits hashbrown uses depend on every input bit.
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_i64(&mut self, v: i64) {
        self.write_u64(v as u64);
    }

    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::ColorRamp;
    use crate::synth::clustered_points;

    fn params(radius: u32, scale: DensityScale, max: f64) -> DensityParams {
        DensityParams { radius, scale, max }
    }

    fn tile_vp(z: u32, tx: u32, ty: u32, size: u32, ratio: f64) -> Viewport {
        let scale = 256.0 * f64::from(1u32 << z) * ratio;
        Viewport {
            scale_x: scale,
            scale_y: scale,
            origin_x: f64::from(tx) * f64::from(size),
            origin_y: f64::from(ty) * f64::from(size),
            width: size,
            height: size,
            zoom: f64::from(z),
            pixel_ratio: ratio,
        }
    }

    /// The points a source would return for `vp`: those within the reach of the image, in
    /// their original relative order.
    fn within_reach(points: &[WorldPoint], vp: &Viewport, reach: f64) -> Vec<WorldPoint> {
        points
            .iter()
            .filter(|p| {
                let (x, y) = (vp.local_x(p), vp.local_y(p));
                x >= -reach
                    && y >= -reach
                    && x < f64::from(vp.width) + reach
                    && y < f64::from(vp.height) + reach
            })
            .copied()
            .collect()
    }

    fn palette() -> Palette {
        ColorRamp::leaflet_default().alpha_palette()
    }

    fn point(x: f64, y: f64, w: f32) -> WorldPoint {
        WorldPoint { x, y, w, seq: 0 }
    }

    /// The world position of the centre of image pixel (px, py) of `vp`.
    fn at_pixel(vp: &Viewport, px: f64, py: f64, w: f32) -> WorldPoint {
        point(
            (vp.origin_x + px + 0.5) / vp.scale_x,
            (vp.origin_y + py + 0.5) / vp.scale_y,
            w,
        )
    }

    /// A 2x2 mosaic of tiles equals one render of the same area, bit for bit, both in the
    /// f64 densities and in the palette indices, for whole and fractional kernel radii.
    #[test]
    fn mosaic_of_tiles_equals_one_large_render() {
        // (0, 0): grids that reach past the world's west and north edges take the other
        // binning path for some renders and not for others.
        for (z, tx0, ty0, radius, ratio, scale) in [
            (7u32, 40u32, 50u32, 25, 1.0, DensityScale::Linear),
            (7, 40, 50, 10, 1.5, DensityScale::Log),
            (7, 40, 50, 1, 2.0, DensityScale::Sqrt),
            (5, 0, 0, 25, 1.0, DensityScale::Linear),
            (5, 0, 1, 12, 2.0, DensityScale::Log),
        ] {
            let size = (256.0 * ratio) as u32;
            let n = f64::from(1u32 << z);
            // Points over the 2x2 block and a margin around it (beyond every tile's reach).
            let area = [
                (f64::from(tx0) - 0.5) / n,
                (f64::from(ty0) - 0.5) / n,
                (f64::from(tx0) + 2.5) / n,
                (f64::from(ty0) + 2.5) / n,
            ];
            let mut points = clustered_points(20_000, 7 + u64::from(radius + tx0), area);
            // A dense patch across the shared corner, so rows take the gather path too.
            let (cx, cy) = (f64::from(tx0) + 1.0, f64::from(ty0) + 1.0);
            points.extend(crate::synth::clustered_points_weighted(
                30_000,
                3,
                [
                    (cx - 0.3) / n,
                    (cy - 0.3) / n,
                    (cx + 0.3) / n,
                    (cy + 0.3) / n,
                ],
            ));
            // Points exactly on tile edges and corners.
            for (ex, ey) in [(1.0, 1.0), (1.0, 0.3), (0.0, 1.0), (2.0, 2.0), (1.0, 2.0)] {
                points.push(point(
                    (f64::from(tx0) + ex) / n,
                    (f64::from(ty0) + ey) / n,
                    3.0,
                ));
            }
            let p = params(radius, scale, 40.0);
            let reach = reach_px(&p, ratio);

            let mut big = tile_vp(z, tx0, ty0, size, ratio);
            big.width = 2 * size;
            big.height = 2 * size;
            let big_points = within_reach(&points, &big, reach);
            let big_values = density_values(&big_points, &big, &p).expect("size");
            let big_img = render(&big_points, &big, &p, &palette());
            assert!(big_values.iter().filter(|&&v| v > 0.0).count() > 1000);

            for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                let vp = tile_vp(z, tx0 + dx, ty0 + dy, size, ratio);
                let tile_points = within_reach(&points, &vp, reach);
                let values = density_values(&tile_points, &vp, &p).expect("size");
                let img = render(&tile_points, &vp, &p, &palette());
                let s = size as usize;
                for y in 0..s {
                    let row = (dy as usize * s + y) * 2 * s + dx as usize * s;
                    let bits: Vec<u64> = values[y * s..(y + 1) * s]
                        .iter()
                        .map(|v| v.to_bits())
                        .collect();
                    let big_bits: Vec<u64> = big_values[row..row + s]
                        .iter()
                        .map(|v| v.to_bits())
                        .collect();
                    assert_eq!(bits, big_bits, "radius {radius} tile ({dx},{dy}) row {y}");
                    assert_eq!(img.pixels[y * s..(y + 1) * s], big_img.pixels[row..row + s]);
                }
            }
        }
    }

    /// The optimised passes (scatter or gather rows, blocked sums, skipped empty rows) give
    /// exactly what the plain separable convolution with every term gives, for sparse and
    /// dense rows alike.
    #[test]
    fn fast_paths_equal_the_plain_convolution() {
        let (w, h, radius) = (70usize, 45usize, 7u32);
        let mut vp = tile_vp(12, 1000, 1500, 256, 1.0);
        vp.width = w as u32;
        vp.height = h as u32;
        let n = 4096.0;
        let sparse = clustered_points(300, 1, [1000.0 / n, 1500.0 / n, 1000.3 / n, 1500.2 / n]);
        let dense = crate::synth::clustered_points_weighted(
            40_000,
            2,
            [999.9 / n, 1499.9 / n, 1000.4 / n, 1500.3 / n],
        );
        for points in [sparse, dense] {
            let p = params(radius, DensityScale::Linear, 1.0);
            let taps = kernel_taps(reach_px(&p, 1.0));
            let half = taps.len() / 2;
            let (gw, gh) = (w + 2 * half, h + 2 * half);
            let mut cells = vec![0.0f64; gw * gh];
            for pt in &points {
                let cx = (pt.x * vp.scale_x).floor() - vp.origin_x + half as f64;
                let cy = (pt.y * vp.scale_y).floor() - vp.origin_y + half as f64;
                if cx >= 0.0 && cy >= 0.0 && cx < gw as f64 && cy < gh as f64 {
                    cells[cy as usize * gw + cx as usize] += f64::from(pt.w);
                }
            }
            let mut rows = vec![0.0f64; gh * w];
            for y in 0..gh {
                for x in 0..w {
                    let mut acc = 0.0;
                    for (j, k) in taps.iter().enumerate() {
                        acc += k * cells[y * gw + x + j];
                    }
                    rows[y * w + x] = acc;
                }
            }
            let values = density_values(&points, &vp, &p).expect("size");
            for y in 0..h {
                for x in 0..w {
                    let mut acc = 0.0f64;
                    for (j, k) in taps.iter().enumerate() {
                        acc += k * rows[(y + j) * w + x];
                    }
                    assert_eq!(
                        values[y * w + x].to_bits(),
                        acc.to_bits(),
                        "pixel ({x}, {y})"
                    );
                }
            }
            assert!(values.iter().any(|&v| v > 0.0));
        }
    }

    #[test]
    fn weight_check_accepts_only_positive_finite_weights() {
        for bits in [
            0u32,
            1,
            0x7f7f_ffff,
            0x7f80_0000,
            0x7fc0_0000,
            0x8000_0000,
            0xbf80_0000,
        ] {
            let w = f32::from_bits(bits);
            assert_eq!(weight_counts(w), w > 0.0 && w.is_finite(), "{w:e}");
        }
    }

    /// A lone point's pixel has exactly its weight; the three scales map it as specified.
    #[test]
    fn scale_mappings() {
        let vp = tile_vp(3, 2, 5, 256, 1.0);
        let cases = [
            (DensityScale::Linear, 1.0, 64), // ceil(0.25 * 255) = ceil(63.75)
            (DensityScale::Sqrt, 1.0, 128),  // ceil(0.5 * 255) = ceil(127.5)
            (DensityScale::Log, 1.0, 110),   // ceil(ln 2 / ln 5 * 255) = ceil(109.8)
            (DensityScale::Linear, 4.0, 255),
            (DensityScale::Sqrt, 9.0, 255), // clamped
            (DensityScale::Log, 100.0, 255),
            (DensityScale::Linear, 0.001, 1), // any density is visible
        ];
        for (scale, w, expected) in cases {
            let p = params(20, scale, 4.0);
            let pts = [at_pixel(&vp, 100.0, 120.0, w)];
            let values = density_values(&pts, &vp, &p).expect("size");
            assert_eq!(values[120 * 256 + 100], f64::from(w));
            let img = render(&pts, &vp, &p, &palette());
            assert_eq!(img.pixels[120 * 256 + 100], expected, "{scale:?} w={w}");
            assert_eq!(img.pixels[0], 0);
        }
    }

    #[test]
    fn empty_input_renders_a_blank_image() {
        let vp = tile_vp(0, 0, 0, 256, 1.0);
        for scale in [DensityScale::Linear, DensityScale::Sqrt, DensityScale::Log] {
            let img = render(&[], &vp, &params(25, scale, 1.0), &palette());
            assert_eq!((img.width, img.height, img.pixels.len()), (256, 256, 65536));
            assert!(img.pixels.iter().all(|&i| i == 0));
            assert!(img.is_blank());
        }
        assert_eq!(reference_max(&[], 256.0, 25.0), 1.0);
    }

    #[test]
    fn invalid_weights_and_positions_are_ignored() {
        let vp = tile_vp(4, 3, 3, 256, 1.0);
        let p = params(15, DensityScale::Sqrt, 5.0);
        let good = vec![
            at_pixel(&vp, 30.0, 40.0, 1.0),
            at_pixel(&vp, 200.0, 10.0, 2.5),
        ];
        let mut mixed = Vec::new();
        for bad_w in [f32::NAN, -1.0, 0.0, -0.0, f32::INFINITY, f32::NEG_INFINITY] {
            mixed.push(at_pixel(&vp, 30.0, 40.0, bad_w));
        }
        mixed.push(good[0]);
        mixed.push(point(f64::NAN, 0.5, 1.0));
        mixed.push(point(0.5, f64::INFINITY, 1.0));
        mixed.push(point(-1e300, 1e300, 1.0));
        mixed.push(good[1]);
        assert_eq!(
            render(&mixed, &vp, &p, &palette()),
            render(&good, &vp, &p, &palette())
        );
        let scale = vp.scale_x;
        assert_eq!(
            reference_max(&mixed, scale, 25.0),
            reference_max(&good, scale, 25.0)
        );
        assert_eq!(reference_max(&mixed, scale, 25.0), 2.5);
    }

    /// More weight never lowers a pixel; a larger max never raises one; the kernel falls off
    /// monotonically from the centre and is exactly 0 from the radius on.
    #[test]
    fn monotonicity_and_kernel_shape() {
        let vp = tile_vp(9, 100, 200, 256, 1.0);
        let n = 512.0;
        let area = [100.0 / n, 200.0 / n, 101.0 / n, 201.0 / n];
        let base = clustered_points(3000, 11, area);
        let mut more = base.clone();
        more.extend(clustered_points(500, 12, area));
        for scale in [DensityScale::Linear, DensityScale::Sqrt, DensityScale::Log] {
            let p = params(25, scale, 30.0);
            let a = render(&base, &vp, &p, &palette());
            let b = render(&more, &vp, &p, &palette());
            assert!(
                a.pixels.iter().zip(&b.pixels).all(|(x, y)| x <= y),
                "{scale:?}"
            );
            let c = render(&base, &vp, &params(25, scale, 60.0), &palette());
            assert!(
                a.pixels.iter().zip(&c.pixels).all(|(x, y)| x >= y),
                "{scale:?}"
            );
        }

        let p = params(25, DensityScale::Linear, 1.0);
        let values = density_values(&[at_pixel(&vp, 128.0, 128.0, 1.0)], &vp, &p).expect("size");
        let row = &values[128 * 256..129 * 256];
        for x in 128..255 {
            assert!(row[x + 1] <= row[x], "column {x}");
            assert_eq!(row[x], row[256 - x], "symmetry at {x}");
        }
        assert_eq!(row[128], 1.0);
        assert!(row[128 + 24] > 0.0);
        assert_eq!(row[128 + 25], 0.0);
        assert_eq!(values[(128 + 25) * 256 + 128], 0.0);
        // Near the radius the kernel is close to 0 (continuous at the edge of its support).
        assert!(row[128 + 24] < 0.01);
        // Inside the disc it is the radial Gaussian to within 1.1% of the peak.
        let diag = values[(128 + 10) * 256 + 128 + 10];
        let gauss = (-(200.0f64) / (2.0 * (25.0f64 / 3.0).powi(2))).exp();
        assert!((diag - gauss).abs() < 0.011, "{diag} vs {gauss}");
    }

    /// Points beyond the reach do not change the image; points just inside it do.
    #[test]
    fn reach_bounds_the_influence_of_points() {
        let vp = tile_vp(6, 10, 10, 256, 2.0);
        let p = params(12, DensityScale::Linear, 1.0);
        let reach = reach_px(&p, 2.0);
        assert_eq!(reach, 24.0);
        let outside = [
            at_pixel(&vp, -reach - 0.5, 100.0, 50.0),
            at_pixel(&vp, 100.0, 256.0 + reach, 50.0),
        ];
        assert!(render(&outside, &vp, &p, &palette()).is_blank());
        let inside = [at_pixel(&vp, -reach + 1.0, 100.0, 50.0)];
        assert!(!render(&inside, &vp, &p, &palette()).is_blank());
    }

    #[test]
    fn reference_max_is_the_heaviest_cell() {
        let scale = 256.0;
        // Cells are 10 px = 10/256 world wide: two points in one cell, three in another.
        let pts = [
            point(0.5 / 256.0, 0.5 / 256.0, 1.0),
            point(9.5 / 256.0, 9.5 / 256.0, 1.0),
            point(10.5 / 256.0, 0.5 / 256.0, 0.5),
            point(15.5 / 256.0, 5.5 / 256.0, 0.5),
            point(19.9 / 256.0, 9.9 / 256.0, 0.5),
        ];
        assert_eq!(reference_max(&pts, scale, 10.0), 2.0);
        assert_eq!(reference_max(&pts[2..], scale, 10.0), 1.5);
        // Radius below one pixel, or nonsense, still gives a positive reference.
        assert_eq!(reference_max(&pts, scale, 0.0), 1.0);
        assert_eq!(reference_max(&pts, f64::NAN, 10.0), 1.0);
        assert_eq!(reference_max(&pts, scale, f64::INFINITY), 1.0);
        assert_eq!(reference_max(&[point(0.1, 0.1, 0.25)], scale, 10.0), 0.25);

        // A compact layer is summed in a dense array, a world-wide one in a hash map; a far,
        // light outlier switches the method but must not change the answer.
        let scale = 256.0 * f64::from(1u32 << 18);
        let cluster =
            crate::synth::clustered_points_weighted(50_000, 5, [0.3, 0.3, 0.3001, 0.3001]);
        let dense = reference_max(&cluster, scale, 25.0);
        let mut spread = cluster.clone();
        spread.push(point(0.9, 0.9, 1e-3));
        spread.push(point(0.01, 0.02, 1e-3));
        assert_eq!(
            reference_max(&spread, scale, 25.0).to_bits(),
            dense.to_bits()
        );
        assert!(dense > 10.0);
    }

    /// Odd viewports and parameters produce an image of the requested size without panicking.
    #[test]
    fn degenerate_inputs_do_not_panic() {
        let pts = clustered_points(200, 3, [0.0, 0.0, 1.0, 1.0]);
        let mut vp = tile_vp(0, 0, 0, 64, 1.0);
        for (radius, ratio, max) in [
            (0, 1.0, 1.0),
            (u32::MAX, 1.0, 1.0),
            (25, f64::NAN, f64::NAN),
            (25, -2.0, -1.0),
            (25, f64::INFINITY, f64::INFINITY),
            (1, 0.3, 0.0),
        ] {
            vp.pixel_ratio = ratio;
            let p = params(radius, DensityScale::Log, max);
            let img = render(&pts, &vp, &p, &palette());
            assert_eq!(img.pixels.len(), 64 * 64);
            assert!(reach_px(&p, ratio).is_finite() && reach_px(&p, ratio) >= 0.0);
        }
        for (w, h) in [(0, 0), (0, 10), (1, 1), (3, 700)] {
            vp.width = w;
            vp.height = h;
            let img = render(&pts, &vp, &params(5, DensityScale::Linear, 1.0), &palette());
            assert_eq!(img.pixels.len(), (w * h) as usize);
        }
        vp.width = 64;
        vp.height = 64;
        for bad in [f64::NAN, f64::INFINITY, -1e308, 1e308] {
            let mut v = vp;
            v.scale_x = bad;
            v.origin_y = bad;
            let img = render(&pts, &v, &params(5, DensityScale::Linear, 1.0), &palette());
            assert_eq!(img.pixels.len(), 64 * 64);
        }
    }
}
