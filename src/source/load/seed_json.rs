//! The seed's JSON list `[[lat, lon(, weight)], ...]`, latitude first as in Leaflet.heat.

use super::json::{json_number, wrong_type};
use super::locate::{JsonError, JsonPath};
use super::{weight_value, Field, Layer, WeightMode};
use serde_json::Value;

/// `[[lat, lon], [lat, lon, weight], ...]`: latitude first, as Leaflet.heat takes them.
pub(super) fn seed_list(
    items: &[Value],
    path: &JsonPath,
    mode: WeightMode,
    layer: &mut Layer,
) -> Result<(), JsonError> {
    for (i, item) in items.iter().enumerate() {
        let item_path = path.index(i);
        let (lat, lon, weight) = match item.as_array().map(Vec::as_slice) {
            Some([lat, lon]) => (lat, lon, None),
            Some([lat, lon, weight]) => (lat, lon, Some(weight)),
            _ => {
                return Err(item_path.error(wrong_type(
                    &format!("element {i}"),
                    "[lat, lon] or [lat, lon, weight]",
                    item,
                )))
            }
        };
        let lat = json_number(lat, &item_path.index(0), Field::Latitude)?;
        let lon = json_number(lon, &item_path.index(1), Field::Longitude)?;
        let w = match (mode, weight) {
            (WeightMode::FromData, Some(weight)) => {
                let weight_path = item_path.index(2);
                let weight = json_number(weight, &weight_path, Field::Weight)?;
                weight_value(weight).map_err(|p| weight_path.error(p))?
            }
            _ => 1.0,
        };
        layer.push(lon, lat, w).map_err(|p| item_path.error(p))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::tests::{assert_has, err_at, lonlat, ok};
    use super::super::{parse_points, WeightMode};

    #[test]
    fn seed_list_is_latitude_first() {
        let points = ok("p.json", "[[52.5, 13.4], [48.85, 2.35, 0.5]]");
        assert_eq!(lonlat(&points[0]), (13.4, 52.5, 1.0, 0));
        assert_eq!(lonlat(&points[1]), (2.35, 48.85, 0.5, 1));
        let points = parse_points("p.json", b"[[1, 2, \"x\"]]", WeightMode::Unweighted).unwrap();
        assert_eq!(points[0].w, 1.0);
        assert_eq!(ok("p.json", "[]"), []);
        assert_eq!(ok("p.json", ""), []);
        assert_eq!(ok("p.json", "\u{feff}[[1, 2]]").len(), 1);
    }

    #[test]
    fn seed_list_errors_name_the_element_line() {
        let text = "[\n[1, 2],\n[3, 4, 1],\n[91, 5]\n]";
        assert_eq!(
            err_at("p.json", text, 4),
            "p.json:4: latitude 91 is outside -90..90"
        );
        let lon = "[[1, 2],\n  [3, 190]]";
        assert_has(
            &err_at("p.json", lon, 2),
            "longitude 190 is outside -180..180",
        );
        let object = "[[1, 2],\n{\"lat\": 1, \"lng\": 2}]";
        assert_has(
            &err_at("p.json", object, 2),
            "element 1 must be [lat, lon] or [lat, lon, weight], found an object",
        );
        let long = "[[1, 2, 3, 4]]";
        assert_has(&err_at("p.json", long, 1), "found an array of 4 elements");
        let string = "[[1, 2],\n[3,\n\"4\"]]";
        assert_has(
            &err_at("p.json", string, 3),
            "longitude must be a number, found the string \"4\"",
        );
        let negative = "[[1, 2],\n[3, 4,\n-1]]";
        assert_eq!(
            err_at("p.json", negative, 3),
            "p.json:3: weight -1 is negative"
        );
        let weight = "[[1, 2, null]]";
        assert_has(
            &err_at("p.json", weight, 1),
            "weight must be a number, found null",
        );
        assert_has(&err_at("p.json", "5", 1), "the file must be an array");
    }
}
