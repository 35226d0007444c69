//! The one connection to the enclave, owned by a dedicated thread.
//!
//! The enclave handles one request at a time per connection and its protocol has no request
//! ids, so HTTP requests are queued onto this thread and run in order. Waiting happens on the
//! async side (a bounded queue and a oneshot reply), so a thousand waiting clients cost no
//! threads, and a caller that gave up before its turn is skipped rather than sent: a request the
//! client no longer waits for should not change the enclave's state behind its back.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use tessera_core::protocol::Client;
use tessera_core::transport::Address;

use crate::error::ApiError;

type Job = Box<dyn FnOnce(&mut Client) + Send>;

/// A handle to the enclave thread; cheap to clone.
#[derive(Clone)]
pub(crate) struct Enclave {
    jobs: mpsc::Sender<Job>,
}

impl Enclave {
    /// Starts the thread. It connects lazily (on the first request) and reconnects after any
    /// failure, so the enclave may start after the relay and may restart under it.
    pub(crate) fn start(addr: Address, io_timeout: Duration, queue: usize) -> Self {
        let (jobs, mut rx) = mpsc::channel::<Job>(queue.max(1));
        std::thread::Builder::new()
            .name("tessera-relay-enclave".to_owned())
            .spawn(move || {
                let mut client = Client::new(addr, io_timeout);
                // Ends when the router (every sender) is dropped.
                while let Some(job) = rx.blocking_recv() {
                    // A panic in one job must not take the only enclave connection down with it.
                    if catch_unwind(AssertUnwindSafe(|| job(&mut client))).is_err() {
                        tracing::error!("an enclave call panicked; reconnecting");
                        client = Client::new(client.address().clone(), io_timeout);
                    }
                }
            })
            .expect("spawning the enclave thread");
        Self { jobs }
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
        self.jobs.try_send(job).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => ApiError::busy(),
            mpsc::error::TrySendError::Closed(_) => {
                ApiError::relay_internal("enclave thread stopped")
            }
        })?;
        match tokio::time::timeout(wait, rx).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(_)) => Err(ApiError::relay_internal("enclave call was abandoned")),
            Err(_) => Err(ApiError::enclave_timeout(wait)),
        }
    }
}
