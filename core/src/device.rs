//! The `KeyDevice` trait: where member private keys live and how they are used.
//!
//! Two backends share every code path above this trait: the YubiKey PIV backend in the operator
//! app (keys never leave the card) and [`SoftwareKeyDevice`] (keys in a 0600 file) for dev mode,
//! the demo and tests, labelled as such wherever it shows.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use p256::ecdsa::{SigningKey, signature::Signer};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::bytes::{ByteArray, Hash32};
use crate::keys::{PublicKey, Role, Signature};
use crate::sign::{Approval, Purpose, signed_message};

/// An ECDH shared secret (the x-coordinate), zeroized on drop.
pub struct SharedSecret(Zeroizing<[u8; 32]>);

impl SharedSecret {
    #[must_use]
    pub fn new(bytes: [u8; 32]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    #[must_use]
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for SharedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SharedSecret(<redacted>)")
    }
}

/// What kind of device holds the keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeviceKind {
    /// A YubiKey (PIV); private keys never leave it.
    Yubikey,
    /// Keys in a file on disk: for dev mode, the demo and tests only.
    Software,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    pub kind: DeviceKind,
    pub serial: Option<u32>,
    /// How the device is shown to a person, e.g. "YubiKey 5 #12345678" or
    /// "SOFTWARE KEYS (dev/test only): alice".
    pub label: String,
}

/// Why a device operation failed, with what an operator needs to act.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DeviceError {
    #[error("wrong PIN ({tries_left} tries left)")]
    WrongPin { tries_left: u8 },
    #[error("PIN is blocked")]
    PinBlocked,
    #[error("wrong PUK ({tries_left} tries left)")]
    WrongPuk { tries_left: u8 },
    #[error("PUK is blocked")]
    PukBlocked,
    #[error("PIN entry cancelled")]
    Cancelled,
    #[error("no {role} key on this device{}", slot.map(|s| format!(" (slot {s:02x})")).unwrap_or_default())]
    NoKey { role: Role, slot: Option<u8> },
    #[error("no YubiKey with serial {serial} is connected")]
    NotFound { serial: u32 },
    #[error("no smart card reader found")]
    NoReader,
    #[error("the PC/SC service is not available: {detail}")]
    PcscUnavailable { detail: String },
    #[error("the YubiKey was removed during the operation")]
    CardRemoved,
    #[error("device error: {detail}")]
    Device { detail: String },
    #[error("key file error: {detail}")]
    KeyFile { detail: String },
}

impl DeviceError {
    /// What to do next, for a person at the keyboard.
    #[must_use]
    pub fn hint(&self) -> &'static str {
        match self {
            DeviceError::WrongPin { .. } => {
                "check the PIN; after the last try the PIN blocks and only the PUK can unblock it"
            }
            DeviceError::PinBlocked => "unblock the PIN with the PUK: `tessera key unblock-pin`",
            DeviceError::WrongPuk { .. } => {
                "check the PUK; after the last try only a reset of the PIV application (losing its keys) helps"
            }
            DeviceError::PukBlocked => {
                "the PUK is blocked; if the PIN still works, keep using the key; otherwise reset the PIV application and re-provision"
            }
            DeviceError::Cancelled => "nothing was signed or decrypted",
            DeviceError::NoKey { .. } => {
                "provision the key first: `tessera key provision`, or check the slot configuration"
            }
            DeviceError::NotFound { .. } => {
                "plug in the YubiKey, or list keys with `tessera key list`"
            }
            DeviceError::NoReader => "plug in a YubiKey; check that the CCID interface is enabled",
            DeviceError::PcscUnavailable { .. } => {
                "start the PC/SC daemon (`pcscd`) and check that libpcsclite is installed"
            }
            DeviceError::CardRemoved => "reinsert the YubiKey and retry; nothing was completed",
            DeviceError::Device { .. } => "retry; if it persists, check `tessera key selftest`",
            DeviceError::KeyFile { .. } => {
                "check the key file path and that it is readable only by you (mode 0600)"
            }
        }
    }
}

/// A holder of a member's role keys.
pub trait KeyDevice {
    fn info(&self) -> DeviceInfo;

    /// The public key of `role`.
    fn public_key(&mut self, role: Role) -> Result<PublicKey, DeviceError>;

    /// ECDSA P-256/SHA-256 over `message` with the `role` key. `purpose` is shown to the person
    /// asked for a PIN or a touch.
    fn sign(&mut self, role: Role, purpose: &str, message: &[u8])
    -> Result<Signature, DeviceError>;

    /// ECDSA P-256 over a SHA-256 `digest` the caller computed, for formats that hash their own
    /// framing around the data (OpenPGP). The device cannot see what the digest covers, so
    /// callers show the person what is signed before asking. Devices that cannot sign a digest
    /// refuse.
    fn sign_prehashed(
        &mut self,
        role: Role,
        purpose: &str,
        digest: &[u8; 32],
    ) -> Result<Signature, DeviceError> {
        let _ = (role, purpose, digest);
        Err(DeviceError::Device {
            detail: "this device cannot sign a precomputed digest".to_owned(),
        })
    }

    /// While held, a device may keep one unlocked session across operations, so a person
    /// enters the PIN once for one step of a ceremony (decrypt a share, sign its receipt, sign
    /// the pin) where the key's PIN policy lets a verified PIN serve several operations.
    /// Releasing it (`false`) ends the session and logs the PIN out. Devices without sessions
    /// ignore it.
    fn hold_session(&mut self, held: bool) {
        let _ = held;
    }

    /// ECDH between the `role` key and `peer`: the shared x-coordinate.
    fn ecdh(
        &mut self,
        role: Role,
        purpose: &str,
        peer: &p256::PublicKey,
    ) -> Result<SharedSecret, DeviceError>;

    /// The member's pin ledger ([`crate::pin::PinLedger`]) as the device holds it; `None` when
    /// none was ever written. Devices that keep none refuse, so pins fail closed on them.
    fn read_pin_ledger(&mut self) -> Result<Option<Vec<u8>>, DeviceError> {
        Err(no_ledger())
    }

    /// Replaces the pin ledger on the device. `purpose` is shown to the person asked for a PIN.
    fn write_pin_ledger(&mut self, bytes: &[u8], purpose: &str) -> Result<(), DeviceError> {
        let _ = (bytes, purpose);
        Err(no_ledger())
    }
}

fn no_ledger() -> DeviceError {
    DeviceError::Device {
        detail: "this key device keeps no pin ledger, so no namespace pin can be anchored on it"
            .to_owned(),
    }
}

/// Signs an approval of `object_hash` for `purpose` with the role key the purpose requires.
pub fn approve(
    device: &mut dyn KeyDevice,
    purpose: Purpose,
    object_hash: &Hash32,
    what: &str,
) -> Result<Approval, DeviceError> {
    let role = purpose
        .signer_role()
        .expect("approve is only called for member-signed purposes");
    let member = device.public_key(role)?;
    let signature = device.sign(
        role,
        &format!(
            "sign {what} ({purpose} {})",
            crate::bytes::hex_groups(&object_hash.0[..8])
        ),
        &signed_message(purpose, object_hash),
    )?;
    Ok(Approval {
        member,
        role,
        signature,
    })
}

const KEY_FILE_FORMAT: &str = "tessera-software-keys/v1 DEV/TEST ONLY";

/// 32 secret bytes in a file, zeroized on drop.
struct SecretScalar(Zeroizing<[u8; 32]>);

impl Serialize for SecretScalar {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0[..])
    }
}

impl<'de> Deserialize<'de> for SecretScalar {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let b = ByteArray::<32>::deserialize(d)?;
        Ok(Self(Zeroizing::new(b.0)))
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    format: String,
    alias: String,
    keys: BTreeMap<Role, SecretScalar>,
}

/// Member keys held in software. For dev mode, the demo and tests: anyone who can read the file
/// has the keys.
pub struct SoftwareKeyDevice {
    alias: String,
    keys: BTreeMap<Role, SigningKey>,
    ledger: Ledger,
}

/// Where a software device keeps its pin ledger: beside its key file (`<keys>.ledger`, mode
/// 0600), or in memory for keys that have no file.
enum Ledger {
    Memory(Option<Vec<u8>>),
    File(PathBuf),
}

impl fmt::Debug for SoftwareKeyDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SoftwareKeyDevice")
            .field("alias", &self.alias)
            .finish_non_exhaustive()
    }
}

impl SoftwareKeyDevice {
    /// Fresh keys for every role.
    #[must_use]
    pub fn generate(alias: &str) -> Self {
        use p256::elliptic_curve::Generate;
        let keys = Role::ALL
            .iter()
            .map(|&r| {
                let key = SigningKey::try_generate_from_rng(&mut rand::rngs::SysRng)
                    .expect("the operating system's random number generator failed");
                (r, key)
            })
            .collect();
        Self {
            alias: alias.to_owned(),
            keys,
            ledger: Ledger::Memory(None),
        }
    }

    /// Deterministic keys from a 32-byte seed, for reproducible test vectors only.
    #[must_use]
    pub fn from_seed(alias: &str, seed: &[u8; 32]) -> Self {
        use hkdf::Hkdf;
        let hk = Hkdf::<sha2::Sha256>::new(Some(b"tessera/v1/test-keys"), seed);
        let keys = Role::ALL
            .iter()
            .map(|&r| {
                let mut counter = 0u8;
                loop {
                    let mut okm = Zeroizing::new([0u8; 32]);
                    hk.expand(&[r.as_str().as_bytes(), &[counter]].concat(), &mut okm[..])
                        .expect("valid length");
                    if let Ok(k) = SigningKey::from_slice(&okm[..]) {
                        break (r, k);
                    }
                    counter += 1;
                }
            })
            .collect();
        Self {
            alias: alias.to_owned(),
            keys,
            ledger: Ledger::Memory(None),
        }
    }

    #[must_use]
    pub fn alias(&self) -> &str {
        &self.alias
    }

    /// The set of these devices' `role` keys under their aliases (dev mode and tests).
    #[must_use]
    pub fn member_set(
        devices: &[SoftwareKeyDevice],
        role: Role,
        threshold: u8,
    ) -> crate::manifest::MemberSet {
        let members = devices
            .iter()
            .filter_map(|d| {
                let key = d.keys.get(&role)?;
                Some(crate::manifest::Member {
                    alias: d.alias.clone(),
                    public_key: PublicKey::from(&p256::PublicKey::from(key.verifying_key())),
                })
            })
            .collect();
        crate::manifest::MemberSet { threshold, members }
    }

    /// Writes the keys to a new file with mode 0600; refuses to overwrite.
    pub fn save(&self, path: &Path) -> Result<(), DeviceError> {
        let file = KeyFile {
            format: KEY_FILE_FORMAT.to_owned(),
            alias: self.alias.clone(),
            keys: self
                .keys
                .iter()
                .map(|(r, k)| (*r, SecretScalar(Zeroizing::new(k.to_bytes().into()))))
                .collect(),
        };
        let bytes = Zeroizing::new(crate::cbor::encode(&file));
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(path).map_err(|e| key_file_error(path, &e))?;
        f.write_all(&bytes)
            .and_then(|()| f.sync_all())
            .map_err(|e| key_file_error(path, &e))
    }

    /// Reads a key file written by [`Self::save`]; refuses files others can read.
    pub fn load(path: &Path) -> Result<Self, DeviceError> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let meta = std::fs::metadata(path).map_err(|e| key_file_error(path, &e))?;
            if meta.permissions().mode() & 0o077 != 0 {
                return Err(DeviceError::KeyFile {
                    detail: format!(
                        "{} is readable by others (mode {:o}); chmod 600 it",
                        path.display(),
                        meta.permissions().mode() & 0o777
                    ),
                });
            }
        }
        let bytes = Zeroizing::new(std::fs::read(path).map_err(|e| key_file_error(path, &e))?);
        let file: KeyFile = crate::cbor::decode_bounded(&bytes, 4096, "software key file")
            .map_err(|e| DeviceError::KeyFile {
                detail: format!("{}: {e}", path.display()),
            })?;
        if file.format != KEY_FILE_FORMAT {
            return Err(DeviceError::KeyFile {
                detail: format!("{}: unknown format {:?}", path.display(), file.format),
            });
        }
        let mut keys = BTreeMap::new();
        for (role, scalar) in &file.keys {
            let key = SigningKey::from_slice(&scalar.0[..]).map_err(|_| DeviceError::KeyFile {
                detail: format!("{}: invalid {role} key", path.display()),
            })?;
            keys.insert(*role, key);
        }
        let mut ledger = path.as_os_str().to_owned();
        ledger.push(".ledger");
        Ok(Self {
            alias: file.alias,
            keys,
            ledger: Ledger::File(PathBuf::from(ledger)),
        })
    }

    fn key(&self, role: Role) -> Result<&SigningKey, DeviceError> {
        self.keys
            .get(&role)
            .ok_or(DeviceError::NoKey { role, slot: None })
    }
}

fn key_file_error(path: &Path, e: &std::io::Error) -> DeviceError {
    DeviceError::KeyFile {
        detail: format!("{}: {e}", path.display()),
    }
}

impl KeyDevice for SoftwareKeyDevice {
    fn info(&self) -> DeviceInfo {
        DeviceInfo {
            kind: DeviceKind::Software,
            serial: None,
            label: format!("SOFTWARE KEYS (dev/test only): {}", self.alias),
        }
    }

    fn public_key(&mut self, role: Role) -> Result<PublicKey, DeviceError> {
        Ok(PublicKey::from(&p256::PublicKey::from(
            self.key(role)?.verifying_key(),
        )))
    }

    fn sign(
        &mut self,
        role: Role,
        _purpose: &str,
        message: &[u8],
    ) -> Result<Signature, DeviceError> {
        let sig: p256::ecdsa::Signature = self.key(role)?.sign(message);
        Ok(Signature::from_ecdsa(&sig))
    }

    fn sign_prehashed(
        &mut self,
        role: Role,
        _purpose: &str,
        digest: &[u8; 32],
    ) -> Result<Signature, DeviceError> {
        use p256::ecdsa::signature::hazmat::PrehashSigner;
        let sig: p256::ecdsa::Signature =
            self.key(role)?
                .sign_prehash(digest)
                .map_err(|_| DeviceError::Device {
                    detail: "prehashed signing failed".to_owned(),
                })?;
        Ok(Signature::from_ecdsa(&sig))
    }

    fn ecdh(
        &mut self,
        role: Role,
        _purpose: &str,
        peer: &p256::PublicKey,
    ) -> Result<SharedSecret, DeviceError> {
        let secret = *self.key(role)?.as_nonzero_scalar();
        let shared = p256::ecdh::diffie_hellman(secret, peer.as_affine());
        let mut out = [0u8; 32];
        out.copy_from_slice(shared.raw_secret_bytes());
        Ok(SharedSecret::new(out))
    }

    fn read_pin_ledger(&mut self) -> Result<Option<Vec<u8>>, DeviceError> {
        match &self.ledger {
            Ledger::Memory(b) => Ok(b.clone()),
            Ledger::File(path) => match std::fs::read(path) {
                Ok(b) => Ok(Some(b)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(key_file_error(path, &e)),
            },
        }
    }

    fn write_pin_ledger(&mut self, bytes: &[u8], _purpose: &str) -> Result<(), DeviceError> {
        match &mut self.ledger {
            Ledger::Memory(b) => {
                *b = Some(bytes.to_vec());
                Ok(())
            }
            Ledger::File(path) => {
                replace_private(path, bytes).map_err(|e| key_file_error(path, &e))
            }
        }
    }
}

/// Temp file (mode 0600), fsync, rename over `path`: a crash leaves the old or the new.
fn replace_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp-{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}
