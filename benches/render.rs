//! Tile rendering benchmarks: each iteration renders one 256x256 tile and encodes its PNG,
//! which is the work a tile request does once its points are in hand.
//!
//! - `synthetic/<style>/<n>`: 10,000 and 1,000,000 clustered synthetic points
//!   ([`twine_heatmap::synth::clustered_points`]) inside one z10 tile, for the smooth, dots
//!   and density styles.
//! - `bins/<style>/z0`: the z0 tile of 10,000,000 clustered synthetic points over the world,
//!   drawn from its pixel bins (with the style's margin) as layers draw dense zooms: the
//!   densest case a tile drawn from bins meets (nearly every pixel holds a bin).
//! - `cities/smooth/<tile>`: the demo layer (data/cities1000.csv.gz, 135k GeoNames places,
//!   weight 1), the densest z4 tile and the z0 tile, smooth style.
//!
//! Run with `cargo bench --bench render`.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use std::io::Read;
use twine_heatmap::render::{
    self, density, png::encode_indexed, ColorRamp, DensityParams, DensityScale, DotsParams,
    SmoothParams, Style, Viewport, WorldPoint,
};
use twine_heatmap::source::aggregate::{bins_as_points, bins_in, BinMass, CellRange};
use twine_heatmap::synth::clustered_points;
use twine_heatmap::tile::WorldBox;

/// Leaflet.heat's defaults.
const SMOOTH: SmoothParams = SmoothParams {
    radius: 25,
    blur: 15,
    max: 1.0,
    min_opacity: 0.05,
    max_zoom: 18.0,
};

const DOTS: DotsParams = DotsParams {
    dot_size: 25,
    opacity: 128,
};

/// The synthetic tile: z10, over western Europe (any tile would do; the points are made
/// for it).
const SYNTH_TILE: (u32, u32, u32) = (10, 530, 355);

fn tile_viewport(z: u32, tx: u32, ty: u32) -> Viewport {
    let scale = 256.0 * f64::from(1u32 << z);
    Viewport {
        scale_x: scale,
        scale_y: scale,
        origin_x: f64::from(tx) * 256.0,
        origin_y: f64::from(ty) * 256.0,
        width: 256,
        height: 256,
        zoom: f64::from(z),
        pixel_ratio: 1.0,
    }
}

/// The tile's world box `[x0, y0, x1, y1]`.
fn tile_box(z: u32, tx: u32, ty: u32) -> [f64; 4] {
    let n = f64::from(1u32 << z);
    [
        f64::from(tx) / n,
        f64::from(ty) / n,
        f64::from(tx + 1) / n,
        f64::from(ty + 1) / n,
    ]
}

/// Renders and encodes one tile; returns the PNG size so the work cannot be optimised away.
fn render_tile(points: &[WorldPoint], vp: &Viewport, style: &Style, ramp: &ColorRamp) -> usize {
    let img = render::render(black_box(points), vp, style, ramp);
    encode_indexed(&img).expect("encode").len()
}

fn synthetic(c: &mut Criterion) {
    let ramp = ColorRamp::leaflet_default();
    let (z, tx, ty) = SYNTH_TILE;
    let vp = tile_viewport(z, tx, ty);
    let mut group = c.benchmark_group("synthetic");
    // The 1M-point cases take tens of milliseconds; 20 samples keep the run short.
    group.sample_size(20);
    for n in [10_000usize, 1_000_000] {
        let points = clustered_points(n, 2024, tile_box(z, tx, ty));
        // The layer's reference for the zoom (here the layer is these points).
        let max = density::reference_max(&points, vp.scale_x, 25.0);
        let styles = [
            ("smooth", Style::Smooth(SMOOTH)),
            ("dots", Style::Dots(DOTS)),
            (
                "density",
                Style::Density(DensityParams {
                    radius: 25,
                    scale: DensityScale::Linear,
                    max,
                }),
            ),
        ];
        for (name, style) in styles {
            let bytes = render_tile(&points, &vp, &style, &ramp);
            eprintln!("synthetic/{name}/{n}: {n} points, PNG {bytes} bytes (density max {max})");
            group.bench_function(format!("{name}/{n}"), |b| {
                b.iter(|| render_tile(&points, &vp, &style, &ramp))
            });
        }
    }
    group.finish();
}

/// The z0 tile of 10M points from bins: what `Layer::render_input` hands the renderers.
fn bins(c: &mut Criterion) {
    let ramp = ColorRamp::leaflet_default();
    let vp = tile_viewport(0, 0, 0);
    let points = clustered_points(10_000_000, 42, [0.0, 0.0, 1.0, 1.0]);
    let mut group = c.benchmark_group("bins");
    group.sample_size(20);
    let density_max = density::reference_max(&points, vp.scale_x, 25.0);
    let styles = [
        ("smooth", Style::Smooth(SMOOTH), BinMass::Weight),
        ("dots", Style::Dots(DOTS), BinMass::Count),
        (
            "density",
            Style::Density(DensityParams {
                radius: 25,
                scale: DensityScale::Linear,
                max: density_max,
            }),
            BinMass::Weight,
        ),
    ];
    for (name, style, mass) in styles {
        let reach = style.reach_px(&vp) / vp.scale_x;
        let area = WorldBox {
            x0: -reach,
            y0: -reach,
            x1: 1.0 + reach,
            y1: 1.0 + reach,
        };
        let cells = bins_in(&points, vp.scale_x, &CellRange::of(&area, vp.scale_x));
        let marks = bins_as_points(&cells, vp.scale_x, mass);
        eprintln!("bins/{name}/z0: {} bins", marks.len());
        group.bench_function(format!("{name}/z0"), |b| {
            b.iter(|| {
                let img = render::render_bins(black_box(&marks), &vp, &style, &ramp);
                encode_indexed(&img).expect("encode").len()
            })
        });
    }
    group.finish();
}

/// Lon/lat in degrees to Web Mercator world units (y down), latitude clamped to Mercator's
/// square.
fn to_world(lon: f64, lat: f64) -> (f64, f64) {
    let lat = lat.clamp(-85.051_128_78, 85.051_128_78).to_radians();
    let x = (lon + 180.0) / 360.0;
    let y =
        (1.0 - (std::f64::consts::FRAC_PI_4 + lat / 2.0).tan().ln() / std::f64::consts::PI) / 2.0;
    (x, y)
}

/// The demo layer, weight 1 per place, in file order.
fn load_cities() -> Vec<WorldPoint> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/data/cities1000.csv.gz");
    let file = std::fs::File::open(path).expect("data/cities1000.csv.gz");
    let mut text = String::new();
    flate2::read::GzDecoder::new(file)
        .read_to_string(&mut text)
        .expect("gunzip");
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let mut points = Vec::new();
    for record in reader.records() {
        let record = record.expect("csv record");
        let lon: f64 = record[0].parse().expect("lon");
        let lat: f64 = record[1].parse().expect("lat");
        let (x, y) = to_world(lon, lat);
        let seq = u32::try_from(points.len()).expect("fits");
        points.push(WorldPoint { x, y, w: 1.0, seq });
    }
    points
}

/// The z4 tile holding the most places.
fn densest_tile(points: &[WorldPoint], z: u32) -> (u32, u32) {
    let n = 1usize << z;
    let mut counts = vec![0usize; n * n];
    for p in points {
        let tx = ((p.x * n as f64) as usize).min(n - 1);
        let ty = ((p.y * n as f64) as usize).min(n - 1);
        counts[ty * n + tx] += 1;
    }
    let best = (0..n * n).max_by_key(|&i| counts[i]).unwrap_or(0);
    ((best % n) as u32, (best / n) as u32)
}

/// What a source returns for the tile: the points within the style's reach, in layer order.
fn points_for(points: &[WorldPoint], vp: &Viewport, style: &Style) -> Vec<WorldPoint> {
    let reach = style.reach_px(vp);
    let (w, h) = (f64::from(vp.width), f64::from(vp.height));
    points
        .iter()
        .filter(|p| {
            let (x, y) = (vp.local_x(p), vp.local_y(p));
            x >= -reach && y >= -reach && x < w + reach && y < h + reach
        })
        .copied()
        .collect()
}

fn cities(c: &mut Criterion) {
    let ramp = ColorRamp::leaflet_default();
    let style = Style::Smooth(SMOOTH);
    let all = load_cities();
    let (tx, ty) = densest_tile(&all, 4);
    let mut group = c.benchmark_group("cities");
    group.sample_size(20);
    for (name, z, tx, ty) in [("z4-densest", 4, tx, ty), ("z0", 0, 0, 0)] {
        let vp = tile_viewport(z, tx, ty);
        let points = points_for(&all, &vp, &style);
        let bytes = render_tile(&points, &vp, &style, &ramp);
        eprintln!(
            "cities/smooth/{name}: tile {z}/{tx}/{ty}, {} of {} places, PNG {bytes} bytes",
            points.len(),
            all.len()
        );
        group.bench_function(format!("smooth/{name}"), |b| {
            b.iter(|| render_tile(&points, &vp, &style, &ramp))
        });
    }
    group.finish();
}

criterion_group!(benches, synthetic, bins, cities);
criterion_main!(benches);
