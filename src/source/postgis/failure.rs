//! How a failed database call maps to a source error (503, 504 or 400), and whether it means
//! the database is gone (which turns `/health` degraded).

use super::{pg_message, pool_message, DbError};
use crate::source::SourceError;
use deadpool_postgres::{PoolError, TimeoutType};

/// Maps pool failures: no connection within the wait, or the database is down (503).
pub(super) fn pool_error(e: PoolError) -> SourceError {
    SourceError::Unavailable(match e {
        PoolError::Timeout(_) => {
            "every database connection stayed busy past the pool's wait".to_string()
        }
        other => format!("cannot reach the database: {}", pool_message(&other)),
    })
}

/// Whether a failure means the database cannot be reached: no connection could be opened
/// (or none in time), or the connection broke or was shut down under the query. Not a pool
/// whose connections are all busy (the database answers, just not to us yet), a statement
/// timeout, a bad value or a missing table: the database answered those.
pub(super) fn lost_contact(e: &DbError) -> bool {
    match e {
        DbError::Pool(PoolError::Timeout(TimeoutType::Wait)) => false,
        DbError::Pool(_) => true,
        DbError::Postgres(pg) => match pg.code() {
            // No SQLSTATE: the client's own failure. Only a closed connection or an I/O
            // error says the server is gone (not, say, a value that failed to encode).
            None => {
                pg.is_closed()
                    || std::error::Error::source(pg).is_some_and(|s| s.is::<std::io::Error>())
            }
            // Class 08 (connection exception); 57P01-57P03: the server is shutting down,
            // crashed, or is not accepting connections (also pg_terminate_backend).
            Some(code) => {
                code.code().starts_with("08") || matches!(code.code(), "57P01" | "57P02" | "57P03")
            }
        },
        _ => false,
    }
}

/// Maps query failures: cancelled by statement_timeout (504), bad filter value (400), or
/// the database went away (503).
pub(super) fn db_error(e: impl Into<DbError>) -> SourceError {
    match e.into() {
        DbError::Postgres(pg) => {
            let code = pg.code().cloned();
            if code == Some(tokio_postgres::error::SqlState::QUERY_CANCELED) {
                SourceError::Timeout
            } else if code.as_ref().is_some_and(|c| c.code().starts_with("22")) {
                SourceError::BadFilter {
                    param: "filter".into(),
                    detail: pg_message(&pg),
                }
            } else {
                SourceError::Unavailable(format!("database error: {}", pg_message(&pg)))
            }
        }
        DbError::Pool(p) => pool_error(p),
        other => SourceError::Unavailable(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_pool_is_not_a_lost_database() {
        // All connections busy: the database answers others, so /health stays ok.
        assert!(!lost_contact(&DbError::Pool(PoolError::Timeout(
            TimeoutType::Wait
        ))));
        // No connection could be opened in time: it is not there.
        assert!(lost_contact(&DbError::Pool(PoolError::Timeout(
            TimeoutType::Create
        ))));
        assert!(lost_contact(&DbError::Pool(PoolError::Closed)));
        assert!(!lost_contact(&DbError::Other(
            "corrupt pyramid block".into()
        )));
    }
}
