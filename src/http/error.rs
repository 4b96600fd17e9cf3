//! The API's errors and their one mapping to HTTP statuses and JSON bodies.

use crate::service::ServiceError;
use crate::source::SourceError;
use crate::style::StyleError;
use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

/// The methods every route answers (`Allow` of a 405 and of a preflight).
pub const ALLOWED_METHODS: &str = "GET, HEAD, OPTIONS";

/// Seconds a client should wait before retrying a 503.
const RETRY_AFTER_SECS: u32 = 5;

/// Everything a request can fail with. Each variant carries what the client needs to fix it.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A query or path parameter is malformed or out of range.
    #[error("invalid parameter `{param}`")]
    BadParam { param: String, detail: String },
    #[error("unknown layer `{name}`")]
    UnknownLayer { name: String, known: Vec<String> },
    #[error("not found")]
    NotFound { detail: String },
    /// The server has no room for this work now (503 with `Retry-After`).
    #[error("the server is busy")]
    Busy { detail: String },
    /// A method other than GET, HEAD and OPTIONS (405 with `Allow`).
    #[error("method {method} not allowed")]
    MethodNotAllowed { method: String },
    /// The point source failed; the body says why and what the client can do.
    #[error("{}", source_summary(.0))]
    Source(SourceError),
    #[error("internal error")]
    Internal { detail: String },
}

impl From<SourceError> for ApiError {
    fn from(e: SourceError) -> ApiError {
        match e {
            // A filter value the database refused is the client's input: a 400.
            SourceError::BadFilter { param, detail } => ApiError::BadParam { param, detail },
            other => ApiError::Source(other),
        }
    }
}

impl From<StyleError> for ApiError {
    fn from(e: StyleError) -> ApiError {
        match e {
            StyleError::BadParam { param, detail } => ApiError::BadParam { param, detail },
            // Filter values are checked against column types only the database can tell.
            StyleError::FilterTypesUnknown => {
                ApiError::Source(SourceError::Unavailable(e.to_string()))
            }
        }
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> ApiError {
        match e {
            ServiceError::Source(e) => ApiError::from(e),
            ServiceError::Render(detail) => ApiError::Internal { detail },
        }
    }
}

impl ApiError {
    pub fn bad(param: impl Into<String>, detail: impl Into<String>) -> ApiError {
        ApiError::BadParam {
            param: param.into(),
            detail: detail.into(),
        }
    }
}

/// The short `error` of a source failure: what went wrong, in a few words.
fn source_summary(e: &SourceError) -> String {
    match e {
        SourceError::Unavailable(_) => "the database is unavailable".to_string(),
        SourceError::Timeout => "the database query timed out".to_string(),
        SourceError::Misconfigured(_) => "layer misconfigured".to_string(),
        SourceError::BadFilter { param, .. } => format!("invalid value for `{param}`"),
    }
}

/// The `detail` of a source failure: its cause and what the client can do about it, so the
/// body never just repeats `error`.
fn source_advice(e: &SourceError) -> String {
    match e {
        SourceError::Unavailable(cause) => {
            format!("{cause}; retry after {RETRY_AFTER_SECS} s (Retry-After)")
        }
        SourceError::Timeout => "the statement ran past the server's statement timeout and was \
            cancelled; retry later, or ask for a smaller area or a higher zoom"
            .to_string(),
        SourceError::BadFilter { detail, .. } => detail.clone(),
        SourceError::Misconfigured(problem) => format!(
            "{problem}; the server's configuration or the table must be fixed (retrying does not help)"
        ),
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: String,
    detail: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    parameter: Option<&'a str>,
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadParam { .. } => StatusCode::BAD_REQUEST,
            ApiError::UnknownLayer { .. } | ApiError::NotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Busy { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Source(SourceError::Unavailable(_)) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Source(SourceError::Timeout) => StatusCode::GATEWAY_TIMEOUT,
            ApiError::Source(SourceError::BadFilter { .. }) => StatusCode::BAD_REQUEST,
            // The server's own configuration is wrong: a server error, loud in monitoring,
            // and without Retry-After since waiting does not fix it.
            ApiError::Source(SourceError::Misconfigured(_)) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let known_layers;
        let source_detail;
        let methods_detail;
        let (detail, parameter): (&str, Option<&str>) = match self {
            ApiError::BadParam { param, detail } => (detail, Some(param)),
            ApiError::UnknownLayer { known, .. } => {
                known_layers = format!("known layers: {}", known.join(", "));
                (&known_layers, None)
            }
            ApiError::NotFound { detail }
            | ApiError::Internal { detail }
            | ApiError::Busy { detail } => (detail, None),
            ApiError::MethodNotAllowed { .. } => {
                methods_detail = format!("this server only reads; allowed: {}", ALLOWED_METHODS);
                (&methods_detail, None)
            }
            ApiError::Source(e) => {
                source_detail = source_advice(e);
                (&source_detail, None)
            }
        };
        if let ApiError::Internal { detail } = self {
            tracing::error!(%detail, "internal error");
        }
        let mut response = HttpResponse::build(self.status_code());
        if matches!(
            self,
            ApiError::Source(SourceError::Unavailable(_)) | ApiError::Busy { .. }
        ) {
            response.insert_header((header::RETRY_AFTER, RETRY_AFTER_SECS));
        }
        if matches!(self, ApiError::MethodNotAllowed { .. }) {
            response.insert_header((header::ALLOW, ALLOWED_METHODS));
        }
        response.json(ErrorBody {
            error: self.to_string(),
            detail,
            parameter,
        })
    }
}
