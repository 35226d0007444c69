//! One verified HTTPS fetch: allow-list, proxy connection, TLS with certificate and hostname
//! verification, a bounded HTTP/1.1 exchange, and the record that the quorum key may sign.

use std::io::{self, Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use serde_bytes::ByteBuf;
use tessera_core::bytes::Hash32;
use tessera_core::egress::{AllowList, EgressError};
use tessera_core::fetch::{FETCH_PROOF_VERSION, FetchRecord, FetchedRequest, HeaderField};
use tessera_core::transport::Address;

use crate::conn::{ChannelPool, ProxyConn};
use crate::http::{self, HttpError};
use crate::url::{HttpsUrl, UrlError};

/// Default largest response body: 512 KiB.
pub const DEFAULT_MAX_BODY: usize = 512 * 1024;

/// Largest body limit a fetcher accepts: a proof must fit one answer frame.
pub const MAX_BODY_LIMIT: usize = 2 << 20;

/// What the fetcher may do; in the enclave it comes from the manifest's pivot arguments.
#[derive(Debug, Clone)]
pub struct FetcherConfig {
    /// The host's egress proxy.
    pub proxy: Address,
    /// Destinations the fetcher connects to; anything else is refused before a byte leaves.
    pub allow: AllowList,
    /// Roots trusted besides the Mozilla set (a private CA the manifest pins).
    pub extra_roots: Vec<CertificateDer<'static>>,
    /// Largest response body.
    pub max_body: usize,
    /// Longest wait for any one answer of the proxy.
    pub step_timeout: Duration,
    /// Longest a whole fetch may take.
    pub fetch_timeout: Duration,
}

impl FetcherConfig {
    #[must_use]
    pub fn new(proxy: Address, allow: AllowList) -> Self {
        Self {
            proxy,
            allow,
            extra_roots: Vec::new(),
            max_body: DEFAULT_MAX_BODY,
            step_timeout: Duration::from_secs(20),
            fetch_timeout: Duration::from_mins(1),
        }
    }
}

/// Why a fetch failed. No failed fetch produces a record, so none is ever signed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    #[error(transparent)]
    Url(#[from] UrlError),
    #[error("{0} is not on the fetcher's allow-list; nothing was sent")]
    NotAllowed(String),
    #[error("egress proxy: {0}")]
    Proxy(#[from] EgressError),
    #[error("TLS with {host}: {error}")]
    Tls { host: String, error: rustls::Error },
    #[error("the fetch timed out: {0}")]
    Timeout(String),
    #[error("HTTP: {0}")]
    Http(HttpError),
    #[error("invalid fetcher configuration: {0}")]
    Config(String),
}

impl FetchError {
    /// A short stable name for logs and tests.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            FetchError::Url(_) => "url",
            FetchError::NotAllowed(_) => "not-allowed",
            FetchError::Proxy(_) => "proxy",
            FetchError::Tls { .. } => "tls",
            FetchError::Timeout(_) => "timeout",
            FetchError::Http(_) => "http",
            FetchError::Config(_) => "config",
        }
    }
}

/// The Mozilla roots plus `extra`.
pub fn root_store(extra: &[CertificateDer<'static>]) -> Result<RootCertStore, FetchError> {
    let mut roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    for (i, der) in extra.iter().enumerate() {
        roots
            .add(der.clone())
            .map_err(|e| FetchError::Config(format!("pinned root {i}: {e}")))?;
    }
    Ok(roots)
}

/// The TLS client configuration: aws-lc-rs, TLS 1.2 and 1.3 with rustls's safe defaults,
/// `http/1.1` by ALPN, server certificates verified against `roots` with the hostname.
pub fn tls_config(roots: RootCertStore) -> Result<Arc<ClientConfig>, FetchError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| FetchError::Config(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

pub struct Fetcher {
    config: FetcherConfig,
    tls: Arc<ClientConfig>,
    channels: Arc<ChannelPool>,
}

impl Fetcher {
    pub fn new(config: FetcherConfig) -> Result<Self, FetchError> {
        if config.max_body == 0 || config.max_body > MAX_BODY_LIMIT {
            return Err(FetchError::Config(format!(
                "body limit must be 1 to {MAX_BODY_LIMIT} bytes"
            )));
        }
        let tls = tls_config(root_store(&config.extra_roots)?)?;
        let channels = ChannelPool::new(config.proxy.clone(), config.step_timeout);
        Ok(Self {
            config,
            tls,
            channels,
        })
    }

    #[must_use]
    pub fn config(&self) -> &FetcherConfig {
        &self.config
    }

    /// Fetches `url` through the proxy. Returns the record only for a complete response over a
    /// verified TLS session; the caller signs it.
    pub fn fetch(&self, url: &str, headers: &[HeaderField]) -> Result<FetchRecord, FetchError> {
        let url = HttpsUrl::parse(url)?;
        // Decided here, before the proxy hears of the destination.
        if !self.config.allow.permits(url.destination()) {
            return Err(FetchError::NotAllowed(url.destination().to_string()));
        }
        let deadline = Instant::now() + self.config.fetch_timeout;
        let conn =
            ProxyConn::open_pooled(&self.channels, url.destination(), deadline).map_err(|e| {
                if e.is_timeout() {
                    FetchError::Timeout(e.to_string())
                } else {
                    FetchError::Proxy(e)
                }
            })?;
        self.fetch_over(&url, headers, conn)
    }

    /// The TLS and HTTP exchange over any byte stream (the proxy, or a direct socket in the
    /// benchmark). The allow-list is the caller's to check.
    pub fn fetch_over<S: Read + Write>(
        &self,
        url: &HttpsUrl,
        headers: &[HeaderField],
        socket: S,
    ) -> Result<FetchRecord, FetchError> {
        let (sent, request) = http::request(url, headers).map_err(FetchError::Http)?;
        let name = ServerName::try_from(url.host().to_owned())
            .map_err(|e| FetchError::Config(format!("server name {}: {e}", url.host())))?;
        let tls = ClientConnection::new(Arc::clone(&self.tls), name).map_err(|error| {
            FetchError::Tls {
                host: url.host().to_owned(),
                error,
            }
        })?;
        let mut stream = StreamOwned::new(tls, socket);
        let classify = |e: HttpError| classify(url, e);
        stream
            .write_all(&request)
            .and_then(|()| stream.flush())
            .map_err(|e| classify(HttpError::Io(e)))?;
        let response = http::read_response(&mut stream, self.config.max_body).map_err(classify)?;
        let conn = &stream.conn;
        let certificates = conn
            .peer_certificates()
            .unwrap_or_default()
            .iter()
            .map(|c| ByteBuf::from(c.as_ref().to_vec()))
            .collect();
        let tls_version = match conn.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3".to_owned(),
            Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2".to_owned(),
            other => format!("{other:?}"),
        };
        let cipher_suite = conn
            .negotiated_cipher_suite()
            .map(|s| {
                s.suite()
                    .as_str()
                    .map_or_else(|| format!("{:?}", s.suite()), str::to_owned)
            })
            .unwrap_or_default();
        let fetched_at = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Ok(FetchRecord {
            version: FETCH_PROOF_VERSION,
            url: url.to_string(),
            request: FetchedRequest {
                method: "GET".to_owned(),
                headers: sent,
            },
            status: response.status,
            headers: response.headers,
            body_sha256: Hash32::sha256(&response.body),
            body: ByteBuf::from(response.body),
            fetched_at,
            certificates,
            tls_version,
            cipher_suite,
        })
    }
}

/// Names what went wrong: TLS (certificate, integrity), a timeout, or HTTP.
fn classify(url: &HttpsUrl, e: HttpError) -> FetchError {
    if let HttpError::Io(io) = &e {
        if let Some(error) = io.get_ref().and_then(|x| x.downcast_ref::<rustls::Error>()) {
            return FetchError::Tls {
                host: url.host().to_owned(),
                error: error.clone(),
            };
        }
        if matches!(
            io.kind(),
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
        ) {
            return FetchError::Timeout(io.to_string());
        }
    }
    FetchError::Http(e)
}
