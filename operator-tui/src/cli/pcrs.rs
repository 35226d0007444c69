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
pub struct Args {
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

pub fn run(args: Args) -> ExitCode {
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
