//! `pyramid`: rebuilds a PostGIS layer's bin pyramid, for an imported layer or a table the
//! config declares.

use crate::app::table_layout;
use crate::config::Config;
use crate::layer::DEFAULT_AGGREGATE_ABOVE;
use crate::source::postgis::import::{rebuild_declared_pyramid, rebuild_pyramid};
use std::path::PathBuf;

/// `twine-heatmap pyramid --database-url URL --layer NAME [--config FILE]`
#[derive(clap::Args, Debug)]
pub struct PyramidArgs {
    /// PostgreSQL URL, e.g. postgres://user:pass@127.0.0.1/db
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: String,
    /// An imported layer, or a layer that --config declares over an existing table.
    #[arg(long)]
    pub layer: String,
    /// The server's config file, for a layer it declares over an existing table (`[[layers]]`
    /// with `table`).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// As for `import`: the zooms whose densest tile holds more points get pyramid levels.
    #[arg(long, value_name = "POINTS", default_value_t = DEFAULT_AGGREGATE_ABOVE)]
    pub aggregate_above: u64,
}

/// Runs `pyramid` in an actix system, as `serve` runs.
pub fn run(args: PyramidArgs) -> Result<(), String> {
    actix_web::rt::System::new().block_on(pyramid(args))
}

/// `twine-heatmap pyramid`: for a layer the config (`--config`) declares over a table, that
/// table's pyramid; otherwise an imported layer's.
pub async fn pyramid(args: PyramidArgs) -> Result<(), String> {
    let Some(path) = &args.config else {
        return rebuild_pyramid(&args.database_url, &args.layer, args.aggregate_above)
            .await
            .map_err(|e| e.to_string());
    };
    let config = Config::load(path).map_err(|e| e.to_string())?;
    let declared = config.layers.iter().find(|l| l.name == args.layer);
    match declared {
        Some(layer) => match (&layer.table, &layer.file) {
            (Some(table), _) => {
                let layout = table_layout(layer, table).map_err(|e| e.to_string())?;
                rebuild_declared_pyramid(
                    &args.database_url,
                    &args.layer,
                    &layout,
                    args.aggregate_above,
                )
                .await
                .map_err(|e| e.to_string())
            }
            (None, _) => Err(format!(
                "layer {:?} of {} reads a file: the server builds its pyramid when it loads it",
                args.layer,
                path.display()
            )),
        },
        // Not declared there: an imported layer.
        None => rebuild_pyramid(&args.database_url, &args.layer, args.aggregate_above)
            .await
            .map_err(|e| e.to_string()),
    }
}
