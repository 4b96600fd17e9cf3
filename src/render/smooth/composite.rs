//! Compositing stamps onto an 8-bit alpha canvas with Skia's legacy blitter arithmetic.

use super::stamp::Stamp;

/// simpleheat's draw loop over an existing canvas with a given stamp.
pub(super) fn draw_points(
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

/// An 8-bit alpha canvas over a row-major buffer of w * h pixels.
pub(super) struct Canvas<'a> {
    pub(super) w: usize,
    pub(super) h: usize,
    pub(super) px: &'a mut [u8],
}

impl Canvas<'_> {
    /// Draws the stamp with its top-left corner on pixel (left, top) and paint alpha ga8.
    ///
    /// Skia's sprite blit with alpha (SkBlendARGB32): with src_scale = ga8 + 1 and
    /// dst_scale = SkAlphaMulInv256(s, src_scale), out = (s * src_scale + d * dst_scale) >> 8.
    /// Bit-exact against Chromium on the fixtures. In 16-bit lanes so it vectorizes: every
    /// intermediate fits (checked exhaustively in the tests).
    pub(super) fn draw(&mut self, stamp: &Stamp, left: i64, top: i64, ga8: u8) {
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
pub(super) fn js_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.max(b)
    }
}

/// Skia's 8-bit paint alpha for a globalAlpha in [0, 1]: round(a * 255).
pub(super) fn alpha8(a: f64) -> u8 {
    (a.clamp(0.0, 1.0) * 255.0 + 0.5).floor() as u8
}

/// Converts an integral f64 to i64, saturating far outside any image.
pub(super) fn clamp_to_i64(v: f64) -> i64 {
    const LIMIT: f64 = (1u64 << 62) as f64;
    v.clamp(-LIMIT, LIMIT) as i64
}

#[cfg(test)]
mod tests {
    use super::super::tests::{cases, expected_alpha, fixtures, load_rgba};
    use super::*;

    /// Builds a Stamp from Chromium's own stamp image, to test the drawing on its own.
    fn chromium_stamp(name: &str) -> Stamp {
        let (size, _, rgba) = load_rgba(&fixtures().join(format!("{name}.stamp.png")));
        Stamp::from_alpha(size, rgba.chunks_exact(4).map(|p| p[3]).collect())
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
}
