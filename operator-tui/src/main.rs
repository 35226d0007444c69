//! `tessera`: the quorum member's ceremony app.
//!
//! Run bare it opens the terminal UI; every action also has a scriptable subcommand.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use operator_tui::cli;

/// Tessera: quorum-key ceremonies for AWS Nitro Enclaves, from an air-gapped laptop.
///
/// Verifies Nitro attestation documents offline, reviews and signs manifests, and hands a
/// member's Shamir share to one attested enclave over USB files or animated QR codes.
#[derive(Parser)]
#[command(name = "tessera", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Verify a Nitro attestation document offline.
    #[command(subcommand)]
    Attest(cli::attest::Command),
    /// Compute PCRs from an EIF, an IAM role ARN or an instance id.
    Pcrs(cli::pcrs::Args),
    /// Pack, inspect and move bundles across the air gap (files and QR).
    #[command(subcommand)]
    Bundle(cli::bundle::Command),
    /// Manage YubiKeys: list, provision, export descriptors, self-test, PIN and PUK.
    #[command(subcommand)]
    Key(cli::key::Command),
    /// Core-level walk-through: split, encrypt, decrypt, reconstruct with software members.
    CoreDemo(cli::core_demo::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Attest(cmd)) => cli::attest::run(cmd),
        Some(Command::Pcrs(args)) => cli::pcrs::run(args),
        Some(Command::Bundle(cmd)) => cli::bundle::run(cmd),
        Some(Command::Key(cmd)) => cli::key::run(cmd),
        Some(Command::CoreDemo(args)) => cli::core_demo::run(&args),
        None => {
            eprintln!("tessera: the terminal UI is not built yet; see `tessera --help` for the subcommands");
            ExitCode::from(2)
        }
    }
}
