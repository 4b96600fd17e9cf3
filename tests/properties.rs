//! Property tests (proptest) of what parses user input: style query strings, the config file,
//! the point loaders and tile paths over HTTP. Whatever the input, the answer is a value or an
//! error that names what was wrong, never a panic or a 5xx. Each property runs a bounded
//! number of cases, so the suite's time stays fixed.

mod common;

use common::TestServer;
use proptest::prelude::*;
use std::sync::OnceLock;
use twine_heatmap::config::Config;
use twine_heatmap::source::load::{parse_points, WeightMode};
use twine_heatmap::style::{Query, StyleError, StyleSpec, STYLE_PARAMS};

/// Cases per property: enough to walk the grammar's corners, few enough for seconds.
fn cases(n: u32) -> ProptestConfig {
    ProptestConfig {
        cases: n,
        // No files of failures in the source tree: a failure prints its minimal input.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// A value as users type them: numbers in and out of range, words, empty, odd characters.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        (-1000i64..1000).prop_map(|n| n.to_string()),
        (-1e6f64..1e6).prop_map(|f| f.to_string()),
        Just(String::new()),
        Just("NaN".to_string()),
        Just("inf".to_string()),
        Just("1e400".to_string()),
        prop::sample::select(vec![
            "smooth",
            "dots",
            "density",
            "classic",
            "fire",
            "omg",
            "pbj",
            "pgaitch",
            "linear",
            "sqrt",
            "log",
            "0.4:blue,1:red",
            "0.5:#ff0000",
            "1:rgb(0,0,0)",
        ])
        .prop_map(str::to_string),
        "[ -~]{0,12}",
        "\\PC{0,6}",
    ]
}

/// A parameter name: mostly the style's own, sometimes another.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(STYLE_PARAMS.to_vec()).prop_map(str::to_string),
        1 => "[a-zA-Z]{1,10}",
    ]
}

fn query_string(pairs: &[(String, String)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

proptest! {
    #![proptest_config(cases(2000))]

    /// Any style query parses to a style whose canonical form parses to itself, or is refused
    /// naming one of the query's own parameters (or the query as a whole).
    #[test]
    fn style_queries_parse_to_a_fixed_point_or_name_the_parameter(
        pairs in prop::collection::vec((key(), value()), 0..6)
    ) {
        let raw = query_string(&pairs);
        let parsed = Query::parse(&raw, &[STYLE_PARAMS]).and_then(|q| StyleSpec::from_query(&q));
        match parsed {
            Ok(spec) => {
                let canonical = spec.canonical();
                let again = Query::parse(&canonical, &[STYLE_PARAMS])
                    .and_then(|q| StyleSpec::from_query(&q));
                prop_assert_eq!(again.as_ref().map(StyleSpec::canonical), Ok(canonical.clone()));
                prop_assert_eq!(again, Ok(spec));
            }
            Err(StyleError::BadParam { param, detail }) => {
                prop_assert!(!detail.is_empty());
                prop_assert!(
                    param == "query" || pairs.iter().any(|(k, _)| *k == param),
                    "{param} is not in {raw}"
                );
            }
            Err(other) => prop_assert!(false, "{other:?} for {raw}"),
        }
    }

    /// The config file: any mix of known and unknown keys and values is a config or one line
    /// that names what is wrong; an unknown key is named.
    #[test]
    fn config_files_parse_or_name_the_key(
        entries in prop::collection::vec(
            (
                prop_oneof![
                    prop::sample::select(vec![
                        "public_url", "handoff_zoom", "cors_allow_origin", "poc_layer",
                        "aggregate_above",
                    ]).prop_map(str::to_string),
                    "[a-z_]{1,12}",
                ],
                prop_oneof![
                    (-5i64..40).prop_map(|n| n.to_string()),
                    "\"[ -!#-~]{0,10}\"",
                    Just("true".to_string()),
                    Just("[1, 2]".to_string()),
                    Just("{ a = 1 }".to_string()),
                    "[ -~]{0,8}",
                ],
            ),
            0..5,
        )
    ) {
        const TOP_LEVEL: &[&str] = &[
            "bind", "public_url", "handoff_zoom", "tile_cache_control", "cors_allow_origin",
            "aggregate_above", "poc_layer", "demo", "database_url", "database", "points",
            "cache", "layers",
        ];
        let text: String = entries.iter().map(|(k, v)| format!("{k} = {v}\n")).collect();
        let unknown = entries.iter().find(|(k, _)| !TOP_LEVEL.contains(&k.as_str()));
        match Config::parse(&text) {
            Ok(_) => prop_assert!(unknown.is_none(), "{text} has an unknown key"),
            Err(message) => {
                prop_assert!(!message.is_empty());
                // A config with no other fault is refused for the unknown key, by name.
                let valid_toml = text.parse::<toml::Table>().is_ok();
                let only_fault = entries.iter().all(|(k, _)| !TOP_LEVEL.contains(&k.as_str()));
                if unknown.is_some() && valid_toml && only_fault {
                    prop_assert!(
                        entries.iter().any(|(k, _)| message.contains(k.as_str())),
                        "{message} for {text}"
                    );
                }
            }
        }
    }

    /// Arbitrary bytes under each loader's name: points or an error naming the file, never a
    /// panic, and every point loaded is finite and inside the world square.
    #[test]
    fn point_loaders_take_any_bytes(
        name in prop::sample::select(vec!["p.csv", "p.geojson", "p.json"]),
        bytes in prop::collection::vec(any::<u8>(), 0..300),
    ) {
        check_loaded(name, &bytes)?;
    }

    /// CSV as people write it: a header, then rows of numbers, blanks, words and NULLs.
    #[test]
    fn csv_rows_load_or_name_their_line(
        rows in prop::collection::vec(
            prop::collection::vec(
                prop_oneof![
                    (-200.0f64..200.0).prop_map(|f| f.to_string()),
                    Just(String::new()),
                    Just("NULL".to_string()),
                    Just("NaN".to_string()),
                    "[a-z ]{0,4}",
                ],
                0..4,
            ),
            0..20,
        )
    ) {
        let mut text = String::from("lon,lat,weight\n");
        for row in &rows {
            text.push_str(&row.join(","));
            text.push('\n');
        }
        match parse_points("rows.csv", text.as_bytes(), WeightMode::FromData) {
            Ok(points) => {
                prop_assert!(points.len() <= rows.len());
                check_points(&points)?;
            }
            Err(e) => {
                let message = e.to_string();
                // `rows.csv:LINE: problem`, the line a person finds in an editor.
                let line = message
                    .strip_prefix("rows.csv:")
                    .and_then(|rest| rest.split(':').next())
                    .and_then(|n| n.parse::<usize>().ok());
                prop_assert!(line.is_some_and(|n| (1..=rows.len() + 1).contains(&n)), "{message}");
            }
        }
    }

    /// GeoJSON features with odd coordinates and properties.
    #[test]
    fn geojson_features_load_or_name_their_line(
        coords in prop::collection::vec(
            (
                prop_oneof![(-400.0f64..400.0).prop_map(|f| f.to_string()), Just("null".into()), Just("\"x\"".into())],
                prop_oneof![(-100.0f64..100.0).prop_map(|f| f.to_string()), Just("null".into())],
                prop_oneof![Just("".to_string()), Just(", \"properties\": null".into()), Just(", \"properties\": {\"weight\": 2}".into())],
            ),
            0..10,
        )
    ) {
        let features: Vec<String> = coords
            .iter()
            .map(|(x, y, props)| {
                format!(
                    "{{\"type\": \"Feature\", \"geometry\": {{\"type\": \"Point\", \"coordinates\": [{x}, {y}]}}{props}}}"
                )
            })
            .collect();
        let text = format!(
            "{{\"type\": \"FeatureCollection\", \"features\": [\n{}\n]}}",
            features.join(",\n")
        );
        check_loaded("f.geojson", text.as_bytes())?;
    }
}

fn check_loaded(name: &str, bytes: &[u8]) -> Result<(), TestCaseError> {
    match parse_points(name, bytes, WeightMode::FromData) {
        Ok(points) => check_points(&points),
        Err(e) => {
            let message = e.to_string();
            prop_assert!(message.contains(name), "{message}");
            Ok(())
        }
    }
}

fn check_points(points: &[twine_heatmap::render::WorldPoint]) -> Result<(), TestCaseError> {
    for p in points {
        prop_assert!(
            p.x.is_finite() && p.y.is_finite() && p.w.is_finite(),
            "{p:?}"
        );
        prop_assert!((0.0..=1.0).contains(&p.y), "{p:?}");
    }
    Ok(())
}

/// One server for every case of the HTTP property.
fn server() -> &'static TestServer {
    static SERVER: OnceLock<TestServer> = OnceLock::new();
    SERVER.get_or_init(|| TestServer::demo_with(vec![]))
}

/// A path segment as clients and scanners send them.
fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        (0u64..40).prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        (-5i64..0).prop_map(|n| n.to_string()),
        Just("00".to_string()),
        Just("1.5".to_string()),
        Just("%00".to_string()),
        Just("..".to_string()),
        "[a-zA-Z0-9@._-]{0,8}",
    ]
}

proptest! {
    #![proptest_config(cases(300))]

    /// Tile and points paths with any z, x, y, scale and extension: 200, 304, 400 or 404,
    /// errors in JSON; never a 5xx.
    #[test]
    fn tile_paths_answer_a_tile_or_a_json_error(
        z in segment(),
        x in segment(),
        y in segment(),
        suffix in prop::sample::select(vec![".png", "@2x.png", "@3x.png", ".jpg", "", ".json", ".png.png"]),
        route in prop::sample::select(vec!["tiles", "points"]),
        layer in prop::sample::select(vec!["demo", "nope", "DEMO", ""]),
    ) {
        let path = format!("/{route}/{layer}/{z}/{x}/{y}{suffix}");
        let reply = server().get(&path);
        prop_assert!(
            matches!(reply.status, 200 | 304 | 400 | 404),
            "{path}: {} {}", reply.status, String::from_utf8_lossy(&reply.body)
        );
        if reply.status >= 400 {
            prop_assert!(reply.content_type.starts_with("application/json"), "{path}");
            let body: serde_json::Value = serde_json::from_slice(&reply.body)
                .map_err(|e| TestCaseError::fail(format!("{path}: {e}")))?;
            prop_assert!(body["error"].as_str().is_some_and(|e| !e.is_empty()), "{path}: {body}");
        }
    }
}
