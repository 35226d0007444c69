//! UR parts and QR frames: reassembly under loss and reordering, images, and bad parts.

use airgap_bundle::parts::{
    self, DEFAULT_FRAGMENT_BYTES, EncodeError, Part, PartEncoder, PartError, SINGLE_PART_MAX_BYTES,
    Scanner,
};
use airgap_bundle::qr::{self, QrFrame};
use airgap_bundle::{Bundle, BundleKind, Metadata};
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng, rngs::StdRng};

fn bundle_of(kind: BundleKind, payload_len: usize, seed: u64) -> Bundle {
    let mut rng = StdRng::seed_from_u64(seed);
    let payload: Vec<u8> = (0..payload_len).map(|_| rng.random()).collect();
    let meta = Metadata {
        namespace: Some("payments".into()),
        member: Some("bob".into()),
        nonce: Some(seed),
        file_name: (kind == BundleKind::File).then(|| "draft.toml".into()),
    };
    Bundle::new(kind, meta, payload).unwrap()
}

fn scan_all(parts: &[String]) -> Result<Vec<u8>, PartError> {
    let mut scanner = Scanner::new();
    for p in parts {
        scanner.receive(p)?;
    }
    scanner.finish()
}

#[test]
fn every_kind_round_trips_through_parts() {
    for (i, kind) in BundleKind::ALL.into_iter().enumerate() {
        for len in [10, 900, 6000] {
            let bundle = bundle_of(kind, len, i as u64);
            let bytes = bundle.encode();
            let mut encoder = PartEncoder::with_defaults(&bytes).unwrap();
            let mut scanner = Scanner::new();
            while !scanner.is_complete() {
                scanner.receive(&encoder.next_part()).unwrap();
            }
            assert_eq!(encoder.emitted(), encoder.fragment_count());
            let back = Bundle::decode(&scanner.finish().unwrap()).unwrap();
            assert_eq!(back, bundle);
        }
    }
}

/// 60 % of 3 K parts is 1.8 K: K plus 0.8 K spare equations. The standard stream's mixed parts
/// are often sparse (a third of them combine one or two fragments), so a random subset needs
/// more spare parts than K plus a few; with 0.8 K a rank deficit is vanishingly rare for K of 50
/// or more. For a handful of fragments no binary code can promise it (a [12, 6] binary code
/// cannot correct every 4 erasures), which is why bundles that small go as one static code.
#[test]
fn random_sixty_percent_of_three_times_the_parts_shuffled() {
    for seed in 0..40u64 {
        let (len, fragment) =
            [(2_000, 40), (5_000, 100), (20_000, 200), (6_000, 60)][seed as usize % 4];
        let bytes = bundle_of(BundleKind::Request, len, seed).encode();
        let mut encoder = PartEncoder::new(&bytes, fragment).unwrap();
        let k = encoder.fragment_count();
        let mut parts: Vec<String> = (0..3 * k).map(|_| encoder.next_part()).collect();
        let mut rng = StdRng::seed_from_u64(seed);
        parts.shuffle(&mut rng);
        parts.truncate((3 * k * 6).div_ceil(10));
        assert_eq!(scan_all(&parts).unwrap(), bytes, "seed {seed}, k {k}");
    }
}

#[test]
fn a_reader_can_join_mid_stream() {
    let bytes = bundle_of(BundleKind::Share, 3_000, 9).encode();
    let mut encoder = PartEncoder::new(&bytes, 100).unwrap();
    let k = encoder.fragment_count();
    for _ in 0..(k + k / 2) {
        encoder.next_part();
    }
    let mut scanner = Scanner::new();
    let mut n = 0;
    while !scanner.is_complete() {
        scanner.receive(&encoder.next_part()).unwrap();
        n += 1;
    }
    assert!(n <= k + 10, "needed {n} parts for {k} fragments");
    assert_eq!(scanner.finish().unwrap(), bytes);
}

#[test]
fn small_bundles_are_one_static_code() {
    let bundle = Bundle::new(BundleKind::Approval, Metadata::default(), vec![7; 200]).unwrap();
    let bytes = bundle.encode();
    assert!(bytes.len() <= SINGLE_PART_MAX_BYTES);
    let mut encoder = PartEncoder::with_defaults(&bytes).unwrap();
    assert!(encoder.is_single_part());
    let part = encoder.next_part();
    assert!(part.starts_with("ur:tessera-bundle/"));
    assert_eq!(
        part.matches('/').count(),
        1,
        "single-part URs have no sequence field"
    );
    assert_eq!(encoder.next_part(), part);
    assert_eq!(scan_all(&[part]).unwrap(), bytes);
}

#[test]
fn single_part_limit_matches_a_version_14_code() {
    let at_limit =
        parts::encode_parts(&[0xa5; SINGLE_PART_MAX_BYTES], SINGLE_PART_MAX_BYTES, 1).unwrap();
    assert!(QrFrame::encode(&at_limit[0]).unwrap().version() <= 14);
    let over = PartEncoder::with_defaults(&[0xa5; SINGLE_PART_MAX_BYTES + 1]).unwrap();
    assert!(!over.is_single_part());
}

#[test]
fn text_input_is_forgiving_about_case_and_whitespace() {
    let bytes = bundle_of(BundleKind::Manifest, 1_500, 3).encode();
    let parts = parts::encode_parts(&bytes, DEFAULT_FRAGMENT_BYTES, 40).unwrap();
    let mut scanner = Scanner::new();
    for p in &parts {
        scanner
            .receive(&format!("  {}\r\n", p.to_ascii_uppercase()))
            .unwrap();
        scanner.receive("").unwrap();
    }
    assert_eq!(scanner.finish().unwrap(), bytes);
}

#[test]
fn png_frames_read_back() {
    let bundle = bundle_of(BundleKind::Request, 1_200, 5);
    let bytes = bundle.encode();
    let mut encoder = PartEncoder::new(&bytes, DEFAULT_FRAGMENT_BYTES).unwrap();
    let mut scanner = Scanner::new();
    let mut frames = 0;
    while !scanner.is_complete() {
        let frame = QrFrame::encode(&encoder.next_part()).unwrap();
        let png = frame.png(qr::PNG_MODULE_PIXELS);
        for text in qr::decode_image(&png).unwrap() {
            scanner.receive(&text).unwrap();
        }
        frames += 1;
    }
    assert_eq!(frames, encoder.fragment_count());
    assert_eq!(Bundle::decode(&scanner.finish().unwrap()).unwrap(), bundle);
}

#[test]
fn jpeg_frames_read_back() {
    let bytes = bundle_of(BundleKind::File, 50, 6).encode();
    let part = parts::encode_parts(&bytes, SINGLE_PART_MAX_BYTES, 1).unwrap();
    let frame = QrFrame::encode(&part[0]).unwrap();
    let img = image::load_from_memory(&frame.png(4)).unwrap();
    let mut jpeg = std::io::Cursor::new(Vec::new());
    img.write_to(&mut jpeg, image::ImageFormat::Jpeg).unwrap();
    let texts = qr::decode_image(jpeg.get_ref()).unwrap();
    assert_eq!(scan_all(&texts).unwrap(), bytes);
}

#[test]
fn images_without_codes_are_reported() {
    let blank = image::GrayImage::from_pixel(64, 64, image::Luma([255]));
    let mut png = std::io::Cursor::new(Vec::new());
    blank.write_to(&mut png, image::ImageFormat::Png).unwrap();
    assert_eq!(qr::decode_image(png.get_ref()), Err(qr::QrError::NoCode));
    assert!(matches!(
        qr::decode_image(b"not an image"),
        Err(qr::QrError::Image(_))
    ));
}

#[test]
fn corrupt_parts_are_refused_and_the_scan_goes_on() {
    let bytes = bundle_of(BundleKind::Share, 2_000, 11).encode();
    let parts = parts::encode_parts(&bytes, DEFAULT_FRAGMENT_BYTES, 30).unwrap();
    let mut scanner = Scanner::new();
    scanner.receive(&parts[0]).unwrap();
    let before = scanner.progress();

    // A misread letter breaks the bytewords checksum.
    let mut bad = parts[1].clone().into_bytes();
    let last = bad.len() - 3;
    bad[last] = if bad[last] == b'a' { b'e' } else { b'a' };
    let err = scanner
        .receive(std::str::from_utf8(&bad).unwrap())
        .unwrap_err();
    assert!(matches!(err, PartError::Corrupt(_)), "{err}");
    // A cut-short part.
    let err = scanner
        .receive(&parts[1][..parts[1].len() - 10])
        .unwrap_err();
    assert!(matches!(err, PartError::Corrupt(_)), "{err}");
    // A sequence field that disagrees with the part.
    let err = scanner
        .receive(&parts[1].replacen("/2-", "/3-", 1))
        .unwrap_err();
    assert!(matches!(err, PartError::Corrupt(_)), "{err}");
    assert_eq!(scanner.progress(), before);

    for p in &parts[1..] {
        scanner.receive(p).unwrap();
    }
    assert_eq!(scanner.finish().unwrap(), bytes);
}

#[test]
fn forged_parts_cannot_produce_a_wrong_bundle() {
    let bytes = bundle_of(BundleKind::Share, 2_000, 12).encode();
    let parts = parts::encode_parts(&bytes, DEFAULT_FRAGMENT_BYTES, 30).unwrap();
    // Re-encode part 2 with one data bit flipped and a valid bytewords checksum.
    let (prefix, body) = parts[1].rsplit_once('/').unwrap();
    let mut cbor = ur::bytewords::decode(body, ur::bytewords::Style::Minimal).unwrap();
    let last = cbor.len() - 1;
    cbor[last] ^= 1;
    let forged = format!(
        "{prefix}/{}",
        ur::bytewords::encode(&cbor, ur::bytewords::Style::Minimal)
    );
    let mut scanner = Scanner::new();
    let mut result = Ok(scanner.progress());
    for p in std::iter::once(&forged).chain(&parts) {
        result = scanner.receive(p);
        if result.is_err() || scanner.is_complete() {
            break;
        }
    }
    assert_eq!(result, Err(PartError::Inconsistent));
    assert!(!scanner.is_complete());
}

#[test]
fn parts_of_another_bundle_are_refused() {
    let a = bundle_of(BundleKind::Share, 2_000, 1).encode();
    let b = bundle_of(BundleKind::Share, 2_000, 2).encode();
    let c = bundle_of(BundleKind::Share, 3_000, 2).encode();
    let pa = parts::encode_parts(&a, DEFAULT_FRAGMENT_BYTES, 5).unwrap();
    let pb = parts::encode_parts(&b, DEFAULT_FRAGMENT_BYTES, 5).unwrap();
    let pc = parts::encode_parts(&c, DEFAULT_FRAGMENT_BYTES, 5).unwrap();
    let single = parts::encode_parts(&[1, 2, 3], SINGLE_PART_MAX_BYTES, 1).unwrap();

    let mut scanner = Scanner::new();
    scanner.receive(&pa[0]).unwrap();
    for other in [&pb[1], &pc[1], &single[0]] {
        let err = scanner.receive(other).unwrap_err();
        assert!(matches!(err, PartError::OtherBundle { .. }), "{err}");
        assert!(err.to_string().contains("another bundle"));
    }
    assert_eq!(scanner.progress().parts, 1);
}

#[test]
fn too_few_parts_is_an_error() {
    let bytes = bundle_of(BundleKind::Share, 2_000, 4).encode();
    let parts = parts::encode_parts(&bytes, DEFAULT_FRAGMENT_BYTES, 30).unwrap();
    let k = PartEncoder::new(&bytes, DEFAULT_FRAGMENT_BYTES)
        .unwrap()
        .fragment_count();
    let err = scan_all(&parts[..k - 1]).unwrap_err();
    assert_eq!(
        err,
        PartError::Incomplete {
            resolved: k - 1,
            total: k
        }
    );
    assert!(matches!(
        Scanner::new().finish(),
        Err(PartError::Incomplete { total: 0, .. })
    ));
}

#[test]
fn foreign_text_is_named() {
    assert_eq!(parts::parse_part("hello"), Err(PartError::NotUr));
    assert_eq!(
        parts::parse_part("ur:crypto-psbt/aeadaolazmjendeoti"),
        Err(PartError::WrongType("crypto-psbt".into()))
    );
    assert!(matches!(
        parts::parse_part(&"ur:tessera-bundle/".repeat(1000)),
        Err(PartError::TooLong { .. })
    ));
    assert!(matches!(
        parts::parse_part("ur:tessera-bundle/0-3/aeaeae"),
        Err(PartError::Corrupt(_))
    ));
    assert!(matches!(
        parts::parse_part("ur:tessera-bundle/+1-3/aeaeae"),
        Err(PartError::Corrupt(_))
    ));
}

#[test]
fn parse_part_exposes_the_stream() {
    let bytes = bundle_of(BundleKind::Share, 2_000, 4).encode();
    let parts = parts::encode_parts(&bytes, DEFAULT_FRAGMENT_BYTES, 2).unwrap();
    let Part::Multi(part) = parts::parse_part(&parts[1]).unwrap() else {
        panic!("expected a multi-part");
    };
    assert_eq!(part.sequence, 2);
    assert_eq!(part.stream.message_length as usize, bytes.len());
    assert_eq!(part.stream.checksum, crc32fast::hash(&bytes));
    assert_eq!(part.fragment_indexes(), vec![1]);
}

#[test]
fn encoder_limits() {
    assert_eq!(PartEncoder::new(&[], 100).unwrap_err(), EncodeError::Empty);
    assert!(matches!(
        PartEncoder::new(&[1; 100], 4),
        Err(EncodeError::FragmentSize(4))
    ));
    assert!(matches!(
        PartEncoder::new(&vec![1; 200_000], 16),
        Err(EncodeError::TooManyFragments { .. })
    ));
}

#[test]
fn terminal_frames_fit_and_scale() {
    let bytes = bundle_of(BundleKind::Share, 2_000, 4).encode();
    let part = parts::encode_parts(&bytes, DEFAULT_FRAGMENT_BYTES, 1).unwrap();
    let frame = QrFrame::encode(&part[0]).unwrap();
    let (cols, rows) = frame.terminal_size(1);
    assert_eq!(cols, frame.modules() + 2 * qr::TERMINAL_QUIET_ZONE);
    assert_eq!(rows, cols.div_ceil(2));

    let lines = frame.terminal_lines(cols, rows).unwrap();
    assert_eq!(lines.len(), rows);
    assert!(lines.iter().all(|l| l.chars().count() == cols));
    assert!(frame.terminal_lines(cols - 1, rows).is_none());
    assert!(frame.terminal_lines(cols, rows - 1).is_none());
    // The quiet zone is blank; the finder pattern's corner is dark.
    assert!(lines[0].chars().all(|c| c == ' '));
    assert_eq!(lines[1].chars().nth(2), Some('█'));

    let big = frame.terminal_lines(3 * cols, 3 * rows).unwrap();
    assert_eq!(big.len(), (3 * cols).div_ceil(2));
}

#[test]
fn density_follows_the_terminal() {
    let f = qr::max_fragment_for_terminal(80, 24).unwrap();
    let part = parts::encode_parts(&vec![9; 20 * f], f, 100).unwrap();
    for p in &part {
        let frame = QrFrame::encode(p).unwrap();
        assert!(frame.terminal_lines(80, 24).is_some());
    }
    assert!(qr::max_fragment_for_terminal(20, 10).is_none());
    let big = qr::max_fragment_for_terminal(200, 60).unwrap();
    assert!(big > DEFAULT_FRAGMENT_BYTES, "{big}");
}
