//! The egress proxy: TCP for an enclave that has no network, and nothing more.
//!
//! The enclave opens control channels (vsock in a Nitro enclave, a unix socket locally) and
//! sends the four requests of [`tessera_core::egress`]: open a TCP connection to an allow-listed
//! host:port, read, write, close. The proxy resolves names on the host, moves bytes, enforces
//! its limits and logs destinations and byte counts. It holds no keys: the enclave runs TLS over
//! these bytes, so the proxy only ever sees ciphertext.
//!
//! Each channel is served by its own thread, one request at a time. A read waits for data at
//! most the idle timeout; a connection idle that long, or open longer than its lifetime, or past
//! its byte budget, is closed and reported as such.
//!
//! Nothing here waits on a peer's good will: a request frame must arrive whole within
//! [`FRAME_TIMEOUT`] (or the idle timeout, if shorter) of its first byte, one deadline per frame
//! and not per read, so a channel dripping a byte at a time loses it; a channel with no frame
//! for the idle timeout is closed; and while a channel waits for its next frame, its thread
//! wakes when the first of its connections reaches its idle timeout or its lifetime and closes
//! it, so connections left unused are reaped on time and give their slots back, whatever the
//! channel does.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tessera_core::cbor;
use tessera_core::egress::{
    AllowList, Destination, EgressErrorCode, EgressRequest, EgressResponse, MAX_EGRESS_FRAME,
};
use tessera_core::protocol::{FrameError, read_frame, write_frame};
use tessera_core::transport::{Listener, Stream};

/// Longest time a request frame may take to arrive, from its first byte.
pub const FRAME_TIMEOUT: Duration = Duration::from_secs(10);

/// The proxy's configuration.
#[derive(Debug, Clone)]
pub struct EgressConfig {
    /// Where connections may go.
    pub allow: AllowList,
    /// Open TCP connections at once, over all channels (the proxy serves one enclave).
    pub max_connections: usize,
    /// Control channels at once.
    pub max_channels: usize,
    /// Bytes moved (both directions) on one connection before it is closed.
    pub max_bytes: u64,
    /// A connection (or a channel) with no traffic for this long is closed.
    pub idle_timeout: Duration,
    /// A connection open this long is closed, busy or not.
    pub max_lifetime: Duration,
    /// How long opening a TCP connection may take, per resolved address.
    pub connect_timeout: Duration,
}

impl EgressConfig {
    /// Defaults sized for fetching API documents: 16 connections, 16 MiB per connection, 30 s
    /// idle, 120 s lifetime, 10 s to connect.
    #[must_use]
    pub fn new(allow: AllowList) -> Self {
        Self {
            allow,
            max_connections: 16,
            max_channels: 32,
            max_bytes: 16 << 20,
            idle_timeout: Duration::from_secs(30),
            max_lifetime: Duration::from_mins(2),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// Counts held by a running proxy, shared by its channels.
#[derive(Debug, Default)]
struct Counters {
    connections: AtomicUsize,
    channels: AtomicUsize,
}

/// A slot in a counter, released when dropped.
struct Slot<'a>(&'a AtomicUsize);

impl<'a> Slot<'a> {
    fn take(counter: &'a AtomicUsize, max: usize) -> Option<Self> {
        counter
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| Slot(counter))
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Serves control channels from `listener` until it fails.
pub fn serve(listener: &Listener, config: EgressConfig) -> io::Result<()> {
    let config = Arc::new(config);
    let counters = Arc::new(Counters::default());
    loop {
        let stream = match listener.accept() {
            Ok(s) => s,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                // Out of file descriptors and the like: wait and keep serving.
                tracing::warn!(error = %e, "accept failed");
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        let config = Arc::clone(&config);
        let counters = Arc::clone(&counters);
        std::thread::spawn(move || {
            let Some(_slot) = Slot::take(&counters.channels, config.max_channels) else {
                tracing::warn!("channel refused: too many channels");
                let mut stream = stream;
                let _ = reply(
                    &mut stream,
                    &EgressResponse::error(EgressErrorCode::Limit, "too many channels"),
                );
                return;
            };
            Channel::new(&config, &counters).run(stream);
        });
    }
}

/// One open TCP connection.
struct Conn<'a> {
    tcp: TcpStream,
    dest: Destination,
    peer: SocketAddr,
    opened: Instant,
    /// When a request last used it.
    used: Instant,
    bytes: u64,
    _slot: Slot<'a>,
}

struct Channel<'a> {
    config: &'a EgressConfig,
    counters: &'a Counters,
    conns: HashMap<u32, Conn<'a>>,
    next_id: u32,
}

/// Why a request failed: the answer to send, and whether its connection is gone.
type Failed = (EgressErrorCode, String);

impl<'a> Channel<'a> {
    fn new(config: &'a EgressConfig, counters: &'a Counters) -> Self {
        Self {
            config,
            counters,
            conns: HashMap::new(),
            next_id: 1,
        }
    }

    fn run(mut self, mut stream: Stream) {
        if stream
            .set_write_timeout(Some(self.config.idle_timeout))
            .is_err()
        {
            return;
        }
        // Frames are read through a buffer: one system call per request instead of two.
        let Ok(reader) = stream.try_clone() else {
            return;
        };
        let mut reader = std::io::BufReader::with_capacity(MAX_EGRESS_FRAME, reader);
        let mut last_frame = Instant::now();
        loop {
            match self.wait_for_frame(&mut reader, last_frame) {
                Ok(true) => {}
                Ok(false) => break,
                Err(why) => {
                    tracing::info!(why, "channel closed");
                    break;
                }
            }
            let frame_deadline = Instant::now() + FRAME_TIMEOUT.min(self.config.idle_timeout);
            let mut timed = FrameReader {
                reader: &mut reader,
                until: frame_deadline,
            };
            let bytes = match read_frame(&mut timed, MAX_EGRESS_FRAME) {
                Ok(b) => b,
                Err(FrameError::Closed) => break,
                Err(FrameError::TooLarge { len, max }) => {
                    let _ = reply(
                        &mut stream,
                        &EgressResponse::error(
                            EgressErrorCode::BadRequest,
                            format!("frame of {len} bytes exceeds {max}"),
                        ),
                    );
                    break;
                }
                Err(e) => {
                    tracing::info!(error = %e, "channel closed");
                    break;
                }
            };
            let response = match EgressRequest::decode(&bytes) {
                Ok(req) => self.handle(req),
                Err(e) => EgressResponse::error(EgressErrorCode::BadRequest, e.to_string()),
            };
            if reply(&mut stream, &response).is_err() {
                break;
            }
            last_frame = Instant::now();
        }
        for (id, conn) in self.conns.drain() {
            log_close(id, &conn, "channel closed");
        }
    }

    /// Waits for the first byte of the next frame, closing connections as they reach their idle
    /// timeout or lifetime meanwhile. True when a frame starts, false when the channel closed;
    /// an error when it stayed idle past the idle timeout or failed.
    fn wait_for_frame(
        &mut self,
        reader: &mut std::io::BufReader<Stream>,
        last_frame: Instant,
    ) -> Result<bool, &'static str> {
        use std::io::BufRead;
        loop {
            self.reap();
            let now = Instant::now();
            let idle_left = self
                .config
                .idle_timeout
                .saturating_sub(now.saturating_duration_since(last_frame));
            if idle_left.is_zero() {
                return Err("idle");
            }
            let wait = self
                .next_expiry()
                .map_or(idle_left, |at| {
                    idle_left.min(at.saturating_duration_since(now))
                })
                .max(Duration::from_millis(1));
            if reader.get_ref().set_read_timeout(Some(wait)).is_err() {
                return Err("socket error");
            }
            match reader.fill_buf() {
                Ok([]) => return Ok(false),
                Ok(_) => return Ok(true),
                Err(e) if is_timeout(&e) || e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Err("read error"),
            }
        }
    }

    /// Closes the connections unused for the idle timeout or open for their lifetime.
    fn reap(&mut self) {
        let (idle, lifetime) = (self.config.idle_timeout, self.config.max_lifetime);
        let expired: Vec<(u32, &'static str)> = self
            .conns
            .iter()
            .filter_map(|(id, c)| {
                if c.opened.elapsed() >= lifetime {
                    Some((*id, "lifetime reached"))
                } else if c.used.elapsed() >= idle {
                    Some((*id, "idle"))
                } else {
                    None
                }
            })
            .collect();
        for (id, why) in expired {
            self.drop_conn(id, why);
        }
    }

    /// When the first open connection reaches its idle timeout or its lifetime.
    fn next_expiry(&self) -> Option<Instant> {
        let (idle, lifetime) = (self.config.idle_timeout, self.config.max_lifetime);
        self.conns
            .values()
            .map(|c| (c.used + idle).min(c.opened + lifetime))
            .min()
    }

    fn handle(&mut self, req: EgressRequest) -> EgressResponse {
        let result = match req {
            EgressRequest::Open { host, port } => self.open(&host, port),
            EgressRequest::Read { id, max } => self.read(id, max as usize),
            EgressRequest::Write { id, data } => self.write(id, &data),
            EgressRequest::Close { id } => match self.conns.remove(&id) {
                Some(conn) => {
                    log_close(id, &conn, "closed by the enclave");
                    Ok(EgressResponse::Closed)
                }
                None => Err(unknown(id)),
            },
        };
        result.unwrap_or_else(|(code, message)| EgressResponse::error(code, message))
    }

    fn open(&mut self, host: &str, port: u16) -> Result<EgressResponse, Failed> {
        let dest = Destination::new(host, port)
            .map_err(|e| (EgressErrorCode::BadRequest, e.to_string()))?;
        if !self.config.allow.permits(&dest) {
            tracing::warn!(%dest, "open refused: not on the allow-list");
            return Err((
                EgressErrorCode::NotAllowed,
                format!("{dest} is not on the proxy's allow-list"),
            ));
        }
        let slot = Slot::take(&self.counters.connections, self.config.max_connections).ok_or_else(
            || {
                (
                    EgressErrorCode::Limit,
                    format!("{} connections already open", self.config.max_connections),
                )
            },
        )?;
        let addrs: Vec<SocketAddr> = (dest.host(), dest.port())
            .to_socket_addrs()
            .map_err(|e| {
                (
                    EgressErrorCode::Unreachable,
                    format!("cannot resolve {}: {e}", dest.host()),
                )
            })?
            .collect();
        let mut last = None;
        let tcp = addrs
            .iter()
            .find_map(|a| {
                TcpStream::connect_timeout(a, self.config.connect_timeout)
                    .map_err(|e| last = Some(e))
                    .ok()
            })
            .ok_or_else(|| {
                (
                    EgressErrorCode::Unreachable,
                    match last {
                        Some(e) => format!("cannot connect to {dest}: {e}"),
                        None => format!("{} resolved to no address", dest.host()),
                    },
                )
            })?;
        let _ = tcp.set_nodelay(true);
        let peer = tcp
            .peer_addr()
            .map_err(|e| (EgressErrorCode::Io, e.to_string()))?;
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        tracing::info!(id, %dest, %peer, "connection opened");
        let now = Instant::now();
        self.conns.insert(
            id,
            Conn {
                tcp,
                dest,
                peer,
                opened: now,
                used: now,
                bytes: 0,
                _slot: slot,
            },
        );
        Ok(EgressResponse::Opened { id })
    }

    /// The connection `id`, after checking its lifetime; an expired one is closed.
    fn live(&mut self, id: u32) -> Result<&mut Conn<'a>, Failed> {
        let lifetime = self.config.max_lifetime;
        let expired = self
            .conns
            .get(&id)
            .ok_or_else(|| unknown(id))?
            .opened
            .elapsed()
            >= lifetime;
        if expired {
            self.drop_conn(id, "lifetime reached");
            return Err((
                EgressErrorCode::Limit,
                format!("connection {id} reached its {lifetime:?} lifetime and was closed"),
            ));
        }
        let conn = self.conns.get_mut(&id).ok_or_else(|| unknown(id))?;
        conn.used = Instant::now();
        Ok(conn)
    }

    fn read(&mut self, id: u32, max: usize) -> Result<EgressResponse, Failed> {
        let idle = self.config.idle_timeout;
        let lifetime = self.config.max_lifetime;
        let max_bytes = self.config.max_bytes;
        let conn = self.live(id)?;
        let wait = idle.min(lifetime.saturating_sub(conn.opened.elapsed()));
        let budget = max_bytes.saturating_sub(conn.bytes);
        if budget == 0 {
            self.drop_conn(id, "byte limit");
            return Err(byte_limit(id, max_bytes));
        }
        let want = max.min(usize::try_from(budget).unwrap_or(usize::MAX));
        let mut buf = vec![0u8; want];
        let read = conn
            .tcp
            .set_read_timeout(Some(wait.max(Duration::from_millis(1))))
            .and_then(|()| conn.tcp.read(&mut buf));
        match read {
            Ok(n) => {
                conn.used = Instant::now();
                conn.bytes += n as u64;
                buf.truncate(n);
                Ok(EgressResponse::Data {
                    data: serde_bytes::ByteBuf::from(buf),
                })
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                self.drop_conn(id, "idle");
                Err((
                    EgressErrorCode::Timeout,
                    format!("connection {id} had nothing to read for {wait:?} and was closed"),
                ))
            }
            Err(e) => {
                self.drop_conn(id, "read error");
                Err((EgressErrorCode::Io, format!("read on connection {id}: {e}")))
            }
        }
    }

    fn write(&mut self, id: u32, data: &[u8]) -> Result<EgressResponse, Failed> {
        let idle = self.config.idle_timeout;
        let max_bytes = self.config.max_bytes;
        let conn = self.live(id)?;
        if conn.bytes + data.len() as u64 > max_bytes {
            self.drop_conn(id, "byte limit");
            return Err(byte_limit(id, max_bytes));
        }
        let written = conn
            .tcp
            .set_write_timeout(Some(idle))
            .and_then(|()| conn.tcp.write_all(data));
        match written {
            Ok(()) => {
                conn.used = Instant::now();
                conn.bytes += data.len() as u64;
                Ok(EgressResponse::Written {
                    len: data.len() as u32,
                })
            }
            Err(e) => {
                self.drop_conn(id, "write error");
                Err((
                    EgressErrorCode::Io,
                    format!("write on connection {id}: {e}"),
                ))
            }
        }
    }

    fn drop_conn(&mut self, id: u32, why: &str) {
        if let Some(conn) = self.conns.remove(&id) {
            log_close(id, &conn, why);
        }
    }
}

fn unknown(id: u32) -> Failed {
    (
        EgressErrorCode::UnknownConnection,
        format!("no open connection {id} on this channel"),
    )
}

fn byte_limit(id: u32, max: u64) -> Failed {
    (
        EgressErrorCode::Limit,
        format!("connection {id} reached its {max}-byte limit and was closed"),
    )
}

fn log_close(id: u32, conn: &Conn<'_>, why: &str) {
    tracing::info!(
        id,
        dest = %conn.dest,
        peer = %conn.peer,
        bytes = conn.bytes,
        seconds = conn.opened.elapsed().as_secs_f64(),
        why,
        "connection closed"
    );
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// The channel's reader, for one frame: every read gets only the time left until `until`.
struct FrameReader<'r> {
    reader: &'r mut std::io::BufReader<Stream>,
    until: Instant,
}

impl Read for FrameReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "request frame not completed in time",
            ));
        }
        self.reader.get_ref().set_read_timeout(Some(left))?;
        self.reader.read(buf)
    }
}

fn reply(stream: &mut Stream, response: &EgressResponse) -> Result<(), FrameError> {
    write_frame(stream, &cbor::encode(response))
}
