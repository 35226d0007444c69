//! The EMULATED trust mode: documents of QEMU's emulated NSM (unsigned) are read only in that
//! mode, every check but the signature chain still runs, and neither kind of document can pass
//! for the other: an emulated document is refused under the AWS root and under any DEV root,
//! and a signed document is refused in the emulated mode.

mod attestation_support;

use attestation_support::{Pki, T, T_MS};
use tessera_core::attestation::build::DocumentBuilder;
use tessera_core::attestation::{self, AttestationError, Policy, TrustAnchor, anchor_label};

fn emulated_builder() -> DocumentBuilder {
    let mut b = DocumentBuilder::emulated("i-234-enc5678", T_MS);
    for i in 0..3u8 {
        b = b.pcr(i, vec![i + 1; 48]);
    }
    b.pcr(3, vec![0; 48])
        .pcr(4, vec![0; 48])
        .public_key(vec![7; 32])
        .user_data(vec![9; 32])
}

fn emulated_doc() -> Vec<u8> {
    emulated_builder().unsigned_emulated()
}

#[test]
fn an_emulated_document_is_read_in_the_emulated_mode_and_labelled() {
    let anchor = TrustAnchor::emulated();
    let policy = Policy::new()
        .expect_pcr(0, vec![1; 48])
        .expect_pcr(2, vec![3; 48])
        .expect_public_key(vec![7; 32]);
    let v = attestation::verify(&emulated_doc(), &anchor, T, &policy).unwrap();
    assert!(v.is_emulated());
    assert_eq!(v.pcr(1), Some(&[2u8; 48][..]));
    assert_eq!(anchor_label(&anchor), "EMULATED");
    assert!(anchor.subject().contains("EMULATED"));
    assert!(anchor.der().is_empty());
    assert_ne!(anchor.sha256(), attestation::AWS_NITRO_ROOT_G1_SHA256);
    assert_eq!(anchor_label(attestation::aws_nitro_root_g1()), "AWS");
    assert_eq!(anchor_label(&Pki::new().anchor()), "DEV");
}

#[test]
fn the_policy_still_runs_in_the_emulated_mode() {
    let anchor = TrustAnchor::emulated();
    let wrong_pcr = Policy::new().expect_pcr(0, vec![0xaa; 48]);
    assert!(matches!(
        attestation::verify(&emulated_doc(), &anchor, T, &wrong_pcr),
        Err(AttestationError::PcrMismatch { index: 0, .. })
    ));
    let wrong_key = Policy::new().expect_public_key(vec![8; 32]);
    assert!(matches!(
        attestation::verify(&emulated_doc(), &anchor, T, &wrong_key),
        Err(AttestationError::BindingMismatch { .. })
    ));
    let late = T + time::Duration::hours(1);
    assert!(matches!(
        attestation::verify(
            &emulated_doc(),
            &anchor,
            late,
            &Policy::new().max_age(std::time::Duration::from_mins(5))
        ),
        Err(AttestationError::TooOld { .. })
    ));
    let debug = emulated_builder().pcr(0, vec![0; 48]).unsigned_emulated();
    assert!(matches!(
        attestation::verify(&debug, &anchor, T, &Policy::new()),
        Err(AttestationError::DebugMode)
    ));
}

#[test]
fn an_emulated_document_is_refused_under_the_aws_root_and_a_dev_root() {
    for anchor in [
        attestation::aws_nitro_root_g1().clone(),
        Pki::new().anchor(),
    ] {
        let e = attestation::verify(&emulated_doc(), &anchor, T, &Policy::new()).unwrap_err();
        assert_eq!(e, AttestationError::UnsignedEmulated, "{anchor:?}");
        assert!(e.to_string().contains("never in production"));
    }
}

#[test]
fn a_signed_document_is_refused_in_the_emulated_mode() {
    let pki = Pki::new();
    let signed = pki.sign(&pki.builder());
    // It verifies against its own root...
    attestation::verify(&signed, &pki.anchor(), T, &Policy::new()).unwrap();
    // ...and the emulated mode, which checks no signature, will not vouch for it.
    let e = attestation::verify(&signed, &TrustAnchor::emulated(), T, &Policy::new()).unwrap_err();
    assert!(matches!(e, AttestationError::NotEmulated(_)), "{e}");
}

#[test]
fn only_the_exact_unsigned_shape_passes_as_emulated() {
    let anchor = TrustAnchor::emulated();
    let doc = emulated_doc();
    // A non-zero byte in the signature (the document's last byte).
    let mut signed_ish = doc.clone();
    *signed_ish.last_mut().unwrap() = 1;
    assert!(matches!(
        attestation::verify(&signed_ish, &anchor, T, &Policy::new()),
        Err(AttestationError::NotEmulated(_))
    ));
    // A real-looking certificate or CA bundle.
    let with_cert = DocumentBuilder::new("m", T_MS, vec![0x30; 64], vec![vec![0; 64]])
        .pcr(0, vec![1; 48])
        .unsigned_emulated();
    let with_bundle = DocumentBuilder::new("m", T_MS, vec![0; 64], vec![vec![0; 64], vec![0; 64]])
        .pcr(0, vec![1; 48])
        .unsigned_emulated();
    for d in [with_cert, with_bundle] {
        assert!(matches!(
            attestation::verify(&d, &anchor, T, &Policy::new()),
            Err(AttestationError::NotEmulated(_))
        ));
    }
}

/// A genesis attestation captured from QEMU 10.0.2's emulated NSM (`make emulated-demo`), with
/// the PCRs `tessera pcrs` computed from the image it booted.
const QEMU_DOC: &[u8] = include_bytes!("vectors/emulated/qemu-nsm-genesis.cbor");
const QEMU_IMAGE_PCRS: &str = include_str!("vectors/emulated/image-pcrs.json");

fn qemu_image_pcr(i: u8) -> Vec<u8> {
    let key = format!("\"PCR{i}\": \"");
    let start = QEMU_IMAGE_PCRS.find(&key).unwrap() + key.len();
    hex::decode(&QEMU_IMAGE_PCRS[start..start + 96]).unwrap()
}

#[test]
fn a_document_from_qemus_emulated_nsm_attests_the_image_pcrs() {
    let at = attestation::unverified_timestamp(QEMU_DOC).unwrap();
    let mut policy = Policy::new().max_age(std::time::Duration::from_mins(1));
    for i in 0..3 {
        policy = policy.expect_pcr(i, qemu_image_pcr(i));
    }
    let v = attestation::verify(QEMU_DOC, &TrustAnchor::emulated(), at, &policy).unwrap();
    assert!(v.is_emulated());
    assert_eq!(v.module_id(), "tessera-emulated");
    // Without a parent role or instance id, the machine leaves PCR3 and PCR4 zero.
    assert_eq!(v.pcr(3), Some(&[0u8; 48][..]));
    assert_eq!(v.pcr(4), Some(&[0u8; 48][..]));
    assert!(v.user_data().is_some());

    for anchor in [
        attestation::aws_nitro_root_g1().clone(),
        Pki::new().anchor(),
    ] {
        assert_eq!(
            attestation::verify(QEMU_DOC, &anchor, at, &Policy::new()).unwrap_err(),
            AttestationError::UnsignedEmulated
        );
    }
}
