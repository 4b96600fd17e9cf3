//! PNG encoding of indexed images (8-bit palette with PLTE + tRNS) and the shared empty tile.

use super::IndexedImage;
use std::sync::OnceLock;

/// Why a PNG could not be written (only on internal misuse: sizes are validated upstream).
#[derive(Debug, thiserror::Error)]
#[error("PNG encoding failed: {0}")]
pub struct EncodeError(#[from] png::EncodingError);

/// Encodes an indexed image as an 8-bit palette PNG. The palette is cut after the highest
/// index used, and tRNS after the last entry that is not opaque, to keep small tiles small.
pub fn encode_indexed(img: &IndexedImage) -> Result<Vec<u8>, EncodeError> {
    let used = img.pixels.iter().copied().max().unwrap_or(0) as usize + 1;
    let plte: Vec<u8> = img.palette.0[..used]
        .iter()
        .flat_map(|c| [c[0], c[1], c[2]])
        .collect();
    let trns_len = img.palette.0[..used]
        .iter()
        .rposition(|c| c[3] != 255)
        .map_or(0, |i| i + 1);
    let trns: Vec<u8> = img.palette.0[..trns_len].iter().map(|c| c[3]).collect();

    let mut out = Vec::with_capacity(img.pixels.len() / 4 + 2048);
    {
        let mut encoder = png::Encoder::new(&mut out, img.width, img.height);
        encoder.set_color(png::ColorType::Indexed);
        encoder.set_depth(png::BitDepth::Eight);
        encoder.set_palette(plte);
        if !trns.is_empty() {
            encoder.set_trns(trns);
        }
        // Fast compression: tiles are rendered per request. The filter is chosen per row
        // (adaptive) rather than always Sub: smaller tiles for little more time, while zlib
        // at any level costs far more time for little less size (benches/README.md, "Figures
        // behind design choices").
        encoder.set_compression(png::Compression::Fast);
        encoder.set_adaptive_filter(png::AdaptiveFilterType::Adaptive);
        let mut writer = encoder.write_header()?;
        writer.write_image_data(&img.pixels)?;
        writer.finish()?;
    }
    Ok(out)
}

/// A fully transparent PNG of `size` x `size`, encoded once per size and shared.
pub fn empty_png(size: u32) -> &'static [u8] {
    static EMPTY_256: OnceLock<Vec<u8>> = OnceLock::new();
    static EMPTY_512: OnceLock<Vec<u8>> = OnceLock::new();
    let cell = match size {
        256 => &EMPTY_256,
        512 => &EMPTY_512,
        // Other sizes (overlays) are not shared; callers encode those directly.
        _ => return &[],
    };
    cell.get_or_init(|| encode_empty(size, size))
}

/// A fully transparent 1-bit palette PNG (one transparent entry).
pub fn encode_empty(width: u32, height: u32) -> Vec<u8> {
    let row_bytes = (width as usize).div_ceil(8);
    let data = vec![0u8; row_bytes * height as usize];
    let mut out = Vec::new();
    let written = {
        let mut encoder = png::Encoder::new(&mut out, width, height);
        encoder.set_color(png::ColorType::Indexed);
        encoder.set_depth(png::BitDepth::One);
        encoder.set_palette(vec![0, 0, 0]);
        encoder.set_trns(vec![0]);
        encoder.set_compression(png::Compression::Best);
        encoder
            .write_header()
            .and_then(|mut w| w.write_image_data(&data).and_then(|()| w.finish()))
    };
    // Writing a small in-memory image with a valid header cannot fail; an empty body would
    // show up at once in the empty-tile tests.
    match written {
        Ok(()) => out,
        Err(_) => Vec::new(),
    }
}

/// Decodes any PNG to straight RGBA (tests and tools use it to compare images).
pub fn decode_rgba(bytes: &[u8]) -> Result<(u32, u32, Vec<u8>), png::DecodingError> {
    let mut decoder = png::Decoder::new(bytes);
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::ALPHA);
    let mut reader = decoder.read_info()?;
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf)?;
    buf.truncate(info.buffer_size());
    let (w, h) = (info.width, info.height);
    let rgba = match info.color_type {
        png::ColorType::Rgba => buf,
        png::ColorType::GrayscaleAlpha => buf
            .chunks_exact(2)
            .flat_map(|c| [c[0], c[0], c[0], c[1]])
            .collect(),
        png::ColorType::Rgb => buf
            .chunks_exact(3)
            .flat_map(|c| [c[0], c[1], c[2], 255])
            .collect(),
        png::ColorType::Grayscale => buf.iter().flat_map(|&g| [g, g, g, 255]).collect(),
        png::ColorType::Indexed => buf,
    };
    Ok((w, h, rgba))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::{ColorRamp, Palette};

    #[test]
    fn indexed_png_round_trips_with_plte_and_trns() {
        let palette = ColorRamp::leaflet_default().alpha_palette();
        let pixels: Vec<u8> = (0..64u32 * 32).map(|i| (i % 256) as u8).collect();
        let img = IndexedImage {
            width: 64,
            height: 32,
            pixels,
            palette,
        };
        let bytes = encode_indexed(&img).expect("encode");
        assert!(bytes.windows(4).any(|w| w == b"PLTE"));
        assert!(bytes.windows(4).any(|w| w == b"tRNS"));
        // Color type 3 (indexed) at byte 25 of the IHDR.
        assert_eq!(bytes[25], 3);
        let (w, h, rgba) = decode_rgba(&bytes).expect("decode");
        assert_eq!((w, h), (64, 32));
        assert_eq!(rgba, img.to_rgba());
    }

    #[test]
    fn empty_tiles_are_shared_and_transparent() {
        let a = empty_png(256);
        assert!(std::ptr::eq(a, empty_png(256)));
        let (w, h, rgba) = decode_rgba(a).expect("decode");
        assert_eq!((w, h), (256, 256));
        assert!(rgba.chunks_exact(4).all(|p| p[3] == 0));
        assert_eq!(decode_rgba(empty_png(512)).expect("decode").0, 512);
        let blank = IndexedImage {
            width: 2,
            height: 2,
            pixels: vec![0; 4],
            palette: Palette([[0, 0, 0, 0]; 256]),
        };
        assert!(blank.is_blank());
    }
}
