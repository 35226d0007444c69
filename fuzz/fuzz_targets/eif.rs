//! Untrusted EIF files: parsing, CRC and measurement must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = tessera_core::eif::parse(data);
});
