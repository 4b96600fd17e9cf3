//! Color ramps: the seed's five scheme tables, Leaflet.heat-style gradients, and the 256-entry
//! palettes every style renders through.

use std::sync::OnceLock;

/// One palette entry, straight (not premultiplied) alpha.
pub type Rgba = [u8; 4];

/// 256 entries; rendered pixels are indices into it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Palette(pub [Rgba; 256]);

/// The seed's schemes (heatmap 2.2.1, MIT; from gheat, MIT). Index 0 = densest, 255 = empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    Classic,
    Fire,
    Omg,
    Pbj,
    Pgaitch,
}

impl Scheme {
    pub const ALL: [Scheme; 5] = [
        Scheme::Classic,
        Scheme::Fire,
        Scheme::Omg,
        Scheme::Pbj,
        Scheme::Pgaitch,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scheme::Classic => "classic",
            Scheme::Fire => "fire",
            Scheme::Omg => "omg",
            Scheme::Pbj => "pbj",
            Scheme::Pgaitch => "pgaitch",
        }
    }

    pub fn from_name(name: &str) -> Option<Scheme> {
        Scheme::ALL.into_iter().find(|s| s.name() == name)
    }

    /// The scheme's 256 colors, index 0 = densest.
    pub fn table(self) -> &'static [[u8; 3]; 256] {
        &scheme_tables()[self as usize]
    }
}

/// The scheme file is embedded so the binary works from any directory; it is checked by
/// a unit test against the SHA-256 sums published with it.
const SCHEMES_JSON: &str = include_str!("../../data/color-schemes.json");

fn scheme_tables() -> &'static [[[u8; 3]; 256]; 5] {
    static TABLES: OnceLock<[[[u8; 3]; 256]; 5]> = OnceLock::new();
    TABLES.get_or_init(|| {
        let parsed = parse_scheme_file(SCHEMES_JSON);
        // The file is compiled in and covered by tests, so a failure here is a build defect.
        parsed.unwrap_or_else(|e| panic!("embedded color-schemes.json is invalid: {e}"))
    })
}

fn parse_scheme_file(text: &str) -> Result<[[[u8; 3]; 256]; 5], String> {
    let doc: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let mut tables = [[[0u8; 3]; 256]; 5];
    for scheme in Scheme::ALL {
        let list = doc["schemes"][scheme.name()]
            .as_array()
            .ok_or_else(|| format!("scheme {} missing", scheme.name()))?;
        if list.len() != 256 {
            return Err(format!(
                "scheme {} has {} entries",
                scheme.name(),
                list.len()
            ));
        }
        for (i, entry) in list.iter().enumerate() {
            let rgb = entry
                .as_str()
                .and_then(parse_hex)
                .ok_or_else(|| format!("scheme {} entry {i} is not #rrggbb", scheme.name()))?;
            tables[scheme as usize][i] = [rgb[0], rgb[1], rgb[2]];
        }
    }
    Ok(tables)
}

/// A color ramp chosen by the request: a seed scheme or a gradient of stops.
#[derive(Debug, Clone, PartialEq)]
pub enum ColorRamp {
    Scheme(Scheme),
    /// Stops sorted by offset in [0, 1], as Leaflet.heat's `gradient` option.
    Gradient(Vec<(f64, [u8; 3])>),
}

impl ColorRamp {
    /// Leaflet.heat's (simpleheat's) default gradient.
    pub fn leaflet_default() -> ColorRamp {
        ColorRamp::Gradient(vec![
            (0.4, [0, 0, 255]),
            (0.6, [0, 255, 255]),
            (0.7, [0, 255, 0]),
            (0.8, [255, 255, 0]),
            (1.0, [255, 0, 0]),
        ])
    }

    /// The 256 colors from coldest (index 0) to hottest (255). For gradients this is what
    /// Chromium builds for simpleheat: entry i is the gradient at t = (i + 0.5) / 256.
    pub fn colors_cold_to_hot(&self) -> [[u8; 3]; 256] {
        match self {
            ColorRamp::Scheme(s) => {
                let table = s.table();
                std::array::from_fn(|i| table[255 - i])
            }
            ColorRamp::Gradient(stops) => {
                std::array::from_fn(|i| gradient_at(stops, (i as f64 + 0.5) / 256.0))
            }
        }
    }

    /// Palette where entry i has alpha i and the ramp's color for intensity i (smooth, density).
    pub fn alpha_palette(&self) -> Palette {
        let colors = self.colors_cold_to_hot();
        Palette(std::array::from_fn(|i| {
            let [r, g, b] = colors[i];
            [r, g, b, i as u8]
        }))
    }

    /// A heatmap-2.2.1-style table (index 0 = densest) for the dots style.
    pub fn scheme_table(&self) -> [[u8; 3]; 256] {
        match self {
            ColorRamp::Scheme(s) => *s.table(),
            ColorRamp::Gradient(_) => {
                let colors = self.colors_cold_to_hot();
                std::array::from_fn(|i| colors[255 - i])
            }
        }
    }

    /// A canonical text form, equal for equal ramps (used in cache keys and URLs).
    pub fn canonical(&self) -> String {
        match self {
            ColorRamp::Scheme(s) => format!("scheme={}", s.name()),
            ColorRamp::Gradient(stops) => {
                let parts: Vec<String> = stops
                    .iter()
                    .map(|(t, [r, g, b])| format!("{t}:#{r:02x}{g:02x}{b:02x}"))
                    .collect();
                format!("gradient={}", parts.join(","))
            }
        }
    }
}

/// Linear interpolation between sorted stops in sRGB bytes; flat beyond the end stops.
fn gradient_at(stops: &[(f64, [u8; 3])], t: f64) -> [u8; 3] {
    let Some(first) = stops.first() else {
        return [0, 0, 0];
    };
    if t <= first.0 {
        return first.1;
    }
    for pair in stops.windows(2) {
        let (t0, c0) = pair[0];
        let (t1, c1) = pair[1];
        if t <= t1 {
            let f = if t1 > t0 { (t - t0) / (t1 - t0) } else { 1.0 };
            return std::array::from_fn(|k| {
                (c0[k] as f64 + (c1[k] as f64 - c0[k] as f64) * f).round() as u8
            });
        }
    }
    stops[stops.len() - 1].1
}

/// Why a gradient string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GradientError {
    #[error("gradient needs 1 to {MAX_STOPS} stops, got {0}")]
    StopCount(usize),
    #[error("stop {0:?} is not of the form offset:color")]
    Shape(String),
    #[error("offset {0:?} is not a number in 0..1")]
    Offset(String),
    #[error("color {0:?} is not a CSS color (name, #rgb, #rgba, #rrggbb, #rrggbbaa, rgb(r,g,b), rgba(r,g,b,a))")]
    Color(String),
    #[error("offset {0} appears twice")]
    Duplicate(String),
}

pub const MAX_STOPS: usize = 16;

/// Parses `0.4:blue,0.65:lime,1:red` (offsets in [0, 1], CSS colors; commas inside
/// `rgb(...)` are part of the color).
pub fn parse_gradient(text: &str) -> Result<ColorRamp, GradientError> {
    let items = split_top_level(text);
    if items.is_empty() || items.len() > MAX_STOPS {
        return Err(GradientError::StopCount(items.len()));
    }
    let mut stops: Vec<(f64, [u8; 3])> = Vec::with_capacity(items.len());
    for item in items {
        let (offset, color) = item
            .split_once(':')
            .ok_or_else(|| GradientError::Shape(item.to_string()))?;
        let t: f64 = offset
            .trim()
            .parse()
            .ok()
            .filter(|t: &f64| t.is_finite() && (0.0..=1.0).contains(t))
            .ok_or_else(|| GradientError::Offset(offset.to_string()))?;
        let rgba =
            parse_css_color(color.trim()).ok_or_else(|| GradientError::Color(color.to_string()))?;
        if stops.iter().any(|(s, _)| *s == t) {
            return Err(GradientError::Duplicate(offset.to_string()));
        }
        stops.push((t, [rgba[0], rgba[1], rgba[2]]));
    }
    stops.sort_by(|a, b| a.0.total_cmp(&b.0));
    Ok(ColorRamp::Gradient(stops))
}

fn split_top_level(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if !text.is_empty() {
        parts.push(&text[start..]);
    }
    parts
}

/// Parses a CSS color: a named color, `#rgb`, `#rgba`, `#rrggbb`, `#rrggbbaa`, `rgb()`/`rgba()`.
pub fn parse_css_color(text: &str) -> Option<Rgba> {
    let lower = text.to_ascii_lowercase();
    if let Some(hex) = lower.strip_prefix('#') {
        return parse_hex_digits(hex);
    }
    if let Some(args) = lower
        .strip_prefix("rgba(")
        .or_else(|| lower.strip_prefix("rgb("))
        .and_then(|rest| rest.strip_suffix(')'))
    {
        let nums: Vec<&str> = args.split(',').map(str::trim).collect();
        if nums.len() != 3 && nums.len() != 4 {
            return None;
        }
        let mut out = [0u8, 0, 0, 255];
        for (k, n) in nums.iter().take(3).enumerate() {
            let v: f64 = n.parse().ok().filter(|v: &f64| v.is_finite())?;
            if !(0.0..=255.0).contains(&v) {
                return None;
            }
            out[k] = v.round() as u8;
        }
        if let Some(a) = nums.get(3) {
            let v: f64 = a.parse().ok().filter(|v: &f64| (0.0..=1.0).contains(v))?;
            out[3] = (v * 255.0).round() as u8;
        }
        return Some(out);
    }
    css_named(&lower)
}

fn parse_hex(text: &str) -> Option<[u8; 4]> {
    text.strip_prefix('#').and_then(parse_hex_digits)
}

fn parse_hex_digits(hex: &str) -> Option<Rgba> {
    if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let digit = |i: usize| u8::from_str_radix(&hex[i..i + 1], 16).ok();
    let byte = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).ok();
    match hex.len() {
        3 | 4 => {
            let mut out = [0, 0, 0, 255];
            for (k, slot) in out.iter_mut().enumerate().take(hex.len()) {
                *slot = digit(k)? * 17;
            }
            Some(out)
        }
        6 | 8 => {
            let mut out = [0, 0, 0, 255];
            for (k, slot) in out.iter_mut().enumerate().take(hex.len() / 2) {
                *slot = byte(2 * k)?;
            }
            Some(out)
        }
        _ => None,
    }
}

/// The CSS named colors (CSS Color Module Level 4), plus `transparent`.
fn css_named(name: &str) -> Option<Rgba> {
    let rgb: u32 = match name {
        "transparent" => return Some([0, 0, 0, 0]),
        "aliceblue" => 0xf0f8ff,
        "antiquewhite" => 0xfaebd7,
        "aqua" | "cyan" => 0x00ffff,
        "aquamarine" => 0x7fffd4,
        "azure" => 0xf0ffff,
        "beige" => 0xf5f5dc,
        "bisque" => 0xffe4c4,
        "black" => 0x000000,
        "blanchedalmond" => 0xffebcd,
        "blue" => 0x0000ff,
        "blueviolet" => 0x8a2be2,
        "brown" => 0xa52a2a,
        "burlywood" => 0xdeb887,
        "cadetblue" => 0x5f9ea0,
        "chartreuse" => 0x7fff00,
        "chocolate" => 0xd2691e,
        "coral" => 0xff7f50,
        "cornflowerblue" => 0x6495ed,
        "cornsilk" => 0xfff8dc,
        "crimson" => 0xdc143c,
        "darkblue" => 0x00008b,
        "darkcyan" => 0x008b8b,
        "darkgoldenrod" => 0xb8860b,
        "darkgray" | "darkgrey" => 0xa9a9a9,
        "darkgreen" => 0x006400,
        "darkkhaki" => 0xbdb76b,
        "darkmagenta" => 0x8b008b,
        "darkolivegreen" => 0x556b2f,
        "darkorange" => 0xff8c00,
        "darkorchid" => 0x9932cc,
        "darkred" => 0x8b0000,
        "darksalmon" => 0xe9967a,
        "darkseagreen" => 0x8fbc8f,
        "darkslateblue" => 0x483d8b,
        "darkslategray" | "darkslategrey" => 0x2f4f4f,
        "darkturquoise" => 0x00ced1,
        "darkviolet" => 0x9400d3,
        "deeppink" => 0xff1493,
        "deepskyblue" => 0x00bfff,
        "dimgray" | "dimgrey" => 0x696969,
        "dodgerblue" => 0x1e90ff,
        "firebrick" => 0xb22222,
        "floralwhite" => 0xfffaf0,
        "forestgreen" => 0x228b22,
        "fuchsia" | "magenta" => 0xff00ff,
        "gainsboro" => 0xdcdcdc,
        "ghostwhite" => 0xf8f8ff,
        "gold" => 0xffd700,
        "goldenrod" => 0xdaa520,
        "gray" | "grey" => 0x808080,
        "green" => 0x008000,
        "greenyellow" => 0xadff2f,
        "honeydew" => 0xf0fff0,
        "hotpink" => 0xff69b4,
        "indianred" => 0xcd5c5c,
        "indigo" => 0x4b0082,
        "ivory" => 0xfffff0,
        "khaki" => 0xf0e68c,
        "lavender" => 0xe6e6fa,
        "lavenderblush" => 0xfff0f5,
        "lawngreen" => 0x7cfc00,
        "lemonchiffon" => 0xfffacd,
        "lightblue" => 0xadd8e6,
        "lightcoral" => 0xf08080,
        "lightcyan" => 0xe0ffff,
        "lightgoldenrodyellow" => 0xfafad2,
        "lightgray" | "lightgrey" => 0xd3d3d3,
        "lightgreen" => 0x90ee90,
        "lightpink" => 0xffb6c1,
        "lightsalmon" => 0xffa07a,
        "lightseagreen" => 0x20b2aa,
        "lightskyblue" => 0x87cefa,
        "lightslategray" | "lightslategrey" => 0x778899,
        "lightsteelblue" => 0xb0c4de,
        "lightyellow" => 0xffffe0,
        "lime" => 0x00ff00,
        "limegreen" => 0x32cd32,
        "linen" => 0xfaf0e6,
        "maroon" => 0x800000,
        "mediumaquamarine" => 0x66cdaa,
        "mediumblue" => 0x0000cd,
        "mediumorchid" => 0xba55d3,
        "mediumpurple" => 0x9370db,
        "mediumseagreen" => 0x3cb371,
        "mediumslateblue" => 0x7b68ee,
        "mediumspringgreen" => 0x00fa9a,
        "mediumturquoise" => 0x48d1cc,
        "mediumvioletred" => 0xc71585,
        "midnightblue" => 0x191970,
        "mintcream" => 0xf5fffa,
        "mistyrose" => 0xffe4e1,
        "moccasin" => 0xffe4b5,
        "navajowhite" => 0xffdead,
        "navy" => 0x000080,
        "oldlace" => 0xfdf5e6,
        "olive" => 0x808000,
        "olivedrab" => 0x6b8e23,
        "orange" => 0xffa500,
        "orangered" => 0xff4500,
        "orchid" => 0xda70d6,
        "palegoldenrod" => 0xeee8aa,
        "palegreen" => 0x98fb98,
        "paleturquoise" => 0xafeeee,
        "palevioletred" => 0xdb7093,
        "papayawhip" => 0xffefd5,
        "peachpuff" => 0xffdab9,
        "peru" => 0xcd853f,
        "pink" => 0xffc0cb,
        "plum" => 0xdda0dd,
        "powderblue" => 0xb0e0e6,
        "purple" => 0x800080,
        "rebeccapurple" => 0x663399,
        "red" => 0xff0000,
        "rosybrown" => 0xbc8f8f,
        "royalblue" => 0x4169e1,
        "saddlebrown" => 0x8b4513,
        "salmon" => 0xfa8072,
        "sandybrown" => 0xf4a460,
        "seagreen" => 0x2e8b57,
        "seashell" => 0xfff5ee,
        "sienna" => 0xa0522d,
        "silver" => 0xc0c0c0,
        "skyblue" => 0x87ceeb,
        "slateblue" => 0x6a5acd,
        "slategray" | "slategrey" => 0x708090,
        "snow" => 0xfffafa,
        "springgreen" => 0x00ff7f,
        "steelblue" => 0x4682b4,
        "tan" => 0xd2b48c,
        "teal" => 0x008080,
        "thistle" => 0xd8bfd8,
        "tomato" => 0xff6347,
        "turquoise" => 0x40e0d0,
        "violet" => 0xee82ee,
        "wheat" => 0xf5deb3,
        "white" => 0xffffff,
        "whitesmoke" => 0xf5f5f5,
        "yellow" => 0xffff00,
        "yellowgreen" => 0x9acd32,
        _ => return None,
    };
    Some([(rgb >> 16) as u8, (rgb >> 8) as u8, rgb as u8, 255])
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    #[test]
    fn embedded_schemes_match_published_checksums() {
        let doc: serde_json::Value = serde_json::from_str(SCHEMES_JSON).expect("json");
        for scheme in Scheme::ALL {
            let packed: Vec<u8> = scheme.table().iter().flatten().copied().collect();
            let digest = format!("{:x}", Sha256::digest(&packed));
            assert_eq!(
                digest,
                doc["sha256_of_packed_rgb"][scheme.name()]
                    .as_str()
                    .expect("sum"),
                "{}",
                scheme.name()
            );
        }
    }

    /// Chromium's palettes for simpleheat (fixtures) differ from the ideal linear
    /// interpolation by at most one step; ours must stay within that.
    #[test]
    fn gradient_palette_matches_chromium_within_one_step() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/simpleheat/cases.json"
        );
        let doc: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("json");
        let cases = doc["cases"].as_array().expect("cases");
        for case in cases {
            let name = case["gradient_name"].as_str().expect("name");
            let ramp = match case["gradient"].as_object() {
                None => ColorRamp::leaflet_default(),
                Some(stops) => {
                    let text: Vec<String> = stops
                        .iter()
                        .map(|(k, v)| format!("{k}:{}", v.as_str().expect("color")))
                        .collect();
                    parse_gradient(&text.join(",")).expect("gradient")
                }
            };
            let ours = ramp.colors_cold_to_hot();
            let theirs = doc["palettes"][name].as_array().expect("palette");
            for (i, entry) in theirs.iter().enumerate() {
                for k in 0..3 {
                    let t = entry[k].as_i64().expect("byte");
                    let diff = (t - ours[i][k] as i64).abs();
                    assert!(
                        diff <= 1,
                        "{name} entry {i} channel {k}: {} vs {t}",
                        ours[i][k]
                    );
                }
            }
        }
    }

    #[test]
    fn parses_gradients_and_css_colors() {
        let ramp = parse_gradient("1:red,0.4:blue,0.65:rgb(0, 255, 0)").expect("valid");
        assert_eq!(
            ramp,
            ColorRamp::Gradient(vec![
                (0.4, [0, 0, 255]),
                (0.65, [0, 255, 0]),
                (1.0, [255, 0, 0])
            ])
        );
        assert_eq!(parse_css_color("#0F0"), Some([0, 255, 0, 255]));
        assert_eq!(parse_css_color("#11223344"), Some([0x11, 0x22, 0x33, 0x44]));
        assert_eq!(
            parse_css_color("DarkSlateGrey"),
            Some([0x2f, 0x4f, 0x4f, 255])
        );
    }

    #[test]
    fn rejects_malformed_gradients() {
        for bad in [
            "",
            "red",
            "0.5",
            "x:red",
            "1.5:red",
            "-0.1:red",
            "NaN:red",
            "inf:red",
            "0.5:notacolor",
            "0.5:#12345",
            "0.5:rgb(300,0,0)",
            "0.5:red,0.5:blue",
            "0.5:red,",
            ",0.5:red",
            "0.5:rgb(1,2)",
        ] {
            assert!(parse_gradient(bad).is_err(), "{bad:?} should be refused");
        }
        let many: Vec<String> = (0..17)
            .map(|i| format!("{}:red", i as f64 / 20.0))
            .collect();
        assert_eq!(
            parse_gradient(&many.join(",")),
            Err(GradientError::StopCount(17))
        );
    }

    #[test]
    fn scheme_ramps_put_density_at_the_hot_end() {
        let ramp = ColorRamp::Scheme(Scheme::Fire);
        let table = Scheme::Fire.table();
        assert_eq!(ramp.alpha_palette().0[255][..3], table[0]);
        assert_eq!(ramp.alpha_palette().0[0][3], 0);
        assert_eq!(ramp.scheme_table(), *table);
    }
}
