//! The egress protocol between the enclave and the host's layer-4 proxy.
//!
//! An enclave has no network. The host runs `tessera-egress`, which moves TCP bytes for it and
//! nothing else: exactly four operations (open a TCP connection to an allow-listed host:port,
//! read up to N bytes, write bytes, close). TLS runs inside the enclave on top of these bytes, so
//! the proxy sees only ciphertext and holds no keys.
//!
//! Each request and response is one CBOR value in a length-prefixed frame (the enclave
//! protocol's framing, with a smaller maximum checked before allocating). A control channel
//! (one vsock or unix connection) carries requests one at a time; the proxy answers each before
//! reading the next. Connection ids are chosen by the proxy and are valid only on the channel
//! that opened them.

use std::fmt;
use std::io;
use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::cbor::{self, CborError};
use crate::protocol::{FrameError, read_frame, write_frame};
use crate::transport::{Address, Stream};

/// Most bytes one read or write moves.
pub const MAX_CHUNK: usize = 64 * 1024;

/// Largest egress frame either side accepts: a full chunk and its envelope.
pub const MAX_EGRESS_FRAME: usize = MAX_CHUNK + 1024;

/// Longest error message the proxy sends (and the enclave accepts).
pub const MAX_MESSAGE: usize = 512;

/// A request from the enclave to the proxy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EgressRequest {
    /// Open a TCP connection to `host:port`; `host` is a DNS name (resolved on the host) or an
    /// IP address.
    Open { host: String, port: u16 },
    /// Up to `max` bytes from connection `id` (at least one, or an empty answer at end of
    /// stream). `max` is 1..=[`MAX_CHUNK`].
    Read { id: u32, max: u32 },
    /// Write all of `data` (at most [`MAX_CHUNK`] bytes) to connection `id`.
    Write { id: u32, data: ByteBuf },
    /// Close connection `id`.
    Close { id: u32 },
}

impl EgressRequest {
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            EgressRequest::Open { .. } => "open",
            EgressRequest::Read { .. } => "read",
            EgressRequest::Write { .. } => "write",
            EgressRequest::Close { .. } => "close",
        }
    }

    /// Decodes and checks a request: canonical CBOR, a valid destination, sizes in range.
    pub fn decode(bytes: &[u8]) -> Result<Self, EgressError> {
        let req: Self = cbor::decode_bounded(bytes, MAX_EGRESS_FRAME, "egress request")?;
        match &req {
            EgressRequest::Open { host, port } => {
                Destination::new(host, *port)?;
            }
            EgressRequest::Read { max, .. } => {
                if *max == 0 || *max as usize > MAX_CHUNK {
                    return Err(EgressError::Invalid(format!(
                        "read of {max} bytes: must be 1 to {MAX_CHUNK}"
                    )));
                }
            }
            EgressRequest::Write { data, .. } => {
                if data.is_empty() || data.len() > MAX_CHUNK {
                    return Err(EgressError::Invalid(format!(
                        "write of {} bytes: must be 1 to {MAX_CHUNK}",
                        data.len()
                    )));
                }
            }
            EgressRequest::Close { .. } => {}
        }
        Ok(req)
    }
}

/// Why the proxy refused or failed a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EgressErrorCode {
    /// The bytes were not a valid request.
    BadRequest,
    /// The destination is not on the proxy's allow-list.
    NotAllowed,
    /// A limit was reached (connections, bytes, lifetime).
    Limit,
    /// The name did not resolve or no address accepted the connection.
    Unreachable,
    /// The connection was idle too long and has been closed.
    Timeout,
    /// No open connection has this id on this channel.
    UnknownConnection,
    /// The TCP connection failed; it has been closed.
    Io,
}

impl EgressErrorCode {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            EgressErrorCode::BadRequest => "bad-request",
            EgressErrorCode::NotAllowed => "not-allowed",
            EgressErrorCode::Limit => "limit",
            EgressErrorCode::Unreachable => "unreachable",
            EgressErrorCode::Timeout => "timeout",
            EgressErrorCode::UnknownConnection => "unknown-connection",
            EgressErrorCode::Io => "io",
        }
    }
}

impl fmt::Display for EgressErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The proxy's answer to one request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EgressResponse {
    Opened {
        id: u32,
    },
    /// Bytes read; empty when the server closed its side.
    Data {
        data: ByteBuf,
    },
    Written {
        len: u32,
    },
    Closed,
    Error {
        code: EgressErrorCode,
        message: String,
    },
}

impl EgressResponse {
    /// Decodes and checks a response: canonical CBOR, sizes in range.
    pub fn decode(bytes: &[u8]) -> Result<Self, EgressError> {
        let resp: Self = cbor::decode_bounded(bytes, MAX_EGRESS_FRAME, "egress response")?;
        match &resp {
            EgressResponse::Data { data } if data.len() > MAX_CHUNK => Err(EgressError::Invalid(
                format!("{} bytes of data, more than {MAX_CHUNK}", data.len()),
            )),
            EgressResponse::Error { message, .. } if message.len() > MAX_MESSAGE => Err(
                EgressError::Invalid(format!("error message of {} bytes", message.len())),
            ),
            _ => Ok(resp),
        }
    }

    #[must_use]
    pub fn error(code: EgressErrorCode, message: impl Into<String>) -> Self {
        let mut message: String = message.into();
        if message.len() > MAX_MESSAGE {
            let mut cut = MAX_MESSAGE;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
        }
        EgressResponse::Error { code, message }
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EgressError {
    #[error(transparent)]
    Encoding(#[from] CborError),
    #[error("invalid egress message: {0}")]
    Invalid(String),
    #[error("invalid destination: {0}")]
    Destination(String),
    #[error("egress proxy connection failed: {0}")]
    Frame(#[from] FrameError),
    #[error("cannot reach the egress proxy at {addr}: {source}")]
    Connect { addr: String, source: io::Error },
    /// The proxy answered with an error.
    #[error("egress proxy refused {op}: {message} ({code})")]
    Refused {
        op: &'static str,
        code: EgressErrorCode,
        message: String,
    },
    /// The proxy answered with a response that does not fit the request.
    #[error("egress proxy answered {op} with an unexpected response")]
    Unexpected { op: &'static str },
}

impl EgressError {
    /// True when the error is a timeout waiting for the proxy or reported by it.
    #[must_use]
    pub fn is_timeout(&self) -> bool {
        match self {
            EgressError::Frame(FrameError::Io(e)) => matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ),
            EgressError::Refused { code, .. } => *code == EgressErrorCode::Timeout,
            _ => false,
        }
    }
}

/// A host (lower-case DNS name or IP address) and a TCP port: where a connection may go.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Destination {
    host: String,
    port: u16,
}

impl Destination {
    /// A checked destination: `host` is an IP address or a DNS name of letters, digits and
    /// hyphens (labels of 1 to 63, at most 253 in all, no trailing dot); names are compared in
    /// lower case. Port 0 is refused.
    pub fn new(host: &str, port: u16) -> Result<Self, EgressError> {
        if port == 0 {
            return Err(EgressError::Destination("port 0".to_owned()));
        }
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(Self {
                host: ip.to_string(),
                port,
            });
        }
        let valid_label = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        };
        if host.is_empty() || host.len() > 253 || !host.split('.').all(valid_label) {
            return Err(EgressError::Destination(format!(
                "{:?} is not a DNS name or IP address",
                host.chars().take(64).collect::<String>()
            )));
        }
        // An all-numeric last label would read as an IPv4 address in some resolvers.
        if host
            .rsplit('.')
            .next()
            .is_some_and(|l| l.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(EgressError::Destination(format!(
                "{host:?} is neither a valid IP address nor a DNS name"
            )));
        }
        Ok(Self {
            host: host.to_ascii_lowercase(),
            port,
        })
    }

    #[must_use]
    pub fn host(&self) -> &str {
        &self.host
    }

    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The host as an IP address, when it is one.
    #[must_use]
    pub fn ip(&self) -> Option<IpAddr> {
        self.host.parse().ok()
    }
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.ip() {
            Some(IpAddr::V6(ip)) => write!(f, "[{ip}]:{}", self.port),
            _ => write!(f, "{}:{}", self.host, self.port),
        }
    }
}

impl FromStr for Destination {
    type Err = EgressError;
    /// `host:port` or `[ipv6]:port`.
    fn from_str(s: &str) -> Result<Self, EgressError> {
        let bad = || EgressError::Destination(format!("{s:?}: expected HOST:PORT or [IPV6]:PORT"));
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            let (host, port) = rest.split_once("]:").ok_or_else(bad)?;
            host.parse::<std::net::Ipv6Addr>().map_err(|_| bad())?;
            (host, port)
        } else {
            let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
            if host.contains(':') {
                return Err(bad());
            }
            (host, port)
        };
        let port = port.parse::<u16>().map_err(|_| bad())?;
        Self::new(host, port)
    }
}

/// The destinations connections may go to: exact host and port, names compared in lower case.
/// The proxy enforces its own list from configuration; the fetcher in the enclave enforces the
/// one its manifest carries, before any byte leaves.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList(Vec<Destination>);

impl AllowList {
    #[must_use]
    pub fn new(destinations: Vec<Destination>) -> Self {
        Self(destinations)
    }

    /// Parses `host:port` entries.
    pub fn parse<'a>(entries: impl IntoIterator<Item = &'a str>) -> Result<Self, EgressError> {
        entries
            .into_iter()
            .map(Destination::from_str)
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }

    /// The one decision: may a connection go to `dest`?
    #[must_use]
    pub fn permits(&self, dest: &Destination) -> bool {
        self.0.iter().any(|d| d == dest)
    }

    #[must_use]
    pub fn destinations(&self) -> &[Destination] {
        &self.0
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// One control channel to the proxy: requests answered in order, each within `timeout`.
pub struct EgressChannel {
    stream: Stream,
}

impl EgressChannel {
    /// Connects to the proxy; every later read and write on the channel waits at most
    /// `timeout`, so a stalled proxy surfaces as a timeout, never a hang.
    pub fn connect(addr: &Address, timeout: Duration) -> Result<Self, EgressError> {
        let stream = Stream::connect(addr).map_err(|source| EgressError::Connect {
            addr: addr.to_string(),
            source,
        })?;
        stream
            .set_read_timeout(Some(timeout))
            .and_then(|()| stream.set_write_timeout(Some(timeout)))
            .map_err(|e| EgressError::Frame(FrameError::Io(e)))?;
        Ok(Self { stream })
    }

    /// Sends one request and reads its answer. A proxy error is returned as
    /// [`EgressError::Refused`].
    pub fn call(&mut self, request: &EgressRequest) -> Result<EgressResponse, EgressError> {
        write_frame(&mut self.stream, &cbor::encode(request))?;
        let bytes = read_frame(&mut self.stream, MAX_EGRESS_FRAME)?;
        match EgressResponse::decode(&bytes)? {
            EgressResponse::Error { code, message } => Err(EgressError::Refused {
                op: request.name(),
                code,
                message,
            }),
            other => Ok(other),
        }
    }

    /// Opens a TCP connection; its id.
    pub fn open(&mut self, dest: &Destination) -> Result<u32, EgressError> {
        match self.call(&EgressRequest::Open {
            host: dest.host().to_owned(),
            port: dest.port(),
        })? {
            EgressResponse::Opened { id } => Ok(id),
            _ => Err(EgressError::Unexpected { op: "open" }),
        }
    }

    /// Up to `max` bytes from `id`; empty at end of stream.
    pub fn read(&mut self, id: u32, max: usize) -> Result<Vec<u8>, EgressError> {
        let max = max.clamp(1, MAX_CHUNK);
        match self.call(&EgressRequest::Read {
            id,
            max: max as u32,
        })? {
            EgressResponse::Data { data } if data.len() <= max => Ok(data.into_vec()),
            _ => Err(EgressError::Unexpected { op: "read" }),
        }
    }

    /// Writes all of `data` (in chunks of at most [`MAX_CHUNK`]).
    pub fn write(&mut self, id: u32, data: &[u8]) -> Result<(), EgressError> {
        for chunk in data.chunks(MAX_CHUNK) {
            match self.call(&EgressRequest::Write {
                id,
                data: ByteBuf::from(chunk.to_vec()),
            })? {
                EgressResponse::Written { len } if len as usize == chunk.len() => {}
                _ => return Err(EgressError::Unexpected { op: "write" }),
            }
        }
        Ok(())
    }

    pub fn close(&mut self, id: u32) -> Result<(), EgressError> {
        match self.call(&EgressRequest::Close { id })? {
            EgressResponse::Closed => Ok(()),
            _ => Err(EgressError::Unexpected { op: "close" }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_parse_and_normalise() {
        let d: Destination = "Example.COM:443".parse().unwrap();
        assert_eq!(d.host(), "example.com");
        assert_eq!(d.to_string(), "example.com:443");
        let d: Destination = "[::1]:8443".parse().unwrap();
        assert_eq!(d.to_string(), "[::1]:8443");
        assert_eq!(d.ip(), Some("::1".parse().unwrap()));
        let d: Destination = "127.0.0.1:1".parse().unwrap();
        assert_eq!(d.ip(), Some("127.0.0.1".parse().unwrap()));
        for bad in [
            "example.com",
            "example.com:0",
            "example.com:65536",
            ":443",
            "exa mple.com:443",
            "-a.com:443",
            "a..com:443",
            "a.com.:443",
            "::1:443",
            "[example.com]:443",
            "1.2.3.999:443",
            "evil.com/x:443",
            "a.com\u{0}:443",
        ] {
            assert!(bad.parse::<Destination>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn the_allow_list_matches_host_and_port_exactly() {
        let allow = AllowList::parse(["api.example.com:443", "[::1]:8443"]).unwrap();
        assert!(allow.permits(&"API.example.com:443".parse().unwrap()));
        assert!(allow.permits(&"[0:0::1]:8443".parse().unwrap()));
        assert!(!allow.permits(&"api.example.com:80".parse().unwrap()));
        assert!(!allow.permits(&"example.com:443".parse().unwrap()));
        assert!(!allow.permits(&"x.api.example.com:443".parse().unwrap()));
        assert!(!AllowList::default().permits(&"api.example.com:443".parse().unwrap()));
    }

    #[test]
    fn requests_out_of_range_are_refused() {
        let enc = |r: &EgressRequest| cbor::encode(r);
        assert!(EgressRequest::decode(&enc(&EgressRequest::Read { id: 1, max: 0 })).is_err());
        assert!(
            EgressRequest::decode(&enc(&EgressRequest::Read {
                id: 1,
                max: MAX_CHUNK as u32 + 1
            }))
            .is_err()
        );
        assert!(
            EgressRequest::decode(&enc(&EgressRequest::Write {
                id: 1,
                data: ByteBuf::new()
            }))
            .is_err()
        );
        assert!(
            EgressRequest::decode(&enc(&EgressRequest::Open {
                host: "a b".into(),
                port: 443
            }))
            .is_err()
        );
        let ok = EgressRequest::Write {
            id: 7,
            data: ByteBuf::from(vec![1; MAX_CHUNK]),
        };
        assert_eq!(EgressRequest::decode(&enc(&ok)).unwrap(), ok);
        let long = EgressResponse::error(EgressErrorCode::Io, "é".repeat(MAX_MESSAGE));
        assert!(EgressResponse::decode(&cbor::encode(&long)).is_ok());
    }
}
