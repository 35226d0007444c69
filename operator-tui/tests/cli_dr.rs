//! The disaster-recovery key on the real binaries (a dev enclave and the relay as processes,
//! `tessera` run as the DR key holder and the members run it): genesis with and without a DR
//! recipient, members refusing a wrap they did not agree to, the drill with the right key, with
//! another key, and against an output whose wrap was swapped after genesis, and a restore to a
//! new 2-of-3 share set whose full ceremony signs with the original quorum key.

mod ceremony_support;

use std::path::{Path, PathBuf};
use std::process::Output;

use ceremony_support::{Services, ok_in, only_file, services, tessera_in};
use tessera_core::cbor;
use tessera_core::dr::{self, X25519Identity};
use tessera_core::objects::GenesisOutput;

struct World {
    dir: tempfile::TempDir,
    svc: Services,
}

impl World {
    fn p(&self, name: &str) -> String {
        self.dir.path().join(name).to_string_lossy().into_owned()
    }
    fn t(&self) -> PathBuf {
        self.dir.path().join("transcript.jsonl")
    }
    fn ok(&self, args: &[&str]) -> String {
        ok_in(&self.t(), args)
    }
    fn run(&self, args: &[&str]) -> Output {
        tessera_in(&self.t(), args)
    }
    fn member(&self, m: &str) {
        self.ok(&[
            "member",
            "init-software",
            "--alias",
            m,
            "--keys",
            &self.p(&format!("{m}.keys")),
            "-o",
            &self.p(&format!("{m}.member")),
        ]);
    }
    /// A new X25519 DR identity file; returns its recipient.
    fn keygen(&self, name: &str) -> String {
        let out = self.ok(&["dr", "keygen", "-o", &self.p(name)]);
        out.lines()
            .find_map(|l| l.strip_prefix("recipient: "))
            .unwrap()
            .trim()
            .to_owned()
    }
    fn genesis(&self, ns: &str, out: &str, dr: Option<&str>) {
        let mut args = vec![
            "genesis",
            "run",
            "--relay",
            &self.svc.relay,
            "--namespace",
            ns,
            "--threshold",
            "2",
        ];
        let members: Vec<String> = ["alice", "bob", "carol"]
            .iter()
            .map(|m| self.p(&format!("{m}.member")))
            .collect();
        for m in &members {
            args.extend_from_slice(&["--member", m]);
        }
        if let Some(r) = dr {
            args.extend_from_slice(&["--dr-recipient", r]);
        }
        let out = self.p(out);
        args.extend_from_slice(&["-o", &out]);
        let stdout = self.ok(&args);
        assert!(stdout.contains("disaster-recovery key:"), "{stdout}");
    }
    /// `dr drill` of `output` with `key` (`--identity FILE` or `--software FILE`).
    fn drill(&self, output: &str, key: &[&str]) -> Output {
        let (att, pcrs, root) = (
            self.p("g/genesis-attestation.cbor"),
            self.p("e-pcrs.json"),
            self.p("e-root.pem"),
        );
        let mut args = vec![
            "dr",
            "drill",
            output,
            "--attestation",
            &att,
            "--pcrs",
            &pcrs,
            "--root",
            &root,
        ];
        args.extend_from_slice(key);
        self.run(&args)
    }
    fn verify(&self, m: &str, output: &str, extra: &[&str]) -> Output {
        let (att, pcrs, root, keys, share, pins) = (
            self.p("g/genesis-attestation.cbor"),
            self.p("e-pcrs.json"),
            self.p("e-root.pem"),
            self.p(&format!("{m}.keys")),
            self.p(&format!("{m}.share.age")),
            self.p(&format!("{m}.pins")),
        );
        let mut args = vec![
            "genesis",
            "verify",
            output,
            "--attestation",
            &att,
            "--pcrs",
            &pcrs,
            "--root",
            &root,
            "--software",
            &keys,
            "--share-out",
            &share,
            "--pins",
            &pins,
        ];
        args.extend_from_slice(extra);
        self.run(&args)
    }
}

fn refused(out: &Output, needle: &str) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(1),
        "expected a refusal naming {needle:?}:\n{}\n{err}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        err.contains(needle),
        "refusal does not name {needle:?}:\n{err}"
    );
    err
}

fn read_output(path: &str) -> GenesisOutput {
    let bytes = std::fs::read(path).unwrap();
    let payload = airgap_bundle::Bundle::decode(&bytes)
        .map(airgap_bundle::Bundle::into_payload)
        .unwrap_or(bytes);
    GenesisOutput::decode(&payload).unwrap()
}

fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let svc = services(dir.path(), "e");
    let w = World { dir, svc };
    for m in ["alice", "bob", "carol", "dave", "erin", "frank"] {
        w.member(m);
    }
    w
}

#[test]
fn drill_with_the_right_key_another_key_and_a_swapped_wrap() {
    let w = world();
    let recipient = w.keygen("dr.key");
    w.genesis("payments", "g", Some(&recipient));
    let output = w.p("g/genesis-output.tbundle");
    let genesis = read_output(&output);
    let fpr = genesis.body.quorum_public_key.signing.fingerprint();
    assert_eq!(genesis.body.dr.as_ref().unwrap().recipient, recipient);

    // A genesis without a DR recipient has no wrap, and the drill says so.
    w.genesis("plain", "g-plain", None);
    let plain = read_output(&w.p("g-plain/genesis-output.tbundle"));
    assert!(plain.body.dr.is_none());

    // The right key: the drill passes, prints the fingerprint, records the drill.
    let key = w.p("dr.key");
    let out = w.drill(&output, &["--identity", &key]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("DR drill passed for payments: quorum key {fpr}")),
        "{stdout}"
    );
    let transcript = std::fs::read_to_string(w.t()).unwrap();
    let last = transcript.lines().last().unwrap();
    assert!(
        last.contains("dr.drill") && last.contains(&fpr),
        "transcript: {last}"
    );
    ok_in(&w.t(), &["transcript", "verify", &w.t().to_string_lossy()]);

    // Another DR key: refused before anything is decrypted.
    w.keygen("other.key");
    let err = refused(
        &w.drill(&output, &["--identity", &w.p("other.key")]),
        "nothing was decrypted",
    );
    assert!(err.contains(&recipient), "{err}");

    // A DR identity others may read is refused.
    std::fs::copy(&key, w.p("loose.key")).unwrap();
    std::fs::set_permissions(
        w.p("loose.key"),
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    refused(
        &w.drill(&output, &["--identity", &w.p("loose.key")]),
        "chmod 600",
    );

    // The host or a USB stick swaps the wrap after genesis: the seed re-wrapped to an
    // attacker's key (so the attacker's drill would derive the right quorum key), with the
    // recipient changed to match. The attestation binds the original output: refused.
    let identity = X25519Identity::parse_file(&std::fs::read_to_string(&key).unwrap()).unwrap();
    let seed = dr::recover(&genesis, identity.decryptor()).unwrap();
    let (attacker_secret, attacker) = dr::generate_x25519();
    std::fs::write(
        w.p("attacker.key"),
        format!("{}\n", attacker_secret.as_str()),
    )
    .unwrap();
    std::fs::set_permissions(
        w.p("attacker.key"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let mut swapped = genesis.clone();
    swapped.body.dr = Some(dr::wrap(&seed, &attacker).unwrap());
    drop(seed);
    std::fs::write(w.p("swapped.cbor"), cbor::encode(&swapped)).unwrap();
    refused(
        &w.drill(&w.p("swapped.cbor"), &["--identity", &w.p("attacker.key")]),
        "attestation refused",
    );
    // And a wrap of another seed to the genuine DR key: refused the same way.
    let mut other = genesis.clone();
    other.body.dr = Some(
        dr::wrap(
            &tessera_core::quorum::QuorumSeed::generate(),
            &recipient.parse().unwrap(),
        )
        .unwrap(),
    );
    std::fs::write(w.p("other.cbor"), cbor::encode(&other)).unwrap();
    refused(
        &w.drill(&w.p("other.cbor"), &["--identity", &key]),
        "attestation refused",
    );
}

#[test]
fn members_refuse_a_wrap_they_did_not_agree_to() {
    let w = world();
    let recipient = w.keygen("dr.key");
    let rogue = w.keygen("rogue.key");
    w.genesis("payments", "g", Some(&recipient));
    let output = w.p("g/genesis-output.tbundle");
    let err = refused(&w.verify("alice", &output, &[]), "--dr-recipient");
    assert!(err.contains(&recipient), "{err}");
    refused(
        &w.verify("alice", &output, &["--dr-recipient", &rogue]),
        "not the agreed",
    );
    assert!(!Path::new(&w.p("alice.share.age")).exists());
    let out = w.verify("alice", &output, &["--dr-recipient", &recipient]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("ALSO wrapped to"));
}

#[test]
fn restore_to_a_new_two_of_three_set_signs_with_the_same_quorum_key() {
    let w = world();
    let recipient = w.keygen("dr.key");
    w.genesis("payments", "g", Some(&recipient));
    let output = w.p("g/genesis-output.tbundle");
    let fpr = read_output(&output)
        .body
        .quorum_public_key
        .signing
        .fingerprint();
    let key = w.p("dr.key");
    let (att, pcrs, root) = (
        w.p("g/genesis-attestation.cbor"),
        w.p("e-pcrs.json"),
        w.p("e-root.pem"),
    );
    let new_members: Vec<String> = ["dave", "erin", "frank"]
        .iter()
        .map(|m| w.p(&format!("{m}.member")))
        .collect();
    let restored_dir = w.p("restored");
    let restore = |confirm: Option<&str>| {
        let mut args = vec![
            "dr",
            "restore",
            &output,
            "--attestation",
            &att,
            "--pcrs",
            &pcrs,
            "--root",
            &root,
            "--identity",
            &key,
            "--threshold",
            "2",
        ];
        for m in &new_members {
            args.extend_from_slice(&["--member", m]);
        }
        if let Some(c) = confirm {
            args.extend_from_slice(&["--confirm", c]);
        }
        args.extend_from_slice(&["-o", &restored_dir]);
        w.run(&args)
    };
    // Without the typed confirmation, or with another, nothing is decrypted or written.
    refused(&restore(None), "--confirm \"restore payments\"");
    refused(&restore(Some("restore other")), "nothing was decrypted");
    assert!(
        !Path::new(&restored_dir)
            .join("genesis-output.tbundle")
            .exists()
    );
    let out = restore(Some("restore payments"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let restored = format!("{restored_dir}/genesis-output.tbundle");
    assert_eq!(
        read_output(&restored)
            .body
            .quorum_public_key
            .signing
            .fingerprint(),
        fpr
    );

    // Each new member verifies the restored set against the attested original and pins it.
    for m in ["dave", "erin", "frank"] {
        let out = w.verify(
            m,
            &restored,
            &["--restored-from", &output, "--dr-recipient", &recipient],
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("RESTORED share set"), "{stdout}");
    }
    // The restored set offered as a genesis of its own (without --restored-from) is refused:
    // the attestation binds the original output only.
    std::fs::remove_file(w.p("dave.share.age")).unwrap();
    refused(
        &w.verify("dave", &restored, &["--dr-recipient", &recipient]),
        "attestation refused",
    );
    std::fs::remove_file(w.p("dave.pins")).ok();
    let out = w.verify(
        "dave",
        &restored,
        &["--restored-from", &output, "--dr-recipient", &recipient],
    );
    assert!(out.status.success());

    // A full ceremony with the restored shares: manifest, approvals, boot, two hand-overs.
    let manifest = w.p("manifest.tbundle");
    let mut args = vec![
        "manifest",
        "new",
        "--namespace",
        "payments",
        "--nonce",
        "1",
        "--genesis",
        &restored,
        "--pcrs",
        &pcrs,
        "--manifest-threshold",
        "2",
        "--patch-threshold",
        "1",
        "--app-sha256",
        "0000000000000000000000000000000000000000000000000000000000000001",
    ];
    for m in &new_members {
        args.extend_from_slice(&["--manifest-member", m, "--patch-member", m]);
    }
    args.extend_from_slice(&["-o", &manifest]);
    w.ok(&args);
    // The manifest records the DR key, and every member reviewing it sees it.
    let shown = w.ok(&["manifest", "show", &manifest]);
    assert!(
        shown.contains("namespace.dr_key") && shown.contains(&recipient),
        "{shown}"
    );
    let code = w
        .ok(&["manifest", "show", &manifest, "--confirm-code"])
        .trim()
        .to_owned();
    // A coordinator who hides the DR key from the manifest: refused by every member whose pin
    // (from genesis) records it.
    let mut hidden = tessera_core::manifest::Manifest::decode(
        &airgap_bundle::Bundle::decode(&std::fs::read(&manifest).unwrap())
            .unwrap()
            .into_payload(),
    )
    .unwrap();
    hidden.namespace.dr_recipient = None;
    let hidden_path = w.p("hidden.cbor");
    std::fs::write(&hidden_path, cbor::encode(&hidden)).unwrap();
    let hidden_code = w
        .ok(&["manifest", "show", &hidden_path, "--confirm-code"])
        .trim()
        .to_owned();
    let out = w.run(&[
        "manifest",
        "approve",
        &hidden_path,
        "--software",
        &w.p("dave.keys"),
        "--confirm",
        &hidden_code,
        "--pins",
        &w.p("dave.pins"),
        "--root",
        &root,
        "--state-dir",
        &w.p("dave.state"),
        "-o",
        &w.p("hidden.approval"),
    ]);
    let err = refused(&out, "nothing was signed");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("DR key"),
        "{err}"
    );
    assert!(!Path::new(&w.p("hidden.approval")).exists());

    let mut env_args = vec![
        "manifest".to_owned(),
        "envelope".to_owned(),
        manifest.clone(),
    ];
    for m in ["dave", "erin"] {
        let a = w.p(&format!("{m}.approval"));
        w.ok(&[
            "manifest",
            "approve",
            &manifest,
            "--software",
            &w.p(&format!("{m}.keys")),
            "--confirm",
            &code,
            "--pins",
            &w.p(&format!("{m}.pins")),
            "--root",
            &root,
            "--state-dir",
            &w.p(&format!("{m}.state")),
            "-o",
            &a,
        ]);
        env_args.extend(["--approval".to_owned(), a]);
    }
    let envelope = w.p("envelope.tbundle");
    env_args.extend(["-o".to_owned(), envelope.clone()]);
    w.ok(&env_args.iter().map(String::as_str).collect::<Vec<_>>());
    w.ok(&["boot", "--relay", &w.svc.relay, &envelope, "--root", &root]);
    for m in ["dave", "frank"] {
        if m == "frank" {
            w.ok(&[
                "trust",
                "manifest-set",
                &envelope,
                "--software",
                &w.p("frank.keys"),
                "--pins",
                &w.p("frank.pins"),
                "--confirm",
                &code,
            ]);
        }
        let usb = w.p(&format!("usb-{m}"));
        std::fs::create_dir_all(&usb).unwrap();
        w.ok(&["provision", "request", "--relay", &w.svc.relay, "-o", &usb]);
        let req = only_file(Path::new(&usb), "request-")
            .to_string_lossy()
            .into_owned();
        w.ok(&[
            "provision",
            "sign",
            &req,
            "--share",
            &w.p(&format!("{m}.share.age")),
            "--software",
            &w.p(&format!("{m}.keys")),
            "--pins",
            &w.p(&format!("{m}.pins")),
            "--root",
            &root,
            "--confirm",
            &code,
            "-o",
            &usb,
        ]);
        let share = only_file(Path::new(&usb), "share-")
            .to_string_lossy()
            .into_owned();
        w.ok(&["provision", "post", "--relay", &w.svc.relay, &share]);
    }
    let signed = w.ok(&[
        "app-sign",
        "--relay",
        &w.svc.relay,
        "--manifest",
        &envelope,
        "--message",
        "after the restore",
    ]);
    assert!(
        signed.contains(&format!("signature verifies with quorum key {fpr}")),
        "{signed}"
    );
}

#[test]
fn drill_with_a_dr_key_on_a_device() {
    // The DR key as a piv-p256 recipient on a key device (a YubiKey kept in a safe; here the
    // software device, which takes the same path through the KeyDevice trait).
    let w = world();
    w.member("vault");
    let shown = w.ok(&["member", "show", &w.p("vault.member")]);
    let recipient = shown
        .split_whitespace()
        .find(|t| t.starts_with("age1yubikey1"))
        .unwrap()
        .to_owned();
    w.genesis("payments", "g", Some(&recipient));
    let output = w.p("g/genesis-output.tbundle");
    let fpr = read_output(&output)
        .body
        .quorum_public_key
        .signing
        .fingerprint();
    let out = w.drill(&output, &["--software", &w.p("vault.keys")]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(&format!("quorum key {fpr}")), "{stdout}");
    assert!(stdout.contains("YubiKey (piv-p256)"), "{stdout}");
    // Another device: refused before any decryption is attempted.
    refused(
        &w.drill(&output, &["--software", &w.p("alice.keys")]),
        "nothing was decrypted",
    );
}
