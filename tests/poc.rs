//! The proof of concept's route over a real server: `png=true` links an overlay that is
//! exactly `/heatmap.png`'s, `png=false` gives `/points`' answer, and every refusal names
//! its parameter.

mod common;

use common::TestServer;
use serde_json::Value;
use twine_heatmap::render::WorldPoint;
use twine_heatmap::tile::{lat_to_world_y, lon_to_world_x};

/// 300 points near (50° N, 10° E), weighing 1, 2 or 3.
fn grid() -> Vec<WorldPoint> {
    (0..300)
        .map(|i| WorldPoint {
            x: lon_to_world_x(10.0 + (i % 20) as f64 * 0.01),
            y: lat_to_world_y(50.0 + (i / 20) as f64 * 0.01),
            w: 1.0 + (i % 3) as f32,
            seq: i,
        })
        .collect()
}

/// `/twine.heatmap` with the query `pairs`, each value percent-encoded as a client sends it.
fn poc(server: &TestServer, path: &str, pairs: &[(&str, &str)]) -> common::Reply {
    let query = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    server.get(&format!("{path}?{query}"))
}

/// The path and query of an absolute URL this server gave.
fn local<'a>(server: &TestServer, url: &'a str) -> &'a str {
    url.strip_prefix(&server.base)
        .unwrap_or_else(|| panic!("{url} is not on {}", server.base))
}

#[test]
fn png_true_links_the_same_overlay_as_heatmap_png() {
    let s = TestServer::demo_with(vec![]);
    let europe = [
        ("png", "true"),
        ("dotSize", "30"),
        ("opacity", "200"),
        ("imgSize", "[400,300]"),
        ("bounds", "[[35,-10],[60,30]]"),
        ("scheme", "fire"),
    ];
    let answer = poc(&s, "/twine.heatmap", &europe);
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    assert!(answer.content_type.starts_with("application/json"));
    let body = answer.json();
    let filename = body["filename"].as_str().expect("filename");
    assert_eq!(body.as_object().map(|o| o.len()), Some(1), "{body}");
    let overlay = s.get(local(&s, filename));
    let direct = s.get(
        "/heatmap.png?layer=demo&bbox=-10,35,30,60&width=400&height=300&style=dots&dotSize=30&opacity=200&scheme=fire",
    );
    let (width, height, rgba) = overlay.rgba();
    assert_eq!((width, height), (400, 300));
    assert_eq!(overlay.body, direct.body, "the same PNG as /heatmap.png");
    assert!(
        rgba.chunks_exact(4).filter(|p| p[3] > 0).count() > 1000,
        "Europe's places are drawn"
    );

    // The old script's path, the other spellings and another corner order: the same link.
    let same = [
        ("/twine.heatmap.php", europe.to_vec()),
        (
            "/twine.heatmap",
            [
                ("png", "true"),
                ("bounds", "60,30,35,-10"),
                ("imgSize", "400, 300"),
                ("scheme", "fire"),
                ("opacity", "200"),
                ("dotSize", "30"),
                ("layer", "demo"),
            ]
            .to_vec(),
        ),
    ];
    for (path, pairs) in same {
        let again = poc(&s, path, &pairs).json();
        assert_eq!(again["filename"], filename, "{path} {pairs:?}");
    }

    // Unset options take /heatmap.png's defaults for the dots style.
    let plain = poc(
        &s,
        "/twine.heatmap",
        &[("png", "true"), ("bounds", "[[35,-10],[60,30]]")],
    )
    .json();
    let plain = s.get(local(&s, plain["filename"].as_str().expect("filename")));
    let direct = s.get("/heatmap.png?layer=demo&bbox=-10,35,30,60&style=dots");
    assert_eq!(plain.rgba().0, 1024);
    assert_eq!(plain.body, direct.body);
}

#[test]
fn png_true_links_through_the_public_url() {
    let mut state = TestServer::demo_state(vec![]);
    state.public_url = Some("https://heat.example.org/".into());
    let s = TestServer::start(state);
    let body = poc(
        &s,
        "/twine.heatmap",
        &[("png", "true"), ("bounds", "35,-10,60,30")],
    )
    .json();
    let filename = body["filename"].as_str().expect("filename");
    assert!(
        filename.starts_with("https://heat.example.org/heatmap.png?layer=demo&bbox=-10,35,30,60&"),
        "{filename}"
    );
}

/// Asserts that the route's `data` and `/points`' are the same points and weights.
fn assert_same_points(poc: &Value, points: &Value) {
    assert_eq!(poc["count"], points["count"]);
    assert_eq!(poc["aggregated"], points["aggregated"]);
    let (ours, theirs) = (
        poc["data"].as_array().expect("data"),
        points["data"].as_array().expect("data"),
    );
    assert_eq!(ours.len(), theirs.len());
    for (a, b) in ours.iter().zip(theirs) {
        let (a, b) = (a.as_array().expect("entry"), b.as_array().expect("entry"));
        assert_eq!(a[..2], b[..2], "lat, lon");
        match a.len() {
            2 => assert_eq!(b[2], 1.0, "a pair weighs 1"),
            3 => {
                assert_eq!(a[2], b[2], "weight");
                assert_ne!(a[2], 1.0, "weight 1 is left out");
            }
            n => panic!("{n} numbers in an entry"),
        }
    }
}

#[test]
fn png_false_answers_what_points_answers() {
    let mut state = TestServer::demo_state(vec![("grid", grid())]);
    state.poc_layer = Some("demo".into());
    let s = TestServer::start(state);

    // A few hundred places around Paris: as they are, each [lat, lon].
    let paris = poc(
        &s,
        "/twine.heatmap",
        &[("png", "false"), ("bounds", "[[48.5,2],[49.2,2.8]]")],
    );
    assert_eq!(
        paris.status,
        200,
        "{}",
        String::from_utf8_lossy(&paris.body)
    );
    let paris = paris.json();
    let expected = s.get("/points/demo?bbox=2,48.5,2.8,49.2").json();
    assert_eq!(paris["aggregated"], false);
    assert!(paris["count"].as_u64().expect("count") > 50, "{paris}");
    assert!(paris["data"][0].as_array().is_some_and(|e| e.len() == 2));
    assert_same_points(&paris, &expected);
    let mut keys: Vec<&String> = paris.as_object().expect("object").keys().collect();
    keys.sort();
    assert_eq!(keys, ["aggregated", "count", "data"]);

    // Europe holds more places than /points' cap: bins, as /points aggregates them.
    let europe = poc(
        &s,
        "/twine.heatmap.php",
        &[("png", "false"), ("bounds", "35,-10,60,30")],
    )
    .json();
    assert_eq!(europe["aggregated"], true);
    assert_same_points(&europe, &s.get("/points/demo?bbox=-10,35,30,60").json());

    // A weighted layer named by `layer`: weights other than 1 come third.
    let weighted = poc(
        &s,
        "/twine.heatmap",
        &[
            ("png", "false"),
            ("bounds", "[[49.9,9.9],[50.3,10.3]]"),
            ("layer", "grid"),
        ],
    )
    .json();
    assert_eq!(weighted["count"], 300);
    assert_same_points(
        &weighted,
        &s.get("/points/grid?bbox=9.9,49.9,10.3,50.3").json(),
    );
    let lengths: Vec<usize> = weighted["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|e| e.as_array().map_or(0, Vec::len))
        .collect();
    assert!(lengths.contains(&2) && lengths.contains(&3), "{lengths:?}");
}

#[test]
fn the_layer_is_the_request_s_the_config_s_or_the_only_one() {
    let several = TestServer::demo_with(vec![("grid", grid())]);
    let asked = [("png", "false"), ("bounds", "[[49.9,9.9],[50.3,10.3]]")];
    let refused = poc(&several, "/twine.heatmap", &asked);
    assert_eq!(refused.status, 400);
    let body = refused.json();
    assert_eq!(body["parameter"], "layer", "{body}");
    let detail = body["detail"].as_str().expect("detail");
    assert!(
        detail.contains("demo, grid") && detail.contains("poc_layer"),
        "{detail}"
    );

    let mut state = TestServer::demo_state(vec![("grid", grid())]);
    state.poc_layer = Some("grid".into());
    let configured = TestServer::start(state);
    assert_eq!(
        poc(&configured, "/twine.heatmap", &asked).json()["count"],
        300
    );
    // The request's `layer` wins over the config's.
    let mut with_layer = asked.to_vec();
    with_layer.push(("layer", "demo"));
    assert_eq!(
        poc(&configured, "/twine.heatmap", &with_layer).json()["count"],
        configured
            .get("/points/demo?bbox=9.9,49.9,10.3,50.3")
            .json()["count"]
    );

    // The config's `poc_layer`, as `serve --config` reads it.
    let dir = common::scratch::Scratch::new("poc-layer");
    dir.file("grid.csv", "lon,lat\n10.0,50.0\n10.1,50.1\n");
    let config = dir.file(
        "twine.toml",
        "demo = true\npoc_layer = \"grid\"\n[[layers]]\nname = \"grid\"\nfile = \"grid.csv\"\n",
    );
    let served = TestServer::from_args(&twine_heatmap::app::ServeArgs {
        config: Some(config),
        ..Default::default()
    });
    assert_eq!(poc(&served, "/twine.heatmap", &asked).json()["count"], 2);

    let only = TestServer::demo_with(vec![]);
    let answer = poc(
        &only,
        "/twine.heatmap",
        &[("png", "true"), ("bounds", "1,2,3,4")],
    );
    assert_eq!(answer.status, 200);
    assert!(answer.json()["filename"]
        .as_str()
        .is_some_and(|f| f.contains("layer=demo&")));
}

#[test]
fn bad_input_is_refused_naming_the_parameter() {
    let s = TestServer::demo_with(vec![("grid", grid())]);
    let ok = [
        ("png", "true"),
        ("bounds", "[[35,-10],[60,30]]"),
        ("layer", "demo"),
    ];
    assert_eq!(poc(&s, "/twine.heatmap", &ok).status, 200);
    // (a change to the good request, the parameter named, a word the detail must hold)
    let cases: &[(&str, &str, &str, &str)] = &[
        ("png", "", "png", "true"),
        ("png", "yes", "png", "true"),
        ("bounds", "", "bounds", "[[lat,lng],[lat,lng]]"),
        ("bounds", "[[35,-10]]", "bounds", "4 expected"),
        ("bounds", "[[35,-10],[60,\"x\"]]", "bounds", "JSON"),
        ("bounds", "[35,-10,60,30]", "bounds", "JSON"),
        ("bounds", "35,-10,60", "bounds", "4 expected"),
        ("bounds", "a,b,c,d", "bounds", "numbers"),
        ("bounds", "35,-10,60,inf", "bounds", "finite"),
        (
            "bounds",
            "[[35,-190],[60,30]]",
            "bounds",
            "longitude out of range",
        ),
        (
            "bounds",
            "[[-89,-10],[60,30]]",
            "bounds",
            "latitude out of range",
        ),
        ("bounds", "[[35,-10],[35,30]]", "bounds", "empty"),
        ("imgSize", "[400]", "imgSize", "2 expected"),
        ("imgSize", "[0,300]", "imgSize", "1..=4096"),
        ("imgSize", "400,5000", "imgSize", "1..=4096"),
        ("imgSize", "400.5,300", "imgSize", "not an integer"),
        ("dotSize", "0", "dotSize", "1..=256"),
        ("opacity", "300", "opacity", "0..=255"),
        ("scheme", "rainbow", "scheme", "classic"),
        ("bbox", "-10,35,30,60", "bbox", "allowed here: png"),
        ("width", "400", "width", "allowed here: png"),
    ];
    for &(key, value, param, word) in cases {
        let mut pairs: Vec<(&str, &str)> = ok.iter().filter(|(k, _)| *k != key).copied().collect();
        if !(key == "png" || key == "bounds") || !value.is_empty() {
            pairs.push((key, value));
        }
        let answer = poc(&s, "/twine.heatmap", &pairs);
        assert_eq!(answer.status, 400, "{key}={value}");
        let body = answer.json();
        assert_eq!(body["parameter"], param, "{key}={value}: {body}");
        assert!(body["error"].as_str().is_some_and(|e| e.contains(param)));
        let detail = body["detail"].as_str().expect("detail");
        assert!(detail.contains(word), "{key}={value}: {detail}");
    }

    // Given twice, or with a value over the length limit.
    let twice = s.get("/twine.heatmap?png=true&png=false&bounds=1,2,3,4&layer=demo");
    assert_eq!(twice.status, 400);
    assert_eq!(twice.json()["parameter"], "png");
    let long = "9".repeat(600);
    let answer = poc(&s, "/twine.heatmap", &[("png", "true"), ("bounds", &long)]);
    assert_eq!(answer.json()["parameter"], "bounds");

    // Several layers, none named: `layer` (tested above); an unknown one: 404.
    let unknown = poc(
        &s,
        "/twine.heatmap",
        &[("png", "false"), ("bounds", "1,2,3,4"), ("layer", "nope")],
    );
    assert_eq!(unknown.status, 404);
    assert!(unknown.json()["detail"]
        .as_str()
        .is_some_and(|d| d.contains("demo, grid")));
}

#[test]
fn without_layers_it_waits_for_the_database_or_asks_for_one() {
    // A database on a closed port: its layers cannot be known yet, so retry later.
    let dir = common::scratch::Scratch::new("poc-no-db");
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let s = TestServer::from_args(&twine_heatmap::app::ServeArgs {
        config: Some(dir.file("empty.toml", "")),
        database_url: Some(format!("postgres://twine:twine@127.0.0.1:{closed}/twine")),
        ..Default::default()
    });
    let answer = poc(
        &s,
        "/twine.heatmap",
        &[("png", "true"), ("bounds", "1,2,3,4")],
    );
    answer.assert_database_not_reached();

    // No layers and no database: `layer` is what is missing.
    let none = TestServer::start(twine_heatmap::http::AppState::new(Default::default()));
    let answer = poc(
        &none,
        "/twine.heatmap",
        &[("png", "true"), ("bounds", "1,2,3,4")],
    );
    assert_eq!(answer.status, 400);
    assert_eq!(answer.json()["parameter"], "layer");
}
