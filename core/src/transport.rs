//! Transports between the relay (or a test) and the enclave: vsock inside a Nitro enclave, a
//! unix socket locally, and "hybrid vsock" for an emulated enclave (vhost-device-vsock's unix
//! socket, on which a `CONNECT <port>` line opens a stream to the guest's vsock port). The
//! server and client code is the same for all; only this module knows the difference.

use std::fmt;
use std::io::{self, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// Where the enclave listens: `unix:PATH`, `vsock:PORT` (listen on any CID) or
/// `vsock:CID:PORT`; or, to connect to an emulated enclave, `hybrid-vsock:PATH:PORT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    Unix(PathBuf),
    Vsock {
        cid: u32,
        port: u32,
    },
    /// The host side of an emulated enclave's vsock: a unix socket that forwards a connection
    /// to the guest's `port` after a `CONNECT <port>` line is answered `OK <port>`.
    HybridVsock {
        path: PathBuf,
        port: u32,
    },
}

/// Longest answer line to `CONNECT` read before giving up on the peer.
const HYBRID_REPLY_MAX: usize = 64;
/// How long the `CONNECT` handshake may take.
const HYBRID_HANDSHAKE: Duration = Duration::from_secs(10);

/// `VMADDR_CID_ANY`: listen on every CID.
const CID_ANY: u32 = u32::MAX;

impl FromStr for Address {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if let Some(path) = s.strip_prefix("unix:") {
            if path.is_empty() {
                return Err("unix: needs a socket path".to_owned());
            }
            return Ok(Address::Unix(PathBuf::from(path)));
        }
        if let Some(rest) = s.strip_prefix("hybrid-vsock:") {
            let bad = || format!("hybrid-vsock:{rest}: expected hybrid-vsock:PATH:PORT");
            let (path, port) = rest.rsplit_once(':').ok_or_else(bad)?;
            if path.is_empty() {
                return Err(bad());
            }
            let port = port
                .parse::<u32>()
                .map_err(|_| format!("invalid vsock port {port:?}"))?;
            return Ok(Address::HybridVsock {
                path: PathBuf::from(path),
                port,
            });
        }
        if let Some(rest) = s.strip_prefix("vsock:") {
            let parse = |v: &str| {
                v.parse::<u32>()
                    .map_err(|_| format!("invalid vsock number {v:?}"))
            };
            return match rest.split_once(':') {
                Some((cid, port)) => Ok(Address::Vsock {
                    cid: parse(cid)?,
                    port: parse(port)?,
                }),
                None => Ok(Address::Vsock {
                    cid: CID_ANY,
                    port: parse(rest)?,
                }),
            };
        }
        Err(format!(
            "unknown address {s:?}: expected unix:PATH, vsock:PORT, vsock:CID:PORT or \
             hybrid-vsock:PATH:PORT"
        ))
    }
}

impl Address {
    /// The address of the pivot app's ingress port `port` in the enclave this address reaches:
    /// the same CID (or emulated vsock socket) with the app's port, or, for a local enclave on
    /// a unix socket, the socket `PATH.app-PORT` beside it. The enclave tells its app where to
    /// listen with it and the relay's app bridge connects with it, so the two always agree.
    #[must_use]
    pub fn app_ingress(&self, port: u32) -> Address {
        match self {
            Address::Unix(path) => {
                let mut name = path.as_os_str().to_os_string();
                name.push(format!(".app-{port}"));
                Address::Unix(PathBuf::from(name))
            }
            Address::Vsock { cid, .. } => Address::Vsock { cid: *cid, port },
            Address::HybridVsock { path, .. } => Address::HybridVsock {
                path: path.clone(),
                port,
            },
        }
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Unix(p) => write!(f, "unix:{}", p.display()),
            Address::Vsock { cid, port } if *cid == CID_ANY => write!(f, "vsock:{port}"),
            Address::Vsock { cid, port } => write!(f, "vsock:{cid}:{port}"),
            Address::HybridVsock { path, port } => {
                write!(f, "hybrid-vsock:{}:{port}", path.display())
            }
        }
    }
}

pub enum Listener {
    Unix(UnixListener),
    Vsock(vsock::VsockListener),
}

impl Listener {
    /// Binds `addr`. A stale unix socket file from an earlier run is replaced; any other file
    /// at that path is left alone and binding fails.
    pub fn bind(addr: &Address) -> io::Result<Self> {
        match addr {
            Address::Unix(path) => {
                use std::os::unix::fs::FileTypeExt;
                if let Ok(meta) = std::fs::symlink_metadata(path)
                    && meta.file_type().is_socket()
                    && UnixStream::connect(path).is_err()
                {
                    std::fs::remove_file(path)?;
                }
                UnixListener::bind(path).map(Listener::Unix)
            }
            Address::Vsock { cid, port } => {
                vsock::VsockListener::bind_with_cid_port(*cid, *port).map(Listener::Vsock)
            }
            Address::HybridVsock { .. } => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "hybrid-vsock is the host's way into an emulated enclave, not a place to listen: \
                 listen on vsock:PORT inside the enclave",
            )),
        }
    }

    pub fn accept(&self) -> io::Result<Stream> {
        match self {
            Listener::Unix(l) => l.accept().map(|(s, _)| Stream::Unix(s)),
            Listener::Vsock(l) => l.accept().map(|(s, _)| Stream::Vsock(s)),
        }
    }
}

/// The `CONNECT <port>` handshake on a hybrid vsock socket. The answer is read a byte at a time
/// so no byte of the guest's stream is consumed with it.
fn hybrid_connect(mut s: UnixStream, port: u32) -> io::Result<UnixStream> {
    s.set_read_timeout(Some(HYBRID_HANDSHAKE))?;
    s.set_write_timeout(Some(HYBRID_HANDSHAKE))?;
    s.write_all(format!("CONNECT {port}\n").as_bytes())?;
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        if s.read(&mut byte)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionRefused,
                format!(
                    "hybrid vsock: connection closed before OK (is anything listening on port {port} in the enclave?)"
                ),
            ));
        }
        if byte[0] == b'\n' {
            break;
        }
        line.push(byte[0]);
        if line.len() > HYBRID_REPLY_MAX {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "hybrid vsock: over-long answer to CONNECT",
            ));
        }
    }
    if !line.starts_with(b"OK ") {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "hybrid vsock: CONNECT {port} answered {:?}, expected OK",
                String::from_utf8_lossy(&line)
            ),
        ));
    }
    s.set_read_timeout(None)?;
    s.set_write_timeout(None)?;
    Ok(s)
}

pub enum Stream {
    Unix(UnixStream),
    Vsock(vsock::VsockStream),
}

impl Stream {
    pub fn connect(addr: &Address) -> io::Result<Self> {
        match addr {
            Address::Unix(path) => UnixStream::connect(path).map(Stream::Unix),
            Address::Vsock { cid, port } => {
                vsock::VsockStream::connect_with_cid_port(*cid, *port).map(Stream::Vsock)
            }
            Address::HybridVsock { path, port } => {
                hybrid_connect(UnixStream::connect(path)?, *port).map(Stream::Unix)
            }
        }
    }

    pub fn set_read_timeout(&self, d: Option<Duration>) -> io::Result<()> {
        match self {
            Stream::Unix(s) => s.set_read_timeout(d),
            Stream::Vsock(s) => s.set_read_timeout(d),
        }
    }

    pub fn set_write_timeout(&self, d: Option<Duration>) -> io::Result<()> {
        match self {
            Stream::Unix(s) => s.set_write_timeout(d),
            Stream::Vsock(s) => s.set_write_timeout(d),
        }
    }

    /// A second handle to the same connection (for closing it from another thread).
    pub fn try_clone(&self) -> io::Result<Self> {
        match self {
            Stream::Unix(s) => s.try_clone().map(Stream::Unix),
            Stream::Vsock(s) => s.try_clone().map(Stream::Vsock),
        }
    }

    /// Shuts both directions down: a thread blocked reading or writing this connection returns
    /// at once, and the peer sees the connection closed.
    pub fn shutdown(&self) -> io::Result<()> {
        match self {
            Stream::Unix(s) => s.shutdown(std::net::Shutdown::Both),
            Stream::Vsock(s) => s.shutdown(std::net::Shutdown::Both),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Unix(s) => s.read(buf),
            Stream::Vsock(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Unix(s) => s.write(buf),
            Stream::Vsock(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Unix(s) => s.flush(),
            Stream::Vsock(s) => s.flush(),
        }
    }
}
