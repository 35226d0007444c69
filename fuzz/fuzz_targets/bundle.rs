//! Untrusted bundle files (USB or a finished QR scan): a bundle that decodes is its own encoding.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(bundle) = airgap_bundle::Bundle::decode(data) {
        assert_eq!(bundle.encode(), data);
        let _ = bundle.summary();
    }
});
