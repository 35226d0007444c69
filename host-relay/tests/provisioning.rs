//! The provisioning endpoints against a real dev enclave: boot from a threshold-approved
//! manifest, then request bundles built from the enclave's own answer, across a relay restart.

mod support;

use airgap_bundle::{Bundle, BundleKind, Metadata};
use tessera_core::bytes::{ByteArray, Hash32, Pcr};
use tessera_core::cbor;
use tessera_core::device::{KeyDevice, SoftwareKeyDevice, approve};
use tessera_core::keys::Role;
use tessera_core::manifest::{
    EnclaveSpec, MANIFEST_VERSION, Manifest, ManifestEnvelope, Namespace, Pivot, RestartPolicy,
    ShareMember, ShareSet,
};
use tessera_core::objects::ProvisionRequest;
use tessera_core::protocol::Response;
use tessera_core::quorum::QuorumSeed;
use tessera_core::sign::Purpose;

use support::{Enclave, Relay, get, post};

fn members() -> Vec<SoftwareKeyDevice> {
    ["alice", "bob", "carol", "dave", "erin"]
        .iter()
        .zip(1u8..)
        .map(|(a, i)| SoftwareKeyDevice::from_seed(a, &[i; 32]))
        .collect()
}

fn pcr(pcrs: &serde_json::Value, name: &str) -> Pcr {
    Pcr::from_hex(pcrs[name].as_str().expect("PCR in the dev PCR file")).unwrap()
}

/// A 3-of-5 manifest for the enclave whose dev PCRs are in `pcrs`, approved by `approvers`.
fn envelope(enclave: &Enclave, nonce: u64, approvers: usize) -> ManifestEnvelope {
    let pcrs: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&enclave.pcrs).unwrap()).unwrap();
    let mut devs = members();
    let manifest = Manifest {
        version: MANIFEST_VERSION,
        namespace: Namespace {
            name: "relay-test".to_owned(),
            nonce,
            quorum_public_key: QuorumSeed::from_bytes([0x42; 32]).public_key(),
            dr_recipient: None,
        },
        enclave: EnclaveSpec {
            pcr0: pcr(&pcrs, "PCR0"),
            pcr1: pcr(&pcrs, "PCR1"),
            pcr2: pcr(&pcrs, "PCR2"),
            pcr3: ByteArray([0; 48]),
            debug_allowed: false,
        },
        pivot: Pivot {
            app_sha256: Hash32::sha256(b"app"),
            args: Vec::new(),
            restart: RestartPolicy::Never,
            ingress_port: None,
        },
        manifest_set: SoftwareKeyDevice::member_set(&devs, Role::Manifest, 3),
        share_set: ShareSet {
            threshold: 3,
            members: devs
                .iter_mut()
                .zip(0u8..)
                .map(|(d, i)| ShareMember {
                    alias: d.alias().to_owned(),
                    public_key: d.public_key(Role::Share).unwrap(),
                    commitment: Hash32::sha256(&[i]),
                })
                .collect(),
        },
        patch_set: SoftwareKeyDevice::member_set(&devs, Role::Patch, 2),
    };
    let hash = manifest.hash();
    let approvals = devs[..approvers]
        .iter_mut()
        .map(|d| approve(d, Purpose::Manifest, &hash, "manifest").unwrap())
        .collect();
    ManifestEnvelope {
        manifest,
        approvals,
    }
}

#[test]
fn boot_then_request_bundles_survive_a_relay_restart() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("enclave.sock");
    let enclave = Enclave::start(&socket);
    let relay = Relay::start(&socket, 10.0);

    // Below threshold: refused by the enclave (422), phase unchanged.
    let r = post(relay.addr, "/v1/boot", &envelope(&enclave, 1, 2).encode());
    assert_eq!(r.error_code(422), "rejected");
    assert_eq!(
        get(relay.addr, "/v1/status").json()["phase"],
        "waiting-for-boot"
    );

    let env = envelope(&enclave, 2, 3);
    let r = post(relay.addr, "/v1/boot", &env.encode());
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("content-type"), Some("application/cbor"));
    let Response::Booted {
        manifest_hash,
        ephemeral_key,
        ..
    } = Response::decode(&r.body).unwrap()
    else {
        panic!("not a booted response");
    };
    assert_eq!(manifest_hash, env.manifest.hash());

    let status = get(relay.addr, "/v1/status").json();
    assert_eq!(status["phase"], "waiting-for-shares");
    assert_eq!(status["namespace"], "relay-test");
    assert_eq!(status["nonce"], 2);
    assert_eq!(status["threshold"], 3);
    assert_eq!(status["manifest_hash"], manifest_hash.to_hex());
    assert_eq!(status["ephemeral_key"], ephemeral_key.to_hex());

    // A second boot is the wrong phase.
    assert_eq!(
        post(relay.addr, "/v1/boot", &env.encode()).error_code(409),
        "wrong-phase"
    );

    let check_bundle = |bytes: &[u8]| {
        let bundle = Bundle::decode(bytes).unwrap();
        assert_eq!(bundle.kind(), BundleKind::Request);
        assert_eq!(bundle.meta().namespace.as_deref(), Some("relay-test"));
        assert_eq!(bundle.meta().nonce, Some(2));
        let request = ProvisionRequest::decode(bundle.payload()).unwrap();
        assert_eq!(request.version, 1);
        assert_eq!(request.envelope, env);
        assert!(!request.attestation.is_empty());
        request.attestation
    };
    let r = get(relay.addr, "/v1/request-bundle");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/octet-stream"));
    assert!(
        r.header("content-disposition")
            .is_some_and(|d| d.contains("request-relay_test-n2-"))
    );
    let first = check_bundle(&r.body);

    // The relay keeps nothing: a new relay process serves the same boot.
    drop(relay);
    let relay = Relay::start(&socket, 10.0);
    let r = get(relay.addr, "/v1/request-bundle?nonce=0123456789abcdef");
    assert_eq!(r.status, 200);
    let second = check_bundle(&r.body);
    // Fresh documents each time (a new timestamp and, here, a caller nonce).
    assert_ne!(first, second);

    // A share bundle that decodes but is not a valid submission never reaches the enclave.
    let junk = Bundle::new(BundleKind::Share, Metadata::default(), cbor::encode(&0u8)).unwrap();
    assert_eq!(
        post(relay.addr, "/v1/share-bundle", &junk.encode()).error_code(400),
        "bad-request"
    );
    assert_eq!(
        get(relay.addr, "/v1/status").json()["shares_from"],
        serde_json::json!([])
    );
}
