//! The API's errors, now in `http::error`; kept at this path for the CLI's imports.

pub use crate::http::error::ApiError;
