//! EIF vectors: images written at test time from the inputs in `tests/vectors/eif/MANIFEST.json`
//! get the header, sections, CRC and PCRs listed there (computed independently by
//! `tests/vectors/eif/expected.py`), and damaged images are refused for the right reason.
//!
//! The team's reference EIFs (`../shared/vectors/eif`, built with AWS's image-format crate), where
//! they sit beside a checkout, can be checked too with `--ignored`.

use std::path::{Path, PathBuf};

use aws_lc_rs::signature::{ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair};
use serde_json::Value;
use sha2::{Digest, Sha384};
use tessera_core::attestation::build;
use tessera_core::eif::{self, EifError, SectionKind};
use tessera_core::pcr::{self, PcrInputError};

fn dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/eif"))
}

fn manifest() -> Value {
    serde_json::from_slice(&std::fs::read(dir().join("MANIFEST.json")).unwrap()).unwrap()
}

/// `n` bytes of SHA-384(label || counter) blocks: large, incompressible, reproducible inputs.
fn stream(label: &str, n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n + 48);
    let mut i = 0u32;
    while out.len() < n {
        let mut h = Sha384::new();
        h.update(label.as_bytes());
        h.update(i.to_be_bytes());
        out.extend_from_slice(&h.finalize());
        i += 1;
    }
    out.truncate(n);
    out
}

fn stream_of(v: &Value) -> Vec<u8> {
    stream(
        v["stream"].as_str().unwrap(),
        v["len"].as_u64().unwrap() as usize,
    )
}

const KERNEL: u16 = 1;
const CMDLINE: u16 = 2;
const RAMDISK: u16 = 3;
const SIGNATURE: u16 = 4;
const METADATA: u16 = 5;

fn cbor_head(out: &mut Vec<u8>, major: u8, n: u64) {
    let m = major << 5;
    match n {
        0..=23 => out.push(m | n as u8),
        24..=0xff => out.extend([m | 0x18, n as u8]),
        0x100..=0xffff => {
            out.push(m | 0x19);
            out.extend((n as u16).to_be_bytes());
        }
        _ => {
            out.push(m | 0x1a);
            out.extend((n as u32).to_be_bytes());
        }
    }
}

fn cbor_text(out: &mut Vec<u8>, s: &str) {
    cbor_head(out, 3, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

/// An EIF signature section as the image tools lay it out: one entry whose certificate is PEM
/// written as an array of byte values, and whose signature is a `COSE_Sign1` over PCR0 made with
/// the certificate's key (written here as a byte string, which readers accept too).
fn signature_section(cert_pem: &[u8], key: &EcdsaKeyPair, pcr0: &[u8]) -> Vec<u8> {
    let mut payload = Vec::new();
    cbor_head(&mut payload, 5, 2);
    cbor_text(&mut payload, "register_index");
    cbor_head(&mut payload, 0, 0);
    cbor_text(&mut payload, "register_value");
    cbor_head(&mut payload, 2, pcr0.len() as u64);
    payload.extend_from_slice(pcr0);
    let cose = build::sign1(&payload, false, |m| build::sign_es384(key, m)).unwrap();
    let mut out = Vec::new();
    cbor_head(&mut out, 4, 1);
    cbor_head(&mut out, 5, 2);
    cbor_text(&mut out, "signing_certificate");
    cbor_head(&mut out, 4, cert_pem.len() as u64);
    for b in cert_pem {
        cbor_head(&mut out, 0, u64::from(*b));
    }
    cbor_text(&mut out, "signature");
    cbor_head(&mut out, 2, cose.len() as u64);
    out.extend_from_slice(&cose);
    out
}

/// Writes an EIF: the 548-byte header (magic, version 4, memory, CPUs, section table, CRC-32 of
/// everything but the CRC field), then each section's 12-byte header and data.
fn write_eif(mem: u64, cpus: u64, sections: &[(u16, Vec<u8>)]) -> Vec<u8> {
    let mut header = Vec::with_capacity(548);
    header.extend_from_slice(b".eif");
    header.extend(4u16.to_be_bytes());
    header.extend(0u16.to_be_bytes());
    header.extend(mem.to_be_bytes());
    header.extend(cpus.to_be_bytes());
    header.extend(0u16.to_be_bytes());
    header.extend((sections.len() as u16).to_be_bytes());
    let mut offsets = [0u64; 32];
    let mut sizes = [0u64; 32];
    let mut pos = 548u64;
    for (i, (_, data)) in sections.iter().enumerate() {
        offsets[i] = pos;
        sizes[i] = data.len() as u64;
        pos += 12 + data.len() as u64;
    }
    for v in offsets.iter().chain(&sizes) {
        header.extend(v.to_be_bytes());
    }
    header.extend(0u32.to_be_bytes());
    let mut body = Vec::new();
    for (kind, data) in sections {
        body.extend(kind.to_be_bytes());
        body.extend(0u16.to_be_bytes());
        body.extend((data.len() as u64).to_be_bytes());
        body.extend_from_slice(data);
    }
    let mut crc = crc32fast::Hasher::new();
    crc.update(&header);
    crc.update(&body);
    header.extend(crc.finalize().to_be_bytes());
    assert_eq!(header.len(), 548);
    [header, body].concat()
}

/// The image `vector` of the manifest, written from its inputs.
fn build_vector(m: &Value, vector: &Value) -> Vec<u8> {
    let inputs = &m["inputs"];
    let ramdisks = vector["ramdisks"].as_u64().unwrap() as usize;
    let mut sections = vec![
        (KERNEL, stream_of(&inputs["kernel"])),
        (
            CMDLINE,
            inputs["cmdline"].as_str().unwrap().as_bytes().to_vec(),
        ),
        (METADATA, serde_json::to_vec(&inputs["metadata"]).unwrap()),
    ];
    for r in inputs["ramdisks"].as_array().unwrap().iter().take(ramdisks) {
        sections.push((RAMDISK, stream_of(r)));
    }
    let (mem, cpus) = (
        inputs["default_mem"].as_u64().unwrap(),
        inputs["default_cpus"].as_u64().unwrap(),
    );
    if vector["signed"].as_bool().unwrap() {
        let unsigned = write_eif(mem, cpus, &sections);
        let pcr0 = eif::measure(&unsigned).unwrap().pcr0;
        let cert =
            std::fs::read(dir().join(inputs["signing_certificate"].as_str().unwrap())).unwrap();
        let key = signing_key();
        sections.push((SIGNATURE, signature_section(&cert, &key, pcr0.as_bytes())));
    }
    write_eif(mem, cpus, &sections)
}

/// The test signer's P-384 key (PKCS#8 PEM beside its certificate; test data only).
fn signing_key() -> EcdsaKeyPair {
    let pem = std::fs::read_to_string(dir().join("sign_key.pem")).unwrap();
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64_decode(&b64);
    EcdsaKeyPair::from_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, &der).unwrap()
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}

fn vector_named(m: &Value, name: &str) -> Vec<u8> {
    let v = m["vectors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == name)
        .unwrap();
    build_vector(m, v)
}

fn kind_name(k: SectionKind) -> &'static str {
    match k {
        SectionKind::Kernel => "Kernel",
        SectionKind::Cmdline => "Cmdline",
        SectionKind::Ramdisk => "Ramdisk",
        SectionKind::Signature => "Signature",
        SectionKind::Metadata => "Metadata",
    }
}

fn u64s(v: &Value) -> Vec<u64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap())
        .collect()
}

#[test]
fn every_vector_gives_its_manifest_header_and_pcrs() {
    let m = manifest();
    let vectors = m["vectors"].as_array().unwrap();
    assert_eq!(vectors.len(), 3);
    for v in vectors {
        let name = v["name"].as_str().unwrap();
        let bytes = build_vector(&m, v);
        let parsed = eif::parse(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        let h = &v["header"];
        assert_eq!(
            bytes.len() as u64,
            h["file_size"].as_u64().unwrap(),
            "{name}"
        );
        assert_eq!(
            u64::from(parsed.header.version),
            h["version"].as_u64().unwrap()
        );
        assert_eq!(
            parsed.header.default_mem,
            h["default_mem"].as_u64().unwrap()
        );
        assert_eq!(
            parsed.header.default_cpus,
            h["default_cpus"].as_u64().unwrap()
        );
        if let Some(crc) = h["crc32"].as_u64() {
            assert_eq!(u64::from(parsed.header.crc32), crc, "{name} CRC-32");
        }
        let kinds: Vec<&str> = parsed.sections.iter().map(|s| kind_name(s.kind)).collect();
        let want_kinds: Vec<&str> = h["section_kinds"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k.as_str().unwrap())
            .collect();
        assert_eq!(kinds, want_kinds, "{name}");
        let offsets: Vec<u64> = parsed.sections.iter().map(|s| s.offset).collect();
        let sizes: Vec<u64> = parsed.sections.iter().map(|s| s.size).collect();
        assert_eq!(offsets, u64s(&h["section_offsets"]), "{name} offsets");
        assert_eq!(sizes, u64s(&h["section_sizes"]), "{name} sizes");
        let want = &v["measurements"];
        let got = &parsed.measurements;
        assert_eq!(got.pcr0.to_hex(), want["PCR0"], "{name} PCR0");
        assert_eq!(got.pcr1.to_hex(), want["PCR1"], "{name} PCR1");
        assert_eq!(got.pcr2.to_hex(), want["PCR2"], "{name} PCR2");
        assert_eq!(
            got.pcr8.as_ref().map(pcr::Pcr::to_hex),
            want["PCR8"].as_str().map(str::to_owned),
            "{name} PCR8"
        );
    }
}

#[test]
fn signing_changes_only_pcr8() {
    let m = manifest();
    let unsigned = eif::measure(&vector_named(&m, "unsigned")).unwrap();
    let signed = eif::measure(&vector_named(&m, "signed")).unwrap();
    assert_eq!(unsigned.pcr0, signed.pcr0);
    assert_eq!(unsigned.pcr1, signed.pcr1);
    assert_eq!(unsigned.pcr2, signed.pcr2);
    assert!(unsigned.pcr8.is_none() && signed.pcr8.is_some());
    // The ramdisks after the first make PCR2; PCR1 does not see them.
    let one = eif::measure(&vector_named(&m, "one_ramdisk")).unwrap();
    assert_eq!(one.pcr1, unsigned.pcr1);
    assert_ne!(one.pcr2, unsigned.pcr2);
    assert_ne!(one.pcr0, unsigned.pcr0);
}

#[test]
fn a_flipped_byte_anywhere_fails_the_crc() {
    let bytes = vector_named(&manifest(), "signed");
    for at in [4usize, 100, 600, 6000, 9000, bytes.len() - 1] {
        let mut damaged = bytes.clone();
        damaged[at] ^= 0x01;
        let err = eif::parse(&damaged).unwrap_err();
        assert!(
            matches!(
                err,
                EifError::Crc { .. } | EifError::Section { .. } | EifError::Signature(_)
            ),
            "byte {at}: {err}"
        );
    }
    let mut damaged = bytes.clone();
    damaged[548 + 12 + 10] ^= 0x01; // inside the kernel
    assert!(matches!(
        eif::parse(&damaged).unwrap_err(),
        EifError::Crc { .. }
    ));
}

#[test]
fn truncation_and_bad_magic_are_refused() {
    let bytes = vector_named(&manifest(), "unsigned");
    assert_eq!(
        eif::parse(&bytes[..100]).unwrap_err(),
        EifError::TooShort(100)
    );
    let err = eif::parse(&bytes[..bytes.len() - 1]).unwrap_err();
    assert!(matches!(err, EifError::Section { index: 4, .. }), "{err}");
    assert!(err.to_string().contains("declares 7000 bytes"), "{err}");
    let mut bad = bytes.clone();
    bad[0] = b'x';
    assert!(matches!(
        eif::parse(&bad).unwrap_err(),
        EifError::BadMagic(_)
    ));
    // Extra bytes after the last section read as a truncated section header.
    let mut longer = bytes.clone();
    longer.extend_from_slice(&[0; 5]);
    assert!(matches!(
        eif::parse(&longer).unwrap_err(),
        EifError::Section { index: 5, .. }
    ));
}

#[test]
fn a_header_that_disagrees_with_the_sections_is_refused() {
    let m = manifest();
    let inputs = &m["inputs"];
    let sections = vec![
        (KERNEL, stream_of(&inputs["kernel"])),
        (CMDLINE, b"console=ttyS0".to_vec()),
    ];
    let mut bytes = write_eif(1 << 30, 2, &sections);
    // One section fewer in the count, with the CRC recomputed so only the count is wrong.
    bytes[4 + 2 + 2 + 8 + 8 + 2 + 1] = 1;
    let mut crc = crc32fast::Hasher::new();
    crc.update(&bytes[..544]);
    crc.update(&bytes[548..]);
    bytes[544..548].copy_from_slice(&crc.finalize().to_be_bytes());
    assert!(matches!(
        eif::parse(&bytes).unwrap_err(),
        EifError::HeaderMismatch(_)
    ));
}

#[test]
fn pcr3_and_pcr4() {
    let pcr3 = pcr::pcr3_from_role_arn("arn:aws:iam::123456789012:role/Webserver").unwrap();
    assert!(pcr3.to_hex().starts_with("78fce75d"), "{pcr3}");
    let pcr4 = pcr::pcr4_from_instance_id("i-0123456789abcdef0").unwrap();
    assert_eq!(pcr4, pcr::Pcr::extended_from_zero(b"i-0123456789abcdef0"));
    assert!(matches!(
        pcr::pcr3_from_role_arn("arn:aws:iam::123456789012:user/Bob"),
        Err(PcrInputError::NotRoleArn { .. })
    ));
    assert!(matches!(
        pcr::pcr3_from_role_arn("arn:aws:iam::123456789012:role/Webserver\n"),
        Err(PcrInputError::Whitespace { .. })
    ));
    assert!(matches!(
        pcr::pcr4_from_instance_id(""),
        Err(PcrInputError::Empty { .. })
    ));
}

/// The reference EIFs built with AWS's image-format crate, when they sit beside the checkout:
/// their PCRs are the ones that crate printed, and an image this file writes from their inputs
/// measures the same.
#[test]
#[ignore = "reads the reference EIFs beside the checkout (../shared/vectors/eif)"]
fn the_reference_eifs_beside_the_checkout_agree() {
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/vectors/eif");
    let expected = std::fs::read(shared.join("expected.json")).unwrap_or_else(|e| {
        panic!("no reference EIFs at {}: {e}", shared.display());
    });
    let expected: Value = serde_json::from_slice(&expected).unwrap();
    for name in ["tiny_unsigned.eif", "tiny_signed.eif"] {
        let parsed = eif::parse(&std::fs::read(shared.join(name)).unwrap()).unwrap();
        let want = &expected[name]["measurements"];
        assert_eq!(parsed.measurements.pcr0.to_hex(), want["PCR0"], "{name}");
        assert_eq!(parsed.measurements.pcr1.to_hex(), want["PCR1"], "{name}");
        assert_eq!(parsed.measurements.pcr2.to_hex(), want["PCR2"], "{name}");
        assert_eq!(
            parsed.measurements.pcr8.map(|p| p.to_hex()),
            want["PCR8"].as_str().map(str::to_owned),
            "{name}"
        );
    }
    let read = |f: &str| std::fs::read(shared.join(f)).unwrap();
    let cmdline = String::from_utf8(read("cmdline")).unwrap();
    let ours = write_eif(
        1 << 30,
        2,
        &[
            (KERNEL, read("kernel.bin")),
            (CMDLINE, cmdline.trim().as_bytes().to_vec()),
            (RAMDISK, read("ramdisk0.bin")),
            (RAMDISK, read("ramdisk1.bin")),
        ],
    );
    let ours = eif::measure(&ours).unwrap();
    let want = &expected["tiny_unsigned.eif"]["measurements"];
    assert_eq!(ours.pcr0.to_hex(), want["PCR0"]);
    assert_eq!(ours.pcr1.to_hex(), want["PCR1"]);
    assert_eq!(ours.pcr2.to_hex(), want["PCR2"]);
}

/// Writes every vector to the folder named by `TESSERA_WRITE_VECTORS` (the fuzz smoke run seeds
/// its EIF corpus with them): `cargo test -p tessera-core --test eif_vectors -- --ignored`.
#[test]
#[ignore = "writes files; run by scripts/fuzz-smoke.sh"]
fn write_vectors() {
    let out =
        PathBuf::from(std::env::var_os("TESSERA_WRITE_VECTORS").expect("TESSERA_WRITE_VECTORS"));
    std::fs::create_dir_all(&out).unwrap();
    let m = manifest();
    for v in m["vectors"].as_array().unwrap() {
        let name = format!("{}.eif", v["name"].as_str().unwrap());
        std::fs::write(out.join(name), build_vector(&m, v)).unwrap();
    }
}

/// The images kept as files (for the golden tests of `tessera pcrs`) are the manifest's: the
/// unsigned one byte for byte, the signed one (whose signature is randomised) by its PCRs.
#[test]
fn the_committed_images_are_the_manifest_vectors() {
    let m = manifest();
    for name in ["unsigned", "signed"] {
        let bytes = std::fs::read(dir().join(format!("{name}.eif"))).unwrap();
        let v = m["vectors"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == name)
            .unwrap();
        let got = eif::measure(&bytes).unwrap();
        let want = &v["measurements"];
        assert_eq!(got.pcr0.to_hex(), want["PCR0"], "{name}");
        assert_eq!(got.pcr1.to_hex(), want["PCR1"], "{name}");
        assert_eq!(got.pcr2.to_hex(), want["PCR2"], "{name}");
        assert_eq!(
            got.pcr8.map(|p| p.to_hex()),
            want["PCR8"].as_str().map(str::to_owned),
            "{name}"
        );
        assert_eq!(
            bytes.len() as u64,
            v["header"]["file_size"].as_u64().unwrap()
        );
    }
    assert_eq!(
        std::fs::read(dir().join("unsigned.eif")).unwrap(),
        vector_named(&m, "unsigned")
    );
}
