//! `/metrics` is valid Prometheus text and keeps every metric family dashboards read, with
//! its type and labels. Real PostGIS (for the pool gauges), real HTTP server.

mod common;

use common::pg;
use common::TestServer;
use std::collections::{BTreeMap, BTreeSet};
use twine_heatmap::app::ServeArgs;

/// Every family `/metrics` exports (those from before the `prometheus` crate wrote it,
/// issue 18, less the two of the sendfile path that stock dependencies removed, and the ones
/// added since): name, type, and label names (a histogram's `le`
/// aside). Dashboards and alerts query these.
const FAMILIES: [(&str, &str, &[&str]); 14] = [
    ("twine_tiles_rendered_total", "counter", &[]),
    ("twine_cache_hits_total", "counter", &["tier"]),
    ("twine_cache_misses_total", "counter", &[]),
    ("twine_not_modified_total", "counter", &[]),
    ("twine_cache_bytes", "gauge", &["tier"]),
    ("twine_cache_evictions_total", "counter", &["tier"]),
    ("twine_db_queries_total", "counter", &[]),
    ("twine_db_pyramid_queries_total", "counter", &["layer"]),
    ("twine_db_reference_queries_total", "counter", &[]),
    ("twine_db_query_seconds", "histogram", &[]),
    ("twine_db_pool_size", "gauge", &[]),
    ("twine_db_pool_available", "gauge", &[]),
    ("twine_db_pool_waiting", "gauge", &[]),
    ("twine_request_seconds", "histogram", &["route"]),
];

/// A family as the text declares it: its type and the label names of its samples.
#[derive(Debug, PartialEq)]
struct Family {
    kind: String,
    labels: BTreeSet<String>,
}

/// The families of Prometheus text format 0.0.4, checked line by line as a scraper reads
/// them: one HELP and one TYPE per family before its samples, each sample named for the
/// family it follows (`_bucket`, `_sum`, `_count` for a histogram, buckets with `le`),
/// labels as `name="value"` pairs, values that parse as numbers. Panics on the first fault.
fn parse(text: &str) -> BTreeMap<String, Family> {
    assert!(text.ends_with('\n'), "the text ends mid-line");
    let mut families: BTreeMap<String, Family> = BTreeMap::new();
    let mut helped = BTreeSet::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').expect("HELP name text");
            assert!(!help.is_empty(), "{name}: empty HELP");
            assert!(helped.insert(name.to_owned()), "{name}: HELP twice");
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE name type");
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "{name}: type {kind}"
            );
            let family = Family {
                kind: kind.to_owned(),
                labels: BTreeSet::new(),
            };
            assert!(
                families.insert(name.to_owned(), family).is_none(),
                "{name}: TYPE twice"
            );
            current = Some(name.to_owned());
        } else {
            assert!(!line.starts_with('#') && !line.is_empty(), "line {line:?}");
            let family = current.as_deref().expect("a sample before any TYPE");
            let (series, value) = line.rsplit_once(' ').expect("sample: series value");
            assert!(
                value.parse::<f64>().is_ok() || ["+Inf", "-Inf", "NaN"].contains(&value),
                "{line}: value"
            );
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => (name, labels_of(rest.strip_suffix('}').expect(line))),
                None => (series, Vec::new()),
            };
            let entry = families.get_mut(family).expect("declared");
            let suffix = name
                .strip_prefix(family)
                .unwrap_or_else(|| panic!("{line}: not of {family}"));
            let allowed: &[&str] = match entry.kind.as_str() {
                "histogram" => &["_bucket", "_sum", "_count"],
                _ => &[""],
            };
            assert!(allowed.contains(&suffix), "{line}: not of {family}");
            let mut has_le = false;
            for label in labels {
                if label == "le" {
                    has_le = true;
                } else {
                    entry.labels.insert(label);
                }
            }
            assert_eq!(has_le, suffix == "_bucket", "{line}: le");
            assert!(helped.contains(family), "{family}: no HELP");
        }
    }
    families
}

/// The label names of `a="1",b="2"`, checking each is a quoted value.
fn labels_of(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let (name, after) = rest.split_once("=\"").expect("label=\"value\"");
        assert!(
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "label name {name:?}"
        );
        // The value ends at the first quote not escaped by a backslash.
        let mut end = None;
        let mut escaped = false;
        for (i, c) in after.char_indices() {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => {
                    end = Some(i);
                    break;
                }
                _ => {}
            }
        }
        let end = end.expect("closing quote");
        names.push(name.to_owned());
        rest = &after[end + 1..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
    names
}

#[test]
fn metrics_keep_every_family_with_its_type_in_valid_text() {
    let server = TestServer::from_args(&ServeArgs {
        database_url: Some(pg::database_url()),
        ..ServeArgs::default()
    });
    // A request on a route, so twine_request_seconds has a series (a route appears at its
    // first request).
    assert_eq!(server.get("/health").status, 200);
    let reply = server.get("/metrics");
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.header("content-type"),
        Some("text/plain; version=0.0.4")
    );
    let text = String::from_utf8(reply.body).expect("utf8");
    let families = parse(&text);
    for (name, kind, labels) in FAMILIES {
        let expected = Family {
            kind: kind.to_owned(),
            labels: labels.iter().map(|l| l.to_string()).collect(),
        };
        // A family labelled by layer has no series, so no text, before a layer's first
        // count; this server has no PostGIS layer (tests/postgis_sources.rs reads it).
        if labels == ["layer"] && !families.contains_key(name) {
            assert!(!text.contains(name), "{name} in:\n{text}");
            continue;
        }
        assert_eq!(families.get(name), Some(&expected), "{name} in:\n{text}");
    }
    assert!(text.contains("twine_request_seconds_count{route=\"health\"} 1\n"));
    assert!(text.contains("twine_cache_hits_total{tier=\"disk\"} 0\n"));
}

#[test]
#[should_panic(expected = "not of twine_a_total")]
fn the_check_refuses_a_sample_of_another_family() {
    parse("# HELP twine_a_total A.\n# TYPE twine_a_total counter\ntwine_b_total 1\n");
}
