//! Why a style, filter or other request parameter was refused: the parameter and what is
//! allowed, for the transport to turn into its own answer (a 400 over HTTP, a line on a CLI).

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StyleError {
    /// A parameter is unknown, malformed or out of range; `detail` says what is allowed.
    #[error("{param}: {detail}")]
    BadParam { param: String, detail: String },
    /// Filter values cannot be checked yet: their column types come from a database that has
    /// not been reached.
    #[error("the database has not been reached yet")]
    FilterTypesUnknown,
}

impl StyleError {
    pub fn bad(param: impl Into<String>, detail: impl Into<String>) -> StyleError {
        StyleError::BadParam {
            param: param.into(),
            detail: detail.into(),
        }
    }
}
