//! The fetcher as an enclave app: requests in, signed fetch proofs out.
//!
//! It listens on its ingress address (vsock in a Nitro enclave, bridged by the relay; a unix
//! socket locally) and answers length-prefixed CBOR frames. It holds the quorum signing key it
//! was handed at pivot and signs a record only after the fetch that produced it succeeded.

use std::io::{self, Write};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use p256::ecdsa::SigningKey;
use tessera_core::cbor;
use tessera_core::protocol::{FrameError, read_frame};
use tessera_core::transport::{Address, Listener, Stream};

use crate::fetch::Fetcher;
use crate::oidc;

pub use tessera_core::fetch::{
    FetchAppRequest, FetchAppResponse, MAX_APP_REQUEST, MAX_APP_RESPONSE,
};

/// The app: a fetcher and the key that signs its records.
pub struct FetchApp {
    fetcher: Fetcher,
    key: SigningKey,
}

impl FetchApp {
    #[must_use]
    pub fn new(fetcher: Fetcher, key: SigningKey) -> Self {
        Self { fetcher, key }
    }

    /// Answers one request.
    pub fn handle(&self, request: FetchAppRequest) -> FetchAppResponse {
        match request {
            FetchAppRequest::Fetch { url, headers } => match self.fetcher.fetch(&url, &headers) {
                Ok(record) => {
                    tracing::info!(url = %record.url, status = record.status, bytes = record.body.len(), "fetched and signed");
                    FetchAppResponse::Fetched {
                        proof: record.sign(&self.key),
                    }
                }
                Err(e) => {
                    tracing::warn!(url = %url.chars().take(200).collect::<String>(), kind = e.kind(), error = %e, "fetch failed; nothing signed");
                    FetchAppResponse::Error {
                        kind: e.kind().to_owned(),
                        message: e.to_string(),
                    }
                }
            },
            FetchAppRequest::VerifyIdToken {
                issuer,
                audience,
                token,
            } => match self.id_token(&issuer, &audience, &token) {
                Ok(r) => r,
                Err((kind, message)) => {
                    tracing::warn!(kind, error = %message, "ID token refused");
                    FetchAppResponse::Error {
                        kind: kind.to_owned(),
                        message,
                    }
                }
            },
        }
    }

    fn id_token(
        &self,
        issuer: &str,
        audience: &str,
        token: &str,
    ) -> Result<FetchAppResponse, (&'static str, String)> {
        let fetch = |url: &str| {
            self.fetcher
                .fetch(url, &[])
                .map_err(|e| (e.kind(), e.to_string()))
        };
        let discovery = fetch(&oidc::discovery_url(issuer))?;
        let jwks_uri = oidc::jwks_uri(&discovery, issuer).map_err(|e| ("oidc", e.to_string()))?;
        let jwks = fetch(&jwks_uri)?;
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if jwks.status != 200 {
            return Err(("oidc", format!("JWKS: status {}", jwks.status)));
        }
        let claims = oidc::verify_id_token(token, &jwks.body, issuer, audience, now)
            .map_err(|e| ("oidc", e.to_string()))?;
        Ok(FetchAppResponse::IdTokenVerified {
            claims: claims.to_string(),
            discovery: discovery.sign(&self.key),
            jwks: jwks.sign(&self.key),
        })
    }
}

/// Serves requests on `listener`, a thread per connection, requests on a connection one at a
/// time. A connection idle for `idle` is closed.
pub fn serve(listener: &Listener, app: FetchApp, idle: Duration) -> io::Result<()> {
    let app = Arc::new(app);
    loop {
        let stream = match listener.accept() {
            Ok(s) => s,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        let app = Arc::clone(&app);
        std::thread::spawn(move || connection(&app, stream, idle));
    }
}

fn connection(app: &FetchApp, mut stream: Stream, idle: Duration) {
    if stream.set_read_timeout(Some(idle)).is_err() {
        return;
    }
    loop {
        let response = match read_frame(&mut stream, MAX_APP_REQUEST) {
            Ok(bytes) => match cbor::decode_bounded(&bytes, MAX_APP_REQUEST, "fetcher request") {
                Ok(req) => app.handle(req),
                Err(e) => FetchAppResponse::Error {
                    kind: "bad-request".to_owned(),
                    message: e.to_string(),
                },
            },
            Err(FrameError::TooLarge { len, max }) => {
                let _ = write_big_frame(
                    &mut stream,
                    &cbor::encode(&FetchAppResponse::Error {
                        kind: "bad-request".to_owned(),
                        message: format!("request of {len} bytes exceeds {max}"),
                    }),
                );
                return;
            }
            Err(_) => return,
        };
        if write_big_frame(&mut stream, &cbor::encode(&response)).is_err() {
            return;
        }
    }
}

/// A frame as the enclave protocol writes it, with the app's larger answer limit.
fn write_big_frame<W: Write>(w: &mut W, body: &[u8]) -> io::Result<()> {
    let len = u32::try_from(body.len())
        .ok()
        .filter(|&l| l as usize <= MAX_APP_RESPONSE)
        .ok_or_else(|| io::Error::other("answer larger than the frame limit"))?;
    let mut buf = Vec::with_capacity(4 + body.len());
    buf.extend_from_slice(&len.to_be_bytes());
    buf.extend_from_slice(body);
    w.write_all(&buf)?;
    w.flush()
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    #[error("cannot reach the fetcher at {addr}: {source}")]
    Connect { addr: String, source: io::Error },
    #[error("fetcher connection: {0}")]
    Io(#[from] io::Error),
    #[error(transparent)]
    Call(#[from] tessera_core::fetch::FetchCallError),
}

/// One request to the fetcher app at `addr` on a fresh connection.
pub fn call(
    addr: &Address,
    request: &FetchAppRequest,
    timeout: Duration,
) -> Result<FetchAppResponse, ClientError> {
    let mut s = Stream::connect(addr).map_err(|source| ClientError::Connect {
        addr: addr.to_string(),
        source,
    })?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    Ok(tessera_core::fetch::call_app(&mut s, request)?)
}
