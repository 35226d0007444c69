//! Air-gap transport benchmark: prints the tables quoted in `docs/airgap.md`.
//!
//! `cargo bench -p airgap-bundle` (add `-- --quick` for fewer trials). The frames-needed table
//! also runs `@ngraveio/bc-ur` through node (`make setup` installs both).
//!
//! "Frames needed" counts every frame shown, received or lost, from the first frame until the
//! decoder completes, divided by the minimal number of frames (the fragment count). Loss is
//! independent per frame, seeded, and averaged over many trials; every decoder sees the same
//! stream and the same loss patterns.

// Frame counts and sizes here are far below 2^52, and QR versions are 1..=40.
#![allow(clippy::cast_precision_loss, clippy::cast_sign_loss)]

#[path = "../tests/bc_ur/mod.rs"]
mod bc_ur;

use std::hint::black_box;
use std::time::Instant;

use airgap_bundle::parts::{self, PartEncoder, Scanner};
use airgap_bundle::qr::{self, QrFrame};
use airgap_bundle::{Bundle, BundleKind, Metadata};
use rand::{RngExt, SeedableRng, rngs::StdRng};

/// A real bundle whose encoding is exactly `size` bytes; each `variant` has other contents (so
/// another CRC, so other mixed parts).
fn bundle_variant(size: usize, variant: u64) -> Vec<u8> {
    let meta = Metadata {
        namespace: Some("payments".into()),
        member: Some("alice".into()),
        nonce: Some(7),
        file_name: None,
    };
    let mut rng = StdRng::seed_from_u64(size as u64 ^ (variant << 32));
    let mut payload_len = size.saturating_sub(100);
    loop {
        let payload: Vec<u8> = (0..payload_len).map(|_| rng.random()).collect();
        let bytes = Bundle::new(BundleKind::Request, meta.clone(), payload)
            .unwrap()
            .encode();
        match bytes.len().cmp(&size) {
            std::cmp::Ordering::Equal => return bytes,
            std::cmp::Ordering::Less => payload_len += size - bytes.len(),
            std::cmp::Ordering::Greater => payload_len -= (bytes.len() - size).min(payload_len),
        }
    }
}

fn bundle_bytes(size: usize) -> Vec<u8> {
    bundle_variant(size, 0)
}

fn encoder(bytes: &[u8], fragment: Option<usize>) -> PartEncoder {
    match fragment {
        Some(f) => PartEncoder::new(bytes, f).unwrap(),
        None => PartEncoder::with_defaults(bytes).unwrap(),
    }
}

/// The first `count` parts of the stream Tessera shows.
fn stream(bytes: &[u8], fragment: Option<usize>, count: usize) -> Vec<String> {
    let mut enc = encoder(bytes, fragment);
    (0..count).map(|_| enc.next_part()).collect()
}

/// For comparison only, the private alternative to the standard stream: the fragments, then
/// only the mixed parts combining 30 % to 70 % of the fragments (the other sequence numbers
/// skipped). Valid UR parts, but a peeling decoder can rarely use them.
fn dense_stream(bytes: &[u8], fragment: usize, count: usize) -> Vec<String> {
    let mut fountain = ur::fountain::Encoder::new(bytes, fragment).unwrap();
    let k = fountain.fragment_count();
    let lo = (k * 3).div_ceil(10).max(1);
    let hi = (k * 7 / 10).max(lo);
    let mut parts = Vec::with_capacity(count);
    while parts.len() < count {
        let part = fountain.next_part();
        let seq = fountain.current_sequence();
        let degree = part.indexes().len();
        if seq > k && !(lo..=hi).contains(&degree) {
            continue;
        }
        let cbor = minicbor::to_vec(&part).unwrap();
        let body = ur::bytewords::encode(&cbor, ur::bytewords::Style::Minimal);
        parts.push(format!("ur:{}/{seq}-{k}/{body}", parts::UR_TYPE));
    }
    parts
}

/// Which of `n` shown frames arrive in trial `t` at this loss rate.
fn received(t: u64, loss: f64, n: usize) -> Vec<bool> {
    let mut rng = StdRng::seed_from_u64(0x7e55_e7a0 ^ (t * 1_000_003) ^ loss.to_bits());
    (0..n).map(|_| !rng.random_bool(loss)).collect()
}

/// A decoder under test: given the shown frames and which arrived, the frames shown until it
/// completed (`None`: not within the frames given).
type Decode<'a> = dyn FnMut(&[String], &[bool]) -> Option<usize> + 'a;

fn tessera_decode(bytes: &[u8]) -> impl FnMut(&[String], &[bool]) -> Option<usize> + '_ {
    move |shown, arrived| {
        let mut scanner = Scanner::new();
        for (i, (part, ok)) in shown.iter().zip(arrived).enumerate() {
            if *ok {
                scanner.receive(part).unwrap();
                if scanner.is_complete() {
                    assert_eq!(scanner.finish().unwrap(), bytes);
                    return Some(i + 1);
                }
            }
        }
        None
    }
}

fn ur_crate_decode(bytes: &[u8]) -> impl FnMut(&[String], &[bool]) -> Option<usize> + '_ {
    move |shown, arrived| {
        let mut dec = ur::Decoder::default();
        for (i, (part, ok)) in shown.iter().zip(arrived).enumerate() {
            if *ok {
                dec.receive(part).unwrap();
                if dec.complete() {
                    assert_eq!(dec.message().unwrap().unwrap(), bytes);
                    return Some(i + 1);
                }
            }
        }
        None
    }
}

fn bc_ur_decode<'a>(
    bc: &'a mut bc_ur::BcUr,
    bytes: &'a [u8],
) -> impl FnMut(&[String], &[bool]) -> Option<usize> + 'a {
    move |shown, arrived| {
        let (positions, parts): (Vec<usize>, Vec<String>) = shown
            .iter()
            .zip(arrived)
            .enumerate()
            .filter(|(_, (_, ok))| **ok)
            .map(|(i, (p, _))| (i, p.clone()))
            .unzip();
        match bc.decode(&parts) {
            bc_ur::Decoded::Complete { after, message, .. } => {
                assert_eq!(message, bytes);
                Some(positions[after - 1] + 1)
            }
            bc_ur::Decoded::Incomplete => None,
            bc_ur::Decoded::Error { part, message } => panic!("bc-ur at part {part}: {message}"),
        }
    }
}

/// Frames shown until complete over the fragment count, one per trial, and how many trials did
/// not complete within the stream given (counted as its length).
#[derive(Default)]
struct Samples {
    ratios: Vec<f64>,
    unfinished: usize,
}

impl Samples {
    fn measure(
        &mut self,
        shown: &[String],
        k: usize,
        loss: f64,
        trials: std::ops::Range<u64>,
        decode: &mut Decode<'_>,
    ) {
        for t in trials {
            let arrived = received(t, loss, shown.len());
            let frames = decode(shown, &arrived).unwrap_or_else(|| {
                self.unfinished += 1;
                shown.len()
            });
            self.ratios.push(frames as f64 / k as f64);
        }
    }

    /// Mean, 95th percentile, unfinished trials.
    fn summary(mut self) -> (f64, f64, usize) {
        self.ratios.sort_by(f64::total_cmp);
        let n = self.ratios.len();
        let mean = self.ratios.iter().sum::<f64>() / n as f64;
        let p95 = self.ratios[(n * 95 / 100).min(n - 1)];
        (mean, p95, self.unfinished)
    }
}

/// One table cell: `mean (p95)`, with `, n unfinished` when some trials did not complete.
fn cell((mean, p95, unfinished): (f64, f64, usize)) -> String {
    if unfinished == 0 {
        format!("{mean:.3} ({p95:.2})")
    } else {
        format!("{mean:.3} ({p95:.2}), {unfinished} unfinished")
    }
}

/// Tessera's frames-needed ratio at this loss (density table), over `trials` spread across
/// `variants` bundles of the same size.
fn frames_ratio(
    size: usize,
    fragment: Option<usize>,
    loss: f64,
    trials: u64,
    variants: u64,
) -> f64 {
    let mut samples = Samples::default();
    let per = (trials / variants).max(1);
    for v in 0..variants {
        let bytes = bundle_variant(size, v);
        let k = encoder(&bytes, fragment).fragment_count();
        let shown = stream(&bytes, fragment, 8 * k);
        samples.measure(
            &shown,
            k,
            loss,
            v * per..(v + 1) * per,
            &mut tessera_decode(&bytes),
        );
    }
    samples.summary().0
}

fn max_version(bytes: &[u8], fragment: Option<usize>) -> i16 {
    let mut enc = encoder(bytes, fragment);
    (0..2 * enc.fragment_count())
        .map(|_| QrFrame::encode(&enc.next_part()).unwrap().version())
        .max()
        .unwrap()
}

/// Seconds per call, repeated until at least `min_secs` have passed.
fn time<F: FnMut()>(min_secs: f64, mut f: F) -> f64 {
    let start = Instant::now();
    let mut n = 0u32;
    while n == 0 || start.elapsed().as_secs_f64() < min_secs {
        f();
        n += 1;
    }
    start.elapsed().as_secs_f64() / f64::from(n)
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let sizes = [300usize, 5_000, 50_000];
    let trials = |size: usize| -> u64 {
        let t = match size {
            0..=1_000 => 2_000,
            1_001..=10_000 => 400,
            _ => 60,
        };
        if quick { t / 10 } else { t }
    };

    println!(
        "\n## Frames needed / minimal frames, mean (p95) (default density: single code up to {} B, else {} B fragments)\n",
        parts::SINGLE_PART_MAX_BYTES,
        parts::DEFAULT_FRAGMENT_BYTES
    );
    let mut bc = bc_ur::BcUr::start();
    println!(
        "| bundle | frames (min) | QR version | stream | decoder | trials | 0 % loss | 20 % loss | 40 % loss |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let rows = [
        ("standard", "Tessera (elimination)"),
        ("standard", "`ur` crate (peeling)"),
        ("standard", "bc-ur 1.1.13 (peeling)"),
        ("dense 30-70 % (private)", "Tessera (elimination)"),
    ];
    for &size in &sizes {
        let k = encoder(&bundle_bytes(size), None).fragment_count();
        let version = max_version(&bundle_bytes(size), None);
        // Every decoder gets the same trials (bc-ur through node is the slow one), spread over
        // bundles with different contents: each has its own mixed parts.
        let (n, variants) = if k > 1 {
            (trials(size) / 2, if quick { 4 } else { 20 })
        } else {
            (trials(size), 1)
        };
        let per = n / variants;
        for (row, (stream_name, decoder)) in rows.iter().enumerate() {
            if k == 1 && row > 0 {
                break;
            }
            let mut cells = Vec::new();
            for loss in [0.0, 0.2, 0.4] {
                let mut samples = Samples::default();
                for v in 0..variants {
                    let bytes = bundle_variant(size, v);
                    // Enough frames for the slowest decoder at 40 % loss.
                    let shown = if row == 3 {
                        dense_stream(&bytes, parts::DEFAULT_FRAGMENT_BYTES, 10 * k)
                    } else {
                        stream(&bytes, None, 10 * k)
                    };
                    let range = v * per..(v + 1) * per;
                    match row {
                        1 => samples.measure(&shown, k, loss, range, &mut ur_crate_decode(&bytes)),
                        2 => samples.measure(
                            &shown,
                            k,
                            loss,
                            range,
                            &mut bc_ur_decode(&mut bc, &bytes),
                        ),
                        _ => samples.measure(&shown, k, loss, range, &mut tessera_decode(&bytes)),
                    }
                }
                cells.push(cell(samples.summary()));
            }
            println!(
                "| {size} B | {k} | {version} | {stream_name} | {decoder} | {} | {} | {} | {} |",
                per * variants,
                cells[0],
                cells[1],
                cells[2]
            );
        }
    }

    println!(
        "\n## Density: fragment size against QR version, terminal size and time for a 5 KB bundle\n"
    );
    println!(
        "| fragment | QR version | terminal cells | frames (min) | 20 % loss ratio | seconds at {} fps, 20 % loss |",
        qr::DEFAULT_FPS
    );
    println!("|---|---|---|---|---|---|");
    let five_k = bundle_bytes(5_000);
    for fragment in [40usize, 60, 80, 100, 120, 150, 200, 300] {
        let version = qr::version_for_fragment(fragment).unwrap();
        let side = 17 + 4 * version as usize + 2 * qr::TERMINAL_QUIET_ZONE;
        let k = encoder(&five_k, Some(fragment)).fragment_count();
        let r20 = frames_ratio(
            5_000,
            Some(fragment),
            0.2,
            trials(5_000) / 2,
            if quick { 4 } else { 20 },
        );
        let secs = r20 * k as f64 / f64::from(qr::DEFAULT_FPS);
        println!(
            "| {fragment} B | {version} | {side} × {} | {k} | {r20:.3} | {secs:.1} |",
            side.div_ceil(2)
        );
    }

    println!("\n## Throughput (default density)\n");
    println!(
        "| bundle | UR encode, one pass | UR decode, one pass | QR frame encode | terminal render | PNG encode | PNG decode (rqrr) |"
    );
    println!("|---|---|---|---|---|---|---|");
    for &size in &sizes {
        let bytes = bundle_bytes(size);
        let k = encoder(&bytes, None).fragment_count();
        let parts: Vec<String> = {
            let mut e = encoder(&bytes, None);
            (0..k).map(|_| e.next_part()).collect()
        };
        let enc = time(0.5, || {
            let mut e = encoder(&bytes, None);
            for _ in 0..k {
                black_box(e.next_part());
            }
        });
        let dec = time(0.5, || {
            let mut s = Scanner::new();
            for p in &parts {
                s.receive(p).unwrap();
            }
            black_box(s.finish().unwrap());
        });
        let frame = QrFrame::encode(&parts[0]).unwrap();
        let qr_enc = time(0.5, || {
            black_box(QrFrame::encode(&parts[0]).unwrap());
        });
        let render = time(0.5, || {
            black_box(frame.terminal_lines(200, 100));
        });
        let png = frame.png(qr::PNG_MODULE_PIXELS);
        let png_enc = time(0.5, || {
            black_box(frame.png(qr::PNG_MODULE_PIXELS));
        });
        let png_dec = time(0.5, || {
            black_box(qr::decode_image(&png).unwrap());
        });
        let mb = |secs: f64| size as f64 / secs / 1e6;
        println!(
            "| {size} B | {:.1} MB/s | {:.1} MB/s | {:.2} ms | {:.3} ms | {:.2} ms | {:.1} ms |",
            mb(enc),
            mb(dec),
            qr_enc * 1e3,
            render * 1e3,
            png_enc * 1e3,
            png_dec * 1e3
        );
    }

    let starts = if quick { 5 } else { 50 };
    println!("\n## Reader joining mid-stream (after 1.5 K frames), no loss: parts needed / K\n");
    println!("| bundle | K | parts needed / K (mean over {starts} starts) |");
    println!("|---|---|---|");
    for &size in &sizes[1..] {
        let bytes = bundle_bytes(size);
        let k = encoder(&bytes, None).fragment_count();
        let mut total = 0usize;
        for start in 0..starts {
            let mut e = encoder(&bytes, None);
            for _ in 0..(k + k / 2 + start) {
                e.next_part();
            }
            let mut s = Scanner::new();
            while !s.is_complete() {
                s.receive(&e.next_part()).unwrap();
                total += 1;
            }
        }
        println!(
            "| {size} B | {k} | {:.3} |",
            total as f64 / (starts * k) as f64
        );
    }
}
