//! `tessera`: the quorum member's ceremony app.
//!
//! Run bare it opens the terminal UI; every action also has a scriptable subcommand.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use operator_tui::cli;
use operator_tui::cli::ceremony;
use operator_tui::cli::common::finish;

/// Tessera: quorum-key ceremonies for AWS Nitro Enclaves, from an air-gapped laptop.
///
/// Verifies Nitro attestation documents offline, reviews and signs manifests, and hands a
/// member's Shamir share to one attested enclave over USB files or animated QR codes.
#[derive(Parser)]
#[command(name = "tessera", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    tui: operator_tui::tui::runtime::TuiArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Verify a Nitro attestation document offline.
    #[command(subcommand)]
    Attest(cli::attest::Command),
    /// Compute PCRs from an EIF, an IAM role ARN or an instance id.
    Pcrs(cli::pcrs::Args),
    /// Build a deterministic enclave image (EIF).
    #[command(subcommand)]
    Image(cli::image::Command),
    /// Pack, inspect and move bundles across the air gap (files and QR).
    #[command(subcommand)]
    Bundle(cli::bundle::Command),
    /// Manage YubiKeys: list, provision, export descriptors, self-test, PIN and PUK.
    #[command(subcommand)]
    Key(cli::key::Command),
    /// Member descriptors (software members for dev and tests).
    #[command(subcommand)]
    Member(cli::ceremony::MemberCommand),
    /// Genesis: make the quorum key in the enclave; members verify and store their shares.
    #[command(subcommand)]
    Genesis(cli::ceremony::GenesisCommand),
    /// The disaster-recovery key, offline: keygen, drill, and restore as the last resort.
    #[command(subcommand)]
    Dr(cli::dr::Command),
    /// Draft, review, approve and collect manifests.
    #[command(subcommand)]
    Manifest(cli::ceremony::ManifestCommand),
    /// Post an approved manifest envelope to the enclave and verify its boot attestation.
    Boot {
        #[arg(long)]
        relay: String,
        envelope: std::path::PathBuf,
        #[command(flatten)]
        verify: cli::ceremony::VerifyArgs,
    },
    /// More nodes for a namespace: a new node joins and receives the quorum key from a
    /// provisioned one (key forwarding), without another share ceremony.
    #[command(subcommand)]
    Forward(cli::forward::Command),
    /// Provision: fetch a request, sign a share bundle offline, post it.
    #[command(subcommand)]
    Provision(cli::ceremony::ProvisionCommand),
    /// Live patches of a provisioned enclave's settings (Patch set).
    #[command(subcommand)]
    Patch(cli::changes::PatchCommand),
    /// Re-split the quorum key to a new share set inside the enclave (Manifest set).
    #[command(subcommand)]
    Reshard(cli::changes::ReshardCommand),
    /// The enclave's phase and progress, through the relay.
    Status {
        #[arg(long)]
        relay: String,
        #[arg(long)]
        json: bool,
    },
    /// Ask the provisioned enclave's built-in app to sign a message; verify it with the quorum key.
    AppSign {
        #[arg(long)]
        relay: String,
        /// The manifest or envelope whose quorum key must verify the signature.
        #[arg(long)]
        manifest: std::path::PathBuf,
        #[arg(long)]
        message: String,
    },
    /// Verifiable fetches: check a fetch proof signed by the quorum key.
    #[command(subcommand)]
    Fetch(cli::fetch::Command),
    /// Requests to the pivot app over the relay's app bridge.
    #[command(subcommand)]
    Bridge(cli::bridge::Command),
    /// Your namespace pins: what you trust per namespace (quorum key, Manifest set, PCR policy,
    /// highest nonce), signed by your Manifest key.
    #[command(subcommand)]
    Trust(cli::trust::TrustCommand),
    /// Check the ceremony transcript.
    #[command(subcommand)]
    Transcript(cli::transcript::Command),
    /// Open the app on the review screen for FILE (attestation document, bundle, manifest, envelope).
    Open {
        file: std::path::PathBuf,
        #[command(flatten)]
        tui: operator_tui::tui::runtime::TuiArgs,
    },
    /// Core-level walk-through: split, encrypt, decrypt, reconstruct with software members.
    CoreDemo(cli::core_demo::Args),
}

fn main() -> ExitCode {
    // Before anything can hold a PIN or a share: no core dumps, no ptrace or /proc/PID/mem
    // reads by other processes of this user, memory kept out of swap where allowed.
    for w in tessera_core::hardening::harden_process() {
        eprintln!("tessera: warning: {w}");
    }
    let cli = Cli::parse();
    quiet_on_closed_pipe();
    // A closed stdout (`tessera … | head`) unwinds the command, running every zeroizing drop,
    // and ends it quietly with the shell's SIGPIPE status instead of a panic message.
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| dispatch(cli))) {
        Ok(code) => code,
        Err(payload) if is_broken_pipe(payload.as_ref()) => ExitCode::from(141),
        Err(payload) => std::panic::resume_unwind(payload),
    }
}

fn panic_text(payload: &(dyn std::any::Any + Send)) -> &str {
    payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
        .unwrap_or_default()
}

fn is_broken_pipe(payload: &(dyn std::any::Any + Send)) -> bool {
    let text = panic_text(payload);
    text.contains("failed printing to std") && text.contains("Broken pipe")
}

/// Keeps the default panic report for every panic except a write to a closed pipe.
fn quiet_on_closed_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !is_broken_pipe(info.payload()) {
            default(info);
        }
    }));
}

fn dispatch(cli: Cli) -> ExitCode {
    match cli.command {
        Some(Command::Attest(cmd)) => cli::attest::run(cmd),
        Some(Command::Pcrs(args)) => cli::pcrs::run(&args),
        Some(Command::Image(cmd)) => cli::image::run(cmd),
        Some(Command::Bundle(cmd)) => cli::bundle::run(cmd),
        Some(Command::Key(cmd)) => cli::key::run(cmd),
        Some(Command::Member(c)) => finish("member", ceremony::member(c)),
        Some(Command::Genesis(c)) => finish("genesis", ceremony::genesis(c)),
        Some(Command::Manifest(c)) => finish("manifest", ceremony::manifest(c)),
        Some(Command::Dr(c)) => finish("dr", cli::dr::run(c)),
        Some(Command::Boot {
            relay,
            envelope,
            verify,
        }) => finish("boot", ceremony::boot(&relay, &envelope, &verify)),
        Some(Command::Provision(c)) => finish("provision", ceremony::provision(c)),
        Some(Command::Forward(c)) => finish("forward", cli::forward::run(c)),
        Some(Command::Bridge(c)) => finish("bridge", cli::bridge::run(c)),
        Some(Command::Patch(c)) => finish("patch", cli::changes::patch(c)),
        Some(Command::Reshard(c)) => finish("reshard", cli::changes::reshard(c)),
        Some(Command::Status { relay, json }) => finish("status", ceremony::status(&relay, json)),
        Some(Command::AppSign {
            relay,
            manifest,
            message,
        }) => finish("app-sign", ceremony::app_sign(&relay, &manifest, &message)),
        Some(Command::Fetch(c)) => cli::fetch::run(c),
        Some(Command::Transcript(c)) => cli::transcript::run(c),
        Some(Command::Trust(c)) => finish("trust", cli::trust::trust(c)),
        Some(Command::CoreDemo(args)) => cli::core_demo::run(&args),
        Some(Command::Open { file, tui }) => operator_tui::tui::runtime::run(&tui, Some(&file)),
        None => operator_tui::tui::runtime::run(&cli.tui, None),
    }
}
