//! The one connection to the enclave, owned by a dedicated thread.
//!
//! The enclave handles one request at a time per connection and its protocol has no request
//! ids, so HTTP requests are queued onto this thread and run in order. Waiting happens on the
//! async side (a bounded queue and a oneshot reply), so a thousand waiting clients cost no
//! threads, and a caller that gave up before its turn is skipped rather than sent: a request the
//! client no longer waits for should not change the enclave's state behind its back.
//!
//! Status requests (`/v1/status`, `/v1/health`) take a lane of their own that the thread serves
//! first, and every status request that arrives while one is still waiting for its turn shares
//! that one's answer. So a status answer waits for at most the enclave call in progress, never
//! for a queue of attestations, and a thousand concurrent status requests cost one round trip.
//! Every answer is still fresh: it comes from a call that started after the request arrived.

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::{oneshot, watch};

use tessera_core::protocol::{Client, Request, Response, Status};
use tessera_core::transport::Address;

use crate::error::ApiError;

type Job = Box<dyn FnOnce(&mut Client) + Send>;

/// Queued status calls at most (each serves any number of callers).
const STATUS_LANE: usize = 4;

struct Lanes {
    /// Served first: status calls.
    first: VecDeque<Job>,
    /// Everything else, in arrival order.
    rest: VecDeque<Job>,
}

struct Queue {
    lanes: Mutex<Lanes>,
    ready: Condvar,
    capacity: usize,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, Lanes> {
        self.lanes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn push(&self, job: Job, first: bool) -> Result<(), ApiError> {
        let mut lanes = self.lock();
        let (lane, capacity) = if first {
            (&mut lanes.first, STATUS_LANE)
        } else {
            (&mut lanes.rest, self.capacity)
        };
        if lane.len() >= capacity {
            return Err(ApiError::busy());
        }
        lane.push_back(job);
        drop(lanes);
        self.ready.notify_one();
        Ok(())
    }
}

type StatusResult = Result<Status, ApiError>;

/// A status call not yet started, which new status requests join.
type Flight = Mutex<Option<watch::Receiver<Option<StatusResult>>>>;

/// A handle to the enclave thread; cheap to clone.
#[derive(Clone)]
pub(crate) struct Enclave {
    queue: Arc<Queue>,
    flight: Arc<Flight>,
}

impl Enclave {
    /// Starts the thread. It connects lazily (on the first request) and reconnects after any
    /// failure, so the enclave may start after the relay and may restart under it. It stops once
    /// every handle is dropped.
    pub(crate) fn start(addr: Address, io_timeout: Duration, queue: usize) -> Self {
        let queue = Arc::new(Queue {
            lanes: Mutex::new(Lanes {
                first: VecDeque::new(),
                rest: VecDeque::new(),
            }),
            ready: Condvar::new(),
            capacity: queue.max(1),
        });
        let thread_queue = Arc::clone(&queue);
        std::thread::Builder::new()
            .name("tessera-relay-enclave".to_owned())
            .spawn(move || {
                let mut client = Client::new(addr, io_timeout);
                while let Some(job) = next_job(&thread_queue) {
                    // A panic in one job must not take the only enclave connection down with it.
                    if catch_unwind(AssertUnwindSafe(|| job(&mut client))).is_err() {
                        tracing::error!("an enclave call panicked; reconnecting");
                        client = Client::new(client.address().clone(), io_timeout);
                    }
                }
            })
            .expect("spawning the enclave thread");
        Self {
            queue,
            flight: Arc::new(Mutex::new(None)),
        }
    }

    /// Runs `f` on the enclave connection, waiting at most `wait` for the queue and the call.
    pub(crate) async fn run<T, F>(&self, wait: Duration, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Client) -> T + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |client| {
            if tx.is_closed() {
                return;
            }
            let _ = tx.send(f(client));
        });
        self.queue.push(job, false)?;
        match tokio::time::timeout(wait, rx).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(_)) => Err(ApiError::relay_internal("enclave call was abandoned")),
            Err(_) => Err(ApiError::enclave_timeout(wait)),
        }
    }

    /// The enclave's status, from a status call that starts after this request arrived.
    pub(crate) async fn status(&self, wait: Duration) -> StatusResult {
        let rx = {
            let mut pending = self.flight.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(rx) = pending.as_ref() {
                rx.clone()
            } else {
                let (tx, rx) = watch::channel(None);
                let flight = Arc::clone(&self.flight);
                let job: Job = Box::new(move |client| {
                    // Started: a status request from now on needs a call of its own.
                    flight.lock().unwrap_or_else(PoisonError::into_inner).take();
                    let _ = tx.send(Some(call_status(client)));
                });
                self.queue.push(job, true)?;
                *pending = Some(rx.clone());
                rx
            }
        };
        let mut rx = rx;
        match tokio::time::timeout(wait, rx.wait_for(Option::is_some)).await {
            Ok(Ok(answer)) => answer.clone().expect("waited for an answer"),
            Ok(Err(_)) => Err(ApiError::relay_internal("enclave call was abandoned")),
            Err(_) => Err(ApiError::enclave_timeout(wait)),
        }
    }
}

fn call_status(client: &mut Client) -> StatusResult {
    match client.call(&Request::Status)? {
        Response::Status(s) => Ok(s),
        Response::Error { code, message } => Err(ApiError::from_enclave(code, message)),
        _ => Err(ApiError::bad_enclave_response(
            "the enclave answered status with another response",
        )),
    }
}

/// The next job, status lane first; `None` once no handle is left.
fn next_job(queue: &Arc<Queue>) -> Option<Job> {
    let mut lanes = queue.lock();
    loop {
        if let Some(job) = lanes.first.pop_front().or_else(|| lanes.rest.pop_front()) {
            return Some(job);
        }
        // Only this thread's reference left: the router is gone.
        if Arc::strong_count(queue) == 1 {
            return None;
        }
        lanes = queue
            .ready
            .wait_timeout(lanes, Duration::from_secs(1))
            .unwrap_or_else(PoisonError::into_inner)
            .0;
    }
}
