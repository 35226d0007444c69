//! Untrusted namespace pins from a USB stick: a pin opens only under its owner's key, and
//! whatever pin body decodes is canonical.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_core::device::{KeyDevice, SoftwareKeyDevice};
use tessera_core::keys::Role;
use tessera_core::pin::{NamespacePin, open};

fuzz_target!(|data: &[u8]| {
    let mut member = SoftwareKeyDevice::from_seed("fuzz", &[7; 32]);
    let mine = member.public_key(Role::Manifest).expect("software key");
    let _ = open(data, &mine);
    if let Ok(p) = tessera_core::cbor::decode::<NamespacePin>(data, "namespace pin") {
        assert_eq!(tessera_core::cbor::encode(&p), data);
    }
});
