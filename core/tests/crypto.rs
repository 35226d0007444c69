//! Signatures, the quorum key, and shares as age files (X25519 and piv-p256).

mod common;

use age_core::format::FileKey;
use tessera_core::age_share::{self, DeviceIdentity, PivP256Recipient};
use tessera_core::bytes::Hash32;
use tessera_core::device::{KeyDevice, SoftwareKeyDevice, approve};
use tessera_core::keys::Role;
use tessera_core::quorum::{QuorumSeed, x25519_recipient, x25519_recipient_bytes};
use tessera_core::sign::{Purpose, check_threshold, signed_message};

#[test]
fn signed_message_layout() {
    let h = Hash32::sha256(b"object");
    let expected = Hash32::sha256(&[b"tessera/v1/manifest".as_slice(), &[0], &h.0].concat());
    assert_eq!(signed_message(Purpose::Manifest, &h), expected.0);
}

#[test]
fn a_signature_for_one_purpose_never_verifies_for_another() {
    let mut devs = common::members();
    let h = Hash32::sha256(b"object");
    let a = approve(&mut devs[0], Purpose::Manifest, &h, "test").unwrap();
    a.verify(Purpose::Manifest, &h).unwrap();
    // Reshard is signed by the same role but a different purpose string.
    let mut relabelled = a.clone();
    assert!(relabelled.verify(Purpose::Reshard, &h).is_err());
    // A patch approval cannot be made from a manifest signature by changing the role label.
    relabelled.role = Role::Patch;
    assert!(relabelled.verify(Purpose::Patch, &h).is_err());
    // Another object.
    assert!(
        a.verify(Purpose::Manifest, &Hash32::sha256(b"other"))
            .is_err()
    );
}

#[test]
fn threshold_counts_distinct_members_of_the_right_set_only() {
    let mut devs = common::members();
    let manifest = common::manifest(&mut devs);
    let h = manifest.hash();
    let good: Vec<_> = devs[..2]
        .iter_mut()
        .map(|d| approve(d, Purpose::Manifest, &h, "m").unwrap())
        .collect();
    // Two of three: not met; reports who is missing.
    let r = manifest.check_approvals(&good);
    assert!(!r.met());
    assert_eq!(r.approved, ["alice", "bob"]);
    assert_eq!(r.missing, ["carol", "dave", "erin"]);
    let err = r.require().unwrap_err().to_string();
    assert!(err.contains("2 of 3"), "{err}");

    // The same member twice counts once.
    let twice = vec![good[0].clone(), good[0].clone(), good[1].clone()];
    let r = manifest.check_approvals(&twice);
    assert_eq!(r.approved.len(), 2);
    assert!(r.rejected[0].contains("already counted"));

    // A non-member (outsider key) does not count.
    let mut outsider = SoftwareKeyDevice::from_seed("mallory", &[99; 32]);
    let mut with_outsider = good.clone();
    with_outsider.push(approve(&mut outsider, Purpose::Manifest, &h, "m").unwrap());
    let r = manifest.check_approvals(&with_outsider);
    assert!(!r.met());
    assert!(r.rejected[0].contains("not a member"));

    // A member's Patch key is not in the Manifest set.
    let mut with_patch_key = good.clone();
    with_patch_key.push(approve(&mut devs[2], Purpose::Patch, &h, "m").unwrap());
    assert!(!manifest.check_approvals(&with_patch_key).met());

    // A tampered signature does not count.
    let mut bad = approve(&mut devs[2], Purpose::Manifest, &h, "m").unwrap();
    bad.signature.0.0[10] ^= 1;
    let mut with_bad = good.clone();
    with_bad.push(bad);
    let r = manifest.check_approvals(&with_bad);
    assert!(!r.met());
    assert!(r.rejected[0].contains("carol"));

    // Three distinct members: met.
    let mut three = good;
    three.push(approve(&mut devs[4], Purpose::Manifest, &h, "m").unwrap());
    assert!(check_threshold(&manifest.manifest_set, Purpose::Manifest, &h, &three).met());
}

#[test]
fn quorum_key_derivation_is_deterministic_and_domain_separated() {
    let seed = QuorumSeed::from_bytes([0x42; 32]);
    let pk = seed.public_key();
    assert_eq!(pk, QuorumSeed::from_bytes([0x42; 32]).public_key());
    assert_ne!(pk, QuorumSeed::from_bytes([0x43; 32]).public_key());
    // The two derived keys do not share bytes with each other or the seed.
    assert_ne!(&pk.signing.compressed()[1..], &pk.encryption.0[..]);
    // Golden: changing the labels changes every deployed quorum key.
    assert_eq!(
        pk.signing.to_hex(),
        include_str!("golden/quorum_signing_0x42.hex").trim()
    );
    // The age identity decrypts what its published recipient encrypts.
    let recipient = x25519_recipient(&pk.encryption);
    assert_eq!(x25519_recipient_bytes(&recipient), pk.encryption);
    let ct = age_share::encrypt(b"hello", &[&recipient]).unwrap();
    let pt = age_share::decrypt(&ct, &seed.age_identity()).unwrap();
    assert_eq!(&pt[..], b"hello");
}

#[test]
fn piv_p256_recipient_string_round_trips() {
    let mut dev = SoftwareKeyDevice::from_seed("alice", &[1; 32]);
    let r = PivP256Recipient::new(dev.public_key(Role::Share).unwrap());
    let s = r.to_string();
    assert!(s.starts_with("age1yubikey1"), "{s}");
    assert_eq!(s.parse::<PivP256Recipient>().unwrap(), r);
    assert!(s.to_uppercase().parse::<PivP256Recipient>().is_err());
    assert!(
        s.replace("age1yubikey1", "age1")
            .parse::<PivP256Recipient>()
            .is_err()
    );
    let id = age_share::plugin_identity(5_437_251, 0x82, &r);
    assert!(id.starts_with("AGE-PLUGIN-YUBIKEY-1"), "{id}");
}

/// The stanza recomputed here with independent primitives (p256 ECDH, the `hkdf` and
/// `chacha20poly1305` crates) from a fixed ephemeral key must equal Tessera's byte for byte.
#[test]
fn piv_p256_stanza_matches_independent_computation() {
    use base64::{Engine, prelude::BASE64_STANDARD_NO_PAD};
    use chacha20poly1305::{ChaCha20Poly1305, KeyInit, aead::Aead};
    use p256::elliptic_curve::sec1::ToSec1Point;
    use sha2::{Digest, Sha256};

    let mut dev = SoftwareKeyDevice::from_seed("alice", &[1; 32]);
    let pk = dev.public_key(Role::Share).unwrap();
    let recipient = PivP256Recipient::new(pk);
    let esk = p256::NonZeroScalar::try_from(&[7u8; 32][..]).unwrap();
    let file_key = FileKey::new(Box::new([0x33; 16]));

    let stanza = recipient.stanza_with_ephemeral(&file_key, &esk);

    let epk = p256::PublicKey::from_secret_scalar(&esk).to_sec1_point(true);
    let shared = p256::ecdh::diffie_hellman(esk, pk.to_p256().as_affine());
    let salt = [epk.as_bytes(), pk.compressed()].concat();
    let hk = hkdf012::Hkdf::<sha2_010::Sha256>::new(Some(&salt), shared.raw_secret_bytes());
    let mut key = [0u8; 32];
    hk.expand(b"piv-p256", &mut key).unwrap();
    let body = ChaCha20Poly1305::new(&key.into())
        .encrypt(&[0u8; 12].into(), [0x33u8; 16].as_slice())
        .unwrap();
    let tag = &Sha256::digest(pk.compressed())[..4];

    assert_eq!(stanza.tag, "piv-p256");
    assert_eq!(
        stanza.args,
        [
            BASE64_STANDARD_NO_PAD.encode(tag),
            BASE64_STANDARD_NO_PAD.encode(epk.as_bytes())
        ]
    );
    assert_eq!(stanza.body, body);
}

#[test]
fn share_encrypted_to_age1yubikey_recipient_decrypts_through_software_device() {
    let mut dev = SoftwareKeyDevice::from_seed("alice", &[1; 32]);
    let recipient: PivP256Recipient = PivP256Recipient::new(dev.public_key(Role::Share).unwrap())
        .to_string()
        .parse()
        .unwrap();
    let ct = age_share::encrypt(&[5; 33], &[&recipient]).unwrap();
    let id = DeviceIdentity::new(&mut dev, Role::Share, "decrypt share").unwrap();
    assert_eq!(&id.decrypt(&ct).unwrap()[..], &[5; 33]);

    // Another member's key does not open it, and the error is coarse.
    let mut other = SoftwareKeyDevice::from_seed("bob", &[2; 32]);
    let id = DeviceIdentity::new(&mut other, Role::Share, "decrypt share").unwrap();
    assert!(id.decrypt(&ct).is_err());

    // A tampered file fails, without panicking.
    let mut dev = SoftwareKeyDevice::from_seed("alice", &[1; 32]);
    let id = DeviceIdentity::new(&mut dev, Role::Share, "decrypt share").unwrap();
    for i in (0..ct.len()).step_by(7) {
        let mut bad = ct.clone();
        bad[i] ^= 0x20;
        if let Ok(pt) = id.decrypt(&bad) {
            assert_eq!(&pt[..], &[5; 33], "a flip at {i} changed the plaintext");
        }
    }
    assert!(id.decrypt(&ct[..ct.len() - 1]).is_err());
    assert!(id.decrypt(&vec![0; age_share::MAX_SHARE_FILE + 1]).is_err());
}

#[test]
fn software_key_file_is_private_and_round_trips() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("alice.keys");
    let mut dev = SoftwareKeyDevice::generate("alice");
    dev.save(&path).unwrap();
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(dev.save(&path).is_err(), "never overwrites");
    let mut back = SoftwareKeyDevice::load(&path).unwrap();
    for role in Role::ALL {
        assert_eq!(
            back.public_key(role).unwrap(),
            dev.public_key(role).unwrap()
        );
    }
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = SoftwareKeyDevice::load(&path).unwrap_err().to_string();
    assert!(err.contains("readable by others"), "{err}");
    // Key bytes never appear in Debug output.
    assert!(!format!("{back:?}").contains("keys:"));
    let _ = back.info();
}

/// The header alone says whom a share is for: the right Share key, another one, or (an
/// X25519 stanza names nobody) unknown; bytes that are no age file are an error.
#[test]
fn a_share_file_header_names_its_recipient_without_any_key() {
    use age_share::{Addressed, addressed_to};
    let mut alice = SoftwareKeyDevice::from_seed("alice", &[1; 32]);
    let mut bob = SoftwareKeyDevice::from_seed("bob", &[2; 32]);
    let a = PivP256Recipient::new(alice.public_key(Role::Share).unwrap());
    let b = PivP256Recipient::new(bob.public_key(Role::Share).unwrap());
    let to_alice = age_share::encrypt(&[5; 33], &[&a]).unwrap();
    assert_eq!(addressed_to(&to_alice, &a).unwrap(), Addressed::To);
    assert_eq!(addressed_to(&to_alice, &b).unwrap(), Addressed::Elsewhere);
    let to_both = age_share::encrypt(&[5; 33], &[&a, &b]).unwrap();
    assert_eq!(addressed_to(&to_both, &b).unwrap(), Addressed::To);
    let seed = QuorumSeed::from_bytes([0x42; 32]);
    let x = x25519_recipient(&seed.public_key().encryption);
    let anonymous = age_share::encrypt(&[5; 33], &[&x]).unwrap();
    assert_eq!(addressed_to(&anonymous, &a).unwrap(), Addressed::Unknown);
    // Cut short, or not age at all: an error, never a verdict.
    assert!(addressed_to(&to_alice[..20], &a).is_err());
    assert!(addressed_to(b"hello", &a).is_err());
}
