//! Deterministic sample states for the app's tests and benchmark: five members with keys from
//! fixed seeds, a manifest, and a provision request attested by a fresh dev PKI.
//!
//! Test data only; nothing in the app uses it.

use std::path::PathBuf;

use airgap_bundle::{Bundle, BundleKind, Metadata};
use serde_bytes::ByteBuf;
use tessera_core::bytes::{ByteArray, Hash32};
use tessera_core::dev_pki::DevPki;
use tessera_core::device::{KeyDevice, SoftwareKeyDevice, approve};
use tessera_core::keys::Role;
use tessera_core::manifest::{
    EnclaveSpec, MANIFEST_VERSION, Manifest, ManifestEnvelope, Namespace, Pivot, RestartPolicy,
    ShareMember, ShareSet,
};
use tessera_core::objects::{OBJECT_VERSION, ProvisionRequest};
use tessera_core::quorum::QuorumSeed;
use tessera_core::sign::Purpose;
use time::OffsetDateTime;
use time::macros::datetime;

use super::app::{self, BundleEntry, Config, DeviceView, Mode, Msg, State};
use super::keymap::Keymap;

pub const T0: OffsetDateTime = datetime!(2026-11-21 08:00:00 UTC);
pub const PCRS: [[u8; 48]; 4] = [[0xa0; 48], [0xa1; 48], [0xa2; 48], [0xa3; 48]];
pub const EPHEMERAL: [u8; 32] = [0x5e; 32];

pub fn members() -> Vec<SoftwareKeyDevice> {
    ["alice", "bob", "carol", "dave", "erin"]
        .iter()
        .enumerate()
        .map(|(i, a)| SoftwareKeyDevice::from_seed(a, &[i as u8 + 1; 32]))
        .collect()
}

pub fn manifest(devs: &mut [SoftwareKeyDevice], nonce: u64, pcr0: [u8; 48]) -> Manifest {
    Manifest {
        version: MANIFEST_VERSION,
        namespace: Namespace {
            name: "payments".to_owned(),
            nonce,
            quorum_public_key: QuorumSeed::from_bytes([0x42; 32]).public_key(),
            dr_recipient: None,
        },
        enclave: EnclaveSpec {
            pcr0: ByteArray(pcr0),
            pcr1: ByteArray(PCRS[1]),
            pcr2: ByteArray(PCRS[2]),
            pcr3: ByteArray(PCRS[3]),
            debug_allowed: false,
        },
        pivot: Pivot {
            app_sha256: Hash32::sha256(b"app"),
            args: vec![],
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

/// A provision request whose attestation is signed by a fresh dev PKI.
pub struct Fixture {
    pub pki: DevPki,
    pub request: ProvisionRequest,
    pub manifest: Manifest,
}

pub fn fixture(attested_pcr0: [u8; 48]) -> Fixture {
    let mut devs = members();
    let manifest = manifest(&mut devs, 7, PCRS[0]);
    let h = manifest.hash();
    let approvals = devs[..3]
        .iter_mut()
        .map(|d| approve(d, Purpose::Manifest, &h, "m").unwrap())
        .collect();
    let pki = DevPki::generate(T0).unwrap();
    let pcrs: Vec<(u8, Vec<u8>)> = [attested_pcr0, PCRS[1], PCRS[2], PCRS[3], [0; 48]]
        .iter()
        .enumerate()
        .map(|(i, p)| (i as u8, p.to_vec()))
        .collect();
    let ts = (T0 + time::Duration::seconds(10))
        .unix_timestamp()
        .cast_unsigned()
        * 1000;
    let doc = pki
        .document(ts, &pcrs, Some(&h.0), None, Some(&EPHEMERAL))
        .unwrap();
    let request = ProvisionRequest {
        version: OBJECT_VERSION,
        envelope: ManifestEnvelope {
            manifest: manifest.clone(),
            approvals,
        },
        attestation: ByteBuf::from(doc),
    };
    Fixture {
        pki,
        request,
        manifest,
    }
}

pub fn config(f: &Fixture, share: bool) -> Config {
    Config {
        mode: Mode::Dev {
            root_fingerprint: "a5a8 503d 7e0b fad2".to_owned(),
        },
        anchor: f.pki.anchor(),
        bundle_dir: PathBuf::from("/media/usb"),
        share_path: share.then(|| PathBuf::from("/media/usb/alice.share.age")),
        reproduced: None,
        previous: Vec::new(),
        previous_patches: Vec::new(),
        share_sealed: None,
        pins: Some(crate::member::pin::PinStore::new("/media/usb/pins")),
        at: None,
        max_age: std::time::Duration::from_hours(1),
        keymap: Keymap::default(),
        members: None,
    }
}

pub fn device() -> DeviceView {
    let mut d = SoftwareKeyDevice::from_seed("alice", &[1; 32]);
    DeviceView {
        label: "YubiKey 5 NFC #5437251 (firmware 5.4.3)".to_owned(),
        serial: Some(5_437_251),
        software: false,
        keys: Role::ALL
            .iter()
            .map(|&r| {
                let k = d.public_key(r).unwrap();
                (
                    r.to_string(),
                    k.fingerprint(),
                    tessera_core::age_share::PivP256Recipient::new(k).to_string(),
                )
            })
            .collect(),
        member_keys: crate::member::review::MemberKeys::read(&mut d),
        error: None,
    }
}

pub fn request_bundle(f: &Fixture) -> Vec<u8> {
    Bundle::new(
        BundleKind::Request,
        Metadata {
            namespace: Some("payments".into()),
            nonce: Some(7),
            ..Metadata::default()
        },
        tessera_core::cbor::encode(&f.request),
    )
    .unwrap()
    .encode()
}

/// alice's pin for `payments`: the fixture's quorum key and Manifest set, no manifest yet.
pub fn pins(f: &Fixture) -> Msg {
    let mut alice = SoftwareKeyDevice::from_seed("alice", &[1; 32]);
    let owner = alice.public_key(Role::Manifest).unwrap();
    let pin = crate::member::pin::NamespacePin::new(
        "payments",
        owner,
        f.manifest.namespace.quorum_public_key,
        f.manifest.manifest_set.clone(),
        tessera_core::bytes::ByteArray(f.pki.anchor().sha256()),
        crate::member::pin::PcrPolicy::WaivedDev,
    );
    let store = crate::member::pin::PinStore::new("/media/usb/pins");
    Msg::Pins(vec![(store.path("payments", &owner), Ok(pin))])
}

/// A state with the clock at `now`, the device and alice's pin present, and the request
/// bundle opened.
pub fn opened(f: &Fixture, share: bool, now: OffsetDateTime) -> State {
    let mut s = State::new(config(f, share));
    app::update(&mut s, Msg::Tick(now));
    app::update(&mut s, Msg::Device(device()));
    app::update(&mut s, pins(f));
    app::update(
        &mut s,
        Msg::Scanned {
            bundles: vec![
                BundleEntry {
                    path: "/media/usb/request-payments-n7-1a2b.tbundle".into(),
                    summary: "request bundle 1a2b 3c4d 5e6f 7a8b, namespace payments, nonce 7"
                        .into(),
                },
                BundleEntry {
                    path: "/media/usb/manifest-payments-n7-9f8e.tbundle".into(),
                    summary: "manifest bundle 9f8e 7d6c 5b4a 3928, namespace payments, nonce 7"
                        .into(),
                },
            ],
            network: Vec::new(),
        },
    );
    app::update(
        &mut s,
        Msg::Loaded {
            path: "/media/usb/request-payments-n7-1a2b.tbundle".into(),
            bytes: request_bundle(f),
        },
    );
    s
}

pub fn now() -> OffsetDateTime {
    T0 + time::Duration::seconds(40)
}
