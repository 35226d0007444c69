//! `tessera key` without a card: software devices (dev/test only) and the messages an operator
//! gets when PC/SC itself is missing. Runs everywhere.

mod yubikey_support;

use tessera_core::device::{DeviceKind, SoftwareKeyDevice};
use tessera_core::keys::Role;
use tessera_core::objects::MemberDescriptor;
use yubikey_support::{ok, stderr, tessera};

#[test]
fn export_and_selftest_a_software_device() {
    let dir = tempfile::tempdir().unwrap();
    let keyfile = dir.path().join("bob.keys");
    let dev = SoftwareKeyDevice::generate("bob");
    dev.save(&keyfile).unwrap();
    let out_file = dir.path().join("bob.member");
    let out = tessera(&[
        "key",
        "export",
        "--software",
        keyfile.to_str().unwrap(),
        "--alias",
        "bob",
        "-o",
        out_file.to_str().unwrap(),
    ]);
    ok(&out);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("SOFTWARE KEYS (dev/test only)"), "{text}");
    assert!(text.contains("WARNING"), "{text}");
    assert!(
        text.contains("attestation  none (software keys cannot be attested"),
        "{text}"
    );
    let d = MemberDescriptor::decode(&std::fs::read(&out_file).unwrap()).unwrap();
    assert_eq!(d.attestation, None);
    assert_eq!(d.device, DeviceKind::Software);
    assert_eq!(d.serial, None);
    assert_eq!(d.keys.len(), 3);
    assert!(d.keys.iter().all(|k| k.slot.is_none()));
    assert!(d.key(Role::Share).is_some());

    let st = ok(&tessera(&[
        "key",
        "selftest",
        "--software",
        keyfile.to_str().unwrap(),
        "--json",
    ]));
    assert_eq!(st["ok"], true, "{st}");
    assert!(st["device"].as_str().unwrap().contains("SOFTWARE"));

    let list = ok(&tessera(&[
        "key",
        "list",
        "--software",
        keyfile.to_str().unwrap(),
        "--json",
    ]));
    assert!(
        list["software"][0]["label"]
            .as_str()
            .unwrap()
            .contains("dev/test only")
    );
}

#[test]
fn export_needs_exactly_one_device() {
    let out = tessera(&["key", "export", "--alias", "x", "-o", "/nonexistent/x"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let out = tessera(&[
        "key",
        "export",
        "--serial",
        "1",
        "--software",
        "f",
        "--alias",
        "x",
        "-o",
        "/tmp/x",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

#[test]
fn no_pcscd_gives_a_clear_message_and_hint() {
    // pcsc-lite clients find pcscd through this socket path; pointing it nowhere is exactly
    // what a machine without a running pcscd looks like.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["key", "selftest", "--serial", "5437251"])
        .env("PCSCLITE_CSOCK_NAME", "/nonexistent/pcscd.comm")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("PC/SC service is not available"), "{err}");
    assert!(err.contains("start the PC/SC daemon (`pcscd`)"), "{err}");
}

#[test]
fn slot_maps_are_checked() {
    use operator_tui::piv::SlotMap;
    let m: SlotMap = "share=85, manifest=0x9d".parse().unwrap();
    assert_eq!(m.slot(Role::Share), 0x85);
    assert_eq!(m.slot(Role::Manifest), 0x9d);
    assert_eq!(m.slot(Role::Patch), 0x83);
    // Swapping two defaults works; sharing a slot does not.
    let m: SlotMap = "share=83,patch=82".parse().unwrap();
    assert_eq!((m.slot(Role::Share), m.slot(Role::Patch)), (0x83, 0x82));
    assert!("share=9c".parse::<SlotMap>().is_err());
    assert!(
        "share=9b".parse::<SlotMap>().is_err(),
        "9b is the management key"
    );
    assert!(
        "share=f9".parse::<SlotMap>().is_err(),
        "f9 is the attestation slot"
    );
    assert!("owner=82".parse::<SlotMap>().is_err());
}
