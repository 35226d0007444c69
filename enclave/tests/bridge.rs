//! The relay's app bridge on real processes: an enclave whose manifest declares an ingress port
//! pivots to `tessera-demo-app`, and requests over the relay's TCP bridge get signatures by the
//! quorum key. Before provisioning nothing is carried; oversize, idle, slow and surplus
//! connections are closed under the relay's limits, and the bridge keeps serving afterwards.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use support::{Ceremony, STEP, frame};
use tessera_core::bytes::Hash32;
use tessera_core::keys::Signature;
use tessera_core::manifest::Manifest;
use tessera_core::protocol::read_frame;
use tessera_core::sign::{Purpose, signed_message};
use tessera_core::transport::Address;

const PORT: u32 = 5000;

/// A relay with the app bridge on; killed when dropped.
struct Bridge {
    child: Child,
    addr: String,
}

impl Bridge {
    fn start(enclave: &Address, args: &[&str]) -> Self {
        let mut child = Command::new(support::relay_binary())
            .args([
                "--listen",
                "127.0.0.1:0",
                "--app-listen",
                "127.0.0.1:0",
                "--enclave",
            ])
            .arg(enclave.to_string())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start tessera-relay");
        let (tx, rx) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if let Some(a) = line.strip_prefix("tessera-relay: app bridge on tcp://") {
                    let _ = tx.send(a.trim().to_owned());
                }
            }
        });
        let addr = rx
            .recv_timeout(STEP)
            .expect("the relay announces its app bridge");
        Self { child, addr }
    }

    fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(&self.addr).unwrap();
        s.set_read_timeout(Some(STEP)).unwrap();
        s
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One request over `s`: the message out, the signature back (None if the bridge closed).
fn sign_over(s: &mut TcpStream, message: &[u8]) -> Option<Signature> {
    s.write_all(&frame(message)).ok()?;
    let body = read_frame(s, 1024).ok()?;
    let bytes: [u8; 64] = body.as_slice().try_into().ok()?;
    Some(Signature(tessera_core::bytes::ByteArray(bytes)))
}

fn assert_quorum_signature(m: &Manifest, message: &[u8], sig: &Signature) {
    m.namespace
        .quorum_public_key
        .signing
        .verify(
            &signed_message(Purpose::AppMessage, &Hash32::sha256(message)),
            sig,
        )
        .expect("the app signs with the namespace's quorum key");
}

/// True once the peer has closed `s` (end of stream or reset), within `within`.
fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    s.set_read_timeout(Some(within)).unwrap();
    let mut b = [0u8; 64];
    loop {
        match s.read(&mut b) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return false;
            }
            Err(_) => return true,
        }
    }
}

/// Retries a request over a fresh bridge connection until the app answers (it starts when the
/// enclave is provisioned, and frees a slot once the relay has seen a connection end).
fn request_eventually(bridge: &Bridge, m: &Manifest, message: &[u8]) {
    let until = Instant::now() + STEP;
    loop {
        let mut s = bridge.connect();
        if let Some(sig) = sign_over(&mut s, message) {
            assert_quorum_signature(m, message, &sig);
            return;
        }
        assert!(
            Instant::now() < until,
            "no answer over the bridge within {STEP:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn provisioned_with_ingress() -> (tempfile::TempDir, Ceremony) {
    // A private copy: the shared target directory may be relinked by another build meanwhile.
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("tessera-demo-app");
    std::fs::copy(env!("CARGO_BIN_EXE_tessera-demo-app"), &app).unwrap();
    let sha = Hash32::sha256(&std::fs::read(&app).unwrap());
    let mut c = Ceremony::with_pivot(3, 2, Some(&app), sha);
    let mut m = c.manifest().clone();
    m.pivot.ingress_port = Some(PORT);
    c.envelope = c.approved(m);
    (dir, c)
}

#[test]
fn the_bridge_carries_requests_to_the_app_only_once_provisioned_and_under_limits() {
    let (_app_dir, mut c) = provisioned_with_ingress();
    let bridge = Bridge::start(
        &c.enclave.addr,
        &[
            "--app-max-per-client",
            "4",
            "--app-max-bytes",
            "4096",
            "--app-idle-timeout",
            "20",
        ],
    );

    // Before the boot and before provisioning: the connection is closed, nothing answers.
    let mut early = bridge.connect();
    assert!(sign_over(&mut early, b"too early").is_none());
    c.boot();
    let mut early = bridge.connect();
    assert!(sign_over(&mut early, b"still too early").is_none());
    assert!(
        !Path::new(&format!("{}.app-{PORT}", c.enclave.socket.display())).exists(),
        "no app listens before provisioning"
    );

    c.complete();
    let m = c.manifest().clone();
    request_eventually(&bridge, &m, b"hello over the bridge");
    // Several requests on one connection.
    let mut s = bridge.connect();
    for i in 0..5u8 {
        let msg = [i; 100];
        let sig = sign_over(&mut s, &msg).expect("an answer");
        assert_quorum_signature(&m, &msg, &sig);
    }
    drop(s);

    // Oversize: more than 4096 bytes one way closes the connection without an answer.
    let mut big = bridge.connect();
    let _ = big.write_all(&frame(&[7u8; 8192]));
    assert!(
        closed_within(&mut big, STEP),
        "an oversize connection is closed"
    );
    request_eventually(&bridge, &m, b"after an oversize one");

    // Many connections: four held open from this client, the fifth is closed at once.
    let held: Vec<TcpStream> = (0..4).map(|_| bridge.connect()).collect();
    // Each held connection is admitted before the next is accepted; this one is over the cap.
    let mut fifth = bridge.connect();
    let started = Instant::now();
    assert!(
        closed_within(&mut fifth, Duration::from_secs(10)),
        "a fifth connection is closed"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "closed by the cap, well before the 20 s idle timeout"
    );
    drop(held);
    request_eventually(&bridge, &m, b"after the surplus one");
}

#[test]
fn idle_and_slow_connections_are_closed() {
    let (_app_dir, mut c) = provisioned_with_ingress();
    c.boot();
    c.complete();
    let m = c.manifest().clone();
    let bridge = Bridge::start(
        &c.enclave.addr,
        &["--app-idle-timeout", "1", "--app-lifetime", "4"],
    );
    request_eventually(&bridge, &m, b"warm up");

    // Idle: nothing sent; closed after about a second (generously bounded).
    let mut idle = bridge.connect();
    let started = Instant::now();
    assert!(
        closed_within(&mut idle, STEP),
        "an idle connection is closed"
    );
    assert!(started.elapsed() >= Duration::from_millis(900));

    // Slow: a byte every 300 ms is never idle, but the lifetime ends it.
    let mut slow = bridge.connect();
    let started = Instant::now();
    let mut closed = false;
    while started.elapsed() < STEP {
        if slow.write_all(&[0]).is_err() || closed_within(&mut slow, Duration::from_millis(300)) {
            closed = true;
            break;
        }
    }
    assert!(closed, "a dripping connection is closed at its lifetime");
    assert!(
        started.elapsed() >= Duration::from_secs(3),
        "not before its lifetime"
    );
    request_eventually(&bridge, &m, b"after the slow one");
}

/// `tessera bridge sign` as a client runs it: the app's signature over the bridge, verified with
/// the manifest's quorum key; a manifest that declares no ingress is refused before connecting.
#[test]
fn the_cli_signs_over_the_bridge() {
    let (_app_dir, mut c) = provisioned_with_ingress();
    c.boot();
    c.complete();
    let m = c.manifest().clone();
    let bridge = Bridge::start(&c.enclave.addr, &[]);
    request_eventually(&bridge, &m, b"the app is up");
    let dir = tempfile::tempdir().unwrap();
    let envelope = dir.path().join("envelope.cbor");
    std::fs::write(&envelope, c.envelope.encode()).unwrap();
    let tessera = |manifest: &Path| {
        Command::new(support::tessera_binary())
            .args(["bridge", "sign", "--bridge", &bridge.addr, "--manifest"])
            .arg(manifest)
            .args(["--message", "hello over the bridge"])
            .env("TESSERA_TRANSCRIPT", dir.path().join("transcript.jsonl"))
            .output()
            .unwrap()
    };
    let out = tessera(&envelope);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("signature verifies with quorum key"),
        "{stdout}"
    );

    let mut without = m.clone();
    without.pivot.ingress_port = None;
    let plain = dir.path().join("manifest.cbor");
    std::fs::write(&plain, without.encode()).unwrap();
    let out = tessera(&plain);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("declares no app ingress port"));
}
