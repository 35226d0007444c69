//! Air-gap transport benchmark: prints the tables quoted in `docs/airgap.md`.
//!
//! `cargo bench -p airgap-bundle` (add `-- --quick` for fewer trials).
//!
//! "Frames needed" counts every frame shown, received or lost, from the first frame until the
//! scanner completes, divided by the minimal number of frames (the fragment count). Loss is
//! independent per frame, seeded, and averaged over many trials.

// Frame counts and sizes here are far below 2^52, and QR versions are 1..=40.
#![allow(clippy::cast_precision_loss, clippy::cast_sign_loss)]

use std::hint::black_box;
use std::time::Instant;

use airgap_bundle::parts::{self, PartEncoder, Scanner};
use airgap_bundle::qr::{self, QrFrame};
use airgap_bundle::{Bundle, BundleKind, Metadata};
use rand::{RngExt, SeedableRng, rngs::StdRng};

/// A real bundle whose encoding is exactly `size` bytes.
fn bundle_bytes(size: usize) -> Vec<u8> {
    let meta = Metadata {
        namespace: Some("payments".into()),
        member: Some("alice".into()),
        nonce: Some(7),
        file_name: None,
    };
    let mut rng = StdRng::seed_from_u64(size as u64);
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

fn encoder(bytes: &[u8], fragment: Option<usize>) -> PartEncoder {
    match fragment {
        Some(f) => PartEncoder::new(bytes, f).unwrap(),
        None => PartEncoder::with_defaults(bytes).unwrap(),
    }
}

/// Frames shown until complete, over fragment count, averaged; and the 95th percentile.
fn frames_ratio(bytes: &[u8], fragment: Option<usize>, loss: f64, trials: u64) -> (f64, f64) {
    let mut ratios = Vec::new();
    for t in 0..trials {
        let mut rng = StdRng::seed_from_u64(0x7e55_e7a0 ^ (t * 1_000_003) ^ loss.to_bits());
        let mut enc = encoder(bytes, fragment);
        let mut scanner = Scanner::new();
        let mut shown = 0usize;
        while !scanner.is_complete() {
            let part = enc.next_part();
            shown += 1;
            if !rng.random_bool(loss) {
                scanner.receive(&part).unwrap();
            }
        }
        assert_eq!(scanner.finish().unwrap(), bytes);
        ratios.push(shown as f64 / enc.fragment_count() as f64);
    }
    ratios.sort_by(f64::total_cmp);
    let mean = ratios.iter().sum::<f64>() / ratios.len() as f64;
    let p95 = ratios[(ratios.len() * 95 / 100).min(ratios.len() - 1)];
    (mean, p95)
}

/// The same measurement with the `ur` crate's own encoder order and peeling decoder.
fn reference_ratio(bytes: &[u8], fragment: usize, loss: f64, trials: u64) -> f64 {
    let mut total = 0.0;
    for t in 0..trials {
        let mut rng = StdRng::seed_from_u64(0x7e55_e7a0 ^ (t * 1_000_003) ^ loss.to_bits());
        let mut enc = ur::Encoder::new(bytes, fragment, parts::UR_TYPE).unwrap();
        let mut dec = ur::Decoder::default();
        let mut shown = 0usize;
        while !dec.complete() {
            let part = enc.next_part().unwrap();
            shown += 1;
            if !rng.random_bool(loss) {
                dec.receive(&part).unwrap();
            }
        }
        total += shown as f64 / enc.fragment_count() as f64;
    }
    total / trials as f64
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
        "\n## Frames needed / minimal frames (default density: single code up to {} B, else {} B fragments)\n",
        parts::SINGLE_PART_MAX_BYTES,
        parts::DEFAULT_FRAGMENT_BYTES
    );
    println!(
        "| bundle | frames (min) | QR version | 0 % loss | 20 % loss (p95) | 40 % loss (p95) | ur reference decoder, 20 % / 40 % |"
    );
    println!("|---|---|---|---|---|---|---|");
    for &size in &sizes {
        let bytes = bundle_bytes(size);
        let k = encoder(&bytes, None).fragment_count();
        let version = max_version(&bytes, None);
        let n = trials(size);
        let (r0, _) = frames_ratio(&bytes, None, 0.0, n);
        let (r20, p20) = frames_ratio(&bytes, None, 0.2, n);
        let (r40, p40) = frames_ratio(&bytes, None, 0.4, n);
        let reference = if k > 1 {
            let rt = n.min(100);
            format!(
                "{:.2} / {:.2}",
                reference_ratio(&bytes, parts::DEFAULT_FRAGMENT_BYTES, 0.2, rt),
                reference_ratio(&bytes, parts::DEFAULT_FRAGMENT_BYTES, 0.4, rt)
            )
        } else {
            "same (one code)".into()
        };
        println!(
            "| {size} B | {k} | {version} | {r0:.2} | {r20:.3} ({p20:.2}) | {r40:.3} ({p40:.2}) | {reference} |"
        );
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
        let (r20, _) = frames_ratio(&five_k, Some(fragment), 0.2, trials(5_000) / 2);
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
