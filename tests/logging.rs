//! What the server logs: a tile's slow path carries the tile's address (a `tile` span with
//! layer, z, x, y and ratio), including the render's own line from the blocking thread; a
//! database failure's cause is logged under the request id its client was given (and kept
//! from the client); clients' bad requests log at debug only. Its own test binary: it
//! installs a process-wide subscriber that captures the log text.

mod common;

use common::scratch::Scratch;
use common::{pg, wait_until, TestServer};
use std::io::{Read, Write};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use twine_heatmap::app::ServeArgs;

/// A log sink the test can read back.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
    }
}

/// The log of this test binary (every level of twine-heatmap's own lines, warn and up of
/// its dependencies), installed by the first test that asks.
fn captured() -> &'static Captured {
    static SINK: OnceLock<Captured> = OnceLock::new();
    SINK.get_or_init(|| {
        let sink = Captured::default();
        let writer = sink.clone();
        // The binary's own subscriber (which keeps clients' malformed HTTP out of the log).
        tracing::subscriber::set_global_default(twine_heatmap::logging::subscriber(
            "warn,twine_heatmap=debug",
            move || writer.clone(),
            false,
        ))
        .expect("the only subscriber of this test binary");
        sink
    })
}

#[test]
fn a_tile_miss_logs_with_the_tiles_address() {
    let sink = captured();
    // As `serve` builds it: the demo layer and the default memory tier.
    let s = TestServer::from_args(&ServeArgs::default());
    assert_eq!(
        s.get("/tiles/demo/3/4/2@2x.png").header("x-cache"),
        Some("miss")
    );
    let log = sink.text();
    let rendered = log
        .lines()
        .find(|l| l.contains("rendered"))
        .unwrap_or_else(|| panic!("no render line in:\n{log}"));
    assert!(
        rendered.contains("tile{layer=demo z=3 x=4 y=2 ratio=2}"),
        "{rendered}"
    );
    assert!(rendered.contains("marks="), "{rendered}");
    // A memory hit opens no span and logs nothing of its own.
    let before = sink.text().lines().filter(|l| l.contains("tile{")).count();
    assert_eq!(
        s.get("/tiles/demo/3/4/2@2x.png").header("x-cache"),
        Some("hit-memory")
    );
    let after = sink.text().lines().filter(|l| l.contains("tile{")).count();
    assert_eq!(before, after, "{}", sink.text());
}

/// A declared table dropped under a running server: the tile's 503 tells the client nothing
/// of the database (no relation name, no PostgreSQL message) but gives a request id, and the
/// log holds what PostgreSQL said under that id.
#[test]
fn a_database_error_reaches_the_client_as_a_request_id_and_the_log_in_full() {
    let sink = captured();
    let pid = std::process::id();
    let (layer, table) = (format!("dropped{pid}"), format!("dropped_secret_{pid}"));
    let db = pg::Db::connect();
    let _table = pg::ScratchTable::create(&db, &table, "geom geometry(Point, 4326)", |t| {
        db.batch(&format!(
            "INSERT INTO {t} SELECT ST_SetSRID(ST_MakePoint(i * 0.01, i * 0.01), 4326) FROM generate_series(0, 999) i;"
        ));
    });
    let dir = Scratch::new("logging-dropped");
    let config = dir.file(
        "config.toml",
        &format!("[[layers]]\nname = \"{layer}\"\ntable = \"public.{table}\"\n"),
    );
    // No cache: every tile request reaches the database.
    let s = TestServer::from_args(&ServeArgs {
        config: Some(config),
        database_url: Some(pg::database_url()),
        cache_memory: Some("0".into()),
        ..ServeArgs::default()
    });
    wait_until("the layer to be served", 20, || {
        s.get(&format!("/tiles/{layer}/3/4/3.png")).status == 200
    });
    db.batch(&format!("DROP TABLE public.\"{table}\""));

    let given = format!("client-{pid}");
    let reply = s.request(
        "GET",
        &format!("/tiles/{layer}/3/4/3.png"),
        &[("X-Request-Id", &given)],
    );
    // 503 when the query fails first, 500 once the server has found the table gone (a
    // misconfigured layer): either way nothing of the database reaches the client.
    assert!(matches!(reply.status, 500 | 503 | 504), "{}", reply.status);
    let body = String::from_utf8_lossy(&reply.body).into_owned();
    for secret in [
        table.as_str(),
        "relation",
        "does not exist",
        "public.",
        "SQLSTATE",
        "42P01",
    ] {
        assert!(!body.contains(secret), "{secret:?} in {body}");
    }
    assert_eq!(reply.json()["request_id"], given.as_str(), "{body}");
    assert_eq!(reply.header("x-request-id"), Some(given.as_str()));

    let log = sink.text();
    let line = log
        .lines()
        .find(|l| l.contains(&given) && l.contains(&table))
        .unwrap_or_else(|| panic!("no log line with {given} and the cause:\n{log}"));
    assert!(line.contains("does not exist"), "{line}");
    assert!(
        line.contains(" WARN ") || line.contains(" ERROR "),
        "{line}"
    );

    // Without an id of its own the client gets one made for it, found in the log the same way.
    let reply = s.get(&format!("/tiles/{layer}/3/4/2.png"));
    let id = reply.json()["request_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(!id.is_empty() && reply.header("x-request-id") == Some(id.as_str()));
    let log = sink.text();
    assert!(
        log.lines().any(|l| l.contains(&id) && l.contains(&table)),
        "no log line with {id} and the cause:\n{log}"
    );
}

/// A fuzzer's worth of bad requests (bad parameters and paths, crafted Host headers, other
/// methods, malformed HTTP): answered 4xx, logged at debug only, never at info or above.
#[test]
fn a_burst_of_bad_requests_logs_nothing_above_debug() {
    let sink = captured();
    let s = TestServer::demo_with(vec![]);
    let marker = format!("burst{}", std::process::id());
    for i in 0..40 {
        let paths = [
            format!("/tiles/demo/2/2/1.png?radius=-{i}&{marker}=1"),
            format!("/tiles/{marker}/2/2/1.png"),
            format!("/tiles/demo/99/{i}/0.png?{marker}"),
            format!("/{marker}/{i}"),
            format!("/points/demo?bbox={marker}"),
            format!("/heatmap.png?layer=demo&width={marker}"),
        ];
        for path in &paths {
            let status = s.get(path).status;
            assert!((400..500).contains(&status), "{path}: {status}");
        }
        let status = s
            .request(
                "GET",
                &format!("/layers?{marker}"),
                &[("Host", "evil.example/x?y=")],
            )
            .status;
        assert_eq!(status, 400);
        let status = s.request("DELETE", &format!("/{marker}"), &[]).status;
        assert_eq!(status, 405);
        // Malformed on the wire: refused by the HTTP layer before any route.
        let addr = s.base.trim_start_matches("http://");
        let mut stream = std::net::TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        stream
            .write_all(
                format!("GET /{marker} HTTP/1.1\r\nHost: a\r\nContent-Length: x{i}\r\n\r\n")
                    .as_bytes(),
            )
            .expect("write");
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        assert!(
            answer.starts_with(b"HTTP/1.1 400"),
            "{:?}",
            String::from_utf8_lossy(&answer)
        );
    }
    let log = sink.text();
    let ours: Vec<&str> = log.lines().filter(|l| l.contains(&marker)).collect();
    // They are logged, at debug: the capture works and sees these requests.
    assert!(
        ours.iter().any(|l| l.contains(" DEBUG ")),
        "no debug line for the burst:\n{log}"
    );
    for line in &ours {
        assert!(
            line.contains(" DEBUG ") || line.contains(" TRACE "),
            "{line}"
        );
    }
    assert!(
        !log.lines().any(|l| l.contains(" ERROR ")),
        "an error was logged:\n{log}"
    );
    // The malformed ones are counted, and the count is what the periodic summary warns of.
    twine_heatmap::logging::log_summary();
    let log = sink.text();
    let summary = log
        .lines()
        .find(|l| l.contains("malformed HTTP requests refused"))
        .unwrap_or_else(|| panic!("no summary:\n{log}"));
    assert!(
        summary.contains(" WARN ") && summary.contains("refused=40"),
        "{summary}"
    );
}
