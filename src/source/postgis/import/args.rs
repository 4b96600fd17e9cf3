//! The command-line arguments of `import` and `pyramid`.

use crate::layer::DEFAULT_AGGREGATE_ABOVE;
use std::path::PathBuf;

/// `twine-heatmap import --database-url URL --layer NAME FILE...`
#[derive(clap::Args, Debug)]
pub struct ImportArgs {
    /// PostgreSQL URL, e.g. postgres://user:pass@127.0.0.1/db
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: String,
    /// Layer name (1 to 51 ASCII letters, digits, '_' or '-'; shorter than other layers'
    /// 64, so that the table and index names fit PostgreSQL's 63 bytes).
    #[arg(long)]
    pub layer: String,
    /// Attribution shown in TileJSON and /layers.
    #[arg(long)]
    pub attribution: Option<String>,
    /// Precompute the bin pyramid for the zooms whose densest tile holds more than this
    /// many points: give the value the server's `aggregate_above` has (same default as the
    /// server's for PostGIS layers).
    #[arg(long, value_name = "POINTS", default_value_t = DEFAULT_AGGREGATE_ABOVE)]
    pub aggregate_above: u64,
    /// Points files: CSV, GeoJSON, or JSON [[lat, lon(, w)]].
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

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
