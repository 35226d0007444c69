//! The enclave client's one retry: a request whose sending failed is sent again on a fresh
//! connection (the enclave restarted between requests); a request that was sent is never sent
//! twice, whatever happens to its answer.

use std::os::unix::net::UnixListener;
use std::time::Duration;

use tessera_core::protocol::{Client, MAX_FRAME, read_frame, write_frame};
use tessera_core::transport::Address;

const TIMEOUT: Duration = Duration::from_secs(5);

fn listener() -> (tempfile::TempDir, UnixListener, Address) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("enclave.sock");
    let listener = UnixListener::bind(&path).expect("bind");
    (dir, listener, Address::Unix(path))
}

#[test]
fn a_request_that_could_not_be_sent_is_sent_again_on_a_fresh_connection() {
    let (_dir, listener, addr) = listener();
    let (closed_tx, closed) = std::sync::mpsc::channel();
    let server = std::thread::spawn(move || {
        // First connection: answer one request, then go away as a restarting enclave would.
        let (mut first, _) = listener.accept().expect("first connection");
        let req = read_frame(&mut first, MAX_FRAME).expect("first request");
        write_frame(&mut first, &[&b"re:"[..], &req].concat()).expect("first answer");
        drop(first);
        closed_tx.send(()).expect("signal");
        // Second connection: the client's retry of the second request.
        let (mut second, _) = listener.accept().expect("second connection");
        let req = read_frame(&mut second, MAX_FRAME).expect("second request");
        write_frame(&mut second, &[&b"re:"[..], &req].concat()).expect("second answer");
        req
    });

    let mut client = Client::new(addr, TIMEOUT);
    assert_eq!(client.call_raw(b"one").expect("first call"), b"re:one");
    // The server has closed its end, so writing the next request fails.
    closed
        .recv()
        .expect("the server closed the first connection");
    assert_eq!(client.call_raw(b"two").expect("retried call"), b"re:two");
    assert_eq!(server.join().expect("server"), b"two");
}

#[test]
fn a_request_that_was_sent_is_not_sent_again_when_its_answer_is_lost() {
    let (_dir, listener, addr) = listener();
    let server = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().expect("connection");
        read_frame(&mut conn, MAX_FRAME).expect("request");
        drop(conn);
        // Any resend would arrive as a new connection within the client's timeout.
        listener.set_nonblocking(true).expect("non-blocking");
        std::thread::sleep(Duration::from_millis(500));
        listener.accept().is_ok()
    });

    let mut client = Client::new(addr, TIMEOUT);
    let err = client.call_raw(b"once").expect_err("the answer was lost");
    assert!(
        err.to_string().contains("enclave connection failed"),
        "{err}"
    );
    assert!(!server.join().expect("server"), "the request was resent");
}
