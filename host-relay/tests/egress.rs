//! The egress proxy's own rules, over its real socket protocol: its allow-list, connection ids
//! scoped to a channel, the connection cap, the byte budget, the idle timeout and lifetime, and
//! malformed frames. The proxy runs in-process on a unix socket; destinations are local TCP
//! servers.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::Duration;

use tessera_core::egress::{
    AllowList, EgressChannel, EgressError, EgressErrorCode, EgressRequest, EgressResponse,
    MAX_EGRESS_FRAME,
};
use tessera_core::protocol::{read_frame, write_frame};
use tessera_core::transport::{Address, Listener};
use tessera_relay::egress::{EgressConfig, serve};

const STEP: Duration = Duration::from_secs(30);

/// A TCP server that echoes what it receives.
fn echo_server() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming() {
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
    port
}

fn proxy(dir: &std::path::Path, config: EgressConfig) -> Address {
    let addr = Address::Unix(dir.join("egress.sock"));
    let listener = Listener::bind(&addr).unwrap();
    std::thread::spawn(move || serve(&listener, config));
    addr
}

fn code(e: &EgressError) -> Option<EgressErrorCode> {
    match e {
        EgressError::Refused { code, .. } => Some(*code),
        _ => None,
    }
}

#[test]
fn the_proxy_keeps_to_its_allow_list_and_limits() {
    let dir = tempfile::tempdir().unwrap();
    let port = echo_server();
    let other = echo_server();
    let dest = format!("127.0.0.1:{port}").parse().unwrap();
    let mut config =
        EgressConfig::new(AllowList::parse([format!("127.0.0.1:{port}").as_str()]).unwrap());
    config.max_connections = 2;
    config.max_bytes = 1000;
    config.idle_timeout = Duration::from_secs(1);
    let addr = proxy(dir.path(), config);

    let mut ch = EgressChannel::connect(&addr, STEP).unwrap();
    // Bytes go through both ways.
    let id = ch.open(&dest).unwrap();
    ch.write(id, b"ping").unwrap();
    assert_eq!(ch.read(id, 64).unwrap(), b"ping");
    // Off the allow-list: refused, nothing opened.
    let off = format!("127.0.0.1:{other}").parse().unwrap();
    assert_eq!(
        code(&ch.open(&off).unwrap_err()),
        Some(EgressErrorCode::NotAllowed)
    );
    // Ids belong to their channel.
    let mut ch2 = EgressChannel::connect(&addr, STEP).unwrap();
    assert_eq!(
        code(&ch2.read(id, 10).unwrap_err()),
        Some(EgressErrorCode::UnknownConnection)
    );
    // The cap on connections counts every channel.
    let id2 = ch2.open(&dest).unwrap();
    assert_eq!(
        code(&ch2.open(&dest).unwrap_err()),
        Some(EgressErrorCode::Limit)
    );
    ch2.close(id2).unwrap();
    let id3 = ch2.open(&dest).unwrap();
    // The byte budget: 1000 bytes both ways on one connection.
    ch2.write(id3, &[b'x'; 400]).unwrap();
    let mut got = 0;
    while got < 400 {
        got += ch2.read(id3, 400).unwrap().len();
    }
    assert_eq!(
        code(&ch2.write(id3, &[b'y'; 300]).unwrap_err()),
        Some(EgressErrorCode::Limit)
    );
    // Closed with it: the id is gone.
    assert_eq!(
        code(&ch2.read(id3, 10).unwrap_err()),
        Some(EgressErrorCode::UnknownConnection)
    );
    // Idle: a read with nothing to read answers timeout after the idle timeout and closes.
    let t = std::time::Instant::now();
    assert_eq!(
        code(&ch.read(id, 10).unwrap_err()),
        Some(EgressErrorCode::Timeout)
    );
    assert!(t.elapsed() >= Duration::from_millis(900));
    assert_eq!(
        code(&ch.write(id, b"again").unwrap_err()),
        Some(EgressErrorCode::UnknownConnection)
    );
}

#[test]
fn malformed_frames_are_answered_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let port = echo_server();
    let addr = proxy(
        dir.path(),
        EgressConfig::new(AllowList::parse([format!("localhost:{port}").as_str()]).unwrap()),
    );
    let Address::Unix(path) = &addr else {
        unreachable!()
    };
    let mut s = std::os::unix::net::UnixStream::connect(path).unwrap();
    s.set_read_timeout(Some(STEP)).unwrap();
    let ask = |s: &mut std::os::unix::net::UnixStream, body: &[u8]| {
        write_frame(s, body).unwrap();
        EgressResponse::decode(&read_frame(s, MAX_EGRESS_FRAME).unwrap()).unwrap()
    };
    for body in [
        &b"\xff\xff"[..],
        &tessera_core::cbor::encode(&EgressRequest::Read { id: 1, max: 0 }),
        // Not canonical: an indefinite-length map.
        b"\xbf\x64read\xa2\x62id\x01\x63max\x01\xff",
    ] {
        assert!(
            matches!(
                ask(&mut s, body),
                EgressResponse::Error {
                    code: EgressErrorCode::BadRequest,
                    ..
                }
            ),
            "{body:?}"
        );
    }
    // The channel still works, and the name is resolved on the host.
    let open = tessera_core::cbor::encode(&EgressRequest::Open {
        host: "localhost".into(),
        port,
    });
    assert!(matches!(ask(&mut s, &open), EgressResponse::Opened { .. }));
    // A frame declaring more than the limit ends the channel after one answer.
    s.write_all(&(u32::try_from(MAX_EGRESS_FRAME).unwrap() + 1).to_be_bytes())
        .unwrap();
    assert!(matches!(
        EgressResponse::decode(&read_frame(&mut s, MAX_EGRESS_FRAME).unwrap()).unwrap(),
        EgressResponse::Error {
            code: EgressErrorCode::BadRequest,
            ..
        }
    ));
    let mut rest = Vec::new();
    assert_eq!(s.read_to_end(&mut rest).unwrap_or(0), 0);
}
