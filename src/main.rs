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
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(colors)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level)),
        )
        .init();
}
