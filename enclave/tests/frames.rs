//! Hostile bytes on the enclave's socket: oversize, garbage, truncated and stalled frames. Each
//! costs at most its own connection; the enclave keeps serving everyone else and still completes
//! a ceremony.

mod support;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use support::{Ceremony, STEP, assert_refused, frame, raw_exchange};
use tessera_core::cbor;
use tessera_core::protocol::{ErrorCode, MAX_FRAME, Phase, Request, Response};

fn connect(c: &Ceremony) -> UnixStream {
    let s = UnixStream::connect(&c.enclave.socket).unwrap();
    s.set_read_timeout(Some(STEP)).unwrap();
    s
}

/// Reads until the enclave closes the connection; returns what arrived.
fn read_to_close(s: &mut UnixStream) -> Vec<u8> {
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).expect("closed, not timed out");
    rest
}

#[test]
fn an_oversize_frame_gets_an_error_and_a_closed_connection() {
    let mut c = Ceremony::new(3, 2);
    let mut hostile = connect(&c);
    let mut bystander = connect(&c);
    assert!(matches!(
        raw_exchange(&mut bystander, &frame(&cbor::encode(&Request::Status))),
        Response::Status(_)
    ));

    // Only the header: nothing that large is ever sent, or allocated.
    let declared = u32::try_from(MAX_FRAME + 1).unwrap();
    let r = raw_exchange(&mut hostile, &declared.to_be_bytes());
    assert_refused(&r, ErrorCode::BadRequest, "exceeds the 1048576-byte limit");
    assert!(read_to_close(&mut hostile).is_empty());

    let mut huge = connect(&c);
    let r = raw_exchange(&mut huge, &u32::MAX.to_be_bytes());
    assert_refused(&r, ErrorCode::BadRequest, "limit");

    // A frame of exactly the limit is read (and refused as a request, not as a frame).
    let mut at_limit = connect(&c);
    let mut body = vec![0u8; MAX_FRAME];
    body[0] = 0xff;
    let r = raw_exchange(&mut at_limit, &frame(&body));
    assert_refused(&r, ErrorCode::BadRequest, "request");

    // The connection that was open all along still works.
    assert!(matches!(
        raw_exchange(&mut bystander, &frame(&cbor::encode(&Request::Status))),
        Response::Status(_)
    ));
    c.boot();
    c.complete();
}

#[test]
fn garbage_and_non_canonical_requests_are_bad_requests_and_the_connection_survives() {
    let mut c = Ceremony::new(3, 2);
    c.boot();
    let mut s = connect(&c);
    let status = cbor::encode(&Request::Status);
    let share = cbor::encode(&Request::PostShare(c.share(0)));
    let mut trailing = status.clone();
    trailing.push(0);
    let mut indefinite = share.clone();
    // A definite-length map header turned indefinite: same value, another encoding.
    indefinite[0] = 0xbf;
    indefinite.push(0xff);

    let garbage: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("random bytes", b"\x00\x9f\xff\x13garbage".to_vec()),
        ("unknown variant", cbor::encode(&"launch-missiles")),
        ("truncated request", share[..share.len() / 2].to_vec()),
        ("trailing byte", trailing),
        ("non-canonical encoding", indefinite),
        ("deep nesting", vec![0x81; 100_000]),
        ("wrong type", cbor::encode(&42u8)),
    ];
    for (what, body) in garbage {
        let r = raw_exchange(&mut s, &frame(&body));
        assert!(
            matches!(
                &r,
                Response::Error {
                    code: ErrorCode::BadRequest,
                    ..
                }
            ),
            "{what}: {r:?}"
        );
    }
    // Same connection, next frame: the stream stayed in sync after every bad body.
    assert!(matches!(
        raw_exchange(&mut s, &frame(&status)),
        Response::Status(st) if st.phase == Phase::WaitingForShares
    ));
    assert!(c.enclave.status().shares_from.is_empty());
    c.complete();
}

#[test]
fn truncated_frames_cost_only_their_connection() {
    let mut c = Ceremony::new(3, 2);
    let status = frame(&cbor::encode(&Request::Status));
    let cuts = [1, 3, 4, status.len() - 1];
    for cut in cuts {
        let mut s = connect(&c);
        s.write_all(&status[..cut]).unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        // The enclave sees the end of the stream mid-frame and drops the connection silently.
        assert!(read_to_close(&mut s).is_empty(), "cut at {cut}");
    }
    assert_eq!(c.enclave.status().phase, Phase::WaitingForBoot);
    c.boot();
    c.complete();
}

#[test]
fn a_stalled_frame_is_dropped_after_the_frame_timeout_while_others_proceed() {
    let mut c = Ceremony::new(3, 2);
    let status = frame(&cbor::encode(&Request::Status));
    let mut idle = connect(&c);
    assert!(matches!(
        raw_exchange(&mut idle, &status),
        Response::Status(_)
    ));
    let mut slow = connect(&c);
    // Half a header, then nothing.
    slow.write_all(&[0, 0]).unwrap();
    let started = Instant::now();

    // Meanwhile a whole ceremony goes through other connections without waiting for it.
    c.boot();
    c.complete();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "other clients waited for the stalled one"
    );

    // The stalled connection is closed by the enclave after its 10 s frame timeout, not before.
    assert!(read_to_close(&mut slow).is_empty());
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(9) && waited < Duration::from_secs(20),
        "dropped after {waited:?}"
    );
    // A connection may idle between frames for as long as it likes (the relay keeps one open):
    // the timeout runs only from a frame's first byte.
    assert!(matches!(
        raw_exchange(&mut idle, &status),
        Response::Status(st) if st.phase == Phase::Provisioned
    ));
}
