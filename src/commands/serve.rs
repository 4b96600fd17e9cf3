//! `serve`: the HTTP server, until SIGINT or SIGTERM.

use crate::app::{build_state, check_declared_tables, start_background, ServeArgs, StartError};
use crate::http;

/// Runs `serve` in an actix system until SIGINT or SIGTERM.
pub fn run(args: ServeArgs) -> Result<(), StartError> {
    crate::heap::limit_arenas();
    actix_web::rt::System::new().block_on(serve(args))
}

/// Runs `serve` until SIGINT or SIGTERM.
pub async fn serve(args: ServeArgs) -> Result<(), StartError> {
    let (state, bind) = build_state(&args)?;
    check_declared_tables(&state).await?;
    start_background(state.database.as_ref(), &state.layers);
    crate::logging::spawn_summaries();
    crate::heap::spawn_trimmer();
    http::serve(state, &bind)
        .await
        .map_err(|source| StartError::Bind { bind, source })
}
