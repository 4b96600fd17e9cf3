//! `twine-heatmap`: parses the command line and hands off to the library.

use clap::Parser;
use twine_heatmap::cache::admin;
use twine_heatmap::cli::{self, Cli, Command};

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let result = match Cli::parse().command {
        Command::Serve(args) => actix_web::rt::System::new()
            .block_on(cli::serve(args))
            .map_err(|e| e.to_string()),
        Command::Import(args) => actix_web::rt::System::new()
            .block_on(twine_heatmap::source::postgis::import::run(&args))
            .map_err(|e| e.to_string()),
        Command::Pyramid(args) => actix_web::rt::System::new()
            .block_on(twine_heatmap::source::postgis::import::rebuild_pyramid(
                &args,
            ))
            .map_err(|e| e.to_string()),
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
