//! The enclave protocol: one CBOR enum of requests and one of responses, in length-prefixed
//! frames whose declared length is checked against a maximum before anything is allocated.

use std::io::{self, Read, Write};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::bytes::{ByteArray, Hash32};
use crate::cbor::{self, CborError};
use crate::keys::Signature;
use crate::manifest::ManifestEnvelope;
use crate::objects::{
    GenesisOutput, GenesisRequest, PatchEnvelope, ReshardEnvelope, ShareSubmission,
};
use crate::transport::{Address, Stream};

/// Largest frame either side accepts: 1 MiB.
pub const MAX_FRAME: usize = 1 << 20;

/// A request to the enclave.
// Requests are decoded once and moved, never stored in bulk: variant size does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Request {
    Status,
    Genesis(GenesisRequest),
    Boot(ManifestEnvelope),
    /// A fresh attestation for the current boot, optionally binding a caller's nonce.
    Attestation {
        nonce: Option<ByteBuf>,
    },
    PostShare(ShareSubmission),
    Patch(PatchEnvelope),
    Reshard(ReshardEnvelope),
    App(AppRequest),
}

impl Request {
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Request::Status => "status",
            Request::Genesis(_) => "genesis",
            Request::Boot(_) => "boot",
            Request::Attestation { .. } => "attestation",
            Request::PostShare(_) => "post-share",
            Request::Patch(_) => "patch",
            Request::Reshard(_) => "reshard",
            Request::App(_) => "app",
        }
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, CborError> {
        cbor::decode_bounded(bytes, MAX_FRAME, "request")
    }
}

/// Requests to the built-in app of a provisioned enclave.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AppRequest {
    /// Sign SHA-256(message) with the quorum key, purpose `app-message`.
    Sign { message: ByteBuf },
}

/// The enclave's phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    WaitingForBoot,
    WaitingForShares,
    Provisioned,
}

impl Phase {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::WaitingForBoot => "waiting-for-boot",
            Phase::WaitingForShares => "waiting-for-shares",
            Phase::Provisioned => "provisioned",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    pub phase: Phase,
    /// True for a dev enclave whose attestations are signed by a local dev root.
    pub dev: bool,
    pub namespace: Option<String>,
    pub manifest_hash: Option<Hash32>,
    pub nonce: Option<u64>,
    pub ephemeral_key: Option<ByteArray<32>>,
    pub threshold: u8,
    /// Aliases of the members whose shares were accepted for this boot.
    pub shares_from: Vec<String>,
    pub patch_sequence: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorCode {
    /// The bytes were not a valid request.
    BadRequest,
    /// The request is not allowed in the current phase.
    WrongPhase,
    /// The request was understood and refused (bad signature, threshold, duplicate share...).
    Rejected,
    /// Something failed inside the enclave (NSM, pivot).
    Internal,
}

impl ErrorCode {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad-request",
            ErrorCode::WrongPhase => "wrong-phase",
            ErrorCode::Rejected => "rejected",
            ErrorCode::Internal => "internal",
        }
    }
}

// Like requests, responses are built once and moved.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Response {
    Status(Status),
    Genesis {
        output: GenesisOutput,
        attestation: ByteBuf,
    },
    Booted {
        manifest_hash: Hash32,
        ephemeral_key: ByteArray<32>,
        attestation: ByteBuf,
    },
    Attestation {
        document: ByteBuf,
        /// The envelope this boot accepted, so a stateless relay can build request bundles.
        envelope: Option<ManifestEnvelope>,
    },
    ShareAccepted {
        member: String,
        received: u8,
        threshold: u8,
        provisioned: bool,
    },
    PatchApplied {
        sequence: u64,
    },
    Resharded {
        output: GenesisOutput,
        attestation: ByteBuf,
    },
    AppSignature {
        signature: Signature,
    },
    Error {
        code: ErrorCode,
        message: String,
    },
}

impl Response {
    pub fn decode(bytes: &[u8]) -> Result<Self, CborError> {
        cbor::decode_bounded(bytes, MAX_FRAME, "response")
    }

    #[must_use]
    pub fn error(code: ErrorCode, message: impl Into<String>) -> Self {
        Response::Error {
            code,
            message: message.into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    #[error("frame of {len} bytes exceeds the {max}-byte limit")]
    TooLarge { len: usize, max: usize },
    #[error("connection closed")]
    Closed,
    #[error("connection error: {0}")]
    Io(#[from] io::Error),
}

/// Writes `body` as one frame: a 4-byte big-endian length, then the bytes.
pub fn write_frame<W: Write>(w: &mut W, body: &[u8]) -> Result<(), FrameError> {
    if body.len() > MAX_FRAME {
        return Err(FrameError::TooLarge {
            len: body.len(),
            max: MAX_FRAME,
        });
    }
    let len = u32::try_from(body.len()).expect("MAX_FRAME fits u32");
    let mut buf = Vec::with_capacity(4 + body.len());
    buf.extend_from_slice(&len.to_be_bytes());
    buf.extend_from_slice(body);
    w.write_all(&buf)?;
    w.flush()?;
    Ok(())
}

/// Reads one frame, refusing a declared length above `max` before allocating.
pub fn read_frame<R: Read>(r: &mut R, max: usize) -> Result<Vec<u8>, FrameError> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Err(FrameError::Closed),
        Err(e) => return Err(e.into()),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > max {
        return Err(FrameError::TooLarge { len, max });
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)?;
    Ok(body)
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    #[error("cannot reach the enclave at {addr}: {source}")]
    Connect { addr: String, source: io::Error },
    #[error("enclave connection failed: {0}")]
    Frame(#[from] FrameError),
    #[error("enclave sent an invalid response: {0}")]
    Decode(#[from] CborError),
}

/// A connection to the enclave that reconnects when the enclave restarts.
pub struct Client {
    addr: Address,
    timeout: Duration,
    stream: Option<Stream>,
}

impl Client {
    #[must_use]
    pub fn new(addr: Address, timeout: Duration) -> Self {
        Self {
            addr,
            timeout,
            stream: None,
        }
    }

    #[must_use]
    pub fn address(&self) -> &Address {
        &self.addr
    }

    fn connect(&mut self) -> Result<&mut Stream, ClientError> {
        if self.stream.is_none() {
            let s = Stream::connect(&self.addr).map_err(|source| ClientError::Connect {
                addr: self.addr.to_string(),
                source,
            })?;
            s.set_read_timeout(Some(self.timeout))
                .and_then(|()| s.set_write_timeout(Some(self.timeout)))
                .map_err(FrameError::Io)?;
            self.stream = Some(s);
        }
        Ok(self.stream.as_mut().expect("just connected"))
    }

    /// Sends raw request bytes and returns the raw response bytes.
    ///
    /// A request is retried once on a fresh connection only if sending it failed, so a request
    /// the enclave may already have processed is never sent twice.
    pub fn call_raw(&mut self, body: &[u8]) -> Result<Vec<u8>, ClientError> {
        let sent = {
            let s = self.connect()?;
            write_frame(s, body)
        };
        if let Err(e) = sent {
            self.stream = None;
            if !matches!(e, FrameError::Io(_)) {
                return Err(e.into());
            }
            let s = self.connect()?;
            if let Err(e) = write_frame(s, body) {
                self.stream = None;
                return Err(e.into());
            }
        }
        let s = self.stream.as_mut().expect("connected");
        match read_frame(s, MAX_FRAME) {
            Ok(r) => Ok(r),
            Err(e) => {
                self.stream = None;
                Err(e.into())
            }
        }
    }

    pub fn call(&mut self, request: &Request) -> Result<Response, ClientError> {
        let bytes = self.call_raw(&cbor::encode(request))?;
        Ok(Response::decode(&bytes)?)
    }
}
