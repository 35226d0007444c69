//! Domain-separated approvals and threshold checks.
//!
//! Every signature is ECDSA P-256/SHA-256 (64-byte r||s) over
//! `SHA-256("tessera/v1/" || purpose || 0x00 || object_hash)`, so a signature made for one
//! purpose never verifies for another.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::bytes::Hash32;
use crate::keys::{PublicKey, Role, Signature};
use crate::manifest::MemberSet;

/// What a signature approves. The purpose string is part of the signed message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Purpose {
    /// A manifest approval by a Manifest-set member.
    Manifest,
    /// A live patch approval by a Patch-set member.
    Patch,
    /// A share-post receipt by a Share-set member.
    SharePost,
    /// A reshard approval (new share set) by a Manifest-set member.
    Reshard,
    /// The genesis test signature by the new quorum key.
    Genesis,
    /// A message signed by the provisioned enclave's built-in app with the quorum key.
    AppMessage,
    /// A member's namespace pin, signed by their own Manifest key so it may rest on untrusted
    /// media.
    NamespacePin,
    /// A fetch proof: what an HTTPS source returned to the enclave's fetcher, signed with the
    /// quorum key.
    Fetch,
    /// A Quorum Key forwarded by one enclave of a namespace to another, signed by the quorum
    /// key itself (`docs/forwarding.md`).
    KeyForward,
}

impl Purpose {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Manifest => "manifest",
            Purpose::Patch => "patch",
            Purpose::SharePost => "share-post",
            Purpose::Reshard => "reshard",
            Purpose::Genesis => "genesis",
            Purpose::AppMessage => "app-message",
            Purpose::NamespacePin => "namespace-pin",
            Purpose::KeyForward => "key-forward",
            Purpose::Fetch => "fetch",
        }
    }

    /// The member role whose key makes this kind of signature.
    #[must_use]
    pub fn signer_role(self) -> Option<Role> {
        match self {
            Purpose::Manifest | Purpose::Reshard | Purpose::NamespacePin => Some(Role::Manifest),
            Purpose::Patch => Some(Role::Patch),
            Purpose::SharePost => Some(Role::Share),
            Purpose::Genesis | Purpose::AppMessage | Purpose::Fetch | Purpose::KeyForward => None,
        }
    }
}

impl fmt::Display for Purpose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The 32 bytes that are signed: `SHA-256("tessera/v1/" || purpose || 0x00 || object_hash)`.
#[must_use]
pub fn signed_message(purpose: Purpose, object_hash: &Hash32) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"tessera/v1/");
    h.update(purpose.as_str().as_bytes());
    h.update([0u8]);
    h.update(object_hash.0);
    h.finalize().into()
}

/// A member's signature over an object for one purpose.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Approval {
    /// The signer's public key for `role`.
    pub member: PublicKey,
    /// The role of the key that signed.
    pub role: Role,
    /// ECDSA P-256/SHA-256 over [`signed_message`].
    pub signature: Signature,
}

impl Approval {
    /// Verifies this approval for `purpose` over `object_hash`.
    pub fn verify(&self, purpose: Purpose, object_hash: &Hash32) -> Result<(), ApprovalError> {
        if purpose.signer_role() != Some(self.role) {
            return Err(ApprovalError::WrongRole {
                purpose,
                role: self.role,
            });
        }
        self.member
            .verify(&signed_message(purpose, object_hash), &self.signature)
            .map_err(|e| match e {
                crate::keys::KeyError::HighS => ApprovalError::HighS {
                    member: self.member.fingerprint(),
                },
                _ => ApprovalError::BadSignature {
                    member: self.member.fingerprint(),
                },
            })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ApprovalError {
    #[error("a {role} key cannot approve a {purpose}")]
    WrongRole { purpose: Purpose, role: Role },
    #[error("signature by {member} does not verify")]
    BadSignature { member: String },
    #[error("signature by {member} is not in low-S form (a malleated signature)")]
    HighS { member: String },
}

/// Who approved, who did not, and which approvals were not counted and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThresholdReport {
    pub threshold: u8,
    pub approved: Vec<String>,
    pub missing: Vec<String>,
    pub rejected: Vec<String>,
}

impl ThresholdReport {
    #[must_use]
    pub fn met(&self) -> bool {
        self.approved.len() >= usize::from(self.threshold)
    }

    /// `Ok` when the threshold is met, else an error that lists who approved and who did not.
    pub fn require(&self) -> Result<(), ThresholdError> {
        if self.met() {
            Ok(())
        } else {
            Err(ThresholdError {
                have: self.approved.len(),
                need: self.threshold,
                approved: self.approved.join(", "),
                missing: self.missing.join(", "),
                rejected: self.rejected.join("; "),
            })
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{have} of {need} required approvals (approved: [{approved}]; missing: [{missing}]; not counted: [{rejected}])"
)]
pub struct ThresholdError {
    pub have: usize,
    pub need: u8,
    pub approved: String,
    pub missing: String,
    pub rejected: String,
}

/// Counts valid approvals by distinct members of `set` only.
#[must_use]
pub fn check_threshold(
    set: &MemberSet,
    purpose: Purpose,
    object_hash: &Hash32,
    approvals: &[Approval],
) -> ThresholdReport {
    let mut counted = BTreeSet::new();
    let mut approved = Vec::new();
    let mut rejected = Vec::new();
    for a in approvals {
        let Some(member) = set.members.iter().find(|m| m.public_key == a.member) else {
            rejected.push(format!(
                "{} is not a member of this set",
                a.member.fingerprint()
            ));
            continue;
        };
        if let Err(e) = a.verify(purpose, object_hash) {
            rejected.push(format!("{}: {e}", member.alias));
            continue;
        }
        if !counted.insert(a.member) {
            rejected.push(format!("{}: already counted", member.alias));
            continue;
        }
        approved.push(member.alias.clone());
    }
    let missing = set
        .members
        .iter()
        .filter(|m| !counted.contains(&m.public_key))
        .map(|m| m.alias.clone())
        .collect();
    ThresholdReport {
        threshold: set.threshold,
        approved,
        missing,
        rejected,
    }
}
