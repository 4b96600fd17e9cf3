//! The HTTP/1.1 wire over a raw socket: pipelined requests, HEAD among them, and responses
//! larger than the socket buffers, checked byte for byte against the same requests made one at
//! a time. They guard `http::head_guard`: stock actix-http frames an answer by the method of
//! the request it read last, so without the guard a HEAD pipelined behind a request that is
//! still rendering strips that answer's body, and a request behind a HEAD gives the HEAD answer
//! a body (docs/upstream-actix-http-head-pipelining.md).

mod common;

use common::wire::{pipeline, raw_exchange, raw_exchange_within, WireResponse};
use common::TestServer;

/// Which the server sees first: the requests one at a time, or the pipeline.
#[derive(Clone, Copy, PartialEq)]
enum Order {
    /// Every answer is cached when the pipeline comes, so each is made at once.
    AloneFirst,
    /// The pipeline meets cold tiles: their answers wait for renders while the requests behind
    /// them (HEADs among them) are read.
    PipelineFirst,
}

/// Checks each pipelined answer against the same request made on its own; returns the
/// bytes of the bodies.
fn assert_same_as_one_at_a_time(
    server: &TestServer,
    requests: &[(&str, &str)],
    order: Order,
) -> usize {
    let started = std::time::Instant::now();
    let alone_first = |order| {
        (order == Order::AloneFirst).then(|| {
            let alone: Vec<_> = requests.iter().map(|(_, path)| server.get(path)).collect();
            alone
        })
    };
    let alone = alone_first(order);
    // Twice the time the server took for them one at a time: by then it has made every
    // answer, or it is waiting for the client to read.
    let answers = pipeline(server, requests, started.elapsed() * 2);
    let alone =
        alone.unwrap_or_else(|| requests.iter().map(|(_, path)| server.get(path)).collect());
    assert_eq!(answers.len(), requests.len());
    for (((method, path), answer), alone) in requests.iter().zip(&answers).zip(alone) {
        assert_eq!(answer.status, alone.status, "{method} {path}");
        assert_eq!(answer.content_length, alone.body.len(), "{method} {path}");
        if *method == "HEAD" {
            assert!(answer.body.is_empty(), "{path}");
        } else {
            assert!(
                without_request_id(&answer.body) == without_request_id(&alone.body),
                "{method} {path}: body differs"
            );
        }
    }
    answers.iter().map(|a| a.body.len()).sum()
}

/// An answer's body with an error body's `request_id` taken out: each answer has its own
/// (of the same length), and the rest must match byte for byte.
fn without_request_id(body: &[u8]) -> Vec<u8> {
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(serde_json::Value::Object(mut error)) if error.contains_key("request_id") => {
            error.remove("request_id");
            serde_json::to_vec(&error).expect("JSON")
        }
        _ => body.to_vec(),
    }
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
        Order::AloneFirst,
    );
}

#[test]
fn a_head_behind_or_before_answers_still_rendering_takes_no_body_from_them() {
    let server = TestServer::demo_with(vec![]);
    // Cold tiles render off the connection's thread, so the requests behind each are read
    // before its answer is made; stock actix-http frames that answer by the method of the
    // request it read last.
    assert_same_as_one_at_a_time(
        &server,
        &[
            ("GET", "/tiles/demo/5/16/10.png"),
            ("HEAD", "/health"),
            ("HEAD", "/tiles/demo/5/17/10.png"),
            ("GET", "/health"),
            ("GET", "/tiles/demo/5/16/11.png"),
            ("HEAD", "/tiles/demo/5/17/11.png"),
            ("HEAD", "/tiles/demo/6/33/21.png"),
            ("GET", "/layers"),
            // Last, so that on stock actix-http the HEAD is the request read last while the
            // tile's answer waits: the tile would go out without its body.
            ("GET", "/tiles/demo/6/34/21.png"),
            ("HEAD", "/health"),
        ],
        Order::PipelineFirst,
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
    let sent = assert_same_as_one_at_a_time(&server, &requests, Order::AloneFirst);
    assert!(
        sent > 5_000_000,
        "{sent} bytes are not enough to fill the buffers"
    );
}

/// An error actix-http answers by itself, before any route sees a request: stock actix-http
/// sends the status with an empty body (docs/http-api.md), then closes the connection.
fn assert_bare_error(answer: &WireResponse, status: u16) {
    assert_eq!(answer.status, status);
    assert_eq!(answer.content_length, 0);
    assert!(answer.body.is_empty());
}

#[test]
fn malformed_requests_get_a_400_even_behind_a_head() {
    let server = TestServer::demo_with(vec![]);
    // A header line with no colon.
    let answers = raw_exchange(
        &server,
        b"GET /health HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n",
        &[false],
    );
    assert_bare_error(&answers[0], 400);
    // A bad request line behind a pipelined HEAD: the HEAD's answer has no body, and the 400
    // is framed by its own Content-Length.
    let answers = raw_exchange(
        &server,
        b"HEAD /tiles/demo/0/0/0.png HTTP/1.1\r\nHost: x\r\n\r\nGET /health HTTP/9.9\r\n\r\n",
        &[true, false],
    );
    assert_eq!(answers[0].status, 200);
    assert!(answers[0].content_length > 0);
    assert_bare_error(&answers[1], 400);
}

#[test]
fn an_oversized_request_head_gets_a_431() {
    let server = TestServer::demo_with(vec![]);
    let request = format!(
        "GET /health HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(140_000)
    );
    let answers = raw_exchange(&server, request.as_bytes(), &[false]);
    assert_bare_error(&answers[0], 431);
}

#[test]
fn a_request_head_that_never_ends_gets_a_408() {
    let server = TestServer::demo_with(vec![]);
    // actix-http's client request timeout (5 s) runs out while the head is unfinished.
    let answers = raw_exchange(&server, b"GET /health HTTP/1.1\r\nHost: x\r\n", &[false]);
    assert_bare_error(&answers[0], 408);
}

#[test]
fn a_client_method_spelled_like_the_disguised_head_is_not_a_head() {
    let server = TestServer::demo_with(vec![]);
    // The guard reads HEAD as `HEAd`; a client's own `HEAd` must stay an unknown method (a
    // 405 with its JSON body), not become a HEAD answer without one.
    let answers = pipeline(
        &server,
        &[("HEAd", "/health"), ("GET", "/health")],
        std::time::Duration::ZERO,
    );
    assert_eq!(answers[0].status, 405);
    assert!(!answers[0].body.is_empty());
    assert_eq!(answers[1].status, 200);
}

/// A 400 JSON answer naming the request body, as every GET or HEAD with one gets.
fn assert_body_refused(answer: &WireResponse, head: bool) {
    assert_eq!(answer.status, 400);
    assert!(answer.content_length > 0);
    if !head {
        let body: serde_json::Value = serde_json::from_slice(&answer.body).expect("JSON error");
        assert_eq!(body["parameter"], "body", "{body}");
    }
}

#[test]
fn a_request_body_that_never_comes_does_not_hold_the_connection() {
    let server = TestServer::demo_with(vec![]);
    // Generous: the server closes within its client disconnect timeout (1 s) of answering;
    // a connection that waits for the body stays open until the client gives up.
    let limit = std::time::Duration::from_secs(15);
    // Heads announcing a body that never comes: chunked without a chunk, a Content-Length
    // with few bytes behind it, and a chunked body stopped mid-way.
    for (request, head) in [
        (&b"GET /tiles/demo/0/0/0.png HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"[..], false),
        (b"HEAD /health HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc", true),
        (b"GET /points/demo?bbox=-1,-1,1,1 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", false),
    ] {
        let answers = raw_exchange_within(&server, request, &[head], limit);
        assert_body_refused(&answers[0], head);
    }
    // Other methods get their 405, and the connection closes just the same.
    for request in [
        &b"POST /tiles/demo/0/0/0.png HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nslow"[..],
        b"PUT /layers HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\nslow",
    ] {
        let answers = raw_exchange_within(&server, request, &[false], limit);
        assert_eq!(answers[0].status, 405);
    }
    // A GET whose head says its body is empty is an ordinary GET.
    let answers = pipeline(&server, &[("GET", "/health")], std::time::Duration::ZERO);
    assert_eq!(answers[0].status, 200);
    let answers = raw_exchange(
        &server,
        b"GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        &[false],
    );
    assert_eq!(answers[0].status, 200);
}
