//! The enclave's listener: one thread per connection, one request at a time through the state
//! machine.
//!
//! A connection may idle between requests (the relay keeps one open), but once a frame starts
//! its remaining bytes must arrive within [`FRAME_TIMEOUT`], so a slow sender cannot hold a
//! thread forever. Frame lengths are checked against [`MAX_FRAME`] before allocating.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tessera_core::cbor;
use tessera_core::protocol::{
    ErrorCode, FrameError, MAX_FRAME, Request, Response, read_frame, write_frame,
};
use tessera_core::transport::{Listener, Stream};

use crate::state::Enclave;

pub const FRAME_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_CONNECTIONS: usize = 64;

pub fn serve(listener: &Listener, enclave: &Arc<Mutex<Enclave>>) -> std::io::Result<()> {
    let live = Arc::new(AtomicUsize::new(0));
    loop {
        let stream = match listener.accept() {
            Ok(s) => s,
            Err(e) => {
                eprintln!("tessera-enclave: accept failed: {e}");
                continue;
            }
        };
        if live.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
            live.fetch_sub(1, Ordering::SeqCst);
            eprintln!("tessera-enclave: refusing a connection: {MAX_CONNECTIONS} already open");
            continue;
        }
        let enclave = Arc::clone(enclave);
        let live = Arc::clone(&live);
        std::thread::spawn(move || {
            connection(stream, &enclave);
            live.fetch_sub(1, Ordering::SeqCst);
        });
    }
}

fn connection(mut stream: Stream, enclave: &Mutex<Enclave>) {
    if stream.set_write_timeout(Some(FRAME_TIMEOUT)).is_err() {
        return;
    }
    loop {
        let body = match next_frame(&mut stream) {
            Ok(b) => b,
            Err(FrameError::Closed) => return,
            Err(e @ FrameError::TooLarge { .. }) => {
                // The stream cannot be resynchronised after an oversize header: answer and close.
                let _ = reply(
                    &mut stream,
                    &Response::error(ErrorCode::BadRequest, e.to_string()),
                );
                return;
            }
            Err(e) => {
                eprintln!("tessera-enclave: dropping a connection: {e}");
                return;
            }
        };
        let response = match Request::decode(&body) {
            Ok(request) => {
                let name = request.name();
                let mut guard = enclave.lock().unwrap_or_else(PoisonError::into_inner);
                let response = guard.handle(&request);
                let phase = guard.phase();
                drop(guard);
                log(name, &response, phase.as_str());
                response
            }
            Err(e) => Response::error(ErrorCode::BadRequest, e.to_string()),
        };
        if reply(&mut stream, &response).is_err() {
            return;
        }
    }
}

/// Waits without limit for the first byte of a frame, then gives the rest [`FRAME_TIMEOUT`].
fn next_frame(stream: &mut Stream) -> Result<Vec<u8>, FrameError> {
    stream.set_read_timeout(None)?;
    let mut first = [0u8; 1];
    match stream.read(&mut first) {
        Ok(0) => return Err(FrameError::Closed),
        Ok(_) => {}
        Err(e) => return Err(e.into()),
    }
    stream.set_read_timeout(Some(FRAME_TIMEOUT))?;
    read_frame(&mut first.as_slice().chain(&mut *stream), MAX_FRAME)
}

fn reply(stream: &mut Stream, response: &Response) -> Result<(), FrameError> {
    write_frame(stream, &cbor::encode(response))?;
    stream.flush()?;
    Ok(())
}

/// One line per request: what was asked, how it ended, the phase after. Never a payload.
fn log(request: &str, response: &Response, phase: &str) {
    match response {
        Response::Error { code, message } => {
            eprintln!(
                "tessera-enclave: {request}: {} ({message}); phase {phase}",
                code.as_str()
            );
        }
        _ => eprintln!("tessera-enclave: {request}: ok; phase {phase}"),
    }
}
