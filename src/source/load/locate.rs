//! The line a JSON value starts at, for error messages.
//!
//! serde_json's `Value` keeps no positions, so a value's place is kept as a path while the
//! document is walked, and the (already validated) text is scanned again along that path only
//! when an error needs its line.

use super::{line_at, Problem};

/// Where a value sits in the JSON document, kept as a chain of borrowed steps on the stack so
/// that walking a large file costs nothing until an error needs the location.
#[derive(Debug, Clone, Copy)]
pub(super) struct JsonPath<'a> {
    parent: Option<&'a JsonPath<'a>>,
    step: Option<Step<'a>>,
}

#[derive(Debug, Clone, Copy)]
enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum OwnedStep {
    Key(String),
    Index(usize),
}

/// A problem at a place in a JSON document, before the place is turned into a line.
#[derive(Debug)]
pub(super) struct JsonError {
    pub(super) steps: Vec<OwnedStep>,
    pub(super) problem: Problem,
}

impl<'a> JsonPath<'a> {
    pub(super) const ROOT: JsonPath<'static> = JsonPath {
        parent: None,
        step: None,
    };

    pub(super) fn key(&'a self, key: &'a str) -> JsonPath<'a> {
        JsonPath {
            parent: Some(self),
            step: Some(Step::Key(key)),
        }
    }

    pub(super) fn index(&'a self, index: usize) -> JsonPath<'a> {
        JsonPath {
            parent: Some(self),
            step: Some(Step::Index(index)),
        }
    }

    pub(super) fn error(&self, problem: Problem) -> JsonError {
        let mut steps = Vec::new();
        let mut at = Some(self);
        while let Some(path) = at {
            match path.step {
                Some(Step::Key(k)) => steps.push(OwnedStep::Key(k.to_owned())),
                Some(Step::Index(i)) => steps.push(OwnedStep::Index(i)),
                None => {}
            }
            at = path.parent;
        }
        steps.reverse();
        JsonError { steps, problem }
    }
}

/// The line where the value at `steps` starts; the deepest part of the path that can be
/// found if the rest cannot (which only a scanner bug would cause).
pub(super) fn line_of_path(text: &[u8], steps: &[OwnedStep]) -> u64 {
    let offset = (0..=steps.len())
        .rev()
        .find_map(|n| {
            steps
                .get(..n)
                .and_then(|prefix| offset_of_path(text, prefix))
        })
        .unwrap_or(0);
    line_at(text, offset)
}

fn offset_of_path(text: &[u8], steps: &[OwnedStep]) -> Option<usize> {
    let mut pos = skip_ws(text, 0);
    for step in steps {
        pos = match step {
            OwnedStep::Index(i) => element_offset(text, pos, *i)?,
            OwnedStep::Key(k) => member_offset(text, pos, k)?,
        };
    }
    Some(pos)
}

/// The start of element `index` of the array starting at `pos`.
fn element_offset(text: &[u8], pos: usize, index: usize) -> Option<usize> {
    if text.get(pos) != Some(&b'[') {
        return None;
    }
    let mut pos = skip_ws(text, pos + 1);
    for _ in 0..index {
        pos = skip_ws(text, value_end(text, pos)?);
        if text.get(pos) != Some(&b',') {
            return None;
        }
        pos = skip_ws(text, pos + 1);
    }
    Some(pos)
}

/// The start of the value of member `key` of the object starting at `pos`; the last one if
/// the key repeats, as serde_json keeps the last.
fn member_offset(text: &[u8], pos: usize, key: &str) -> Option<usize> {
    if text.get(pos) != Some(&b'{') {
        return None;
    }
    let mut pos = skip_ws(text, pos + 1);
    let mut found = None;
    while text.get(pos) == Some(&b'"') {
        let key_end = string_end(text, pos)?;
        let is_key = key_matches(text.get(pos..key_end)?, key);
        pos = skip_ws(text, key_end);
        if text.get(pos) != Some(&b':') {
            return None;
        }
        pos = skip_ws(text, pos + 1);
        if is_key {
            found = Some(pos);
        }
        pos = skip_ws(text, value_end(text, pos)?);
        if text.get(pos) != Some(&b',') {
            break;
        }
        pos = skip_ws(text, pos + 1);
    }
    found
}

/// Whether the quoted JSON string `quoted` is `key`; only keys with escapes need decoding.
fn key_matches(quoted: &[u8], key: &str) -> bool {
    match quoted.get(1..quoted.len().saturating_sub(1)) {
        Some(raw) if !raw.contains(&b'\\') => raw == key.as_bytes(),
        _ => serde_json::from_slice::<String>(quoted).is_ok_and(|s| s == key),
    }
}

fn skip_ws(text: &[u8], mut pos: usize) -> usize {
    while text
        .get(pos)
        .is_some_and(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
    {
        pos += 1;
    }
    pos
}

/// The offset just past the string whose opening quote is at `pos`.
fn string_end(text: &[u8], pos: usize) -> Option<usize> {
    let mut i = pos + 1;
    loop {
        match text.get(i)? {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
}

/// The offset just past the value starting at `pos`.
fn value_end(text: &[u8], pos: usize) -> Option<usize> {
    match text.get(pos)? {
        b'"' => string_end(text, pos),
        b'{' | b'[' => container_end(text, pos),
        _ => {
            let mut i = pos;
            while text
                .get(i)
                .is_some_and(|b| !matches!(b, b',' | b']' | b'}' | b' ' | b'\t' | b'\n' | b'\r'))
            {
                i += 1;
            }
            Some(i)
        }
    }
}

/// The offset just past the object or array starting at `pos`, counting depth rather than
/// recursing so that no input can exhaust the stack.
fn container_end(text: &[u8], pos: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = pos;
    loop {
        match text.get(i)? {
            b'"' => {
                i = string_end(text, i)?;
                continue;
            }
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(i + 1);
                }
            }
            _ => {}
        }
        i += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::err_at;
    use super::*;

    fn steps(path: &[&str]) -> Vec<OwnedStep> {
        path.iter()
            .map(|s| match s.parse() {
                Ok(i) => OwnedStep::Index(i),
                Err(_) => OwnedStep::Key((*s).to_owned()),
            })
            .collect()
    }

    #[test]
    fn scanner_skips_strings_escapes_and_nesting() {
        let text = br#"{"a\"b": "x]}\"{[", "features": [ {"s": "[,]", "t": [[], {}]},
            {"k": [1, {"z": "\\"}]},
            3.5e2 ], "q\u0041": 1}"#;
        assert_eq!(line_of_path(text, &steps(&["features", "2"])), 3);
        assert_eq!(
            line_of_path(text, &steps(&["features", "1", "k", "1", "z"])),
            2
        );
        assert_eq!(line_of_path(text, &steps(&["qA"])), 3);
        assert_eq!(line_of_path(text, &steps(&["a\"b"])), 1);
        // Past the end of the document: the deepest part found.
        assert_eq!(
            line_of_path(text, &steps(&["features", "1", "nothing", "3"])),
            2
        );
        assert_eq!(line_of_path(text, &steps(&["features", "9"])), 1);
    }

    #[test]
    fn scanner_takes_the_last_of_repeated_keys_like_serde_json() {
        let text = "{\"type\": \"Point\",\n\"coordinates\": [1, 2],\n\"coordinates\": [1, 95]}";
        assert_eq!(
            err_at("p.geojson", text, 3),
            "p.geojson:3: latitude 95 is outside -90..90"
        );
    }
}
