//! Tessera's animated QR is the standard multi-part UR stream of BCR-2020-005: checked against
//! `@ngraveio/bc-ur` 1.1.13, an independent implementation, in both directions, and against the
//! specification's own test vector.

mod bc_ur;

use airgap_bundle::parts::{PartEncoder, Scanner, UR_TYPE};
use airgap_bundle::{Bundle, BundleKind, Metadata};
use bc_ur::{BcUr, Decoded};
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng, rngs::StdRng};
use sha2::{Digest, Sha256};

/// (bundle bytes, fragment size): K of 50, 50 and 100.
const SHAPES: [(usize, usize); 3] = [(2_000, 40), (5_000, 100), (20_000, 200)];

fn bundle_bytes(payload_len: usize, seed: u64) -> Vec<u8> {
    let mut rng = StdRng::seed_from_u64(seed);
    let payload: Vec<u8> = (0..payload_len).map(|_| rng.random()).collect();
    let meta = Metadata {
        namespace: Some("payments".into()),
        member: Some("carol".into()),
        nonce: Some(seed),
        file_name: None,
    };
    Bundle::new(BundleKind::Share, meta, payload)
        .unwrap()
        .encode()
}

fn tessera_parts(bytes: &[u8], fragment: usize, count: usize) -> (usize, Vec<String>) {
    let mut encoder = PartEncoder::new(bytes, fragment).unwrap();
    let k = encoder.fragment_count();
    (k, (0..count).map(|_| encoder.next_part()).collect())
}

/// Tessera's scanner over `parts` in order: the bundle and the parts it took, or `None`.
fn tessera_scan<'a>(parts: impl IntoIterator<Item = &'a String>) -> Option<(Vec<u8>, usize)> {
    let mut scanner = Scanner::new();
    let mut fed = 0;
    for part in parts {
        fed += 1;
        scanner.receive(part).unwrap();
        if scanner.is_complete() {
            return Some((scanner.finish().unwrap(), fed));
        }
    }
    None
}

fn assert_bc_ur_decoded(decoded: Decoded, bytes: &[u8], what: &str) -> usize {
    match decoded {
        Decoded::Complete {
            after,
            ur_type,
            message,
        } => {
            assert_eq!(ur_type, UR_TYPE, "{what}");
            assert_eq!(message, bytes, "{what}: bc-ur reassembled other bytes");
            Bundle::decode(&message).unwrap();
            after
        }
        other => panic!("{what}: bc-ur did not decode Tessera's parts: {other:?}"),
    }
}

/// The same bytes and fragment size give the same parts, part for part, from both encoders:
/// fragment choice, degree distribution, PRNG, CBOR and bytewords all agree.
#[test]
fn tessera_parts_equal_bc_ur_parts() {
    let mut bc = BcUr::start();
    for (i, &(len, fragment)) in SHAPES.iter().enumerate() {
        let bytes = bundle_bytes(len, i as u64);
        let k = k_of(&bytes, fragment);
        let count = 4 * k;
        let (_, ours) = tessera_parts(&bytes, fragment, count);
        let (their_k, theirs) = bc.encode(UR_TYPE, &bytes, fragment, count);
        assert_eq!(their_k, k, "{len} B / {fragment} B");
        for (seq, (a, b)) in ours.iter().zip(&theirs).enumerate() {
            assert_eq!(a, b, "{len} B / {fragment} B: part {} differs", seq + 1);
        }
    }
}

/// A reader that never sees a single pure fragment still completes with bc-ur's peeling
/// decoder.
#[test]
fn bc_ur_decodes_tessera_mixed_parts_only() {
    let mut bc = BcUr::start();
    for (i, &(len, fragment)) in SHAPES.iter().enumerate() {
        let bytes = bundle_bytes(len, 10 + i as u64);
        let (k, parts) = tessera_parts(&bytes, fragment, 8 * k_of(&bytes, fragment));
        let mixed = &parts[k..];
        let after = assert_bc_ur_decoded(bc.decode(mixed), &bytes, "mixed parts only");
        assert!(after >= k, "completed from {after} parts of {k} fragments");
        // Tessera's own scanner reads the same mixed-only stream.
        let (back, _) = tessera_scan(mixed).expect("Tessera completes from mixed parts only");
        assert_eq!(back, bytes);
    }
}

/// Random 60 % of the first 4 K parts (2.4 K parts), in random order, with and without the
/// pure fragments among them.
#[test]
fn bc_ur_decodes_random_subsets_of_tessera_parts() {
    let mut bc = BcUr::start();
    for seed in 0..9u64 {
        let (len, fragment) = SHAPES[seed as usize % SHAPES.len()];
        let bytes = bundle_bytes(len, 20 + seed);
        let (_, parts) = tessera_parts(&bytes, fragment, 4 * k_of(&bytes, fragment));
        let mut rng = StdRng::seed_from_u64(seed);
        let mut subset: Vec<String> = parts.into_iter().filter(|_| rng.random_bool(0.6)).collect();
        subset.shuffle(&mut rng);
        assert_bc_ur_decoded(
            bc.decode(&subset),
            &bytes,
            &format!("random subset, seed {seed}"),
        );
        let (back, _) = tessera_scan(&subset).expect("Tessera completes from the same subset");
        assert_eq!(back, bytes);
    }
}

/// Parts made by bc-ur's encoder are read by Tessera's scanner: in order, mixed parts only,
/// random subsets, and a single-part UR.
#[test]
fn tessera_decodes_bc_ur_parts() {
    let mut bc = BcUr::start();
    for (i, &(len, fragment)) in SHAPES.iter().enumerate() {
        let bytes = bundle_bytes(len, 30 + i as u64);
        let (k, parts) = bc.encode(UR_TYPE, &bytes, fragment, 4 * k_of(&bytes, fragment));

        let (back, fed) = tessera_scan(&parts).expect("in order");
        assert_eq!(
            (back.as_slice(), fed),
            (bytes.as_slice(), k),
            "the K pure parts suffice"
        );

        let (back, fed) = tessera_scan(&parts[k..]).expect("mixed parts only");
        assert_eq!(back, bytes);
        assert!(fed >= k);

        for seed in 0..3u64 {
            let mut rng = StdRng::seed_from_u64(seed);
            let mut subset: Vec<String> = parts
                .iter()
                .filter(|_| rng.random_bool(0.6))
                .cloned()
                .collect();
            subset.shuffle(&mut rng);
            let (back, _) = tessera_scan(&subset).expect("random subset");
            assert_eq!(back, bytes, "seed {seed}");
        }
        Bundle::decode(&bytes).unwrap();
    }

    let small = bundle_bytes(150, 40);
    let (k, parts) = bc.encode(UR_TYPE, &small, 320, 1);
    assert_eq!(k, 1);
    assert!(
        !parts[0].contains("/1-1/"),
        "bc-ur sends one fragment as a single-part UR"
    );
    assert_eq!(tessera_scan(&parts).unwrap().0, small);
    // And Tessera's single-part UR reads back in bc-ur.
    let ours = PartEncoder::with_defaults(&small).unwrap().next_part();
    assert_eq!(ours, parts[0]);
    assert_bc_ur_decoded(bc.decode(&[ours]), &small, "single part");
}

fn k_of(bytes: &[u8], fragment: usize) -> usize {
    PartEncoder::new(bytes, fragment).unwrap().fragment_count()
}

/// `make_message(seed, n)` of the specification's test vectors: `n` bytes of Xoshiro256**
/// seeded from SHA-256 of `seed`, each `floor(next_double * 256)`.
fn make_message(seed: &str, n: usize) -> Vec<u8> {
    let digest = Sha256::digest(seed.as_bytes());
    let mut s = [0u64; 4];
    for (word, chunk) in s.iter_mut().zip(digest.chunks(8)) {
        *word = u64::from_be_bytes(chunk.try_into().unwrap());
    }
    let mut next = || {
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    };
    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss
    )]
    (0..n)
        .map(|_| (next() as f64 / (u64::MAX as f64 + 1.0) * 256.0) as u8)
        .collect()
}

/// The specification's multi-part vector (BCR-2020-005 and the reference test suites):
/// `make_message("Wolf", 256)` as a CBOR byte string, `ur:bytes`, fragments of at most 30
/// bytes, parts 1 to 20. Only the type differs on Tessera's wire; the bytewords body (header,
/// fragment choice, data, checksum) must match exactly.
const SPEC_PARTS: [&str; 20] = [
    "ur:bytes/1-9/lpadascfadaxcywenbpljkhdcahkadaemejtswhhylkepmykhhtsytsnoyoyaxaedsuttydmmhhpktpmsrjtdkgslpgh",
    "ur:bytes/2-9/lpaoascfadaxcywenbpljkhdcagwdpfnsboxgwlbaawzuefywkdplrsrjynbvygabwjldapfcsgmghhkhstlrdcxaefz",
    "ur:bytes/3-9/lpaxascfadaxcywenbpljkhdcahelbknlkuejnbadmssfhfrdpsbiegecpasvssovlgeykssjykklronvsjksopdzmol",
    "ur:bytes/4-9/lpaaascfadaxcywenbpljkhdcasotkhemthydawydtaxneurlkosgwcekonertkbrlwmplssjtammdplolsbrdzcrtas",
    "ur:bytes/5-9/lpahascfadaxcywenbpljkhdcatbbdfmssrkzmcwnezelennjpfzbgmuktrhtejscktelgfpdlrkfyfwdajldejokbwf",
    "ur:bytes/6-9/lpamascfadaxcywenbpljkhdcackjlhkhybssklbwefectpfnbbectrljectpavyrolkzczcpkmwidmwoxkilghdsowp",
    "ur:bytes/7-9/lpatascfadaxcywenbpljkhdcavszmwnjkwtclrtvaynhpahrtoxmwvwatmedibkaegdosftvandiodagdhthtrlnnhy",
    "ur:bytes/8-9/lpayascfadaxcywenbpljkhdcadmsponkkbbhgsoltjntegepmttmoonftnbuoiyrehfrtsabzsttorodklubbuyaetk",
    "ur:bytes/9-9/lpasascfadaxcywenbpljkhdcajskecpmdckihdyhphfotjojtfmlnwmadspaxrkytbztpbauotbgtgtaeaevtgavtny",
    "ur:bytes/10-9/lpbkascfadaxcywenbpljkhdcahkadaemejtswhhylkepmykhhtsytsnoyoyaxaedsuttydmmhhpktpmsrjtwdkiplzs",
    "ur:bytes/11-9/lpbdascfadaxcywenbpljkhdcahelbknlkuejnbadmssfhfrdpsbiegecpasvssovlgeykssjykklronvsjkvetiiapk",
    "ur:bytes/12-9/lpbnascfadaxcywenbpljkhdcarllaluzmdmgstospeyiefmwejlwtpedamktksrvlcygmzemovovllarodtmtbnptrs",
    "ur:bytes/13-9/lpbtascfadaxcywenbpljkhdcamtkgtpknghchchyketwsvwgwfdhpgmgtylctotzopdrpayoschcmhplffziachrfgd",
    "ur:bytes/14-9/lpbaascfadaxcywenbpljkhdcapazewnvonnvdnsbyleynwtnsjkjndeoldydkbkdslgjkbbkortbelomueekgvstegt",
    "ur:bytes/15-9/lpbsascfadaxcywenbpljkhdcaynmhpddpzmversbdqdfyrehnqzlugmjzmnmtwmrouohtstgsbsahpawkditkckynwt",
    "ur:bytes/16-9/lpbeascfadaxcywenbpljkhdcawygekobamwtlihsnpalnsghenskkiynthdzotsimtojetprsttmukirlrsbtamjtpd",
    "ur:bytes/17-9/lpbyascfadaxcywenbpljkhdcamklgftaxykpewyrtqzhydntpnytyisincxmhtbceaykolduortotiaiaiafhiaoyce",
    "ur:bytes/18-9/lpbgascfadaxcywenbpljkhdcahkadaemejtswhhylkepmykhhtsytsnoyoyaxaedsuttydmmhhpktpmsrjtntwkbkwy",
    "ur:bytes/19-9/lpbwascfadaxcywenbpljkhdcadekicpaajootjzpsdrbalpeywllbdsnbinaerkurspbncxgslgftvtsrjtksplcpeo",
    "ur:bytes/20-9/lpbbascfadaxcywenbpljkhdcayapmrleeleaxpasfrtrdkncffwjyjzgyetdmlewtkpktgllepfrltataztksmhkbot",
];

#[test]
fn spec_test_vector_wolf() {
    // The single-part vector checks make_message itself: make_message("Wolf", 50) as `ur:bytes`.
    let fifty = make_message("Wolf", 50);
    let mut single = vec![0x58, 50];
    single.extend_from_slice(&fifty);
    assert_eq!(
        ur::ur::encode(&single, &ur::Type::Bytes),
        "ur:bytes/hdeymejtswhhylkepmykhhtsytsnoyoyaxaedsuttydmmhhpktpmsrjtgwdpfnsboxgwlbaawzuefywkdplrsrjynbvygabwjldapfcsdwkbrkch"
    );

    let mut message = vec![0x59, 0x01, 0x00];
    message.extend_from_slice(&make_message("Wolf", 256));
    let ours = airgap_bundle::parts::encode_parts(&message, 30, SPEC_PARTS.len()).unwrap();
    let spec: Vec<String> = SPEC_PARTS
        .iter()
        .map(|p| p.replacen("ur:bytes/", &format!("ur:{UR_TYPE}/"), 1))
        .collect();
    assert_eq!(ours, spec);

    // The fragment sets the scanner derives for the mixed parts 10 to 20 (the encoder's data
    // matching the spec above is made from the same sets).
    let sets: Vec<Vec<usize>> = spec[9..]
        .iter()
        .map(|p| match airgap_bundle::parts::parse_part(p).unwrap() {
            airgap_bundle::parts::Part::Multi(m) => m.fragment_indexes(),
            airgap_bundle::parts::Part::Single(_) => panic!("a multi-part vector"),
        })
        .collect();
    let expected: [&[usize]; 11] = [
        &[0],
        &[2],
        &[6, 2],
        &[3, 7, 8],
        &[0, 6],
        &[6, 5],
        &[7, 0, 8, 6],
        &[1, 5, 3],
        &[0],
        &[8, 0],
        &[2, 1, 6],
    ];
    assert_eq!(sets, expected);

    // Without pure parts 1, 3, 7 and 9, the mixed parts must supply fragments 0, 2, 6 and 8.
    let subset: Vec<String> = spec
        .iter()
        .enumerate()
        .filter(|(i, _)| *i >= 9 || ![0, 2, 6, 8].contains(i))
        .map(|(_, p)| p.clone())
        .collect();
    let (back, fed) = tessera_scan(&subset).expect("the subset spans the 9 fragments");
    assert_eq!(back, message);
    assert!(fed > 4, "needed mixed parts");

    // And bc-ur reads the spec vector itself.
    let mut bc = BcUr::start();
    let parts: Vec<String> = SPEC_PARTS.iter().map(|p| (*p).to_owned()).collect();
    let subset: Vec<String> = parts
        .iter()
        .enumerate()
        .filter(|(i, _)| *i >= 9 || ![0, 2, 6, 8].contains(i))
        .map(|(_, p)| p.clone())
        .collect();
    match bc.decode(&subset) {
        Decoded::Complete {
            ur_type,
            message: m,
            ..
        } => {
            assert_eq!((ur_type.as_str(), m), ("bytes", message));
        }
        other => panic!("bc-ur on the spec vector: {other:?}"),
    }
}
