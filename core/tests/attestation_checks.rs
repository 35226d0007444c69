//! One negative test per verification check, on documents and chains made at test time with a
//! throwaway P-384 root, plus the encodings that must be accepted.

mod attestation_support;

use attestation_support::{Pki, Role, T, T_MS};
use rcgen::{
    BasicConstraints, IsCa, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256,
    PKCS_ECDSA_P384_SHA384,
};
use tessera_core::attestation::build::Optional;
use tessera_core::attestation::{self, AttestationError, Policy, VerifiedAttestation};
use time::Duration;

fn verify(pki: &Pki, doc: &[u8]) -> Result<VerifiedAttestation, AttestationError> {
    attestation::verify(doc, &pki.anchor(), T, &Policy::new())
}

fn error(pki: &Pki, doc: &[u8]) -> String {
    verify(pki, doc).map(|_| ()).unwrap_err().to_string()
}

// ---- a minimal CBOR writer for hand-made payloads ----

fn head(major: u8, v: u64) -> Vec<u8> {
    let m = major << 5;
    match v {
        0..=23 => vec![m | v as u8],
        24..=0xff => vec![m | 0x18, v as u8],
        0x100..=0xffff => [vec![m | 0x19], (v as u16).to_be_bytes().to_vec()].concat(),
        0x1_0000..=0xffff_ffff => [vec![m | 0x1a], (v as u32).to_be_bytes().to_vec()].concat(),
        _ => [vec![m | 0x1b], v.to_be_bytes().to_vec()].concat(),
    }
}
fn tstr(s: &str) -> Vec<u8> {
    [head(3, s.len() as u64), s.as_bytes().to_vec()].concat()
}
fn bstr(b: &[u8]) -> Vec<u8> {
    [head(2, b.len() as u64), b.to_vec()].concat()
}
fn map(entries: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let mut out = head(5, entries.len() as u64);
    for (k, v) in entries {
        out.extend(k);
        out.extend(v);
    }
    out
}

/// The fields of a valid payload as (key, encoded value), in NSM order.
fn fields(pki: &Pki) -> Vec<(Vec<u8>, Vec<u8>)> {
    let pcrs: Vec<(Vec<u8>, Vec<u8>)> = (0..4u64)
        .map(|i| (head(0, i), bstr(&[i as u8 + 1; 48])))
        .collect();
    let mut cabundle = head(4, pki.cabundle().len() as u64);
    for c in pki.cabundle() {
        cabundle.extend(bstr(&c));
    }
    vec![
        (
            tstr("module_id"),
            tstr("i-0123456789abcdef0-enc0123456789abcdef"),
        ),
        (tstr("digest"), tstr("SHA384")),
        (tstr("timestamp"), head(0, T_MS)),
        (tstr("pcrs"), map(&pcrs)),
        (tstr("certificate"), bstr(&pki.leaf_der)),
        (tstr("cabundle"), cabundle),
        (tstr("public_key"), vec![0xf6]),
        (tstr("user_data"), vec![0xf6]),
        (tstr("nonce"), vec![0xf6]),
    ]
}

#[test]
fn a_well_formed_document_verifies_and_exposes_its_fields() {
    let pki = Pki::new();
    let doc = pki.sign(
        &pki.builder()
            .user_data(b"hello".to_vec())
            .nonce(vec![7; 20]),
    );
    let v = verify(&pki, &doc).unwrap();
    assert_eq!(v.user_data(), Some(&b"hello"[..]));
    assert_eq!(v.nonce(), Some(&[7u8; 20][..]));
    assert_eq!(v.public_key(), None);
    assert_eq!(v.pcrs().len(), 16);
    assert!(!v.is_debug());
    assert_eq!(v.timestamp(), T);
    assert_eq!(v.root_sha256(), pki.anchor().sha256());
    // The hand-made payload is equally valid.
    verify(&pki, &pki.sign_payload(&map(&fields(&pki)))).unwrap();
}

// ---- COSE_Sign1 structure (RFC 9052 section 4.2) ----

#[test]
fn tag_18_is_accepted_and_other_tags_refused() {
    let pki = Pki::new();
    verify(&pki, &pki.sign(&pki.builder().tagged(true))).unwrap();
    let mut doc = pki.sign(&pki.builder());
    doc.splice(0..0, [0xd8, 0x62]); // tag 98, COSE_Sign
    assert!(error(&pki, &doc).contains("tag 98 is not COSE_Sign1"));
}

#[test]
fn trailing_bytes_are_refused() {
    let pki = Pki::new();
    let mut doc = pki.sign(&pki.builder());
    doc.push(0x00);
    assert_eq!(
        verify(&pki, &doc).unwrap_err(),
        AttestationError::TrailingData {
            what: "COSE_Sign1",
            bytes: 1
        }
    );
    let mut payload = map(&fields(&pki));
    payload.extend([0xa0]);
    assert_eq!(
        verify(&pki, &pki.sign_payload(&payload)).unwrap_err(),
        AttestationError::TrailingData {
            what: "attestation payload",
            bytes: 1
        }
    );
}

fn with_protected(doc: &[u8], protected: &[u8]) -> Vec<u8> {
    // The builder writes 0x84 0x44 a1 01 38 22 ...; swap in another protected header.
    let mut out = vec![0x84];
    out.extend(bstr(protected));
    out.extend(&doc[6..]);
    out
}

#[test]
fn protected_header_must_be_exactly_es384() {
    let pki = Pki::new();
    let doc = pki.sign(&pki.builder());
    for bad in [
        &[0xa1, 0x01, 0x26][..],
        &[],
        &[0xa0],
        &[0xa1, 0x01, 0x39, 0x00, 0x22],
        &[0xa2, 0x01, 0x38, 0x22, 0x04, 0x40],
    ] {
        let err = verify(&pki, &with_protected(&doc, bad)).unwrap_err();
        assert!(
            matches!(err, AttestationError::ProtectedHeader { .. }),
            "{bad:02x?}: {err}"
        );
    }
}

#[test]
fn unprotected_header_must_be_a_map_but_may_hold_entries() {
    let pki = Pki::new();
    let doc = pki.sign(&pki.builder());
    assert_eq!(doc[6], 0xa0);
    let mut nonempty = doc[..6].to_vec();
    nonempty.extend([0xa1, 0x04, 0x42, 0xab, 0xcd]);
    nonempty.extend(&doc[7..]);
    verify(&pki, &nonempty).unwrap();
    let mut not_map = doc.clone();
    not_map[6] = 0x80;
    assert!(error(&pki, &not_map).contains("unprotected header not a map"));
}

#[test]
fn signature_must_be_96_bytes_and_high_s_is_accepted() {
    let pki = Pki::new();
    let doc = pki.sign(&pki.builder());
    let sig_start = doc.len() - 96;
    assert_eq!(&doc[sig_start - 2..sig_start], &[0x58, 96]);
    for len in [95usize, 97] {
        let mut bad = doc[..sig_start - 2].to_vec();
        bad.extend(bstr(&vec![1; len]));
        assert_eq!(
            verify(&pki, &bad).unwrap_err(),
            AttestationError::SignatureLength(len)
        );
    }
    // s' = n - s is the other valid signature for the same r; ECDSA verification accepts it.
    let mut twin = doc.clone();
    let s = &doc[sig_start + 48..];
    let mut borrow = 0i16;
    for i in (0..48).rev() {
        let mut d = i16::from(N[i]) - i16::from(s[i]) - borrow;
        borrow = i16::from(d < 0);
        if d < 0 {
            d += 256;
        }
        twin[sig_start + 48 + i] = u8::try_from(d).unwrap();
    }
    assert_ne!(twin, doc);
    verify(&pki, &twin).unwrap();
    let mut flipped = doc.clone();
    flipped[sig_start + 10] ^= 1;
    assert_eq!(
        verify(&pki, &flipped).unwrap_err(),
        AttestationError::Signature
    );
}

/// The order of the P-384 group.
const N: [u8; 48] = hex_literal(
    "ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973",
);

const fn hex_literal(s: &str) -> [u8; 48] {
    let b = s.as_bytes();
    let mut out = [0u8; 48];
    let mut i = 0;
    while i < 48 {
        let hi = (b[2 * i] as char).to_digit(16).unwrap() as u8;
        let lo = (b[2 * i + 1] as char).to_digit(16).unwrap() as u8;
        out[i] = (hi << 4) | lo;
        i += 1;
    }
    out
}

#[test]
fn the_signature_covers_the_payload_bytes_as_sent() {
    // A non-minimal integer (0x18 0x00 for PCR index 0) decodes to the same value, so a verifier
    // that re-encoded before checking the signature would reject this document.
    let pki = Pki::new();
    let payload = pki.builder().payload();
    let at = payload
        .windows(6)
        .position(|w| w == b"\x64pcrs\xb0")
        .unwrap()
        + 6;
    assert_eq!(payload[at], 0x00);
    let mut odd = payload.clone();
    odd.splice(at..=at, [0x18, 0x00]);
    verify(&pki, &pki.sign_payload(&odd)).unwrap();
    // And a payload changed after signing fails.
    let mut doc = pki.sign(&pki.builder());
    let pos = doc.windows(6).position(|w| w == b"SHA384").unwrap();
    doc[pos + 5] = b'5';
    assert!(verify(&pki, &doc).is_err());
}

// ---- payload fields (attestation_process.md section 3.2) ----

#[test]
fn each_mandatory_field_is_required() {
    let pki = Pki::new();
    for (i, name) in [
        "module_id",
        "digest",
        "timestamp",
        "pcrs",
        "certificate",
        "cabundle",
    ]
    .into_iter()
    .enumerate()
    {
        let mut f = fields(&pki);
        f.remove(i);
        assert_eq!(
            verify(&pki, &pki.sign_payload(&map(&f))).unwrap_err(),
            AttestationError::MissingField(name)
        );
    }
}

#[test]
fn optional_fields_may_be_absent_null_or_up_to_1024_bytes() {
    let pki = Pki::new();
    let absent = pki
        .builder()
        .public_key(Optional::Absent)
        .user_data(Optional::Absent)
        .nonce(Optional::Absent);
    verify(&pki, &pki.sign(&absent)).unwrap();
    let full = pki
        .builder()
        .public_key(vec![1; 1024])
        .user_data(vec![2; 1024])
        .nonce(vec![3; 1024]);
    let v = verify(&pki, &pki.sign(&full)).unwrap();
    assert_eq!(v.user_data().unwrap().len(), 1024);
    let empty = pki.builder().user_data(Vec::new());
    assert_eq!(
        verify(&pki, &pki.sign(&empty)).unwrap().user_data(),
        Some(&[][..])
    );
    for field in ["public_key", "user_data", "nonce"] {
        let b = match field {
            "public_key" => pki.builder().public_key(vec![0; 1025]),
            "user_data" => pki.builder().user_data(vec![0; 1025]),
            _ => pki.builder().nonce(vec![0; 1025]),
        };
        assert_eq!(
            error(&pki, &pki.sign(&b)),
            format!("payload: {field} length 1025 is not in [0, 1024]")
        );
    }
}

#[test]
fn field_values_are_checked() {
    let pki = Pki::new();
    let doc = |b: tessera_core::attestation::build::DocumentBuilder| pki.sign(&b);
    assert!(
        error(&pki, &doc(pki.builder().digest("SHA256"))).contains("digest 'SHA256' is not SHA384")
    );
    let empty_id = tessera_core::attestation::build::DocumentBuilder::new(
        "",
        T_MS,
        pki.leaf_der.clone(),
        pki.cabundle(),
    )
    .pcr(0, vec![1; 48]);
    assert!(error(&pki, &doc(empty_id)).contains("module_id is empty"));
    let zero_ts = tessera_core::attestation::build::DocumentBuilder::new(
        "m",
        0,
        pki.leaf_der.clone(),
        pki.cabundle(),
    )
    .pcr(0, vec![1; 48]);
    assert!(error(&pki, &doc(zero_ts)).contains("timestamp is 0"));
    let no_pcrs = tessera_core::attestation::build::DocumentBuilder::new(
        "m",
        T_MS,
        pki.leaf_der.clone(),
        pki.cabundle(),
    );
    assert!(error(&pki, &doc(no_pcrs)).contains("pcrs is empty"));
    assert!(
        error(&pki, &doc(pki.builder().pcr(32, vec![0; 48]))).contains("index 32 is not in 0..=31")
    );
    assert!(error(&pki, &doc(pki.builder().pcr(5, vec![0; 47]))).contains("PCR5 is 47 bytes"));
    // 32- and 64-byte PCRs are within the specification.
    verify(
        &pki,
        &doc(pki.builder().pcr(20, vec![9; 32]).pcr(21, vec![9; 64])),
    )
    .unwrap();
    let no_bundle = tessera_core::attestation::build::DocumentBuilder::new(
        "m",
        T_MS,
        pki.leaf_der.clone(),
        vec![],
    )
    .pcr(0, vec![1; 48]);
    assert!(error(&pki, &doc(no_bundle)).contains("cabundle is empty"));

    let mut f = fields(&pki);
    f[2].1 = tstr("1735732800000");
    assert!(error(&pki, &pki.sign_payload(&map(&f))).contains("expected an unsigned integer"));
    let mut f = fields(&pki);
    f[3].1 = map(&[(tstr("0"), bstr(&[0; 48]))]);
    assert!(error(&pki, &pki.sign_payload(&map(&f))).contains("index '0' is text"));
    let mut f = fields(&pki);
    f[4].1 = bstr(&vec![0x30; 1025]);
    assert!(error(&pki, &pki.sign_payload(&map(&f))).contains("certificate is 1025 bytes"));
    let mut f = fields(&pki);
    f.push((head(0, 1), tstr("integer key")));
    assert!(error(&pki, &pki.sign_payload(&map(&f))).contains("payload key"));
}

#[test]
fn duplicate_keys_are_refused() {
    let pki = Pki::new();
    let mut f = fields(&pki);
    f.push((tstr("nonce"), vec![0xf6]));
    assert_eq!(
        verify(&pki, &pki.sign_payload(&map(&f))).unwrap_err(),
        AttestationError::DuplicateKey {
            map: "payload",
            key: "nonce".into()
        }
    );
    let mut f = fields(&pki);
    f[3].1 = map(&[(head(0, 1), bstr(&[1; 48])), (head(0, 1), bstr(&[2; 48]))]);
    assert_eq!(
        verify(&pki, &pki.sign_payload(&map(&f))).unwrap_err(),
        AttestationError::DuplicateKey {
            map: "pcrs",
            key: "1".into()
        }
    );
    // Unknown fields are signed and ignored, but may not repeat either.
    let mut f = fields(&pki);
    f.push((tstr("future_field"), map(&[(tstr("nested"), head(4, 0))])));
    verify(&pki, &pki.sign_payload(&map(&f))).unwrap();
    f.push((tstr("future_field"), vec![0xf5]));
    assert!(error(&pki, &pki.sign_payload(&map(&f))).contains("duplicate key future_field"));
}

#[test]
fn indefinite_length_maps_are_accepted() {
    let pki = Pki::new();
    let mut payload = vec![0xbf];
    for (k, v) in fields(&pki) {
        payload.extend(k);
        payload.extend(v);
    }
    payload.push(0xff);
    verify(&pki, &pki.sign_payload(&payload)).unwrap();
}

// ---- the certificate chain (RFC 5280 section 6.1) ----

#[test]
fn an_impostor_chain_with_aws_names_is_refused() {
    let impostor = Pki::with(3, true, |_, _| {});
    let doc = impostor.sign(&impostor.builder());
    let err =
        attestation::verify(&doc, attestation::aws_nitro_root_g1(), T, &Policy::new()).unwrap_err();
    assert!(
        matches!(err, AttestationError::UntrustedRoot { .. }),
        "{err}"
    );

    // Even with the genuine AWS root in cabundle[0], the impostor's first intermediate carries
    // the root's name but not its signature.
    let mut cabundle = impostor.cabundle();
    cabundle[0] = attestation::aws_nitro_root_g1().der().to_vec();
    let b = tessera_core::attestation::build::DocumentBuilder::new(
        "m",
        T_MS,
        impostor.leaf_der.clone(),
        cabundle,
    )
    .pcr(0, vec![1; 48]);
    let err = attestation::verify(
        &impostor.sign(&b),
        attestation::aws_nitro_root_g1(),
        T,
        &Policy::new(),
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            AttestationError::CertificateSignature {
                index: 1,
                issuer: 0,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn leaf_validity_is_checked_at_the_validation_time() {
    let pki = Pki::new();
    let doc = pki.sign(&pki.builder());
    let at = |t| attestation::verify(&doc, &pki.anchor(), t, &Policy::new());
    at(T + Duration::hours(3)).unwrap();
    let err = at(T + Duration::hours(3) + Duration::seconds(1)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "certificate 4 (CN=i-0123456789abcdef0-enc0123456789abcdef.eu-west-1.aws) expired at \
         2025-01-01T15:00:00Z (validation time 2025-01-01T15:00:01Z)"
    );
    let err = at(T - Duration::minutes(2)).unwrap_err();
    assert!(
        matches!(
            err,
            AttestationError::CertificateNotYetValid { index: 4, .. }
        ),
        "{err}"
    );

    let expired = Pki::with(3, false, |r, p| {
        if r == Role::Leaf {
            p.not_after = T - Duration::seconds(1);
        }
    });
    let err = verify(&expired, &expired.sign(&expired.builder())).unwrap_err();
    assert!(
        matches!(err, AttestationError::CertificateExpired { index: 4, .. }),
        "{err}"
    );
    let future = Pki::with(3, false, |r, p| {
        if r == Role::Leaf {
            p.not_before = T + Duration::seconds(1);
        }
    });
    let err = verify(&future, &future.sign(&future.builder())).unwrap_err();
    assert!(
        matches!(
            err,
            AttestationError::CertificateNotYetValid { index: 4, .. }
        ),
        "{err}"
    );
    let expired_ca = Pki::with(3, false, |r, p| {
        if r == Role::Intermediate(1) {
            p.not_after = T - Duration::days(1);
        }
    });
    let err = verify(&expired_ca, &expired_ca.sign(&expired_ca.builder())).unwrap_err();
    assert!(
        matches!(err, AttestationError::CertificateExpired { index: 2, .. }),
        "{err}"
    );
}

#[test]
fn path_length_constraints_are_enforced() {
    let root_pathlen_1 = Pki::with(3, false, |r, p| {
        if r == Role::Root {
            p.is_ca = IsCa::Ca(BasicConstraints::Constrained(1));
        }
    });
    let err = verify(
        &root_pathlen_1,
        &root_pathlen_1.sign(&root_pathlen_1.builder()),
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("certificate 0 (CN=aws.nitro-enclaves): pathLenConstraint 1 violated"),
        "{err}"
    );

    let first_pathlen_0 = Pki::with(3, false, |r, p| {
        if r == Role::Intermediate(0) {
            p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        }
    });
    let err = verify(
        &first_pathlen_0,
        &first_pathlen_0.sign(&first_pathlen_0.builder()),
    )
    .unwrap_err();
    assert!(err.to_string().contains("certificate 1 (CN=intermediate-0.eu-west-1.aws.nitro-enclaves): pathLenConstraint 0 violated"), "{err}");

    // pathLen 0 on the last CA allows the leaf below it.
    let short = Pki::with(1, false, |r, p| {
        if r == Role::Intermediate(0) {
            p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        }
    });
    verify(&short, &short.sign(&short.builder())).unwrap();
    // A leaf issued by the root directly is a valid, if unusual, chain.
    let direct = Pki::with(0, false, |_, _| {});
    verify(&direct, &direct.sign(&direct.builder())).unwrap();
}

type Tweak = Box<dyn Fn(&mut rcgen::CertificateParams)>;

#[test]
fn key_usage_and_basic_constraints_are_enforced() {
    let cases: Vec<(Role, Tweak, &str)> = vec![
        (
            Role::Intermediate(1),
            Box::new(|p| p.key_usages = vec![KeyUsagePurpose::DigitalSignature]),
            "certificate 2 (CN=intermediate-1.eu-west-1.aws.nitro-enclaves): KeyUsage lacks keyCertSign",
        ),
        (
            Role::Intermediate(2),
            Box::new(|p| p.key_usages = vec![]),
            "KeyUsage missing (keyCertSign required for a CA)",
        ),
        (
            Role::Intermediate(0),
            Box::new(|p| p.is_ca = IsCa::ExplicitNoCa),
            "certificate 1 (CN=intermediate-0.eu-west-1.aws.nitro-enclaves): not a CA",
        ),
        (
            Role::Intermediate(0),
            Box::new(|p| p.is_ca = IsCa::NoCa),
            "not a CA",
        ),
        (
            Role::Leaf,
            Box::new(|p| p.key_usages = vec![KeyUsagePurpose::KeyAgreement]),
            "leaf KeyUsage lacks digitalSignature",
        ),
        (
            Role::Leaf,
            Box::new(|p| p.key_usages = vec![]),
            "leaf KeyUsage missing",
        ),
        (
            Role::Leaf,
            Box::new(|p| p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained)),
            "leaf is a CA",
        ),
        (
            Role::Intermediate(1),
            Box::new(|p| {
                let mut ext = rcgen::CustomExtension::from_oid_content(
                    &[1, 3, 6, 1, 4, 1, 99999, 1],
                    vec![0x05, 0x00],
                );
                ext.set_criticality(true);
                p.custom_extensions.push(ext);
            }),
            "unrecognised critical extension 1.3.6.1.4.1.99999.1",
        ),
    ];
    for (role, tweak, expected) in cases {
        let pki = Pki::with(3, false, |r, p| {
            if r == role {
                tweak(p);
            }
        });
        let err = error(&pki, &pki.sign(&pki.builder()));
        assert!(err.contains(expected), "{role:?}: {err}");
    }
    // A leaf with ExplicitNoCa (cA FALSE present) is fine.
    let pki = Pki::with(3, false, |r, p| {
        if r == Role::Leaf {
            p.is_ca = IsCa::ExplicitNoCa;
        }
    });
    verify(&pki, &pki.sign(&pki.builder())).unwrap();
}

#[test]
fn only_p384_keys_are_accepted() {
    let pki = Pki::with_keys(
        3,
        false,
        |_, _| {},
        |r| {
            KeyPair::generate_for(if r == Role::Intermediate(2) {
                &PKCS_ECDSA_P256_SHA256
            } else {
                &PKCS_ECDSA_P384_SHA384
            })
            .unwrap()
        },
    );
    let err = error(&pki, &pki.sign(&pki.builder()));
    // The leaf is then signed with ecdsa-with-SHA256 by a P-256 key.
    assert!(
        err.contains("certificate 3") || err.contains("certificate 4"),
        "{err}"
    );
    assert!(
        err.contains("not ecdsa-with-SHA384") || err.contains("not on P-384"),
        "{err}"
    );
}

#[test]
fn chain_order_and_names_must_link() {
    let pki = Pki::new();
    let mut cabundle = pki.cabundle();
    cabundle.swap(1, 2);
    let b = tessera_core::attestation::build::DocumentBuilder::new(
        "m",
        T_MS,
        pki.leaf_der.clone(),
        cabundle,
    )
    .pcr(0, vec![1; 48]);
    assert!(error(&pki, &pki.sign(&b)).contains(
        "certificate 1 (CN=intermediate-1.eu-west-1.aws.nitro-enclaves): issuer/subject mismatch"
    ));
    let mut cabundle = pki.cabundle();
    cabundle.remove(2);
    let b = tessera_core::attestation::build::DocumentBuilder::new(
        "m",
        T_MS,
        pki.leaf_der.clone(),
        cabundle,
    )
    .pcr(0, vec![1; 48]);
    assert!(error(&pki, &pki.sign(&b)).contains("certificate 2"));
    // Same names, different keys: the signature check catches what name chaining cannot.
    let other = Pki::new();
    let mut cabundle = pki.cabundle();
    cabundle[2] = other.cabundle()[2].clone();
    let b = tessera_core::attestation::build::DocumentBuilder::new(
        "m",
        T_MS,
        pki.leaf_der.clone(),
        cabundle,
    )
    .pcr(0, vec![1; 48]);
    assert!(matches!(
        verify(&pki, &pki.sign(&b)).unwrap_err(),
        AttestationError::CertificateSignature {
            index: 2,
            issuer: 1,
            ..
        }
    ));
    // A document signed by a key other than the leaf's.
    let doc = other.sign(&pki.builder());
    assert_eq!(verify(&pki, &doc).unwrap_err(), AttestationError::Signature);
}

// ---- policy ----

#[test]
fn policy_checks() {
    let pki = Pki::new();
    let doc = pki.sign(
        &pki.builder()
            .user_data(b"manifest hash".to_vec())
            .public_key(vec![4; 32])
            .nonce(vec![9; 8]),
    );
    let check = |policy: Policy, at| attestation::verify(&doc, &pki.anchor(), at, &policy);
    let good = Policy::new()
        .expect_pcr(0, vec![1; 48])
        .expect_pcr(4, vec![5; 48])
        .expect_user_data(b"manifest hash".to_vec())
        .expect_public_key(vec![4; 32])
        .expect_nonce(vec![9; 8])
        .max_age(std::time::Duration::from_mins(5));
    check(good.clone(), T + Duration::seconds(300)).unwrap();

    let e = check(good.clone(), T + Duration::seconds(301)).unwrap_err();
    assert_eq!(
        e,
        AttestationError::TooOld {
            age_seconds: 301,
            max_seconds: 300
        }
    );
    assert!(e.is_policy());
    assert!(matches!(
        check(good.clone(), T - Duration::seconds(1)).unwrap_err(),
        AttestationError::FromTheFuture { .. }
    ));
    let e = check(Policy::new().expect_pcr(0, vec![2; 48]), T).unwrap_err();
    assert!(e.to_string().starts_with("PCR0 is 010101"), "{e}");
    let e = check(Policy::new().expect_pcr(20, vec![2; 48]), T).unwrap_err();
    assert!(e.to_string().starts_with("PCR20 is absent"), "{e}");
    let e = check(Policy::new().expect_user_data(b"other".to_vec()), T).unwrap_err();
    assert!(
        e.to_string().starts_with("user_data is 6d616e6966657374"),
        "{e}"
    );
    assert!(
        check(Policy::new().expect_public_key(vec![5; 32]), T)
            .unwrap_err()
            .to_string()
            .starts_with("public_key is")
    );
    assert!(
        check(Policy::new().expect_nonce(vec![]), T)
            .unwrap_err()
            .to_string()
            .starts_with("nonce is")
    );

    let debug = pki.sign(&pki.builder().pcr(0, vec![0; 48]).user_data(Optional::Null));
    let e = attestation::verify(&debug, &pki.anchor(), T, &Policy::new()).unwrap_err();
    assert_eq!(e, AttestationError::DebugMode);
    assert!(
        attestation::verify(&debug, &pki.anchor(), T, &Policy::new().allow_debug())
            .unwrap()
            .is_debug()
    );
    // A policy failure never hides an invalid document.
    let mut broken = debug.clone();
    let n = broken.len();
    broken[n - 1] ^= 1;
    assert_eq!(
        attestation::verify(&broken, &pki.anchor(), T, &Policy::new()).unwrap_err(),
        AttestationError::Signature
    );
}

#[test]
fn trust_anchors_load_from_pem_and_der_and_refuse_non_roots() {
    let pki = Pki::new();
    let pem = format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        base64(&pki.root_der)
    );
    let from_pem = attestation::TrustAnchor::from_pem(pem.as_bytes()).unwrap();
    assert_eq!(from_pem.sha256(), pki.anchor().sha256());
    let err = attestation::TrustAnchor::from_der(&pki.leaf_der).unwrap_err();
    assert!(err.to_string().contains("not a CA"), "{err}");
    let err = attestation::TrustAnchor::from_der(&pki.intermediates_der[0]).unwrap_err();
    assert!(err.to_string().contains("not self-issued"), "{err}");
    assert!(attestation::TrustAnchor::from_pem(b"garbage").is_err());
    let two = format!("{pem}{pem}");
    assert!(
        attestation::TrustAnchor::from_pem(two.as_bytes())
            .unwrap_err()
            .to_string()
            .contains("more than one")
    );
}

fn base64(bytes: &[u8]) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |a, (i, &b)| a | (u32::from(b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
