//! Answers that are safe to put on the internet: links never follow a crafted `Host`, every
//! answer says `nosniff` and carries a request id, error bodies name that id, and the web map
//! runs under a strict Content-Security-Policy.

mod common;

use common::{Reply, TestServer};
use twine_heatmap::http::webmap::WEB_MAP_CSP;

const EVIL_HOSTS: &[&str] = &[
    "evil.example/x?y=",
    "evil.example:80/x",
    "user@evil.example",
    "evil.example:99999",
    "[::1",
];

fn with_host(s: &TestServer, path: &str, host: &str) -> Reply {
    s.request("GET", path, &[("Host", host)])
}

/// Every place a link is built from the request.
const LINK_PATHS: &[&str] = &[
    "/layers",
    "/tiles/demo.json",
    "/twine.heatmap?png=true&bounds=1,2,3,4&imgSize=64,64",
];

#[test]
fn links_follow_only_a_plain_host_and_port() {
    let s = TestServer::demo_with(vec![]);
    for path in LINK_PATHS {
        for host in EVIL_HOSTS {
            let reply = with_host(&s, path, host);
            assert_eq!(reply.status, 400, "{path} with Host {host:?}");
            let body = reply.json();
            assert_eq!(body["error"], "invalid header `Host`", "{body}");
            assert!(
                !String::from_utf8_lossy(&reply.body).contains("evil.example"),
                "the crafted host is not echoed: {body}"
            );
        }
        // A proxy's forwarded host is held to the same rule.
        let reply = s.request("GET", path, &[("X-Forwarded-Host", "evil.example/x?y=")]);
        assert_eq!(reply.status, 400, "{path} with X-Forwarded-Host");
        let reply = s.request("GET", path, &[("X-Forwarded-Proto", "javascript")]);
        assert_eq!(reply.status, 400, "{path} with X-Forwarded-Proto");
        assert_eq!(reply.json()["error"], "invalid header `X-Forwarded-Proto`");
    }
    // Host names, IP literals and ports are links' bases as they are.
    for host in ["maps.example.org:8443", "127.0.0.1", "[::1]:8080"] {
        let reply = with_host(&s, "/tiles/demo.json", host);
        assert_eq!(reply.status, 200, "{host}");
        let tiles = reply.json()["tiles"][0]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(
            tiles.starts_with(&format!("http://{host}/tiles/demo/")),
            "{tiles}"
        );
    }
}

#[test]
fn a_public_url_makes_the_host_irrelevant() {
    let mut state = TestServer::demo_state(vec![]);
    state.public_url = Some("https://heat.example.org/".into());
    let s = TestServer::start(state);
    for path in LINK_PATHS {
        let reply = with_host(&s, path, "evil.example/x?y=");
        assert_eq!(reply.status, 200, "{path}");
        let text = String::from_utf8_lossy(&reply.body).into_owned();
        assert!(text.contains("https://heat.example.org/"), "{text}");
        assert!(!text.contains("evil"), "{text}");
    }
}

fn header<'a>(reply: &'a Reply, name: &str) -> &'a str {
    reply
        .header(name)
        .unwrap_or_else(|| panic!("no {name} on a {} answer", reply.status))
}

#[test]
fn every_answer_says_nosniff_and_carries_a_request_id() {
    // As `serve` builds it, with its memory tier (whose hits skip routing).
    let s = TestServer::from_args(&twine_heatmap::app::ServeArgs::default());
    let ok = s.get("/tiles/demo/2/2/1.png");
    assert_eq!(ok.status, 200);
    let etag = header(&ok, "etag").to_string();
    // Memory hit, answered before routing.
    let hit = s.get("/tiles/demo/2/2/1.png");
    assert_eq!(hit.header("x-cache"), Some("hit-memory"));
    let not_modified = s.request("GET", "/tiles/demo/2/2/1.png", &[("If-None-Match", &etag)]);
    assert_eq!(not_modified.status, 304);
    let not_found = s.get("/nowhere");
    assert_eq!(not_found.status, 404);
    let bad = s.get("/tiles/demo/2/2/1.png?radius=0");
    assert_eq!(bad.status, 400);
    let page = s.get("/");
    assert_eq!(page.status, 200);
    let mut ids = Vec::new();
    for reply in [&ok, &hit, &not_modified, &not_found, &bad, &page] {
        assert_eq!(header(reply, "x-content-type-options"), "nosniff");
        ids.push(header(reply, "x-request-id").to_string());
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 6, "each answer has its own id: {ids:?}");
    // Error bodies name the id of their answer.
    for reply in [&not_found, &bad] {
        assert_eq!(
            reply.json()["request_id"],
            header(reply, "x-request-id"),
            "{}",
            reply.json()
        );
    }
    // A sane id from the client or a proxy is kept; anything else is replaced.
    let given = s.request(
        "GET",
        "/tiles/demo/2/2/1.png?radius=0",
        &[("X-Request-Id", "edge-42.a_b:c")],
    );
    assert_eq!(header(&given, "x-request-id"), "edge-42.a_b:c");
    assert_eq!(given.json()["request_id"], "edge-42.a_b:c");
    let odd = s.request(
        "GET",
        "/nowhere",
        &[("X-Request-Id", "<script>alert(1)</script>")],
    );
    let id = header(&odd, "x-request-id");
    assert!(!id.contains('<') && !id.is_empty(), "{id}");
}

#[test]
fn the_web_map_runs_under_a_strict_content_security_policy() {
    let s = TestServer::demo_with(vec![]);
    let page = s.get("/");
    let csp = header(&page, "content-security-policy");
    assert_eq!(csp, WEB_MAP_CSP);
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(directive), "{directive} in {csp}");
    }
    assert!(!csp.contains("unsafe"), "{csp}");
    // What lets the page work under it: no inline script, style or handler in the page
    // (tests/browser.rs runs it in Chromium, which reports any violation as a console error).
    let html = String::from_utf8_lossy(&page.body).into_owned();
    assert!(!html.contains("<style"), "inline style block");
    assert!(!html.contains(" style="), "inline style attribute");
    assert!(
        !html.contains(" onclick=") && !html.contains(" onload="),
        "inline handler"
    );
    for script in html.split("<script").skip(1) {
        let tag = script.split('>').next().unwrap_or_default();
        assert!(
            tag.contains("src=\"/web/"),
            "inline or foreign script: <script{tag}>"
        );
    }
    // The page's files themselves carry no policy: they are not documents.
    let js = s.get("/web/app.js");
    assert_eq!(js.status, 200);
    assert_eq!(js.header("content-security-policy"), None);
}
