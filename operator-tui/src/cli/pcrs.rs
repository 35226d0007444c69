//! `tessera pcrs`: reproduce the PCRs an enclave will report, from its EIF, the parent
//! instance's IAM role or its instance id.
//!
//! Exit codes: 0 computed; 1 the input was refused (corrupt EIF, malformed ARN); 2 usage or I/O.

use std::path::PathBuf;
use std::process::ExitCode;

use serde_json::{Map, Value, json};
use tessera_core::{eif, pcr};

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("input").required(true).args(["eif", "role_arn", "instance_id"])))]
#[command(subcommand_negates_reqs = true, args_conflicts_with_subcommands = true)]
pub struct Args {
    #[command(subcommand)]
    pub command: Option<Sub>,
    /// EIF file: prints PCR0, PCR1, PCR2 and, for signed images, PCR8.
    pub eif: Option<PathBuf>,
    /// IAM role ARN of the parent instance: prints PCR3 as hex.
    #[arg(long, value_name = "ARN")]
    pub role_arn: Option<String>,
    /// Parent instance id: prints PCR4 as hex.
    #[arg(long, value_name = "ID")]
    pub instance_id: Option<String>,
    /// For an EIF, print JSON shaped like `nitro-cli describe-eif`'s "Measurements".
    #[arg(long, requires = "eif")]
    pub json: bool,
}

#[derive(clap::Subcommand)]
pub enum Sub {
    /// Accept a builders' PCR statement signed by at least K distinct pinned builder keys.
    VerifyStatement(VerifyStatementArgs),
}

#[derive(clap::Args)]
pub struct VerifyStatementArgs {
    /// The statement: {"image", "version", "pcrs": {"PCR0", "PCR1", "PCR2"}}.
    pub statement: PathBuf,
    /// Detached OpenPGP signatures over the statement (armored or binary).
    #[arg(long = "sig", value_name = "SIG", required = true, num_args = 1..)]
    pub sigs: Vec<PathBuf>,
    /// Directory of pinned builder public keys, one or more per file.
    #[arg(long, value_name = "DIR")]
    pub keyring: PathBuf,
    /// How many distinct pinned builders must have signed.
    #[arg(long, value_name = "K")]
    pub threshold: usize,
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &Args) -> ExitCode {
    if let Some(Sub::VerifyStatement(a)) = &args.command {
        return verify_statement(a);
    }
    if let Some(arn) = &args.role_arn {
        return print_single(pcr::pcr3_from_role_arn(arn));
    }
    if let Some(id) = &args.instance_id {
        return print_single(pcr::pcr4_from_instance_id(id));
    }
    let Some(path) = &args.eif else {
        eprintln!("tessera pcrs: give an EIF, --role-arn or --instance-id");
        return ExitCode::from(2);
    };
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("tessera pcrs: cannot read {}: {e}", path.display());
            return ExitCode::from(2);
        }
    };
    let m = match eif::measure(&bytes) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("tessera pcrs: {}: {e}", path.display());
            return ExitCode::from(1);
        }
    };
    let mut rows = vec![("PCR0", m.pcr0), ("PCR1", m.pcr1), ("PCR2", m.pcr2)];
    if let Some(pcr8) = m.pcr8 {
        rows.push(("PCR8", pcr8));
    }
    if args.json {
        let mut measurements = Map::new();
        measurements.insert("HashAlgorithm".into(), "Sha384 { ... }".into());
        for (name, value) in &rows {
            measurements.insert((*name).into(), Value::String(value.to_hex()));
        }
        let report = json!({ "Measurements": measurements });
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else {
        for (name, value) in rows {
            println!("{name} {value}");
        }
    }
    ExitCode::SUCCESS
}

fn print_single(result: Result<pcr::Pcr, pcr::PcrInputError>) -> ExitCode {
    match result {
        Ok(p) => {
            println!("{p}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("tessera pcrs: {e}");
            ExitCode::from(1)
        }
    }
}

/// Exit 0 when accepted, 1 when refused (reasons on stderr), 2 for unreadable inputs.
fn verify_statement(a: &VerifyStatementArgs) -> ExitCode {
    use crate::openpgp::{self, StatementError};
    let fail = |code: u8, msg: String| {
        eprintln!("tessera pcrs verify-statement: {msg}");
        ExitCode::from(code)
    };
    let read = |path: &PathBuf, max: usize| {
        airgap_bundle::usb::read_limited(path, max).map_err(|e| format!("{}: {e}", path.display()))
    };
    let statement = match read(&a.statement, tessera_core::statement::MAX_STATEMENT) {
        Ok(b) => b,
        Err(e) => return fail(2, e),
    };
    let mut sigs = Vec::new();
    for path in &a.sigs {
        match read(path, openpgp::MAX_SIGNATURE_FILE) {
            Ok(b) => sigs.push(b),
            Err(e) => return fail(2, e),
        }
    }
    let keyring = match openpgp::Keyring::from_dir(&a.keyring) {
        Ok(k) => k,
        Err(e) => return fail(2, e.to_string()),
    };
    let name = |i: usize| a.sigs[i].display().to_string();
    let rejections = |r: &[openpgp::Rejection]| -> Vec<Value> {
        r.iter()
            .map(|r| json!({ "sig": name(r.sig), "reason": r.reason }))
            .collect()
    };
    match openpgp::verify_statement(&statement, &sigs, &keyring, a.threshold) {
        Ok(v) => {
            if a.json {
                let report = json!({
                    "accepted": true,
                    "image": v.image,
                    "version": v.version,
                    "pcrs": {
                        "PCR0": hex::encode(v.pcrs[0]),
                        "PCR1": hex::encode(v.pcrs[1]),
                        "PCR2": hex::encode(v.pcrs[2]),
                    },
                    "threshold": a.threshold,
                    "signers": v.signers,
                    "rejected": rejections(&v.rejected),
                });
                println!(
                    "{}",
                    serde_json::to_string_pretty(&report).unwrap_or_default()
                );
            } else {
                println!(
                    "statement accepted: {} {} reproduced by {} of {} required pinned builders",
                    v.image,
                    v.version,
                    v.signers.len(),
                    a.threshold
                );
                for s in &v.signers {
                    println!("  ✓ {s}");
                }
                for r in &v.rejected {
                    println!("  ✗ {}: {}", name(r.sig), r.reason);
                }
                for (i, p) in v.pcrs.iter().enumerate() {
                    println!("PCR{i} {}", hex::encode(p));
                }
            }
            ExitCode::SUCCESS
        }
        Err(StatementError::BelowThreshold {
            threshold,
            valid,
            signers,
            rejected,
        }) => {
            if a.json {
                println!(
                    "{}",
                    json!({
                        "accepted": false,
                        "threshold": threshold,
                        "valid": valid,
                        "signers": signers,
                        "rejected": rejections(&rejected),
                    })
                );
            }
            eprintln!(
                "tessera pcrs verify-statement: refused: {valid} of the {threshold} required pinned builders signed"
            );
            for s in &signers {
                eprintln!("  ✓ {s}");
            }
            for r in &rejected {
                eprintln!("  ✗ {}: {}", name(r.sig), r.reason);
            }
            ExitCode::from(1)
        }
        Err(e @ StatementError::ZeroThreshold) => fail(2, e.to_string()),
        Err(e) => {
            if a.json {
                println!("{}", json!({ "accepted": false, "error": e.to_string() }));
            }
            fail(1, format!("refused: {e}"))
        }
    }
}
