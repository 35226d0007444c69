//! A hostile host and a hostile coordinator try to collect the Quorum Key from members, on the
//! real binaries: a dev enclave and the relay as processes, `tessera` run as a member runs it.
//! In every attack the member's share never leaves (no share bundle is written), the command
//! exits 1 naming the check that refused, and the transcript records the refusal.

mod ceremony_support;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use ceremony_support::{Services, Tmux, files, ok_in, only_file, services_of, tessera_in};

/// One namespace `real`: alice, bob and carol hold 2-of-3 shares; each pinned the quorum key,
/// the Manifest set {alice, bob, carol} 2-of-3 and the trust anchor at genesis; alice and bob
/// approved manifest nonce 1; carol followed it with `trust manifest-set`; the enclave booted it.
///
/// Every enclave here, the attacker's included, is a dev enclave of one fleet CA: as under the
/// AWS root in production, an attacker can run genuine enclaves of their own image and manifest.
struct World {
    dir: tempfile::TempDir,
    real: Services,
    code1: String,
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

    /// Drafts a manifest of namespace `ns` from the real genesis output with the PCRs of
    /// enclave `tag`, Manifest set `set` at `threshold`; returns (path, code).
    fn draft(
        &self,
        name: &str,
        ns: &str,
        nonce: u64,
        tag: &str,
        set: &[&str],
        threshold: u8,
    ) -> (String, String) {
        let out = self.p(&format!("{name}.tbundle"));
        let members: Vec<String> = set.iter().map(|m| self.p(&format!("{m}.member"))).collect();
        let pcrs = self.p(&format!("{tag}-pcrs.json"));
        let genesis = self.p("genesis/genesis-output.tbundle");
        let nonce = nonce.to_string();
        let threshold = threshold.to_string();
        let mut args = vec![
            "manifest",
            "new",
            "--namespace",
            ns,
            "--nonce",
            &nonce,
            "--genesis",
            &genesis,
            "--pcrs",
            &pcrs,
            "--manifest-threshold",
            &threshold,
            "--patch-threshold",
            "1",
            "--app-sha256",
            "0000000000000000000000000000000000000000000000000000000000000001",
        ];
        for m in &members {
            args.extend_from_slice(&["--manifest-member", m, "--patch-member", m]);
        }
        args.extend_from_slice(&["-o", &out]);
        self.ok(&args);
        let code = self
            .ok(&["manifest", "show", &out, "--confirm-code"])
            .trim()
            .to_owned();
        (out, code)
    }

    /// Approvals by `by` (each with their own pins, against enclave `tag`'s root), collected
    /// into an envelope.
    fn approve(
        &self,
        manifest: &str,
        code: &str,
        by: &[&str],
        tag: &str,
        envelope: &str,
    ) -> String {
        self.approve_only(manifest, code, by, tag, envelope);
        let env = self.p(&format!("{envelope}.tbundle"));
        let mut args = vec![
            "manifest".to_owned(),
            "envelope".to_owned(),
            manifest.to_owned(),
        ];
        for m in by {
            args.extend([
                "--approval".to_owned(),
                self.p(&format!("{m}-{envelope}.approval")),
            ]);
        }
        args.extend(["-o".to_owned(), env.clone()]);
        self.ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
        env
    }

    fn approve_only(&self, manifest: &str, code: &str, by: &[&str], tag: &str, envelope: &str) {
        for m in by {
            let out = self.approve_as(m, manifest, code, tag, &format!("{m}-{envelope}.approval"));
            assert!(
                out.status.success(),
                "{m}'s approval failed:\n{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    /// A fresh enclave `tag` booted with a manifest of namespace `ns` whose Manifest set is `set`
    /// at `threshold`, approved by `by`; returns the enclave, a request bundle from it (in
    /// `usb-<tag>`) and the manifest's code.
    fn booted(
        &self,
        tag: &str,
        ns: &str,
        nonce: u64,
        set: &[&str],
        threshold: u8,
        by: &[&str],
    ) -> (Services, String, String, String) {
        let svc = services(self.dir.path(), tag);
        let (m, code) = self.draft(tag, ns, nonce, tag, set, threshold);
        let env = self.approve(&m, &code, by, tag, &format!("{tag}-envelope"));
        self.boot(&svc, &env, tag);
        let (req, usb) = self.request(&svc, &format!("usb-{tag}"));
        (svc, req, usb, code)
    }

    fn boot(&self, svc: &Services, envelope: &str, tag: &str) {
        self.ok(&[
            "boot",
            "--relay",
            &svc.relay,
            envelope,
            "--root",
            &self.p(&format!("{tag}-root.pem")),
        ]);
    }

    /// A fresh request bundle from `svc` in its own USB folder.
    fn request(&self, svc: &Services, usb: &str) -> (String, String) {
        let usb = self.p(usb);
        std::fs::create_dir_all(&usb).unwrap();
        self.ok(&["provision", "request", "--relay", &svc.relay, "-o", &usb]);
        let req = only_file(Path::new(&usb), "request-")
            .to_string_lossy()
            .into_owned();
        (req, usb)
    }

    /// `provision sign` by `m` with `extra` arguments (root, eif, ...).
    fn sign(&self, m: &str, req: &str, usb: &str, code: &str, extra: &[&str]) -> Output {
        let (share, keys, pins) = (
            self.p(&format!("{m}.share.age")),
            self.p(&format!("{m}.keys")),
            self.p(&format!("{m}.pins")),
        );
        let mut args = vec![
            "provision",
            "sign",
            req,
            "--share",
            &share,
            "--software",
            &keys,
            "--pins",
            &pins,
            "--confirm",
            code,
            "-o",
            usb,
        ];
        args.extend_from_slice(extra);
        tessera_in(&self.t(), &args)
    }

    /// The sign was refused by the check named `needle`; no share left; the transcript says so.
    fn refused(&self, out: &Output, needle: &str, usb: &str) {
        let err = String::from_utf8_lossy(&out.stderr);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(1),
            "expected a refusal:\n{stdout}\n{err}"
        );
        assert!(
            err.contains(needle),
            "refusal does not name {needle:?}:\n{stdout}\n{err}"
        );
        assert!(err.contains("next:"), "refusal names no next step:\n{err}");
        assert!(
            files(Path::new(usb), "share-").is_empty(),
            "a share bundle was written"
        );
        let transcript = std::fs::read_to_string(self.t()).unwrap();
        let last = transcript.lines().last().unwrap_or_default();
        assert!(last.contains("refused"), "transcript's last entry: {last}");
    }

    /// `genesis verify` of `output` (a path) by `m` against the real enclave's root, storing the
    /// share as `share_out`; not required to succeed.
    fn verify_genesis(&self, m: &str, output: &str, share_out: &str) -> Output {
        tessera_in(
            &self.t(),
            &[
                "genesis",
                "verify",
                output,
                "--attestation",
                &self.p("genesis/genesis-attestation.cbor"),
                "--pcrs",
                &self.p("real-pcrs.json"),
                "--root",
                &self.p("real-root.pem"),
                "--software",
                &self.p(&format!("{m}.keys")),
                "--share-out",
                &self.p(share_out),
                "--pins",
                &self.p(&format!("{m}.pins")),
            ],
        )
    }

    fn pin_file(&self, m: &str) -> PathBuf {
        only_file(Path::new(&self.p(&format!("{m}.pins"))), "real.")
    }
}

/// A dev enclave and relay `tag`, its documents issued by the fleet's one CA.
fn services(dir: &Path, tag: &str) -> Services {
    services_of(dir, tag, Some(&dir.join("fleet-ca")))
}

fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let real = services(dir.path(), "real");
    let mut w = World {
        dir,
        real,
        code1: String::new(),
    };
    for m in ["alice", "bob", "carol"] {
        w.member(m);
    }
    let gdir = w.p("genesis");
    let mut args = vec![
        "genesis",
        "run",
        "--relay",
        &w.real.relay,
        "--namespace",
        "real",
        "--threshold",
        "2",
    ];
    let members: Vec<String> = ["alice", "bob", "carol"]
        .iter()
        .map(|m| w.p(&format!("{m}.member")))
        .collect();
    for m in &members {
        args.extend_from_slice(&["--member", m]);
    }
    args.extend_from_slice(&["-o", &gdir]);
    w.ok(&args);
    for m in ["alice", "bob", "carol"] {
        let out = w.verify_genesis(
            m,
            &w.p("genesis/genesis-output.tbundle"),
            &format!("{m}.share.age"),
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = String::from_utf8_lossy(&out.stdout);
        assert!(out.contains("pinned namespace real"), "{out}");
    }
    let (m1, code1) = w.draft(
        "manifest1",
        "real",
        1,
        "real",
        &["alice", "bob", "carol"],
        2,
    );
    let env1 = w.approve(&m1, &code1, &["alice", "bob"], "real", "envelope1");
    w.boot(&w.real, &env1, "real");
    w.ok(&[
        "trust",
        "manifest-set",
        &env1,
        "--software",
        &w.p("carol.keys"),
        "--pins",
        &w.p("carol.pins"),
        "--confirm",
        &code1,
    ]);
    w.code1 = code1;
    w
}

#[test]
fn a_foreign_namespace_with_the_real_share_set_gets_no_share() {
    let w = world();
    // The attacker's own namespace, approved 1-of-1 by the attacker, listing the real share set
    // and quorum key, booted on the attacker's enclave with its own root and PCRs.
    w.member("mallory");
    let (_evil, req, usb, code) = w.hostile("evil", "evil", 1, &["mallory"], 1, "mallory");
    // Even with the attacker's announced code and root, carol's pin decides.
    let out = w.sign(
        "carol",
        &req,
        &usb,
        &code,
        &["--root", &w.p("evil-root.pem")],
    );
    w.refused(&out, "no pin for namespace evil", &usb);

    // The same trick inside the real namespace: the attacker's Manifest set, not the pinned one.
    let (_swap, req, usb, code) = w.hostile("swap", "real", 2, &["mallory"], 1, "mallory");
    let out = w.sign(
        "carol",
        &req,
        &usb,
        &code,
        &["--root", &w.p("swap-root.pem")],
    );
    w.refused(
        &out,
        "approvals: 0 of 2 approvals from your pinned Manifest set",
        &usb,
    );
}

#[test]
fn a_manifest_set_change_is_followed_only_with_the_pinned_sets_approval() {
    let w = world();
    w.member("dave");
    // The pinned set (alice, bob) approves nonce 2, which adds dave: carol hands over and her
    // pin moves to the new set.
    let (_next, req, usb, code) = w.booted(
        "next",
        "real",
        2,
        &["alice", "bob", "carol", "dave"],
        2,
        &["alice", "bob"],
    );
    let out = w.sign(
        "carol",
        &req,
        &usb,
        &code,
        &["--root", &w.p("next-root.pem")],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("your pin moves to the new set"), "{text}");
    let shown = w.ok(&[
        "trust",
        "show",
        "--software",
        &w.p("carol.keys"),
        "--pins",
        &w.p("carol.pins"),
    ]);
    assert!(
        shown.contains("Manifest set 2 of alice,bob,carol,dave, nonce 2"),
        "{shown}"
    );

    // Now dave alone (in the new set, 1 of the 2 needed) cannot move it again by himself.
    let (_lone, req, usb, code) = w.hostile("lone", "real", 3, &["dave"], 1, "dave");
    let out = w.sign(
        "carol",
        &req,
        &usb,
        &code,
        &["--root", &w.p("lone-root.pem")],
    );
    w.refused(&out, "1 of 2 approvals from your pinned Manifest set", &usb);
}

#[test]
fn an_old_envelope_booted_after_a_restart_gets_no_share() {
    let w = world();
    // alice approves nonce 2: her pin remembers it.
    let (m2, code2) = w.draft("m2", "real", 2, "real", &["alice", "bob", "carol"], 2);
    w.approve_only(&m2, &code2, &["alice"], "real", "partial2");
    // The host restarts the enclave and boots the old nonce-1 envelope again.
    let restarted = services(w.dir.path(), "restart");
    let old = w.p("envelope1.tbundle");
    w.ok(&[
        "boot",
        "--relay",
        &restarted.relay,
        &old,
        "--root",
        &w.p("restart-root.pem"),
    ]);
    let (req, usb) = w.request(&restarted, "usb-restart");
    let out = w.sign(
        "alice",
        &req,
        &usb,
        &w.code1,
        &["--root", &w.p("restart-root.pem")],
    );
    w.refused(&out, "rollback: nonce 1 is below 2", &usb);
}

#[test]
fn pcrs_must_be_reproduced_as_the_pin_says() {
    let w = world();
    let (req, usb) = w.request(&w.real, "usb-real");
    // A dev pin cannot be waived into production: without --root the documents would be
    // checked against the AWS root, which this pin did not accept at genesis.
    let out = w.sign("carol", &req, &usb, &w.code1, &[]);
    w.refused(&out, "trust anchor: documents would be checked against the AWS Nitro root, but at genesis you accepted the DEV root", &usb);

    // The member's policy: reproduce from an EIF.
    w.ok(&[
        "trust",
        "pcr-policy",
        "--namespace",
        "real",
        "--eif",
        "--software",
        &w.p("carol.keys"),
        "--pins",
        &w.p("carol.pins"),
    ]);
    let root = w.p("real-root.pem");
    let out = w.sign("carol", &req, &usb, &w.code1, &["--root", &root]);
    w.refused(&out, "PCR0-2 are not reproduced", &usb);
    // An EIF of another image.
    let eif = ceremony_support::workspace().join("core/tests/vectors/eif/unsigned.eif");
    let eif = eif.to_string_lossy().into_owned();
    let out = w.sign(
        "carol",
        &req,
        &usb,
        &w.code1,
        &["--root", &root, "--eif", &eif],
    );
    w.refused(
        &out,
        "PCR0 reproduced from EIF unsigned.eif differs from the manifest's",
        &usb,
    );
}

#[test]
fn an_edited_or_swapped_pin_is_refused() {
    let w = world();
    let (req, usb) = w.request(&w.real, "usb-real");
    let root = w.p("real-root.pem");
    let carol = w.pin_file("carol");
    let original = std::fs::read(&carol).unwrap();

    // Edited by hand: one byte of the pinned content changed.
    let mut edited = original.clone();
    let i = edited.len() / 2;
    edited[i] ^= 0x01;
    std::fs::write(&carol, &edited).unwrap();
    let out = w.sign("carol", &req, &usb, &w.code1, &["--root", &root]);
    w.refused(&out, "pin: your pin for real is refused", &usb);

    // Swapped for bob's (a valid pin, signed by bob's key).
    std::fs::copy(w.pin_file("bob"), &carol).unwrap();
    let out = w.sign("carol", &req, &usb, &w.code1, &["--root", &root]);
    w.refused(&out, "another member's pin", &usb);

    // Her own pin back: the hand-over goes through.
    std::fs::write(&carol, &original).unwrap();
    let out = w.sign("carol", &req, &usb, &w.code1, &["--root", &root]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(files(Path::new(&usb), "share-").len(), 1);
}

#[test]
fn a_wrong_code_signs_nothing_and_the_prompt_never_shows_the_code() {
    let w = world();
    let (req, usb) = w.request(&w.real, "usb-real");
    let root = w.p("real-root.pem");
    let out = w.sign(
        "carol",
        &req,
        &usb,
        "0000 0000 0000 0000",
        &["--root", &root],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("does not match"), "{err}");
    assert!(files(Path::new(&usb), "share-").is_empty());
    let mut args = vec!["provision", "sign", &req, "--share"];
    let share = w.p("carol.share.age");
    let keys = w.p("carol.keys");
    let pins = w.p("carol.pins");
    args.extend_from_slice(&[
        &share,
        "--software",
        &keys,
        "--pins",
        &pins,
        "--root",
        &root,
        "-o",
        &usb,
    ]);
    let out = tessera_in(&w.t(), &args);
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(!all.contains(&w.code1), "the code was printed:\n{all}");
}

/// The app decides again when the code is entered: a document fresh when the request opened but
/// past the limit by the time of the hand-over is refused then.
#[test]
fn the_app_refuses_a_document_that_went_stale_before_the_hand_over() {
    let w = world();
    let (req, usb) = w.request(&w.real, "usb-app");
    let tmux = Tmux {
        socket: format!("tessera-stale-{}", std::process::id()),
    };
    let app = format!(
        "TESSERA_TRANSCRIPT={} {} open {req} --software {} --pins {} --root {} --dir {usb} --share {} --max-age-secs 6",
        w.t().display(),
        env!("CARGO_BIN_EXE_tessera"),
        w.p("carol.keys"),
        w.p("carol.pins"),
        w.p("real-root.pem"),
        w.p("carol.share.age"),
    );
    tmux.cmd(&["new-session", "-d", "-s", "t", "-x", "80", "-y", "24", &app]);
    let opened = Instant::now();
    tmux.wait_for("✓ attestation");
    tmux.wait_for("✓ pin");
    tmux.keys(&["a"]);
    tmux.wait_for("(16 hex digits)");
    tmux.keys(&[&w.code1]);
    // The document was at most a second old when opened; wait past its 6 s limit.
    std::thread::sleep(Duration::from_secs(8).saturating_sub(opened.elapsed()));
    tmux.keys(&["Enter"]);
    let screen = tmux.wait_for("Refused");
    assert!(screen.contains("s old"), "{screen}");
    drop(tmux);
    assert!(
        files(Path::new(&usb), "share-").is_empty(),
        "a share bundle was written"
    );
    let transcript = std::fs::read_to_string(w.t()).unwrap();
    assert!(
        transcript.contains("provision.sign") && transcript.contains("refused"),
        "{transcript}"
    );
}

/// The app on an 80x24 terminal, with software keys: a mistyped folder is refused before it
/// starts; without `--dir` the share bundle goes next to the request; a wrong code says so; a
/// second hand-over is refused as done; Done names the next step; the QR fits 80x24.
#[test]
fn the_app_at_80x24_writes_next_to_the_request_and_shows_the_qr() {
    let w = world();
    let (req, usb) = w.request(&w.real, "usb-app");
    let keys = w.p("carol.keys");
    let pins = w.p("carol.pins");
    let root = w.p("real-root.pem");
    let share = w.p("carol.share.age");
    let typo = w.p("usb-typo");
    let out = tessera_in(
        &w.t(),
        &[
            "open",
            &req,
            "--software",
            &keys,
            "--pins",
            &pins,
            "--root",
            &root,
            "--dir",
            &typo,
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("is the USB stick mounted?"), "{err}");
    assert!(!Path::new(&typo).exists(), "the missing folder was created");

    let tmux = Tmux {
        socket: format!("tessera-app-{}", std::process::id()),
    };
    let app = format!(
        "TESSERA_TRANSCRIPT={} {} open {req} --software {keys} --pins {pins} --root {root} --share {share}",
        w.t().display(),
        env!("CARGO_BIN_EXE_tessera"),
    );
    tmux.cmd(&["new-session", "-d", "-s", "t", "-x", "80", "-y", "24", &app]);
    let first = tmux.wait_for("✓ attestation");
    tmux.wait_for("✓ pin");
    assert!(first.contains("SOFTWARE KEYS"), "{first}");
    assert!(
        !first.contains(&w.code1),
        "the code is on the screen:\n{first}"
    );
    tmux.keys(&["a"]);
    let prompt = tmux.wait_for("(16 hex digits)");
    assert!(
        !prompt.contains(&w.code1),
        "the prompt shows the code:\n{prompt}"
    );
    tmux.keys(&["0000 0000 0000 0000", "Enter"]);
    tmux.wait_for("code does not match");
    tmux.keys(&[&w.code1, "Enter"]);
    let done = tmux.wait_for("next: carry the USB stick");
    let written = only_file(Path::new(&usb), "share-");
    assert!(
        done.contains("share bundle written"),
        "{done}\n(written: {})",
        written.display()
    );
    tmux.keys(&["Enter", "a"]);
    tmux.wait_for("already handed over");
    tmux.keys(&["Enter", "v"]);
    let qr = tmux.wait_for("Esc close");
    assert!(!qr.contains("too small"), "{qr}");
    assert!(qr.contains("? keys"), "{qr}");
    // Space holds the frame; ? lists the QR view's keys over it.
    tmux.keys(&["Space"]);
    tmux.wait_for("PAUSED");
    tmux.keys(&["?"]);
    let keys = tmux.wait_for("[/]");
    assert!(keys.contains("n/p") && keys.contains("+/-"), "{keys}");
    // q closes the list, then the QR view (Escape followed at once by another key would read
    // as Alt+key).
    tmux.keys(&["q", "q"]);
    tmux.wait_for("Tab screens");
    // The Attestation screen: every value whole behind Enter.
    tmux.keys(&["3"]);
    tmux.wait_for("Enter: whole value");
    tmux.keys(&["j", "j", "j", "Enter"]);
    let detail = tmux.wait_for("Enter or Esc to close");
    assert!(detail.contains("PCR0 attested"), "{detail}");
    // The footer's status is shortened with an ellipsis, never cut at the edge.
    let footer = detail.lines().last().unwrap_or_default();
    assert!(
        footer.chars().count() < 80 || footer.ends_with('…'),
        "{footer:?}"
    );
    tmux.keys(&["Escape", "q"]);
    drop(tmux);
}

/// A member whose post's answer was lost posts the same share bundle again: the enclave already
/// holds it, so the retry says so and succeeds; nothing changes.
#[test]
fn posting_the_same_share_twice_is_already_accepted() {
    let w = world();
    let (req, usb) = w.request(&w.real, "usb-retry");
    let root = w.p("real-root.pem");
    let out = w.sign("carol", &req, &usb, &w.code1, &["--root", &root]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bundle = only_file(Path::new(&usb), "share-");
    let bundle = bundle.to_str().unwrap();
    let first = w.ok(&["provision", "post", "--relay", &w.real.relay, bundle]);
    assert!(
        first.contains("enclave accepted the share of carol (1 of 2)"),
        "{first}"
    );
    let again = w.ok(&["provision", "post", "--relay", &w.real.relay, bundle]);
    assert!(again.contains("already accepted"), "{again}");
    let status = w.ok(&["status", "--relay", &w.real.relay, "--json"]);
    assert!(status.contains("\"shares_from\":[\"carol\"]"), "{status}");
}

/// At 80x24 a manifest whose change lies below the first screen cannot be approved until that
/// row has been on screen; paging down to it, then the code, writes the approval.
#[test]
fn the_app_approves_a_long_manifest_only_after_every_change_was_on_screen() {
    let w = world();
    // Nonce 2 with the Patch set's threshold raised: a change far down the field list.
    let m2 = w.p("manifest2.tbundle");
    let genesis = w.p("genesis/genesis-output.tbundle");
    let pcrs = w.p("real-pcrs.json");
    let members: Vec<String> = ["alice", "bob", "carol"]
        .iter()
        .map(|m| w.p(&format!("{m}.member")))
        .collect();
    let mut args = vec![
        "manifest",
        "new",
        "--namespace",
        "real",
        "--nonce",
        "2",
        "--genesis",
        &genesis,
        "--pcrs",
        &pcrs,
        "--manifest-threshold",
        "2",
        "--patch-threshold",
        "2",
        "--app-sha256",
        "0000000000000000000000000000000000000000000000000000000000000001",
    ];
    for m in &members {
        args.extend_from_slice(&["--manifest-member", m, "--patch-member", m]);
    }
    args.extend_from_slice(&["-o", &m2]);
    w.ok(&args);
    let code2 = w
        .ok(&["manifest", "show", &m2, "--confirm-code"])
        .trim()
        .to_owned();
    // carol's last approval is manifest 1: the baseline of the diff.
    let state = w.p("carol-state");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::copy(w.p("manifest1.tbundle"), format!("{state}/real.manifest")).unwrap();
    let usb = w.p("usb-m2");
    std::fs::create_dir_all(&usb).unwrap();

    let tmux = Tmux {
        socket: format!("tessera-long-{}", std::process::id()),
    };
    let app = format!(
        "TESSERA_TRANSCRIPT={} {} open {m2} --software {} --pins {} --root {} --state-dir {state} --dir {usb}",
        w.t().display(),
        env!("CARGO_BIN_EXE_tessera"),
        w.p("carol.keys"),
        w.p("carol.pins"),
        w.p("real-root.pem"),
    );
    tmux.cmd(&["new-session", "-d", "-s", "t", "-x", "80", "-y", "24", &app]);
    let first = tmux.wait_for("not yet on screen");
    assert!(first.contains("↓ more"), "{first}");
    tmux.keys(&["a"]);
    tmux.wait_for("Cannot sign");
    tmux.keys(&["Enter"]);
    // Two pages down bring the Patch set's rows on screen.
    tmux.keys(&["Space"]);
    tmux.keys(&["Space"]);
    let bottom = tmux.wait_for("patch_set.threshold");
    assert!(!bottom.contains("not yet on screen"), "{bottom}");
    tmux.keys(&["a"]);
    tmux.wait_for("(16 hex digits)");
    tmux.keys(&[&code2, "Enter"]);
    tmux.wait_for("approval written");
    assert_eq!(files(Path::new(&usb), "approval").len(), 1);
    tmux.keys(&["Enter", "q"]);
    drop(tmux);
}

impl World {
    /// `manifest approve` of `manifest` by `m` against the real enclave's root, not required to
    /// succeed.
    fn approve_run(&self, m: &str, manifest: &str, code: &str, out: &str) -> Output {
        self.approve_as(m, manifest, code, "real", out)
    }

    /// `manifest approve` of `manifest` by `m` against enclave `tag`'s root, written to `out`.
    fn approve_as(&self, m: &str, manifest: &str, code: &str, tag: &str, out: &str) -> Output {
        tessera_in(
            &self.t(),
            &[
                "manifest",
                "approve",
                manifest,
                "--software",
                &self.p(&format!("{m}.keys")),
                "--confirm",
                code,
                "--pins",
                &self.p(&format!("{m}.pins")),
                "--root",
                &self.p(&format!("{tag}-root.pem")),
                "--state-dir",
                &self.p(&format!("{m}.state")),
                "-o",
                &self.p(out),
            ],
        )
    }

    /// An approval the attacker signs with their own key outside Tessera (no pin, no review),
    /// written where `manifest envelope` reads it.
    fn forged_approval(&self, m: &str, manifest: &str) -> String {
        use tessera_core::device::{SoftwareKeyDevice, approve};
        let bytes = std::fs::read(manifest).unwrap();
        let payload = airgap_bundle::Bundle::decode(&bytes)
            .unwrap()
            .into_payload();
        let manifest = tessera_core::manifest::Manifest::decode(&payload).unwrap();
        let mut dev = SoftwareKeyDevice::load(Path::new(&self.p(&format!("{m}.keys")))).unwrap();
        let a = approve(
            &mut dev,
            tessera_core::sign::Purpose::Manifest,
            &manifest.hash(),
            "forged",
        )
        .unwrap();
        let path = self.p(&format!("{m}-forged.approval"));
        std::fs::write(&path, tessera_core::cbor::encode(&a)).unwrap();
        path
    }

    /// The attacker's own enclave `tag` (the fleet CA), booted with a manifest of namespace `ns`
    /// whose Manifest set is `set` at `threshold`, approved only by `by` outside Tessera; returns
    /// the enclave, a request bundle and its USB folder, and the manifest's code.
    fn hostile(
        &self,
        tag: &str,
        ns: &str,
        nonce: u64,
        set: &[&str],
        threshold: u8,
        by: &str,
    ) -> (Services, String, String, String) {
        let svc = services(self.dir.path(), tag);
        let (m, code) = self.draft(tag, ns, nonce, tag, set, threshold);
        let approval = self.forged_approval(by, &m);
        let env = self.p(&format!("{tag}-envelope.tbundle"));
        self.ok(&[
            "manifest",
            "envelope",
            &m,
            "--approval",
            &approval,
            "-o",
            &env,
        ]);
        self.boot(&svc, &env, tag);
        let (req, usb) = self.request(&svc, &format!("usb-{tag}"));
        (svc, req, usb, code)
    }

    fn trust_show(&self, m: &str) -> String {
        self.ok(&[
            "trust",
            "show",
            "--software",
            &self.p(&format!("{m}.keys")),
            "--pins",
            &self.p(&format!("{m}.pins")),
        ])
    }
}

/// A command was refused with `needle` in its error, and exited 1.
fn refused_with(out: &Output, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "expected a refusal:\n{}\n{err}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        err.contains(needle),
        "refusal does not name {needle:?}:\n{err}"
    );
}

/// Issue 27, attack 1: a new namespace `evil2` that reuses the real quorum key and share set,
/// with a Manifest set {alice, bob, carol, mallory} at threshold 1. Approving it creates no pin
/// (only a verified genesis does), so no member approves and no share reaches the attacker's
/// enclave; the real genesis output renamed to `evil2` anchors nothing.
#[test]
fn approving_a_new_namespace_creates_no_trust() {
    let w = world();
    w.member("mallory");
    let (m, code) = w.draft(
        "evil2-manifest",
        "evil2",
        1,
        "real",
        &["alice", "bob", "carol", "mallory"],
        1,
    );
    for who in ["alice", "bob", "carol"] {
        let out = w.approve_run(who, &m, &code, &format!("{who}-evil2.approval"));
        refused_with(&out, "no pin for namespace evil2");
        assert!(!Path::new(&w.p(&format!("{who}-evil2.approval"))).exists());
        assert!(
            files(Path::new(&w.p(&format!("{who}.pins"))), "evil2.").is_empty(),
            "{who}'s refused approval left a pin for evil2"
        );
    }
    // The attacker approves alone, outside Tessera, and boots their own enclave with it.
    let (_evil, req, usb, code) = w.hostile(
        "evil2",
        "evil2",
        1,
        &["alice", "bob", "carol", "mallory"],
        1,
        "mallory",
    );
    for who in ["alice", "bob", "carol"] {
        let out = w.sign(who, &req, &usb, &code, &["--root", &w.p("evil2-root.pem")]);
        w.refused(&out, "no pin for namespace evil2", &usb);
    }
    // The real genesis output presented as namespace evil2: the attestation binds the original.
    let bytes = std::fs::read(w.p("genesis/genesis-output.tbundle")).unwrap();
    let payload = airgap_bundle::Bundle::decode(&bytes)
        .unwrap()
        .into_payload();
    let mut renamed = tessera_core::objects::GenesisOutput::decode(&payload).unwrap();
    renamed.body.namespace = "evil2".into();
    let renamed_path = w.p("evil2-genesis.cbor");
    std::fs::write(&renamed_path, tessera_core::cbor::encode(&renamed)).unwrap();
    let out = w.verify_genesis("carol", &renamed_path, "carol-evil2.share.age");
    refused_with(&out, "attestation refused");
    assert!(files(Path::new(&w.p("carol.pins")), "evil2.").is_empty());
}

/// Issue 27, attack 2: carol's pin file is deleted, then replaced by an older copy of her own
/// (validly signed) pin. Her key device's ledger refuses both, `trust manifest-set` cannot
/// re-learn a set from the attacker's envelope, and `genesis verify` does not re-make the pin.
#[test]
fn a_lost_or_older_pin_fails_closed_and_relearns_nothing() {
    let w = world();
    w.member("mallory");
    let carol = w.pin_file("carol");
    let older = std::fs::read(&carol).unwrap();
    // carol approves nonce 2: her pin moves on (a newer pin, recorded on her key device).
    let (m2, code2) = w.draft("m2", "real", 2, "real", &["alice", "bob", "carol"], 2);
    let out = w.approve_run("carol", &m2, &code2, "carol-m2.approval");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let newest = std::fs::read(&carol).unwrap();
    assert_ne!(older, newest);

    // The attacker's set, approved only by the attacker, at a nonce above carol's.
    let (_evil, req, usb, code) = w.hostile("evil", "real", 5, &["mallory"], 1, "mallory");
    let evil_env = w.p("evil-envelope.tbundle");
    let relearn = || {
        tessera_in(
            &w.t(),
            &[
                "trust",
                "manifest-set",
                &evil_env,
                "--software",
                &w.p("carol.keys"),
                "--pins",
                &w.p("carol.pins"),
                "--confirm",
                &code,
            ],
        )
    };
    let root = w.p("evil-root.pem");

    // Deleted: every action refuses, naming the pin the key device records.
    std::fs::remove_file(&carol).unwrap();
    let out = w.sign("carol", &req, &usb, &code, &["--root", &root]);
    w.refused(&out, "missing: your key device records pin #3", &usb);
    refused_with(&relearn(), "missing: your key device records pin #3");
    refused_with(
        &w.approve_run("carol", &m2, &code2, "carol-again.approval"),
        "missing",
    );
    let out = w.verify_genesis(
        "carol",
        &w.p("genesis/genesis-output.tbundle"),
        "carol-again.share.age",
    );
    refused_with(&out, "missing");
    assert!(!carol.exists(), "a refused command wrote a pin");

    // An older copy of her own pin: rolled back.
    std::fs::write(&carol, &older).unwrap();
    let out = w.sign("carol", &req, &usb, &code, &["--root", &root]);
    w.refused(&out, "rolled back: this is pin #2", &usb);
    refused_with(&relearn(), "rolled back");
    assert_eq!(
        std::fs::read(&carol).unwrap(),
        older,
        "the old pin was moved"
    );

    // Her newest pin back: the attacker's set is still refused, now by her pinned set.
    std::fs::write(&carol, &newest).unwrap();
    refused_with(&relearn(), "0 of 2 approvals from your pinned Manifest set");
    let out = w.sign("carol", &req, &usb, &code, &["--root", &root]);
    w.refused(&out, "0 of 2 approvals from your pinned Manifest set", &usb);
    assert!(
        w.trust_show("carol")
            .contains("Manifest set 2 of alice,bob,carol, nonce 2")
    );
}

/// Issue 27, attack 3: the trust anchor is the one accepted at genesis, not a flag. A host with
/// no enclave at all (`--root EMULATED`, unsigned documents), or an enclave under another root,
/// gets no share.
#[test]
fn the_trust_anchor_accepted_at_genesis_cannot_be_replaced_per_command() {
    let w = world();
    let (req, usb) = w.request(&w.real, "usb-anchor");
    let out = w.sign("carol", &req, &usb, &w.code1, &["--root", "EMULATED"]);
    w.refused(
        &out,
        "trust anchor: documents would be checked against EMULATED",
        &usb,
    );
    // An enclave of its own CA (another root), booted with the real, approved envelope.
    let foreign = services_of(w.dir.path(), "foreign", None);
    w.boot(&foreign, &w.p("envelope1.tbundle"), "foreign");
    let (req, usb) = w.request(&foreign, "usb-foreign");
    let out = w.sign(
        "carol",
        &req,
        &usb,
        &w.code1,
        &["--root", &w.p("foreign-root.pem")],
    );
    w.refused(&out, "but at genesis you accepted the DEV root", &usb);
    // The honest hand-over with the anchored root still goes through.
    let (req, usb) = w.request(&w.real, "usb-honest");
    let out = w.sign(
        "carol",
        &req,
        &usb,
        &w.code1,
        &["--root", &w.p("real-root.pem")],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Approving an attacker's manifest that changes the Manifest set does not raise the member's
/// highest nonce: the coordinator cannot burn nonces with sets the pinned set never approves.
#[test]
fn approving_a_set_change_burns_no_nonce() {
    let w = world();
    w.member("mallory");
    let (evil, evil_code) = w.draft("burn", "real", 1_000_000, "real", &["alice", "mallory"], 1);
    let out = w.approve_run("alice", &evil, &evil_code, "alice-burn.approval");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("your highest nonce moves only when"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(w.trust_show("alice").contains("nonce 1"));
    // The honest nonce 2 is still approvable.
    let (m2, code2) = w.draft("m2", "real", 2, "real", &["alice", "bob", "carol"], 2);
    let out = w.approve_run("alice", &m2, &code2, "alice-m2.approval");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(w.trust_show("alice").contains("nonce 2"));
}
