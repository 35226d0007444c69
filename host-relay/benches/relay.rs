//! What the relay costs: status round trips straight to a dev enclave over its unix socket and
//! through `tessera-relay` over loopback HTTP/1.1 keep-alive, then throughput under 32
//! concurrent clients. Then the same status requests under attack, with the enclave booted and
//! waiting for shares: 1, 8 and 64 legitimate keep-alive clients, quiet, with 1,000 slow
//! connections held (headers never finished, from ten loopback addresses), and during a flood
//! of `GET /v1/request-bundle` (each admitted one an attestation). Run with
//! `cargo bench -p tessera-relay`; prints two tables.

// Request counts stay far below 2^52.
#![allow(clippy::cast_precision_loss)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use std::net::Ipv4Addr;
use std::sync::atomic::AtomicUsize;

use tessera_core::bytes::{Hash32, Pcr};
use tessera_core::cbor;
use tessera_core::device::{KeyDevice, SoftwareKeyDevice, approve};
use tessera_core::keys::Role;
use tessera_core::manifest::{
    EnclaveSpec, MANIFEST_VERSION, Manifest, ManifestEnvelope, Member, MemberSet, Namespace, Pivot,
    RestartPolicy, ShareMember, ShareSet,
};
use tessera_core::objects::{GenesisRequest, OBJECT_VERSION};
use tessera_core::protocol::{Client, Request, Response};
use tessera_core::sign::Purpose;
use tessera_core::transport::Address;

const WARMUP: usize = 500;
const SAMPLES: usize = 5000;
const CLIENTS: usize = 32;
const LOAD_TIME: Duration = Duration::from_secs(3);

fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    let socket = dir.path().join("enclave.sock");
    let address = Address::Unix(socket.clone());

    let enclave_bin = build_enclave();
    let mut enclave = Command::new(&enclave_bin);
    enclave
        .arg("--listen")
        .arg(address.to_string())
        .arg("--dev")
        .arg("--dev-root-out")
        .arg(dir.path().join("dev-root.pem"))
        .arg("--dev-pcrs-out")
        .arg(dir.path().join("dev-pcrs.json"));
    let enclave = Proc::spawn(enclave, "tessera-enclave: listening on ");

    let mut relay = Command::new(env!("CARGO_BIN_EXE_tessera-relay"));
    relay
        .args(["--listen", "127.0.0.1:0", "--enclave"])
        .arg(address.to_string());
    let relay = Proc::spawn(relay, "tessera-relay: listening on http://");
    let relay_addr: SocketAddr = relay.ready.parse().expect("relay address");

    println!();
    println!("tessera-relay benchmark: status round trips to a dev enclave ({SAMPLES} samples)");
    println!("enclave binary: {}", enclave_bin.display());
    println!();
    println!(
        "{:<44} {:>10} {:>10} {:>10}",
        "path", "p50 (us)", "p99 (us)", "req/s"
    );

    let direct = {
        let mut client = Client::new(address.clone(), Duration::from_secs(10));
        let frame = cbor::encode(&Request::Status);
        latencies(|| {
            let bytes = client.call_raw(&frame).expect("direct status");
            assert!(matches!(Response::decode(&bytes), Ok(Response::Status(_))));
        })
    };
    row("direct: core Client over unix socket", &direct, None);

    let raw = {
        let mut http = Http::connect(relay_addr);
        let body = cbor::encode(&Request::Status);
        latencies(|| {
            let (status, _) = http.send("POST", "/v1/raw", Some(&body));
            assert_eq!(status, 200);
        })
    };
    row("relay: POST /v1/raw (CBOR passthrough)", &raw, None);

    let json = {
        let mut http = Http::connect(relay_addr);
        latencies(|| {
            let (status, _) = http.send("GET", "/v1/status", None);
            assert_eq!(status, 200);
        })
    };
    row("relay: GET /v1/status (JSON)", &json, None);

    let (direct_load, direct_rps) = load(|| {
        let mut client = Client::new(address.clone(), Duration::from_secs(10));
        let frame = cbor::encode(&Request::Status);
        move || {
            client.call_raw(&frame).expect("direct status");
        }
    });
    row(
        &format!("direct: {CLIENTS} clients, own connections"),
        &direct_load,
        Some(direct_rps),
    );

    let (relay_load, relay_rps) = load(|| {
        let mut http = Http::connect(relay_addr);
        move || {
            let (status, _) = http.send("GET", "/v1/status", None);
            assert_eq!(status, 200);
        }
    });
    row(
        &format!("relay: {CLIENTS} clients, GET /v1/status"),
        &relay_load,
        Some(relay_rps),
    );

    println!();
    let added_p50 = json[SAMPLES / 2].saturating_sub(direct[SAMPLES / 2]);
    let added_p99 = percentile(&json, 99).saturating_sub(percentile(&direct, 99));
    println!(
        "relay adds {} us at p50 and {} us at p99 (GET /v1/status vs direct; goal: under 1000 us at p99)",
        added_p50.as_micros(),
        added_p99.as_micros()
    );

    boot(&address, &dir.path().join("dev-pcrs.json"));
    hostile(relay_addr);
    drop(relay);
    drop(enclave);
}

/// Genesis and boot with software members, so the enclave waits for shares and a request
/// bundle costs an attestation.
fn boot(address: &Address, pcrs_path: &Path) {
    let mut client = Client::new(address.clone(), Duration::from_secs(30));
    let mut members: Vec<SoftwareKeyDevice> = (0..3u8)
        .map(|i| SoftwareKeyDevice::from_seed(&format!("m{i}"), &[i; 32]))
        .collect();
    let set = |role: Role, members: &mut [SoftwareKeyDevice], threshold| MemberSet {
        threshold,
        members: members
            .iter_mut()
            .map(|d| Member {
                alias: d.alias().to_owned(),
                public_key: d.public_key(role).expect("key"),
            })
            .collect(),
    };
    let request = GenesisRequest {
        version: OBJECT_VERSION,
        namespace: "bench".to_owned(),
        share_set: set(Role::Share, &mut members, 2),
        dr_recipient: None,
        manifest_set: None,
    };
    let Response::Genesis { output, .. } =
        client.call(&Request::Genesis(request)).expect("genesis")
    else {
        panic!("genesis refused")
    };
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(pcrs_path).expect("dev PCRs")).expect("PCR JSON");
    let pcr = |name: &str| Pcr::from_hex(json[name].as_str().expect("PCR")).expect("PCR hex");
    let manifest = Manifest {
        version: MANIFEST_VERSION,
        namespace: Namespace {
            name: output.body.namespace.clone(),
            nonce: 1,
            quorum_public_key: output.body.quorum_public_key,
            dr_recipient: None,
        },
        enclave: EnclaveSpec {
            pcr0: pcr("PCR0"),
            pcr1: pcr("PCR1"),
            pcr2: pcr("PCR2"),
            pcr3: pcr("PCR3"),
            debug_allowed: false,
        },
        pivot: Pivot {
            app_sha256: Hash32::default(),
            args: Vec::new(),
            restart: RestartPolicy::Never,
            ingress_port: None,
        },
        manifest_set: set(Role::Manifest, &mut members, 2),
        share_set: ShareSet {
            threshold: output.body.threshold,
            members: output
                .body
                .shares
                .iter()
                .map(|s| ShareMember {
                    alias: s.alias.clone(),
                    public_key: s.share_key,
                    commitment: s.commitment,
                })
                .collect(),
        },
        patch_set: set(Role::Patch, &mut members, 1),
    };
    let approvals = members[..2]
        .iter_mut()
        .map(|d| approve(d, Purpose::Manifest, &manifest.hash(), "manifest").expect("approval"))
        .collect();
    let envelope = ManifestEnvelope {
        manifest,
        approvals,
    };
    let booted = client.call(&Request::Boot(envelope)).expect("boot");
    assert!(
        matches!(booted, Response::Booted { .. }),
        "boot refused: {booted:?}"
    );
}

/// Connections that send part of a request's headers and nothing more, spread over ten
/// loopback addresses (ten clients of 100, within the per-client cap).
fn slow_connections(relay: SocketAddr, n: usize) -> Vec<TcpStream> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            let ip = Ipv4Addr::new(127, 0, 0, 2 + (i % 10) as u8);
            let socket = tokio::net::TcpSocket::new_v4().expect("socket");
            socket
                .bind(SocketAddr::new(ip.into(), 0))
                .expect("binding a loopback address");
            let stream = socket.connect(relay).await.expect("connecting");
            let mut stream = stream.into_std().expect("std stream");
            stream.set_nonblocking(false).expect("blocking");
            let _ = stream.write_all(b"GET /v1/status HTTP/1.1\r\nHost: relay\r\n");
            out.push(stream);
        }
        out
    })
}

/// Keep-alive connections hammering `GET /v1/request-bundle` until `stop`; counts answers.
fn flood(
    relay: SocketAddr,
    stop: &Arc<AtomicBool>,
    counts: &Arc<[AtomicUsize; 3]>,
) -> Vec<std::thread::JoinHandle<()>> {
    (0..4)
        .map(|_| {
            let stop = Arc::clone(stop);
            let counts = Arc::clone(counts);
            std::thread::spawn(move || {
                let mut http = Http::connect(relay);
                while !stop.load(Ordering::Relaxed) {
                    let slot = match http.try_send("GET", "/v1/request-bundle", None) {
                        Some((200, _)) => 0,
                        Some((429, _)) => 1,
                        Some(_) => 2,
                        None => {
                            http = Http::connect(relay);
                            2
                        }
                    };
                    counts[slot].fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect()
}

fn hostile(relay: SocketAddr) {
    println!();
    println!(
        "GET /v1/status under attack (enclave waiting for shares; {} s per row; keep-alive clients)",
        LOAD_TIME.as_secs()
    );
    println!();
    println!(
        "{:<28} {:>8} {:>10} {:>10} {:>10} {:>9}",
        "scenario", "clients", "req/s", "p50 (us)", "p99 (us)", "served"
    );
    for scenario in ["quiet", "1,000 slow connections", "request-bundle flood"] {
        for clients in [1, 8, 64] {
            let slow = if scenario == "1,000 slow connections" {
                slow_connections(relay, 1000)
            } else {
                Vec::new()
            };
            let stop_flood = Arc::new(AtomicBool::new(false));
            let counts = Arc::new([
                AtomicUsize::new(0),
                AtomicUsize::new(0),
                AtomicUsize::new(0),
            ]);
            let flooders = if scenario == "request-bundle flood" {
                flood(relay, &stop_flood, &counts)
            } else {
                Vec::new()
            };
            let failed = Arc::new(AtomicUsize::new(0));
            let (times, rps) = load_with(clients, || {
                let mut http = Http::connect(relay);
                let failed = Arc::clone(&failed);
                move || {
                    if !matches!(http.try_send("GET", "/v1/status", None), Some((200, _))) {
                        failed.fetch_add(1, Ordering::Relaxed);
                        http = Http::connect(relay);
                    }
                }
            });
            stop_flood.store(true, Ordering::Relaxed);
            for f in flooders {
                f.join().expect("flood thread");
            }
            drop(slow);
            let failed = failed.load(Ordering::Relaxed);
            let served =
                100.0 * (times.len() - failed.min(times.len())) as f64 / times.len() as f64;
            let us = |d: Duration| format!("{:.0}", d.as_secs_f64() * 1e6);
            println!(
                "{scenario:<28} {clients:>8} {rps:>10.0} {:>10} {:>10} {served:>8.1}%",
                us(percentile(&times, 50)),
                us(percentile(&times, 99)),
            );
            if scenario == "request-bundle flood" {
                println!(
                    "{:<28} flood answers: {} bundles, {} rationed (429), {} other",
                    "",
                    counts[0].load(Ordering::Relaxed),
                    counts[1].load(Ordering::Relaxed),
                    counts[2].load(Ordering::Relaxed)
                );
            }
            // Let the relay close what the row left behind before the next one.
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

/// The enclave is another package's binary; build it in this profile if needed.
fn build_enclave() -> PathBuf {
    let profile_dir = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().and_then(Path::parent).map(Path::to_path_buf))
        .expect("bench binary inside target/<profile>/deps");
    let release = profile_dir.file_name().is_some_and(|n| n == "release");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut build = Command::new(cargo);
    build
        .args(["build", "--locked", "-p", "tessera-enclave"])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    if release {
        build.arg("--release");
    }
    let status = build.status().expect("running cargo build");
    assert!(status.success(), "cargo build -p tessera-enclave failed");
    profile_dir.join("tessera-enclave")
}

struct Proc {
    child: Child,
    ready: String,
}

impl Proc {
    fn spawn(mut cmd: Command, prefix: &str) -> Self {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawning");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let ready = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(rest) = line.strip_prefix(prefix) {
                        break rest.to_owned();
                    }
                }
                _ => panic!("process exited before printing {prefix:?}"),
            }
        };
        Self { child, ready }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sorted round-trip times of `SAMPLES` calls after `WARMUP` unmeasured ones.
fn latencies(mut call: impl FnMut()) -> Vec<Duration> {
    for _ in 0..WARMUP {
        call();
    }
    let mut out = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        let t = Instant::now();
        call();
        out.push(t.elapsed());
    }
    out.sort();
    out
}

/// `CLIENTS` threads calling for `LOAD_TIME`, each with its own connection from `make`; sorted
/// latencies and requests per second.
fn load<C>(make: impl Fn() -> C) -> (Vec<Duration>, f64)
where
    C: FnMut() + Send + 'static,
{
    load_with(CLIENTS, make)
}

/// [`load`] with `clients` threads.
fn load_with<C>(clients: usize, make: impl Fn() -> C) -> (Vec<Duration>, f64)
where
    C: FnMut() + Send + 'static,
{
    let stop = Arc::new(AtomicBool::new(false));
    let start = Arc::new(Barrier::new(clients + 1));
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let stop = Arc::clone(&stop);
            let start = Arc::clone(&start);
            let mut call = make();
            std::thread::spawn(move || {
                // Connect before the clock starts.
                call();
                start.wait();
                let mut times = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    call();
                    times.push(t.elapsed());
                }
                times
            })
        })
        .collect();
    start.wait();
    let began = Instant::now();
    std::thread::sleep(LOAD_TIME);
    stop.store(true, Ordering::Relaxed);
    let mut all: Vec<Duration> = threads
        .into_iter()
        .flat_map(|t| t.join().expect("load thread"))
        .collect();
    let elapsed = began.elapsed().as_secs_f64();
    all.sort();
    let rps = all.len() as f64 / elapsed;
    (all, rps)
}

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

fn row(name: &str, sorted: &[Duration], rps: Option<f64>) {
    let us = |d: Duration| format!("{:.1}", d.as_secs_f64() * 1e6);
    let rps = rps.map_or_else(
        || {
            let mean = sorted.iter().sum::<Duration>().as_secs_f64() / sorted.len() as f64;
            format!("({:.0})", 1.0 / mean)
        },
        |r| format!("{r:.0}"),
    );
    println!(
        "{name:<44} {:>10} {:>10} {:>10}",
        us(percentile(sorted, 50)),
        us(percentile(sorted, 99)),
        rps
    );
}

/// A minimal HTTP/1.1 keep-alive client, so the numbers measure the relay rather than a
/// client library.
struct Http {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    request: Vec<u8>,
}

impl Http {
    fn connect(addr: SocketAddr) -> Self {
        let s = TcpStream::connect(addr).expect("connecting to the relay");
        s.set_nodelay(true).expect("nodelay");
        s.set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        Self {
            reader: BufReader::new(s.try_clone().expect("clone")),
            writer: s,
            request: Vec::new(),
        }
    }

    fn send(&mut self, method: &str, path: &str, body: Option<&[u8]>) -> (u16, Vec<u8>) {
        self.try_send(method, path, body)
            .expect("an answer on the keep-alive connection")
    }

    /// One exchange; `None` if the connection failed (closed by the relay, timed out).
    fn try_send(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
    ) -> Option<(u16, Vec<u8>)> {
        self.request.clear();
        write!(self.request, "{method} {path} HTTP/1.1\r\nHost: relay\r\n").expect("vec");
        if let Some(b) = body {
            write!(
                self.request,
                "Content-Type: application/cbor\r\nContent-Length: {}\r\n",
                b.len()
            )
            .expect("vec");
        }
        self.request.extend_from_slice(b"\r\n");
        if let Some(b) = body {
            self.request.extend_from_slice(b);
        }
        self.writer.write_all(&self.request).ok()?;

        let mut line = String::new();
        if self.reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let status = line.split(' ').nth(1).and_then(|c| c.parse().ok())?;
        let mut len = 0;
        loop {
            line.clear();
            if self.reader.read_line(&mut line).ok()? == 0 {
                return None;
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                len = v.trim().parse().ok()?;
            }
        }
        let mut out = vec![0; len];
        self.reader.read_exact(&mut out).ok()?;
        Some((status, out))
    }
}
