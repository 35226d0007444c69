//! QR frames: UR part text as QR codes, drawn in a terminal or written as PNG, and read back
//! from photos and screenshots.
//!
//! Parts are encoded in upper case so the whole text uses the QR alphanumeric mode (5.5 bits a
//! character instead of 8), at error-correction level L: a frame the camera misses is just a
//! lost fountain part, so spending modules on larger, easier-to-read cells beats spending them
//! on per-frame redundancy.

use std::io::Cursor;

use qrcode::{Color, EcLevel, QrCode, Version};

use crate::parts::{MAX_FRAGMENT_BYTES, MIN_FRAGMENT_BYTES, UR_TYPE};

/// Light modules around a terminal code. The standard asks for 4; 2 reads reliably off a
/// screen and leaves room for a larger code.
pub const TERMINAL_QUIET_ZONE: usize = 2;
/// Light modules around a PNG frame (the standard 4).
pub const PNG_QUIET_ZONE: usize = 4;
/// Default pixels per module in PNG frames.
pub const PNG_MODULE_PIXELS: u32 = 6;
/// Default animation speed; see `docs/airgap.md`.
pub const DEFAULT_FPS: u32 = 8;
/// Largest image side accepted when reading frames.
pub const MAX_IMAGE_SIDE: u32 = 8192;

/// What went wrong making or reading a QR frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QrError {
    #[error("part of {0} characters does not fit one QR code; use a smaller fragment size")]
    TooLong(usize),
    #[error("unreadable image: {0}")]
    Image(String),
    #[error("no QR code found in the image")]
    NoCode,
    #[error("a QR code was found but could not be read; retake the picture")]
    Unreadable,
}

/// One QR code, as a grid of modules.
#[derive(Clone, PartialEq, Eq)]
pub struct QrFrame {
    width: usize,
    dark: Vec<bool>,
    version: i16,
}

impl std::fmt::Debug for QrFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QrFrame")
            .field("version", &self.version)
            .field("width", &self.width)
            .finish_non_exhaustive()
    }
}

impl QrFrame {
    /// The QR code of one UR part.
    pub fn encode(part: &str) -> Result<Self, QrError> {
        let text = part.trim().to_ascii_uppercase();
        let code = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::L)
            .map_err(|_| QrError::TooLong(text.len()))?;
        let version = match code.version() {
            Version::Normal(v) | Version::Micro(v) => v,
        };
        let width = code.width();
        let dark = code
            .to_colors()
            .into_iter()
            .map(|c| c == Color::Dark)
            .collect();
        Ok(Self {
            width,
            dark,
            version,
        })
    }

    /// QR version (1..=40); the code is `17 + 4 × version` modules wide.
    #[must_use]
    pub const fn version(&self) -> i16 {
        self.version
    }

    /// Modules per side, without the quiet zone.
    #[must_use]
    pub const fn modules(&self) -> usize {
        self.width
    }

    /// Whether the module at column `x`, row `y` is dark; outside the code it is light.
    #[must_use]
    pub fn is_dark(&self, x: usize, y: usize) -> bool {
        x < self.width && y < self.width && self.dark[y * self.width + x]
    }

    /// Terminal cells (columns, rows) the code takes at `scale` columns per module.
    #[must_use]
    pub const fn terminal_size(&self, scale: usize) -> (usize, usize) {
        let side = (self.width + 2 * TERMINAL_QUIET_ZONE) * scale;
        (side, side.div_ceil(2))
    }

    /// The code as lines of text for a terminal of at most `max_cols` × `max_rows` cells, at the
    /// largest whole scale that fits, quiet zone included; `None` if it does not fit at all.
    ///
    /// Each cell stacks two module rows with the half-block characters `▀ ▄ █`, so with the
    /// usual 1:2 cell shape the modules come out square. Glyphs are the dark modules: draw the
    /// lines in a dark colour on a light background (the TUI and the CLI both set the colours
    /// explicitly, so the terminal's theme does not matter).
    #[must_use]
    pub fn terminal_lines(&self, max_cols: usize, max_rows: usize) -> Option<Vec<String>> {
        // Rows hold two pixel rows each, so the code fits while its side is within both limits.
        let scale = max_cols.min(2 * max_rows) / self.terminal_size(1).0;
        if scale == 0 {
            return None;
        }
        let side = (self.width + 2 * TERMINAL_QUIET_ZONE) * scale;
        let pixel = |x: usize, y: usize| -> bool {
            let (mx, my) = (x / scale, y / scale);
            mx >= TERMINAL_QUIET_ZONE
                && my >= TERMINAL_QUIET_ZONE
                && self.is_dark(mx - TERMINAL_QUIET_ZONE, my - TERMINAL_QUIET_ZONE)
        };
        let lines = (0..side.div_ceil(2))
            .map(|row| {
                (0..side)
                    .map(|x| {
                        let top = pixel(x, 2 * row);
                        let bottom = 2 * row + 1 < side && pixel(x, 2 * row + 1);
                        match (top, bottom) {
                            (true, true) => '█',
                            (true, false) => '▀',
                            (false, true) => '▄',
                            (false, false) => ' ',
                        }
                    })
                    .collect()
            })
            .collect();
        Some(lines)
    }

    /// The code as a PNG image, black on white, `module_px` pixels per module, with the
    /// standard quiet zone.
    #[must_use]
    pub fn png(&self, module_px: u32) -> Vec<u8> {
        let module_px = module_px.max(1);
        let side_modules = (self.width + 2 * PNG_QUIET_ZONE) as u32;
        let quiet = PNG_QUIET_ZONE as u32;
        let img = image::GrayImage::from_fn(
            side_modules * module_px,
            side_modules * module_px,
            |x, y| {
                let (mx, my) = (x / module_px, y / module_px);
                let dark = mx >= quiet
                    && my >= quiet
                    && self.is_dark((mx - quiet) as usize, (my - quiet) as usize);
                image::Luma([if dark { 0 } else { 255 }])
            },
        );
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Png)
            .expect("PNG encoding into memory cannot fail");
        out.into_inner()
    }
}

/// An upper bound on the characters of a part carrying `fragment` bytes (large sequence number,
/// largest header fields).
#[must_use]
pub fn part_chars_bound(fragment: usize) -> usize {
    let bstr_head = match fragment {
        0..=23 => 1,
        24..=255 => 2,
        _ => 3,
    };
    // array + seq + count + length + crc32 + bstr head, then the 4-byte bytewords checksum.
    let cbor = 1 + 5 + 3 + 5 + 5 + bstr_head + fragment;
    // "ur:" + type + "/" + seq (7 digits) + "-" + count (4 digits) + "/" + 2 letters a byte.
    3 + UR_TYPE.len() + 1 + 7 + 1 + 4 + 1 + 2 * (cbor + 4)
}

/// The QR version of the densest frame a stream with this fragment size can produce.
#[must_use]
pub fn version_for_fragment(fragment: usize) -> Option<i16> {
    let probe = "A".repeat(part_chars_bound(fragment));
    QrFrame::encode(&probe).ok().map(|f| f.version())
}

/// The largest fragment size whose frames fit a terminal area of `cols` × `rows` cells at scale
/// 1, or `None` if even the smallest does not. The TUI uses it to adapt density to the window.
#[must_use]
pub fn max_fragment_for_terminal(cols: usize, rows: usize) -> Option<usize> {
    let fits = |fragment: usize| {
        let probe = "A".repeat(part_chars_bound(fragment));
        QrFrame::encode(&probe).is_ok_and(|f| {
            let (c, r) = f.terminal_size(1);
            c <= cols && r <= rows
        })
    };
    if !fits(MIN_FRAGMENT_BYTES) {
        return None;
    }
    let (mut lo, mut hi) = (MIN_FRAGMENT_BYTES, MAX_FRAGMENT_BYTES);
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        if fits(mid) { lo = mid } else { hi = mid - 1 }
    }
    Some(lo)
}

/// Every QR code's text found in an image (PNG or JPEG), in detection order.
pub fn decode_image(bytes: &[u8]) -> Result<Vec<String>, QrError> {
    decode_gray(&load_gray(bytes)?)
}

/// A PNG or JPEG picture as grey pixels, within [`MAX_IMAGE_SIDE`] and a bounded allocation.
pub fn load_gray(bytes: &[u8]) -> Result<image::GrayImage, QrError> {
    let mut reader = image::ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| QrError::Image(e.to_string()))?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_IMAGE_SIDE);
    limits.max_image_height = Some(MAX_IMAGE_SIDE);
    limits.max_alloc = Some(512 << 20);
    reader.limits(limits);
    let img = reader
        .decode()
        .map_err(|e| QrError::Image(e.to_string()))?
        .to_luma8();
    Ok(img)
}

/// Every QR code's text found in a grey image (a camera or video frame), in detection order.
pub fn decode_gray(img: &image::GrayImage) -> Result<Vec<String>, QrError> {
    let mut prepared = rqrr::PreparedImage::prepare_from_greyscale(
        img.width() as usize,
        img.height() as usize,
        |x, y| img.get_pixel(x as u32, y as u32).0[0],
    );
    let grids = prepared.detect_grids();
    if grids.is_empty() {
        return Err(QrError::NoCode);
    }
    let texts: Vec<String> = grids
        .iter()
        .filter_map(|g| g.decode().ok().map(|(_, text)| text))
        .collect();
    if texts.is_empty() {
        return Err(QrError::Unreadable);
    }
    Ok(texts)
}
