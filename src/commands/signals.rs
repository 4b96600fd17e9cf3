//! Stopping a long command cleanly: the first SIGINT or SIGTERM asks it to finish the work
//! in flight, a second ends the process at once.

use tokio::sync::watch;

/// Exit status after SIGINT, as shells report it (128 + 2).
const EXIT_SIGINT: u8 = 130;
/// Exit status after SIGTERM (128 + 15).
const EXIT_SIGTERM: u8 = 143;

/// The signal that stopped the run (its name and exit status), once one arrives. Handlers are
/// installed before this returns, so no signal can slip past between set-up and the loop. A
/// second signal ends the process at once: every file on disk is whole at any instant.
pub fn watch_signals() -> std::io::Result<watch::Receiver<Option<(&'static str, u8)>>> {
    let (tx, rx) = watch::channel(None);
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        async fn next(
            interrupt: &mut tokio::signal::unix::Signal,
            terminate: &mut tokio::signal::unix::Signal,
        ) -> (&'static str, u8) {
            tokio::select! {
                _ = interrupt.recv() => ("SIGINT", EXIT_SIGINT),
                _ = terminate.recv() => ("SIGTERM", EXIT_SIGTERM),
            }
        }
        actix_web::rt::spawn(async move {
            let first = next(&mut interrupt, &mut terminate).await;
            tx.send_replace(Some(first));
            eprintln!(
                "twine-heatmap: {}: finishing the tiles in flight (signal again to stop now)",
                first.0
            );
            let (_, code) = next(&mut interrupt, &mut terminate).await;
            std::process::exit(i32::from(code));
        });
    }
    #[cfg(not(unix))]
    actix_web::rt::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            tx.send_replace(Some(("Ctrl-C", EXIT_SIGINT)));
        }
    });
    Ok(rx)
}
