//! `tessera genesis verify` refuses a genesis that an unexpected image ran, before any share is
//! decrypted: genesis sees the whole seed.

use std::process::Command;

use serde_bytes::ByteBuf;
use tessera_core::bytes::Hash32;
use tessera_core::cbor;
use tessera_core::dev_pki::DevPki;
use tessera_core::device::SoftwareKeyDevice;
use tessera_core::keys::Signature;
use tessera_core::objects::{GenesisBody, GenesisOutput, GenesisShare, OBJECT_VERSION};
use tessera_core::quorum::QuorumSeed;
use tessera_core::sign::{Purpose, signed_message};

fn pcrs_json(pcr0: u8) -> String {
    format!(
        "{{\"PCR0\": \"{}\", \"PCR1\": \"{}\", \"PCR2\": \"{}\"}}",
        hex::encode([pcr0; 48]),
        hex::encode([0xb1; 48]),
        hex::encode([0xb2; 48])
    )
}

#[test]
fn genesis_from_an_unexpected_image_is_refused_before_decryption() {
    use p256::ecdsa::signature::Signer;
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n);
    SoftwareKeyDevice::generate("alice")
        .save(&p("alice.keys"))
        .unwrap();

    let seed = QuorumSeed::from_bytes([7; 32]);
    let body = GenesisBody {
        version: OBJECT_VERSION,
        namespace: "payments".into(),
        quorum_public_key: seed.public_key(),
        threshold: 1,
        shares: vec![GenesisShare {
            alias: "someone-else".into(),
            share_key: SoftwareKeyDevice::member_set(
                &[SoftwareKeyDevice::from_seed("x", &[9; 32])],
                tessera_core::keys::Role::Share,
                1,
            )
            .members[0]
                .public_key,
            commitment: Hash32::sha256(b"c"),
            encrypted_share: ByteBuf::from(b"not used".to_vec()),
        }],
        dr: None,
        manifest_set: None,
    };
    let sig: p256::ecdsa::Signature = seed
        .signing_key()
        .sign(&signed_message(Purpose::Genesis, &cbor::hash(&body)));
    let output = GenesisOutput {
        body,
        test_signature: Signature::from_ecdsa(&sig),
    };
    std::fs::write(p("genesis-output.cbor"), cbor::encode(&output)).unwrap();

    let pki = DevPki::generate(time::OffsetDateTime::now_utc()).unwrap();
    std::fs::write(p("root.pem"), pki.root_pem()).unwrap();
    let now_ms = time::OffsetDateTime::now_utc()
        .unix_timestamp()
        .cast_unsigned()
        * 1000;
    let pcrs: Vec<(u8, Vec<u8>)> = [[0xb0; 48], [0xb1; 48], [0xb2; 48]]
        .iter()
        .enumerate()
        .map(|(i, v)| (i as u8, v.to_vec()))
        .collect();
    let doc = pki
        .document(now_ms, &pcrs, Some(&output.hash().0), None, None)
        .unwrap();
    std::fs::write(p("genesis-attestation.cbor"), doc).unwrap();

    let verify = |pcr0: u8| {
        std::fs::write(p("pcrs.json"), pcrs_json(pcr0)).unwrap();
        Command::new(env!("CARGO_BIN_EXE_tessera"))
            .args(["genesis", "verify"])
            .arg(p("genesis-output.cbor"))
            .arg("--attestation")
            .arg(p("genesis-attestation.cbor"))
            .arg("--pcrs")
            .arg(p("pcrs.json"))
            .arg("--root")
            .arg(p("root.pem"))
            .arg("--software")
            .arg(p("alice.keys"))
            .arg("--share-out")
            .arg(p("alice.share.age"))
            .env("TESSERA_TRANSCRIPT", p("t.jsonl"))
            .output()
            .unwrap()
    };

    // Another image: refused on PCR0, nothing stored.
    let bad = verify(0xee);
    let err = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(bad.status.code(), Some(1), "{err}");
    assert!(err.contains("PCR0"), "{err}");
    assert!(!p("alice.share.age").exists());

    // The expected image passes the attestation and reaches the share lookup.
    let good = verify(0xb0);
    let err = String::from_utf8_lossy(&good.stderr);
    assert!(
        String::from_utf8_lossy(&good.stdout).contains("genesis ran the expected image"),
        "{err}"
    );
    assert!(
        err.contains("no share in this genesis for your Share key"),
        "{err}"
    );
}
