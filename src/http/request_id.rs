//! Request ids: one per answer (`X-Request-Id`), taken from the client or a proxy when it sent a
//! sane one, else made here; error bodies carry it and the log lines with an error's internal
//! cause name it, so a client's report leads to the cause without the cause reaching clients.

use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// The request id header, on requests (honoured) and on every answer.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Longest incoming id kept; longer ones are replaced (they would bloat every log line).
const MAX_LEN: usize = 64;

tokio::task_local! {
    /// The id of the request whose handler is running: error answers read it.
    static CURRENT: HeaderValue;
}

/// The id of a request: its own `X-Request-Id` when that is 1 to 64 ASCII letters, digits,
/// `-`, `_`, `.` or `:` (what proxies and tracing systems send), else a new one.
pub fn for_request(headers: &HeaderMap) -> HeaderValue {
    headers
        .get(X_REQUEST_ID)
        .filter(|v| is_sane(v.as_bytes()))
        .cloned()
        .unwrap_or_else(generate)
}

fn is_sane(id: &[u8]) -> bool {
    (1..=MAX_LEN).contains(&id.len())
        && id
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// A new id: 16 hex digits, unique within the process (a counter) and unlikely to repeat
/// across processes and restarts (a random start, mixed so that ids do not look sequential).
fn generate() -> HeaderValue {
    static START: OnceLock<u64> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let start = *START.get_or_init(|| RandomState::new().hash_one(std::process::id()));
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let id = format!("{:016x}", mix(start.wrapping_add(n)));
    // Hex digits are always a valid header value.
    HeaderValue::from_str(&id).unwrap_or_else(|_| HeaderValue::from_static("0"))
}

/// splitmix64's finalizer: a bijection, so distinct counters give distinct ids.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Runs `future` (a request's routed handling) with `id` as the current request id.
pub async fn scope<F: std::future::Future>(id: HeaderValue, future: F) -> F::Output {
    CURRENT.scope(id, future).await
}

/// Calls `f` (which starts a request's handling) with `id` as the current request id.
pub fn sync_scope<R>(id: HeaderValue, f: impl FnOnce() -> R) -> R {
    CURRENT.sync_scope(id, f)
}

/// The id of the request being handled, when called inside [`scope`].
pub fn current() -> Option<String> {
    CURRENT
        .try_with(|id| id.to_str().ok().map(str::to_string))
        .ok()
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sane_ids_are_kept_and_others_replaced() {
        let mut headers = HeaderMap::new();
        headers.insert(X_REQUEST_ID, HeaderValue::from_static("abc-123_x.y:z"));
        assert_eq!(for_request(&headers), "abc-123_x.y:z");
        for bad in ["", "a b", "a/b", "<script>", &"x".repeat(65)] {
            headers.insert(X_REQUEST_ID, HeaderValue::from_str(bad).expect("value"));
            let id = for_request(&headers);
            assert_ne!(id, bad);
            assert!(is_sane(id.as_bytes()), "{id:?}");
        }
        let (a, b) = (generate(), generate());
        assert_ne!(a, b);
        assert_eq!(a.len(), 16);
    }
}
