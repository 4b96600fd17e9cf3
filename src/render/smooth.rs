//! The `smooth` style: Leaflet.heat 0.2.0's look, rendered on the server.
//!
//! Leaflet.heat clusters the visible points on a grid of `R / 2` pixel cells (R = radius +
//! blur), then hands one point per non-empty cell to simpleheat 0.4.0, which draws a
//! pre-blurred grey disc (the "stamp") per point with canvas source-over compositing; the
//! accumulated alpha of each pixel then picks a palette entry. This module reproduces that
//! pipeline closely enough to match Chromium's canvas (see `tests/fixtures/simpleheat`):
//!
//! - the stamp follows Skia's raster path: a circle flattened into lines the way Skia's edge
//!   builder does it, 4x4-supersampled coverage, then Skia's triple box blur approximation of
//!   the Gaussian shadow (sigma = blur / 2);
//! - compositing uses the 8-bit arithmetic of Skia's legacy blitters, which Chromium uses for
//!   these draws, so integer-positioned draws are bit-exact given the same stamp;
//! - fractional positions (only reachable through [`draw_alpha`]) use Skia's legacy bilinear
//!   sampler with 4-bit subpixel weights.
//!
//! Unlike Leaflet.heat, which aligns its grid to the map pane, cells here are aligned to the
//! global pixel grid and drawn in a global order, so neighbouring tiles and an overlay of the
//! same area cluster and composite identically: a mosaic of tiles equals one big render pixel
//! for pixel.
//!
//! The world wraps: points beyond x = 0 or x = 1 are copies of the other edge, shifted by one
//! world width. A world is rarely a whole number of cells wide, so each copy is clustered on
//! the grid of the world it came from and then drawn shifted by whole world widths: a cell
//! at the antimeridian is the same cell in the east-most tile, the west-most tile and any
//! render across it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use super::fastfloor::floor_i64;
use super::{IndexedImage, Palette, SmoothParams, Viewport, WorldPoint};

/// Largest disc radius and largest blur, in image pixels, that a stamp is built for; larger
/// values are clamped so that a stamp stays at most 2048 x 2048 pixels whatever the request.
const MAX_KERNEL_PX: u32 = 512;

/// Above this many clustering cells the dense per-render grid would cost more memory than it
/// saves time (only for tiny radii over big images), so a sparse map is used instead.
const DENSE_GRID_MAX_CELLS: usize = 1 << 18;

/// The stamp cache is emptied when it would grow beyond this, so that requests cycling through
/// many radius/blur pairs cannot make it grow without bound.
const STAMP_CACHE_MAX_BYTES: usize = 64 << 20;

/// Resolution of a cell's mean position, in steps per cell, before it is rounded to a pixel
/// (see `ClusterDrawer::draw`).
const SNAP_STEPS: f64 = (1u64 << 20) as f64;

/// Coordinates beyond this magnitude (in pixels) are treated as unusable: f64 no longer holds
/// every integer there and the cell arithmetic would stop being exact.
const MAX_COORD: f64 = 4.0e15;

/// How far outside the image (in image pixels) a point can still change a pixel, including the
/// whole clustering cell it falls in: a render that is given every point within this margin
/// computes every cell it draws from complete data.
pub fn reach_px(p: &SmoothParams, pixel_ratio: f64) -> f64 {
    Kernel::new(p, pixel_ratio).reach
}

/// Renders `points` with Leaflet.heat's clustering and simpleheat's drawing; `pixels[i]` is the
/// accumulated alpha (0..=255), which indexes `palette` (entry i has alpha i).
pub fn render(
    points: &[WorldPoint],
    vp: &Viewport,
    p: &SmoothParams,
    palette: &Palette,
) -> IndexedImage {
    let mut pixels = vec![0u8; vp.width as usize * vp.height as usize];
    draw_clusters(&mut pixels, points, vp, p);
    IndexedImage {
        width: vp.width,
        height: vp.height,
        pixels,
        palette: palette.clone(),
    }
}

/// simpleheat 0.4.0's `draw(min_opacity)` on a fresh `width` x `height` canvas after
/// `data(points).max(max).radius(radius, blur)`, returning the alpha channel (row-major).
///
/// `points` are `[x, y, value]` in canvas pixels, drawn in list order. Like the canvas, a
/// globalAlpha outside [0, 1] (value / max > 1, NaN) is ignored and the previous one is kept
/// (1.0 at first); points with non-finite coordinates draw nothing.
pub fn draw_alpha(
    points: &[[f64; 3]],
    width: u32,
    height: u32,
    radius: u32,
    blur: u32,
    max: f64,
    min_opacity: f64,
) -> Vec<u8> {
    let mut px = vec![0u8; width as usize * height as usize];
    let (r, b) = (radius.min(MAX_KERNEL_PX), blur.min(MAX_KERNEL_PX));
    if r + b == 0 || px.is_empty() {
        // simpleheat would make a 0 x 0 stamp canvas, which draws nothing.
        return px;
    }
    let mut canvas = Canvas {
        w: width as usize,
        h: height as usize,
        px: &mut px,
    };
    draw_points(&mut canvas, &stamp(r, b), points, max, min_opacity);
    px
}

/// simpleheat's draw loop over an existing canvas with a given stamp.
fn draw_points(
    canvas: &mut Canvas,
    stamp: &Stamp,
    points: &[[f64; 3]],
    max: f64,
    min_opacity: f64,
) {
    let half = (stamp.size / 2) as f64;
    let mut global_alpha = 1.0;
    for &[x, y, value] in points {
        let a = js_max(value / max, min_opacity);
        if (0.0..=1.0).contains(&a) {
            global_alpha = a;
        }
        if !(x.is_finite() && y.is_finite()) {
            continue;
        }
        let ga8 = alpha8(global_alpha);
        let (left, top) = (x - half, y - half);
        if left.fract() == 0.0 && top.fract() == 0.0 {
            // Chromium copies the stamp unscaled when it lands on whole pixels.
            canvas.draw(stamp, clamp_to_i64(left), clamp_to_i64(top), ga8);
        } else {
            canvas.draw_resampled(stamp, left, top, ga8);
        }
    }
}

/// Kernel sizes in image pixels for one render.
#[derive(Debug, Clone, Copy)]
struct Kernel {
    /// Disc radius of the stamp.
    radius: u32,
    /// Shadow blur of the stamp (Gaussian sigma = blur / 2).
    blur: u32,
    /// Half the stamp's side: it covers [x - half, x + half) around its centre x.
    half: i64,
    /// Side of a clustering cell (R / 2, possibly fractional).
    cell: f64,
    reach: f64,
}

impl Kernel {
    fn new(p: &SmoothParams, pixel_ratio: f64) -> Kernel {
        let ratio = if pixel_ratio.is_finite() && pixel_ratio > 0.0 {
            pixel_ratio
        } else {
            1.0
        };
        let px = |v: u32| (f64::from(v) * ratio).round().min(f64::from(MAX_KERNEL_PX)) as u32;
        let (radius, blur) = (px(p.radius), px(p.blur));
        // Leaflet.heat's cell is R / 2 with R in CSS pixels; scaled to image pixels it can be
        // fractional, so it is not derived from the rounded stamp sizes.
        let r_exact =
            ((f64::from(p.radius) + f64::from(p.blur)) * ratio).min(f64::from(2 * MAX_KERNEL_PX));
        let half = i64::from(radius + blur);
        let cell = r_exact / 2.0;
        Kernel {
            radius,
            blur,
            half,
            cell,
            reach: r_exact.max(half as f64) + cell + 2.0,
        }
    }
}

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
    /// This is the hot loop of a render (a few ns per point), hence the bit test for the
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

fn draw_clusters(pixels: &mut [u8], points: &[WorldPoint], vp: &Viewport, p: &SmoothParams) {
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

/// simpleheat's stamp: an anti-aliased disc blurred into a soft dot, 8-bit alpha.
#[derive(Debug)]
struct Stamp {
    /// Side in pixels (2 * (radius + blur)); the disc is centred on the corner at (side/2, side/2).
    size: usize,
    alpha: Vec<u8>,
    /// Per row, the range of columns with non-zero alpha (empty when start == end), so the
    /// blank corners are never composited.
    spans: Vec<(usize, usize)>,
}

/// The stamp for (radius, blur) in pixels, built once per process and shared.
fn stamp(radius: u32, blur: u32) -> Arc<Stamp> {
    type Cache = Mutex<HashMap<(u32, u32), Arc<Stamp>>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    // A panic elsewhere while holding the lock cannot leave the map inconsistent (inserts are
    // single calls), so a poisoned lock is still usable.
    fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
        m.lock().unwrap_or_else(|e| e.into_inner())
    }
    let cache = CACHE.get_or_init(Default::default);
    if let Some(s) = lock(cache).get(&(radius, blur)) {
        return Arc::clone(s);
    }
    // Built outside the lock: other renders keep going, and two threads building the same
    // stamp at once just do the work twice.
    let built = Arc::new(Stamp::build(radius, blur));
    let mut map = lock(cache);
    let bytes: usize = map.values().map(|s| s.alpha.len()).sum();
    if bytes + built.alpha.len() > STAMP_CACHE_MAX_BYTES {
        map.clear();
    }
    Arc::clone(map.entry((radius, blur)).or_insert(built))
}

impl Stamp {
    fn build(radius: u32, blur: u32) -> Stamp {
        let half = (radius + blur) as usize;
        let size = 2 * half;
        let mut alpha = disc_coverage(size, half as f64, f64::from(radius));
        blur_mask(&mut alpha, size, f64::from(blur) / 2.0);
        let spans = alpha
            .chunks_exact(size.max(1))
            .map(|row| {
                let start = row.iter().position(|&a| a != 0).unwrap_or(0);
                let end = row.iter().rposition(|&a| a != 0).map_or(0, |i| i + 1);
                (start, end.max(start))
            })
            .collect();
        Stamp { size, alpha, spans }
    }
}

/// The polygon Skia rasterizes for canvas `arc(cx, cy, r, 0, 2pi)`: four quarter conics, each
/// split into 2^n conics (SkConic::computeQuadPOW2, tolerance 1/4 px) drawn as quads, each quad
/// flattened into 2^shift lines by SkQuadraticEdge (its error estimate in supersampled 26.6
/// fixed point). The chords make the disc slightly smaller than the true circle, which
/// Chromium's stamps show (by up to ~0.15 px in radius).
fn flatten_circle(c: f64, r: f64) -> Vec<(f64, f64)> {
    type P = (f64, f64);
    let w = std::f64::consts::FRAC_1_SQRT_2;
    let unit = [
        (1.0, 0.0),
        (1.0, 1.0),
        (0.0, 1.0),
        (-1.0, 1.0),
        (-1.0, 0.0),
        (-1.0, -1.0),
        (0.0, -1.0),
        (1.0, -1.0),
        (1.0, 0.0),
    ];
    let at = |i: usize| (c + r * unit[i].0, c + r * unit[i].1);
    let mut conics: Vec<(P, P, P, f64)> = (0..4)
        .map(|q| (at(2 * q), at(2 * q + 1), at(2 * q + 2), w))
        .collect();
    // Same error bound for all four quarters: |k * (p0 - 2 p1 + p2)| with k = (w-1)/(4(2+w-1)).
    let a = w - 1.0;
    let mut err = (a / (4.0 * (2.0 + a))).abs() * r * std::f64::consts::SQRT_2;
    let mut pow2 = 0;
    while pow2 < 5 && err > 0.25 {
        err *= 0.25;
        pow2 += 1;
    }
    for _ in 0..pow2 {
        let mut split = Vec::with_capacity(conics.len() * 2);
        for (p0, p1, p2, w) in conics {
            let lerp = |a: P, b: P, wa: f64, wb: f64| {
                (
                    (a.0 * wa + b.0 * wb) / (wa + wb),
                    (a.1 * wa + b.1 * wb) / (wa + wb),
                )
            };
            let q0 = lerp(p0, p1, 1.0, w);
            let q1 = lerp(p1, p2, w, 1.0);
            let mid = lerp(q0, q1, 1.0, 1.0);
            let nw = ((1.0 + w) / 2.0).sqrt();
            split.push((p0, q0, mid, nw));
            split.push((mid, q1, p2, nw));
        }
        conics = split;
    }
    let mut poly = Vec::new();
    for (p0, p1, p2, _) in conics {
        // 26.6 fixed point of supersampled (x4) coordinates, as SkEdge sees them.
        let fx = |v: f64| (v * 256.0).floor() as i64;
        let dx = ((fx(p1.0) << 1) - fx(p0.0) - fx(p2.0)) >> 2;
        let dy = ((fx(p1.1) << 1) - fx(p0.1) - fx(p2.1)) >> 2;
        let (ax, ay) = (dx.abs(), dy.abs());
        let dist = if ax > ay {
            ax + (ay >> 1)
        } else {
            ay + (ax >> 1)
        };
        let dist = ((dist + 16) >> 5).clamp(0, i64::from(u32::MAX)) as u32;
        let shift = ((32 - dist.leading_zeros()) >> 1).clamp(1, 6);
        let n = 1u32 << shift;
        for i in 0..n {
            let t = f64::from(i) / f64::from(n);
            let u = 1.0 - t;
            poly.push((
                u * u * p0.0 + 2.0 * u * t * p1.0 + t * t * p2.0,
                u * u * p0.1 + 2.0 * u * t * p1.1 + t * t * p2.1,
            ));
        }
    }
    poly
}

/// 8-bit coverage of a disc of radius `r` centred at (c, c) on a `size` x `size` mask, the way
/// Skia's supersampling scan converter computes it: 4 sub-scanlines per pixel, span ends
/// rounded to quarter pixels, partial pixels 16 per quarter, full ones 64 (63 on the last
/// sub-scanline, so that a fully covered pixel is 255).
fn disc_coverage(size: usize, c: f64, r: f64) -> Vec<u8> {
    let mut acc = vec![0u16; size * size];
    if size > 0 && r > 0.0 {
        let poly = flatten_circle(c, r);
        let subs = size * 4;
        let mut left = vec![f64::INFINITY; subs];
        let mut right = vec![f64::NEG_INFINITY; subs];
        for (i, &a) in poly.iter().enumerate() {
            let b = poly[(i + 1) % poly.len()];
            let (lo, hi) = if a.1 < b.1 { (a.1, b.1) } else { (b.1, a.1) };
            // Sub-scanline s samples y = (s + 0.5) / 4; half-open [lo, hi) so that a vertex
            // shared by two edges is counted once.
            let s0 = (lo * 4.0 - 0.5).ceil().max(0.0) as usize;
            let s1 = ((hi * 4.0 - 0.5).ceil().max(0.0) as usize).min(subs);
            for s in s0..s1 {
                let y = (s as f64 + 0.5) / 4.0;
                let x = a.0 + (y - a.1) * (b.0 - a.0) / (b.1 - a.1);
                left[s] = left[s].min(x);
                right[s] = right[s].max(x);
            }
        }
        let limit = subs as f64;
        for (s, (&l, &r)) in left.iter().zip(&right).enumerate() {
            // Sub-scanlines that miss the disc keep left = +inf, right = -inf.
            if l >= r {
                continue;
            }
            let start = (l * 4.0 + 0.5).floor().clamp(0.0, limit) as usize;
            let stop = (r * 4.0 + 0.5).floor().clamp(0.0, limit) as usize;
            if start >= stop {
                continue;
            }
            let row = &mut acc[(s / 4) * size..(s / 4 + 1) * size];
            let full: u16 = if s % 4 == 3 { 63 } else { 64 };
            let (fb, fe) = ((start & 3) as u16, (stop & 3) as u16);
            let (first, last) = (start >> 2, stop >> 2);
            if first == last {
                row[first] += (fe - fb) * 16;
                continue;
            }
            let mut x = first;
            if fb != 0 {
                row[x] += (4 - fb) * 16;
                x += 1;
            }
            for v in &mut row[x..last] {
                *v += full;
            }
            if fe != 0 {
                row[last] += fe * 16;
            }
        }
    }
    acc.into_iter().map(|v| v.min(255) as u8).collect()
}

/// Blurs an 8-bit mask in place, separably (rows, then columns, 8-bit in between, as Skia
/// does). sigma >= 2 uses Skia's triple box approximation; smaller sigmas a sampled Gaussian.
/// The mask is zero near its border (the disc ends `blur` pixels inside it), so treating
/// everything outside as zero loses nothing.
fn blur_mask(mask: &mut [u8], size: usize, sigma: f64) {
    if size == 0 || sigma.is_nan() || sigma <= 0.0 {
        return;
    }
    let filter = LineFilter::new(sigma);
    let mut line = vec![0u8; size];
    let mut out = vec![0u8; size];
    let mut scratch = Scratch::default();
    for row in mask.chunks_exact_mut(size) {
        filter.apply(row, &mut out, &mut scratch);
        row.copy_from_slice(&out);
    }
    for x in 0..size {
        for (y, v) in line.iter_mut().enumerate() {
            *v = mask[y * size + x];
        }
        filter.apply(&line, &mut out, &mut scratch);
        for (y, &v) in out.iter().enumerate() {
            mask[y * size + x] = v;
        }
    }
}

/// Line buffers reused across the rows and columns of one blur.
#[derive(Default)]
struct Scratch {
    a: Vec<u64>,
    b: Vec<u64>,
    prefix: Vec<u64>,
}

/// A 1-D blur kernel.
enum LineFilter {
    /// Skia's SkMaskBlurFilter for sigma >= 2: three running-sum boxes of window
    /// w = floor(sigma * 3 * sqrt(2 pi) / 4 + 0.5) (w, w, w+1 when w is even), an exact integer
    /// sum, then a fixed-point divide by the product of the windows.
    Boxes {
        /// (window, pixels to the left of the centre) per box; together symmetric.
        boxes: [(usize, usize); 3],
        extent: usize,
        divisor: u64,
        /// round(2^32 / divisor), Skia's reciprocal (only when divisor is small enough for it
        /// to be precise).
        weight: Option<u64>,
    },
    /// A sampled Gaussian in 16-bit fixed point (Skia uses its own small kernel there).
    Gauss { taps: Vec<u64>, radius: usize },
}

impl LineFilter {
    fn new(sigma: f64) -> LineFilter {
        if sigma < 2.0 {
            let radius = (sigma * 3.0).ceil().max(1.0) as usize;
            let raw: Vec<f64> = (0..=2 * radius)
                .map(|i| {
                    let d = i as f64 - radius as f64;
                    (-d * d / (2.0 * sigma * sigma)).exp()
                })
                .collect();
            let total: f64 = raw.iter().sum();
            let mut taps: Vec<u64> = raw
                .iter()
                .map(|v| (v / total * 65536.0).round() as u64)
                .collect();
            // Make the taps sum to exactly 1.0 so flat areas stay flat.
            let sum: u64 = taps.iter().sum();
            taps[radius] = (taps[radius] + 65536).saturating_sub(sum);
            return LineFilter::Gauss { taps, radius };
        }
        let window = ((sigma * 3.0 * (2.0 * std::f64::consts::PI).sqrt() / 4.0 + 0.5).floor()
            as usize)
            .max(1);
        let boxes = if window % 2 == 1 {
            let l = (window - 1) / 2;
            [(window, l); 3]
        } else {
            let l = window / 2;
            [(window, l), (window, l - 1), (window + 1, l)]
        };
        let divisor: u64 = boxes.iter().map(|&(w, _)| w as u64).product();
        LineFilter::Boxes {
            boxes,
            extent: boxes.iter().map(|&(_, l)| l).sum(),
            divisor,
            weight: (divisor < 1 << 24)
                .then(|| ((1u64 << 32) as f64 / divisor as f64).round() as u64),
        }
    }

    fn apply(&self, src: &[u8], out: &mut [u8], s: &mut Scratch) {
        let n = src.len();
        match self {
            LineFilter::Gauss { taps, radius } => {
                for (i, o) in out.iter_mut().enumerate() {
                    let mut acc = 0u64;
                    for (t, &k) in taps.iter().enumerate() {
                        if let Some(&v) = (i + t).checked_sub(*radius).and_then(|j| src.get(j)) {
                            acc += k * u64::from(v);
                        }
                    }
                    *o = ((acc + (1 << 15)) >> 16).min(255) as u8;
                }
            }
            LineFilter::Boxes {
                boxes,
                extent,
                divisor,
                weight,
            } => {
                // Work on the line padded by the kernel's extent on both sides: every
                // intermediate value that feeds an output pixel then exists in the buffer.
                let len = n + 2 * extent;
                s.a.clear();
                s.a.resize(len, 0);
                for (d, &v) in s.a[*extent..*extent + n].iter_mut().zip(src) {
                    *d = u64::from(v);
                }
                for &(window, left) in boxes {
                    box_sum(&s.a, &mut s.b, &mut s.prefix, window, left);
                    std::mem::swap(&mut s.a, &mut s.b);
                }
                for (o, &sum) in out.iter_mut().zip(&s.a[*extent..*extent + n]) {
                    let v = match weight {
                        Some(w) => (sum * w + (1 << 31)) >> 32,
                        None => (2 * sum + divisor) / (2 * divisor),
                    };
                    *o = v.min(255) as u8;
                }
            }
        }
    }
}

/// out[p] = sum of src[p - left ..= p - left + window - 1] (zero outside), via prefix sums.
fn box_sum(src: &[u64], out: &mut Vec<u64>, prefix: &mut Vec<u64>, window: usize, left: usize) {
    let n = src.len();
    prefix.clear();
    prefix.push(0);
    let mut acc = 0;
    for &v in src {
        acc += v;
        prefix.push(acc);
    }
    out.clear();
    out.extend((0..n).map(|p| {
        let hi = (p + window - left).min(n);
        let lo = p.saturating_sub(left).min(hi);
        prefix[hi] - prefix[lo]
    }));
}

/// An 8-bit alpha canvas over a row-major buffer of w * h pixels.
struct Canvas<'a> {
    w: usize,
    h: usize,
    px: &'a mut [u8],
}

impl Canvas<'_> {
    /// Draws the stamp with its top-left corner on pixel (left, top) and paint alpha ga8.
    ///
    /// Skia's sprite blit with alpha (SkBlendARGB32): with src_scale = ga8 + 1 and
    /// dst_scale = SkAlphaMulInv256(s, src_scale), out = (s * src_scale + d * dst_scale) >> 8.
    /// Bit-exact against Chromium on the fixtures. In 16-bit lanes so it vectorizes: every
    /// intermediate fits (checked exhaustively in the tests).
    fn draw(&mut self, stamp: &Stamp, left: i64, top: i64, ga8: u8) {
        if ga8 == 0 {
            // Skia skips draws with a transparent paint.
            return;
        }
        let src_scale = u16::from(ga8) + 1;
        let size = stamp.size as i64;
        let (w, h) = (self.w as i64, self.h as i64);
        let (x0, x1) = ((-left).clamp(0, size), (w - left).clamp(0, size));
        let (y0, y1) = ((-top).clamp(0, size), (h - top).clamp(0, size));
        for sy in y0..y1 {
            let (s0, s1) = stamp.spans[sy as usize];
            let a = (s0 as i64).max(x0);
            let b = (s1 as i64).min(x1);
            if a >= b {
                continue;
            }
            let src_row = sy as usize * stamp.size;
            let src = &stamp.alpha[src_row + a as usize..src_row + b as usize];
            let dst_row = (top + sy) as usize * self.w;
            let dst = &mut self.px[dst_row + (left + a) as usize..dst_row + (left + b) as usize];
            for (d, &s) in dst.iter_mut().zip(src) {
                *d = blend_sprite(s, *d, src_scale);
            }
        }
    }

    /// Draws the stamp with its top-left corner at fractional (left, top), as Chromium's
    /// drawImage with image smoothing does through Skia's legacy bitmap shader: bilinear with
    /// 4-bit subpixel weights and clamped edges, scaled by ga8 + 1, then source-over
    /// (SkPMSrcOver). Pixels whose centre lies in the destination rectangle are drawn.
    fn draw_resampled(&mut self, stamp: &Stamp, left: f64, top: f64, ga8: u8) {
        if ga8 == 0 || stamp.size == 0 {
            return;
        }
        let size = stamp.size as f64;
        let scale = u32::from(ga8) + 1;
        let range = |start: f64, len: usize| {
            let lo = (start - 0.5).ceil().clamp(0.0, len as f64) as usize;
            let hi = (start + size - 0.5).ceil().clamp(0.0, len as f64) as usize;
            lo..hi
        };
        let last = stamp.size as i64 - 1;
        // Source position of a destination pixel, minus half a pixel for bilinear, in 16.16.
        let sub = |i: usize, start: f64| {
            let f = ((i as f64 - start) * 65536.0).floor() as i64;
            let (base, frac) = (f >> 16, ((f >> 12) & 15) as u32);
            (
                base.clamp(0, last) as usize,
                (base + 1).clamp(0, last) as usize,
                frac,
            )
        };
        for y in range(top, self.h) {
            let (r0, r1, fy) = sub(y, top);
            let (row0, row1) = (r0 * stamp.size, r1 * stamp.size);
            for x in range(left, self.w) {
                let (c0, c1, fx) = sub(x, left);
                let px = |row: usize, col: usize| u32::from(stamp.alpha[row + col]);
                // Skia's weights 256 - 16y - 16x + xy, 16x - xy, 16y - xy, xy, factored.
                let f = px(row0, c0) * (16 - fx) * (16 - fy)
                    + px(row0, c1) * fx * (16 - fy)
                    + px(row1, c0) * (16 - fx) * fy
                    + px(row1, c1) * fx * fy;
                let s = ((f >> 8) * scale) >> 8;
                let d = &mut self.px[y * self.w + x];
                *d = (s + ((u32::from(*d) * (256 - s)) >> 8)).min(255) as u8;
            }
        }
    }
}

/// One pixel of [`Canvas::draw`]: stamp alpha `s` over `d` with src_scale = ga8 + 1.
#[inline(always)]
fn blend_sprite(s: u8, d: u8, src_scale: u16) -> u8 {
    let t = u16::from(s) * src_scale;
    // SkAlphaMulInv256: (p + (p >> 8)) >> 8 with p = 0xFFFF - t, split so that it stays
    // within 16 bits.
    let p = !t;
    let hi = p >> 8;
    let dst_scale = hi + (((p & 0xFF) + hi) >> 8);
    ((t + u16::from(d) * dst_scale) >> 8) as u8
}

/// JavaScript's Math.max for two numbers: NaN if either is NaN.
fn js_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.max(b)
    }
}

/// Skia's 8-bit paint alpha for a globalAlpha in [0, 1]: round(a * 255).
fn alpha8(a: f64) -> u8 {
    (a.clamp(0.0, 1.0) * 255.0 + 0.5).floor() as u8
}

/// Converts an integral f64 to i64, saturating far outside any image.
fn clamp_to_i64(v: f64) -> i64 {
    const LIMIT: f64 = (1u64 << 62) as f64;
    v.clamp(-LIMIT, LIMIT) as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};

    fn fixtures() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/simpleheat")
    }

    /// An 8-bit RGBA PNG as (width, height, bytes).
    fn load_rgba(path: &Path) -> (usize, usize, Vec<u8>) {
        let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
        let mut reader = ::png::Decoder::new(file).read_info().expect("png header");
        let mut buf = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut buf).expect("png data");
        assert_eq!(
            (info.color_type, info.bit_depth),
            (::png::ColorType::Rgba, ::png::BitDepth::Eight),
            "{path:?}"
        );
        let (w, h) = (info.width as usize, info.height as usize);
        buf.truncate(w * h * 4);
        (w, h, buf)
    }

    fn load_cases() -> serde_json::Value {
        let text = std::fs::read_to_string(fixtures().join("cases.json")).expect("cases.json");
        serde_json::from_str(&text).expect("cases.json parses")
    }

    struct Case {
        name: String,
        width: u32,
        height: u32,
        radius: u32,
        blur: u32,
        max: f64,
        min_opacity: f64,
        points: Vec<[f64; 3]>,
        palette: Vec<[u8; 4]>,
        fractional: bool,
        exceeds_max: bool,
    }

    fn cases() -> Vec<Case> {
        let doc = load_cases();
        let num = |v: &serde_json::Value| v.as_f64().expect("number");
        doc["cases"]
            .as_array()
            .expect("cases")
            .iter()
            .map(|c| {
                let palette = doc["palettes"][c["gradient_name"].as_str().expect("gradient")]
                    .as_array()
                    .expect("palette")
                    .iter()
                    .map(|e| std::array::from_fn(|i| num(&e[i]) as u8))
                    .collect();
                Case {
                    name: c["name"].as_str().expect("name").to_string(),
                    width: num(&c["width"]) as u32,
                    height: num(&c["height"]) as u32,
                    radius: num(&c["radius"]) as u32,
                    blur: num(&c["blur"]) as u32,
                    max: num(&c["max"]),
                    min_opacity: num(&c["minOpacity"]),
                    points: c["points"]
                        .as_array()
                        .expect("points")
                        .iter()
                        .map(|p| [num(&p[0]), num(&p[1]), num(&p[2])])
                        .collect(),
                    palette,
                    fractional: c["fractional_coords"].as_bool().expect("flag"),
                    exceeds_max: c["values_exceed_max"].as_bool().expect("flag"),
                }
            })
            .collect()
    }

    /// Chromium's alpha channel for a case.
    fn expected_alpha(name: &str) -> Vec<u8> {
        let (_, _, rgba) = load_rgba(&fixtures().join(format!("{name}.png")));
        rgba.chunks_exact(4).map(|p| p[3]).collect()
    }

    /// Accuracy against Chromium: every simpleheat fixture case except those with
    /// `values_exceed_max` (a canvas quirk Leaflet.heat never triggers) is drawn with
    /// [`draw_alpha`], colorized with the palette Chromium built for its gradient (RGB =
    /// palette[alpha], alpha kept), and compared with `<name>.png` in PREMULTIPLIED color.
    ///
    /// Metric: mean absolute difference over all pixels and all four channels (c * a / 255 for
    /// R, G, B, plus a), in 0..=255 units. Threshold: < 2.55, i.e. < 1% of full scale, for
    /// every case. Per-case figures (and the alpha-only MAD and max) are printed to stderr.
    #[test]
    fn simpleheat_fixtures_match_chromium() {
        let mut failures = Vec::new();
        for case in cases().iter().filter(|c| !c.exceeds_max) {
            let alpha = draw_alpha(
                &case.points,
                case.width,
                case.height,
                case.radius,
                case.blur,
                case.max,
                case.min_opacity,
            );
            let (w, h, expected) = load_rgba(&fixtures().join(format!("{}.png", case.name)));
            assert_eq!((w, h), (case.width as usize, case.height as usize));
            let premul = |c: u8, a: u8| f64::from(c) * f64::from(a) / 255.0;
            let (mut sum, mut alpha_sum, mut alpha_max) = (0.0, 0.0, 0u8);
            for (&a, e) in alpha.iter().zip(expected.chunks_exact(4)) {
                let rgb = if a == 0 {
                    [0; 4]
                } else {
                    case.palette[a as usize]
                };
                for ch in 0..3 {
                    sum += (premul(rgb[ch], a) - premul(e[ch], e[3])).abs();
                }
                let da = a.abs_diff(e[3]);
                sum += f64::from(da);
                alpha_sum += f64::from(da);
                alpha_max = alpha_max.max(da);
            }
            let n = (w * h) as f64;
            let mad = sum / (n * 4.0);
            eprintln!(
                "{}: premultiplied MAD {:.4} /255 = {:.3}% of full scale (alpha MAD {:.4}, max {}){}",
                case.name,
                mad,
                mad / 2.55,
                alpha_sum / n,
                alpha_max,
                if case.fractional { ", fractional coords" } else { "" }
            );
            if mad >= 2.55 {
                failures.push(case.name.clone());
            }
        }
        assert!(failures.is_empty(), "over 1% of full scale: {failures:?}");
    }

    /// The modelled stamp against the one Chromium made for each case (diagnostic fixture).
    #[test]
    fn stamps_match_chromium() {
        for case in cases() {
            let (size, _, rgba) = load_rgba(&fixtures().join(format!("{}.stamp.png", case.name)));
            let ours = stamp(case.radius, case.blur);
            assert_eq!(ours.size, size, "{}", case.name);
            let (mut sum, mut max) = (0u64, 0u8);
            for (&a, e) in ours.alpha.iter().zip(rgba.chunks_exact(4)) {
                let d = a.abs_diff(e[3]);
                sum += u64::from(d);
                max = max.max(d);
            }
            let mean = sum as f64 / (size * size) as f64;
            eprintln!(
                "{} stamp r={} blur={}: mean |diff| {mean:.3}, max {max}",
                case.name, case.radius, case.blur
            );
            assert!(
                max <= 4 && mean < 0.5,
                "{}: mean {mean}, max {max}",
                case.name
            );
        }
    }

    /// Builds a Stamp from Chromium's own stamp image, to test the drawing on its own.
    fn chromium_stamp(name: &str) -> Stamp {
        let (size, _, rgba) = load_rgba(&fixtures().join(format!("{name}.stamp.png")));
        let alpha: Vec<u8> = rgba.chunks_exact(4).map(|p| p[3]).collect();
        let spans = alpha
            .chunks_exact(size)
            .map(|row| {
                let start = row.iter().position(|&a| a != 0).unwrap_or(0);
                let end = row.iter().rposition(|&a| a != 0).map_or(0, |i| i + 1);
                (start, end.max(start))
            })
            .collect();
        Stamp { size, alpha, spans }
    }

    /// Given Chromium's stamp, the compositing is bit-exact on whole-pixel cases (including
    /// the globalAlpha quirk) and within a handful of pixels on fractional ones.
    #[test]
    fn compositing_matches_chromium_given_its_stamp() {
        for case in cases() {
            let stamp = chromium_stamp(&case.name);
            let mut px = vec![0u8; (case.width * case.height) as usize];
            let mut canvas = Canvas {
                w: case.width as usize,
                h: case.height as usize,
                px: &mut px,
            };
            draw_points(
                &mut canvas,
                &stamp,
                &case.points,
                case.max,
                case.min_opacity,
            );
            let expected = expected_alpha(&case.name);
            let differing = px.iter().zip(&expected).filter(|(a, b)| a != b).count();
            eprintln!(
                "{}: {differing} pixels differ given Chromium's stamp",
                case.name
            );
            if case.fractional {
                assert!(differing * 1000 < px.len(), "{}: {differing}", case.name);
            } else {
                assert_eq!(differing, 0, "{}", case.name);
            }
        }
    }

    /// The 16-bit sprite blend equals Skia's 32-bit arithmetic for every input (and so never
    /// overflows).
    #[test]
    fn sprite_blend_is_exact_in_16_bits() {
        for ga8 in 1..=255u32 {
            let src_scale = ga8 + 1;
            for s in 0..=255u32 {
                let prod = 0xFFFF - s * src_scale;
                let dst_scale = (prod + (prod >> 8)) >> 8;
                for d in 0..=255u32 {
                    let reference = (s * src_scale + d * dst_scale) >> 8;
                    let ours = blend_sprite(s as u8, d as u8, src_scale as u16);
                    assert_eq!(u32::from(ours), reference, "ga8 {ga8} s {s} d {d}");
                }
            }
        }
    }

    fn params(radius: u32, blur: u32) -> SmoothParams {
        SmoothParams {
            radius,
            blur,
            max: 1.0,
            min_opacity: 0.05,
            max_zoom: 18.0,
        }
    }

    fn tile_viewport(z: u32, tx: u32, ty: u32, ratio: f64) -> Viewport {
        let size = 256.0 * ratio;
        let scale = 256.0 * f64::from(1u32 << z) * ratio;
        Viewport {
            scale_x: scale,
            scale_y: scale,
            origin_x: f64::from(tx) * size,
            origin_y: f64::from(ty) * size,
            width: size as u32,
            height: size as u32,
            zoom: f64::from(z),
            pixel_ratio: ratio,
        }
    }

    fn palette() -> Palette {
        Palette(std::array::from_fn(|i| [0, 0, 0, i as u8]))
    }

    /// Deterministic pseudo-random numbers in [0, 1).
    struct Lcg(u64);

    impl Lcg {
        fn next(&mut self) -> f64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (self.0 >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    /// Clustered points over the world square [x0, x0 + span) x [y0, y0 + span).
    fn clustered_points(n: usize, x0: f64, y0: f64, span: f64, seed: u64) -> Vec<WorldPoint> {
        let mut rng = Lcg(seed);
        let centres: Vec<(f64, f64)> = (0..12)
            .map(|_| (x0 + rng.next() * span, y0 + rng.next() * span))
            .collect();
        (0..n)
            .map(|i| {
                let (cx, cy) = centres[i % centres.len()];
                let spread = span * 0.08;
                WorldPoint {
                    x: cx + (rng.next() - 0.5) * spread * (rng.next() + 0.2),
                    y: cy + (rng.next() - 0.5) * spread * (rng.next() + 0.2),
                    w: (0.2 + rng.next() * 2.0) as f32,
                    seq: i as u32,
                }
            })
            .collect()
    }

    /// The points a source would return for `vp`: those within reach of the image.
    fn within_reach(points: &[WorldPoint], vp: &Viewport, p: &SmoothParams) -> Vec<WorldPoint> {
        let reach = reach_px(p, vp.pixel_ratio);
        points
            .iter()
            .filter(|q| {
                let (x, y) = (vp.local_x(q), vp.local_y(q));
                x >= -reach
                    && y >= -reach
                    && x <= f64::from(vp.width) + reach
                    && y <= f64::from(vp.height) + reach
            })
            .copied()
            .collect()
    }

    /// A 2x2 mosaic of tiles equals one render of the same area pixel for pixel, when each
    /// render is given only the points within its reach (at 1x and 2x, with a fractional
    /// cell size and a zoom factor below 1), and the order of the points does not matter.
    #[test]
    fn tile_mosaic_equals_overlay() {
        for (ratio, radius, blur, zoom) in [(1.0, 25, 15, 12), (2.0, 13, 10, 11), (1.0, 7, 4, 9)] {
            let p = SmoothParams {
                max_zoom: 13.0,
                max: 3.0,
                ..params(radius, blur)
            };
            let (tx, ty) = (1000 >> (12 - zoom.min(12)), 1500 >> (12 - zoom.min(12)));
            let n = f64::from(1u32 << zoom);
            let pts = clustered_points(
                20_000,
                (f64::from(tx) - 0.5) / n,
                (f64::from(ty) - 0.5) / n,
                3.0 / n,
                u64::from(radius),
            );
            let tile_px = (256.0 * ratio) as usize;
            let mut overlay_vp = tile_viewport(zoom, tx, ty, ratio);
            overlay_vp.width *= 2;
            overlay_vp.height *= 2;
            let overlay = render(
                &within_reach(&pts, &overlay_vp, &p),
                &overlay_vp,
                &p,
                &palette(),
            );
            assert!(!overlay.is_blank());
            // The order of the points does not matter either.
            let reversed: Vec<WorldPoint> = pts.iter().rev().copied().collect();
            let again = render(&reversed, &overlay_vp, &p, &palette());
            assert_eq!(again.pixels, overlay.pixels, "reversed, ratio {ratio}");
            for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                let vp = tile_viewport(zoom, tx + dx, ty + dy, ratio);
                let tile = render(&within_reach(&pts, &vp, &p), &vp, &p, &palette());
                for row in 0..tile_px {
                    let o = (dy as usize * tile_px + row) * 2 * tile_px + dx as usize * tile_px;
                    assert_eq!(
                        &tile.pixels[row * tile_px..(row + 1) * tile_px],
                        &overlay.pixels[o..o + tile_px],
                        "ratio {ratio}, tile ({dx}, {dy}), row {row}"
                    );
                }
            }
        }
    }

    /// One point renders exactly as simpleheat draws it at the rounded position, with the
    /// zoom factor applied to its weight.
    #[test]
    fn single_point_matches_simpleheat() {
        let vp = tile_viewport(10, 300, 400, 1.0);
        let p = SmoothParams {
            max_zoom: 11.0,
            ..params(20, 10)
        };
        let pt = WorldPoint {
            x: (300.0 * 256.0 + 100.3) / vp.scale_x,
            y: (400.0 * 256.0 + 50.7) / vp.scale_y,
            w: 1.2,
            seq: 0,
        };
        let img = render(&[pt], &vp, &p, &palette());
        // zoom factor 1/2: value 0.6.
        let expected = draw_alpha(&[[100.0, 51.0, 0.6]], 256, 256, 20, 10, 1.0, 0.05);
        assert_eq!(img.pixels, expected);
        assert_eq!(img.palette, palette());
        // globalAlpha = minOpacity = 0.3, where 0.3 * 255 rounds down only in exact f64.
        let p = SmoothParams {
            min_opacity: 0.3,
            ..p
        };
        let img = render(&[WorldPoint { w: 0.1, ..pt }], &vp, &p, &palette());
        let expected = draw_alpha(&[[100.0, 51.0, 0.05]], 256, 256, 20, 10, 1.0, 0.3);
        assert_eq!(img.pixels, expected);
    }

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

    #[test]
    fn reach_includes_stamp_and_cell() {
        assert_eq!(reach_px(&params(25, 15), 1.0), 40.0 + 20.0 + 2.0);
        assert_eq!(reach_px(&params(25, 15), 2.0), 80.0 + 40.0 + 2.0);
        assert!(reach_px(&params(25, 15), f64::NAN).is_finite());
    }

    /// Nothing panics on degenerate input, and unusable points are ignored.
    #[test]
    fn degenerate_inputs_do_not_panic() {
        let vp = tile_viewport(3, 2, 5, 1.0);
        let p = params(25, 15);
        let bad = [
            WorldPoint {
                x: f64::NAN,
                y: 0.5,
                w: 1.0,
                seq: 0,
            },
            WorldPoint {
                x: 0.3,
                y: f64::INFINITY,
                w: 1.0,
                seq: 1,
            },
            WorldPoint {
                x: -1e300,
                y: 1e300,
                w: 1.0,
                seq: 2,
            },
            WorldPoint {
                x: 0.3,
                y: 0.7,
                w: f32::NAN,
                seq: 3,
            },
            WorldPoint {
                x: 0.3,
                y: 0.7,
                w: -1.0,
                seq: 4,
            },
            WorldPoint {
                x: 0.3,
                y: 0.7,
                w: f32::INFINITY,
                seq: 5,
            },
            WorldPoint {
                x: 0.3,
                y: 0.7,
                w: 0.0,
                seq: 6,
            },
        ];
        assert!(render(&bad, &vp, &p, &palette()).is_blank());
        assert!(render(&[], &vp, &p, &palette()).is_blank());
        let good = WorldPoint {
            x: (2.0 * 256.0 + 128.0) / vp.scale_x,
            y: (5.0 * 256.0 + 128.0) / vp.scale_y,
            w: 1.0,
            seq: 7,
        };
        let mut pts = bad.to_vec();
        pts.push(good);
        assert_eq!(
            render(&pts, &vp, &p, &palette()),
            render(&[good], &vp, &p, &palette())
        );

        let odd_viewports = [
            Viewport {
                width: 0,
                height: 0,
                ..vp
            },
            Viewport {
                width: 1,
                height: 1,
                ..vp
            },
            Viewport {
                origin_x: -1e18,
                ..vp
            },
            Viewport {
                origin_x: f64::NAN,
                ..vp
            },
            Viewport {
                scale_x: f64::INFINITY,
                ..vp
            },
            Viewport {
                scale_x: -vp.scale_x,
                ..vp
            },
            Viewport {
                zoom: f64::NAN,
                ..vp
            },
            Viewport {
                pixel_ratio: 0.0,
                ..vp
            },
            Viewport {
                pixel_ratio: f64::NAN,
                ..vp
            },
            Viewport {
                pixel_ratio: 1e-9,
                ..vp
            },
            Viewport {
                pixel_ratio: 1e9,
                ..vp
            },
        ];
        let odd_params = [
            params(0, 0),
            params(0, 5),
            params(5, 0),
            params(1, 1),
            params(u32::MAX, u32::MAX),
            SmoothParams { max: 0.0, ..p },
            SmoothParams { max: f64::NAN, ..p },
            SmoothParams { max: -1.0, ..p },
            SmoothParams {
                min_opacity: f64::NAN,
                ..p
            },
            SmoothParams {
                min_opacity: 7.0,
                ..p
            },
            SmoothParams {
                max_zoom: f64::NEG_INFINITY,
                ..p
            },
        ];
        for v in &odd_viewports {
            for q in &odd_params {
                let img = render(&pts, v, q, &palette());
                assert_eq!(img.pixels.len(), v.width as usize * v.height as usize);
            }
        }
        let pts3 = [
            [f64::NAN, 1.0, 1.0],
            [1e300, -1e300, 1.0],
            [-5.5, 3.25, f64::NAN],
            [10.0, 10.0, f64::INFINITY],
            [20.5, 20.0, 0.5],
        ];
        for (r, b) in [(0, 0), (0, 3), (3, 0), (1, 1), (u32::MAX, 2)] {
            assert_eq!(draw_alpha(&pts3, 40, 30, r, b, 1.0, 0.05).len(), 1200);
            assert!(draw_alpha(&pts3, 0, 30, r, b, 1.0, 0.05).is_empty());
        }
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
