//! Time and category filters on file layers over real HTTP: a filtered request draws the
//! same tiles, and gives the same `/points`, as the same points pre-filtered into a layer of
//! their own; bad values get a 400 naming the parameter; the parameters exist only on
//! layers that declare the columns.

mod common;

use chrono::{DateTime, SecondsFormat, Utc};
use common::scratch::Scratch;
use common::TestServer;
use twine_heatmap::app::ServeArgs;
use twine_heatmap::tile::{lat_to_world_y, lon_to_world_x, TileCoord};

/// One generated point.
#[derive(Clone)]
struct Row {
    lon: f64,
    lat: f64,
    w: u32,
    /// Milliseconds since the epoch; None: no time.
    time: Option<i64>,
    kind: &'static str,
    size: &'static str,
}

const DAY: i64 = 86_400_000;
/// 2023-01-01T00:00:00Z.
const START: i64 = 1_672_531_200_000;
/// 2024-06-15T12:34:56.789Z, the time of exactly one point.
const LONE: i64 = 1_718_454_896_789;

fn ms(text: &str) -> i64 {
    DateTime::parse_from_rfc3339(text)
        .expect("test instant")
        .timestamp_millis()
}

/// Clustered points over two years with 4 kinds (one empty) and 2 sizes; points without a
/// time, duplicates, points at midnight boundaries, at the antimeridian and beyond the
/// poles' Mercator limit.
fn rows() -> Vec<Row> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let centres = [
        (13.4, 52.5),
        (-74.0, 40.7),
        (151.2, -33.9),
        (179.5, -17.0),
        (-179.6, 65.0),
    ];
    let kinds = ["a", "b", "c", ""];
    let mut rows = Vec::new();
    for i in 0..4000 {
        let (clon, clat) = centres[i % centres.len()];
        let spread = if i % 7 == 0 { 20.0 } else { 2.0 };
        let lon = (clon + (next() - 0.5) * spread).clamp(-180.0, 180.0);
        let lat = (clat + (next() - 0.5) * spread * 0.6).clamp(-89.0, 89.0);
        let time = if i % 23 == 0 {
            None
        } else if i % 11 == 0 {
            // Exactly at a midnight.
            Some(START + (next() * 730.0) as i64 * DAY)
        } else {
            Some(START + (next() * 730.0 * DAY as f64) as i64 / 1000 * 1000)
        };
        rows.push(Row {
            lon,
            lat,
            w: 1 + (i as u32 % 3),
            time,
            kind: kinds[(next() * 4.0) as usize % 4],
            size: if next() < 0.3 { "l" } else { "s" },
        });
    }
    // Duplicates of the first 200 rows.
    rows.extend(rows[..200].to_vec());
    // Edges of the world.
    for (k, (lon, lat)) in [
        (180.0, 10.0),
        (-180.0, 10.0),
        (179.999, -45.0),
        (-179.999, -45.0),
        (0.0, 85.06),
        (0.0, -85.06),
        (10.0, 89.5),
        (-10.0, -90.0),
        (90.0, 85.0511),
    ]
    .into_iter()
    .enumerate()
    {
        for j in 0..5 {
            rows.push(Row {
                lon,
                lat,
                w: 1,
                time: Some(START + ((k * 5 + j) as i64) * 16 * DAY),
                kind: kinds[j % 4],
                size: "s",
            });
        }
    }
    rows.push(Row {
        lon: 2.35,
        lat: 48.85,
        w: 2,
        time: Some(LONE),
        kind: "c",
        size: "l",
    });
    rows
}

/// The time in one of the forms files use (all meaning the same instant).
fn time_text(i: usize, t: Option<i64>) -> String {
    let Some(t) = t else {
        return String::new();
    };
    let d = DateTime::<Utc>::from_timestamp_millis(t).expect("time");
    match i % 4 {
        _ if t % DAY == 0 && i % 2 == 0 => d.format("%Y-%m-%d").to_string(),
        0 => d.to_rfc3339_opts(SecondsFormat::Millis, true),
        1 if t % 1000 == 0 => d.format("%Y-%m-%d %H:%M:%S").to_string(),
        2 => d
            .with_timezone(&chrono::FixedOffset::east_opt(2 * 3600).expect("offset"))
            .to_rfc3339_opts(SecondsFormat::AutoSi, false),
        _ => d.format("%Y-%m-%dT%H:%M:%S%.3f").to_string(),
    }
}

/// A filter as a query string and the same filter as a predicate.
struct Case {
    query: &'static str,
    keeps: fn(&Row) -> bool,
}

fn within(r: &Row, from: i64, to: i64) -> bool {
    r.time.is_some_and(|t| t >= from && t < to)
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            query: "from=2023-06-01&to=2024-01-01",
            keeps: |r| within(r, ms("2023-06-01T00:00:00Z"), ms("2024-01-01T00:00:00Z")),
        },
        Case {
            query: "from=2024-03-01T00:00:00Z",
            keeps: |r| r.time.is_some_and(|t| t >= ms("2024-03-01T00:00:00Z")),
        },
        Case {
            query: "to=2023-03-01%2002:00:00%2B02:00",
            keeps: |r| r.time.is_some_and(|t| t < ms("2023-03-01T00:00:00Z")),
        },
        Case {
            query: "from=2024-01-01&to=2024-01-01",
            keeps: |_| false,
        },
        Case {
            query: "from=2024-06-15T12:34:56.789Z&to=2024-06-15T12:34:56.790Z",
            keeps: |r| r.time == Some(LONE),
        },
        Case {
            query: "category.kind=a",
            keeps: |r| r.kind == "a",
        },
        Case {
            query: "category.kind=c,a,c&category.size=l",
            keeps: |r| (r.kind == "a" || r.kind == "c") && r.size == "l",
        },
        Case {
            query: "category.kind=",
            keeps: |r| r.kind.is_empty(),
        },
        Case {
            query: "from=2024-01-01&to=2024-07-01&category.kind=b,nosuchvalue",
            keeps: |r| {
                within(r, ms("2024-01-01T00:00:00Z"), ms("2024-07-01T00:00:00Z")) && r.kind == "b"
            },
        },
    ]
}

fn csv(rows: &[Row], with_attributes: bool) -> String {
    let mut text = String::from(if with_attributes {
        "lon,lat,w,time,kind,size\n"
    } else {
        "lon,lat,w\n"
    });
    for (i, r) in rows.iter().enumerate() {
        text.push_str(&format!("{},{},{}", r.lon, r.lat, r.w));
        if with_attributes {
            text.push_str(&format!(",{},{},{}", time_text(i, r.time), r.kind, r.size));
        }
        text.push('\n');
    }
    text
}

/// The layer `all` with time and categories, and `case{i}` with the points each case keeps.
fn server(dir: &Scratch) -> (TestServer, Vec<Row>) {
    let rows = rows();
    let mut config = String::from("aggregate_above = 300\n");
    let all = dir.file("all.csv", &csv(&rows, true));
    config.push_str(&format!(
        "[[layers]]\nname = \"all\"\nfile = {:?}\ntime = \"time\"\ncategories = [\"kind\", \"size\"]\n",
        all.display().to_string()
    ));
    for (i, case) in cases().iter().enumerate() {
        let kept: Vec<Row> = rows.iter().filter(|r| (case.keeps)(r)).cloned().collect();
        let file = dir.file(&format!("case{i}.csv"), &csv(&kept, false));
        config.push_str(&format!(
            "[[layers]]\nname = \"case{i}\"\nfile = {:?}\n",
            file.display().to_string()
        ));
    }
    let server = serve_config(dir, &config);
    (server, rows)
}

/// `serve --config` with `config` (kept in `dir`).
fn serve_config(dir: &Scratch, config: &str) -> TestServer {
    TestServer::from_args(&ServeArgs {
        config: Some(dir.file("config.toml", config)),
        ..ServeArgs::default()
    })
}

/// Tiles to compare at `z`: those of a sample of points, plus the edge columns and rows.
fn tiles(z: u8, rows: &[Row]) -> Vec<(u32, u32)> {
    let n = TileCoord::count(z) as u32;
    let tile_of = |lon: f64, lat: f64| {
        let t = |v: f64| ((v * n as f64) as u32).min(n - 1);
        (t(lon_to_world_x(lon)), t(lat_to_world_y(lat)))
    };
    let mut out: Vec<(u32, u32)> = rows
        .iter()
        .step_by(797)
        .chain(rows.iter().rev().take(12))
        .map(|r| tile_of(r.lon, r.lat))
        .chain([(0, 0), (n - 1, n - 1), (0, n / 2), (n - 1, n / 2)])
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

#[test]
fn filtered_tiles_and_points_equal_those_of_the_prefiltered_points() {
    let dir = Scratch::new("time-filters-equal");
    let (server, rows) = server(&dir);
    let mut compared = 0;
    let mut non_blank = 0;
    for (i, case) in cases().iter().enumerate() {
        for style in ["style=smooth", "style=dots", "style=density"] {
            for z in 0..=8u8 {
                for (x, y) in tiles(z, &rows) {
                    let filtered = server.get(&format!(
                        "/tiles/all/{z}/{x}/{y}.png?{style}&{}",
                        case.query
                    ));
                    let expected = server.get(&format!("/tiles/case{i}/{z}/{x}/{y}.png?{style}"));
                    assert_eq!(
                        filtered.status,
                        200,
                        "{}: {}",
                        case.query,
                        String::from_utf8_lossy(&filtered.body)
                    );
                    let (a, b) = (filtered.rgba(), expected.rgba());
                    assert!(
                        a == b,
                        "{} {style} z{z}/{x}/{y}: the filtered tile differs from case{i}'s",
                        case.query
                    );
                    compared += 1;
                    non_blank += usize::from(a.2.chunks(4).any(|p| p[3] != 0));
                }
            }
        }
        for path in [
            "/points/{}/0/0/0.json?limit=100000",
            "/points/{}/3/4/2.json?limit=50",
            "/points/{}?bbox=-180,-85,180,85&zoom=2&limit=200",
        ] {
            let ask = |layer: &str, extra: &str| {
                let url = path.replace("{}", layer) + extra;
                let reply = server.get(&url);
                assert_eq!(
                    reply.status,
                    200,
                    "{url}: {}",
                    String::from_utf8_lossy(&reply.body)
                );
                reply.json()
            };
            assert_eq!(
                ask("all", &format!("&{}", case.query)),
                ask(&format!("case{i}"), ""),
                "{path} {}",
                case.query
            );
        }
    }
    assert!(
        compared > 1000 && non_blank > 300,
        "{compared} compared, {non_blank} drawn"
    );
}

#[test]
fn overlays_filter_and_equal_filters_share_a_cache_entry() {
    let dir = Scratch::new("time-filters-overlay");
    let (server, _) = server(&dir);
    for (i, case) in cases().iter().enumerate() {
        let overlay = |layer: &str, extra: &str| {
            let url = format!(
                "/heatmap.png?layer={layer}&bbox=-180,-80,180,80&width=600&height=300&style=density{extra}"
            );
            let reply = server.get(&url);
            assert_eq!(reply.status, 200, "{url}");
            reply.rgba()
        };
        assert!(
            overlay("all", &format!("&{}", case.query)) == overlay(&format!("case{i}"), ""),
            "overlay {}",
            case.query
        );
    }
    let tile = "/tiles/all/1/1/0.png?style=smooth";
    let first = server.get(&format!("{tile}&category.kind=b,a&from=2024-01-01"));
    assert_eq!(first.header("x-cache"), Some("miss"));
    // The same filter spelled otherwise: the same entry.
    let same = server.get(&format!(
        "{tile}&from=2024-01-01T01:00:00%2B01:00&category.kind=a,b,a"
    ));
    assert_eq!(same.header("x-cache"), Some("hit-memory"));
    assert_eq!(same.body, first.body);
    // Another filter, another entry; no filter, another again.
    for other in ["&category.kind=a&from=2024-01-01", "&category.kind=a,b", ""] {
        let reply = server.get(&format!("{tile}{other}"));
        assert_eq!(reply.header("x-cache"), Some("miss"), "{other}");
    }
}

/// The 400 for `query` on `path`, checked to name `param`; its detail.
fn refused(server: &TestServer, path: &str, param: &str) -> String {
    let reply = server.get(path);
    assert_eq!(reply.status, 400, "{path}");
    let body = reply.json();
    assert_eq!(body["parameter"], param, "{path}: {body}");
    body["detail"].as_str().unwrap_or_default().to_owned()
}

#[test]
fn bad_time_and_category_parameters_are_refused_by_name() {
    let dir = Scratch::new("time-filters-errors");
    let (server, _) = server(&dir);
    let routes = [
        "/tiles/all/1/0/0.png?",
        "/heatmap.png?layer=all&bbox=-10,-10,10,10&width=64&height=64&",
        "/points/all/1/0/0.json?",
        "/points/all?bbox=-10,-10,10,10&",
    ];
    for route in routes {
        let detail = refused(&server, &format!("{route}from=yesterday"), "from");
        assert!(detail.contains("ISO 8601"), "{detail}");
        refused(&server, &format!("{route}to=2024-02-30"), "to");
        let detail = refused(
            &server,
            &format!("{route}from=2024-02-02&to=2024-02-01"),
            "from",
        );
        assert!(detail.contains("to"), "{detail}");
        // Two category columns: the short form is unknown here.
        let detail = refused(&server, &format!("{route}category=a"), "category");
        assert!(detail.contains("category.kind, category.size"), "{detail}");
        refused(
            &server,
            &format!("{route}category.colour=red"),
            "category.colour",
        );
        refused(
            &server,
            &format!("{route}from=2024-01-01&from=2024-01-02"),
            "from",
        );
        // On a layer without time or categories they are unknown parameters.
        let plain = route.replace("all", "case0");
        refused(&server, &format!("{plain}from=2024-01-01"), "from");
        refused(&server, &format!("{plain}category.kind=a"), "category.kind");
    }
    // An unknown value is no error: it matches nothing.
    let reply = server.get("/points/all/0/0/0.json?category.kind=nosuchvalue");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["count"], 0);
}

#[test]
fn a_single_category_column_takes_the_short_form_and_startup_errors_name_the_column() {
    let dir = Scratch::new("time-filters-short");
    let file = dir.file("k.csv", "lon,lat,kind,when\n1,2,a,2024-01-01\n3,4,b,\n");
    let config = format!(
        "[[layers]]\nname = \"k\"\nfile = {:?}\ncategories = [\"kind\"]\n",
        file.display().to_string()
    );
    let server = serve_config(&dir, &config);
    let count = |q: &str| server.get(&format!("/points/k/0/0/0.json?{q}")).json()["count"].clone();
    assert_eq!(count("category=a"), 1);
    assert_eq!(count("category.kind=a,b"), 2);
    refused(
        &server,
        "/points/k/0/0/0.json?category=a&category.kind=b",
        "category",
    );
    // No time column declared: `from` is unknown.
    refused(&server, "/points/k/0/0/0.json?from=2024-01-01", "from");
    for (extra, needle) in [
        ("time = \"time\"\n", "no column \"time\""),
        (
            "time = \"kind\"\ncategories = []\n",
            "time column \"kind\": \"a\" is not",
        ),
    ] {
        let config = format!(
            "[[layers]]\nname = \"k\"\nfile = {:?}\n{extra}",
            file.display().to_string()
        );
        let args = ServeArgs {
            config: Some(dir.file("bad.toml", &config)),
            ..ServeArgs::default()
        };
        let message = match twine_heatmap::app::build_state(&args) {
            Ok(_) => panic!("{extra}: should not start"),
            Err(e) => e.to_string(),
        };
        assert!(
            message.contains("layer \"k\"")
                && message.contains("k.csv")
                && message.contains(needle),
            "{message}"
        );
    }
}

#[test]
fn tilejson_describes_time_and_categories() {
    let dir = Scratch::new("time-filters-tilejson");
    let (server, rows) = server(&dir);
    let doc = server.get("/tiles/all.json").json();
    let time = &doc["heatmap"]["time"];
    let times: Vec<i64> = rows.iter().filter_map(|r| r.time).collect();
    let iso = |t: i64| {
        DateTime::<Utc>::from_timestamp_millis(t)
            .expect("time")
            .to_rfc3339_opts(SecondsFormat::AutoSi, true)
    };
    assert_eq!(time["column"], "time");
    assert_eq!(time["min"], iso(*times.iter().min().expect("times")));
    assert_eq!(time["max"], iso(*times.iter().max().expect("times")));
    // Two years: 730 days, more than 1000 hours.
    assert_eq!(time["bucket"], "day");
    let categories = doc["heatmap"]["categories"].as_array().expect("categories");
    assert_eq!(categories.len(), 2);
    assert_eq!(categories[0]["column"], "kind");
    let values = categories[0]["values"].as_array().expect("values");
    let listed: Vec<(String, u64)> = values
        .iter()
        .map(|v| {
            (
                v["value"].as_str().expect("value").to_owned(),
                v["count"].as_u64().expect("count"),
            )
        })
        .collect();
    let mut expected: Vec<(String, u64)> = ["a", "b", "c", ""]
        .iter()
        .map(|k| {
            (
                k.to_string(),
                rows.iter().filter(|r| r.kind == *k).count() as u64,
            )
        })
        .collect();
    expected.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    assert_eq!(listed, expected);
    assert_eq!(categories[0]["capped"], false);
    assert_eq!(categories[1]["column"], "size");
    // Layers without them say nothing of either.
    let plain = server.get("/tiles/case0.json").json();
    assert!(plain["heatmap"].get("time").is_none() && plain["heatmap"].get("categories").is_none());
}

#[test]
fn tilejson_caps_values_and_takes_the_configured_bucket() {
    let dir = Scratch::new("time-filters-cap");
    let mut text = String::from("lon,lat,t,id\n");
    for i in 0..250 {
        text.push_str(&format!("1,2,2024-01-01T00:{:02}:00Z,v{i:03}\n", i % 60));
    }
    text.push_str("1,2,,v007\n");
    let file = dir.file("many.csv", &text);
    let config = format!(
        "[[layers]]\nname = \"many\"\nfile = {:?}\ntime = \"t\"\ntime_bucket = \"month\"\ncategories = [\"id\"]\n",
        file.display().to_string()
    );
    let server = serve_config(&dir, &config);
    let heatmap = server.get("/tiles/many.json").json()["heatmap"].clone();
    assert_eq!(heatmap["time"]["bucket"], "month");
    assert_eq!(heatmap["time"]["min"], "2024-01-01T00:00:00Z");
    assert_eq!(heatmap["time"]["max"], "2024-01-01T00:59:00Z");
    let column = &heatmap["categories"][0];
    assert_eq!(column["values"].as_array().map(Vec::len), Some(200));
    assert_eq!(column["values"][0]["value"], "v007");
    assert_eq!(column["values"][0]["count"], 2);
    assert_eq!(column["values"][1]["value"], "v000");
    assert_eq!(
        (column["distinct"].clone(), column["capped"].clone()),
        (250.into(), true.into())
    );
}

#[test]
fn serve_without_config_serves_the_storms_layer_with_time_and_categories() {
    let server = TestServer::from_args(&ServeArgs::default());
    assert!(server.layer("demo").is_some());
    assert_eq!(server.layer_count("storms"), Some(11_859));
    let doc = server.get("/tiles/storms.json").json();
    assert!(doc["attribution"]
        .as_str()
        .is_some_and(|a| a.contains("HURDAT2")));
    let time = &doc["heatmap"]["time"];
    assert_eq!(time["min"], "1975-06-27T00:00:00Z");
    assert_eq!(time["max"], "2020-11-18T12:00:00Z");
    assert_eq!(time["bucket"], "month");
    let categories = doc["heatmap"]["categories"].as_array().expect("categories");
    let columns: Vec<&str> = categories
        .iter()
        .filter_map(|c| c["column"].as_str())
        .collect();
    assert_eq!(columns, ["status", "saffir_simpson"]);
    assert_eq!(
        categories[0]["values"][0],
        serde_json::json!({"value": "tropical storm", "count": 5348})
    );
    // Katrina, August 2005, over the Gulf of Mexico (z3 tile 2/3).
    let count = |q: &str| {
        server
            .get(&format!("/points/storms/3/2/3.json?limit=100000&{q}"))
            .json()["count"]
            .as_u64()
            .unwrap_or(0)
    };
    let all = count("");
    let august_2005 = count("from=2005-08-01&to=2005-09-01");
    let its_hurricanes = count("from=2005-08-01&to=2005-09-01&category.status=hurricane");
    assert!(
        all > august_2005 && august_2005 > its_hurricanes && its_hurricanes > 0,
        "{all} {august_2005} {its_hurricanes}"
    );
}

#[test]
fn a_configured_layer_named_storms_keeps_its_name_beside_the_demo() {
    let dir = Scratch::new("time-filters-storms-name");
    let file = dir.file("mine.csv", "lon,lat\n1,2\n3,4\n");
    let config = format!(
        "demo = true\n[[layers]]\nname = \"storms\"\nfile = {:?}\n",
        file.display().to_string()
    );
    let server = serve_config(&dir, &config);
    assert!(server.layer("demo").is_some());
    assert_eq!(server.layer_count("storms"), Some(2));
}
