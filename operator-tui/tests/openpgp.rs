//! OpenPGP against the real tools: Tessera's exported keys and transcript signatures verify with
//! gpg (and sq where installed); builders' statements signed by gpg keys are accepted at their
//! threshold of pinned keys and refused otherwise. Software key devices only; the same path on
//! the virtual YubiKey is in `openpgp_card.rs`.

mod pgp_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use operator_tui::openpgp::{self, Keyring, StatementError};
use pgp_support::{GpgHome, sq, sq_verify};
use tempfile::TempDir;
use tessera_core::device::SoftwareKeyDevice;
use tessera_core::transcript::{Record, append};

fn tessera(args: &[&str], transcript: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(args)
        .env("TESSERA_TRANSCRIPT", transcript)
        .stdin(Stdio::null())
        .output()
        .expect("run tessera")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn assert_ok(out: &Output) {
    assert!(
        out.status.success(),
        "tessera failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
}

struct Member {
    dir: TempDir,
    keys: PathBuf,
    session: PathBuf,
}

impl Member {
    fn new(alias: &str, seed: u8) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let keys = dir.path().join(format!("{alias}.keys"));
        SoftwareKeyDevice::from_seed(alias, &[seed; 32])
            .save(&keys)
            .expect("save software keys");
        let session = dir.path().join("session.jsonl");
        Self { dir, keys, session }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn run(&self, args: &[&str]) -> Output {
        tessera(args, &self.session)
    }

    /// A transcript of a few ceremony steps.
    fn transcript(&self, name: &str) -> PathBuf {
        let t = self.path(name);
        for (i, action) in ["genesis.verify", "manifest.approve", "provision.share"]
            .iter()
            .enumerate()
        {
            append(
                &t,
                &format!("2026-03-0{}T10:00:00Z", i + 1),
                Record::new(action, "approved").input("object", action.as_bytes()),
            )
            .expect("append");
        }
        t
    }

    fn export(&self, alias: &str, out: &Path, extra: &[&str]) -> serde_json::Value {
        let mut args = vec![
            "key",
            "export",
            "--openpgp",
            "--software",
            self.keys.to_str().unwrap(),
            "--alias",
            alias,
            "-o",
            out.to_str().unwrap(),
            "--json",
        ];
        args.extend_from_slice(extra);
        let o = self.run(&args);
        assert_ok(&o);
        serde_json::from_slice(&o.stdout).expect("export JSON")
    }

    fn sign(&self, transcript: &Path, sig: &Path, extra: &[&str]) -> Output {
        let mut args = vec![
            "transcript",
            "sign",
            transcript.to_str().unwrap(),
            "--software",
            self.keys.to_str().unwrap(),
            "-o",
            sig.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        self.run(&args)
    }
}

#[test]
fn transcript_signature_verifies_with_gpg_and_sq() {
    let m = Member::new("alice", 1);
    let t = m.transcript("ceremony.jsonl");
    let key = m.path("alice.asc");
    let exported = m.export("alice", &key, &[]);
    let fpr = exported["fingerprint"].as_str().unwrap().to_owned();
    assert_eq!(fpr.len(), 40, "{exported}");

    let sig = m.path("ceremony.jsonl.asc");
    let o = m.sign(&t, &sig, &[]);
    assert_ok(&o);
    assert!(text(&o.stdout).contains(&fpr), "{}", text(&o.stdout));
    let armored = std::fs::read_to_string(&sig).unwrap();
    assert!(
        armored.starts_with("-----BEGIN PGP SIGNATURE-----"),
        "{armored}"
    );

    let gpg = GpgHome::new();
    gpg.gpg_ok(&["--import", key.to_str().unwrap()]);
    let v = gpg.verify(&sig, &t);
    let status = text(&v.stdout);
    assert!(v.status.success(), "{status}\n{}", text(&v.stderr));
    assert!(
        status.contains(&format!("[GNUPG:] VALIDSIG {fpr}")),
        "{status}"
    );
    // gpg reports the key as ECDSA over NIST P-256.
    let listing = text(&gpg.gpg_ok(&["--with-colons", "--list-keys", &fpr]).stdout);
    assert!(listing.contains(":nistp256:"), "{listing}");
    assert!(
        listing.contains("alice (tessera manifest key)"),
        "{listing}"
    );

    // One byte changed: gpg says BADSIG.
    let tampered = m.path("tampered.jsonl");
    let mut bytes = std::fs::read(&t).unwrap();
    let at = bytes.iter().position(|&b| b == b'2').unwrap();
    bytes[at] = b'3';
    std::fs::write(&tampered, &bytes).unwrap();
    let bad = gpg.verify(&sig, &tampered);
    assert!(!bad.status.success());
    assert!(
        text(&bad.stdout).contains("BADSIG"),
        "{}",
        text(&bad.stdout)
    );

    if let Some(sq) = sq() {
        let good = sq_verify(&sq, &key, &sig, &t);
        assert!(
            good.status.success(),
            "sq: {}{}",
            text(&good.stdout),
            text(&good.stderr)
        );
        let bad = sq_verify(&sq, &key, &sig, &tampered);
        assert!(!bad.status.success(), "sq accepted a tampered transcript");
    }

    // Signing is recorded in the session transcript, which is another file.
    let session = std::fs::read_to_string(&m.session).unwrap();
    assert!(session.contains("\"transcript.sign\""), "{session}");
}

#[test]
fn fingerprint_is_stable_and_follows_created() {
    let m = Member::new("bob", 2);
    let first = m.export("bob", &m.path("a.asc"), &[]);
    let second = m.export("bob", &m.path("b.asc"), &[]);
    assert_eq!(first["fingerprint"], second["fingerprint"]);
    assert_eq!(first["created"], openpgp::DEFAULT_CREATED);
    let other = m.export(
        "bob",
        &m.path("c.asc"),
        &["--created", "2026-02-03T04:05:06Z"],
    );
    assert_ne!(first["fingerprint"], other["fingerprint"]);

    // A signature made with the other creation time names the other fingerprint; gpg finds
    // the matching key only.
    let t = m.transcript("t.jsonl");
    let sig = m.path("t.asc");
    assert_ok(&m.sign(&t, &sig, &["--created", "2026-02-03T04:05:06Z"]));
    let gpg = GpgHome::new();
    gpg.gpg_ok(&["--import", m.path("a.asc").to_str().unwrap()]);
    let v = gpg.verify(&sig, &t);
    assert!(!v.status.success(), "verified with the wrong key");
    assert!(text(&v.stdout).contains("NO_PUBKEY"), "{}", text(&v.stdout));
    gpg.gpg_ok(&["--import", m.path("c.asc").to_str().unwrap()]);
    assert!(gpg.verify(&sig, &t).status.success());

    // Refused: an export file that exists, and a creation time that is not a whole second.
    let again = m.run(&[
        "key",
        "export",
        "--openpgp",
        "--software",
        m.keys.to_str().unwrap(),
        "--alias",
        "bob",
        "-o",
        m.path("a.asc").to_str().unwrap(),
    ]);
    assert!(!again.status.success());
    let frac = m.run(&[
        "key",
        "export",
        "--openpgp",
        "--software",
        m.keys.to_str().unwrap(),
        "--alias",
        "bob",
        "--created",
        "2026-02-03T04:05:06.5Z",
    ]);
    assert_eq!(frac.status.code(), Some(2), "{}", text(&frac.stderr));
}

#[test]
fn export_to_stdout_is_only_the_key() {
    let m = Member::new("carol", 3);
    let o = m.run(&[
        "key",
        "export",
        "--openpgp",
        "--software",
        m.keys.to_str().unwrap(),
        "--alias",
        "carol",
    ]);
    assert_ok(&o);
    let out = text(&o.stdout);
    assert!(
        out.starts_with("-----BEGIN PGP PUBLIC KEY BLOCK-----"),
        "{out}"
    );
    assert!(
        out.trim_end()
            .ends_with("-----END PGP PUBLIC KEY BLOCK-----"),
        "{out}"
    );
    // The descriptor export still needs its output file.
    let d = m.run(&[
        "key",
        "export",
        "--software",
        m.keys.to_str().unwrap(),
        "--alias",
        "carol",
    ]);
    assert_eq!(d.status.code(), Some(2));
}

#[test]
fn a_broken_transcript_is_not_signed() {
    let m = Member::new("dave", 4);
    let t = m.transcript("t.jsonl");
    let mut lines: Vec<String> = std::fs::read_to_string(&t)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    lines.swap(1, 2);
    std::fs::write(&t, lines.join("\n") + "\n").unwrap();
    let sig = m.path("t.asc");
    let o = m.sign(&t, &sig, &[]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("line 2"), "{}", text(&o.stderr));
    assert!(!sig.exists());
}

/// Three builders with gpg keys; two of them pinned.
struct Builders {
    gpg: GpgHome,
    dir: TempDir,
    keyring: PathBuf,
}

const B1: &str = "Builder One <one@builders.example>";
const B2: &str = "Builder Two <two@builders.example>";
const B3: &str = "Unpinned Three <three@elsewhere.example>";

impl Builders {
    fn new() -> Self {
        let gpg = GpgHome::new();
        gpg.generate(B1, "nistp256");
        gpg.generate(B2, "ed25519");
        gpg.generate(B3, "nistp256");
        let dir = tempfile::tempdir().unwrap();
        let keyring = dir.path().join("keyring");
        std::fs::create_dir(&keyring).unwrap();
        gpg.export(B1, &keyring.join("one.asc"));
        gpg.export(B2, &keyring.join("two.asc"));
        // The same key pinned twice is one key.
        gpg.export(B1, &keyring.join("one-again.asc"));
        Self { gpg, dir, keyring }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn statement(&self, name: &str) -> PathBuf {
        let p = self.path(name);
        let body = format!(
            "{{\"image\": \"payments-enclave\", \"version\": \"1.4.2\", \"pcrs\": {{\"PCR0\": \"{}\", \"PCR1\": \"{}\", \"PCR2\": \"{}\"}}}}\n",
            "a1".repeat(48),
            "b2".repeat(48),
            "c3".repeat(48)
        );
        std::fs::write(&p, body).unwrap();
        p
    }

    fn sign(&self, uid: &str, statement: &Path, name: &str) -> PathBuf {
        let sig = self.path(name);
        self.gpg.detach_sign(uid, statement, &sig, &[]);
        sig
    }

    fn verify(
        &self,
        statement: &Path,
        sigs: &[&Path],
        threshold: usize,
    ) -> (Output, serde_json::Value) {
        let k = threshold.to_string();
        let mut args = vec!["pcrs", "verify-statement", statement.to_str().unwrap()];
        for s in sigs {
            args.extend_from_slice(&["--sig", s.to_str().unwrap()]);
        }
        args.extend_from_slice(&[
            "--keyring",
            self.keyring.to_str().unwrap(),
            "--threshold",
            &k,
            "--json",
        ]);
        let o = tessera(&args, &self.path("session.jsonl"));
        let v = serde_json::from_slice(&o.stdout).unwrap_or(serde_json::Value::Null);
        (o, v)
    }

    fn library(
        &self,
        statement: &Path,
        sigs: &[&Path],
        threshold: usize,
    ) -> Result<openpgp::VerifiedStatement, StatementError> {
        let bytes = std::fs::read(statement).unwrap();
        let sigs: Vec<Vec<u8>> = sigs.iter().map(|s| std::fs::read(s).unwrap()).collect();
        let ring = Keyring::from_dir(&self.keyring).unwrap();
        openpgp::verify_statement(&bytes, &sigs, &ring, threshold)
    }
}

fn reasons(v: &serde_json::Value) -> String {
    v["rejected"]
        .as_array()
        .map(|r| {
            r.iter()
                .map(|x| x["reason"].as_str().unwrap_or_default().to_owned())
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default()
}

#[test]
fn builders_statements_at_a_threshold_of_pinned_keys() {
    let b = Builders::new();
    let st = b.statement("statement.json");
    let s1 = b.sign(B1, &st, "one.asc");
    let s2 = b.sign(B2, &st, "two.asc");
    let s3 = b.sign(B3, &st, "three.asc");
    let s1b = b.sign(B1, &st, "one-again.asc");

    // Two pinned builders, threshold 2: accepted, both named.
    let (o, v) = b.verify(&st, &[&s1, &s2], 2);
    assert_ok(&o);
    assert_eq!(v["accepted"], true, "{v}");
    let signers = v["signers"].to_string();
    assert!(
        signers.contains("Builder One") && signers.contains("Builder Two"),
        "{v}"
    );
    assert_eq!(v["pcrs"]["PCR1"], "b2".repeat(48));
    assert_eq!(v["image"], "payments-enclave");
    let lib = b.library(&st, &[&s1, &s2], 2).expect("library accepts");
    assert_eq!(lib.pcrs[2], [0xc3; 48]);
    assert_eq!(lib.signers.len(), 2);
    assert!(
        lib.signers
            .iter()
            .any(|s| s.starts_with("Builder Two <two@builders.example> ("))
    );

    // Threshold 3 with two pinned builders: refused.
    let (o, v) = b.verify(&st, &[&s1, &s2], 3);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    assert_eq!(v["valid"], 2, "{v}");
    assert!(matches!(
        b.library(&st, &[&s1, &s2], 3),
        Err(StatementError::BelowThreshold {
            valid: 2,
            threshold: 3,
            ..
        })
    ));

    // An unpinned signer is reported and not counted.
    let (o, v) = b.verify(&st, &[&s1, &s3], 2);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(v["valid"], 1, "{v}");
    assert!(reasons(&v).contains("not pinned"), "{v}");
    // ...but does not spoil a threshold the pinned ones reach.
    let (o, v) = b.verify(&st, &[&s1, &s3, &s2], 2);
    assert_ok(&o);
    assert!(reasons(&v).contains("not pinned"), "{v}");

    // Two signatures by one key, and one file given twice: counted once.
    let (o, v) = b.verify(&st, &[&s1, &s1b], 2);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(v["valid"], 1, "{v}");
    assert!(reasons(&v).contains("counted once"), "{v}");
    let (o, v) = b.verify(&st, &[&s1, &s1], 2);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(v["valid"], 1, "{v}");

    // Tampered statement: still valid JSON, one PCR digit changed; no signature verifies.
    let tampered = b.path("tampered.json");
    let body = std::fs::read_to_string(&st)
        .unwrap()
        .replacen("a1a1", "a1a2", 1);
    std::fs::write(&tampered, body).unwrap();
    let (o, v) = b.verify(&tampered, &[&s1, &s2], 1);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(v["valid"], 0, "{v}");
    assert!(reasons(&v).contains("does not verify"), "{v}");

    // A text-mode signature is refused: statements are signed as bytes.
    let text_sig = b.path("text.asc");
    b.gpg.detach_sign(B1, &st, &text_sig, &["--textmode"]);
    let (o, v) = b.verify(&st, &[&text_sig], 1);
    assert_eq!(o.status.code(), Some(1));
    assert!(reasons(&v).contains("binary mode"), "{v}");

    // A signature file that is not one is reported, not fatal.
    let junk = b.path("junk.asc");
    std::fs::write(&junk, "not a signature").unwrap();
    let (o, v) = b.verify(&st, &[&junk, &s1, &s2], 2);
    assert_ok(&o);
    assert_eq!(v["rejected"].as_array().unwrap().len(), 1, "{v}");

    // Threshold 0 is a usage error.
    let (o, _) = b.verify(&st, &[&s1], 0);
    assert_eq!(o.status.code(), Some(2));
}

/// A builder using sq (its default key: an Ed25519 signing subkey under a certification-only
/// primary) counts like a gpg builder, by its certificate.
#[test]
fn a_statement_signed_with_sq_counts() {
    let Some(sq) = sq() else { return };
    let b = Builders::new();
    let st = b.statement("statement.json");
    let home = tempfile::tempdir().unwrap();
    let key = b.path("sq-builder.pgp");
    let run = |args: &[&str]| {
        Command::new(&sq)
            .env("SEQUOIA_HOME", home.path())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run sq")
    };
    let generated = run(&[
        "key",
        "generate",
        "--userid",
        "Sq Builder <sq@builders.example>",
        "--export",
        key.to_str().unwrap(),
    ]);
    if !generated.status.success() {
        eprintln!(
            "SKIPPED the sq builder check: this sq has another key generation syntax: {}",
            text(&generated.stderr)
        );
        return;
    }
    let cert = run(&["key", "extract-cert", key.to_str().unwrap()]);
    assert!(cert.status.success(), "{}", text(&cert.stderr));
    std::fs::write(b.keyring.join("sq-builder.pgp"), cert.stdout).unwrap();
    let signed = run(&[
        "sign",
        "--detached",
        "--signer-key",
        key.to_str().unwrap(),
        st.to_str().unwrap(),
    ]);
    assert!(signed.status.success(), "{}", text(&signed.stderr));
    let sq_sig = b.path("sq.asc");
    std::fs::write(&sq_sig, signed.stdout).unwrap();
    let s1 = b.sign(B1, &st, "one.asc");
    let (o, v) = b.verify(&st, &[&s1, &sq_sig], 2);
    assert_ok(&o);
    assert!(v["signers"].to_string().contains("Sq Builder"), "{v}");
}

#[test]
fn statements_are_parsed_strictly_before_signatures_count() {
    let b = Builders::new();
    let st = b.path("extra.json");
    std::fs::write(
        &st,
        format!(
            "{{\"image\": \"x\", \"version\": \"1\", \"note\": \"hi\", \"pcrs\": {{\"PCR0\": \"{0}\", \"PCR1\": \"{0}\", \"PCR2\": \"{0}\"}}}}",
            "ab".repeat(48)
        ),
    )
    .unwrap();
    // Validly signed by both pinned builders, but not the statement shape: refused.
    let s1 = b.sign(B1, &st, "1.asc");
    let s2 = b.sign(B2, &st, "2.asc");
    let (o, v) = b.verify(&st, &[&s1, &s2], 2);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    assert!(
        v["error"].as_str().unwrap_or_default().contains("note"),
        "{v}"
    );

    let short = b.path("short.json");
    std::fs::write(
        &short,
        format!(
            "{{\"image\": \"x\", \"version\": \"1\", \"pcrs\": {{\"PCR0\": \"{0}\", \"PCR1\": \"{0}\", \"PCR2\": \"{1}\"}}}}",
            "ab".repeat(48),
            "ab".repeat(32)
        ),
    )
    .unwrap();
    let s = b.sign(B1, &short, "s.asc");
    assert!(matches!(
        b.library(&short, &[&s], 1),
        Err(StatementError::Parse(_))
    ));
}

#[test]
fn a_keyring_is_checked_file_by_file() {
    let b = Builders::new();
    std::fs::write(b.keyring.join("notes.txt"), "pinned on 2026-03-01").unwrap();
    let err = Keyring::from_dir(&b.keyring).unwrap_err();
    assert!(err.to_string().contains("notes.txt"), "{err}");
    std::fs::remove_file(b.keyring.join("notes.txt")).unwrap();

    // Secret keys have no place among pinned keys.
    let secret = b.gpg.gpg_ok(&["--armor", "--export-secret-keys", B1]);
    std::fs::write(b.keyring.join("secret.asc"), secret.stdout).unwrap();
    let err = Keyring::from_dir(&b.keyring).unwrap_err();
    assert!(err.to_string().contains("secret"), "{err}");
    std::fs::remove_file(b.keyring.join("secret.asc")).unwrap();

    // B1 twice is one key.
    assert_eq!(Keyring::from_dir(&b.keyring).unwrap().len(), 2);
}

#[test]
fn pcrs_keeps_its_other_inputs() {
    let m = Member::new("erin", 5);
    let o = m.run(&["pcrs", "--instance-id", "i-1234567890abcdef0"]);
    assert_ok(&o);
    assert_eq!(text(&o.stdout).trim().len(), 96, "{}", text(&o.stdout));
}
