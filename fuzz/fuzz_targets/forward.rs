//! Untrusted key-forwarding messages the host hands an enclave: a joining node's forward request
//! (decoded, then judged by the exporter's whole check) and an export. Nothing may panic, and a
//! message that decodes is exactly its own canonical encoding.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_core::forward::{ForwardExport, ForwardRequest, MAX_DOCUMENT_AGE, check_join};

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = ForwardRequest::decode(data) {
        assert_eq!(request.encode(), data);
        let at = time::OffsetDateTime::from_unix_timestamp(1_750_000_000).unwrap();
        let anchor = tessera_core::attestation::aws_nitro_root_g1();
        let _ = check_join(
            &request.envelope,
            &request,
            anchor,
            at,
            MAX_DOCUMENT_AGE,
            |_| true,
        );
    }
    if let Ok(export) = ForwardExport::decode(data) {
        assert_eq!(export.encode(), data);
        let _ = export.body.hash();
    }
});
