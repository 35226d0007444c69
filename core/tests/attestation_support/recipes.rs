//! The generated attestation vectors named in `tests/vectors/nitro/MANIFEST.json`: documents
//! derived from a real AWS document by one deliberate change, and documents signed at test time
//! by a throwaway Nitro-shaped PKI ([`super::Pki`]) or by the dev NSM's PKI.
//!
//! Each recipe returns the document and the root it is judged against; the manifest says the
//! verdict. Both lists must name the same recipes, so a recipe without a stated verdict, or a
//! verdict without a recipe, fails the test.

use rcgen::{BasicConstraints, IsCa};
use tessera_core::attestation::TrustAnchor;
use tessera_core::dev_pki::DevPki;

use super::{Pki, Role, T, T_MS};

/// A document and the trust anchor it is verified against.
pub struct Generated {
    pub doc: Vec<u8>,
    pub anchor: TrustAnchor,
}

/// Every recipe's name, in manifest order.
pub const RECIPES: &[&str] = &[
    "derived_signature_bit_flipped",
    "derived_payload_byte_changed",
    "derived_truncated",
    "derived_protected_header_es256",
    "derived_signature_der_encoded",
    "derived_signature_of_another_document",
    "derived_trailing_byte",
    "derived_wrong_root",
    "derived_high_s_twin",
    "derived_unprotected_header_kid",
    "derived_tagged18",
    "synth_valid",
    "synth_valid_tagged18",
    "synth_valid_optional_fields_absent",
    "synth_valid_max_sizes_1024",
    "synth_valid_indefinite_map",
    "synth_valid_unknown_extra_field",
    "synth_bad_cabundle_empty",
    "synth_bad_chain_missing_intermediate",
    "synth_bad_chain_order_reversed",
    "synth_bad_digest_sha256",
    "synth_bad_duplicate_pcrs_key",
    "synth_bad_expired_leaf",
    "synth_bad_before_leaf_not_before",
    "synth_bad_leaf_is_ca",
    "synth_bad_missing_certificate",
    "synth_bad_module_id_empty",
    "synth_bad_pathlen_violation",
    "synth_bad_pcr_index_32",
    "synth_bad_pcr_key_text",
    "synth_bad_pcr_len_47",
    "synth_bad_pcrs_empty",
    "synth_bad_signed_by_wrong_key",
    "synth_bad_timestamp_zero",
    "synth_bad_user_data_1025",
    "dev_pki_document",
    "dev_pki_document_against_aws_root",
];

/// The parts of a `COSE_Sign1` as byte strings: protected header, unprotected header (raw CBOR),
/// payload, signature. Only what real NSM documents use: an untagged array with definite
/// byte-string lengths.
struct Sign1 {
    protected: Vec<u8>,
    unprotected: Vec<u8>,
    payload: Vec<u8>,
    signature: Vec<u8>,
}

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

fn bstr(b: &[u8]) -> Vec<u8> {
    [head(2, b.len() as u64), b.to_vec()].concat()
}

fn tstr(s: &str) -> Vec<u8> {
    [head(3, s.len() as u64), s.as_bytes().to_vec()].concat()
}

/// Reads a definite byte-string head at `at`: (data start, length).
fn read_bstr(doc: &[u8], at: usize) -> (usize, usize) {
    let b = doc[at];
    assert_eq!(b >> 5, 2, "byte string expected at {at}");
    match b & 0x1f {
        n @ 0..=23 => (at + 1, usize::from(n)),
        24 => (at + 2, usize::from(doc[at + 1])),
        25 => (
            at + 3,
            usize::from(u16::from_be_bytes([doc[at + 1], doc[at + 2]])),
        ),
        26 => (
            at + 5,
            u32::from_be_bytes(doc[at + 1..at + 5].try_into().unwrap()) as usize,
        ),
        other => panic!("unexpected length encoding {other}"),
    }
}

impl Sign1 {
    fn parse(doc: &[u8]) -> Self {
        assert_eq!(doc[0], 0x84, "an untagged COSE_Sign1");
        let (start, len) = read_bstr(doc, 1);
        let protected = doc[start..start + len].to_vec();
        let at = start + len;
        assert_eq!(doc[at], 0xa0, "an empty unprotected header");
        let unprotected = vec![0xa0];
        let (start, len) = read_bstr(doc, at + 1);
        let payload = doc[start..start + len].to_vec();
        let (start, len) = read_bstr(doc, start + len);
        let signature = doc[start..start + len].to_vec();
        assert_eq!(start + len, doc.len(), "nothing after the signature");
        Self {
            protected,
            unprotected,
            payload,
            signature,
        }
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = vec![0x84];
        out.extend(bstr(&self.protected));
        out.extend(&self.unprotected);
        out.extend(bstr(&self.payload));
        out.extend(bstr(&self.signature));
        out
    }
}

/// DER `INTEGER` of an unsigned big-endian number.
fn der_integer(n: &[u8]) -> Vec<u8> {
    let n = &n[n.iter().position(|b| *b != 0).unwrap_or(n.len() - 1)..];
    let mut v = if n[0] & 0x80 != 0 { vec![0] } else { vec![] };
    v.extend_from_slice(n);
    [vec![0x02, v.len() as u8], v].concat()
}

/// The order of the P-384 group (SEC 2, 2.5.1).
const P384_ORDER: [u8; 48] = [
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xc7, 0x63, 0x4d, 0x81, 0xf4, 0x37, 0x2d, 0xdf,
    0x58, 0x1a, 0x0d, 0xb2, 0x48, 0xb0, 0xa7, 0x7a, 0xec, 0xec, 0x19, 0x6a, 0xcc, 0xc5, 0x29, 0x73,
];

/// a - b for big-endian numbers of equal length with a >= b.
fn sub_be(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; a.len()];
    let mut borrow = 0i16;
    for i in (0..a.len()).rev() {
        let mut d = i16::from(a[i]) - i16::from(b[i]) - borrow;
        borrow = i16::from(d < 0);
        if d < 0 {
            d += 256;
        }
        out[i] = u8::try_from(d).unwrap();
    }
    assert_eq!(borrow, 0, "a >= b");
    out
}

fn derived(
    name: &str,
    base: &[u8],
    other: &[u8],
    aws: &TrustAnchor,
    test_pki: &Pki,
) -> Option<Generated> {
    let mut s = Sign1::parse(base);
    let anchor = aws.clone();
    let doc = match name {
        "derived_signature_bit_flipped" => {
            s.signature[10] ^= 0x01;
            s.encode()
        }
        "derived_payload_byte_changed" => {
            // One character of the module id, '0' <-> '1': still valid text, no longer signed.
            let at = s
                .payload
                .windows(4)
                .position(|w| w == b"i-0f")
                .expect("the module id")
                + 2;
            s.payload[at] ^= 0x01;
            s.encode()
        }
        "derived_truncated" => base[..base.len() - 10].to_vec(),
        "derived_protected_header_es256" => {
            s.protected = vec![0xa1, 0x01, 0x26];
            s.encode()
        }
        "derived_signature_der_encoded" => {
            let (r, sv) = s.signature.split_at(48);
            let body = [der_integer(r), der_integer(sv)].concat();
            s.signature = [vec![0x30, body.len() as u8], body].concat();
            s.encode()
        }
        "derived_signature_of_another_document" => {
            s.signature = Sign1::parse(other).signature;
            s.encode()
        }
        "derived_trailing_byte" => [base, &[0x00]].concat(),
        "derived_wrong_root" => {
            return Some(Generated {
                doc: base.to_vec(),
                anchor: test_pki.anchor(),
            });
        }
        "derived_high_s_twin" => {
            // (r, n - s) verifies exactly as (r, s) does under plain ECDSA.
            let twin = sub_be(&P384_ORDER, &s.signature[48..]);
            s.signature[48..].copy_from_slice(&twin);
            s.encode()
        }
        "derived_unprotected_header_kid" => {
            // {4 (kid): h'3131'}: outside the signature, and ignored.
            s.unprotected = vec![0xa1, 0x04, 0x42, 0x31, 0x31];
            s.encode()
        }
        "derived_tagged18" => [&[0xd2][..], base].concat(),
        _ => return None,
    };
    Some(Generated { doc, anchor })
}

/// A payload in the NSM's field order with `edit` applied to the list of (key, value) pairs,
/// signed by the test PKI's leaf. `indefinite` writes the map with an indefinite length.
fn hand_made(
    pki: &Pki,
    indefinite: bool,
    edit: impl FnOnce(&mut Vec<(Vec<u8>, Vec<u8>)>),
) -> Vec<u8> {
    let mut pcrs = head(5, 4);
    for i in 0..4u8 {
        pcrs.extend(head(0, u64::from(i)));
        pcrs.extend(bstr(&[i + 1; 48]));
    }
    let mut cabundle = head(4, pki.cabundle().len() as u64);
    for c in pki.cabundle() {
        cabundle.extend(bstr(&c));
    }
    let mut fields = vec![
        (
            tstr("module_id"),
            tstr("i-0123456789abcdef0-enc0123456789abcdef"),
        ),
        (tstr("digest"), tstr("SHA384")),
        (tstr("timestamp"), head(0, T_MS)),
        (tstr("pcrs"), pcrs),
        (tstr("certificate"), bstr(&pki.leaf_der)),
        (tstr("cabundle"), cabundle),
        (tstr("public_key"), vec![0xf6]),
        (tstr("user_data"), vec![0xf6]),
        (tstr("nonce"), vec![0xf6]),
    ];
    edit(&mut fields);
    let mut payload = if indefinite {
        vec![0xbf]
    } else {
        head(5, fields.len() as u64)
    };
    for (k, v) in fields {
        payload.extend(k);
        payload.extend(v);
    }
    if indefinite {
        payload.push(0xff);
    }
    pki.sign_payload(&payload)
}

fn synthetic(name: &str, pki: &Pki) -> Option<Generated> {
    use tessera_core::attestation::build::{DocumentBuilder, Optional};
    let own = |doc: Vec<u8>| {
        Some(Generated {
            doc,
            anchor: pki.anchor(),
        })
    };
    let with_pki = |other: Pki, edit: &dyn Fn(DocumentBuilder) -> DocumentBuilder| {
        let doc = other.sign(&edit(other.builder()));
        Some(Generated {
            anchor: other.anchor(),
            doc,
        })
    };
    let b = pki.builder();
    let with_cabundle = |cabundle: Vec<Vec<u8>>| {
        let mut b = DocumentBuilder::new(
            "i-0123456789abcdef0-enc0123456789abcdef",
            T_MS,
            pki.leaf_der.clone(),
            cabundle,
        );
        for i in 0..4u8 {
            b = b.pcr(i, vec![i + 1; 48]);
        }
        pki.sign(&b)
    };
    let ms = |d: time::Duration| u64::try_from((T + d).unix_timestamp()).unwrap() * 1000;
    match name {
        "synth_valid" => own(pki.sign(
            &b.user_data(b"tessera test vector".to_vec())
                .nonce(vec![1; 20]),
        )),
        "synth_valid_tagged18" => own(pki.sign(&b.tagged(true))),
        "synth_valid_optional_fields_absent" => own(pki.sign(
            &b.public_key(Optional::Absent)
                .user_data(Optional::Absent)
                .nonce(Optional::Absent),
        )),
        "synth_valid_max_sizes_1024" => own(pki.sign(
            &b.public_key(vec![4; 1024])
                .user_data(vec![5; 1024])
                .nonce(vec![6; 1024]),
        )),
        "synth_valid_indefinite_map" => own(hand_made(pki, true, |_| {})),
        "synth_valid_unknown_extra_field" => own(hand_made(pki, false, |f| {
            f.push((tstr("tessera_extra"), tstr("ignored")));
        })),
        "synth_bad_cabundle_empty" => own(with_cabundle(Vec::new())),
        "synth_bad_chain_missing_intermediate" => {
            let mut c = pki.cabundle();
            c.remove(2);
            own(with_cabundle(c))
        }
        "synth_bad_chain_order_reversed" => {
            let mut c = pki.cabundle();
            c.reverse();
            own(with_cabundle(c))
        }
        "synth_bad_digest_sha256" => own(pki.sign(&b.digest("SHA256"))),
        "synth_bad_duplicate_pcrs_key" => own(hand_made(pki, false, |f| {
            let pcrs = f.iter().find(|(k, _)| *k == tstr("pcrs")).unwrap().clone();
            f.insert(4, pcrs);
        })),
        "synth_bad_expired_leaf" => {
            let mut b = DocumentBuilder::new(
                "i-0123456789abcdef0-enc0123456789abcdef",
                ms(time::Duration::hours(4)),
                pki.leaf_der.clone(),
                pki.cabundle(),
            );
            b = b.pcr(0, vec![1; 48]);
            own(pki.sign(&b))
        }
        "synth_bad_before_leaf_not_before" => {
            let b = DocumentBuilder::new(
                "i-0123456789abcdef0-enc0123456789abcdef",
                ms(-time::Duration::hours(1)),
                pki.leaf_der.clone(),
                pki.cabundle(),
            )
            .pcr(0, vec![1; 48]);
            own(pki.sign(&b))
        }
        "synth_bad_leaf_is_ca" => with_pki(
            Pki::with(3, false, |r, p| {
                if r == Role::Leaf {
                    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
                }
            }),
            &|b| b,
        ),
        "synth_bad_missing_certificate" => own(hand_made(pki, false, |f| {
            f.retain(|(k, _)| *k != tstr("certificate"));
        })),
        "synth_bad_module_id_empty" => own(hand_made(pki, false, |f| {
            f[0].1 = tstr("");
        })),
        "synth_bad_pathlen_violation" => with_pki(
            Pki::with(3, false, |r, p| {
                if r == Role::Intermediate(0) {
                    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
                }
            }),
            &|b| b,
        ),
        "synth_bad_pcr_index_32" => own(pki.sign(&b.pcr(32, vec![0; 48]))),
        "synth_bad_pcr_key_text" => own(hand_made(pki, false, |f| {
            let mut pcrs = head(5, 1);
            pcrs.extend(tstr("0"));
            pcrs.extend(bstr(&[1; 48]));
            f[3].1 = pcrs;
        })),
        "synth_bad_pcr_len_47" => own(pki.sign(&b.pcr(5, vec![0; 47]))),
        "synth_bad_pcrs_empty" => own(hand_made(pki, false, |f| {
            f[3].1 = head(5, 0);
        })),
        "synth_bad_signed_by_wrong_key" => {
            let other = Pki::new();
            // The test PKI's chain, signed by another leaf's key.
            own(b.sign(&other.leaf_key).unwrap())
        }
        "synth_bad_timestamp_zero" => own(hand_made(pki, false, |f| {
            f[2].1 = head(0, 0);
        })),
        "synth_bad_user_data_1025" => own(pki.sign(&b.user_data(vec![0; 1025]))),
        _ => None,
    }
}

fn dev(name: &str, aws: &TrustAnchor) -> Option<Generated> {
    let dev = DevPki::generate(T).unwrap();
    let doc = dev
        .document(
            T_MS,
            &[(0, vec![7; 48]), (1, vec![8; 48])],
            None,
            None,
            None,
        )
        .unwrap();
    match name {
        "dev_pki_document" => Some(Generated {
            doc,
            anchor: dev.anchor(),
        }),
        "dev_pki_document_against_aws_root" => Some(Generated {
            doc,
            anchor: aws.clone(),
        }),
        _ => None,
    }
}

/// Builds the vector `name`. `base` and `other` are two real AWS documents; `aws` is the AWS
/// root; `pki` the throwaway Nitro-shaped PKI shared by the synthetic vectors.
///
/// # Panics
/// On a name no recipe has.
pub fn generate(name: &str, base: &[u8], other: &[u8], aws: &TrustAnchor, pki: &Pki) -> Generated {
    derived(name, base, other, aws, pki)
        .or_else(|| synthetic(name, pki))
        .or_else(|| dev(name, aws))
        .unwrap_or_else(|| panic!("no recipe for generated vector {name}"))
}

/// The committed synthetic vectors in `tests/vectors/nitro/synthetic/` (used by the `tessera
/// attest verify` golden tests, which need fixed files): a Nitro-shaped chain whose names say
/// NOT-Amazon, five certificates from root to leaf with the validity periods AWS uses, and a
/// document at [`T`] with six non-zero PCRs, `user_data` and a nonce. Returns the root (PEM) and
/// the document; the keys are fresh each time, so rewriting the files changes them.
pub fn committed_synthetic() -> (String, Vec<u8>) {
    use rcgen::{
        CertificateParams, DistinguishedName, DnType, DnValue, Issuer, KeyPair, KeyUsagePurpose,
        PKCS_ECDSA_P384_SHA384,
    };
    use time::Duration;
    let params = |cn: &str, ca: Option<Option<u8>>, from: Duration, to: Duration| {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name = DistinguishedName::new();
        p.distinguished_name.push(
            DnType::CountryName,
            DnValue::PrintableString("US".try_into().unwrap()),
        );
        p.distinguished_name
            .push(DnType::OrganizationName, "NOT-Amazon");
        p.distinguished_name
            .push(DnType::OrganizationalUnitName, "TEST");
        p.distinguished_name.push(DnType::CommonName, cn);
        p.not_before = T + from;
        p.not_after = T + to;
        if let Some(len) = ca {
            p.is_ca = IsCa::Ca(len.map_or(BasicConstraints::Unconstrained, |l| {
                BasicConstraints::Constrained(l)
            }));
            p.key_usages = vec![
                KeyUsagePurpose::KeyCertSign,
                KeyUsagePurpose::CrlSign,
                KeyUsagePurpose::DigitalSignature,
            ];
        } else {
            p.is_ca = IsCa::NoCa;
            p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        }
        p
    };
    let key = || KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384).unwrap();
    let root_params = params(
        "synthetic-root.nitro-enclaves",
        Some(None),
        Duration::days(-365),
        Duration::days(3650),
    );
    let root_key = key();
    let root = root_params.self_signed(&root_key).unwrap();
    let mut issuer = Issuer::new(root_params, root_key);
    let mut cabundle = vec![root.der().to_vec()];
    for (cn, len, from, to) in [
        (
            "i1.synthetic.nitro-enclaves",
            2,
            Duration::days(-5),
            Duration::days(15),
        ),
        (
            "i2.zonal.synthetic.nitro-enclaves",
            1,
            Duration::days(-1),
            Duration::days(5),
        ),
        (
            "i-0123456789abcdef0.synthetic.nitro-enclaves",
            0,
            Duration::hours(-6),
            Duration::hours(18),
        ),
    ] {
        let p = params(cn, Some(Some(len)), from, to);
        let k = key();
        cabundle.push(p.signed_by(&k, &issuer).unwrap().der().to_vec());
        issuer = Issuer::new(p, k);
    }
    let leaf_key = key();
    let leaf = params(
        "i-0123456789abcdef0-enc0123456789abcdef.synthetic",
        None,
        Duration::minutes(-1),
        Duration::hours(3),
    )
    .signed_by(&leaf_key, &issuer)
    .unwrap();
    let signing = aws_lc_rs::signature::EcdsaKeyPair::from_pkcs8(
        &aws_lc_rs::signature::ECDSA_P384_SHA384_FIXED_SIGNING,
        &leaf_key.serialize_der(),
    )
    .unwrap();
    let mut b = tessera_core::attestation::build::DocumentBuilder::new(
        "i-0123456789abcdef0-enc0123456789abcdef",
        T_MS,
        leaf.der().to_vec(),
        cabundle,
    )
    .user_data(b"synthetic user data".to_vec())
    .nonce(vec![1; 20]);
    for (i, hex_value) in COMMITTED_PCRS {
        b = b.pcr(i, hex::decode(hex_value).unwrap());
    }
    for i in 0..16u8 {
        if !COMMITTED_PCRS.iter().any(|(j, _)| *j == i) {
            b = b.pcr(i, vec![0; 48]);
        }
    }
    (root.pem(), b.sign(&signing).unwrap())
}

/// The non-zero PCRs of the committed synthetic document.
pub const COMMITTED_PCRS: [(u8, &str); 6] = [
    (
        0,
        "f9ef9e90faeaa081ecc89e9b42d9ae3cd66e614dbd6e291c26dcab57cf843f0da7aa6825174426a0ac5dfa566b718691",
    ),
    (
        1,
        "82a2cfa214294146a721ad48b3e7de920129c3aa41d5d022d443ada80b8593a9f8192a489bcf07eb820eb497698dbc15",
    ),
    (
        2,
        "ca31eca09bb3daca85dcd224ccd52dfe172e8a194337dd3b1cdb256a459c2e27038a6945ac39de66cad1b214153efaff",
    ),
    (
        3,
        "199be9e34e622681f09de229a86dc0d4647511e9a3479b157c942d9dcf360baaf4a59ef184218302139d30e519c01858",
    ),
    (
        4,
        "baa47e59f5ab7e026ffe0b85cf86e5a34494da6fb5a10e91eeb7ab839764a0d280a3ce5fd3dfc9c1225b75aa7e4820ca",
    ),
    (
        8,
        "7e81f92c8d99920e55e78a9257551b8c41e2f71b9ce8012de6c134e4bfe183b34fff3eae0c1b709bec887b8869e3b308",
    ),
];
