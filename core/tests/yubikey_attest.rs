//! YubiKey PIV attestation: a real YubiKey's attestation under Yubico's published root, and
//! Yubico-like chains built here for every refusal (key, root, time, policies, slot, serial,
//! missing), through the one decision function the ceremony uses.

use std::sync::LazyLock;

use serde_bytes::ByteBuf;
use tessera_core::cbor;
use tessera_core::device::{DeviceKind, KeyDevice, SoftwareKeyDevice};
use tessera_core::keys::{PublicKey, Role};
use tessera_core::objects::{
    DescriptorKey, MemberDescriptor, OBJECT_VERSION, PivAttestation, SlotCertificate,
};
use tessera_core::yubikey_attest::{
    Firmware, FormFactor, KeyAlgorithm, PinPolicy, PivAttestationError, TouchPolicy, YubicoTrust,
    verify_slot,
};
use tessera_core::yubikey_attest_fake::{FakeYubico, SlotSpec, shifted};
use tessera_core::yubikey_attest_policy::{
    AttestationPolicy, MemberVerdict, Reason, Refusal, check_member,
};
use time::OffsetDateTime;
use time::macros::datetime;

const AT: OffsetDateTime = datetime!(2026-11-29 12:00 UTC);
const SERIAL: u32 = 31_415_926;

fn pem_der(pem: &str) -> Vec<u8> {
    let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).expect("PEM");
    block.contents
}

// A YubiKey 5C FIPS (serial 25515137, firmware 5.4.3) attesting its P-384 key in slot 9c, as
// published in docker/tuf's 2024 root-signing ceremony (`ceremony/2024-04-09/keys/25515137/
// SlotF9Intermediate.pem`, `ceremony/2024-06-04/keys/25515137/Slot9CAttestation.pem`).
const REAL_F9: &str = include_str!("vectors/yubikey/25515137-f9.pem");
const REAL_9C: &str = include_str!("vectors/yubikey/25515137-9c.pem");

#[test]
fn a_real_yubikey_attestation_verifies_under_the_published_root() {
    let a = verify_slot(
        &pem_der(REAL_9C),
        &pem_der(REAL_F9),
        YubicoTrust::published(),
        AT,
    )
    .unwrap();
    assert_eq!(a.slot, 0x9c);
    assert_eq!(a.serial, 25_515_137);
    assert_eq!(a.firmware, Firmware(5, 4, 3));
    assert_eq!(a.pin_policy, PinPolicy::Always);
    assert_eq!(a.touch_policy, TouchPolicy::Never);
    assert_eq!(a.form_factor, Some(FormFactor(0x83)));
    assert_eq!(
        a.form_factor.unwrap().to_string(),
        "YubiKey USB-C keychain FIPS"
    );
    assert_eq!(a.key_algorithm, KeyAlgorithm::P384);
    assert_eq!(a.public_key, None, "a P-384 key is no Tessera member key");
    assert!(a.generated_on_device());
    assert_eq!(
        a.chain,
        [
            "YubiKey PIV Attestation 9c",
            "Yubico PIV Attestation",
            "Yubico PIV Root CA Serial 263751"
        ]
    );
    assert_eq!(
        hex::encode(a.root_sha256),
        "63ece914e54dd87915f34033c85af4c0696ba1512f8add66ced738331207b546"
    );
}

#[test]
fn a_real_attestation_outside_its_validity_is_refused() {
    let (slot, f9) = (pem_der(REAL_9C), pem_der(REAL_F9));
    let trust = YubicoTrust::published();
    let late = verify_slot(&slot, &f9, trust, datetime!(2052-04-18 00:00 UTC)).unwrap_err();
    assert!(
        matches!(late, PivAttestationError::Expired { .. }),
        "{late}"
    );
    let early = verify_slot(&slot, &f9, trust, datetime!(2015-01-01 00:00 UTC)).unwrap_err();
    assert!(
        matches!(early, PivAttestationError::NotYetValid { .. }),
        "{early}"
    );
}

#[test]
fn a_real_attestation_with_its_bytes_changed_is_refused() {
    let mut slot = pem_der(REAL_9C);
    // The last byte of the RSA signature.
    let last = slot.len() - 1;
    slot[last] ^= 1;
    let err = verify_slot(&slot, &pem_der(REAL_F9), YubicoTrust::published(), AT).unwrap_err();
    assert!(
        matches!(err, PivAttestationError::BadSignature { .. }),
        "{err}"
    );
    // The slot certificate presented as the device certificate: not its issuer.
    let err = verify_slot(
        &pem_der(REAL_9C),
        &pem_der(REAL_9C),
        YubicoTrust::published(),
        AT,
    )
    .unwrap_err();
    assert!(
        matches!(err, PivAttestationError::Constraint { .. }),
        "{err}"
    );
}

#[test]
fn the_published_roots_are_yubicos_and_pinned() {
    let trust = YubicoTrust::published();
    assert_eq!(
        trust.roots(),
        [
            (
                "Yubico PIV Root CA Serial 263751".to_owned(),
                "63ece914e54dd87915f34033c85af4c0696ba1512f8add66ced738331207b546".to_owned()
            ),
            (
                "Yubico Attestation Root 1".to_owned(),
                "62760c6a6ef91679f454c8902b80fd009825b3f25da90f1fbace2ec6586cd5a8".to_owned()
            ),
        ]
    );
    let names: Vec<String> = trust.intermediates().into_iter().map(|i| i.0).collect();
    assert_eq!(
        names,
        [
            "Yubico Attestation Intermediate A 1",
            "Yubico Attestation Intermediate B 1",
            "Yubico PIV Attestation A 1",
            "Yubico PIV Attestation B 1"
        ]
    );
    // Each root parses as a self-signed X.509 certificate with the published names.
    for (name, _) in trust.roots() {
        let der = trust.root_der(&name).unwrap();
        let (_, cert) =
            <x509_parser::certificate::X509Certificate as x509_parser::prelude::FromDer<
                '_,
                x509_parser::error::X509Error,
            >>::from_der(der)
            .unwrap();
        assert_eq!(cert.subject(), cert.issuer());
        assert!(cert.subject().to_string().contains(&name));
    }
}

/// One fake YubiKey holding a member's three role keys.
struct Member {
    dev: SoftwareKeyDevice,
}

const SLOTS: [(Role, u8); 3] = [
    (Role::Share, 0x82),
    (Role::Manifest, 0x9c),
    (Role::Patch, 0x83),
];

impl Member {
    fn new(alias: &str, seed: u8) -> Self {
        Self {
            dev: SoftwareKeyDevice::from_seed(alias, &[seed; 32]),
        }
    }

    fn key(&mut self, role: Role) -> PublicKey {
        self.dev.public_key(role).unwrap()
    }

    fn descriptor(&mut self, alias: &str, attestation: Option<PivAttestation>) -> MemberDescriptor {
        MemberDescriptor {
            version: OBJECT_VERSION,
            alias: alias.to_owned(),
            device: DeviceKind::Yubikey,
            serial: Some(SERIAL),
            keys: SLOTS
                .iter()
                .map(|&(role, slot)| DescriptorKey {
                    role,
                    public_key: self.key(role),
                    slot: Some(slot),
                })
                .collect(),
            created_at: "2026-11-29T12:00:00Z".to_owned(),
            attestation,
        }
    }

    /// The attestation a card holding these keys would give, with `tweak` applied to each
    /// slot's spec.
    fn attest(&mut self, pki: &FakeYubico, tweak: impl Fn(Role, &mut SlotSpec)) -> PivAttestation {
        PivAttestation {
            device_certificate: ByteBuf::from(pki.device_certificate().to_vec()),
            slots: SLOTS
                .iter()
                .map(|&(role, slot)| {
                    let mut spec = SlotSpec::new(slot, SERIAL);
                    tweak(role, &mut spec);
                    SlotCertificate {
                        role,
                        certificate: ByteBuf::from(pki.attest(&self.key(role), &spec).unwrap()),
                    }
                })
                .collect(),
        }
    }
}

static PKI: LazyLock<FakeYubico> =
    LazyLock::new(|| FakeYubico::generate("TEST Yubico PIV Root CA", false).unwrap());
static PKI_NEW: LazyLock<FakeYubico> =
    LazyLock::new(|| FakeYubico::generate("TEST Yubico Attestation Root 1", true).unwrap());

fn production() -> AttestationPolicy {
    AttestationPolicy::production()
}

fn refusal(d: &MemberDescriptor, policy: &AttestationPolicy) -> Reason {
    let Refusal { alias, reason } =
        *check_member(d, policy, &PKI.trust().unwrap(), AT).expect_err("refused");
    assert_eq!(alias, d.alias);
    reason
}

#[test]
fn a_valid_attestation_is_accepted_and_summarised() {
    for pki in [&*PKI, &*PKI_NEW] {
        let mut m = Member::new("alice", 1);
        let att = m.attest(pki, |_, _| {});
        let d = m.descriptor("alice", Some(att));
        let verdict = check_member(&d, &production(), &pki.trust().unwrap(), AT).unwrap();
        let MemberVerdict::Attested(a) = &verdict else {
            panic!("not attested")
        };
        assert_eq!(a.keys.len(), 3);
        assert_eq!(
            verdict.summary(),
            "YubiKey USB-C keychain, serial 31415926, firmware 5.7.1, generated on device; \
             share: PIN once, touch always; manifest: PIN once, touch always; patch: PIN once, touch always"
        );
        // Through the descriptor's own encoding, as it travels.
        let back = MemberDescriptor::decode(&cbor::encode(&d)).unwrap();
        assert_eq!(back, d);
    }
    let chain = &PKI_NEW.trust().unwrap();
    let mut m = Member::new("alice", 1);
    let att = m.attest(&PKI_NEW, |_, _| {});
    let a = verify_slot(
        &att.slots[0].certificate,
        &att.device_certificate,
        chain,
        AT,
    )
    .unwrap();
    assert_eq!(
        a.chain,
        [
            "YubiKey PIV Attestation 82",
            "TEST Yubico PIV Attestation",
            "TEST Yubico PIV Attestation B 1",
            "TEST Yubico Attestation Root 1"
        ]
    );
}

#[test]
fn a_missing_attestation_is_refused_when_required_and_shown_when_optional() {
    let mut m = Member::new("alice", 1);
    let d = m.descriptor("alice", None);
    assert_eq!(refusal(&d, &production()), Reason::Missing);
    let verdict = check_member(&d, &AttestationPolicy::dev(), &PKI.trust().unwrap(), AT).unwrap();
    assert_eq!(verdict, MemberVerdict::NotAttested);
    assert!(verdict.summary().starts_with("NOT ATTESTED"));
}

#[test]
fn a_descriptor_whose_keys_differ_from_the_attested_ones_is_refused() {
    // The coordinator swaps bob's keys into alice's attested descriptor.
    let mut alice = Member::new("alice", 1);
    let mut bob = Member::new("bob", 2);
    let att = alice.attest(&PKI, |_, _| {});
    let d = bob.descriptor("bob", Some(att));
    assert_eq!(
        refusal(&d, &production()),
        Reason::KeyMismatch { role: Role::Share }
    );
    // Only the Manifest key swapped.
    let att = alice.attest(&PKI, |_, _| {});
    let mut d = alice.descriptor("alice", Some(att));
    d.keys[1].public_key = bob.key(Role::Manifest);
    assert_eq!(
        refusal(&d, &production()),
        Reason::KeyMismatch {
            role: Role::Manifest
        }
    );
}

#[test]
fn a_chain_to_an_unknown_root_is_refused() {
    let mut m = Member::new("alice", 1);
    // Another PKI under another name: the issuer is unknown.
    let other = FakeYubico::generate("Evil PIV Root CA", false).unwrap();
    let att = m.attest(&other, |_, _| {});
    let d = m.descriptor("alice", Some(att));
    let reason = refusal(&d, &production());
    assert!(
        matches!(
            &reason,
            Reason::Invalid {
                error: PivAttestationError::UnknownIssuer { .. },
                ..
            }
        ),
        "{reason}"
    );
    // Another PKI claiming the trusted root's name: its signature does not verify.
    let twin = FakeYubico::generate("TEST Yubico PIV Root CA", false).unwrap();
    let att = m.attest(&twin, |_, _| {});
    let d = m.descriptor("alice", Some(att));
    let reason = refusal(&d, &production());
    assert!(
        matches!(
            &reason,
            Reason::Invalid {
                error: PivAttestationError::BadSignature { .. },
                ..
            }
        ),
        "{reason}"
    );
    // A test chain is never trusted by the published Yubico roots.
    let att = m.attest(&PKI, |_, _| {});
    let d = m.descriptor("alice", Some(att));
    let err = check_member(&d, &production(), YubicoTrust::published(), AT).unwrap_err();
    assert!(
        err.to_string()
            .contains("does not chain to a pinned Yubico"),
        "{err}"
    );
}

#[test]
fn the_device_certificate_of_another_yubikey_is_refused() {
    // Slot certificates from one card presented with another card's f9 certificate.
    let mut m = Member::new("alice", 1);
    let other_card = FakeYubico::generate("TEST Yubico PIV Root CA", false).unwrap();
    let mut att = m.attest(&PKI, |_, _| {});
    att.device_certificate = ByteBuf::from(other_card.device_certificate().to_vec());
    let reason = refusal(&m.descriptor("alice", Some(att)), &production());
    assert!(
        matches!(
            &reason,
            Reason::Invalid {
                error: PivAttestationError::BadSignature { .. },
                ..
            }
        ),
        "{reason}"
    );
}

#[test]
fn expired_and_not_yet_valid_certificates_are_refused() {
    let mut m = Member::new("alice", 1);
    let base = SlotSpec::new(0x82, SERIAL);
    let expired = shifted(&base, -(365 * 30));
    let att = m.attest(&PKI, |role, s| {
        if role == Role::Patch {
            s.not_before = expired.not_before;
            s.not_after = expired.not_after;
        }
    });
    let reason = refusal(&m.descriptor("alice", Some(att)), &production());
    assert!(
        matches!(
            &reason,
            Reason::Invalid {
                role: Role::Patch,
                error: PivAttestationError::Expired { .. }
            }
        ),
        "{reason}"
    );
    let att = m.attest(&PKI, |_, s| s.not_before = datetime!(2027-01-01 00:00 UTC));
    let reason = refusal(&m.descriptor("alice", Some(att)), &production());
    assert!(
        matches!(
            &reason,
            Reason::Invalid {
                error: PivAttestationError::NotYetValid { .. },
                ..
            }
        ),
        "{reason}"
    );
    // The same valid descriptor, judged after the device certificate expired.
    let att = m.attest(&PKI, |_, _| {});
    let d = m.descriptor("alice", Some(att));
    let err = check_member(
        &d,
        &production(),
        &PKI.trust().unwrap(),
        datetime!(2052-05-01 00:00 UTC),
    )
    .unwrap_err();
    assert!(err.to_string().contains("expired"), "{err}");
}

#[test]
fn policies_below_the_minimum_are_refused() {
    let mut m = Member::new("alice", 1);
    // PIN never on the Patch key.
    let att = m.attest(&PKI, |role, s| {
        if role == Role::Patch {
            s.pin_policy = 1;
        }
    });
    assert_eq!(
        refusal(&m.descriptor("alice", Some(att)), &production()),
        Reason::PinPolicy {
            role: Role::Patch,
            attested: PinPolicy::Never,
            minimum: PinPolicy::Once
        }
    );
    // Touch never on the Share key; touch never on the Manifest key is allowed.
    let att = m.attest(&PKI, |role, s| {
        if role == Role::Share {
            s.touch_policy = 1;
        }
    });
    assert_eq!(
        refusal(&m.descriptor("alice", Some(att)), &production()),
        Reason::TouchPolicy {
            role: Role::Share,
            attested: TouchPolicy::Never,
            minimum: TouchPolicy::Cached
        }
    );
    let att = m.attest(&PKI, |role, s| {
        if role == Role::Manifest {
            s.touch_policy = 1;
        }
        if role == Role::Share {
            s.touch_policy = 3;
        }
    });
    let d = m.descriptor("alice", Some(att));
    check_member(&d, &production(), &PKI.trust().unwrap(), AT).unwrap();
    // A policy the card did not state counts as nothing.
    let att = m.attest(&PKI, |_, s| s.pin_policy = 0);
    assert!(matches!(
        refusal(&m.descriptor("alice", Some(att)), &production()),
        Reason::PinPolicy {
            attested: PinPolicy::Default,
            ..
        }
    ));
    // Firmware below the minimum.
    let att = m.attest(&PKI, |_, s| s.firmware = Firmware(5, 4, 3));
    assert_eq!(
        refusal(&m.descriptor("alice", Some(att)), &production()),
        Reason::Firmware {
            attested: Firmware(5, 4, 3),
            minimum: Firmware(5, 7, 0)
        }
    );
    // The dev policy has no minimums, but what is attested must still verify.
    let att = m.attest(&PKI, |_, s| {
        s.firmware = Firmware(4, 3, 5);
        s.pin_policy = 1;
        s.touch_policy = 1;
    });
    let d = m.descriptor("alice", Some(att));
    check_member(&d, &AttestationPolicy::dev(), &PKI.trust().unwrap(), AT).unwrap();
}

#[test]
fn an_attestation_for_another_slot_or_serial_is_refused() {
    let mut m = Member::new("alice", 1);
    // The card attested the Share key in slot 85, the descriptor names 82.
    let att = m.attest(&PKI, |role, s| {
        if role == Role::Share {
            s.slot = 0x85;
        }
    });
    assert_eq!(
        refusal(&m.descriptor("alice", Some(att)), &production()),
        Reason::WrongSlot {
            role: Role::Share,
            descriptor: Some(0x82),
            attested: 0x85
        }
    );
    // Another YubiKey's serial.
    let att = m.attest(&PKI, |role, s| {
        if role == Role::Manifest {
            s.serial = SERIAL + 1;
        }
    });
    assert_eq!(
        refusal(&m.descriptor("alice", Some(att)), &production()),
        Reason::WrongSerial {
            role: Role::Manifest,
            descriptor: Some(SERIAL),
            attested: SERIAL + 1
        }
    );
    // The descriptor names no serial at all.
    let att = m.attest(&PKI, |_, _| {});
    let mut d = m.descriptor("alice", Some(att));
    d.serial = None;
    assert!(matches!(
        refusal(&d, &production()),
        Reason::WrongSerial {
            descriptor: None,
            ..
        }
    ));
}

#[test]
fn every_key_needs_exactly_one_certificate() {
    let mut m = Member::new("alice", 1);
    let mut att = m.attest(&PKI, |_, _| {});
    att.slots.remove(2);
    assert_eq!(
        refusal(&m.descriptor("alice", Some(att)), &production()),
        Reason::RoleNotAttested { role: Role::Patch }
    );
    let mut att = m.attest(&PKI, |_, _| {});
    let dup = att.slots[0].clone();
    att.slots.push(dup);
    assert_eq!(
        refusal(&m.descriptor("alice", Some(att)), &production()),
        Reason::UnexpectedRole { role: Role::Share }
    );
    // A certificate for a role the descriptor does not list.
    let att = m.attest(&PKI, |_, _| {});
    let mut d = m.descriptor("alice", Some(att));
    d.keys.remove(2);
    assert_eq!(
        refusal(&d, &production()),
        Reason::UnexpectedRole { role: Role::Patch }
    );
}

#[test]
fn malformed_certificates_are_refused_without_panicking() {
    let mut m = Member::new("alice", 1);
    let mut att = m.attest(&PKI, |_, _| {});
    att.slots[0].certificate = ByteBuf::from(vec![0x30, 0x82, 0xff]);
    assert!(matches!(
        refusal(&m.descriptor("alice", Some(att)), &production()),
        Reason::Invalid {
            error: PivAttestationError::Malformed { .. },
            ..
        }
    ));
    let mut att = m.attest(&PKI, |_, _| {});
    let mut der = att.slots[0].certificate.to_vec();
    der.push(0);
    att.slots[0].certificate = ByteBuf::from(der);
    assert!(matches!(
        refusal(&m.descriptor("alice", Some(att)), &production()),
        Reason::Invalid {
            error: PivAttestationError::Malformed { .. },
            ..
        }
    ));
    // A certificate without Yubico's extensions: not an attestation.
    let err = verify_slot(
        PKI.device_certificate(),
        PKI.device_certificate(),
        &PKI.trust().unwrap(),
        AT,
    )
    .unwrap_err();
    assert!(
        matches!(err, PivAttestationError::MissingExtension { .. }),
        "{err}"
    );
}

#[test]
fn descriptors_without_an_attestation_keep_their_bytes() {
    let mut m = Member::new("alice", 1);
    let d = m.descriptor("alice", None);
    let bytes = cbor::encode(&d);
    assert!(
        !bytes.windows(11).any(|w| w == b"attestation"),
        "an absent attestation is not encoded"
    );
    assert_eq!(MemberDescriptor::decode(&bytes).unwrap(), d);
}

#[test]
fn an_explicit_null_attestation_is_a_different_encoding_and_refused() {
    let mut m = Member::new("alice", 1);
    let d = m.descriptor("alice", None);
    let mut value: ciborium::Value = ciborium::from_reader(cbor::encode(&d).as_slice()).unwrap();
    let ciborium::Value::Map(entries) = &mut value else {
        panic!("a descriptor is a map")
    };
    entries.push((
        ciborium::Value::Text("attestation".into()),
        ciborium::Value::Null,
    ));
    let mut bytes = Vec::new();
    ciborium::into_writer(&value, &mut bytes).unwrap();
    assert!(MemberDescriptor::decode(&bytes).is_err());
}
