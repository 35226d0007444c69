//! `tessera attest audit --relay`: documents fetched live from real relays in front of real dev
//! enclaves, each bound to a fresh nonce, and the relays that lie: one replays a document it
//! fetched earlier, one fronts an enclave under another root.

mod ceremony_support;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;

use ceremony_support::{services_of, tessera_in};

/// A "relay" that answers every request with the same bytes: a document captured earlier.
fn replaying_relay(document: Vec<u8>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/cbor\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                document.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&document);
        }
    });
    url
}

fn audit(transcript: &Path, args: &[&str]) -> (i32, String) {
    let o = tessera_in(transcript, args);
    let out = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    (o.status.code().unwrap_or(-1), out)
}

#[test]
fn a_fleet_audited_live_and_the_relays_that_lie() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("fleet-ca.pem");
    let a = services_of(dir.path(), "a", Some(&ca));
    let b = services_of(dir.path(), "b", Some(&ca));
    let other = services_of(dir.path(), "other", None);
    let root = dir.path().join("a-root.pem");
    let root = root.to_str().unwrap();
    let transcript = dir.path().join("transcript.jsonl");

    // Two nodes of one fleet: both valid, each document carrying the nonce sent to it.
    let (code, out) = audit(
        &transcript,
        &[
            "attest", "audit", "--root", root, "--relay", &a.relay, "--relay", &b.relay,
        ],
    );
    assert_eq!(code, 0, "{out}");
    assert_eq!(out.matches("VALID (DEV").count(), 2, "{out}");
    assert!(out.contains("2 documents: 2 valid, 0 refused"), "{out}");

    // A relay that replays a document fetched earlier (a real, correctly signed one).
    let old = ureq::get(format!("{}/v1/attestation?nonce=00", a.relay))
        .call()
        .unwrap()
        .body_mut()
        .read_to_vec()
        .unwrap();
    let replay = replaying_relay(old);
    // A relay in front of an enclave whose certificates chain to another root.
    let (code, out) = audit(
        &transcript,
        &[
            "attest",
            "audit",
            "--root",
            root,
            "--json",
            "--relay",
            &a.relay,
            "--relay",
            &replay,
            "--relay",
            &other.relay,
        ],
    );
    assert_eq!(code, 1, "{out}");
    let report: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    let docs = report["documents"].as_array().unwrap();
    assert_eq!(docs.len(), 3, "{out}");
    assert_eq!(docs[0]["valid"], true, "{out}");
    assert_eq!(docs[1]["valid"], false, "{out}");
    assert!(
        docs[1]["error"].as_str().unwrap().contains("nonce"),
        "a replayed document is refused for its nonce: {out}"
    );
    assert_eq!(docs[2]["valid"], false, "{out}");
    assert_eq!(report["failed"], 2, "{out}");

    // A relay that is not there: refused with the reason, the others still audited.
    let (code, out) = audit(
        &transcript,
        &[
            "attest",
            "audit",
            "--root",
            root,
            "--relay",
            "http://127.0.0.1:9",
            "--relay",
            &b.relay,
        ],
    );
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("1 valid, 1 refused"), "{out}");
}
