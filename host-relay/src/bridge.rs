//! The app bridge: a host TCP port whose connections are carried, as plain bytes both ways, to
//! the pivot app's ingress inside the enclave (the vsock port the manifest declares; locally, the
//! unix socket that stands in for it, see [`Address::app_ingress`]).
//!
//! The bridge reads nothing it carries. Before carrying a connection it asks the enclave whether
//! it is provisioned and which ingress port its manifest declares: before provisioning, or when
//! the manifest declares none, the connection is closed at once and nothing reaches the enclave.
//! Limits, like the rest of the relay's (`docs/api.md`):
//!
//! - at most [`BridgeConfig::max_connections`] connections in all, which must not exceed what
//!   the app serves at once (the demo app serves 64, the default), and
//!   [`BridgeConfig::max_per_client`] per client address (an IPv6 client counts as its /64);
//!   beyond a client's cap its new connection is closed at once. At the total, a new connection
//!   from a client holding fewer connections than the client holding the most (less one) takes
//!   the place of that client's longest-idle connection, which is closed; otherwise it is closed
//!   at once. So clients within their caps cannot fill the app between them: each new client
//!   gets a share, and only a client holding more than others gives way;
//! - a connection that carries no byte either way for [`BridgeConfig::idle`] is closed, and no
//!   connection lives longer than [`BridgeConfig::lifetime`], so a client dripping bytes cannot
//!   hold a slot forever;
//! - at most [`BridgeConfig::max_bytes`] bytes each way per connection; one more closes it.
//!
//! Each carried connection uses two small threads doing blocking copies with timeouts, on
//! every transport the enclave module speaks (vsock, emulated vsock, unix).

use std::collections::HashMap;
use std::future::Future;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::net::TcpListener;

use tessera_core::protocol::Phase;
use tessera_core::transport::{Address, Stream};

use crate::enclave::Enclave;
use crate::limits::client_of;

/// Limits of the app bridge.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct BridgeConfig {
    /// The enclave's protocol address; the app's ingress derives from it.
    pub enclave: Address,
    pub max_connections: usize,
    pub max_per_client: usize,
    /// A connection that carries nothing either way this long is closed.
    pub idle: Duration,
    /// No connection lives longer.
    pub lifetime: Duration,
    /// Bytes carried each way per connection at most.
    pub max_bytes: u64,
    /// Time allowed for the enclave's status answer and for connecting to the app.
    pub connect_timeout: Duration,
}

impl BridgeConfig {
    /// Defaults: 64 connections (what the demo app serves), 16 per client, 30 s idle, 10 min
    /// lifetime, 16 MiB each way.
    #[must_use]
    pub fn new(enclave: Address) -> Self {
        Self {
            enclave,
            max_connections: 64,
            max_per_client: 16,
            idle: Duration::from_secs(30),
            lifetime: Duration::from_mins(10),
            max_bytes: 16 << 20,
            connect_timeout: Duration::from_secs(10),
        }
    }

    #[must_use]
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = n.max(1);
        self
    }

    #[must_use]
    pub fn max_per_client(mut self, n: usize) -> Self {
        self.max_per_client = n.max(1);
        self
    }

    #[must_use]
    pub fn idle(mut self, d: Duration) -> Self {
        self.idle = d;
        self
    }

    #[must_use]
    pub fn lifetime(mut self, d: Duration) -> Self {
        self.lifetime = d;
        self
    }

    #[must_use]
    pub fn max_bytes(mut self, n: u64) -> Self {
        self.max_bytes = n;
        self
    }
}

/// One admitted connection: whose, how idle, and how to close it when it must give way.
struct Entry {
    client: IpAddr,
    clock: Clock,
    closer: Arc<Closer>,
}

/// Closes a carried connection from another thread.
#[derive(Default)]
struct Closer {
    evicted: std::sync::atomic::AtomicBool,
    ends: Mutex<Vec<Side>>,
}

impl Closer {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Side>> {
        self.ends.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Closes both ends now and any end registered later.
    fn close(&self) {
        let ends = self.lock();
        self.evicted.store(true, Ordering::Release);
        for end in ends.iter() {
            end.close();
        }
    }

    /// Registers an end to close on eviction; false (and the end closed) if already evicted.
    fn register(&self, end: Side) -> bool {
        let mut ends = self.lock();
        if self.evicted.load(Ordering::Acquire) {
            end.close();
            return false;
        }
        ends.push(end);
        true
    }
}

/// Connections carried now.
#[derive(Default)]
struct Table {
    conns: HashMap<u64, Entry>,
    per_client: HashMap<IpAddr, usize>,
}

/// A held slot; dropping it frees it.
struct Slot {
    table: Arc<Mutex<Table>>,
    id: u64,
    clock: Clock,
    closer: Arc<Closer>,
}

fn lock_table(t: &Mutex<Table>) -> std::sync::MutexGuard<'_, Table> {
    t.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Table {
    fn remove(&mut self, id: u64) -> Option<Entry> {
        let entry = self.conns.remove(&id)?;
        if let Some(n) = self.per_client.get_mut(&entry.client) {
            *n -= 1;
            if *n == 0 {
                self.per_client.remove(&entry.client);
            }
        }
        Some(entry)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        lock_table(&self.table).remove(self.id);
    }
}

/// Admits a connection from `client` under the caps; at the total, the longest-idle connection
/// of the client holding the most gives way if that client holds more than this one will.
fn admit(
    table: &Arc<Mutex<Table>>,
    id: u64,
    client: IpAddr,
    config: &BridgeConfig,
) -> Option<Slot> {
    let mut t = lock_table(table);
    let mine = t.per_client.get(&client).copied().unwrap_or(0);
    if mine >= config.max_per_client {
        return None;
    }
    if t.conns.len() >= config.max_connections {
        let (top, most) = t
            .per_client
            .iter()
            .max_by_key(|(_, n)| **n)
            .map(|(ip, n)| (*ip, *n))?;
        if most <= mine + 1 {
            return None;
        }
        let victim = t
            .conns
            .iter()
            .filter(|(_, e)| e.client == top)
            .max_by_key(|(_, e)| e.clock.idle_for())
            .map(|(id, _)| *id)?;
        if let Some(entry) = t.remove(victim) {
            tracing::info!(client = %top, connection = victim, "app bridge: at the connection limit; closing the longest-idle connection of the client holding the most");
            entry.closer.close();
        }
    }
    let clock = Clock {
        started: Instant::now(),
        last: Arc::new(AtomicU64::new(0)),
    };
    let closer = Arc::new(Closer::default());
    t.conns.insert(
        id,
        Entry {
            client,
            clock: clock.clone(),
            closer: Arc::clone(&closer),
        },
    );
    *t.per_client.entry(client).or_insert(0) += 1;
    Some(Slot {
        table: Arc::clone(table),
        id,
        clock,
        closer,
    })
}

/// Serves the bridge on `listener` until `stop` completes.
pub async fn serve_bridge(
    listener: TcpListener,
    config: BridgeConfig,
    stop: impl Future<Output = ()>,
) {
    // A connection of its own to the enclave, for status only: app traffic never waits behind
    // a ceremony request, and the HTTP API never waits behind the bridge.
    let enclave = Arc::new(Enclave::start(
        config.enclave.clone(),
        config.connect_timeout,
        64,
    ));
    let config = Arc::new(config);
    let table = Arc::new(Mutex::new(Table::default()));
    let ids = AtomicU64::new(1);
    tokio::pin!(stop);
    loop {
        let accepted = tokio::select! {
            () = &mut stop => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                tracing::warn!(error = %e, "app bridge: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let client = client_of(peer.ip());
        let id = ids.fetch_add(1, Ordering::Relaxed);
        let Some(slot) = admit(&table, id, client, &config) else {
            tracing::info!(%client, "app bridge: connection limit reached; closing a new connection");
            continue;
        };
        let enclave = Arc::clone(&enclave);
        let config = Arc::clone(&config);
        tokio::spawn(async move {
            let Some(target) = target(&enclave, &config, id).await else {
                return;
            };
            let Ok(tcp) = stream.into_std() else { return };
            let spawned = std::thread::Builder::new()
                .name(format!("bridge-{id}"))
                .stack_size(128 * 1024)
                .spawn(move || {
                    carry(id, tcp, &target, &config, &slot);
                    drop(slot);
                });
            if let Err(e) = spawned {
                tracing::warn!(connection = id, error = %e, "app bridge: cannot start a thread");
            }
        });
    }
}

/// The app's ingress address if the enclave is provisioned and its manifest declares one.
async fn target(enclave: &Enclave, config: &BridgeConfig, id: u64) -> Option<Address> {
    match enclave.status(config.connect_timeout).await {
        Ok(s) if s.phase == Phase::Provisioned => {
            let port = s.app_ingress;
            if port.is_none() {
                tracing::info!(
                    connection = id,
                    "app bridge: the manifest declares no app ingress port; connection closed"
                );
            }
            port.map(|p| config.enclave.app_ingress(p))
        }
        Ok(s) => {
            tracing::info!(
                connection = id,
                phase = s.phase.as_str(),
                "app bridge: the enclave is not provisioned; connection closed"
            );
            None
        }
        Err(e) => {
            tracing::info!(connection = id, error = %e.message, "app bridge: enclave status unavailable; connection closed");
            None
        }
    }
}

/// Carries one connection both ways until both directions end or a limit closes it.
fn carry(id: u64, tcp: TcpStream, target: &Address, config: &BridgeConfig, slot: &Slot) {
    if tcp.set_nonblocking(false).is_err() {
        return;
    }
    let Ok(tcp_end) = tcp.try_clone() else {
        return;
    };
    if !slot.closer.register(Side::Tcp(tcp_end)) {
        return;
    }
    let app = match Stream::connect(target) {
        Ok(s) => s,
        Err(e) => {
            tracing::info!(connection = id, app = %target, error = %e, "app bridge: the app does not answer; connection closed");
            let _ = tcp.shutdown(Shutdown::Both);
            return;
        }
    };
    let (Ok(tcp_up), Ok(app_up), Ok(app_end)) = (tcp.try_clone(), app.try_clone(), app.try_clone())
    else {
        return;
    };
    if !slot.closer.register(Side::App(app_end)) {
        return;
    }
    let clock = slot.clock.clone();
    let up_clock = clock.clone();
    let up_config = config.clone();
    let up = std::thread::Builder::new()
        .name(format!("bridge-{id}-up"))
        .stack_size(128 * 1024)
        .spawn(move || {
            copy(
                &mut Side::Tcp(tcp_up),
                &mut Side::App(app_up),
                &up_clock,
                &up_config,
            )
        });
    let down = copy(&mut Side::App(app), &mut Side::Tcp(tcp), &clock, config);
    let up = up.map_or(End::Closed("no thread"), |h| {
        h.join().unwrap_or(End::Closed("panicked"))
    });
    tracing::debug!(connection = id, up = %up, down = %down, "app bridge: connection ended");
}

/// Either end of a carried connection.
enum Side {
    Tcp(TcpStream),
    App(Stream),
}

impl Side {
    fn set_read_timeout(&self, d: Duration) -> io::Result<()> {
        match self {
            Side::Tcp(s) => s.set_read_timeout(Some(d)),
            Side::App(s) => s.set_read_timeout(Some(d)),
        }
    }

    fn set_write_timeout(&self, d: Duration) -> io::Result<()> {
        match self {
            Side::Tcp(s) => s.set_write_timeout(Some(d)),
            Side::App(s) => s.set_write_timeout(Some(d)),
        }
    }

    /// No more bytes will be written: the peer reads end of stream, and may still answer.
    fn close_write(&self) {
        let _ = match self {
            Side::Tcp(s) => s.shutdown(Shutdown::Write),
            Side::App(Stream::Unix(s)) => s.shutdown(Shutdown::Write),
            Side::App(Stream::Vsock(s)) => s.shutdown(Shutdown::Write),
        };
    }

    /// Both directions end: threads blocked on either end return at once.
    fn close(&self) {
        let _ = match self {
            Side::Tcp(s) => s.shutdown(Shutdown::Both),
            Side::App(s) => s.shutdown(),
        };
    }
}

impl Read for Side {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Side::Tcp(s) => s.read(buf),
            Side::App(s) => s.read(buf),
        }
    }
}

impl Write for Side {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Side::Tcp(s) => s.write(buf),
            Side::App(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Side::Tcp(s) => s.flush(),
            Side::App(s) => s.flush(),
        }
    }
}

/// How one direction ended.
enum End {
    /// The source closed its side; the close was passed on.
    Finished(u64),
    /// A limit or an error closed the whole connection.
    Closed(&'static str),
}

impl std::fmt::Display for End {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            End::Finished(n) => write!(f, "{n} bytes"),
            End::Closed(why) => f.write_str(why),
        }
    }
}

/// When a connection started and when it last carried a byte either way.
#[derive(Clone)]
struct Clock {
    started: Instant,
    /// Milliseconds after `started`.
    last: Arc<AtomicU64>,
}

impl Clock {
    fn touch(&self) {
        let now = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.store(now, Ordering::Relaxed);
    }

    fn idle_for(&self) -> Duration {
        let last = Duration::from_millis(self.last.load(Ordering::Relaxed));
        self.started.elapsed().saturating_sub(last)
    }
}

/// Copies `from` to `to` under the idle, lifetime and byte limits.
fn copy(from: &mut Side, to: &mut Side, clock: &Clock, config: &BridgeConfig) -> End {
    let mut buf = vec![0u8; 16 * 1024];
    let mut carried: u64 = 0;
    let end = loop {
        let left = config.lifetime.saturating_sub(clock.started.elapsed());
        if left.is_zero() {
            break End::Closed("lifetime reached");
        }
        let idle_left = config.idle.saturating_sub(clock.idle_for());
        if idle_left.is_zero() {
            break End::Closed("idle");
        }
        let wait = idle_left.min(left);
        if from.set_read_timeout(wait).is_err() || to.set_write_timeout(config.idle).is_err() {
            break End::Closed("socket error");
        }
        let n = match from.read(&mut buf) {
            Ok(0) => {
                to.close_write();
                return End::Finished(carried);
            }
            Ok(n) => n,
            // Checked again at the top: the other direction may have carried bytes meanwhile.
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break End::Closed("read error"),
        };
        clock.touch();
        carried += n as u64;
        if carried > config.max_bytes {
            break End::Closed("byte limit");
        }
        if to.write_all(&buf[..n]).is_err() {
            break End::Closed("write error");
        }
        clock.touch();
    };
    from.close();
    to.close();
    end
}
