//! `tessera-enclave`: the program inside the Nitro enclave.
//!
//! It boots from a threshold-approved manifest, attests to its ephemeral key, collects and
//! checks Shamir shares from quorum members, reconstructs the Quorum Key, and serves the
//! built-in signing app or pivots to the manifest's application. `--dev` runs it locally with a
//! dev NSM whose attestations are signed by a locally generated root, loudly labelled DEV.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use tessera_core::bytes::{ByteArray, Hash32, Pcr};
use tessera_core::transport::{Address, Listener};

mod forward;
mod nsm;
mod pivot;
mod server;
mod state;

/// The Tessera enclave program: boot, genesis, share collection, reconstruction, patches.
#[derive(Parser)]
#[command(name = "tessera-enclave", version, about, long_about)]
struct Args {
    /// Where to listen: vsock:PORT in a Nitro enclave, unix:PATH locally.
    #[arg(long)]
    listen: Address,
    /// Use a dev NSM with a locally generated P-384 root instead of /dev/nsm. DEV ONLY.
    #[arg(long)]
    dev: bool,
    /// With --dev: write the dev root certificate (PEM) here, for operators to pin explicitly.
    #[arg(long, requires = "dev")]
    dev_root_out: Option<PathBuf>,
    /// With --dev: take PCR0/1/2 from this EIF instead of measuring the running binary.
    #[arg(long, requires = "dev")]
    dev_eif: Option<PathBuf>,
    /// With --dev: write the dev PCRs as JSON here (the shape of `tessera pcrs --json`).
    #[arg(long, requires = "dev")]
    dev_pcrs_out: Option<PathBuf>,
    /// With --dev: sign attestations under the dev CA (root certificate and key) in this file,
    /// creating it if absent. The dev nodes of one namespace share it, so each can verify the
    /// others' documents for key forwarding as real nodes share the AWS root. DEV ONLY.
    #[arg(long, requires = "dev", value_name = "PATH")]
    dev_ca: Option<PathBuf>,
    /// Key forwarding: the oldest joining node's document this node accepts (by its own clock),
    /// which is also how long a forward challenge stays valid.
    #[arg(long, default_value_t = tessera_core::forward::MAX_DOCUMENT_AGE.as_secs(), value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=3_600))]
    forward_max_age: u64,
    /// Seconds a connection may stay open with no frame started before the enclave closes it.
    #[arg(long, default_value_t = tessera_core::protocol::IDLE_TIMEOUT.as_secs(), value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=86_400))]
    idle_timeout: u64,
    /// The pivot application binary; its SHA-256 must equal the manifest's. Without it the
    /// built-in signing app serves the provisioned key.
    #[arg(long)]
    pivot_bin: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(e) = tessera_core::logging::init() {
        eprintln!("tessera-enclave: {e}");
        return ExitCode::from(2);
    }
    for w in tessera_core::hardening::harden_process() {
        tracing::warn!("{w}");
    }
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tessera-enclave: {e}");
            ExitCode::from(2)
        }
    }
}

/// The dev image measurement: PCR0 from this very binary, PCR1/PCR2 from fixed dev labels.
fn dev_image_pcrs(eif: Option<&PathBuf>) -> Result<[Pcr; 3], String> {
    if let Some(path) = eif {
        let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let m =
            tessera_core::eif::measure(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
        return Ok([
            ByteArray(m.pcr0.0),
            ByteArray(m.pcr1.0),
            ByteArray(m.pcr2.0),
        ]);
    }
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let bytes = std::fs::read(&exe).map_err(|e| format!("{}: {e}", exe.display()))?;
    // aws-lc-rs rather than the pure-Rust SHA-384: the binary is tens of megabytes.
    let exe_digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA384, &bytes);
    let m = tessera_core::pcr::Pcr::of_measurement;
    Ok([
        ByteArray(tessera_core::pcr::Pcr::extended_from_zero(exe_digest.as_ref()).0),
        ByteArray(m(b"tessera-dev/kernel").0),
        ByteArray(m(b"tessera-dev/application").0),
    ])
}

fn run(args: &Args) -> Result<(), String> {
    let nsm: Box<dyn nsm::Nsm> = if args.dev {
        let ca = args.dev_ca.as_ref().map(dev_ca).transpose()?;
        let dev = nsm::DevNsm::generate(dev_image_pcrs(args.dev_eif.as_ref())?, ca.as_ref())?;
        let root_sha = Hash32::sha256(dev.root_der());
        eprintln!("################################################################");
        eprintln!("# DEV ENCLAVE: attestations are signed by a local dev root,    #");
        eprintln!("# NOT by AWS. Never provision real shares to it.                #");
        eprintln!("################################################################");
        eprintln!("tessera-enclave: DEV root SHA-256 {root_sha}");
        if let Some(path) = &args.dev_root_out {
            write_replacing(path, dev.root_pem().as_bytes())?;
            tracing::info!(path = %path.display(), "DEV root written");
        }
        let pcrs = serde_json::json!({
            "PCR0": dev.pcr(0).to_hex(), "PCR1": dev.pcr(1).to_hex(),
            "PCR2": dev.pcr(2).to_hex(), "PCR3": dev.pcr(3).to_hex(),
            "PCR4": dev.pcr(4).to_hex(),
        });
        if let Some(path) = &args.dev_pcrs_out {
            write_replacing(path, format!("{pcrs:#}\n").as_bytes())?;
        }
        Box::new(dev)
    } else {
        Box::new(nsm::HardwareNsm::open()?)
    };
    let pivot = args
        .pivot_bin
        .clone()
        .map(|p| pivot::PivotRunner::new(p).listening_on(args.listen.clone()));
    let enclave = state::Enclave::new(nsm, pivot)
        .forward_max_age(std::time::Duration::from_secs(args.forward_max_age));
    let listener = Listener::bind(&args.listen)
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    tracing::info!(
        listen = %args.listen,
        nsm = if args.dev { "DEV" } else { "/dev/nsm" },
        pivot = args.pivot_bin.as_ref().map_or_else(|| "built-in signing app".to_owned(), |p| p.display().to_string()),
        "enclave ready"
    );
    // Readiness line: tests and scripts wait for it.
    println!("tessera-enclave: listening on {}", args.listen);
    std::io::stdout().flush().map_err(|e| e.to_string())?;
    server::serve(
        &listener,
        enclave,
        std::time::Duration::from_secs(args.idle_timeout),
    )
    .map_err(|e| e.to_string())
}

/// Loads the dev CA at `path`, or creates it there if no file exists yet. Two nodes starting at
/// once both end up with the one that was written first.
fn dev_ca(path: &PathBuf) -> Result<tessera_core::dev_pki::DevCa, String> {
    use tessera_core::dev_pki::DevCa;
    let load = || {
        let pem = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        DevCa::from_pem(&pem).map_err(|e| format!("{}: {e}", path.display()))
    };
    if path.exists() {
        return load();
    }
    let ca = DevCa::generate(time::OffsetDateTime::now_utc())?;
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(format!(".tmp-{}", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    // Written beside it, then linked into place: a node starting at the same moment sees no file
    // or the whole file, and the link fails if another node's file got there first.
    let created = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        f.write_all(ca.to_pem().as_bytes())?;
        f.sync_all()?;
        std::fs::hard_link(&tmp, path)
    })();
    let _ = std::fs::remove_file(&tmp);
    match created {
        Ok(()) => {
            tracing::info!(path = %path.display(), "DEV CA created");
            Ok(ca)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => load(),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// Writes `path` whole, replacing an earlier file (the root of an earlier dev run is stale the
/// moment this one starts): the bytes go to a temporary file beside it, renamed over `path`, so
/// a reader sees the old file or the new one, never a mix. Only a regular file is replaced.
fn write_replacing(path: &PathBuf, bytes: &[u8]) -> Result<(), String> {
    let err = |e: std::io::Error| format!("{}: {e}", path.display());
    if let Ok(meta) = std::fs::symlink_metadata(path)
        && !meta.file_type().is_file()
    {
        return Err(format!(
            "{}: exists and is not a regular file; not replacing it",
            path.display()
        ));
    }
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(format!(".tmp-{}", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let written = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written.map_err(err)
}
