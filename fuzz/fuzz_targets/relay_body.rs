//! Untrusted HTTP bodies as the relay decodes them before forwarding (the first byte picks the
//! endpoint), and the enclave's responses the relay reads back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_core::cbor::decode_bounded;
use tessera_core::objects::{GenesisRequest, PatchEnvelope, ReshardEnvelope, ShareSubmission};
use tessera_core::protocol::{AppRequest, MAX_FRAME, Response};

fuzz_target!(|data: &[u8]| {
    let Some((&endpoint, body)) = data.split_first() else { return };
    match endpoint % 7 {
        0 => drop(decode_bounded::<GenesisRequest>(body, MAX_FRAME, "genesis request")),
        1 => drop(tessera_core::manifest::ManifestEnvelope::decode(body)),
        2 => drop(decode_bounded::<PatchEnvelope>(body, MAX_FRAME, "patch envelope")),
        3 => drop(decode_bounded::<ReshardEnvelope>(body, MAX_FRAME, "reshard envelope")),
        4 => drop(decode_bounded::<AppRequest>(body, MAX_FRAME, "app request")),
        // POST /v1/share-bundle: a bundle whose payload is a share submission.
        5 => {
            if let Ok(bundle) = airgap_bundle::Bundle::decode(body) {
                let _ = ShareSubmission::decode(bundle.payload());
            }
            let _ = ShareSubmission::decode(body);
        }
        _ => drop(Response::decode(body)),
    }
});
