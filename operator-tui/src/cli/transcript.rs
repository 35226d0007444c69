//! `tessera transcript`: check a ceremony transcript's hash chain.

use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Check the hash chain; names the first broken line.
    Verify { file: PathBuf },
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
    }
}
