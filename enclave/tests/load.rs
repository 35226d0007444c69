//! The enclave and the relay under hostile load, on the real binaries over real sockets
//! (127.0.0.1 and a unix socket in a temporary directory): a dripping sender, more idle
//! connections than the enclave has slots, 1,100 slow HTTP connections, a request-bundle flood,
//! an oversize genesis, a relay killed mid-request and a relay stopped with SIGTERM. Every loop
//! is bounded and every wait has a deadline; no assertion depends on how fast this machine is,
//! only on what was answered. After each attack, the service still completes a ceremony through
//! the relay.

mod support;

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use airgap_bundle::{Bundle, BundleKind, Metadata};
use nix::sys::signal::Signal;
use support::{Ceremony, RelayProc, STEP, frame, member_checks_request};
use tessera_core::cbor;
use tessera_core::manifest::{Member, MemberSet};
use tessera_core::objects::{GenesisRequest, OBJECT_VERSION, ProvisionRequest, ShareSubmission};
use tessera_core::protocol::{MAX_FRAME, Request};

/// The attacks load the whole machine; one at a time keeps each one's verdict its own.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The enclave's promise for one frame (`docs/protocol.md`) is 10 s; it never closes a frame
/// earlier than that, less the drip interval this test can observe it by.
const FRAME_TIMEOUT_SEEN: Duration = Duration::from_millis(9400);

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
    read_response(&mut s)
}

fn read_response(s: &mut TcpStream) -> io::Result<(u16, Vec<u8>)> {
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| io::Error::other("no HTTP response head"))?;
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| io::Error::other("no status code"))?;
    assert!(
        !head.contains("transfer-encoding: chunked"),
        "the relay sends whole bodies"
    );
    Ok((code, raw[split + 4..].to_vec()))
}

/// Posts the headers of a share bundle with `Expect: 100-continue`, waits for the relay's
/// `100 Continue` (its handler has started reading the body: the request is in progress, not
/// waiting in the accept queue or unparsed), then sends the first half of the body.
fn send_half_in_progress(s: &mut TcpStream, bundle: &[u8]) {
    write!(
        s,
        "POST /v1/share-bundle HTTP/1.1\r\nHost: relay\r\nExpect: 100-continue\r\n\
         Content-Length: {}\r\n\r\n",
        bundle.len()
    )
    .unwrap();
    let mut interim = Vec::new();
    while !interim.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        s.read_exact(&mut byte).unwrap();
        interim.push(byte[0]);
    }
    assert!(
        interim.starts_with(b"HTTP/1.1 100"),
        "{}",
        String::from_utf8_lossy(&interim)
    );
    s.write_all(&bundle[..bundle.len() / 2]).unwrap();
}

fn json(body: &[u8]) -> serde_json::Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(body)))
}

/// `GET /v1/request-bundle`, waiting out the ration (429) as a member's app would, up to
/// [`STEP`].
fn request_bundle(relay: &RelayProc) -> Vec<u8> {
    let until = Instant::now() + STEP;
    loop {
        let (code, body) = try_http(&relay.addr, "GET", "/v1/request-bundle", b"").unwrap();
        if code == 200 {
            return body;
        }
        assert_eq!(code, 429, "{}", String::from_utf8_lossy(&body));
        assert!(Instant::now() < until, "still rationed after {STEP:?}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Member `i` fetches a request bundle through `relay`, checks it offline, and hands over.
fn share_via(relay: &RelayProc, c: &mut Ceremony, i: usize) -> (ShareSubmission, Vec<u8>) {
    let bundle = Bundle::decode(&request_bundle(relay)).unwrap();
    assert_eq!(bundle.kind(), BundleKind::Request);
    let req = ProvisionRequest::decode(bundle.payload()).unwrap();
    let eph = member_checks_request(&req.envelope, &req.attestation, &c.enclave.root);
    let m = req.envelope.manifest.clone();
    let sub = c.share_for(i, &m, &eph);
    let meta = Metadata {
        member: Some(c.members[i].alias().to_owned()),
        ..Metadata::default()
    };
    let bytes = Bundle::new(BundleKind::Share, meta, cbor::encode(&sub))
        .unwrap()
        .encode();
    (sub, bytes)
}

fn post_share(relay: &RelayProc, bundle: &[u8]) -> serde_json::Value {
    let (code, body) = try_http(&relay.addr, "POST", "/v1/share-bundle", bundle).unwrap();
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    json(&body)
}

fn relay_status(relay: &RelayProc) -> serde_json::Value {
    let (code, body) = try_http(&relay.addr, "GET", "/v1/status", b"").unwrap();
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    json(&body)
}

fn boot_via(relay: &RelayProc, c: &Ceremony) {
    let (code, body) = try_http(&relay.addr, "POST", "/v1/boot", &c.envelope.encode()).unwrap();
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
}

/// Boots (if not yet booted) and provisions through `relay` with members not yet counted, then
/// checks the quorum key signs.
fn complete_via(relay: &RelayProc, c: &mut Ceremony) {
    if relay_status(relay)["phase"] == "waiting-for-boot" {
        boot_via(relay, c);
    }
    for i in 0..c.members.len() {
        let status = relay_status(relay);
        assert_eq!(status["phase"], "waiting-for-shares", "{status}");
        let alias = serde_json::json!(c.members[i].alias());
        if status["shares_from"].as_array().unwrap().contains(&alias) {
            continue;
        }
        let (_, bundle) = share_via(relay, c, i);
        let answer = post_share(relay, &bundle);
        assert_eq!(answer["already_accepted"], false, "{answer}");
        if answer["provisioned"] == true {
            c.assert_app_signs();
            return;
        }
    }
    panic!("not provisioned: {}", relay_status(relay));
}

/// A field of `/proc/PID/status` in KiB (`VmRSS`, `VmLck`).
fn proc_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// Nearest-rank percentile.
fn percentile(sorted: &[Duration], p: usize) -> Duration {
    sorted[(sorted.len() * p).div_ceil(100).saturating_sub(1)]
}

#[test]
fn a_dripping_sender_loses_its_frame_at_the_frame_deadline() {
    let _serial = serial();
    let mut c = Ceremony::new(3, 2);
    let mut drip = UnixStream::connect(&c.enclave.socket).unwrap();
    drip.set_nonblocking(true).unwrap();
    // A frame of 1,000 bytes, sent one byte every half second: each read is quick, the frame is
    // not. With a per-read timeout it would stay open for 500 s.
    drip.write_all(&1000u32.to_be_bytes()).unwrap();
    let started = Instant::now();
    let mut closed_after = None;
    let mut scratch = [0u8; 64];
    // Bounded: at most 50 drips (25 s), well past the 10 s deadline.
    for _ in 0..50 {
        std::thread::sleep(Duration::from_millis(500));
        let wrote = drip.write(&[0xa1]);
        let read = drip.read(&mut scratch);
        let open =
            wrote.is_ok() && matches!(&read, Err(e) if e.kind() == io::ErrorKind::WouldBlock);
        if !open {
            closed_after = Some(started.elapsed());
            break;
        }
    }
    let closed_after = closed_after.expect("a dripping sender kept its frame open for 25 s");
    // The deadline never fires early.
    assert!(
        closed_after >= FRAME_TIMEOUT_SEEN,
        "closed after {closed_after:?}"
    );
    eprintln!("dripping sender closed after {closed_after:?}");

    let relay = RelayProc::start(&c.enclave.addr);
    complete_via(&relay, &mut c);
}

#[test]
fn idle_connections_past_the_enclave_slots_do_not_lock_out_a_restarted_relay() {
    let _serial = serial();
    let mut c = Ceremony::new(3, 2);
    let relay = RelayProc::start(&c.enclave.addr);
    relay_status(&relay);
    let rss_before = proc_kib(c.enclave.pid(), "VmRSS");
    // 70 idle connections: more than the enclave's 64 slots.
    let held: Vec<UnixStream> = (0..70)
        .map(|_| UnixStream::connect(&c.enclave.socket).unwrap())
        .collect();
    relay.kill();
    let relay = RelayProc::start(&c.enclave.addr);
    // The new relay's connection takes the place of the longest-idle one.
    let status = relay_status(&relay);
    assert_eq!(status["phase"], "waiting-for-boot");
    let (code, body) = try_http(&relay.addr, "GET", "/v1/health", b"").unwrap();
    assert_eq!(code, 200);
    assert_eq!(json(&body)["enclave"], "reachable");

    // Some of the idle connections were closed to make room; count them.
    let mut closed = 0;
    for mut s in &held {
        s.set_nonblocking(true).unwrap();
        if !matches!(s.read(&mut [0u8; 1]), Err(e) if e.kind() == io::ErrorKind::WouldBlock) {
            closed += 1;
        }
    }
    assert!(closed >= 6, "only {closed} of 70 idle connections closed");
    eprintln!("{closed} of 70 idle connections closed to make room");
    // With `mlockall` every stack page of a connection thread is resident and pinned: 64
    // connections must not cost more than small stacks (2 MiB default stacks would be 128 MiB).
    let grown = proc_kib(c.enclave.pid(), "VmRSS").saturating_sub(rss_before);
    eprintln!(
        "enclave resident memory grew by {grown} KiB for 64 connections (VmLck {} KiB)",
        proc_kib(c.enclave.pid(), "VmLck")
    );
    assert!(grown < 48 * 1024, "64 idle connections cost {grown} KiB");

    // Still holding the rest, the ceremony completes through the relay.
    complete_via(&relay, &mut c);
    drop(held);
}

#[test]
fn legitimate_requests_are_served_past_1100_slow_http_connections() {
    let _serial = serial();
    let mut c = Ceremony::new(3, 2);
    let relay = RelayProc::start(&c.enclave.addr);
    // 1,100 connections that start a request and never finish their headers.
    let mut slow = Vec::with_capacity(1100);
    for _ in 0..1100 {
        let mut s = TcpStream::connect(&relay.addr).unwrap();
        let _ = s.write_all(b"GET /v1/status HTTP/1.1\r\nHost: relay\r\n");
        slow.push(s);
    }
    let mut served = 0;
    for _ in 0..40 {
        if matches!(
            try_http(&relay.addr, "GET", "/v1/status", b""),
            Ok((200, _))
        ) {
            served += 1;
        }
    }
    eprintln!("{served} of 40 legitimate requests served past 1,100 slow connections");
    assert!(
        served >= 38,
        "only {served} of 40 legitimate requests served"
    );
    complete_via(&relay, &mut c);
    drop(slow);
}

#[test]
fn status_is_answered_during_a_request_bundle_flood() {
    let _serial = serial();
    let mut c = Ceremony::new(3, 2);
    let relay = RelayProc::start(&c.enclave.addr);
    boot_via(&relay, &c);
    let (ok, limited, other) = (
        AtomicUsize::new(0),
        AtomicUsize::new(0),
        AtomicUsize::new(0),
    );
    let flood_for = Duration::from_secs(3);
    let mut latencies = Vec::new();
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                let until = Instant::now() + flood_for;
                while Instant::now() < until {
                    match try_http(&relay.addr, "GET", "/v1/request-bundle", b"") {
                        Ok((200, _)) => ok.fetch_add(1, Ordering::Relaxed),
                        Ok((429, _)) => limited.fetch_add(1, Ordering::Relaxed),
                        _ => other.fetch_add(1, Ordering::Relaxed),
                    };
                }
            });
        }
        for _ in 0..100 {
            let t = Instant::now();
            let (code, body) = try_http(&relay.addr, "GET", "/v1/status", b"").unwrap();
            latencies.push(t.elapsed());
            assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
            assert_eq!(json(&body)["phase"], "waiting-for-shares");
        }
    });
    latencies.sort();
    let (ok, limited, other) = (ok.into_inner(), limited.into_inner(), other.into_inner());
    eprintln!(
        "flood: {ok} bundles, {limited} rationed (429), {other} other; status p50 {:?} p99 {:?}",
        percentile(&latencies, 50),
        percentile(&latencies, 99)
    );
    assert!(ok > 0, "no request bundle at all during the flood");
    assert!(limited > 0, "{ok} request bundles in 3 s and none rationed");
    assert_eq!(other, 0, "flood requests failed other than with 429");
    complete_via(&relay, &mut c);
}

/// An attestation costs the enclave an NSM call whichever route asks for it: `GET
/// /v1/attestation` and a raw `Attestation` request through `POST /v1/raw` draw on one client's
/// ration (4 per second, bursts of 8), so neither route is a way around the other's limit.
#[test]
fn attestations_by_any_route_share_one_ration() {
    let _serial = serial();
    let c = Ceremony::new(3, 2);
    let relay = RelayProc::start(&c.enclave.addr);
    let raw = cbor::encode(&Request::Attestation { nonce: None });
    let (mut ok, mut limited, mut raw_ok) = (0u64, 0u64, 0u64);
    let t0 = Instant::now();
    for i in 0..200 {
        let answer = if i % 2 == 0 {
            try_http(&relay.addr, "GET", "/v1/attestation?nonce=0102", b"")
        } else {
            try_http(&relay.addr, "POST", "/v1/raw", &raw)
        };
        match answer.unwrap() {
            (200, _) => {
                ok += 1;
                raw_ok += u64::from(i % 2 == 1);
            }
            (429, _) => limited += 1,
            (code, body) => panic!("{code}: {}", String::from_utf8_lossy(&body)),
        }
    }
    let elapsed = t0.elapsed();
    // What one client's bucket can give in `elapsed`, with one token of slack for rounding.
    let allowed = 8 + elapsed.as_millis().div_ceil(250) as u64 + 1;
    eprintln!(
        "200 attestation requests in {elapsed:?}: {ok} answered ({raw_ok} raw), {limited} rationed"
    );
    assert!(
        ok <= allowed,
        "{ok} attestations answered in {elapsed:?}, more than the ration's {allowed}"
    );
    assert!(limited > 0, "200 requests and none rationed");
}

#[test]
fn a_genesis_too_large_for_one_frame_gets_413_and_changes_nothing() {
    let _serial = serial();
    let mut c = Ceremony::new(3, 2);
    let relay = RelayProc::start(&c.enclave.addr);
    relay_status(&relay);
    // A genesis request whose body fits the relay's 1 MiB body limit, but which wrapped as an
    // enclave request is just over the frame limit.
    let mut req = GenesisRequest {
        version: OBJECT_VERSION,
        namespace: String::new(),
        share_set: MemberSet {
            threshold: 1,
            members: vec![Member {
                alias: "m0".to_owned(),
                public_key: support::key(&mut c.members[0], tessera_core::keys::Role::Share),
            }],
        },
        dr_recipient: None,
        manifest_set: None,
    };
    let base = cbor::encode(&req).len();
    req.namespace = "n".repeat(MAX_FRAME - 2 - base - 4);
    let body = cbor::encode(&req);
    assert!(body.len() <= MAX_FRAME, "{}", body.len());
    assert!(cbor::encode(&Request::Genesis(req)).len() > MAX_FRAME);
    let (code, answer) = try_http(&relay.addr, "POST", "/v1/genesis", &body).unwrap();
    assert_eq!(code, 413, "{}", String::from_utf8_lossy(&answer));
    assert_eq!(json(&answer)["error"]["code"], "payload-too-large");
    // Over the body limit itself: 413 too, from the declared length alone (the relay answers
    // and closes before the body, so none is sent here).
    let mut over = TcpStream::connect(&relay.addr).unwrap();
    over.set_read_timeout(Some(STEP)).unwrap();
    write!(
        over,
        "POST /v1/genesis HTTP/1.1\r\nHost: relay\r\nContent-Length: {}\r\n\r\n",
        MAX_FRAME + 1
    )
    .unwrap();
    let (code, _) = read_response(&mut over).unwrap();
    assert_eq!(code, 413);
    assert_eq!(relay_status(&relay)["phase"], "waiting-for-boot");
    complete_via(&relay, &mut c);
}

#[test]
fn a_relay_killed_mid_request_loses_nothing_and_a_retry_is_already_accepted() {
    let _serial = serial();
    let mut c = Ceremony::new(4, 3);
    let mut relay = RelayProc::start(&c.enclave.addr);
    boot_via(&relay, &c);
    let (_, b0) = share_via(&relay, &mut c, 0);

    // Killed while the share bundle is half sent: the enclave never saw it.
    let mut s = TcpStream::connect(&relay.addr).unwrap();
    s.set_read_timeout(Some(STEP)).unwrap();
    send_half_in_progress(&mut s, &b0);
    assert_eq!(relay.signal_and_wait(Signal::SIGKILL), None);
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    assert!(rest.is_empty(), "an answer from a killed relay");

    let relay = RelayProc::start(&c.enclave.addr);
    let first = post_share(&relay, &b0);
    assert_eq!(first["already_accepted"], false, "{first}");
    assert_eq!(first["received"], 1);

    // The enclave accepted m1's share but its answer was lost (the relay died between the
    // enclave's answer and the HTTP response): the same frame straight to the enclave, its
    // answer never read.
    let (sub1, b1) = share_via(&relay, &mut c, 1);
    {
        let mut raw = UnixStream::connect(&c.enclave.socket).unwrap();
        raw.write_all(&frame(&cbor::encode(&Request::PostShare(sub1))))
            .unwrap();
        raw.shutdown(std::net::Shutdown::Write).unwrap();
        raw.set_read_timeout(Some(STEP)).unwrap();
        let mut answer = Vec::new();
        // Waiting for the enclave to finish with it; the answer itself is dropped.
        let _ = raw.read_to_end(&mut answer);
    }
    // The member retries the very same bundle: already accepted, nothing changed.
    let retry = post_share(&relay, &b1);
    assert_eq!(retry["already_accepted"], true, "{retry}");
    assert_eq!(retry["member"], "m1");
    assert_eq!(retry["received"], 2);
    assert_eq!(retry["provisioned"], false);
    let status = relay_status(&relay);
    assert_eq!(
        status["shares_from"].as_array().unwrap().len(),
        2,
        "{status}"
    );

    complete_via(&relay, &mut c);
    // A retry after provisioning is recognised too.
    let late = post_share(&relay, &b1);
    assert_eq!(late["already_accepted"], true, "{late}");
    assert_eq!(late["provisioned"], true);
}

#[test]
fn sigterm_drains_the_relay_and_stops_the_enclave() {
    let _serial = serial();
    let mut c = Ceremony::new(3, 2);
    let mut relay = RelayProc::start(&c.enclave.addr);
    boot_via(&relay, &c);
    let (_, b0) = share_via(&relay, &mut c, 0);

    // A share bundle half sent when SIGTERM arrives.
    let mut s = TcpStream::connect(&relay.addr).unwrap();
    s.set_read_timeout(Some(STEP)).unwrap();
    send_half_in_progress(&mut s, &b0);
    let pid = nix::unistd::Pid::from_raw(i32::try_from(relay.pid()).unwrap());
    nix::sys::signal::kill(pid, Signal::SIGTERM).unwrap();
    // Once the relay has acted on it, it accepts no new connection.
    let until = Instant::now() + STEP;
    while TcpStream::connect(&relay.addr).is_ok() {
        assert!(
            Instant::now() < until,
            "still accepting {STEP:?} after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // The request in progress is finished and answered.
    s.write_all(&b0[b0.len() / 2..]).unwrap();
    let (code, body) = read_response(&mut s).unwrap();
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(json(&body)["received"], 1);
    assert_eq!(relay.signal_and_wait(Signal::SIGTERM), Some(0));

    let relay = RelayProc::start(&c.enclave.addr);
    complete_via(&relay, &mut c);

    // The enclave stops on SIGTERM, cleanly.
    assert_eq!(c.enclave.signal_and_wait(Signal::SIGTERM), Some(0));
    assert!(
        c.enclave.log_text().contains("stopping"),
        "{}",
        c.enclave.log_text()
    );
}

/// A second dev enclave given the same `--dev-root-out` replaces the first one's root (an old
/// root pinned by mistake would not verify the new enclave); a non-file there is left alone.
#[test]
fn dev_root_out_replaces_the_earlier_root() {
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("dev-root.pem");
    let start = |n: usize| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tessera-enclave"))
            .arg("--listen")
            .arg(format!(
                "unix:{}",
                dir.path().join(format!("e{n}.sock")).display()
            ))
            .arg("--dev")
            .arg("--dev-root-out")
            .arg(&root)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let ready = support::readiness(child.stdout.take().unwrap(), "tessera-enclave: listening");
        (child, ready)
    };
    let (mut first, ready) = start(1);
    ready.unwrap();
    let first_root = std::fs::read(&root).unwrap();
    let (mut second, ready) = start(2);
    ready.expect("a second enclave starts over the first one's root file");
    let second_root = std::fs::read(&root).unwrap();
    assert!(second_root.starts_with(b"-----BEGIN CERTIFICATE-----"));
    assert_ne!(first_root, second_root, "the root file was not replaced");
    for child in [&mut first, &mut second] {
        let _ = child.kill();
        let _ = child.wait();
    }
    // Only a regular file is replaced.
    std::fs::remove_file(&root).unwrap();
    std::fs::create_dir(&root).unwrap();
    let (mut third, ready) = start(3);
    assert!(ready.is_err(), "started over a directory at --dev-root-out");
    let _ = third.kill();
    let _ = third.wait();
    assert!(root.is_dir());
}

/// A request that never completes does not hold a stopping relay past its drain deadline.
#[test]
fn a_stopping_relay_exits_at_the_drain_deadline() {
    let _serial = serial();
    let mut c = Ceremony::new(3, 2);
    let mut relay = RelayProc::start_with(
        &c.enclave.addr,
        &["--drain-timeout", "1", "--body-timeout", "600"],
    );
    let mut stuck = TcpStream::connect(&relay.addr).unwrap();
    stuck.set_read_timeout(Some(STEP)).unwrap();
    // Headers and one byte of a 100-byte body, then nothing.
    stuck
        .write_all(b"POST /v1/raw HTTP/1.1\r\nHost: relay\r\nContent-Length: 100\r\n\r\n\xa1")
        .unwrap();
    // Make sure the relay is handling it (the body is being read) before it is told to stop.
    relay_status(&relay);
    let t = Instant::now();
    assert_eq!(relay.signal_and_wait(Signal::SIGTERM), Some(0));
    eprintln!(
        "relay exited {:?} after SIGTERM with a request stuck",
        t.elapsed()
    );
    let mut rest = Vec::new();
    let _ = stuck.read_to_end(&mut rest);

    let relay = RelayProc::start(&c.enclave.addr);
    complete_via(&relay, &mut c);
}

/// Idle connections are closed at the idle timeout (2 s here, 60 s by default); a connection
/// that keeps sending frames is not; and the relay, whose own connection was closed as idle,
/// reconnects and is served without an error.
#[test]
fn idle_connections_are_closed_and_the_relay_reconnects() {
    let _serial = serial();
    let mut c = Ceremony::with_enclave_args(
        3,
        2,
        None,
        tessera_core::bytes::Hash32::default(),
        &["--idle-timeout", "2"],
    );
    let relay = RelayProc::start(&c.enclave.addr);
    relay_status(&relay);

    let mut idle = UnixStream::connect(&c.enclave.socket).unwrap();
    idle.set_read_timeout(Some(STEP)).unwrap();
    let mut busy = UnixStream::connect(&c.enclave.socket).unwrap();
    busy.set_read_timeout(Some(STEP)).unwrap();
    let started = Instant::now();
    // `busy` sends a status request every half second for 4 s: twice the idle timeout.
    let status = frame(&cbor::encode(&Request::Status));
    for _ in 0..8 {
        std::thread::sleep(Duration::from_millis(500));
        let answer = support::raw_exchange(&mut busy, &status);
        assert!(
            matches!(answer, tessera_core::protocol::Response::Status(_)),
            "{answer:?}"
        );
    }
    // `idle` never sent anything: closed, and not before its 2 s.
    let mut rest = Vec::new();
    idle.read_to_end(&mut rest).expect("closed, not timed out");
    assert!(rest.is_empty());
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(1900),
        "closed after {waited:?}"
    );

    // The relay's connection has been idle past the timeout too: the next request reconnects.
    relay_status(&relay);
    complete_via(&relay, &mut c);
}
