//! The real `tessera` app in a real terminal (tmux): a member whose Share key is on the
//! virtual YubiKey hands over their share to a dev enclave through the app, typing the
//! confirmation code and the PIN, while the dev enclave and the relay run as real processes.
//!
//! Runs under `scripts/with-virtual-yubikey.sh` (part of `make test`); elsewhere it is skipped
//! with a loud message like every card test.

mod ceremony_support;
mod yubikey_support;

use std::path::Path;
use std::process::Command;

use ceremony_support::{Tmux, binary, only_file, start};

use yubikey_support::{NEW_PIN, NEW_PUK, PIN, PUK, ok, tessera, virtual_card};

fn run(args: &[&str]) -> String {
    let out = tessera(args);
    assert!(
        out.status.success(),
        "tessera {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn provisioning_through_the_app_with_a_virtual_yubikey() {
    let Some(card) = virtual_card("provisioning_through_the_app_with_a_virtual_yubikey") else {
        return;
    };
    let dir = card.dir.path();
    let p = |name: &str| dir.join(name).to_string_lossy().into_owned();
    let serial = card.serial.to_string();
    let pin_file = card.secret_file("pin", PIN);
    let pin_file = pin_file.to_str().unwrap();

    // alice's keys are on the card; the other four are software members.
    ok(&card.provision("share,manifest,patch", &["--touch", "never"]));
    run(&[
        "key",
        "export",
        "--serial",
        &serial,
        "--alias",
        "alice",
        "-o",
        &p("alice.member"),
    ]);
    for m in ["bob", "carol", "dave", "erin"] {
        run(&[
            "member",
            "init-software",
            "--alias",
            m,
            "--keys",
            &p(&format!("{m}.keys")),
            "-o",
            &p(&format!("{m}.member")),
        ]);
    }

    let (_enclave, _) = start(
        Command::new(binary("tessera-enclave")).args([
            "--listen",
            &format!("unix:{}", p("enclave.sock")),
            "--dev",
            "--dev-root-out",
            &p("dev-root.pem"),
            "--dev-pcrs-out",
            &p("pcrs.json"),
        ]),
        "listening on",
    );
    let (_relay, line) = start(
        Command::new(binary("tessera-relay")).args([
            "--listen",
            "127.0.0.1:0",
            "--enclave",
            &format!("unix:{}", p("enclave.sock")),
        ]),
        "listening on http://",
    );
    let relay = line[line.find("http://").unwrap()..].trim().to_owned();

    let members: Vec<String> = ["alice", "bob", "carol", "dave", "erin"]
        .iter()
        .map(|m| p(&format!("{m}.member")))
        .collect();
    let mut genesis = vec![
        "genesis",
        "run",
        "--relay",
        &relay,
        "--namespace",
        "tmux",
        "--threshold",
        "3",
    ];
    for m in &members {
        genesis.extend_from_slice(&["--member", m]);
    }
    let gdir = p("genesis");
    genesis.extend_from_slice(&["-o", &gdir]);
    run(&genesis);
    let output = format!("{gdir}/genesis-output.tbundle");
    let attestation = format!("{gdir}/genesis-attestation.cbor");
    let root = p("dev-root.pem");
    std::fs::create_dir_all(p("usb")).unwrap();
    run(&[
        "genesis",
        "verify",
        &output,
        "--attestation",
        &attestation,
        "--pcrs",
        &p("pcrs.json"),
        "--root",
        &root,
        "--serial",
        &serial,
        "--pin-file",
        pin_file,
        "--share-out",
        &p("usb/alice.share.age"),
        "--pins",
        &p("alice.pins"),
    ]);
    for m in ["bob", "carol", "dave"] {
        run(&[
            "genesis",
            "verify",
            &output,
            "--attestation",
            &attestation,
            "--pcrs",
            &p("pcrs.json"),
            "--root",
            &root,
            "--software",
            &p(&format!("{m}.keys")),
            "--share-out",
            &p(&format!("{m}.share.age")),
            "--pins",
            &p(&format!("{m}.pins")),
        ]);
    }

    let pcrs = p("pcrs.json");
    let mut new = vec![
        "manifest",
        "new",
        "--namespace",
        "tmux",
        "--nonce",
        "1",
        "--genesis",
        &output,
        "--pcrs",
        &pcrs,
        "--manifest-threshold",
        "3",
        "--patch-threshold",
        "2",
        "--app-sha256",
        "0000000000000000000000000000000000000000000000000000000000000001",
    ];
    for m in &members {
        new.extend_from_slice(&["--manifest-member", m, "--patch-member", m]);
    }
    let manifest = p("manifest.tbundle");
    new.extend_from_slice(&["-o", &manifest]);
    run(&new);
    let code = run(&["manifest", "show", &manifest, "--confirm-code"])
        .trim()
        .to_owned();
    let mut envelope = vec![
        "manifest".to_owned(),
        "envelope".to_owned(),
        manifest.clone(),
    ];
    for m in ["bob", "carol", "dave"] {
        let a = p(&format!("{m}.approval"));
        run(&[
            "manifest",
            "approve",
            &manifest,
            "--software",
            &p(&format!("{m}.keys")),
            "--confirm",
            &code,
            "--state-dir",
            &p(&format!("{m}.state")),
            "--pins",
            &p(&format!("{m}.pins")),
            "--root",
            &root,
            "-o",
            &a,
        ]);
        envelope.extend(["--approval".to_owned(), a]);
    }
    envelope.extend(["-o".to_owned(), p("envelope.tbundle")]);
    run(&envelope.iter().map(String::as_str).collect::<Vec<_>>());
    // alice did not approve: she records the Manifest set she trusts, signing her pin on the card.
    run(&[
        "trust",
        "manifest-set",
        &p("envelope.tbundle"),
        "--serial",
        &serial,
        "--pin-file",
        pin_file,
        "--pins",
        &p("alice.pins"),
        "--confirm",
        &code,
    ]);
    run(&[
        "boot",
        "--relay",
        &relay,
        &p("envelope.tbundle"),
        "--root",
        &root,
    ]);

    // bob and carol hand over with the command line.
    for m in ["bob", "carol"] {
        let usb = p(&format!("usb-{m}"));
        std::fs::create_dir_all(&usb).unwrap();
        run(&["provision", "request", "--relay", &relay, "-o", &usb]);
        let req = only_file(Path::new(&usb), "request-");
        run(&[
            "provision",
            "sign",
            req.to_str().unwrap(),
            "--share",
            &p(&format!("{m}.share.age")),
            "--root",
            &root,
            "--software",
            &p(&format!("{m}.keys")),
            "--pins",
            &p(&format!("{m}.pins")),
            "--confirm",
            &code,
            "-o",
            &usb,
        ]);
        run(&[
            "provision",
            "post",
            "--relay",
            &relay,
            only_file(Path::new(&usb), "share-").to_str().unwrap(),
        ]);
    }

    // alice hands over through the app, on the YubiKey, in a real terminal.
    let usb = p("usb");
    run(&["provision", "request", "--relay", &relay, "-o", &usb]);
    let req = only_file(Path::new(&usb), "request-");
    let tmux = Tmux {
        socket: format!("tessera-test-{}", std::process::id()),
    };
    let app = format!(
        "{} open {} --serial {serial} --root {root} --dir {usb} --share {} --state-dir {} --pins {}",
        env!("CARGO_BIN_EXE_tessera"),
        req.display(),
        p("usb/alice.share.age"),
        p("alice.state"),
        p("alice.pins")
    );
    tmux.cmd(&[
        "new-session",
        "-d",
        "-s",
        "t",
        "-x",
        "80",
        "-y",
        "24",
        &format!("TESSERA_TRANSCRIPT={} {app}", p("transcript.jsonl")),
    ]);
    tmux.wait_for("✓ attestation");
    // The pin is read with the key device's ledger, after the document was checked.
    tmux.wait_for("✓ pin");
    tmux.keys(&["a"]);
    tmux.wait_for("(16 hex digits)");
    // Enter alone signs nothing and says so; the code does.
    tmux.keys(&["Enter"]);
    tmux.wait_for("code does not match");
    tmux.keys(&[&code, "Enter"]);
    tmux.wait_for("Your YubiKey PIN, to");
    tmux.keys(&[PIN]);
    let typed = tmux.wait_for("••••••");
    assert!(!typed.contains(PIN), "the PIN is on the screen:\n{typed}");
    tmux.keys(&["Enter"]);
    // The decryption above and the receipt signature (both Share key, slot 82, PIN policy
    // `once`) run in one card session: one PIN. The pin does not move (alice's `trust
    // manifest-set` above already recorded this manifest), so nothing else is signed.
    let done = tmux.wait_for("share bundle written");
    assert!(!done.contains(PIN));
    assert!(
        !done.contains("Your YubiKey PIN"),
        "asked for a second PIN:\n{done}"
    );
    tmux.keys(&["Enter"]);

    // The Keys screen: export the descriptor, then change the PIN (current, new, new again).
    tmux.keys(&["2", "e"]);
    tmux.wait_for("descriptor written");
    tmux.keys(&["Enter", "p"]);
    tmux.wait_for("Your YubiKey PIN, to change the PIN");
    tmux.keys(&[PIN, "Enter"]);
    tmux.wait_for("Your YubiKey new PIN");
    tmux.keys(&[NEW_PIN, "Enter"]);
    tmux.wait_for("repeat the new PIN");
    tmux.keys(&[NEW_PIN]);
    let typed = tmux.wait_for("••••••");
    assert!(!typed.contains(NEW_PIN));
    tmux.keys(&["Enter"]);
    tmux.wait_for("PIN of YubiKey");
    tmux.keys(&["Enter", "q"]);
    assert!(only_file(Path::new(&usb), "member-").exists());
    // The new PIN works and the old one does not.
    let new_pin_file = card.secret_file("new-pin-check", NEW_PIN);
    run(&[
        "key",
        "selftest",
        "--serial",
        &serial,
        "--pin-file",
        new_pin_file.to_str().unwrap(),
    ]);

    let share = only_file(Path::new(&usb), "share-tmux-alice-");
    let posted = run(&[
        "provision",
        "post",
        "--relay",
        &relay,
        share.to_str().unwrap(),
    ]);
    assert!(posted.contains("the enclave is provisioned"), "{posted}");
    run(&[
        "app-sign",
        "--relay",
        &relay,
        "--manifest",
        &p("envelope.tbundle"),
        "--message",
        "signed after a TUI hand-over",
    ]);
    let transcript = std::fs::read_to_string(p("transcript.jsonl")).unwrap();
    assert!(transcript.contains("provision.sign") && !transcript.contains(PIN));
    let verify = run(&["transcript", "verify", &p("transcript.jsonl")]);
    assert!(verify.contains("chain intact"), "{verify}");
}

/// A factory-fresh card provisioned from the app's Keys screen: the plan is shown and needs its
/// typed code, the new PIN and PUK are each asked twice (a mismatch changes nothing), then the
/// PUK is changed; the command line sees the keys and the new secrets.
#[test]
fn a_fresh_yubikey_is_provisioned_and_its_puk_changed_in_the_app() {
    let Some(card) = virtual_card("a_fresh_yubikey_is_provisioned_and_its_puk_changed_in_the_app")
    else {
        return;
    };
    let dir = card.dir.path();
    let p = |name: &str| dir.join(name).to_string_lossy().into_owned();
    let serial = card.serial.to_string();
    std::fs::create_dir_all(p("usb")).unwrap();
    let tmux = Tmux {
        socket: format!("tessera-keys-{}", std::process::id()),
    };
    let app = format!(
        "TESSERA_TRANSCRIPT={} {} --serial {serial} --dir {} --state-dir {}",
        p("transcript.jsonl"),
        env!("CARGO_BIN_EXE_tessera"),
        p("usb"),
        p("state")
    );
    tmux.cmd(&["new-session", "-d", "-s", "t", "-x", "80", "-y", "24", &app]);
    tmux.wait_for("Home");
    tmux.keys(&["2", "n"]);
    // No coordinator announces a provisioning plan: the app shows its code to be typed back.
    let plan = tmux.wait_for(" to proceed:");
    assert!(plan.contains("Provision YubiKey"), "{plan}");
    let code = plan
        .lines()
        .find_map(|l| {
            let at = l.find("Type ")?;
            let rest = &l[at + "Type ".len()..];
            Some(rest.split(" to proceed").next()?.trim().to_owned())
        })
        .expect("the code is on the screen");

    // A wrong code changes nothing and says so; the right one goes on to the secrets.
    tmux.keys(&["0000 0000", "Enter"]);
    tmux.wait_for("code does not match");
    tmux.keys(&[&code, "Enter"]);
    // New PUK twice, but different: refused before the card is touched.
    tmux.wait_for("Your YubiKey new PUK");
    tmux.keys(&[PUK, "Enter"]);
    tmux.wait_for("repeat the new PUK");
    tmux.keys(&[NEW_PUK, "Enter"]);
    let refused = tmux.wait_for("differ");
    assert!(refused.contains("nothing was changed"), "{refused}");
    tmux.keys(&["Enter"]);
    let listed = key_list();
    assert!(
        listed.contains("factory-default") && listed.contains("slot 82  empty"),
        "a refused provisioning changed the card:\n{listed}"
    );

    // Again, all the way: new PUK twice, new PIN twice, the factory PIN.
    tmux.keys(&["n"]);
    tmux.wait_for(" to proceed:");
    tmux.keys(&[&code, "Enter"]);
    for (prompt, secret) in [
        ("Your YubiKey new PUK", PUK),
        ("repeat the new PUK", PUK),
        ("Your YubiKey new PIN", PIN),
        ("repeat the new PIN", PIN),
        ("Your YubiKey PIN, to", "123456"),
    ] {
        tmux.wait_for(prompt);
        tmux.keys(&[secret]);
        let typed = tmux.wait_for(&"•".repeat(secret.len()));
        // The factory PIN is public, and the prompt names it; the others must never show.
        assert!(
            secret == "123456" || !typed.contains(secret),
            "{prompt}: on the screen:\n{typed}"
        );
        tmux.keys(&["Enter"]);
    }
    let done = tmux.wait_for("provisioned; management key");
    assert!(done.contains("share"), "{done}");
    tmux.keys(&["Enter"]);

    // The PUK, from the same screen.
    tmux.keys(&["u"]);
    tmux.wait_for("Your YubiKey PUK, to change the PUK");
    tmux.keys(&[PUK, "Enter"]);
    tmux.wait_for("Your YubiKey new PUK");
    tmux.keys(&[NEW_PUK, "Enter"]);
    tmux.wait_for("repeat the new PUK");
    tmux.keys(&[NEW_PUK, "Enter"]);
    tmux.wait_for("PUK of YubiKey");
    tmux.keys(&["Enter", "q"]);

    // The command line agrees: three role keys, the new PIN signs, the new PUK is the PUK.
    let listed = key_list();
    for (role, slot) in [("share", "82"), ("manifest", "9c"), ("patch", "83")] {
        assert!(
            listed.contains(&format!("{role:<8} slot {slot}  P-256"))
                && listed.contains("PIN once  touch always"),
            "{role}:\n{listed}"
        );
    }
    assert!(!listed.contains("factory-default"), "{listed}");
    let pin_file = card.secret_file("pin-check", PIN);
    ok(&tessera(&[
        "key",
        "selftest",
        "--serial",
        &serial,
        "--pin-file",
        pin_file.to_str().unwrap(),
    ]));
    operator_tui::piv::connect(card.serial)
        .unwrap()
        .change_puk(NEW_PUK.as_bytes(), PUK.as_bytes())
        .expect("the PUK set in the app is the PUK");
    let transcript = std::fs::read_to_string(p("transcript.jsonl")).unwrap();
    assert!(transcript.contains("key.provision") && transcript.contains("key.change-puk"));
    for secret in [PIN, PUK, NEW_PUK] {
        assert!(!transcript.contains(secret), "a secret in the transcript");
    }
}

fn key_list() -> String {
    let out = tessera(&["key", "list"]);
    assert!(out.status.success(), "key list: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}
