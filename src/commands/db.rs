//! `db init`: prepares a database for servers that only read (the `twine` schema, and the
//! data-version triggers of the tables a config declares).

use crate::app::table_layout;
use crate::config::Config;
use std::path::PathBuf;

/// `twine-heatmap db init --database-url URL [--config FILE]`
#[derive(clap::Args, Debug)]
pub struct DbInitArgs {
    /// PostgreSQL URL of a role that may create schemas and triggers (the primary).
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: String,
    /// The server's config file: its `[[layers]]` over tables get the data-version trigger.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// Database administration.
#[derive(clap::Subcommand, Debug)]
pub enum DbCommand {
    /// Create the `twine` schema and the data-version triggers of the config's tables, so
    /// that `serve` can run with a read-only role or on a replica.
    Init(DbInitArgs),
}

/// Runs a `db` command in an actix system, as `serve` runs.
pub fn run(command: DbCommand) -> Result<(), String> {
    match command {
        DbCommand::Init(args) => actix_web::rt::System::new().block_on(init(args)),
    }
}

async fn init(args: DbInitArgs) -> Result<(), String> {
    let mut declared = Vec::new();
    if let Some(path) = &args.config {
        let config = Config::load(path).map_err(|e| e.to_string())?;
        for layer in &config.layers {
            if let Some(table) = &layer.table {
                let layout = table_layout(layer, table).map_err(|e| e.to_string())?;
                declared.push((layer.name.clone(), layout));
            }
        }
    }
    let done = crate::source::postgis::admin::init(&args.database_url, &declared)
        .await
        .map_err(|e| e.to_string())?;
    for line in done {
        eprintln!("{line}");
    }
    Ok(())
}
