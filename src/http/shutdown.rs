//! Graceful stop: requests still running shortly before the server's stop limit are answered
//! 503 (JSON; `Connection: close`, as every answer while stopping) instead of losing their
//! connection without an answer.

use super::error::ApiError;
use actix_server::GracefulShutdownSignal;
use actix_web::dev::ServiceResponse;
use std::future::Future;
use std::time::Duration;

/// The documented limit: from SIGTERM or SIGINT to the process's exit.
pub const STOP_LIMIT: Duration = Duration::from_secs(10);

/// How long requests in flight may run on after the stop signal; then they are answered 503.
/// Leaves [`STOP_LIMIT`] room for the answers to go out and the process to end.
pub const FINISH_WITHIN: Duration = Duration::from_secs(8);

/// actix-server's own limit (whole seconds), after which it drops the connections left (an
/// answer still being written to a client that does not read it): between the two.
pub const FORCE_AFTER_SECS: u64 = 9;

/// `answer`, or the 503 error [`ApiError::ShuttingDown`] if the server has been stopping for
/// [`FINISH_WITHIN`] and `answer` is still not ready. An error, not a response: a response
/// needs the request, which cannot be shared before the router has matched it. The app's
/// error mapping (in [`super::bind`]) writes it; while stopping, actix-http marks every answer
/// `Connection: close` and closes the connection after it.
pub async fn answer_or_stopping<F>(
    answer: F,
    stopping: &GracefulShutdownSignal,
) -> Result<ServiceResponse, actix_web::Error>
where
    F: Future<Output = Result<ServiceResponse, actix_web::Error>>,
{
    let out_of_time = async {
        stopping.notified().await;
        tokio::time::sleep(FINISH_WITHIN).await;
    };
    tokio::select! {
        // An answer that is ready always goes out, even at the last moment.
        biased;
        res = answer => res,
        () = out_of_time => Err(ApiError::ShuttingDown.into()),
    }
}
