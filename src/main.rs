//! `twine-heatmap`: parses the command line and hands off to the library.

use clap::Parser;
use std::io::IsTerminal;
use twine_heatmap::cache::admin;
use twine_heatmap::cli::{self, Cli, Command};

fn main() -> std::process::ExitCode {
    let command = Cli::parse().command;
    init_logging(match command {
        // A server's and a loader's progress is worth a line each; the one-shot tools print
        // their own results, so only their warnings join them.
        Command::Serve(_) | Command::Import(_) | Command::Pyramid(_) => "info",
        Command::Seed(_) | Command::Cache { .. } | Command::Healthcheck { .. } => "warn",
    });
    let result = match command {
        Command::Serve(args) => actix_web::rt::System::new()
            .block_on(cli::serve(args))
            .map_err(|e| e.to_string()),
        Command::Import(args) => actix_web::rt::System::new()
            .block_on(twine_heatmap::source::postgis::import::run(&args))
            .map_err(|e| e.to_string()),
        Command::Pyramid(args) => actix_web::rt::System::new().block_on(cli::pyramid(args)),
        Command::Seed(args) => return admin::finish(cli::seed(args)),
        Command::Cache { command } => return admin::finish(cli::cache(command)),
        Command::Healthcheck { url } => cli::healthcheck(&url),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("twine-heatmap: {message}");
            std::process::ExitCode::FAILURE
        }
    }
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
