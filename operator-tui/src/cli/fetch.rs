//! `tessera fetch verify PROOF --manifest M`: checks a fetch proof offline against the quorum
//! public key of a manifest and shows what was fetched, when, and from which certificate.
//!
//! The decision is [`FetchProof::verify`]; this module reads files and prints.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use airgap_bundle::BundleKind;
use tessera_core::fetch::{
    FetchAppRequest, FetchAppResponse, FetchProof, FetchRecord, HeaderField, call_app,
    describe_certificate,
};
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
    /// Ask the enclave's fetcher app, over the relay's app bridge, to fetch URL; verify the
    /// proof it returns against the manifest's quorum key and save it.
    Get {
        /// The relay's app bridge, HOST:PORT (`tessera-relay --app-listen`).
        #[arg(long)]
        bridge: String,
        /// The manifest or envelope whose quorum public key must sign the proof.
        #[arg(long)]
        manifest: PathBuf,
        /// The https:// URL to fetch (it must be on the manifest's allow-list for the fetcher).
        url: String,
        /// A request header, NAME:VALUE (accept, accept-language or authorization); repeatable.
        #[arg(long = "header", value_name = "NAME:VALUE")]
        headers: Vec<String>,
        /// Where to write the proof (a new file).
        #[arg(short, long)]
        out: PathBuf,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
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
        Command::Get {
            bridge,
            manifest,
            url,
            headers,
            out,
            json,
        } => finish(
            "fetch get",
            get(&bridge, &manifest, &url, &headers, &out, json),
        ),
    }
}

fn load_manifest(path: &Path) -> Result<Manifest, Failure> {
    load(path, BundleKind::Manifest, |b| {
        ManifestEnvelope::decode(b)
            .map(|e| e.manifest)
            .or_else(|_| Manifest::decode(b))
    })
}

fn get(
    bridge: &str,
    manifest: &Path,
    url: &str,
    headers: &[String],
    out: &Path,
    json: bool,
) -> CmdResult {
    let manifest = load_manifest(manifest)?;
    let headers = headers
        .iter()
        .map(|h| {
            let (name, value) = h
                .split_once(':')
                .ok_or_else(|| Failure::usage(format!("--header {h:?}: expected NAME:VALUE")))?;
            Ok(HeaderField {
                name: name.trim().to_ascii_lowercase(),
                value: value.trim().to_owned(),
            })
        })
        .collect::<Result<Vec<_>, Failure>>()?;
    let mut stream = std::net::TcpStream::connect(bridge)
        .map_err(|e| Failure::usage(format!("cannot reach the app bridge at {bridge}: {e}")))?;
    let timeout = Some(std::time::Duration::from_mins(2));
    stream
        .set_read_timeout(timeout)
        .and_then(|()| stream.set_write_timeout(timeout))
        .map_err(|e| Failure::usage(e.to_string()))?;
    let request = FetchAppRequest::Fetch {
        url: url.to_owned(),
        headers,
    };
    let answer = call_app(&mut stream, &request)
        .map_err(|e| Failure::usage(format!("app bridge {bridge}: {e}")))?;
    let proof = match answer {
        FetchAppResponse::Fetched { proof } => proof,
        FetchAppResponse::Error { kind, message } => {
            return Err(Failure::refused(format!(
                "the fetcher refused ({kind}): {message}\nnothing was signed"
            )));
        }
        FetchAppResponse::IdTokenVerified { .. } => {
            return Err(Failure::usage("the app answered another kind of request"));
        }
    };
    let quorum = manifest.namespace.quorum_public_key;
    let record = proof.verify(&quorum).map_err(|e| {
        Failure::refused(format!(
            "the proof from the app bridge: {e}\nhint: is --manifest namespace {:?}'s manifest, and is the bridge in front of its enclave?",
            manifest.namespace.name
        ))
    })?;
    super::common::write_new(out, &proof.encode())?;
    show(record, &manifest, json);
    if !json {
        println!("proof        {}", out.display());
    }
    Ok(())
}

fn verify(proof: &Path, manifest: &Path, json: bool, body_out: Option<&Path>) -> CmdResult {
    let manifest = load_manifest(manifest)?;
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
    show(record, &manifest, json);
    Ok(())
}

/// Prints a verified record, as text or JSON.
fn show(record: &FetchRecord, manifest: &Manifest, json: bool) {
    let quorum = manifest.namespace.quorum_public_key;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&to_json(record, manifest)).unwrap_or_default()
        );
        return;
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
