//! Diagnostic logging for the services, `tessera-enclave` and `tessera-relay`: one line per
//! event on stderr, filtered by `RUST_LOG` (default `info`; `debug` adds connections and one
//! line per relay request; `trace` adds frame sizes and SHA-256 digests).
//!
//! What is logged is chosen field by field at each call site: request names, outcomes, phases,
//! error codes and messages, sizes, timings and digests. Never a payload, a key, a share or a
//! PIN; `operator-tui/tests/secret_hygiene.rs` checks the whole demo at `trace`. Banners a
//! person must see (a DEV enclave) and fatal errors are printed directly, not filtered.

use std::io::IsTerminal;
use std::time::Instant;

use tracing_subscriber::EnvFilter;

/// Installs the stderr logger. An unparsable `RUST_LOG` is an error rather than silence.
pub fn init() -> Result<(), String> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(spec) => EnvFilter::try_new(&spec).map_err(|e| format!("RUST_LOG={spec:?}: {e}"))?,
        Err(_) => EnvFilter::new("info"),
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init()
        .map_err(|e| format!("cannot install the logger: {e}"))
}

/// Microseconds since `started`, the unit of every `micros` field.
#[must_use]
pub fn micros_since(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX)
}
