//! Time and category filters on file layers over real HTTP: a filtered request draws the
//! same tiles, and gives the same `/points`, as the same points pre-filtered into a layer of
//! their own; bad values get a 400 naming the parameter; the parameters exist only on
//! layers that declare the columns.

mod common;

use chrono::{DateTime, SecondsFormat, Utc};
use common::scratch::Scratch;
use common::time_rows::{cases, csv, points_answer, rows, tiles, Row, POINTS_PATHS};
use common::TestServer;
use twine_heatmap::app::ServeArgs;

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
        for path in POINTS_PATHS {
            let ask = |layer: &str, extra: &str| points_answer(&server, path, layer, extra);
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
