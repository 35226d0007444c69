//! Ceremony objects beyond the manifest: member descriptors, genesis, patches and share posts.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::bytes::{ByteArray, Hash32};
use crate::cbor::{self, CborError};
use crate::keys::{PublicKey, Role, Signature};
use crate::manifest::{MemberSet, QuorumPublicKey};
use crate::sign::Approval;

/// Format version of every object in this module.
pub const OBJECT_VERSION: u32 = 1;

/// One role key in a member descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DescriptorKey {
    pub role: Role,
    pub public_key: PublicKey,
    /// PIV slot holding the key (informational).
    pub slot: Option<u8>,
}

/// The public file a member hands the coordinator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberDescriptor {
    pub version: u32,
    pub alias: String,
    /// "yubikey" or "software" (dev/test only).
    pub device: crate::device::DeviceKind,
    /// YubiKey serial (informational).
    pub serial: Option<u32>,
    pub keys: Vec<DescriptorKey>,
    /// RFC 3339, UTC.
    pub created_at: String,
    /// Proof that the keys were generated on a YubiKey (`tessera_core::yubikey_attest`).
    /// Omitted from the encoding when absent, so descriptors without it keep their bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attestation: Option<PivAttestation>,
}

/// A YubiKey's PIV attestation of a descriptor's keys: the device's attestation certificate
/// (slot `f9`, issued by Yubico) and, per role key, the card's ATTEST certificate for its slot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PivAttestation {
    /// DER of slot `f9`'s certificate.
    pub device_certificate: ByteBuf,
    pub slots: Vec<SlotCertificate>,
}

/// The card's ATTEST answer for one role key's slot (DER).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlotCertificate {
    pub role: Role,
    pub certificate: ByteBuf,
}

impl MemberDescriptor {
    #[must_use]
    pub fn key(&self, role: Role) -> Option<PublicKey> {
        self.keys
            .iter()
            .find(|k| k.role == role)
            .map(|k| k.public_key)
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, CborError> {
        let d: Self = cbor::decode_bounded(bytes, 64 * 1024, "member descriptor")?;
        let mut roles: Vec<Role> = d.keys.iter().map(|k| k.role).collect();
        roles.sort();
        roles.dedup();
        if roles.len() != d.keys.len() || d.version != OBJECT_VERSION {
            return Err(CborError::Malformed {
                what: "member descriptor",
                reason: "unsupported version or a role listed twice".to_owned(),
            });
        }
        Ok(d)
    }
}

/// What the coordinator asks a genesis enclave to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisRequest {
    pub version: u32,
    pub namespace: String,
    /// Share-set members (their Share keys) and the reconstruction threshold.
    pub share_set: MemberSet,
    /// An offline disaster-recovery key (an age recipient, `age1…` or `age1yubikey1…`) the
    /// enclave also wraps the whole seed to (`docs/runbook.md`). Omitted from the encoding
    /// when absent, so requests without it keep their bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dr_recipient: Option<String>,
    /// The namespace's first Manifest set (members' Manifest keys and threshold). The enclave
    /// copies it into the attested genesis body, where each member's `genesis verify` pins it:
    /// the set whose approvals a member accepts is anchored at genesis, never learned from a
    /// later manifest (docs/member-trust.md). Omitted from the encoding when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest_set: Option<MemberSet>,
}

impl MemberDescriptor {
    /// Checks the alias as a manifest would ([`crate::manifest::check_alias`]): printable,
    /// 1 to 64 bytes, no bidirectional controls.
    pub fn check_alias(&self) -> Result<(), &'static str> {
        crate::manifest::check_alias(&self.alias)
    }
}

/// One member's share as genesis produced it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisShare {
    pub alias: String,
    pub share_key: PublicKey,
    pub commitment: Hash32,
    /// An age file to the member's Share key (`piv-p256`), plaintext `x || y`.
    pub encrypted_share: ByteBuf,
}

/// Everything in a genesis output except the test signature, which signs its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisBody {
    pub version: u32,
    pub namespace: String,
    pub quorum_public_key: QuorumPublicKey,
    pub threshold: u8,
    pub shares: Vec<GenesisShare>,
    /// The seed wrapped to the disaster-recovery key, when genesis was asked for one. Inside
    /// the body, so both the test signature and the genesis attestation bind it. Omitted from
    /// the encoding when absent, so outputs without it keep their bytes and hashes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dr: Option<DrWrap>,
    /// The Manifest set this output anchors: at genesis the request's, at a reshard the
    /// running manifest's. Inside the body, so the attestation and the test signature bind it.
    /// Omitted from the encoding when absent, so older outputs keep their bytes; a member's pin
    /// cannot be anchored by an output without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest_set: Option<MemberSet>,
}

/// The whole quorum seed wrapped to an offline disaster-recovery key (`tessera_core::dr`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrWrap {
    /// The age recipient as text: `age1…` (X25519) or `age1yubikey1…` (`piv-p256`).
    pub recipient: String,
    /// An age file to `recipient` whose plaintext is the 32-byte seed.
    pub encrypted_seed: ByteBuf,
}

/// The result of genesis, bound into the genesis attestation (`user_data` = its hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisOutput {
    pub body: GenesisBody,
    /// By the new quorum signing key, purpose `genesis`, over the body's hash: proves the
    /// published quorum public key belongs to the seed that was split.
    pub test_signature: Signature,
}

impl GenesisOutput {
    #[must_use]
    pub fn hash(&self) -> Hash32 {
        cbor::hash(self)
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, CborError> {
        cbor::decode_bounded(bytes, 4 * 1024 * 1024, "genesis output")
    }

    /// Checks the test signature against the published quorum key.
    pub fn verify_test_signature(&self) -> Result<(), crate::keys::KeyError> {
        self.body.quorum_public_key.signing.verify(
            &crate::sign::signed_message(crate::sign::Purpose::Genesis, &cbor::hash(&self.body)),
            &self.test_signature,
        )
    }
}

/// A live configuration change for a provisioned enclave.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Patch {
    pub version: u32,
    pub namespace: String,
    /// The manifest the patch applies to.
    pub manifest_hash: Hash32,
    /// Must rise with every patch applied under one manifest.
    pub sequence: u64,
    pub settings: BTreeMap<String, String>,
}

impl Patch {
    #[must_use]
    pub fn hash(&self) -> Hash32 {
        cbor::hash(self)
    }
}

/// A patch with Patch-set approvals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchEnvelope {
    pub patch: Patch,
    pub approvals: Vec<Approval>,
}

/// A re-split of the quorum key to a new share set, approved by the Manifest set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reshard {
    pub version: u32,
    pub namespace: String,
    pub manifest_hash: Hash32,
    pub new_share_set: MemberSet,
}

impl Reshard {
    #[must_use]
    pub fn hash(&self) -> Hash32 {
        cbor::hash(self)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReshardEnvelope {
    pub reshard: Reshard,
    pub approvals: Vec<Approval>,
}

/// What a member's Share key signs when handing their share to one booted enclave.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SharePost {
    pub version: u32,
    pub manifest_hash: Hash32,
    /// The enclave's ephemeral X25519 key from this boot's attestation.
    pub ephemeral_key: ByteArray<32>,
    /// The member's Share key.
    pub member: PublicKey,
    /// SHA-256 of the age file below.
    pub encrypted_share_sha256: Hash32,
}

impl SharePost {
    #[must_use]
    pub fn hash(&self) -> Hash32 {
        cbor::hash(self)
    }
}

/// A share on its way to the enclave: the share re-encrypted to the ephemeral key, with the
/// member's signed receipt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShareSubmission {
    pub post: SharePost,
    /// By the member's Share key, purpose `share-post`, over the post's hash.
    pub receipt: Approval,
    /// age file to the ephemeral X25519 key, plaintext `x || y`.
    pub encrypted_share: ByteBuf,
}

impl ShareSubmission {
    pub fn decode(bytes: &[u8]) -> Result<Self, CborError> {
        cbor::decode_bounded(bytes, 64 * 1024, "share submission")
    }
}

/// What a member needs to provision one booted enclave: the approved manifest envelope and a
/// fresh attestation document binding its hash and the enclave's ephemeral key. Travels in a
/// `request` bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProvisionRequest {
    pub version: u32,
    pub envelope: crate::manifest::ManifestEnvelope,
    /// `COSE_Sign1` attestation document: `user_data` = manifest hash, `public_key` = ephemeral key.
    pub attestation: ByteBuf,
}

impl ProvisionRequest {
    pub fn decode(bytes: &[u8]) -> Result<Self, CborError> {
        let r: Self = cbor::decode_bounded(bytes, 1 << 20, "provision request")?;
        r.envelope
            .manifest
            .validate()
            .map_err(|e| CborError::Malformed {
                what: "provision request",
                reason: e.to_string(),
            })?;
        Ok(r)
    }
}
