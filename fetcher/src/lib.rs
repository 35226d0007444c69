//! Verifiable HTTPS fetches from inside the enclave.
//!
//! The enclave has no network; the host's `tessera-egress` proxy moves TCP bytes for it
//! ([`tessera_core::egress`]). This crate runs TLS itself over those bytes ([`conn::ProxyConn`]
//! is `Read` + `Write`), verifies the server's certificate and name against the Mozilla roots
//! plus the roots the manifest pins, reads one bounded HTTP/1.1 response, and turns a complete
//! exchange into a [`tessera_core::fetch::FetchRecord`] that the quorum key signs. The host can
//! delay, drop or misroute bytes; it cannot make the fetcher sign anything it did not receive
//! intact from a server holding a valid certificate for the name. See `docs/fetch.md`.

pub mod app;
pub mod conn;
pub mod fetch;
pub mod http;
pub mod oidc;
pub mod url;
