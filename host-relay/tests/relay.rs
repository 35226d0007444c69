//! The relay between real processes: a dev enclave on a unix socket and the relay binary on
//! loopback.

mod support;

use std::io::Write;
use std::time::{Duration, Instant};

use airgap_bundle::{Bundle, BundleKind, Metadata};
use serde_bytes::ByteBuf;
use tessera_core::cbor;
use tessera_core::protocol::{AppRequest, MAX_FRAME, Phase, Request, Response};

use support::{Enclave, Relay, connect, get, post, read_reply};

fn setup() -> (tempfile::TempDir, Enclave, Relay) {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("enclave.sock");
    let enclave = Enclave::start(&socket);
    let relay = Relay::start(&socket, 10.0);
    (dir, enclave, relay)
}

#[test]
fn health_status_and_raw() {
    let (_dir, _enclave, relay) = setup();

    let health = get(relay.addr, "/v1/health");
    assert_eq!(health.status, 200);
    assert_eq!(
        health.json(),
        serde_json::json!({"relay": "ok", "enclave": "reachable"})
    );

    let status = get(relay.addr, "/v1/status");
    assert_eq!(status.status, 200);
    let v = status.json();
    assert_eq!(v["phase"], "waiting-for-boot");
    assert_eq!(v["dev"], true);
    assert_eq!(v["threshold"], 0);
    assert!(v["manifest_hash"].is_null() && v["ephemeral_key"].is_null());
    assert_eq!(v["shares_from"], serde_json::json!([]));

    let raw = post(relay.addr, "/v1/raw", &cbor::encode(&Request::Status));
    assert_eq!(raw.status, 200);
    assert_eq!(raw.header("content-type"), Some("application/cbor"));
    match Response::decode(&raw.body).unwrap() {
        Response::Status(s) => assert_eq!(s.phase, Phase::WaitingForBoot),
        other => panic!("unexpected {other:?}"),
    }

    // Raw passes enclave errors through as CBOR: the HTTP exchange itself worked.
    let sign = Request::App(AppRequest::Sign {
        message: ByteBuf::from(b"hello".to_vec()),
    });
    let raw = post(relay.addr, "/v1/raw", &cbor::encode(&sign));
    assert_eq!(raw.status, 200);
    assert!(matches!(
        Response::decode(&raw.body).unwrap(),
        Response::Error { .. }
    ));
}

#[test]
fn errors_are_json_with_codes() {
    let (_dir, _enclave, relay) = setup();
    let a = relay.addr;

    // The enclave's wrong-phase error keeps its code and maps to 409.
    let sign = cbor::encode(&AppRequest::Sign {
        message: ByteBuf::from(b"hello".to_vec()),
    });
    let r = post(a, "/v1/app", &sign);
    assert_eq!(r.error_code(409), "wrong-phase");
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("waiting-for-boot")
    );

    // No envelope yet, so no request bundle.
    assert_eq!(get(a, "/v1/request-bundle").error_code(409), "wrong-phase");
    assert_eq!(
        get(a, "/v1/request-bundle?nonce=00ff").error_code(409),
        "wrong-phase"
    );
    assert_eq!(
        get(a, "/v1/request-bundle?nonce=xyz").error_code(400),
        "bad-request"
    );

    // Malformed CBOR, on every CBOR endpoint.
    for path in [
        "/v1/raw",
        "/v1/genesis",
        "/v1/boot",
        "/v1/patch",
        "/v1/reshard",
        "/v1/app",
    ] {
        assert_eq!(
            post(a, path, b"\xff\x00garbage").error_code(400),
            "bad-request",
            "{path}"
        );
        assert_eq!(post(a, path, b"").error_code(400), "bad-request", "{path}");
    }
    // Well-formed CBOR of the wrong type, and a non-canonical encoding of a valid request.
    assert_eq!(
        post(a, "/v1/boot", &cbor::encode(&Request::Status)).error_code(400),
        "bad-request"
    );
    assert_eq!(
        post(a, "/v1/raw", b"\x7f\x66status\xff").error_code(400),
        "bad-request"
    );

    // Share bundles: not a bundle, the wrong kind, the right kind with a bad payload.
    assert_eq!(
        post(a, "/v1/share-bundle", b"not a bundle").error_code(400),
        "bad-request"
    );
    let meta = Metadata {
        namespace: Some("test".into()),
        nonce: Some(1),
        ..Metadata::default()
    };
    let request_kind = Bundle::new(BundleKind::Request, meta.clone(), vec![0xa0]).unwrap();
    let r = post(a, "/v1/share-bundle", &request_kind.encode());
    assert_eq!(r.error_code(400), "bad-request");
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("expected a share bundle")
    );
    let bad_payload = Bundle::new(BundleKind::Share, meta, b"junk".to_vec()).unwrap();
    assert_eq!(
        post(a, "/v1/share-bundle", &bad_payload.encode()).error_code(400),
        "bad-request"
    );

    // Routing errors are JSON too.
    assert_eq!(get(a, "/v2/nothing").error_code(404), "not-found");
    assert_eq!(get(a, "/v1/patch").error_code(405), "method-not-allowed");
    assert_eq!(
        post(a, "/v1/status", b"").error_code(405),
        "method-not-allowed"
    );
}

#[test]
fn oversize_bodies_are_refused() {
    let (_dir, _enclave, relay) = setup();

    // Declared too large: refused on the headers alone.
    let mut s = connect(relay.addr);
    write!(
        s,
        "POST /v1/raw HTTP/1.1\r\nHost: relay\r\nContent-Length: {}\r\n\r\n",
        MAX_FRAME + 1
    )
    .unwrap();
    assert_eq!(read_reply(&mut s).error_code(413), "payload-too-large");

    // Chunked, with no length to go by: cut off while reading.
    let mut s = connect(relay.addr);
    write!(
        s,
        "POST /v1/share-bundle HTTP/1.1\r\nHost: relay\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    .unwrap();
    let chunk = vec![b'x'; 64 * 1024];
    for _ in 0..=MAX_FRAME / chunk.len() {
        // The relay may answer and close before the last chunk; that is the point.
        if write!(s, "{:x}\r\n", chunk.len()).is_err()
            || s.write_all(&chunk).is_err()
            || s.write_all(b"\r\n").is_err()
        {
            break;
        }
    }
    let _ = s.write_all(b"0\r\n\r\n");
    assert_eq!(read_reply(&mut s).error_code(413), "payload-too-large");

    // Exactly at the limit is read, then refused as CBOR rather than as size.
    let r = post(relay.addr, "/v1/raw", &vec![0u8; MAX_FRAME]);
    assert_eq!(r.error_code(400), "bad-request");

    // The relay is unharmed.
    assert_eq!(get(relay.addr, "/v1/status").status, 200);
}

#[test]
fn slow_body_times_out_without_holding_others_up() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("enclave.sock");
    let _enclave = Enclave::start(&socket);
    let relay = Relay::start(&socket, 1.0);

    let started = Instant::now();
    let mut slow = connect(relay.addr);
    write!(
        slow,
        "POST /v1/raw HTTP/1.1\r\nHost: relay\r\nContent-Length: 100\r\n\r\n0123456789"
    )
    .unwrap();

    // While the slow body is pending, other clients are served at once.
    for _ in 0..5 {
        let t = Instant::now();
        assert_eq!(get(relay.addr, "/v1/status").status, 200);
        assert!(
            t.elapsed() < Duration::from_millis(900),
            "{:?}",
            t.elapsed()
        );
    }

    let r = read_reply(&mut slow);
    assert_eq!(r.error_code(408), "request-timeout");
    assert!(started.elapsed() >= Duration::from_millis(900));
}

#[test]
fn enclave_going_away_and_coming_back() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("enclave.sock");

    // The relay may start first; it connects on demand.
    let relay = Relay::start(&socket, 10.0);
    assert_eq!(
        get(relay.addr, "/v1/status").error_code(502),
        "enclave-unavailable"
    );
    assert_eq!(
        get(relay.addr, "/v1/health").json()["enclave"],
        "unreachable"
    );

    let enclave = Enclave::start(&socket);
    assert_eq!(get(relay.addr, "/v1/status").status, 200);

    // Killed under an open connection.
    enclave.kill();
    let r = get(relay.addr, "/v1/status");
    assert_eq!(r.error_code(502), "enclave-unavailable");
    assert_eq!(
        post(relay.addr, "/v1/raw", &cbor::encode(&Request::Status)).error_code(502),
        "enclave-unavailable"
    );
    let health = get(relay.addr, "/v1/health");
    assert_eq!(health.status, 200);
    assert_eq!(health.json()["enclave"], "unreachable");

    // A new enclave at the same socket is picked up without restarting the relay.
    let _enclave = Enclave::start(&socket);
    let status = get(relay.addr, "/v1/status");
    assert_eq!(status.status, 200);
    assert_eq!(status.json()["phase"], "waiting-for-boot");
    assert_eq!(get(relay.addr, "/v1/health").json()["enclave"], "reachable");

    // The operator sees each outage in the relay's log, and every request at debug.
    let log = std::fs::read_to_string(dir.path().join("relay.log")).unwrap();
    let outages = log
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("enclave-unavailable"))
        .count();
    assert!(outages >= 3, "{outages} outages logged:\n{log}");
    assert!(
        log.lines()
            .any(|l| l.contains("DEBUG") && l.contains("/v1/status") && l.contains("status=200")),
        "{log}"
    );
}

#[test]
fn an_unparsable_log_filter_stops_the_relay() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tessera-relay"))
        .args(["--listen", "127.0.0.1:0", "--enclave", "unix:/nonexistent"])
        .env("RUST_LOG", "tessera_relay=loud")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("RUST_LOG=\"tessera_relay=loud\""),
        "{stderr}"
    );
    assert!(out.stdout.is_empty(), "it must not report itself ready");
}

#[test]
fn concurrent_clients_share_one_enclave_connection() {
    let (_dir, _enclave, relay) = setup();
    let addr = relay.addr;
    let threads: Vec<_> = (0..32)
        .map(|i| {
            std::thread::spawn(move || {
                for _ in 0..10 {
                    if i % 2 == 0 {
                        assert_eq!(get(addr, "/v1/status").json()["phase"], "waiting-for-boot");
                    } else {
                        let r = post(addr, "/v1/raw", &cbor::encode(&Request::Status));
                        assert!(matches!(
                            Response::decode(&r.body).unwrap(),
                            Response::Status(_)
                        ));
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}
