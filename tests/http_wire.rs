//! The HTTP/1.1 wire over a raw socket: pipelined requests, HEAD, and responses larger than
//! the socket buffers, checked byte for byte against the same requests made one at a time.
//! They guard the vendored actix-http's pass-through of large bodies (`vendor/README.md`),
//! which writes a body from its own buffer, after the headers queued before it.

mod common;

use common::TestServer;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// One response as read off the wire.
#[derive(Debug)]
struct WireResponse {
    status: u16,
    content_length: usize,
    body: Vec<u8>,
}

/// Reads one response from `reader`; a HEAD answer has its Content-Length but no body.
fn read_response(reader: &mut BufReader<TcpStream>, head: bool) -> WireResponse {
    let mut status_line = String::new();
    reader.read_line(&mut status_line).expect("status line");
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let mut content_length = None;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).expect("header line");
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':').expect("header");
        assert!(
            !name.eq_ignore_ascii_case("transfer-encoding"),
            "a sized body is never chunked: {line}"
        );
        if name.eq_ignore_ascii_case("content-length") {
            content_length = Some(value.trim().parse().expect("content-length"));
        }
    }
    let content_length = content_length.expect("every answer here has a Content-Length");
    let mut body = vec![0; if head { 0 } else { content_length }];
    reader.read_exact(&mut body).expect("body");
    WireResponse {
        status,
        content_length,
        body,
    }
}

/// Sends every request in one write, waits `pause`, then reads the answers in order.
fn pipeline(server: &TestServer, requests: &[(&str, &str)], pause: Duration) -> Vec<WireResponse> {
    let addr = server.base.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    let wire: String = requests
        .iter()
        .map(|(method, path)| format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n"))
        .collect();
    stream.write_all(wire.as_bytes()).expect("write");
    // Let the server fill its send buffer and the client's receive buffer before reading,
    // so large answers meet a full socket and are written in parts.
    std::thread::sleep(pause);
    let mut reader = BufReader::new(stream);
    requests
        .iter()
        .map(|(method, _)| read_response(&mut reader, *method == "HEAD"))
        .collect()
}

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
