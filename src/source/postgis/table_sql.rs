//! The SQL of a table layer: how the table's SRID turns a query's area (world units) into an
//! envelope the GiST index answers in the table's own SRID, and its rows into world points,
//! learned once from the database ([`resolve`]).
//!
//! A table in any SRID is read as the same points a file would give: the envelope never
//! crosses the antimeridian (see [`Frame`]), and every point is then checked in world units
//! against the area, so an envelope only has to hold the area's points, never to be exact.

use super::attributes::{attribute_conditions, AttributeColumns};
use super::reference::{CellWeight, CellWeights};
use super::{DbError, Ident, TableName};
use crate::source::filter::{ColumnType, FilterDef};
use crate::source::grid::CountGrid;
use crate::tile::{world_x_to_lon, world_y_to_lat, WorldBox, HALF_WORLD_M, MAX_LAT};
use std::sync::Arc;
use tokio_postgres::types::ToSql;
use tokio_postgres::GenericClient;

/// How a layer maps onto its table (from `import`'s registry or the config).
#[derive(Debug, Clone)]
pub struct TableLayout {
    pub table: TableName,
    pub geometry: Ident,
    pub weight: Option<Ident>,
    /// A column giving the points' order (imported tables have `seq`).
    pub seq: Option<Ident>,
    /// Shared with every request until the database gives the columns' types.
    pub filters: Arc<[FilterDef]>,
    pub attribution: Option<String>,
    /// The time and category columns requests may filter on (`from`, `to`, `category`).
    pub attributes: AttributeColumns,
}

/// How a table's SRID relates to Web Mercator: it decides how a query's area (world units)
/// becomes an envelope the GiST index can answer in the table's own SRID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Frame {
    /// EPSG:3857: `ST_TileEnvelope` or a box in metres, as they are.
    WebMercator,
    /// Longitude and latitude in degrees (4326, 4269, any geographic SRID). A Web Mercator
    /// rectangle is exactly a lon/lat rectangle, so the envelope is built in degrees, clipped
    /// to the world: transforming a Mercator envelope that reaches past ±180° into degrees
    /// would wrap it around the antimeridian and select the wrong strip.
    Geographic,
    /// Any other (projected) SRID: the area, clipped to the table's extent, is densified and
    /// transformed. Outside a projection's area PROJ folds or fails, so an area is never
    /// carried beyond where the table's points are.
    Projected,
}

/// Envelopes in degrees are widened by this much so that no point on an area's edge is
/// missed by rounding (PROJ's Mercator and ours differ in the last bits); the exact test in
/// world units decides. 1e-9° is about 0.1 mm.
const DEGREES_SLACK: f64 = 1e-9;

/// What is learned from the database on first contact: the SRID and the filter types.
#[derive(Debug, Clone)]
pub(super) struct Resolved {
    pub(super) frame: Frame,
    /// Queries yielding x, y (world units), w, seq within a tile envelope ($1..$4: z, x, y,
    /// margin; Web Mercator tables only) or a box ($1..$4: metres for Web Mercator and
    /// projected tables, degrees for geographic ones), then one parameter per declared filter
    /// ($5...), then those of the time window and categories
    /// ([`super::attributes::attribute_conditions`]), then, for tables not in Web Mercator,
    /// the area in world units (x0, y0, x1, y1) that every point is checked against.
    pub(super) inner_tile: String,
    pub(super) inner_box: String,
    /// The whole table, no parameters (statistics).
    pub(super) inner_all: String,
    /// The same with each point's time (`t`, seconds since 1970; NULL without one), for the
    /// time pyramid.
    pub(super) inner_all_timed: String,
    /// The declared filters with their columns' types, shared by every request.
    pub(super) filters: Arc<[FilterDef]>,
    /// The time column's type (date, timestamp or timestamptz), when the layer has one.
    pub(super) time_type: Option<ColumnType>,
    /// The conditions of [`Self::inner_all`] on the table's own rows (which rows are points
    /// at all), for queries of their attributes.
    pub(super) where_all: String,
}

/// `area` ∩ `within`, edges included; None when they do not meet.
pub(super) fn clip(area: &WorldBox, within: &WorldBox) -> Option<WorldBox> {
    let clipped = WorldBox {
        x0: area.x0.max(within.x0),
        y0: area.y0.max(within.y0),
        x1: area.x1.min(within.x1),
        y1: area.y1.min(within.y1),
    };
    // Written so that NaN gives None.
    (clipped.x0 <= clipped.x1 && clipped.y0 <= clipped.y1).then_some(clipped)
}

/// West, south, east, north in Web Mercator metres.
pub(super) fn metres_envelope(area: &WorldBox) -> [f64; 4] {
    let (x0, y0) = crate::tile::world_to_metres(area.x0, area.y1);
    let (x1, y1) = crate::tile::world_to_metres(area.x1, area.y0);
    [x0, y0, x1, y1]
}

/// West, south, east, north in degrees of an area within the world, a little wider (see
/// [`DEGREES_SLACK`]) but never past ±180°. An envelope that reaches the world's north or
/// south edge (±85.0511°) reaches the pole: points beyond are drawn on that edge.
pub(super) fn degrees_envelope(area: &WorldBox) -> [f64; 4] {
    let west = (world_x_to_lon(area.x0) - DEGREES_SLACK).max(-180.0);
    let east = (world_x_to_lon(area.x1) + DEGREES_SLACK).min(180.0);
    let north = world_y_to_lat(area.y0) + DEGREES_SLACK;
    let south = world_y_to_lat(area.y1) - DEGREES_SLACK;
    [
        west,
        if south <= -MAX_LAT { -90.0 } else { south },
        east,
        if north >= MAX_LAT { 90.0 } else { north },
    ]
}

/// Where the memory store puts a point beyond the north or south edge: y of ±[`MAX_LAT`]
/// after the same round trip through metres (0 and 1 - 2^-52, not 1). A geographic table's
/// such points get these very values, so that every area holds them or not as a file's.
pub(super) fn edge_y() -> (f64, f64) {
    use crate::tile::{lat_to_world_y, metres_to_world, world_to_metres};
    let edge = |lat: f64| {
        let (mx, my) = world_to_metres(0.5, lat_to_world_y(lat));
        metres_to_world(mx, my).1
    };
    (edge(MAX_LAT), edge(-MAX_LAT))
}

/// Four bound values, or four NULLs.
pub(super) fn option_array(values: Option<[f64; 4]>) -> [Option<f64>; 4] {
    values.map_or([None; 4], |v| v.map(Some))
}

/// The query of a table with geometry SRID `srid` yielding world units: points within
/// `envelope` (none: the whole table, for statistics) that pass the declared filters
/// (`$5...`) and the time and category conditions, and, outside Web Mercator, lie in the
/// area given after them.
pub(super) fn inner_sql(
    layout: &TableLayout,
    srid: i32,
    frame: Frame,
    envelope: Option<&str>,
    filters: &[FilterDef],
    time_type: Option<ColumnType>,
    timed: Timed,
) -> String {
    let geom = layout.geometry.quoted();
    let lat = MAX_LAT;
    let point = match frame {
        Frame::WebMercator => geom.clone(),
        // Latitudes beyond Web Mercator's square are moved to its edge before transforming,
        // as a file's are: PROJ maps the poles to a finite but meaningless y (and other PROJ
        // versions refuse them), never to the edge.
        Frame::Geographic => format!(
            "ST_Transform(CASE WHEN ST_Y({geom}) > {lat:?} THEN ST_SetSRID(ST_MakePoint(ST_X({geom}), {lat:?}), {srid}) \
             WHEN ST_Y({geom}) < -{lat:?} THEN ST_SetSRID(ST_MakePoint(ST_X({geom}), -{lat:?}), {srid}) \
             ELSE {geom} END, 3857)"
        ),
        Frame::Projected => format!("ST_Transform({geom}, 3857)"),
    };
    // A NULL weight says nothing, as a file's point without one: it weighs 1.
    let weight = layout.weight.as_ref().map_or("1::float4".to_string(), |w| {
        format!("coalesce({}::float4, 1::float4)", w.quoted())
    });
    let seq = layout.seq.as_ref().map_or("0::int8".to_string(), |s| {
        format!("coalesce({}::int8, 0::int8)", s.quoted())
    });
    // The time in seconds since 1970 (UTC for a column without a zone) and the category
    // columns as text (`c0`, `c1`, ...; NULL as ''), for the time pyramid.
    let (time_in, time_out) = match (timed, &layout.attributes.time) {
        (Timed::WithTime, Some(time)) => {
            let mut inner = format!(", extract(epoch FROM {})::float8 AS t", time.quoted());
            let mut outer = String::from(", t");
            for (i, column) in layout.attributes.categories.iter().enumerate() {
                inner.push_str(&format!(
                    ", coalesce({}::text, '') AS c{i}",
                    column.quoted()
                ));
                outer.push_str(&format!(", c{i}"));
            }
            (inner, outer)
        }
        _ => (String::new(), String::new()),
    };
    let mut conditions = vec![format!("{geom} IS NOT NULL")];
    match (envelope, frame) {
        (Some(envelope), _) => {
            let envelope = match frame {
                Frame::WebMercator | Frame::Geographic => envelope.to_string(),
                // The transformed box must hold the image of the whole rectangle, whose
                // sides curve in the table's SRID. Transforming the corners only missed
                // 560 km of a 6,000 km box in LAEA Europe (3035); densified to 64
                // segments a side it misses at most 1/80,000th of the side (77 m), and a
                // 1/256th of the side (in Web Mercator metres, never shorter than the
                // table's metres or feet) is added. Points are then checked exactly.
                Frame::Projected => format!(
                    "ST_Expand(ST_Transform(ST_Segmentize({envelope}, \
                     greatest($3::float8 - $1::float8, $4::float8 - $2::float8, 1) / 64), {srid}), \
                     greatest($3::float8 - $1::float8, $4::float8 - $2::float8, 1) / 256)"
                ),
            };
            // The GiST index answers `&&` on the raw column.
            conditions.push(format!("{geom} && {envelope}"));
            for (i, def) in filters.iter().enumerate() {
                let cast = def.ty.map_or("text", ColumnType::cast);
                // "$n IS NULL OR column op $n": one statement serves any set of given filters.
                let n = 5 + i;
                conditions.push(format!(
                    "(${n}::{cast} IS NULL OR {} {} ${n}::{cast})",
                    def.column.quoted(),
                    def.op.sql()
                ));
            }
            conditions.extend(attribute_conditions(
                &layout.attributes,
                time_type,
                5 + filters.len(),
            ));
        }
        (None, _) => conditions = whole_table_conditions(layout, srid, frame),
    }
    let half = HALF_WORLD_M;
    let size = 2.0 * HALF_WORLD_M;
    let table = layout.table.quoted();
    let conditions = conditions.join(" AND ");
    // World units exactly as tile::metres_to_world computes them, in float8.
    let mut y = format!("({half:?}::float8 - ST_Y(p)) / {size:?}::float8");
    let mut latitude = String::new();
    if frame == Frame::Geographic {
        let (north, south) = edge_y();
        y = format!(
            "CASE WHEN lat >= {lat:?} THEN {north:?}::float8 WHEN lat <= -{lat:?} THEN {south:?}::float8 ELSE {y} END"
        );
        latitude = format!(", ST_Y({geom}) AS lat");
    }
    // Outside Web Mercator, `OFFSET 0` keeps the planner from pushing the tests on x and y
    // below the transform, which would repeat it for each test (five times a row).
    let fence = if frame == Frame::WebMercator {
        ""
    } else {
        " OFFSET 0"
    };
    let points = format!(
        "SELECT (ST_X(p) + {half:?}::float8) / {size:?}::float8 AS x, {y} AS y, w, seq{time_out} \
         FROM (SELECT {point} AS p{latitude}, {weight} AS w, {seq} AS seq{time_in} \
         FROM {table} WHERE {conditions}{fence}) q"
    );
    if frame == Frame::WebMercator {
        return points;
    }
    // Transformed points are checked against the area in world units, as the memory store
    // checks its points: the envelope only has to hold them. y is moved onto the world's
    // edge when rounding (or a projected point beyond ±85.0511°) puts it past; NaN and
    // infinite coordinates (transforms of junk) are dropped.
    let area = match envelope {
        Some(_) => {
            let n = 5 + filters.len() + layout.attributes.param_count();
            [n, n + 1, n + 2, n + 3].map(|i| format!("${i}::float8"))
        }
        None => ["0", "0", "1", "1"].map(|v| format!("{v}::float8")),
    };
    format!(
        "SELECT x, y, w, seq{time_out} FROM (SELECT x, least(greatest(y, 0::float8), 1::float8) AS y, w, seq{time_out} \
         FROM ({points}) t WHERE abs(y) < 'Infinity'::float8) c \
         WHERE x >= {} AND x <= {} AND y >= {} AND y <= {}",
        area[0], area[2], area[1], area[3]
    )
}

/// Which of a table's rows are points to draw, whatever the area.
fn whole_table_conditions(layout: &TableLayout, srid: i32, frame: Frame) -> Vec<String> {
    let geom = layout.geometry.quoted();
    let drawable = match frame {
        // The whole table: empty points have no coordinates to count (`&&` skips them).
        Frame::WebMercator | Frame::Projected => format!("NOT ST_IsEmpty({geom})"),
        // The whole world in degrees: longitudes past ±180° are not drawn (a file cannot
        // hold them), and neither are NaN, infinite or empty points.
        Frame::Geographic => format!("{geom} && ST_MakeEnvelope(-180, -90, 180, 90, {srid})"),
    };
    vec![format!("{geom} IS NOT NULL"), drawable]
}

/// The layout of a table `twine-heatmap import` created.
pub fn imported_layout(
    table: TableName,
    attribution: Option<String>,
    attributes: AttributeColumns,
) -> Result<TableLayout, DbError> {
    Ok(TableLayout {
        table,
        geometry: Ident::new("geom")?,
        weight: Some(Ident::new("weight")?),
        seq: Some(Ident::new("seq")?),
        filters: Arc::from([]),
        attribution,
        attributes,
    })
}

/// The query of all points of an imported table (geometry in EPSG:3857), for statistics.
pub fn imported_inner_all(table: &TableName) -> Result<String, DbError> {
    Ok(inner_sql(
        &imported_layout(table.clone(), None, AttributeColumns::default())?,
        3857,
        Frame::WebMercator,
        None,
        &[],
        None,
        Timed::No,
    ))
}

/// [`imported_inner_all`] with each point's time (`t`, seconds since 1970) from `time`, a
/// timestamptz column, and its `categories` (`c0`, `c1`, ...), for the time pyramid.
pub fn imported_inner_all_timed(
    table: &TableName,
    time: &Ident,
    categories: &[Ident],
) -> Result<String, DbError> {
    let attributes = AttributeColumns {
        time: Some(time.clone()),
        categories: categories.to_vec(),
        ..AttributeColumns::default()
    };
    Ok(inner_sql(
        &imported_layout(table.clone(), None, attributes)?,
        3857,
        Frame::WebMercator,
        None,
        &[],
        Some(ColumnType::TimestampTz),
        Timed::WithTime,
    ))
}

/// Whether a point query also yields each point's time (`t`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Timed {
    No,
    WithTime,
}

/// Parameters as the client library takes them.
pub(super) fn params_ref(params: &[Box<dyn ToSql + Sync + Send>]) -> Vec<&(dyn ToSql + Sync)> {
    params
        .iter()
        .map(|p| p.as_ref() as &(dyn ToSql + Sync))
        .collect()
}

pub(super) async fn resolve(
    client: &tokio_postgres::Client,
    layout: &TableLayout,
) -> Result<Resolved, DbError> {
    let declared: i32 = client
        .query_opt(
            "SELECT srid FROM geometry_columns WHERE f_table_schema = $1 AND f_table_name = $2 AND f_geometry_column = $3",
            &[&layout.table.schema.as_str(), &layout.table.table.as_str(), &layout.geometry.as_str()],
        )
        .await?
        .map(|r| r.get(0))
        .ok_or_else(|| {
            DbError::Other(format!(
                "{}: no geometry column {:?} (see geometry_columns)",
                layout.table.key(),
                layout.geometry.as_str()
            ))
        })?;
    let srid = if declared > 0 {
        declared
    } else {
        // A column declared as plain `geometry` has no SRID of its own: its rows say.
        client
            .query_opt(
                &format!(
                    "SELECT ST_SRID({geom}) FROM {table} WHERE {geom} IS NOT NULL LIMIT 1",
                    geom = layout.geometry.quoted(),
                    table = layout.table.quoted()
                ),
                &[],
            )
            .await?
            .map_or(0, |r| r.get(0))
    };
    // Any SRID PostGIS knows; geographic ones are those in degrees of longitude and latitude.
    let geographic: Option<bool> = client
        .query_opt(
            "SELECT coalesce(proj4text ~ '\\+proj=(longlat|latlong)\\M' \
             OR srtext LIKE 'GEOGCS[%' OR srtext LIKE 'GEOGCRS[%', false) \
             FROM spatial_ref_sys WHERE srid = $1",
            &[&srid],
        )
        .await?
        .map(|r| r.get(0));
    let frame = match geographic {
        _ if srid == 3857 => Frame::WebMercator,
        Some(true) => Frame::Geographic,
        Some(false) => Frame::Projected,
        None if srid == 0 => {
            return Err(DbError::Other(format!(
                "{}.{}: the geometries have no SRID (the column declares none and its rows say \
                 0, or it has no rows yet); declare it, e.g. geometry(Point, 4326)",
                layout.table.key(),
                layout.geometry.as_str()
            )))
        }
        None => {
            return Err(DbError::Other(format!(
                "{}.{}: SRID {srid} is not in spatial_ref_sys, so PostGIS cannot transform it",
                layout.table.key(),
                layout.geometry.as_str()
            )))
        }
    };
    let mut filters = Vec::new();
    for def in layout.filters.iter() {
        let ty: Option<String> = client
            .query_opt(
                "SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a \
                 WHERE a.attrelid = to_regclass($1) AND a.attname = $2 AND NOT a.attisdropped",
                &[&layout.table.quoted(), &def.column.as_str()],
            )
            .await?
            .map(|r| r.get(0));
        let ty = ty.ok_or_else(|| {
            DbError::Other(format!(
                "{}: no column {:?}",
                layout.table.key(),
                def.column.as_str()
            ))
        })?;
        let ty = ColumnType::from_pg(&ty).ok_or_else(|| {
            DbError::Other(format!(
                "{}.{}: filters on type {ty} are not supported",
                layout.table.key(),
                def.column.as_str()
            ))
        })?;
        filters.push(FilterDef {
            ty: Some(ty),
            ..def.clone()
        });
    }
    let filters: Arc<[FilterDef]> = filters.into();
    let time_type =
        super::attributes::resolve_time_type(client, &layout.table, &layout.attributes).await?;
    // The WHERE of the filters is appended after the inner query's envelope test.
    let tile = "ST_TileEnvelope($1::int4, $2::int4, $3::int4, margin => $4::float8)";
    let bbox = match frame {
        Frame::Geographic => {
            format!("ST_MakeEnvelope($1::float8, $2::float8, $3::float8, $4::float8, {srid})")
        }
        Frame::WebMercator | Frame::Projected => {
            "ST_MakeEnvelope($1::float8, $2::float8, $3::float8, $4::float8, 3857)".to_string()
        }
    };
    Ok(Resolved {
        frame,
        inner_tile: inner_sql(
            layout,
            srid,
            frame,
            Some(tile),
            &filters,
            time_type,
            Timed::No,
        ),
        inner_box: inner_sql(
            layout,
            srid,
            frame,
            Some(&bbox),
            &filters,
            time_type,
            Timed::No,
        ),
        inner_all: inner_sql(layout, srid, frame, None, &filters, time_type, Timed::No),
        inner_all_timed: inner_sql(
            layout,
            srid,
            frame,
            None,
            &filters,
            time_type,
            Timed::WithTime,
        ),
        where_all: whole_table_conditions(layout, srid, frame).join(" AND "),
        filters,
        time_type,
    })
}

/// What one scan of a whole table tells: the count grid's cells, and the bounds (world
/// units) and number of its points.
pub struct TableStats {
    pub grid: CountGrid,
    /// The same cells' rows and weights, for density references (see [`super::reference`]).
    pub cells: CellWeights,
    /// None for an empty table.
    pub bounds: Option<WorldBox>,
}

/// Scans every point of `inner_all` (an [`inner_sql`] query without envelope) once.
pub async fn scan_stats(
    client: &impl GenericClient,
    inner_all: &str,
) -> Result<TableStats, tokio_postgres::Error> {
    scan_stats_with(client, inner_all, &[]).await
}

/// [`scan_stats`] of an inner query with parameters.
pub(super) async fn scan_stats_with(
    client: &impl GenericClient,
    inner_all: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<TableStats, tokio_postgres::Error> {
    let cells = 1u32 << crate::source::grid::LEVEL;
    let sql = format!(
        "SELECT floor(x * {cells})::int8, floor(y * {cells})::int8, count(*)::int8, \
         min(x), min(y), max(x), max(y), \
         coalesce(sum(w::float8) FILTER (WHERE w > 0 AND w < 'Infinity'::float4), 0) \
         FROM ({inner_all}) s GROUP BY 1, 2"
    );
    let rows = client.query(&sql, params).await?;
    let mut cells = Vec::with_capacity(rows.len());
    let mut weights = Vec::with_capacity(rows.len());
    let (mut x0, mut y0, mut x1, mut y1) = (f64::MAX, f64::MAX, f64::MIN, f64::MIN);
    for row in &rows {
        let (cx, cy, n): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
        let n = n.max(0) as u64;
        cells.push((CountGrid::clamp_cell(cx), CountGrid::clamp_cell(cy), n));
        weights.push(CellWeight {
            cx,
            cy,
            rows: n,
            weight: row.get(7),
        });
        x0 = x0.min(row.get(3));
        y0 = y0.min(row.get(4));
        x1 = x1.max(row.get(5));
        y1 = y1.max(row.get(6));
    }
    Ok(TableStats {
        grid: CountGrid::from_cells(cells),
        cells: CellWeights::new(weights),
        bounds: (!rows.is_empty()).then_some(WorldBox { x0, y0, x1, y1 }),
    })
}
