//! Shares at rest are age files that the real tools read and write too: `rage` with
//! `age-plugin-yubikey` (installed with `cargo install --locked rage age-plugin-yubikey`; the
//! card test script installs them when missing), against the virtual card.
//!
//! - `age-plugin-yubikey` lists the Share slot Tessera provisioned, with the same recipient
//!   and identity strings `tessera key provision` printed;
//! - a share `rage -r age1yubikey1…` encrypted decrypts through Tessera's YubiKey backend;
//! - a share Tessera encrypted decrypts with `rage -d -i IDENTITY` and the plugin, the PIN
//!   coming from a pinentry program.

// "YubiKey" is a product name, not an item to link.
#![allow(clippy::doc_markdown)]

mod yubikey_support;

use std::path::PathBuf;
use std::process::{Command, Stdio};

use operator_tui::piv::SlotMap;
use tessera_core::age_share::{DeviceIdentity, PivP256Recipient, encrypt};
use tessera_core::device::KeyDevice;
use tessera_core::keys::Role;
use yubikey_support::{Card, PIN, ok, tool, virtual_card};

struct Tools {
    rage: PathBuf,
    plugin: PathBuf,
    pinentry: PathBuf,
    path: std::ffi::OsString,
}

fn tools(test: &str) -> Option<Tools> {
    let (Some(rage), Some(plugin)) = (tool("rage"), tool("age-plugin-yubikey")) else {
        assert!(
            std::env::var("TESSERA_REQUIRE_CARD").as_deref() != Ok("1"),
            "{test}: rage and age-plugin-yubikey are required (cargo install --locked rage age-plugin-yubikey)"
        );
        eprintln!(
            "\n!!!!!!!! SKIPPED {test}: rage / age-plugin-yubikey not installed \
             (cargo install --locked rage age-plugin-yubikey) !!!!!!!!\n"
        );
        return None;
    };
    let harness = std::env::var_os("VIRTUAL_YUBIKEY_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tools/virtual-card"),
        PathBuf::from,
    );
    let pinentry = harness.join("fake-pinentry");
    assert!(
        pinentry.is_file(),
        "no fake pinentry at {}",
        pinentry.display()
    );
    // rage finds the plugin by name on PATH.
    let mut dirs = vec![plugin.parent().unwrap().to_path_buf()];
    dirs.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    Some(Tools {
        rage,
        plugin,
        pinentry,
        path: std::env::join_paths(dirs).unwrap(),
    })
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.stdin(Stdio::null()).output().expect("run tool");
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

fn interop(card: &Card, t: &Tools) {
    // Tessera's defaults: Share in 82 (retired slot 1), PIN once, touch always.
    let out = ok(&card.provision("share,manifest", &[]));
    let share = &out["outcome"]["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["role"] == "share")
        .unwrap()
        .clone();
    let recipient = share["age_recipient"].as_str().unwrap().to_owned();
    let identity = share["age_identity"].as_str().unwrap().to_owned();

    // The plugin sees the Share slot as one of its identities, with the same strings; the
    // Manifest key is not offered as an age identity.
    let listed = run(Command::new(&t.plugin).arg("--list").env("PATH", &t.path));
    assert!(listed.contains(&recipient), "plugin --list:\n{listed}");
    assert!(listed.contains("Slot: 1"), "plugin --list:\n{listed}");
    assert!(
        listed
            .lines()
            .filter(|l| l.starts_with("age1yubikey1"))
            .count()
            == 1,
        "{listed}"
    );
    let id_text = run(Command::new(&t.plugin)
        .args([
            "--identity",
            "--serial",
            &card.serial.to_string(),
            "--slot",
            "1",
        ])
        .env("PATH", &t.path));
    assert!(
        id_text.contains(&identity),
        "plugin --identity:\n{id_text}\nexpected {identity}"
    );
    assert!(
        id_text.contains(&recipient),
        "plugin --identity:\n{id_text}"
    );
    let id_file = card.path("identity.txt");
    std::fs::write(&id_file, &id_text).unwrap();

    // rage -> Tessera.
    let plain = card.path("share.bin");
    std::fs::write(&plain, b"\x01share from rage, 32 bytes long!").unwrap();
    let by_rage = card.path("by-rage.age");
    run(Command::new(&t.rage)
        .args(["-r", &recipient, "-o"])
        .arg(&by_rage)
        .arg(&plain)
        .env("PATH", &t.path));
    let mut dev = card.device(PIN, SlotMap::default());
    assert_eq!(
        PivP256Recipient::new(dev.public_key(Role::Share).unwrap()).to_string(),
        recipient
    );
    let id = DeviceIdentity::new(&mut dev, Role::Share, "decrypt a share rage encrypted").unwrap();
    let got = id
        .decrypt(&std::fs::read(&by_rage).unwrap())
        .expect("Tessera decrypts rage's file");
    assert_eq!(&got[..], b"\x01share from rage, 32 bytes long!");

    // Tessera -> rage + age-plugin-yubikey, the PIN through a pinentry program.
    let r: PivP256Recipient = recipient.parse().unwrap();
    let ct = encrypt(b"\x02share from tessera", &[&r]).unwrap();
    let by_tessera = card.path("by-tessera.age");
    std::fs::write(&by_tessera, ct).unwrap();
    let got = run(Command::new(&t.rage)
        .arg("-d")
        .arg("-i")
        .arg(&id_file)
        .arg(&by_tessera)
        .env("PATH", &t.path)
        .env("PINENTRY_PROGRAM", &t.pinentry)
        .env("FAKE_PIN", PIN));
    assert_eq!(got.as_bytes(), b"\x02share from tessera");
}

#[test]
fn rage_and_age_plugin_yubikey_interoperate_both_ways() {
    let name = "rage_and_age_plugin_yubikey_interoperate_both_ways";
    let Some(card) = virtual_card(name) else {
        return;
    };
    let Some(t) = tools(name) else {
        return;
    };
    interop(&card, &t);
}
