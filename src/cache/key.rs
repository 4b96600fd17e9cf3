//! The identity of one rendered tile, and its stable text and hash forms.
//!
//! The text form is what the disk tier stores in each file's header (so a file can be
//! checked against the key asked for, and purged by predicate without an index); its
//! SHA-256 is the file name, so no user-supplied string ever becomes part of a path.

use sha2::{Digest, Sha256};
use std::sync::Arc;

/// Identifies one rendered tile. `style` is a canonical string (equal requests give equal
/// strings). The strings are shared (`Arc<str>`): a lookup builds a key per request, and
/// cloning the layer's name and the memoized style must not allocate.
#[derive(Debug, Clone, Eq)]
pub struct TileKey {
    pub layer: Arc<str>,
    pub version: u64,
    pub style: Arc<str>,
    pub ratio: u8,
    pub z: u8,
    pub x: u32,
    pub y: u32,
}

/// Field by field as derived, but the numbers first and each string by pointer before its
/// text: a memory-tier lookup compares the key asked for with the stored one, and both
/// usually share the registry's layer name and the memoized style, so the stored key's
/// strings (a cache miss each, among thousands of entries) need not be read.
impl PartialEq for TileKey {
    fn eq(&self, other: &TileKey) -> bool {
        fn same(a: &Arc<str>, b: &Arc<str>) -> bool {
            Arc::ptr_eq(a, b) || a == b
        }
        self.z == other.z
            && self.x == other.x
            && self.y == other.y
            && self.ratio == other.ratio
            && self.version == other.version
            && same(&self.layer, &other.layer)
            && same(&self.style, &other.style)
    }
}

/// Hashes the same fields `eq` compares, the strings by their text, so equal keys hash alike.
impl std::hash::Hash for TileKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.layer.hash(state);
        self.version.hash(state);
        self.style.hash(state);
        (self.ratio, self.z, self.x, self.y).hash(state);
    }
}

impl TileKey {
    /// Unambiguous text form: "layer\nversion\nratio\nz/x/y\nstyle" (used for hashing and
    /// stored in the file header).
    ///
    /// `style` goes last so it may hold any character; `layer` has its backslashes and
    /// newlines escaped so it can never swallow the next field.
    pub fn text(&self) -> String {
        format!(
            "{}\n{}\n{}\n{}/{}/{}\n{}",
            escape_layer(&self.layer),
            self.version,
            self.ratio,
            self.z,
            self.x,
            self.y,
            self.style
        )
    }

    /// The key whose [`text`](Self::text) is exactly `text`, or None.
    pub fn parse_text(text: &str) -> Option<TileKey> {
        let mut fields = text.splitn(5, '\n');
        let layer = unescape_layer(fields.next()?)?;
        let version = fields.next()?.parse().ok()?;
        let ratio = fields.next()?.parse().ok()?;
        let mut zxy = fields.next()?.split('/');
        let z = zxy.next()?.parse().ok()?;
        let x = zxy.next()?.parse().ok()?;
        let y = zxy.next()?.parse().ok()?;
        let style = fields.next()?.into();
        if zxy.next().is_some() {
            return None;
        }
        let key = TileKey {
            layer: layer.into(),
            version,
            style,
            ratio,
            z,
            x,
            y,
        };
        // Number parsing tolerates forms text() never writes ("+1", "007"); only the
        // canonical spelling may name a key, or two texts would share one tile.
        (key.text() == text).then_some(key)
    }

    /// SHA-256 of [`text`](Self::text): the disk tier's index key.
    pub fn hash(&self) -> [u8; 32] {
        text_hash(&self.text())
    }

    /// [`hash`](Self::hash) in lowercase hex: the file name. Never a user string in a path.
    pub fn hash_hex(&self) -> String {
        hex(&self.hash())
    }
}

/// SHA-256 of a key's text, for callers that already hold the text (they need it too).
pub fn text_hash(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

/// Lowercase hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

fn escape_layer(layer: &str) -> String {
    layer.replace('\\', "\\\\").replace('\n', "\\n")
}

fn unescape_layer(escaped: &str) -> Option<String> {
    let mut out = String::with_capacity(escaped.len());
    let mut chars = escaped.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next()? {
            '\\' => out.push('\\'),
            'n' => out.push('\n'),
            _ => return None,
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(layer: &str, style: &str) -> TileKey {
        TileKey {
            layer: layer.into(),
            version: 42,
            style: style.into(),
            ratio: 2,
            z: 12,
            x: 2047,
            y: 1361,
        }
    }

    #[test]
    fn text_round_trips() {
        for (layer, style) in [
            ("crimes", "density;r=12"),
            ("a\nb\\n", "multi\nline\nstyle"),
            ("", ""),
            ("ünïcode/../x", "s"),
        ] {
            let k = key(layer, style);
            assert_eq!(TileKey::parse_text(&k.text()), Some(k));
        }
    }

    #[test]
    fn text_is_unambiguous() {
        // A newline in the layer must not let it pose as a different layer + version.
        let a = key("x\n1", "s");
        let b = TileKey {
            layer: "x".into(),
            version: 1,
            ..key("", "s")
        };
        assert_ne!(a.text(), b.text());
        assert_ne!(a.hash_hex(), b.hash_hex());
    }

    #[test]
    fn parse_rejects_non_canonical_and_malformed() {
        let text = key("l", "s").text();
        assert!(TileKey::parse_text(&text.replace("\n42\n", "\n+42\n")).is_none());
        assert!(TileKey::parse_text(&text.replace("12/2047", "012/2047")).is_none());
        assert!(TileKey::parse_text("l\n42\n2\n12/2047/1361/9\ns").is_none());
        assert!(TileKey::parse_text("l\n42\n2\n12/2047").is_none());
        assert!(TileKey::parse_text("bad\\escape\n1\n1\n0/0/0\ns").is_none());
        assert!(TileKey::parse_text("l\n1\n300\n0/0/0\ns").is_none());
    }

    #[test]
    fn equality_is_by_content_and_every_field() {
        let a = key("crimes", "density;r=12");
        // Separately built strings: equal text in other allocations, equal hash.
        let b = key("crimes", "density;r=12");
        assert_eq!(a, b);
        let state = std::hash::RandomState::new();
        assert_eq!(
            std::hash::BuildHasher::hash_one(&state, &a),
            std::hash::BuildHasher::hash_one(&state, &b)
        );
        assert_eq!(a, a.clone());
        for other in [
            key("crime", "density;r=12"),
            key("crimes", "density;r=13"),
            TileKey {
                version: 43,
                ..a.clone()
            },
            TileKey {
                ratio: 1,
                ..a.clone()
            },
            TileKey { z: 11, ..a.clone() },
            TileKey {
                x: 2046,
                ..a.clone()
            },
            TileKey {
                y: 1360,
                ..a.clone()
            },
        ] {
            assert_ne!(a, other, "{other:?}");
        }
    }

    #[test]
    fn hash_is_hex_sha256() {
        let h = key("l", "s").hash_hex();
        assert_eq!(h.len(), 64);
        assert!(h
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        assert_ne!(h, key("l", "t").hash_hex());
    }
}
