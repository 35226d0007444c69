//! Tessera core: the formats, cryptography and verification shared by every Tessera program.
//!
//! Verification never reads the clock: time is always a parameter. I/O is confined to the
//! software key device's key file and the enclave transport (`transport`, `protocol`).

pub mod age_share;
pub mod attestation;
pub mod bytes;
pub mod cbor;
pub mod dev_pki;
pub mod device;
pub mod dr;
pub mod egress;
pub mod eif;
pub mod eif_build;
pub mod fetch;
pub mod forward;
pub mod genesis;
pub mod hardening;
pub mod keys;
#[cfg(feature = "logging")]
pub mod logging;
pub mod manifest;
pub mod objects;
pub mod pcr;
pub mod pin;
pub mod protocol;
pub mod provision;
pub mod quorum;
pub mod shamir;
pub mod sign;
pub mod statement;
pub mod transcript;
pub mod transport;
pub mod yubikey_attest;
pub mod yubikey_attest_fake;
pub mod yubikey_attest_policy;
