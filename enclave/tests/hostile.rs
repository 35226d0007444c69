//! The hostile host: every message below is something a compromised parent instance or relay
//! could send. Each is refused with its own error, leaves the phase as it was, and the ceremony
//! still completes afterwards.

mod support;

use serde_bytes::ByteBuf;
use support::{
    Ceremony, approval, approve_envelope, assert_refused, devices, forge_submission, key,
};
use tessera_core::bytes::{ByteArray, Hash32, Pcr};
use tessera_core::device::approve;
use tessera_core::keys::Role;
use tessera_core::manifest::ManifestEnvelope;
use tessera_core::objects::{GenesisRequest, OBJECT_VERSION};
use tessera_core::protocol::{AppRequest, ErrorCode, Phase, Request, Response};
use tessera_core::sign::Purpose;

fn booted() -> Ceremony {
    let c = Ceremony::new(5, 3);
    c.boot();
    c
}

#[track_caller]
fn assert_shares(c: &Ceremony, expected: &[&str]) {
    let s = c.enclave.status();
    assert_eq!(s.phase, Phase::WaitingForShares);
    let mut from = s.shares_from;
    from.sort();
    assert_eq!(from, expected);
}

/// A byte-identical retry (the member's first answer was lost) is answered as already
/// accepted and changes nothing, before and after provisioning; any other late share is refused.
#[test]
fn a_replayed_share_bundle_is_already_accepted_and_changes_nothing() {
    let mut c = booted();
    let s0 = c.share(0);
    c.post_ok(&s0);
    let again = c.post(&s0);
    assert_eq!(
        again,
        Response::ShareAlreadyAccepted {
            member: "m0".to_owned(),
            received: 1,
            threshold: 3,
            provisioned: false,
        }
    );
    assert_shares(&c, &["m0"]);
    let late = c.share(4);
    c.complete_with(&[1, 2]);
    // After provisioning, the retry of a share that provisioned it is still recognised...
    assert_eq!(
        c.post(&s0),
        Response::ShareAlreadyAccepted {
            member: "m0".to_owned(),
            received: 3,
            threshold: 3,
            provisioned: true,
        }
    );
    // ...and a share that never was accepted is out of phase.
    assert_refused(&c.post(&late), ErrorCode::WrongPhase, "post-share");
    c.assert_app_signs();
}

#[test]
fn a_second_share_from_one_member_is_refused() {
    let mut c = booted();
    let first = c.share(1);
    c.post_ok(&first);
    // A fresh hand-over by the same member: new ciphertext and receipt, same member and share.
    let second = c.share(1);
    assert_ne!(first, second);
    assert_refused(&c.post(&second), ErrorCode::Rejected, "already posted");
    assert_shares(&c, &["m1"]);
    c.complete_with(&[1, 3, 4]);
}

#[test]
fn a_share_for_another_manifest_is_refused() {
    let mut c = booted();
    let mut other = c.manifest().clone();
    other.namespace.nonce = 2;
    let eph = c.request();
    let sub = c.share_for(0, &other, &eph);
    assert_refused(&c.post(&sub), ErrorCode::Rejected, "another manifest");
    assert_shares(&c, &[]);
    c.complete();
}

#[test]
fn a_share_for_another_ephemeral_key_is_refused() {
    let mut c = booted();
    let m = c.manifest().clone();
    let sub = c.share_for(0, &m, &ByteArray([7; 32]));
    assert_refused(&c.post(&sub), ErrorCode::Rejected, "another boot");
    assert_shares(&c, &[]);
    c.complete();
}

#[test]
fn a_share_failing_its_commitment_is_refused_and_the_others_complete() {
    let mut c = Ceremony::new(5, 3);
    // The coordinator's manifest carries a wrong commitment for m2.
    let mut m = c.manifest().clone();
    m.share_set.members[2].commitment = Hash32::sha256(b"not m2's share");
    c.envelope = approve_envelope(m, &mut c.members);
    let eph = c.boot();

    // The operator app refuses to hand over a share that fails its commitment...
    let m = c.manifest().clone();
    assert!(tessera_core::provision::hand_over(&m, &eph, &c.sealed[2], &mut c.members[2]).is_err());
    // ...and the enclave refuses it from a tool that does not check.
    let share = c.open(2);
    let m2 = key(&mut c.members[2], Role::Share);
    let sub = forge_submission(&m, &eph, &share, m2, &mut c.members[2]);
    assert_refused(&c.post(&sub), ErrorCode::Rejected, "commitment");
    assert_shares(&c, &[]);

    // Another member's genuine share, re-signed as m2's: its commitment is m4's, not m2's.
    let other = c.open(4);
    let sub = forge_submission(&m, &eph, &other, m2, &mut c.members[2]);
    assert_refused(&c.post(&sub), ErrorCode::Rejected, "commitment");
    c.complete_with(&[0, 1, 3]);
}

#[test]
fn receipts_by_the_wrong_key_and_tampered_shares_are_refused() {
    let mut c = booted();
    let eph = c.request();
    let m = c.manifest().clone();
    let share = c.open(0);
    let m0 = key(&mut c.members[0], Role::Share);

    // Signed by a non-member, claiming to be that non-member.
    let mut outsider = devices(1, 100).remove(0);
    let outsider_key = key(&mut outsider, Role::Share);
    let sub = forge_submission(&m, &eph, &share, outsider_key, &mut outsider);
    assert_refused(
        &c.post(&sub),
        ErrorCode::Rejected,
        "not a member of the share set",
    );

    // Signed by a non-member, claiming to be m0.
    let sub = forge_submission(&m, &eph, &share, m0, &mut outsider);
    assert_refused(&c.post(&sub), ErrorCode::Rejected, "share-post receipt");

    // Signed by another member (m1), claiming to be m0.
    let sub = forge_submission(&m, &eph, &share, m0, &mut c.members[1]);
    assert_refused(&c.post(&sub), ErrorCode::Rejected, "share-post receipt");

    // A receipt whose signer differs from the post's member.
    let mut sub = c.share_for(0, &m, &eph);
    sub.receipt = approve(&mut c.members[1], Purpose::SharePost, &sub.post.hash(), "r").unwrap();
    assert_refused(
        &c.post(&sub),
        ErrorCode::Rejected,
        "other than the posting member",
    );

    // A Manifest-key signature where a Share-key receipt belongs.
    let mut sub = c.share_for(0, &m, &eph);
    sub.receipt.role = Role::Manifest;
    assert_refused(&c.post(&sub), ErrorCode::Rejected, "share-post receipt");

    // The encrypted share swapped after signing.
    let mut sub = c.share_for(0, &m, &eph);
    let mut bytes = sub.encrypted_share.to_vec();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    sub.encrypted_share = ByteBuf::from(bytes);
    assert_refused(
        &c.post(&sub),
        ErrorCode::Rejected,
        "does not match the hash",
    );

    // Swapped with its hash updated: the receipt no longer verifies.
    let mut sub = c.share_for(0, &m, &eph);
    let other = c.share_for(0, &m, &eph);
    sub.encrypted_share = other.encrypted_share.clone();
    sub.post.encrypted_share_sha256 = Hash32::sha256(&other.encrypted_share);
    assert_refused(&c.post(&sub), ErrorCode::Rejected, "share-post receipt");

    // Garbage encrypted to nobody, properly signed by m0: does not decrypt.
    let mut sub = c.share_for(0, &m, &eph);
    sub.encrypted_share = ByteBuf::from(b"age-encryption.org/v1\n-> X25519 nope\n".to_vec());
    sub.post.encrypted_share_sha256 = Hash32::sha256(&sub.encrypted_share);
    sub.receipt = approve(&mut c.members[0], Purpose::SharePost, &sub.post.hash(), "r").unwrap();
    assert_refused(&c.post(&sub), ErrorCode::Rejected, "does not decrypt");

    assert_shares(&c, &[]);
    c.complete();
}

#[test]
fn boot_refuses_approvals_below_threshold_from_outsiders_or_twice_from_one_member() {
    let mut c = Ceremony::new(5, 3);
    let m = c.manifest().clone();
    let ok: Vec<_> = c.members.iter_mut().map(|d| approval(&m, d)).collect();
    let mut outsiders = devices(2, 100);
    let foreign: Vec<_> = outsiders.iter_mut().map(|d| approval(&m, d)).collect();
    let wrong_purpose = approve(&mut c.members[2], Purpose::Patch, &m.hash(), "p").unwrap();
    let mut other = m.clone();
    other.namespace.nonce = 9;
    let for_other_manifest = approval(&other, &mut c.members[2]);

    let cases = [
        ("below threshold", vec![ok[0].clone(), ok[1].clone()]),
        (
            "from non-members",
            vec![ok[0].clone(), foreign[0].clone(), foreign[1].clone()],
        ),
        (
            "twice from one member",
            vec![ok[0].clone(), ok[1].clone(), ok[1].clone()],
        ),
        (
            "wrong key role",
            vec![ok[0].clone(), ok[1].clone(), wrong_purpose],
        ),
        (
            "for another manifest",
            vec![ok[0].clone(), ok[1].clone(), for_other_manifest],
        ),
        ("none", vec![]),
    ];
    for (what, approvals) in cases {
        let env = ManifestEnvelope {
            manifest: m.clone(),
            approvals,
        };
        let response = c.enclave.call(&Request::Boot(env));
        assert_refused(&response, ErrorCode::Rejected, "of 3 required approvals");
        assert_eq!(c.enclave.status().phase, Phase::WaitingForBoot, "{what}");
    }
    c.boot();
    c.complete();
}

#[test]
fn boot_refuses_a_manifest_for_another_image_or_an_invalid_one() {
    let mut c = Ceremony::new(5, 3);
    let base = c.manifest().clone();

    let mut other_image = base.clone();
    other_image.enclave.pcr0 = Pcr::default();
    other_image.enclave.pcr0.0[0] = 1;
    let env = c.approved(other_image);
    assert_refused(
        &c.enclave.call(&Request::Boot(env)),
        ErrorCode::Rejected,
        "PCR0",
    );
    let mut other_kernel = base.clone();
    other_kernel.enclave.pcr2.0[47] ^= 1;
    let env = c.approved(other_kernel);
    assert_refused(
        &c.enclave.call(&Request::Boot(env)),
        ErrorCode::Rejected,
        "PCR2",
    );

    let mut debug = base.clone();
    debug.enclave.debug_allowed = true;
    let env = c.approved(debug);
    assert_refused(
        &c.enclave.call(&Request::Boot(env)),
        ErrorCode::Rejected,
        "debug_allowed",
    );
    let mut zero_nonce = base.clone();
    zero_nonce.namespace.nonce = 0;
    let env = c.approved(zero_nonce);
    assert_refused(
        &c.enclave.call(&Request::Boot(env)),
        ErrorCode::Rejected,
        "nonce",
    );
    assert_eq!(c.enclave.status().phase, Phase::WaitingForBoot);
    c.boot();
    c.complete();
}

#[test]
fn a_second_boot_is_out_of_phase_whatever_its_nonce() {
    let mut c = Ceremony::new(5, 3);
    let mut high = c.manifest().clone();
    high.namespace.nonce = 2;
    let high = c.approved(high);
    let eph = c.boot_envelope(&high);

    // Once booted, no manifest replaces the boot: neither an older nor a newer one, nor the same.
    let mut older = c.manifest().clone();
    older.namespace.nonce = 1;
    let older = c.approved(older);
    let mut newer = c.manifest().clone();
    newer.namespace.nonce = 3;
    let newer = c.approved(newer);
    for env in [&older, &newer, &high] {
        assert_refused(
            &c.enclave.call(&Request::Boot(env.clone())),
            ErrorCode::WrongPhase,
            "boot is not allowed while waiting-for-shares",
        );
    }
    let s = c.enclave.status();
    assert_eq!((s.nonce, s.ephemeral_key), (Some(2), Some(eph)));
    c.envelope = high;
    c.complete();
    assert_refused(
        &c.enclave.call(&Request::Boot(newer)),
        ErrorCode::WrongPhase,
        "boot is not allowed while provisioned",
    );
}

#[test]
fn requests_in_the_wrong_phase_are_refused() {
    let mut c = Ceremony::new(3, 2);
    let sign = Request::App(AppRequest::Sign {
        message: ByteBuf::from(b"x".to_vec()),
    });
    let genesis = {
        let mut d = devices(2, 50);
        Request::Genesis(GenesisRequest {
            version: OBJECT_VERSION,
            namespace: "other".to_owned(),
            share_set: tessera_core::manifest::MemberSet {
                threshold: 2,
                members: d
                    .iter_mut()
                    .map(|d| tessera_core::manifest::Member {
                        alias: d.alias().to_owned(),
                        public_key: key(d, Role::Share),
                    })
                    .collect(),
            },
            dr_recipient: None,
            manifest_set: None,
        })
    };

    // WaitingForBoot: no shares, no app.
    let early_eph = ByteArray([1; 32]);
    let m = c.manifest().clone();
    let early = c.share_for(0, &m, &early_eph);
    assert_refused(
        &c.enclave.call(&Request::PostShare(early)),
        ErrorCode::WrongPhase,
        "post-share is not allowed while waiting-for-boot",
    );
    assert_refused(&c.enclave.call(&sign), ErrorCode::WrongPhase, "app");

    // WaitingForShares: no genesis, no app.
    c.boot();
    assert_refused(&c.enclave.call(&genesis), ErrorCode::WrongPhase, "genesis");
    assert_refused(&c.enclave.call(&sign), ErrorCode::WrongPhase, "app");
    assert_shares(&c, &[]);

    // Provisioned: no genesis, no boot, no shares.
    c.complete();
    assert_refused(&c.enclave.call(&genesis), ErrorCode::WrongPhase, "genesis");
    assert_refused(
        &c.enclave.call(&Request::Boot(c.envelope.clone())),
        ErrorCode::WrongPhase,
        "boot",
    );
    c.assert_app_signs();

    // Status and attestation are allowed everywhere.
    assert!(matches!(
        c.enclave.call(&Request::Attestation { nonce: None }),
        Response::Attestation { .. }
    ));
    // An oversized attestation nonce is a bad request, not an NSM error.
    assert_refused(
        &c.enclave.call(&Request::Attestation {
            nonce: Some(ByteBuf::from(vec![0; 513])),
        }),
        ErrorCode::BadRequest,
        "nonce",
    );
}

#[test]
fn genesis_refuses_malformed_requests_and_changes_nothing() {
    let mut c = Ceremony::new(3, 2);
    let mut d = devices(3, 0);
    let members: Vec<_> = d
        .iter_mut()
        .map(|d| tessera_core::manifest::Member {
            alias: d.alias().to_owned(),
            public_key: key(d, Role::Share),
        })
        .collect();
    let request = |namespace: &str, threshold: u8, members: Vec<_>| {
        Request::Genesis(GenesisRequest {
            version: OBJECT_VERSION,
            namespace: namespace.to_owned(),
            share_set: tessera_core::manifest::MemberSet { threshold, members },
            dr_recipient: None,
            manifest_set: None,
        })
    };
    // A disaster-recovery recipient that is not an age recipient: refused before a seed exists.
    let dr = |members: Vec<_>, recipient: &str| {
        Request::Genesis(GenesisRequest {
            version: OBJECT_VERSION,
            namespace: "ok".to_owned(),
            share_set: tessera_core::manifest::MemberSet {
                threshold: 2,
                members,
            },
            dr_recipient: Some(recipient.to_owned()),
            manifest_set: None,
        })
    };
    let mut twice = members.clone();
    twice.push(members[0].clone());
    // "m0" with a right-to-left override: it would display as another name.
    let mut bidi = members.clone();
    bidi[1].alias = "\u{202E}0m".to_owned();
    let cases = [
        (request("", 2, members.clone()), "namespace"),
        (request("a/b", 2, members.clone()), "namespace"),
        (request("ok", 0, members.clone()), "threshold"),
        (request("ok", 4, members.clone()), "threshold"),
        (request("ok", 1, Vec::new()), "members"),
        (request("ok", 2, twice), "duplicate"),
        (request("ok", 2, bidi), "bidirectional"),
        (dr(members.clone(), "age1yubikey1notakey"), "dr_recipient"),
        (dr(members.clone(), "ssh-ed25519 AAAA"), "dr_recipient"),
        (dr(members.clone(), &"age1".repeat(100)), "dr_recipient"),
    ];
    for (req, needle) in cases {
        assert_refused(&c.enclave.call(&req), ErrorCode::Rejected, needle);
    }
    assert_eq!(c.enclave.status().phase, Phase::WaitingForBoot);
    c.boot();
    c.complete();
}

/// n - s for P-256, big-endian: the malleated twin of a signature's `s`.
fn negate_s(s: &[u8]) -> [u8; 32] {
    const ORDER: [u8; 32] = [
        0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63,
        0x25, 0x51,
    ];
    let mut out = [0u8; 32];
    let mut borrow = 0i16;
    for i in (0..32).rev() {
        let mut d = i16::from(ORDER[i]) - i16::from(s[i]) - borrow;
        borrow = i16::from(d < 0);
        if d < 0 {
            d += 256;
        }
        out[i] = u8::try_from(d).expect("a byte");
    }
    out
}

/// (r, n - s) is as valid an ECDSA signature as (r, s); a receipt carrying it is a second
/// encoding of the same submission and is refused, with nothing changed.
#[test]
fn a_malleated_high_s_receipt_is_refused() {
    let mut c = booted();
    let honest = c.share(2);
    let mut malleated = honest.clone();
    let sig = &mut malleated.receipt.signature.0.0;
    let high = negate_s(&sig[32..]);
    sig[32..].copy_from_slice(&high);
    assert!(malleated.receipt.signature.is_high_s());
    assert_refused(&c.post(&malleated), ErrorCode::Rejected, "low-S");
    assert!(c.enclave.status().shares_from.is_empty());
    c.post_ok(&honest);
    assert_shares(&c, &["m2"]);
    c.complete_with(&[0, 2, 4]);
}
