//! `tessera transcript`: check a ceremony transcript's hash chain, and sign it with the
//! member's Manifest key as a detached OpenPGP signature that gpg and sq verify.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use tessera_core::bytes::{Hash32, hex_groups};

use crate::cli::common::{self, Failure};
use crate::devices::DeviceArgs;
use crate::openpgp;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Check the hash chain; names the first broken line.
    Verify { file: PathBuf },
    /// Check the chain, then write a detached, armored OpenPGP signature by the Manifest key.
    Sign(SignArgs),
}

#[derive(clap::Args)]
pub struct SignArgs {
    /// The transcript (JSON Lines) to sign.
    pub file: PathBuf,
    #[command(flatten)]
    pub device: DeviceArgs,
    /// Where to write the signature (a new file; never overwritten), e.g. FILE.asc.
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
    /// The OpenPGP creation time the key was exported with (`tessera key export --openpgp
    /// --created`); it is part of the fingerprint the signature names.
    #[arg(long, value_name = "RFC3339", default_value = openpgp::DEFAULT_CREATED)]
    pub created: String,
}

pub fn run(cmd: Command) -> ExitCode {
    match cmd {
        Command::Verify { file } => match tessera_core::transcript::verify(&file) {
            Ok(r) => {
                println!(
                    "{}: {} lines, chain intact; last line SHA-256 {}",
                    file.display(),
                    r.lines,
                    r.last_hash
                );
                ExitCode::SUCCESS
            }
            Err(e @ tessera_core::transcript::TranscriptError::Broken { .. }) => {
                eprintln!("tessera transcript verify: {}: {e}", file.display());
                ExitCode::from(1)
            }
            Err(e) => {
                eprintln!("tessera transcript verify: {e}");
                ExitCode::from(2)
            }
        },
        Command::Sign(a) => common::finish("transcript sign", sign(&a)),
    }
}

fn sign(a: &SignArgs) -> common::CmdResult {
    let created = openpgp::parse_created(&a.created).map_err(Failure::usage)?;
    let bytes = common::read(&a.file)?;
    // A broken chain is never signed: the signature would vouch for an edited record.
    let report =
        tessera_core::transcript::verify_reader(bytes.as_slice()).map_err(|e| match e {
            e @ tessera_core::transcript::TranscriptError::Broken { .. } => {
                Failure::refused(format!("{}: {e}; not signed", a.file.display()))
            }
            e => Failure::usage(e.to_string()),
        })?;
    let digest = Hash32::sha256(&bytes);
    let mut device = a.device.open()?;
    let label = device.info().label;
    let purpose = format!(
        "sign transcript {} ({} lines, SHA-256 {})",
        a.file.display(),
        report.lines,
        hex_groups(&digest.0[..8])
    );
    let sig = openpgp::sign_detached(
        &mut *device,
        &bytes,
        created,
        std::time::SystemTime::now(),
        purpose,
    )
    .map_err(|e| match e {
        openpgp::OpenPgpError::Device(d) => Failure::from(d),
        other => Failure::refused(other.to_string()),
    })?;
    common::write_new(&a.output, sig.armored.as_bytes())?;
    common::checked(format!(
        "transcript chain intact: {} lines, last line SHA-256 {}",
        report.lines, report.last_hash
    ));
    common::checked(format!(
        "signed with the Manifest key on {label}, OpenPGP key {}",
        sig.issuer
    ));
    println!("wrote {}", a.output.display());
    println!(
        "verify with: gpg --verify {} {}",
        a.output.display(),
        a.file.display()
    );
    // Recording the signing in the transcript it signed would append a line the signature
    // does not cover; it goes in only when the session's transcript is another file.
    if !same_file(common::transcript_path().as_deref(), &a.file) {
        common::record(
            tessera_core::transcript::Record::new("transcript.sign", "ok")
                .input("transcript", &bytes)
                .output("signature", sig.armored.as_bytes())
                .device(format!("{label} manifest key")),
        );
    }
    Ok(())
}

fn same_file(session: Option<&Path>, signed: &Path) -> bool {
    let Some(session) = session else {
        return false;
    };
    match (
        std::fs::canonicalize(session),
        std::fs::canonicalize(signed),
    ) {
        (Ok(a), Ok(b)) => a == b,
        // No session transcript yet: it cannot be the file just signed.
        (Err(_), Ok(_)) => false,
        // When in doubt, do not append to what was just signed.
        _ => true,
    }
}
