//! Shares as age files.
//!
//! At rest a share is encrypted to the member's Share key as a `piv-p256` recipient
//! (`age1yubikey1…`), wire-compatible with age-plugin-yubikey and the C2SP age-piv-p256
//! specification: stanza `piv-p256 <b64(tag)> <b64(epk)>` where tag = SHA-256(recipient
//! compressed)[..4], epk is the compressed ephemeral P-256 key, and the body is the file key
//! sealed with ChaCha20-Poly1305 under HKDF-SHA-256(salt = epk || recipient, info = "piv-p256",
//! ikm = ECDH x-coordinate). The identity side runs its ECDH through a [`KeyDevice`], so the
//! private key can stay on a YubiKey. In flight a share is encrypted to the enclave's X25519
//! ephemeral key with age's native recipient.

use std::cell::RefCell;
use std::collections::HashSet;
use std::fmt;
use std::io::{Read, Write};
use std::str::FromStr;

use age::{DecryptError, EncryptError, Identity, Recipient};
use age_core::format::{FileKey, Stanza};
use age_core::primitives::{aead_decrypt, aead_encrypt, hkdf};
use age_core::secrecy::ExposeSecret;
use base64::{Engine, prelude::BASE64_STANDARD_NO_PAD};
use bech32::{Bech32, Hrp};
use p256::elliptic_curve::Generate;
use p256::elliptic_curve::sec1::ToSec1Point;
use zeroize::Zeroizing;

use crate::bytes::Hash32;
use crate::device::KeyDevice;
use crate::keys::{PublicKey, Role};

/// The age stanza tag and HKDF label of the piv-p256 recipient type.
pub const STANZA_TAG: &str = "piv-p256";
const STANZA_KEY_LABEL: &[u8] = b"piv-p256";
/// Bech32 HRP of piv-p256 recipients.
pub const RECIPIENT_HRP: &str = "age1yubikey";
/// Bech32 HRP of age-plugin-yubikey identity stubs (written upper-case).
pub const IDENTITY_HRP: &str = "age-plugin-yubikey-";

/// Largest age file Tessera will open as a share (shares are 33 bytes of plaintext).
pub const MAX_SHARE_FILE: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AgeShareError {
    #[error("not a piv-p256 recipient: {0}")]
    BadRecipient(String),
    #[error("encryption failed: {0}")]
    Encrypt(String),
    /// Coarse on purpose: which step of decryption failed is not reported.
    #[error("decryption failed: {0}")]
    Decrypt(String),
    #[error("age file too large: {0} bytes")]
    TooLarge(usize),
}

/// A P-256 key as an age recipient (`age1yubikey1…`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PivP256Recipient(PublicKey);

impl fmt::Debug for PivP256Recipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PivP256Recipient({self})")
    }
}

impl PivP256Recipient {
    #[must_use]
    pub fn new(key: PublicKey) -> Self {
        Self(key)
    }

    #[must_use]
    pub fn public_key(&self) -> &PublicKey {
        &self.0
    }

    /// The 4-byte tag that lets an identity pick its stanza without touching the device.
    #[must_use]
    pub fn tag(&self) -> [u8; 4] {
        let h = Hash32::sha256(self.0.compressed());
        [h.0[0], h.0[1], h.0[2], h.0[3]]
    }
}

impl fmt::Display for PivP256Recipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hrp = Hrp::parse(RECIPIENT_HRP).expect("valid HRP");
        f.write_str(&bech32::encode::<Bech32>(hrp, self.0.compressed()).expect("fits bech32"))
    }
}

impl FromStr for PivP256Recipient {
    type Err = AgeShareError;
    fn from_str(s: &str) -> Result<Self, AgeShareError> {
        let (hrp, data) =
            bech32::decode(s).map_err(|e| AgeShareError::BadRecipient(e.to_string()))?;
        if hrp.as_str() != RECIPIENT_HRP || s.chars().any(char::is_uppercase) {
            return Err(AgeShareError::BadRecipient(format!(
                "expected lower-case prefix {RECIPIENT_HRP}1"
            )));
        }
        if data.len() != 33 {
            return Err(AgeShareError::BadRecipient(
                "expected a 33-byte compressed P-256 key".to_owned(),
            ));
        }
        PublicKey::from_sec1(&data)
            .map(Self)
            .map_err(|e| AgeShareError::BadRecipient(e.to_string()))
    }
}

fn stanza_key(epk: &[u8; 33], recipient: &PublicKey, shared_x: &[u8; 32]) -> [u8; 32] {
    let mut salt = Vec::with_capacity(66);
    salt.extend_from_slice(epk);
    salt.extend_from_slice(recipient.compressed());
    hkdf(&salt, STANZA_KEY_LABEL, shared_x)
}

impl PivP256Recipient {
    /// The stanza for `file_key` with a given ephemeral secret (exposed for test vectors).
    #[must_use]
    pub fn stanza_with_ephemeral(&self, file_key: &FileKey, esk: &p256::NonZeroScalar) -> Stanza {
        let epk_point = p256::PublicKey::from_secret_scalar(esk);
        let epk: [u8; 33] = epk_point
            .to_sec1_point(true)
            .as_bytes()
            .try_into()
            .expect("compressed P-256 is 33 bytes");
        let shared = p256::ecdh::diffie_hellman(*esk, self.0.to_p256().as_affine());
        let mut shared_x = Zeroizing::new([0u8; 32]);
        shared_x.copy_from_slice(shared.raw_secret_bytes());
        let key = Zeroizing::new(stanza_key(&epk, &self.0, &shared_x));
        Stanza {
            tag: STANZA_TAG.to_owned(),
            args: vec![
                BASE64_STANDARD_NO_PAD.encode(self.tag()),
                BASE64_STANDARD_NO_PAD.encode(epk),
            ],
            body: aead_encrypt(&key, file_key.expose_secret()),
        }
    }
}

impl Recipient for PivP256Recipient {
    fn wrap_file_key(
        &self,
        file_key: &FileKey,
    ) -> Result<(Vec<Stanza>, HashSet<String>), EncryptError> {
        let esk = p256::NonZeroScalar::try_generate_from_rng(&mut rand::rngs::SysRng)
            .map_err(|e| EncryptError::Io(std::io::Error::other(e.to_string())))?;
        Ok((
            vec![self.stanza_with_ephemeral(file_key, &esk)],
            HashSet::new(),
        ))
    }
}

/// Parses a base64 argument of exactly `N` bytes in canonical unpadded form.
fn b64_arg<const N: usize>(arg: &str) -> Option<[u8; N]> {
    let v = BASE64_STANDARD_NO_PAD.decode(arg).ok()?;
    let out: [u8; N] = v.try_into().ok()?;
    (BASE64_STANDARD_NO_PAD.encode(out) == arg).then_some(out)
}

/// The Share key on a [`KeyDevice`] as an age identity. ECDH runs on the device; the PIN
/// prompt states `purpose`.
pub struct DeviceIdentity<'a> {
    device: RefCell<&'a mut dyn KeyDevice>,
    role: Role,
    recipient: PivP256Recipient,
    purpose: String,
    /// A device failure (wrong PIN, card removed) from the last unwrap, which age's error type
    /// cannot carry.
    device_error: RefCell<Option<crate::device::DeviceError>>,
}

impl<'a> DeviceIdentity<'a> {
    pub fn new(
        device: &'a mut dyn KeyDevice,
        role: Role,
        purpose: &str,
    ) -> Result<Self, crate::device::DeviceError> {
        let recipient = PivP256Recipient(device.public_key(role)?);
        Ok(Self {
            device: RefCell::new(device),
            role,
            recipient,
            purpose: purpose.to_owned(),
            device_error: RefCell::new(None),
        })
    }

    #[must_use]
    pub fn recipient(&self) -> PivP256Recipient {
        self.recipient
    }
}

impl Identity for DeviceIdentity<'_> {
    fn unwrap_stanza(&self, stanza: &Stanza) -> Option<Result<FileKey, DecryptError>> {
        if stanza.tag != STANZA_TAG {
            return None;
        }
        let [tag_arg, epk_arg] = stanza.args.as_slice() else {
            return Some(Err(DecryptError::InvalidHeader));
        };
        let (Some(tag), Some(epk)) = (b64_arg::<4>(tag_arg), b64_arg::<33>(epk_arg)) else {
            return Some(Err(DecryptError::InvalidHeader));
        };
        if tag != self.recipient.tag() {
            return None;
        }
        if stanza.body.len() != 32 {
            return Some(Err(DecryptError::InvalidHeader));
        }
        // The ephemeral key must be a valid compressed point (0x02/0x03 prefix).
        if epk[0] != 2 && epk[0] != 3 {
            return Some(Err(DecryptError::InvalidHeader));
        }
        let Ok(epk_point) = p256::PublicKey::from_sec1_bytes(&epk) else {
            return Some(Err(DecryptError::InvalidHeader));
        };
        let shared = match self
            .device
            .borrow_mut()
            .ecdh(self.role, &self.purpose, &epk_point)
        {
            Ok(s) => s,
            Err(e) => {
                *self.device_error.borrow_mut() = Some(e);
                return Some(Err(DecryptError::KeyDecryptionFailed));
            }
        };
        let key = Zeroizing::new(stanza_key(&epk, &self.recipient.0, shared.as_bytes()));
        Some(
            aead_decrypt(&key, 16, &stanza.body)
                .map_err(|_| DecryptError::DecryptionFailed)
                .and_then(|mut pt| {
                    let fk: Result<[u8; 16], _> = pt.as_slice().try_into();
                    zeroize::Zeroize::zeroize(&mut pt);
                    fk.map(|fk| FileKey::new(Box::new(fk)))
                        .map_err(|_| DecryptError::DecryptionFailed)
                }),
        )
    }
}

/// Whom a sealed share is for, as its age header says: read without a key, a device or a PIN,
/// so a member holding the wrong YubiKey (or another member's file) learns it before typing
/// anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Addressed {
    /// A piv-p256 stanza carries this recipient's tag.
    To,
    /// Only piv-p256 stanzas, none carrying this recipient's tag.
    Elsewhere,
    /// Stanzas of other kinds (an X25519 stanza names no recipient): only decrypting tells.
    Unknown,
}

/// Reads the stanzas of `ciphertext`'s header with age's own parser, unwrapping nothing.
pub fn addressed_to(
    ciphertext: &[u8],
    recipient: &PivP256Recipient,
) -> Result<Addressed, AgeShareError> {
    struct Peek {
        tag: [u8; 4],
        // (stanzas for this recipient, other piv-p256 stanzas, stanzas of other kinds)
        seen: std::cell::Cell<(usize, usize, usize)>,
    }
    impl Identity for Peek {
        fn unwrap_stanza(&self, stanza: &Stanza) -> Option<Result<FileKey, DecryptError>> {
            let (mine, piv, other) = self.seen.get();
            // age adds a random "grease" stanza to keep parsers honest; it names nobody.
            if stanza.tag.ends_with("-grease") {
                return None;
            }
            let tag = (stanza.tag == STANZA_TAG)
                .then(|| stanza.args.first().and_then(|a| b64_arg::<4>(a)))
                .flatten();
            self.seen.set(match tag {
                Some(t) if t == self.tag => (mine + 1, piv, other),
                Some(_) => (mine, piv + 1, other),
                None => (mine, piv, other + 1),
            });
            None
        }
    }
    if ciphertext.len() > MAX_SHARE_FILE {
        return Err(AgeShareError::TooLarge(ciphertext.len()));
    }
    let peek = Peek {
        tag: recipient.tag(),
        seen: std::cell::Cell::new((0, 0, 0)),
    };
    let decryptor = age::Decryptor::new_buffered(ciphertext)
        .map_err(|e| AgeShareError::Decrypt(format!("not a readable age file: {e}")))?;
    // No identity matches by construction: the header's stanzas were all seen.
    let _ = decryptor.decrypt(std::iter::once(&peek as &dyn Identity));
    Ok(match peek.seen.get() {
        (1.., _, _) => Addressed::To,
        (0, 1.., 0) => Addressed::Elsewhere,
        _ => Addressed::Unknown,
    })
}

/// Encrypts `plaintext` to `recipients` as a binary age file.
pub fn encrypt(plaintext: &[u8], recipients: &[&dyn Recipient]) -> Result<Vec<u8>, AgeShareError> {
    let enc = age::Encryptor::with_recipients(recipients.iter().copied())
        .map_err(|e| AgeShareError::Encrypt(e.to_string()))?;
    let mut out = Vec::new();
    let mut w = enc
        .wrap_output(&mut out)
        .map_err(|e| AgeShareError::Encrypt(e.to_string()))?;
    w.write_all(plaintext)
        .and_then(|()| w.finish().map(|_| ()))
        .map_err(|e| AgeShareError::Encrypt(e.to_string()))?;
    Ok(out)
}

/// Decrypts an age file of at most [`MAX_SHARE_FILE`] bytes with `identity`.
pub fn decrypt(
    ciphertext: &[u8],
    identity: &dyn Identity,
) -> Result<Zeroizing<Vec<u8>>, AgeShareError> {
    if ciphertext.len() > MAX_SHARE_FILE {
        return Err(AgeShareError::TooLarge(ciphertext.len()));
    }
    let mut reader = age::Decryptor::new_buffered(ciphertext)
        .and_then(|d| d.decrypt(std::iter::once(identity)))
        .map_err(|e| AgeShareError::Decrypt(e.to_string()))?;
    let mut out = Zeroizing::new(Vec::new());
    reader
        .read_to_end(&mut out)
        .map_err(|e| AgeShareError::Decrypt(e.to_string()))?;
    Ok(out)
}

impl DeviceIdentity<'_> {
    /// Decrypts with the device; a device failure (wrong PIN with tries left, card removed) is
    /// reported as such rather than as a generic decryption failure.
    pub fn decrypt(&self, ciphertext: &[u8]) -> Result<Zeroizing<Vec<u8>>, DecryptFailure> {
        self.device_error.borrow_mut().take();
        decrypt(ciphertext, self).map_err(|e| {
            self.device_error
                .borrow_mut()
                .take()
                .map_or(DecryptFailure::Age(e), DecryptFailure::Device)
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecryptFailure {
    #[error(transparent)]
    Age(AgeShareError),
    #[error(transparent)]
    Device(crate::device::DeviceError),
}

/// The age-plugin-yubikey identity line for a key in `slot` of the YubiKey `serial`:
/// `AGE-PLUGIN-YUBIKEY-1…` over `serial (u32 LE) || slot || tag`.
#[must_use]
pub fn plugin_identity(serial: u32, slot: u8, recipient: &PivP256Recipient) -> String {
    let mut data = Vec::with_capacity(9);
    data.extend_from_slice(&serial.to_le_bytes());
    data.push(slot);
    data.extend_from_slice(&recipient.tag());
    let hrp = Hrp::parse(IDENTITY_HRP).expect("valid HRP");
    bech32::encode_upper::<Bech32>(hrp, &data).expect("fits bech32")
}
