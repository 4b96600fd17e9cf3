//! Styles and filters of a request, typed and checked, from a query string or from key/value
//! pairs (CLI flags): the one place their parameters are parsed.

pub mod error;
pub mod filters;
pub mod query;
pub mod spec;
pub mod time;

pub use error::StyleError;
pub use filters::{
    is_reserved_param, parse_filters, parse_with_filters, BBOX_POINT_PARAMS, OVERLAY_PARAMS,
    TILE_POINT_PARAMS,
};
pub use query::{parse_bbox, parse_int, Query, MAX_QUERY_LEN, MAX_VALUE_LEN};
pub use spec::{
    StyleRequest, StyleSpec, MAX_BLUR, MAX_DOT_SIZE, MAX_RADIUS, MAX_WEIGHT_MAX, STYLE_PARAMS,
};
