//! Reading the values of a parsed JSON document, with errors that name where the value is.

use super::locate::{JsonError, JsonPath};
use super::{excerpt, Field, Problem};
use serde_json::Value;

pub(super) fn json_array<'v>(
    value: &'v Value,
    path: &JsonPath,
    what: &str,
) -> Result<&'v Vec<Value>, JsonError> {
    value
        .as_array()
        .ok_or_else(|| path.error(wrong_type(what, "an array", value)))
}

pub(super) fn json_number(value: &Value, path: &JsonPath, field: Field) -> Result<f64, JsonError> {
    // Without serde_json's arbitrary_precision every JSON number is a finite f64.
    value
        .as_f64()
        .ok_or_else(|| path.error(wrong_type(&field.to_string(), "a number", value)))
}

pub(super) fn wrong_type(what: &str, expected: &'static str, found: &Value) -> Problem {
    Problem::WrongType {
        what: what.to_owned(),
        expected,
        found: describe(found),
    }
}

/// A JSON value as a message shows it: its kind, and the value itself when short.
fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) => format!("the string {:?}", excerpt(s)),
        Value::Array(a) if a.len() == 1 => "an array of 1 element".to_owned(),
        Value::Array(a) => format!("an array of {} elements", a.len()),
        Value::Object(_) => "an object".to_owned(),
    }
}
