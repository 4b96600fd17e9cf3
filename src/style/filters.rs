//! Filter parameters: the query keys a layer's declared filters take, and their values
//! checked against the column types the source reports.

use super::error::StyleError;
use super::query::Query;
use super::time::{attribute_params, parse_attribute_filter};
use crate::source::attributes::AttributeSchema;
use crate::source::filter::FilterValue;
use crate::source::{FilterDef, FilterValues};

/// Parameters of an overlay request besides the style's.
pub const OVERLAY_PARAMS: &[&str] = &["layer", "bbox", "width", "height"];
/// Parameters of a tile's points request.
pub const TILE_POINT_PARAMS: &[&str] = &["limit", "radius", "blur"];
/// Parameters of a box's points request.
pub const BBOX_POINT_PARAMS: &[&str] = &["bbox", "limit", "zoom"];

/// Whether `param` is one a request takes besides a layer's filters (style, overlay, points):
/// a declared filter cannot take it, or the two would read the same value.
pub fn is_reserved_param(param: &str) -> bool {
    [
        super::STYLE_PARAMS,
        OVERLAY_PARAMS,
        TILE_POINT_PARAMS,
        BBOX_POINT_PARAMS,
    ]
    .iter()
    .any(|set| set.contains(&param))
}

/// Parses a request's query string allowing the route's parameters (`allowed`), the
/// parameters of the layer's filters (`defs`) and those of its time and category columns
/// (`schema`).
pub fn parse_with_filters(
    raw: &str,
    allowed: &[&[&str]],
    defs: &[FilterDef],
    schema: Option<&AttributeSchema>,
) -> Result<Query, StyleError> {
    let filter_params: Vec<&str> = defs.iter().map(|d| d.param.as_str()).collect();
    let attribute_params = attribute_params(schema);
    let attribute_params: Vec<&str> = attribute_params.iter().map(String::as_str).collect();
    let mut sets = allowed.to_vec();
    sets.push(&filter_params);
    sets.push(&attribute_params);
    Query::parse(raw, &sets)
}

/// The values of the declared filters (`defs`) and of the time and category columns
/// (`schema`) that `query` gives; absent ones do not filter.
pub fn parse_filters(
    defs: &[FilterDef],
    schema: Option<&AttributeSchema>,
    query: &Query,
) -> Result<FilterValues, StyleError> {
    let mut values = Vec::new();
    for (i, def) in defs.iter().enumerate() {
        let Some(text) = query.get(&def.param) else {
            continue;
        };
        // The type comes from the database; until it has been reached, we cannot check.
        let ty = def.ty.ok_or(StyleError::FilterTypesUnknown)?;
        let value =
            FilterValue::parse(ty, text).map_err(|detail| StyleError::bad(&def.param, detail))?;
        values.push((i, value));
    }
    Ok(FilterValues(values, parse_attribute_filter(schema, query)?))
}
