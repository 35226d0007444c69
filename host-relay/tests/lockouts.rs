//! Lockouts under hostile load, on the real relay and enclave processes over real sockets (and
//! the egress proxy on its unix socket): slow request bodies from a few addresses, a flood of
//! rationed requests from several addresses, clients filling the app bridge within their caps,
//! and egress channels that drip frames or leave their connections unused. In each, legitimate
//! requests are counted while the attack runs; every loop is bounded and every wait has a
//! deadline.

mod support;

use std::cell::RefCell;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, mpsc};
use std::time::{Duration, Instant};

use tessera_core::cbor;
use tessera_core::egress::{AllowList, EgressChannel, EgressRequest, EgressResponse};
use tessera_core::protocol::{
    MAX_FRAME, Phase, Request, Response, Status, read_frame, write_frame,
};
use tessera_core::transport::{Address, Listener};
use tessera_relay::egress::{EgressConfig, serve};

use support::{Enclave, Relay};

const STEP: Duration = Duration::from_secs(30);

/// The attacks load the whole machine; one at a time keeps each one's verdict its own.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

thread_local! {
    static RUNTIME: RefCell<Option<tokio::runtime::Runtime>> = const { RefCell::new(None) };
}

/// A TCP connection to `to` from the loopback address `from` (the relay counts clients by
/// address; std cannot bind before connecting, tokio can).
fn connect_from(from: Ipv4Addr, to: SocketAddr) -> io::Result<TcpStream> {
    RUNTIME.with(|rt| {
        let mut rt = rt.borrow_mut();
        if rt.is_none() {
            *rt = Some(
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?,
            );
        }
        let rt = rt.as_ref().ok_or_else(|| io::Error::other("no runtime"))?;
        let stream = rt.block_on(async {
            let socket = tokio::net::TcpSocket::new_v4()?;
            socket.bind(SocketAddr::new(from.into(), 0))?;
            socket.connect(to).await
        })?;
        let stream = stream.into_std()?;
        stream.set_nonblocking(false)?;
        stream.set_read_timeout(Some(STEP))?;
        stream.set_write_timeout(Some(STEP))?;
        Ok(stream)
    })
}

/// One HTTP/1.1 exchange from `from` on a fresh connection: the status and the body.
fn http_from(
    from: Ipv4Addr,
    to: SocketAddr,
    method: &str,
    path: &str,
    body: &[u8],
) -> io::Result<(u16, Vec<u8>)> {
    let mut s = connect_from(from, to)?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: relay\r\nConnection: close\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    )?;
    s.write_all(body)?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| io::Error::other("no HTTP response head"))?;
    let code = String::from_utf8_lossy(&raw[..split])
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| io::Error::other("no status code"))?;
    Ok((code, raw[split + 4..].to_vec()))
}

const LEGIT: Ipv4Addr = Ipv4Addr::LOCALHOST;

fn attacker(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(
        127,
        0,
        0,
        10 + u8::try_from(i).expect("few attacker addresses"),
    )
}

fn percent(part: usize, whole: usize) -> f64 {
    100.0 * f64::from(u32::try_from(part).unwrap()) / f64::from(u32::try_from(whole).unwrap())
}

/// 1,100 connections from five addresses (220 each, under the per-client cap of 256) that send
/// a request's headers and one byte of its 1,000-byte body, then nothing. Only 256 bodies are
/// read at once, and a client holding the most gives way to one holding fewer, so the others
/// are answered 503 at once and their connections become waiting ones that give way to new
/// clients: legitimate requests with and without bodies are served.
#[test]
fn slow_bodies_from_five_addresses_leave_legitimate_clients_served() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("enclave.sock");
    let _enclave = Enclave::start(&socket);
    let relay = Relay::start(&socket, 10.0);
    let started = Instant::now();
    let mut slow = Vec::with_capacity(1100);
    for i in 0..1100 {
        let mut s = connect_from(attacker(i % 5), relay.addr).unwrap();
        let _ = s
            .write_all(b"POST /v1/raw HTTP/1.1\r\nHost: relay\r\nContent-Length: 1000\r\n\r\n\xa1");
        slow.push(s);
    }
    let opened = started.elapsed();
    let raw = cbor::encode(&Request::Status);
    let (mut served, mut failed) = (0, Vec::new());
    for i in 0..40 {
        let answer = if i % 2 == 0 {
            http_from(LEGIT, relay.addr, "POST", "/v1/raw", &raw)
        } else {
            http_from(LEGIT, relay.addr, "GET", "/v1/status", b"")
        };
        match answer {
            Ok((200, _)) => served += 1,
            Ok((code, body)) => failed.push(format!("{code} {}", String::from_utf8_lossy(&body))),
            Err(e) => failed.push(e.to_string()),
        }
    }
    eprintln!(
        "{served} of 40 legitimate requests served ({:.0}%) past 1,100 slow bodies from 5 \
         addresses (opened in {opened:?}, whole test {:?}); failures: {failed:?}",
        percent(served, 40),
        started.elapsed()
    );
    assert!(
        served >= 38,
        "only {served} of 40 legitimate requests served"
    );
    drop(slow);
}

/// Eight addresses asking for attestations and (through `POST /v1/raw`) forward challenges as
/// fast as they can, while an honest client asks for an attestation twice a second. The ration
/// shares its 20 per second between the clients asking, and keeps its last tokens for clients
/// asking less than their share: the honest client is served, and all together get no more
/// than the ration.
#[test]
fn a_ration_flood_from_eight_addresses_leaves_an_honest_client_its_share() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("enclave.sock");
    let _enclave = Enclave::start(&socket);
    let relay = Relay::start(&socket, 10.0);
    let raw_challenge = cbor::encode(&Request::ForwardChallenge);
    let stop = AtomicBool::new(false);
    let (flood_ok, flood_limited, flood_other) = (
        AtomicUsize::new(0),
        AtomicUsize::new(0),
        AtomicUsize::new(0),
    );
    let (mut served, mut asked, mut failed) = (0, 0, Vec::new());
    let t0 = Instant::now();
    std::thread::scope(|scope| {
        for a in 0..8 {
            let (stop, raw_challenge) = (&stop, &raw_challenge);
            let (ok, limited, other) = (&flood_ok, &flood_limited, &flood_other);
            scope.spawn(move || {
                let mut i = 0u64;
                // Bounded by `stop`, set after the honest client's last request.
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    let answer = if i.is_multiple_of(2) {
                        http_from(attacker(a), relay.addr, "GET", "/v1/attestation", b"")
                    } else {
                        http_from(attacker(a), relay.addr, "POST", "/v1/raw", raw_challenge)
                    };
                    match answer {
                        Ok((200, _)) => ok.fetch_add(1, Ordering::Relaxed),
                        Ok((429, _)) => limited.fetch_add(1, Ordering::Relaxed),
                        _ => other.fetch_add(1, Ordering::Relaxed),
                    };
                }
            });
        }
        // Let the flood drain the bursts first.
        std::thread::sleep(Duration::from_millis(500));
        for _ in 0..8 {
            let t = Instant::now();
            asked += 1;
            match http_from(LEGIT, relay.addr, "GET", "/v1/attestation?nonce=0102", b"") {
                Ok((200, _)) => served += 1,
                Ok((code, body)) => {
                    failed.push(format!("{code} {}", String::from_utf8_lossy(&body)));
                }
                Err(e) => failed.push(e.to_string()),
            }
            std::thread::sleep(Duration::from_millis(500).saturating_sub(t.elapsed()));
        }
        stop.store(true, Ordering::Relaxed);
    });
    let elapsed = t0.elapsed();
    let (ok, limited, other) = (
        flood_ok.into_inner(),
        flood_limited.into_inner(),
        flood_other.into_inner(),
    );
    // The shared bucket: bursts of 40, then 20 per second, one token of slack for rounding.
    let allowed = 40 + usize::try_from(elapsed.as_millis().div_ceil(50)).unwrap() + 1;
    eprintln!(
        "honest client: {served} of {asked} attestations served ({:.0}%); flood from 8 \
         addresses: {ok} served, {limited} rationed, {other} other, in {elapsed:?}; failures: \
         {failed:?}",
        percent(served, asked)
    );
    assert!(
        served * 100 >= asked * 95,
        "the honest client got {served} of {asked}"
    );
    assert!(
        ok + served <= allowed,
        "{} rationed requests answered in {elapsed:?}, more than {allowed}",
        ok + served
    );
    assert!(limited > 0, "a flood and nothing rationed");
    assert_eq!(other, 0, "flood requests failed other than with 429");
}

/// Spawns `cmd` and returns it with the rest of its first stdout line starting with `prefix`.
fn spawn_ready(cmd: &mut Command, prefix: &'static str, stdin: Option<&[u8]>) -> (Proc, String) {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawning a test process");
    let mut input = child.stdin.take().expect("piped stdin");
    if let Some(bytes) = stdin {
        input.write_all(bytes).expect("writing standard input");
    }
    drop(input);
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(rest) = line.strip_prefix(prefix) {
                let _ = tx.send(rest.trim().to_owned());
            }
        }
    });
    let child = Proc(child);
    let rest = rx
        .recv_timeout(STEP)
        .unwrap_or_else(|_| panic!("no readiness line {prefix:?}"));
    (child, rest)
}

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A stand-in for a provisioned enclave whose manifest declares app ingress port `port`: it
/// answers every request with that status (all the bridge asks).
fn provisioned_enclave(socket: &Path, port: u32) {
    let listener = UnixListener::bind(socket).unwrap();
    let status = cbor::encode(&Response::Status(Status {
        phase: Phase::Provisioned,
        dev: true,
        namespace: Some("bridge-test".to_owned()),
        manifest_hash: None,
        nonce: Some(1),
        ephemeral_key: None,
        threshold: 2,
        shares_from: Vec::new(),
        patch_sequence: 0,
        app_ingress: Some(port),
    }));
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let status = status.clone();
            std::thread::spawn(move || {
                while read_frame(&mut conn, MAX_FRAME).is_ok() {
                    if write_frame(&mut conn, &status).is_err() {
                        return;
                    }
                }
            });
        }
    });
}

/// One request to the demo app over `s`: a message out, its 64-byte signature back.
fn sign_over(s: &mut TcpStream, message: &[u8]) -> bool {
    write_frame(s, message).is_ok() && read_frame(s, 1024).is_ok_and(|sig| sig.len() == 64)
}

/// The demo app serves 64 connections at once; the bridge admits 64, and two clients within a
/// per-client cap of 32 hold all of them, each connection carrying a request first. A third
/// client's connection takes the place of the longest-idle connection of a client holding
/// more, so its requests are served while the two keep theirs.
#[test]
fn two_clients_within_their_caps_cannot_fill_the_app_bridge() {
    let _serial = serial();
    support::enclave_bin();
    let demo_app = std::env::current_exe()
        .unwrap()
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .join("tessera-demo-app");
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("enclave.sock");
    provisioned_enclave(&socket, 5000);
    let ingress = Address::Unix(socket.clone()).app_ingress(5000);
    let (_app, _) = spawn_ready(
        Command::new(&demo_app).env("TESSERA_APP_INGRESS", ingress.to_string()),
        "tessera-demo-app: listening on ",
        Some(&[7u8; 32]),
    );
    let (_relay, bridge) = spawn_ready(
        Command::new(env!("CARGO_BIN_EXE_tessera-relay"))
            .args(["--listen", "127.0.0.1:0", "--app-listen", "127.0.0.1:0"])
            .args(["--app-max-per-client", "32", "--enclave"])
            .arg(format!("unix:{}", socket.display())),
        "tessera-relay: app bridge on tcp://",
        None,
    );
    let bridge: SocketAddr = bridge.parse().unwrap();
    // Two clients, 32 connections each, every one carrying a request to the app.
    let mut held = Vec::new();
    let mut carried = 0;
    for i in 0..64 {
        let mut s = connect_from(attacker(i % 2), bridge).unwrap();
        carried += usize::from(sign_over(&mut s, b"hold"));
        held.push(s);
    }
    let (mut served, mut took) = (0, Vec::new());
    for i in 0..10u8 {
        let t = Instant::now();
        let ok = connect_from(LEGIT, bridge).is_ok_and(|mut s| sign_over(&mut s, &[i; 32]));
        took.push(t.elapsed());
        served += usize::from(ok);
    }
    // The attackers' connections that gave way were closed under them.
    let mut closed = 0;
    for s in &mut held {
        s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        let timed_out = |e: &io::Error| {
            matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            )
        };
        if !matches!(s.read(&mut [0u8; 1]), Err(e) if timed_out(&e)) {
            closed += 1;
        }
    }
    eprintln!(
        "app bridge: {carried} of 64 attacker connections carried; {served} of 10 legitimate \
         requests served ({:.0}%), slowest {:?}; {closed} attacker connections closed to make \
         room",
        percent(served, 10),
        took.iter().max().unwrap()
    );
    assert_eq!(carried, 64, "the two clients did not fill the app");
    assert!(
        served >= 10,
        "only {served} of 10 legitimate requests served"
    );
}

/// An egress proxy with 4 connections: one channel opens two and then drips a frame a byte at
/// a time, and does it again on a new channel whenever it is closed; another opens two, never
/// uses them and keeps its channel busy with a frame every 300 ms. The dripping channel loses
/// its frame (and its connections) at the frame deadline, and the unused connections are reaped
/// at the idle timeout while their channel stays open, so from then on a legitimate channel's
/// requests are served (without the reaper the four slots would stay taken).
#[test]
fn dripping_and_idle_egress_channels_cannot_keep_its_connections() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let echo = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = echo.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in echo.incoming() {
            let Ok(mut s) = s else { continue };
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = s.read(&mut buf) {
                    if n == 0 || s.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
            });
        }
    });
    let dest = format!("127.0.0.1:{port}");
    let mut config = EgressConfig::new(AllowList::parse([dest.as_str()]).unwrap());
    config.max_connections = 4;
    config.idle_timeout = Duration::from_secs(1);
    let addr = Address::Unix(dir.path().join("egress.sock"));
    let listener = Listener::bind(&addr).unwrap();
    std::thread::spawn(move || serve(&listener, config));
    let Address::Unix(path) = &addr else {
        unreachable!()
    };
    let dest = dest.parse().unwrap();
    let open = EgressRequest::Open {
        host: "127.0.0.1".to_owned(),
        port,
    };

    // The dripping channel: two connections, then a frame of 100 bytes, one byte per 200 ms;
    // when the proxy closes it, the same again on a new channel.
    let mut drip = UnixStream::connect(path).unwrap();
    drip.set_read_timeout(Some(STEP)).unwrap();
    for _ in 0..2 {
        write_frame(&mut drip, &cbor::encode(&open)).unwrap();
        let answer = EgressResponse::decode(&read_frame(&mut drip, MAX_FRAME).unwrap()).unwrap();
        assert!(
            matches!(answer, EgressResponse::Opened { .. }),
            "{answer:?}"
        );
    }
    // The busy channel with idle connections.
    let mut busy = EgressChannel::connect(&addr, STEP).unwrap();
    busy.open(&dest).unwrap();
    busy.open(&dest).unwrap();
    // Full now.
    let mut full = EgressChannel::connect(&addr, STEP).unwrap();
    assert!(full.open(&dest).is_err(), "a fifth connection was opened");
    drop(full);

    let stop = AtomicBool::new(false);
    let drip_closed_after = Mutex::new(None);
    let (mut served, mut tried) = (0, 0);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let mut drip = drip;
            // Bounded by `stop`: each round lasts until the proxy closes the channel.
            while !stop.load(Ordering::Relaxed) {
                drip.write_all(&100u32.to_be_bytes()).unwrap();
                let started = Instant::now();
                drip.set_nonblocking(true).unwrap();
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(200));
                    let wrote = drip.write(&[0xa1]);
                    let read = drip.read(&mut [0u8; 64]);
                    let open = wrote.is_ok()
                        && matches!(&read, Err(e) if e.kind() == io::ErrorKind::WouldBlock);
                    if !open {
                        drip_closed_after
                            .lock()
                            .unwrap()
                            .get_or_insert(started.elapsed());
                        break;
                    }
                }
                // Again on a new channel, with two new connections while there is room: the
                // dripper holds what its channel may hold, and no more.
                drip = UnixStream::connect(path).unwrap();
                drip.set_read_timeout(Some(STEP)).unwrap();
                for _ in 0..2 {
                    write_frame(&mut drip, &cbor::encode(&open)).unwrap();
                    drop(read_frame(&mut drip, MAX_FRAME));
                }
            }
        });
        scope.spawn(|| {
            let keep_alive = EgressRequest::Read { id: 999, max: 1 };
            while !stop.load(Ordering::Relaxed) {
                // An error answer (no such connection) is still a frame: the channel is busy.
                let _ = busy.call(&keep_alive);
                std::thread::sleep(Duration::from_millis(300));
            }
        });
        // Past the idle timeout and the frame deadline (1 s each here), with slack.
        std::thread::sleep(Duration::from_millis(1500));
        let until = Instant::now() + Duration::from_secs(2);
        while Instant::now() < until {
            tried += 1;
            // A fresh channel each time, as the enclave's fetcher opens one per fetch.
            let ok = EgressChannel::connect(&addr, STEP).is_ok_and(|mut legit| {
                legit.open(&dest).is_ok_and(|id| {
                    let echoed = legit.write(id, b"ping").is_ok()
                        && legit.read(id, 64).is_ok_and(|b| b == b"ping");
                    let _ = legit.close(id);
                    echoed
                })
            });
            served += usize::from(ok);
            std::thread::sleep(Duration::from_millis(100));
        }
        stop.store(true, Ordering::Relaxed);
    });
    let drip_closed_after = drip_closed_after.into_inner().unwrap();
    eprintln!(
        "egress: dripping channel closed after {drip_closed_after:?}; {served} of {tried} \
         legitimate requests served ({:.0}%) while the busy channel kept its idle connections' \
         channel open",
        percent(served, tried)
    );
    let closed = drip_closed_after.expect("the dripping channel was never closed");
    assert!(
        closed < Duration::from_secs(3),
        "the dripping channel lived {closed:?}"
    );
    assert!(
        served * 100 >= tried * 95,
        "only {served} of {tried} legitimate requests served"
    );
}
