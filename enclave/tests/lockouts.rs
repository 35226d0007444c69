//! Lockouts under hostile load, on the real binaries over real sockets: clients of the enclave's
//! unix socket that send requests and never read the answers, and a relay client asking for
//! forward challenges by both routes. Each attack runs while legitimate requests are counted;
//! every loop is bounded and every wait has a deadline.

mod support;

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use support::{Ceremony, RelayProc, STEP, frame};
use tessera_core::cbor;
use tessera_core::protocol::{Request, Response};

/// The attacks load the whole machine; one at a time keeps each one's verdict its own.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// One HTTP/1.1 exchange on a fresh connection, without panicking: the status and the body.
fn try_http(addr: &str, method: &str, path: &str, body: &[u8]) -> io::Result<(u16, Vec<u8>)> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(STEP))?;
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
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| io::Error::other("no status code"))?;
    Ok((code, raw[split + 4..].to_vec()))
}

/// 64 clients of the enclave's socket (as many as it has slots), each writing `status` frames
/// as fast as the enclave reads them and never reading an answer; one evicted reconnects at
/// once. A relay started while they hold every slot must still be served: their answers pile
/// up unread, so each of their connections gives way after the write stall (0.5 s), and a new
/// connection waits for that rather than being closed.
#[test]
fn non_reading_clients_cannot_hold_every_enclave_slot() {
    let _serial = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let c = Ceremony::new(3, 2);
    let batch: Vec<u8> = (0..64)
        .flat_map(|_| frame(&cbor::encode(&Request::Status)))
        .collect();
    let stop = AtomicBool::new(false);
    let (evicted, holding) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let (mut served, mut failed) = (0u32, Vec::new());
    let mut took = Vec::new();
    std::thread::scope(|scope| {
        for _ in 0..64 {
            scope.spawn(|| {
                let connect = || loop {
                    if let Ok(s) = UnixStream::connect(&c.enclave.socket) {
                        s.set_write_timeout(Some(Duration::from_millis(100)))
                            .unwrap();
                        return s;
                    }
                    std::thread::sleep(Duration::from_millis(10));
                };
                let mut s = connect();
                let mut pos = 0;
                let mut stalled = false;
                // Bounded by `stop`, set after the measured window.
                while !stop.load(Ordering::Relaxed) {
                    match s.write(&batch[pos..]) {
                        Ok(n) => pos = (pos + n) % batch.len(),
                        Err(e)
                            if matches!(
                                e.kind(),
                                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                            ) =>
                        {
                            // The enclave stopped reading: its answers to us are unread.
                            if !stalled {
                                stalled = true;
                                holding.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        Err(_) => {
                            evicted.fetch_add(1, Ordering::Relaxed);
                            if stalled {
                                holding.fetch_sub(1, Ordering::Relaxed);
                            }
                            stalled = false;
                            s = connect();
                            pos = 0;
                        }
                    }
                }
            });
        }
        // Every slot taken and its answers unread before the relay starts.
        let until = Instant::now() + STEP;
        while holding.load(Ordering::Relaxed) < 60 && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(20));
        }
        let held = holding.load(Ordering::Relaxed);
        let relay = RelayProc::start(&c.enclave.addr);
        let raw = cbor::encode(&Request::Status);
        let window = Instant::now();
        for i in 0..60 {
            let t = Instant::now();
            let answer = if i % 2 == 0 {
                try_http(&relay.addr, "GET", "/v1/status", b"")
            } else {
                try_http(&relay.addr, "POST", "/v1/raw", &raw)
            };
            took.push(t.elapsed());
            match answer {
                Ok((200, _)) => served += 1,
                Ok((code, body)) => {
                    failed.push(format!("{code}: {}", String::from_utf8_lossy(&body)));
                }
                Err(e) => failed.push(e.to_string()),
            }
        }
        stop.store(true, Ordering::Relaxed);
        took.sort();
        eprintln!(
            "{served} of 60 relay requests served in {:?} with {held} of 64 non-reading \
             clients holding slots ({} evictions); p50 {:?}, max {:?}; failures: {failed:?}",
            window.elapsed(),
            evicted.load(Ordering::Relaxed),
            took[took.len() / 2],
            took[took.len() - 1],
        );
    });
    assert!(served >= 57, "only {served} of 60 relay requests served");
    // Still serving once they are gone.
    let relay = RelayProc::start(&c.enclave.addr);
    let (code, _) = try_http(&relay.addr, "GET", "/v1/status", b"").unwrap();
    assert_eq!(code, 200);
}

/// A forward challenge makes a provisioned enclave fill a slot of its bounded challenge set
/// whichever route asks for it: `POST /v1/forward/challenge`, a raw `ForwardChallenge` and a raw
/// `Attestation` through `POST /v1/raw` draw on one client's ration (4 per second, bursts of 8),
/// so no route is a way around the others' limit.
#[test]
fn forward_challenges_by_any_route_share_the_attestation_ration() {
    let _serial = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut c = Ceremony::new(3, 2);
    c.boot();
    c.complete();
    let relay = RelayProc::start(&c.enclave.addr);
    let raw_challenge = cbor::encode(&Request::ForwardChallenge);
    let raw_attestation = cbor::encode(&Request::Attestation { nonce: None });
    let (mut ok, mut limited, mut raw_ok) = (0u64, 0u64, 0u64);
    let t0 = Instant::now();
    for i in 0..300 {
        let answer = match i % 3 {
            0 => try_http(&relay.addr, "POST", "/v1/forward/challenge", b""),
            1 => try_http(&relay.addr, "POST", "/v1/raw", &raw_challenge),
            _ => try_http(&relay.addr, "POST", "/v1/raw", &raw_attestation),
        };
        match answer.unwrap() {
            (200, body) => {
                ok += 1;
                if i % 3 == 1 {
                    raw_ok += 1;
                    assert!(
                        matches!(
                            Response::decode(&body),
                            Ok(Response::ForwardChallenge { .. })
                        ),
                        "a raw challenge answered with something else"
                    );
                }
            }
            (429, _) => limited += 1,
            (code, body) => panic!("{code}: {}", String::from_utf8_lossy(&body)),
        }
    }
    let elapsed = t0.elapsed();
    // What one client's bucket can give in `elapsed`, with one token of slack for rounding.
    let allowed = 8 + elapsed.as_millis().div_ceil(250) as u64 + 1;
    eprintln!(
        "300 challenge and attestation requests in {elapsed:?}: {ok} answered ({raw_ok} raw \
         challenges), {limited} rationed"
    );
    assert!(
        ok <= allowed,
        "{ok} answered in {elapsed:?}, more than the ration's {allowed}"
    );
    assert!(raw_ok > 0, "no raw challenge answered at all");
    assert!(limited > 0, "300 requests and none rationed");
}
