//! Where scanned frames come from: a webcam, a recorded video or a folder of pictures.
//!
//! Every source hands out grey images one at a time through [`FrameSource`]; the scan
//! ([`crate::receive`]) does not know which kind it reads, so a test feeding recorded frames runs
//! the same code as a member holding a laptop up to a screen.
//!
//! - [`ImageDir`]: the PNG or JPEG files of a folder, in name order (`tessera bundle qr
//!   --png-dir` writes such a folder; a phone's burst photos are another).
//! - [`Y4mVideo`]: a YUV4MPEG2 stream (`.y4m`), the uncompressed format every video tool writes
//!   (`ffmpeg -i clip.mp4 -pix_fmt gray clip.y4m`); read without any system codec.
//! - `Camera` (feature `camera`, Linux): a V4L2 device such as `/dev/video0`.

use std::fmt;
use std::io::{BufRead, BufReader, Cursor, Read};
use std::path::{Path, PathBuf};

use image::GrayImage;

use crate::qr::MAX_IMAGE_SIDE;

#[cfg(all(feature = "camera", target_os = "linux"))]
mod camera;
#[cfg(all(feature = "camera", target_os = "linux"))]
pub use camera::Camera;

/// Largest picture file read from a folder.
pub const MAX_IMAGE_FILE_BYTES: u64 = 64 << 20;

/// Why a source cannot give the next frame. A frame that holds no readable code is not an error:
/// it is a frame, and the scan counts it as missed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a video this reader understands: {reason}")]
    Format { path: String, reason: String },
    #[error("{path}: no camera there or it cannot capture: {reason}")]
    Camera { path: String, reason: String },
}

/// A sequence of grey frames.
pub trait FrameSource {
    /// The next frame, or `None` once the source has ended (a camera never ends).
    fn next_frame(&mut self) -> Result<Option<Frame>, FrameError>;

    /// What is being read, for progress lines: a path or a device.
    fn describe(&self) -> String;
}

/// One frame: the picture, and a name for messages (a file name or a frame number).
pub struct Frame {
    pub image: GrayImage,
    pub label: String,
}

impl fmt::Debug for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Frame")
            .field("label", &self.label)
            .field("width", &self.image.width())
            .field("height", &self.image.height())
            .finish()
    }
}

/// The pictures of a folder, in file-name order. Files that are not pictures (by extension) are
/// skipped; a picture that fails to decode is handed on as an empty frame, so it counts as a
/// missed frame rather than ending the scan.
pub struct ImageDir {
    dir: PathBuf,
    files: std::vec::IntoIter<PathBuf>,
}

impl ImageDir {
    pub fn open(dir: &Path) -> Result<Self, FrameError> {
        let io = |source| FrameError::Io {
            path: dir.display().to_string(),
            source,
        };
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io)? {
            let path = entry.map_err(io)?.path();
            let ext = path
                .extension()
                .and_then(|e| e.to_str())
                .map(str::to_ascii_lowercase);
            if matches!(ext.as_deref(), Some("png" | "jpg" | "jpeg")) && path.is_file() {
                files.push(path);
            }
        }
        files.sort();
        Ok(Self {
            dir: dir.to_owned(),
            files: files.into_iter(),
        })
    }

    /// Pictures left to read.
    #[must_use]
    pub fn remaining(&self) -> usize {
        self.files.len()
    }
}

impl FrameSource for ImageDir {
    fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        let Some(path) = self.files.next() else {
            return Ok(None);
        };
        let label = path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into(),
        );
        let mut bytes = Vec::new();
        std::fs::File::open(&path)
            .and_then(|f| f.take(MAX_IMAGE_FILE_BYTES).read_to_end(&mut bytes))
            .map_err(|source| FrameError::Io {
                path: path.display().to_string(),
                source,
            })?;
        let image = crate::qr::load_gray(&bytes).unwrap_or_default();
        Ok(Some(Frame { image, label }))
    }

    fn describe(&self) -> String {
        format!("pictures in {}", self.dir.display())
    }
}

/// Longest Y4M stream or frame header line accepted.
const MAX_Y4M_HEADER: usize = 1024;

/// A YUV4MPEG2 video: each frame's luma plane is the grey picture. 8-bit samples only; the
/// frame size is checked against [`MAX_IMAGE_SIDE`] before anything is allocated.
pub struct Y4mVideo<R: Read> {
    name: String,
    decoder: y4m::Decoder<std::io::Chain<Cursor<Vec<u8>>, BufReader<R>>>,
    width: u32,
    height: u32,
    frames: usize,
}

impl Y4mVideo<std::fs::File> {
    pub fn open(path: &Path) -> Result<Self, FrameError> {
        let file = std::fs::File::open(path).map_err(|source| FrameError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::new(file, &path.display().to_string())
    }
}

impl<R: Read> Y4mVideo<R> {
    /// Reads the stream header from `reader`; `name` appears in messages.
    pub fn new(reader: R, name: &str) -> Result<Self, FrameError> {
        let format = |reason: &str| FrameError::Format {
            path: name.to_owned(),
            reason: reason.to_owned(),
        };
        let mut reader = BufReader::new(reader);
        let mut header = Vec::new();
        (&mut reader)
            .take(MAX_Y4M_HEADER as u64)
            .read_until(b'\n', &mut header)
            .map_err(|source| FrameError::Io {
                path: name.to_owned(),
                source,
            })?;
        if header.last() != Some(&b'\n') {
            return Err(format("no YUV4MPEG2 header line"));
        }
        let (width, height) = check_y4m_header(&header).map_err(format)?;
        let limits = y4m::Limits {
            bytes: 3 * (MAX_IMAGE_SIDE as usize) * (MAX_IMAGE_SIDE as usize),
        };
        let decoder = y4m::Decoder::new_with_limits(Cursor::new(header).chain(reader), limits)
            .map_err(|e| format(&e.to_string()))?;
        if decoder.get_bit_depth() != 8 {
            return Err(format(
                "samples wider than 8 bits; convert with `ffmpeg -i IN -pix_fmt gray OUT.y4m`",
            ));
        }
        Ok(Self {
            name: name.to_owned(),
            decoder,
            width,
            height,
            frames: 0,
        })
    }
}

/// The width and height of a `YUV4MPEG2 W.. H.. …` header line, both within
/// [`MAX_IMAGE_SIDE`]; checked here so the decoder never sizes a buffer from unchecked numbers.
fn check_y4m_header(line: &[u8]) -> Result<(u32, u32), &'static str> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let mut fields = line.split(|&b| b == b' ');
    if fields.next() != Some(b"YUV4MPEG2".as_slice()) {
        return Err("not a YUV4MPEG2 (.y4m) stream");
    }
    let (mut width, mut height) = (None, None);
    for field in fields {
        let number = || {
            std::str::from_utf8(&field[1..])
                .ok()
                .and_then(|s| s.parse::<u32>().ok())
                .filter(|&v| (1..=MAX_IMAGE_SIDE).contains(&v))
                .ok_or("frame size missing or larger than 8192 pixels a side")
        };
        match field.first() {
            Some(b'W') => width = Some(number()?),
            Some(b'H') => height = Some(number()?),
            _ => {}
        }
    }
    match (width, height) {
        (Some(w), Some(h)) => Ok((w, h)),
        _ => Err("frame size missing from the header"),
    }
}

impl<R: Read> FrameSource for Y4mVideo<R> {
    fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        let frame = match self.decoder.read_frame() {
            Ok(f) => f,
            Err(y4m::Error::EOF) => return Ok(None),
            Err(y4m::Error::IoError(source)) => {
                return Err(FrameError::Io {
                    path: self.name.clone(),
                    source,
                });
            }
            Err(e) => {
                return Err(FrameError::Format {
                    path: self.name.clone(),
                    reason: format!("frame {}: {e}", self.frames + 1),
                });
            }
        };
        let luma = frame.get_y_plane().to_vec();
        let image = GrayImage::from_raw(self.width, self.height, luma).ok_or_else(|| {
            FrameError::Format {
                path: self.name.clone(),
                reason: "luma plane does not match the frame size".into(),
            }
        })?;
        self.frames += 1;
        Ok(Some(Frame {
            image,
            label: format!("frame {}", self.frames),
        }))
    }

    fn describe(&self) -> String {
        format!("video {}", self.name)
    }
}

/// Writes grey frames as an 8-bit monochrome Y4M stream, for recording test sequences.
pub fn write_y4m(
    out: impl std::io::Write,
    frames: &[GrayImage],
    fps: usize,
) -> Result<(), std::io::Error> {
    let Some(first) = frames.first() else {
        return Ok(());
    };
    let to_io = |e: y4m::Error| std::io::Error::other(e.to_string());
    let mut encoder = y4m::encode(
        first.width() as usize,
        first.height() as usize,
        y4m::Ratio::new(fps.max(1), 1),
    )
    .with_colorspace(y4m::Colorspace::Cmono)
    .write_header(out)
    .map_err(to_io)?;
    for f in frames {
        if f.dimensions() != first.dimensions() {
            return Err(std::io::Error::other("frames differ in size"));
        }
        encoder
            .write_frame(&y4m::Frame::new([f.as_raw(), &[], &[]], None))
            .map_err(to_io)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn y4m_header_sizes_are_checked_before_allocation() {
        assert_eq!(
            check_y4m_header(b"YUV4MPEG2 W640 H480 F30:1\n"),
            Ok((640, 480))
        );
        assert!(check_y4m_header(b"YUV4MPEG2 W99999999999 H480\n").is_err());
        assert!(check_y4m_header(b"YUV4MPEG2 W0 H480\n").is_err());
        assert!(check_y4m_header(b"YUV4MPEG2 H480\n").is_err());
        assert!(check_y4m_header(b"RIFF W1 H1\n").is_err());
        assert!(check_y4m_header(b"YUV4MPEG2 W\xff H1\n").is_err());
    }

    #[test]
    fn y4m_round_trip() {
        let a = GrayImage::from_fn(8, 4, |x, y| image::Luma([(x * 10 + y) as u8]));
        let b = GrayImage::from_pixel(8, 4, image::Luma([200]));
        let mut bytes = Vec::new();
        write_y4m(&mut bytes, &[a.clone(), b.clone()], 30).unwrap();
        let mut video = Y4mVideo::new(bytes.as_slice(), "t.y4m").unwrap();
        assert_eq!(video.next_frame().unwrap().unwrap().image, a);
        assert_eq!(video.next_frame().unwrap().unwrap().image, b);
        assert!(video.next_frame().unwrap().is_none());
    }

    #[test]
    fn truncated_y4m_frame_is_an_error_not_a_panic() {
        let a = GrayImage::from_pixel(8, 4, image::Luma([1]));
        let mut bytes = Vec::new();
        write_y4m(&mut bytes, &[a], 30).unwrap();
        bytes.truncate(bytes.len() - 3);
        let mut video = Y4mVideo::new(bytes.as_slice(), "t.y4m").unwrap();
        assert!(video.next_frame().is_err() || video.next_frame().unwrap().is_none());
    }
}
