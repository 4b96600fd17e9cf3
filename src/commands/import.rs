//! `import`: loads points files into a PostGIS layer table (the work is in
//! [`crate::source::postgis::import`]).

use crate::source::postgis::import::ImportError;

pub use crate::source::postgis::import::ImportArgs;

/// Runs `import` in an actix system, as `serve` runs.
pub fn run(args: ImportArgs) -> Result<(), ImportError> {
    actix_web::rt::System::new().block_on(crate::source::postgis::import::run(&args))
}
