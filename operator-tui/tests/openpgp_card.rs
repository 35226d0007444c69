//! OpenPGP on a PIV card: the Manifest key exported as an OpenPGP key and a transcript signed
//! on the card, both checked by gpg (and sq where installed). Runs against the virtual card
//! in CI (`scripts/with-virtual-yubikey.sh`), or a real YubiKey with the `#[ignore]`d test:
//!
//!     TESSERA_YUBIKEY_SERIAL=12345678 cargo test -p operator-tui --test openpgp_card -- --ignored --test-threads=1
//!
//! WARNING: every card test RESETS the card's PIV application first, destroying its PIV keys.

// "YubiKey" is a product name, not an item to link.
#![allow(clippy::doc_markdown)]

mod pgp_support;
mod yubikey_support;

use std::path::Path;

use operator_tui::piv::SlotMap;
use pgp_support::{GpgHome, sq, sq_verify};
use tessera_core::device::KeyDevice;
use tessera_core::keys::Role;
use tessera_core::transcript::{Record, append};
use yubikey_support::{Card, PIN, hardware_card, ok, stderr, tessera, virtual_card};

fn export(card: &Card, pin: &Path, out: &Path) -> serde_json::Value {
    let serial = card.serial.to_string();
    ok(&tessera(&[
        "key",
        "export",
        "--openpgp",
        "--serial",
        &serial,
        "--pin-file",
        pin.to_str().unwrap(),
        "--alias",
        "alice",
        "-o",
        out.to_str().unwrap(),
        "--json",
    ]))
}

fn transcript_signed_on_the_card(card: &Card) {
    ok(&card.provision("manifest", &["--touch", "never"]));
    let pin = card.secret_file("pin", PIN);
    let serial = card.serial.to_string();

    let key = card.path("alice.asc");
    let exported = export(card, &pin, &key);
    let fpr = exported["fingerprint"].as_str().unwrap().to_owned();
    // The same slot key exports under the same fingerprint every time.
    let again = export(card, &pin, &card.path("alice-again.asc"));
    assert_eq!(again["fingerprint"], fpr.as_str());

    // The OpenPGP key material is the slot's key.
    let mut device = card.device(PIN, SlotMap::default());
    let slot_key = device.public_key(Role::Manifest).unwrap();
    let gpg = GpgHome::new();
    gpg.gpg_ok(&["--import", key.to_str().unwrap()]);
    let listing = String::from_utf8_lossy(
        &gpg.gpg_ok(&["--with-colons", "--with-key-data", "--list-keys", &fpr])
            .stdout,
    )
    .into_owned();
    let point = slot_key.to_p256();
    let uncompressed = hex::encode_upper(
        p256::elliptic_curve::sec1::ToSec1Point::to_sec1_point(&point, false).as_bytes(),
    );
    assert!(listing.contains(&uncompressed), "{listing}");

    let transcript = card.path("ceremony.jsonl");
    for action in ["genesis.verify", "manifest.approve"] {
        append(
            &transcript,
            "2026-03-01T10:00:00Z",
            Record::new(action, "approved").device(format!("YubiKey {serial} slot 9c")),
        )
        .unwrap();
    }
    let sig = card.path("ceremony.jsonl.asc");
    let out = tessera(&[
        "transcript",
        "sign",
        transcript.to_str().unwrap(),
        "--serial",
        &serial,
        "--pin-file",
        pin.to_str().unwrap(),
        "-o",
        sig.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));

    let v = gpg.verify(&sig, &transcript);
    let status = String::from_utf8_lossy(&v.stdout).into_owned();
    assert!(v.status.success(), "{status}\n{}", stderr(&v));
    assert!(status.contains(&format!("VALIDSIG {fpr}")), "{status}");
    if let Some(sq) = sq() {
        let out = sq_verify(&sq, &key, &sig, &transcript);
        assert!(out.status.success(), "sq: {}", stderr(&out));
    }

    // A wrong PIN signs nothing and says how many tries are left.
    let wrong = card.secret_file("wrong-pin", "999999");
    let refused = tessera(&[
        "transcript",
        "sign",
        transcript.to_str().unwrap(),
        "--serial",
        &serial,
        "--pin-file",
        wrong.to_str().unwrap(),
        "-o",
        card.path("never.asc").to_str().unwrap(),
    ]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused).contains("wrong PIN"),
        "{}",
        stderr(&refused)
    );
    assert!(!card.path("never.asc").exists());
}

#[test]
fn virtual_card_transcript_signature_verifies_with_gpg() {
    let Some(card) = virtual_card("virtual_card_transcript_signature_verifies_with_gpg") else {
        return;
    };
    transcript_signed_on_the_card(&card);
}

#[test]
#[ignore = "needs a YubiKey named by TESSERA_YUBIKEY_SERIAL, which it RESETS"]
fn hardware_transcript_signature_verifies_with_gpg() {
    let Some(card) = hardware_card("hardware_transcript_signature_verifies_with_gpg") else {
        return;
    };
    transcript_signed_on_the_card(&card);
}
