//! Heatmap images: XYZ tiles (`/tiles/{layer}/{z}/{x}/{y}.png`, `@2x`) and the seed's
//! bounds-sized overlay (`/heatmap.png`).

use super::error::ApiError;
use super::AppState;
use crate::layer::Layer;
use crate::metrics::Metrics;
use crate::service::{Answer, OverlayRequest, TileRequest};
use crate::style::{
    parse_bbox, parse_filters, parse_int, parse_with_filters, StyleError, StyleSpec,
    OVERLAY_PARAMS, STYLE_PARAMS,
};
use crate::tile::{TileCoord, MAX_ZOOM};
use actix_web::http::header::{self, HeaderValue};
use actix_web::{web, HttpRequest, HttpResponse};
use std::sync::Arc;

/// Which tier answered. A constant: a ("X-Cache", &str) pair would be parsed and checked
/// anew on every answer.
const X_CACHE: header::HeaderName = header::HeaderName::from_static("x-cache");

/// Largest overlay side in pixels.
pub const MAX_OVERLAY_SIDE: u32 = 4096;

/// Everything under `/tiles`: TileJSON at `/tiles/{layer}.json`, tiles at
/// `/tiles/{layer}/{z}/{x}/{y}.png` and `{y}@2x.png`.
///
/// GET and HEAD only (the scope's guard). One static-prefix scope whose rest is split here,
/// instead of two patterned routes: actix matches a patterned route with a regex and copies
/// its segments into Strings, a large share of a memory hit's cost (benches/README.md,
/// "Figures behind design choices").
pub async fn under_tiles(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    // The path after "/tiles", as the router requoted it (percent-escapes of unreserved
    // characters decoded), like the segments of a patterned route.
    let rest = req.match_info().unprocessed();
    match TilesPath::split(rest.strip_prefix('/').unwrap_or(rest)) {
        TilesPath::TileJson(file) => super::meta::tilejson(&state, &req, file).await,
        TilesPath::Tile([layer, z, x, file]) => tile(&state, &req, layer, z, x, file).await,
        TilesPath::Other => super::meta::not_found(req).await,
    }
}

/// What a path under `/tiles/` names, from its non-empty segments.
enum TilesPath<'a> {
    /// `{layer}.json`
    TileJson(&'a str),
    /// `{layer}/{z}/{x}/{file}`
    Tile([&'a str; 4]),
    Other,
}

impl<'a> TilesPath<'a> {
    /// Splits `rest`, the path after `/tiles/`.
    fn split(rest: &'a str) -> TilesPath<'a> {
        let mut parts = rest.split('/');
        let segments = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        );
        match segments {
            (Some(file), None, ..) if !file.is_empty() => TilesPath::TileJson(file),
            (Some(layer), Some(z), Some(x), Some(file), None)
                if [layer, z, x, file].iter().all(|s| !s.is_empty()) =>
            {
                TilesPath::Tile([layer, z, x, file])
            }
            _ => TilesPath::Other,
        }
    }
}

/// The tile request for `coord` (at `ratio`) of `layer`, its style and filters from the
/// request's query string.
fn tile_request(
    layer: Arc<Layer>,
    req: &HttpRequest,
    (coord, ratio): (TileCoord, u32),
) -> Result<TileRequest, StyleError> {
    let defs = layer.source.filters();
    let query = parse_with_filters(
        req.query_string(),
        &[STYLE_PARAMS],
        &defs,
        layer.source.attribute_schema(),
    )?;
    let style = StyleSpec::from_query(&query)?;
    let filters = parse_filters(&defs, layer.source.attribute_schema(), &query)?;
    Ok(TileRequest::new(layer, coord, ratio, style, filters))
}

/// Answers a tile request from the memory tier before actix routes it, or `None` to let
/// it take the routed path ([`under_tiles`]): anything but a well-formed tile address of a
/// known layer whose tile is in memory (a percent-escaped path included, which the router
/// decodes). The app's middleware calls this first for every GET and HEAD: routing and the
/// handler's extractors were a sixth of the server's own CPU time for a memory hit.
pub fn memory_hit(state: &AppState, req: &HttpRequest) -> Option<HttpResponse> {
    let rest = req.path().strip_prefix("/tiles/")?;
    if rest.contains('%') {
        return None;
    }
    let TilesPath::Tile([layer, z, x, file]) = TilesPath::split(rest) else {
        return None;
    };
    let address = parse_tile_address(z, x, file).ok()?;
    // A misconfigured layer takes the routed path, which answers with its problem.
    let layer = state
        .layers
        .get(layer)
        .filter(|l| l.source.misconfigured().is_none())?;
    let tile = tile_request(layer, req, address).ok()?;
    let answer = state.tiles().memory_hit(&tile)?;
    Some(cached_response(
        req,
        state.cache_control(tile.coord.z),
        &answer,
        &state.metrics,
    ))
}

/// A tile's address and pixel ratio from its path segments `z`, `x` and `file`: `{y}.png`
/// (256 px) or `{y}@2x.png` (512 px).
fn parse_tile_address(z: &str, x: &str, file: &str) -> Result<(TileCoord, u32), ApiError> {
    let (y, ratio) = if let Some(y) = file.strip_suffix("@2x.png") {
        (y, 2)
    } else if let Some(y) = file.strip_suffix(".png").filter(|y| !y.contains('@')) {
        (y, 1)
    } else {
        return Err(ApiError::bad(
            "y",
            "the tile name must be {y}.png or {y}@2x.png (256 or 512 px; no other scale)",
        ));
    };
    Ok((parse_tile_coord(z, x, y)?, ratio))
}

/// `GET /tiles/{layer}/{z}/{x}/{y}.png` and `{y}@2x.png`.
async fn tile(
    state: &AppState,
    req: &HttpRequest,
    layer_name: &str,
    z: &str,
    x: &str,
    file: &str,
) -> Result<HttpResponse, ApiError> {
    // The address is checked before the layer is looked up, so a bad one is a 400 even
    // while the database (and so its layers) is out of reach.
    let address = parse_tile_address(z, x, file)?;
    let layer = state.layer(layer_name).await?;
    let tile = tile_request(layer, req, address)?;
    let answer = state.tiles().tile(&tile).await?;
    Ok(cached_response(
        req,
        state.cache_control(tile.coord.z),
        &answer,
        &state.metrics,
    ))
}

/// 200 with the tile, or 304 when the client's `If-None-Match` holds its ETag.
fn cached_response(
    req: &HttpRequest,
    cache_control: &HeaderValue,
    Answer { tile, origin }: &Answer,
    metrics: &Metrics,
) -> HttpResponse {
    let matches = super::if_none_match_holds(req, tile.etag());
    let mut response = if matches {
        metrics.not_modified.inc();
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    response
        .insert_header((header::ETAG, super::etag_header(tile.etag())))
        .insert_header((header::CACHE_CONTROL, cache_control.clone()))
        .insert_header((X_CACHE, HeaderValue::from_static(origin.header())));
    if matches {
        response.finish()
    } else {
        response.content_type("image/png").body(tile.png.clone())
    }
}

/// Parses and range-checks z/x/y from the path.
pub fn parse_tile_coord(z: &str, x: &str, y: &str) -> Result<TileCoord, StyleError> {
    let z = parse_int("z", z, 0..=MAX_ZOOM as u32)? as u8;
    let last = (TileCoord::count(z) - 1) as u32;
    let x = parse_int("x", x, 0..=last).map_err(|e| at_zoom(e, z))?;
    let y = parse_int("y", y, 0..=last).map_err(|e| at_zoom(e, z))?;
    Ok(TileCoord { z, x, y })
}

fn at_zoom(err: StyleError, z: u8) -> StyleError {
    match err {
        StyleError::BadParam { param, detail } => StyleError::BadParam {
            param,
            detail: format!(
                "{detail} (tiles per axis at zoom {z}: {})",
                TileCoord::count(z)
            ),
        },
        other => other,
    }
}

/// `GET /heatmap.png?layer=L&bbox=w,s,e,n&width=W&height=H[&style params]`.
pub async fn overlay(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    // The layer (and so its filter parameters) is known only from the query itself.
    let layer_name = form_urlencoded::parse(req.query_string().as_bytes())
        .find(|(k, _)| k == "layer")
        .map(|(_, v)| v.into_owned())
        .ok_or_else(|| ApiError::bad("layer", "required: a layer name (see /layers)"))?;
    let layer = state.layer(&layer_name).await?;
    let defs = layer.source.filters();
    let query = parse_with_filters(
        req.query_string(),
        &[OVERLAY_PARAMS, STYLE_PARAMS],
        &defs,
        layer.source.attribute_schema(),
    )?;
    let area = parse_bbox(&query)?;
    let width = query.int("width", 1..=MAX_OVERLAY_SIDE, 1024)?;
    let height = query.int("height", 1..=MAX_OVERLAY_SIDE, 1024)?;
    let style = StyleSpec::from_query(&query)?;
    let filters = parse_filters(&defs, layer.source.attribute_schema(), &query)?;
    let overlay = OverlayRequest {
        layer,
        area,
        width,
        height,
        style,
        filters,
    };
    let answer = {
        // Held while the points are read and the image is drawn, so queued overlays hold
        // neither points nor buffers.
        let _room = state
            .overlay_budget
            .reserve(u64::from(width) * u64::from(height))
            .await?;
        state.tiles().overlay(&overlay).await?
    };
    Ok(cached_response(
        &req,
        &state.tile_cache_control,
        &answer,
        &state.metrics,
    ))
}
