//! The enclave's listener: one thread per connection, one request at a time through the state
//! machine.
//!
//! A connection may idle between requests (the relay keeps one open), but once a frame starts
//! its remaining bytes must arrive within [`FRAME_TIMEOUT`], so a slow sender cannot hold a
//! thread forever. Frame lengths are checked against [`MAX_FRAME`] before allocating.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tessera_core::bytes::Hash32;
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
    let mut next_id: u64 = 1;
    loop {
        let stream = match listener.accept() {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                continue;
            }
        };
        if live.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
            live.fetch_sub(1, Ordering::SeqCst);
            tracing::warn!("refusing a connection: {MAX_CONNECTIONS} already open");
            continue;
        }
        let enclave = Arc::clone(enclave);
        let live = Arc::clone(&live);
        let id = next_id;
        next_id += 1;
        std::thread::spawn(move || {
            tracing::debug!(connection = id, "connection opened");
            connection(stream, &enclave, id);
            live.fetch_sub(1, Ordering::SeqCst);
            tracing::debug!(connection = id, "connection closed");
        });
    }
}

fn connection(mut stream: Stream, enclave: &Mutex<Enclave>, id: u64) {
    if stream.set_write_timeout(Some(FRAME_TIMEOUT)).is_err() {
        return;
    }
    loop {
        let body = match next_frame(&mut stream) {
            Ok(b) => b,
            Err(FrameError::Closed) => return,
            Err(e @ FrameError::TooLarge { .. }) => {
                // The stream cannot be resynchronised after an oversize header: answer and close.
                tracing::info!(connection = id, error = %e, "oversize frame refused");
                let _ = reply(
                    &mut stream,
                    &cbor::encode(&Response::error(ErrorCode::BadRequest, e.to_string())),
                );
                return;
            }
            Err(e) => {
                tracing::warn!(connection = id, error = %e, "dropping a connection");
                return;
            }
        };
        let started = Instant::now();
        let response = match Request::decode(&body) {
            Ok(request) => {
                let name = request.name();
                let mut guard = enclave.lock().unwrap_or_else(PoisonError::into_inner);
                let response = guard.handle(&request);
                let phase = guard.phase();
                drop(guard);
                log(id, name, &response, phase.as_str());
                response
            }
            Err(e) => {
                tracing::info!(connection = id, error = %e, "undecodable request refused");
                Response::error(ErrorCode::BadRequest, e.to_string())
            }
        };
        let answer = cbor::encode(&response);
        tracing::trace!(
            connection = id,
            request_bytes = body.len(),
            request_sha256 = %Hash32::sha256(&body),
            response_bytes = answer.len(),
            response_sha256 = %Hash32::sha256(&answer),
            micros = tessera_core::logging::micros_since(started),
            "frame"
        );
        if reply(&mut stream, &answer).is_err() {
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

fn reply(stream: &mut Stream, answer: &[u8]) -> Result<(), FrameError> {
    write_frame(stream, answer)?;
    stream.flush()?;
    Ok(())
}

/// One line per request: what was asked, how it ended, the phase after. Never a payload.
fn log(connection: u64, request: &str, response: &Response, phase: &str) {
    if let Response::Error { code, message } = response {
        tracing::info!(
            connection,
            request,
            refused = code.as_str(),
            reason = %message,
            phase,
            "request"
        );
    } else {
        tracing::info!(connection, request, outcome = "ok", phase, "request");
    }
}
