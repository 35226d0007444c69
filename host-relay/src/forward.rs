//! Key forwarding endpoints (`docs/forwarding.md`). The relay only carries the bytes between
//! two enclaves: the exporting node decides whether the joining node may have the key, the
//! joining node decides whether the key it receives is the namespace's.
//!
//! - `POST /v1/join` (envelope): boot a new node that waits for a forwarded key.
//! - `POST /v1/forward/challenge` (exporting node): a single-use challenge.
//! - `GET /v1/forward/request?nonce=HEX` (joining node): its attestation bound to the challenge,
//!   with the envelope it booted, as a `ForwardRequest`.
//! - `POST /v1/forward/export` (exporting node, `ForwardRequest`): the sealed key.
//! - `POST /v1/forward/import` (joining node, `ForwardExport`): provision with it.

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::response::Response;
use tessera_core::cbor;
use tessera_core::forward::{FORWARD_VERSION, ForwardExport, ForwardRequest};
use tessera_core::manifest::ManifestEnvelope;
use tessera_core::protocol::{self as wire, Phase};

use crate::AppState;
use crate::body::Body;
use crate::error::ApiError;
use crate::limits::{ClientIp, RATIONED};
use crate::routes::{attest_in_phase, cbor_body, parse_nonce, typed, unexpected};

type Shared = State<Arc<AppState>>;

pub(crate) async fn join(State(s): Shared, Body(b): Body) -> Result<Response, ApiError> {
    let envelope =
        ManifestEnvelope::decode(&b).map_err(|e| ApiError::bad_request(e.to_string()))?;
    typed(&s, wire::Request::Join(envelope), "join", |r| {
        matches!(r, wire::Response::Booted { .. })
    })
    .await
}

/// Rationed like forward requests: the exporting node keeps a bounded set of outstanding
/// challenges, and a flood of new ones would push out the one an honest joiner is using.
pub(crate) async fn challenge(
    State(s): Shared,
    ClientIp(ip): ClientIp,
) -> Result<Response, ApiError> {
    s.attestations.take(ip, RATIONED)?;
    typed(
        &s,
        wire::Request::ForwardChallenge,
        "forward-challenge",
        |r| matches!(r, wire::Response::ForwardChallenge { .. }),
    )
    .await
}

/// The joining node's forward request for the exporter's challenge `nonce`. Each costs an
/// attestation, so it is rationed like request bundles.
pub(crate) async fn request(
    State(s): Shared,
    ClientIp(ip): ClientIp,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let nonce = parse_nonce(query.as_deref())?.ok_or_else(|| {
        ApiError::bad_request("nonce=HEX (the exporting node's challenge) is required")
    })?;
    s.attestations.take(ip, RATIONED)?;
    let (status, attestation) = attest_in_phase(&s, Phase::WaitingForForward, Some(nonce)).await?;
    let phase = match status {
        wire::Response::Status(st) => st.phase,
        wire::Response::Error { code, message } => {
            return Err(ApiError::from_enclave(code, message));
        }
        other => return Err(unexpected("status", &other)),
    };
    let not_waiting = || {
        ApiError::wrong_phase(format!(
            "the enclave is {}; forward requests exist only while it is waiting-for-forward (boot it with /v1/join)",
            phase.as_str()
        ))
    };
    let (document, envelope) = match attestation {
        None => return Err(not_waiting()),
        Some(wire::Response::Attestation { document, envelope }) => (document, envelope),
        Some(wire::Response::Error { code, message }) => {
            return Err(ApiError::from_enclave(code, message));
        }
        Some(other) => return Err(unexpected("attestation", &other)),
    };
    let envelope = envelope.ok_or_else(not_waiting)?;
    let request = ForwardRequest {
        version: FORWARD_VERSION,
        envelope,
        document,
    };
    Ok(cbor_body(cbor::encode(&request)))
}

pub(crate) async fn export(State(s): Shared, Body(b): Body) -> Result<Response, ApiError> {
    let request = ForwardRequest::decode(&b).map_err(|e| ApiError::bad_request(e.to_string()))?;
    typed(
        &s,
        wire::Request::ForwardExport(request),
        "forward-export",
        |r| matches!(r, wire::Response::ForwardExported { .. }),
    )
    .await
}

pub(crate) async fn import(State(s): Shared, Body(b): Body) -> Result<Response, ApiError> {
    let export = ForwardExport::decode(&b).map_err(|e| ApiError::bad_request(e.to_string()))?;
    typed(
        &s,
        wire::Request::ForwardImport(export),
        "forward-import",
        |r| matches!(r, wire::Response::Forwarded { .. }),
    )
    .await
}
