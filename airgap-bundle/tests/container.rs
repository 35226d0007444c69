//! The bundle container: round trips, strictness, and damaged input.

use airgap_bundle::{Bundle, BundleError, BundleKind, Fingerprint, MAX_BUNDLE_BYTES, Metadata};
use proptest::prelude::*;
use serde::Serialize;
use sha2::{Digest, Sha256};

fn sample(kind: BundleKind) -> Bundle {
    let meta = Metadata {
        namespace: Some("payments".into()),
        member: Some("alice".into()),
        nonce: Some(42),
        file_name: (kind == BundleKind::File).then(|| "pcrs.json".into()),
    };
    Bundle::new(kind, meta, format!("{kind} payload").into_bytes()).unwrap()
}

fn cbor<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::into_writer(value, &mut out).unwrap();
    out
}

/// Builds a bundle by hand from a body value, so tests can make bodies the encoder never would.
fn wrap(version: u64, body: &[u8]) -> Vec<u8> {
    let checksum = Sha256::digest(body).to_vec();
    cbor(&(
        "tessera-bundle",
        version,
        serde_bytes::Bytes::new(body),
        serde_bytes::Bytes::new(&checksum),
    ))
}

fn body_map(entries: Vec<(&str, ciborium::Value)>) -> Vec<u8> {
    let map = ciborium::Value::Map(
        entries
            .into_iter()
            .map(|(k, v)| (ciborium::Value::Text(k.into()), v))
            .collect(),
    );
    cbor(&map)
}

fn meta_value(entries: Vec<(&str, ciborium::Value)>) -> ciborium::Value {
    ciborium::Value::Map(
        entries
            .into_iter()
            .map(|(k, v)| (ciborium::Value::Text(k.into()), v))
            .collect(),
    )
}

#[test]
fn every_kind_round_trips_byte_for_byte() {
    for kind in BundleKind::ALL {
        let bundle = sample(kind);
        let bytes = bundle.encode();
        let decoded = Bundle::decode(&bytes).unwrap();
        assert_eq!(decoded, bundle, "{kind}");
        assert_eq!(decoded.encode(), bytes, "{kind}");
        assert_eq!(decoded.kind(), kind);
        assert_eq!(kind.as_str().parse::<BundleKind>().unwrap(), kind);
    }
}

#[test]
fn bare_bundle_round_trips() {
    let bundle = Bundle::new(BundleKind::Approval, Metadata::default(), Vec::new()).unwrap();
    assert_eq!(Bundle::decode(&bundle.encode()).unwrap(), bundle);
}

#[test]
fn fingerprint_is_sha256_of_the_file_bytes() {
    let bundle = sample(BundleKind::Share);
    let bytes = bundle.encode();
    let digest = Sha256::digest(&bytes);
    assert_eq!(bundle.fingerprint().as_bytes(), &digest[..8]);
    assert_eq!(bundle.fingerprint(), Fingerprint::of(&bytes));
    let shown = bundle.fingerprint().to_string();
    assert_eq!(shown.len(), 19);
    assert_eq!(shown.replace(' ', ""), hex::encode(&digest[..8]));
    assert_eq!(bundle.summary().fingerprint, bundle.fingerprint());
}

#[test]
fn hand_built_canonical_body_is_accepted() {
    let body = body_map(vec![
        ("kind", ciborium::Value::Text("share".into())),
        (
            "meta",
            meta_value(vec![("nonce", ciborium::Value::Integer(3.into()))]),
        ),
        ("payload", ciborium::Value::Bytes(vec![1, 2])),
    ]);
    let decoded = Bundle::decode(&wrap(1, &body)).unwrap();
    assert_eq!(decoded.meta().nonce, Some(3));
}

#[test]
fn unknown_kind_is_named() {
    let body = body_map(vec![
        ("kind", ciborium::Value::Text("widget".into())),
        ("meta", meta_value(vec![])),
        ("payload", ciborium::Value::Bytes(vec![])),
    ]);
    assert_eq!(
        Bundle::decode(&wrap(1, &body)),
        Err(BundleError::UnknownKind("widget".into()))
    );
}

#[test]
fn unknown_version_is_reported_before_anything_else() {
    let body = sample(BundleKind::Share).encode();
    assert_eq!(
        Bundle::decode(&wrap(2, &body)),
        Err(BundleError::UnsupportedVersion(2))
    );
    // Even when the rest is something this version cannot parse.
    let mut future = cbor(&("tessera-bundle", 7u64));
    future[0] = 0x85;
    assert_eq!(
        Bundle::decode(&future),
        Err(BundleError::UnsupportedVersion(7))
    );
}

#[test]
fn wrong_checksum_is_detected() {
    let bytes = sample(BundleKind::Share).encode();
    // Flip a bit in the payload, which sits just before the 32-byte checksum and its header.
    let mut altered = bytes.clone();
    let i = bytes.len() - 40;
    altered[i] ^= 0x01;
    assert_eq!(Bundle::decode(&altered), Err(BundleError::ChecksumMismatch));
    // And in the checksum itself.
    let mut altered = bytes;
    let last = altered.len() - 1;
    altered[last] ^= 0x80;
    assert_eq!(Bundle::decode(&altered), Err(BundleError::ChecksumMismatch));
}

#[test]
fn every_truncation_is_an_error() {
    let bytes = sample(BundleKind::Request).encode();
    for n in 0..bytes.len() {
        let err = Bundle::decode(&bytes[..n]).unwrap_err();
        assert!(
            matches!(err, BundleError::Truncated | BundleError::NotABundle),
            "prefix {n}: {err}"
        );
    }
}

#[test]
fn trailing_bytes_are_rejected() {
    let mut bytes = sample(BundleKind::Share).encode();
    bytes.push(0);
    assert_eq!(
        Bundle::decode(&bytes),
        Err(BundleError::TrailingData("bundle"))
    );
}

#[test]
fn other_files_are_not_bundles() {
    for junk in [
        &b""[..],
        b"hello",
        b"\x84\x63abc\x01",
        b"\xa0",
        b"age-encryption.org/v1\n",
    ] {
        let err = Bundle::decode(junk).unwrap_err();
        assert!(
            matches!(err, BundleError::NotABundle | BundleError::Truncated),
            "{junk:?}: {err}"
        );
    }
}

#[test]
fn oversized_input_is_refused_before_parsing() {
    let big = vec![0u8; MAX_BUNDLE_BYTES + 1];
    assert!(matches!(
        Bundle::decode(&big),
        Err(BundleError::TooLarge { .. })
    ));
    assert!(matches!(
        Bundle::new(BundleKind::File, Metadata::default(), big),
        Err(BundleError::PayloadTooLarge { .. })
    ));
}

#[test]
fn non_canonical_bodies_are_rejected() {
    let ok_meta = || meta_value(vec![]);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "keys out of order",
            body_map(vec![
                ("meta", ok_meta()),
                ("kind", ciborium::Value::Text("share".into())),
                ("payload", ciborium::Value::Bytes(vec![])),
            ]),
        ),
        (
            "explicit null for an absent field",
            body_map(vec![
                ("kind", ciborium::Value::Text("share".into())),
                ("meta", meta_value(vec![("member", ciborium::Value::Null)])),
                ("payload", ciborium::Value::Bytes(vec![])),
            ]),
        ),
        (
            "payload as an array of integers",
            body_map(vec![
                ("kind", ciborium::Value::Text("share".into())),
                ("meta", ok_meta()),
                (
                    "payload",
                    ciborium::Value::Array(vec![ciborium::Value::Integer(1.into())]),
                ),
            ]),
        ),
        ("non-minimal integer", {
            let mut b = body_map(vec![
                ("kind", ciborium::Value::Text("share".into())),
                (
                    "meta",
                    meta_value(vec![("nonce", ciborium::Value::Integer(1.into()))]),
                ),
                ("payload", ciborium::Value::Bytes(vec![])),
            ]);
            // 0x01 -> 0x18 0x01
            let pos = b.windows(6).position(|w| w == b"\x65nonce").unwrap() + 6;
            assert_eq!(b[pos], 0x01);
            b.splice(pos..=pos, [0x18, 0x01]);
            b
        }),
    ];
    for (name, body) in cases {
        let err = Bundle::decode(&wrap(1, &body)).unwrap_err();
        assert!(
            matches!(
                err,
                BundleError::NonCanonical(_) | BundleError::Malformed(_)
            ),
            "{name}: {err}"
        );
    }
}

#[test]
fn unknown_and_missing_fields_are_rejected() {
    let unknown = body_map(vec![
        ("kind", ciborium::Value::Text("share".into())),
        ("meta", meta_value(vec![])),
        ("extra", ciborium::Value::Bool(true)),
        ("payload", ciborium::Value::Bytes(vec![])),
    ]);
    let unknown_meta = body_map(vec![
        ("kind", ciborium::Value::Text("share".into())),
        (
            "meta",
            meta_value(vec![("role", ciborium::Value::Text("x".into()))]),
        ),
        ("payload", ciborium::Value::Bytes(vec![])),
    ]);
    let missing = body_map(vec![
        ("kind", ciborium::Value::Text("share".into())),
        ("meta", meta_value(vec![])),
    ]);
    for body in [unknown, unknown_meta, missing] {
        let err = Bundle::decode(&wrap(1, &body)).unwrap_err();
        assert!(matches!(err, BundleError::Malformed(_)), "{err}");
    }
}

#[test]
fn metadata_is_checked() {
    let bad_names = ["", ".", "..", "a/b", "a\\b", "a\nb", &"x".repeat(256)];
    for name in bad_names {
        assert!(
            matches!(
                Bundle::file(name, vec![]),
                Err(BundleError::InvalidMetadata(_))
            ),
            "{name:?}"
        );
    }
    assert!(matches!(
        Bundle::new(BundleKind::File, Metadata::default(), vec![]),
        Err(BundleError::InvalidMetadata(_))
    ));
    let long_alias = Metadata {
        member: Some("a".repeat(65)),
        ..Metadata::default()
    };
    assert!(matches!(
        Bundle::new(BundleKind::Share, long_alias, vec![]),
        Err(BundleError::InvalidMetadata(_))
    ));
    // The same checks apply to decoded input.
    let body = body_map(vec![
        ("kind", ciborium::Value::Text("file".into())),
        (
            "meta",
            meta_value(vec![("file_name", ciborium::Value::Text("../x".into()))]),
        ),
        ("payload", ciborium::Value::Bytes(vec![])),
    ]);
    assert!(matches!(
        Bundle::decode(&wrap(1, &body)),
        Err(BundleError::InvalidMetadata(_))
    ));
}

fn arb_label() -> impl Strategy<Value = Option<String>> {
    proptest::option::of("[a-zA-Z0-9 ._-]{1,40}")
}

fn arb_bundle() -> impl Strategy<Value = Bundle> {
    (
        0..BundleKind::ALL.len(),
        arb_label(),
        arb_label(),
        proptest::option::of(any::<u64>()),
        proptest::option::of("[a-zA-Z0-9._-]{1,40}"),
        proptest::collection::vec(any::<u8>(), 0..600),
    )
        .prop_filter_map(
            "file needs a name",
            |(k, ns, member, nonce, file, payload)| {
                let kind = BundleKind::ALL[k];
                let file = file.filter(|f| f != "." && f != "..");
                let meta = Metadata {
                    namespace: ns,
                    member,
                    nonce,
                    file_name: file,
                };
                Bundle::new(kind, meta, payload).ok()
            },
        )
}

proptest! {
    #[test]
    fn round_trip_is_exact(bundle in arb_bundle()) {
        let bytes = bundle.encode();
        let decoded = Bundle::decode(&bytes).unwrap();
        prop_assert_eq!(decoded.encode(), bytes);
        prop_assert_eq!(decoded, bundle);
    }

    #[test]
    fn any_single_byte_change_is_caught(bundle in arb_bundle(), pos in any::<prop::sample::Index>(), bit in 0u8..8) {
        let mut bytes = bundle.encode();
        let i = pos.index(bytes.len());
        bytes[i] ^= 1 << bit;
        prop_assert!(Bundle::decode(&bytes).is_err());
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = Bundle::decode(&bytes);
    }
}
