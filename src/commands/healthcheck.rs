//! `healthcheck`, and the minimal HTTP client it shares with `cache stats --server`.

/// Exit 0 when `url` answers 200.
pub fn run(url: &str) -> Result<(), String> {
    let (status, _) = http_request(url)?;
    if status.split_whitespace().nth(1) == Some("200") {
        Ok(())
    } else {
        Err(format!("unhealthy: {status}"))
    }
}

/// The body of `url` when it answers 200 (`cache stats --server` reads /metrics with it).
pub fn http_get(url: &str) -> Result<String, String> {
    let (status, body) = http_request(url)?;
    if status.split_whitespace().nth(1) == Some("200") {
        Ok(body)
    } else {
        Err(format!("answered {status:?}"))
    }
}

/// A minimal HTTP/1.0 GET with the standard library, so the container needs no curl.
/// Returns the status line and the body.
fn http_request(url: &str) -> Result<(String, String), String> {
    use std::io::{Read, Write};
    let rest = url
        .strip_prefix("http://")
        .ok_or("only http:// URLs are supported")?;
    let (host, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_string()), |(h, p)| (h, format!("/{p}")));
    let timeout = std::time::Duration::from_secs(3);
    let addr = std::net::ToSocketAddrs::to_socket_addrs(host)
        .map_err(|e| format!("{host}: {e}"))?
        .next()
        .ok_or_else(|| format!("{host}: no address"))?;
    let mut stream =
        std::net::TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("{host}: {e}"))?;
    stream
        .set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").map_err(|e| e.to_string())?;
    let mut response = String::new();
    stream.read_to_string(&mut response).map_err(|e| {
        // A read timeout shows as WouldBlock on Unix: name what happened instead.
        if matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ) {
            format!("{host}: no answer within {} s", timeout.as_secs())
        } else {
            format!("{host}: {e}")
        }
    })?;
    let status = response.lines().next().unwrap_or_default().to_string();
    let body = response
        .split_once("\r\n\r\n")
        .map_or(String::new(), |(_, body)| body.to_string());
    Ok((status, body))
}
