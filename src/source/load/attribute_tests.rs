//! Tests of the time and category columns the loaders keep.

use super::parse_points_with;
use super::WeightMode;
use crate::source::attributes::{AttributeFilter, AttributeSchema};
use crate::source::memory::attributes::Attributes;

fn schema(time: Option<&str>, categories: &[&str]) -> AttributeSchema {
    AttributeSchema {
        time: time.map(str::to_owned),
        categories: categories.iter().map(|s| s.to_string()).collect(),
        time_bucket: None,
    }
}

fn load(name: &str, text: &str, s: &AttributeSchema) -> Result<(Vec<f32>, Attributes), String> {
    let (points, attributes) = parse_points_with(name, text.as_bytes(), WeightMode::FromData, s)
        .map_err(|e| e.to_string())?;
    Ok((
        points.iter().map(|p| p.w).collect(),
        attributes.expect("declared attributes are kept"),
    ))
}

/// Which points (by index) pass `filter`.
fn passing(attributes: &Attributes, filter: &AttributeFilter, n: usize) -> Vec<usize> {
    let selection = attributes.select(filter);
    (0..n).filter(|&i| selection.keeps(i)).collect()
}

fn window(from: &str, to: &str) -> AttributeFilter {
    let parse = crate::source::attributes::parse_instant;
    AttributeFilter {
        from: parse(from),
        to: parse(to),
        categories: Vec::new(),
    }
}

#[test]
fn csv_keeps_times_and_categories_and_never_weighs_by_them() {
    let text = "lon,lat,when,kind\n\
                1,2,2024-03-01,a\n\
                1,2,2024-03-01T23:59:59+00:00,b\n\
                1,2,,a\n\
                1,2,2024-03-02 00:00:00,\n";
    let (weights, attributes) =
        load("p.csv", text, &schema(Some("when"), &["kind"])).expect("loads");
    // `when` follows lon,lat and would be taken as the weight were it not declared.
    assert_eq!(weights, vec![1.0; 4]);
    assert_eq!(
        passing(&attributes, &window("2024-03-01", "2024-03-02"), 4),
        vec![0, 1]
    );
    assert_eq!(
        passing(&attributes, &window("2024-03-02", "2024-03-03"), 4),
        vec![3]
    );
    let kinds = &attributes.categories()[0];
    assert_eq!(kinds.counts(), vec![("a", 2), ("b", 1), ("", 1)]);
    // A category column right after lon,lat is not the weight either.
    let (weights, _) =
        load("p.csv", "lon,lat,kind\n1,2,7\n", &schema(None, &["kind"])).expect("loads");
    assert_eq!(weights, vec![1.0]);
    // Undeclared, the column after lon,lat is still the weight.
    let (points, _) = parse_points_with(
        "p.csv",
        b"lon,lat,kind\n1,2,7\n",
        WeightMode::FromData,
        &schema(None, &[]),
    )
    .expect("loads");
    assert_eq!(points[0].w, 7.0);
}

#[test]
fn csv_refuses_a_bad_time_and_a_missing_column_by_name() {
    let e = load(
        "p.csv",
        "lon,lat,t\n1,2,2024-01-01\n1,2,soon\n",
        &schema(Some("t"), &[]),
    )
    .expect_err("bad time");
    assert!(
        e.starts_with("p.csv:3: time column \"t\": \"soon\" is not"),
        "{e}"
    );
    let e = load(
        "p.csv",
        "lon,lat,t\n1,2,2024-01-01\n",
        &schema(Some("t"), &["kind"]),
    )
    .expect_err("missing column");
    assert!(
        e.starts_with("p.csv:1: ") && e.contains("no column \"kind\""),
        "{e}"
    );
    let e = load("p.csv", "1,2,2024-01-01\n", &schema(Some("t"), &[])).expect_err("no header");
    assert!(e.contains("no column \"t\""), "{e}");
}

#[test]
fn geojson_keeps_properties_and_refuses_bad_ones() {
    let feature = |props: &str| {
        format!(
            r#"{{"type": "Feature", "properties": {props}, "geometry": {{"type": "MultiPoint", "coordinates": [[1, 2], [3, 4]]}}}}"#
        )
    };
    let text = format!(
        r#"{{"type": "FeatureCollection", "features": [{}, {}, {}]}}"#,
        feature(r#"{"t": "2024-01-01T10:00:00Z", "k": 3}"#),
        feature(r#"{"t": null, "k": "x"}"#),
        feature("null"),
    );
    let (_, attributes) = load("p.geojson", &text, &schema(Some("t"), &["k"])).expect("loads");
    assert_eq!(
        passing(&attributes, &window("2024-01-01", "2024-01-02"), 6),
        vec![0, 1]
    );
    assert_eq!(
        attributes.categories()[0].counts(),
        vec![("3", 2), ("x", 2), ("", 2)]
    );
    let e = load("p.geojson", &text, &schema(Some("when"), &[])).expect_err("no such property");
    assert!(e.contains("no feature has the property \"when\""), "{e}");
    let bad = text.replace("2024-01-01T10:00:00Z", "later");
    let e = load("p.geojson", &bad, &schema(Some("t"), &[])).expect_err("bad time");
    assert!(
        e.starts_with("p.geojson:1: ") && e.contains("\"later\""),
        "{e}"
    );
    let e = load("p.json", "[[1, 2]]", &schema(Some("t"), &[])).expect_err("seed list");
    assert!(e.contains("CSV or GeoJSON"), "{e}");
}
