//! Untrusted YubiKey PIV attestation certificates (from member descriptors): parsing and
//! verification must never panic, and nothing but a chain to a pinned Yubico root verifies.
//! Input: a big-endian u16 length, the slot certificate, then the device (f9) certificate.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_core::yubikey_attest::{YubicoTrust, inspect, verify_slot};

fuzz_target!(|data: &[u8]| {
    let Some((len, rest)) = data.split_first_chunk::<2>() else {
        return;
    };
    let split = usize::from(u16::from_be_bytes(*len)).min(rest.len());
    let (slot, device) = rest.split_at(split);
    let _ = inspect(slot);
    let _ = inspect(device);
    // 2026-11-29T12:00:00Z
    let Ok(at) = time::OffsetDateTime::from_unix_timestamp(1_795_953_600) else {
        return;
    };
    if let Ok(a) = verify_slot(slot, device, YubicoTrust::published(), at) {
        assert!(a.chain.len() >= 3);
        assert!(a.generated_on_device());
    }
});
