//! The ceremony's machine time: everything but the humans, against a real `tessera-enclave --dev`
//! process (this package's binary, built with the bench profile) over a unix socket, with
//! software members doing the member-side work in this process. Prints a table per quorum size
//! and the round-trip latency of a status request sent straight to the enclave.
//!
//! `cargo bench -p tessera-enclave --bench ceremony`; `RUNS=n` sets the ceremonies per size.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use support::{
    EnclaveProc, approve_envelope, devices, genesis, manifest, member_checks_genesis,
    member_checks_request,
};
use tessera_core::bytes::Hash32;
use tessera_core::protocol::{AppRequest, Request, Response};
use tessera_core::sign::{Purpose, signed_message};

/// The steps of one ceremony, in order.
const STEPS: [&str; 6] = [
    "genesis (enclave: split, seal, attest)",
    "genesis checks (every member)",
    "manifest approvals (threshold)",
    "boot + members' check of its attestation",
    "provisioning (threshold members)",
    "app signature + verification",
];

fn ceremony(n: usize, t: u8) -> [Duration; 6] {
    let dir = tempfile::tempdir().unwrap();
    let enclave = EnclaveProc::start(dir.path(), "bench", None);
    let mut members = devices(n, 0);
    let mut times = [Duration::ZERO; 6];
    let mut clock = Instant::now();
    let mut lap = |i: usize| {
        times[i] = clock.elapsed();
        clock = Instant::now();
    };

    let (output, attestation) = genesis(&enclave, &mut members, t);
    lap(0);
    let sealed: Vec<Vec<u8>> = members
        .iter_mut()
        .map(|d| member_checks_genesis(&output, &attestation, &enclave.root, d))
        .collect();
    lap(1);
    let m = manifest(
        &output,
        &enclave.pcrs,
        &mut members,
        t,
        1,
        Hash32::default(),
    );
    let envelope = approve_envelope(m, &mut members);
    envelope.verify().unwrap();
    lap(2);
    let mut client = enclave.client();
    let Response::Booted { attestation, .. } =
        client.call(&Request::Boot(envelope.clone())).unwrap()
    else {
        panic!("boot refused")
    };
    member_checks_request(&envelope, &attestation, &enclave.root);
    lap(3);
    for i in 0..usize::from(t) {
        // Each member fetches their own request, as they would on their own schedule.
        let Response::Attestation {
            document,
            envelope: Some(env),
        } = client.call(&Request::Attestation { nonce: None }).unwrap()
        else {
            panic!("no attestation")
        };
        let eph = member_checks_request(&env, &document, &enclave.root);
        let (sub, _) =
            tessera_core::provision::hand_over(&env.manifest, &eph, &sealed[i], &mut members[i])
                .unwrap();
        let r = client.call(&Request::PostShare(sub)).unwrap();
        assert!(
            matches!(r, Response::ShareAccepted { .. }),
            "share refused: {r:?}"
        );
    }
    lap(4);
    let message = b"benchmark".to_vec();
    let Response::AppSignature { signature } = client
        .call(&Request::App(AppRequest::Sign {
            message: message.clone().into(),
        }))
        .unwrap()
    else {
        panic!("not provisioned")
    };
    envelope
        .manifest
        .namespace
        .quorum_public_key
        .signing
        .verify(
            &signed_message(Purpose::AppMessage, &Hash32::sha256(&message)),
            &signature,
        )
        .unwrap();
    lap(5);
    times
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// The sample below which `per_mille`/1000 of the sorted samples fall.
fn percentile(sorted: &[Duration], per_mille: usize) -> Duration {
    sorted[(sorted.len() - 1) * per_mille / 1000]
}

fn main() {
    // `cargo bench` passes `--bench`; a plain `cargo test --benches` passes nothing and only
    // checks that the benchmark runs once.
    let quick = !std::env::args().any(|a| a == "--bench");
    let runs: usize = std::env::var("RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(if quick { 1 } else { 5 });

    let sizes = [(5usize, 3u8), (10, 7)];
    let results: Vec<Vec<[Duration; 6]>> = sizes
        .iter()
        .map(|&(n, t)| (0..runs).map(|_| ceremony(n, t)).collect())
        .collect();

    println!("\nceremony machine time, median of {runs} run(s), ms");
    println!("{:<44} {:>10} {:>10}", "step", "3-of-5", "7-of-10");
    for (i, step) in STEPS.iter().enumerate() {
        let cells: Vec<String> = results
            .iter()
            .map(|runs| ms(median(runs.iter().map(|r| r[i]).collect())))
            .collect();
        println!("{step:<44} {:>10} {:>10}", cells[0], cells[1]);
    }
    let totals: Vec<String> = results
        .iter()
        .map(|runs| ms(median(runs.iter().map(|r| r.iter().sum()).collect())))
        .collect();
    println!("{:<44} {:>10} {:>10}", "total", totals[0], totals[1]);

    let dir = tempfile::tempdir().unwrap();
    let enclave = EnclaveProc::start(dir.path(), "latency", None);
    let n = if quick { 200 } else { 5000 };
    let mut client = enclave.client();
    for _ in 0..100 {
        client.call(&Request::Status).unwrap();
    }
    let mut samples: Vec<Duration> = (0..n)
        .map(|_| {
            let t = Instant::now();
            client.call(&Request::Status).unwrap();
            t.elapsed()
        })
        .collect();
    samples.sort();
    println!(
        "\nstatus round trip direct to the enclave, one connection, {n} requests: p50 {:.0} us, p99 {:.0} us",
        percentile(&samples, 500).as_secs_f64() * 1e6,
        percentile(&samples, 990).as_secs_f64() * 1e6,
    );
}
