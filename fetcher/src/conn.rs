//! A TCP connection through the host's egress proxy, as `std::io::Read` and `Write`, so rustls
//! runs on top of it exactly as on a socket.

use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

use tessera_core::egress::{Destination, EgressChannel, EgressError, MAX_CHUNK};
use tessera_core::transport::Address;

/// One proxied TCP connection on its own control channel. Reads ask the proxy for a whole
/// chunk and serve it from a buffer, so a TLS record costs one round trip, not several.
pub struct ProxyConn {
    channel: EgressChannel,
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
        Ok(Self {
            channel,
            id,
            buf: Vec::new(),
            pos: 0,
            eof: false,
            deadline,
            broken: false,
            moved: 0,
        })
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
            self.buf = match self.channel.read(self.id, MAX_CHUNK) {
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
        if let Err(e) = self.channel.write(self.id, &data[..n]) {
            self.broken = true;
            return Err(to_io(&e));
        }
        self.moved += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for ProxyConn {
    fn drop(&mut self) {
        // Best effort: the proxy also closes every connection of a channel that goes away.
        if !self.broken {
            let _ = self.channel.close(self.id);
        }
    }
}
