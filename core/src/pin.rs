//! The namespace pin: what a member trusts for one namespace, signed by their own Manifest key
//! so it may rest on untrusted media (a USB stick beside the encrypted share).
//!
//! A pin is refused unless it verifies under the Manifest key of the device in the member's
//! hand: a pin edited by hand fails its signature, and another member's pin is signed by another
//! key. The decisions that read and move a pin live on the member's side (`operator-tui`'s
//! `member` layer); this module owns the object and its one parser.

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::bytes::Hash32;
use crate::cbor::{self, CborError};
use crate::device::{DeviceError, KeyDevice, approve};
use crate::keys::PublicKey;
use crate::manifest::{MemberSet, QuorumPublicKey};
use crate::sign::{Approval, Purpose};

/// The pin format this version writes and accepts.
pub const PIN_VERSION: u32 = 1;

/// A pin file is small; anything larger is refused before decoding.
pub const MAX_PIN_BYTES: usize = 64 * 1024;

/// How a member's laptop reproduces the PCR0-2 a manifest names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub enum PcrPolicy {
    /// Measured from an EIF the member built themselves (`--eif`).
    Eif,
    /// A builders' statement signed by at least `threshold` of these pinned builder
    /// certificates (OpenPGP fingerprints, upper-case hex).
    Builders {
        threshold: u8,
        fingerprints: Vec<String>,
    },
    /// Not reproduced. Accepted only against a dev trust root, and shown as such.
    WaivedDev,
}

impl PcrPolicy {
    #[must_use]
    pub fn describe(&self) -> String {
        match self {
            PcrPolicy::Eif => "reproduce PCR0-2 from an EIF you built".to_owned(),
            PcrPolicy::Builders {
                threshold,
                fingerprints,
            } => format!(
                "builders' statement signed by {threshold} of {} pinned builders",
                fingerprints.len()
            ),
            PcrPolicy::WaivedDev => {
                "not reproduced (DEV only: refused against the AWS root)".to_owned()
            }
        }
    }
}

/// The highest manifest a member approved or handed a share to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Highest {
    pub nonce: u64,
    pub manifest_hash: Hash32,
}

/// What a member trusts for one namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamespacePin {
    pub version: u32,
    pub namespace: String,
    /// The member's own Manifest key; only its signature makes this pin valid.
    pub owner: PublicKey,
    /// From the genesis output the member verified, or the first manifest they approved.
    pub quorum_public_key: QuorumPublicKey,
    /// The Manifest set whose approvals this member accepts; `None` until recorded.
    pub manifest_set: Option<MemberSet>,
    pub pcr_policy: PcrPolicy,
    pub highest: Option<Highest>,
    /// Counts the pin's changes, so two copies can be told apart at a glance.
    pub sequence: u64,
    /// The disaster-recovery key the namespace's genesis wrapped the seed to, as the member
    /// accepted it (`tessera_core::dr`); every manifest must name the same. Omitted from the
    /// encoding when absent, so pins without one keep their bytes and signatures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dr_recipient: Option<String>,
}

impl NamespacePin {
    /// A new pin at sequence 1.
    #[must_use]
    pub fn new(
        namespace: &str,
        owner: PublicKey,
        quorum_public_key: QuorumPublicKey,
        pcr_policy: PcrPolicy,
    ) -> Self {
        Self {
            version: PIN_VERSION,
            namespace: namespace.to_owned(),
            owner,
            quorum_public_key,
            manifest_set: None,
            pcr_policy,
            highest: None,
            sequence: 1,
            dr_recipient: None,
        }
    }

    /// One line for Home and `trust show`.
    #[must_use]
    pub fn summary(&self) -> String {
        let set = match &self.manifest_set {
            Some(s) => format!(
                "Manifest set {} of {}",
                s.threshold,
                s.members
                    .iter()
                    .map(|m| m.alias.as_str())
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            None => "no Manifest set yet".to_owned(),
        };
        let highest = match &self.highest {
            Some(h) => format!("nonce {}", h.nonce),
            None => "no manifest yet".to_owned(),
        };
        format!(
            "{}: quorum key {}, {set}, {highest}",
            self.namespace,
            self.quorum_public_key.signing.fingerprint()
        )
    }
}

/// A pin and the owner's signature over its canonical bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SignedPin {
    pin: ByteBuf,
    approval: Approval,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PinError {
    #[error("not a namespace pin: {0}")]
    Malformed(String),
    #[error("unsupported pin version {0}")]
    Version(u32),
    #[error(
        "signed by Manifest key {signer}, not yours ({mine}): this is another member's pin; use your own"
    )]
    NotYours { signer: String, mine: String },
    #[error("its signature does not verify: it was edited or damaged; restore your own copy")]
    BadSignature,
    #[error("it is for namespace {found}, stored as {expected}: restore your own copy")]
    WrongNamespace { found: String, expected: String },
    #[error("{0}")]
    Io(String),
    #[error(transparent)]
    Device(#[from] DeviceError),
}

/// Decodes a pin file and verifies it was signed by `mine`, the device's Manifest key.
pub fn open(bytes: &[u8], mine: &PublicKey) -> Result<NamespacePin, PinError> {
    let signed: SignedPin = cbor::decode_bounded(bytes, MAX_PIN_BYTES, "namespace pin")
        .map_err(|e: CborError| PinError::Malformed(e.to_string()))?;
    if signed.approval.member != *mine {
        return Err(PinError::NotYours {
            signer: signed.approval.member.fingerprint(),
            mine: mine.fingerprint(),
        });
    }
    signed
        .approval
        .verify(Purpose::NamespacePin, &Hash32::sha256(&signed.pin))
        .map_err(|_| PinError::BadSignature)?;
    let pin: NamespacePin = cbor::decode(&signed.pin, "namespace pin")
        .map_err(|e| PinError::Malformed(e.to_string()))?;
    if pin.version != PIN_VERSION {
        return Err(PinError::Version(pin.version));
    }
    if pin.owner != *mine {
        return Err(PinError::BadSignature);
    }
    Ok(pin)
}

/// Signs `pin` with the device's Manifest key.
pub fn seal(pin: &NamespacePin, device: &mut dyn KeyDevice) -> Result<Vec<u8>, PinError> {
    let bytes = cbor::encode(pin);
    let approval = approve(
        device,
        Purpose::NamespacePin,
        &Hash32::sha256(&bytes),
        &format!("namespace pin for {}", pin.namespace),
    )?;
    Ok(cbor::encode(&SignedPin {
        pin: ByteBuf::from(bytes),
        approval,
    }))
}
