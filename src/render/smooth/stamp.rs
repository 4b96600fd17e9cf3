//! simpleheat's stamp, the blurred disc drawn per point, rasterised as Skia does it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

/// The stamp cache is emptied when it would grow beyond this, so that requests cycling through
/// many radius/blur pairs cannot make it grow without bound. It sits outside the tile cache's
/// budget, so it is kept small: the largest stamp (radius and blur at their maximum, @2x) is
/// well under 1 MB, and the few pairs a map uses fit many times over.
const STAMP_CACHE_MAX_BYTES: usize = 8 << 20;
/// simpleheat's stamp: an anti-aliased disc blurred into a soft dot, 8-bit alpha.
#[derive(Debug)]
pub(super) struct Stamp {
    /// Side in pixels (2 * (radius + blur)); the disc is centred on the corner at (side/2, side/2).
    pub(super) size: usize,
    pub(super) alpha: Vec<u8>,
    /// Per row, the range of columns with non-zero alpha (empty when start == end), so the
    /// blank corners are never composited.
    pub(super) spans: Vec<(usize, usize)>,
}

/// The stamp for (radius, blur) in pixels, built once per process and shared.
pub(super) fn stamp(radius: u32, blur: u32) -> Arc<Stamp> {
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
        Stamp::from_alpha(size, alpha)
    }

    /// A stamp of `size` x `size` from its alpha, with the spans of each row worked out.
    pub(super) fn from_alpha(size: usize, alpha: Vec<u8>) -> Stamp {
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

#[cfg(test)]
mod tests {
    use super::super::tests::{cases, fixtures, load_rgba};
    use super::*;

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
}
