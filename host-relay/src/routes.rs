//! One handler per endpoint: decode the HTTP input into the enclave request, forward it, and
//! format the answer. Nothing here inspects a signature, a share or an attestation.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_bytes::ByteBuf;

use airgap_bundle::{Bundle, BundleKind, Metadata};
use tessera_core::cbor;
use tessera_core::manifest::ManifestEnvelope;
use tessera_core::objects::{
    GenesisRequest, OBJECT_VERSION, PatchEnvelope, ProvisionRequest, ReshardEnvelope,
    ShareSubmission,
};
use tessera_core::protocol::{self as wire, AppRequest, ClientError, MAX_FRAME, Phase};

use crate::AppState;
use crate::body::Body;
use crate::error::ApiError;
use crate::limits::{ClientIp, RATIONED};

type Shared = State<Arc<AppState>>;

/// Health answers quickly even when the enclave does not.
const HEALTH_WAIT: Duration = Duration::from_secs(2);
/// The enclave's own limit on an attestation nonce.
const MAX_NONCE: usize = 512;

const CBOR: &str = "application/cbor";

#[derive(Serialize)]
pub(crate) struct Health {
    relay: &'static str,
    enclave: &'static str,
}

pub(crate) async fn health(State(s): Shared) -> Json<Health> {
    let wait = HEALTH_WAIT.min(s.config.enclave_timeout);
    let reachable = s.enclave.status(wait).await.is_ok();
    Json(Health {
        relay: "ok",
        enclave: if reachable {
            "reachable"
        } else {
            "unreachable"
        },
    })
}

/// The enclave's `Status` with binary fields as lowercase hex.
#[derive(Serialize)]
pub(crate) struct StatusJson {
    phase: &'static str,
    dev: bool,
    namespace: Option<String>,
    manifest_hash: Option<String>,
    nonce: Option<u64>,
    ephemeral_key: Option<String>,
    threshold: u8,
    shares_from: Vec<String>,
    patch_sequence: u64,
    app_ingress: Option<u32>,
}

impl From<wire::Status> for StatusJson {
    fn from(s: wire::Status) -> Self {
        Self {
            phase: s.phase.as_str(),
            dev: s.dev,
            namespace: s.namespace,
            manifest_hash: s.manifest_hash.map(|h| h.to_hex()),
            nonce: s.nonce,
            ephemeral_key: s.ephemeral_key.map(|k| k.to_hex()),
            threshold: s.threshold,
            shares_from: s.shares_from,
            patch_sequence: s.patch_sequence,
            app_ingress: s.app_ingress,
        }
    }
}

pub(crate) async fn status(State(s): Shared) -> Result<Json<StatusJson>, ApiError> {
    let status = s.enclave.status(s.config.enclave_timeout).await?;
    Ok(Json(status.into()))
}

pub(crate) async fn genesis(State(s): Shared, Body(b): Body) -> Result<Response, ApiError> {
    let req: GenesisRequest = decode(&b, "genesis request")?;
    typed(&s, wire::Request::Genesis(req), "genesis", |r| {
        matches!(r, wire::Response::Genesis { .. })
    })
    .await
}

pub(crate) async fn boot(State(s): Shared, Body(b): Body) -> Result<Response, ApiError> {
    let envelope =
        ManifestEnvelope::decode(&b).map_err(|e| ApiError::bad_request(e.to_string()))?;
    typed(&s, wire::Request::Boot(envelope), "boot", |r| {
        matches!(r, wire::Response::Booted { .. })
    })
    .await
}

pub(crate) async fn patch(State(s): Shared, Body(b): Body) -> Result<Response, ApiError> {
    let envelope: PatchEnvelope = decode(&b, "patch envelope")?;
    typed(&s, wire::Request::Patch(envelope), "patch", |r| {
        matches!(r, wire::Response::PatchApplied { .. })
    })
    .await
}

pub(crate) async fn reshard(State(s): Shared, Body(b): Body) -> Result<Response, ApiError> {
    let envelope: ReshardEnvelope = decode(&b, "reshard envelope")?;
    typed(&s, wire::Request::Reshard(envelope), "reshard", |r| {
        matches!(r, wire::Response::Resharded { .. })
    })
    .await
}

pub(crate) async fn app(State(s): Shared, Body(b): Body) -> Result<Response, ApiError> {
    let req: AppRequest = decode(&b, "app request")?;
    typed(&s, wire::Request::App(req), "app", |r| {
        matches!(r, wire::Response::AppSignature { .. })
    })
    .await
}

/// Any request, as CBOR bytes; the enclave's response bytes come back untouched, errors
/// included (with 200: the HTTP exchange worked, the CBOR says what the enclave thought).
pub(crate) async fn raw(
    State(s): Shared,
    ClientIp(ip): ClientIp,
    Body(b): Body,
) -> Result<Response, ApiError> {
    // Refused here rather than by the enclave so a garbage body never costs an enclave round trip
    // and the caller gets a JSON error like everywhere else.
    let request = wire::Request::decode(&b).map_err(|e| ApiError::bad_request(e.to_string()))?;
    // An attestation or a forward challenge costs the same whichever route asks for it.
    if matches!(
        request,
        wire::Request::Attestation { .. } | wire::Request::ForwardChallenge
    ) {
        s.attestations.take(ip, RATIONED)?;
    }
    let bytes = s
        .enclave
        .run(s.config.enclave_timeout, move |c| c.call_raw(&b))
        .await??;
    Ok(cbor_body(bytes))
}

/// A fresh attestation document for the current boot, bound to the caller's nonce: what
/// `tessera attest audit --relay` checks. Rationed like request bundles (each costs an NSM call);
/// any phase. The relay adds nothing: the body is the document the enclave returned.
pub(crate) async fn attestation(
    State(s): Shared,
    ClientIp(ip): ClientIp,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let nonce = parse_nonce(query.as_deref())?;
    s.attestations.take(ip, RATIONED)?;
    let answer = s
        .enclave
        .run(s.config.enclave_timeout, move |c| {
            c.call(&wire::Request::Attestation { nonce })
        })
        .await??;
    match answer {
        wire::Response::Attestation { document, .. } => Ok(cbor_body(document.into_vec())),
        wire::Response::Error { code, message } => Err(ApiError::from_enclave(code, message)),
        other => Err(unexpected("attestation", &other)),
    }
}

/// A `request` bundle for the current boot: the envelope the enclave booted and a fresh
/// attestation document (bound to the caller's nonce, if any).
pub(crate) async fn request_bundle(
    State(s): Shared,
    ClientIp(ip): ClientIp,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let nonce = parse_nonce(query.as_deref())?;
    // Each request bundle costs an attestation: rationed per client and in total.
    s.attestations.take(ip, RATIONED)?;
    let (status, attestation) = attest_in_phase(&s, Phase::WaitingForShares, nonce).await?;
    let phase = match status {
        wire::Response::Status(st) => st.phase,
        wire::Response::Error { code, message } => {
            return Err(ApiError::from_enclave(code, message));
        }
        other => return Err(unexpected("status", &other)),
    };
    let (document, envelope) = match attestation {
        None => return Err(not_waiting(phase)),
        Some(wire::Response::Attestation { document, envelope }) => (document, envelope),
        Some(wire::Response::Error { code, message }) => {
            return Err(ApiError::from_enclave(code, message));
        }
        Some(other) => return Err(unexpected("attestation", &other)),
    };
    let envelope = envelope.ok_or_else(|| not_waiting(phase))?;
    let meta = Metadata {
        namespace: Some(envelope.manifest.namespace.name.clone()),
        nonce: Some(envelope.manifest.namespace.nonce),
        ..Metadata::default()
    };
    let request = ProvisionRequest {
        version: OBJECT_VERSION,
        envelope,
        attestation: document,
    };
    let bundle = Bundle::new(BundleKind::Request, meta, cbor::encode(&request))
        .map_err(|e| ApiError::bad_enclave_response(format!("cannot bundle the request: {e}")))?;
    let disposition = format!(
        "attachment; filename=\"{}\"",
        airgap_bundle::usb::file_name_for(&bundle)
    );
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        bundle.encode(),
    )
        .into_response())
}

#[derive(Serialize)]
pub(crate) struct ShareAccepted {
    member: String,
    received: u8,
    threshold: u8,
    provisioned: bool,
    /// True when the enclave already held this exact submission (a retry whose first answer was
    /// lost); nothing changed.
    already_accepted: bool,
}

pub(crate) async fn share_bundle(
    State(s): Shared,
    Body(b): Body,
) -> Result<Json<ShareAccepted>, ApiError> {
    let bundle =
        Bundle::decode(&b).map_err(|e| ApiError::bad_request(format!("not a bundle: {e}")))?;
    if bundle.kind() != BundleKind::Share {
        return Err(ApiError::bad_request(format!(
            "expected a share bundle, got a {} bundle",
            bundle.kind()
        )));
    }
    let submission = ShareSubmission::decode(bundle.payload())
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    match forward(&s, &wire::Request::PostShare(submission)).await?.0 {
        wire::Response::ShareAccepted {
            member,
            received,
            threshold,
            provisioned,
        } => Ok(Json(ShareAccepted {
            member,
            received,
            threshold,
            provisioned,
            already_accepted: false,
        })),
        wire::Response::ShareAlreadyAccepted {
            member,
            received,
            threshold,
            provisioned,
        } => Ok(Json(ShareAccepted {
            member,
            received,
            threshold,
            provisioned,
            already_accepted: true,
        })),
        other => Err(unexpected("post-share", &other)),
    }
}

/// Sends `request` and returns the enclave's response, decoded and as the bytes it sent.
/// An enclave error becomes the matching HTTP error.
async fn forward(
    s: &AppState,
    request: &wire::Request,
) -> Result<(wire::Response, Vec<u8>), ApiError> {
    let frame = cbor::encode(request);
    // The body fitted the HTTP limit but the request built from it does not fit one enclave
    // frame: the caller's problem, refused here so the enclave connection is not touched.
    if frame.len() > MAX_FRAME {
        return Err(ApiError::frame_too_large(frame.len()));
    }
    let bytes = s
        .enclave
        .run(s.config.enclave_timeout, move |c| c.call_raw(&frame))
        .await??;
    let response = wire::Response::decode(&bytes)
        .map_err(|e| ApiError::bad_enclave_response(e.to_string()))?;
    if let wire::Response::Error { code, message } = response {
        return Err(ApiError::from_enclave(code, message));
    }
    Ok((response, bytes))
}

/// Forwards `request` and passes the enclave's CBOR through if it is the expected variant.
pub(crate) async fn typed(
    s: &AppState,
    request: wire::Request,
    name: &'static str,
    expected: fn(&wire::Response) -> bool,
) -> Result<Response, ApiError> {
    let (response, bytes) = forward(s, &request).await?;
    if !expected(&response) {
        return Err(unexpected(name, &response));
    }
    Ok(cbor_body(bytes))
}

pub(crate) fn cbor_body(bytes: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, CBOR)], bytes).into_response()
}

pub(crate) fn decode<T: Serialize + DeserializeOwned>(
    bytes: &[u8],
    what: &'static str,
) -> Result<T, ApiError> {
    cbor::decode_bounded(bytes, MAX_FRAME, what).map_err(|e| ApiError::bad_request(e.to_string()))
}

pub(crate) fn unexpected(request: &str, response: &wire::Response) -> ApiError {
    let variant = match response {
        wire::Response::Status(_) => "status",
        wire::Response::Genesis { .. } => "genesis",
        wire::Response::Booted { .. } => "booted",
        wire::Response::Attestation { .. } => "attestation",
        wire::Response::ShareAccepted { .. } => "share-accepted",
        wire::Response::ShareAlreadyAccepted { .. } => "share-already-accepted",
        wire::Response::PatchApplied { .. } => "patch-applied",
        wire::Response::Resharded { .. } => "resharded",
        wire::Response::AppSignature { .. } => "app-signature",
        wire::Response::ForwardChallenge { .. } => "forward-challenge",
        wire::Response::ForwardExported { .. } => "forward-exported",
        wire::Response::Forwarded { .. } => "forwarded",
        wire::Response::Error { .. } => "error",
    };
    ApiError::bad_enclave_response(format!(
        "the enclave answered {request} with a {variant} response"
    ))
}

fn not_waiting(phase: Phase) -> ApiError {
    ApiError::wrong_phase(format!(
        "the enclave is {}; request bundles exist only while it is waiting-for-shares",
        phase.as_str()
    ))
}

/// `nonce=HEX` is the only query parameter.
/// The enclave's status, and an attestation (with `nonce`) only when it is in `phase`. Both
/// calls run in one job: nothing else reaches the enclave between the phase check and the
/// attestation, and an enclave in another phase is not asked to attest at all.
pub(crate) async fn attest_in_phase(
    s: &AppState,
    phase: Phase,
    nonce: Option<ByteBuf>,
) -> Result<(wire::Response, Option<wire::Response>), ApiError> {
    Ok(s.enclave
        .run(s.config.enclave_timeout, move |c| {
            let status = c.call(&wire::Request::Status)?;
            let waiting = matches!(&status, wire::Response::Status(st) if st.phase == phase);
            if !waiting {
                return Ok::<_, ClientError>((status, None));
            }
            let attestation = c.call(&wire::Request::Attestation { nonce })?;
            Ok((status, Some(attestation)))
        })
        .await??)
}

pub(crate) fn parse_nonce(query: Option<&str>) -> Result<Option<ByteBuf>, ApiError> {
    let mut nonce = None;
    for pair in query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
    {
        match pair.split_once('=') {
            Some(("nonce", value)) if nonce.is_none() => {
                let bytes = hex::decode(value)
                    .map_err(|e| ApiError::bad_request(format!("nonce is not hex: {e}")))?;
                if bytes.len() > MAX_NONCE {
                    return Err(ApiError::bad_request(format!(
                        "nonce longer than {MAX_NONCE} bytes"
                    )));
                }
                nonce = Some(ByteBuf::from(bytes));
            }
            _ => {
                return Err(ApiError::bad_request(
                    "the only query parameter is nonce=HEX, given at most once",
                ));
            }
        }
    }
    Ok(nonce)
}

#[cfg(test)]
mod tests {
    use super::parse_nonce;

    #[test]
    fn nonce_query() {
        assert_eq!(parse_nonce(None).unwrap(), None);
        assert_eq!(parse_nonce(Some("")).unwrap(), None);
        assert_eq!(
            parse_nonce(Some("nonce=00ff")).unwrap().unwrap().as_slice(),
            [0, 0xff]
        );
        assert!(parse_nonce(Some("nonce=zz")).is_err());
        assert!(parse_nonce(Some("nonce=00&nonce=01")).is_err());
        assert!(parse_nonce(Some("other=1")).is_err());
        assert!(parse_nonce(Some(&format!("nonce={}", "00".repeat(513)))).is_err());
    }
}
