//! The hybrid vsock transport against a stand-in for vhost-device-vsock's unix socket: the
//! `CONNECT <port>` handshake, the stream after it, and peers that refuse or lie.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::thread;

use tessera_core::transport::{Address, Listener, Stream};

/// Serves one connection: reads the CONNECT line, sends `reply`, then echoes what follows (after
/// an OK) or closes.
fn backend(reply: &'static [u8]) -> (tempfile::TempDir, PathBuf, thread::JoinHandle<String>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vm.vsock");
    let listener = UnixListener::bind(&path).unwrap();
    let handle = thread::spawn(move || {
        let (s, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(s.try_clone().unwrap());
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let mut w = s;
        let _ = w.write_all(reply);
        if !reply.starts_with(b"OK ") {
            // A refusing backend closes the connection.
            return line;
        }
        let mut buf = [0u8; 64];
        if let Ok(n) = reader.read(&mut buf)
            && n > 0
        {
            let _ = w.write_all(&buf[..n]);
        }
        line
    });
    (dir, path, handle)
}

#[test]
fn address_round_trips_with_colons_in_the_path() {
    let a: Address = "hybrid-vsock:/tmp/a:b/vm.vsock:5005".parse().unwrap();
    assert_eq!(
        a,
        Address::HybridVsock {
            path: PathBuf::from("/tmp/a:b/vm.vsock"),
            port: 5005
        }
    );
    assert_eq!(a.to_string(), "hybrid-vsock:/tmp/a:b/vm.vsock:5005");
    for bad in [
        "hybrid-vsock:",
        "hybrid-vsock:/x",
        "hybrid-vsock::5",
        "hybrid-vsock:/x:port",
    ] {
        assert!(bad.parse::<Address>().is_err(), "{bad}");
    }
}

#[test]
fn connect_sends_the_port_and_the_stream_follows_ok() {
    // The reply and the first stream bytes arrive together: none may be lost to the handshake.
    let (_dir, path, handle) = backend(b"OK 1234\n");
    let mut s = Stream::connect(&Address::HybridVsock { path, port: 5005 }).unwrap();
    s.write_all(b"ping").unwrap();
    let mut got = [0u8; 4];
    s.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"ping");
    assert_eq!(handle.join().unwrap(), "CONNECT 5005\n");
}

#[test]
fn a_refusal_or_a_closed_socket_is_an_error() {
    let (_dir, path, _h) = backend(b"FAILED\n");
    let e = Stream::connect(&Address::HybridVsock { path, port: 7 })
        .err()
        .unwrap();
    assert!(e.to_string().contains("expected OK"), "{e}");

    let (_dir, path, _h) = backend(b"");
    let e = Stream::connect(&Address::HybridVsock { path, port: 7 })
        .err()
        .unwrap();
    assert!(e.to_string().contains("closed before OK"), "{e}");

    let (_dir, path, _h) = backend(&[b'x'; 200]);
    let e = Stream::connect(&Address::HybridVsock { path, port: 7 })
        .err()
        .unwrap();
    assert!(e.to_string().contains("over-long"), "{e}");
}

#[test]
fn nothing_listens_on_a_hybrid_address() {
    let e = Listener::bind(&Address::HybridVsock {
        path: PathBuf::from("/nonexistent/vm.vsock"),
        port: 1,
    })
    .err()
    .unwrap();
    assert!(e.to_string().contains("not a place to listen"), "{e}");
}
