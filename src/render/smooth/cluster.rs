//! Leaflet.heat's clustering: points summed per grid cell, one stamp draw per cell.

use super::composite::{alpha8, clamp_to_i64, js_max, Canvas};
use super::stamp::{stamp, Stamp};
use super::{Kernel, SmoothParams, Viewport, WorldPoint};
use crate::render::fastfloor::floor_i64;
use std::collections::HashMap;

/// Above this many clustering cells the dense per-render grid would cost more memory than it
/// saves time (only for tiny radii over big images), so a sparse map is used instead.
const DENSE_GRID_MAX_CELLS: usize = 1 << 18;

/// Resolution of a cell's mean position, in steps per cell, before it is rounded to a pixel
/// (see `ClusterDrawer::draw`).
const SNAP_STEPS: f64 = (1u64 << 20) as f64;

/// Coordinates beyond this magnitude (in pixels) are treated as unusable: f64 no longer holds
/// every integer there and the cell arithmetic would stop being exact.
const MAX_COORD: f64 = 4.0e15;

/// One clustering cell: sums of weight and of weight times position relative to the cell's
/// corner (in cell units).
#[derive(Debug, Clone, Copy, Default)]
struct Cell {
    w: f64,
    x: f64,
    y: f64,
}

/// The clustering grid of one render in one world copy: every cell whose stamp could touch
/// the image. Cell coordinates are those of the copy's own world (x in [0, 1)).
#[derive(Debug, Clone, Copy)]
struct Grid {
    /// The world copy (0: the world itself; -1, 1: the copies west and east of it), whose
    /// points are `shift` world widths from their place.
    shift: i64,
    /// Global index of the first cell in x and y.
    cx0: i64,
    cy0: i64,
    ncx: usize,
    ncy: usize,
    /// Global cell coordinate per world unit (scale / cell). Every render uses the same
    /// expression, so every render puts a point in the same cell.
    kx: f64,
    ky: f64,
    /// The grid's extent in global cell coordinates: [lo, hi).
    lo_x: f64,
    hi_x: f64,
    lo_y: f64,
    hi_y: f64,
}

impl Grid {
    fn new(vp: &Viewport, k: &Kernel) -> Option<Grid> {
        let half = k.half as f64;
        // A stamp centred at image pixel corner c covers [c - half, c + half); its centre is
        // the rounded mean of points in its cell, so cells within half + 1 of the image are
        // all that can matter.
        let range = |origin: f64, size: u32| {
            let lo = ((origin - half - 1.0) / k.cell).floor();
            let hi = ((origin + f64::from(size) + half + 1.0) / k.cell).floor();
            (lo.abs() < MAX_COORD && hi.abs() < MAX_COORD && lo <= hi)
                .then(|| (lo as i64, (hi - lo) as usize + 1))
        };
        let (cx0, ncx) = range(vp.origin_x, vp.width)?;
        let (cy0, ncy) = range(vp.origin_y, vp.height)?;
        Some(Grid {
            shift: 0,
            cx0,
            cy0,
            ncx,
            ncy,
            kx: vp.scale_x / k.cell,
            ky: vp.scale_y / k.cell,
            lo_x: cx0 as f64,
            hi_x: (cx0 + ncx as i64) as f64,
            lo_y: cy0 as f64,
            hi_y: (cy0 + ncy as i64) as f64,
        })
    }

    /// The grid split by world copy, west to east: for each copy the whole cells of its world
    /// that the grid overlaps (cells are never cut at the render's edge: a render is given
    /// every point of the cells it draws). None when the grid lies within the world itself,
    /// which is the grid as it is.
    fn copies(&self) -> Option<Vec<Grid>> {
        // The world is kx cells wide (rarely a whole number); copy s spans [s kx, (s + 1) kx).
        let world = self.kx;
        if self.lo_x >= 0.0 && self.hi_x <= world {
            return None;
        }
        // The layer wraps one world each way (`Layer::render_input`): further copies would be
        // empty, and a tiny overlay could otherwise span thousands of them.
        let first = ((self.lo_x / world).floor() as i64).clamp(-1, 1);
        let last = ((self.hi_x / world).ceil() as i64 - 1).clamp(first, 1);
        let copies = (first..=last)
            .filter_map(|s| {
                let offset = s as f64 * world;
                let lo = (self.lo_x - offset).floor().max(0.0);
                let hi = (self.hi_x - offset).ceil().min(world.ceil());
                (lo < hi).then(|| Grid {
                    shift: s,
                    cx0: lo as i64,
                    ncx: (hi - lo) as usize,
                    lo_x: lo,
                    // Past x = 1 are the next copy's points, even inside the last, partial cell.
                    hi_x: hi.min(world),
                    ..*self
                })
            })
            .collect();
        Some(copies)
    }

    /// Calls `add(column, row, contribution)` for every usable point inside the grid, with its
    /// weight and its weighted position relative to its cell's corner, in cell units
    /// (relative, so that sums stay small and precise at deep zooms, and the same in every
    /// render that shares the cell).
    ///
    /// This is the hot loop of a render (it runs once per point), hence the bit test for the
    /// weight and the two variants of floor below.
    ///
    /// `COPY`: the grid is one copy of [`Grid::copies`], whose points are moved back by its
    /// shift (exactly: the layer gives copies on a grid of 2^-52, see `Layer::render_input`,
    /// so a copy's point has its original's coordinates). A constant, so that the common
    /// grid within the world runs the loop without it.
    #[inline(always)]
    fn for_each_point<const COPY: bool>(
        &self,
        points: &[WorldPoint],
        mut add: impl FnMut(usize, usize, Cell),
    ) {
        let (lo_x, hi_x, lo_y, hi_y) = (self.lo_x, self.hi_x, self.lo_y, self.hi_y);
        let shift = self.shift as f64;
        let mut point = |p: &WorldPoint, floor: fn(f64) -> i64| {
            // Bits in 1..=0x7f7f_ffff: a positive, finite, non-zero weight (NaN fails too).
            if p.w.to_bits().wrapping_sub(1) >= 0x7f7f_ffff {
                return;
            }
            let x = if COPY { p.x - shift } else { p.x };
            let (vx, vy) = (x * self.kx, p.y * self.ky);
            // Written so that NaN fails.
            if !(vx >= lo_x && vx < hi_x && vy >= lo_y && vy < hi_y) {
                return;
            }
            let (fx, fy) = (floor(vx), floor(vy));
            let (ix, iy) = ((fx - self.cx0) as usize, (fy - self.cy0) as usize);
            let w = f64::from(p.w);
            add(
                ix,
                iy,
                Cell {
                    w,
                    x: w * (vx - fx as f64),
                    y: w * (vy - fy as f64),
                },
            );
        };
        if self.cx0 >= 0 && self.cy0 >= 0 {
            // Every accepted coordinate is >= 0 here, where truncation is floor and is a single
            // instruction (f64::floor is a libm call on baseline x86-64).
            for p in points {
                point(p, |v| v as i64);
            }
        } else {
            for p in points {
                point(p, floor_i64);
            }
        }
    }
}

pub(super) fn draw_clusters(
    pixels: &mut [u8],
    points: &[WorldPoint],
    vp: &Viewport,
    p: &SmoothParams,
) {
    let k = Kernel::new(p, vp.pixel_ratio);
    let usable = |v: f64| v.is_finite() && v.abs() < MAX_COORD;
    if pixels.is_empty()
        || k.half == 0
        || !(k.cell > 0.0 && k.cell.is_finite())
        || !(usable(vp.scale_x) && usable(vp.scale_y))
        || !(usable(vp.origin_x) && usable(vp.origin_y))
    {
        return;
    }
    let Some(grid) = Grid::new(vp, &k) else {
        return;
    };
    let mut canvas = Canvas {
        w: vp.width as usize,
        h: vp.height as usize,
        px: pixels,
    };
    let stamp = stamp(k.radius, k.blur);
    let drawer = ClusterDrawer::new(vp, p, &k, &stamp);
    if let Some(copies) = grid.copies() {
        // Row by row, and in each row the copies west to east: the global order, as if the
        // copies were one grid.
        // One pass per copy (at most three): each pass is the plain loop, which measured
        // cheaper than one pass sorting the points between the copies.
        let mut cells: Vec<((i64, i64, i64), Cell)> = Vec::new();
        for (i, g) in copies.iter().enumerate() {
            match g.ncx.checked_mul(g.ncy) {
                Some(n) if n <= DENSE_GRID_MAX_CELLS => {
                    let dense = accumulate_dense::<true>(points, g, n);
                    cells.extend(dense.iter().enumerate().filter(|(_, c)| c.w > 0.0).map(
                        |(j, c)| {
                            let (ix, iy) = ((j % g.ncx) as i64, (j / g.ncx) as i64);
                            ((g.cy0 + iy, i as i64, g.cx0 + ix), *c)
                        },
                    ));
                }
                _ => cells.extend(
                    accumulate_sparse::<true>(points, g)
                        .into_iter()
                        .map(|((cy, cx), c)| ((cy, i as i64, cx), c)),
                ),
            }
        }
        cells.sort_unstable_by_key(|&(key, _)| key);
        for ((cy, copy, cx), c) in cells {
            drawer.draw(&mut canvas, cx, cy, copies[copy as usize].shift, &c);
        }
        return;
    }
    match grid.ncx.checked_mul(grid.ncy) {
        Some(n) if n <= DENSE_GRID_MAX_CELLS => {
            // Row-major over global cell indices: the canonical drawing order.
            let cells = accumulate_dense::<false>(points, &grid, n);
            for (i, c) in cells.iter().enumerate() {
                let (ix, iy) = ((i % grid.ncx) as i64, (i / grid.ncx) as i64);
                drawer.draw(&mut canvas, grid.cx0 + ix, grid.cy0 + iy, 0, c);
            }
        }
        _ => {
            for ((cy, cx), c) in accumulate_sparse::<false>(points, &grid) {
                drawer.draw(&mut canvas, cx, cy, 0, &c);
            }
        }
    }
}

/// Sums points into a dense row-major grid.
///
/// One thread on purpose: splitting big inputs over both cores measured no faster on a busy
/// machine (a server under load) and far slower when the second thread waited for a core.
fn accumulate_dense<const COPY: bool>(points: &[WorldPoint], g: &Grid, n: usize) -> Vec<Cell> {
    let mut cells = vec![Cell::default(); n];
    g.for_each_point::<COPY>(points, |ix, iy, q| {
        if let Some(c) = cells.get_mut(iy * g.ncx + ix) {
            c.w += q.w;
            c.x += q.x;
            c.y += q.y;
        }
    });
    cells
}

/// Same as [`accumulate_dense`] for grids too large to allocate densely; returns the non-empty
/// cells keyed by global (row, column), in that order.
fn accumulate_sparse<const COPY: bool>(points: &[WorldPoint], g: &Grid) -> Vec<((i64, i64), Cell)> {
    let mut cells: HashMap<(i64, i64), Cell> = HashMap::new();
    g.for_each_point::<COPY>(points, |ix, iy, q| {
        let c = cells
            .entry((g.cy0 + iy as i64, g.cx0 + ix as i64))
            .or_default();
        c.w += q.w;
        c.x += q.x;
        c.y += q.y;
    });
    let mut cells: Vec<_> = cells.into_iter().collect();
    cells.sort_unstable_by_key(|&(key, _)| key);
    cells
}

/// Turns one cell into one stamp draw, as Leaflet.heat's redraw + simpleheat's draw do.
struct ClusterDrawer<'a> {
    stamp: &'a Stamp,
    cell: f64,
    half: i64,
    /// The origin split into an integral part and a fraction: with integral origins (tiles)
    /// the stamp position is then round(global) - origin exactly, whatever the origin.
    ox_int: f64,
    /// Pixels per world width: a copy's stamps are drawn whole world widths away.
    world_px: f64,
    ox_frac: f64,
    oy_int: f64,
    oy_frac: f64,
    zoom_factor: f64,
    max: f64,
    min_opacity: f64,
}

impl<'a> ClusterDrawer<'a> {
    fn new(vp: &Viewport, p: &SmoothParams, k: &Kernel, stamp: &'a Stamp) -> Self {
        let dz = p.max_zoom - vp.zoom;
        let dz = if dz.is_nan() {
            0.0
        } else {
            dz.clamp(0.0, 12.0)
        };
        let (ox_int, oy_int) = (vp.origin_x.floor(), vp.origin_y.floor());
        ClusterDrawer {
            stamp,
            cell: k.cell,
            half: k.half,
            ox_int,
            world_px: vp.scale_x,
            ox_frac: vp.origin_x - ox_int,
            oy_int,
            oy_frac: vp.origin_y - oy_int,
            zoom_factor: 0.5f64.powf(dz),
            max: p.max,
            min_opacity: p.min_opacity,
        }
    }

    /// Draws cell (cx, cy) of world copy `shift`.
    fn draw(&self, canvas: &mut Canvas, cx: i64, cy: i64, shift: i64, c: &Cell) {
        if !(c.w > 0.0 && c.w.is_finite()) {
            return;
        }
        // Math.round(v) = floor(v + 0.5), taken on the global position so that every render
        // with an integral origin puts the stamp on the same global pixel.
        // The mean is snapped to 2^-20 of a cell first: float sums carry last-bit differences
        // that depend on the order of the points (which a source may not keep the same for a
        // tile and an overlay), and these must not move a stamp whose exact mean lies on a
        // rounding boundary (e.g. points placed symmetrically about it).
        let snap = |v: f64| (v * SNAP_STEPS).round() / SNAP_STEPS;
        let gx = (cx as f64 + snap(c.x / c.w)) * self.cell;
        let gy = (cy as f64 + snap(c.y / c.w)) * self.cell;
        // The copy's offset is added to whole pixels (tile scales are whole), so a copy's stamp
        // lands exactly one world width from its original's.
        let lx = (gx - self.ox_frac + 0.5).floor() - self.ox_int + shift as f64 * self.world_px;
        let ly = (gy - self.oy_frac + 0.5).floor() - self.oy_int;
        if !(lx.is_finite() && ly.is_finite()) {
            return;
        }
        let (left, top) = (clamp_to_i64(lx) - self.half, clamp_to_i64(ly) - self.half);
        // Leaflet.heat clamps the cell's sum at max, so value / max never exceeds 1 and the
        // canvas globalAlpha quirk never triggers; an invalid max (0, NaN) would leave the
        // canvas at its initial globalAlpha of 1.
        let value = (c.w * self.zoom_factor).min(self.max);
        let ga = js_max(value / self.max, self.min_opacity);
        // Not snapped like the mean: values such as 0.3 (76.49999.. / 255) must round as in
        // Chromium, and (2k + 1) / 510, where round(ga * 255) flips, is never a dyadic sum.
        let ga = if ga.is_nan() { 1.0 } else { ga.clamp(0.0, 1.0) };
        canvas.draw(self.stamp, left, top, alpha8(ga));
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{clustered_points, palette, params, tile_viewport};
    use super::super::{draw_alpha, render, Kernel};
    use super::*;

    /// Points in one cell become one stamp at their weighted mean with their summed weight,
    /// clamped at max.
    #[test]
    fn cell_points_merge_into_one_stamp() {
        let vp = tile_viewport(10, 300, 400, 1.0);
        let p = SmoothParams {
            max: 3.0,
            max_zoom: 10.0,
            ..params(10, 6)
        };
        // cell = 8 px; global cell (300*256/8 + 12) covers local x [96, 104).
        let at = |x: f64, y: f64, w: f32| WorldPoint {
            x: (300.0 * 256.0 + x) / vp.scale_x,
            y: (400.0 * 256.0 + y) / vp.scale_y,
            w,
            seq: 0,
        };
        let img = render(
            &[at(97.0, 97.0, 1.0), at(101.0, 101.0, 3.0)],
            &vp,
            &p,
            &palette(),
        );
        let expected = draw_alpha(&[[100.0, 100.0, 3.0]], 256, 256, 10, 6, 3.0, 0.05);
        assert_eq!(img.pixels, expected);
        let img = render(
            &[at(97.0, 97.0, 1.0), at(101.0, 101.0, 1.0)],
            &vp,
            &p,
            &palette(),
        );
        let expected = draw_alpha(&[[99.0, 99.0, 2.0]], 256, 256, 10, 6, 3.0, 0.05);
        assert_eq!(img.pixels, expected);
    }
    /// Tiny radii over a big image take the sparse grid path; it must agree with the dense
    /// one.
    #[test]
    fn sparse_grid_matches_dense() {
        let p = params(1, 1);
        let small = tile_viewport(12, 1000, 1500, 1.0);
        let big = Viewport {
            width: 1024,
            height: 1024,
            ..small
        };
        assert!(Grid::new(&big, &Kernel::new(&p, 1.0))
            .is_some_and(|g| g.ncx * g.ncy > DENSE_GRID_MAX_CELLS));
        let n = 4096.0 * 256.0;
        let pts = clustered_points(5000, 1000.0 * 256.0 / n, 1500.0 * 256.0 / n, 200.0 / n, 9);
        let a = render(&pts, &small, &p, &palette());
        let b = render(&pts, &big, &p, &palette());
        assert!(!a.is_blank());
        for row in 0..256 {
            assert_eq!(
                a.pixels[row * 256..(row + 1) * 256],
                b.pixels[row * 1024..row * 1024 + 256]
            );
        }
    }
}
