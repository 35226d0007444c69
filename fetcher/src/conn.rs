//! A TCP connection through the host's egress proxy, as `std::io::Read` and `Write`, so rustls
//! runs on top of it exactly as on a socket.

use std::io::{self, IoSlice, Read, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tessera_core::egress::{Destination, EgressChannel, EgressError, MAX_CHUNK};
use tessera_core::transport::Address;

/// How long a control channel may wait unused before it is no longer reused (the proxy closes
/// channels idle for its idle timeout, 30 s by default).
const POOL_IDLE: Duration = Duration::from_secs(10);

/// Most idle control channels kept.
const POOL_SIZE: usize = 8;

/// Control channels to one proxy, kept open between fetches so a fetch does not pay for a new
/// channel (and a new proxy thread) each time. A channel returns to the pool only after its
/// connection was closed cleanly; any error discards it.
pub struct ChannelPool {
    proxy: Address,
    step: Duration,
    idle: Mutex<Vec<(EgressChannel, Instant)>>,
}

impl ChannelPool {
    #[must_use]
    pub fn new(proxy: Address, step: Duration) -> Arc<Self> {
        Arc::new(Self {
            proxy,
            step,
            idle: Mutex::new(Vec::new()),
        })
    }

    fn take(&self) -> Option<EgressChannel> {
        let mut idle = self
            .idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        while let Some((ch, since)) = idle.pop() {
            if since.elapsed() < POOL_IDLE {
                return Some(ch);
            }
        }
        None
    }

    fn put(&self, ch: EgressChannel) {
        let mut idle = self
            .idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if idle.len() < POOL_SIZE {
            idle.push((ch, Instant::now()));
        }
    }
}

/// One proxied TCP connection on a control channel. Reads ask the proxy for a whole chunk and
/// serve it from a buffer, so a TLS record costs one round trip, not several.
pub struct ProxyConn {
    channel: Option<EgressChannel>,
    pool: Option<Arc<ChannelPool>>,
    id: u32,
    buf: Vec<u8>,
    pos: usize,
    eof: bool,
    deadline: Instant,
    /// A request failed: the channel may be out of step or stalled, so nothing more is sent.
    broken: bool,
    /// Bytes moved through the proxy (both directions), for the benchmark and the logs.
    pub moved: u64,
}

impl ProxyConn {
    /// Opens a channel to the proxy at `proxy` and a connection to `dest`. Every proxy answer
    /// must come within `step`; the whole connection is refused past `deadline`.
    pub fn open(
        proxy: &Address,
        dest: &Destination,
        step: Duration,
        deadline: Instant,
    ) -> Result<Self, EgressError> {
        let mut channel = EgressChannel::connect(proxy, step)?;
        let id = channel.open(dest)?;
        Ok(Self::new(channel, None, id, deadline))
    }

    /// [`ProxyConn::open`] on a channel from `pool` (a fresh one if none is idle, or if the
    /// idle one turns out to be closed before the open was answered).
    pub fn open_pooled(
        pool: &Arc<ChannelPool>,
        dest: &Destination,
        deadline: Instant,
    ) -> Result<Self, EgressError> {
        if let Some(mut channel) = pool.take() {
            match channel.open(dest) {
                Ok(id) => return Ok(Self::new(channel, Some(Arc::clone(pool)), id, deadline)),
                // A refusal is the proxy's answer, the same on any channel.
                Err(e @ EgressError::Refused { .. }) => return Err(e),
                Err(_) => {}
            }
        }
        let mut channel = EgressChannel::connect(&pool.proxy, pool.step)?;
        let id = channel.open(dest)?;
        Ok(Self::new(channel, Some(Arc::clone(pool)), id, deadline))
    }

    fn new(
        channel: EgressChannel,
        pool: Option<Arc<ChannelPool>>,
        id: u32,
        deadline: Instant,
    ) -> Self {
        Self {
            channel: Some(channel),
            pool,
            id,
            buf: Vec::new(),
            pos: 0,
            eof: false,
            deadline,
            broken: false,
            moved: 0,
        }
    }

    fn channel(&mut self) -> &mut EgressChannel {
        self.channel.as_mut().expect("present until drop")
    }

    fn check_deadline(&self) -> io::Result<()> {
        if Instant::now() >= self.deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the fetch took longer than its deadline",
            ));
        }
        Ok(())
    }
}

fn to_io(e: &EgressError) -> io::Error {
    if e.is_timeout() {
        io::Error::new(io::ErrorKind::TimedOut, e.to_string())
    } else {
        io::Error::other(e.to_string())
    }
}

impl Read for ProxyConn {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        if self.pos == self.buf.len() {
            if self.eof {
                return Ok(0);
            }
            self.check_deadline()?;
            if self.broken {
                return Err(io::Error::other("the proxy connection already failed"));
            }
            let id = self.id;
            self.buf = match self.channel().read(id, MAX_CHUNK) {
                Ok(b) => b,
                Err(e) => {
                    self.broken = true;
                    return Err(to_io(&e));
                }
            };
            self.pos = 0;
            self.moved += self.buf.len() as u64;
            if self.buf.is_empty() {
                self.eof = true;
                return Ok(0);
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl Write for ProxyConn {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if data.is_empty() {
            return Ok(0);
        }
        self.check_deadline()?;
        if self.broken {
            return Err(io::Error::other("the proxy connection already failed"));
        }
        let n = data.len().min(MAX_CHUNK);
        let id = self.id;
        if let Err(e) = self.channel().write(id, &data[..n]) {
            self.broken = true;
            return Err(to_io(&e));
        }
        self.moved += n as u64;
        Ok(n)
    }

    /// rustls hands over a whole flight as several slices: one write request for all of them
    /// (up to a chunk) instead of one round trip each.
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        if bufs.len() <= 1 || total == 0 {
            return bufs
                .iter()
                .find(|b| !b.is_empty())
                .map_or(Ok(0), |b| self.write(b));
        }
        let mut data = Vec::with_capacity(total.min(MAX_CHUNK));
        for b in bufs {
            let take = b.len().min(MAX_CHUNK - data.len());
            data.extend_from_slice(&b[..take]);
            if data.len() == MAX_CHUNK {
                break;
            }
        }
        self.write(&data)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for ProxyConn {
    fn drop(&mut self) {
        // Best effort: the proxy also closes every connection of a channel that goes away.
        if self.broken {
            return;
        }
        let id = self.id;
        if self.channel().close(id).is_ok()
            && let (Some(pool), Some(channel)) = (self.pool.take(), self.channel.take())
        {
            pool.put(channel);
        }
    }
}
