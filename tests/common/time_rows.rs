//! Generated points with a time and two categories, the filters the time tests ask for, and
//! the tiles they compare: shared by the file tests (`time_filters`) and the PostGIS ones
//! (`postgis_time`), so that every source is held to the same cases.

use chrono::{DateTime, SecondsFormat, Utc};
use twine_heatmap::tile::{lat_to_world_y, lon_to_world_x, TileCoord};

/// One generated point.
#[derive(Clone)]
pub struct Row {
    pub lon: f64,
    pub lat: f64,
    pub w: u32,
    /// Milliseconds since the epoch; None: no time.
    pub time: Option<i64>,
    pub kind: &'static str,
    pub size: &'static str,
}

pub const DAY: i64 = 86_400_000;
/// 2023-01-01T00:00:00Z.
pub const START: i64 = 1_672_531_200_000;
/// 2024-06-15T12:34:56.789Z, the time of exactly one point.
pub const LONE: i64 = 1_718_454_896_789;

pub fn ms(text: &str) -> i64 {
    DateTime::parse_from_rfc3339(text)
        .expect("test instant")
        .timestamp_millis()
}

/// Clustered points over two years with 4 kinds (one empty) and 2 sizes; points without a
/// time, duplicates, points at midnight boundaries, at the antimeridian and beyond the
/// poles' Mercator limit.
pub fn rows() -> Vec<Row> {
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
pub fn time_text(i: usize, t: Option<i64>) -> String {
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
pub struct Case {
    pub query: &'static str,
    pub keeps: fn(&Row) -> bool,
}

pub fn within(r: &Row, from: i64, to: i64) -> bool {
    r.time.is_some_and(|t| t >= from && t < to)
}

pub fn cases() -> Vec<Case> {
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
        // Two values of one column (file layers sum a cube per value).
        Case {
            query: "to=2024-09-01&category.kind=c,",
            keeps: |r| {
                r.time.is_some_and(|t| t < ms("2024-09-01T00:00:00Z"))
                    && (r.kind == "c" || r.kind.is_empty())
            },
        },
        Case {
            query: "from=2024-01-01&to=2024-07-01&category.kind=b,nosuchvalue",
            keeps: |r| {
                within(r, ms("2024-01-01T00:00:00Z"), ms("2024-07-01T00:00:00Z")) && r.kind == "b"
            },
        },
    ]
}

pub fn csv(rows: &[Row], with_attributes: bool) -> String {
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

/// Tiles to compare at `z`: those of a sample of points, plus the edge columns and rows.
pub fn tiles(z: u8, rows: &[Row]) -> Vec<(u32, u32)> {
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

/// The `/points` requests the time tests compare (`{}`: the layer), both forms, points and
/// bins.
pub const POINTS_PATHS: [&str; 3] = [
    "/points/{}/0/0/0.json?limit=100000",
    "/points/{}/3/4/2.json?limit=50",
    "/points/{}?bbox=-180,-85,180,85&zoom=2&limit=200",
];

/// The answer to `path` (one of [`POINTS_PATHS`]) for `layer` with `extra` added, checked
/// to be a 200.
pub fn points_answer(
    server: &super::TestServer,
    path: &str,
    layer: &str,
    extra: &str,
) -> serde_json::Value {
    let url = path.replace("{}", layer) + extra;
    let reply = server.get(&url);
    assert_eq!(
        reply.status,
        200,
        "{url}: {}",
        String::from_utf8_lossy(&reply.body)
    );
    reply.json()
}
