//! The disaster-recovery wrap: made inside the genesis body, recovered only to the seed of that
//! genesis, refused when swapped, and absent from the bytes of a genesis without one.

mod common;

use std::str::FromStr;

use tessera_core::age_share::{DeviceIdentity, PivP256Recipient};
use tessera_core::cbor;
use tessera_core::device::{KeyDevice, SoftwareKeyDevice};
use tessera_core::dr::{self, DrError, DrRecipient};
use tessera_core::genesis::split_and_seal;
use tessera_core::keys::Role;
use tessera_core::objects::GenesisOutput;
use tessera_core::quorum::QuorumSeed;

fn genesis(seed: &QuorumSeed, dr: Option<&DrRecipient>) -> GenesisOutput {
    let devs = common::members();
    let set = SoftwareKeyDevice::member_set(&devs[..3], Role::Share, 2);
    split_and_seal(seed, "payments", &set, None, dr).unwrap()
}

#[test]
fn recovers_the_seed_with_the_right_x25519_identity_only() {
    let id = age::x25519::Identity::generate();
    let r = DrRecipient::X25519(id.to_public());
    let seed = QuorumSeed::generate();
    let out = genesis(&seed, Some(&r));
    assert_eq!(out.body.dr.as_ref().unwrap().recipient, r.to_string());
    // The wrap is inside what the test signature covers, and survives a round trip.
    out.verify_test_signature().unwrap();
    let decoded = GenesisOutput::decode(&cbor::encode(&out)).unwrap();
    assert_eq!(decoded, out);

    let recovered = dr::recover(&out, dr::x25519_decrypt(&id)).unwrap();
    assert_eq!(recovered.as_bytes(), seed.as_bytes());

    let other = age::x25519::Identity::generate();
    let err = dr::recover(&out, dr::x25519_decrypt(&other)).unwrap_err();
    assert!(matches!(err, DrError::Decrypt(_)), "{err}");
    // The message never carries key material.
    assert!(!format!("{err}{err:?}").contains(&hex::encode(seed.as_bytes())));
}

#[test]
fn recovers_with_a_piv_p256_dr_key_on_a_device() {
    let mut device = SoftwareKeyDevice::from_seed("dr", &[0x77; 32]);
    let r = DrRecipient::PivP256(PivP256Recipient::new(
        device.public_key(Role::Share).unwrap(),
    ));
    let parsed = DrRecipient::from_str(&r.to_string()).unwrap();
    assert_eq!(parsed.to_string(), r.to_string());
    let seed = QuorumSeed::generate();
    let out = genesis(&seed, Some(&r));
    let identity = DeviceIdentity::new(&mut device, Role::Share, "DR drill").unwrap();
    let recovered = dr::recover(&out, |c| identity.decrypt(c)).unwrap();
    assert_eq!(recovered.public_key(), out.body.quorum_public_key);
}

#[test]
fn a_swapped_wrap_is_refused() {
    let id = age::x25519::Identity::generate();
    let r = DrRecipient::X25519(id.to_public());
    let seed = QuorumSeed::generate();
    let mut out = genesis(&seed, Some(&r));
    // Another seed wrapped to the same DR key, put in place of the real wrap: the body no
    // longer matches the test signature.
    let other = dr::wrap(&QuorumSeed::generate(), &r).unwrap();
    out.body.dr = Some(other);
    assert_eq!(
        dr::recover(&out, dr::x25519_decrypt(&id)).unwrap_err(),
        DrError::TestSignature
    );
    // Even a forger who re-signs with another quorum key gets a seed that is not this
    // namespace's: it derives other quorum keys.
    let forged_seed = QuorumSeed::generate();
    let mut forged = genesis(&forged_seed, Some(&r));
    forged.body.quorum_public_key = seed.public_key();
    // (re-signing would need the real seed; without it the signature check refuses first)
    assert_eq!(
        dr::recover(&forged, dr::x25519_decrypt(&id)).unwrap_err(),
        DrError::TestSignature
    );
}

#[test]
fn the_seed_must_derive_the_published_quorum_key() {
    // A wrap of a seed whose keys differ from the body's, all signed consistently by the seed
    // of the body: only an insider holding both seeds could build it, and it is still refused.
    use p256::ecdsa::signature::Signer;
    let id = age::x25519::Identity::generate();
    let r = DrRecipient::X25519(id.to_public());
    let seed = QuorumSeed::generate();
    let mut out = genesis(&seed, Some(&r));
    out.body.dr = Some(dr::wrap(&QuorumSeed::generate(), &r).unwrap());
    let sig: p256::ecdsa::Signature = seed.signing_key().sign(&tessera_core::sign::signed_message(
        tessera_core::sign::Purpose::Genesis,
        &cbor::hash(&out.body),
    ));
    out.test_signature = tessera_core::keys::Signature::from_ecdsa(&sig);
    let err = dr::recover(&out, dr::x25519_decrypt(&id)).unwrap_err();
    assert!(matches!(err, DrError::Mismatch { .. }), "{err}");
}

#[test]
fn without_a_wrap_nothing_changes() {
    let seed = QuorumSeed::generate();
    let out = genesis(&seed, None);
    assert!(out.body.dr.is_none());
    let id = age::x25519::Identity::generate();
    assert_eq!(
        dr::recover(&out, dr::x25519_decrypt(&id)).unwrap_err(),
        DrError::NoWrap
    );
    // The field is omitted, not encoded as null: a null is a second encoding and refused.
    let bytes = cbor::encode(&out);
    let mut value: ciborium::Value = ciborium::from_reader(bytes.as_slice()).unwrap();
    let ciborium::Value::Map(top) = &mut value else {
        panic!()
    };
    let ciborium::Value::Map(body) = &mut top[0].1 else {
        panic!()
    };
    // Looked up as a map key: the random bytes of keys and signatures may hold "dr" anywhere.
    let dr_key = ciborium::Value::Text("dr".into());
    assert!(!body.iter().any(|(k, _)| *k == dr_key), "{body:?}");
    body.push((ciborium::Value::Text("dr".into()), ciborium::Value::Null));
    let mut with_null = Vec::new();
    ciborium::into_writer(&value, &mut with_null).unwrap();
    assert!(GenesisOutput::decode(&with_null).is_err());
}

#[test]
fn members_accept_only_the_agreed_dr_key() {
    let agreed = DrRecipient::X25519(age::x25519::Identity::generate().to_public());
    let rogue = DrRecipient::X25519(age::x25519::Identity::generate().to_public());
    let seed = QuorumSeed::generate();
    let with = genesis(&seed, Some(&agreed));
    let without = genesis(&seed, None);
    let a = agreed.to_string();
    dr::check_expected(&with, Some(&a)).unwrap();
    dr::check_expected(&without, None).unwrap();
    // A wrap nobody agreed to, to the agreed key's rival, or missing when expected: refused.
    assert!(dr::check_expected(&with, None).is_err());
    assert!(dr::check_expected(&with, Some(&rogue.to_string())).is_err());
    assert!(dr::check_expected(&without, Some(&a)).is_err());
}

#[test]
fn recipients_have_one_spelling() {
    let r = DrRecipient::X25519(age::x25519::Identity::generate().to_public()).to_string();
    assert!(DrRecipient::from_str(&r).is_ok());
    assert!(DrRecipient::from_str(&r.to_uppercase()).is_err());
    assert!(DrRecipient::from_str("age1yubikey1qqqq").is_err());
    assert!(DrRecipient::from_str("ssh-ed25519 AAAA").is_err());
    assert!(DrRecipient::from_str(&"a".repeat(1000)).is_err());
}

#[test]
fn a_restored_set_must_keep_namespace_and_key_and_be_signed_by_it() {
    let seed = QuorumSeed::generate();
    let original = genesis(&seed, None);
    let restored = genesis(&seed, None);
    dr::check_restored(&original, &restored).unwrap();
    let stranger = genesis(&QuorumSeed::generate(), None);
    assert!(dr::check_restored(&original, &stranger).is_err());
    let mut relabelled = stranger.clone();
    relabelled.body.quorum_public_key = original.body.quorum_public_key;
    assert!(dr::check_restored(&original, &relabelled).is_err());
}

#[test]
fn a_manifest_records_the_dr_key_and_refuses_a_garbled_one() {
    let mut devs = common::members();
    let mut m = common::manifest(&mut devs);
    let plain = cbor::encode(&m);
    let r = DrRecipient::X25519(age::x25519::Identity::generate().to_public()).to_string();
    m.namespace.dr_recipient = Some(r.clone());
    m.validate().unwrap();
    let with = cbor::encode(&m);
    assert_ne!(plain, with);
    assert_eq!(tessera_core::manifest::Manifest::decode(&with).unwrap(), m);
    m.namespace.dr_recipient = Some(r.to_uppercase());
    let err = m.validate().unwrap_err().to_string();
    assert!(err.contains("namespace.dr_recipient"), "{err}");
}
