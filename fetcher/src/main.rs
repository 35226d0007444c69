//! `tessera-fetcher`: the verifiable-fetch app, run by the enclave as its pivot app.
//!
//! It reads the 32-byte quorum seed from standard input (the enclave's pivot hands it over a
//! pipe), listens on `--listen` for fetch requests, reaches the network only through the host's
//! egress proxy at `--proxy`, and signs each complete fetch with the quorum key. Its allow-list
//! and pinned roots are its arguments, which the manifest fixes. Prints one readiness line,
//! `tessera-fetcher: listening on ADDR`.

use std::io::{Read, Write};
use std::process::ExitCode;
use std::time::Duration;

use base64::Engine;
use clap::Parser;
use rustls::pki_types::CertificateDer;
use tessera_core::egress::{AllowList, Destination};
use tessera_core::quorum::QuorumSeed;
use tessera_core::transport::{Address, Listener};
use tessera_fetcher::app::{FetchApp, serve};
use tessera_fetcher::fetch::{DEFAULT_MAX_BODY, Fetcher, FetcherConfig, MAX_BODY_LIMIT};
use zeroize::Zeroizing;

/// The verifiable-fetch app: HTTPS through the host's egress proxy, responses signed by the
/// quorum key (read from standard input).
#[derive(Parser)]
#[command(name = "tessera-fetcher", version, about, long_about)]
struct Args {
    /// Where requests arrive: vsock:PORT in a Nitro enclave, unix:PATH locally. As the
    /// enclave's pivot app, the address of the manifest's ingress port, which the enclave passes
    /// in `TESSERA_APP_INGRESS`.
    #[arg(long, env = "TESSERA_APP_INGRESS")]
    listen: Address,
    /// The host's egress proxy: vsock:3:PORT from a Nitro enclave (CID 3 is the parent),
    /// unix:PATH locally.
    #[arg(long)]
    proxy: Address,
    /// A destination the fetcher may connect to, HOST:PORT; repeat for more.
    #[arg(long = "allow", value_name = "HOST:PORT", required = true)]
    allow: Vec<Destination>,
    /// A root certificate trusted besides the Mozilla roots, as base64 DER; repeat for more.
    #[arg(long = "extra-root", value_name = "BASE64_DER")]
    extra_roots: Vec<String>,
    /// Largest response body in bytes.
    #[arg(long, default_value_t = DEFAULT_MAX_BODY as u64, value_parser = clap::value_parser!(u64).range(1..=MAX_BODY_LIMIT as u64))]
    max_body: u64,
    /// Seconds a whole fetch may take.
    #[arg(long, default_value_t = 60, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=600))]
    fetch_timeout: u64,
    /// Seconds to wait for any one answer of the proxy.
    #[arg(long, default_value_t = 20, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=600))]
    step_timeout: u64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(e) = tessera_core::logging::init() {
        eprintln!("tessera-fetcher: {e}");
        return ExitCode::from(2);
    }
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tessera-fetcher: {e}");
            ExitCode::from(2)
        }
    }
}

/// Exactly 32 bytes, then the end of the pipe.
fn read_seed() -> Result<QuorumSeed, String> {
    let mut buf = Zeroizing::new(Vec::with_capacity(33));
    std::io::stdin()
        .take(33)
        .read_to_end(&mut buf)
        .map_err(|e| format!("cannot read the quorum seed from standard input: {e}"))?;
    let seed: [u8; 32] = buf.as_slice().try_into().map_err(|_| {
        format!(
            "expected exactly 32 bytes of quorum seed on standard input, got {}{}",
            buf.len().min(32),
            if buf.len() > 32 { " or more" } else { "" }
        )
    })?;
    Ok(QuorumSeed::from_bytes(seed))
}

fn run(args: &Args) -> Result<(), String> {
    let extra_roots = args
        .extra_roots
        .iter()
        .enumerate()
        .map(|(i, b)| {
            base64::engine::general_purpose::STANDARD
                .decode(b)
                .map(CertificateDer::from)
                .map_err(|e| format!("--extra-root {i}: not base64: {e}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut config = FetcherConfig::new(args.proxy.clone(), AllowList::new(args.allow.clone()));
    config.extra_roots = extra_roots;
    config.max_body = usize::try_from(args.max_body).unwrap_or(MAX_BODY_LIMIT);
    config.fetch_timeout = Duration::from_secs(args.fetch_timeout);
    config.step_timeout = Duration::from_secs(args.step_timeout);
    let fetcher = Fetcher::new(config).map_err(|e| e.to_string())?;
    let seed = read_seed()?;
    let key = seed.signing_key();
    let fingerprint =
        tessera_core::keys::PublicKey::from(&p256::PublicKey::from(key.verifying_key()))
            .fingerprint();
    drop(seed);
    let listener = Listener::bind(&args.listen)
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    tracing::info!(listen = %args.listen, proxy = %args.proxy, quorum_key = %fingerprint, "fetcher ready");
    println!("tessera-fetcher: listening on {}", args.listen);
    std::io::stdout().flush().map_err(|e| e.to_string())?;
    serve(
        &listener,
        FetchApp::new(fetcher, key),
        Duration::from_mins(1),
    )
    .map_err(|e| e.to_string())
}
