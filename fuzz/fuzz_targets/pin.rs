//! Untrusted namespace pins from a USB stick, and pin ledgers read from a key device: a pin opens
//! only under its owner's key, whatever pin body or ledger decodes is canonical, and checking a
//! decoded pin against a decoded ledger never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_core::device::{KeyDevice, SoftwareKeyDevice};
use tessera_core::keys::Role;
use tessera_core::pin::{NamespacePin, PinLedger, open};

fuzz_target!(|data: &[u8]| {
    let mut member = SoftwareKeyDevice::from_seed("fuzz", &[7; 32]);
    let mine = member.public_key(Role::Manifest).expect("software key");
    let _ = open(data, &mine);
    let pin = tessera_core::cbor::decode::<NamespacePin>(data, "namespace pin");
    if let Ok(p) = &pin {
        assert_eq!(tessera_core::cbor::encode(p), data);
    }
    if let Ok(mut ledger) = PinLedger::decode(Some(data)) {
        assert_eq!(ledger.encode(), data);
        if let Ok(p) = &pin {
            let _ = ledger.check(p);
            let _ = ledger.record(p);
        }
    }
});
