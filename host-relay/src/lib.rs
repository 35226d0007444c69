//! `tessera-relay`: the HTTP face of a Tessera enclave on its parent instance.
//!
//! The relay turns HTTP requests into enclave protocol frames and enclave responses into HTTP.
//! It holds no state and no secrets and decides nothing: every check that matters happens in the
//! enclave (boot approvals, share receipts, commitments) or on a member's offline machine
//! (attestation). What it does add is what a network service needs: body limits, timeouts,
//! JSON errors with stable codes, and a single serialised connection to the enclave shared by
//! any number of HTTP clients. Because the enclave's attestation response carries the envelope
//! it booted, the relay can restart at any point of a ceremony without losing anything.
//!
//! The API is described in `docs/api.md` and `docs/openapi.yaml`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::middleware::Next;
use axum::routing::{get, post};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use tessera_core::protocol::MAX_FRAME;
use tessera_core::transport::Address;

mod body;
mod enclave;
mod error;
mod routes;

pub use error::ApiError;

/// Largest request body: one enclave frame, which also bounds every bundle.
pub const MAX_BODY: usize = MAX_FRAME;
/// Most HTTP connections open at once; more are refused at accept.
pub const MAX_CONNECTIONS: usize = 1024;
/// Time allowed for a request's headers, counted from when the connection is ready for the next
/// request; it also closes keep-alive connections left idle that long.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// How the relay reaches its enclave and how long it waits for whom.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// The enclave's listening address (`unix:PATH` or `vsock:CID:PORT`).
    pub enclave: Address,
    /// Largest request body accepted (413 above it).
    pub max_body: usize,
    /// Time allowed to receive a request body (408 after it). Each request has its own clock,
    /// so a slow client delays nobody else.
    pub body_timeout: Duration,
    /// Time allowed for one enclave round trip, including the wait for earlier requests in the
    /// queue (504 after it). Genesis and reconstruction are the slowest requests.
    pub enclave_timeout: Duration,
    /// Requests that may wait for the enclave at once (503 `relay-busy` beyond it).
    pub queue: usize,
}

impl Config {
    /// Defaults: 1 MiB bodies, 10 s to send a body, 30 s for the enclave, 1024 queued requests.
    #[must_use]
    pub fn new(enclave: Address) -> Self {
        Self {
            enclave,
            max_body: MAX_BODY,
            body_timeout: Duration::from_secs(10),
            enclave_timeout: Duration::from_secs(30),
            queue: 1024,
        }
    }

    #[must_use]
    pub fn body_timeout(mut self, d: Duration) -> Self {
        self.body_timeout = d;
        self
    }

    #[must_use]
    pub fn enclave_timeout(mut self, d: Duration) -> Self {
        self.enclave_timeout = d;
        self
    }

    #[must_use]
    pub fn max_body(mut self, bytes: usize) -> Self {
        self.max_body = bytes.min(MAX_BODY);
        self
    }
}

pub(crate) struct AppState {
    pub(crate) config: Config,
    pub(crate) enclave: enclave::Enclave,
}

/// The relay's HTTP API. Starts the thread that owns the enclave connection; it stops when the
/// router and all its clones are dropped. The enclave is connected on first use, so it may come
/// up after the relay.
pub fn app(config: Config) -> Router {
    let enclave =
        enclave::Enclave::start(config.enclave.clone(), config.enclave_timeout, config.queue);
    let max_body = config.max_body;
    let state = Arc::new(AppState { config, enclave });
    Router::new()
        .route("/v1/health", get(routes::health))
        .route("/v1/status", get(routes::status))
        .route("/v1/genesis", post(routes::genesis))
        .route("/v1/boot", post(routes::boot))
        .route("/v1/request-bundle", get(routes::request_bundle))
        .route("/v1/share-bundle", post(routes::share_bundle))
        .route("/v1/patch", post(routes::patch))
        .route("/v1/reshard", post(routes::reshard))
        .route("/v1/app", post(routes::app))
        .route("/v1/raw", post(routes::raw))
        .fallback(|| async { ApiError::not_found() })
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
        .layer(DefaultBodyLimit::max(max_body))
        .layer(axum::middleware::from_fn(access_log))
        .with_state(state)
}

/// At `debug`, one line per request: method, path, status and time taken.
async fn access_log(request: Request, next: Next) -> axum::response::Response {
    if !tracing::enabled!(tracing::Level::DEBUG) {
        return next.run(request).await;
    }
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    tracing::debug!(
        %method,
        path,
        status = response.status().as_u16(),
        micros = tessera_core::logging::micros_since(started),
        "request"
    );
    response
}

/// Serves `app` on `listener` over HTTP/1.1; runs until the task is dropped.
///
/// Unlike `axum::serve`, it bounds the time to send headers ([`HEADER_TIMEOUT`]) and the number
/// of open connections ([`MAX_CONNECTIONS`]), and disables Nagle's algorithm so small responses
/// on keep-alive connections leave at once.
pub async fn serve(listener: TcpListener, app: Router) {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            // Out of file descriptors, or a connection reset before accept: wait, keep serving.
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(app.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            // A client that disconnects or times out ends only its own connection.
            let _ = connection.await;
        });
    }
}
