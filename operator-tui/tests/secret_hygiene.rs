//! Secret hygiene: the whole demo (`scripts/demo.sh`: dev enclave, relay, five software members,
//! genesis, approvals, boot, three provisions, an app signature) runs with `RUST_LOG=trace` and
//! full backtraces, and every byte it printed or wrote is searched for every secret of the
//! ceremony: the quorum seed, the quorum signing scalar, each member's share (`x || y`, and `y`
//! alone), each software member's private keys, the disaster-recovery identity (its
//! `AGE-SECRET-KEY-1…` line and its 32-byte scalar; the demo drills it and restores the seed
//! with it to a new share set, whose shares are searched for too), and the PINs the card tests
//! type.
//!
//! The test learns the seed the way only a quorum could: it decrypts three members' stored
//! shares with their key files and combines them (and checks another three agree). Nothing in
//! Tessera prints a secret for it to find.
//!
//! Searched: the demo's stdout and stderr, everything under its output directory (logs,
//! transcript, bundles, attestation, approvals state), its `$HOME` and `$TMPDIR`, and the app's
//! screen snapshots. Not searched: the software key files and the DR identity file (secret by
//! design) and the age-encrypted share files (ciphertext). Each secret is looked for as raw bytes, lower and upper hex,
//! standard and URL-safe base64 at every byte alignment (padded or not), and as a Rust `{:?}`
//! byte list.

mod ceremony_support;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::{Deserialize, Serialize};
use tessera_core::device::SoftwareKeyDevice;
use tessera_core::provision::open_share;
use tessera_core::shamir::{self, Share};

const MEMBERS: [&str; 5] = ["alice", "bob", "carol", "dave", "erin"];

/// Every PIN and PUK the card and app tests type (`tests/yubikey_support/mod.rs`, `tests/tui.rs`).
const PINS: [&str; 5] = ["246810", "135791", "97531864", "86420975", "947261"];

/// `target/<profile>`, where `tessera` and (built on demand) the enclave and relay are.
fn profile_dir() -> PathBuf {
    ceremony_support::binary("tessera-enclave")
        .parent()
        .expect("binaries inside target/<profile>")
        .to_path_buf()
}

/// The software key file layout (`tessera_core::device`), read independently of the device code.
#[derive(Serialize, Deserialize)]
struct KeyFile {
    format: String,
    alias: String,
    keys: BTreeMap<tessera_core::keys::Role, serde_bytes::ByteBuf>,
}

struct Secret {
    label: String,
    bytes: Vec<u8>,
}

impl Secret {
    fn new(label: impl Into<String>, bytes: &[u8]) -> Self {
        Self {
            label: label.into(),
            bytes: bytes.to_vec(),
        }
    }
}

struct Needle {
    label: String,
    form: String,
    bytes: Vec<u8>,
    /// Short secrets (PINs) only count when not inside a longer run of letters and digits, so
    /// that a PIN's digits turning up inside a hex hash is not reported.
    bounded: bool,
}

const STD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Unpadded base64; whole groups are all the search needs.
fn base64(data: &[u8], alphabet: &[u8; 64]) -> String {
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(char::from(alphabet[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

/// The base64 characters that depend only on `secret` when it starts `offset` (0..3) bytes into
/// a group: these appear in any base64 encoding of any buffer holding `secret` at that alignment,
/// padded or not.
fn base64_core(secret: &[u8], offset: usize, alphabet: &[u8; 64]) -> String {
    let mut shifted = vec![0u8; offset];
    shifted.extend_from_slice(secret);
    let encoded = base64(&shifted, alphabet);
    let first = offset.div_ceil(3) * 4;
    let last = shifted.len() / 3 * 4;
    encoded[first..last].to_owned()
}

fn needles(secret: &Secret, bounded: bool) -> Vec<Needle> {
    let s = &secret.bytes;
    let mut forms = vec![
        ("raw".to_owned(), s.clone()),
        ("hex".to_owned(), hex::encode(s).into_bytes()),
        ("HEX".to_owned(), hex::encode_upper(s).into_bytes()),
    ];
    if s.len() >= 16 {
        for (name, alphabet) in [("base64", STD), ("base64url", URL)] {
            for offset in 0..3 {
                forms.push((
                    format!("{name} at alignment {offset}"),
                    base64_core(s, offset, alphabet).into_bytes(),
                ));
            }
        }
        let debug = format!("{s:?}");
        forms.push((
            "{:?} byte list".to_owned(),
            debug.as_bytes()[1..debug.len() - 1].to_vec(),
        ));
    } else {
        // Short secrets: whole encodings only, since a few characters of a partial group would
        // match by chance.
        for (name, alphabet) in [("base64", STD), ("base64url", URL)] {
            let plain = base64(s, alphabet);
            let padded = format!("{plain}{}", "=".repeat((4 - plain.len() % 4) % 4));
            forms.push((name.to_owned(), plain.into_bytes()));
            forms.push((format!("{name} padded"), padded.into_bytes()));
        }
    }
    forms
        .into_iter()
        .map(|(form, bytes)| Needle {
            label: secret.label.clone(),
            form,
            bytes,
            bounded,
        })
        .collect()
}

/// Finds every needle in `hay` in one pass, indexed by each needle's first four bytes.
fn find(hay: &[u8], needles: &[Needle]) -> Vec<(usize, usize)> {
    let mut index: HashMap<[u8; 4], Vec<usize>> = HashMap::new();
    for (i, n) in needles.iter().enumerate() {
        assert!(n.bytes.len() >= 4, "{} {} too short", n.label, n.form);
        index
            .entry(n.bytes[..4].try_into().expect("four bytes"))
            .or_default()
            .push(i);
    }
    let mut hits = Vec::new();
    for pos in 0..hay.len().saturating_sub(3) {
        let key: [u8; 4] = hay[pos..pos + 4].try_into().expect("four bytes");
        let Some(candidates) = index.get(&key) else {
            continue;
        };
        for &i in candidates {
            let n = &needles[i];
            if !hay[pos..].starts_with(&n.bytes) {
                continue;
            }
            let end = pos + n.bytes.len();
            let alnum = |b: Option<&u8>| b.is_some_and(u8::is_ascii_alphanumeric);
            if n.bounded && (alnum(pos.checked_sub(1).map(|p| &hay[p])) || alnum(hay.get(end))) {
                continue;
            }
            hits.push((i, pos));
        }
    }
    hits
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let path = entry.expect("directory entry").path();
        let meta = std::fs::symlink_metadata(&path).expect("metadata");
        if meta.is_dir() {
            files_under(&path, out);
        } else if meta.is_file() {
            out.push(path);
        }
    }
}

/// Secret by design (key files) or ciphertext of a secret (stored shares).
fn exempt(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    Path::new(name)
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("keys") || e == "age-identity")
        || name.ends_with(".share.age")
}

fn report(place: &str, hay: &[u8], needles: &[Needle], leaks: &mut Vec<String>) {
    for (i, pos) in find(hay, needles) {
        let n = &needles[i];
        leaks.push(format!("{place} @ {pos}: {} as {}", n.label, n.form));
    }
}

/// The ceremony's secrets, recovered from the demo's key files and stored shares.
fn ceremony_secrets(out: &Path) -> Vec<Secret> {
    let mut secrets = Vec::new();
    let mut shares: Vec<Share> = Vec::new();
    for m in MEMBERS {
        let key_path = out.join(format!("members/{m}.keys"));
        let bytes = std::fs::read(&key_path).expect("key file");
        let file: KeyFile = tessera_core::cbor::decode(&bytes, "software key file")
            .expect("key file is canonical CBOR");
        assert_eq!(file.alias, m);
        assert!(file.format.contains("DEV/TEST"), "{}", file.format);
        assert_eq!(file.keys.len(), 3, "{m} has a key per role");
        for (role, scalar) in &file.keys {
            assert_eq!(scalar.len(), 32);
            secrets.push(Secret::new(format!("{m}'s {role} private key"), scalar));
        }

        let mut device = SoftwareKeyDevice::load(&key_path).expect("loading the key file");
        let sealed = std::fs::read(out.join(format!("members/{m}.share.age"))).expect("share");
        let share = open_share(&mut device, &sealed, "secret-hygiene test").expect("decrypt");
        let bytes = share.to_bytes();
        secrets.push(Secret::new(format!("{m}'s share x||y"), &bytes));
        secrets.push(Secret::new(format!("{m}'s share y"), &bytes[1..]));
        shares.push(share);
    }

    // Shares handed out later (the demo's reshard) are secrets too: `<member>.<what>.share.age`.
    let mut later = Vec::new();
    files_under(&out.join("members"), &mut later);
    for path in later {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("")
            .to_owned();
        let Some((m, rest)) = name.split_once('.') else {
            continue;
        };
        if !rest.ends_with(".share.age") {
            continue;
        }
        let key_path = out.join(format!("members/{m}.keys"));
        let mut device = SoftwareKeyDevice::load(&key_path).expect("loading the key file");
        let sealed = std::fs::read(&path).expect("share");
        let share = open_share(&mut device, &sealed, "secret-hygiene test").expect("decrypt");
        let bytes = share.to_bytes();
        secrets.push(Secret::new(format!("{name} x||y"), &bytes));
        secrets.push(Secret::new(format!("{name} y"), &bytes[1..]));
    }

    // The DR identity the demo's genesis wrapped the seed to, as text and as its scalar.
    let identity = std::fs::read_to_string(out.join("dr/dr.age-identity")).expect("DR identity");
    let line = identity
        .lines()
        .find(|l| l.starts_with("AGE-SECRET-KEY-1"))
        .expect("an AGE-SECRET-KEY-1 line");
    secrets.push(Secret::new("the DR identity line", line.as_bytes()));
    secrets.push(Secret::new(
        "the DR identity's lower-case line",
        line.to_lowercase().as_bytes(),
    ));
    secrets.push(Secret::new("the DR X25519 scalar", &bech32_data(line)));

    let seed = shamir::combine(&shares[..3], 3).expect("combining alice, bob, carol");
    let again = shamir::combine(&shares[2..], 3).expect("combining carol, dave, erin");
    assert_eq!(
        seed.as_bytes(),
        again.as_bytes(),
        "two quorums must reconstruct the same seed, or the test found the wrong secret"
    );
    secrets.push(Secret::new("the quorum seed", seed.as_bytes()));
    secrets.push(Secret::new(
        "the quorum signing key",
        &seed.signing_key().to_bytes(),
    ));
    secrets
}

/// The data of a bech32 string (checksum not checked: the key file was just written).
fn bech32_data(s: &str) -> Vec<u8> {
    const CHARSET: &[u8] = b"qpzry9x8gf2tvdw0s3jn54khce6mua7l";
    let lower = s.to_lowercase();
    let data = &lower[lower.rfind('1').expect("separator") + 1..];
    let values: Vec<u32> = data[..data.len() - 6]
        .bytes()
        .map(|c| {
            CHARSET
                .iter()
                .position(|&x| x == c)
                .expect("bech32 character") as u32
        })
        .collect();
    let (mut acc, mut bits, mut out) = (0u32, 0u32, Vec::new());
    for v in values {
        acc = (acc << 5) | v;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    assert_eq!(out.len(), 32, "an X25519 scalar");
    out
}

#[test]
fn the_demo_never_prints_or_writes_a_secret() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let out = tmp.path().join("out");
    let home = tmp.path().join("home");
    let scratch = tmp.path().join("tmp");
    for d in [&home, &scratch] {
        std::fs::create_dir_all(d).expect("mkdir");
    }

    let run = Command::new("bash")
        .arg(ceremony_support::workspace().join("scripts/demo.sh"))
        .current_dir(ceremony_support::workspace())
        .env("BIN", profile_dir())
        .env("OUT", &out)
        .env("HOME", &home)
        .env("TMPDIR", &scratch)
        .env("RUST_LOG", "trace")
        .env("RUST_BACKTRACE", "full")
        .env_remove("KEEP")
        .output()
        .expect("running scripts/demo.sh");
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        run.status.success(),
        "demo failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    assert!(stdout.contains("done; artifacts"), "{stdout}");

    let secrets = ceremony_secrets(&out);
    let mut all: Vec<Needle> = secrets.iter().flat_map(|s| needles(s, false)).collect();
    for pin in PINS {
        all.extend(needles(
            &Secret::new(format!("PIN/PUK {pin}"), pin.as_bytes()),
            true,
        ));
    }

    // The scan must be able to see what it looks for: each key file holds its scalars raw.
    let alice_keys = std::fs::read(out.join("members/alice.keys")).expect("key file");
    assert!(
        find(&alice_keys, &all)
            .iter()
            .any(|&(i, _)| all[i].label.starts_with("alice's") && all[i].form == "raw"),
        "the scanner does not find alice's keys in her own key file"
    );

    let dr_identity = std::fs::read(out.join("dr/dr.age-identity")).expect("DR identity");
    assert!(
        find(&dr_identity, &all)
            .iter()
            .any(|&(i, _)| all[i].label == "the DR identity line"),
        "the scanner does not find the DR identity in its own file"
    );

    let mut leaks = Vec::new();
    report("demo stdout", &run.stdout, &all, &mut leaks);
    report("demo stderr", &run.stderr, &all, &mut leaks);

    let mut files = Vec::new();
    for dir in [&out, &home, &scratch] {
        files_under(dir, &mut files);
    }
    let mut scanned = 0usize;
    for path in files.iter().filter(|p| !exempt(p)) {
        let bytes = std::fs::read(path).expect("reading an output file");
        scanned += 1;
        report(&path.display().to_string(), &bytes, &all, &mut leaks);
    }
    assert!(scanned >= 20, "only {scanned} files written? {files:?}");
    for must in ["transcript.jsonl", "enclave.log", "relay.log"] {
        assert!(
            files.iter().any(|p| p.ends_with(must)),
            "{must} was not written"
        );
    }
    // The services did log at their most verbose: frame digests and per-request lines.
    let log = |name: &str| std::fs::read_to_string(out.join(name)).expect("service log");
    let (enclave_log, relay_log) = (log("enclave.log"), log("relay.log"));
    assert!(
        enclave_log.contains("TRACE") && enclave_log.contains("request_sha256"),
        "enclave.log has no trace lines:\n{enclave_log}"
    );
    assert!(
        relay_log.contains("DEBUG") && relay_log.contains("/v1/share-bundle"),
        "relay.log has no request lines:\n{relay_log}"
    );

    let mut snapshots = Vec::new();
    files_under(
        &ceremony_support::workspace().join("operator-tui/tests/snapshots"),
        &mut snapshots,
    );
    assert!(!snapshots.is_empty(), "no app snapshots to scan");
    for path in &snapshots {
        let bytes = std::fs::read(path).expect("reading a snapshot");
        report(&path.display().to_string(), &bytes, &all, &mut leaks);
    }

    assert!(
        leaks.is_empty(),
        "secrets found in {} places:\n{}",
        leaks.len(),
        leaks.join("\n")
    );
    eprintln!(
        "secret hygiene: {} secrets in {} forms, {} output files + stdout/stderr + {} snapshots: clean",
        secrets.len() + PINS.len(),
        all.len(),
        scanned,
        snapshots.len()
    );
}

#[test]
fn the_scanner_finds_every_encoding_at_every_offset() {
    let secret = Secret::new("s", &(1u8..=32).collect::<Vec<_>>());
    let all = needles(&secret, false);
    for pad in 0..3 {
        let mut blob = vec![0xAAu8; pad];
        blob.extend_from_slice(&secret.bytes);
        blob.extend_from_slice(b"tail");
        let forms = [
            blob.clone(),
            hex::encode(&blob).into_bytes(),
            hex::encode_upper(&blob).into_bytes(),
            base64(&blob, STD).into_bytes(),
            base64(&blob, URL).into_bytes(),
            format!("{blob:?}").into_bytes(),
        ];
        for hay in forms {
            assert!(
                !find(&hay, &all).is_empty(),
                "missed at offset {pad}: {}",
                String::from_utf8_lossy(&hay)
            );
        }
    }
    let pin = needles(&Secret::new("pin", b"246810"), true);
    assert!(!find(b"PIN: 246810\n", &pin).is_empty());
    assert!(find(b"ab246810cd", &pin).is_empty(), "inside a hash");
    assert!(!find(b"\"MjQ2ODEw\"", &pin).is_empty(), "base64 of the PIN");
}
