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
use tessera_relay::{BridgeConfig, Config, app, serve_bridge, serve_until};

/// The HTTP relay between Tessera members and an enclave. It forwards and formats; it holds no
/// secrets and no state.
#[derive(Parser)]
#[command(name = "tessera-relay", version, about, long_about)]
struct Args {
    /// Address to serve HTTP on; port 0 picks a free port (printed on the readiness line).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// The enclave: vsock:CID:PORT for a Nitro enclave, hybrid-vsock:PATH:PORT for an emulated
    /// one (vhost-device-vsock's unix socket, docs/image.md), unix:PATH for a local dev enclave.
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
    #[command(flatten)]
    bridge: BridgeArgs,
}

/// The app bridge (`docs/forwarding.md`): a TCP port carried to the pivot app's ingress.
#[derive(clap::Args)]
#[allow(
    clippy::struct_field_names,
    reason = "clap names each flag after its field: --app-listen, --app-max-bytes..."
)]
struct BridgeArgs {
    /// Serve the app bridge on this address (port 0 picks a free port, printed on the line
    /// `tessera-relay: app bridge on tcp://ADDR` before the readiness line). Off without it.
    #[arg(long, value_name = "ADDR")]
    app_listen: Option<SocketAddr>,
    /// Bridged connections open at once, in all: at most what the app serves at once (the demo
    /// app serves 64). At the limit, a new client's connection replaces the longest-idle one of
    /// the client holding the most.
    #[arg(long, default_value_t = 64, value_name = "N")]
    app_max_connections: usize,
    /// Bridged connections open at once from one client address.
    #[arg(long, default_value_t = 16, value_name = "N")]
    app_max_per_client: usize,
    /// Seconds a bridged connection may carry nothing either way before it is closed.
    #[arg(long, default_value_t = 30.0, value_name = "SECONDS")]
    app_idle_timeout: f64,
    /// Seconds a bridged connection may live.
    #[arg(long, default_value_t = 600.0, value_name = "SECONDS")]
    app_lifetime: f64,
    /// Bytes a bridged connection may carry each way.
    #[arg(long, default_value_t = 16 << 20, value_name = "BYTES")]
    app_max_bytes: u64,
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
    if let Some(addr) = args.bridge.app_listen {
        let b = &args.bridge;
        let config = BridgeConfig::new(args.enclave.clone())
            .max_connections(b.app_max_connections)
            .max_per_client(b.app_max_per_client)
            .idle(seconds("app-idle-timeout", b.app_idle_timeout)?)
            .lifetime(seconds("app-lifetime", b.app_lifetime)?)
            .max_bytes(b.app_max_bytes);
        let bridge = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        let bound = bridge.local_addr().map_err(|e| e.to_string())?;
        tracing::info!(listen = %bound, "app bridge ready");
        println!("tessera-relay: app bridge on tcp://{bound}");
        tokio::spawn(serve_bridge(bridge, config, std::future::pending()));
    }
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
