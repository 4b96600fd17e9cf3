//! The `dots` style against the seed's renderer: each case of tests/fixtures/jjguy (rendered
//! by heatmap 2.2.1 itself) drawn by our `/heatmap.png` overlay over the case's area, as Web
//! Mercator metres, must give the expected RGBA on at least 99.5 % of pixels.
//! Points go through the real path: an in-memory layer, the HTTP server, the overlay route.

mod common;

use common::{bbox_param, TestServer};
use twine_heatmap::render::png::decode_rgba;
use twine_heatmap::render::WorldPoint;
use twine_heatmap::tile::{metres_to_world, WorldBox};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/jjguy");

#[test]
fn dots_overlays_match_heatmap_2_2_1() {
    let text = std::fs::read_to_string(format!("{FIXTURES}/cases.json")).expect("cases.json");
    let doc: serde_json::Value = serde_json::from_str(&text).expect("json");
    let cases = doc["cases"].as_array().expect("cases");
    let layers: Vec<(&str, Vec<WorldPoint>)> = cases
        .iter()
        .map(|case| {
            let points = case["points"]
                .as_array()
                .expect("points")
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    let (x, y) =
                        metres_to_world(p[0].as_f64().expect("x"), p[1].as_f64().expect("y"));
                    WorldPoint {
                        x,
                        y,
                        w: 1.0,
                        seq: i as u32,
                    }
                })
                .collect();
            (case["name"].as_str().expect("name"), points)
        })
        .collect();
    let server = TestServer::demo_with(layers);
    let mut worst = 100.0f64;
    for case in cases {
        let name = case["name"].as_str().expect("name");
        // heatmap 2.2.1 received the area as C floats (ctypes.c_float), so the reference
        // images show the area rounded to f32; that is the box we ask for. (At 1.4e7 m the
        // f32 step is 1 m, a sizable fraction of a pixel in the small-area cases.)
        let area = |i: usize, j: usize| case["area"][i][j].as_f64().expect("area") as f32 as f64;
        let (x0, y1) = metres_to_world(area(0, 0), area(0, 1));
        let (x1, y0) = metres_to_world(area(1, 0), area(1, 1));
        let bbox = bbox_param(WorldBox { x0, y0, x1, y1 }.to_lonlat());
        let (w, h) = (
            case["width"].as_u64().expect("w"),
            case["height"].as_u64().expect("h"),
        );
        let path = format!(
            "/heatmap.png?layer={name}&bbox={bbox}&width={w}&height={h}&style=dots&dotSize={}&opacity={}&scheme={}",
            case["dotsize"], case["opacity"], case["scheme"].as_str().expect("scheme")
        );
        let (gw, gh, got) = server.get(&path).rgba();
        let expected_png = std::fs::read(format!("{FIXTURES}/{name}.png")).expect("fixture png");
        let (ew, eh, expected) = decode_rgba(&expected_png).expect("decode fixture");
        assert_eq!((gw, gh), (ew, eh), "{name}");
        // A fully transparent pixel shows nothing whatever its color channels hold.
        let same = |a: &[u8], b: &[u8]| a == b || (a[3] == 0 && b[3] == 0);
        let matching = got
            .chunks_exact(4)
            .zip(expected.chunks_exact(4))
            .filter(|(a, b)| same(a, b))
            .count();
        let share = 100.0 * matching as f64 / (ew * eh) as f64;
        eprintln!("{name}: {share:.3} % of pixels match heatmap 2.2.1");
        worst = worst.min(share);
        assert!(share >= 99.5, "{name}: only {share:.3} % of pixels match");
    }
    eprintln!("worst case: {worst:.3} %");
}
