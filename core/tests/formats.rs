//! Canonical encodings: golden vectors for every signed or hashed object, and each decoder
//! rejection.

mod common;

use std::collections::BTreeMap;

use ciborium::value::Value;
use serde_bytes::ByteBuf;
use tessera_core::bytes::{ByteArray, Hash32};
use tessera_core::cbor::{self, CborError};
use tessera_core::device::{DeviceKind, KeyDevice, approve};
use tessera_core::keys::{Role, Signature};
use tessera_core::manifest::{Manifest, ManifestEnvelope, ManifestError};
use tessera_core::objects::{
    DescriptorKey, GenesisBody, GenesisOutput, GenesisRequest, GenesisShare, MemberDescriptor,
    OBJECT_VERSION, Patch, PatchEnvelope, SharePost, ShareSubmission,
};
use tessera_core::sign::Purpose;

/// Golden SHA-256 of each object's canonical encoding. A change here is a format change: bump
/// the version and update docs/formats.md.
const GOLDEN: &[(&str, &str)] = &[
    (
        "manifest",
        "63ae1dc8df61a4a15731f7dcdd7337fd6da68780c60861baab09fd91bdd7143d",
    ),
    (
        "envelope",
        "6ac8ec9a872a5fdf09a7a6d8b2f8a571f58f175bb20ff1c16d76f387529e61c8",
    ),
    (
        "descriptor",
        "79c7b1fc8a8d9fbe5c0eb4b00a74e45743be914f79a97d3e28aea36895d1f993",
    ),
    (
        "genesis_request",
        "a7bd6947c9902824ed7ebab520c44ea8293f4e76f539eaca585565de3154b563",
    ),
    (
        "genesis_output",
        "10cc60c5f9102da93e791ecbeef95a84b84521a67e19eeecba7a073493a6921b",
    ),
    (
        "patch",
        "662ddf5946284385dddf6cf827b9b823413d480e48029bf81abf09bbc600d969",
    ),
    (
        "share_submission",
        "3e59f48a4264a2964fc2b76997509bd349347668b77b5dffbccdbab77ae98e25",
    ),
];

/// Deterministic objects of every type. Signatures use RFC 6979 deterministic ECDSA, so they
/// are reproducible too.
fn objects() -> Vec<(&'static str, Vec<u8>)> {
    let mut devs = common::members();
    let manifest = common::manifest(&mut devs);
    let mh = manifest.hash();
    let approvals = devs[..3]
        .iter_mut()
        .map(|d| approve(d, Purpose::Manifest, &mh, "manifest").unwrap())
        .collect();
    let envelope = ManifestEnvelope {
        manifest: manifest.clone(),
        approvals,
    };
    let descriptor = MemberDescriptor {
        version: OBJECT_VERSION,
        alias: "alice".to_owned(),
        device: DeviceKind::Software,
        serial: None,
        keys: Role::ALL
            .iter()
            .map(|&role| DescriptorKey {
                role,
                public_key: devs[0].public_key(role).unwrap(),
                slot: None,
            })
            .collect(),
        created_at: "2026-11-21T00:00:00Z".to_owned(),
        attestation: None,
    };
    let request = GenesisRequest {
        version: OBJECT_VERSION,
        namespace: "payments-prod".to_owned(),
        share_set: manifest.share_set.as_member_set(),
        dr_recipient: None,
        manifest_set: None,
    };
    let genesis = GenesisOutput {
        body: GenesisBody {
            version: OBJECT_VERSION,
            namespace: "payments-prod".to_owned(),
            quorum_public_key: manifest.namespace.quorum_public_key,
            threshold: 3,
            shares: vec![GenesisShare {
                alias: "alice".to_owned(),
                share_key: devs[0].public_key(Role::Share).unwrap(),
                commitment: Hash32::sha256(b"c"),
                encrypted_share: ByteBuf::from(b"age-file".to_vec()),
            }],
            dr: None,
            manifest_set: None,
        },
        test_signature: Signature(ByteArray([1; 64])),
    };
    let patch = Patch {
        version: OBJECT_VERSION,
        namespace: "payments-prod".to_owned(),
        manifest_hash: mh,
        sequence: 1,
        settings: BTreeMap::from([("log_level".to_owned(), "info".to_owned())]),
    };
    let patch_env = PatchEnvelope {
        approvals: vec![approve(&mut devs[0], Purpose::Patch, &patch.hash(), "patch").unwrap()],
        patch,
    };
    let post = SharePost {
        version: OBJECT_VERSION,
        manifest_hash: mh,
        ephemeral_key: ByteArray([9; 32]),
        member: devs[1].public_key(Role::Share).unwrap(),
        encrypted_share_sha256: Hash32::sha256(b"age-file"),
    };
    let submission = ShareSubmission {
        receipt: approve(&mut devs[1], Purpose::SharePost, &post.hash(), "share").unwrap(),
        post,
        encrypted_share: ByteBuf::from(b"age-file".to_vec()),
    };
    vec![
        ("manifest", manifest.encode()),
        ("envelope", envelope.encode()),
        ("descriptor", cbor::encode(&descriptor)),
        ("genesis_request", cbor::encode(&request)),
        ("genesis_output", cbor::encode(&genesis)),
        ("patch", cbor::encode(&patch_env)),
        ("share_submission", cbor::encode(&submission)),
    ]
}

#[test]
fn golden_vectors() {
    let golden_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden");
    let mut mismatches = Vec::new();
    for (name, bytes) in objects() {
        let hash = Hash32::sha256(&bytes).to_hex();
        let path = format!("{golden_dir}/{name}.cbor.hex");
        let expected = std::fs::read_to_string(&path).unwrap_or_default();
        if std::env::var_os("TESSERA_BLESS").is_some() {
            std::fs::create_dir_all(golden_dir).unwrap();
            std::fs::write(&path, format!("{}\n", hex::encode(&bytes))).unwrap();
            continue;
        }
        if expected.trim() != hex::encode(&bytes) {
            mismatches.push(format!("{name}: encoding differs from {path}"));
        }
        let want = GOLDEN.iter().find(|(n, _)| *n == name).unwrap().1;
        if want != hash {
            mismatches.push(format!("{name}: sha256 {hash}, golden {want}"));
        }
    }
    assert!(mismatches.is_empty(), "{mismatches:#?}");
}

#[test]
fn every_object_round_trips_through_its_strict_decoder() {
    for (name, bytes) in objects() {
        let ok = match name {
            "manifest" => Manifest::decode(&bytes)
                .map(|m| m.encode())
                .map_err(|e| e.to_string()),
            "envelope" => ManifestEnvelope::decode(&bytes)
                .map(|e| e.encode())
                .map_err(|e| e.to_string()),
            "descriptor" => MemberDescriptor::decode(&bytes)
                .map(|d| cbor::encode(&d))
                .map_err(|e| e.to_string()),
            "genesis_request" => cbor::decode::<GenesisRequest>(&bytes, "genesis request")
                .map(|d| cbor::encode(&d))
                .map_err(|e| e.to_string()),
            "genesis_output" => GenesisOutput::decode(&bytes)
                .map(|d| cbor::encode(&d))
                .map_err(|e| e.to_string()),
            "patch" => cbor::decode::<PatchEnvelope>(&bytes, "patch")
                .map(|d| cbor::encode(&d))
                .map_err(|e| e.to_string()),
            "share_submission" => ShareSubmission::decode(&bytes)
                .map(|d| cbor::encode(&d))
                .map_err(|e| e.to_string()),
            _ => unreachable!(),
        };
        assert_eq!(ok.unwrap(), bytes, "{name}");
    }
}

fn manifest_value() -> (Vec<u8>, Value) {
    let mut devs = common::members();
    let bytes = common::manifest(&mut devs).encode();
    let v: Value = ciborium::from_reader(bytes.as_slice()).unwrap();
    (bytes, v)
}

fn encode_value(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::into_writer(v, &mut out).unwrap();
    out
}

fn top_map(v: &mut Value) -> &mut Vec<(Value, Value)> {
    match v {
        Value::Map(m) => m,
        _ => panic!("manifest is a map"),
    }
}

#[test]
fn rejects_trailing_bytes() {
    let (mut bytes, _) = manifest_value();
    bytes.push(0);
    let err = Manifest::decode(&bytes).unwrap_err();
    assert!(
        matches!(
            err,
            ManifestError::Encoding(CborError::TrailingData { extra: 1, .. })
        ),
        "{err}"
    );
}

#[test]
fn rejects_duplicate_map_keys() {
    let (_, mut v) = manifest_value();
    let m = top_map(&mut v);
    let first = m[0].clone();
    m.push(first);
    let err = Manifest::decode(&encode_value(&v)).unwrap_err().to_string();
    assert!(err.contains("duplicate field"), "{err}");
}

#[test]
fn rejects_unknown_fields() {
    let (_, mut v) = manifest_value();
    top_map(&mut v).push((Value::Text("extra".into()), Value::Integer(1.into())));
    let err = Manifest::decode(&encode_value(&v)).unwrap_err().to_string();
    assert!(err.contains("unknown field `extra`"), "{err}");
}

#[test]
fn rejects_missing_fields() {
    let (_, mut v) = manifest_value();
    top_map(&mut v).retain(|(k, _)| k != &Value::Text("pivot".into()));
    let err = Manifest::decode(&encode_value(&v)).unwrap_err().to_string();
    assert!(err.contains("missing field `pivot`"), "{err}");
}

#[test]
fn rejects_reordered_keys() {
    let (_, mut v) = manifest_value();
    top_map(&mut v).reverse();
    let err = Manifest::decode(&encode_value(&v)).unwrap_err();
    assert!(
        matches!(err, ManifestError::Encoding(CborError::NonCanonical { .. })),
        "{err}"
    );
}

#[test]
fn rejects_non_minimal_integers() {
    // version: 1 as a one-byte integer 0x18 0x01 instead of 0x01.
    let (bytes, _) = manifest_value();
    let key = b"\x67version\x01";
    let pos = bytes.windows(key.len()).position(|w| w == key).unwrap();
    let mut long = bytes[..pos + 8].to_vec();
    long.extend_from_slice(&[0x18, 0x01]);
    long.extend_from_slice(&bytes[pos + 9..]);
    let err = Manifest::decode(&long).unwrap_err();
    assert!(
        matches!(err, ManifestError::Encoding(CborError::NonCanonical { .. })),
        "{err}"
    );
}

#[test]
fn rejects_indefinite_length_encoding() {
    let (bytes, _) = manifest_value();
    // Top-level map of 7 entries (0xa7) rewritten as indefinite (0xbf ... 0xff).
    assert_eq!(bytes[0], 0xa7);
    let mut indef = vec![0xbf];
    indef.extend_from_slice(&bytes[1..]);
    indef.push(0xff);
    let err = Manifest::decode(&indef).unwrap_err();
    assert!(
        matches!(err, ManifestError::Encoding(CborError::NonCanonical { .. })),
        "{err}"
    );
}

#[test]
fn rejects_wrong_length_byte_strings_and_invalid_points() {
    let (_, mut v) = manifest_value();
    let ns = top_map(&mut v)
        .iter_mut()
        .find(|(k, _)| k == &Value::Text("namespace".into()))
        .unwrap();
    let Value::Map(ns) = &mut ns.1 else { panic!() };
    let qpk = ns
        .iter_mut()
        .find(|(k, _)| k == &Value::Text("quorum_public_key".into()))
        .unwrap();
    let Value::Map(qpk) = &mut qpk.1 else {
        panic!()
    };
    qpk[0].1 = Value::Bytes([&[0x05][..], &[2; 32]].concat());
    let not_a_point = encode_value(&v);
    let err = Manifest::decode(&not_a_point).unwrap_err().to_string();
    assert!(err.contains("not a valid P-256 public key"), "{err}");
    let short = not_a_point.len() - 1;
    let mut bad_len = not_a_point.clone();
    // Rewrite the 33-byte string header (0x58 0x21) as 32 bytes and drop one byte.
    let pos = bad_len.windows(2).position(|w| w == [0x58, 0x21]).unwrap();
    bad_len[pos + 1] = 0x20;
    bad_len.remove(pos + 2);
    assert_eq!(bad_len.len(), short);
    let err = Manifest::decode(&bad_len).unwrap_err().to_string();
    assert!(err.contains("expected 33 bytes"), "{err}");
}

#[test]
fn garbage_and_truncation_are_errors_not_panics() {
    let (bytes, _) = manifest_value();
    for cut in 0..bytes.len() {
        assert!(Manifest::decode(&bytes[..cut]).is_err());
    }
    for b in [&[][..], &[0xff], &[0x9f; 300], &[0xbf, 0xbf, 0xbf]] {
        assert!(Manifest::decode(b).is_err());
    }
}

type Mutation = Box<dyn Fn(&mut Manifest)>;

#[test]
fn validation_names_the_field() {
    let mut devs = common::members();
    let base = common::manifest(&mut devs);
    let cases: Vec<(Mutation, &str)> = vec![
        (
            Box::new(|m| m.manifest_set.threshold = 0),
            "manifest_set.threshold",
        ),
        (
            Box::new(|m| m.manifest_set.threshold = 6),
            "manifest_set.threshold",
        ),
        (
            Box::new(|m| m.patch_set.members.clear()),
            "patch_set.members",
        ),
        (
            Box::new(|m| m.share_set.members[1].alias = "alice".into()),
            "share_set.members[1].alias",
        ),
        (
            Box::new(|m| {
                let k = m.manifest_set.members[0].public_key;
                m.manifest_set.members[2].public_key = k;
            }),
            "manifest_set.members[2].public_key",
        ),
        (Box::new(|m| m.namespace.nonce = 0), "namespace.nonce"),
        (
            Box::new(|m| m.namespace.name = "bad name".into()),
            "namespace.name",
        ),
        (
            Box::new(|m| m.enclave.debug_allowed = true),
            "enclave.debug_allowed",
        ),
        (
            Box::new(|m| m.enclave.pcr0 = ByteArray([0; 48])),
            "enclave.pcr0",
        ),
        (Box::new(|m| m.version = 2), "version"),
        (
            Box::new(|m| {
                let c = m.share_set.members[0].commitment;
                m.share_set.members[3].commitment = c;
            }),
            "share_set.members[3].commitment",
        ),
    ];
    for (mutate, field) in cases {
        let mut m = base.clone();
        mutate(&mut m);
        let err = m.validate().unwrap_err().to_string();
        assert!(
            err.starts_with(field),
            "expected error on {field}, got {err}"
        );
        // The same refusal comes out of the decoder.
        assert!(Manifest::decode(&m.encode()).is_err());
    }
    base.validate().unwrap();
}

#[test]
fn descriptor_refuses_a_role_listed_twice() {
    let mut devs = common::members();
    let k = devs[0].public_key(Role::Share).unwrap();
    let d = MemberDescriptor {
        version: OBJECT_VERSION,
        alias: "alice".into(),
        device: DeviceKind::Software,
        serial: None,
        keys: vec![
            DescriptorKey {
                role: Role::Share,
                public_key: k,
                slot: None,
            },
            DescriptorKey {
                role: Role::Share,
                public_key: k,
                slot: None,
            },
        ],
        created_at: "2026-11-21T00:00:00Z".into(),
        attestation: None,
    };
    assert!(MemberDescriptor::decode(&cbor::encode(&d)).is_err());
}
