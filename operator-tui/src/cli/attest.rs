//! `tessera attest`: offline verification of Nitro attestation documents.
//!
//! Exit codes: 0 valid and policy met; 1 invalid or policy failed (reason on stderr, and in the
//! JSON with `--json`); 2 usage or I/O error.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use serde_json::{Value, json};
use tessera_core::attestation::{self, AttestationError, Policy, TrustAnchor, VerifiedAttestation};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Verify an attestation document (COSE_Sign1 bytes) against a pinned root and a policy.
    Verify(VerifyArgs),
    /// Verify many documents (files, or every file in a folder) with one verifier that keeps
    /// the intermediates it has checked: a line per document (module, age, PCRs, verdict) and
    /// a summary. Exit 1 when any document fails.
    Audit(AuditArgs),
}

/// The checks `verify` and `audit` share: trust anchor, time, age and expected PCRs.
#[derive(clap::Args)]
pub struct CheckArgs {
    /// Root certificate (PEM) to pin instead of the shipped AWS Nitro root G1, e.g. the dev
    /// enclave's root; `EMULATED` for an emulated enclave's unsigned documents.
    #[arg(long, value_name = "PEM")]
    pub root: Option<PathBuf>,
    /// Validation time: `now`, `doc` (the document's own timestamp, for replaying old
    /// documents) or an RFC 3339 time.
    #[arg(long, value_name = "now|doc|RFC3339", default_value = "now")]
    pub at: String,
    /// Refuse documents older than this at the validation time (e.g. 300, 90s, 15m, 2h, 1d).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub max_age: Option<Duration>,
    /// Require PCR N to equal HEX; repeat for several PCRs.
    #[arg(long = "expect-pcr", value_name = "N=HEX", value_parser = parse_pcr)]
    pub expect_pcr: Vec<(u8, Vec<u8>)>,
    /// Accept debug-mode enclaves (all-zero PCR0), whose memory the parent instance can read.
    #[arg(long)]
    pub allow_debug: bool,
    /// Print JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

impl CheckArgs {
    /// The policy these flags ask for.
    fn policy(&self) -> Policy {
        let mut policy = Policy::new();
        for (index, value) in &self.expect_pcr {
            policy = policy.expect_pcr(*index, value.clone());
        }
        if self.allow_debug {
            policy = policy.allow_debug();
        }
        if let Some(max) = self.max_age {
            policy = policy.max_age(max);
        }
        policy
    }

    /// The validation time for `document`: the error is a usage error's message, or the
    /// document's own refusal when `doc` cannot read its timestamp.
    fn time_for(
        &self,
        document: &[u8],
    ) -> Result<OffsetDateTime, Result<AttestationError, String>> {
        match self.at.as_str() {
            "now" => Ok(OffsetDateTime::now_utc()),
            "doc" => attestation::unverified_timestamp(document).map_err(Ok),
            other => OffsetDateTime::parse(other, &Rfc3339).map_err(|e| {
                Err(format!(
                    "--at {other:?}: expected now, doc or an RFC 3339 time ({e})"
                ))
            }),
        }
    }
}

#[derive(clap::Args)]
pub struct AuditArgs {
    /// Attestation documents, or folders whose every file is one.
    #[arg(required_unless_present = "relay")]
    pub docs: Vec<PathBuf>,
    /// A relay to ask, live, for a fresh document bound to a new random nonce (repeat for every
    /// node); a document that does not carry that nonce is refused as a replay.
    #[arg(long = "relay", value_name = "URL")]
    pub relay: Vec<String>,
    /// Expect PCR0-3 of this manifest (a manifest or envelope, bare or as a bundle).
    #[arg(long, value_name = "FILE")]
    pub manifest: Option<PathBuf>,
    #[command(flatten)]
    pub check: CheckArgs,
}

/// Bytes given as hex on the command line (a newtype so clap takes one value, not a list).
#[derive(Clone, Debug)]
pub struct HexBytes(pub Vec<u8>);

#[derive(clap::Args)]
pub struct VerifyArgs {
    /// The attestation document: raw COSE_Sign1 CBOR as the NSM returns it.
    pub doc: PathBuf,
    #[command(flatten)]
    pub check: CheckArgs,
    /// Require `user_data` to equal HEX.
    #[arg(long, value_name = "HEX", value_parser = parse_hex_arg)]
    pub expect_user_data: Option<HexBytes>,
    /// Require `public_key` to equal HEX.
    #[arg(long, value_name = "HEX", value_parser = parse_hex_arg)]
    pub expect_public_key: Option<HexBytes>,
    /// Require nonce to equal HEX.
    #[arg(long, value_name = "HEX", value_parser = parse_hex_arg)]
    pub expect_nonce: Option<HexBytes>,
}

pub fn run(cmd: Command) -> ExitCode {
    match cmd {
        Command::Verify(args) => verify(&args),
        Command::Audit(args) => audit(&args),
    }
}

fn usage(message: &str) -> ExitCode {
    eprintln!("tessera attest verify: {message}");
    ExitCode::from(2)
}

fn verify(args: &VerifyArgs) -> ExitCode {
    let document = match std::fs::read(&args.doc) {
        Ok(d) => d,
        Err(e) => return usage(&format!("cannot read {}: {e}", args.doc.display())),
    };
    let anchor = match super::common::anchor(args.check.root.as_deref()) {
        Ok(a) => a,
        Err(f) => return usage(&f.message),
    };
    let anchor = &anchor;
    let at = match args.check.time_for(&document) {
        Ok(t) => t,
        Err(Ok(e)) => return refuse(args, &e, None, anchor),
        Err(Err(message)) => return usage(&message),
    };

    let mut policy = args.check.policy();
    if let Some(HexBytes(v)) = &args.expect_user_data {
        policy = policy.expect_user_data(v.clone());
    }
    if let Some(HexBytes(v)) = &args.expect_public_key {
        policy = policy.expect_public_key(v.clone());
    }
    if let Some(HexBytes(v)) = &args.expect_nonce {
        policy = policy.expect_nonce(v.clone());
    }

    let verified = match attestation::verify_without_policy(&document, anchor, at) {
        Ok(v) => v,
        Err(e) => return refuse(args, &e, None, anchor),
    };
    if let Err(e) = policy.check(&verified) {
        return refuse(args, &e, Some(&verified), anchor);
    }

    if args.check.json {
        println!("{}", report(None, Some(&verified), anchor));
    } else {
        print_human(&verified, anchor, args.check.allow_debug);
    }
    ExitCode::SUCCESS
}

fn refuse(
    args: &VerifyArgs,
    error: &AttestationError,
    verified: Option<&VerifiedAttestation>,
    anchor: &TrustAnchor,
) -> ExitCode {
    eprintln!("tessera: attestation document refused: {error}");
    if let Some(hint) = hint(error, &args.check) {
        eprintln!("hint: {hint}");
    }
    if args.check.json {
        println!("{}", report(Some(error), verified, anchor));
    }
    ExitCode::from(1)
}

fn hint(error: &AttestationError, args: &CheckArgs) -> Option<&'static str> {
    match error {
        AttestationError::DebugMode => Some(
            "debug enclaves prove nothing about what runs inside; pass --allow-debug only for development",
        ),
        AttestationError::CertificateExpired { .. } if args.at == "now" => Some(
            "Nitro certificates are short-lived (the leaf about three hours); ask the enclave for a fresh document, or use --at doc to inspect an old one",
        ),
        AttestationError::UntrustedRoot { .. } if args.root.is_none() => Some(
            "the document does not chain to the AWS Nitro root; a dev enclave's root must be pinned with --root",
        ),
        AttestationError::UnsignedEmulated => Some(
            "to inspect an emulated enclave's document, pass --root EMULATED; it proves nothing about Nitro hardware",
        ),
        _ => None,
    }
}

fn audit(args: &AuditArgs) -> ExitCode {
    let anchor = match super::common::anchor(args.check.root.as_deref()) {
        Ok(a) => a,
        Err(f) => return usage(&f.message),
    };
    let mut policy = args.check.policy();
    if let Some(path) = &args.manifest {
        let m = match super::ceremony::load_manifest(path) {
            Ok(m) => m,
            Err(f) => return usage(&f.message),
        };
        for (i, p) in [
            m.enclave.pcr0,
            m.enclave.pcr1,
            m.enclave.pcr2,
            m.enclave.pcr3,
        ]
        .iter()
        .enumerate()
        {
            policy = policy.expect_pcr(i as u8, p.0.to_vec());
        }
    }
    let mut files = Vec::new();
    for p in &args.docs {
        match std::fs::read_dir(p) {
            Ok(entries) => {
                let mut inside: Vec<PathBuf> = entries
                    .flatten()
                    .map(|e| e.path())
                    .filter(|p| p.is_file())
                    .collect();
                inside.sort();
                files.extend(inside);
            }
            Err(_) if p.is_file() => files.push(p.clone()),
            Err(e) => return usage(&format!("{}: {e}", p.display())),
        }
    }
    let verifier = attestation::FleetVerifier::new(&anchor, 256);
    let check = |doc: Result<Vec<u8>, String>, policy: &Policy| {
        doc.and_then(|doc| {
            let at = match args.check.time_for(&doc) {
                Ok(t) => t,
                Err(Ok(e)) => return Err(e.to_string()),
                Err(Err(m)) => return Err(m),
            };
            verifier.verify(&doc, at, policy).map_err(|e| e.to_string())
        })
    };
    let mut rows = Vec::new();
    for file in &files {
        // Documents are a few KiB; anything past the largest bundle is no document.
        let doc = airgap_bundle::usb::read_limited(file, super::common::limits::OBJECT)
            .map_err(|e| e.to_string());
        let name = file.file_name().map_or_else(
            || file.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        rows.push((file.display().to_string(), name, check(doc, &policy)));
    }
    for url in &args.relay {
        let (doc, nonce) = fetch_fresh(url);
        let fresh = policy.clone().expect_nonce(nonce);
        rows.push((url.clone(), url.clone(), check(doc, &fresh)));
    }
    let failed = rows.iter().filter(|(_, _, r)| r.is_err()).count();
    if args.check.json {
        let docs: Vec<Value> = rows
            .iter()
            .map(|(file, _, r)| match r {
                Ok(v) => json!({
                    "file": file,
                    "valid": true,
                    "module_id": v.module_id(),
                    "timestamp": rfc3339(v.timestamp()),
                    "age_secs": (v.validated_at() - v.timestamp()).whole_seconds(),
                }),
                Err(e) => json!({"file": file, "valid": false, "error": e}),
            })
            .collect();
        println!(
            "{}",
            json!({
                "documents": docs,
                "valid": rows.len() - failed,
                "failed": failed,
                "trust": attestation::anchor_label(&anchor),
                "root_sha256": hex::encode(anchor.sha256()),
            })
        );
    } else {
        // With expected PCRs, a valid line means they matched; a mismatch is its refusal.
        let pcrs = if args.manifest.is_some() || !args.check.expect_pcr.is_empty() {
            "match"
        } else {
            "-"
        };
        println!(
            "{:<36} {:<40} {:>8}  {:<5}  verdict",
            "document", "module", "age", "PCRs"
        );
        for (_, name, r) in &rows {
            match r {
                Ok(v) => println!(
                    "{name:<36} {:<40} {:>7}s  {pcrs:<5}  VALID ({})",
                    v.module_id(),
                    (v.validated_at() - v.timestamp()).whole_seconds(),
                    attestation::anchor_label(&anchor)
                ),
                Err(e) => println!(
                    "{name:<36} {:<40} {:>8}  {:<5}  REFUSED: {e}",
                    "-", "-", "-"
                ),
            }
        }
        println!(
            "{} documents: {} valid, {failed} refused (trust {}, {} intermediate links checked once and kept)",
            rows.len(),
            rows.len() - failed,
            attestation::anchor_label(&anchor),
            verifier.kept()
        );
    }
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// Asks the relay at `url` for a document bound to a new random nonce; returns the document (or
/// why there is none) and the nonce it must carry. The relay is not trusted: the document is
/// checked like any other, and the nonce proves it was made for this request.
fn fetch_fresh(url: &str) -> (Result<Vec<u8>, String>, Vec<u8>) {
    use rand::TryRng;
    let mut nonce = vec![0u8; 32];
    if let Err(e) = rand::rngs::SysRng.try_fill_bytes(&mut nonce) {
        return (Err(format!("no randomness for a nonce: {e}")), nonce);
    }
    let path = format!("/v1/attestation?nonce={}", hex::encode(&nonce));
    let doc = super::common::Relay::new(url)
        .get(&path)
        .map_err(|f| f.message)
        .and_then(|doc| {
            if doc.len() > super::common::limits::OBJECT {
                Err(format!(
                    "the relay's document is over {} bytes",
                    super::common::limits::OBJECT
                ))
            } else {
                Ok(doc)
            }
        });
    (doc, nonce)
}

fn hex_or_null(v: Option<&[u8]>) -> Value {
    v.map_or(Value::Null, |b| Value::String(hex::encode(b)))
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

/// The `--json` report; document fields are null when the document itself was refused.
fn report(
    error: Option<&AttestationError>,
    verified: Option<&VerifiedAttestation>,
    anchor: &TrustAnchor,
) -> Value {
    let field = |f: &dyn Fn(&VerifiedAttestation) -> Value| verified.map_or(Value::Null, f);
    json!({
        "valid": error.is_none(),
        "error": error.map(ToString::to_string),
        "module_id": field(&|v| v.module_id().into()),
        "timestamp": field(&|v| rfc3339(v.timestamp()).into()),
        "digest": field(&|v| v.digest().into()),
        "pcrs": field(&|v| {
            v.pcrs().iter().map(|(i, p)| (i.to_string(), Value::String(hex::encode(p)))).collect()
        }),
        "user_data": field(&|v| hex_or_null(v.user_data())),
        "public_key": field(&|v| hex_or_null(v.public_key())),
        "nonce": field(&|v| hex_or_null(v.nonce())),
        "certificates": field(&|v| {
            v.certificates()
                .into_iter()
                .map(|c| {
                    json!({
                        "subject": c.subject,
                        "not_before": rfc3339(c.not_before),
                        "not_after": rfc3339(c.not_after),
                    })
                })
                .collect()
        }),
        "root_sha256": hex::encode(anchor.sha256()),
        "trust": attestation::anchor_label(anchor),
    })
}

fn print_human(v: &VerifiedAttestation, anchor: &TrustAnchor, allow_debug: bool) {
    let shipped = anchor.sha256() == attestation::AWS_NITRO_ROOT_G1_SHA256;
    if anchor.is_emulated() {
        println!(
            "EMULATED attestation document (UNSIGNED: no signature chain checked), checked at {}",
            rfc3339(v.validated_at())
        );
        println!("root        none: EMULATED trust mode (--root EMULATED); not a Nitro enclave");
    } else {
        println!(
            "VALID attestation document, checked at {}",
            rfc3339(v.validated_at())
        );
        println!(
            "root        {} ({})",
            hex::encode(anchor.sha256()),
            if shipped {
                "AWS Nitro root G1"
            } else {
                "pinned with --root"
            }
        );
    }
    println!("module_id   {}", v.module_id());
    println!("timestamp   {}", rfc3339(v.timestamp()));
    println!("digest      {}", v.digest());
    for (index, value) in v.pcrs() {
        println!("PCR{index:<8} {}", hex::encode(value));
    }
    for (name, value) in [
        ("user_data", v.user_data()),
        ("public_key", v.public_key()),
        ("nonce", v.nonce()),
    ] {
        println!(
            "{name:<11} {}",
            value.map_or_else(|| "absent".to_owned(), hex::encode)
        );
    }
    if v.is_debug() && allow_debug {
        println!("debug mode  YES (allowed by --allow-debug): not a production enclave");
    }
    for (i, c) in v.certificates().iter().enumerate() {
        println!(
            "cert {i}      {} [{} .. {}]",
            c.subject,
            rfc3339(c.not_before),
            rfc3339(c.not_after)
        );
    }
}

fn parse_hex(s: &str) -> Result<Vec<u8>, String> {
    hex::decode(s.strip_prefix("0x").unwrap_or(s)).map_err(|e| format!("not hex: {e}"))
}

fn parse_hex_arg(s: &str) -> Result<HexBytes, String> {
    parse_hex(s).map(HexBytes)
}

fn parse_pcr(s: &str) -> Result<(u8, Vec<u8>), String> {
    let (index, value) = s.split_once('=').ok_or("expected N=HEX")?;
    let index: u8 = index
        .trim_start_matches("PCR")
        .parse()
        .ok()
        .filter(|i| *i < 32)
        .ok_or_else(|| format!("PCR index {index:?} is not 0..=31"))?;
    let value = parse_hex(value)?;
    if !matches!(value.len(), 32 | 48 | 64) {
        return Err(format!(
            "PCR value is {} bytes, expected 48 (or 32/64)",
            value.len()
        ));
    }
    Ok((index, value))
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let digits_end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(digits_end);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 90s, 15m, 2h or 1d"))?;
    let scale = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("unknown unit {unit:?} in {s:?}: use s, m, h or d")),
    };
    number
        .checked_mul(scale)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("{s:?} is too long"))
}
