//! The manifest: what an enclave may run and who may provision it, and its envelope of approvals.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::bytes::{ByteArray, Hash32, Pcr};
use crate::cbor::{self, CborError};
use crate::keys::PublicKey;
use crate::sign::{Approval, Purpose, ThresholdReport, check_threshold};

/// The manifest format version this library writes and accepts.
pub const MANIFEST_VERSION: u32 = 1;

/// One member of a set: a display alias and the public key of the set's role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Member {
    pub alias: String,
    pub public_key: PublicKey,
}

/// A set of members and how many of them must agree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberSet {
    pub threshold: u8,
    pub members: Vec<Member>,
}

/// A Share-set member with the commitment of the share they hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShareMember {
    pub alias: String,
    /// The member's Share key (ECDH target of their share at rest; signs share-post receipts).
    pub public_key: PublicKey,
    /// `SHA-256("tessera/v1/share" || 0x00 || x || y)` of the member's share.
    pub commitment: Hash32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShareSet {
    pub threshold: u8,
    pub members: Vec<ShareMember>,
}

impl ShareSet {
    /// The same set as a plain [`MemberSet`] (aliases and Share keys) for threshold counting.
    #[must_use]
    pub fn as_member_set(&self) -> MemberSet {
        MemberSet {
            threshold: self.threshold,
            members: self
                .members
                .iter()
                .map(|m| Member {
                    alias: m.alias.clone(),
                    public_key: m.public_key,
                })
                .collect(),
        }
    }
}

/// The public half of a Quorum Key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuorumPublicKey {
    /// P-256 verifying key derived from the seed.
    pub signing: PublicKey,
    /// X25519 public key of the seed's age identity.
    pub encryption: ByteArray<32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Namespace {
    pub name: String,
    /// Must rise with every manifest of the namespace; an enclave refuses one not above the last
    /// it accepted and a member's app refuses to approve one not above the last they approved.
    pub nonce: u64,
    pub quorum_public_key: QuorumPublicKey,
    /// The disaster-recovery key the genesis wrapped the whole seed to (an age recipient), so
    /// members approving a manifest see that one exists (`tessera_core::dr`). Omitted from the
    /// encoding when absent, so manifests without it keep their bytes and hashes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dr_recipient: Option<String>,
}

/// The enclave image the manifest allows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnclaveSpec {
    pub pcr0: Pcr,
    pub pcr1: Pcr,
    pub pcr2: Pcr,
    pub pcr3: Pcr,
    /// Always false in a valid manifest: debug enclaves expose their memory to the host.
    pub debug_allowed: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    Never,
    Always,
}

/// The application the enclave hands the Quorum Key to once provisioned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pivot {
    pub app_sha256: Hash32,
    pub args: Vec<String>,
    pub restart: RestartPolicy,
    /// The vsock port the app listens on inside the enclave for requests from outside, which
    /// the relay bridges a host TCP port to once the enclave is provisioned
    /// (`docs/forwarding.md`). Absent: the app takes no outside traffic. Omitted from the
    /// encoding when absent, so manifests without it keep their bytes and hashes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress_port: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub version: u32,
    pub namespace: Namespace,
    pub enclave: EnclaveSpec,
    pub pivot: Pivot,
    pub manifest_set: MemberSet,
    pub share_set: ShareSet,
    pub patch_set: MemberSet,
}

/// A manifest that fails validation, naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
    #[error(transparent)]
    Encoding(#[from] CborError),
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> ManifestError {
    ManifestError::Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}

/// Characters that reorder the text around them (bidirectional embeddings, overrides, isolates
/// and marks): an alias containing one could display as another member's name.
pub const BIDI_CONTROLS: [char; 12] = [
    '\u{200E}', '\u{200F}', '\u{061C}', '\u{202A}', '\u{202B}', '\u{202C}', '\u{202D}', '\u{202E}',
    '\u{2066}', '\u{2067}', '\u{2068}', '\u{2069}',
];

/// An alias is 1 to 64 bytes of printable text: not blank, no control characters, no
/// bidirectional controls ([`BIDI_CONTROLS`]).
pub fn check_alias(alias: &str) -> Result<(), &'static str> {
    if alias.trim().is_empty() || alias.len() > 64 || alias.chars().any(char::is_control) {
        return Err("must be 1 to 64 printable characters");
    }
    if alias.chars().any(|c| BIDI_CONTROLS.contains(&c)) {
        return Err(
            "must not contain bidirectional control characters (U+202A-U+202E, U+2066-U+2069, U+200E, U+200F, U+061C)",
        );
    }
    Ok(())
}

/// Checks `1 <= threshold <= members <= 255`, non-empty unique aliases, unique keys.
pub fn validate_set<'a>(
    field: &str,
    threshold: u8,
    members: impl ExactSizeIterator<Item = (&'a str, &'a PublicKey)>,
) -> Result<(), ManifestError> {
    let n = members.len();
    if n == 0 || n > 255 {
        return Err(invalid(
            format!("{field}.members"),
            format!("must have 1 to 255 members, has {n}"),
        ));
    }
    if threshold == 0 || usize::from(threshold) > n {
        return Err(invalid(
            format!("{field}.threshold"),
            format!("must be between 1 and the member count {n}, is {threshold}"),
        ));
    }
    let mut aliases = BTreeSet::new();
    let mut keys = BTreeSet::new();
    for (i, (alias, key)) in members.enumerate() {
        if let Err(reason) = check_alias(alias) {
            return Err(invalid(format!("{field}.members[{i}].alias"), reason));
        }
        if !aliases.insert(alias) {
            return Err(invalid(
                format!("{field}.members[{i}].alias"),
                format!("duplicate alias {alias:?}"),
            ));
        }
        if !keys.insert(*key) {
            return Err(invalid(
                format!("{field}.members[{i}].public_key"),
                format!("duplicate key {}", key.fingerprint()),
            ));
        }
    }
    Ok(())
}

impl MemberSet {
    /// [`validate_set`] for this set, errors naming `field`.
    pub fn validate(&self, field: &str) -> Result<(), ManifestError> {
        validate_set(
            field,
            self.threshold,
            self.members
                .iter()
                .map(|m| (m.alias.as_str(), &m.public_key)),
        )
    }
}

impl Manifest {
    /// Structural checks beyond what decoding enforces.
    pub fn validate(&self) -> Result<(), ManifestError> {
        if self.version != MANIFEST_VERSION {
            return Err(invalid(
                "version",
                format!("unsupported version {}", self.version),
            ));
        }
        let name = &self.namespace.name;
        if name.is_empty()
            || name.len() > 64
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(invalid(
                "namespace.name",
                "must be 1 to 64 characters of [A-Za-z0-9._-]",
            ));
        }
        if self.namespace.nonce == 0 {
            return Err(invalid("namespace.nonce", "must be at least 1"));
        }
        if self.enclave.debug_allowed {
            return Err(invalid(
                "enclave.debug_allowed",
                "must be false: a debug enclave's memory is readable by the host",
            ));
        }
        for (field, pcr) in [
            ("enclave.pcr0", &self.enclave.pcr0),
            ("enclave.pcr1", &self.enclave.pcr1),
            ("enclave.pcr2", &self.enclave.pcr2),
        ] {
            if pcr.0 == [0; 48] {
                return Err(invalid(field, "all zero (a debug-mode measurement)"));
            }
        }
        if let Some(r) = &self.namespace.dr_recipient {
            r.parse::<crate::dr::DrRecipient>()
                .map_err(|e| invalid("namespace.dr_recipient", e.to_string()))?;
        }
        if let Some(port) = self.pivot.ingress_port
            && (port == 0 || port == u32::MAX)
        {
            return Err(invalid(
                "pivot.ingress_port",
                format!("{port} is not a vsock port an app can listen on (1 to 4294967294)"),
            ));
        }
        self.manifest_set.validate("manifest_set")?;
        validate_set(
            "share_set",
            self.share_set.threshold,
            self.share_set
                .members
                .iter()
                .map(|m| (m.alias.as_str(), &m.public_key)),
        )?;
        self.patch_set.validate("patch_set")?;
        let mut commitments = BTreeSet::new();
        for (i, m) in self.share_set.members.iter().enumerate() {
            if !commitments.insert(m.commitment) {
                return Err(invalid(
                    format!("share_set.members[{i}].commitment"),
                    "duplicate commitment",
                ));
            }
        }
        Ok(())
    }

    /// Canonical bytes.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        cbor::encode(self)
    }

    /// Strict decode followed by [`Manifest::validate`].
    pub fn decode(bytes: &[u8]) -> Result<Self, ManifestError> {
        let m: Self = cbor::decode(bytes, "manifest")?;
        m.validate()?;
        Ok(m)
    }

    /// SHA-256 of the canonical encoding: what approvals sign and attestations bind.
    #[must_use]
    pub fn hash(&self) -> Hash32 {
        cbor::hash(self)
    }

    /// Counts approvals by distinct Manifest-set members.
    #[must_use]
    pub fn check_approvals(&self, approvals: &[Approval]) -> ThresholdReport {
        check_threshold(
            &self.manifest_set,
            Purpose::Manifest,
            &self.hash(),
            approvals,
        )
    }
}

/// A manifest with the approvals collected for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestEnvelope {
    pub manifest: Manifest,
    /// Manifest-set approvals over the manifest hash.
    pub approvals: Vec<Approval>,
}

impl ManifestEnvelope {
    /// Strict decode; validates the manifest. Approvals are checked by [`Self::verify`].
    pub fn decode(bytes: &[u8]) -> Result<Self, ManifestError> {
        let e: Self = cbor::decode(bytes, "manifest envelope")?;
        e.manifest.validate()?;
        Ok(e)
    }

    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        cbor::encode(self)
    }

    /// The approvals meet the Manifest-set threshold.
    pub fn verify(&self) -> Result<ThresholdReport, crate::sign::ThresholdError> {
        let report = self.manifest.check_approvals(&self.approvals);
        report.require()?;
        Ok(report)
    }

    /// Adds an approval, replacing an earlier one from the same key.
    pub fn add_approval(&mut self, approval: Approval) {
        self.approvals.retain(|a| a.member != approval.member);
        self.approvals.push(approval);
    }
}

#[cfg(test)]
mod alias_tests {
    use super::{BIDI_CONTROLS, check_alias};

    #[test]
    fn aliases_with_bidirectional_controls_are_refused() {
        assert!(check_alias("alice").is_ok());
        assert!(check_alias("Zoë 東京").is_ok());
        for c in BIDI_CONTROLS {
            let alias = format!("ali{c}ce");
            assert!(
                check_alias(&alias).unwrap_err().contains("bidirectional"),
                "{c:?}"
            );
        }
        // "bob" written right-to-left-overridden so it would display as another name.
        assert!(check_alias("\u{202E}bob").is_err());
        assert!(check_alias("").is_err());
        assert!(check_alias("a\nb").is_err());
        assert!(check_alias(&"a".repeat(65)).is_err());
    }
}
