//! Camera scanning benchmark: prints the table quoted in `docs/airgap.md`.
//!
//! `cargo bench -p airgap-bundle --bench scan` (add `-- --quick` for fewer trials).
//!
//! Frames are what a 640 × 480 webcam sees of a laptop screen: the QR code at 4 pixels a
//! module, off centre, with sensor noise; 30 % of the frames are lost and some blurred past
//! reading. Per-frame time is the whole scan step ([`Reception::feed_frame`]: find and read the
//! code, check the part, solve), side by side with its floor, the QR reader alone
//! ([`qr::decode_gray`]) on the same frames, in the same run. A camera delivers a frame every
//! 33.3 ms at 30 fps; one core keeps up if the step takes less.

#![allow(clippy::cast_precision_loss)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use airgap_bundle::parts::PartEncoder;
use airgap_bundle::qr::{self, QrFrame};
use airgap_bundle::receive::Reception;
use airgap_bundle::{Bundle, BundleKind, Metadata};
use image::{GrayImage, Luma};
use rand::{RngExt, SeedableRng, rngs::StdRng};

const WIDTH: u32 = 640;
const HEIGHT: u32 = 480;

fn request(payload_len: usize, seed: u64) -> Bundle {
    let mut rng = StdRng::seed_from_u64(seed);
    let payload: Vec<u8> = (0..payload_len).map(|_| rng.random()).collect();
    let meta = Metadata {
        namespace: Some("payments".into()),
        member: Some("bob".into()),
        nonce: Some(seed),
        file_name: None,
    };
    Bundle::new(BundleKind::Request, meta, payload).unwrap()
}

fn camera_frame(part: &str, rng: &mut StdRng) -> GrayImage {
    let code = qr::load_gray(&QrFrame::encode(part).unwrap().png(4)).unwrap();
    let ox = rng.random_range(0..=WIDTH - code.width());
    let oy = rng.random_range(0..=HEIGHT - code.height());
    GrayImage::from_fn(WIDTH, HEIGHT, |x, y| {
        let inside = x >= ox && y >= oy && x - ox < code.width() && y - oy < code.height();
        let base: i16 = match (inside, inside && code.get_pixel(x - ox, y - oy).0[0] < 128) {
            (true, true) => 40,
            (true, false) => 220,
            _ => 120,
        };
        Luma([u8::try_from((base + rng.random_range(-25..=25)).clamp(0, 255)).unwrap_or(u8::MAX)])
    })
}

/// One recorded pass: frames as seen (lost ones left out, every 9th blurred unreadable), and
/// how many frames the sender showed for them.
fn recording(bundle: &Bundle, seed: u64, shown: usize) -> Vec<GrayImage> {
    let mut encoder = PartEncoder::with_defaults(&bundle.encode()).unwrap();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut frames = Vec::new();
    for i in 0..shown {
        let part = encoder.next_part();
        if rng.random_range(0..100) < 30 {
            continue;
        }
        let frame = camera_frame(&part, &mut rng);
        frames.push(if i % 9 == 8 {
            image::imageops::blur(&frame, 6.0)
        } else {
            frame
        });
    }
    frames
}

fn per_frame(total: Duration, frames: usize) -> f64 {
    total.as_secs_f64() * 1000.0 / frames.max(1) as f64
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let trials = if quick { 2 } else { 6 };
    let bundle = request(5_000, 1);
    let fragments = PartEncoder::with_defaults(&bundle.encode())
        .unwrap()
        .fragment_count();
    println!(
        "5 KB request bundle ({} bytes encoded, {fragments} fragments), {WIDTH}x{HEIGHT} frames, \
         30% lost, 1 in 9 blurred; {trials} trials",
        bundle.encode().len()
    );

    let mut needed = Vec::new();
    let (mut scan_time, mut floor_time, mut scanned) = (Duration::ZERO, Duration::ZERO, 0usize);
    for trial in 0..trials {
        let frames = recording(&bundle, 100 + trial, 4 * fragments);
        // Frames the camera delivered until the bundle was whole.
        let mut reception = Reception::new();
        let started = Instant::now();
        let mut used = 0;
        for f in &frames {
            black_box(reception.feed_frame(f));
            used += 1;
            if reception.is_complete() {
                break;
            }
        }
        scan_time += started.elapsed();
        assert_eq!(reception.finish().unwrap(), bundle);
        needed.push(used);
        // The floor: the QR reader alone on the same frames.
        let started = Instant::now();
        for f in &frames[..used] {
            let _ = black_box(qr::decode_gray(f));
        }
        floor_time += started.elapsed();
        scanned += used;
    }
    // A frame without a code costs the search too (the camera pointed elsewhere).
    let mut rng = StdRng::seed_from_u64(9);
    let empty: Vec<GrayImage> = (0..20)
        .map(|_| {
            GrayImage::from_fn(WIDTH, HEIGHT, |_, _| {
                Luma([u8::try_from(120i16 + rng.random_range(-25..=25)).unwrap_or(u8::MAX)])
            })
        })
        .collect();
    let mut reception = Reception::new();
    let started = Instant::now();
    for f in &empty {
        black_box(reception.feed_frame(f));
    }
    let empty_scan = started.elapsed();
    let started = Instant::now();
    for f in &empty {
        let _ = black_box(qr::decode_gray(f));
    }
    let empty_floor = started.elapsed();

    needed.sort_unstable();
    let mean = needed.iter().sum::<usize>() as f64 / needed.len() as f64;
    println!();
    println!(
        "frames received until complete: min {}, mean {mean:.1}, max {} ({:.2}x the fragment count)",
        needed[0],
        needed[needed.len() - 1],
        mean / fragments as f64
    );
    println!();
    println!(
        "| per frame, one core          | scan step (ms) | QR reader alone, floor (ms) | budget at 30 fps (ms) |"
    );
    println!(
        "|------------------------------|---------------:|----------------------------:|----------------------:|"
    );
    println!(
        "| frame with a code            | {:>14.2} | {:>27.2} | {:>21.1} |",
        per_frame(scan_time, scanned),
        per_frame(floor_time, scanned),
        1000.0 / 30.0
    );
    println!(
        "| frame without a code         | {:>14.2} | {:>27.2} | {:>21.1} |",
        per_frame(empty_scan, empty.len()),
        per_frame(empty_floor, empty.len()),
        1000.0 / 30.0
    );
}
