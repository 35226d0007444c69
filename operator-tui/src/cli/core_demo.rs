//! Placeholder until this command lands.

use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {}

pub fn run(_args: &Args) -> ExitCode {
    eprintln!("not available yet");
    ExitCode::from(2)
}
