//! A V4L2 webcam as a [`FrameSource`].
//!
//! The camera is asked for 640 × 480 in a grey-friendly format: `GREY`, else `YUYV` (whose every
//! other byte is the luma), else `MJPG` (each frame decoded as a JPEG). A QR module needs a few
//! pixels, and at this size the reader keeps up with 30 frames a second on one core (see
//! `docs/airgap.md`); larger frames only cost decoding time.

use std::time::Duration;

use image::GrayImage;
use v4l::buffer::Type;
use v4l::io::mmap::Stream;
use v4l::io::traits::CaptureStream;
use v4l::video::Capture;
use v4l::{Device, FourCC};

use super::{Frame, FrameError, FrameSource};
use crate::qr::MAX_IMAGE_SIDE;

/// How long a silent camera is waited for before the scan reports it.
const FRAME_TIMEOUT: Duration = Duration::from_secs(5);
const WANTED_WIDTH: u32 = 640;
const WANTED_HEIGHT: u32 = 480;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pixels {
    Grey,
    Yuyv,
    Mjpeg,
}

/// An open webcam, streaming.
pub struct Camera {
    path: String,
    // The stream keeps its own handle on the device; the device is kept to be closed last.
    stream: Stream<'static>,
    _device: Device,
    pixels: Pixels,
    width: u32,
    height: u32,
    stride: u32,
    frames: u64,
}

impl Camera {
    /// Opens `path` (e.g. `/dev/video0`) and starts streaming.
    pub fn open(path: &str) -> Result<Self, FrameError> {
        let fail = |reason: String| FrameError::Camera {
            path: path.to_owned(),
            reason,
        };
        let device = Device::with_path(path).map_err(|e| fail(e.to_string()))?;
        let offered = device.enum_formats().map_err(|e| fail(e.to_string()))?;
        let pick = [
            (Pixels::Grey, FourCC::new(b"GREY")),
            (Pixels::Yuyv, FourCC::new(b"YUYV")),
            (Pixels::Mjpeg, FourCC::new(b"MJPG")),
        ]
        .into_iter()
        .find(|(_, cc)| offered.iter().any(|d| d.fourcc == *cc));
        let Some((pixels, fourcc)) = pick else {
            let names: Vec<String> = offered.iter().map(|d| d.fourcc.to_string()).collect();
            return Err(fail(format!(
                "offers none of GREY, YUYV, MJPG (only {})",
                names.join(", ")
            )));
        };
        let mut format = device.format().map_err(|e| fail(e.to_string()))?;
        format.width = WANTED_WIDTH;
        format.height = WANTED_HEIGHT;
        format.fourcc = fourcc;
        let format = device
            .set_format(&format)
            .map_err(|e| fail(e.to_string()))?;
        if format.fourcc != fourcc
            || format.width == 0
            || format.height == 0
            || format.width > MAX_IMAGE_SIDE
            || format.height > MAX_IMAGE_SIDE
        {
            return Err(fail(format!(
                "refused {fourcc} at {WANTED_WIDTH}x{WANTED_HEIGHT} (got {} {}x{})",
                format.fourcc, format.width, format.height
            )));
        }
        let mut stream = Stream::with_buffers(&device, Type::VideoCapture, 4)
            .map_err(|e| fail(e.to_string()))?;
        stream.set_timeout(FRAME_TIMEOUT);
        Ok(Self {
            path: path.to_owned(),
            stream,
            _device: device,
            pixels,
            width: format.width,
            height: format.height,
            stride: format.stride,
            frames: 0,
        })
    }

    fn grey(&self, data: &[u8]) -> Option<GrayImage> {
        let (w, h) = (self.width as usize, self.height as usize);
        match self.pixels {
            Pixels::Grey | Pixels::Yuyv => {
                let step = if self.pixels == Pixels::Grey { 1 } else { 2 };
                let stride = (self.stride as usize).max(w * step);
                if data.len() < stride * (h - 1) + w * step {
                    return None;
                }
                let mut luma = Vec::with_capacity(w * h);
                for row in data.chunks(stride).take(h) {
                    luma.extend(row.iter().step_by(step).take(w));
                }
                GrayImage::from_raw(self.width, self.height, luma)
            }
            Pixels::Mjpeg => crate::qr::load_gray(data).ok(),
        }
    }
}

impl FrameSource for Camera {
    fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        let (data, _) = self.stream.next().map_err(|e| FrameError::Camera {
            path: self.path.clone(),
            reason: format!("capture stopped: {e}"),
        })?;
        let data = data.to_vec();
        self.frames += 1;
        // A damaged frame (a short buffer, a broken JPEG) is a missed frame, like a blurred one.
        let image = self.grey(&data).unwrap_or_default();
        Ok(Some(Frame {
            image,
            label: format!("frame {}", self.frames),
        }))
    }

    fn describe(&self) -> String {
        format!(
            "camera {} ({}x{} {:?})",
            self.path, self.width, self.height, self.pixels
        )
    }
}
