//! The one test harness of the integration tests (each includes it as `mod common;`): the
//! real HTTP server on 127.0.0.1, in process ([`TestServer`]) or as the binary
//! ([`process`]), talked to over real sockets; the binary's other commands ([`process`]);
//! the test database ([`pg`]); scratch folders ([`scratch`]); and raw HTTP/1.1 ([`wire`]).

// Every test binary compiles this module tree for itself and uses a part of it: what one
// binary leaves unused, another uses.
#![allow(dead_code)]

pub mod pg;
pub mod process;
pub mod scratch;
pub mod time_rows;
pub mod wire;

use std::sync::Arc;
use std::time::{Duration, Instant};
use twine_heatmap::http::{self, AppState};
use twine_heatmap::layer::{Layer, Registry};
use twine_heatmap::render::png::decode_rgba;
use twine_heatmap::render::WorldPoint;
use twine_heatmap::source::load::demo_points;
use twine_heatmap::source::memory::MemoryStore;

/// A server to talk to: started in process here (it lives until the test process ends), or
/// as the binary by [`process::ServeProcess`].
pub struct TestServer {
    pub base: String,
}

impl TestServer {
    pub fn start(state: AppState) -> TestServer {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let system = actix_web::rt::System::new();
            system.block_on(async move {
                twine_heatmap::app::start_background(state.database.as_ref(), &state.layers);
                let (server, addrs) = http::bind(state, "127.0.0.1:0").expect("bind");
                tx.send(addrs[0]).expect("send addr");
                server.await.expect("server");
            });
        });
        let addr = rx.recv().expect("server address");
        TestServer {
            base: format!("http://{addr}"),
        }
    }

    /// `serve` with `args`, as the binary builds its state.
    pub fn from_args(args: &twine_heatmap::app::ServeArgs) -> TestServer {
        let (state, _) = twine_heatmap::app::build_state(args).expect("state");
        TestServer::start(state)
    }

    /// `serve --config CONFIG --database-url URL`, as the binary builds it, after
    /// `db init --config CONFIG` (the documented set-up: it installs the data-version triggers
    /// of the tables the config declares, which the server itself never does).
    pub fn with_database(config: std::path::PathBuf, url: String) -> TestServer {
        pg::db_init(&url, &config);
        TestServer::from_args(&twine_heatmap::app::ServeArgs {
            config: Some(config),
            database_url: Some(url),
            ..Default::default()
        })
    }

    /// The demo layer plus any extra layers.
    pub fn demo_with(extra: Vec<(&str, Vec<WorldPoint>)>) -> TestServer {
        TestServer::start(TestServer::demo_state(extra))
    }

    /// The state [`demo_with`](Self::demo_with) serves, for tests that change a setting first.
    pub fn demo_state(extra: Vec<(&str, Vec<WorldPoint>)>) -> AppState {
        let layers = Registry::default();
        let demo = MemoryStore::new(demo_points().expect("demo"), Some("GeoNames".into()));
        layers
            .insert(Layer::new("demo", Arc::new(demo)))
            .expect("demo layer");
        for (name, points) in extra {
            layers
                .insert(Layer::new(name, Arc::new(MemoryStore::new(points, None))))
                .expect("layer");
        }
        AppState::new(layers)
    }

    /// `/layers`' entry for the layer `name`, if it is listed.
    pub fn layer(&self, name: &str) -> Option<serde_json::Value> {
        self.get("/layers")
            .json()
            .as_array()
            .expect("/layers is a list")
            .iter()
            .find(|l| l["name"] == name)
            .cloned()
    }

    /// The number of points `/layers` gives the layer `name`; None while it is not listed.
    pub fn layer_count(&self, name: &str) -> Option<u64> {
        self.layer(name).map(|l| l["count"].as_u64().unwrap_or(0))
    }

    pub fn get(&self, path: &str) -> Reply {
        self.request("GET", path, &[])
    }

    /// Any method, with extra request headers.
    pub fn request(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> Reply {
        let url = format!("{}{}", self.base, path);
        let mut request = ureq::request(method, &url);
        for (name, value) in headers {
            request = request.set(name, value);
        }
        let response = match request.call() {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("{method} {url}: {e}"),
        };
        let status = response.status();
        let content_type = response.content_type().to_string();
        let headers: Vec<(String, String)> = response
            .headers_names()
            .into_iter()
            .map(|h| {
                let v = response.header(&h).unwrap_or_default().to_string();
                (h, v)
            })
            .collect();
        let mut body = Vec::new();
        std::io::Read::read_to_end(&mut response.into_reader(), &mut body).expect("body");
        Reply {
            status,
            content_type,
            headers,
            body,
        }
    }
}

pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn rgba(&self) -> (u32, u32, Vec<u8>) {
        assert_eq!(self.status, 200, "{}", String::from_utf8_lossy(&self.body));
        assert_eq!(self.content_type, "image/png");
        decode_rgba(&self.body).expect("png")
    }

    /// Asserts a 503 that tells the client when to come back; returns its JSON body.
    pub fn assert_retry_later(&self) -> serde_json::Value {
        assert_eq!(self.status, 503, "{}", String::from_utf8_lossy(&self.body));
        assert!(
            self.header("retry-after").is_some(),
            "503 without Retry-After"
        );
        self.json()
    }

    /// As [`assert_retry_later`](Self::assert_retry_later), for the 503 of a database the
    /// server has not reached yet.
    pub fn assert_database_not_reached(&self) -> serde_json::Value {
        let body = self.assert_retry_later();
        assert!(
            body["detail"]
                .as_str()
                .is_some_and(|d| d.contains("not been reached")),
            "{body}"
        );
        body
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// `{:?}` prints the shortest text that parses back to the same f64.
/// Share of equal RGBA pixels of two PNG answers of the same size.
pub fn equal_share(a: &Reply, b: &Reply) -> f64 {
    let ((wa, ha, pa), (wb, hb, pb)) = (a.rgba(), b.rgba());
    assert_eq!((wa, ha), (wb, hb), "tile sizes differ");
    let equal = pa
        .chunks_exact(4)
        .zip(pb.chunks_exact(4))
        .filter(|(p, q)| p == q)
        .count();
    equal as f64 / f64::from(wa * ha)
}

pub fn bbox_param(b: [f64; 4]) -> String {
    format!("{:?},{:?},{:?},{:?}", b[0], b[1], b[2], b[3])
}

/// Calls `check` every 100 ms until it holds or `secs` seconds have passed: whether it held.
/// For waits on what a server does in the background; the caller says what failed.
pub fn eventually(secs: u64, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if check() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits (at most `secs` seconds) until `check` holds; fails the test naming `what` if not.
pub fn wait_until(what: &str, secs: u64, check: impl FnMut() -> bool) {
    assert!(eventually(secs, check), "timed out waiting for {what}");
}

/// `twine_db_pyramid_queries_total` of `layer` from the server's `/metrics`: 0 before the
/// layer's first pyramid query (a labelled series appears with its first count).
pub fn pyramid_queries(server: &TestServer, layer: &str) -> u64 {
    let text = String::from_utf8(server.get("/metrics").body).expect("utf8");
    let series = format!("twine_db_pyramid_queries_total{{layer=\"{layer}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(series.as_str()))
        .map_or(0, |v| v.trim().parse().expect("a count"))
}

/// A metric's value from `/metrics` (the sample with no labels or with the labels in `name`).
pub fn metric(server: &TestServer, name: &str) -> f64 {
    let text = String::from_utf8(server.get("/metrics").body).expect("utf8");
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no metric {name}"))
}
