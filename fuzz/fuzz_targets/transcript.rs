//! Untrusted transcripts: chain verification must never panic, whatever the bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = tessera_core::transcript::verify_reader(data);
});
