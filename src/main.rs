//! `twine-heatmap`: parses the command line and hands off to the library.

use clap::Parser;
use std::io::IsTerminal;
use twine_heatmap::cli::{self, Cli};

fn main() -> std::process::ExitCode {
    let command = Cli::parse().command;
    init_logging(command.default_log_level());
    cli::run(command)
}

/// Logs go to stderr, so a command's own output on stdout (`cache stats`, `seed`) stays
/// clean for scripts; colors only on a terminal (and never with `NO_COLOR`), so log files
/// and `docker logs` hold no escape codes. `RUST_LOG` overrides the default level.
fn init_logging(default_level: &str) {
    let colors = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").map_or(true, |v| v.is_empty());
    let filter = std::env::var("RUST_LOG")
        .ok()
        .filter(|f| tracing_subscriber::EnvFilter::try_new(f).is_ok())
        .unwrap_or_else(|| default_level.to_string());
    let subscriber = twine_heatmap::logging::subscriber(&filter, std::io::stderr, colors);
    // The first and only subscriber of the process; it also takes the `log` crate's records
    // (actix-web logs through `log`).
    let _ = tracing_subscriber::util::SubscriberInitExt::try_init(subscriber);
}
