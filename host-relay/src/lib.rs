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

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::middleware::Next;
use axum::routing::{get, post};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;

use tessera_core::protocol::MAX_FRAME;
use tessera_core::transport::Address;

mod body;
mod bridge;
pub mod egress;
mod enclave;
mod error;
mod forward;
mod limits;
mod routes;

pub use bridge::{BridgeConfig, serve_bridge};
pub use error::ApiError;

/// Largest request body: one enclave frame, which also bounds every bundle.
pub const MAX_BODY: usize = MAX_FRAME;
/// Most HTTP connections open at once. Beyond it a new connection replaces a waiting one (see
/// [`serve`]).
pub const MAX_CONNECTIONS: usize = 1024;
/// Most HTTP connections open at once from one client address.
pub const MAX_CONNECTIONS_PER_CLIENT: usize = 256;
/// Request bundles (each one an attestation) per second from all clients together, and the
/// burst allowed above that rate.
pub const ATTESTATIONS_PER_SECOND: f64 = 20.0;
pub const ATTESTATION_BURST: f64 = 40.0;
/// Request bundles per second from one client address, and its burst.
pub const CLIENT_ATTESTATIONS_PER_SECOND: f64 = 4.0;
pub const CLIENT_ATTESTATION_BURST: f64 = 8.0;
/// Request bodies being received at once, in all and from one client address (503 beyond).
pub const MAX_BODY_READS: usize = 256;
pub const MAX_BODY_READS_PER_CLIENT: usize = 128;
/// Default time given to requests in progress when the relay is told to stop.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
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
    /// The ration of attestations and forward challenges.
    pub(crate) attestations: limits::Ration,
    /// Places for request bodies being received.
    pub(crate) body_reads: limits::BodyReads,
}

/// The relay's HTTP API. Starts the thread that owns the enclave connection; it stops when the
/// router and all its clones are dropped. The enclave is connected on first use, so it may come
/// up after the relay.
pub fn app(config: Config) -> Router {
    let enclave =
        enclave::Enclave::start(config.enclave.clone(), config.enclave_timeout, config.queue);
    let max_body = config.max_body;
    let attestations = limits::Ration::new(
        ATTESTATIONS_PER_SECOND,
        ATTESTATION_BURST,
        CLIENT_ATTESTATIONS_PER_SECOND,
        CLIENT_ATTESTATION_BURST,
    );
    let state = Arc::new(AppState {
        config,
        enclave,
        attestations,
        body_reads: limits::BodyReads::new(MAX_BODY_READS, MAX_BODY_READS_PER_CLIENT),
    });
    Router::new()
        .route("/v1/health", get(routes::health))
        .route("/v1/status", get(routes::status))
        .route("/v1/genesis", post(routes::genesis))
        .route("/v1/boot", post(routes::boot))
        .route("/v1/attestation", get(routes::attestation))
        .route("/v1/request-bundle", get(routes::request_bundle))
        .route("/v1/share-bundle", post(routes::share_bundle))
        .route("/v1/patch", post(routes::patch))
        .route("/v1/reshard", post(routes::reshard))
        .route("/v1/app", post(routes::app))
        .route("/v1/raw", post(routes::raw))
        .route("/v1/join", post(forward::join))
        .route("/v1/forward/challenge", post(forward::challenge))
        .route("/v1/forward/request", get(forward::request))
        .route("/v1/forward/export", post(forward::export))
        .route("/v1/forward/import", post(forward::import))
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
pub async fn serve(listener: TcpListener, app: Router) {
    serve_until(listener, app, std::future::pending(), Duration::ZERO).await;
}

/// Serves `app` on `listener` over HTTP/1.1 until `stop` completes, then drains: the listener
/// is closed (new connections are refused), idle connections are closed, and requests in
/// progress get up to `drain` to finish and be answered before this returns.
///
/// Unlike `axum::serve`, it bounds the time to send headers ([`HEADER_TIMEOUT`]) and the number
/// of open connections, in all ([`MAX_CONNECTIONS`]) and per client address
/// ([`MAX_CONNECTIONS_PER_CLIENT`]). At either cap a new connection replaces a *waiting* one (no
/// request in progress: idle, or still sending headers), the longest-waiting of the client at
/// its cap or of the client holding the most; it is refused only if all of those are busy. It
/// also disables Nagle's algorithm so small responses on keep-alive connections leave at once.
pub async fn serve_until(
    listener: TcpListener,
    app: Router,
    stop: impl Future<Output = ()>,
    drain: Duration,
) {
    let conns = Arc::new(limits::Connections::new(
        MAX_CONNECTIONS,
        MAX_CONNECTIONS_PER_CLIENT,
    ));
    let (stopping_tx, stopping_rx) = watch::channel(false);
    tokio::pin!(stop);
    loop {
        let accepted = tokio::select! {
            () = &mut stop => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            // Out of file descriptors, or a connection reset before accept: wait, keep serving.
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let client = limits::client_of(peer.ip());
        let Some(conn) = conns.admit(client) else {
            tracing::debug!(%client, "refusing a connection: every candidate is busy");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let service = PerConnection {
            router: app.clone(),
            conn: Arc::clone(&conn),
        };
        let mut stopping = stopping_rx.clone();
        let conns = Arc::clone(&conns);
        tokio::spawn(async move {
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            // A client that disconnects or times out ends only its own connection.
            tokio::select! {
                _ = connection.as_mut() => {}
                () = conn.evicted.notified() => {}
                () = async { drop(stopping.wait_for(|s| *s).await) } => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.as_mut().await;
                }
            }
            conns.remove(conn.id);
        });
    }
    drop(listener);
    let open = conns.len();
    tracing::info!(
        open,
        drain_s = drain.as_secs_f64(),
        "stopping: no new connections; finishing requests in progress"
    );
    let _ = stopping_tx.send(true);
    let until = Instant::now() + drain;
    while conns.len() > 0 && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let left = conns.len();
    if left > 0 {
        tracing::warn!(
            left,
            "drain deadline reached; closing the remaining connections"
        );
    } else {
        tracing::info!("drained");
    }
}

/// The router for one connection: it tags each request with the client's address and counts
/// it as in progress while it is handled.
#[derive(Clone)]
struct PerConnection {
    router: Router,
    conn: Arc<limits::Conn>,
}

impl hyper::service::Service<hyper::Request<Incoming>> for PerConnection {
    type Response = axum::response::Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, mut request: hyper::Request<Incoming>) -> Self::Future {
        request
            .extensions_mut()
            .insert(limits::ClientIp(self.conn.ip));
        let in_flight = self.conn.begin();
        let mut router = self.router.clone();
        Box::pin(async move {
            let response = tower_service::Service::call(&mut router, request).await;
            drop(in_flight);
            response
        })
    }
}
