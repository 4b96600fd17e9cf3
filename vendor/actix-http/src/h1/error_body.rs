//! Bodies for the errors the HTTP/1 dispatcher answers by itself, before any request reaches
//! the application: a malformed request (400), a request head over the size limit (431) and
//! a request head that did not arrive in time (408). Upstream sends them with no body; an
//! application can register how to describe them, in its own error format.
//!
//! (Added to the vendored crate; not part of upstream actix-http.)

use std::sync::OnceLock;

use bytes::Bytes;
use http::{header, HeaderValue, StatusCode};

use crate::{body::BoxBody, Response};

/// Makes the body of a protocol error: its status and what went wrong, in a few words; returns
/// the body and its Content-Type, or `None` for an empty body.
pub type Describe = fn(StatusCode, &str) -> Option<(HeaderValue, Bytes)>;

static DESCRIBE: OnceLock<Describe> = OnceLock::new();

/// Registers `describe` for the whole process. Returns `false` (and changes nothing) when one
/// is already registered.
pub fn set_describe(describe: Describe) -> bool {
    DESCRIBE.set(describe).is_ok()
}

/// The head and body of a protocol error answer.
pub(crate) fn response(status: StatusCode, what: &str) -> (Response<()>, BoxBody) {
    let mut res = Response::with_body(status, ());
    match DESCRIBE.get().and_then(|describe| describe(status, what)) {
        Some((content_type, body)) => {
            res.headers_mut().insert(header::CONTENT_TYPE, content_type);
            (res, BoxBody::new(body))
        }
        None => (res, BoxBody::new(())),
    }
}
