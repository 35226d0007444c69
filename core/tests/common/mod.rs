//! Fixtures shared by the core tests: deterministic members and a sample manifest.

#![allow(dead_code)]

use tessera_core::bytes::{ByteArray, Hash32};
use tessera_core::device::{KeyDevice, SoftwareKeyDevice};
use tessera_core::keys::Role;
use tessera_core::manifest::{
    EnclaveSpec, MANIFEST_VERSION, Manifest, Namespace, Pivot, RestartPolicy, ShareMember, ShareSet,
};
use tessera_core::quorum::QuorumSeed;

pub const ALIASES: [&str; 5] = ["alice", "bob", "carol", "dave", "erin"];

/// Five members with keys derived from fixed seeds, so encodings are reproducible.
pub fn members() -> Vec<SoftwareKeyDevice> {
    ALIASES
        .iter()
        .enumerate()
        .map(|(i, a)| SoftwareKeyDevice::from_seed(a, &[i as u8 + 1; 32]))
        .collect()
}

pub fn manifest(devs: &mut [SoftwareKeyDevice]) -> Manifest {
    let seed = QuorumSeed::from_bytes([0x42; 32]);
    Manifest {
        version: MANIFEST_VERSION,
        namespace: Namespace {
            name: "payments-prod".to_owned(),
            nonce: 7,
            quorum_public_key: seed.public_key(),
            dr_recipient: None,
        },
        enclave: EnclaveSpec {
            pcr0: ByteArray([0x10; 48]),
            pcr1: ByteArray([0x11; 48]),
            pcr2: ByteArray([0x12; 48]),
            pcr3: ByteArray([0x13; 48]),
            debug_allowed: false,
        },
        pivot: Pivot {
            app_sha256: Hash32::sha256(b"app"),
            args: vec!["--serve".to_owned()],
            restart: RestartPolicy::Never,
            ingress_port: None,
        },
        manifest_set: SoftwareKeyDevice::member_set(devs, Role::Manifest, 3),
        share_set: ShareSet {
            threshold: 3,
            members: devs
                .iter_mut()
                .enumerate()
                .map(|(i, d)| ShareMember {
                    alias: d.alias().to_owned(),
                    public_key: d.public_key(Role::Share).unwrap(),
                    commitment: Hash32::sha256(&[i as u8]),
                })
                .collect(),
        },
        patch_set: SoftwareKeyDevice::member_set(devs, Role::Patch, 2),
    }
}
