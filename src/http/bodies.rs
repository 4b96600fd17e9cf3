//! Request bodies: this API reads none, so a request that announces one is answered without
//! waiting for it (a GET or HEAD with a 400), and its connection is closed after the answer.

use super::error::ApiError;
use actix_web::body::{BodySize, BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::{header, ConnectionType};
use actix_web::web::Bytes;
use actix_web::{HttpMessage, ResponseError};
use std::pin::Pin;
use std::task::{Context, Poll};

/// Whether the request's head announces a body: any Transfer-Encoding, or a Content-Length
/// above 0 (actix-http has already refused a malformed one).
fn announces_body(req: &ServiceRequest) -> bool {
    let headers = req.headers();
    headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok())
            .is_some_and(|length| length > 0)
}

/// Takes the unread body of a request that announced one, for [`close_after`].
pub fn take_unread(req: &mut ServiceRequest) -> Option<Payload> {
    announces_body(req).then(|| req.take_payload())
}

/// The 400 for a GET or HEAD that announced a body.
pub fn refused() -> actix_web::HttpResponse {
    ApiError::bad(
        "body",
        "GET and HEAD requests take no body here (the request had Transfer-Encoding or a Content-Length above 0); send the request without one",
    )
    .error_response()
}

/// The answer to a request whose body `unread` was never read, marked `Connection: close`.
///
/// At the end of an answer actix-http either closes the connection or reads the rest of an
/// unread body before the next request: the latter for a chunked body whose reader is gone,
/// with no time limit, so a body that never comes would hold the connection forever. It
/// closes (after at most its client disconnect timeout) while the reader is alive, so the
/// answer's body carries the reader to its end.
pub fn close_after(res: ServiceResponse<BoxBody>, unread: Payload) -> ServiceResponse<BoxBody> {
    res.map_body(|head, body| {
        head.set_connection_type(ConnectionType::Close);
        BoxBody::new(HoldingUnread {
            body,
            _unread: unread,
        })
    })
}

/// An answer's body that keeps the request's unread body alive as long as it is.
struct HoldingUnread {
    body: BoxBody,
    _unread: Payload,
}

impl MessageBody for HoldingUnread {
    type Error = Box<dyn std::error::Error>;

    fn size(&self) -> BodySize {
        self.body.size()
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_next(cx)
    }
}
