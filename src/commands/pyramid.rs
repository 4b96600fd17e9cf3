//! `pyramid`: rebuilds a PostGIS layer's bin pyramid, for an imported layer or a table the
//! config declares.

use crate::app::table_layout;
use crate::config::Config;
use crate::source::postgis::import::{rebuild_declared_pyramid, rebuild_pyramid};

pub use crate::source::postgis::import::PyramidArgs;

/// Runs `pyramid` in an actix system, as `serve` runs.
pub fn run(args: PyramidArgs) -> Result<(), String> {
    actix_web::rt::System::new().block_on(pyramid(args))
}

/// `twine-heatmap pyramid`: for a layer the config (`--config`) declares over a table, that
/// table's pyramid; otherwise an imported layer's.
pub async fn pyramid(args: PyramidArgs) -> Result<(), String> {
    let Some(path) = &args.config else {
        return rebuild_pyramid(&args).await.map_err(|e| e.to_string());
    };
    let config = Config::load(path).map_err(|e| e.to_string())?;
    let declared = config.layers.iter().find(|l| l.name == args.layer);
    match declared {
        Some(layer) => match (&layer.table, &layer.file) {
            (Some(table), _) => {
                let layout = table_layout(layer, table).map_err(|e| e.to_string())?;
                rebuild_declared_pyramid(&args, &layout)
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
        None => rebuild_pyramid(&args).await.map_err(|e| e.to_string()),
    }
}
