//! The enclave protocol: one CBOR enum of requests and one of responses, in length-prefixed
//! frames whose declared length is checked against a maximum before anything is allocated.

use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::bytes::{ByteArray, Hash32};
use crate::cbor::{self, CborError};
use crate::forward::{ForwardExport, ForwardRequest};
use crate::keys::Signature;
use crate::manifest::ManifestEnvelope;
use crate::objects::{
    GenesisOutput, GenesisRequest, PatchEnvelope, ReshardEnvelope, ShareSubmission,
};
use crate::transport::{Address, Stream};

/// Largest frame either side accepts: 1 MiB.
pub const MAX_FRAME: usize = 1 << 20;

/// The enclave closes a connection on which no frame has started for this long.
pub const IDLE_TIMEOUT: Duration = Duration::from_mins(1);

/// A [`Client`] whose connection sat unused this long opens a new one before its next request,
/// rather than race the enclave closing the old one at [`IDLE_TIMEOUT`].
pub const CLIENT_IDLE_RECONNECT: Duration = Duration::from_secs(30);

/// Bytes allocated for a frame body before its bytes arrive; the buffer grows with the data, so
/// a declared length costs memory only once it is actually sent.
const FRAME_PREALLOC: usize = 64 * 1024;

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
    /// Boot like [`Request::Boot`], then wait for the key from a provisioned node of the
    /// namespace instead of shares (`docs/forwarding.md`).
    Join(ManifestEnvelope),
    /// A provisioned node: issue a single-use challenge for a joining node's document.
    ForwardChallenge,
    /// A provisioned node: check a joining node and export the key to it.
    ForwardExport(ForwardRequest),
    /// A joining node: accept a forwarded key.
    ForwardImport(ForwardExport),
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
            Request::Join(_) => "join",
            Request::ForwardChallenge => "forward-challenge",
            Request::ForwardExport(_) => "forward-export",
            Request::ForwardImport(_) => "forward-import",
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
    /// Booted with `join`: waiting for a provisioned node of the namespace to forward the key.
    WaitingForForward,
}

impl Phase {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::WaitingForBoot => "waiting-for-boot",
            Phase::WaitingForShares => "waiting-for-shares",
            Phase::Provisioned => "provisioned",
            Phase::WaitingForForward => "waiting-for-forward",
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
    /// Once provisioned: the vsock port the manifest's app listens on for outside traffic, if
    /// it declares one (what the relay's app bridge connects to).
    #[serde(default)]
    pub app_ingress: Option<u32>,
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
    /// This exact submission was accepted earlier (its answer was lost and the member retried);
    /// nothing changed now. The counts are the current ones.
    ShareAlreadyAccepted {
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
    ForwardChallenge {
        challenge: ByteArray<32>,
    },
    ForwardExported {
        export: ForwardExport,
    },
    /// The forwarded key was accepted: the node is provisioned.
    Forwarded {
        manifest_hash: Hash32,
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
    let mut body = Vec::with_capacity(len.min(FRAME_PREALLOC));
    r.take(len as u64).read_to_end(&mut body)?;
    if body.len() < len {
        return Err(FrameError::Io(io::ErrorKind::UnexpectedEof.into()));
    }
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
    /// The request does not fit one frame; nothing was sent and the connection is kept.
    #[error("request of {len} bytes exceeds the {max}-byte frame limit")]
    RequestTooLarge { len: usize, max: usize },
}

/// A connection to the enclave that reconnects when the enclave restarts, and before a request
/// that follows a long idle spell (see [`CLIENT_IDLE_RECONNECT`]).
pub struct Client {
    addr: Address,
    timeout: Duration,
    stream: Option<Stream>,
    last_used: Instant,
}

impl Client {
    #[must_use]
    pub fn new(addr: Address, timeout: Duration) -> Self {
        Self {
            addr,
            timeout,
            stream: None,
            last_used: Instant::now(),
        }
    }

    #[must_use]
    pub fn address(&self) -> &Address {
        &self.addr
    }

    fn connect(&mut self) -> Result<&mut Stream, ClientError> {
        if self.last_used.elapsed() >= CLIENT_IDLE_RECONNECT {
            self.stream = None;
        }
        self.last_used = Instant::now();
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
    /// the enclave may already have processed is never sent twice. A body above [`MAX_FRAME`] is
    /// refused before anything is sent, and the connection is kept.
    pub fn call_raw(&mut self, body: &[u8]) -> Result<Vec<u8>, ClientError> {
        if body.len() > MAX_FRAME {
            return Err(ClientError::RequestTooLarge {
                len: body.len(),
                max: MAX_FRAME,
            });
        }
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
        let read = read_frame(s, MAX_FRAME);
        self.last_used = Instant::now();
        match read {
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
