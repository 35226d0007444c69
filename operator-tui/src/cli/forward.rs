//! `tessera forward`: more nodes for a namespace without another share ceremony
//! (`docs/forwarding.md`).
//!
//! `join` boots a new node that waits for the key; `run` carries the four messages between the
//! relays of a provisioned node and a joining one. Neither decides anything about the key: the
//! exporting enclave checks the joining node's attestation with its own clock and trust anchor,
//! and the joining enclave checks the export against its own manifest. What this command checks
//! (the joining node's boot attestation, with `--root`) is for the operator's information.

use std::path::PathBuf;

use clap::Subcommand;
use tessera_core::bytes::hex_groups;
use tessera_core::forward::{ForwardExport, ForwardRequest};
use tessera_core::protocol::Response;
use tessera_core::transcript::Record;

use super::ceremony::{VerifyArgs, expect_ok};
use super::common::{CmdResult, Failure, Relay, checked, record, write_new};

#[derive(Subcommand)]
pub enum Command {
    /// Boot a new node with an approved envelope; it waits for the key from a provisioned node
    /// of the namespace instead of shares. Verifies its boot attestation.
    Join {
        /// The new node's relay.
        #[arg(long)]
        relay: String,
        /// The approved manifest envelope (the namespace's current one, or a newer one approved
        /// by its Manifest set).
        envelope: PathBuf,
        #[command(flatten)]
        verify: VerifyArgs,
    },
    /// Forward the quorum key from a provisioned node to a joining node: challenge, attest,
    /// export, import. The relays only carry bytes; each enclave decides.
    Run {
        /// The provisioned node's relay.
        #[arg(long)]
        from: String,
        /// The joining node's relay.
        #[arg(long)]
        to: String,
        /// Also keep the messages carried (forward-request.cbor, forward-export.cbor) in this
        /// folder, for the record; it must not hold them already.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
}

pub fn run(cmd: Command) -> CmdResult {
    match cmd {
        Command::Join {
            relay,
            envelope,
            verify,
        } => join(&relay, &envelope, &verify),
        Command::Run { from, to, out } => forward(&from, &to, out.as_deref()),
    }
}

fn join(relay: &str, envelope: &std::path::Path, verify: &VerifyArgs) -> CmdResult {
    super::ceremony::boot_at(relay, "/v1/join", envelope, verify, |manifest, key| {
        (
            format!(
                "node joined with manifest {manifest} and ephemeral key {key}; it waits for a forwarded key (next: tessera forward run --from PROVISIONED-RELAY --to {relay})"
            ),
            Record::new("forward.join", "waiting for a forwarded key"),
        )
    })
}

fn forward(from: &str, to: &str, out: Option<&std::path::Path>) -> CmdResult {
    let exporter = Relay::new(from);
    let joiner = Relay::new(to);
    let Response::ForwardChallenge { challenge } = expect_ok(decode(&exporter.post(
        "/v1/forward/challenge",
        "application/cbor",
        &[],
    )?)?)?
    else {
        return Err(Failure::usage(
            "the provisioned node's relay answered the challenge with something else",
        ));
    };
    checked(format!(
        "challenge {} from {from}",
        hex_groups(&challenge.0[..8])
    ));
    let request_bytes = joiner.get(&format!("/v1/forward/request?nonce={}", challenge.to_hex()))?;
    let request = ForwardRequest::decode(&request_bytes)
        .map_err(|e| Failure::usage(format!("{to}: not a forward request: {e}")))?;
    checked(format!(
        "{to} attested for it (namespace {}, nonce {}, manifest {})",
        request.envelope.manifest.namespace.name,
        request.envelope.manifest.namespace.nonce,
        hex_groups(&request.envelope.manifest.hash().0[..8])
    ));
    let Response::ForwardExported { export } =
        expect_ok(exporter.post_cbor("/v1/forward/export", &request)?)?
    else {
        return Err(Failure::usage(
            "the provisioned node's relay answered the export with something else",
        ));
    };
    checked(format!(
        "{from} checked the joining node and exported the key to its ephemeral key {}",
        hex_groups(&export.body.recipient_key.0[..8])
    ));
    let Response::Forwarded { manifest_hash } =
        expect_ok(joiner.post_cbor("/v1/forward/import", &export)?)?
    else {
        return Err(Failure::usage(
            "the joining node's relay answered the import with something else",
        ));
    };
    checked(format!(
        "{to} accepted the key and is provisioned with manifest {}",
        hex_groups(&manifest_hash.0[..8])
    ));
    if let Some(dir) = out {
        std::fs::create_dir_all(dir)
            .map_err(|e| Failure::usage(format!("{}: {e}", dir.display())))?;
        write_new(&dir.join("forward-request.cbor"), &request_bytes)?;
        write_new(&dir.join("forward-export.cbor"), &export.encode())?;
    }
    record(
        Record::new("forward.run", "key forwarded")
            .input("forward-request", &request_bytes)
            .output("export", &ForwardExport::encode(&export)),
    );
    Ok(())
}

fn decode(bytes: &[u8]) -> Result<Response, Failure> {
    Response::decode(bytes).map_err(|e| Failure::usage(format!("relay: {e}")))
}
