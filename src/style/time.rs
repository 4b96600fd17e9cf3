//! Time and category parameters (`from`, `to`, `category`, `category.COLUMN`) of a layer that
//! declares a time or category columns, parsed into one normalized filter.

use super::error::StyleError;
use super::query::{truncate, Query};
use crate::source::attributes::{parse_instant, AttributeFilter, AttributeSchema, INSTANT_FORMATS};

/// The query keys a layer with `schema` takes for its attributes: `from` and `to` with a
/// time column; `category.COLUMN` for each category column, and `category` when there is
/// exactly one.
pub fn attribute_params(schema: Option<&AttributeSchema>) -> Vec<String> {
    let Some(schema) = schema else {
        return Vec::new();
    };
    let mut params = Vec::new();
    if schema.time.is_some() {
        params.extend(["from".to_owned(), "to".to_owned()]);
    }
    if schema.categories.len() == 1 {
        params.push("category".to_owned());
    }
    params.extend(schema.categories.iter().map(|c| format!("category.{c}")));
    params
}

/// The request's time window and category values, normalized (`None` when it gives none).
pub fn parse_attribute_filter(
    schema: Option<&AttributeSchema>,
    query: &Query,
) -> Result<Option<AttributeFilter>, StyleError> {
    let Some(schema) = schema else {
        return Ok(None);
    };
    let mut filter = AttributeFilter::default();
    if schema.time.is_some() {
        filter.from = instant(query, "from")?;
        filter.to = instant(query, "to")?;
        if let (Some(from), Some(to)) = (filter.from, filter.to) {
            if from > to {
                return Err(StyleError::bad(
                    "from",
                    "is after `to`; the window is [from, to): give from <= to",
                ));
            }
        }
    }
    for (i, column) in schema.categories.iter().enumerate() {
        let key = format!("category.{column}");
        let short = (schema.categories.len() == 1 && i == 0)
            .then(|| query.get("category"))
            .flatten();
        let text = match (query.get(&key), short) {
            (Some(_), Some(_)) => {
                return Err(StyleError::bad(
                    "category",
                    format!("given with `{key}`, which names the same column: give one of them"),
                ))
            }
            (Some(text), None) | (None, Some(text)) => text,
            (None, None) => continue,
        };
        // An empty field is the empty value: `category=` asks for the points without one.
        let mut values: Vec<String> = text.split(',').map(str::to_owned).collect();
        values.sort_unstable();
        values.dedup();
        filter.categories.push((column.clone(), values));
    }
    Ok((!filter.is_empty()).then_some(filter))
}

fn instant(query: &Query, key: &str) -> Result<Option<i64>, StyleError> {
    query
        .get(key)
        .map(|text| {
            parse_instant(text).ok_or_else(|| {
                StyleError::bad(
                    key,
                    format!("{:?} is not {INSTANT_FORMATS}", truncate(text)),
                )
            })
        })
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> AttributeSchema {
        AttributeSchema {
            time: Some("t".into()),
            categories: vec!["kind".into()],
            time_bucket: None,
        }
    }

    fn parse(raw: &str, s: &AttributeSchema) -> Result<Option<AttributeFilter>, StyleError> {
        let params = attribute_params(Some(s));
        let names: Vec<&str> = params.iter().map(String::as_str).collect();
        let query = Query::parse(raw, &[&names])?;
        parse_attribute_filter(Some(s), &query)
    }

    #[test]
    fn equal_filters_normalize_alike() {
        let a = parse("from=2024-01-01&category=b,a,b", &schema()).expect("valid");
        let b = parse(
            "category.kind=a,b&from=2024-01-01T02:00:00%2B02:00",
            &schema(),
        );
        assert_eq!(a, b.expect("valid"));
        let a = a.expect("a filter");
        assert_eq!(a.canonical(), "from=1704067200000&category.kind=a,b");
        assert_eq!(parse("", &schema()), Ok(None));
        let empty = parse("category=", &schema())
            .expect("valid")
            .expect("a filter");
        assert_eq!(
            empty.categories,
            vec![("kind".to_owned(), vec![String::new()])]
        );
    }

    #[test]
    fn bad_values_name_the_parameter() {
        let bad = |raw: &str, s: &AttributeSchema| match parse(raw, s) {
            Err(StyleError::BadParam { param, detail }) => (param, detail),
            other => panic!("{raw}: expected a refusal, got {other:?}"),
        };
        assert_eq!(bad("from=soon", &schema()).0, "from");
        assert!(bad("to=2024-02-30", &schema()).1.contains("ISO 8601"));
        assert_eq!(bad("from=2024-02-02&to=2024-02-01", &schema()).0, "from");
        assert_eq!(bad("category=a&category.kind=b", &schema()).0, "category");
        let two = AttributeSchema {
            time: None,
            categories: vec!["a".into(), "b".into()],
            time_bucket: None,
        };
        let (param, detail) = bad("category=x", &two);
        assert_eq!(param, "category");
        assert!(detail.contains("category.a, category.b"), "{detail}");
        assert_eq!(bad("from=2024-01-01", &two).0, "from");
        // An empty window is a window, not an error.
        assert!(parse("from=2024-01-01&to=2024-01-01", &schema()).is_ok());
    }
}
