//! Seamlessness: for every style, a 2x2 mosaic of tiles equals the `/heatmap.png` overlay of
//! the same area at 512x512, pixel for pixel, at several zooms and places (real HTTP).

mod common;

use common::{bbox_param, TestServer};
use twine_heatmap::tile::{TileCoord, WorldBox};

/// Places where the demo layer is dense, sparse, and at the antimeridian.
const PLACES: &[(u8, u32, u32)] = &[
    (0, 0, 0),        // the whole world (as z1's four tiles)
    (3, 3, 2),        // Europe
    (5, 16, 10),      // Germany and the Benelux
    (7, 64, 43),      // around Paris
    (9, 268, 182),    // around Milan, corners of four tiles meet in the city
    (11, 1042, 986),  // around Lagos
    (13, 2411, 3079), // New York
];

const STYLES: &[&str] = &[
    "style=smooth",
    "style=smooth&radius=10&blur=5&max=0.002&scheme=fire",
    "style=dots",
    "style=dots&dotSize=40&opacity=200&scheme=omg",
    "style=density",
    "style=density&scale=log&radius=12&gradient=0:navy,0.5:cyan,1:white",
];

#[test]
fn mosaics_of_tiles_equal_the_overlay_of_the_same_area() {
    let server = TestServer::demo_with(vec![]);
    let mut checked_nonempty = 0;
    for &(z, x0, y0) in PLACES {
        let n = TileCoord::count(z) as u32;
        for style in STYLES {
            // At z0 the 2x2 mosaic is one zoom deeper: use z1's four tiles.
            let (z, x0, y0) = if n == 1 {
                (1, 0, 0)
            } else {
                (z, x0.min(n - 2), y0.min(n - 2))
            };
            let mut mosaic = vec![0u8; 512 * 512 * 4];
            for dy in 0..2 {
                for dx in 0..2 {
                    let (w, h, rgba) = server
                        .get(&format!(
                            "/tiles/demo/{z}/{}/{}.png?{style}",
                            x0 + dx,
                            y0 + dy
                        ))
                        .rgba();
                    assert_eq!((w, h), (256, 256));
                    for row in 0..256 {
                        let dst = ((dy * 256 + row) * 512 + dx * 256) as usize * 4;
                        mosaic[dst..dst + 1024]
                            .copy_from_slice(&rgba[row as usize * 1024..(row as usize + 1) * 1024]);
                    }
                }
            }
            let nw = TileCoord { z, x: x0, y: y0 }.world_box();
            let se = TileCoord {
                z,
                x: x0 + 1,
                y: y0 + 1,
            }
            .world_box();
            let area = WorldBox {
                x0: nw.x0,
                y0: nw.y0,
                x1: se.x1,
                y1: se.y1,
            };
            let (w, h, overlay) = server
                .get(&format!(
                    "/heatmap.png?layer=demo&bbox={}&width=512&height=512&{style}",
                    bbox_param(area.to_lonlat())
                ))
                .rgba();
            assert_eq!((w, h), (512, 512));
            let differing = mosaic
                .chunks_exact(4)
                .zip(overlay.chunks_exact(4))
                .filter(|(a, b)| a != b)
                .count();
            assert_eq!(
                differing, 0,
                "z{z} {x0}/{y0} {style}: {differing} pixels differ"
            );
            if mosaic.chunks_exact(4).any(|p| p[3] > 0) {
                checked_nonempty += 1;
            }
        }
    }
    // The places must actually hold data, or the comparison proves nothing.
    assert!(
        checked_nonempty >= PLACES.len() * STYLES.len() - 2,
        "{checked_nonempty} non-empty mosaics"
    );
}

/// The world wraps: points just east of the antimeridian (179.99°E) show at the west edge of
/// tile x = 0, as they do in the tiles next to them, in every style.
#[test]
fn tiles_wrap_across_the_antimeridian() {
    use twine_heatmap::render::WorldPoint;
    use twine_heatmap::tile::{lat_to_world_y, lon_to_world_x};
    let points = (0..400)
        .map(|i| WorldPoint {
            x: lon_to_world_x(179.99 - (i % 20) as f64 * 0.001),
            y: lat_to_world_y(10.0 + (i / 20) as f64 * 0.01),
            w: 1.0,
            seq: i,
        })
        .collect();
    let server = TestServer::demo_with(vec![("edge", points)]);
    let z = 6;
    let n = TileCoord::count(z) as u32;
    let y = (lat_to_world_y(10.1) * n as f64) as u32;
    for style in ["style=smooth&max=0.001", "style=dots", "style=density"] {
        let (_, _, west) = server
            .get(&format!("/tiles/edge/{z}/0/{y}.png?{style}"))
            .rgba();
        let (_, _, east) = server
            .get(&format!("/tiles/edge/{z}/{}/{y}.png?{style}", n - 1))
            .rgba();
        let first_column = (0..256).filter(|row| west[row * 1024 + 3] > 0).count();
        let last_column = (0..256)
            .filter(|row| east[row * 1024 + 1020 + 3] > 0)
            .count();
        assert!(last_column > 0, "{style}: the cluster itself is not drawn");
        assert!(
            first_column > 0,
            "{style}: tile x=0 does not see points across the antimeridian"
        );
    }
}

/// The world wraps without a seam: a render straddling the antimeridian (the overlay route
/// cannot ask for one, so the render path is called directly) equals the east-most and the
/// west-most tile side by side, pixel for pixel, in every style and at zooms whose world
/// width is not a whole number of the smooth style's clustering cells.
#[test]
fn the_antimeridian_has_no_seam() {
    use std::sync::Arc;
    use twine_heatmap::layer::Layer;
    use twine_heatmap::metrics::Metrics;
    use twine_heatmap::render::png::decode_rgba;
    use twine_heatmap::render::{Viewport, WorldPoint};
    use twine_heatmap::service::render_png;
    use twine_heatmap::source::load::demo_points;
    use twine_heatmap::source::memory::MemoryStore;
    use twine_heatmap::source::FilterValues;
    use twine_heatmap::style::{Query, StyleSpec, STYLE_PARAMS};
    use twine_heatmap::tile::{lat_to_world_y, lon_to_world_x};

    // The demo layer (Fiji, Tonga, Samoa and Kiribati lie on or near 180°) plus a band of
    // points on both sides of the antimeridian, so every zoom has data at the seam.
    let mut points = demo_points().expect("demo");
    let next = points.len() as u32;
    points.extend((0..2000u32).map(|i| {
        let lon = -180.0 + ((i * 7919) % 1000) as f64 * 0.0005 - 0.25; // 179.75°E..180.25°
        let lon = if lon < -180.0 { lon + 360.0 } else { lon };
        WorldPoint {
            x: lon_to_world_x(lon),
            y: lat_to_world_y(-17.0 + (i % 97) as f64 * 0.03),
            w: 1.0 + (i % 3) as f32,
            seq: next + i,
        }
    }));
    let layer = Layer::new("edge", Arc::new(MemoryStore::new(points, None)));
    let metrics = Metrics::default();
    let styles = [
        "style=smooth",
        "style=smooth&radius=10&blur=5&max=0.002&scheme=fire",
        "style=smooth&radius=7&blur=0",
        "style=dots",
        "style=density",
    ];
    let row_of = |z: u8| (lat_to_world_y(-16.0) * TileCoord::count(z) as f64) as u32;
    let render = |vp: Viewport, tile: Option<TileCoord>, spec: &StyleSpec| {
        actix_web::rt::System::new().block_on(async {
            let png = render_png(&layer, vp, spec, tile, &FilterValues::NONE, &metrics)
                .await
                .expect("render");
            decode_rgba(&png).expect("png")
        })
    };
    let (mut compared_nonempty, mut seams) = (0, Vec::new());
    for z in [1u8, 2, 3, 5, 8] {
        let n = TileCoord::count(z) as u32;
        let y = row_of(z);
        for style in styles {
            let spec = StyleSpec::from_query(&Query::parse(style, &[STYLE_PARAMS]).expect("query"))
                .expect("style");
            let east = TileCoord { z, x: n - 1, y };
            let west = TileCoord { z, x: 0, y };
            let (_, _, east_px) = render(east.viewport(1), Some(east), &spec);
            let (_, _, west_px) = render(west.viewport(1), Some(west), &spec);
            let straddle = Viewport {
                width: 512,
                ..east.viewport(1)
            };
            let (w, h, both) = render(straddle, None, &spec);
            assert_eq!((w, h), (512, 256));
            let mut differing = 0;
            for row in 0..256 {
                let line = &both[row * 2048..(row + 1) * 2048];
                let tiles = [
                    &east_px[row * 1024..(row + 1) * 1024],
                    &west_px[row * 1024..(row + 1) * 1024],
                ]
                .concat();
                differing += line
                    .chunks_exact(4)
                    .zip(tiles.chunks_exact(4))
                    .filter(|(a, b)| a != b)
                    .count();
            }
            if differing > 0 {
                seams.push(format!("z{z} row {y} {style}: {differing} pixels differ"));
            }
            if both.chunks_exact(4).any(|p| p[3] > 0) {
                compared_nonempty += 1;
            }
        }
    }
    assert!(seams.is_empty(), "{}", seams.join("\n"));
    assert_eq!(
        compared_nonempty,
        5 * styles.len(),
        "every render holds data"
    );
}
