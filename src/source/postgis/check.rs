//! Whether a declared table can be drawn: the table, its columns and their types, read from
//! the catalog (and a sample of rows for a column of any geometry type); and what a layer last
//! found, logged once per change.

use super::table_sql::TableLayout;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use tokio_postgres::GenericClient;

/// Rows of a column declared as plain `geometry` whose types are looked at: enough to catch
/// a table of polygons, or of points and polygons mixed, without scanning a large table.
const GEOMETRY_SAMPLE: i64 = 1000;

/// What keeps a declared table from being drawn, in words that name the table and column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem(pub String);

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn column_problem(layout: &TableLayout, role: &str, column: &str, what: &str) -> Problem {
    Problem(format!(
        "{role} column {column} of {}: {what}",
        layout.table.key()
    ))
}

/// Looks at `layout`'s table in the catalog: None when it can be drawn. Checks the table
/// (exists, readable by this role), the geometry column (a PostGIS geometry of points: a
/// POINT column, or a plain `geometry` column whose sampled rows are points; MULTIPOINT and
/// every other type are refused), the weight (a number), `seq` (an integer), each filter
/// column (a type filters support), the time column (timestamptz, timestamp or date) and the
/// category columns (not geometries).
pub async fn check_layout(
    client: &impl GenericClient,
    layout: &TableLayout,
) -> Result<Option<Problem>, tokio_postgres::Error> {
    let table = layout.table.quoted();
    let row = client
        .query_one(
            "SELECT to_regclass($1) IS NOT NULL, \
             coalesce(has_table_privilege(to_regclass($1), 'SELECT'), false)",
            &[&table],
        )
        .await?;
    let (exists, readable): (bool, bool) = (row.get(0), row.get(1));
    if !exists {
        return Ok(Some(Problem(format!(
            "table {} does not exist",
            layout.table.key()
        ))));
    }
    if !readable {
        return Ok(Some(Problem(format!(
            "table {}: the server's database role may not read it (GRANT SELECT ON it)",
            layout.table.key()
        ))));
    }
    // Each column's type as written (`format_type`) and its base type's name.
    let columns: HashMap<String, (String, String)> = client
        .query(
            "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), t.typname::text \
             FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid \
             WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped",
            &[&table],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2))))
        .collect();
    let type_of = |role: &str, column: &str| {
        columns
            .get(column)
            .ok_or_else(|| column_problem(layout, role, column, "no such column"))
    };
    let geometry = layout.geometry.as_str();
    let (written, base) = match type_of("geometry", geometry) {
        Ok(t) => t,
        Err(p) => return Ok(Some(p)),
    };
    if base != "geometry" {
        let what = format!("is {written}, not a PostGIS geometry");
        return Ok(Some(column_problem(layout, "geometry", geometry, &what)));
    }
    if let Some(problem) = check_geometry_type(client, layout).await? {
        return Ok(Some(problem));
    }
    if let Some(weight) = &layout.weight {
        match type_of("weight", weight.as_str()) {
            Err(p) => return Ok(Some(p)),
            Ok((written, base)) if !is_number(base) => {
                let what = format!("is {written}, not a number");
                return Ok(Some(column_problem(
                    layout,
                    "weight",
                    weight.as_str(),
                    &what,
                )));
            }
            Ok(_) => {}
        }
    }
    if let Some(seq) = &layout.seq {
        match type_of("seq", seq.as_str()) {
            Err(p) => return Ok(Some(p)),
            Ok((written, base)) if !matches!(base.as_str(), "int2" | "int4" | "int8") => {
                let what = format!("is {written}, not an integer");
                return Ok(Some(column_problem(layout, "seq", seq.as_str(), &what)));
            }
            Ok(_) => {}
        }
    }
    for filter in layout.filters.iter() {
        let role = format!("filter `{}`", filter.param);
        match type_of(&role, filter.column.as_str()) {
            Err(p) => return Ok(Some(p)),
            Ok((written, _)) if crate::source::filter::ColumnType::from_pg(written).is_none() => {
                let what = format!("is {written}, which filters do not support");
                return Ok(Some(column_problem(
                    layout,
                    &role,
                    filter.column.as_str(),
                    &what,
                )));
            }
            Ok(_) => {}
        }
    }
    if let Some(time) = &layout.attributes.time {
        match type_of("time", time.as_str()) {
            Err(p) => return Ok(Some(p)),
            Ok((written, base))
                if !matches!(base.as_str(), "timestamptz" | "timestamp" | "date") =>
            {
                let what = super::attributes::not_a_time(written);
                return Ok(Some(column_problem(layout, "time", time.as_str(), &what)));
            }
            Ok(_) => {}
        }
    }
    for category in &layout.attributes.categories {
        match type_of("category", category.as_str()) {
            Err(p) => return Ok(Some(p)),
            // Any value a category can be compared by as text; geometries would be their
            // hexadecimal bytes.
            Ok((written, base)) if matches!(base.as_str(), "geometry" | "geography") => {
                let what = format!("is {written}; categories are text (or cast to text)");
                return Ok(Some(column_problem(
                    layout,
                    "category",
                    category.as_str(),
                    &what,
                )));
            }
            Ok(_) => {}
        }
    }
    Ok(None)
}

fn is_number(base_type: &str) -> bool {
    matches!(
        base_type,
        "int2" | "int4" | "int8" | "float4" | "float8" | "numeric"
    )
}

/// The geometry column's declared type (geometry_columns): POINT (with Z or M too) is drawn;
/// plain GEOMETRY is drawn when a sample of its rows holds points only; anything else
/// (MULTIPOINT included: its members would need ST_Dump, see docs/postgis.md) is refused.
async fn check_geometry_type(
    client: &impl GenericClient,
    layout: &TableLayout,
) -> Result<Option<Problem>, tokio_postgres::Error> {
    let geometry = layout.geometry.as_str();
    let declared: Option<String> = client
        .query_opt(
            "SELECT upper(type) FROM geometry_columns \
             WHERE f_table_schema = $1 AND f_table_name = $2 AND f_geometry_column = $3",
            &[
                &layout.table.schema.as_str(),
                &layout.table.table.as_str(),
                &geometry,
            ],
        )
        .await?
        .map(|r| r.get(0));
    let declared = declared.unwrap_or_else(|| "GEOMETRY".to_string());
    let is_point = |t: &str| t.starts_with("POINT");
    if is_point(&declared) {
        return Ok(None);
    }
    if declared != "GEOMETRY" {
        let what = format!("is a {declared} column; only points can be drawn");
        return Ok(Some(column_problem(layout, "geometry", geometry, &what)));
    }
    let other: Option<String> = client
        .query_opt(
            &format!(
                "SELECT upper(GeometryType(g)) FROM (SELECT {geom} AS g FROM {table} \
                 WHERE {geom} IS NOT NULL LIMIT {GEOMETRY_SAMPLE}) s \
                 WHERE upper(GeometryType(g)) NOT LIKE 'POINT%' LIMIT 1",
                geom = layout.geometry.quoted(),
                table = layout.table.quoted(),
            ),
            &[],
        )
        .await?
        .map(|r| r.get(0));
    Ok(other.map(|t| {
        let what =
            format!("holds {t} geometries (a mixed geometry column); only points can be drawn");
        column_problem(layout, "geometry", geometry, &what)
    }))
}

/// A layer's last known problem, logged when it appears, changes or goes: once per change,
/// not at every look.
#[derive(Default)]
pub struct ProblemState {
    /// Whether there is a problem, read without the lock: every memory hit of the layer's
    /// tiles asks, and almost always there is none.
    present: AtomicBool,
    problem: Mutex<Option<Problem>>,
}

impl ProblemState {
    pub fn get(&self) -> Option<Problem> {
        if !self.present.load(Ordering::Acquire) {
            return None;
        }
        self.lock().clone()
    }

    /// Records what the latest check found; true when that changed the state.
    pub fn record(&self, layer: &str, found: Option<Problem>) -> bool {
        let mut state = self.lock();
        if *state == found {
            return false;
        }
        match &found {
            Some(problem) => tracing::error!(
                layer,
                %problem,
                "layer misconfigured: its tiles, points and overlays answer 500 until the table or the config is fixed"
            ),
            None => tracing::info!(layer, "layer no longer misconfigured: served again"),
        }
        self.present.store(found.is_some(), Ordering::Release);
        *state = found;
        true
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Problem>> {
        // Each use reads or writes the whole value, so a poisoned lock still holds a valid one.
        self.problem.lock().unwrap_or_else(|e| e.into_inner())
    }
}
