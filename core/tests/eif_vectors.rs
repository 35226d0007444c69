//! PCRs of the shared EIF vectors, and the reasons damaged EIFs are refused.

use std::path::PathBuf;

use tessera_core::eif::{self, EifError, SectionKind};
use tessera_core::pcr::{self, PcrInputError};

fn dir() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/vectors/eif"
    ))
}

fn expected() -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir().join("expected.json")).unwrap()).unwrap()
}

#[test]
fn both_vectors_give_their_expected_pcrs_and_header() {
    let expected = expected();
    for name in ["tiny_unsigned.eif", "tiny_signed.eif"] {
        let bytes = std::fs::read(dir().join(name)).unwrap();
        let parsed = eif::parse(&bytes).unwrap();
        let want = &expected[name];
        let m = &want["measurements"];
        assert_eq!(parsed.measurements.pcr0.to_hex(), m["PCR0"], "{name} PCR0");
        assert_eq!(parsed.measurements.pcr1.to_hex(), m["PCR1"], "{name} PCR1");
        assert_eq!(parsed.measurements.pcr2.to_hex(), m["PCR2"], "{name} PCR2");
        assert_eq!(
            parsed.measurements.pcr8.map(|p| p.to_hex()),
            m["PCR8"].as_str().map(str::to_owned),
            "{name} PCR8"
        );
        let h = &want["header"];
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
        assert_eq!(
            u64::from(parsed.header.crc32),
            h["crc32_calc"].as_u64().unwrap()
        );
        let offsets: Vec<u64> = parsed.sections.iter().map(|s| s.offset).collect();
        let sizes: Vec<u64> = parsed.sections.iter().map(|s| s.size).collect();
        let want_offsets: Vec<u64> = h["section_offsets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect();
        let want_sizes: Vec<u64> = h["section_sizes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect();
        assert_eq!(offsets, want_offsets);
        assert_eq!(sizes, want_sizes);
        assert_eq!(parsed.sections[0].kind, SectionKind::Kernel);
    }
}

#[test]
fn a_flipped_byte_anywhere_fails_the_crc() {
    let bytes = std::fs::read(dir().join("tiny_signed.eif")).unwrap();
    for at in [4usize, 100, 600, 6000, bytes.len() - 1] {
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
    let bytes = std::fs::read(dir().join("tiny_unsigned.eif")).unwrap();
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
