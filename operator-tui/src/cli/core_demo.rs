//! `tessera core-demo`: the core library end to end with software members, no enclave.
//!
//! Splits a fresh quorum seed 3-of-5, encrypts each share to its member's Share key as a
//! piv-p256 age file, decrypts three through the `KeyDevice` path, reconstructs, and checks the
//! result against the quorum public key. Prints each step; never prints a secret.

use std::process::ExitCode;
use std::time::Instant;

use tessera_core::age_share::{self, DeviceIdentity, PivP256Recipient};
use tessera_core::device::{KeyDevice, SoftwareKeyDevice};
use tessera_core::keys::Role;
use tessera_core::quorum::QuorumSeed;
use tessera_core::shamir::{self, Share};

#[derive(clap::Args)]
pub struct Args {
    /// Shares needed to reconstruct.
    #[arg(long, default_value_t = 3)]
    threshold: usize,
    /// Members (one share each).
    #[arg(long, default_value_t = 5)]
    members: usize,
}

pub fn run(args: &Args) -> ExitCode {
    match demo(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("core-demo: {e}");
            ExitCode::from(1)
        }
    }
}

fn step(n: usize, what: &str, started: Instant) {
    println!(
        "[{n}] {what} ({:.1} ms)",
        started.elapsed().as_secs_f64() * 1e3
    );
}

fn demo(args: &Args) -> Result<(), String> {
    let aliases = [
        "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi",
    ];
    if args.members > aliases.len() || args.threshold == 0 || args.threshold > args.members {
        return Err(format!(
            "choose 1 <= threshold <= members <= {}",
            aliases.len()
        ));
    }
    println!("SOFTWARE KEYS (dev/test only): members' keys are generated in memory.");
    let t = Instant::now();
    let mut devices: Vec<SoftwareKeyDevice> = aliases[..args.members]
        .iter()
        .map(|a| SoftwareKeyDevice::generate(a))
        .collect();
    step(
        1,
        &format!("generated {} software members", args.members),
        t,
    );

    let t = Instant::now();
    let seed = QuorumSeed::generate();
    let quorum = seed.public_key();
    step(
        2,
        &format!("quorum key: signing {}", quorum.signing.fingerprint()),
        t,
    );

    let t = Instant::now();
    let shares = shamir::split(
        &seed,
        args.threshold,
        args.members,
        &mut rand::rand_core::UnwrapErr(rand::rngs::SysRng),
    )
    .map_err(|e| e.to_string())?;
    drop(seed);
    step(
        3,
        &format!("split {}-of-{}", args.threshold, args.members),
        t,
    );

    let t = Instant::now();
    let mut sealed = Vec::new();
    for (dev, share) in devices.iter_mut().zip(&shares) {
        let recipient =
            PivP256Recipient::new(dev.public_key(Role::Share).map_err(|e| e.to_string())?);
        let file =
            age_share::encrypt(&share.to_bytes(), &[&recipient]).map_err(|e| e.to_string())?;
        println!(
            "    {:<6} share x={} -> {} ({} bytes)",
            dev.alias(),
            share.x(),
            recipient,
            file.len()
        );
        sealed.push((file, share.commitment()));
    }
    drop(shares);
    step(
        4,
        "encrypted each share to its member's Share key (piv-p256 age)",
        t,
    );

    let t = Instant::now();
    let mut opened = Vec::new();
    for (dev, (file, commitment)) in devices.iter_mut().zip(&sealed).take(args.threshold) {
        let alias = dev.alias().to_owned();
        let id = DeviceIdentity::new(dev, Role::Share, "open share for the core demo")
            .map_err(|e| e.to_string())?;
        let plain = id.decrypt(file).map_err(|e| format!("{alias}: {e}"))?;
        let share = Share::from_bytes(&plain).map_err(|e| e.to_string())?;
        share
            .check_commitment(commitment)
            .map_err(|e| e.to_string())?;
        println!("    {alias:<6} decrypted and matched its commitment");
        opened.push(share);
    }
    step(
        5,
        &format!("{} members decrypted their shares", args.threshold),
        t,
    );

    let t = Instant::now();
    let rebuilt = shamir::combine(&opened, args.threshold).map_err(|e| e.to_string())?;
    if rebuilt.public_key() != quorum {
        return Err("reconstructed seed does not match the quorum public key".to_owned());
    }
    step(
        6,
        "reconstructed the seed; it matches the quorum public key",
        t,
    );
    println!("core-demo: OK");
    Ok(())
}
