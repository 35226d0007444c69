//! `core::forward` with a fixed clock and dev-PKI documents: the exporter's decision
//! (`check_join`) on the time checks and debug mode, which the end-to-end tests on real
//! processes (`enclave/tests/forward.rs`) cannot make up, and the round trip `seal` -> `open`.

mod common;

use std::time::Duration;

use serde_bytes::ByteBuf;
use tessera_core::attestation::AttestationError;
use tessera_core::bytes::ByteArray;
use tessera_core::dev_pki::{DevCa, DevPki};
use tessera_core::device::approve;
use tessera_core::forward::{
    FORWARD_VERSION, ForwardError, ForwardExport, ForwardRequest, MAX_DOCUMENT_AGE, check_join,
};
use tessera_core::manifest::{Manifest, ManifestEnvelope};
use tessera_core::quorum::{QuorumSeed, x25519_recipient_bytes};
use tessera_core::sign::Purpose;
use time::OffsetDateTime;

const CHALLENGE: [u8; 32] = [0xc4; 32];

fn t0() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_780_000_000).unwrap()
}

fn ms(t: OffsetDateTime) -> u64 {
    u64::try_from(t.unix_timestamp()).unwrap() * 1000
}

struct Fixture {
    envelope: ManifestEnvelope,
    pki: DevPki,
    identity: age::x25519::Identity,
    ephemeral: ByteArray<32>,
}

impl Fixture {
    fn new() -> Self {
        let mut devs = common::members();
        let m: Manifest = common::manifest(&mut devs);
        let approvals = devs[..3]
            .iter_mut()
            .map(|d| approve(d, Purpose::Manifest, &m.hash(), "test").unwrap())
            .collect();
        let identity = age::x25519::Identity::generate();
        let ephemeral = x25519_recipient_bytes(&identity.to_public());
        Self {
            envelope: ManifestEnvelope {
                manifest: m,
                approvals,
            },
            pki: DevPki::generate_under(&DevCa::generate(t0()).unwrap(), t0()).unwrap(),
            identity,
            ephemeral,
        }
    }

    /// A joining node's request with a document made at `at`, PCR0 `pcr0`.
    fn request(&self, at: OffsetDateTime, pcr0: [u8; 48]) -> ForwardRequest {
        let spec = &self.envelope.manifest.enclave;
        let pcrs = vec![
            (0, pcr0.to_vec()),
            (1, spec.pcr1.0.to_vec()),
            (2, spec.pcr2.0.to_vec()),
            (3, spec.pcr3.0.to_vec()),
        ];
        let document = self
            .pki
            .document(
                ms(at),
                &pcrs,
                Some(&self.envelope.manifest.hash().0),
                Some(&CHALLENGE),
                Some(&self.ephemeral.0),
            )
            .unwrap();
        ForwardRequest {
            version: FORWARD_VERSION,
            envelope: self.envelope.clone(),
            document: ByteBuf::from(document),
        }
    }

    fn honest(&self, at: OffsetDateTime) -> ForwardRequest {
        self.request(at, self.envelope.manifest.enclave.pcr0.0)
    }

    fn check(&self, request: &ForwardRequest, now: OffsetDateTime) -> Result<(), ForwardError> {
        check_join(
            &self.envelope,
            request,
            &self.pki.anchor(),
            now,
            MAX_DOCUMENT_AGE,
            |c| c == CHALLENGE,
        )
        .map(|_| ())
    }
}

#[test]
fn an_honest_join_gets_the_key_sealed_to_its_ephemeral_key() {
    let f = Fixture::new();
    let request = f.honest(t0());
    let now = t0() + Duration::from_secs(5);
    let accepted = check_join(
        &f.envelope,
        &request,
        &f.pki.anchor(),
        now,
        MAX_DOCUMENT_AGE,
        |c| c == CHALLENGE,
    )
    .unwrap();
    assert_eq!(accepted.recipient_key, f.ephemeral);
    assert_eq!(accepted.challenge, CHALLENGE);
    let seed = QuorumSeed::from_bytes([0x42; 32]);
    let export = ForwardExport::seal(&seed, &accepted).unwrap();
    let m = &f.envelope.manifest;
    let opened = export
        .open(m, &m.hash(), &f.identity, &f.ephemeral)
        .unwrap();
    assert_eq!(opened.as_bytes(), seed.as_bytes());
    // Canonical both ways.
    assert_eq!(ForwardExport::decode(&export.encode()).unwrap(), export);
    assert_eq!(ForwardRequest::decode(&request.encode()).unwrap(), request);
    // Another identity cannot open it, even told the right public key.
    let other = age::x25519::Identity::generate();
    assert_eq!(
        export.open(m, &m.hash(), &other, &f.ephemeral).err(),
        Some(ForwardError::Decrypt)
    );
}

#[test]
fn the_exporter_judges_age_by_its_own_clock() {
    let f = Fixture::new();
    let request = f.honest(t0());
    f.check(&request, t0() + MAX_DOCUMENT_AGE).unwrap();
    assert!(matches!(
        f.check(&request, t0() + MAX_DOCUMENT_AGE + Duration::from_secs(1)),
        Err(ForwardError::Attestation(AttestationError::TooOld { .. }))
    ));
    let future = f.honest(t0() + Duration::from_mins(1));
    assert!(matches!(
        f.check(&future, t0()),
        Err(ForwardError::Attestation(
            AttestationError::FromTheFuture { .. }
        ))
    ));
}

#[test]
fn a_debug_enclave_or_another_image_is_refused() {
    let f = Fixture::new();
    let now = t0() + Duration::from_secs(1);
    assert!(matches!(
        f.check(&f.request(t0(), [0; 48]), now),
        Err(ForwardError::Attestation(AttestationError::DebugMode))
    ));
    assert!(matches!(
        f.check(&f.request(t0(), [0x77; 48]), now),
        Err(ForwardError::OtherImage { index: 0, .. })
    ));
    // A document by another (dev) root than the exporter's own anchor.
    let foreign = Fixture::new();
    let mut request = foreign.honest(t0());
    request.envelope = f.envelope.clone();
    assert!(matches!(
        f.check(&request, now),
        Err(ForwardError::Attestation(_))
    ));
}

#[test]
fn a_manifest_without_an_ingress_port_keeps_its_encoding() {
    let mut devs = common::members();
    let m = common::manifest(&mut devs);
    assert_eq!(m.pivot.ingress_port, None);
    let bytes = m.encode();
    assert!(
        !bytes.windows(12).any(|w| w == b"ingress_port"),
        "an absent ingress port is not encoded"
    );
    let mut with = m.clone();
    with.pivot.ingress_port = Some(5000);
    assert_ne!(with.hash(), m.hash());
    assert_eq!(Manifest::decode(&with.encode()).unwrap(), with);
    with.pivot.ingress_port = Some(0);
    assert!(with.validate().is_err());
}
