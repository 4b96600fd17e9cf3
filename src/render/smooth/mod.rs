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

mod cluster;
mod composite;
mod stamp;

use super::{IndexedImage, Palette, SmoothParams, Viewport, WorldPoint};
use cluster::draw_clusters;
use composite::{draw_points, Canvas};
use stamp::stamp;

/// Largest disc radius and largest blur, in image pixels, that a stamp is built for; larger
/// values are clamped so that a stamp stays at most 2048 x 2048 pixels whatever the request.
const MAX_KERNEL_PX: u32 = 512;

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

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};

    pub(super) fn fixtures() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/simpleheat")
    }

    /// An 8-bit RGBA PNG as (width, height, bytes).
    pub(super) fn load_rgba(path: &Path) -> (usize, usize, Vec<u8>) {
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

    pub(super) struct Case {
        pub(super) name: String,
        pub(super) width: u32,
        pub(super) height: u32,
        pub(super) radius: u32,
        pub(super) blur: u32,
        pub(super) max: f64,
        pub(super) min_opacity: f64,
        pub(super) points: Vec<[f64; 3]>,
        pub(super) palette: Vec<[u8; 4]>,
        pub(super) fractional: bool,
        pub(super) exceeds_max: bool,
    }

    pub(super) fn cases() -> Vec<Case> {
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
    pub(super) fn expected_alpha(name: &str) -> Vec<u8> {
        let (_, _, rgba) = load_rgba(&fixtures().join(format!("{name}.png")));
        rgba.chunks_exact(4).map(|p| p[3]).collect()
    }

    /// How far an alpha channel, colorized with `palette` (RGB = palette[alpha], alpha kept),
    /// is from Chromium's RGBA image, in PREMULTIPLIED color (the canvas stores it so).
    ///
    /// Mean absolute difference over the four channels (c * a / 255 for R, G, B, plus a), in
    /// 0..=255 units, over the pixels where either image has heat (alpha > 0): pixels empty in
    /// both would only dilute the error, so that a blank image could pass.
    struct Distance {
        mad: f64,
        alpha_mad: f64,
        alpha_max: u8,
        heated: usize,
    }

    fn distance(alpha: &[u8], expected: &[u8], palette: &[[u8; 4]]) -> Distance {
        let premul = |c: u8, a: u8| f64::from(c) * f64::from(a) / 255.0;
        let (mut sum, mut alpha_sum, mut alpha_max, mut heated) = (0.0, 0.0, 0u8, 0usize);
        for (&a, e) in alpha.iter().zip(expected.chunks_exact(4)) {
            if a == 0 && e[3] == 0 {
                continue;
            }
            heated += 1;
            let rgb = if a == 0 { [0; 4] } else { palette[a as usize] };
            for ch in 0..3 {
                sum += (premul(rgb[ch], a) - premul(e[ch], e[3])).abs();
            }
            let da = a.abs_diff(e[3]);
            sum += f64::from(da);
            alpha_sum += f64::from(da);
            alpha_max = alpha_max.max(da);
        }
        let n = heated.max(1) as f64;
        Distance {
            mad: sum / (n * 4.0),
            alpha_mad: alpha_sum / n,
            alpha_max,
            heated,
        }
    }

    /// Largest premultiplied MAD over heated pixels allowed for any case: 0.4% of full scale,
    /// a few times the worst case's distance, far below a blank image's (20 to 100).
    const MAX_MAD: f64 = 1.0;

    /// Accuracy against Chromium, on every simpleheat fixture case (including the one whose
    /// values exceed `max`, where the canvas keeps the previous globalAlpha, as [`draw_alpha`]
    /// does): drawn with [`draw_alpha`], colorized with the palette Chromium built for its
    /// gradient, and compared with `<name>.png` by [`distance`]. Per-case figures are printed
    /// to stderr. A blank image must fail every case, or the comparison would prove nothing.
    #[test]
    fn simpleheat_fixtures_match_chromium() {
        let mut failures = Vec::new();
        for case in cases() {
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
            let d = distance(&alpha, &expected, &case.palette);
            let blank = distance(&vec![0; w * h], &expected, &case.palette);
            eprintln!(
                "{}: premultiplied MAD {:.4} /255 = {:.3}% of full scale over {} heated pixels \
                 (alpha MAD {:.4}, max {}; a blank image: {:.2}){}{}",
                case.name,
                d.mad,
                d.mad / 2.55,
                d.heated,
                d.alpha_mad,
                d.alpha_max,
                blank.mad,
                if case.fractional {
                    ", fractional coords"
                } else {
                    ""
                },
                if case.exceeds_max {
                    ", values above max"
                } else {
                    ""
                },
            );
            assert!(blank.mad >= MAX_MAD, "{}: a blank image passes", case.name);
            if d.mad >= MAX_MAD {
                failures.push(case.name.clone());
            }
        }
        assert!(failures.is_empty(), "over {MAX_MAD} /255: {failures:?}");
    }

    pub(super) fn params(radius: u32, blur: u32) -> SmoothParams {
        SmoothParams {
            radius,
            blur,
            max: 1.0,
            min_opacity: 0.05,
            max_zoom: 18.0,
        }
    }

    pub(super) fn tile_viewport(z: u32, tx: u32, ty: u32, ratio: f64) -> Viewport {
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

    pub(super) fn palette() -> Palette {
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
    pub(super) fn clustered_points(
        n: usize,
        x0: f64,
        y0: f64,
        span: f64,
        seed: u64,
    ) -> Vec<WorldPoint> {
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
}
