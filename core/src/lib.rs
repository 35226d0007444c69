//! Tessera core: the formats, cryptography and verification shared by every Tessera program.
//!
//! Verification never reads the clock: time is always a parameter. The only I/O is the software
//! key device's key file.

pub mod age_share;
pub mod attestation;
pub mod bytes;
pub mod cbor;
pub mod device;
pub mod eif;
pub mod keys;
pub mod manifest;
pub mod objects;
pub mod pcr;
pub mod quorum;
pub mod shamir;
pub mod sign;
