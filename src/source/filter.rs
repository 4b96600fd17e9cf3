//! Declared filters: a layer's query parameters bound to columns (`?from=2024-01-01`), parsed
//! to the column's type in Rust and bound as typed parameters, never spliced into SQL.

use crate::source::attributes::parse_naive_datetime;
use crate::source::postgis::Ident;
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use tokio_postgres::types::ToSql;

/// A comparison allowed in a filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Op {
    pub fn parse(text: &str) -> Option<Op> {
        Some(match text {
            "=" => Op::Eq,
            "!=" => Op::Ne,
            "<" => Op::Lt,
            "<=" => Op::Le,
            ">" => Op::Gt,
            ">=" => Op::Ge,
            _ => return None,
        })
    }

    pub fn sql(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Ne => "<>",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
        }
    }
}

/// The column types a filter can compare against (found in the database at start-up).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    Int,
    Float,
    Bool,
    Text,
    Date,
    Timestamp,
    TimestampTz,
}

impl ColumnType {
    /// From PostgreSQL's type name (`format_type` / `udt_name` spelling).
    pub fn from_pg(name: &str) -> Option<ColumnType> {
        Some(match name {
            "smallint" | "integer" | "bigint" | "int2" | "int4" | "int8" => ColumnType::Int,
            "real" | "double precision" | "numeric" | "float4" | "float8" => ColumnType::Float,
            "boolean" | "bool" => ColumnType::Bool,
            "text" | "character varying" | "varchar" | "character" | "bpchar" | "citext" => {
                ColumnType::Text
            }
            "date" => ColumnType::Date,
            "timestamp without time zone" | "timestamp" => ColumnType::Timestamp,
            "timestamp with time zone" | "timestamptz" => ColumnType::TimestampTz,
            _ if name.starts_with("character varying")
                || name.starts_with("numeric")
                || name.starts_with("character(") =>
            {
                if name.starts_with("numeric") {
                    ColumnType::Float
                } else {
                    ColumnType::Text
                }
            }
            _ if name.starts_with("timestamp")
                && name.ends_with("with time zone")
                && !name.contains("without") =>
            {
                ColumnType::TimestampTz
            }
            _ if name.starts_with("timestamp") => ColumnType::Timestamp,
            _ => return None,
        })
    }

    /// The SQL cast that gives the bound parameter its type.
    pub fn cast(self) -> &'static str {
        match self {
            ColumnType::Int => "int8",
            ColumnType::Float => "float8",
            ColumnType::Bool => "bool",
            ColumnType::Text => "text",
            ColumnType::Date => "date",
            ColumnType::Timestamp => "timestamp",
            ColumnType::TimestampTz => "timestamptz",
        }
    }

    /// What a value must look like, for error messages.
    pub fn describe(self) -> &'static str {
        match self {
            ColumnType::Int => "an integer",
            ColumnType::Float => "a finite number",
            ColumnType::Bool => "true or false",
            ColumnType::Text => "text",
            ColumnType::Date => "a date YYYY-MM-DD",
            ColumnType::Timestamp => "a date YYYY-MM-DD or date-time YYYY-MM-DDTHH:MM:SS",
            ColumnType::TimestampTz => {
                "a date YYYY-MM-DD, or a date-time YYYY-MM-DDTHH:MM:SS[Z|±HH:MM] (UTC if no offset)"
            }
        }
    }
}

/// One declared filter of a layer.
#[derive(Debug, Clone, PartialEq)]
pub struct FilterDef {
    pub param: String,
    pub column: Ident,
    pub op: Op,
    /// The column's type, known once the database has been reached.
    pub ty: Option<ColumnType>,
}

/// A parsed filter value, ready to bind.
#[derive(Debug, Clone, PartialEq)]
pub enum FilterValue {
    Int(i64),
    Float(f64),
    Bool(bool),
    Text(String),
    Date(NaiveDate),
    Timestamp(NaiveDateTime),
    TimestampTz(DateTime<Utc>),
}

impl FilterValue {
    /// Parses `text` as a value of `ty`; the error says what is allowed.
    pub fn parse(ty: ColumnType, text: &str) -> Result<FilterValue, String> {
        let refuse = || {
            format!(
                "{:?} is not {}",
                text.chars().take(64).collect::<String>(),
                ty.describe()
            )
        };
        let t = text.trim();
        Ok(match ty {
            ColumnType::Int => FilterValue::Int(t.parse().map_err(|_| refuse())?),
            ColumnType::Float => FilterValue::Float(
                t.parse()
                    .ok()
                    .filter(|v: &f64| v.is_finite())
                    .ok_or_else(refuse)?,
            ),
            ColumnType::Bool => FilterValue::Bool(match t {
                "true" | "1" => true,
                "false" | "0" => false,
                _ => return Err(refuse()),
            }),
            ColumnType::Text => {
                // Values are bound, never spliced into SQL, so any text would be safe; a narrow
                // alphabet still turns injection attempts into a clear 400 rather than an
                // empty map, and filter values are categories in practice.
                let ok = !text.is_empty()
                    && text.chars().count() <= 256
                    && text
                        .chars()
                        .all(|c| c.is_alphanumeric() || " _-.,:/@+".contains(c));
                if !ok {
                    return Err(format!(
                        "{:?} is not allowed: text filter values are 1 to 256 letters, digits, spaces or _ - . , : / @ +",
                        text.chars().take(64).collect::<String>()
                    ));
                }
                FilterValue::Text(text.to_string())
            }
            ColumnType::Date => {
                FilterValue::Date(NaiveDate::parse_from_str(t, "%Y-%m-%d").map_err(|_| refuse())?)
            }
            ColumnType::Timestamp => FilterValue::Timestamp(parse_naive(t).ok_or_else(refuse)?),
            ColumnType::TimestampTz => FilterValue::TimestampTz(
                DateTime::parse_from_rfc3339(t)
                    .map(|d| d.with_timezone(&Utc))
                    .ok()
                    .or_else(|| parse_naive(t).map(|n| n.and_utc()))
                    .ok_or_else(refuse)?,
            ),
        })
    }

    /// The value as an owned bound parameter.
    pub fn to_boxed_sql(&self) -> Box<dyn ToSql + Sync + Send> {
        match self.clone() {
            FilterValue::Int(v) => Box::new(v),
            FilterValue::Float(v) => Box::new(v),
            FilterValue::Bool(v) => Box::new(v),
            FilterValue::Text(v) => Box::new(v),
            FilterValue::Date(v) => Box::new(v),
            FilterValue::Timestamp(v) => Box::new(v),
            FilterValue::TimestampTz(v) => Box::new(v),
        }
    }

    /// A NULL of the type that `ty`'s cast gives a parameter (an absent filter).
    pub fn null_of(ty: ColumnType) -> Box<dyn ToSql + Sync + Send> {
        match ty {
            ColumnType::Int => Box::new(Option::<i64>::None),
            ColumnType::Float => Box::new(Option::<f64>::None),
            ColumnType::Bool => Box::new(Option::<bool>::None),
            ColumnType::Text => Box::new(Option::<String>::None),
            ColumnType::Date => Box::new(Option::<NaiveDate>::None),
            ColumnType::Timestamp => Box::new(Option::<NaiveDateTime>::None),
            ColumnType::TimestampTz => Box::new(Option::<DateTime<Utc>>::None),
        }
    }

    /// A canonical text form (equal values, equal text), for cache keys.
    pub fn canonical(&self) -> String {
        match self {
            FilterValue::Int(v) => v.to_string(),
            FilterValue::Float(v) => v.to_string(),
            FilterValue::Bool(v) => v.to_string(),
            FilterValue::Text(v) => v.clone(),
            FilterValue::Date(v) => v.to_string(),
            FilterValue::Timestamp(v) => v.format("%Y-%m-%dT%H:%M:%S%.f").to_string(),
            FilterValue::TimestampTz(v) => v.to_rfc3339(),
        }
    }
}

/// A date and time without an offset, or a date (at midnight).
fn parse_naive(t: &str) -> Option<NaiveDateTime> {
    parse_naive_datetime(t).or_else(|| {
        NaiveDate::parse_from_str(t, "%Y-%m-%d")
            .ok()
            .and_then(|d| d.and_hms_opt(0, 0, 0))
    })
}

/// The filter values of one request, by index into the layer's [`FilterDef`]s.
///
/// The second field is the request's filter on the layer's time and category attributes
/// (layers declaring `time` or `categories`), `None` when it asks for none.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FilterValues(
    pub Vec<(usize, FilterValue)>,
    pub Option<crate::source::attributes::AttributeFilter>,
);

impl FilterValues {
    pub const NONE: FilterValues = FilterValues(Vec::new(), None);

    /// Whether the request filters nothing (then every source takes its unfiltered path).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty() && self.1.is_none()
    }

    /// `param=value&...` in declaration order, for cache keys and logs.
    /// The attribute filter follows, normalized (see [`AttributeFilter::canonical`]).
    ///
    /// [`AttributeFilter::canonical`]: crate::source::attributes::AttributeFilter::canonical
    pub fn canonical(&self, defs: &[FilterDef]) -> String {
        let mut parts: Vec<String> = self
            .0
            .iter()
            .filter_map(|(i, v)| {
                defs.get(*i)
                    .map(|d| format!("{}={}", d.param, v.canonical()))
            })
            .collect();
        if let Some(attributes) = &self.1 {
            parts.push(attributes.canonical());
        }
        parts.join("&")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_parse_to_the_column_type() {
        assert_eq!(
            FilterValue::parse(ColumnType::Int, "42"),
            Ok(FilterValue::Int(42))
        );
        assert!(FilterValue::parse(ColumnType::Int, "4.2").is_err());
        assert!(FilterValue::parse(ColumnType::Float, "NaN").is_err());
        assert!(FilterValue::parse(ColumnType::Bool, "yes").is_err());
        let day = FilterValue::parse(ColumnType::TimestampTz, "2024-01-01").expect("date");
        assert_eq!(day.canonical(), "2024-01-01T00:00:00+00:00");
        let t = FilterValue::parse(ColumnType::TimestampTz, "2024-01-01T10:00:00+02:00")
            .expect("rfc3339");
        assert_eq!(t.canonical(), "2024-01-01T08:00:00+00:00");
        assert!(FilterValue::parse(ColumnType::Timestamp, "2024-13-01").is_err());
        assert!(FilterValue::parse(ColumnType::Date, "2024-01-01'; DROP TABLE x; --").is_err());
        assert!(FilterValue::parse(ColumnType::Int, "1 OR 1=1").is_err());
        assert!(FilterValue::parse(ColumnType::Text, "x' OR '1'='1").is_err());
        assert!(FilterValue::parse(ColumnType::Text, "a; DROP TABLE t; --").is_err());
        assert_eq!(
            FilterValue::parse(ColumnType::Text, "São Paulo"),
            Ok(FilterValue::Text("São Paulo".into()))
        );
        assert_eq!(
            ColumnType::from_pg("timestamp with time zone"),
            Some(ColumnType::TimestampTz)
        );
        assert_eq!(
            ColumnType::from_pg("character varying(20)"),
            Some(ColumnType::Text)
        );
        assert_eq!(ColumnType::from_pg("geometry"), None);
        assert_eq!(Op::parse("!="), Some(Op::Ne));
        assert_eq!(Op::parse("; drop"), None);
    }
}
