//! The command line: clap's definitions of `serve`, `import`, `pyramid`, `seed`, `cache` and
//! `healthcheck`, and the dispatch to their files in [`crate::commands`].

use crate::app::ServeArgs;
use crate::commands::cache::CacheCommand;
use crate::commands::db::DbCommand;
use crate::commands::import::ImportArgs;
use crate::commands::pyramid::PyramidArgs;
use crate::commands::seed::SeedArgs;
use crate::commands::{self, fail, CommandError};
use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    name = "twine-heatmap",
    version,
    about = "Heatmap tile server: seamless heatmap PNG tiles from points"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Serve tiles, overlays and points over HTTP (the bundled demo layer when no layer is given).
    Serve(ServeArgs),
    /// Load points files into PostGIS as layer NAME (created with a GiST index if missing).
    Import(ImportArgs),
    /// Rebuild an imported layer's bin pyramid (import builds it; rebuild after writing to
    /// the layer's table directly)
    Pyramid(PyramidArgs),
    /// Render tiles ahead of time into the disk cache, so requests for them are hits.
    ///
    /// Layers are built exactly as `serve` builds them (same flags, environment and config)
    /// and each tile is keyed as the server keys it, so a seeded tile is a `hit-disk` for any
    /// equal request, whatever the order of its parameters. Tiles already on disk are
    /// skipped: re-run the same command to resume. SIGINT (Ctrl-C) or SIGTERM finishes the
    /// tiles in flight and exits with 130 (143); even SIGKILL leaves no damaged tile. Give the
    /// server the same --cache-disk budget, or it evicts down to its own when it opens the
    /// folder. Tiles of a database layer carry its data version: a write to the layer makes
    /// them stale.
    Seed(SeedArgs),
    /// Database administration: `db init` creates the `twine` schema and the data-version
    /// triggers of the config's tables, so that servers can run with a read-only role.
    Db {
        #[command(subcommand)]
        command: DbCommand,
    },
    /// Disk cache administration: remove tiles, print usage.
    Cache {
        #[command(subcommand)]
        command: CacheCommand,
    },
    /// Exit 0 when the server at --url answers /health with 200 (for container health checks).
    Healthcheck {
        #[arg(long, default_value = "http://127.0.0.1:8080/health")]
        url: String,
    },
}

impl Command {
    /// The log level unless `RUST_LOG` says otherwise.
    pub fn default_log_level(&self) -> &'static str {
        match self {
            // A server's and a loader's progress is worth a line each; the one-shot tools
            // print their own results, so only their warnings join them.
            Command::Serve(_) | Command::Import(_) | Command::Pyramid(_) | Command::Db { .. } => {
                "info"
            }
            Command::Seed(_) | Command::Cache { .. } | Command::Healthcheck { .. } => "warn",
        }
    }
}

/// Runs `command`; a failure is printed as one line and sets the exit status.
pub fn run(command: Command) -> ExitCode {
    let result: Result<(), CommandError> = match command {
        Command::Serve(args) => commands::serve::run(args).map_err(fail),
        Command::Import(args) => commands::import::run(args).map_err(fail),
        Command::Pyramid(args) => commands::pyramid::run(args).map_err(fail),
        Command::Seed(args) => commands::seed::run(args),
        Command::Db { command } => commands::db::run(command).map_err(fail),
        Command::Cache { command } => commands::cache::run(command),
        Command::Healthcheck { url } => commands::healthcheck::run(&url).map_err(fail),
    };
    commands::finish(result)
}
