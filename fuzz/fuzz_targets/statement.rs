//! Untrusted builders' statements: parsing must never panic, and whatever parses must have
//! come from bytes that spell exactly what was parsed.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = tessera_core::statement::parse(data) {
        assert!(!s.image.is_empty() && !s.version.is_empty());
        for pcr in &s.pcrs {
            assert!(pcr.iter().any(|&b| b != 0));
        }
    }
});
