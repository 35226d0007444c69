//! The request body extractor: bounded in size and in time, failing with JSON errors.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};

use crate::AppState;
use crate::error::ApiError;
use crate::limits::ClientIp;

/// A complete request body of at most `max_body` bytes, received within `body_timeout`, while
/// holding one of the relay's places for body reads (`crate::limits::BodyReads`): a request
/// beyond its client's share is answered 503 `relay-busy` without its body being read.
pub(crate) struct Body(pub(crate) Bytes);

impl FromRequest<Arc<AppState>> for Body {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &Arc<AppState>) -> Result<Self, ApiError> {
        let max = state.config.max_body;
        // An honest Content-Length above the limit is refused before reading a byte.
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|len| len > max as u64) {
            return Err(ApiError::payload_too_large(max));
        }
        let ip = req
            .extensions()
            .get::<ClientIp>()
            .map_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), |c| {
                c.0
            });
        let place = state.body_reads.begin(ip)?;
        // Chunked bodies and lying lengths are cut off by DefaultBodyLimit while buffering.
        let read = tokio::time::timeout(state.config.body_timeout, Bytes::from_request(req, state));
        let read = tokio::select! {
            read = read => read,
            () = place.cancelled.notified() => {
                return Err(ApiError::bodies_busy("from all clients together"));
            }
        };
        drop(place);
        match read {
            Ok(Ok(bytes)) => Ok(Body(bytes)),
            Ok(Err(rejection)) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Err(ApiError::payload_too_large(max))
            }
            Ok(Err(rejection)) => Err(ApiError::bad_request(rejection.body_text())),
            Err(_) => Err(ApiError::body_timeout(state.config.body_timeout)),
        }
    }
}
