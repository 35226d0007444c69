//! Recorded frame sequences through the camera's path: rendered QR frames placed in a larger
//! picture with noise, some blurred, some dropped, some from elsewhere, read back by the same
//! `FrameSource` → `Reception` code that reads a webcam.

use std::path::Path;

use airgap_bundle::frames::{self, FrameSource, ImageDir, Y4mVideo};
use airgap_bundle::parts::{PartEncoder, parse_part};
use airgap_bundle::qr::{self, QrFrame};
use airgap_bundle::receive::{
    Flow, Outcome, ReceiveError, Reception, ReceptionStatus, Rejection, scan_frames,
};
use airgap_bundle::{Bundle, BundleKind, Metadata};
use image::{GrayImage, Luma};
use rand::{RngExt, SeedableRng, rngs::StdRng};

const WIDTH: u32 = 640;
const HEIGHT: u32 = 480;

fn request_bundle(payload_len: usize, seed: u64) -> Bundle {
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

/// A camera-like picture of one part: the code at 4 pixels a module, off centre on a grey
/// background, with sensor noise.
fn camera_frame(part: &str, rng: &mut StdRng) -> GrayImage {
    let code = qr::load_gray(&QrFrame::encode(part).unwrap().png(4)).unwrap();
    let (ox, oy) = (
        rng.random_range(0..=WIDTH - code.width()),
        rng.random_range(0..=HEIGHT - code.height()),
    );
    // A cheap generator for the per-pixel noise: the seeded RNG per pixel is slow unoptimised.
    let mut state: u64 = rng.random();
    GrayImage::from_fn(WIDTH, HEIGHT, |x, y| {
        let base: u8 = if x >= ox && y >= oy && x - ox < code.width() && y - oy < code.height() {
            // The screen: dark modules are not quite black, light ones not quite white.
            if code.get_pixel(x - ox, y - oy).0[0] < 128 {
                40
            } else {
                220
            }
        } else {
            120
        };
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let noise = ((state >> 33) % 51) as i16 - 25;
        Luma([u8::try_from((i16::from(base) + noise).clamp(0, 255)).unwrap_or(u8::MAX)])
    })
}

/// The stream as a camera would see it: `rounds` passes of the animation, about 30 % of frames
/// dropped, every 6th kept frame slightly blurred (still readable) and every 9th blurred beyond
/// reading.
fn recorded(bundle: &Bundle, rounds: usize, seed: u64) -> Vec<GrayImage> {
    let bytes = bundle.encode();
    let mut encoder = PartEncoder::with_defaults(&bytes).unwrap();
    let count = rounds * encoder.fragment_count();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out = Vec::new();
    for _ in 0..count {
        let part = encoder.next_part();
        if rng.random_range(0..100) < 30 {
            continue;
        }
        let mut frame = camera_frame(&part, &mut rng);
        let n = out.len() + 1;
        if n % 9 == 0 {
            frame = image::imageops::blur(&frame, 6.0);
        } else if n % 6 == 0 {
            frame = image::imageops::blur(&frame, 0.8);
        }
        out.push(frame);
    }
    out
}

fn write_pngs(dir: &Path, frames: &[GrayImage]) {
    std::fs::create_dir_all(dir).unwrap();
    for (i, f) in frames.iter().enumerate() {
        f.save(dir.join(format!("frame-{:04}.png", i + 1))).unwrap();
    }
}

/// Scans to the end and returns the result with every outcome and the last status.
fn scan(
    source: &mut dyn FrameSource,
) -> (Result<Bundle, ReceiveError>, Vec<Outcome>, ReceptionStatus) {
    let mut outcomes = Vec::new();
    let mut last = ReceptionStatus::default();
    let result = scan_frames(source, |o, s| {
        outcomes.push(o.clone());
        last = s.clone();
        Flow::Continue
    });
    (result, outcomes, last)
}

#[test]
fn a_5_kb_request_from_a_picture_folder_with_drops_and_blur() {
    let bundle = request_bundle(5_000, 1);
    let total = PartEncoder::with_defaults(&bundle.encode())
        .unwrap()
        .fragment_count();
    assert!((45..=60).contains(&total), "{total} fragments");
    let frames = recorded(&bundle, 3, 2);
    let dir = tempfile::tempdir().unwrap();
    write_pngs(dir.path(), &frames);

    let mut source = ImageDir::open(dir.path()).unwrap();
    let (result, outcomes, status) = scan(&mut source);
    assert_eq!(result.unwrap(), bundle);
    // It stopped by itself as soon as the bundle was whole, before the folder ran out.
    assert!(source.remaining() > 0, "read all {} frames", frames.len());
    assert_eq!(status.frames, outcomes.len());
    assert!(status.progress.complete);
    assert_eq!(status.kind, Some(BundleKind::Request));
    // The heavily blurred frames were missed, the mildly blurred ones read.
    assert!(status.missed >= status.frames / 9 - 1, "{status:?}");
    assert!(status.missed < status.frames / 4, "{status:?}");
    assert!(status.rejected.is_empty(), "{status:?}");
    assert!(
        outcomes
            .iter()
            .any(|o| matches!(o, Outcome::Accepted { new: true }))
    );
}

#[test]
fn the_same_recording_as_a_y4m_video() {
    let bundle = request_bundle(5_000, 3);
    let frames = recorded(&bundle, 3, 4);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scan.y4m");
    frames::write_y4m(std::fs::File::create(&path).unwrap(), &frames, 30).unwrap();

    let mut source = Y4mVideo::open(&path).unwrap();
    let (result, _, status) = scan(&mut source);
    assert_eq!(result.unwrap(), bundle);
    assert!(status.frames < frames.len());
}

#[test]
fn progress_counts_up_to_complete() {
    let bundle = request_bundle(5_000, 5);
    let frames = recorded(&bundle, 3, 6);
    let mut reception = Reception::new();
    let mut lines = Vec::new();
    for f in &frames {
        reception.feed_frame(f);
        lines.push(reception.status().progress_line());
        if reception.is_complete() {
            break;
        }
    }
    let s = reception.status();
    let total = s.progress.total;
    assert_eq!(
        lines.last().unwrap(),
        &format!("{total} of {total} fragments' worth, 100%")
    );
    // It counted up through the middle, not in one jump.
    assert!(
        lines
            .iter()
            .any(|l| (40..=60).any(|p| l.ends_with(&format!(" {p}%")))),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .all(|l| l.contains("fragments' worth") || l.starts_with("waiting"))
    );
    assert!(reception.finish().is_ok());
}

#[test]
fn a_frame_of_another_bundle_mid_stream_is_reported_and_ignored() {
    let bundle = request_bundle(5_000, 7);
    let other = request_bundle(4_000, 8);
    let mut frames = recorded(&bundle, 3, 9);
    let mut rng = StdRng::seed_from_u64(10);
    let mut other_encoder = PartEncoder::with_defaults(&other.encode()).unwrap();
    let stray = camera_frame(&other_encoder.next_part(), &mut rng);
    frames.insert(10, stray);

    let mut reception = Reception::new();
    let mut rejected_at = None;
    for (i, f) in frames.iter().enumerate() {
        if let Outcome::Rejected { reason, message } = reception.feed_frame(f) {
            assert_eq!(reason, Rejection::OtherBundle);
            assert!(message.contains("another bundle"), "{message}");
            rejected_at = Some(i);
        }
        if reception.is_complete() {
            break;
        }
    }
    assert_eq!(rejected_at, Some(10));
    assert_eq!(
        reception.status().rejected,
        vec![(Rejection::OtherBundle, 1)]
    );
    assert_eq!(reception.status().rejected_line(), "1 another bundle");
    assert_eq!(reception.finish().unwrap(), bundle);
}

/// Part `index` of `bundle`'s stream with one data bit flipped and a valid bytewords checksum:
/// what a forger (or a screen between sender and camera) would show.
fn forged_part(bundle: &Bundle, index: usize) -> String {
    let mut encoder = PartEncoder::with_defaults(&bundle.encode()).unwrap();
    let real = (0..=index).map(|_| encoder.next_part()).last().unwrap();
    let (prefix, body) = real.rsplit_once('/').unwrap();
    let mut cbor = ur::bytewords::decode(body, ur::bytewords::Style::Minimal).unwrap();
    let last = cbor.len() - 1;
    cbor[last] ^= 1;
    let forged = format!(
        "{prefix}/{}",
        ur::bytewords::encode(&cbor, ur::bytewords::Style::Minimal)
    );
    // Well-formed: it passes every check a single part can get.
    parse_part(&forged).unwrap();
    forged
}

#[test]
fn a_forged_part_of_a_fragment_already_held_is_refused() {
    let bundle = request_bundle(5_000, 11);
    let frames = recorded(&bundle, 3, 12);
    let mut rng = StdRng::seed_from_u64(13);
    let mut reception = Reception::new();
    let mut fed = 0;
    // Feed until the first fragment is held, then show a forged copy of it.
    for f in &frames {
        reception.feed_frame(f);
        fed += 1;
        if reception.status().kind.is_some() {
            break;
        }
    }
    let forged = camera_frame(&forged_part(&bundle, 0), &mut rng);
    match reception.feed_frame(&forged) {
        Outcome::Rejected { reason, .. } => assert_eq!(reason, Rejection::Contradicts),
        o => panic!("forged part taken: {o:?}"),
    }
    for f in &frames[fed..] {
        reception.feed_frame(f);
        if reception.is_complete() {
            break;
        }
    }
    assert_eq!(
        reception.status().rejected,
        vec![(Rejection::Contradicts, 1)]
    );
    assert_eq!(reception.finish().unwrap(), bundle);
}

#[test]
fn a_forged_part_shown_first_restarts_the_scan_and_never_yields_its_bundle() {
    let bundle = request_bundle(5_000, 14);
    let frames = recorded(&bundle, 4, 15);
    let mut rng = StdRng::seed_from_u64(16);
    let mut all = vec![camera_frame(&forged_part(&bundle, 60), &mut rng)];
    all.extend(frames);
    let dir = tempfile::tempdir().unwrap();
    write_pngs(dir.path(), &all);
    let (result, _, status) = scan(&mut ImageDir::open(dir.path()).unwrap());
    // The forged equation poisons the first pass: the whole no longer matches the stream's
    // checksum, the scan starts over, and the second pass (without the forgery) completes.
    // The real part under the forged one's number is refused while the forgery is held.
    assert_eq!(status.restarts, 1, "{status:?}");
    assert_eq!(status.rejected.len(), 1, "{status:?}");
    assert_eq!(status.rejected[0].0, Rejection::Contradicts);
    assert_eq!(result.unwrap(), bundle);
}

#[test]
fn nothing_is_handed_out_until_the_bundle_verifies() {
    // A well-formed stream whose content is not a bundle: every part passes, the stream's own
    // checksum matches, and still no bundle comes out.
    let mut rng = StdRng::seed_from_u64(17);
    let junk: Vec<u8> = (0..2_000).map(|_| rng.random()).collect();
    let mut encoder = PartEncoder::with_defaults(&junk).unwrap();
    let mut reception = Reception::new();
    while !reception.is_complete() {
        let frame = camera_frame(&encoder.next_part(), &mut rng);
        reception.feed_frame(&frame);
    }
    assert!(matches!(reception.finish(), Err(ReceiveError::Invalid(_))));

    // Too few frames: an error naming how far it got.
    let bundle = request_bundle(5_000, 18);
    let frames = recorded(&bundle, 1, 19);
    let mut reception = Reception::new();
    for f in frames.iter().take(10) {
        reception.feed_frame(f);
    }
    let err = reception.finish().unwrap_err();
    assert!(matches!(err, ReceiveError::Incomplete { .. }), "{err}");
    assert!(
        err.to_string().contains("fragments' worth received"),
        "{err}"
    );

    // Nothing readable at all.
    let blank = GrayImage::from_pixel(WIDTH, HEIGHT, Luma([128]));
    let mut reception = Reception::new();
    assert_eq!(reception.feed_frame(&blank), Outcome::Missed);
    assert!(matches!(
        reception.finish(),
        Err(ReceiveError::NothingRead { frames: 1 })
    ));
}

#[test]
fn a_folder_with_unreadable_pictures_counts_them_as_missed() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.png"), b"not a png").unwrap();
    std::fs::write(dir.path().join("notes.txt"), b"skipped").unwrap();
    let mut source = ImageDir::open(dir.path()).unwrap();
    assert_eq!(source.remaining(), 1);
    let (result, outcomes, _) = scan(&mut source);
    assert_eq!(outcomes, vec![Outcome::Missed]);
    assert!(matches!(result, Err(ReceiveError::NothingRead { .. })));
}

#[test]
fn text_lines_take_the_same_path() {
    let bundle = request_bundle(5_000, 20);
    let mut encoder = PartEncoder::with_defaults(&bundle.encode()).unwrap();
    let mut reception = Reception::new();
    assert!(matches!(
        reception.feed_text("QR-Code:hello"),
        Outcome::Rejected {
            reason: Rejection::NotTessera,
            ..
        }
    ));
    assert_eq!(reception.feed_text(""), Outcome::Missed);
    while !reception.is_complete() {
        reception.feed_text(&encoder.next_part().to_ascii_uppercase());
    }
    assert_eq!(reception.finish().unwrap(), bundle);
}
