//! Query-string parsing now lives in `crate::style`; these names stay here for the CLI's
//! imports.

pub use crate::style::{parse_bbox, Query, StyleSpec, STYLE_PARAMS};
