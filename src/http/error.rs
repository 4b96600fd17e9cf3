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

/// Everything a request can fail with. Each variant carries what the client needs to fix it;
/// what only the operator should see (database messages, table names, internal failures) is
/// a `cause`, logged with the request id and never sent.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A query or path parameter is malformed or out of range.
    #[error("invalid parameter `{param}`")]
    BadParam { param: String, detail: String },
    /// A request header the answer depends on is malformed (e.g. `Host`, which links are
    /// built from).
    #[error("invalid header `{header}`")]
    BadHeader { header: String, detail: String },
    #[error("unknown layer `{name}`")]
    UnknownLayer { name: String, known: Vec<String> },
    #[error("not found")]
    NotFound { detail: String },
    /// The server has no room for this work now (503 with `Retry-After`).
    #[error("the server is busy")]
    Busy { detail: String },
    /// The server is stopping and this request did not finish in time (503 with
    /// `Retry-After`: another instance, or this one restarted, will answer).
    #[error("the server is shutting down")]
    ShuttingDown,
    /// A method other than GET, HEAD and OPTIONS (405 with `Allow`).
    #[error("method {method} not allowed")]
    MethodNotAllowed { method: String },
    /// The database cannot answer now (503 with `Retry-After`): `detail` for the client,
    /// `cause` for the log.
    #[error("the database is unavailable")]
    Unavailable {
        detail: String,
        cause: Option<String>,
    },
    /// A layer cannot be drawn as configured (500, no `Retry-After`: waiting does not fix
    /// it). The client is told which layer; `problem` (its table and column, in the
    /// database's terms) goes to the log and `/health`.
    #[error("layer misconfigured")]
    Misconfigured { layer: String, problem: String },
    /// A database statement ran past the statement timeout (504).
    #[error("the database query timed out")]
    Timeout,
    /// A fault of the server; `cause` goes to the log only.
    #[error("internal error")]
    Internal { cause: String },
}

/// What a client is told when the database failed, whatever the database said (that goes to
/// the log with the request id).
const UNAVAILABLE_DETAIL: &str = "the server could not read this layer's points from its database";

impl From<SourceError> for ApiError {
    fn from(e: SourceError) -> ApiError {
        match e {
            // A filter value the database refused is the client's input: a 400.
            SourceError::BadFilter { param, detail } => ApiError::BadParam { param, detail },
            SourceError::Unavailable(cause) => ApiError::Unavailable {
                detail: UNAVAILABLE_DETAIL.to_string(),
                cause: Some(cause),
            },
            SourceError::Timeout => ApiError::Timeout,
            SourceError::Misconfigured(problem) => ApiError::Misconfigured {
                layer: String::new(),
                problem,
            },
        }
    }
}

impl From<StyleError> for ApiError {
    fn from(e: StyleError) -> ApiError {
        match e {
            StyleError::BadParam { param, detail } => ApiError::BadParam { param, detail },
            // Filter values are checked against column types only the database can tell.
            StyleError::FilterTypesUnknown => ApiError::Unavailable {
                detail: "the database has not been reached yet, so filter values cannot be \
                    checked"
                    .to_string(),
                cause: None,
            },
        }
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> ApiError {
        match e {
            ServiceError::Source(e) => ApiError::from(e),
            ServiceError::Render(cause) => ApiError::Internal { cause },
            ServiceError::Cache(e) => ApiError::Internal {
                cause: e.to_string(),
            },
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

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: String,
    detail: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    parameter: Option<&'a str>,
    /// The answer's `X-Request-Id`: the key to this failure in the server's log.
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<&'a str>,
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadParam { .. } | ApiError::BadHeader { .. } => StatusCode::BAD_REQUEST,
            ApiError::UnknownLayer { .. } | ApiError::NotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Busy { .. } | ApiError::Unavailable { .. } | ApiError::ShuttingDown => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Timeout => StatusCode::GATEWAY_TIMEOUT,
            // The server's own configuration is wrong: a server error, loud in monitoring,
            // and without Retry-After since waiting does not fix it.
            ApiError::Misconfigured { .. } => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let request_id = super::request_id::current();
        let id = request_id.as_deref().unwrap_or("-");
        let detail = match self {
            ApiError::BadParam { detail, .. }
            | ApiError::BadHeader { detail, .. }
            | ApiError::NotFound { detail } => detail.clone(),
            ApiError::UnknownLayer { known, .. } => {
                format!("known layers: {}", known.join(", "))
            }
            ApiError::Busy { detail } => detail.clone(),
            ApiError::ShuttingDown => {
                "the server stopped before this request finished; retry it".to_string()
            }
            ApiError::MethodNotAllowed { .. } => {
                format!("this server only reads; allowed: {ALLOWED_METHODS}")
            }
            ApiError::Unavailable { detail, cause } => {
                if let Some(cause) = cause {
                    tracing::warn!(request_id = id, cause = %cause, "database unavailable for a request");
                }
                format!("{detail}; retry after {RETRY_AFTER_SECS} s (Retry-After)")
            }
            ApiError::Timeout => {
                tracing::warn!(
                    request_id = id,
                    "a database statement ran past the statement timeout"
                );
                "the statement ran past the server's statement timeout and was cancelled; \
                    retry later, or ask for a smaller area or a higher zoom"
                    .to_string()
            }
            ApiError::Misconfigured { layer, problem } => {
                tracing::warn!(request_id = id, cause = %problem, "a request for a misconfigured layer");
                let which = if layer.is_empty() {
                    "this layer".to_string()
                } else {
                    format!("layer {layer:?}")
                };
                format!(
                    "{which} cannot be drawn as the server is configured; the server's log \
                        and /health say why, and it must be fixed there (retrying does not help)"
                )
            }
            ApiError::Internal { cause } => {
                tracing::error!(request_id = id, cause = %cause, "internal error");
                "the server failed to answer this request; its log has the cause under the \
                    request id"
                    .to_string()
            }
        };
        let parameter = match self {
            ApiError::BadParam { param, .. } => Some(param.as_str()),
            _ => None,
        };
        let mut response = HttpResponse::build(self.status_code());
        if matches!(
            self,
            ApiError::Unavailable { .. } | ApiError::Busy { .. } | ApiError::ShuttingDown
        ) {
            response.insert_header((header::RETRY_AFTER, RETRY_AFTER_SECS));
        }
        if matches!(self, ApiError::MethodNotAllowed { .. }) {
            response.insert_header((header::ALLOW, ALLOWED_METHODS));
        }
        response.json(ErrorBody {
            error: self.to_string(),
            detail: &detail,
            parameter,
            request_id: request_id.as_deref(),
        })
    }
}
