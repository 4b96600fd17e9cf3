//! Keeps HEAD requests from desynchronizing pipelined HTTP/1.1 connections on stock actix-http.
//!
//! Stock actix-http 3.20 decides whether an answer carries its body from the method of the
//! request it decoded *last*, not of the request being answered
//! (`docs/upstream-actix-http-head-pipelining.md`). With requests pipelined, a HEAD decoded while
//! an earlier answer is still pending strips that answer's body, and a request decoded behind a
//! HEAD gives the HEAD answer a body: either way the client reads the next answer from the middle
//! of another. No stock setting or hook changes that decision, so the server makes sure it is
//! never taken: the codec is never shown a HEAD request.
//!
//! - [`GuardedStream`] wraps each connection's socket and renames the method of every HEAD
//!   request to [`DISGUISED_HEAD`] as the bytes are read, before actix-http parses them; the
//!   codec then treats every answer as one with a body.
//! - [`undisguise`] (in the app's middleware, before routing) gives such a request its HEAD
//!   back, and [`without_body`] makes every HEAD answer one whose bytes on the wire are the
//!   same whatever the codec decides: its headers, with the GET answer's Content-Length, and no
//!   body.
//!
//! A client's own request with the method `HEAd` is renamed `HEA_` (a 405), so that only
//! HEAD requests ever reach the app as `HEAd`.

use actix_web::body::{BodySize, BodyStream, BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::Method;
use actix_web::rt::net::TcpStream;
use actix_web::web::Bytes;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The method a HEAD request is read as: four bytes, so the rename is made in place, and not
/// HEAD, so the codec keeps every answer's body.
pub const DISGUISED_HEAD: &[u8; 4] = b"HEAd";

/// What a client's own [`DISGUISED_HEAD`] becomes: an unknown method like any other.
const RENAMED_CLIENT_METHOD: &[u8; 4] = b"HEA_";

/// A connection's socket whose HEAD requests are read as [`DISGUISED_HEAD`].
pub struct GuardedStream {
    io: TcpStream,
    scanner: Scanner,
    /// The start of a request line too short yet to tell whether it is a HEAD: held back until
    /// more bytes arrive, since bytes handed to actix-http can no longer be renamed.
    held: [u8; 4],
    held_len: usize,
}

impl GuardedStream {
    pub fn new(io: TcpStream) -> GuardedStream {
        GuardedStream {
            io,
            scanner: Scanner::default(),
            held: [0; 4],
            held_len: 0,
        }
    }
}

impl AsyncRead for GuardedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            let start = buf.filled().len();
            let held = this.held_len;
            if buf.remaining() == 0 {
                return Poll::Ready(Ok(()));
            }
            if buf.remaining() <= held {
                // No room to read more behind the held bytes (actix-http always offers far
                // more): hand over what fits as it is, rather than stall; the request line
                // has begun, so the scanner goes on from inside it.
                let give = buf.remaining();
                buf.put_slice(&this.held[..give]);
                this.held.copy_within(give..held, 0);
                this.held_len = held - give;
                this.scanner.state = State::Head(HeadLine::request_line());
                return Poll::Ready(Ok(()));
            }
            buf.put_slice(&this.held[..held]);
            match Pin::new(&mut this.io).poll_read(cx, buf) {
                Poll::Pending => {
                    buf.set_filled(start);
                    return Poll::Pending;
                }
                Poll::Ready(Err(e)) => {
                    buf.set_filled(start);
                    return Poll::Ready(Err(e));
                }
                Poll::Ready(Ok(())) => {}
            }
            let end = buf.filled().len();
            if end == start + held {
                // End of stream: what was held is an unfinished request; actix-http answers it.
                this.held_len = 0;
                return Poll::Ready(Ok(()));
            }
            let keep = this.scanner.scan(&mut buf.filled_mut()[start..]);
            this.held[..keep].copy_from_slice(&buf.filled()[end - keep..]);
            this.held_len = keep;
            buf.set_filled(end - keep);
            if end - keep > start {
                return Poll::Ready(Ok(()));
            }
            // Everything read is held: read again (the socket registers the waker if empty).
        }
    }
}

impl AsyncWrite for GuardedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// Where the scanner is in the request stream. It follows HTTP/1.1 message framing (RFC 9112:
/// Content-Length and chunked bodies) only to find where each request line starts.
#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    /// Before a request line (empty lines before one are allowed and skipped).
    Start,
    Head(HeadLine),
    /// Bytes of a Content-Length body still to come.
    Body(u64),
    /// A chunk-size line; the size read so far, and whether an extension has begun.
    ChunkSize {
        size: u64,
        extension: bool,
    },
    ChunkData(u64),
    /// The line break after a chunk's data.
    ChunkDataEnd,
    /// Trailer fields after the last chunk, up to an empty line; whether the current line is
    /// still empty.
    Trailer {
        empty: bool,
    },
}

/// A line of a request head being read, and what the head said about its body so far.
#[derive(Debug, Clone, Copy, PartialEq)]
struct HeadLine {
    /// The line's first bytes (header names and the values that matter are short).
    text: [u8; 48],
    len: usize,
    request_line: bool,
    content_length: u64,
    chunked: bool,
}

impl HeadLine {
    fn request_line() -> HeadLine {
        HeadLine {
            text: [0; 48],
            len: 0,
            request_line: true,
            content_length: 0,
            chunked: false,
        }
    }

    /// Adds bytes of the current line; only the first `text.len()` are kept (`len` counts
    /// them all, so a long line is not mistaken for the empty one that ends the head).
    fn push(&mut self, part: &[u8]) {
        let start = self.len.min(self.text.len());
        let keep = part.len().min(self.text.len() - start);
        self.text[start..start + keep].copy_from_slice(&part[..keep]);
        self.len += part.len();
    }

    /// Takes in a finished line (without its line break); returns the state after it.
    fn end_line(mut self) -> State {
        let line = trim_cr(&self.text[..self.len.min(self.text.len())]);
        if line.is_empty() && !self.request_line {
            return if self.chunked {
                State::ChunkSize {
                    size: 0,
                    extension: false,
                }
            } else if self.content_length > 0 {
                State::Body(self.content_length)
            } else {
                State::Start
            };
        }
        if !self.request_line {
            if let Some(colon) = line.iter().position(|&b| b == b':') {
                let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
                if name.eq_ignore_ascii_case(b"content-length") {
                    // A malformed length is refused by actix-http, which closes the connection.
                    self.content_length = std::str::from_utf8(value)
                        .ok()
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0);
                } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
                    // A request's Transfer-Encoding must end in chunked (RFC 9112, 6.3), or
                    // actix-http refuses it.
                    self.chunked = true;
                }
            }
        }
        self.request_line = false;
        self.len = 0;
        State::Head(self)
    }
}

fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Follows the request stream across reads and renames HEAD methods in place.
#[derive(Debug)]
struct Scanner {
    state: State,
}

impl Default for Scanner {
    fn default() -> Self {
        Scanner {
            state: State::Start,
        }
    }
}

impl Scanner {
    /// Scans `bytes`, the next bytes of the stream, renaming methods in place; returns how many
    /// bytes at the end must be held back (the start of a request line too short to tell).
    fn scan(&mut self, bytes: &mut [u8]) -> usize {
        let mut at = 0;
        while at < bytes.len() {
            match &mut self.state {
                State::Start => {
                    if matches!(bytes[at], b'\r' | b'\n') {
                        at += 1;
                        continue;
                    }
                    let method = &mut bytes[at..];
                    if method.len() < 5 {
                        let undecided = [&b"HEAD "[..], &DISGUISED_HEAD[..]]
                            .iter()
                            .any(|m| m.starts_with(method));
                        if undecided {
                            return method.len();
                        }
                    } else if method[4] == b' ' {
                        if &method[..4] == b"HEAD" {
                            method[..4].copy_from_slice(DISGUISED_HEAD);
                        } else if &method[..4] == DISGUISED_HEAD {
                            method[..4].copy_from_slice(RENAMED_CLIENT_METHOD);
                        }
                    }
                    self.state = State::Head(HeadLine::request_line());
                }
                State::Head(line) => {
                    let rest = &bytes[at..];
                    match rest.iter().position(|&b| b == b'\n') {
                        Some(end) => {
                            line.push(&rest[..end]);
                            self.state = line.end_line();
                            at += end + 1;
                        }
                        None => {
                            line.push(rest);
                            at = bytes.len();
                        }
                    }
                }
                State::Body(left) => {
                    let take = (*left).min((bytes.len() - at) as u64);
                    *left -= take;
                    at += take as usize;
                    if *left == 0 {
                        self.state = State::Start;
                    }
                }
                State::ChunkSize { size, extension } => {
                    let b = bytes[at];
                    at += 1;
                    if b == b'\n' {
                        self.state = if *size == 0 {
                            State::Trailer { empty: true }
                        } else {
                            State::ChunkData(*size)
                        };
                    } else if !*extension {
                        match (b as char).to_digit(16) {
                            Some(d) => *size = size.saturating_mul(16).saturating_add(d.into()),
                            // An extension (`;`), whitespace or the CR: the size is complete.
                            None => *extension = true,
                        }
                    }
                }
                State::ChunkData(left) => {
                    let take = (*left).min((bytes.len() - at) as u64);
                    *left -= take;
                    at += take as usize;
                    if *left == 0 {
                        self.state = State::ChunkDataEnd;
                    }
                }
                State::ChunkDataEnd => {
                    if bytes[at] == b'\n' {
                        self.state = State::ChunkSize {
                            size: 0,
                            extension: false,
                        };
                    }
                    at += 1;
                }
                State::Trailer { empty } => {
                    let b = bytes[at];
                    at += 1;
                    if b == b'\n' {
                        self.state = if *empty {
                            State::Start
                        } else {
                            State::Trailer { empty: true }
                        };
                    } else if b != b'\r' {
                        *empty = false;
                    }
                }
            }
        }
        0
    }
}

/// Gives a request read as [`DISGUISED_HEAD`] its HEAD back; call before routing.
pub fn undisguise(req: &mut ServiceRequest) {
    if req.method().as_str().as_bytes() == DISGUISED_HEAD {
        req.head_mut().method = Method::HEAD;
    }
}

/// A HEAD answer as the same bytes whether actix-http treats it as a HEAD answer or not: the
/// GET answer's headers (Content-Length included) and an empty body of unknown length, which
/// actix-http writes as nothing at all when told not to chunk it.
pub fn without_body(res: ServiceResponse<BoxBody>) -> ServiceResponse<BoxBody> {
    res.map_body(|head, body| {
        let length = match body.size() {
            // Already nothing on the wire (204, 304), or a stream of unknown length: the
            // answer keeps its framing as actix-http writes it for a HEAD.
            BodySize::None | BodySize::Stream => return body,
            BodySize::Sized(length) => length,
        };
        head.headers
            .insert(header::CONTENT_LENGTH, HeaderValue::from(length));
        head.no_chunking(true);
        BoxBody::new(BodyStream::new(futures_util::stream::empty::<
            Result<Bytes, std::convert::Infallible>,
        >()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Scans `stream` cut into reads of `step` bytes, holding bytes back as `GuardedStream`
    /// does; returns what actix-http would read.
    fn scan_in_steps(stream: &[u8], step: usize) -> Vec<u8> {
        let mut scanner = Scanner::default();
        let (mut out, mut held) = (Vec::new(), Vec::new());
        for piece in stream.chunks(step) {
            let mut read = std::mem::take(&mut held);
            read.extend_from_slice(piece);
            let keep = scanner.scan(&mut read);
            held = read.split_off(read.len() - keep);
            out.extend(read);
        }
        out.extend(held);
        out
    }

    #[test]
    fn head_request_lines_are_renamed_wherever_the_reads_split_them() {
        let stream = b"HEAD /a HTTP/1.1\r\nHost: x\r\n\r\n\
            GET /b HTTP/1.1\r\nHost: x\r\nContent-Length: 24\r\n\r\nHEAD /in-a-body HTTP/1.1\
            \r\nHEAD /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n\
            11;ext=1\r\nHEAD / HTTP/1.1\r\n\r\n0\r\nX-Trailer: HEAD \r\n\r\n\
            HEAd /d HTTP/1.1\r\n\r\nHEADER / HTTP/1.1\r\n\r\nHEAD /e HTTP/1.1\n\n";
        let expected = b"HEAd /a HTTP/1.1\r\nHost: x\r\n\r\n\
            GET /b HTTP/1.1\r\nHost: x\r\nContent-Length: 24\r\n\r\nHEAD /in-a-body HTTP/1.1\
            \r\nHEAd /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n\
            11;ext=1\r\nHEAD / HTTP/1.1\r\n\r\n0\r\nX-Trailer: HEAD \r\n\r\n\
            HEA_ /d HTTP/1.1\r\n\r\nHEADER / HTTP/1.1\r\n\r\nHEAd /e HTTP/1.1\n\n";
        for step in 1..=stream.len() {
            assert_eq!(
                String::from_utf8_lossy(&scan_in_steps(stream, step)),
                String::from_utf8_lossy(expected),
                "reads of {step} bytes"
            );
        }
    }

    #[test]
    fn long_header_lines_are_followed_to_their_end() {
        let stream = format!(
            "GET / HTTP/1.1\r\nX-Big: {}\r\nContent-Length: 5\r\n\r\nHEAD HEAD / HTTP/1.1\r\n\r\n",
            "a".repeat(1000)
        );
        let out = scan_in_steps(stream.as_bytes(), 7);
        assert!(String::from_utf8_lossy(&out).ends_with("\r\n\r\nHEAD HEAd / HTTP/1.1\r\n\r\n"));
    }

    #[tokio::test]
    async fn a_head_split_across_reads_is_renamed_on_a_socket() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let mut client = TcpStream::connect(listener.local_addr().expect("addr"))
            .await
            .expect("connect");
        let (server, _) = listener.accept().await.expect("accept");
        let mut guarded = GuardedStream::new(server);
        // "HE" alone cannot be told from a HEAD yet: the first read must wait for the rest.
        client.write_all(b"HE").await.expect("write");
        let mut buf = [0u8; 64];
        let early = tokio::time::timeout(
            std::time::Duration::from_millis(100),
            guarded.read(&mut buf),
        )
        .await;
        assert!(
            early.is_err(),
            "the start of a method was handed over: {early:?}"
        );
        client
            .write_all(b"AD / HTTP/1.1\r\n\r\n")
            .await
            .expect("write");
        let n = guarded.read(&mut buf).await.expect("read");
        assert_eq!(&buf[..n], b"HEAd / HTTP/1.1\r\n\r\n");
    }

    #[test]
    fn bytes_are_held_only_while_they_could_start_a_head() {
        let mut scanner = Scanner::default();
        assert_eq!(scanner.scan(&mut b"HEA".to_vec()), 3);
        assert_eq!(scanner.scan(&mut b"GE".to_vec()), 0);
        let mut scanner = Scanner::default();
        assert_eq!(scanner.scan(&mut b"\r\nHE".to_vec()), 2);
    }
}
