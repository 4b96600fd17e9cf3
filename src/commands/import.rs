//! `import`: loads points files into a PostGIS layer table (the work is in
//! [`crate::source::postgis::import`]).

use crate::layer::DEFAULT_AGGREGATE_ABOVE;
use crate::source::postgis::import::ImportError;
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
    /// Keep this CSV column or GeoJSON property as each point's time (ISO 8601 date or
    /// timestamp, UTC when it has no offset; an empty value is no time), so that requests
    /// can ask for a window (`from`, `to`).
    #[arg(long, value_name = "COLUMN")]
    pub time: Option<String>,
    /// Keep this CSV column or GeoJSON property as a category (text), so that requests can
    /// ask for some of its values (`category=`, `category.COLUMN=`). Repeatable.
    #[arg(long = "category", value_name = "COLUMN")]
    pub categories: Vec<String>,
    /// Points files: CSV, GeoJSON, or JSON [[lat, lon(, w)]].
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

/// Runs `import` in an actix system, as `serve` runs.
pub fn run(args: ImportArgs) -> Result<(), ImportError> {
    actix_web::rt::System::new().block_on(crate::source::postgis::import::run(
        &args.database_url,
        &args.layer,
        args.attribution.as_deref(),
        (args.time.as_deref(), &args.categories),
        args.aggregate_above,
        &args.files,
    ))
}
