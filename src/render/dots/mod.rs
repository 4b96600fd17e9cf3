//! The `dots` style: the seed's look, heatmap 2.2.1 (jjguy, MIT), made seamless for tiles.
//!
//! heatmap 2.2.1's C core (`calcDensity` + `colorize`) starts from a white 8-bit grey image
//! (255) and, for every point in list order, multiplies each pixel around it by a cone:
//!
//! ```text
//! radius = sqrt(2 * midpt^2) / 2            with midpt = dotsize / 2
//! pixVal = min(255, (int)(200 * dist / radius + 50))
//! pixel  = pixel * pixVal / 255             (integer math: "saturating darkening")
//! ```
//!
//! where `dist` is the distance from the point to the pixel's integer coordinate (pixel `j` is
//! sampled at `j`, not at `j + 0.5`). The grey value then indexes the color scheme (index 0 =
//! densest), with a constant alpha (`opacity`) for values up to 252 and 0 above. This module
//! reproduces that, with three deliberate changes:
//!
//! * Everything that depends on position is computed from *global* pixel coordinates
//!   (`world * scale`) split into an integer part and a fraction, and every rounding is `floor`
//!   (C truncates toward zero, which differs for negative image coordinates). With integer
//!   origins (tiles), a pixel therefore gets the same value in whichever image it is rendered,
//!   so tiles are seamless and equal to one large render of the same area.
//! * Points are drawn in `seq` order (their input order), not in the order a source returned
//!   them, because the integer rounding makes the result depend on drawing order.
//! * Each point's Web Mercator metres are rounded to `f32`, as heatmap 2.2.1 received them (its
//!   Python side passes points as C floats). That is a property of the point alone, so it is
//!   seamless-safe; it matters where metres are large and pixels small (the f32 ulp is 1 m at
//!   1e7 m: 0.13 px in the 7.8 m/px reference case08, where leaving it out drops the match
//!   from 99.99% to 84%). The rest is f64: C's f32 `translate()` rounds the *image*
//!   coordinate, which depends on the image's origin, so copying it would break seams. (C also
//!   got its area as f32, which shifts its whole pixel grid; that is a property of the
//!   reference run, not of the data, so the reference test builds its viewport from that area.)
//!
//! Weights are ignored, as in heatmap 2.2.1: every point draws the same dot.
//!
//! Speed comes from skipping work that can't change a pixel, never from approximating: the
//! cone is clipped to where `pixVal < 255`, black pixels (which stay black) are skipped by
//! 16x16 block, row and 8-pixel word, and `pixVal` comes from an exact table (`ConeTable`)
//! when there is enough to draw.

mod bins;

pub use bins::render_bins;

use super::fastfloor::floor_f64 as floor;
use super::{DotsParams, IndexedImage, Palette, Viewport, WorldPoint};

/// Half the side of the Web Mercator square in metres (EPSG:3857's 20037508.34 m).
const HALF: f64 = 20_037_508.342_789_244;
/// The side of the Web Mercator square in metres: world x = metres / WORLD + 0.5.
const WORLD: f64 = 2.0 * HALF;

/// Grey values above this are fully transparent (heatmap 2.2.1's `colorize`: `pix <= 252`).
const MAX_OPAQUE: u8 = 252;

/// heatmap 2.2.1's cone: `pixVal = 200 * dist / radius + 50`, clamped at 255 (no change).
const CONE_SLOPE: f64 = 200.0;
const CONE_BASE: f64 = 50.0;

/// Half dot sizes (pixels) from which nothing is drawn: far beyond any real use (the HTTP
/// layer allows 256 px), and it keeps every pixel coordinate well inside i64 and exact in f64.
const MAX_HALF: f64 = 1e12;

/// Estimated pixels to draw above which [`ConeTable`] is used (it costs about as much to
/// build as evaluating the formula for this many pixels).
const TABLE_MIN_WORK: f64 = 20_000.0;

/// Side of the square blocks whose live (non-black) pixels are counted; a multiple of 8.
const BLOCK: usize = 16;

/// Row-span tables are built for dots up to this many rows; bigger ones compute spans per row.
const MAX_SPAN_TABLE: i64 = 4096;

/// The dot geometry for one render, in image pixels.
#[derive(Debug, Clone, Copy)]
struct Dot {
    /// heatmap 2.2.1's `midpt`: half the dot size; also half the side of its drawing box.
    half: f64,
    /// heatmap 2.2.1's `radius`: where the cone reaches `pixVal = 250`.
    radius: f64,
    /// A distance beyond which `pixVal` is certainly 255 (the pixel is left unchanged). The
    /// exact limit is `1.025 * radius`; the small relative and absolute slack absorbs every
    /// rounding of the `pixVal` formula, so culling by `cut` never skips a changing pixel.
    cut: f64,
    /// heatmap 2.2.1's drawing box in x is `[ix + box_lo, ix + box_hi)` (see `Canvas::draw`).
    box_lo: i64,
    box_hi: i64,
}

impl Dot {
    /// `None` when nothing can be drawn: a zero dot size (heatmap 2.2.1 rejects it), a pixel
    /// ratio that is not a positive finite number, or an absurdly large dot.
    fn new(p: &DotsParams, pixel_ratio: f64) -> Option<Dot> {
        let half = f64::from(p.dot_size) * pixel_ratio / 2.0;
        if !(half > 0.0 && half < MAX_HALF) {
            return None;
        }
        // As the C code computes it (`sqrt(midpt*midpt + midpt*midpt) / 2`), so the cone's
        // slope is bit-identical for every integer dot size.
        let radius = (half * half + half * half).sqrt() / 2.0;
        let limit = (255.0 - CONE_BASE) / CONE_SLOPE * radius;
        let cut = limit * (1.0 + 1e-9) + 1e-9;
        // j from (int)pt.x - midpt while j < (int)pt.x + midpt, with floor for truncation.
        let (box_lo, box_hi) = ((-half).floor() as i64, half.ceil() as i64);
        Some(Dot {
            half,
            radius,
            cut,
            box_lo,
            box_hi,
        })
    }
}

/// heatmap 2.2.1's `pixVal` (50..=255) as a function of the squared distance to the point.
trait Cone {
    fn pix_val(&self, d2: f64) -> u32;
}

impl Cone for Dot {
    /// The formula itself: a square root and a division per pixel.
    #[inline(always)]
    fn pix_val(&self, d2: f64) -> u32 {
        let v = CONE_SLOPE * (d2.sqrt() / self.radius) + CONE_BASE;
        // `v` >= 50 (d2 >= 0, radius > 0), so the cast truncates exactly like C's `(int)`.
        if v < 255.0 {
            v as u32
        } else {
            255
        }
    }
}

/// The same `pixVal` as [`Dot`]'s formula, bit for bit, without a square root and a division
/// per pixel.
///
/// The formula is a non-decreasing function of the squared distance `d2` (each step — `sqrt`,
/// division by a positive number, multiplication, addition, truncation — is monotone under
/// IEEE rounding), so it is fully described by the smallest f64 `d2` at which it reaches each
/// value. Those thresholds are found exactly, by bisecting f64 bit patterns while evaluating
/// the formula itself. A lookup takes the value at the start of `d2`'s bucket (buckets are
/// ranges of f64 bit patterns: 2^BUCKET_BITS per power of two, so they follow the thresholds,
/// which spread out with distance) and steps past the thresholds within the bucket; the most
/// any bucket holds is counted when the table is built, so the steps are a fixed number.
struct ConeTable {
    /// `thresholds[v]`: the smallest `d2` with `pixVal(d2) >= v`, for v in 51..=255; 0 below.
    thresholds: [f64; 256],
    /// `start[b]`: `pixVal` at the first f64 of bucket b.
    start: Vec<u8>,
    /// Bucket index of `d2` = `(d2.to_bits() >> BUCKET_SHIFT) - first_key`, clamped.
    first_key: u64,
    /// The most thresholds inside one bucket.
    steps: u32,
}

/// Buckets per power of two of `d2`: thresholds are at least `2 * sqrt(d2) * radius / 200`
/// apart, so with 256 buckets per octave each holds at most one (checked when building).
const BUCKET_BITS: u32 = 8;
const BUCKET_SHIFT: u32 = 52 - BUCKET_BITS;

/// Most steps a lookup may take; a table needing more (only for degenerate dots, e.g. from a
/// tiny pixel ratio) isn't built and the formula is used instead.
const MAX_STEPS: u32 = 3;
/// Most buckets; real dots need about 4.7k whatever their size.
const MAX_BUCKETS: u64 = 1 << 16;

impl ConeTable {
    fn new(dot: &Dot) -> Option<ConeTable> {
        let mut thresholds = [0.0; 256];
        // pixVal(big) = 255, since big > cut^2 > (1.025 radius)^2.
        let big = 4.0 * dot.cut * dot.cut;
        for v in 51..=255u32 {
            // Bracket the threshold around its real-number value, then bisect the bit patterns
            // (non-negative f64s order like their bits). The bracket is checked, falling back
            // to [0, big], so the result never depends on the guess being good.
            let guess = (f64::from(v) - CONE_BASE) / CONE_SLOPE * dot.radius;
            let guess = guess * guess;
            let mut lo = guess * (1.0 - 1e-12); // pixVal(lo) < v
            let mut hi = guess * (1.0 + 1e-12); // pixVal(hi) >= v
            if dot.pix_val(lo) >= v {
                lo = 0.0; // pixVal(0) = 50
            }
            if dot.pix_val(hi) < v {
                hi = big;
            }
            let (mut lo, mut hi) = (lo.to_bits(), hi.to_bits());
            while hi - lo > 1 {
                let mid = lo + (hi - lo) / 2;
                if dot.pix_val(f64::from_bits(mid)) >= v {
                    hi = mid;
                } else {
                    lo = mid;
                }
            }
            thresholds[v as usize] = f64::from_bits(hi);
        }
        // Bucket 0 starts at 0 and runs up to the first bucket after the power of two below
        // thresholds[51]; the last bucket starts beyond `big` (so its value is 255) and takes
        // every larger d2.
        let first_key = (thresholds[51] / 2.0).to_bits() >> BUCKET_SHIFT;
        let last_key = big.to_bits() >> BUCKET_SHIFT;
        let count = last_key.saturating_sub(first_key) + 2;
        if count > MAX_BUCKETS {
            return None;
        }
        let low = |b: u64| {
            if b == 0 {
                0.0
            } else {
                f64::from_bits((first_key + b) << BUCKET_SHIFT)
            }
        };
        // pixVal at the first and at the last f64 of each bucket, by walking the (sorted)
        // thresholds alongside the (increasing) bucket bounds: exact, given the thresholds are.
        let mut start = Vec::with_capacity(count as usize);
        let mut steps = 0;
        let (mut at_low, mut at_high) = (50, 50);
        for b in 0..count {
            let first = low(b);
            while at_low < 255 && first >= thresholds[at_low + 1] {
                at_low += 1;
            }
            start.push(at_low as u8);
            if b + 1 < count {
                let last = f64::from_bits(low(b + 1).to_bits() - 1);
                while at_high < 255 && last >= thresholds[at_high + 1] {
                    at_high += 1;
                }
                steps = steps.max(at_high - at_low);
            }
        }
        let steps = steps as u32;
        (steps <= MAX_STEPS).then_some(ConeTable {
            thresholds,
            start,
            first_key,
            steps,
        })
    }
}

impl Cone for ConeTable {
    #[inline(always)]
    fn pix_val(&self, d2: f64) -> u32 {
        let key = (d2.to_bits() >> BUCKET_SHIFT).saturating_sub(self.first_key);
        let b = key.min(self.start.len() as u64 - 1) as usize;
        let mut v = usize::from(self.start[b]);
        // A fixed number of steps (1 in practice), so no unpredictable branch.
        for _ in 0..self.steps {
            v = (v + usize::from(d2 >= self.thresholds[(v + 1).min(255)])).min(255);
        }
        v as u32
    }
}

/// How far (in image pixels) outside the image a point can lie and still change a pixel.
///
/// A point changes a pixel only if it is closer than `1.025 * radius` (0.36 dot sizes) to the
/// pixel's sample point, and the outermost sample points lie on the image's edges, so that is
/// the reach. One pixel is added so that neither a source's own rounding nor the f32 rounding
/// of the point's metres (at most a quarter pixel, see `Axis::as_seed_saw_it`) can make a
/// source drop a point that matters.
pub fn reach_px(p: &DotsParams, pixel_ratio: f64) -> f64 {
    match Dot::new(p, pixel_ratio) {
        Some(dot) => dot.cut + 1.0,
        None => 0.0,
    }
}

/// heatmap 2.2.1's `colorize()`: grey value `v` takes `scheme[v]`, with alpha `opacity` up to
/// [`MAX_OPAQUE`] and 0 above.
fn palette(p: &DotsParams, scheme: &[[u8; 3]; 256]) -> Palette {
    Palette(std::array::from_fn(|v| {
        let [r, g, b] = scheme[v];
        let alpha = if v <= usize::from(MAX_OPAQUE) {
            p.opacity
        } else {
            0
        };
        [r, g, b, alpha]
    }))
}

/// What both renderers (points and bins) start from.
enum Start {
    /// The dot to draw, and the palette of the image.
    Draw(Dot, Palette),
    /// Nothing can be drawn (an image too large to index, an empty image, no dot): the image.
    Done(IndexedImage),
}

fn start(vp: &Viewport, p: &DotsParams, scheme: &[[u8; 3]; 256]) -> Start {
    let palette = palette(p, scheme);
    let Some(len) = (vp.width as usize).checked_mul(vp.height as usize) else {
        // Only possible where usize has 32 bits; such an image couldn't be allocated anyway.
        return Start::Done(IndexedImage {
            width: 0,
            height: 0,
            pixels: Vec::new(),
            palette,
        });
    };
    match Dot::new(p, vp.pixel_ratio) {
        Some(dot) if len > 0 => Start::Draw(dot, palette),
        _ => Start::Done(IndexedImage {
            width: vp.width,
            height: vp.height,
            pixels: vec![255; len],
            palette,
        }),
    }
}

/// Renders `points` as heatmap 2.2.1 does, into grey values indexing a palette built from
/// `scheme` (a heatmap 2.2.1 color table: index 0 = densest, 255 = nothing).
///
/// Pixel values are heatmap 2.2.1's grey values (255 = untouched); palette entry `v` is
/// `scheme[v]` with alpha `opacity` for `v <= 252` and 0 above, as its `colorize()`. The dot
/// size is `dot_size * pixel_ratio` image pixels. Points may come in any order and lie
/// anywhere (non-finite ones and ones beyond [`reach_px`] are ignored); they are drawn in `seq`
/// order.
pub fn render(
    points: &[WorldPoint],
    vp: &Viewport,
    p: &DotsParams,
    scheme: &[[u8; 3]; 256],
) -> IndexedImage {
    let (dot, palette) = match start(vp, p, scheme) {
        Start::Draw(dot, palette) => (dot, palette),
        Start::Done(image) => return image,
    };
    let (w, h) = (vp.width as usize, vp.height as usize);
    let axes = Axis::both(vp, &dot);
    let mut prepared: Vec<Prepared> = points
        .iter()
        .filter_map(|pt| Prepared::new(pt, &axes))
        .collect();
    // Drawing order changes the result (integer rounding), so always draw in input order. Ties
    // on `seq` are broken by position, which orders the same in every image of the same scale
    // (with integer origins, `ix` and `iy` only shift): points equal in all of it draw
    // identical dots, whose order doesn't matter.
    prepared.sort_unstable_by(|a, b| {
        (a.seq.cmp(&b.seq))
            .then(a.fx.total_cmp(&b.fx))
            .then(a.fy.total_cmp(&b.fy))
            .then(a.ix.cmp(&b.ix))
            .then(a.iy.cmp(&b.iy))
    });
    let mut canvas = Canvas::new(w, h);
    let spans = Spans::new(&dot);
    // Both cones give identical values; the table is only worth building for enough pixels.
    let table = (prepared.len() as f64 * 3.2 * dot.cut * dot.cut > TABLE_MIN_WORK)
        .then(|| ConeTable::new(&dot))
        .flatten();
    if let Some(table) = table {
        for pt in &prepared {
            canvas.draw(pt, &dot, &spans, &table);
        }
    } else {
        for pt in &prepared {
            canvas.draw(pt, &dot, &spans, &dot);
        }
    }
    IndexedImage {
        width: vp.width,
        height: vp.height,
        pixels: canvas.into_pixels(),
        palette,
    }
}

/// A point ready to draw: its image position split into an integer pixel and a fraction.
///
/// `ix` is `floor(global) - origin` and `fx = global - floor(global)` (exact in f64), taken
/// from the global coordinate, so for an integer origin `fx` is the same in every image, and
/// every distance `(j - ix) - fx` below (an exact integer minus `fx`) is the same f64 in
/// whichever image pixel `j` is drawn. (For a fractional origin the split follows the local
/// coordinate; such overlays have no tile grid to agree with.)
#[derive(Debug, Clone, Copy)]
struct Prepared {
    seq: u32,
    ix: i64,
    iy: i64,
    /// In [0, 1).
    fx: f64,
    fy: f64,
}

impl Prepared {
    fn new(pt: &WorldPoint, [x_axis, y_axis]: &[Axis; 2]) -> Option<Prepared> {
        // A copy of a point one world away (beyond the antimeridian, see
        // `Layer::render_input`) is placed as its original, plus whole world widths: the
        // seed's metre rounding of the copy's own coordinate would move it.
        let copy = floor(pt.x);
        let (ix, fx) = x_axis.split(x_axis.as_seed_saw_it(pt.x - copy), copy)?;
        let (iy, fy) = y_axis.split(y_axis.as_seed_saw_it(pt.y), 0.0)?;
        Some(Prepared {
            seq: pt.seq,
            ix,
            iy,
            fx,
            fy,
        })
    }
}

/// One axis of the viewport, with what [`Axis::split`] needs precomputed.
#[derive(Debug, Clone, Copy)]
struct Axis {
    scale: f64,
    origin: f64,
    /// `floor(origin)` and `origin - floor(origin)` (exact).
    origin_int: f64,
    origin_frac: f64,
    /// Points beyond `(min, max)` in image pixels can't reach the image.
    min: f64,
    max: f64,
    /// Metres are rounded to f32 where their magnitude is below this (see `as_seed_saw_it`).
    f32_below: f64,
}

impl Axis {
    fn both(vp: &Viewport, dot: &Dot) -> [Axis; 2] {
        let axis = |scale: f64, origin: f64, size: u32| Axis {
            scale,
            origin,
            origin_int: floor(origin),
            origin_frac: origin - floor(origin),
            min: -dot.cut - 2.0,
            max: f64::from(size) + dot.cut + 2.0,
            // An f32 of magnitude below 2^(e + 24) has an ulp of at most 2^e; take the largest
            // 2^e within half a pixel (WORLD / scale metres per pixel). Non-finite or zero
            // scales give 0 (never round) or infinity (always round); both are harmless.
            f32_below: ((0.5 * WORLD / scale).log2().floor() + 24.0).exp2(),
        };
        [
            axis(vp.scale_x, vp.origin_x, vp.width),
            axis(vp.scale_y, vp.origin_y, vp.height),
        ]
    }

    /// The world coordinate with its metres rounded to f32, as heatmap 2.2.1 received them (its
    /// Python side passes points as C floats). Works for y too: its metres grow the other way,
    /// and rounding to nearest is symmetric.
    ///
    /// Only where the f32 ulp is at most half a pixel at this scale (so the point moves by at
    /// most a quarter pixel, well within [`reach_px`]'s slack, and a source selecting points by
    /// their exact position can't miss one that the rounding brings within reach); beyond that
    /// zoom, the seed's snapping to a metre grid would be an artifact, not a look, and the
    /// point is used as is. Both depend only on the point and the scale, so every image at one
    /// zoom treats a point alike.
    #[inline]
    fn as_seed_saw_it(&self, world: f64) -> f64 {
        let metres = (world - 0.5) * WORLD;
        if metres.abs() < self.f32_below {
            f64::from(metres as f32) * (1.0 / WORLD) + 0.5
        } else {
            world
        }
    }

    /// Splits the image coordinate `(world + copy) * scale - origin` into an integer and a
    /// fraction in [0, 1), taking the fraction from the global coordinate `world * scale`
    /// itself when the origin and the copy's offset are whole pixels (see [`Prepared`]), so a
    /// point and its copy one world away get the same fraction. `None` for non-finite values
    /// and points beyond the reach, which also bounds the integer part well inside i64.
    #[inline]
    fn split(&self, world: f64, copy: f64) -> Option<(i64, f64)> {
        let global = world * self.scale;
        let offset = copy * self.scale;
        let local = global + offset - self.origin;
        // Written so that NaN fails.
        if !(local > self.min && local < self.max) {
            return None;
        }
        let g_int = floor(global);
        let offset_int = floor(offset);
        // Exact subtractions (a number minus its floor; fractions), and with whole-pixel
        // origins and offsets (tiles) the additions of zero too.
        let t = ((global - g_int) - self.origin_frac) + (offset - offset_int);
        let t_int = floor(t);
        let int = (g_int + offset_int - self.origin_int) + t_int;
        let frac = t - t_int;
        // `frac` can round up to 1.0 when `t` is a tiny negative number (fractional origins).
        let (int, frac) = if frac < 1.0 {
            (int, frac)
        } else {
            (int + 1.0, 0.0)
        };
        // A safety net for extreme values (huge coordinates, where the sums above round):
        // `int` must be within a couple of pixels of the bounded `local`, which also keeps the
        // conversion to i64 exact.
        if (int - local).abs() <= 2.0 && frac >= 0.0 {
            Some((int as i64, frac))
        } else {
            None
        }
    }
}

/// For each row offset `dk = row - iy`, the columns `j - ix` in `[lo, hi)` that can be within
/// `cut` of a point whatever its fractions `fx`, `fy` in [0, 1). Conservative by up to a pixel;
/// the extra pixels compute `pixVal = 255` and stay unchanged.
struct Spans {
    cut: f64,
    /// Indexed by `dk + reach`; `None` for dots too big to tabulate (computed per row then).
    table: Option<Vec<(i64, i64)>>,
    reach: i64,
}

impl Spans {
    fn new(dot: &Dot) -> Spans {
        let reach = dot.cut.ceil() as i64 + 2;
        let mut spans = Spans {
            cut: dot.cut,
            table: None,
            reach,
        };
        if reach <= MAX_SPAN_TABLE {
            spans.table = Some((-reach..=reach).map(|dk| spans.compute(dk)).collect());
        }
        spans
    }

    /// `dy = dk - fy`, so the nearest the row can be is `dk - 1` below and `-dk` above.
    fn compute(&self, dk: i64) -> (i64, i64) {
        let near = if dk >= 1 { dk - 1 } else { -dk } as f64;
        let room = self.cut * self.cut - near * near;
        if room <= 0.0 {
            return (0, 0);
        }
        // dx = (j - ix) - fx with |dx| <= span means j - ix in [-span, 1 + span).
        let span = room.sqrt();
        ((-span).ceil() as i64, (1.0 + span).floor() as i64 + 1)
    }

    #[inline]
    fn get(&self, dk: i64) -> (i64, i64) {
        match &self.table {
            Some(table) => {
                let i = dk + self.reach;
                if i >= 0 && (i as usize) < table.len() {
                    table[i as usize]
                } else {
                    (0, 0)
                }
            }
            None => self.compute(dk),
        }
    }
}

/// The grey image being drawn, with counts of live (non-black) pixels per row and per block.
///
/// A black pixel stays black, and dense areas go black after a few dots, so points whose whole
/// footprint is black are skipped, and so are black rows and black 8-pixel words.
struct Canvas {
    /// Rows of `stride` bytes (the width rounded up to 8); the padding is black so it's never
    /// drawn, and every aligned 8-byte word lies within one row and one block.
    pixels: Vec<u8>,
    stride: usize,
    w: usize,
    h: usize,
    row_live: Vec<u32>,
    block_live: Vec<u32>,
    blocks_per_row: usize,
}

impl Canvas {
    fn new(w: usize, h: usize) -> Canvas {
        let stride = w.div_ceil(8) * 8;
        let mut pixels = vec![255u8; stride * h];
        if stride > w {
            for row in pixels.chunks_exact_mut(stride) {
                row[w..].fill(0);
            }
        }
        let blocks_per_row = w.div_ceil(BLOCK);
        let mut block_live = vec![0u32; blocks_per_row * h.div_ceil(BLOCK)];
        for k in 0..h {
            for b in 0..blocks_per_row {
                block_live[(k / BLOCK) * blocks_per_row + b] += (w - b * BLOCK).min(BLOCK) as u32;
            }
        }
        Canvas {
            pixels,
            stride,
            w,
            h,
            row_live: vec![w as u32; h],
            block_live,
            blocks_per_row,
        }
    }

    fn into_pixels(self) -> Vec<u8> {
        if self.stride == self.w {
            return self.pixels;
        }
        self.pixels
            .chunks_exact(self.stride)
            .flat_map(|row| &row[..self.w])
            .copied()
            .collect()
    }

    /// Multiplies one point's cone into the image.
    fn draw<C: Cone>(&mut self, pt: &Prepared, dot: &Dot, spans: &Spans, cone: &C) {
        let (w, h) = (self.w as i64, self.h as i64);
        // heatmap 2.2.1's drawing box, with floor for truncation:
        //   for (j = (int)pt.x - midpt; j < (int)pt.x + midpt; j++)
        //     for (k = (int)(pt.y - midpt); k < (int)(pt.y + midpt); k++)
        // (x and y are rounded differently). The cone usually ends inside the box, but for dot
        // sizes below 8 the box clips it, so it is kept. The cone's own extent is `spans`.
        let box_j0 = pt.ix + dot.box_lo;
        let box_j1 = pt.ix + dot.box_hi;
        let k0 = (pt.iy + floor(pt.fy - dot.half) as i64)
            .max(pt.iy - spans.reach)
            .max(0);
        let k1 = (pt.iy + floor(pt.fy + dot.half) as i64)
            .min(pt.iy + spans.reach)
            .min(h);
        let j0 = box_j0.max(pt.ix - spans.reach).max(0);
        let j1 = box_j1.min(pt.ix + spans.reach).min(w);
        if k0 >= k1 || j0 >= j1 {
            return;
        }
        // Whole footprint black already? (All values are now within the image, >= 0.)
        let (k0, k1, j0, j1) = (k0 as usize, k1 as usize, j0 as usize, j1 as usize);
        let footprint_live = (k0 / BLOCK..=(k1 - 1) / BLOCK).any(|by| {
            let row = &self.block_live[by * self.blocks_per_row..(by + 1) * self.blocks_per_row];
            row[j0 / BLOCK..=(j1 - 1) / BLOCK].iter().any(|&n| n > 0)
        });
        if !footprint_live {
            return;
        }
        for k in k0..k1 {
            if self.row_live[k] == 0 {
                continue;
            }
            let dk = k as i64 - pt.iy;
            let (lo, hi) = spans.get(dk);
            let a = (pt.ix + lo).max(j0 as i64) as usize;
            let b = (pt.ix + hi).min(j1 as i64);
            if b <= a as i64 {
                continue;
            }
            let b = b as usize;
            // dk is an exact integer, so dy depends only on it and on fy (likewise dx below).
            let dy = dk as f64 - pt.fy;
            let dy2 = dy * dy;
            let row = &mut self.pixels[k * self.stride..(k + 1) * self.stride];
            let blocks = &mut self.block_live[(k / BLOCK) * self.blocks_per_row..];
            let mut died_in_row = 0;
            // Aligned 8-pixel words: skipped when black; each lies within one block.
            for word in a / 8..b.div_ceil(8) {
                let bytes = &mut row[word * 8..word * 8 + 8];
                if bytes.iter().fold(0u8, |acc, &v| acc | v) == 0 {
                    continue;
                }
                let from = a.max(word * 8);
                let to = b.min(word * 8 + 8);
                let died = darken(
                    &mut bytes[from - word * 8..to - word * 8],
                    from as i64 - pt.ix,
                    pt.fx,
                    dy2,
                    cone,
                );
                blocks[word * 8 / BLOCK] -= died;
                died_in_row += died;
            }
            self.row_live[k] -= died_in_row;
        }
    }
}

/// Darkens consecutive pixels, the first `offset` (an integer) columns from the point's
/// integer part; returns how many turned black.
#[inline(always)]
fn darken<C: Cone>(pixels: &mut [u8], offset: i64, fx: f64, dy2: f64, cone: &C) -> u32 {
    let mut died = 0;
    for (i, px) in pixels.iter_mut().enumerate() {
        let dx = (offset + i as i64) as f64 - fx;
        let pv = cone.pix_val(dx * dx + dy2);
        let old = u32::from(*px);
        // u8 * (50..=255) / 255 fits in u8. No branch for black pixels (they stay black):
        // within a live word they are mixed with live ones at random.
        let new = old * pv / 255;
        *px = new as u8;
        died += u32::from(old != 0 && new == 0);
    }
    died
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};

    fn root() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
    }

    fn hex(s: &str) -> [u8; 3] {
        let v = u32::from_str_radix(s.trim_start_matches('#'), 16).expect("hex color");
        [(v >> 16) as u8, (v >> 8) as u8, v as u8]
    }

    fn schemes() -> serde_json::Value {
        let text =
            std::fs::read_to_string(root().join("data/color-schemes.json")).expect("schemes");
        serde_json::from_str(&text).expect("schemes json")
    }

    fn scheme(all: &serde_json::Value, name: &str) -> [[u8; 3]; 256] {
        let list = all["schemes"][name].as_array().expect("scheme");
        assert_eq!(list.len(), 256);
        std::array::from_fn(|i| hex(list[i].as_str().expect("color")))
    }

    pub(super) fn grey_scheme() -> [[u8; 3]; 256] {
        std::array::from_fn(|i| [i as u8; 3])
    }

    fn load_png(path: &Path) -> (u32, u32, Vec<u8>) {
        let file = std::fs::File::open(path).expect("png");
        let mut reader = png::Decoder::new(file).read_info().expect("png info");
        let mut buf = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut buf).expect("png frame");
        assert_eq!(info.color_type, png::ColorType::Rgba);
        assert_eq!(info.bit_depth, png::BitDepth::Eight);
        buf.truncate(info.buffer_size());
        (info.width, info.height, buf)
    }

    fn metres_to_world(x: f64, y: f64) -> (f64, f64) {
        (x / (2.0 * HALF) + 0.5, 0.5 - y / (2.0 * HALF))
    }

    /// Every heatmap 2.2.1 reference image, rendered through a Viewport over the case's area.
    ///
    /// heatmap 2.2.1 received the area as C floats (`ctypes.c_float`), so the viewport is built
    /// from the f32-rounded area: that is the area the reference images really show. (With the
    /// exact area, case08 — 4000 m at 1.4e7 m over 512 px — shifts by 0.037 px and matches only
    /// about 84%; tiles have exact integer origins, so nothing in the renderer emulates this.)
    #[test]
    fn matches_heatmap_2_2_1_references() {
        let dir = root().join("tests/fixtures/jjguy");
        let text = std::fs::read_to_string(dir.join("cases.json")).expect("cases");
        let cases: serde_json::Value = serde_json::from_str(&text).expect("cases json");
        let all = schemes();
        let mut worst = 100.0f64;
        for case in cases["cases"].as_array().expect("cases") {
            let name = case["name"].as_str().expect("name");
            let num = |v: &serde_json::Value| v.as_f64().expect("number");
            let area = &case["area"];
            let f32r = |v: &serde_json::Value| f64::from(num(v) as f32);
            let (min_x, min_y, max_x, max_y) = (
                f32r(&area[0][0]),
                f32r(&area[0][1]),
                f32r(&area[1][0]),
                f32r(&area[1][1]),
            );
            let (west, north) = metres_to_world(min_x, max_y);
            let (east, south) = metres_to_world(max_x, min_y);
            let width = num(&case["width"]) as u32;
            let height = num(&case["height"]) as u32;
            let scale_x = f64::from(width) / (east - west);
            let scale_y = f64::from(height) / (south - north);
            let vp = Viewport {
                scale_x,
                scale_y,
                origin_x: west * scale_x,
                origin_y: north * scale_y,
                width,
                height,
                zoom: (scale_x / 256.0).log2(),
                pixel_ratio: 1.0,
            };
            let points: Vec<WorldPoint> = case["points"]
                .as_array()
                .expect("points")
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    let (x, y) = metres_to_world(num(&p[0]), num(&p[1]));
                    WorldPoint {
                        x,
                        y,
                        w: 1.0,
                        seq: i as u32,
                    }
                })
                .collect();
            let params = DotsParams {
                dot_size: num(&case["dotsize"]) as u32,
                opacity: num(&case["opacity"]) as u8,
            };
            let img = render(
                &points,
                &vp,
                &params,
                &scheme(&all, case["scheme"].as_str().expect("scheme")),
            );
            let (pw, ph, expected) = load_png(&dir.join(format!("{name}.png")));
            assert_eq!((pw, ph), (width, height), "{name}");
            let got = img.to_rgba();
            let same = got
                .chunks_exact(4)
                .zip(expected.chunks_exact(4))
                .filter(|(a, b)| a == b)
                .count();
            let pct = 100.0 * same as f64 / f64::from(width * height);
            println!("{name}: {pct:.3}% of {}x{} pixels match", width, height);
            worst = worst.min(pct);
            assert!(pct >= 99.5, "{name}: only {pct:.3}% match");
        }
        println!("worst case: {worst:.3}%");
    }

    /// A small deterministic generator (no dependency needed).
    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self) -> f64 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (self.0 >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    pub(super) fn tile_vp(z: u32, ratio: f64, ox: f64, oy: f64, size: u32) -> Viewport {
        let scale = 256.0 * 2f64.powi(z as i32) * ratio;
        Viewport {
            scale_x: scale,
            scale_y: scale,
            origin_x: ox,
            origin_y: oy,
            width: size,
            height: size,
            zoom: f64::from(z),
            pixel_ratio: ratio,
        }
    }

    /// Points around the shared corner of tiles (tx, ty) .. (tx + 1, ty + 1), many of them right
    /// on or near the tile edges, in shuffled `seq` order.
    fn points_near(z: u32, tx: u32, ty: u32, n: usize, seed: u64) -> Vec<WorldPoint> {
        let n_tiles = 2f64.powi(z as i32);
        let (cx, cy) = (
            (f64::from(tx) + 1.0) / n_tiles,
            (f64::from(ty) + 1.0) / n_tiles,
        );
        let mut rng = Lcg(seed);
        let mut pts: Vec<WorldPoint> = (0..n)
            .map(|i| {
                let (mut x, mut y) = (
                    (rng.next() - 0.5) * 2.2 / n_tiles,
                    (rng.next() - 0.5) * 2.2 / n_tiles,
                );
                match i % 4 {
                    0 => x = (rng.next() - 0.5) * 0.05 / n_tiles, // hugging the vertical edge
                    1 => y = (rng.next() - 0.5) * 0.05 / n_tiles, // hugging the horizontal edge
                    _ => {}
                }
                WorldPoint {
                    x: cx + x,
                    y: cy + y,
                    w: 1.0,
                    seq: i as u32,
                }
            })
            .collect();
        // Shuffle so drawing order must come from `seq`.
        for i in (1..pts.len()).rev() {
            let j = (rng.next() * (i + 1) as f64) as usize % (i + 1);
            pts.swap(i, j);
        }
        pts
    }

    /// Renders the 2x2 tiles with only the points each tile's reach selects, and one 512 render.
    fn assert_mosaic_matches(
        z: u32,
        ratio: f64,
        tx: u32,
        ty: u32,
        params: &DotsParams,
        pts: &[WorldPoint],
    ) {
        let sch = grey_scheme();
        assert_mosaic_of(z, ratio, (tx, ty), params, pts, |marks, vp| {
            render(marks, vp, params, &sch)
        });
    }

    /// Renders tile (`tx`, `ty`) and its three neighbours down and right, each with only the
    /// marks its reach selects (what a source returns), and asserts they equal one image of
    /// all four: the mosaic has no seam.
    pub(super) fn assert_mosaic_of(
        z: u32,
        ratio: f64,
        (tx, ty): (u32, u32),
        params: &DotsParams,
        marks: &[WorldPoint],
        draw: impl Fn(&[WorldPoint], &Viewport) -> IndexedImage,
    ) -> IndexedImage {
        let t = 256.0 * ratio;
        let size = t as u32;
        let (ox, oy) = (f64::from(tx) * t, f64::from(ty) * t);
        let big = draw(marks, &tile_vp(z, ratio, ox, oy, 2 * size));
        let reach = reach_px(params, ratio);
        for (dx, dy) in [(0u32, 0u32), (1, 0), (0, 1), (1, 1)] {
            let vp = tile_vp(
                z,
                ratio,
                ox + f64::from(dx) * t,
                oy + f64::from(dy) * t,
                size,
            );
            let mine: Vec<WorldPoint> = marks
                .iter()
                .copied()
                .filter(|p| {
                    let (x, y) = (vp.local_x(p), vp.local_y(p));
                    x > -reach && x < t + reach && y > -reach && y < t + reach
                })
                .collect();
            let tile = draw(&mine, &vp);
            for row in 0..size {
                let a = &tile.pixels[(row * size) as usize..((row + 1) * size) as usize];
                let start = ((row + dy * size) * 2 * size + dx * size) as usize;
                let b = &big.pixels[start..start + size as usize];
                assert_eq!(
                    a, b,
                    "z{z} @{ratio}x dot {} tile ({dx},{dy}) row {row}",
                    params.dot_size
                );
            }
        }
        big
    }

    #[test]
    fn tiles_are_seamless() {
        for (dot_size, n) in [
            (16, 400),
            (64, 300),
            (25, 300),
            (5, 2000),
            (3, 2000),
            (1, 500),
        ] {
            let params = DotsParams {
                dot_size,
                opacity: 200,
            };
            for (z, tx, ty) in [
                (3u32, 2u32, 5u32),
                (12, 2100, 1360),
                (17, 70_000, 43_000),
                (20, 1_000_000, 300_000),
            ] {
                for ratio in [1.0, 2.0] {
                    let pts = points_near(z, tx, ty, n, u64::from(dot_size) * 1000 + u64::from(z));
                    assert_mosaic_matches(z, ratio, tx, ty, &params, &pts);
                }
            }
        }
    }

    #[test]
    fn tiles_are_seamless_at_the_world_edge() {
        // Tile (0, 0) at zoom 1: points at negative global coordinates fall beyond the west
        // and north edges, and local coordinates are negative in three of the four tiles.
        let params = DotsParams {
            dot_size: 16,
            opacity: 255,
        };
        let pts = points_near(1, 0, 0, 500, 7);
        assert_mosaic_matches(1, 1.0, 0, 0, &params, &pts);
        let pts: Vec<WorldPoint> = (0..200)
            .map(|i| WorldPoint {
                x: 0.5 + (f64::from(i) - 100.0) * 1e-4,
                y: 0.5 + (f64::from(i % 13) - 6.0) * 3e-4,
                w: 1.0,
                seq: i,
            })
            .collect();
        assert_mosaic_matches(1, 1.0, 0, 0, &params, &pts);
    }

    #[test]
    fn draws_in_seq_order_whatever_the_input_order() {
        let params = DotsParams {
            dot_size: 32,
            opacity: 255,
        };
        let mut pts = points_near(8, 100, 100, 500, 3);
        let vp = tile_vp(8, 1.0, 100.0 * 256.0, 100.0 * 256.0, 512);
        let shuffled = render(&pts, &vp, &params, &grey_scheme());
        pts.sort_by_key(|p| p.seq);
        let sorted = render(&pts, &vp, &params, &grey_scheme());
        assert_eq!(shuffled, sorted);
        pts.reverse();
        let mut by_reverse_seq = pts.clone();
        for (i, p) in by_reverse_seq.iter_mut().enumerate() {
            p.seq = i as u32;
        }
        // Order really matters (otherwise this test proves nothing).
        assert_ne!(
            render(&by_reverse_seq, &vp, &params, &grey_scheme()).pixels,
            sorted.pixels
        );
    }

    #[test]
    fn single_dot_has_heatmaps_cone() {
        // A point at pixel (20, 20) exactly of a 41x41 image, dot size 16: radius = 8*sqrt(2)/2.
        let vp = Viewport {
            scale_x: 41.0,
            scale_y: 41.0,
            origin_x: 0.0,
            origin_y: 0.0,
            width: 41,
            height: 41,
            zoom: 0.0,
            pixel_ratio: 1.0,
        };
        // Use an exactly representable position that survives the f32 metres rounding.
        let p = WorldPoint {
            x: 20.0 / 41.0,
            y: 20.0 / 41.0,
            w: 1.0,
            seq: 0,
        };
        let img = render(
            &[p],
            &vp,
            &DotsParams {
                dot_size: 16,
                opacity: 255,
            },
            &grey_scheme(),
        );
        let at = |x: usize, y: usize| img.pixels[y * 41 + x];
        let (lx, ly) = (vp.local_x(&p), vp.local_y(&p));
        assert!((lx - 20.0).abs() < 1e-4 && (ly - 20.0).abs() < 1e-4);
        // Centre: 255 * 50 / 255 = 50 (or 51 if the point lies a hair away from the pixel).
        assert!(at(20, 20) == 50 || at(20, 20) == 51, "{}", at(20, 20));
        // Symmetric within rounding, and monotone outward along a row.
        let row: Vec<u8> = (20..41).map(|x| at(x, 20)).collect();
        assert!(row.windows(2).all(|w| w[0] <= w[1]), "{row:?}");
        // Beyond 1.025 * radius = 5.8 px nothing changes.
        assert_eq!(at(26, 20), 255);
        assert_eq!(at(14, 20), 255);
        assert!(at(25, 20) < 255);
        assert!(img.pixels.iter().filter(|&&v| v < 255).count() > 90);
    }

    #[test]
    fn palette_is_colorize() {
        let all = schemes();
        let sch = scheme(&all, "classic");
        let vp = tile_vp(0, 1.0, 0.0, 0.0, 4);
        let img = render(
            &[],
            &vp,
            &DotsParams {
                dot_size: 16,
                opacity: 77,
            },
            &sch,
        );
        assert_eq!(img.pixels, vec![255; 16]);
        assert!(img.is_blank());
        for (v, &[r, g, b]) in sch.iter().enumerate() {
            let alpha = if v <= 252 { 77 } else { 0 };
            assert_eq!(img.palette.0[v], [r, g, b, alpha]);
        }
    }

    #[test]
    fn points_beyond_reach_change_nothing() {
        for (dot_size, ratio) in [
            (1, 1.0),
            (5, 1.0),
            (16, 1.0),
            (16, 2.0),
            (64, 1.0),
            (150, 1.5),
        ] {
            let params = DotsParams {
                dot_size,
                opacity: 255,
            };
            let reach = reach_px(&params, ratio);
            assert!(reach > 0.0 && reach <= f64::from(dot_size) * ratio / 2.0 + 1.0);
            let vp = tile_vp(
                4,
                ratio,
                3.0 * 256.0 * ratio,
                5.0 * 256.0 * ratio,
                (256.0 * ratio) as u32,
            );
            let size = f64::from(vp.width);
            let at = |lx: f64, ly: f64, seq| WorldPoint {
                x: (lx + vp.origin_x) / vp.scale_x,
                y: (ly + vp.origin_y) / vp.scale_y,
                w: 1.0,
                seq,
            };
            // Just outside the reach on every side (allowing for the f32 metres rounding).
            let m = reach + 0.01;
            let outside = [
                at(-m, 10.0, 0),
                at(size + m, 10.0, 1),
                at(10.0, -m, 2),
                at(10.0, size + m, 3),
                at(-m, -m, 4),
            ];
            assert!(render(&outside, &vp, &params, &grey_scheme())
                .pixels
                .iter()
                .all(|&v| v == 255));
            // The cone's real extent is within a pixel of the reach.
            // heatmap 2.2.1 quirk: a dot of size 1 never darkens anything (its cone ends 0.36 px
            // from the point, and its box only holds rows at least 0.5 px away).
            let inside = [at(-(reach - 1.5).max(0.0), 10.3, 0)];
            let drawn = render(&inside, &vp, &params, &grey_scheme())
                .pixels
                .iter()
                .any(|&v| v < 255);
            assert_eq!(drawn, dot_size > 1, "dot {dot_size} @{ratio}");
        }
    }

    #[test]
    fn never_panics_on_odd_input() {
        let sch = grey_scheme();
        let good = tile_vp(3, 1.0, 512.0, 768.0, 64);
        let nasty = [
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            1e300,
            -1e300,
            1e-300,
            0.0,
            -0.0,
            2.5,
            -3.0,
            f64::MAX,
            f64::MIN_POSITIVE,
        ];
        let mut pts = Vec::new();
        for (i, &x) in nasty.iter().enumerate() {
            for (j, &y) in nasty.iter().enumerate() {
                pts.push(WorldPoint {
                    x,
                    y,
                    w: f32::NAN,
                    seq: (i * 100 + j) as u32,
                });
            }
        }
        pts.push(WorldPoint {
            x: 2.1 / 8.0,
            y: 3.1 / 8.0,
            w: 1.0,
            seq: u32::MAX,
        });
        pts.push(WorldPoint {
            x: 2.1 / 8.0,
            y: 3.1 / 8.0,
            w: 1.0,
            seq: u32::MAX,
        });
        let params = [
            DotsParams {
                dot_size: 0,
                opacity: 0,
            },
            DotsParams {
                dot_size: 1,
                opacity: 255,
            },
            DotsParams {
                dot_size: 16,
                opacity: 128,
            },
            DotsParams {
                dot_size: u32::MAX,
                opacity: 255,
            },
        ];
        let viewports = [
            good,
            Viewport {
                width: 0,
                height: 0,
                ..good
            },
            Viewport {
                width: 1,
                height: 0,
                ..good
            },
            Viewport {
                pixel_ratio: f64::NAN,
                ..good
            },
            Viewport {
                pixel_ratio: 0.0,
                ..good
            },
            Viewport {
                pixel_ratio: -2.0,
                ..good
            },
            Viewport {
                pixel_ratio: f64::INFINITY,
                ..good
            },
            Viewport {
                pixel_ratio: 1e300,
                ..good
            },
            Viewport {
                origin_x: f64::NAN,
                ..good
            },
            Viewport {
                origin_x: 1e300,
                origin_y: -1e300,
                ..good
            },
            Viewport {
                scale_x: f64::INFINITY,
                ..good
            },
            Viewport {
                scale_x: 0.0,
                scale_y: -1.0,
                ..good
            },
            Viewport {
                scale_x: 1e200,
                scale_y: 1e200,
                origin_x: 2.1e199 / 8.0 * 8.0,
                origin_y: 3e199,
                ..good
            },
            Viewport {
                origin_x: 512.3,
                origin_y: -767.9,
                ..good
            },
        ];
        for p in &params {
            assert!(reach_px(p, f64::NAN) >= 0.0);
            for vp in &viewports {
                for list in [&pts[..], &[]] {
                    let img = render(list, vp, p, &sch);
                    assert_eq!(img.pixels.len(), (vp.width * vp.height) as usize);
                }
            }
        }
        // The one real point draws in the good viewport.
        let img = render(&pts, &good, &params[2], &sch);
        assert!(img.pixels.iter().any(|&v| v < 255));
    }

    fn dots_for_tests() -> Vec<Dot> {
        let mut dots = Vec::new();
        for dot_size in [1, 2, 3, 5, 8, 10, 16, 25, 64, 150, 256] {
            for ratio in [1.0, 1.5, 2.0, 3.0] {
                dots.extend(Dot::new(
                    &DotsParams {
                        dot_size,
                        opacity: 255,
                    },
                    ratio,
                ));
            }
        }
        dots
    }

    #[test]
    fn cone_table_is_the_formula() {
        let mut rng = Lcg(11);
        for dot in dots_for_tests() {
            let table = ConeTable::new(&dot).expect("table");
            assert!(table.steps <= 1, "{} steps", table.steps);
            assert!(table.start.len() < 5000, "{} buckets", table.start.len());
            let mut probes = vec![
                0.0,
                f64::MIN_POSITIVE,
                dot.cut * dot.cut,
                1e300,
                f64::INFINITY,
                f64::NAN,
            ];
            // Every threshold and its neighbouring f64s.
            for &t in &table.thresholds[51..] {
                let bits = t.to_bits();
                probes.extend([
                    t,
                    f64::from_bits(bits - 1),
                    f64::from_bits(bits + 1),
                    f64::from_bits(bits + 2),
                ]);
            }
            for _ in 0..20_000 {
                probes.push(rng.next() * 1.2 * dot.cut * dot.cut);
            }
            for d2 in probes {
                assert_eq!(table.pix_val(d2), dot.pix_val(d2), "d2 {d2:e}, dot {dot:?}");
            }
            // The thresholds are where the value changes.
            for v in 51..=255 {
                let t = table.thresholds[v];
                assert!(
                    dot.pix_val(t) >= v as u32
                        && dot.pix_val(f64::from_bits(t.to_bits() - 1)) < v as u32
                );
            }
        }
    }

    #[test]
    fn cone_table_of_degenerate_dots_is_exact_or_absent() {
        for (dot_size, ratio) in [
            (1, 1e-300),
            (1, 1e-10),
            (3, 1e-6),
            (1, 1e10),
            (u32::MAX, 400.0),
        ] {
            let Some(dot) = Dot::new(
                &DotsParams {
                    dot_size,
                    opacity: 255,
                },
                ratio,
            ) else {
                continue;
            };
            if let Some(table) = ConeTable::new(&dot) {
                let mut rng = Lcg(2);
                for _ in 0..10_000 {
                    let d2 = rng.next() * 1.2 * dot.cut * dot.cut;
                    assert_eq!(table.pix_val(d2), dot.pix_val(d2), "d2 {d2:e}, dot {dot:?}");
                }
            }
        }
    }

    #[test]
    fn spans_hold_every_changing_pixel() {
        let mut rng = Lcg(5);
        for dot in dots_for_tests() {
            let spans = Spans::new(&dot);
            let r = spans.reach + 3;
            for _ in 0..20 {
                let (fx, fy) = (rng.next(), rng.next());
                for dk in -r..=r {
                    let (lo, hi) = spans.get(dk);
                    let dy = dk as f64 - fy;
                    for dj in -r..=r {
                        let dx = dj as f64 - fx;
                        if dot.pix_val(dx * dx + dy * dy) < 255 {
                            assert!(
                                lo <= dj && dj < hi,
                                "dk {dk} dj {dj} outside [{lo}, {hi}) for {dot:?}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn floor_is_exact() {
        let two52 = 4_503_599_627_370_496.0;
        let mut values = vec![
            0.0,
            -0.0,
            0.5,
            -0.5,
            1.0,
            -1.0,
            1e-300,
            -1e-300,
            2.5,
            -2.5,
            0.999_999_999_999_999_9,
            -0.999_999_999_999_999_9,
            two52,
            -two52,
            two52 - 0.5,
            -two52 + 0.5,
            two52 * 2.0 + 2.0,
            1e300,
            -1e300,
            f64::MAX,
            f64::MIN,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ];
        let mut rng = Lcg(3);
        values.extend((0..10_000).map(|_| (rng.next() - 0.5) * 1e6));
        for v in values {
            assert_eq!(floor(v), v.floor(), "{v}");
        }
        assert!(floor(f64::NAN).is_nan());
    }

    #[test]
    fn both_cones_draw_the_same_pixels() {
        for (dot_size, ratio) in [(5, 1.0), (25, 1.0), (25, 2.0), (64, 1.0)] {
            let dot = Dot::new(
                &DotsParams {
                    dot_size,
                    opacity: 255,
                },
                ratio,
            )
            .expect("dot");
            let vp = tile_vp(
                9,
                ratio,
                100.0 * 256.0 * ratio - 3.0,
                50.0 * 256.0 * ratio,
                (300.0 * ratio) as u32,
            );
            let pts = points_near(9, 100, 50, 3000, 17);
            let mut prepared: Vec<Prepared> = pts
                .iter()
                .filter_map(|p| Prepared::new(p, &Axis::both(&vp, &dot)))
                .collect();
            prepared.sort_by_key(|p| p.seq);
            let (w, h) = (vp.width as usize, vp.height as usize);
            let spans = Spans::new(&dot);
            let table = ConeTable::new(&dot).expect("table");
            let (mut a, mut b) = (Canvas::new(w, h), Canvas::new(w, h));
            for p in &prepared {
                a.draw(p, &dot, &spans, &dot);
                b.draw(p, &dot, &spans, &table);
            }
            assert_eq!(a.row_live, b.row_live);
            let (a, b) = (a.into_pixels(), b.into_pixels());
            let distinct = (0..=255u8).filter(|v| a.contains(v)).count();
            assert!(
                distinct > 100,
                "only {distinct} grey values: the test draws too little"
            );
            assert_eq!(a, b, "dot {dot_size} @{ratio}x");
        }
    }

    #[test]
    fn live_counts_track_the_pixels() {
        let dot = Dot::new(
            &DotsParams {
                dot_size: 25,
                opacity: 255,
            },
            1.0,
        )
        .expect("dot");
        let vp = tile_vp(9, 1.0, 100.0 * 256.0, 50.0 * 256.0, 300);
        let (w, h) = (300, 256);
        let vp = Viewport {
            height: h as u32,
            ..vp
        };
        let mut canvas = Canvas::new(w, h);
        let spans = Spans::new(&dot);
        let mut pts: Vec<Prepared> = points_near(9, 100, 50, 5000, 23)
            .iter()
            .filter_map(|p| Prepared::new(p, &Axis::both(&vp, &dot)))
            .collect();
        pts.sort_by_key(|p| p.seq);
        for p in &pts {
            canvas.draw(p, &dot, &spans, &dot);
        }
        for k in 0..h {
            let row = &canvas.pixels[k * canvas.stride..(k + 1) * canvas.stride];
            assert_eq!(
                canvas.row_live[k] as usize,
                row[..w].iter().filter(|&&v| v != 0).count()
            );
            assert!(row[w..].iter().all(|&v| v == 0), "padding stays black");
        }
        for (i, &n) in canvas.block_live.iter().enumerate() {
            let (by, bx) = (i / canvas.blocks_per_row, i % canvas.blocks_per_row);
            let live = (by * BLOCK..((by + 1) * BLOCK).min(h))
                .map(|k| {
                    (bx * BLOCK..((bx + 1) * BLOCK).min(w))
                        .filter(|&j| canvas.pixels[k * canvas.stride + j] != 0)
                        .count()
                })
                .sum::<usize>();
            assert_eq!(n as usize, live, "block {i}");
        }
        assert!(canvas.row_live.contains(&0), "some rows went black");
    }
}
