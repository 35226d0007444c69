//! Namespace pins: a pin opens only under its owner's Manifest key, and any change to its bytes
//! (edited by hand, damaged, another member's) is refused.

use tessera_core::bytes::ByteArray;
use tessera_core::device::{KeyDevice, SoftwareKeyDevice};
use tessera_core::keys::Role;
use tessera_core::pin::{NamespacePin, PcrPolicy, PinError, PinLedger, open, seal};
use tessera_core::quorum::QuorumSeed;

fn pin_of(dev: &mut SoftwareKeyDevice) -> NamespacePin {
    let owner = dev.public_key(Role::Manifest).unwrap();
    let set = SoftwareKeyDevice::member_set(std::slice::from_ref(dev), Role::Manifest, 1);
    NamespacePin::new(
        "payments",
        owner,
        QuorumSeed::from_bytes([0x42; 32]).public_key(),
        set,
        ByteArray([9; 32]),
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

/// The ledger on the key device accepts only the newest pin it recorded: an older copy of the
/// member's own (validly signed) pin, a pin it never recorded, and a missing pin are refused.
#[test]
fn the_ledger_refuses_rolled_back_unrecorded_and_missing_pins() {
    let mut alice = SoftwareKeyDevice::from_seed("alice", &[1; 32]);
    let first = pin_of(&mut alice);
    let mut ledger = PinLedger::default();
    assert!(matches!(
        ledger.check(&first),
        Err(PinError::NotAnchored(_))
    ));
    assert!(ledger.missing("payments").is_none());
    ledger.record(&first).unwrap();
    ledger.check(&first).unwrap();

    let mut second = first.clone();
    second.sequence = 2;
    second.manifest_set.threshold = 1;
    second.pcr_policy = PcrPolicy::WaivedDev;
    ledger.record(&second).unwrap();
    ledger.check(&second).unwrap();
    assert!(matches!(
        ledger.check(&first),
        Err(PinError::RolledBack {
            found: 1,
            expected: 2,
            ..
        })
    ));
    // Same sequence, other contents: not the recorded pin.
    let mut fork = second.clone();
    fork.pcr_policy = PcrPolicy::Eif;
    assert!(matches!(
        ledger.check(&fork),
        Err(PinError::NotRecorded { .. })
    ));
    assert!(matches!(
        ledger.missing("payments"),
        Some(PinError::Missing { sequence: 2, .. })
    ));
    // The ledger never moves backwards, and it survives its own encoding.
    assert!(ledger.record(&first).is_err());
    let again = PinLedger::decode(Some(&ledger.encode())).unwrap();
    assert_eq!(again, ledger);
}

/// One quorum key, one namespace: the ledger refuses the same quorum key under a second name,
/// and a second quorum key under the same name.
#[test]
fn the_ledger_binds_a_quorum_key_to_one_namespace() {
    let mut alice = SoftwareKeyDevice::from_seed("alice", &[1; 32]);
    let pin = pin_of(&mut alice);
    let mut ledger = PinLedger::default();
    ledger.record(&pin).unwrap();
    let mut evil = pin.clone();
    evil.namespace = "evil2".into();
    let err = ledger.record(&evil).unwrap_err();
    assert!(
        err.to_string().contains("pinned under namespace payments"),
        "{err}"
    );
    assert_eq!(
        ledger.namespace_of(&pin.quorum_public_key),
        Some("payments")
    );
    let mut other = pin.clone();
    other.sequence = 5;
    other.quorum_public_key = QuorumSeed::from_bytes([0x43; 32]).public_key();
    assert!(ledger.record(&other).is_err());
}

#[test]
fn malformed_ledgers_are_refused() {
    assert_eq!(PinLedger::decode(None).unwrap(), PinLedger::default());
    for bad in [&b""[..], b"\xa0", &[0u8; 3000][..]] {
        assert!(matches!(
            PinLedger::decode(Some(bad)),
            Err(PinError::Ledger(_))
        ));
    }
    // Entries out of order (or twice) are refused: one entry per namespace.
    let mut alice = SoftwareKeyDevice::from_seed("alice", &[1; 32]);
    let mut ledger = PinLedger::default();
    ledger.record(&pin_of(&mut alice)).unwrap();
    let e = ledger.entries[0].clone();
    ledger.entries.push(e);
    assert!(PinLedger::decode(Some(&ledger.encode())).is_err());
}

/// A software device keeps its ledger beside its key file and reads back what it wrote.
#[test]
fn a_software_device_keeps_its_ledger_beside_its_key_file() {
    let dir = std::env::temp_dir().join(format!("tessera-ledger-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("alice.keys");
    SoftwareKeyDevice::generate("alice").save(&path).unwrap();
    let mut dev = SoftwareKeyDevice::load(&path).unwrap();
    assert_eq!(dev.read_pin_ledger().unwrap(), None);
    dev.write_pin_ledger(b"ledger", "test").unwrap();
    let mut again = SoftwareKeyDevice::load(&path).unwrap();
    assert_eq!(
        again.read_pin_ledger().unwrap().as_deref(),
        Some(&b"ledger"[..])
    );
    let _ = std::fs::remove_dir_all(&dir);
}
