//! GeoJSON: FeatureCollections, Features and bare geometries of points.

use super::json::{json_array, json_number, wrong_type};
use super::locate::{JsonError, JsonPath};
use super::{excerpt, weight_value, Field, Layer, Problem, WeightMode, WEIGHT_NAMES};
use serde_json::Value;
use std::fmt;

const GEOMETRY_TYPES: [&str; 7] = [
    "Point",
    "MultiPoint",
    "LineString",
    "MultiLineString",
    "Polygon",
    "MultiPolygon",
    "GeometryCollection",
];

pub(super) fn geojson(
    value: &Value,
    path: &JsonPath,
    mode: WeightMode,
    layer: &mut Layer,
) -> Result<(), JsonError> {
    match value.get("type").and_then(Value::as_str) {
        Some("FeatureCollection") => feature_collection(value, path, mode, layer),
        Some("Feature") => feature(value, path, None, mode, layer),
        Some(kind) if GEOMETRY_TYPES.contains(&kind) => {
            feature_attributes(&Value::Null, path, layer)?;
            geometry(value, path, Subject::Geometry, 1.0, layer)
        }
        _ => Err(path.error(Problem::Structure(
            "not GeoJSON: expected \"type\" FeatureCollection, Feature or a geometry type"
                .to_owned(),
        ))),
    }
}

fn feature_collection(
    value: &Value,
    path: &JsonPath,
    mode: WeightMode,
    layer: &mut Layer,
) -> Result<(), JsonError> {
    let features_path = path.key("features");
    let features = match value.get("features") {
        Some(Value::Array(features)) => features,
        Some(other) => {
            return Err(features_path.error(wrong_type("\"features\"", "an array", other)))
        }
        None => {
            return Err(path.error(Problem::Structure(
                "the FeatureCollection has no \"features\"".to_owned(),
            )))
        }
    };
    for (i, f) in features.iter().enumerate() {
        let feature_path = features_path.index(i);
        if f.get("type").and_then(Value::as_str) != Some("Feature") {
            return Err(feature_path.error(wrong_type(
                &format!("features[{i}]"),
                "an object with \"type\": \"Feature\"",
                f,
            )));
        }
        feature(f, &feature_path, Some(i), mode, layer)?;
    }
    Ok(())
}

/// Which part of the file a geometry belongs to, for messages.
#[derive(Debug, Clone, Copy)]
enum Subject<'v> {
    /// `index` is the position in "features", None for a lone Feature; `id` its "id" member.
    Feature {
        index: Option<usize>,
        id: Option<&'v Value>,
    },
    Geometry,
}

impl fmt::Display for Subject<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let id = match self {
            Subject::Feature { index: Some(i), id } => {
                write!(f, "features[{i}]")?;
                id
            }
            Subject::Feature { index: None, id } => {
                f.write_str("the feature")?;
                id
            }
            Subject::Geometry => return f.write_str("the geometry"),
        };
        // GeoJSON ids are strings or numbers; anything else is not worth quoting.
        match id {
            Some(Value::String(s)) => write!(f, " (id {:?})", excerpt(s)),
            Some(Value::Number(n)) => write!(f, " (id {n})"),
            _ => Ok(()),
        }
    }
}

/// A Feature; `index` is its position in "features", None for a lone Feature.
fn feature(
    value: &Value,
    path: &JsonPath,
    index: Option<usize>,
    mode: WeightMode,
    layer: &mut Layer,
) -> Result<(), JsonError> {
    // A feature without a location (null geometry) has nowhere to be drawn.
    let geometry_value = match value.get("geometry") {
        None | Some(Value::Null) => return Ok(()),
        Some(g) => g,
    };
    let w = match mode {
        WeightMode::FromData => feature_weight(value, path)?,
        WeightMode::Unweighted => 1.0,
    };
    feature_attributes(value, path, layer)?;
    let subject = Subject::Feature {
        index,
        id: value.get("id"),
    };
    geometry(geometry_value, &path.key("geometry"), subject, w, layer)
}

/// Sets the layer's declared time and category values from the feature's properties
/// (for a bare geometry, `feature` is null): a missing or null property is no time and the
/// empty category value.
fn feature_attributes(
    feature: &Value,
    path: &JsonPath,
    layer: &mut Layer,
) -> Result<(), JsonError> {
    if layer.attributes.is_none() {
        return Ok(());
    }
    let properties = feature.get("properties").and_then(Value::as_object);
    let properties_path = path.key("properties");
    let schema = layer.schema.clone();
    let mut seen = 0;
    if let Some(name) = &schema.time {
        let value = properties.and_then(|p| p.get(name));
        let value_path = properties_path.key(name);
        let text = match value {
            None | Some(Value::Null) => "",
            Some(Value::String(text)) => text,
            Some(other) => {
                return Err(value_path.error(wrong_type(
                    &format!("time property {name:?}"),
                    "an ISO 8601 date or timestamp string",
                    other,
                )))
            }
        };
        layer.seen[seen] |= value.is_some();
        seen += 1;
        layer.set_time_text(text).map_err(|p| value_path.error(p))?;
    }
    for (column, name) in schema.categories.iter().enumerate() {
        let value = properties.and_then(|p| p.get(name));
        let text = match value {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(text)) => text.clone(),
            Some(v @ (Value::Number(_) | Value::Bool(_))) => v.to_string(),
            Some(other) => {
                return Err(properties_path.key(name).error(wrong_type(
                    &format!("category property {name:?}"),
                    "a string, number, boolean or null",
                    other,
                )))
            }
        };
        layer.seen[seen] |= value.is_some();
        seen += 1;
        layer.set_category(column, &text);
    }
    Ok(())
}

/// A declared property that no feature has is a mistake in the config (a misspelt name), as
/// a CSV column missing from the header is.
pub(super) fn check_properties_seen(layer: &Layer) -> Result<(), Problem> {
    if layer.points.is_empty() {
        return Ok(());
    }
    let names = layer.schema.time.iter().chain(&layer.schema.categories);
    for (name, seen) in names.zip(&layer.seen) {
        if !seen {
            return Err(Problem::Attribute(format!(
                "no feature has the property {name:?} (declared by the layer's `time` or `categories`)"
            )));
        }
    }
    Ok(())
}

fn feature_weight(feature: &Value, path: &JsonPath) -> Result<f32, JsonError> {
    let properties_path = path.key("properties");
    let properties = match feature.get("properties") {
        None | Some(Value::Null) => return Ok(1.0),
        Some(Value::Object(properties)) => properties,
        Some(other) => {
            return Err(properties_path.error(wrong_type(
                "\"properties\"",
                "an object or null",
                other,
            )))
        }
    };
    let found = WEIGHT_NAMES.iter().find_map(|name| {
        properties
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
    });
    let Some((key, value)) = found else {
        return Ok(1.0);
    };
    let weight_path = properties_path.key(key);
    let weight = json_number(value, &weight_path, Field::Weight)?;
    weight_value(weight).map_err(|p| weight_path.error(p))
}

fn geometry(
    value: &Value,
    path: &JsonPath,
    subject: Subject,
    w: f32,
    layer: &mut Layer,
) -> Result<(), JsonError> {
    let coordinates_path = path.key("coordinates");
    let coordinates = || {
        value.get("coordinates").ok_or_else(|| {
            path.error(Problem::Structure(format!(
                "{subject}: the geometry has no \"coordinates\""
            )))
        })
    };
    match value.get("type").and_then(Value::as_str) {
        Some("Point") => position(coordinates()?, &coordinates_path, w, layer),
        Some("MultiPoint") => {
            let positions = json_array(coordinates()?, &coordinates_path, "\"coordinates\"")?;
            for (i, p) in positions.iter().enumerate() {
                position(p, &coordinates_path.index(i), w, layer)?;
            }
            Ok(())
        }
        Some("GeometryCollection") => {
            let geometries_path = path.key("geometries");
            let geometries = value.get("geometries").ok_or_else(|| {
                path.error(Problem::Structure(format!(
                    "{subject}: the GeometryCollection has no \"geometries\""
                )))
            })?;
            // serde_json refuses nesting deeper than 128, which bounds this recursion.
            for (i, g) in json_array(geometries, &geometries_path, "\"geometries\"")?
                .iter()
                .enumerate()
            {
                geometry(g, &geometries_path.index(i), subject, w, layer)?;
            }
            Ok(())
        }
        Some(kind) => Err(path.key("type").error(Problem::UnsupportedGeometry {
            what: subject.to_string(),
            kind: kind.to_owned(),
        })),
        None => Err(path.error(wrong_type(
            &format!("{subject}: the geometry"),
            "an object with a \"type\"",
            value,
        ))),
    }
}

/// A GeoJSON position `[lon, lat(, altitude...)]`; altitude is ignored.
fn position(value: &Value, path: &JsonPath, w: f32, layer: &mut Layer) -> Result<(), JsonError> {
    let Some([lon, lat, ..]) = value.as_array().map(Vec::as_slice) else {
        return Err(path.error(wrong_type("a position", "[lon, lat]", value)));
    };
    let lon = json_number(lon, &path.index(0), Field::Longitude)?;
    let lat = json_number(lat, &path.index(1), Field::Latitude)?;
    layer.push(lon, lat, w).map_err(|p| path.error(p))
}

#[cfg(test)]
mod tests {
    use super::super::tests::{assert_has, err_at, lonlat, ok, COLLECTION};
    use super::super::{parse_points, WeightMode};

    #[test]
    fn geojson_feature_collection_points_multipoints_and_collections() {
        let points = ok("p.geojson", COLLECTION);
        let got: Vec<_> = points.iter().map(lonlat).collect();
        assert_eq!(
            got,
            [
                (13.4, 52.5, 2.0, 0),
                (1.0, 2.0, 3.0, 1),
                (3.0, 4.0, 3.0, 2),
                (5.0, 6.0, 1.0, 3),
                (7.0, 8.0, 1.0, 4),
                (-9.0, -10.0, 1.0, 5),
            ]
        );
        // A .json file holding an object is GeoJSON too.
        assert_eq!(ok("p.json", COLLECTION), points);
        let unweighted =
            parse_points("p.geojson", COLLECTION.as_bytes(), WeightMode::Unweighted).unwrap();
        assert!(unweighted.iter().all(|p| p.w == 1.0));
    }

    #[test]
    fn geojson_lone_feature_and_bare_geometries() {
        let feature = r#"{"type": "Feature", "properties": {"w": 0.5}, "geometry": {"type": "Point", "coordinates": [1, 2]}}"#;
        assert_eq!(lonlat(&ok("p.geojson", feature)[0]), (1.0, 2.0, 0.5, 0));
        let point = r#"{"type": "Point", "coordinates": [1, 2]}"#;
        assert_eq!(lonlat(&ok("p.geojson", point)[0]), (1.0, 2.0, 1.0, 0));
        let multi = r#"{"type": "MultiPoint", "coordinates": [[1, 2], [3, 4]]}"#;
        assert_eq!(ok("p.json", multi).len(), 2);
        let empty = r#"{"type": "FeatureCollection", "features": []}"#;
        assert_eq!(ok("p.geojson", empty), []);
        assert_eq!(ok("p.geojson", " \n"), []);
    }

    #[test]
    fn geojson_unsupported_geometry_names_the_feature_and_line() {
        let text = "{\"type\": \"FeatureCollection\", \"features\": [\n\
                    {\"type\": \"Feature\", \"geometry\": {\"type\": \"Point\", \"coordinates\": [1, 2]}},\n\
                    {\"type\": \"Feature\", \"id\": 7, \"geometry\":\n\
                    {\"type\": \"LineString\", \"coordinates\": [[1, 2], [3, 4]]}}\n]}";
        let message = err_at("p.geojson", text, 4);
        assert_has(
            &message,
            "features[1] (id 7): geometry type \"LineString\" is not supported",
        );
        let bare = "{\"type\": \"Polygon\", \"coordinates\": []}";
        assert_has(
            &err_at("p.geojson", bare, 1),
            "the geometry: geometry type \"Polygon\"",
        );
        let nested = "{\"type\": \"Feature\", \"geometry\": {\"type\": \"GeometryCollection\", \"geometries\": [\n{\"type\": \"Point\", \"coordinates\": [1, 2]},\n{\"type\": \"MultiPolygon\", \"coordinates\": []}]}}";
        assert_has(
            &err_at("p.geojson", nested, 3),
            "the feature: geometry type \"MultiPolygon\"",
        );
        let named = nested.replace(
            "{\"type\": \"Feature\",",
            "{\"type\": \"Feature\", \"id\": \"road-1\",",
        );
        assert_has(
            &err_at("p.geojson", &named, 3),
            "the feature (id \"road-1\"): geometry type",
        );
    }

    #[test]
    fn geojson_non_numeric_weight_is_an_error_at_its_line() {
        let text = "{\"type\": \"FeatureCollection\", \"features\": [\n\
                    {\"type\": \"Feature\", \"properties\": {\"weight\": 1}, \"geometry\": {\"type\": \"Point\", \"coordinates\": [1, 2]}},\n\
                    {\"type\": \"Feature\", \"properties\": {\n\"name\": \"x\",\n\"Weight\": \"heavy\"}, \"geometry\": {\"type\": \"Point\", \"coordinates\": [1, 2]}}\n]}";
        let message = err_at("p.geojson", text, 5);
        assert_has(
            &message,
            "weight must be a number, found the string \"heavy\"",
        );
        let null_weight = text.replace("\"heavy\"", "null");
        assert_has(
            &err_at("p.geojson", &null_weight, 5),
            "weight must be a number, found null",
        );
        let negative = text.replace("\"heavy\"", "-2");
        assert_has(&err_at("p.geojson", &negative, 5), "weight -2 is negative");
        // Not read at all when unweighted.
        assert_eq!(
            parse_points("p.geojson", text.as_bytes(), WeightMode::Unweighted)
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn geojson_coordinate_errors_name_the_line() {
        let mut text = String::from("{\"type\": \"FeatureCollection\",\n\"features\": [\n");
        for i in 0..5 {
            let lat = if i == 3 { 91.0 } else { 1.0 };
            let sep = if i < 4 { "," } else { "" };
            text.push_str(&format!(
                "{{\"type\": \"Feature\", \"geometry\": {{\"type\": \"Point\", \"coordinates\": [0, {lat}]}}}}{sep}\n"
            ));
        }
        text.push_str("]}\n");
        assert_eq!(
            err_at("p.geojson", &text, 6),
            "p.geojson:6: latitude 91 is outside -90..90"
        );
        let multi = "{\"type\": \"MultiPoint\", \"coordinates\": [\n[1, 2],\n[200, 2]]}";
        assert_has(
            &err_at("p.geojson", multi, 3),
            "longitude 200 is outside -180..180",
        );
        let short = "{\"type\": \"Point\",\n\"coordinates\": [1]}";
        assert_has(
            &err_at("p.geojson", short, 2),
            "a position must be [lon, lat], found an array of 1 element",
        );
        let text_number = "{\"type\": \"Point\", \"coordinates\": [1,\n\"2\"]}";
        assert_has(
            &err_at("p.geojson", text_number, 2),
            "latitude must be a number, found the string \"2\"",
        );
        let missing = "{\"type\": \"Point\"}";
        assert_has(&err_at("p.geojson", missing, 1), "has no \"coordinates\"");
    }

    #[test]
    fn geojson_structure_errors() {
        assert_has(&err_at("p.geojson", "{\"foo\": 1}", 1), "not GeoJSON");
        assert_has(
            &err_at("p.geojson", "[[1, 2]]", 1),
            "the file must be a GeoJSON object, found an array",
        );
        assert_has(
            &err_at(
                "p.geojson",
                "{\"type\": \"FeatureCollection\", \"features\": {}}",
                1,
            ),
            "\"features\" must be an array, found an object",
        );
        assert_has(
            &err_at("p.geojson", "{\"type\": \"FeatureCollection\"}", 1),
            "has no \"features\"",
        );
        let not_feature = "{\"type\": \"FeatureCollection\", \"features\": [\n{\"type\": \"Point\", \"coordinates\": [1, 2]}]}";
        assert_has(
            &err_at("p.geojson", not_feature, 2),
            "features[0] must be an object with \"type\": \"Feature\"",
        );
        let bad_properties = "{\"type\": \"Feature\", \"properties\": [1], \"geometry\": {\"type\": \"Point\", \"coordinates\": [1, 2]}}";
        assert_has(
            &err_at("p.geojson", bad_properties, 1),
            "\"properties\" must be an object or null",
        );
        let bad_geometry = "{\"type\": \"Feature\", \"geometry\": 5}";
        assert_has(
            &err_at("p.geojson", bad_geometry, 1),
            "the feature: the geometry must be an object",
        );
    }
}
