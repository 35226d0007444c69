//! `tessera-relay --listen 127.0.0.1:PORT --enclave unix:PATH|vsock:CID:PORT`
//!
//! Serves the relay API (see `docs/api.md`) and prints one readiness line,
//! `tessera-relay: listening on http://ADDR`, once the socket is bound.

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use tessera_core::transport::Address;
use tessera_relay::{Config, app, serve_until};

/// The HTTP relay between Tessera members and an enclave. It forwards and formats; it holds no
/// secrets and no state.
#[derive(Parser)]
#[command(name = "tessera-relay", version, about, long_about)]
struct Args {
    /// Address to serve HTTP on; port 0 picks a free port (printed on the readiness line).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// The enclave: vsock:CID:PORT for a Nitro enclave, unix:PATH for a local dev enclave.
    #[arg(long)]
    enclave: Address,
    /// Seconds a client has to send a request body.
    #[arg(long, default_value_t = 10.0, value_name = "SECONDS")]
    body_timeout: f64,
    /// Seconds the relay waits for the enclave per request, queueing included.
    #[arg(long, default_value_t = 30.0, value_name = "SECONDS")]
    enclave_timeout: f64,
    /// On SIGTERM or Ctrl-C: seconds given to requests in progress to finish before exiting.
    #[arg(long, default_value_t = 10.0, value_name = "SECONDS")]
    drain_timeout: f64,
}

fn seconds(name: &str, s: f64) -> Result<Duration, String> {
    Duration::try_from_secs_f64(s)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("--{name} must be a positive number of seconds"))
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(e) = tessera_core::logging::init() {
        eprintln!("tessera-relay: {e}");
        return ExitCode::from(2);
    }
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tessera-relay: {e}");
            ExitCode::from(2)
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    // `vsock:PORT` means "any CID" to a listener; a client must name the enclave's CID.
    if matches!(args.enclave, Address::Vsock { cid: u32::MAX, .. }) {
        return Err(format!(
            "--enclave {}: give the enclave's CID, as vsock:CID:PORT",
            args.enclave
        ));
    }
    seconds("drain-timeout", args.drain_timeout)?;
    let config = Config::new(args.enclave.clone())
        .body_timeout(seconds("body-timeout", args.body_timeout)?)
        .enclave_timeout(seconds("enclave-timeout", args.enclave_timeout)?);
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    tracing::info!(
        listen = %local,
        enclave = %args.enclave,
        body_timeout_s = args.body_timeout,
        enclave_timeout_s = args.enclave_timeout,
        "relay ready"
    );
    // Readiness line: tests and scripts wait for it.
    println!("tessera-relay: listening on http://{local}");
    std::io::stdout().flush().map_err(|e| e.to_string())?;
    let drain = seconds("drain-timeout", args.drain_timeout)?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| format!("cannot handle SIGTERM: {e}"))?;
    let stop = async move {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    };
    serve_until(listener, app(config), stop, drain).await;
    Ok(())
}
