//! `tessera-demo-app`: the demo's pivot application. It takes the quorum key on standard input
//! (as the enclave hands it over), listens where the enclave says (`TESSERA_APP_INGRESS`, from
//! the manifest's ingress port), and answers each request frame (a message of up to 64 KiB)
//! with a frame holding the quorum key's signature over it (purpose `app-message`, as the
//! built-in app signs), so a client outside verifies it with the manifest's quorum public key.
//!
//! Frames are the enclave protocol's: a 4-byte big-endian length, then the bytes.

use std::io::{Read, Write};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use p256::ecdsa::signature::Signer;
use tessera_core::bytes::Hash32;
use tessera_core::keys::Signature;
use tessera_core::protocol::{read_frame, write_frame};
use tessera_core::quorum::QuorumSeed;
use tessera_core::sign::{Purpose, signed_message};
use tessera_core::transport::{Address, Listener, Stream};
use zeroize::Zeroizing;

/// Largest message signed.
const MAX_MESSAGE: usize = 64 * 1024;
/// Connections served at once; more are closed at once.
const MAX_CONNECTIONS: usize = 64;
/// A connection with no request for this long is closed.
const IDLE: Duration = Duration::from_secs(30);

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tessera-demo-app: {e}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<(), String> {
    let mut seed = Zeroizing::new([0u8; 32]);
    std::io::stdin()
        .read_exact(&mut seed[..])
        .map_err(|e| format!("the quorum key did not arrive on standard input: {e}"))?;
    let seed = QuorumSeed::from_bytes(*seed);
    let signing = Arc::new(seed.signing_key());
    drop(seed);
    let addr: Address = std::env::var("TESSERA_APP_INGRESS")
        .map_err(|_| {
            "TESSERA_APP_INGRESS is not set: the manifest declares no ingress port".to_owned()
        })?
        .parse()?;
    let listener = Listener::bind(&addr).map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    println!("tessera-demo-app: listening on {addr}");
    let _ = std::io::stdout().flush();
    let open = Arc::new(AtomicUsize::new(0));
    loop {
        let Ok(stream) = listener.accept() else {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        };
        if open.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
            open.fetch_sub(1, Ordering::SeqCst);
            let _ = stream.shutdown();
            continue;
        }
        let signing = Arc::clone(&signing);
        let open_here = Arc::clone(&open);
        let spawned = std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(move || {
                serve(stream, &signing);
                open_here.fetch_sub(1, Ordering::SeqCst);
            });
        if spawned.is_err() {
            open.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

fn serve(mut stream: Stream, key: &p256::ecdsa::SigningKey) {
    if stream.set_read_timeout(Some(IDLE)).is_err() || stream.set_write_timeout(Some(IDLE)).is_err()
    {
        return;
    }
    loop {
        // Closed, idle, oversize or broken: the connection ends; nothing else to say.
        let Ok(message) = read_frame(&mut stream, MAX_MESSAGE) else {
            return;
        };
        let sig: p256::ecdsa::Signature = key.sign(&signed_message(
            Purpose::AppMessage,
            &Hash32::sha256(&message),
        ));
        if write_frame(&mut stream, &Signature::from_ecdsa(&sig).0.0).is_err() {
            return;
        }
    }
}
