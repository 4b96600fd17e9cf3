//! The HTTP/1.1 wire over a raw socket: pipelined requests, HEAD, and responses larger than
//! the socket buffers, checked byte for byte against the same requests made one at a time.
//! They guard the vendored actix-http's pass-through of large bodies (`vendor/README.md`),
//! which writes a body from its own buffer, after the headers queued before it.

mod common;

use common::wire::{pipeline, raw_exchange, WireResponse};
use common::TestServer;

/// Checks each pipelined answer against the same request made on its own; returns the
/// bytes of the bodies.
fn assert_same_as_one_at_a_time(server: &TestServer, requests: &[(&str, &str)]) -> usize {
    let started = std::time::Instant::now();
    let alone: Vec<_> = requests.iter().map(|(_, path)| server.get(path)).collect();
    // Twice the time the server took for them one at a time: by then it has made every
    // answer, or it is waiting for the client to read.
    let answers = pipeline(server, requests, started.elapsed() * 2);
    assert_eq!(answers.len(), requests.len());
    for (((method, path), answer), alone) in requests.iter().zip(&answers).zip(alone) {
        assert_eq!(answer.status, alone.status, "{method} {path}");
        assert_eq!(answer.content_length, alone.body.len(), "{method} {path}");
        if *method == "HEAD" {
            assert!(answer.body.is_empty(), "{path}");
        } else {
            assert!(answer.body == alone.body, "{method} {path}: body differs");
        }
    }
    answers.iter().map(|a| a.body.len()).sum()
}

#[test]
fn pipelined_requests_come_back_in_order_and_byte_for_byte() {
    let server = TestServer::demo_with(vec![]);
    // Large tiles (passed through), an empty tile and JSON (small: copied), a HEAD, errors.
    assert_same_as_one_at_a_time(
        &server,
        &[
            ("GET", "/tiles/demo/0/0/0.png"),
            ("GET", "/tiles/demo/3/4/2.png"),
            ("GET", "/tiles/demo/12/5/5.png"),
            ("HEAD", "/tiles/demo/3/1/2.png"),
            ("GET", "/tiles/demo/2/1/1@2x.png"),
            ("GET", "/health"),
            ("GET", "/tiles/demo/99/0/0.png"),
            ("GET", "/tiles/nope/0/0/0.png"),
            ("GET", "/tiles/demo/1/0/0.png?scheme=fire"),
            ("GET", "/tiles/demo/0/0/0.png"),
        ],
    );
}

#[test]
fn answers_larger_than_the_socket_buffers_arrive_whole_and_the_connection_stays_usable() {
    let server = TestServer::demo_with(vec![]);
    // About 6 MB of point lists and an overlay: more than the server's largest send buffer
    // (tcp_wmem's 4 MB) plus the client's receive buffer while it is not read, so the
    // server's writes must stop part-way and resume, with the next answers queued behind.
    let mut paths: Vec<String> = [
        50_000, 45_000, 40_000, 35_000, 30_000, 25_000, 50_000, 45_000,
    ]
    .iter()
    .map(|limit| format!("/points/demo?bbox=-180,-85,180,85&limit={limit}"))
    .collect();
    paths.push("/heatmap.png?layer=demo&bbox=-180,-85,180,85&width=1024&height=1024".into());
    let mut requests: Vec<(&str, &str)> = paths.iter().map(|p| ("GET", p.as_str())).collect();
    requests.push(("HEAD", paths[0].as_str()));
    requests.push(("GET", "/tiles/demo/0/0/0.png"));
    let sent = assert_same_as_one_at_a_time(&server, &requests);
    assert!(
        sent > 5_000_000,
        "{sent} bytes are not enough to fill the buffers"
    );
}

/// The JSON error body of a protocol error: `error` and `detail` (which must mention `what`).
fn assert_json_error(answer: &WireResponse, status: u16, error: &str, what: &str) {
    assert_eq!(answer.status, status);
    assert_eq!(answer.content_type.as_deref(), Some("application/json"));
    let body: serde_json::Value = serde_json::from_slice(&answer.body).expect("JSON body");
    assert_eq!(body["error"], error, "{body}");
    let detail = body["detail"].as_str().expect("detail");
    assert!(detail.contains(what), "{detail}");
}

#[test]
fn malformed_requests_get_a_json_400_even_behind_a_head() {
    let server = TestServer::demo_with(vec![]);
    // A header line with no colon.
    let answers = raw_exchange(
        &server,
        b"GET /health HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n",
        &[false],
    );
    assert_json_error(&answers[0], 400, "malformed HTTP request", "invalid Header");
    // A bad request line behind a pipelined HEAD: the HEAD's answer has no body, the 400's has.
    let answers = raw_exchange(
        &server,
        b"HEAD /tiles/demo/0/0/0.png HTTP/1.1\r\nHost: x\r\n\r\nGET /health HTTP/9.9\r\n\r\n",
        &[true, false],
    );
    assert_eq!(answers[0].status, 200);
    assert!(answers[0].content_length > 0);
    assert_json_error(&answers[1], 400, "malformed HTTP request", "HTTP version");
}

#[test]
fn an_oversized_request_head_gets_a_json_431() {
    let server = TestServer::demo_with(vec![]);
    let request = format!(
        "GET /health HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(140_000)
    );
    let answers = raw_exchange(&server, request.as_bytes(), &[false]);
    assert_json_error(
        &answers[0],
        431,
        "request header fields too large",
        "128 KiB",
    );
}

#[test]
fn a_request_head_that_never_ends_gets_a_json_408() {
    let server = TestServer::demo_with(vec![]);
    // actix-web's client request timeout (5 s) runs out while the head is unfinished.
    let answers = raw_exchange(&server, b"GET /health HTTP/1.1\r\nHost: x\r\n", &[false]);
    assert_json_error(
        &answers[0],
        408,
        "request timeout",
        "did not arrive in time",
    );
}
