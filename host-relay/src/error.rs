//! Every failure the relay reports, as `{"error": {"code": "...", "message": "..."}}`.
//!
//! Enclave errors keep the enclave's own code and message; the relay adds codes only for what
//! happens before or around the enclave (HTTP limits, an unreachable or silent enclave).

use std::io;
use std::time::Duration;

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use tessera_core::protocol::{ClientError, ErrorCode, FrameError, MAX_FRAME};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    /// Input the relay could not parse, or that the enclave called malformed.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad-request", message)
    }

    pub fn wrong_phase(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "wrong-phase", message)
    }

    /// The enclave's own error, with the HTTP status its code implies.
    #[must_use]
    pub fn from_enclave(code: ErrorCode, message: String) -> Self {
        let status = match code {
            ErrorCode::BadRequest => StatusCode::BAD_REQUEST,
            ErrorCode::WrongPhase => StatusCode::CONFLICT,
            ErrorCode::Rejected => StatusCode::UNPROCESSABLE_ENTITY,
            // The enclave failed, not the caller: a gateway error.
            ErrorCode::Internal => StatusCode::BAD_GATEWAY,
        };
        Self::new(status, code.as_str(), message)
    }

    #[must_use]
    pub fn payload_too_large(max: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload-too-large",
            format!("request body exceeds the {max}-byte limit"),
        )
    }

    /// A request that, wrapped as one enclave frame, exceeds the frame limit.
    #[must_use]
    pub fn frame_too_large(len: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload-too-large",
            format!(
                "the request is {len} bytes as an enclave frame, above the {MAX_FRAME}-byte frame limit"
            ),
        )
    }

    /// Too many rationed requests (attestations, forward challenges), from this client or in
    /// total.
    #[must_use]
    pub fn rate_limited(what: &str, whose: &str) -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate-limited",
            format!("too many {what} {whose}; retry in a second"),
        )
    }

    /// Too many request bodies being received, from this client or in total.
    #[must_use]
    pub fn bodies_busy(whose: &str) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "relay-busy",
            format!("too many request bodies are being received {whose}; retry shortly"),
        )
    }

    #[must_use]
    pub fn body_timeout(limit: Duration) -> Self {
        Self::new(
            StatusCode::REQUEST_TIMEOUT,
            "request-timeout",
            format!("request body not received within {} s", limit.as_secs_f64()),
        )
    }

    #[must_use]
    pub fn enclave_timeout(limit: Duration) -> Self {
        Self::new(
            StatusCode::GATEWAY_TIMEOUT,
            "enclave-timeout",
            format!(
                "the enclave did not answer within {} s",
                limit.as_secs_f64()
            ),
        )
    }

    #[must_use]
    pub fn busy() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "relay-busy",
            "too many requests are waiting for the enclave; retry shortly",
        )
    }

    pub fn relay_internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "relay-internal", message)
    }

    pub fn bad_enclave_response(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_GATEWAY, "bad-enclave-response", message)
    }

    #[must_use]
    pub fn not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not-found",
            "no such endpoint; see docs/api.md",
        )
    }

    #[must_use]
    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method-not-allowed",
            "method not allowed on this endpoint",
        )
    }
}

impl From<ClientError> for ApiError {
    fn from(e: ClientError) -> Self {
        let timed_out = matches!(
            &e,
            ClientError::Frame(FrameError::Io(io))
                if matches!(io.kind(), io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock)
        );
        if timed_out {
            return Self::new(
                StatusCode::GATEWAY_TIMEOUT,
                "enclave-timeout",
                format!("the enclave did not answer in time: {e}"),
            );
        }
        if let ClientError::RequestTooLarge { len, .. } = e {
            return Self::frame_too_large(len);
        }
        if matches!(e, ClientError::Decode(_)) {
            return Self::bad_enclave_response(e.to_string());
        }
        Self::new(
            StatusCode::BAD_GATEWAY,
            "enclave-unavailable",
            e.to_string(),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // A failure of the relay or the enclave is the operator's business; a caller's mistake
        // is only worth a line when asked for.
        if self.status.is_server_error() {
            tracing::warn!(status = self.status.as_u16(), code = self.code, message = %self.message, "error");
        } else {
            tracing::debug!(status = self.status.as_u16(), code = self.code, message = %self.message, "error");
        }
        let body = serde_json::json!({
            "error": { "code": self.code, "message": self.message }
        });
        let mut response = (
            self.status,
            [(header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response();
        if self.status == StatusCode::TOO_MANY_REQUESTS
            || self.status == StatusCode::SERVICE_UNAVAILABLE
        {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enclave_codes_map_to_statuses() {
        let cases = [
            (ErrorCode::BadRequest, 400, "bad-request"),
            (ErrorCode::WrongPhase, 409, "wrong-phase"),
            (ErrorCode::Rejected, 422, "rejected"),
            (ErrorCode::Internal, 502, "internal"),
        ];
        for (code, status, name) in cases {
            let e = ApiError::from_enclave(code, "m".to_owned());
            assert_eq!((e.status.as_u16(), e.code), (status, name));
        }
    }

    #[test]
    fn client_errors_map_to_gateway_errors() {
        let refused = ClientError::Connect {
            addr: "unix:/x".to_owned(),
            source: io::Error::from(io::ErrorKind::ConnectionRefused),
        };
        let e = ApiError::from(refused);
        assert_eq!((e.status.as_u16(), e.code), (502, "enclave-unavailable"));
        let e = ApiError::from(ClientError::Frame(FrameError::Closed));
        assert_eq!((e.status.as_u16(), e.code), (502, "enclave-unavailable"));
        let slow = ClientError::Frame(FrameError::Io(io::ErrorKind::WouldBlock.into()));
        let e = ApiError::from(slow);
        assert_eq!((e.status.as_u16(), e.code), (504, "enclave-timeout"));
    }
}
