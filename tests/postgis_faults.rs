//! Database faults against a real PostgreSQL: an exhausted pool answers 503 with
//! Retry-After, a statement past `statement_timeout` answers 504 and is cancelled, and a
//! database that is down at start-up or goes away later leaves the server up (`/health`
//! says so, tiles answer 503) until it comes back by itself.
//!
//! "Down" is a TCP proxy in front of the real server that the test stops and starts, so the
//! shared cluster other tests use stays up.

mod common;

use common::pg;
use common::process::{free_port, ServeProcess};
use common::scratch::Scratch;
use common::{wait_until, TestServer};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use twine_heatmap::app::ServeArgs;

/// A table with a GiST index and a few thousand points, declared as a layer; dropped when
/// the returned guard goes.
fn make_table<'a>(db: &'a pg::Db, table: &str) -> pg::ScratchTable<'a> {
    pg::ScratchTable::create(db, table, "geom geometry(Point, 3857)", |t| {
        db.batch(&format!(
            "INSERT INTO {t} SELECT ST_SetSRID(ST_MakePoint(i * 1000.0, i * 500.0), 3857) FROM generate_series(0, 4999) i;"
        ));
    })
}

fn server(url: &str, layer: &str, table: &str, database: &str) -> TestServer {
    let dir = Scratch::new(&format!("faults-{layer}"));
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!("{database}\n[[layers]]\nname = \"{layer}\"\ntable = \"public.{table}\"\n"),
    )
    .expect("config");
    // No memory tier: every request must reach the database for these tests to mean anything.
    let args = ServeArgs {
        config: Some(config),
        database_url: Some(url.to_string()),
        cache_memory: Some("0".into()),
        ..ServeArgs::default()
    };
    TestServer::from_args(&args)
}

#[test]
fn pool_exhaustion_is_503_and_statement_timeout_is_504() {
    let pid = std::process::id();
    let (layer, table) = (format!("locked{pid}"), format!("locked_{pid}"));
    let db = pg::Db::connect();
    let _table = make_table(&db, &table);
    let s = server(
        &pg::database_url(),
        &layer,
        &table,
        "[database]\npool_size = 1\npool_wait_ms = 300\nstatement_timeout_ms = 2000",
    );
    let tile = format!("/tiles/{layer}/4/8/7.png");
    wait_until("the layer to be served", 20, || s.get(&tile).status == 200);
    // The watcher has installed its trigger (which needs the table's lock) and polls freely.
    wait_until("the watcher's first poll", 20, || {
        s.get("/health").json()["status"] == "ok"
    });

    // Another session locks the table: a tile query waits on the lock, holding the pool's
    // only connection, until statement_timeout cancels it.
    let locker = pg::Db::connect();
    locker.batch(&format!(
        "BEGIN; LOCK TABLE public.\"{table}\" IN ACCESS EXCLUSIVE MODE"
    ));
    let base = s.base.clone();
    // Sessions of this server waiting on the lock of this test's table (other tests share
    // the database).
    let waiting = || {
        db.query(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'twine-heatmap' \
             AND state = 'active' AND position($1 in query) > 0",
            &[&table],
        )[0]
        .get::<_, i64>(0)
    };
    // The watcher takes the pool's one connection once a second (longer while it reads the
    // statistics of a layer another test has just imported): a request that comes then gets
    // the pool's 503 instead of the connection, and is sent again.
    let mut blocked = None;
    for _ in 0..20 {
        let url = format!("{base}/tiles/{layer}/4/8/6.png");
        let request = std::thread::spawn(move || match ureq::get(&url).call() {
            Ok(r) => (r.status(), String::new()),
            Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap_or_default()),
            Err(e) => panic!("{e}"),
        });
        common::eventually(10, || waiting() == 1 || request.is_finished());
        if !request.is_finished() {
            blocked = Some(request);
            break;
        }
        let (status, body) = request.join().expect("thread");
        assert!(status == 503 && body.contains("busy"), "{status} {body}");
    }
    let blocked: Vec<_> = blocked.into_iter().collect();
    wait_until("the request waiting on the lock", 10, || waiting() == 1);
    // The connection is taken: the next request waits 300 ms for one, then gets 503.
    let started = Instant::now();
    let body = s
        .get(&format!("/tiles/{layer}/4/9/7.png"))
        .assert_retry_later();
    assert_eq!(body["error"], "the database is unavailable", "{body}");
    let detail = body["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("retry after"), "{body}");
    assert!(
        body["request_id"].as_str().is_some_and(|id| !id.is_empty()),
        "{body}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the pool wait is bounded"
    );
    for handle in blocked {
        let (status, body) = handle.join().expect("thread");
        assert_eq!(status, 504, "{body}");
        let body: serde_json::Value = serde_json::from_str(&body).expect("a JSON error body");
        assert_eq!(body["error"], "the database query timed out", "{body}");
        assert!(
            body["detail"]
                .as_str()
                .unwrap_or_default()
                .contains("statement timeout"),
            "{body}"
        );
    }
    // The cancelled statement is gone from the server, not running on.
    wait_until("the cancelled statement to end", 5, || waiting() == 0);
    locker.batch("ROLLBACK");
    // With the lock gone it serves again (the pool's one connection may be the watcher's
    // for a moment, hence a short wait rather than a single request).
    wait_until("tiles again after the lock", 10, || {
        s.get(&tile).status == 200
    });
}

/// A TCP proxy to the real database that can be stopped (refusing and cutting connections)
/// and started again on the same port.
struct Proxy {
    port: u16,
    up: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
    /// Bytes carried either way: while no request runs, only the watcher's polls move it.
    traffic: Arc<AtomicU64>,
}

impl Proxy {
    fn new() -> Proxy {
        Proxy {
            port: free_port(),
            up: Arc::new(AtomicBool::new(false)),
            conns: Arc::new(Mutex::new(Vec::new())),
            traffic: Arc::new(AtomicU64::new(0)),
        }
    }

    fn target() -> String {
        let url = pg::database_url();
        let rest = url.split('@').nth(1).unwrap_or("127.0.0.1:5432/twine");
        let hostport = rest.split('/').next().unwrap_or("127.0.0.1:5432");
        if hostport.contains(':') {
            hostport.to_string()
        } else {
            format!("{hostport}:5432")
        }
    }

    fn url(&self) -> String {
        let url = pg::database_url();
        let (creds, rest) = url.split_once('@').expect("url with credentials");
        let db = rest.split_once('/').map_or("twine", |(_, d)| d);
        format!("{creds}@127.0.0.1:{}/{db}", self.port)
    }

    fn start(&self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port)).expect("proxy bind");
        listener.set_nonblocking(true).expect("nonblocking");
        self.up.store(true, Ordering::SeqCst);
        let (up, conns, target) = (self.up.clone(), self.conns.clone(), Self::target());
        let traffic = self.traffic.clone();
        std::thread::spawn(move || {
            while up.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let Ok(server) = TcpStream::connect(&target) else {
                            continue;
                        };
                        let _ = client.set_nonblocking(false);
                        if let (Ok(c2), Ok(s2)) = (client.try_clone(), server.try_clone()) {
                            if let Ok(mut list) = conns.lock() {
                                list.push(c2);
                                list.push(s2);
                            }
                        }
                        pipe(
                            client.try_clone().expect("clone"),
                            server.try_clone().expect("clone"),
                            traffic.clone(),
                        );
                        pipe(server, client, traffic.clone());
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
    }

    fn stop(&self) {
        self.up.store(false, Ordering::SeqCst);
        if let Ok(mut list) = self.conns.lock() {
            for c in list.drain(..) {
                let _ = c.shutdown(Shutdown::Both);
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }

    /// Waits, with no request running, for the watcher's next poll to pass through and end
    /// (no traffic for 200 ms): the next poll is then most of a period away.
    fn wait_for_a_poll_to_end(&self) {
        let before = self.traffic.load(Ordering::SeqCst);
        wait_until("a watcher poll", 10, || {
            self.traffic.load(Ordering::SeqCst) != before
        });
        let mut seen = self.traffic.load(Ordering::SeqCst);
        wait_until("the watcher poll to end", 10, || {
            std::thread::sleep(Duration::from_millis(200));
            let now = self.traffic.load(Ordering::SeqCst);
            std::mem::replace(&mut seen, now) == now
        });
    }
}

fn pipe(mut from: TcpStream, mut to: TcpStream, traffic: Arc<AtomicU64>) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 16384];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 || to.write_all(&buf[..n]).is_err() {
                break;
            }
            traffic.fetch_add(n as u64, Ordering::SeqCst);
        }
        let _ = to.shutdown(Shutdown::Both);
    });
}

#[test]
fn the_server_survives_the_database_going_away_and_recovers() {
    let pid = std::process::id();
    let (layer, table) = (format!("flaky{pid}"), format!("flaky_{pid}"));
    let db = pg::Db::connect();
    let _table = make_table(&db, &table);
    let proxy = Proxy::new();
    // Down at start-up: the server starts anyway.
    let s = server(
        &proxy.url(),
        &layer,
        &table,
        "[database]\npool_wait_ms = 500\nstatement_timeout_ms = 5000",
    );
    let tile = format!("/tiles/{layer}/4/8/7.png");
    let health = s.get("/health");
    // Degraded, not down: a load balancer must not take the server out for it (the memory
    // layers and cached tiles still serve), so the status stays 200.
    assert_eq!(
        health.status,
        200,
        "{}",
        String::from_utf8_lossy(&health.body)
    );
    let health = health.json();
    assert_eq!(health["status"], "degraded", "{health}");
    assert_eq!(health["database"]["status"], "unavailable");
    s.get(&tile).assert_retry_later();
    assert_eq!(
        s.get("/tiles/notyetknown/0/0/0.png").status,
        503,
        "layers of a database not yet reached"
    );

    // It comes back: the server recovers by itself.
    proxy.start();
    wait_until("recovery after start-up", 20, || s.get(&tile).status == 200);
    wait_until("health ok", 10, || {
        s.get("/health").json()["status"] == "ok"
    });
    // A tile of the declared layer (and so `/health`) can succeed before the watcher has
    // read the layer list; an unknown name is 404 once it has.
    wait_until("unknown layers to be 404", 10, || {
        s.get("/tiles/notyetknown/0/0/0.png").status == 404
    });

    // It goes away while serving: 503s, health says so, no crash.
    proxy.stop();
    wait_until("503 while down", 20, || s.get(&tile).status == 503);
    wait_until("health degraded", 10, || {
        s.get("/health").json()["status"] == "degraded"
    });
    // And back again.
    proxy.start();
    wait_until("recovery", 20, || s.get(&tile).status == 200);
    wait_until("health ok again", 10, || {
        s.get("/health").json()["status"] == "ok"
    });
    proxy.stop();
}

/// Issue 17: `/health` turns `degraded` with the first request that finds the database
/// gone, not at the watcher's next poll, and `ok` with the first request that reaches it.
#[test]
fn health_follows_the_first_failed_and_the_first_successful_contact() {
    let pid = std::process::id();
    let (layer, table) = (format!("contact{pid}"), format!("contact_{pid}"));
    let db = pg::Db::connect();
    let _table = make_table(&db, &table);
    let proxy = Proxy::new();
    proxy.start();
    let s = server(
        &proxy.url(),
        &layer,
        &table,
        "[database]\npool_wait_ms = 500\nstatement_timeout_ms = 5000",
    );
    // No memory or disk tier (see `server`): every tile below queries the database.
    wait_until("the layer to be served", 20, || {
        s.get(&format!("/tiles/{layer}/4/8/7.png")).status == 200
    });
    let health = s.get("/health").json();
    assert_eq!(health["status"], "ok", "{health}");

    // Down right after a poll, so that the watcher cannot be the one who notices: the
    // request below is the first contact since.
    proxy.wait_for_a_poll_to_end();
    proxy.stop();
    s.get(&format!("/tiles/{layer}/4/9/7.png"))
        .assert_retry_later();
    // No wait: the failed request itself made the database unavailable.
    let health = s.get("/health");
    assert_eq!(
        health.status,
        200,
        "{}",
        String::from_utf8_lossy(&health.body)
    );
    let health = health.json();
    assert_eq!(health["status"], "degraded", "{health}");
    assert_eq!(health["database"]["status"], "unavailable", "{health}");
    assert_eq!(health["database"]["checked"], true, "{health}");
    assert!(
        health["database"].get("error").is_none(),
        "state only, the cause is in the log: {health}"
    );

    // Back: the first tile that reaches the database makes it ok, again without a wait.
    proxy.start();
    wait_until("a tile again", 20, || {
        s.get(&format!("/tiles/{layer}/4/8/6.png")).status == 200
    });
    let health = s.get("/health").json();
    assert_eq!(health["status"], "ok", "{health}");
    assert_eq!(health["database"]["status"], "ok", "{health}");
    proxy.stop();
}

/// `DATABASE_URL` with `options` (URL-encoded) added to its query string.
fn url_with_options(options: &str) -> String {
    let url = pg::database_url();
    let joiner = if url.contains('?') { '&' } else { '?' };
    format!("{url}{joiner}options={options}")
}

/// Runs `serve --database-url URL` at RUST_LOG=info until its `/health` body satisfies
/// `done` (at most 20 s), then stops it: the last `/health` body if `done` held, and the log.
fn serve_until(url: &str, done: impl Fn(&str) -> bool) -> (Option<String>, String) {
    let server = ServeProcess::start_env(&["--database-url", url], &[("RUST_LOG", "info")]);
    let health = (0..200).find_map(|_| {
        std::thread::sleep(Duration::from_millis(100));
        let body = String::from_utf8_lossy(&server.get("/health").body).into_owned();
        done(&body).then_some(body)
    });
    (health, server.stop())
}

/// Whether a `/health` body says the first look at the database has ended, and failed.
fn checked_and_unavailable(health: &str) -> bool {
    health.contains("\"status\":\"unavailable\"") && health.contains("\"checked\":true")
}

#[test]
fn database_errors_go_to_the_log_in_postgres_words_and_url_options_are_kept() {
    // The URL's own session options reach every connection: a role that does not exist makes
    // every connection fail, and the log says why in PostgreSQL's words (the client library's
    // own text is only "db error"). (A read-only session no longer fails: the server only
    // reads, see postgis_readonly.rs.)
    let (health, log) = serve_until(
        &url_with_options("-c%20role%3Dtwine_no_such_role"),
        checked_and_unavailable,
    );
    assert!(health.is_some(), "the first look never failed: {log}");
    assert!(
        log.contains("\"twine_no_such_role\" does not exist"),
        "{log}"
    );

    // A database name that does not exist, at start-up (a mistake any authentication
    // method reports): the log says so, once; /health gives the state only, never what the
    // database said (it can name the database, its user or its host).
    let url = pg::database_url();
    let (server_part, _) = url
        .split_once('?')
        .map_or((url.as_str(), ""), |(a, b)| (a, b));
    let missing = match server_part.rsplit_once('/') {
        Some((base, _)) if base.contains('@') || base.contains("://") => {
            format!("{base}/no_such_database_twine")
        }
        _ => panic!("DATABASE_URL {url} has no /database part"),
    };
    let (health, log) = serve_until(&missing, checked_and_unavailable);
    let health = health.unwrap_or_else(|| panic!("/health never said unavailable: {log}"));
    assert!(!health.contains("no_such_database_twine"), "{health}");
    assert!(!health.contains("does not exist"), "{health}");
    assert_eq!(
        log.matches("database unreachable").count(),
        1,
        "logged once: {log}"
    );
    assert!(log.contains("no_such_database_twine"), "{log}");

    // A database that answers: its "already exists, skipping" notices stay out of the log,
    // even at RUST_LOG=info.
    let (reached, log) = serve_until(&url, |health| health.contains("\"status\":\"ok\""));
    assert!(
        reached.is_some(),
        "the server never reached the database: {log}"
    );
    assert!(log.contains("database reachable"), "{log}");
    assert!(!log.contains("NOTICE"), "{log}");
}

/// A tile request to `url`: its status, `Connection` header and body, or why no answer came.
fn fetch(url: String) -> std::thread::JoinHandle<Result<(u16, String, String), String>> {
    std::thread::spawn(move || {
        let answer = match ureq::get(&url).call() {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => return Err(e.to_string()),
        };
        let connection = answer.header("connection").unwrap_or_default().to_string();
        let status = answer.status();
        let body = answer.into_string().map_err(|e| e.to_string())?;
        Ok((status, connection, body))
    })
}

/// SIGTERM with two requests in flight, each waiting on a table that the test has locked:
/// the one whose lock is released after the signal finishes with its 200; the one whose
/// lock stays is answered 503 with a JSON body and `Connection: close` before the server
/// closes its connection. The process exits within the documented 10 s (the wait for it is
/// bounded at 15 s).
#[test]
fn sigterm_lets_requests_finish_and_answers_stuck_ones_503() {
    let pid = std::process::id();
    let db = pg::Db::connect();
    let (free, stuck) = (format!("stop_free_{pid}"), format!("stop_stuck_{pid}"));
    let _tables = (make_table(&db, &free), make_table(&db, &stuck));
    let dir = Scratch::new("stop");
    let config = dir.join("config.toml");
    let layers: String = [&free, &stuck]
        .iter()
        .map(|t| format!("[[layers]]\nname = \"{t}\"\ntable = \"public.{t}\"\n"))
        .collect();
    // A statement timeout far past the stop, so that only the stop can end the stuck request.
    std::fs::write(
        &config,
        format!("[database]\nstatement_timeout_ms = 120000\n{layers}"),
    )
    .expect("config");
    let url = pg::database_url();
    let config = config.to_string_lossy().into_owned();
    let mut server = ServeProcess::start(&[
        "--config",
        &config,
        "--database-url",
        &url,
        "--cache-memory",
        "0",
    ]);
    for t in [&free, &stuck] {
        let tile = format!("/tiles/{t}/4/8/7.png");
        wait_until("the layer to be served", 20, || {
            server.get(&tile).status == 200
        });
    }
    wait_until("the watcher's first poll", 20, || {
        server.get("/health").json()["status"] == "ok"
    });
    let lock = |table: &str| {
        let locker = pg::Db::connect();
        locker.batch(&format!(
            "BEGIN; LOCK TABLE public.\"{table}\" IN ACCESS EXCLUSIVE MODE"
        ));
        locker
    };
    let (free_lock, stuck_lock) = (lock(&free), lock(&stuck));
    let requests: Vec<_> = [&free, &stuck]
        .iter()
        .map(|t| fetch(format!("{}/tiles/{t}/4/8/6.png", server.base)))
        .collect();
    let waiting = || {
        db.query(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'twine-heatmap' \
             AND state = 'active' AND (position($1 in query) > 0 OR position($2 in query) > 0)",
            &[&free, &stuck],
        )[0]
        .get::<_, i64>(0)
    };
    wait_until("both requests waiting on their lock", 10, || waiting() == 2);
    // The free request's lock goes a moment after the signal, while the server stops.
    let release = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(1));
        free_lock.batch("ROLLBACK");
    });
    let signalled = Instant::now();
    let status = server.signal("TERM");
    let exit = signalled.elapsed();
    eprintln!("exit {:.2} s after SIGTERM ({status})", exit.as_secs_f64());
    release.join().expect("release");
    stuck_lock.batch("ROLLBACK");
    let mut answers = requests.into_iter().map(|r| r.join().expect("thread"));
    let (code, _, body) = answers
        .next()
        .expect("free")
        .expect("the finished request's answer");
    assert_eq!(code, 200, "{body}");
    let (code, connection, body) = answers
        .next()
        .expect("stuck")
        .expect("an answer for the stuck request, not a closed connection");
    assert_eq!(code, 503, "{body}");
    assert!(connection.eq_ignore_ascii_case("close"), "{connection:?}");
    let body: serde_json::Value = serde_json::from_str(&body).expect("a JSON error body");
    assert_eq!(body["error"], "the server is shutting down", "{body}");
    // The documented limit, with room for a loaded machine; the harness gives up at 15 s.
    assert!(exit < Duration::from_secs(13), "exit took {exit:?}");
}
