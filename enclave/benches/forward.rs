//! A namespace of many enclaves, measured on real processes (this package's binaries, built with
//! the bench profile, and the relay):
//!
//! - the machine time for a node to join by key forwarding, step by step (the process start is
//!   shown apart: it is the same for any node);
//! - the latency of a request to the pivot app (`tessera-demo-app`, a P-256 signature per
//!   request) over the relay's app bridge, next to the same request sent straight to the app's
//!   socket in the same run, on one kept connection and with a new connection per request.
//!
//! `cargo bench -p tessera-enclave --bench forward`; `RUNS=n` sets the joins, `REQUESTS=n` the
//! requests per latency row.

#[path = "../tests/support/mod.rs"]
mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_bytes::ByteBuf;
use support::{Ceremony, EnclaveProc, frame};
use tessera_core::bytes::Hash32;
use tessera_core::forward::{FORWARD_VERSION, ForwardRequest};
use tessera_core::protocol::{Request, Response, read_frame};

const JOIN_STEPS: [&str; 5] = [
    "join (boot checks, ephemeral key, attest)",
    "challenge (exporting node)",
    "forward request (joining node attests)",
    "export (check_join, seal, sign)",
    "import (verify, decrypt, provision)",
];

fn join_once(ns: &Ceremony, ca: &str, tag: &str) -> (Duration, [Duration; 5]) {
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let node = EnclaveProc::start_with(dir.path(), tag, None, &["--dev-ca", ca]);
    let start = started.elapsed();
    let mut times = [Duration::ZERO; 5];
    let mut clock = Instant::now();
    let mut lap = |i: usize| {
        times[i] = clock.elapsed();
        clock = Instant::now();
    };
    let mut b = node.client();
    let mut a = ns.enclave.client();
    let r = b.call(&Request::Join(ns.envelope.clone())).unwrap();
    assert!(matches!(r, Response::Booted { .. }), "{r:?}");
    lap(0);
    let Response::ForwardChallenge { challenge } = a.call(&Request::ForwardChallenge).unwrap()
    else {
        panic!("no challenge")
    };
    lap(1);
    let Response::Attestation {
        document,
        envelope: Some(envelope),
    } = b
        .call(&Request::Attestation {
            nonce: Some(ByteBuf::from(challenge.0.to_vec())),
        })
        .unwrap()
    else {
        panic!("no attestation")
    };
    let request = ForwardRequest {
        version: FORWARD_VERSION,
        envelope,
        document,
    };
    lap(2);
    let Response::ForwardExported { export } = a.call(&Request::ForwardExport(request)).unwrap()
    else {
        panic!("export refused")
    };
    lap(3);
    let r = b.call(&Request::ForwardImport(export)).unwrap();
    assert!(matches!(r, Response::Forwarded { .. }), "{r:?}");
    lap(4);
    (start, times)
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

fn us(d: Duration) -> String {
    format!("{:.0}", d.as_secs_f64() * 1e6)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn percentile(sorted: &[Duration], per_mille: usize) -> Duration {
    sorted[(sorted.len() - 1) * per_mille / 1000]
}

/// One signed request on `s`.
fn request<S: Read + Write>(s: &mut S, message: &[u8]) {
    s.write_all(&frame(message)).unwrap();
    let sig = read_frame(s, 1024).unwrap();
    assert_eq!(sig.len(), 64);
}

fn samples(n: usize, mut one: impl FnMut()) -> Vec<Duration> {
    for _ in 0..n / 10 {
        one();
    }
    let mut v: Vec<Duration> = (0..n)
        .map(|_| {
            let t = Instant::now();
            one();
            t.elapsed()
        })
        .collect();
    v.sort();
    v
}

fn main() {
    let quick = !std::env::args().any(|a| a == "--bench");
    let env_n = |name: &str, quick_n: usize, full: usize| {
        std::env::var(name)
            .ok()
            .and_then(|r| r.parse().ok())
            .unwrap_or(if quick { quick_n } else { full })
    };
    let runs = env_n("RUNS", 1, 10);
    let requests = env_n("REQUESTS", 100, 5000);

    // Node A: provisioned by a 2-of-3 ceremony, its app declaring ingress port 5000.
    let ca_dir = tempfile::tempdir().unwrap();
    let ca = ca_dir.path().join("dev-ca.pem");
    let ca = ca.to_str().unwrap();
    let app = ca_dir.path().join("tessera-demo-app");
    std::fs::copy(env!("CARGO_BIN_EXE_tessera-demo-app"), &app).unwrap();
    let sha = Hash32::sha256(&std::fs::read(&app).unwrap());
    let mut ns = Ceremony::with_enclave_args(3, 2, Some(&app), sha, &["--dev-ca", ca]);
    let mut m = ns.manifest().clone();
    m.pivot.ingress_port = Some(5000);
    ns.envelope = ns.approved(m);
    ns.boot();
    ns.complete();

    let joins: Vec<(Duration, [Duration; 5])> = (0..runs)
        .map(|i| join_once(&ns, ca, &format!("join{i}")))
        .collect();
    println!("\njoin by key forwarding, machine time, median of {runs} join(s), ms");
    for (i, step) in JOIN_STEPS.iter().enumerate() {
        println!(
            "{step:<44} {:>10}",
            ms(median(joins.iter().map(|j| j.1[i]).collect()))
        );
    }
    println!(
        "{:<44} {:>10}",
        "total (node started to provisioned)",
        ms(median(joins.iter().map(|j| j.1.iter().sum()).collect()))
    );
    println!(
        "{:<44} {:>10}",
        "(apart: enclave process start, dev NSM)",
        ms(median(joins.iter().map(|j| j.0).collect()))
    );

    // The app bridge next to a direct connection to the app, same app, same run.
    let mut relay = Command::new(support::relay_binary())
        .args([
            "--listen",
            "127.0.0.1:0",
            "--app-listen",
            "127.0.0.1:0",
            "--enclave",
        ])
        .arg(ns.enclave.addr.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(relay.stdout.take().unwrap()).lines();
    let bridge = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| {
            l.strip_prefix("tessera-relay: app bridge on tcp://")
                .map(str::to_owned)
        })
        .expect("the relay announces its app bridge");
    std::thread::spawn(move || for _ in lines {});
    let app_socket = format!("{}.app-5000", ns.enclave.socket.display());
    let until = Instant::now() + support::STEP;
    while UnixStream::connect(&app_socket).is_err() {
        assert!(Instant::now() < until, "the app did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let message = [0x5a; 64];
    let mut direct = UnixStream::connect(&app_socket).unwrap();
    let mut bridged = TcpStream::connect(&bridge).unwrap();
    bridged.set_nodelay(true).unwrap();
    let direct_kept = samples(requests, || request(&mut direct, &message));
    let bridged_kept = samples(requests, || request(&mut bridged, &message));
    let fresh = (requests / 5).max(20);
    let direct_new = samples(fresh, || {
        request(&mut UnixStream::connect(&app_socket).unwrap(), &message);
    });
    let bridged_new = samples(fresh, || {
        let mut s = TcpStream::connect(&bridge).unwrap();
        s.set_nodelay(true).unwrap();
        request(&mut s, &message);
    });
    println!("\nrequest to the pivot app (64-byte message, P-256 signature back), us");
    println!("{:<44} {:>8} {:>8} {:>8}", "path", "p50", "p99", "n");
    for (name, v) in [
        ("direct to the app's socket, kept connection", &direct_kept),
        (
            "over the relay's app bridge, kept connection",
            &bridged_kept,
        ),
        ("direct, new connection per request", &direct_new),
        ("bridge, new connection per request", &bridged_new),
    ] {
        println!(
            "{name:<44} {:>8} {:>8} {:>8}",
            us(percentile(v, 500)),
            us(percentile(v, 990)),
            v.len()
        );
    }
    let _ = relay.kill();
    let _ = relay.wait();
}
