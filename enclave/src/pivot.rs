//! Pivot: hand the Quorum Key to the manifest's application once provisioned.
//!
//! The binary is checked against the manifest's `app_sha256` before it runs, and the seed
//! reaches it over its standard input, an inherited pipe, never a file on disk.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use tessera_core::bytes::Hash32;
use tessera_core::manifest::Pivot;
use tessera_core::quorum::QuorumSeed;
use tessera_core::transport::Address;

pub struct PivotRunner {
    binary: PathBuf,
    /// The enclave's own listening address, from which the app's ingress address derives.
    listen: Option<Address>,
    child: Option<Child>,
}

/// The environment variable that tells the app where to listen for outside traffic, when the
/// manifest declares an ingress port: `vsock:PORT` in a Nitro enclave, `unix:PATH` locally.
pub const INGRESS_ENV: &str = "TESSERA_APP_INGRESS";

impl PivotRunner {
    #[must_use]
    pub fn new(binary: PathBuf) -> Self {
        Self {
            binary,
            listen: None,
            child: None,
        }
    }

    /// The enclave's listening address, so the app can be told its ingress address.
    #[must_use]
    pub fn listening_on(mut self, listen: Address) -> Self {
        self.listen = Some(listen);
        self
    }

    /// Checks the binary's hash, starts it with the manifest's arguments and writes the 32-byte
    /// seed to its standard input, then closes the pipe.
    pub fn start(&mut self, spec: &Pivot, seed: &QuorumSeed) -> Result<(), String> {
        if self.child.is_some() {
            return Err("the app was already started".to_owned());
        }
        // Checked again at start: the file may have changed since boot.
        self.check(spec)?;
        let mut cmd = Command::new(&self.binary);
        cmd.args(&spec.args).env_clear().stdin(Stdio::piped());
        if let (Some(port), Some(listen)) = (spec.ingress_port, &self.listen) {
            cmd.env(INGRESS_ENV, listen.app_ingress(port).to_string());
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.binary.display()))?;
        let mut stdin = child.stdin.take().expect("stdin is piped");
        if let Err(e) = stdin.write_all(seed.as_bytes()) {
            // An app that did not take the whole key must not keep running with part of it.
            drop(stdin);
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("cannot hand the key to the app: {e}"));
        }
        drop(stdin);
        self.child = Some(child);
        Ok(())
    }

    /// Checks that the binary's SHA-256 is the manifest's `app_sha256`.
    pub fn check(&self, spec: &Pivot) -> Result<(), String> {
        let bytes = std::fs::read(&self.binary)
            .map_err(|e| format!("cannot read {}: {e}", self.binary.display()))?;
        let actual = Hash32::sha256(&bytes);
        if actual != spec.app_sha256 {
            return Err(format!(
                "{} has SHA-256 {actual}, the manifest requires {}",
                self.binary.display(),
                spec.app_sha256
            ));
        }
        Ok(())
    }
}

impl Drop for PivotRunner {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
