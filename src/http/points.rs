//! Raw points for client-side heatmaps (Leaflet.heat at high zoom): per tile, padded by the
//! client kernel's reach, or per bbox (the seed's `png=false` answer).

use super::error::ApiError;
use super::tiles::parse_tile_coord;
use super::AppState;
use crate::service::{points_json, PointsRequest};
use crate::source::aggregate::PointsAnswer;
use crate::style::{
    parse_bbox, parse_filters, parse_int, parse_with_filters, Query, StyleError, BBOX_POINT_PARAMS,
    MAX_BLUR, MAX_RADIUS, TILE_POINT_PARAMS,
};
use crate::tile::{TileCoord, WorldBox, MAX_ZOOM};
use actix_web::http::header::ContentType;
use actix_web::{web, HttpRequest, HttpResponse};

/// `GET /points/{layer}/{z}/{x}/{y}.json[?limit=N&radius=R&blur=B]`.
pub async fn tile_points(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String, String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (layer_name, z, x, file) = path.into_inner();
    let y = file
        .strip_suffix(".json")
        .ok_or_else(|| ApiError::bad("y", "the points tile name must be {y}.json"))?;
    let coord = parse_tile_coord(&z, &x, y)?;
    let layer = state.layer(&layer_name).await?;
    let defs = layer.source.filters();
    let query = parse_with_filters(
        req.query_string(),
        &[TILE_POINT_PARAMS],
        &defs,
        layer.source.attribute_schema(),
    )?;
    let limit = limit(&state, &query)?;
    // Leaflet.heat draws points up to radius + blur pixels outside its canvas.
    let reach_px =
        (query.int("radius", 1..=MAX_RADIUS, 25)? + query.int("blur", 0..=MAX_BLUR, 15)?) as f64;
    let filters = parse_filters(&defs, layer.source.attribute_schema(), &query)?;
    let vp = coord.viewport(1);
    let request = PointsRequest {
        layer,
        area: WorldBox::of_viewport(&vp, reach_px),
        tile: Some((coord, reach_px / vp.width as f64)),
        filters,
        limit,
        pixel_scale: vp.scale_x,
    };
    answer(&state, request, |points| points).await
}

/// `GET /points/{layer}?bbox=w,s,e,n[&limit=N&zoom=Z]`: bins, when needed, are pixels of
/// `zoom` (default: the zoom at which the bbox is about 1024 pixels wide).
pub async fn bbox_points(
    state: web::Data<AppState>,
    req: HttpRequest,
    layer: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let layer = state.layer(&layer).await?;
    let defs = layer.source.filters();
    let query = parse_with_filters(
        req.query_string(),
        &[BBOX_POINT_PARAMS],
        &defs,
        layer.source.attribute_schema(),
    )?;
    let area = parse_bbox(&query)?;
    let limit = limit(&state, &query)?;
    let pixel_scale = match query.get("zoom") {
        Some(z) => {
            256.0 * TileCoord::count(parse_int("zoom", z, 0..=MAX_ZOOM as u32)? as u8) as f64
        }
        None => 1024.0 / (area.x1 - area.x0),
    };
    let filters = parse_filters(&defs, layer.source.attribute_schema(), &query)?;
    let request = PointsRequest {
        layer,
        area,
        tile: None,
        filters,
        limit,
        pixel_scale,
    };
    answer(&state, request, |points| points).await
}

/// The JSON answer to `request`, reshaped by `shape`, made off the I/O workers within the
/// points budget (a 503 with `Retry-After` when it stays full). `/points` and the proof of
/// concept's `png=false` answer both come here.
pub(super) async fn answer<T, F>(
    state: &AppState,
    request: PointsRequest,
    shape: F,
) -> Result<HttpResponse, ApiError>
where
    T: serde::Serialize,
    F: FnOnce(PointsAnswer) -> T + Send + 'static,
{
    let _room = state.points_budget.reserve().await?;
    let json = points_json(request, shape).await?;
    Ok(HttpResponse::Ok()
        .insert_header(ContentType::json())
        .body(json))
}

fn limit(state: &AppState, query: &Query) -> Result<u32, StyleError> {
    query.int(
        "limit",
        1..=state.points_limit_max,
        state.points_limit_default,
    )
}
