//! Time and category columns of a PostGIS layer: the SQL conditions a request's window and
//! categories add to every point query (bound parameters, never SQL text), their values, the
//! time column's type from the catalog, and the layer's summary for TileJSON.

use super::{DbError, Ident, TableName};
use crate::source::attributes::{
    AttributeFilter, AttributeSchema, AttributeSummary, CategorySummary, TimeBucket, TimeSummary,
    MAX_LISTED_VALUES,
};
use crate::source::filter::ColumnType;
use chrono::{DateTime, Utc};
use tokio_postgres::types::ToSql;
use tokio_postgres::GenericClient;

/// A layer's time column and category columns, by their names in the table (which are also
/// their names in requests: `category.COLUMN=`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AttributeColumns {
    pub time: Option<Ident>,
    pub categories: Vec<Ident>,
    /// The time step TileJSON announces when configured (`time_bucket`).
    pub time_bucket: Option<TimeBucket>,
}

impl AttributeColumns {
    /// The columns named so, each checked as an SQL identifier.
    pub fn new(
        time: Option<&str>,
        categories: &[String],
        time_bucket: Option<TimeBucket>,
    ) -> Result<AttributeColumns, DbError> {
        Ok(AttributeColumns {
            time: time.map(Ident::new).transpose()?,
            categories: categories
                .iter()
                .map(|c| Ident::new(c))
                .collect::<Result<_, _>>()?,
            time_bucket,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.time.is_none() && self.categories.is_empty()
    }

    /// What requests may filter on, None when nothing.
    pub fn schema(&self) -> Option<AttributeSchema> {
        (!self.is_empty()).then(|| AttributeSchema {
            time: self.time.as_ref().map(|t| t.as_str().to_owned()),
            categories: self
                .categories
                .iter()
                .map(|c| c.as_str().to_owned())
                .collect(),
            time_bucket: self.time_bucket,
        })
    }

    /// How many parameters [`attribute_conditions`] takes: `from` and `to` with a time
    /// column, one accepted-values array per category column.
    pub(super) fn param_count(&self) -> usize {
        2 * usize::from(self.time.is_some()) + self.categories.len()
    }
}

/// The conditions of a point query on the layer's attributes, with parameters from `$first`:
/// `[from, to)` on the time column (a row without a time is outside every window), then per
/// category column the accepted values (a NULL counts as the empty value, as an empty field of
/// a file does). A NULL parameter is no condition, so one statement serves every filter.
pub(super) fn attribute_conditions(
    columns: &AttributeColumns,
    time_type: Option<ColumnType>,
    first: usize,
) -> Vec<String> {
    let mut conditions = Vec::new();
    let mut n = first;
    if let Some(time) = &columns.time {
        let cast = instant_cast(time_type);
        let column = time.quoted();
        conditions.push(format!(
            "(${n}::{cast} IS NULL OR {column} >= ${n}::{cast})"
        ));
        let m = n + 1;
        conditions.push(format!("(${m}::{cast} IS NULL OR {column} < ${m}::{cast})"));
        n += 2;
    }
    for column in &columns.categories {
        conditions.push(format!(
            "(${n}::text[] IS NULL OR coalesce({}::text, '') = ANY(${n}::text[]))",
            column.quoted()
        ));
        n += 1;
    }
    conditions
}

/// A time column without a zone (timestamp, date) holds UTC times, as a file's times without
/// an offset are read: the window is bound as UTC wall-clock times then.
fn instant_cast(time_type: Option<ColumnType>) -> &'static str {
    match time_type {
        Some(ColumnType::Timestamp | ColumnType::Date) => "timestamp",
        _ => "timestamptz",
    }
}

/// The earliest instant PostgreSQL's timestamps hold (4714-11-24 BC, midnight UTC): windows
/// beginning or ending before it are moved to it, which keeps and drops the same rows.
const EARLIEST_PG_MS: i64 = -210_866_803_200_000;

/// The values of [`attribute_conditions`]' parameters for a request's `filter` (None: no
/// filter, every parameter NULL).
pub(super) fn attribute_params(
    columns: &AttributeColumns,
    time_type: Option<ColumnType>,
    filter: Option<&AttributeFilter>,
) -> Vec<Box<dyn ToSql + Sync + Send>> {
    let mut params: Vec<Box<dyn ToSql + Sync + Send>> = Vec::new();
    if columns.time.is_some() {
        let naive = instant_cast(time_type) == "timestamp";
        for bound in [filter.and_then(|f| f.from), filter.and_then(|f| f.to)] {
            let instant =
                bound.and_then(|ms| DateTime::<Utc>::from_timestamp_millis(ms.max(EARLIEST_PG_MS)));
            params.push(if naive {
                Box::new(instant.map(|d| d.naive_utc()))
            } else {
                Box::new(instant)
            });
        }
    }
    for column in &columns.categories {
        let accepted: Option<Vec<String>> = filter.and_then(|f| {
            f.categories
                .iter()
                .find(|(name, _)| name == column.as_str())
                .map(|(_, values)| values.clone())
        });
        params.push(Box::new(accepted));
    }
    params
}

/// The type of the layer's time column (date, timestamp or timestamptz), None without one.
/// A missing column, or one of another type, is the declaration's fault ([`DbError::Other`]).
pub(super) async fn resolve_time_type(
    client: &impl GenericClient,
    table: &TableName,
    columns: &AttributeColumns,
) -> Result<Option<ColumnType>, DbError> {
    let Some(time) = &columns.time else {
        return Ok(None);
    };
    let written: Option<String> = client
        .query_opt(
            "SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a \
             WHERE a.attrelid = to_regclass($1) AND a.attname = $2 AND NOT a.attisdropped",
            &[&table.quoted(), &time.as_str()],
        )
        .await?
        .map(|r| r.get(0));
    let written = written.ok_or_else(|| {
        DbError::Other(format!(
            "time column {} of {}: no such column",
            time.as_str(),
            table.key()
        ))
    })?;
    match ColumnType::from_pg(&written) {
        Some(t @ (ColumnType::Date | ColumnType::Timestamp | ColumnType::TimestampTz)) => {
            Ok(Some(t))
        }
        _ => Err(DbError::Other(format!(
            "time column {} of {}: {}",
            time.as_str(),
            table.key(),
            not_a_time(&written)
        ))),
    }
}

/// Why a column of type `written` cannot be a time column.
pub(super) fn not_a_time(written: &str) -> String {
    format!("is {written}, not a timestamptz, timestamp or date")
}

/// The layer's time extent and category values over the rows `where_all` keeps (the rows
/// drawn), as TileJSON gives them: the same summary a file of the same points gets.
pub(super) async fn summarize(
    client: &impl GenericClient,
    table: &TableName,
    columns: &AttributeColumns,
    where_all: &str,
) -> Result<AttributeSummary, tokio_postgres::Error> {
    let table = table.quoted();
    let time = match &columns.time {
        Some(column) => {
            // Milliseconds since the epoch, cut as a file's times are; a date or timestamp
            // without a zone is UTC. Infinite times are no extent.
            let ms = |agg: &str| {
                format!(
                    "floor(extract(epoch FROM {agg}({c}) FILTER (WHERE isfinite({c}))) * 1000)::int8",
                    c = column.quoted()
                )
            };
            let row = client
                .query_one(
                    &format!(
                        "SELECT {}, {} FROM {table} WHERE {where_all}",
                        ms("min"),
                        ms("max")
                    ),
                    &[],
                )
                .await?;
            let extent = match (row.try_get(0)?, row.try_get(1)?) {
                (Some(lo), Some(hi)) => Some((lo, hi)),
                _ => None,
            };
            Some(TimeSummary::new(
                column.as_str(),
                extent,
                columns.time_bucket,
            ))
        }
        None => None,
    };
    let mut categories = Vec::with_capacity(columns.categories.len());
    for column in &columns.categories {
        // Most points first, then by value in byte order (COLLATE "C"), as a file's are
        // listed; one more than listed tells nothing, the window count says how many.
        let rows = client
            .query(
                &format!(
                    "SELECT v, n, count(*) OVER ()::int8 FROM (\
                     SELECT coalesce({c}::text, '') AS v, count(*)::int8 AS n \
                     FROM {table} WHERE {where_all} GROUP BY 1) s \
                     ORDER BY n DESC, v COLLATE \"C\" LIMIT {MAX_LISTED_VALUES}",
                    c = column.quoted()
                ),
                &[],
            )
            .await?;
        let mut distinct = 0;
        let mut values = Vec::with_capacity(rows.len());
        for row in &rows {
            let (value, count, all): (String, i64, i64) =
                (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
            values.push((value, count.max(0) as u64));
            distinct = all.max(0) as usize;
        }
        categories.push(CategorySummary {
            column: column.as_str().to_owned(),
            values,
            distinct,
        });
    }
    Ok(AttributeSummary { time, categories })
}

/// The naive UTC wall-clock time of `ms`, for tests.
#[cfg(test)]
fn naive(ms: i64) -> Option<chrono::NaiveDateTime> {
    DateTime::<Utc>::from_timestamp_millis(ms).map(|d| d.naive_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn columns() -> AttributeColumns {
        AttributeColumns::new(Some("t"), &["kind".into(), "size".into()], None).expect("names")
    }

    #[test]
    fn conditions_number_their_parameters_from_the_first_free_one() {
        let c = attribute_conditions(&columns(), Some(ColumnType::Date), 7);
        assert_eq!(c.len(), 4);
        assert_eq!(c[0], "($7::timestamp IS NULL OR \"t\" >= $7::timestamp)");
        assert_eq!(c[1], "($8::timestamp IS NULL OR \"t\" < $8::timestamp)");
        assert!(c[3].contains("$10::text[]") && c[3].contains("\"size\""));
        assert_eq!(columns().param_count(), 4);
        let tz = attribute_conditions(&columns(), Some(ColumnType::TimestampTz), 5);
        assert!(tz[0].contains("$5::timestamptz"));
        assert!(AttributeColumns::new(Some("a; drop"), &[], None).is_err());
        assert_eq!(AttributeColumns::default().schema(), None);
    }

    #[test]
    fn parameters_bind_the_window_and_each_columns_values() {
        let filter = AttributeFilter {
            from: Some(1_000),
            to: None,
            categories: vec![("size".into(), vec!["l".into()])],
        };
        let params = attribute_params(&columns(), Some(ColumnType::Timestamp), Some(&filter));
        assert_eq!(params.len(), 4);
        let text = |p: &dyn ToSql| format!("{p:?}");
        assert_eq!(text(params[0].as_ref()), format!("{:?}", naive(1_000)));
        assert_eq!(text(params[1].as_ref()), "None");
        assert_eq!(text(params[2].as_ref()), "None");
        assert_eq!(text(params[3].as_ref()), "Some([\"l\"])");
        let early = AttributeFilter {
            to: Some(i64::MIN / 4),
            ..AttributeFilter::default()
        };
        let params = attribute_params(&columns(), Some(ColumnType::TimestampTz), Some(&early));
        assert!(
            text(params[1].as_ref()).contains("-4713-11-24T00:00:00"),
            "{}",
            text(params[1].as_ref())
        );
    }
}
