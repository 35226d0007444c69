//! The relay under load and abuse, on loopback, bounded in count and time: many concurrent
//! clients mixing good requests with malformed CBOR and JSON and oversize bodies, while slow
//! senders trickle bodies and idle connections sit on their headers; then an enclave that
//! closes, truncates, garbles or stalls mid-request. Every request must get its answer, the
//! relay must stay up, and the numbers (requests per second, p50/p99 latency, peak memory) are
//! printed for `docs/threat-model.md`.
//!
//! `TESSERA_RELAY_BIN` and `TESSERA_ENCLAVE_BIN` point the test at other builds (for example the
//! release binaries of `make demo`) to measure those instead of the debug ones.

mod support;

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use tessera_core::cbor;
use tessera_core::protocol::{MAX_FRAME, Request, read_frame, write_frame};

use support::{Reply, connect, read_reply};

const CLIENTS: usize = 64;
const REQUESTS_PER_CLIENT: usize = 40;
const SLOW_SENDERS: usize = 32;
const IDLE_HEADERS: usize = 32;
const BODY_TIMEOUT: Duration = Duration::from_secs(1);
/// The relay's wait for the fake enclave, and how long the fake sits on a stalled request.
const ENCLAVE_TIMEOUT: Duration = Duration::from_secs(4);
const STALL: Duration = Duration::from_secs(8);
/// Slack for a loaded 2-core machine when checking that a stall costs the timeout, not the stall.
const SLACK: Duration = Duration::from_secs(2);

/// The load test saturates the machine; the timing test must not share it.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn bin(var: &str, default: impl FnOnce() -> PathBuf) -> PathBuf {
    std::env::var_os(var).map_or_else(default, PathBuf::from)
}

/// Spawns `cmd` and returns it with the rest of its first stdout line starting with `prefix`.
fn spawn_ready(cmd: &mut Command, prefix: &'static str) -> (Proc, String) {
    let mut child = Proc(
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawning a test process"),
    );
    let stdout = child.0.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(rest) = line.strip_prefix(prefix) {
                let _ = tx.send(rest.to_owned());
            }
        }
    });
    let rest = rx
        .recv_timeout(Duration::from_mins(1))
        .unwrap_or_else(|_| panic!("no readiness line {prefix:?}"));
    (child, rest)
}

fn start_enclave(socket: &Path) -> Proc {
    let exe = bin("TESSERA_ENCLAVE_BIN", support::enclave_bin);
    spawn_ready(
        Command::new(exe)
            .arg("--listen")
            .arg(format!("unix:{}", socket.display()))
            .arg("--dev"),
        "tessera-enclave: listening on ",
    )
    .0
}

fn start_relay(socket: &Path, enclave_timeout: Duration) -> (Proc, SocketAddr) {
    let exe = bin("TESSERA_RELAY_BIN", || {
        PathBuf::from(env!("CARGO_BIN_EXE_tessera-relay"))
    });
    let (child, url) = spawn_ready(
        Command::new(exe)
            .args(["--listen", "127.0.0.1:0", "--enclave"])
            .arg(format!("unix:{}", socket.display()))
            .arg("--body-timeout")
            .arg(BODY_TIMEOUT.as_secs_f64().to_string())
            .arg("--enclave-timeout")
            .arg(enclave_timeout.as_secs_f64().to_string()),
        "tessera-relay: listening on ",
    );
    let addr = url
        .strip_prefix("http://")
        .and_then(|a| a.parse().ok())
        .expect("relay address");
    (child, addr)
}

/// Peak resident memory of a process, from the kernel's own high-water mark.
fn vm_hwm_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .expect("relay status")
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmHWM")
}

/// One request on a fresh connection with the given content type; the reply read to the end.
fn send(addr: SocketAddr, method: &str, path: &str, body: Option<(&str, &[u8])>) -> Reply {
    let mut s = connect(addr);
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: relay\r\nConnection: close\r\n");
    if let Some((content_type, b)) = body {
        let _ = write!(
            head,
            "Content-Type: {content_type}\r\nContent-Length: {}\r\n",
            b.len()
        );
    }
    head += "\r\n";
    s.write_all(head.as_bytes()).expect("writing headers");
    if let Some((_, b)) = body {
        s.write_all(b).expect("writing the body");
    }
    read_reply(&mut s)
}

/// What each client request is, and the status and code it must get.
#[derive(Clone, Copy)]
enum Kind {
    Status,
    RawStatus,
    Health,
    BadCbor,
    BadJson,
    Oversize,
}

impl Kind {
    fn of(i: usize) -> Self {
        match i % 10 {
            0..=3 => Self::Status,
            4 | 5 => Self::RawStatus,
            6 => Self::Health,
            7 => Self::BadCbor,
            8 => Self::BadJson,
            _ => Self::Oversize,
        }
    }

    fn run(self, addr: SocketAddr) -> Result<(), String> {
        let check = |r: &Reply, status: u16, code: Option<&str>| {
            if r.status != status {
                return Err(format!(
                    "status {} instead of {status}: {}",
                    r.status,
                    String::from_utf8_lossy(&r.body)
                ));
            }
            if let Some(code) = code {
                let v: serde_json::Value =
                    serde_json::from_slice(&r.body).map_err(|e| format!("not JSON: {e}"))?;
                if v["error"]["code"] != code {
                    return Err(format!("code {} instead of {code}", v["error"]["code"]));
                }
            }
            Ok(())
        };
        match self {
            Self::Status => check(&send(addr, "GET", "/v1/status", None), 200, None),
            Self::RawStatus => {
                let body = cbor::encode(&Request::Status);
                let r = send(addr, "POST", "/v1/raw", Some(("application/cbor", &body)));
                check(&r, 200, None)
            }
            Self::Health => check(&send(addr, "GET", "/v1/health", None), 200, None),
            Self::BadCbor => {
                let body = b"\xbf\x61a\x9f\xff\xff\x1c trailing";
                let r = send(addr, "POST", "/v1/boot", Some(("application/cbor", body)));
                check(&r, 400, Some("bad-request"))
            }
            Self::BadJson => {
                let body = br#"{"sign": {"message": [1, 2,"#;
                let r = send(addr, "POST", "/v1/app", Some(("application/json", body)));
                check(&r, 400, Some("bad-request"))
            }
            Self::Oversize => {
                let mut s = connect(addr);
                write!(
                    s,
                    "POST /v1/share-bundle HTTP/1.1\r\nHost: relay\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
                    MAX_FRAME * 64
                )
                .map_err(|e| e.to_string())?;
                check(&read_reply(&mut s), 413, Some("payload-too-large"))
            }
        }
    }
}

/// Nearest-rank percentile (`p` in 1..=100).
fn percentile(sorted: &[Duration], p: usize) -> Duration {
    let rank = (p * sorted.len()).div_ceil(100);
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[test]
fn load_with_slow_senders_idle_connections_and_garbage() {
    let _serial = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let dir = tempfile::tempdir().expect("temp dir");
    let socket = dir.path().join("enclave.sock");
    let _enclave = start_enclave(&socket);
    let (relay, addr) = start_relay(&socket, Duration::from_secs(20));
    let baseline_kib = vm_hwm_kib(relay.0.id());

    // Connections that send half their headers and then nothing.
    let idle: Vec<TcpStream> = (0..IDLE_HEADERS)
        .map(|_| {
            let mut s = connect(addr);
            s.write_all(b"POST /v1/raw HTTP/1.1\r\nHost: re")
                .expect("half a header");
            s
        })
        .collect();

    // Slow senders: a byte of a 1000-byte body every 100 ms; each must get 408 after about the
    // body timeout, however busy the relay is.
    let slow: Vec<_> = (0..SLOW_SENDERS)
        .map(|_| {
            std::thread::spawn(move || {
                let started = Instant::now();
                let mut s = connect(addr);
                s.write_all(
                    b"POST /v1/raw HTTP/1.1\r\nHost: relay\r\nContent-Length: 1000\r\n\r\n",
                )
                .expect("headers");
                while started.elapsed() < BODY_TIMEOUT * 4 {
                    if s.write_all(b"x").is_err() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                (read_reply(&mut s).status, started.elapsed())
            })
        })
        .collect();

    let latencies = Arc::new(Mutex::new(Vec::new()));
    let failures = Arc::new(Mutex::new(Vec::new()));
    let answered = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (latencies, failures, answered) =
                (latencies.clone(), failures.clone(), answered.clone());
            std::thread::spawn(move || {
                for i in 0..REQUESTS_PER_CLIENT {
                    let kind = Kind::of(c + i);
                    let t = Instant::now();
                    let outcome = kind.run(addr);
                    let took = t.elapsed();
                    answered.fetch_add(1, Ordering::Relaxed);
                    match outcome {
                        Ok(()) => latencies.lock().expect("lock").push(took),
                        Err(e) => failures.lock().expect("lock").push(e),
                    }
                }
            })
        })
        .collect();
    for c in clients {
        c.join().expect("a client thread panicked");
    }
    let wall = started.elapsed();

    for s in slow {
        let (status, took) = s.join().expect("a slow sender panicked");
        assert_eq!(status, 408, "a slow body must time out");
        assert!(
            took >= BODY_TIMEOUT && took < BODY_TIMEOUT * 4,
            "a slow body took {took:?} to be refused"
        );
    }
    drop(idle);

    let failures = failures.lock().expect("lock");
    assert!(
        failures.is_empty(),
        "{} failures: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    let total = CLIENTS * REQUESTS_PER_CLIENT;
    assert_eq!(answered.load(Ordering::Relaxed), total, "requests lost");

    let mut sorted = latencies.lock().expect("lock").clone();
    sorted.sort();
    let peak_kib = vm_hwm_kib(relay.0.id());
    // Still up and serving.
    assert_eq!(send(addr, "GET", "/v1/status", None).status, 200);
    eprintln!(
        "relay abuse: {total} requests from {CLIENTS} clients ({SLOW_SENDERS} slow senders, \
         {IDLE_HEADERS} idle half-headers alongside) in {:.2} s = {:.0} req/s; latency p50 {:.1} ms, \
         p99 {:.1} ms, max {:.1} ms; relay VmHWM {} KiB (at start {} KiB)",
        wall.as_secs_f64(),
        f64::from(u32::try_from(total).expect("small count")) / wall.as_secs_f64(),
        percentile(&sorted, 50).as_secs_f64() * 1e3,
        percentile(&sorted, 99).as_secs_f64() * 1e3,
        sorted.last().expect("latencies").as_secs_f64() * 1e3,
        peak_kib,
        baseline_kib,
    );
    assert!(
        peak_kib < 256 * 1024,
        "the relay's peak memory grew to {peak_kib} KiB"
    );
}

/// How the fake enclave treats each connection.
#[derive(Clone, Copy, Debug)]
enum Misbehaviour {
    CloseOnAccept,
    CloseAfterRequest,
    HalfAFrame,
    GarbageFrame,
    HugeLength,
    Stall,
}

fn misbehave(how: Misbehaviour, conn: &mut std::os::unix::net::UnixStream) {
    match how {
        Misbehaviour::CloseOnAccept => {}
        Misbehaviour::CloseAfterRequest => drop(read_frame(conn, MAX_FRAME)),
        Misbehaviour::HalfAFrame => {
            drop(read_frame(conn, MAX_FRAME));
            let _ = conn.write_all(&[0, 0, 1, 0, 0xa1, 0x66]);
        }
        Misbehaviour::GarbageFrame => {
            drop(read_frame(conn, MAX_FRAME));
            let _ = write_frame(conn, b"\xff\xfe not a response");
        }
        Misbehaviour::HugeLength => {
            drop(read_frame(conn, MAX_FRAME));
            let _ = conn.write_all(&u32::MAX.to_be_bytes());
        }
        Misbehaviour::Stall => {
            drop(read_frame(conn, MAX_FRAME));
            std::thread::sleep(STALL);
        }
    }
}

#[test]
fn enclave_closing_truncating_garbling_or_stalling_mid_request() {
    let _serial = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let dir = tempfile::tempdir().expect("temp dir");
    let socket = dir.path().join("enclave.sock");
    let listener = UnixListener::bind(&socket).expect("fake enclave socket");
    let (_relay, addr) = start_relay(&socket, ENCLAVE_TIMEOUT);

    let cases = [
        (Misbehaviour::CloseOnAccept, 502),
        (Misbehaviour::CloseAfterRequest, 502),
        (Misbehaviour::HalfAFrame, 502),
        (Misbehaviour::GarbageFrame, 502),
        (Misbehaviour::HugeLength, 502),
        (Misbehaviour::Stall, 504),
    ];
    // The relay's client resends a request once on a fresh connection when writing it failed
    // (the enclave may have restarted). So when the fake closes before the relay writes, a second
    // connection arrives: it gets the same treatment until the client has its answer.
    listener.set_nonblocking(true).expect("non-blocking accept");
    for (how, want) in cases {
        let server = listener.try_clone().expect("listener");
        let answered = Arc::new(AtomicBool::new(false));
        let done = Arc::clone(&answered);
        let fake = std::thread::spawn(move || {
            let mut served = 0;
            loop {
                let mut conn = match server.accept() {
                    Ok((conn, _)) => conn,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        if done.load(Ordering::Acquire) {
                            return served;
                        }
                        std::thread::sleep(Duration::from_millis(5));
                        continue;
                    }
                    Err(e) => panic!("fake enclave accept: {e}"),
                };
                served += 1;
                conn.set_nonblocking(false).expect("blocking connection");
                conn.set_read_timeout(Some(Duration::from_secs(10)))
                    .expect("timeout");
                misbehave(how, &mut conn);
            }
        });
        let t = Instant::now();
        let r = send(addr, "GET", "/v1/status", None);
        let took = t.elapsed();
        answered.store(true, Ordering::Release);
        assert_eq!(
            r.status,
            want,
            "{how:?}: {}",
            String::from_utf8_lossy(&r.body)
        );
        let v: serde_json::Value = serde_json::from_slice(&r.body).expect("JSON error");
        assert!(v["error"]["code"].is_string(), "{how:?}: {v}");
        // A stalled enclave costs the client the enclave timeout, not the stall.
        assert!(
            took < ENCLAVE_TIMEOUT + SLACK && took < STALL,
            "{how:?} took {took:?}"
        );
        // Meanwhile the relay answers what needs no enclave.
        assert_eq!(send(addr, "GET", "/v1/nothing", None).status, 404);
        let connections = fake.join().expect("fake enclave");
        assert!(
            (1..=2).contains(&connections),
            "{how:?}: {connections} connections"
        );
        eprintln!(
            "fake enclave {how:?}: {} {} in {:?} over {connections} connection(s)",
            r.status, v["error"]["code"], took
        );
    }

    // A real enclave on the same socket is picked up by the same relay process.
    drop(listener);
    std::fs::remove_file(&socket).expect("removing the fake socket");
    let _enclave = start_enclave(&socket);
    let r = send(addr, "GET", "/v1/status", None);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
}
