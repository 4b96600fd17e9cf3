//! Which `Host` values may name this server in links: a host name or IP literal and an
//! optional port, nothing else (no path, query, user info or spaces).

/// Whether `text` is `host[:port]`: a DNS name (letters, digits, `-` and `_` in dot-separated
/// labels of 1 to 63 characters, 253 in all), an IPv4 literal, or a bracketed IPv6 literal,
/// then optionally `:` and a port of 1 to 65535.
pub fn is_host_and_port(text: &str) -> bool {
    let (host_ok, port) = match text.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((v6, after)) => {
                let port = match after {
                    "" => None,
                    _ => match after.strip_prefix(':') {
                        Some(port) => Some(port),
                        None => return false,
                    },
                };
                (v6.parse::<std::net::Ipv6Addr>().is_ok(), port)
            }
            None => return false,
        },
        None => match text.rsplit_once(':') {
            Some((host, port)) => (is_dns_name(host), Some(port)),
            None => (is_dns_name(text), None),
        },
    };
    host_ok && port.map_or(true, is_port)
}

/// 1 to 65535, in decimal digits only.
fn is_port(p: &str) -> bool {
    (1..=5).contains(&p.len())
        && p.bytes().all(|b| b.is_ascii_digit())
        && p.parse::<u16>().is_ok_and(|n| n > 0)
}

fn is_dns_name(host: &str) -> bool {
    (1..=253).contains(&host.len())
        && host.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

#[cfg(test)]
mod tests {
    use super::is_host_and_port;

    #[test]
    fn hosts_and_ports_only() {
        for good in [
            "localhost",
            "localhost:8080",
            "heat.example.org",
            "127.0.0.1:1",
            "[::1]",
            "[::1]:8080",
            "[2001:db8::7]:65535",
            "twine_1:8080",
        ] {
            assert!(is_host_and_port(good), "{good}");
        }
        for bad in [
            "",
            "evil.example/x?y=",
            "evil.example:80/x",
            "a b",
            "user@host",
            "host:",
            "host:0",
            "host:65536",
            "host:80:80",
            "[::1",
            "[::1]x",
            "[::1]:",
            "[nothex]:80",
            ".example",
            "example..org",
            "<script>",
            "host\"",
            &"a".repeat(64),
        ] {
            assert!(!is_host_and_port(bad), "{bad}");
        }
    }
}
