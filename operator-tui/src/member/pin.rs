//! The namespace pin: what a member trusts for one namespace, signed by their own Manifest key
//! so it may rest on untrusted media (a USB stick beside the encrypted share).
//!
//! A pin is refused unless it verifies under the Manifest key of the device in the member's
//! hand: a pin edited by hand fails its signature, and another member's pin is signed by another
//! key. A pin only moves forward (see [`super::review`]).

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use tessera_core::bytes::Hash32;
use tessera_core::cbor::{self, CborError};
use tessera_core::device::{DeviceError, KeyDevice, approve};
use tessera_core::keys::{PublicKey, Role};
use tessera_core::manifest::{MemberSet, QuorumPublicKey};
use tessera_core::sign::{Approval, Purpose};

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

/// A folder of pins, one file per (namespace, member).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinStore {
    dir: PathBuf,
}

/// What the store holds for one namespace.
pub type Lookup = Result<Option<NamespacePin>, PinError>;

impl PinStore {
    #[must_use]
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// `$TESSERA_PINS`, else `~/.local/share/tessera/pins`.
    #[must_use]
    pub fn default_dir() -> Option<PathBuf> {
        std::env::var_os("TESSERA_PINS")
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share/tessera/pins"))
            })
    }

    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `<namespace>.<first 8 bytes of the owner's key hash>.pin`. Namespace names are
    /// `[A-Za-z0-9._-]` (manifest validation); anything else is hex-encoded here.
    #[must_use]
    pub fn path(&self, namespace: &str, owner: &PublicKey) -> PathBuf {
        let safe = !namespace.is_empty()
            && !namespace.starts_with('.')
            && namespace
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        let ns = if safe {
            namespace.to_owned()
        } else {
            format!("x{}", hex::encode(namespace.as_bytes()))
        };
        let id = Hash32::sha256(owner.compressed());
        self.dir
            .join(format!("{ns}.{}.pin", hex::encode(&id.0[..8])))
    }

    /// The member's pin for `namespace`; `Ok(None)` when there is none.
    pub fn load(&self, namespace: &str, mine: &PublicKey) -> Lookup {
        let path = self.path(namespace, mine);
        let bytes = match read_small(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(PinError::Io(format!("{}: {e}", path.display()))),
        };
        let pin = open(&bytes, mine)?;
        if pin.namespace != namespace {
            return Err(PinError::WrongNamespace {
                found: pin.namespace,
                expected: namespace.to_owned(),
            });
        }
        Ok(Some(pin))
    }

    /// Every pin file in the folder that verifies under `mine`, or why it does not.
    #[must_use]
    pub fn list(&self, mine: &PublicKey) -> Vec<(PathBuf, Result<NamespacePin, PinError>)> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut out: Vec<_> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "pin"))
            .map(|p| {
                let r = read_small(&p)
                    .map_err(|e| PinError::Io(e.to_string()))
                    .and_then(|b| open(&b, mine));
                (p, r)
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Signs `pin` with the device and replaces the stored copy atomically.
    pub fn save(
        &self,
        pin: &NamespacePin,
        device: &mut dyn KeyDevice,
    ) -> Result<PathBuf, PinError> {
        let mine = device.public_key(Role::Manifest)?;
        if mine != pin.owner {
            return Err(PinError::NotYours {
                signer: mine.fingerprint(),
                mine: pin.owner.fingerprint(),
            });
        }
        let bytes = seal(pin, device)?;
        let path = self.path(&pin.namespace, &pin.owner);
        replace_file(&path, &bytes)
            .map_err(|e| PinError::Io(format!("{}: {e}", path.display())))?;
        Ok(path)
    }
}

/// Reads a regular file of at most [`MAX_PIN_BYTES`] (a FIFO or device is refused, not opened).
fn read_small(path: &Path) -> std::io::Result<Vec<u8>> {
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    if meta.len() > MAX_PIN_BYTES as u64 {
        return Err(std::io::Error::other(format!(
            "larger than {MAX_PIN_BYTES} bytes"
        )));
    }
    std::fs::read(path)
}

/// Temp file, fsync, rename over `path`, fsync the folder: a crash leaves the old or the new.
fn replace_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id()
    ));
    {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    if let Err(e) = std::fs::rename(&tmp, path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}
