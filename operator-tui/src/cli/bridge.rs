//! `tessera bridge sign`: a request to the pivot app over the relay's app bridge
//! (`docs/forwarding.md`), for the demo's app (`tessera-demo-app`): the message goes out as one
//! frame (4-byte big-endian length, then the bytes) and the app answers with a frame holding
//! the quorum key's signature, which is verified with the manifest's quorum public key.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use airgap_bundle::BundleKind;
use clap::Subcommand;
use tessera_core::bytes::{ByteArray, Hash32};
use tessera_core::keys::Signature;
use tessera_core::manifest::{Manifest, ManifestEnvelope};
use tessera_core::protocol::{read_frame, write_frame};
use tessera_core::sign::{Purpose, signed_message};
use tessera_core::transcript::Record;

use super::common::{CmdResult, Failure, checked, record};
use super::objects::load;

/// Time allowed for connecting and for the answer.
const TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Subcommand)]
pub enum Command {
    /// Ask the app to sign a message over the bridge; verify the signature with the quorum key.
    Sign {
        /// The relay's app bridge, HOST:PORT (its `--app-listen`).
        #[arg(long)]
        bridge: String,
        /// The manifest or envelope whose quorum key must verify the signature.
        #[arg(long)]
        manifest: PathBuf,
        #[arg(long)]
        message: String,
    },
}

pub fn run(cmd: Command) -> CmdResult {
    match cmd {
        Command::Sign {
            bridge,
            manifest,
            message,
        } => sign(&bridge, &manifest, &message),
    }
}

fn sign(bridge: &str, manifest: &Path, message: &str) -> CmdResult {
    let m = load(manifest, BundleKind::Manifest, |b| {
        ManifestEnvelope::decode(b)
            .map(|e| e.manifest)
            .or_else(|_| Manifest::decode(b))
    })?;
    let Some(port) = m.pivot.ingress_port else {
        return Err(Failure::usage(
            "the manifest declares no app ingress port: its app takes no outside traffic",
        ));
    };
    let unreachable = |e: std::io::Error| Failure::usage(format!("app bridge {bridge}: {e}"));
    let mut s = TcpStream::connect(bridge).map_err(unreachable)?;
    s.set_read_timeout(Some(TIMEOUT)).map_err(unreachable)?;
    s.set_write_timeout(Some(TIMEOUT)).map_err(unreachable)?;
    write_frame(&mut s, message.as_bytes())
        .map_err(|e| Failure::usage(format!("app bridge {bridge}: {e}")))?;
    let answer = read_frame(&mut s, 1024).map_err(|e| {
        Failure::usage(format!(
            "app bridge {bridge}: no answer ({e}); is the enclave provisioned and its app running?"
        ))
    })?;
    let signature = ByteArray::<64>::try_from(answer.as_slice())
        .map(Signature)
        .map_err(|e| Failure::refused(format!("the app's answer is not a signature: {e}")))?;
    m.namespace
        .quorum_public_key
        .signing
        .verify(
            &signed_message(Purpose::AppMessage, &Hash32::sha256(message.as_bytes())),
            &signature,
        )
        .map_err(|_| {
            Failure::refused("the app's signature does not verify with the manifest's quorum key")
        })?;
    checked(format!(
        "the app (ingress port {port}) signed {message:?} over the bridge; signature verifies with quorum key {}",
        m.namespace.quorum_public_key.signing.fingerprint()
    ));
    println!("{}", signature.0.to_hex());
    record(
        Record::new("bridge.sign", "signature verified")
            .input("message", message.as_bytes())
            .output("signature", &signature.0.0),
    );
    Ok(())
}
