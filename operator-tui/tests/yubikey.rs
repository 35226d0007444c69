//! The YubiKey PIV backend against a PIV card through real pcscd: the virtual card in CI
//! (`scripts/with-virtual-yubikey.sh`), or a real YubiKey for the `#[ignore]`d hardware tests:
//!
//!     TESSERA_YUBIKEY_SERIAL=12345678 cargo test -p operator-tui --test yubikey -- --ignored --test-threads=1
//!
//! WARNING: every card test RESETS the card's PIV application first, destroying its PIV keys.

// "YubiKey" is a product name, not an item to link.
#![allow(clippy::doc_markdown)]

mod yubikey_support;

use operator_tui::piv::{
    FilePinSource, PinRequest, PinSource, PivDevice, SecretKind, SlotMap, connect,
};
use p256::elliptic_curve::Generate;
use tessera_core::age_share::{DeviceIdentity, PivP256Recipient};
use tessera_core::device::{DeviceError, KeyDevice};
use tessera_core::keys::Role;
use tessera_core::objects::MemberDescriptor;
use yubikey_support::{
    Card, NEW_PIN, NEW_PUK, PIN, PUK, hardware_card, ok, stderr, tessera, virtual_card,
};
use zeroize::Zeroizing;

fn software_ecdh(peer: &p256::NonZeroScalar, key: &tessera_core::keys::PublicKey) -> [u8; 32] {
    let shared = p256::ecdh::diffie_hellman(*peer, key.to_p256().as_affine());
    let mut out = [0u8; 32];
    out.copy_from_slice(shared.raw_secret_bytes());
    out
}

/// Provision, list, export and self-test through the CLI, then sign and ECDH through the
/// library: the whole member setup on one card.
fn provision_list_export_selftest(card: &Card, attests: bool) {
    let out = ok(&card.provision("share,manifest,patch", &["--touch", "never"]));
    let serial = card.serial.to_string();
    let keys = out["outcome"]["keys"].as_array().expect("keys");
    assert_eq!(keys.len(), 3, "{out}");
    let alg = out["outcome"]["management_key_algorithm"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(alg == "aes192" || alg == "3des", "{alg}");

    // list: every role present, the management key PIN-protected with its algorithm named.
    let list = ok(&tessera(&["key", "list", "--json"]));
    let yk = list["readers"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|r| {
            r["yubikey"]
                .as_object()
                .filter(|y| y["serial"] == card.serial)
        })
        .expect("our card is listed")
        .clone();
    assert_eq!(yk["management_key"]["storage"], "pin-protected", "{list}");
    assert_eq!(yk["management_key"]["algorithm"], alg.as_str(), "{list}");
    assert_eq!(yk["pin_retries"], 3);
    let listed = yk["slots"].as_array().unwrap();
    for key in keys {
        let slot = listed
            .iter()
            .find(|s| s["role"] == key["role"])
            .expect("role listed");
        assert_eq!(slot["fingerprint"], key["fingerprint"]);
        assert_eq!(slot["slot"], key["slot"]);
        assert_eq!(slot["pin_policy"], "once");
        assert_eq!(slot["touch_policy"], "never");
    }
    let share = listed.iter().find(|s| s["role"] == "share").unwrap();
    assert_eq!(share["role"], "share");
    assert_eq!(share["slot"], "82");
    assert!(
        share["age_recipient"]
            .as_str()
            .unwrap()
            .starts_with("age1yubikey1")
    );
    assert!(
        share["age_identity"]
            .as_str()
            .unwrap()
            .starts_with("AGE-PLUGIN-YUBIKEY-1")
    );
    let text = tessera(&["key", "list"]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("pin-protected"));

    // export: the descriptor holds the same keys and slots.
    let file = card.path("alice.member");
    let exported = ok(&tessera(&[
        "key",
        "export",
        "--serial",
        &serial,
        "--alias",
        "alice",
        "-o",
        file.to_str().unwrap(),
        "--json",
    ]));
    let d = MemberDescriptor::decode(&std::fs::read(&file).unwrap()).expect("descriptor");
    // The virtual card has no attestation key: the export works and says so. A YubiKey
    // attests every role key (checked in detail by hardware_attestation_end_to_end).
    assert_eq!(
        exported["attestation"]["included"], attests,
        "{}",
        exported["attestation"]
    );
    assert_eq!(d.attestation.is_some(), attests);
    if !attests {
        assert!(
            exported["attestation"]["detail"]
                .as_str()
                .unwrap()
                .starts_with("none: the card has no attestation certificate in slot f9"),
            "{exported}"
        );
    }
    assert_eq!(d.alias, "alice");
    assert_eq!(d.serial, Some(card.serial));
    assert_eq!(d.keys.len(), 3);
    let fps: Vec<String> = d.keys.iter().map(|k| k.public_key.fingerprint()).collect();
    for k in keys {
        assert!(fps.contains(&k["fingerprint"].as_str().unwrap().to_owned()));
    }
    assert_eq!(
        d.keys
            .iter()
            .find(|k| k.role == Role::Manifest)
            .unwrap()
            .slot,
        Some(0x9c)
    );
    // Never overwrites.
    let again = tessera(&[
        "key",
        "export",
        "--serial",
        &serial,
        "--alias",
        "alice",
        "-o",
        file.to_str().unwrap(),
    ]);
    assert_eq!(again.status.code(), Some(2), "{}", stderr(&again));

    // selftest through the CLI.
    let pin = card.secret_file("pin", PIN);
    let st = ok(&tessera(&[
        "key",
        "selftest",
        "--serial",
        &serial,
        "--pin-file",
        pin.to_str().unwrap(),
        "--json",
    ]));
    assert_eq!(st["ok"], true, "{st}");
    assert_eq!(st["results"].as_array().unwrap().len(), 3);

    // sign and verify, ECDH equal to the software result, through the library.
    let mut dev = card.device(PIN, SlotMap::default());
    for role in Role::ALL {
        let pk = dev.public_key(role).unwrap();
        let msg = format!("tessera test message for {role}");
        let sig = dev.sign(role, "test signature", msg.as_bytes()).unwrap();
        pk.verify(msg.as_bytes(), &sig)
            .expect("card signature verifies in software");
        let eph = p256::NonZeroScalar::try_generate_from_rng(&mut rand::rngs::SysRng).unwrap();
        let shared = dev
            .ecdh(
                role,
                "test ECDH",
                &p256::PublicKey::from_secret_scalar(&eph),
            )
            .unwrap();
        assert_eq!(shared.as_bytes(), &software_ecdh(&eph, &pk));
    }

    // A share at rest: encrypted in software to the Share key, decrypted on the card.
    let recipient = PivP256Recipient::new(dev.public_key(Role::Share).unwrap());
    let ct = tessera_core::age_share::encrypt(b"share bytes", &[&recipient]).unwrap();
    let id = DeviceIdentity::new(&mut dev, Role::Share, "decrypt test share").unwrap();
    assert_eq!(&id.decrypt(&ct).unwrap()[..], b"share bytes");
}

#[test]
fn virtual_provision_list_export_selftest_sign_ecdh() {
    if let Some(card) = virtual_card("virtual_provision_list_export_selftest_sign_ecdh") {
        provision_list_export_selftest(&card, false);
    }
}

#[test]
#[ignore = "RESETS the YubiKey named by TESSERA_YUBIKEY_SERIAL"]
fn hardware_provision_list_export_selftest_sign_ecdh() {
    if let Some(card) = hardware_card("hardware_provision_list_export_selftest_sign_ecdh") {
        provision_list_export_selftest(&card, true);
    }
}

fn provision_refuses_factory_defaults(card: &Card) {
    let serial = card.serial.to_string();
    let factory = card.secret_file("factory", "123456");
    let factory_puk = card.secret_file("factory-puk", "12345678");
    let good = card.secret_file("good", PIN);
    let good_puk = card.secret_file("good-puk", PUK);
    for (new_pin, new_puk) in [(&factory, &good_puk), (&good, &factory_puk)] {
        let out = tessera(&[
            "key",
            "provision",
            "--serial",
            &serial,
            "--roles",
            "share",
            "--pin-file",
            factory.to_str().unwrap(),
            "--new-pin-file",
            new_pin.to_str().unwrap(),
            "--new-puk-file",
            new_puk.to_str().unwrap(),
            "--yes",
        ]);
        assert_eq!(out.status.code(), Some(1));
        assert!(
            stderr(&out).contains("must not be the factory default"),
            "{}",
            stderr(&out)
        );
    }
    // Without --yes and without a terminal to confirm on, nothing happens.
    let out = tessera(&[
        "key",
        "provision",
        "--serial",
        &serial,
        "--roles",
        "share",
        "--pin-file",
        factory.to_str().unwrap(),
        "--new-pin-file",
        good.to_str().unwrap(),
        "--new-puk-file",
        good_puk.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("Provisioning plan"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("pass --yes"), "{}", stderr(&out));
    // The card is untouched: still the factory management key and no keys.
    let list = ok(&tessera(&["key", "list", "--json"]));
    let text = list.to_string();
    assert!(text.contains("factory-default"), "{text}");
    assert!(!text.contains("age1yubikey1"), "{text}");
}

#[test]
fn virtual_provision_refuses_factory_defaults_and_needs_confirmation() {
    if let Some(card) = virtual_card("virtual_provision_refuses_factory_defaults") {
        provision_refuses_factory_defaults(&card);
    }
}

fn two_roles_two_slots(card: &Card) {
    ok(&card.provision("share,manifest", &["--slots", "share=85,manifest=9d"]));
    let slots: SlotMap = "share=85,manifest=9d".parse().unwrap();
    let mut dev = card.device(PIN, slots);
    let share = dev.public_key(Role::Share).unwrap();
    let manifest = dev.public_key(Role::Manifest).unwrap();
    assert_ne!(share, manifest);
    assert!(matches!(
        dev.public_key(Role::Patch),
        Err(DeviceError::NoKey {
            role: Role::Patch,
            slot: Some(0x83)
        })
    ));
    let sig = dev.sign(Role::Manifest, "test", b"m").unwrap();
    manifest.verify(b"m", &sig).unwrap();
    assert!(
        share.verify(b"m", &sig).is_err(),
        "the roles are distinct keys"
    );
    // The default map finds nothing in 82/9c.
    let mut default = card.device(PIN, SlotMap::default());
    assert!(matches!(
        default.public_key(Role::Share),
        Err(DeviceError::NoKey { .. })
    ));
    // A second provisioning refuses to destroy keys without --force.
    let out = card.provision("share", &["--slots", "share=85,manifest=9d"]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn virtual_two_roles_in_two_slots() {
    if let Some(card) = virtual_card("virtual_two_roles_in_two_slots") {
        two_roles_two_slots(&card);
    }
}

/// A PIN source that answers from a list and records what it was asked.
struct Scripted {
    answers: Vec<&'static str>,
    asked: std::sync::Arc<std::sync::Mutex<Vec<PinRequest>>>,
}

impl PinSource for Scripted {
    fn pin(&mut self, request: &PinRequest) -> Result<Zeroizing<String>, DeviceError> {
        self.asked.lock().unwrap().push(request.clone());
        if self.answers.is_empty() {
            return Err(DeviceError::Cancelled);
        }
        Ok(Zeroizing::new(self.answers.remove(0).to_owned()))
    }
}

/// A held session asks for the PIN once across roles and operations; releasing it logs the
/// PIN out, so the next operation asks again; without holding, every operation asks.
fn held_session_asks_once(card: &Card) {
    ok(&card.provision("share,manifest", &[]));
    let asked = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut dev = PivDevice::open(
        card.serial,
        SlotMap::default(),
        Box::new(Scripted {
            answers: vec![PIN, PIN, PIN, PIN, PIN],
            asked: asked.clone(),
        }),
    )
    .unwrap();
    let manifest = dev.public_key(Role::Manifest).unwrap();
    let share = dev.public_key(Role::Share).unwrap();
    let peer = p256::NonZeroScalar::try_generate_from_rng(&mut rand::rngs::SysRng).unwrap();
    let peer_pub = p256::PublicKey::from_secret_scalar(&peer);
    dev.hold_session(true);
    let x = dev
        .ecdh(Role::Share, "[1/2] decrypt your share", &peer_pub)
        .unwrap();
    assert_eq!(x.as_bytes(), &software_ecdh(&peer, &share));
    let sig = dev
        .sign(Role::Share, "[2/2] sign the receipt", b"r")
        .unwrap();
    share.verify(b"r", &sig).unwrap();
    assert_eq!(asked.lock().unwrap().len(), 1, "one PIN for the held step");
    assert!(
        asked.lock().unwrap()[0]
            .purpose
            .contains("[1/2] decrypt your share")
    );
    // The virtual card follows the PIV standard for slot 9c ("PIN always"): it refuses the
    // held session, and the PIN is asked for again and the signature made.
    let sig = dev.sign(Role::Manifest, "sign the pin", b"p").unwrap();
    manifest.verify(b"p", &sig).unwrap();
    assert_eq!(asked.lock().unwrap().len(), 2);
    assert!(asked.lock().unwrap()[1].purpose.contains("sign the pin"));
    dev.hold_session(false);
    dev.sign(Role::Share, "after", b"a").unwrap();
    assert_eq!(asked.lock().unwrap().len(), 3, "released: asked again");
    dev.sign(Role::Share, "again", b"b").unwrap();
    assert_eq!(
        asked.lock().unwrap().len(),
        4,
        "not held: every operation asks"
    );
}

#[test]
fn virtual_held_session_asks_the_pin_once() {
    if let Some(card) = virtual_card("virtual_held_session_asks_the_pin_once") {
        held_session_asks_once(&card);
    }
}

fn wrong_pin_blocked_unblock_change(card: &Card) {
    ok(&card.provision("manifest", &[]));
    let serial = card.serial.to_string();
    let asked = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut dev = PivDevice::open(
        card.serial,
        SlotMap::default(),
        Box::new(Scripted {
            answers: vec!["999999", "999998", "999997", PIN],
            asked: asked.clone(),
        }),
    )
    .unwrap();
    // Wrong PIN: tries left reported, and the request said what the PIN was for.
    assert_eq!(
        dev.sign(Role::Manifest, "sign manifest approval 1a2b", b"x")
            .unwrap_err(),
        DeviceError::WrongPin { tries_left: 2 }
    );
    {
        let asked = asked.lock().unwrap();
        assert_eq!(asked[0].kind, SecretKind::Pin);
        assert_eq!(asked[0].tries_left, Some(3));
        assert!(asked[0].purpose.contains("sign manifest approval 1a2b"));
        assert!(asked[0].purpose.contains("manifest key (slot 9c)"));
    }
    assert_eq!(
        dev.sign(Role::Manifest, "t", b"x").unwrap_err(),
        DeviceError::WrongPin { tries_left: 1 }
    );
    assert_eq!(
        dev.sign(Role::Manifest, "t", b"x").unwrap_err(),
        DeviceError::PinBlocked
    );
    // Blocked: not even asked for a PIN any more.
    assert_eq!(
        dev.sign(Role::Manifest, "t", b"x").unwrap_err(),
        DeviceError::PinBlocked
    );
    assert_eq!(asked.lock().unwrap().len(), 3);

    // The CLI says so, with the hint.
    let pin = card.secret_file("pin", PIN);
    let out = tessera(&[
        "key",
        "selftest",
        "--serial",
        &serial,
        "--pin-file",
        pin.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("PIN is blocked"), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("tessera key unblock-pin"),
        "{}",
        stderr(&out)
    );

    // Wrong PUK reports its own tries; the right one unblocks with a new PIN.
    let bad_puk = card.secret_file("bad-puk", "11112222");
    let puk = card.secret_file("puk", PUK);
    let new_pin = card.secret_file("new-pin", NEW_PIN);
    let out = tessera(&[
        "key",
        "unblock-pin",
        "--serial",
        &serial,
        "--puk-file",
        bad_puk.to_str().unwrap(),
        "--new-pin-file",
        new_pin.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("wrong PUK (2 tries left)"),
        "{}",
        stderr(&out)
    );
    ok(&tessera(&[
        "key",
        "unblock-pin",
        "--serial",
        &serial,
        "--puk-file",
        puk.to_str().unwrap(),
        "--new-pin-file",
        new_pin.to_str().unwrap(),
        "--json",
    ]));
    let mut dev = card.device(NEW_PIN, SlotMap::default());
    let pk = dev.public_key(Role::Manifest).unwrap();
    pk.verify(b"y", &dev.sign(Role::Manifest, "t", b"y").unwrap())
        .unwrap();

    // change-pin: wrong current PIN reports tries; then the old PIN stops working.
    let wrong = card.secret_file("wrong", "000111");
    let newer = card.secret_file("newer", PIN);
    let out = tessera(&[
        "key",
        "change-pin",
        "--serial",
        &serial,
        "--pin-file",
        wrong.to_str().unwrap(),
        "--new-pin-file",
        newer.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("wrong PIN (2 tries left)"),
        "{}",
        stderr(&out)
    );
    ok(&tessera(&[
        "key",
        "change-pin",
        "--serial",
        &serial,
        "--pin-file",
        new_pin.to_str().unwrap(),
        "--new-pin-file",
        newer.to_str().unwrap(),
        "--json",
    ]));
    let mut old = card.device(NEW_PIN, SlotMap::default());
    assert!(matches!(
        old.sign(Role::Manifest, "t", b"z"),
        Err(DeviceError::WrongPin { .. })
    ));
    let mut dev = card.device(PIN, SlotMap::default());
    dev.sign(Role::Manifest, "t", b"z").unwrap();

    // change-puk, and the factory value is refused.
    let factory_puk = card.secret_file("factory-puk", "12345678");
    let new_puk = card.secret_file("new-puk", NEW_PUK);
    let out = tessera(&[
        "key",
        "change-puk",
        "--serial",
        &serial,
        "--puk-file",
        puk.to_str().unwrap(),
        "--new-puk-file",
        factory_puk.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    ok(&tessera(&[
        "key",
        "change-puk",
        "--serial",
        &serial,
        "--puk-file",
        puk.to_str().unwrap(),
        "--new-puk-file",
        new_puk.to_str().unwrap(),
        "--json",
    ]));
    let mut yk = connect(card.serial).unwrap();
    yk.change_puk(NEW_PUK.as_bytes(), PUK.as_bytes())
        .expect("the new PUK is set");
}

#[test]
fn virtual_wrong_pin_blocked_unblock_and_change() {
    if let Some(card) = virtual_card("virtual_wrong_pin_blocked_unblock_and_change") {
        wrong_pin_blocked_unblock_change(&card);
    }
}

#[test]
#[ignore = "RESETS the YubiKey named by TESSERA_YUBIKEY_SERIAL"]
fn hardware_wrong_pin_blocked_unblock_and_change() {
    if let Some(card) = hardware_card("hardware_wrong_pin_blocked_unblock_and_change") {
        wrong_pin_blocked_unblock_change(&card);
    }
}

#[test]
fn virtual_unknown_serial_and_empty_card() {
    let Some(card) = virtual_card("virtual_unknown_serial_and_empty_card") else {
        return;
    };
    let out = tessera(&["key", "selftest", "--serial", "1", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no YubiKey with serial 1 is connected"),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("tessera key list"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        PivDevice::open(1, SlotMap::default(), Box::new(FilePinSource::default())).unwrap_err(),
        DeviceError::NotFound { serial: 1 }
    );
    // A factory-fresh card: list warns, selftest says to provision.
    let list = tessera(&["key", "list"]);
    assert!(String::from_utf8_lossy(&list.stdout).contains("NOT PROVISIONED"));
    let out = tessera(&["key", "selftest", "--serial", &card.serial.to_string()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("tessera key provision"),
        "{}",
        stderr(&out)
    );
}

/// A real YubiKey end to end: provision with the production policies (PIN once, touch cached),
/// export, and the descriptor's attestation verifies under Yubico's published roots with every
/// key, slot and the serial matching; then the same descriptor with one key swapped is refused.
fn attestation_end_to_end(card: &Card) {
    use tessera_core::yubikey_attest::{PinPolicy, TouchPolicy, YubicoTrust};
    use tessera_core::yubikey_attest_policy::{AttestationPolicy, MemberVerdict, check_member};
    ok(&card.provision("share,manifest,patch", &["--touch", "cached"]));
    let file = card.path("alice.member");
    let exported = ok(&tessera(&[
        "key",
        "export",
        "--serial",
        &card.serial.to_string(),
        "--alias",
        "alice",
        "-o",
        file.to_str().unwrap(),
        "--json",
    ]));
    assert_eq!(exported["attestation"]["included"], true, "{exported}");
    let d = MemberDescriptor::decode(&std::fs::read(&file).unwrap()).expect("descriptor");
    // Whatever the key's firmware: the policy's other minimums, at the time of the test.
    let policy = AttestationPolicy {
        min_firmware: None,
        ..AttestationPolicy::production()
    };
    let now = time::OffsetDateTime::now_utc();
    let verdict = check_member(&d, &policy, YubicoTrust::published(), now).expect("attested");
    let MemberVerdict::Attested(a) = &verdict else {
        panic!("not attested: {verdict:?}")
    };
    eprintln!("alice: {}", verdict.summary());
    assert_eq!(a.keys.len(), 3);
    for (role, slot) in &a.keys {
        assert_eq!(slot.serial, card.serial);
        assert_eq!(slot.pin_policy, PinPolicy::Once, "{role}");
        assert_eq!(slot.touch_policy, TouchPolicy::Cached, "{role}");
    }
    let mut swapped = d.clone();
    swapped.keys.swap(0, 1);
    let roles: Vec<Role> = d.keys.iter().map(|k| k.role).collect();
    swapped.keys[0].role = roles[0];
    swapped.keys[1].role = roles[1];
    assert!(check_member(&swapped, &policy, YubicoTrust::published(), now).is_err());
}

#[test]
#[ignore = "RESETS the YubiKey named by TESSERA_YUBIKEY_SERIAL; touch it when it blinks"]
fn hardware_attestation_end_to_end() {
    if let Some(card) = hardware_card("hardware_attestation_end_to_end") {
        attestation_end_to_end(&card);
    }
}

/// The pin ledger lives in the card's slot-95 data object: empty on a fresh card, written with
/// the PIN-protected management key when a pin is saved, read back without a PIN by a new
/// session; a pin file deleted afterwards is refused by what the card remembers.
fn pin_ledger_on_the_card(card: &Card) {
    use operator_tui::member::pin::{NamespacePin, PcrPolicy, PinError, PinStore, ledger_of};
    ok(&card.provision("share,manifest", &[]));
    let open = || {
        PivDevice::open(
            card.serial,
            SlotMap::default(),
            Box::new(Scripted {
                answers: vec![PIN; 8],
                asked: std::sync::Arc::default(),
            }),
        )
        .unwrap()
    };
    let mut dev = open();
    assert!(ledger_of(&mut dev).unwrap().entries.is_empty());
    let owner = dev.public_key(Role::Manifest).unwrap();
    let set = tessera_core::manifest::MemberSet {
        threshold: 1,
        members: vec![tessera_core::manifest::Member {
            alias: "card".into(),
            public_key: owner,
        }],
    };
    let pin = NamespacePin::new(
        "payments",
        owner,
        tessera_core::quorum::QuorumSeed::from_bytes([5; 32]).public_key(),
        set,
        tessera_core::bytes::ByteArray([1; 32]),
        PcrPolicy::Eif,
    );
    let dir = tempfile::tempdir().unwrap();
    let store = PinStore::new(dir.path());
    let path = store.save(&pin, &mut dev).unwrap();
    drop(dev);
    let mut again = open();
    let ledger = ledger_of(&mut again).unwrap();
    assert_eq!(ledger.entries.len(), 1);
    assert_eq!(store.load("payments", &owner, &ledger).unwrap(), Some(pin));
    std::fs::remove_file(path).unwrap();
    assert!(matches!(
        store.load("payments", &owner, &ledger),
        Err(PinError::Missing { sequence: 1, .. })
    ));
}

#[test]
fn virtual_pin_ledger_on_the_card() {
    if let Some(card) = virtual_card("virtual_pin_ledger_on_the_card") {
        pin_ledger_on_the_card(&card);
    }
}
