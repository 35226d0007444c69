//! Untrusted manifests and envelopes from the coordinator: whatever decodes is canonical.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_core::manifest::{Manifest, ManifestEnvelope};

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Manifest::decode(data) {
        assert_eq!(tessera_core::cbor::encode(&m), data);
    }
    let _ = ManifestEnvelope::decode(data);
});
