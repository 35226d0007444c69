//! Key forwarding: a provisioned enclave hands the Quorum Key to a newly booted enclave of the
//! same namespace, so only the first node of a namespace needs a share ceremony.
//!
//! The exchange, with the host carrying every message (see `docs/forwarding.md`):
//!
//! 1. the exporting node issues a single-use random challenge;
//! 2. the joining node (booted with `join`, waiting for a forwarded key) attests with
//!    `user_data` = its manifest hash, `public_key` = its fresh X25519 ephemeral key and
//!    `nonce` = the challenge; with the envelope it booted this is a [`ForwardRequest`];
//! 3. the exporting node decides with [`check_join`], using its own clock, its own trust anchor
//!    and the manifest it booted, then encrypts the seed to the ephemeral key and signs the
//!    [`ForwardBody`] with the quorum key ([`Purpose::KeyForward`]);
//! 4. the joining node accepts the key only through [`ForwardExport::open`].
//!
//! So the host can delay or drop messages, never read the key (it is encrypted to a key born in
//! an attested enclave) nor alter it (the export is signed by the quorum key the joining node's
//! own manifest names).

use std::time::Duration;

use p256::ecdsa::signature::Signer;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use time::OffsetDateTime;
use zeroize::Zeroizing;

use crate::age_share;
use crate::attestation::{self, AttestationError, Policy, TrustAnchor};
use crate::bytes::{ByteArray, Hash32};
use crate::cbor::{self, CborError};
use crate::keys::Signature;
use crate::manifest::{Manifest, ManifestEnvelope};
use crate::protocol::MAX_FRAME;
use crate::quorum::{QuorumSeed, x25519_recipient};
use crate::sign::{Purpose, signed_message};

/// Format version of [`ForwardRequest`] and [`ForwardBody`].
pub const FORWARD_VERSION: u32 = 1;

/// Bytes of an exporter's challenge.
pub const CHALLENGE_LEN: usize = 32;

/// Default age limit of a joining node's document (and lifetime of a challenge), judged by the
/// exporting node's clock. Long enough for a relay round trip on a loaded host, short enough
/// that a captured document is soon worthless even before its challenge is spent.
pub const MAX_DOCUMENT_AGE: Duration = Duration::from_mins(2);

/// Largest age file an export may carry: a 32-byte seed is about 200 bytes of age.
const MAX_ENCRYPTED_KEY: usize = 1024;

/// What a joining node sends an exporting node: the envelope it booted and its attestation
/// document, bound to the exporter's challenge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardRequest {
    pub version: u32,
    pub envelope: ManifestEnvelope,
    pub document: ByteBuf,
}

impl ForwardRequest {
    /// Strict, bounded decode (untrusted bytes from the host).
    pub fn decode(bytes: &[u8]) -> Result<Self, CborError> {
        cbor::decode_bounded(bytes, MAX_FRAME, "forward request")
    }

    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        cbor::encode(self)
    }
}

/// What the quorum key signs when it forwards itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardBody {
    pub version: u32,
    pub namespace: String,
    /// The joining node's manifest hash, as its document binds it.
    pub manifest_hash: Hash32,
    /// The joining node's X25519 ephemeral key, as its document binds it; the seed is encrypted
    /// to it.
    pub recipient_key: ByteArray<32>,
    /// SHA-256 of the document this export answers, for the logs of both sides.
    pub document_sha256: Hash32,
    /// An age file to `recipient_key` whose plaintext is the 32-byte seed.
    pub encrypted_key: ByteBuf,
}

impl ForwardBody {
    #[must_use]
    pub fn hash(&self) -> Hash32 {
        cbor::hash(self)
    }
}

/// A forwarded Quorum Key: the body and the quorum key's signature over it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardExport {
    pub body: ForwardBody,
    /// ECDSA P-256 by the quorum signing key over
    /// `signed_message(Purpose::KeyForward, body.hash())`.
    pub signature: Signature,
}

/// Why a forward was refused. Each names what to check next; none carries secret material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ForwardError {
    #[error("unsupported forward format version {0}")]
    Version(u32),
    #[error("the joining node's attestation does not verify: {0}")]
    Attestation(#[from] AttestationError),
    #[error(
        "the document is not bound to a challenge this node has outstanding (replayed, expired, or from another exchange); start the forward again"
    )]
    UnknownChallenge,
    #[error(
        "the document binds no X25519 ephemeral key: the node is not waiting for a forwarded key (already provisioned, or booted for shares)"
    )]
    NoEphemeralKey,
    #[error(
        "the joining node runs another image: PCR{index} is {found}, this namespace runs {expected}"
    )]
    OtherImage {
        index: u8,
        expected: String,
        found: String,
    },
    #[error("the document is bound to another manifest than the envelope sent with it")]
    EnvelopeMismatch,
    #[error("the joining node booted namespace {found:?}, this node serves {expected:?}")]
    OtherNamespace { expected: String, found: String },
    #[error("the joining node's manifest names another quorum key")]
    OtherQuorumKey,
    #[error(
        "the joining node's manifest has nonce {found}, not above {own}, the nonce of the manifest this node booted (a different manifest must be newer)"
    )]
    NonceNotAbove { own: u64, found: u64 },
    #[error("the joining node's manifest changes {0}; forwarding needs the same one")]
    Changed(&'static str),
    #[error("the joining node's manifest: {0}")]
    Manifest(String),
    #[error("the export is for {0}")]
    NotForUs(&'static str),
    #[error("the export's signature is not by the manifest's quorum key (altered in transit?)")]
    BadSignature,
    #[error("the export does not decrypt with this node's ephemeral key")]
    Decrypt,
    #[error("the forwarded key does not match the manifest's quorum public key")]
    WrongKey,
    #[error("cannot build the export: {0}")]
    Build(String),
}

/// A joining node the exporting node may forward the key to: the outcome of [`check_join`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceptedJoin {
    pub namespace: String,
    pub manifest_hash: Hash32,
    pub recipient_key: ByteArray<32>,
    pub document_sha256: Hash32,
    /// The challenge the document binds; the caller spends it.
    pub challenge: Vec<u8>,
}

/// The exporting node's whole decision: may the quorum key go to the node that sent `request`?
///
/// `own` is the envelope this node booted (and was provisioned under), `anchor` and `now` are
/// this node's own trust anchor and clock, and `is_outstanding` says whether a challenge was
/// issued by this node and not yet spent. Checks, in order: the document verifies (chain to
/// `anchor`, signature, not debug, at most `max_age` old and not from the future); it binds an
/// outstanding challenge; it binds a 32-byte ephemeral key; PCR0-3 are this namespace's; it
/// binds the hash of the envelope sent with it; and that manifest is this node's own or a newer
/// one of the same namespace, quorum key, image and Manifest set, approved at threshold by the
/// Manifest set this node booted with.
pub fn check_join(
    own: &ManifestEnvelope,
    request: &ForwardRequest,
    anchor: &TrustAnchor,
    now: OffsetDateTime,
    max_age: Duration,
    is_outstanding: impl Fn(&[u8]) -> bool,
) -> Result<AcceptedJoin, ForwardError> {
    if request.version != FORWARD_VERSION {
        return Err(ForwardError::Version(request.version));
    }
    let mine = &own.manifest;
    // The default policy refuses debug enclaves; the age bound refuses stale documents.
    let doc = attestation::verify(
        &request.document,
        anchor,
        now,
        &Policy::new().max_age(max_age),
    )?;
    let challenge = doc.nonce().ok_or(ForwardError::UnknownChallenge)?;
    if challenge.len() != CHALLENGE_LEN || !is_outstanding(challenge) {
        return Err(ForwardError::UnknownChallenge);
    }
    let recipient_key = doc
        .public_key()
        .and_then(|k| ByteArray::<32>::try_from(k).ok())
        .ok_or(ForwardError::NoEphemeralKey)?;
    let spec = &mine.enclave;
    for (index, expected) in [
        (0u8, &spec.pcr0),
        (1, &spec.pcr1),
        (2, &spec.pcr2),
        (3, &spec.pcr3),
    ] {
        let found = doc.pcr(index);
        if found != Some(expected.0.as_slice()) {
            return Err(ForwardError::OtherImage {
                index,
                expected: expected.to_hex()[..16].to_owned(),
                found: found.map_or_else(
                    || "absent".to_owned(),
                    |f| hex::encode(f).chars().take(16).collect(),
                ),
            });
        }
    }
    let theirs = &request.envelope.manifest;
    let manifest_hash = theirs.hash();
    if doc.user_data() != Some(manifest_hash.0.as_slice()) {
        return Err(ForwardError::EnvelopeMismatch);
    }
    if manifest_hash != mine.hash() {
        check_newer_manifest(mine, &request.envelope)?;
    }
    Ok(AcceptedJoin {
        namespace: theirs.namespace.name.clone(),
        manifest_hash,
        recipient_key,
        document_sha256: Hash32::sha256(&request.document),
        challenge: challenge.to_vec(),
    })
}

/// A manifest other than the exporter's own: same namespace, quorum key, image and Manifest
/// set, a strictly higher nonce, approved at threshold by the exporter's Manifest set.
fn check_newer_manifest(mine: &Manifest, theirs: &ManifestEnvelope) -> Result<(), ForwardError> {
    let m = &theirs.manifest;
    if m.namespace.name != mine.namespace.name {
        return Err(ForwardError::OtherNamespace {
            expected: mine.namespace.name.clone(),
            found: m.namespace.name.clone(),
        });
    }
    if m.namespace.quorum_public_key != mine.namespace.quorum_public_key {
        return Err(ForwardError::OtherQuorumKey);
    }
    m.validate()
        .map_err(|e| ForwardError::Manifest(e.to_string()))?;
    // Two different manifests at one nonce are a fork; only a newer one may join.
    if m.namespace.nonce <= mine.namespace.nonce {
        return Err(ForwardError::NonceNotAbove {
            own: mine.namespace.nonce,
            found: m.namespace.nonce,
        });
    }
    if m.enclave != mine.enclave {
        return Err(ForwardError::Changed("the enclave image (PCRs)"));
    }
    if m.manifest_set != mine.manifest_set {
        return Err(ForwardError::Changed("the Manifest set"));
    }
    crate::sign::check_threshold(
        &mine.manifest_set,
        Purpose::Manifest,
        &m.hash(),
        &theirs.approvals,
    )
    .require()
    .map_err(|e| ForwardError::Manifest(format!("approvals by this node's Manifest set: {e}")))
}

impl ForwardExport {
    /// Encrypts `seed` to the accepted node's ephemeral key and signs the result with the quorum
    /// key. Only call with the outcome of [`check_join`].
    pub fn seal(seed: &QuorumSeed, join: &AcceptedJoin) -> Result<Self, ForwardError> {
        let encrypted =
            age_share::encrypt(seed.as_bytes(), &[&x25519_recipient(&join.recipient_key)])
                .map_err(|e| ForwardError::Build(e.to_string()))?;
        let body = ForwardBody {
            version: FORWARD_VERSION,
            namespace: join.namespace.clone(),
            manifest_hash: join.manifest_hash,
            recipient_key: join.recipient_key,
            document_sha256: join.document_sha256,
            encrypted_key: ByteBuf::from(encrypted),
        };
        let sig: p256::ecdsa::Signature = seed
            .signing_key()
            .sign(&signed_message(Purpose::KeyForward, &body.hash()));
        Ok(Self {
            body,
            signature: Signature::from_ecdsa(&sig),
        })
    }

    /// Strict, bounded decode (untrusted bytes from the host).
    pub fn decode(bytes: &[u8]) -> Result<Self, CborError> {
        cbor::decode_bounded(bytes, 16 * 1024, "forward export")
    }

    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        cbor::encode(self)
    }

    /// The joining node's whole decision: the seed, if this export is for the node that booted
    /// `manifest` (hash `manifest_hash`) with `ephemeral` (public half `ephemeral_key`), is signed
    /// by that manifest's quorum key, decrypts, and is that quorum key.
    pub fn open(
        &self,
        manifest: &Manifest,
        manifest_hash: &Hash32,
        ephemeral: &age::x25519::Identity,
        ephemeral_key: &ByteArray<32>,
    ) -> Result<QuorumSeed, ForwardError> {
        let b = &self.body;
        if b.version != FORWARD_VERSION {
            return Err(ForwardError::Version(b.version));
        }
        if b.namespace != manifest.namespace.name {
            return Err(ForwardError::NotForUs("another namespace"));
        }
        if b.manifest_hash != *manifest_hash {
            return Err(ForwardError::NotForUs("another manifest"));
        }
        if b.recipient_key != *ephemeral_key {
            return Err(ForwardError::NotForUs(
                "another node or boot (its ephemeral key differs)",
            ));
        }
        let quorum = &manifest.namespace.quorum_public_key;
        quorum
            .signing
            .verify(
                &signed_message(Purpose::KeyForward, &b.hash()),
                &self.signature,
            )
            .map_err(|_| ForwardError::BadSignature)?;
        if b.encrypted_key.len() > MAX_ENCRYPTED_KEY {
            return Err(ForwardError::Decrypt);
        }
        let plain =
            age_share::decrypt(&b.encrypted_key, ephemeral).map_err(|_| ForwardError::Decrypt)?;
        if plain.len() != 32 {
            return Err(ForwardError::WrongKey);
        }
        let mut bytes = Zeroizing::new([0u8; 32]);
        bytes.copy_from_slice(&plain);
        drop(plain);
        let seed = QuorumSeed::from_bytes(*bytes);
        if seed.public_key() != *quorum {
            return Err(ForwardError::WrongKey);
        }
        Ok(seed)
    }
}
