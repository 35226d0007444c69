//! Untrusted attestation documents: decoding, chain and signature checks must never panic,
//! against the AWS root or in the EMULATED trust mode.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_core::attestation::{self, Policy, TrustAnchor};

fuzz_target!(|data: &[u8]| {
    let at = attestation::unverified_timestamp(data).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let _ = attestation::verify(data, attestation::aws_nitro_root_g1(), at, &Policy::new());
    let _ = attestation::verify(data, &TrustAnchor::emulated(), at, &Policy::new());
});
