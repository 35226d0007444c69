//! The coordinator's commands enforce the namespace's YubiKey attestation policy on the
//! descriptors they consume: `manifest new` (Manifest and Patch sets) and `genesis run` (share
//! set, refused before anything is sent), with `member show` reporting each descriptor. The
//! attestations come from a Yubico-like test PKI (the virtual card cannot attest).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_bytes::ByteBuf;
use tessera_core::cbor;
use tessera_core::device::{DeviceKind, KeyDevice, SoftwareKeyDevice};
use tessera_core::keys::Role;
use tessera_core::manifest::{Member, MemberSet};
use tessera_core::objects::{
    DescriptorKey, MemberDescriptor, OBJECT_VERSION, PivAttestation, SlotCertificate,
};
use tessera_core::quorum::QuorumSeed;
use tessera_core::yubikey_attest_fake::{FakeYubico, SlotSpec};

const SLOTS: [(Role, u8); 3] = [
    (Role::Share, 0x82),
    (Role::Manifest, 0x9c),
    (Role::Patch, 0x83),
];
const AT: &str = "2026-11-29T12:00:00Z";

fn tessera(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("run tessera")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

struct Setup {
    dir: tempfile::TempDir,
    pki: FakeYubico,
    devs: Vec<SoftwareKeyDevice>,
}

impl Setup {
    fn new() -> Self {
        let devs = ["alice", "bob", "carol"]
            .iter()
            .enumerate()
            .map(|(i, a)| SoftwareKeyDevice::from_seed(a, &[u8::try_from(i).unwrap() + 1; 32]))
            .collect();
        let s = Self {
            dir: tempfile::tempdir().unwrap(),
            pki: FakeYubico::generate("TEST Yubico PIV Root CA", false).unwrap(),
            devs,
        };
        std::fs::write(s.path("test-root.pem"), s.pki.trust_pem()).unwrap();
        s
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Member `i`'s descriptor, attested by its (fake) YubiKey with `tweak` applied per slot.
    fn descriptor(
        &mut self,
        i: usize,
        attested: bool,
        tweak: impl Fn(Role, &mut SlotSpec),
    ) -> MemberDescriptor {
        let serial = 1_000_000 + u32::try_from(i).unwrap();
        let dev = &mut self.devs[i];
        let keys: Vec<DescriptorKey> = SLOTS
            .iter()
            .map(|&(role, slot)| DescriptorKey {
                role,
                public_key: dev.public_key(role).unwrap(),
                slot: Some(slot),
            })
            .collect();
        let attestation = attested.then(|| PivAttestation {
            device_certificate: ByteBuf::from(self.pki.device_certificate().to_vec()),
            slots: keys
                .iter()
                .map(|k| {
                    let mut spec = SlotSpec::new(k.slot.unwrap(), serial);
                    tweak(k.role, &mut spec);
                    SlotCertificate {
                        role: k.role,
                        certificate: ByteBuf::from(self.pki.attest(&k.public_key, &spec).unwrap()),
                    }
                })
                .collect(),
        });
        MemberDescriptor {
            version: OBJECT_VERSION,
            alias: dev.alias().to_owned(),
            device: DeviceKind::Yubikey,
            serial: Some(serial),
            keys,
            created_at: AT.to_owned(),
            attestation,
        }
    }

    fn write(&self, name: &str, d: &MemberDescriptor) -> String {
        let p = self.path(name);
        std::fs::write(&p, cbor::encode(d)).unwrap();
        p.to_str().unwrap().to_owned()
    }

    /// A genesis output for the three members' Share keys, and a PCR file.
    fn genesis(&mut self) -> (String, String) {
        let members = self
            .devs
            .iter_mut()
            .map(|d| Member {
                alias: d.alias().to_owned(),
                public_key: d.public_key(Role::Share).unwrap(),
            })
            .collect();
        let set = MemberSet {
            threshold: 2,
            members,
        };
        let out = tessera_core::genesis::split_and_seal(
            &QuorumSeed::from_bytes([7; 32]),
            "payments",
            &set,
            None,
            None,
        )
        .unwrap();
        let g = self.path("genesis.cbor");
        std::fs::write(&g, cbor::encode(&out)).unwrap();
        let pcrs = self.path("pcrs.json");
        let hex48 = "ab".repeat(48);
        std::fs::write(
            &pcrs,
            format!(r#"{{"PCR0":"{hex48}","PCR1":"{hex48}","PCR2":"{hex48}"}}"#),
        )
        .unwrap();
        (
            g.to_str().unwrap().to_owned(),
            pcrs.to_str().unwrap().to_owned(),
        )
    }

    fn manifest_new(&mut self, members: &[String], policy: &[&str], out: &str) -> Output {
        let (g, pcrs) = self.genesis();
        let out = self.path(out);
        let mut args = vec![
            "manifest",
            "new",
            "--namespace",
            "payments",
            "--nonce",
            "1",
            "--genesis",
            &g,
            "--pcrs",
            &pcrs,
            "--app-sha256",
            "0000000000000000000000000000000000000000000000000000000000000000",
            "--manifest-threshold",
            "2",
            "--patch-threshold",
            "2",
            "--attestation-at",
            AT,
            "-o",
            out.to_str().unwrap(),
        ];
        for m in members {
            args.extend(["--manifest-member", m, "--patch-member", m]);
        }
        args.extend(policy);
        tessera(&args)
    }
}

fn root_args(s: &Setup) -> Vec<String> {
    vec![
        "--member-attestation".into(),
        "required".into(),
        "--yubikey-root".into(),
        s.path("test-root.pem").to_str().unwrap().into(),
    ]
}

fn args(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn manifest_new_accepts_attested_members_and_shows_each() {
    let mut s = Setup::new();
    let files: Vec<String> = (0..3)
        .map(|i| {
            let d = s.descriptor(i, true, |_, _| {});
            s.write(&format!("m{i}.member"), &d)
        })
        .collect();
    let policy = root_args(&s);
    let out = s.manifest_new(&files, &args(&policy), "ok.manifest");
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(
        t.contains("WARNING: attestations are checked against --yubikey-root"),
        "{t}"
    );
    assert!(
        t.contains(
            "  alice: YubiKey USB-C keychain, serial 1000000, firmware 5.7.1, generated on device; share: PIN once, touch always"
        ),
        "{t}"
    );
    assert!(s.path("ok.manifest").exists());
}

#[test]
fn manifest_new_refuses_each_lie_and_writes_nothing() {
    let mut s = Setup::new();
    let good: Vec<String> = (0..2)
        .map(|i| {
            let d = s.descriptor(i, true, |_, _| {});
            s.write(&format!("m{i}.member"), &d)
        })
        .collect();
    let policy = root_args(&s);
    let cases: Vec<(MemberDescriptor, &str)> = vec![
        (
            s.descriptor(2, false, |_, _| {}),
            "member carol: no YubiKey attestation, and this namespace requires one",
        ),
        (
            {
                // The coordinator swaps alice's Manifest key into carol's attested descriptor.
                let mut d = s.descriptor(2, true, |_, _| {});
                d.keys[1].public_key = s.devs[0].public_key(Role::Manifest).unwrap();
                d
            },
            "member carol: the manifest key's attestation is for another key",
        ),
        (
            s.descriptor(2, true, |role, spec| {
                if role == Role::Share {
                    spec.touch_policy = 1;
                }
            }),
            "member carol: the share key's touch policy is never, this namespace requires at least cached",
        ),
        (
            s.descriptor(2, true, |_, spec| {
                spec.firmware = tessera_core::yubikey_attest::Firmware(5, 4, 3);
            }),
            "member carol: the YubiKey's firmware is 5.4.3, this namespace requires at least 5.7.0",
        ),
        (
            s.descriptor(2, true, |_, spec| spec.serial = 42),
            "member carol: the share key's attestation is from YubiKey serial 42",
        ),
        (
            s.descriptor(2, true, |role, spec| {
                if role == Role::Patch {
                    spec.not_after = time::macros::datetime!(2026-01-01 00:00 UTC);
                }
            }),
            "member carol: the patch key's attestation does not verify: the slot certificate (YubiKey PIV Attestation 83) expired",
        ),
    ];
    for (n, (bad, expect)) in cases.iter().enumerate() {
        let mut files = good.clone();
        files.push(s.write(&format!("bad{n}.member"), bad));
        let out = s.manifest_new(&files, &args(&policy), &format!("bad{n}.manifest"));
        let t = text(&out);
        assert_eq!(out.status.code(), Some(1), "{t}");
        assert!(t.contains(expect), "case {n}: expected {expect:?} in\n{t}");
        assert!(!s.path(&format!("bad{n}.manifest")).exists());
    }
    // Attested by the test PKI, checked against Yubico's published roots: refused.
    let mut files = good.clone();
    let d = s.descriptor(2, true, |_, _| {});
    files.push(s.write("m2.member", &d));
    let out = s.manifest_new(
        &files,
        &["--member-attestation", "required"],
        "published.manifest",
    );
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains("does not chain to a pinned Yubico PIV attestation root"),
        "{t}"
    );
}

#[test]
fn optional_attestation_shows_unattested_members() {
    let mut s = Setup::new();
    let files: Vec<String> = (0..3)
        .map(|i| {
            let d = s.descriptor(i, i != 1, |_, _| {});
            s.write(&format!("m{i}.member"), &d)
        })
        .collect();
    let policy = [
        "--yubikey-root".to_owned(),
        s.path("test-root.pem").to_str().unwrap().to_owned(),
    ];
    let out = s.manifest_new(&files, &args(&policy), "dev.manifest");
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(
        t.contains("YubiKey attestation policy: optional (dev)"),
        "{t}"
    );
    assert!(t.contains("  bob: NOT ATTESTED"), "{t}");
    assert!(t.contains("  carol: YubiKey USB-C keychain"), "{t}");
}

#[test]
fn genesis_run_refuses_before_contacting_the_relay() {
    let mut s = Setup::new();
    let mut members = Vec::new();
    for i in 0..3 {
        let d = s.descriptor(i, i != 2, |_, _| {});
        members.push(s.write(&format!("m{i}.member"), &d));
    }
    let out_dir = s.path("genesis-out");
    let policy = root_args(&s);
    let mut a = vec![
        "genesis",
        "run",
        // Nothing listens here: a refusal must come before any request.
        "--relay",
        "http://127.0.0.1:9",
        "--namespace",
        "payments",
        "--threshold",
        "2",
        "--attestation-at",
        AT,
        "-o",
        out_dir.to_str().unwrap(),
    ];
    for m in &members {
        a.extend(["--member", m.as_str()]);
    }
    a.extend(args(&policy));
    let out = tessera(&a);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains("member carol: no YubiKey attestation") && t.contains("nothing was sent"),
        "{t}"
    );
    assert!(!Path::new(&out_dir).join("genesis-output.tbundle").exists());
}

#[test]
fn member_show_reports_the_attestation() {
    let mut s = Setup::new();
    let d = s.descriptor(0, true, |_, _| {});
    let f = s.write("alice.member", &d);
    let out = tessera(&["member", "show", &f]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    // Checked against Yubico's published roots, a test PKI's attestation does not verify.
    assert!(
        t.contains("attestation DOES NOT VERIFY: the share key's attestation does not verify"),
        "{t}"
    );
    let d = s.descriptor(1, false, |_, _| {});
    let f = s.write("bob.member", &d);
    let t = text(&tessera(&["member", "show", &f]));
    assert!(t.contains("attestation none"), "{t}");
}

impl Setup {
    /// `manifest approve` of `manifest` by member `i` (software keys, EMULATED enclave root so
    /// the PCR check is waived), with `extra` arguments; returns the output and the approval path.
    fn approve(&self, i: usize, manifest: &str, extra: &[&str], tag: &str) -> (Output, PathBuf) {
        let keys = self.path(&format!("{tag}.keys"));
        self.devs[i].save(&keys).unwrap();
        let pins = self.path(&format!("{tag}.pins"));
        anchor_pin(&keys, &pins, manifest);
        let code = tessera(&["manifest", "show", manifest, "--confirm-code"]);
        assert!(code.status.success(), "{}", text(&code));
        let code = String::from_utf8_lossy(&code.stdout).trim().to_owned();
        let approval = self.path(&format!("{tag}.approval"));
        let mut a = vec![
            "manifest",
            "approve",
            manifest,
            "--software",
            keys.to_str().unwrap(),
            "--confirm",
            &code,
            "--root",
            "EMULATED",
            "--attestation-at",
            AT,
        ];
        let state = self.path(&format!("{tag}.state"));
        a.extend([
            "--pins",
            pins.to_str().unwrap(),
            "--state-dir",
            state.to_str().unwrap(),
            "-o",
            approval.to_str().unwrap(),
        ]);
        a.extend(extra);
        (tessera(&a), approval)
    }
}

/// The member's pin for the manifest's namespace, as `genesis verify` of an EMULATED genesis with
/// this manifest's quorum key and Manifest set would anchor it (these tests' genesis is not
/// attested, so it is made here, on the member's software key device and its ledger).
fn anchor_pin(keys: &Path, pins: &Path, manifest: &str) {
    use operator_tui::member::pin::{NamespacePin, PcrPolicy, PinStore};
    let bytes = std::fs::read(manifest).unwrap();
    let payload =
        airgap_bundle::Bundle::decode(&bytes).map_or(bytes, airgap_bundle::Bundle::into_payload);
    let Ok(m) = tessera_core::manifest::Manifest::decode(&payload) else {
        return;
    };
    let mut dev = SoftwareKeyDevice::load(keys).unwrap();
    let owner = dev.public_key(Role::Manifest).unwrap();
    let pin = NamespacePin::new(
        &m.namespace.name,
        owner,
        m.namespace.quorum_public_key,
        m.manifest_set.clone(),
        tessera_core::bytes::ByteArray(tessera_core::attestation::TrustAnchor::emulated().sha256()),
        PcrPolicy::WaivedDev,
    );
    PinStore::new(pins).save(&pin, &mut dev).unwrap();
}

/// Three attested members' descriptor files and a manifest of them (checked by `manifest new`).
fn attested_manifest(s: &mut Setup) -> (Vec<String>, String) {
    let files: Vec<String> = (0..3)
        .map(|i| {
            let d = s.descriptor(i, true, |_, _| {});
            s.write(&format!("m{i}.member"), &d)
        })
        .collect();
    let policy = root_args(s);
    let out = s.manifest_new(&files, &args(&policy), "ok.manifest");
    assert!(out.status.success(), "{}", text(&out));
    (files, s.path("ok.manifest").to_str().unwrap().to_owned())
}

fn with_members<'a>(files: &'a [String], policy: &'a [String]) -> Vec<&'a str> {
    let mut a = Vec::new();
    for f in files {
        a.extend(["--member", f.as_str()]);
    }
    a.extend(args(policy));
    a
}

#[test]
fn manifest_approve_shows_each_members_attestation() {
    let mut s = Setup::new();
    let (files, manifest) = attested_manifest(&mut s);
    let policy = root_args(&s);
    let (out, approval) = s.approve(0, &manifest, &with_members(&files, &policy), "alice");
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(
        t.contains("YubiKey attestation policy: required")
            && t.contains("WARNING: attestations are checked against --yubikey-root"),
        "{t}"
    );
    for (alias, serial) in [
        ("alice", 1_000_000),
        ("bob", 1_000_001),
        ("carol", 1_000_002),
    ] {
        let line = format!(
            "{alias}: YubiKey USB-C keychain, serial {serial}, firmware 5.7.1, generated on device; share: PIN once, touch always"
        );
        assert!(t.contains(&line), "{line:?} missing in\n{t}");
    }
    assert!(approval.exists());
}

#[test]
fn manifest_approve_refuses_a_descriptor_of_other_keys() {
    let mut s = Setup::new();
    let (mut files, manifest) = attested_manifest(&mut s);
    // The coordinator hands out a genuinely attested descriptor named carol, of other keys
    // (another YubiKey's), so that the line shown for carol describes a key the manifest
    // does not hold.
    let mut other = SoftwareKeyDevice::from_seed("carol", &[9; 32]);
    std::mem::swap(&mut s.devs[2], &mut other);
    let swapped = s.descriptor(2, true, |_, _| {});
    std::mem::swap(&mut s.devs[2], &mut other);
    files[2] = s.write("swapped.member", &swapped);
    let policy = root_args(&s);
    let (out, approval) = s.approve(0, &manifest, &with_members(&files, &policy), "alice");
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains("carol: the descriptor's manifest key") && t.contains("is not the manifest's"),
        "{t}"
    );
    assert!(t.contains("nothing was signed"), "{t}");
    assert!(!approval.exists());
}

#[test]
fn manifest_approve_under_required_refuses_a_missing_or_failing_attestation() {
    let mut s = Setup::new();
    let (files, manifest) = attested_manifest(&mut s);
    let policy = root_args(&s);
    // carol's descriptor not given.
    let (out, approval) = s.approve(0, &manifest, &with_members(&files[..2], &policy), "a1");
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains(
            "carol: no member descriptor was given, and this namespace requires YubiKey attestation"
        ),
        "{t}"
    );
    assert!(!approval.exists());
    // No descriptor at all under required: every member refused.
    let (out, approval) = s.approve(0, &manifest, &args(&policy), "a2");
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("alice: no member descriptor was given"), "{t}");
    assert!(!approval.exists());
    // Given, but judged against Yubico's published roots: the test PKI does not chain.
    let (out, approval) = s.approve(
        0,
        &manifest,
        &with_members(&files, &["--member-attestation".into(), "required".into()]),
        "a3",
    );
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains("does not chain to a pinned Yubico PIV attestation root"),
        "{t}"
    );
    assert!(!approval.exists());
    // A share key whose touch policy is below the policy's minimum.
    let weak = s.descriptor(2, true, |role, spec| {
        if role == Role::Share {
            spec.touch_policy = 1;
        }
    });
    let mut weak_files = files.clone();
    weak_files[2] = s.write("weak.member", &weak);
    let (out, approval) = s.approve(0, &manifest, &with_members(&weak_files, &policy), "a4");
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains("member carol: the share key's touch policy is never"),
        "{t}"
    );
    assert!(!approval.exists());
}

#[test]
fn manifest_approve_optional_notes_unattested_members() {
    let mut s = Setup::new();
    let (mut files, manifest) = attested_manifest(&mut s);
    let bare = s.descriptor(1, false, |_, _| {});
    files[1] = s.write("bare.member", &bare);
    let policy = [
        "--yubikey-root".to_owned(),
        s.path("test-root.pem").to_str().unwrap().to_owned(),
    ];
    let (out, approval) = s.approve(0, &manifest, &with_members(&files[..2], &policy), "a");
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("bob: NOT ATTESTED"), "{t}");
    assert!(
        t.contains("carol: not checked (no member descriptor given)"),
        "{t}"
    );
    assert!(t.contains("alice: YubiKey USB-C keychain"), "{t}");
    assert!(approval.exists());
}

#[test]
fn manifest_approve_refuses_two_descriptors_for_one_member_and_notes_strays() {
    let mut s = Setup::new();
    let (files, manifest) = attested_manifest(&mut s);
    let policy = root_args(&s);
    // A second, unattested descriptor for bob next to his attested one: which one the member
    // saw would be the coordinator's choice.
    let bare = s.descriptor(1, false, |_, _| {});
    let mut twice = files.clone();
    twice.push(s.write("bob-again.member", &bare));
    let (out, approval) = s.approve(0, &manifest, &with_members(&twice, &policy), "a1");
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains("bob: more than one member descriptor was given"),
        "{t}"
    );
    assert!(!approval.exists());
    // A descriptor for someone no set names is shown and ignored.
    let mut stranger = s.descriptor(2, true, |_, _| {});
    stranger.alias = "mallory".to_owned();
    let mut extra = files.clone();
    extra.push(s.write("mallory.member", &stranger));
    let (out, approval) = s.approve(0, &manifest, &with_members(&extra, &policy), "a2");
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(
        t.contains("mallory: a descriptor was given, but no set of this manifest names them"),
        "{t}"
    );
    assert!(approval.exists());
}

impl Setup {
    /// `trust manifest-set` of `manifest` by member `i` (software keys), with `extra` arguments;
    /// returns the output and the member's pin folder.
    fn trust_set(&self, i: usize, manifest: &str, extra: &[&str], tag: &str) -> (Output, PathBuf) {
        let keys = self.path(&format!("{tag}.keys"));
        self.devs[i].save(&keys).unwrap();
        let code = tessera(&["manifest", "show", manifest, "--confirm-code"]);
        assert!(code.status.success(), "{}", text(&code));
        let code = String::from_utf8_lossy(&code.stdout).trim().to_owned();
        let pins = self.path(&format!("{tag}.pins"));
        let mut a = vec![
            "trust",
            "manifest-set",
            manifest,
            "--software",
            keys.to_str().unwrap(),
            "--confirm",
            &code,
            "--pins",
            pins.to_str().unwrap(),
            "--attestation-at",
            AT,
        ];
        a.extend(extra);
        (tessera(&a), pins)
    }
}

/// A member who approves no manifest records the Manifest set with `trust manifest-set`: the
/// same member-key review as an approval runs, so a descriptor of other keys is refused there
/// and the pin is not touched; with the genuine descriptors the member keys pass and only the
/// pin (no genesis verified here, so none exists) stops it.
#[test]
fn trust_manifest_set_reviews_the_members_keys_first() {
    let mut s = Setup::new();
    let (mut files, manifest) = attested_manifest(&mut s);
    let policy = root_args(&s);

    let (out, _) = s.trust_set(1, &manifest, &with_members(&files, &policy), "bob");
    let t = text(&out);
    assert!(
        t.contains("alice: YubiKey USB-C keychain, serial 1000000"),
        "the review shows each member: {t}"
    );
    assert!(t.contains("no pin for namespace"), "{t}");

    let mut other = SoftwareKeyDevice::from_seed("carol", &[9; 32]);
    std::mem::swap(&mut s.devs[2], &mut other);
    let swapped = s.descriptor(2, true, |_, _| {});
    std::mem::swap(&mut s.devs[2], &mut other);
    files[2] = s.write("swapped.member", &swapped);
    let (out, pins) = s.trust_set(1, &manifest, &with_members(&files, &policy), "bob2");
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains("carol: the descriptor's manifest key") && t.contains("is not the manifest's"),
        "{t}"
    );
    assert!(t.contains("your pin is unchanged"), "{t}");
    assert!(
        !pins.exists() || std::fs::read_dir(&pins).unwrap().next().is_none(),
        "nothing written to the pins"
    );

    // Required (root_args), and no descriptors at all: refused before anything else.
    let (out, _) = s.trust_set(1, &manifest, &args(&policy), "bob3");
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("your pin is unchanged"), "{t}");
}
