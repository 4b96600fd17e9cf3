//! Scale-out as `deploy/` ships it: two servers on one PostGIS, each with its own cache
//! folder, behind Debian's nginx running `deploy/nginx/twine.conf`. A write reaches both
//! within 2 s, `kill -9` of one under load loses no request, and a restart comes back warm.

mod common;

use common::pg::{self, TestLayer};
use common::process::{free_port, ServeProcess};
use common::scratch::{files_under, Scratch};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Debian's nginx (scripts/test.sh installs it).
fn nginx_binary() -> PathBuf {
    ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("nginx is not installed: scripts/test.sh installs it (apt-get install nginx)")
}

/// nginx in the foreground with the shipped server file, its upstreams and port rewritten
/// for this test; stopped when dropped.
struct Nginx {
    child: Child,
    base: String,
    dir: PathBuf,
}

impl Nginx {
    fn start(dir: &Path, upstreams: [&str; 2]) -> Nginx {
        let shipped = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/nginx/twine.conf"),
        )
        .expect("deploy/nginx/twine.conf");
        let port = free_port();
        let site = shipped
            .replace("server twine-a:8080", &format!("server {}", upstreams[0]))
            .replace("server twine-b:8080", &format!("server {}", upstreams[1]))
            .replace("listen 80;", &format!("listen 127.0.0.1:{port};"));
        assert_ne!(
            site, shipped,
            "the shipped file no longer has the expected lines"
        );
        std::fs::write(dir.join("twine.conf"), site).expect("write site");
        let temp = |name: &str| {
            let path = dir.join(name);
            std::fs::create_dir_all(&path).expect("temp dir");
            // nginx's workers drop root for `nobody`; they buffer large answers here.
            let _ = Command::new("chmod").arg("777").arg(&path).status();
            path.display().to_string()
        };
        let main = format!(
            "daemon off;\nworker_processes 1;\npid {dir}/nginx.pid;\nerror_log {dir}/error.log warn;\n\
             events {{ worker_connections 1024; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {body};\n  proxy_temp_path {proxy};\n\
             fastcgi_temp_path {fastcgi};\n  uwsgi_temp_path {uwsgi};\n  scgi_temp_path {scgi};\n\
             include {dir}/twine.conf;\n}}\n",
            dir = dir.display(),
            body = temp("client_body"),
            proxy = temp("proxy"),
            fastcgi = temp("fastcgi"),
            uwsgi = temp("uwsgi"),
            scgi = temp("scgi"),
        );
        let conf = dir.join("nginx.conf");
        std::fs::write(&conf, main).expect("write nginx.conf");
        let child = Command::new(nginx_binary())
            .arg("-p")
            .arg(dir)
            .arg("-e")
            .arg(dir.join("error.log"))
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nginx");
        let nginx = Nginx {
            child,
            base: format!("http://127.0.0.1:{port}"),
            dir: dir.to_path_buf(),
        };
        common::wait_until("nginx to answer", 20, || {
            ureq::get(&format!("{}/health", nginx.base)).call().is_ok()
        });
        nginx
    }

    fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM: the master stops its workers, then exits. A SIGKILL would leave the
        // workers running on their own, orphaned.
        common::process::signal(&self.child, "TERM");
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The ETag of a tile straight from one server.
fn etag(base: &str, path: &str) -> String {
    let reply = ureq::get(&format!("{base}{path}"))
        .call()
        .unwrap_or_else(|e| panic!("{base}{path}: {e}"));
    reply.header("ETag").expect("an ETag").to_string()
}

/// Tiles rendered by a server so far, from its /metrics.
fn rendered(base: &str) -> f64 {
    let text = ureq::get(&format!("{base}/metrics"))
        .call()
        .expect("metrics")
        .into_string()
        .expect("text");
    text.lines()
        .filter(|line| line.starts_with("twine_tiles_rendered_total"))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn two_servers_behind_nginx_share_writes_survive_a_kill_and_restart_warm() {
    let db = pg::Db::connect();
    let layer = TestLayer::new(&db, "scaleout");
    let scratch = Scratch::new("scale-out");
    // 20,000 points around Lyon, imported the way users load data.
    let mut csv = String::from("lon,lat\n");
    for i in 0..20_000 {
        let (a, r) = (f64::from(i) * 2.399_963, f64::from(i % 997) / 997.0);
        csv.push_str(&format!(
            "{:.6},{:.6}\n",
            4.85 + 0.6 * r * a.cos(),
            45.75 + 0.4 * r * a.sin()
        ));
    }
    let points = scratch.file("lyon.csv", &csv);
    pg::import(&layer.name, &points, &[]);

    let url = pg::database_url();
    let cache = |name: &str| scratch.join(name).display().to_string();
    let (cache_a, cache_b) = (cache("cache-a"), cache("cache-b"));
    let bind_a = format!("127.0.0.1:{}", free_port());
    let args_a = ["--database-url", url.as_str(), "--cache-dir", &cache_a];
    let args_b = ["--database-url", url.as_str(), "--cache-dir", &cache_b];
    let mut a = ServeProcess::start_at(&bind_a, &args_a, &[]);
    let b = ServeProcess::start(&args_b);
    let nginx_dir = scratch.join("nginx");
    std::fs::create_dir_all(&nginx_dir).expect("nginx dir");
    let nginx = Nginx::start(
        &nginx_dir,
        [
            a.base.trim_start_matches("http://"),
            b.base.trim_start_matches("http://"),
        ],
    );
    let tile = format!("/tiles/{}/9/262/182.png", layer.name);
    common::wait_until("both servers to serve the layer", 20, || {
        [&a.base, &b.base]
            .iter()
            .all(|base| ureq::get(&format!("{base}{tile}")).call().is_ok())
    });

    // 1. A write reaches both within 2 s: each server's tile changes (a new ETag).
    let before = etag(&a.base, &tile);
    assert_eq!(
        etag(&b.base, &tile),
        before,
        "equal tiles from both servers"
    );
    db.batch(&format!(
        "INSERT INTO {} (geom) SELECT ST_Transform(ST_SetSRID(ST_MakePoint(4.80 + i * 0.0001, 45.76), 4326), 3857) FROM generate_series(1, 3000) i",
        layer.table()
    ));
    let written = Instant::now();
    let mut seen = [None, None];
    while seen.iter().any(Option::is_none) && written.elapsed() < Duration::from_secs(10) {
        for (i, base) in [&a.base, &b.base].into_iter().enumerate() {
            if seen[i].is_none() && etag(base, &tile) != before {
                seen[i] = Some(written.elapsed());
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    for (name, at) in ["a", "b"].iter().zip(seen) {
        let at = at.unwrap_or_else(|| panic!("server {name} still serves the old tile after 10 s"));
        assert!(
            at <= Duration::from_secs(2),
            "server {name} saw the write after {at:?}"
        );
    }
    eprintln!(
        "the write reached a after {:?}, b after {:?}",
        seen[0], seen[1]
    );
    assert_eq!(etag(&a.base, &tile), etag(&b.base, &tile));

    // 2. kill -9 of one server under load through nginx loses no request.
    let paths: Arc<Vec<String>> = Arc::new(
        (0..4u32)
            .flat_map(|dz| {
                let z = 6 + dz;
                let (x0, y0) = (262 >> (9 - z), 182 >> (9 - z));
                (0..9).map(move |i| (z, x0 + i % 3, y0 + i / 3))
            })
            .enumerate()
            .map(|(i, (z, x, y))| {
                let style = ["", "?style=dots", "?style=density"][i % 3];
                format!("/tiles/{}/{z}/{x}/{y}.png{style}", layer.name)
            })
            .chain([format!("/points/{}/9/262/182.json", layer.name)])
            .collect(),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let (answered, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let failures = Arc::new(std::sync::Mutex::new(Vec::new()));
    let clients: Vec<_> = (0..8)
        .map(|client| {
            let (paths, stop, answered, failed, failures) = (
                paths.clone(),
                stop.clone(),
                answered.clone(),
                failed.clone(),
                failures.clone(),
            );
            let base = nginx.base.clone();
            std::thread::spawn(move || {
                let agent = ureq::AgentBuilder::new()
                    .timeout(Duration::from_secs(60))
                    .build();
                let mut i = client;
                while !stop.load(Ordering::Relaxed) {
                    let path = &paths[i % paths.len()];
                    i += 7;
                    match agent.get(&format!("{base}{path}")).call() {
                        Ok(reply) if reply.status() == 200 => {
                            answered.fetch_add(1, Ordering::Relaxed);
                        }
                        other => {
                            failed.fetch_add(1, Ordering::Relaxed);
                            let what = match other {
                                Ok(reply) => format!("status {}", reply.status()),
                                Err(e) => e.to_string(),
                            };
                            failures
                                .lock()
                                .expect("lock")
                                .push(format!("{path}: {what}"));
                        }
                    }
                }
            })
        })
        .collect();
    common::wait_until("both servers to take part in the load", 30, || {
        answered.load(Ordering::Relaxed) > 50 && rendered(&a.base) > 0.0 && rendered(&b.base) > 0.0
    });
    // Tiles of a reach its disk tier before it dies, for the restart below.
    common::wait_until("server a's disk tier to hold tiles", 20, || {
        !files_under(Path::new(&cache_a)).is_empty()
    });
    let before_kill = answered.load(Ordering::Relaxed);
    a.signal("KILL");
    let killed = Instant::now();
    common::wait_until("requests after the kill", 30, || {
        answered.load(Ordering::Relaxed) > before_kill + 200
    });
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.join().expect("client thread");
    }
    let failures = failures.lock().expect("lock").clone();
    eprintln!(
        "{} requests through nginx, {} after the kill, {} failed",
        answered.load(Ordering::Relaxed),
        answered.load(Ordering::Relaxed) - before_kill,
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {} requests failed after kill -9 (killed {:?} before the end): {:?}\nnginx: {}",
        failed.load(Ordering::Relaxed),
        answered.load(Ordering::Relaxed) + failed.load(Ordering::Relaxed),
        killed.elapsed(),
        &failures[..failures.len().min(10)],
        nginx.error_log()
    );

    // 3. A restart comes back warm: the tiles a rendered before it died come from its disk.
    let a = ServeProcess::start_at(&bind_a, &args_a, &[]);
    let warm: Vec<String> = paths
        .iter()
        .filter(|path| path.starts_with("/tiles/"))
        .map(|path| {
            let reply = ureq::get(&format!("{}{path}", a.base))
                .call()
                .unwrap_or_else(|e| panic!("{path}: {e}"));
            reply.header("X-Cache").unwrap_or_default().to_string()
        })
        .collect();
    assert!(
        warm.iter().any(|x| x == "hit-disk"),
        "no tile came from the disk tier after the restart: {warm:?}"
    );
    // And nginx sends to it again.
    assert_eq!(
        ureq::get(&format!("{}{tile}", nginx.base))
            .call()
            .expect("tile through nginx")
            .status(),
        200
    );
    drop(b);
}
