//! Whole ceremonies against the real `tessera-enclave --dev` binary: genesis, boot, provisioning
//! to a live quorum key, the pivot, and restarts of the enclave and of the relay mid-way.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use airgap_bundle::{Bundle, BundleKind, Metadata};
use serde_bytes::ByteBuf;
use support::{
    Ceremony, EnclaveProc, RelayProc, STEP, assert_refused, devices, genesis,
    member_checks_genesis, member_checks_request, verify,
};
use tessera_core::attestation::Policy;
use tessera_core::bytes::Hash32;
use tessera_core::cbor;
use tessera_core::objects::ProvisionRequest;
use tessera_core::protocol::{AppRequest, ErrorCode, Phase, Request, Response};
use tessera_core::quorum::QuorumSeed;
use tessera_core::shamir;
use tessera_core::sign::{Purpose, signed_message};

#[test]
fn three_of_five_reaches_a_live_quorum_key() {
    let mut c = Ceremony::new(5, 3);
    let before = c.enclave.status();
    assert_eq!(before.phase, Phase::WaitingForBoot);
    assert!(before.dev, "a --dev enclave says so in its status");

    let eph = c.boot();
    let s = c.enclave.status();
    assert_eq!(s.phase, Phase::WaitingForShares);
    assert_eq!(s.ephemeral_key, Some(eph));
    assert_eq!(s.manifest_hash, Some(c.manifest().hash()));
    assert_eq!((s.threshold, s.nonce), (3, Some(1)));
    assert_eq!(s.namespace.as_deref(), Some("test"));

    // Any three members, not necessarily the approvers.
    for (k, i) in [4, 1, 3].into_iter().enumerate() {
        let sub = c.share(i);
        assert_eq!(c.post_ok(&sub), (k as u8 + 1, k == 2));
    }
    c.assert_app_signs();
    let mut from = c.enclave.status().shares_from;
    from.sort();
    assert_eq!(from, ["m1", "m3", "m4"]);

    // A provisioned enclave still attests: to its manifest, with no ephemeral key left.
    let Response::Attestation { document, .. } = c.enclave.call(&Request::Attestation {
        nonce: Some(ByteBuf::from(b"fresh".to_vec())),
    }) else {
        panic!("no attestation")
    };
    let v = verify(
        &document,
        &c.enclave.root,
        Policy::new()
            .expect_user_data(c.manifest().hash().0.to_vec())
            .expect_nonce(b"fresh".to_vec()),
    )
    .unwrap();
    assert_eq!(v.public_key(), None);
}

#[test]
fn genesis_output_is_attested_and_every_share_opens() {
    let dir = tempfile::tempdir().unwrap();
    let enclave = EnclaveProc::start(dir.path(), "e0", None);
    let mut members = devices(5, 0);
    let (output, attestation) = genesis(&enclave, &mut members, 3);

    let v = verify(
        &attestation,
        &enclave.root,
        Policy::new()
            .expect_user_data(output.hash().0.to_vec())
            .expect_pcr(0, enclave.pcrs[0].0.to_vec()),
    )
    .expect("the attestation binds the output hash");
    assert_eq!(v.user_data(), Some(&output.hash().0[..]));
    output.verify_test_signature().expect("test signature");
    assert_eq!(output.body.threshold, 3);
    assert_eq!(output.body.shares.len(), 5);

    let sealed: Vec<Vec<u8>> = members
        .iter_mut()
        .map(|d| member_checks_genesis(&output, &attestation, &enclave.root, d))
        .collect();
    // A share opens only on its own member's device.
    assert!(tessera_core::provision::open_share(&mut members[1], &sealed[0], "t").is_err());

    // Any three shares are the key the output publishes; two are not.
    let shares: Vec<shamir::Share> = members
        .iter_mut()
        .zip(&sealed)
        .map(|(d, s)| tessera_core::provision::open_share(d, s, "t").unwrap())
        .collect();
    let seed = shamir::combine(&shares[2..5], 3).unwrap();
    assert_eq!(seed.public_key(), output.body.quorum_public_key);
    let two = shamir::combine(&shares[..2], 2).unwrap();
    assert_ne!(two.public_key(), output.body.quorum_public_key);

    // Any change to the output breaks its binding to the attestation.
    let mut altered = output.clone();
    altered.body.threshold = 2;
    assert!(
        verify(
            &attestation,
            &enclave.root,
            Policy::new().expect_user_data(altered.hash().0.to_vec())
        )
        .is_err()
    );
    assert!(altered.verify_test_signature().is_err());
    // Genesis does not change the phase.
    assert_eq!(enclave.status().phase, Phase::WaitingForBoot);
}

/// A pivot app that copies what it receives on stdin to `<itself>.seed`, atomically so the test
/// never reads a partial file. The environment is cleared, so tools are named by full path.
fn write_app(dir: &Path, body: &str) -> (PathBuf, Hash32) {
    let path = dir.join("app.sh");
    let script =
        format!("#!/bin/sh\n# {body}\n/bin/cat > \"$0.tmp\" && /bin/mv \"$0.tmp\" \"$0.seed\"\n");
    std::fs::write(&path, &script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    (path, Hash32::sha256(script.as_bytes()))
}

fn wait_for_seed(app: &Path) -> Vec<u8> {
    let out = app.with_extension("sh.seed");
    let deadline = Instant::now() + STEP;
    while Instant::now() < deadline {
        if let Ok(b) = std::fs::read(&out) {
            return b;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("the pivot app wrote nothing to {}", out.display());
}

#[test]
fn pivot_app_receives_exactly_the_quorum_seed() {
    let apps = tempfile::tempdir().unwrap();
    let (app, sha) = write_app(apps.path(), "v1");
    let mut c = Ceremony::with_pivot(5, 3, Some(&app), sha);
    c.boot();
    c.complete();
    let seed = wait_for_seed(&app);
    assert_eq!(seed.len(), 32, "exactly the 32-byte seed, nothing more");
    let seed = QuorumSeed::from_bytes(seed.try_into().unwrap());
    assert_eq!(seed.public_key(), c.manifest().namespace.quorum_public_key);
}

#[test]
fn pivot_with_the_wrong_hash_is_refused_and_the_enclave_stays_usable() {
    let apps = tempfile::tempdir().unwrap();
    let (app, good) = write_app(apps.path(), "v1");
    write_app(apps.path(), "tampered");
    let mut c = Ceremony::with_pivot(5, 3, Some(&app), good);

    // At boot: refused before any member hands over a share.
    let r = c.enclave.call(&Request::Boot(c.envelope.clone()));
    assert_refused(&r, ErrorCode::Rejected, "the manifest requires");
    assert_eq!(c.enclave.status().phase, Phase::WaitingForBoot);

    write_app(apps.path(), "v1");
    c.boot();
    for i in 0..2 {
        let sub = c.share(i);
        c.post_ok(&sub);
    }
    // Swapped after boot: the last share is refused, the boot keeps what it had.
    write_app(apps.path(), "tampered");
    let last = c.share(2);
    assert_refused(&c.post(&last), ErrorCode::Internal, "the manifest requires");
    let s = c.enclave.status();
    assert_eq!(s.phase, Phase::WaitingForShares);
    assert_eq!(s.shares_from.len(), 2);
    assert!(!app.with_extension("sh.seed").exists());

    write_app(apps.path(), "v1");
    assert_eq!(c.post_ok(&last), (3, true));
    c.assert_app_signs();
    let seed = wait_for_seed(&app);
    let seed = QuorumSeed::from_bytes(seed.try_into().unwrap());
    assert_eq!(seed.public_key(), c.manifest().namespace.quorum_public_key);
}

#[test]
fn enclave_restarted_mid_provisioning_refuses_old_bundles() {
    let mut c = Ceremony::new(5, 3);
    let first = c.boot();
    let s0 = c.share(0);
    c.post_ok(&s0);
    let s1 = c.share(1);

    c.restart_enclave(None);
    assert_eq!(c.enclave.status().phase, Phase::WaitingForBoot);
    assert_refused(&c.post(&s1), ErrorCode::WrongPhase, "post-share");

    // Nonce memory lives in the process: the same manifest boots the new process, with a new
    // ephemeral key that no old bundle was encrypted to.
    let second = c.boot();
    assert_ne!(first, second);
    for old in [&s0, &s1] {
        assert_refused(&c.post(old), ErrorCode::Rejected, "another boot");
    }
    assert!(c.enclave.status().shares_from.is_empty());
    c.complete_with(&[0, 1, 2]);
}

/// Member `i` fetches a request bundle through `relay`, checks it, and writes a share bundle.
fn share_bundle_via(relay: &RelayProc, c: &mut Ceremony, i: usize) -> Vec<u8> {
    let (code, body) = relay.http("GET", "/v1/request-bundle", b"");
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    let bundle = Bundle::decode(&body).unwrap();
    assert_eq!(bundle.kind(), BundleKind::Request);
    let req = ProvisionRequest::decode(bundle.payload()).unwrap();
    assert_eq!(req.envelope, c.envelope);
    let eph = member_checks_request(&req.envelope, &req.attestation, &c.enclave.root);
    let m = req.envelope.manifest.clone();
    let sub = c.share_for(i, &m, &eph);
    let meta = Metadata {
        member: Some(c.members[i].alias().to_owned()),
        ..Metadata::default()
    };
    Bundle::new(BundleKind::Share, meta, cbor::encode(&sub))
        .unwrap()
        .encode()
}

fn post_bundle(relay: &RelayProc, bundle: &[u8]) -> serde_json::Value {
    let (code, body) = relay.http("POST", "/v1/share-bundle", bundle);
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    serde_json::from_slice(&body).unwrap()
}

#[test]
fn relay_restarted_mid_provisioning_loses_nothing() {
    let mut c = Ceremony::new(5, 3);
    let relay = RelayProc::start(&c.enclave.addr);
    let (code, body) = relay.http("POST", "/v1/boot", &c.envelope.encode());
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    assert!(matches!(
        Response::decode(&body).unwrap(),
        Response::Booted { .. }
    ));

    let b0 = share_bundle_via(&relay, &mut c, 0);
    assert_eq!(post_bundle(&relay, &b0)["received"], 1);
    // m1 fetched a request and signed offline while the relay was still up.
    let b1 = share_bundle_via(&relay, &mut c, 1);
    relay.kill();

    let relay = RelayProc::start(&c.enclave.addr);
    let (code, body) = relay.http("GET", "/v1/status", b"");
    assert_eq!(code, 200);
    let status: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(status["phase"], "waiting-for-shares");
    assert_eq!(status["shares_from"], serde_json::json!(["m0"]));

    // The bundle made from the old relay's request is still good: same boot, same key.
    assert_eq!(post_bundle(&relay, &b1)["received"], 2);
    // m2 re-fetches from the new relay and finishes the ceremony.
    let b2 = share_bundle_via(&relay, &mut c, 2);
    let done = post_bundle(&relay, &b2);
    assert_eq!(done["provisioned"], true);

    let message = b"through the new relay".to_vec();
    let req = AppRequest::Sign {
        message: ByteBuf::from(message.clone()),
    };
    let (code, body) = relay.http("POST", "/v1/app", &cbor::encode(&req));
    assert_eq!(code, 200);
    let Response::AppSignature { signature } = Response::decode(&body).unwrap() else {
        panic!("no signature")
    };
    c.manifest()
        .namespace
        .quorum_public_key
        .signing
        .verify(
            &signed_message(Purpose::AppMessage, &Hash32::sha256(&message)),
            &signature,
        )
        .unwrap();
}
