//! Namespace pins: a pin opens only under its owner's Manifest key, and any change to its bytes
//! (edited by hand, damaged, another member's) is refused.

use tessera_core::device::{KeyDevice, SoftwareKeyDevice};
use tessera_core::keys::Role;
use tessera_core::pin::{NamespacePin, PcrPolicy, PinError, open, seal};
use tessera_core::quorum::QuorumSeed;

fn pin_of(dev: &mut SoftwareKeyDevice) -> NamespacePin {
    let owner = dev.public_key(Role::Manifest).unwrap();
    NamespacePin::new(
        "payments",
        owner,
        QuorumSeed::from_bytes([0x42; 32]).public_key(),
        PcrPolicy::Eif,
    )
}

#[test]
fn a_pin_opens_under_its_owner_only() {
    let mut alice = SoftwareKeyDevice::from_seed("alice", &[1; 32]);
    let mut bob = SoftwareKeyDevice::from_seed("bob", &[2; 32]);
    let alice_key = alice.public_key(Role::Manifest).unwrap();
    let bob_key = bob.public_key(Role::Manifest).unwrap();
    let pin = pin_of(&mut alice);
    let bytes = seal(&pin, &mut alice).unwrap();
    assert_eq!(open(&bytes, &alice_key).unwrap(), pin);
    assert!(matches!(
        open(&bytes, &bob_key),
        Err(PinError::NotYours { .. })
    ));
}

#[test]
fn every_flipped_bit_is_refused() {
    let mut alice = SoftwareKeyDevice::from_seed("alice", &[1; 32]);
    let key = alice.public_key(Role::Manifest).unwrap();
    let bytes = seal(&pin_of(&mut alice), &mut alice).unwrap();
    for i in 0..bytes.len() {
        for bit in [0x01u8, 0x80] {
            let mut b = bytes.clone();
            b[i] ^= bit;
            assert!(open(&b, &key).is_err(), "byte {i} bit {bit:#x} accepted");
        }
    }
    assert!(open(&bytes[..bytes.len() - 1], &key).is_err());
    assert!(open(b"", &key).is_err());
}

#[test]
fn a_pin_signed_with_another_purpose_is_refused() {
    use tessera_core::bytes::Hash32;
    use tessera_core::sign::Purpose;

    #[derive(serde::Serialize)]
    struct Signed {
        pin: serde_bytes::ByteBuf,
        approval: tessera_core::sign::Approval,
    }

    // An approval of the same bytes for another purpose (a manifest approval) does not make a pin.
    let mut alice = SoftwareKeyDevice::from_seed("alice", &[1; 32]);
    let key = alice.public_key(Role::Manifest).unwrap();
    let body = tessera_core::cbor::encode(&pin_of(&mut alice));
    let approval =
        tessera_core::device::approve(&mut alice, Purpose::Manifest, &Hash32::sha256(&body), "x")
            .unwrap();
    let forged = tessera_core::cbor::encode(&Signed {
        pin: serde_bytes::ByteBuf::from(body),
        approval,
    });
    assert!(matches!(open(&forged, &key), Err(PinError::BadSignature)));
}
