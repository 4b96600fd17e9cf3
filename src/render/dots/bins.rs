//! The `dots` style drawn from pixel bins: each bin darkens as its points would, in any order.
//!
//! At the zooms drawn from bins (`Layer::render_input`), a bin stands for `count` points at
//! its cell's centre. heatmap 2.2.1 multiplies a pixel by each point's cone value and rounds
//! down after every step, so its result depends on drawing order, which bins do not have.
//! Here a pixel's grey value is the exact product, rounded once:
//!
//! ```text
//! grey = floor(255 * product over bins of (pixVal / 255) ^ count)
//! ```
//!
//! computed as a sum of logarithms. That is what the bin's points would draw, less the
//! rounding after each step (which only ever darkens, by at most one grey level per point),
//! so the zoom where bins give way to points shows no jump in tone; and a sum needs no sort.
//!
//! A pixel's sum takes the bins in ascending (row, column) of their pixels, whatever order
//! the source gave them in, and a bin that cannot reach a pixel adds nothing to it, so a
//! pixel's value is the same to the last bit in every image that holds it: tiles stay
//! seamless. Where bins fill the
//! image and share one stencil (tiles at low zoom), [`gather`] computes the very same sums
//! pixel by pixel, which vectorizes.
//!
//! Every bin draws one of at most 256 precomputed cone stencils: its position within its pixel
//! is rounded to 1/16 pixel. Tile bins sit at exact fractions (the centres of pixel-sized or
//! larger cells), which that grid holds, so they do not move; in overlays with a fractional
//! origin or scale they move by at most 1/32 pixel.

mod gather;

use super::{Axis, Cone, ConeTable, Dot, DotsParams, IndexedImage, Start, Viewport, WorldPoint};
use crate::render::fastfloor::floor_f64 as floor;

/// Positions within a pixel are rounded to 1 / `SUBPIXEL` on each axis.
const SUBPIXEL: usize = 16;

/// Grey values are `floor(255 * product + GREY_SLACK)`: the slack covers the rounding of the
/// logarithms, so that an exact product (one point: `pixVal` itself) is not rounded down by
/// a hair. It is far below the 1/255 that separates two grey values.
const GREY_SLACK: f64 = 1e-3;

/// One row of a cone stencil: `ln(pixVal / 255)` for columns `ix + lo .. ix + lo + len`.
struct StencilRow {
    dk: i64,
    lo: i64,
    values: Vec<f32>,
}

/// The cone of a point at fraction `(qx, qy) / SUBPIXEL` of its pixel, as row spans of
/// logarithms, clipped to heatmap 2.2.1's drawing box; rows and columns where the cone leaves
/// the pixel unchanged (`pixVal = 255`, a logarithm of 0) are left out.
struct Stencil {
    rows: Vec<StencilRow>,
}

impl Stencil {
    fn new<C: Cone>(dot: &Dot, cone: &C, qx: usize, qy: usize) -> Stencil {
        let fx = qx as f64 / SUBPIXEL as f64;
        let fy = qy as f64 / SUBPIXEL as f64;
        // The drawing box of `Canvas::draw`, relative to the point's integer pixel.
        let (k0, k1) = (floor(fy - dot.half) as i64, floor(fy + dot.half) as i64);
        let reach = dot.cut.ceil() as i64 + 1;
        let (k0, k1) = (k0.max(-reach), k1.min(reach + 1));
        let (j0, j1) = (dot.box_lo.max(-reach), dot.box_hi.min(reach + 1));
        let mut rows = Vec::new();
        for dk in k0..k1 {
            let dy = dk as f64 - fy;
            let values: Vec<f32> = (j0..j1)
                .map(|dj| {
                    let dx = dj as f64 - fx;
                    let pix_val = cone.pix_val(dx * dx + dy * dy);
                    (f64::from(pix_val) / 255.0).ln() as f32
                })
                .collect();
            let Some(first) = values.iter().position(|&v| v != 0.0) else {
                continue;
            };
            let last = values.iter().rposition(|&v| v != 0.0).unwrap_or(first);
            rows.push(StencilRow {
                dk,
                lo: j0 + first as i64,
                values: values[first..=last].to_vec(),
            });
        }
        Stencil { rows }
    }
}

/// Renders pixel bins in the `dots` style. Each bin's weight `w` is its point count (the style
/// ignores weights: every point draws the same dot). Bins beyond [`super::reach_px`] and
/// non-finite ones are ignored.
pub fn render_bins(
    bins: &[WorldPoint],
    vp: &Viewport,
    p: &DotsParams,
    scheme: &[[u8; 3]; 256],
) -> IndexedImage {
    let (dot, palette) = match super::start(vp, p, scheme) {
        Start::Draw(dot, palette) => (dot, palette),
        Start::Done(image) => return image,
    };
    let (w, h) = (vp.width as usize, vp.height as usize);
    let sums = match ConeTable::new(&dot) {
        Some(table) => log_sums(bins, vp, &dot, &table, w, h),
        None => log_sums(bins, vp, &dot, &dot, w, h),
    };
    let pixels = sums.into_iter().map(grey).collect();
    IndexedImage {
        width: vp.width,
        height: vp.height,
        pixels,
        palette,
    }
}

/// Below this log sum a pixel is black: `255 * exp(-8) + GREY_SLACK` is under 0.09. Checked
/// first because most pixels of a dense tile are far below it, where `exp` underflows into
/// glibc's slow path.
const BLACK_BELOW: f32 = -8.0;

/// A pixel's grey value from its log sum: `floor(255 * exp(sum) + GREY_SLACK)`, at most 255.
#[inline]
fn grey(sum: f32) -> u8 {
    if sum == 0.0 {
        255
    } else if sum < BLACK_BELOW {
        0
    } else {
        // Positive, so the cast truncates as floor would (and saturates; min keeps a
        // product, which never exceeds 1, from rounding past white).
        (255.0 * f64::from(sum).exp() + GREY_SLACK).min(255.0) as u8
    }
}

/// A bin placed in the image: its pixel, its position within the pixel (1/SUBPIXEL steps) and
/// its point count. Kept to 16 bytes: a dense tile places a bin for every pixel.
struct Placed {
    ix: i32,
    iy: i32,
    q: u32,
    count: f32,
}

/// For every pixel, the sum over bins of `count * ln(pixVal / 255)`.
fn log_sums<C: Cone>(
    bins: &[WorldPoint],
    vp: &Viewport,
    dot: &Dot,
    cone: &C,
    w: usize,
    h: usize,
) -> Vec<f32> {
    let placed = place(bins, vp, dot);
    match gather::shared_stencil(&placed, w, h) {
        Some(q) => {
            let stencil = Stencil::new(dot, cone, q % SUBPIXEL, q / SUBPIXEL);
            gather::log_sums(&placed, &stencil, w, h)
        }
        None => scatter(&placed, dot, cone, w, h),
    }
}

/// [`log_sums`] drawn bin by bin, in the order `place` gives.
fn scatter<C: Cone>(placed: &[Placed], dot: &Dot, cone: &C, w: usize, h: usize) -> Vec<f32> {
    // Up to SUBPIXEL² stencils, made when first needed.
    let mut stencils: Vec<Option<Stencil>> = (0..SUBPIXEL * SUBPIXEL).map(|_| None).collect();
    let mut sums = vec![0f32; w * h];
    let (w_i, h_i) = (w as i64, h as i64);
    for bin in placed {
        let (ix, iy, count) = (i64::from(bin.ix), i64::from(bin.iy), bin.count);
        let q = bin.q as usize;
        let stencil =
            stencils[q].get_or_insert_with(|| Stencil::new(dot, cone, q % SUBPIXEL, q / SUBPIXEL));
        for row in &stencil.rows {
            let k = iy + row.dk;
            if k < 0 || k >= h_i {
                continue;
            }
            let j0 = ix + row.lo;
            let (from, to) = (j0.max(0), (j0 + row.values.len() as i64).min(w_i));
            if from >= to {
                continue;
            }
            let out = &mut sums[k as usize * w + from as usize..k as usize * w + to as usize];
            let values = &row.values[(from - j0) as usize..(to - j0) as usize];
            for (sum, value) in out.iter_mut().zip(values) {
                *sum += count * value;
            }
        }
    }
    sums
}

/// The bins that can reach the image, at their pixels and quantized fractions, in ascending
/// (row, column) of their pixels (stable: bins of one pixel keep their input order).
///
/// Sorted so that a pixel's sum does not depend on the order a source gave: every image adds
/// a pixel's bins in the same order, whichever bins it holds besides. Sources give rows, then
/// columns, except for copies across the antimeridian, which come last; the sort is adaptive,
/// so sorted input costs one pass.
fn place(bins: &[WorldPoint], vp: &Viewport, dot: &Dot) -> Vec<Placed> {
    let [x_axis, y_axis] = Axis::both(vp, dot);
    let mut placed = Vec::with_capacity(bins.len());
    // Sources give bins row by row: a row's y is split once.
    let mut row: Option<(f64, Option<(i64, usize)>)> = None;
    for bin in bins {
        // A copy one world away (beyond the antimeridian) is placed as its original plus
        // whole world widths, as points are (`Prepared::new`).
        let copy = floor(bin.x);
        let Some((ix, fx)) = x_axis.split(bin.x - copy, copy) else {
            continue;
        };
        let y_placed = match row {
            Some((y, placed)) if y == bin.y => placed,
            _ => {
                let placed = y_axis.split(bin.y, 0.0).map(|(iy, fy)| quantize(iy, fy));
                row = Some((bin.y, placed));
                placed
            }
        };
        let Some((iy, qy)) = y_placed else {
            continue;
        };
        let (ix, qx) = quantize(ix, fx);
        // `split` keeps pixels within the reach of the image, far inside i32.
        placed.push(Placed {
            ix: ix as i32,
            iy: iy as i32,
            q: (qy * SUBPIXEL + qx) as u32,
            count: bin.w,
        });
    }
    // Checked first: the sort would allocate its scratch space even for sorted input.
    let sorted = placed
        .windows(2)
        .all(|pair| (pair[0].iy, pair[0].ix) <= (pair[1].iy, pair[1].ix));
    if !sorted {
        placed.sort_by_key(|b| (b.iy, b.ix));
    }
    placed
}

/// A pixel and a fraction in [0, 1) as a pixel and a fraction in 1/SUBPIXEL steps.
fn quantize(int: i64, frac: f64) -> (i64, usize) {
    // `round` (half away from zero) of a value in [0, SUBPIXEL), without a libm call: the
    // difference from its truncation is exact.
    let scaled = frac * SUBPIXEL as f64;
    let whole = scaled as i64;
    let q = (whole + i64::from(scaled - whole as f64 >= 0.5)) as usize;
    if q >= SUBPIXEL {
        (int + 1, 0)
    } else {
        (int, q)
    }
}

#[cfg(test)]
mod tests {
    use super::super::render;
    use super::super::tests::{assert_mosaic_of, grey_scheme, tile_vp};
    use super::*;

    /// Bins of `count` points at the centres of pixel-sized cells `(bx, by)` of zoom `z`, in
    /// the (row, column) order sources give them.
    fn bins_at(z: u32, cells: &[(i64, i64, u32)]) -> Vec<WorldPoint> {
        let scale = 256.0 * 2f64.powi(z as i32);
        let mut cells = cells.to_vec();
        cells.sort_by_key(|&(bx, by, _)| (by, bx));
        cells
            .iter()
            .enumerate()
            .map(|(i, &(bx, by, count))| WorldPoint {
                x: (bx as f64 + 0.5) / scale,
                y: (by as f64 + 0.5) / scale,
                w: count as f32,
                seq: i as u32,
            })
            .collect()
    }

    /// A small deterministic generator (no dependency for tests).
    fn cells_near(
        z_tiles: (u32, u32),
        n: usize,
        seed: u64,
        max_count: u32,
    ) -> Vec<(i64, i64, u32)> {
        let mut state = seed;
        let mut next = || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            state >> 33
        };
        // Around the corner shared by tiles (tx, ty) .. (tx + 1, ty + 1), within 40 pixels.
        let (cx, cy) = (
            i64::from(z_tiles.0 + 1) * 256,
            i64::from(z_tiles.1 + 1) * 256,
        );
        let mut cells: Vec<(i64, i64, u32)> = (0..n)
            .map(|_| {
                let bx = cx + (next() % 80) as i64 - 40;
                let by = cy + (next() % 80) as i64 - 40;
                (bx, by, 1 + (next() % u64::from(max_count)) as u32)
            })
            .collect();
        cells.sort_unstable();
        cells.dedup_by_key(|c| (c.0, c.1));
        cells
    }

    const DOTS: DotsParams = DotsParams {
        dot_size: 25,
        opacity: 255,
    };

    #[test]
    fn grey_and_quantize_agree_with_their_libm_forms() {
        let reference = |sum: f32| {
            if sum == 0.0 {
                255
            } else {
                (255.0 * f64::from(sum).exp() + GREY_SLACK)
                    .floor()
                    .min(255.0) as u8
            }
        };
        // Every f32 log sum from -40 to 0 in steps of 2^-12, and the edges of the shortcut.
        let sums = (0..=40 * 4096).map(|i| -(i as f32) / 4096.0).chain([
            BLACK_BELOW,
            f32::MIN,
            -1e-30,
            f32::MIN_POSITIVE,
        ]);
        for sum in sums {
            assert_eq!(grey(sum), reference(sum), "sum {sum}");
        }
        // Fractions in [0, 1) on a fine grid, and the ties of 1/32.
        for i in 0..(1 << 20) {
            let frac = f64::from(i) / f64::from(1 << 20);
            let q = (frac * SUBPIXEL as f64).round() as usize;
            let expected = if q >= SUBPIXEL { (8, 0) } else { (7, q) };
            assert_eq!(quantize(7, frac), expected, "frac {frac}");
        }
    }

    #[test]
    fn a_single_point_bin_draws_the_points_dot() {
        // At zoom 20 the seed's f32 rounding of metres no longer applies (it would be a metre
        // grid, not a look), so the point and the bin sit at the very same place.
        let (z, tx, ty) = (20u32, 1_000_000u32, 300_000u32);
        let cells = [(i64::from(tx) * 256 + 100, i64::from(ty) * 256 + 60, 1)];
        let bins = bins_at(z, &cells);
        let vp = tile_vp(z, 1.0, f64::from(tx) * 256.0, f64::from(ty) * 256.0, 256);
        let from_bins = render_bins(&bins, &vp, &DOTS, &grey_scheme());
        let from_point = render(&bins, &vp, &DOTS, &grey_scheme());
        assert_eq!(from_bins.pixels, from_point.pixels);
        assert!(from_bins.pixels.iter().filter(|&&v| v < 255).count() > 200);
    }

    #[test]
    fn a_bin_darkens_as_its_points_would() {
        // `count` points in one place: the exact product, which heatmap 2.2.1's rounding after
        // every step can only undercut, by less than a grey level per point.
        let (z, tx, ty) = (20u32, 1_000_000u32, 300_000u32);
        let vp = tile_vp(z, 1.0, f64::from(tx) * 256.0, f64::from(ty) * 256.0, 256);
        let (bx, by) = (i64::from(tx) * 256 + 100, i64::from(ty) * 256 + 60);
        for count in [2u32, 3, 7] {
            let from_bins =
                render_bins(&bins_at(z, &[(bx, by, count)]), &vp, &DOTS, &grey_scheme());
            let points: Vec<WorldPoint> = (0..count)
                .map(|i| WorldPoint {
                    seq: i,
                    w: 1.0,
                    ..bins_at(z, &[(bx, by, 1)])[0]
                })
                .collect();
            let from_points = render(&points, &vp, &DOTS, &grey_scheme());
            let mut darker = 0;
            for (b, p) in from_bins.pixels.iter().zip(&from_points.pixels) {
                assert!(
                    b >= p && u32::from(b - p) < count,
                    "count {count}: {b} vs {p}"
                );
                darker += usize::from(b != p);
            }
            // Two dots round alike (the first step is exact); more can differ.
            if count == 2 {
                assert_eq!(darker, 0);
            }
            // The pixel whose sample point (its corner) is nearest, half a pixel away on each
            // axis: 255 * (pixVal / 255)^count, rounded down.
            let centre = from_bins.pixels[60 * 256 + 100];
            let pix_val = f64::from(Dot::new(&DOTS, 1.0).map_or(0, |d| d.pix_val(0.5)));
            let exact = 255.0 * (pix_val / 255.0).powi(count as i32);
            assert_eq!(f64::from(centre), exact.floor(), "{pix_val}");
        }
    }

    #[test]
    fn tiles_of_bins_are_seamless() {
        for (z, tx, ty) in [(3u32, 2u32, 5u32), (12, 2100, 1360)] {
            for ratio in [1.0, 2.0] {
                let bins = bins_at(z, &cells_near((tx, ty), 1500, u64::from(z), 9));
                // Each tile must get only part of the bins, or the test shows nothing.
                let fewest = std::cell::Cell::new(usize::MAX);
                let big = assert_mosaic_of(z, ratio, (tx, ty), &DOTS, &bins, |marks, vp| {
                    fewest.set(fewest.get().min(marks.len()));
                    render_bins(marks, vp, &DOTS, &grey_scheme())
                });
                assert!(fewest.get() < bins.len());
                assert!(big.pixels.iter().filter(|&&v| v == 0).count() > 100);
            }
        }
    }

    #[test]
    fn gathering_sums_exactly_what_drawing_bin_by_bin_sums() {
        // Dense bins of mixed counts over images whose widths are and are not whole blocks,
        // with bins beyond every edge, at the two fractions tile bins have (cell centres and
        // corners) and a fractional origin: every sum equal to the bit, or seams could appear
        // between a tile gathered and its neighbour drawn bin by bin.
        for (w, h, origin, cell) in [
            (256u32, 256u32, 0.0, 1.0),
            (300, 70, 0.0, 2.0),
            (33, 5, 0.0, 1.0),
            (97, 64, 0.375, 1.0),
        ] {
            let vp = tile_vp(12, 1.0, 2100.0 * 256.0 + origin, 1360.0 * 256.0 + origin, w);
            let vp = Viewport { height: h, ..vp };
            let mut state = u64::from(w * h);
            let mut bins = Vec::new();
            let scale = vp.scale_x;
            let cells_x = (f64::from(w) + 60.0) / cell;
            let cells_y = (f64::from(h) + 60.0) / cell;
            for cy in 0..cells_y as i64 {
                for cx in 0..cells_x as i64 {
                    state = state
                        .wrapping_mul(6_364_136_223_846_793_005)
                        .wrapping_add(1_442_695_040_888_963_407);
                    // About one cell in six is empty.
                    let count = (state >> 33) % 12;
                    if count >= 10 {
                        continue;
                    }
                    let px = vp.origin_x.floor() - 30.0 + (cx as f64 + 0.5) * cell;
                    let py = vp.origin_y.floor() - 30.0 + (cy as f64 + 0.5) * cell;
                    bins.push(WorldPoint {
                        x: px / scale,
                        y: py / scale,
                        w: 1.0 + count as f32 * 37.5,
                        seq: bins.len() as u32,
                    });
                }
            }
            let dot = Dot::new(&DOTS, 1.0).expect("a dot");
            let placed = place(&bins, &vp, &dot);
            let (w, h) = (w as usize, h as usize);
            let q = gather::one_stencil_in_order(&placed).expect("one stencil, ascending");
            let stencil = Stencil::new(&dot, &dot, q % SUBPIXEL, q / SUBPIXEL);
            let gathered = gather::log_sums(&placed, &stencil, w, h);
            let scattered = scatter(&placed, &dot, &dot, w, h);
            assert!(gathered.iter().filter(|&&s| s < 0.0).count() > w * h / 2);
            let bits = |sums: &[f32]| sums.iter().map(|s| s.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&gathered), bits(&scattered), "{w}x{h} origin {origin}");
        }
    }

    #[test]
    fn bins_twice_in_a_pixel_or_at_mixed_fractions_are_drawn_one_by_one() {
        let vp = tile_vp(12, 1.0, 2100.0 * 256.0, 1360.0 * 256.0, 16);
        let vp = Viewport { height: 16, ..vp };
        let dot = Dot::new(&DOTS, 1.0).expect("a dot");
        let at = |px: f64, py: f64| WorldPoint {
            x: (vp.origin_x + px) / vp.scale_x,
            y: (vp.origin_y + py) / vp.scale_y,
            w: 1.0,
            seq: 0,
        };
        let grid: Vec<WorldPoint> = (0..16)
            .flat_map(|y| (0..16).map(move |x| (f64::from(x) + 0.5, f64::from(y) + 0.5)))
            .map(|(x, y)| at(x, y))
            .collect();
        assert!(gather::shared_stencil(&place(&grid, &vp, &dot), 16, 16).is_some());
        // Out of order (as copies across the antimeridian come): placed in order.
        let mut swapped = grid.clone();
        swapped.swap(3, 4);
        swapped.rotate_left(50);
        assert!(gather::shared_stencil(&place(&swapped, &vp, &dot), 16, 16).is_some());
        let mut twice = grid.clone();
        twice.insert(5, twice[5]);
        assert!(gather::shared_stencil(&place(&twice, &vp, &dot), 16, 16).is_none());
        let mut moved = grid.clone();
        moved[7].x += 0.25 / vp.scale_x;
        assert!(gather::shared_stencil(&place(&moved, &vp, &dot), 16, 16).is_none());
        let sparse = &grid[..100];
        assert!(gather::shared_stencil(&place(sparse, &vp, &dot), 16, 16).is_none());
    }

    #[test]
    fn odd_input_draws_nothing_or_something_but_never_panics() {
        let vp = tile_vp(2, 1.0, 256.0, 256.0, 256);
        let odd = [f64::NAN, f64::INFINITY, -1e300, 1e300, 0.5];
        let bins: Vec<WorldPoint> = odd
            .iter()
            .flat_map(|&x| {
                odd.iter().map(move |&y| WorldPoint {
                    x,
                    y,
                    w: 3.0,
                    seq: 0,
                })
            })
            .collect();
        let img = render_bins(&bins, &vp, &DOTS, &grey_scheme());
        assert_eq!(img.pixels.len(), 256 * 256);
        let zero = DotsParams {
            dot_size: 0,
            opacity: 255,
        };
        assert!(render_bins(&bins, &vp, &zero, &grey_scheme())
            .pixels
            .iter()
            .all(|&v| v == 255));
    }

    #[test]
    fn positions_round_to_sixteenths_of_a_pixel() {
        assert_eq!(quantize(3, 0.5), (3, 8));
        assert_eq!(quantize(3, 0.0), (3, 0));
        assert_eq!(quantize(3, 0.99), (4, 0));
        assert_eq!(quantize(-2, 0.03), (-2, 0));
        assert_eq!(quantize(-2, 0.04), (-2, 1));
    }
}
