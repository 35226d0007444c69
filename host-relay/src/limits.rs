//! Fairness between clients: how many connections each may hold, which connection gives way
//! when they are all taken, and a ration of the requests that cost the enclave an attestation.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use tokio::sync::Notify;

use crate::error::ApiError;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The client a peer address counts as: the address itself for IPv4, its /64 for IPv6 (one
/// host usually holds a whole /64, so counting single IPv6 addresses would give it billions of
/// connection caps and rations).
pub(crate) fn client_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return IpAddr::V4(v4);
            }
            let mut segments = v6.segments();
            segments[4..].fill(0);
            IpAddr::V6(segments.into())
        }
        v4 @ IpAddr::V4(_) => v4,
    }
}

/// The client (see [`client_of`]) that sent a request (set by [`crate::serve`]; unspecified when the
/// router is served some other way).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClientIp(pub(crate) IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        Ok(parts
            .extensions
            .get::<ClientIp>()
            .copied()
            .unwrap_or(ClientIp(IpAddr::V4(Ipv4Addr::UNSPECIFIED))))
    }
}

/// One open HTTP connection.
pub(crate) struct Conn {
    pub(crate) id: u64,
    pub(crate) ip: IpAddr,
    /// Requests being handled on it.
    in_flight: AtomicUsize,
    /// When it was accepted or last finished a request.
    idle_since: Mutex<Instant>,
    /// Notified when the connection is closed to make room for another.
    pub(crate) evicted: Notify,
}

impl Conn {
    /// Marks a request in progress until the guard is dropped.
    pub(crate) fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight(Arc::clone(self))
    }

    fn idle(&self) -> bool {
        self.in_flight.load(Ordering::SeqCst) == 0
    }
}

pub(crate) struct InFlight(Arc<Conn>);

impl Drop for InFlight {
    fn drop(&mut self) {
        *lock(&self.0.idle_since) = Instant::now();
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

#[derive(Default)]
struct Table {
    conns: HashMap<u64, Arc<Conn>>,
    per_client: HashMap<IpAddr, usize>,
    next: u64,
}

impl Table {
    fn remove(&mut self, id: u64) -> Option<Arc<Conn>> {
        let conn = self.conns.remove(&id)?;
        if let Some(n) = self.per_client.get_mut(&conn.ip) {
            *n -= 1;
            if *n == 0 {
                self.per_client.remove(&conn.ip);
            }
        }
        Some(conn)
    }
}

/// The open connections, at most `max` in all and `per_client` from one address.
///
/// A connection is *waiting* when no request of it is being handled: it is idle between
/// requests or still sending its headers. When a client is at its cap, its new connection
/// replaces its longest-waiting one; when the relay is at its cap, a new connection replaces
/// the longest-waiting connection of the client holding the most. A connection is refused only
/// when every candidate is busy with a request. So connections that only sit and wait can never
/// lock anyone out, and a client that opens many costs its own connections first.
pub(crate) struct Connections {
    table: Mutex<Table>,
    max: usize,
    per_client: usize,
}

impl Connections {
    pub(crate) fn new(max: usize, per_client: usize) -> Self {
        Self {
            table: Mutex::new(Table::default()),
            max: max.max(1),
            per_client: per_client.max(1),
        }
    }

    /// Registers a connection from `ip`, closing a waiting one if a cap is reached; `None` if
    /// no connection can give way.
    pub(crate) fn admit(&self, ip: IpAddr) -> Option<Arc<Conn>> {
        let mut table = lock(&self.table);
        let from_ip = table.per_client.get(&ip).copied().unwrap_or(0);
        let victim = if from_ip >= self.per_client {
            Some(
                table
                    .conns
                    .values()
                    .filter(|c| c.ip == ip && c.idle())
                    .min_by_key(|c| *lock(&c.idle_since))
                    .map(|c| c.id)?,
            )
        } else if table.conns.len() >= self.max {
            let per_client = &table.per_client;
            Some(
                table
                    .conns
                    .values()
                    .filter(|c| c.idle())
                    .max_by_key(|c| {
                        (
                            per_client.get(&c.ip).copied().unwrap_or(0),
                            std::cmp::Reverse(*lock(&c.idle_since)),
                        )
                    })
                    .map(|c| c.id)?,
            )
        } else {
            None
        };
        if let Some(victim) = victim
            && let Some(conn) = table.remove(victim)
        {
            tracing::debug!(client = %conn.ip, "connection limit: closing a waiting connection");
            conn.evicted.notify_one();
        }
        table.next += 1;
        let conn = Arc::new(Conn {
            id: table.next,
            ip,
            in_flight: AtomicUsize::new(0),
            idle_since: Mutex::new(Instant::now()),
            evicted: Notify::new(),
        });
        table.conns.insert(conn.id, Arc::clone(&conn));
        *table.per_client.entry(ip).or_insert(0) += 1;
        Some(conn)
    }

    pub(crate) fn remove(&self, id: u64) {
        lock(&self.table).remove(id);
    }

    pub(crate) fn len(&self) -> usize {
        lock(&self.table).conns.len()
    }
}

/// Request bodies being received, at most `per_client` from one client and `max` in all.
///
/// A body is read only after its request has been admitted here; beyond a client's cap its new
/// request is answered 503 `relay-busy` at once, without reading the body. When all `max` are
/// taken, a client holding fewer reads than the one holding the most takes the place of that
/// client's oldest read (which is answered 503 as well), so a few addresses sending slow bodies
/// cannot keep anyone else's body from being read, and the connections whose request was
/// answered become waiting connections that give way to new ones.
pub(crate) struct BodyReads {
    table: Mutex<Reads>,
    max: usize,
    per_client: usize,
}

#[derive(Default)]
struct Reads {
    by_id: HashMap<u64, (IpAddr, Instant, Arc<Notify>)>,
    per_client: HashMap<IpAddr, usize>,
    next: u64,
}

impl Reads {
    fn remove(&mut self, id: u64) -> Option<Arc<Notify>> {
        let (ip, _, cancel) = self.by_id.remove(&id)?;
        if let Some(n) = self.per_client.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                self.per_client.remove(&ip);
            }
        }
        Some(cancel)
    }
}

/// A body read in progress; dropping it frees its place. `cancelled` completes when the place
/// was given to another client's read.
pub(crate) struct BodyRead<'a> {
    reads: &'a BodyReads,
    id: u64,
    pub(crate) cancelled: Arc<Notify>,
}

impl Drop for BodyRead<'_> {
    fn drop(&mut self) {
        lock(&self.reads.table).remove(self.id);
    }
}

impl BodyReads {
    pub(crate) fn new(max: usize, per_client: usize) -> Self {
        Self {
            table: Mutex::new(Reads::default()),
            max: max.max(1),
            per_client: per_client.max(1),
        }
    }

    /// A place to read one body from `ip`, or 503 if its client is at its cap, or the total is
    /// reached and no client holds more than this one would.
    pub(crate) fn begin(&self, ip: IpAddr) -> Result<BodyRead<'_>, ApiError> {
        let mut t = lock(&self.table);
        let mine = t.per_client.get(&ip).copied().unwrap_or(0);
        if mine >= self.per_client {
            return Err(ApiError::bodies_busy("from this client"));
        }
        if t.by_id.len() >= self.max {
            // The client holding the most, if it holds more than this one will.
            let (top, most) = t
                .per_client
                .iter()
                .max_by_key(|(_, n)| **n)
                .map_or((ip, 0), |(ip, n)| (*ip, *n));
            if most <= mine + 1 {
                return Err(ApiError::bodies_busy("from all clients together"));
            }
            let oldest = t
                .by_id
                .iter()
                .filter(|(_, (owner, ..))| *owner == top)
                .min_by_key(|(_, (_, at, _))| *at)
                .map(|(id, _)| *id);
            if let Some(cancel) = oldest.and_then(|id| t.remove(id)) {
                tracing::debug!(client = %top, "body reads full: cancelling the oldest read of the client holding the most");
                cancel.notify_one();
            }
        }
        t.next += 1;
        let id = t.next;
        let cancelled = Arc::new(Notify::new());
        t.by_id
            .insert(id, (ip, Instant::now(), Arc::clone(&cancelled)));
        *t.per_client.entry(ip).or_insert(0) += 1;
        Ok(BodyRead {
            reads: self,
            id,
            cancelled,
        })
    }
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(burst: f64) -> Self {
        Self {
            tokens: burst,
            at: Instant::now(),
        }
    }

    fn refill(&mut self, rate: f64, burst: f64, now: Instant) -> f64 {
        let earned = now.saturating_duration_since(self.at).as_secs_f64() * rate;
        self.tokens = (self.tokens + earned).min(burst);
        self.at = now;
        self.tokens
    }
}

/// A token bucket per client and one for everyone: `rate` requests per second in all, bursts
/// of `burst`, shared fairly between the clients asking.
///
/// Each client's own bucket refills at its fair share of the total, `rate / n` where `n` counts
/// the clients that asked in the last [`ACTIVE`] (capped at `client_rate`), and holds at most
/// `burst / n` (capped at `client_burst`, at least one). So however many addresses an attacker
/// uses, together they get at most their share: with `a` attacker addresses and one honest
/// client, the attackers get `a / (a + 1)` of the rate and the rest stays in the shared bucket
/// for the honest client. The last [`RESERVE`] tokens of the shared bucket go only to clients
/// whose own bucket is at least half full, that is to clients asking less than their share, so
/// clients asking in a tight loop cannot take every token the moment it appears.
pub(crate) struct Ration {
    rate: f64,
    burst: f64,
    client_rate: f64,
    client_burst: f64,
    total: Mutex<Bucket>,
    clients: Mutex<HashMap<IpAddr, Asker>>,
}

struct Asker {
    bucket: Bucket,
    asked: Instant,
}

/// What the relay's one ration covers, for its 429 message: every request that makes the
/// enclave produce an attestation document or issue a forward challenge, by any route.
pub(crate) const RATIONED: &str = "attestations and forward challenges";

/// Clients remembered by a [`Ration`]; beyond it the ones that have not asked for [`ACTIVE`]
/// are forgotten.
const RATION_CLIENTS: usize = 4096;
/// A client that asked this recently counts towards the fair share.
pub(crate) const ACTIVE: std::time::Duration = std::time::Duration::from_secs(2);
/// Tokens of the shared bucket kept for clients asking less than their share.
const RESERVE: f64 = 2.0;

impl Ration {
    pub(crate) fn new(rate: f64, burst: f64, client_rate: f64, client_burst: f64) -> Self {
        Self {
            rate,
            burst,
            client_rate,
            client_burst,
            total: Mutex::new(Bucket::full(burst)),
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token from `ip`'s bucket and the shared one, or refuses with 429 and takes
    /// none. `what` names the work rationed, for the message.
    pub(crate) fn take(&self, ip: IpAddr, what: &str) -> Result<(), ApiError> {
        let now = Instant::now();
        let mut clients = lock(&self.clients);
        let recent = |a: &Asker| now.saturating_duration_since(a.asked) < ACTIVE;
        if clients.len() >= RATION_CLIENTS && !clients.contains_key(&ip) {
            clients.retain(|_, a| recent(a));
            // Still full of clients with recent requests: no room to track another one.
            if clients.len() >= RATION_CLIENTS {
                return Err(ApiError::rate_limited(what, "from all clients together"));
            }
        }
        let others = clients
            .iter()
            .filter(|(other, a)| **other != ip && recent(a))
            .count();
        // Bounded by RATION_CLIENTS, so the conversion is exact.
        #[allow(clippy::cast_precision_loss, reason = "at most 4,097 clients")]
        let asking = (others + 1) as f64;
        let share_rate = (self.rate / asking).min(self.client_rate);
        let share_burst = (self.burst / asking).min(self.client_burst).max(1.0);
        let mine = clients.entry(ip).or_insert_with(|| Asker {
            bucket: Bucket::full(share_burst),
            asked: now,
        });
        mine.asked = now;
        let own = mine.bucket.refill(share_rate, share_burst, now);
        if own < 1.0 {
            return Err(ApiError::rate_limited(what, "from this client"));
        }
        let reserved = if own >= share_burst / 2.0 {
            0.0
        } else {
            RESERVE
        };
        let mut total = lock(&self.total);
        if total.refill(self.rate, self.burst, now) < 1.0 + reserved {
            return Err(ApiError::rate_limited(what, "from all clients together"));
        }
        total.tokens -= 1.0;
        mine.bucket.tokens -= 1.0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, last))
    }

    #[test]
    fn a_waiting_connection_gives_way_and_a_busy_one_does_not() {
        let c = Connections::new(3, 2);
        let a1 = c.admit(ip(1)).unwrap();
        let a2 = c.admit(ip(1)).unwrap();
        let _busy = a1.begin();
        // ip(1) at its cap: its waiting connection (a2) gives way, not the busy one.
        let a3 = c.admit(ip(1)).unwrap();
        assert_eq!(c.len(), 2);
        assert!(!lock(&c.table).conns.contains_key(&a2.id));
        let _busy3 = a3.begin();
        // Both of ip(1)'s connections busy: a third is refused.
        assert!(c.admit(ip(1)).is_none());
        // Another client still gets in, up to the total.
        let b1 = c.admit(ip(2)).unwrap();
        assert_eq!(c.len(), 3);
        // At the total with everything busy but b1: b1 gives way (the only waiting one).
        let b2 = c.admit(ip(3)).unwrap();
        assert!(!lock(&c.table).conns.contains_key(&b1.id));
        let _busy_b2 = b2.begin();
        assert!(c.admit(ip(4)).is_none());
    }

    #[test]
    fn an_ipv6_client_is_its_slash_64() {
        let a: IpAddr = "2001:db8:1:2:3:4:5:6".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::1".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(client_of(a), client_of(b));
        assert_ne!(client_of(a), client_of(other));
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(client_of(mapped), ip(1));
        assert_eq!(client_of(ip(1)), ip(1));
    }

    #[test]
    fn the_ration_refuses_past_the_burst_per_client_and_in_total() {
        let r = Ration::new(0.001, 3.0, 0.001, 2.0);
        assert!(r.take(ip(1), "x").is_ok());
        assert!(r.take(ip(1), "x").is_ok());
        assert_eq!(r.take(ip(1), "x").unwrap_err().code, "rate-limited");
        assert!(r.take(ip(2), "x").is_ok());
        // The shared bucket (3) is empty now, whoever asks.
        assert_eq!(r.take(ip(3), "x").unwrap_err().code, "rate-limited");
    }

    #[test]
    fn the_last_tokens_go_to_a_client_asking_less_than_its_share() {
        let r = Ration::new(0.001, 4.0, 0.001, 4.0);
        // Alone, ip(1) drains its own bucket down to 1 and the shared one down to 1...
        for _ in 0..3 {
            assert!(r.take(ip(1), "x").is_ok());
        }
        // ...and is then below half its own burst: the shared bucket's last tokens are not its.
        assert_eq!(r.take(ip(1), "x").unwrap_err().code, "rate-limited");
        // A client that has not asked yet gets the last one.
        assert!(r.take(ip(2), "x").is_ok());
    }

    #[test]
    fn body_reads_give_way_to_a_client_holding_fewer() {
        let reads = BodyReads::new(4, 3);
        let mut held: Vec<_> = (0..3).map(|_| reads.begin(ip(1)).unwrap()).collect();
        // ip(1) at its own cap.
        assert_eq!(reads.begin(ip(1)).err().unwrap().code, "relay-busy");
        held.push(reads.begin(ip(2)).unwrap());
        // At the total: ip(3) takes the place of ip(1)'s oldest read, then ip(4) another.
        held.push(reads.begin(ip(3)).unwrap());
        held.push(reads.begin(ip(4)).unwrap());
        assert_eq!(lock(&reads.table).per_client.get(&ip(1)), Some(&1));
        assert_eq!(lock(&reads.table).by_id.len(), 4);
        // Every client holds one: nobody gives way to a fifth.
        assert_eq!(reads.begin(ip(5)).err().unwrap().code, "relay-busy");
        drop(held);
        assert!(lock(&reads.table).by_id.is_empty());
        assert!(lock(&reads.table).per_client.is_empty());
    }
}
