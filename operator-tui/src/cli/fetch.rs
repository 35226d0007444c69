//! `tessera fetch verify PROOF --manifest M`: checks a fetch proof offline against the quorum
//! public key of a manifest and shows what was fetched, when, and from which certificate.
//!
//! The decision is [`FetchProof::verify`]; this module reads files and prints.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use airgap_bundle::BundleKind;
use tessera_core::fetch::{FetchProof, FetchRecord, describe_certificate};
use tessera_core::manifest::{Manifest, ManifestEnvelope};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::common::{CmdResult, Failure, checked, finish, read};
use super::objects::load;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Verify a fetch proof offline: the quorum key's signature, the body's hash; then show the
    /// URL, status, time, TLS session and server certificate.
    Verify {
        /// The proof (CBOR), as the fetcher app returned it.
        proof: PathBuf,
        /// The manifest or envelope whose quorum public key must have signed the proof (use the
        /// one you reviewed or pinned).
        #[arg(long)]
        manifest: PathBuf,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
        /// Also write the fetched body to this new file.
        #[arg(long)]
        body_out: Option<PathBuf>,
    },
}

pub fn run(cmd: Command) -> ExitCode {
    match cmd {
        Command::Verify {
            proof,
            manifest,
            json,
            body_out,
        } => finish(
            "fetch verify",
            verify(&proof, &manifest, json, body_out.as_deref()),
        ),
    }
}

fn verify(proof: &Path, manifest: &Path, json: bool, body_out: Option<&Path>) -> CmdResult {
    let manifest = load(manifest, BundleKind::Manifest, |b| {
        ManifestEnvelope::decode(b)
            .map(|e| e.manifest)
            .or_else(|_| Manifest::decode(b))
    })?;
    let bytes = read(proof)?;
    let parsed = FetchProof::decode(&bytes).map_err(|e| {
        Failure::refused(format!(
            "{}: {e}\nhint: pass the proof file exactly as the fetcher returned it",
            proof.display()
        ))
    })?;
    let quorum = manifest.namespace.quorum_public_key;
    let record = parsed.verify(&quorum).map_err(|e| {
        Failure::refused(format!(
            "{}: {e}\nhint: check that --manifest is namespace {:?}'s manifest, and that the proof was not edited",
            proof.display(),
            manifest.namespace.name
        ))
    })?;
    if let Some(out) = body_out {
        super::common::write_new(out, &record.body)?;
    }
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&to_json(record, &manifest)).unwrap_or_default()
        );
        return Ok(());
    }
    checked(format!(
        "signed by the quorum key {} of namespace {:?} (purpose fetch)",
        quorum.signing.fingerprint(),
        manifest.namespace.name
    ));
    checked(format!(
        "body matches its SHA-256 {}",
        record.body_sha256.to_hex()
    ));
    println!("url          {}", record.url);
    println!("status       {}", record.status);
    println!(
        "fetched at   {} (the enclave's clock)",
        time_text(record.fetched_at)
    );
    println!(
        "tls          {} {}",
        record.tls_version, record.cipher_suite
    );
    match record
        .certificates
        .first()
        .and_then(|c| describe_certificate(c))
    {
        Some(c) => {
            println!("certificate  {}", c.subject);
            println!("  names      {}", c.names.join(", "));
            println!("  issuer     {}", c.issuer);
            println!(
                "  valid      {} to {}",
                c.not_before.format(&Rfc3339).unwrap_or_default(),
                c.not_after.format(&Rfc3339).unwrap_or_default()
            );
            println!("  sha-256    {}", c.sha256.to_hex());
        }
        None => println!("certificate  (does not parse)"),
    }
    println!("chain        {} certificate(s)", record.certificates.len());
    for h in &record.headers {
        println!("header       {}: {}", h.name, h.value);
    }
    println!("body         {} bytes", record.body.len());
    Ok(())
}

fn time_text(secs: u64) -> String {
    i64::try_from(secs)
        .ok()
        .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| format!("{secs} (out of range)"))
}

fn to_json(r: &FetchRecord, manifest: &Manifest) -> serde_json::Value {
    let leaf = r.certificates.first().and_then(|c| describe_certificate(c));
    serde_json::json!({
        "verified": true,
        "namespace": manifest.namespace.name,
        "quorum_key": manifest.namespace.quorum_public_key.signing.to_hex(),
        "url": r.url,
        "method": r.request.method,
        "request_headers": r.request.headers.iter().map(|h| [&h.name, &h.value]).collect::<Vec<_>>(),
        "status": r.status,
        "headers": r.headers.iter().map(|h| [&h.name, &h.value]).collect::<Vec<_>>(),
        "fetched_at": r.fetched_at,
        "fetched_at_rfc3339": time_text(r.fetched_at),
        "tls_version": r.tls_version,
        "cipher_suite": r.cipher_suite,
        "certificate": leaf.map(|c| serde_json::json!({
            "subject": c.subject,
            "issuer": c.issuer,
            "names": c.names,
            "not_before": c.not_before.format(&Rfc3339).unwrap_or_default(),
            "not_after": c.not_after.format(&Rfc3339).unwrap_or_default(),
            "sha256": c.sha256.to_hex(),
        })),
        "certificates_der_hex": r.certificates.iter().map(hex::encode).collect::<Vec<_>>(),
        "body_sha256": r.body_sha256.to_hex(),
        "body_len": r.body.len(),
        "body_hex": hex::encode(&r.body),
        "body_text": std::str::from_utf8(&r.body).ok(),
    })
}
