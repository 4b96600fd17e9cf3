//! HTTP/1.1 over a raw socket, for tests of the wire itself: pipelined requests sent in one
//! write, and answers read back in order.

use super::TestServer;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// One response as read off the wire.
#[derive(Debug)]
pub struct WireResponse {
    pub status: u16,
    pub content_length: usize,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

/// Reads one response from `reader`; a HEAD answer has its Content-Length but no body.
pub fn read_response(reader: &mut BufReader<TcpStream>, head: bool) -> WireResponse {
    let mut status_line = String::new();
    reader.read_line(&mut status_line).expect("status line");
    // Strictly at the start of the line: a body left in the stream by a misframed answer
    // must not pass for a status line that follows it.
    let status = status_line
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "bad status line {:?}",
                &status_line[..status_line.len().min(200)]
            )
        });
    let mut content_length = None;
    let mut content_type = None;
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
        if name.eq_ignore_ascii_case("content-type") {
            content_type = Some(value.trim().to_string());
        }
    }
    let content_length = content_length.expect("every answer here has a Content-Length");
    let mut body = vec![0; if head { 0 } else { content_length }];
    reader.read_exact(&mut body).expect("body");
    WireResponse {
        status,
        content_length,
        content_type,
        body,
    }
}

/// A connection to `server` (and its address, for the Host header) whose reads give up after
/// `limit`.
fn connect_within(server: &TestServer, limit: Duration) -> (&str, TcpStream) {
    let addr = server.base.trim_start_matches("http://");
    let stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(limit)).expect("timeout");
    (addr, stream)
}

/// A connection to `server` whose reads give up after a minute.
fn connect(server: &TestServer) -> (&str, TcpStream) {
    connect_within(server, Duration::from_secs(60))
}

/// Sends every request in one write, waits `pause`, then reads the answers in order.
pub fn pipeline(
    server: &TestServer,
    requests: &[(&str, &str)],
    pause: Duration,
) -> Vec<WireResponse> {
    let (addr, mut stream) = connect(server);
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

/// Writes `bytes` as they are, then reads the answers to `heads` (one flag per answer: whether
/// it answers a HEAD) and checks that the server then closes the connection.
pub fn raw_exchange(server: &TestServer, bytes: &[u8], heads: &[bool]) -> Vec<WireResponse> {
    raw_exchange_within(server, bytes, heads, Duration::from_secs(60))
}

/// [`raw_exchange`], where each read gives up after `limit`: the server must answer and
/// close by itself, whatever the client leaves unsent.
pub fn raw_exchange_within(
    server: &TestServer,
    bytes: &[u8],
    heads: &[bool],
    limit: Duration,
) -> Vec<WireResponse> {
    let (_, mut stream) = connect_within(server, limit);
    stream.write_all(bytes).expect("write");
    let mut reader = BufReader::new(stream);
    let answers = heads
        .iter()
        .map(|head| read_response(&mut reader, *head))
        .collect();
    let mut rest = Vec::new();
    match reader.read_to_end(&mut rest) {
        Ok(_) => {}
        // A close with request bytes left unread in the server's socket is a reset.
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("the server did not close the connection: {e}"),
    }
    assert!(
        rest.is_empty(),
        "unexpected bytes: {:?}",
        String::from_utf8_lossy(&rest)
    );
    answers
}
