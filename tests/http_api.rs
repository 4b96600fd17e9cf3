//! The HTTP contract over a real server: every route's answer, and the table of bad input
//! that must answer 400/404 with a JSON error naming the parameter (never 5xx).

mod common;

use common::{bbox_param, TestServer};
use twine_heatmap::render::WorldPoint;
use twine_heatmap::tile::{lat_to_world_y, lon_to_world_x};

fn server() -> TestServer {
    // A small layer with known points and weights beside the demo layer.
    let points = (0..300)
        .map(|i| WorldPoint {
            x: lon_to_world_x(10.0 + (i % 20) as f64 * 0.01),
            y: lat_to_world_y(50.0 + (i / 20) as f64 * 0.01),
            w: 1.0 + (i % 3) as f32,
            seq: i,
        })
        .collect();
    TestServer::demo_with(vec![("grid", points)])
}

#[test]
fn health_and_layers_describe_the_server() {
    let s = server();
    let health = s.get("/health");
    assert_eq!(health.status, 200);
    let health = health.json();
    assert_eq!(health["status"], "ok");
    // This server has no cache tiers.
    assert_eq!(
        health["cache"],
        serde_json::json!({"memory": "off", "disk": "off"})
    );
    let demo = s.layer("demo").expect("demo");
    assert_eq!(demo["count"], 135_233);
    assert!(demo["tilejson"]
        .as_str()
        .expect("url")
        .ends_with("/tiles/demo.json"));
    let bounds = demo["bounds"].as_array().expect("bounds");
    assert!(bounds[0].as_f64().expect("w") < -170.0 && bounds[2].as_f64().expect("e") > 170.0);
}

#[test]
fn tilejson_follows_3_0_0_and_carries_the_handoff() {
    let s = server();
    let doc = s.get("/tiles/demo.json?scheme=fire&radius=30").json();
    assert_eq!(doc["tilejson"], "3.0.0");
    let tiles = doc["tiles"][0].as_str().expect("tiles");
    assert!(
        tiles.starts_with(&format!("{}/tiles/demo/{{z}}/{{x}}/{{y}}.png?", s.base)),
        "{tiles}"
    );
    assert!(
        tiles.contains("radius=30") && tiles.contains("scheme=fire"),
        "{tiles}"
    );
    assert_eq!(doc["heatmap"]["handoffZoom"], 8);
    assert_eq!(
        doc["heatmap"]["points"],
        format!("{}/points/demo/{{z}}/{{x}}/{{y}}.json", s.base)
    );
    assert!(doc["attribution"]
        .as_str()
        .expect("attribution")
        .contains("GeoNames"));
    assert_eq!(doc["bounds"].as_array().expect("bounds").len(), 4);
    // The template it gives is usable as is.
    let url = tiles
        .replace(&s.base, "")
        .replace("{z}", "2")
        .replace("{x}", "2")
        .replace("{y}", "1");
    assert_eq!(s.get(&url).status, 200);
}

#[test]
fn tiles_are_indexed_pngs_in_every_style() {
    let s = server();
    for style in [
        "",
        "?style=dots",
        "?style=density",
        "?style=smooth&scheme=pbj",
        "?style=dots&gradient=0:blue,1:red",
    ] {
        let reply = s.get(&format!("/tiles/demo/3/4/2.png{style}"));
        assert_eq!(reply.status, 200, "{style}");
        assert_eq!(reply.content_type, "image/png");
        assert!(reply.header("cache-control").is_some());
        // IHDR: bit depth 8, color type 3 (palette), and PLTE + tRNS chunks.
        assert_eq!(&reply.body[24..26], &[8, 3], "{style}");
        assert!(
            reply.body.windows(4).any(|w| w == b"PLTE")
                && reply.body.windows(4).any(|w| w == b"tRNS")
        );
        let (w, h, rgba) = reply.rgba();
        assert_eq!((w, h), (256, 256));
        assert!(
            rgba.chunks_exact(4).filter(|p| p[3] > 0).count() > 1000,
            "{style}: too few drawn pixels"
        );
    }
    let (w, h, _) = s.get("/tiles/demo/3/4/2@2x.png").rgba();
    assert_eq!((w, h), (512, 512));
}

#[test]
fn empty_tiles_are_one_shared_png() {
    let s = server();
    // Mid-Pacific and the South Atlantic at z10: no cities.
    let a = s.get("/tiles/demo/10/20/480.png");
    let b = s.get("/tiles/demo/10/700/700.png?style=dots");
    assert_eq!(a.status, 200);
    assert_eq!(a.body, b.body);
    assert!(a.body.len() < 200, "empty tile is {} bytes", a.body.len());
    assert!(a.rgba().2.chunks_exact(4).all(|p| p[3] == 0));
    let big = s.get("/tiles/demo/10/20/480@2x.png");
    assert_eq!(big.rgba().0, 512);
}

#[test]
fn overlay_renders_the_requested_box_and_size() {
    let s = server();
    let (w, h, rgba) = s
        .get(
            "/heatmap.png?layer=demo&bbox=-10,35,30,60&width=640&height=400&style=dots&scheme=fire",
        )
        .rgba();
    assert_eq!((w, h), (640, 400));
    assert!(rgba.chunks_exact(4).any(|p| p[3] > 0));
}

#[test]
fn points_per_tile_are_padded_and_aggregate_above_the_limit() {
    let s = server();
    // The grid layer spans 10.0..10.19 E, 50.0..50.14 N: inside z6 tile 33/21.
    let raw = s.get("/points/grid/6/33/21.json").json();
    assert_eq!(raw["aggregated"], false);
    assert_eq!(raw["count"], 300);
    let data = raw["data"].as_array().expect("data");
    assert_eq!(data.len(), 300);
    let first = data
        .iter()
        .find(|d| d[0].as_f64().expect("lat") < 50.0001 && d[1].as_f64().expect("lng") < 10.0001)
        .expect("corner point");
    assert_eq!(first[2], 1.0);
    let total: f64 = data.iter().map(|d| d[2].as_f64().expect("w")).sum();
    assert_eq!(total, 600.0);

    let binned = s.get("/points/grid/6/33/21.json?limit=10").json();
    assert_eq!(binned["aggregated"], true);
    assert!(binned["data"].as_array().expect("data").len() <= 10);
    let sum: f64 = binned["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|d| d[2].as_f64().expect("w"))
        .sum();
    assert!((sum - 600.0).abs() < 1e-9, "{sum}");

    // Padding: the east neighbour (x = 34 starts at 11.25 E, 48 px away at z6) is beyond
    // the default reach of 40 px.
    let east = s.get("/points/grid/6/34/21.json").json();
    assert_eq!(east["count"], 0);
    // At z9 the points are in tile 270/173, about 130 px west of tile 271: outside the
    // default reach, inside a client kernel of radius 100 + blur 100.
    assert_eq!(s.get("/points/grid/9/271/173.json").json()["count"], 0);
    let near = s
        .get("/points/grid/9/271/173.json?radius=100&blur=100")
        .json();
    assert!(near["count"].as_u64().expect("count") > 0);
}

#[test]
fn points_by_bbox_answer_the_seed_shape() {
    let s = server();
    let doc = s.get("/points/demo?bbox=2.2,48.8,2.5,48.9").json();
    assert_eq!(doc["aggregated"], false);
    let data = doc["data"].as_array().expect("data");
    assert!(!data.is_empty());
    for d in data {
        let (lat, lng) = (d[0].as_f64().expect("lat"), d[1].as_f64().expect("lng"));
        assert!(
            (48.8..=48.9).contains(&lat) && (2.2..=2.5).contains(&lng),
            "{lat},{lng}"
        );
    }
    let europe = s.get("/points/demo?bbox=-10,35,30,60&limit=500").json();
    assert_eq!(europe["aggregated"], true);
    let count = europe["count"].as_u64().expect("count") as f64;
    let sum: f64 = europe["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|d| d[2].as_f64().expect("w"))
        .sum();
    assert!(
        (sum - count).abs() < 1e-6,
        "unweighted demo: weights {sum} should sum to the count {count}"
    );
}

/// Each row: path, expected status, the parameter the error must name (None for 404s).
const BAD: &[(&str, u16, Option<&str>)] = &[
    // z/x/y: non-numeric, negative, huge, out of range
    ("/tiles/demo/a/0/0.png", 400, Some("z")),
    ("/tiles/demo/0/b/0.png", 400, Some("x")),
    ("/tiles/demo/0/0/c.png", 400, Some("y")),
    ("/tiles/demo/-1/0/0.png", 400, Some("z")),
    ("/tiles/demo/2/-1/0.png", 400, Some("x")),
    (
        "/tiles/demo/99999999999999999999999/0/0.png",
        400,
        Some("z"),
    ),
    ("/tiles/demo/3/99999999999999999999/0.png", 400, Some("x")),
    ("/tiles/demo/25/0/0.png", 400, Some("z")),
    ("/tiles/demo/2/4/0.png", 400, Some("x")),
    ("/tiles/demo/2/0/4.png", 400, Some("y")),
    ("/tiles/demo/2/0/1.5.png", 400, Some("y")),
    ("/tiles/demo/2/0/1.jpg", 400, Some("y")),
    ("/tiles/demo/2/0/1@3x.png", 400, Some("y")),
    ("/points/demo/2/0/9.json", 400, Some("y")),
    ("/points/demo/x/0/0.json", 400, Some("z")),
    // unknown layer, route
    ("/tiles/nope/0/0/0.png", 404, None),
    ("/tiles/nope.json", 404, None),
    // paths under /tiles of any other shape (the scope splits them itself)
    ("/tiles", 404, None),
    ("/tiles/", 404, None),
    ("/tiles/demo", 404, None),
    ("/tiles/demo/1/1", 404, None),
    ("/tiles/demo/1/1/0.png/more", 404, None),
    ("/tiles//1/1/0.png", 404, None),
    ("/tiles/demo/1//0.png", 404, None),
    ("/points/nope/0/0/0.json", 404, None),
    ("/heatmap.png?layer=nope&bbox=0,0,1,1", 404, None),
    ("/nothing/here", 404, None),
    // style and scheme
    ("/tiles/demo/0/0/0.png?style=blobs", 400, Some("style")),
    ("/tiles/demo/0/0/0.png?scheme=rainbow", 400, Some("scheme")),
    ("/tiles/demo.json?scheme=rainbow", 400, Some("scheme")),
    // options out of range, NaN, inf
    ("/tiles/demo/0/0/0.png?radius=0", 400, Some("radius")),
    ("/tiles/demo/0/0/0.png?radius=101", 400, Some("radius")),
    ("/tiles/demo/0/0/0.png?radius=NaN", 400, Some("radius")),
    ("/tiles/demo/0/0/0.png?blur=-1", 400, Some("blur")),
    ("/tiles/demo/0/0/0.png?blur=inf", 400, Some("blur")),
    (
        "/tiles/demo/0/0/0.png?style=dots&dotSize=0",
        400,
        Some("dotSize"),
    ),
    (
        "/tiles/demo/0/0/0.png?style=dots&dotSize=1e9",
        400,
        Some("dotSize"),
    ),
    (
        "/tiles/demo/0/0/0.png?style=dots&opacity=256",
        400,
        Some("opacity"),
    ),
    (
        "/tiles/demo/0/0/0.png?style=dots&opacity=-5",
        400,
        Some("opacity"),
    ),
    ("/tiles/demo/0/0/0.png?max=0", 400, Some("max")),
    ("/tiles/demo/0/0/0.png?max=NaN", 400, Some("max")),
    ("/tiles/demo/0/0/0.png?max=inf", 400, Some("max")),
    ("/tiles/demo/0/0/0.png?max=-infinity", 400, Some("max")),
    (
        "/tiles/demo/0/0/0.png?style=density&max=1e400",
        400,
        Some("max"),
    ),
    (
        "/tiles/demo/0/0/0.png?minOpacity=2",
        400,
        Some("minOpacity"),
    ),
    (
        "/tiles/demo/0/0/0.png?minOpacity=nan",
        400,
        Some("minOpacity"),
    ),
    ("/tiles/demo/0/0/0.png?maxZoom=31", 400, Some("maxZoom")),
    (
        "/tiles/demo/0/0/0.png?style=density&scale=cubic",
        400,
        Some("scale"),
    ),
    // gradients
    ("/tiles/demo/0/0/0.png?gradient=", 400, Some("gradient")),
    ("/tiles/demo/0/0/0.png?gradient=red", 400, Some("gradient")),
    (
        "/tiles/demo/0/0/0.png?gradient=2:red",
        400,
        Some("gradient"),
    ),
    (
        "/tiles/demo/0/0/0.png?gradient=0.5:nocolor",
        400,
        Some("gradient"),
    ),
    (
        "/tiles/demo/0/0/0.png?gradient=0.5:%23ff",
        400,
        Some("gradient"),
    ),
    (
        "/tiles/demo/0/0/0.png?gradient=0.5:red,0.5:blue",
        400,
        Some("gradient"),
    ),
    (
        "/tiles/demo/0/0/0.png?gradient=0.5:red&scheme=fire",
        400,
        Some("gradient"),
    ),
    // bbox
    ("/heatmap.png?layer=demo", 400, Some("bbox")),
    ("/heatmap.png?layer=demo&bbox=1,2,3", 400, Some("bbox")),
    ("/heatmap.png?layer=demo&bbox=a,b,c,d", 400, Some("bbox")),
    ("/heatmap.png?layer=demo&bbox=10,0,-10,5", 400, Some("bbox")),
    ("/heatmap.png?layer=demo&bbox=0,10,5,-10", 400, Some("bbox")),
    (
        "/heatmap.png?layer=demo&bbox=-181,0,0,10",
        400,
        Some("bbox"),
    ),
    ("/heatmap.png?layer=demo&bbox=0,-89,10,0", 400, Some("bbox")),
    ("/heatmap.png?layer=demo&bbox=0,0,NaN,1", 400, Some("bbox")),
    ("/points/demo?bbox=0,0,0,0", 400, Some("bbox")),
    ("/points/demo", 400, Some("bbox")),
    ("/heatmap.png?bbox=0,0,1,1", 400, Some("layer")),
    // width and height
    (
        "/heatmap.png?layer=demo&bbox=0,0,1,1&width=0",
        400,
        Some("width"),
    ),
    (
        "/heatmap.png?layer=demo&bbox=0,0,1,1&height=0",
        400,
        Some("height"),
    ),
    (
        "/heatmap.png?layer=demo&bbox=0,0,1,1&width=4097",
        400,
        Some("width"),
    ),
    (
        "/heatmap.png?layer=demo&bbox=0,0,1,1&height=100000",
        400,
        Some("height"),
    ),
    (
        "/heatmap.png?layer=demo&bbox=0,0,1,1&width=12.5",
        400,
        Some("width"),
    ),
    // limit
    ("/points/demo/0/0/0.json?limit=0", 400, Some("limit")),
    ("/points/demo/0/0/0.json?limit=-1", 400, Some("limit")),
    ("/points/demo/0/0/0.json?limit=abc", 400, Some("limit")),
    ("/points/demo/0/0/0.json?limit=200001", 400, Some("limit")),
    ("/points/demo?bbox=0,0,1,1&limit=1e3", 400, Some("limit")),
    ("/points/demo?bbox=0,0,1,1&zoom=40", 400, Some("zoom")),
    // unknown, duplicate
    ("/tiles/demo/0/0/0.png?radios=20", 400, Some("radios")),
    (
        "/tiles/demo/0/0/0.png?radius=20&radius=30",
        400,
        Some("radius"),
    ),
    ("/layers?x=1", 400, Some("x")),
];

#[test]
fn bad_input_gets_a_clear_json_error() {
    assert_bad_input_refused(&server());
}

/// The same table against `serve`'s defaults: the memory tier on, and a disk tier. Twice, so
/// that an error is never cached, nor a tile taken for one.
#[test]
fn bad_input_gets_a_clear_json_error_with_the_cache_tiers_on() {
    let dir = common::scratch::Scratch::new("http-api-bad-input-cached");
    let s = TestServer::from_args(&twine_heatmap::app::ServeArgs {
        cache_dir: Some(dir.join("tiles")),
        ..Default::default()
    });
    let health = s.get("/health").json();
    assert!(health["cache"]["memory"].is_object(), "{health}");
    assert!(health["cache"]["disk"].is_object(), "{health}");
    assert_bad_input_refused(&s);
    assert_bad_input_refused(&s);
    assert_eq!(s.get("/tiles/demo/0/0/0.png").status, 200);
}

fn assert_bad_input_refused(s: &TestServer) {
    for &(path, status, param) in BAD {
        let reply = s.get(path);
        assert_eq!(
            reply.status,
            status,
            "{path}: {}",
            String::from_utf8_lossy(&reply.body)
        );
        assert!(
            reply.content_type.starts_with("application/json"),
            "{path}: {}",
            reply.content_type
        );
        let body = reply.json();
        assert!(
            body["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{path}: {body}"
        );
        assert!(
            body["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{path}: {body}"
        );
        if let Some(param) = param {
            assert_eq!(body["parameter"], param, "{path}: {body}");
            assert!(
                body["error"].as_str().unwrap_or_default().contains(param),
                "{path}: {body}"
            );
        }
    }
}

/// HEAD answers like GET without the body; every answer carries CORS headers; OPTIONS is a
/// preflight; other methods are a 405 that says what is allowed.
#[test]
fn head_cors_preflight_and_other_methods() {
    let s = server();
    for path in ["/tiles/demo/1/1/0.png", "/tiles/demo.json", "/layers", "/"] {
        let get = s.get(path);
        let head = s.request("HEAD", path, &[]);
        assert_eq!((get.status, head.status), (200, 200), "{path}");
        assert!(head.body.is_empty(), "{path}: HEAD sent a body");
        assert_eq!(
            head.header("content-length"),
            Some(get.body.len().to_string().as_str()),
            "{path}"
        );
        assert_eq!(head.header("etag"), get.header("etag"), "{path}");
        assert_eq!(head.content_type, get.content_type, "{path}");
    }
    // CORS on successes and errors alike, so a page elsewhere can read the JSON error too.
    for (path, status) in [
        ("/tiles/demo/1/1/0.png", 200),
        ("/tiles/demo.json", 200),
        ("/points/demo/3/4/2.json", 200),
        ("/tiles/demo/1/1/0.png?radius=0", 400),
        ("/tiles/nope/0/0/0.png", 404),
    ] {
        let reply = s.request("GET", path, &[("Origin", "https://maps.example.org")]);
        assert_eq!(reply.status, status, "{path}");
        assert_eq!(
            reply.header("access-control-allow-origin"),
            Some("*"),
            "{path}"
        );
        let exposed = reply
            .header("access-control-expose-headers")
            .unwrap_or_default();
        assert!(
            exposed.contains("ETag") && exposed.contains("X-Cache"),
            "{path}: {exposed}"
        );
    }
    let preflight = s.request(
        "OPTIONS",
        "/tiles/demo/1/1/0.png",
        &[
            ("Origin", "https://maps.example.org"),
            ("Access-Control-Request-Method", "GET"),
            ("Access-Control-Request-Headers", "if-none-match"),
        ],
    );
    assert_eq!(preflight.status, 204);
    assert_eq!(preflight.header("access-control-allow-origin"), Some("*"));
    assert_eq!(
        preflight.header("access-control-allow-methods"),
        Some("GET, HEAD, OPTIONS")
    );
    assert_eq!(
        preflight.header("access-control-allow-headers"),
        Some("if-none-match")
    );
    let preflight = s.request("OPTIONS", "/tiles/demo.json", &[]);
    assert_eq!(preflight.status, 204, "TileJSON preflight");
    for (method, path) in [
        ("POST", "/tiles/demo/1/1/0.png"),
        ("PUT", "/tiles/demo/1/1/0.png"),
        ("DELETE", "/tiles/demo/1/1/0.png"),
        ("PATCH", "/tiles/demo/1/1/0.png"),
        ("POST", "/tiles/demo.json"),
        ("POST", "/layers"),
    ] {
        let reply = s.request(method, path, &[]);
        assert_eq!(reply.status, 405, "{method} {path}");
        assert_eq!(
            reply.header("allow"),
            Some("GET, HEAD, OPTIONS"),
            "{method} {path}"
        );
        let body = reply.json();
        assert!(
            body["error"].as_str().unwrap_or_default().contains(method)
                && body["detail"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("GET, HEAD"),
            "{method} {path}: {body}"
        );
    }
}

/// `path` answers 503 with Retry-After, as a full budget does, and its detail says `advice`.
fn assert_busy(s: &TestServer, path: &str, advice: &str) {
    let body = s.get(path).assert_retry_later();
    assert_eq!(body["error"], "the server is busy", "{body}");
    let detail = body["detail"].as_str().unwrap_or_default();
    assert!(detail.contains(advice), "{body}");
}

/// Concurrent large overlays share a pixel budget: with the budget taken (here by the test
/// itself, so nothing depends on timing) an overlay answers 503 with Retry-After at once
/// (this server waits 0 s for room), and renders again when the room is back.
#[test]
fn overlays_beyond_the_pixel_budget_answer_503() {
    use std::sync::Arc;
    use twine_heatmap::http::budget::RenderBudget;
    let budget = Arc::new(RenderBudget::new(2048 * 2048, std::time::Duration::ZERO));
    let mut state = TestServer::demo_state(vec![]);
    state.overlay_budget = budget.clone();
    let s = TestServer::start(state);
    let path = "/heatmap.png?layer=demo&bbox=-10,35,30,60&width=2048&height=1024";
    let runtime = actix_web::rt::System::new();
    let held = runtime
        .block_on(budget.reserve(2048 * 1536))
        .expect("the test takes three quarters of the budget");
    assert_busy(&s, path, "smaller width and height");
    // A small overlay still fits in the quarter left.
    let small = s.get("/heatmap.png?layer=demo&bbox=-10,35,30,60&width=512&height=512");
    assert_eq!(small.status, 200);
    drop(held);
    assert_eq!(s.get(path).status, 200);
}

/// `/points` answers share a budget like overlays: with it taken (by the test itself, so
/// nothing depends on timing) both forms, and the proof of concept's `png=false`, answer 503 with Retry-After at once (this server
/// waits 0 s for room), while tiles are not counted; with the room back they answer again.
#[test]
fn points_beyond_their_budget_answer_503() {
    use std::sync::Arc;
    use twine_heatmap::http::budget::PointsBudget;
    let budget = Arc::new(PointsBudget::new(1, std::time::Duration::ZERO));
    let mut state = TestServer::demo_state(vec![]);
    state.points_budget = budget.clone();
    let s = TestServer::start(state);
    let paths = [
        "/points/demo?bbox=-10,35,30,60",
        "/points/demo/5/16/10.json",
        // The proof of concept's points answer, the same work under another name.
        "/twine.heatmap?png=false&bounds=35,-10,60,30",
    ];
    let runtime = actix_web::rt::System::new();
    let held = runtime
        .block_on(budget.reserve())
        .expect("the test takes the budget");
    for path in paths {
        assert_busy(&s, path, "at most 1 at once");
    }
    // Bad input is still a 400 (checked before any room is taken), and tiles still come.
    assert_eq!(s.get("/points/demo?bbox=1,2,3").status, 400);
    assert_eq!(s.get("/tiles/demo/5/16/10.png").status, 200);
    drop(held);
    for path in paths {
        let answer = s.get(path);
        assert_eq!(answer.status, 200, "{path}");
        assert!(
            answer.json()["count"].as_u64().unwrap_or_default() > 0,
            "{path}"
        );
    }
}

/// Requests for the most points allowed, many at once, leave tiles answered: the points
/// work queues for its budget off the I/O workers while tiles render and come back.
#[test]
fn tiles_are_answered_while_points_requests_flood() {
    use std::sync::Arc;
    use twine_heatmap::http::budget::PointsBudget;
    let mut state = TestServer::demo_state(vec![]);
    // Room for one at a time, and a wait long enough that every request gets its turn.
    state.points_budget = Arc::new(PointsBudget::new(1, std::time::Duration::from_secs(120)));
    let s = TestServer::start(state);
    let flood: Vec<_> = (0..6)
        .map(|_| {
            let url = format!(
                "{}/points/demo?bbox=-180,-85,180,85&limit={}",
                s.base, 200_000
            );
            std::thread::spawn(move || {
                (0..3)
                    .map(|_| match ureq::get(&url).call() {
                        Ok(r) => r.status(),
                        Err(ureq::Error::Status(code, _)) => code,
                        Err(e) => panic!("{e}"),
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    // Cold tiles, so each is rendered while the points requests are in flight.
    for x in 0..8 {
        let tile = s.get(&format!("/tiles/demo/4/{x}/5.png"));
        assert_eq!(tile.status, 200, "tile {x}");
    }
    for handle in flood {
        assert_eq!(handle.join().expect("thread"), vec![200; 3]);
    }
}

/// Errors whose wording matters: what the client should send instead.
#[test]
fn errors_say_what_is_allowed() {
    let s = server();
    for (path, param, says) in [
        ("/tiles/demo/2/0/1@3x.png", "y", "@2x.png"),
        ("/tiles/demo/2/0/1.jpg", "y", "{y}.png"),
        ("/layers?x=1", "x", "takes no query parameters"),
        (
            "/tiles/demo/0/0/0.png?radios=20",
            "radios",
            "allowed here: style,",
        ),
        (
            "/tiles/demo/0/0/0.png?gradient=0.5:nocolor",
            "gradient",
            "#rrggbbaa",
        ),
    ] {
        let reply = s.get(path);
        assert_eq!(reply.status, 400, "{path}");
        let body = reply.json();
        assert_eq!(body["parameter"], param, "{path}: {body}");
        assert!(
            body["detail"].as_str().unwrap_or_default().contains(says),
            "{path}: {body}"
        );
    }
}

#[test]
fn over_long_parameters_are_refused() {
    let s = server();
    let long_gradient = format!("/tiles/demo/0/0/0.png?gradient={}", "0.1:red,".repeat(100));
    let reply = s.get(&long_gradient);
    assert_eq!(reply.status, 400);
    assert_eq!(reply.json()["parameter"], "gradient");
    let long_query = format!("/tiles/demo/0/0/0.png?{}", "radius=1&".repeat(600));
    let reply = s.get(&long_query);
    assert_eq!(reply.status, 400);
    assert_eq!(reply.json()["parameter"], "query");
    let long_layer = format!("/tiles/{}/0/0/0.png", "a".repeat(3000));
    let reply = s.get(&long_layer);
    assert_eq!(reply.status, 404);
    assert!(reply.body.len() < 1000, "the error echoes too much");
}

#[test]
fn the_overlay_of_tile_bounds_uses_the_tile_grid() {
    let s = server();
    let b = twine_heatmap::tile::TileCoord { z: 4, x: 8, y: 5 }
        .world_box()
        .to_lonlat();
    let overlay = s.get(&format!(
        "/heatmap.png?layer=demo&bbox={}&width=256&height=256",
        bbox_param(b)
    ));
    let tile = s.get("/tiles/demo/4/8/5.png");
    assert_eq!(overlay.rgba().2, tile.rgba().2);
}
