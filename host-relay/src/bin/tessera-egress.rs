//! `tessera-egress --listen vsock:PORT|unix:PATH --allow HOST:PORT ...`
//!
//! The enclave's layer-4 egress proxy (see `docs/fetch.md`): opens TCP connections to the
//! allow-listed destinations for the enclave and moves their bytes; TLS runs inside the enclave,
//! so this process holds no keys and sees only ciphertext. Prints one readiness line,
//! `tessera-egress: listening on ADDR`, once the socket is bound.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use tessera_core::egress::{AllowList, Destination};
use tessera_core::transport::{Address, Listener};
use tessera_relay::egress::{EgressConfig, serve};

/// The enclave's egress proxy: TCP to allow-listed destinations, bytes only.
#[derive(Parser)]
#[command(name = "tessera-egress", version, about, long_about)]
struct Args {
    /// Where the enclave reaches the proxy: vsock:PORT on the parent instance, unix:PATH locally.
    #[arg(long)]
    listen: Address,
    /// A destination the enclave may connect to, HOST:PORT or [IPV6]:PORT; repeat for more.
    /// With none, every open is refused.
    #[arg(long = "allow", value_name = "HOST:PORT")]
    allow: Vec<Destination>,
    /// TCP connections open at once.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..=4096))]
    max_connections: u64,
    /// Control channels open at once.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..=4096))]
    max_channels: u64,
    /// Bytes one connection may move, both directions together.
    #[arg(long, default_value_t = 16 << 20, value_parser = clap::value_parser!(u64).range(1..))]
    max_bytes: u64,
    /// Seconds a connection or channel may sit without traffic before it is closed.
    #[arg(long, default_value_t = 30, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=3600))]
    idle_timeout: u64,
    /// Seconds a connection may stay open in all.
    #[arg(long, default_value_t = 120, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=86_400))]
    max_lifetime: u64,
    /// Seconds to establish a TCP connection, per resolved address.
    #[arg(long, default_value_t = 10, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=300))]
    connect_timeout: u64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(e) = tessera_core::logging::init() {
        eprintln!("tessera-egress: {e}");
        return ExitCode::from(2);
    }
    let config = EgressConfig {
        allow: AllowList::new(args.allow.clone()),
        max_connections: usize::try_from(args.max_connections).unwrap_or(usize::MAX),
        max_channels: usize::try_from(args.max_channels).unwrap_or(usize::MAX),
        max_bytes: args.max_bytes,
        idle_timeout: Duration::from_secs(args.idle_timeout),
        max_lifetime: Duration::from_secs(args.max_lifetime),
        connect_timeout: Duration::from_secs(args.connect_timeout),
    };
    let listener = match Listener::bind(&args.listen) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("tessera-egress: cannot listen on {}: {e}", args.listen);
            return ExitCode::from(2);
        }
    };
    let allowed: Vec<String> = config
        .allow
        .destinations()
        .iter()
        .map(ToString::to_string)
        .collect();
    tracing::info!(listen = %args.listen, allow = %allowed.join(","), "egress proxy ready");
    // Readiness line: tests and scripts wait for it.
    println!("tessera-egress: listening on {}", args.listen);
    if std::io::stdout().flush().is_err() {
        return ExitCode::from(2);
    }
    match serve(&listener, config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tessera-egress: {e}");
            ExitCode::from(2)
        }
    }
}
