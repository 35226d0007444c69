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

/// The pin format this version writes and accepts. Version 1 pins (no trust anchor, a
/// Manifest set learned after genesis, no record on the key device) are refused: a member
/// anchors again with `tessera genesis verify`.
pub const PIN_VERSION: u32 = 2;

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
    /// From the attested genesis output the member verified (`tessera genesis verify`).
    pub quorum_public_key: QuorumPublicKey,
    /// The Manifest set whose approvals this member accepts: the one the attested genesis put
    /// on record; it moves only when the set pinned here approves a manifest that changes it.
    pub manifest_set: MemberSet,
    /// SHA-256 of the attestation trust anchor accepted at genesis (the AWS Nitro root, a dev
    /// root's DER, or the EMULATED label): every later document must chain to this one.
    pub trust_anchor: Hash32,
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
        manifest_set: MemberSet,
        trust_anchor: Hash32,
        pcr_policy: PcrPolicy,
    ) -> Self {
        Self {
            version: PIN_VERSION,
            namespace: namespace.to_owned(),
            owner,
            quorum_public_key,
            manifest_set,
            trust_anchor,
            pcr_policy,
            highest: None,
            sequence: 1,
            dr_recipient: None,
        }
    }

    /// One line for Home and `trust show`.
    #[must_use]
    pub fn summary(&self) -> String {
        let s = &self.manifest_set;
        let set = format!(
            "Manifest set {} of {}",
            s.threshold,
            s.members
                .iter()
                .map(|m| m.alias.as_str())
                .collect::<Vec<_>>()
                .join(",")
        );
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
    #[error(
        "missing: your key device records pin #{sequence} ({hash}) for namespace {namespace}, and no pin file is here; restore that pin file from your backup (any copy whose hash matches)"
    )]
    Missing {
        namespace: String,
        sequence: u64,
        hash: String,
    },
    #[error(
        "rolled back: this is pin #{found}, your key device records pin #{expected} ({hash}); restore the newest copy, whose hash matches"
    )]
    RolledBack {
        found: u64,
        expected: u64,
        hash: String,
    },
    #[error(
        "not the pin your key device records (#{expected}, {hash}): this file is #{found}; restore the copy whose hash matches"
    )]
    NotRecorded {
        found: u64,
        expected: u64,
        hash: String,
    },
    #[error(
        "your key device holds no record of a pin for namespace {0}: this pin was not anchored by `tessera genesis verify` on this key; run it again with the namespace's attested genesis output"
    )]
    NotAnchored(String),
    #[error("the pin ledger on your key device is unreadable: {0}")]
    Ledger(String),
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

/// The pin ledger format this version writes and accepts.
pub const LEDGER_VERSION: u32 = 1;

/// A ledger is kept in one small data object on the key device (a YubiKey PIV object holds up
/// to about 3 KB); anything larger is refused before decoding. About 25 namespaces fit.
pub const MAX_LEDGER_BYTES: usize = 2800;

/// What the member's key device remembers of their pins, so that a pin file that is lost,
/// replaced by an older copy of the member's own pin, or never anchored fails closed. A pin
/// file may rest on untrusted media; the ledger rests on the device in the member's hand.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PinLedger {
    pub version: u32,
    /// One entry per namespace, sorted by namespace name.
    pub entries: Vec<LedgerEntry>,
}

/// The newest pin of one namespace, as the device recorded it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LedgerEntry {
    pub namespace: String,
    /// [`quorum_key_id`] of the namespace's quorum key: one quorum key, one namespace.
    pub quorum_key: Hash32,
    pub sequence: u64,
    /// [`pin_hash`] of the newest pin.
    pub pin: Hash32,
}

/// The hash a ledger records for a pin: of its canonical encoding, which is what the owner
/// signs (the signature itself is not deterministic).
#[must_use]
pub fn pin_hash(pin: &NamespacePin) -> Hash32 {
    cbor::hash(pin)
}

/// The identity of a quorum key in a ledger.
#[must_use]
pub fn quorum_key_id(q: &QuorumPublicKey) -> Hash32 {
    cbor::hash(q)
}

fn short(h: &Hash32) -> String {
    crate::bytes::hex_groups(&h.0[..8])
}

impl Default for PinLedger {
    fn default() -> Self {
        Self {
            version: LEDGER_VERSION,
            entries: Vec::new(),
        }
    }
}

impl PinLedger {
    /// The ledger a device holds: `None` (nothing written yet) is the empty ledger.
    pub fn decode(bytes: Option<&[u8]>) -> Result<Self, PinError> {
        let Some(bytes) = bytes else {
            return Ok(Self::default());
        };
        let ledger: PinLedger = cbor::decode_bounded(bytes, MAX_LEDGER_BYTES, "pin ledger")
            .map_err(|e| PinError::Ledger(e.to_string()))?;
        if ledger.version != LEDGER_VERSION {
            return Err(PinError::Ledger(format!(
                "unsupported ledger version {}",
                ledger.version
            )));
        }
        if !ledger
            .entries
            .windows(2)
            .all(|w| w[0].namespace < w[1].namespace)
        {
            return Err(PinError::Ledger(
                "entries are not one per namespace in order".to_owned(),
            ));
        }
        Ok(ledger)
    }

    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        cbor::encode(self)
    }

    #[must_use]
    pub fn entry(&self, namespace: &str) -> Option<&LedgerEntry> {
        self.entries.iter().find(|e| e.namespace == namespace)
    }

    /// The namespace under which this quorum key is recorded, if any.
    #[must_use]
    pub fn namespace_of(&self, quorum_key: &QuorumPublicKey) -> Option<&str> {
        let id = quorum_key_id(quorum_key);
        self.entries
            .iter()
            .find(|e| e.quorum_key == id)
            .map(|e| e.namespace.as_str())
    }

    /// Is `pin`, read from a file, the newest pin the device recorded for its namespace?
    pub fn check(&self, pin: &NamespacePin) -> Result<(), PinError> {
        let Some(e) = self.entry(&pin.namespace) else {
            return Err(PinError::NotAnchored(pin.namespace.clone()));
        };
        if e.pin == pin_hash(pin) && e.sequence == pin.sequence {
            return Ok(());
        }
        if pin.sequence < e.sequence {
            Err(PinError::RolledBack {
                found: pin.sequence,
                expected: e.sequence,
                hash: short(&e.pin),
            })
        } else {
            Err(PinError::NotRecorded {
                found: pin.sequence,
                expected: e.sequence,
                hash: short(&e.pin),
            })
        }
    }

    /// The refusal for a namespace whose pin file is not there: `None` when the device records
    /// no pin for it either.
    #[must_use]
    pub fn missing(&self, namespace: &str) -> Option<PinError> {
        self.entry(namespace).map(|e| PinError::Missing {
            namespace: namespace.to_owned(),
            sequence: e.sequence,
            hash: short(&e.pin),
        })
    }

    /// Records `pin` as its namespace's newest. Refuses a pin that does not move forward
    /// (sequence), that names another quorum key than the one recorded for its namespace, or
    /// whose quorum key is recorded under another namespace; and a ledger that would no longer
    /// fit on the device.
    pub fn record(&mut self, pin: &NamespacePin) -> Result<(), PinError> {
        let qk = quorum_key_id(&pin.quorum_public_key);
        if let Some(other) = self
            .entries
            .iter()
            .find(|e| e.quorum_key == qk && e.namespace != pin.namespace)
        {
            return Err(PinError::Ledger(format!(
                "quorum key {} is pinned under namespace {} on this key device; one quorum key belongs to one namespace, so it is refused under {}",
                pin.quorum_public_key.signing.fingerprint(),
                other.namespace,
                pin.namespace
            )));
        }
        let entry = LedgerEntry {
            namespace: pin.namespace.clone(),
            quorum_key: qk,
            sequence: pin.sequence,
            pin: pin_hash(pin),
        };
        match self
            .entries
            .binary_search_by(|e| e.namespace.as_str().cmp(&pin.namespace))
        {
            Ok(i) => {
                let old = &self.entries[i];
                if old.quorum_key != qk {
                    return Err(PinError::Ledger(format!(
                        "namespace {} is pinned to another quorum key on this key device; a namespace has one quorum key",
                        pin.namespace
                    )));
                }
                if pin.sequence <= old.sequence {
                    return Err(PinError::Ledger(format!(
                        "pin #{} for {} does not move past #{} recorded on this key device",
                        pin.sequence, pin.namespace, old.sequence
                    )));
                }
                self.entries[i] = entry;
            }
            Err(i) => self.entries.insert(i, entry),
        }
        if self.encode().len() > MAX_LEDGER_BYTES {
            return Err(PinError::Ledger(format!(
                "the key device's pin ledger is full ({} namespaces); a key device anchors at most what {MAX_LEDGER_BYTES} bytes hold",
                self.entries.len()
            )));
        }
        Ok(())
    }
}
