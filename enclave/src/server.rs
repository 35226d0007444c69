//! The enclave's listener: a small thread per connection that only moves frames, and one handler
//! thread that owns the state machine and answers one request at a time.
//!
//! Limits, each stated in `docs/protocol.md`:
//!
//! - A frame must arrive whole within [`FRAME_TIMEOUT`] of its first byte: one deadline per
//!   frame, not per read, so a sender dripping a byte at a time cannot keep it open longer. The
//!   answer is written under the same kind of deadline.
//! - A connection on which no frame starts for the idle timeout (`--idle-timeout`, by default
//!   [`tessera_core::protocol::IDLE_TIMEOUT`]) is closed.
//! - At most [`MAX_CONNECTIONS`] connections are open. When all are taken, a new connection
//!   closes one that gives way: first one whose answer has waited [`WRITE_STALL`] or more to be
//!   written (its peer does not read), then the one that has been waiting longest for a frame
//!   (idle, or still receiving one), if it has waited at least [`WRITE_STALL`]. Connections whose
//!   request is queued, being handled, or answered to a peer that reads, and connections that
//!   were answered or started a frame within [`WRITE_STALL`], are never closed for another (so a
//!   client that keeps its connection busy is never cut between two requests, when its next
//!   request may already be on the way). When none gives way, the new
//!   connection waits up to [`ADMIT_WAIT`] for one that does (at most [`MAX_WAITING`] wait at
//!   once; beyond them a new connection is closed at once). So idle, slow or non-reading
//!   connections cannot lock a restarted relay out: its connection always gets in.
//! - Connection threads have a [`CONNECTION_STACK`] stack (with `mlockall` every stack page is
//!   pinned), and a frame's buffer grows with the bytes received rather than with its declared
//!   length, up to [`MAX_FRAME`].
//!
//! SIGTERM or SIGINT stop the enclave after the request being handled (and any already queued)
//! is answered: the handler drops the state, which wipes its secrets, and the process exits 0.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tessera_core::bytes::Hash32;
use tessera_core::cbor;
use tessera_core::protocol::{
    ErrorCode, FrameError, MAX_FRAME, Request, Response, read_frame, write_frame,
};
use tessera_core::transport::{Listener, Stream};

use crate::state::Enclave;

/// Time allowed for a whole frame, from its first byte, in either direction.
pub const FRAME_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections open at once.
pub const MAX_CONNECTIONS: usize = 64;
/// Stack of a connection thread: it reads and writes frames and logs; the state machine runs on
/// the handler thread.
pub const CONNECTION_STACK: usize = 256 * 1024;
/// Stack of the handler thread (genesis, reconstruction, attestation).
const HANDLER_STACK: usize = 8 * 1024 * 1024;
/// After SIGTERM, time given to connections to write answers already computed.
const STOP_GRACE: Duration = Duration::from_secs(2);
/// A connection whose answer has not been written after this long (its peer reads nothing, so
/// the socket's buffer is full) gives way to a new connection. A peer that reads its answers
/// drains a response in microseconds; one that does not would otherwise hold its slot for the
/// whole write deadline, and 64 of them every slot.
pub const WRITE_STALL: Duration = Duration::from_millis(500);
/// Longest a new connection waits for a slot while no open connection can give way.
pub const ADMIT_WAIT: Duration = Duration::from_secs(5);
/// New connections waiting for a slot at once; beyond them a new connection is closed at once.
pub const MAX_WAITING: usize = 16;
/// How often a waiting connection looks for a slot.
const ADMIT_POLL: Duration = Duration::from_millis(5);

/// What a connection is doing, for choosing which one to close when all slots are taken.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Activity {
    /// Waiting for the first byte of a frame.
    Idle,
    /// Receiving a frame.
    Reading,
    /// Its request is queued or being handled.
    Busy,
    /// Its answer is being written (`since` is when writing began).
    Writing,
}

struct Slot {
    stream: Stream,
    activity: Activity,
    since: Instant,
}

/// The open connections, by id, and how many new ones wait for a slot.
#[derive(Default)]
struct Slots {
    open: Mutex<HashMap<u64, Slot>>,
    waiting: std::sync::atomic::AtomicUsize,
}

impl Slots {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Slot>> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers a new connection, closing one that gives way if every slot is taken: one that
    /// has been writing an answer, idle or receiving a frame for at least [`WRITE_STALL`], a
    /// stalled writer first, then the longest-waiting. False if none can give way now (or the
    /// connection's descriptor cannot be duplicated).
    fn admit(&self, id: u64, stream: &Stream) -> bool {
        let mut slots = self.lock();
        if slots.len() >= MAX_CONNECTIONS {
            let now = Instant::now();
            let victim = slots
                .iter()
                .filter_map(|(id, s)| {
                    // Nothing gives way within `WRITE_STALL` of its last step: a client that
                    // just wrote its request may not have been read yet, and one that just got
                    // its answer is about to send the next.
                    if now.saturating_duration_since(s.since) < WRITE_STALL {
                        return None;
                    }
                    let rank = match s.activity {
                        Activity::Writing => 0,
                        Activity::Idle | Activity::Reading => 1,
                        Activity::Busy => return None,
                    };
                    Some((rank, s.since, *id, s.activity))
                })
                .min_by_key(|(rank, since, ..)| (*rank, *since))
                .map(|(_, _, id, activity)| (id, activity));
            let Some((victim, activity)) = victim else {
                return false;
            };
            if let Some(slot) = slots.remove(&victim) {
                let _ = slot.stream.shutdown();
            }
            tracing::info!(
                connection = victim,
                was = match activity {
                    Activity::Idle => "idle",
                    Activity::Reading => "receiving a frame",
                    Activity::Writing | Activity::Busy => "not reading its answers",
                },
                "all {MAX_CONNECTIONS} connections taken: closing one that gives way"
            );
        }
        let Ok(handle) = stream.try_clone() else {
            tracing::warn!("refusing a connection: cannot duplicate its descriptor");
            return false;
        };
        slots.insert(
            id,
            Slot {
                stream: handle,
                activity: Activity::Idle,
                since: Instant::now(),
            },
        );
        true
    }

    /// Takes a place among the connections waiting for a slot; false if [`MAX_WAITING`] wait.
    fn start_waiting(&self) -> bool {
        self.waiting
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < MAX_WAITING).then_some(n + 1)
            })
            .is_ok()
    }

    /// Waits up to [`ADMIT_WAIT`] for a slot; gives up its place among the waiting either way.
    fn wait_for_slot(&self, id: u64, stream: &Stream) -> bool {
        let until = Instant::now() + ADMIT_WAIT;
        let admitted = loop {
            if self.admit(id, stream) {
                break true;
            }
            if Instant::now() >= until {
                break false;
            }
            std::thread::sleep(ADMIT_POLL);
        };
        self.waiting.fetch_sub(1, Ordering::AcqRel);
        admitted
    }

    /// Records what the connection does now; false if it was closed to make room.
    fn set(&self, id: u64, activity: Activity) -> bool {
        match self.lock().get_mut(&id) {
            Some(slot) => {
                slot.activity = activity;
                slot.since = Instant::now();
                true
            }
            None => false,
        }
    }

    fn remove(&self, id: u64) {
        self.lock().remove(&id);
    }

    fn busy(&self) -> usize {
        self.lock()
            .values()
            .filter(|s| matches!(s.activity, Activity::Busy | Activity::Writing))
            .count()
    }
}

enum Job {
    /// A request frame and where to send the answer's bytes.
    Request {
        connection: u64,
        body: Vec<u8>,
        reply: SyncSender<Vec<u8>>,
    },
    /// Drop the state and acknowledge.
    Stop(SyncSender<()>),
}

pub fn serve(listener: &Listener, enclave: Enclave, idle: Duration) -> std::io::Result<()> {
    let (jobs, rx) = mpsc::channel::<Job>();
    let slots = Arc::new(Slots::default());
    // First: it blocks the stop signals, which every thread started afterwards inherits.
    spawn_stopper(jobs.clone(), Arc::clone(&slots))?;
    std::thread::Builder::new()
        .name("handler".to_owned())
        .stack_size(HANDLER_STACK)
        .spawn(move || handler(enclave, &rx))?;
    let mut next_id: u64 = 1;
    loop {
        let stream = match listener.accept() {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                // Out of descriptors: give the other connections a moment to close.
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
        };
        let id = next_id;
        next_id += 1;
        // Admitted now, or allowed to wait for a slot on its own thread.
        let admitted = slots.admit(id, &stream);
        if !admitted && !slots.start_waiting() {
            tracing::warn!(
                "refusing a connection: {MAX_CONNECTIONS} requests in progress and {MAX_WAITING} connections waiting"
            );
            continue;
        }
        let slots_for_thread = Arc::clone(&slots);
        let jobs = jobs.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("connection-{id}"))
            .stack_size(CONNECTION_STACK)
            .spawn(move || {
                if !admitted && !slots_for_thread.wait_for_slot(id, &stream) {
                    tracing::warn!(
                        connection = id,
                        "closing a connection: no slot freed within {} s",
                        ADMIT_WAIT.as_secs()
                    );
                    return;
                }
                tracing::debug!(connection = id, "connection opened");
                connection(stream, &slots_for_thread, &jobs, id, idle);
                slots_for_thread.remove(id);
                tracing::debug!(connection = id, "connection closed");
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "refusing a connection: cannot start its thread");
            if admitted {
                slots.remove(id);
            } else {
                slots.waiting.fetch_sub(1, Ordering::AcqRel);
            }
        }
    }
}

/// Waits for SIGTERM or SIGINT, then stops the handler (after the requests queued before it)
/// and exits once computed answers are written.
fn spawn_stopper(jobs: Sender<Job>, slots: Arc<Slots>) -> std::io::Result<()> {
    use nix::sys::signal::{SigSet, Signal};
    let mut set = SigSet::empty();
    set.add(Signal::SIGTERM);
    set.add(Signal::SIGINT);
    // Blocked on the calling thread before it starts any other, so only `wait` receives them.
    set.thread_block().map_err(io::Error::from)?;
    std::thread::Builder::new()
        .name("signals".to_owned())
        .stack_size(CONNECTION_STACK)
        .spawn(move || {
            let signal = set.wait().map_or("signal", |s| s.as_str());
            tracing::info!(signal, "stopping: answering the requests in progress first");
            let (ack, done) = mpsc::sync_channel(1);
            if jobs.send(Job::Stop(ack)).is_ok() {
                let _ = done.recv();
            }
            let until = Instant::now() + STOP_GRACE;
            while slots.busy() > 0 && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(10));
            }
            tracing::info!("stopped; state dropped");
            std::process::exit(0);
        })?;
    Ok(())
}

fn handler(enclave: Enclave, jobs: &Receiver<Job>) {
    let mut enclave = Some(enclave);
    while let Ok(job) = jobs.recv() {
        match job {
            Job::Request {
                connection,
                body,
                reply,
            } => {
                let Some(state) = enclave.as_mut() else {
                    // Stopping: the connection closes without an answer.
                    continue;
                };
                let answer = handle(state, connection, &body);
                let _ = reply.send(answer);
            }
            Job::Stop(ack) => {
                // Dropping the state wipes the quorum key, shares and ephemeral key.
                drop(enclave.take());
                let _ = ack.send(());
            }
        }
    }
}

fn handle(enclave: &mut Enclave, id: u64, body: &[u8]) -> Vec<u8> {
    let started = Instant::now();
    let response = match Request::decode(body) {
        Ok(request) => {
            let name = request.name();
            let response = enclave.handle(&request);
            log(id, name, &response, enclave.phase().as_str());
            response
        }
        Err(e) => {
            tracing::info!(connection = id, error = %e, "undecodable request refused");
            Response::error(ErrorCode::BadRequest, e.to_string())
        }
    };
    let answer = cbor::encode(&response);
    tracing::trace!(
        connection = id,
        request_bytes = body.len(),
        request_sha256 = %Hash32::sha256(body),
        response_bytes = answer.len(),
        response_sha256 = %Hash32::sha256(&answer),
        micros = tessera_core::logging::micros_since(started),
        "frame"
    );
    answer
}

fn connection(mut stream: Stream, slots: &Slots, jobs: &Sender<Job>, id: u64, idle: Duration) {
    loop {
        if !slots.set(id, Activity::Idle) {
            return;
        }
        let body = match next_frame(&mut stream, slots, id, idle) {
            Ok(b) => b,
            Err(FrameError::Closed) => return,
            Err(e @ FrameError::TooLarge { .. }) => {
                // The stream cannot be resynchronised after an oversize header: answer and close.
                tracing::info!(connection = id, error = %e, "oversize frame refused");
                let answer = cbor::encode(&Response::error(ErrorCode::BadRequest, e.to_string()));
                let _ = reply(&mut stream, &answer);
                return;
            }
            Err(e) => {
                tracing::info!(connection = id, error = %e, "dropping a connection");
                return;
            }
        };
        // Closed to make room while the last bytes arrived: the request is not handled.
        if !slots.set(id, Activity::Busy) {
            return;
        }
        let (tx, rx) = mpsc::sync_channel(1);
        let job = Job::Request {
            connection: id,
            body,
            reply: tx,
        };
        if jobs.send(job).is_err() {
            return;
        }
        let Ok(answer) = rx.recv() else {
            return;
        };
        // From here the connection gives way if its peer leaves the answer unread.
        if !slots.set(id, Activity::Writing) {
            return;
        }
        if reply(&mut stream, &answer).is_err() {
            return;
        }
    }
}

/// Waits up to `idle` for the first byte of a frame, then gives the whole frame
/// [`FRAME_TIMEOUT`].
fn next_frame(
    stream: &mut Stream,
    slots: &Slots,
    id: u64,
    idle: Duration,
) -> Result<Vec<u8>, FrameError> {
    stream.set_read_timeout(Some(idle))?;
    let mut first = [0u8; 1];
    match stream.read(&mut first) {
        Ok(0) => return Err(FrameError::Closed),
        Ok(_) => {}
        Err(e) if is_timeout(&e) => {
            tracing::debug!(connection = id, "closing an idle connection");
            return Err(FrameError::Closed);
        }
        Err(e) => return Err(e.into()),
    }
    if !slots.set(id, Activity::Reading) {
        return Err(FrameError::Closed);
    }
    let mut timed = Deadline::new(stream);
    read_frame(&mut first.as_slice().chain(&mut timed), MAX_FRAME)
}

fn reply(stream: &mut Stream, answer: &[u8]) -> Result<(), FrameError> {
    let mut timed = Deadline::new(stream);
    write_frame(&mut timed, answer)
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
    )
}

/// A stream whose reads and writes together must finish within [`FRAME_TIMEOUT`] of its
/// creation: each call gets only the time that is left.
struct Deadline<'a> {
    stream: &'a mut Stream,
    until: Instant,
}

impl<'a> Deadline<'a> {
    fn new(stream: &'a mut Stream) -> Self {
        Self {
            stream,
            until: Instant::now() + FRAME_TIMEOUT,
        }
    }

    fn left(&self) -> io::Result<Duration> {
        let left = self.until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("frame not completed within {} s", FRAME_TIMEOUT.as_secs()),
            ));
        }
        Ok(left)
    }
}

impl Read for Deadline<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.left()?;
        self.stream.set_read_timeout(Some(left))?;
        self.stream.read(buf)
    }
}

impl Write for Deadline<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let left = self.left()?;
        self.stream.set_write_timeout(Some(left))?;
        self.stream.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.stream.flush()
    }
}

/// One line per request: what was asked, how it ended, the phase after. Never a payload.
fn log(connection: u64, request: &str, response: &Response, phase: &str) {
    if let Response::Error { code, message } = response {
        tracing::info!(
            connection,
            request,
            refused = code.as_str(),
            reason = %message,
            phase,
            "request"
        );
    } else {
        tracing::info!(connection, request, outcome = "ok", phase, "request");
    }
}
