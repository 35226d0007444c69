//! The disaster-recovery (DR) key: an optional offline age recipient the genesis enclave also
//! wraps the whole quorum seed to, so that a namespace survives the loss of its members' keys.
//!
//! Genesis wraps the seed ([`wrap`]) inside the genesis body, which the quorum key's test
//! signature and the genesis attestation both bind. Recovery ([`recover`]) is the one place that
//! decides whether a wrap is the seed of a genesis output: the output's test signature holds, the
//! wrap decrypts to 32 bytes, and those bytes derive exactly the published quorum public keys.
//! The caller checks the attestation first (the binding of the output to a known image); the
//! drill and the restore both go through here, and neither ever shows the seed.

use std::fmt;
use std::str::FromStr;

use serde_bytes::ByteBuf;
use zeroize::Zeroizing;

use crate::age_share::{self, AgeShareError, DecryptFailure, PivP256Recipient};
use crate::objects::{DrWrap, GenesisOutput};
use crate::quorum::QuorumSeed;

/// The longest recipient text accepted (an `age1yubikey1…` recipient is 71 characters).
pub const MAX_RECIPIENT_LEN: usize = 128;

/// A DR key as an age recipient: an X25519 key (an identity file kept in a safe) or a P-256 key
/// on a YubiKey kept offline (`piv-p256`, `age1yubikey1…`).
#[derive(Clone)]
pub enum DrRecipient {
    X25519(age::x25519::Recipient),
    PivP256(PivP256Recipient),
}

impl fmt::Debug for DrRecipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DrRecipient({self})")
    }
}

impl fmt::Display for DrRecipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DrRecipient::X25519(r) => write!(f, "{r}"),
            DrRecipient::PivP256(r) => write!(f, "{r}"),
        }
    }
}

impl FromStr for DrRecipient {
    type Err = DrError;
    fn from_str(s: &str) -> Result<Self, DrError> {
        if s.len() > MAX_RECIPIENT_LEN {
            return Err(DrError::Recipient(format!(
                "{} characters, at most {MAX_RECIPIENT_LEN}",
                s.len()
            )));
        }
        if s.starts_with("age1yubikey1") {
            return s
                .parse::<PivP256Recipient>()
                .map(DrRecipient::PivP256)
                .map_err(|e| DrError::Recipient(e.to_string()));
        }
        let r = age::x25519::Recipient::from_str(s)
            .map_err(|e| DrError::Recipient(format!("not an age X25519 recipient ({e})")))?;
        // One spelling per key: the canonical lower-case form only.
        if r.to_string() != s {
            return Err(DrError::Recipient(
                "not in canonical (lower-case) form".to_owned(),
            ));
        }
        Ok(DrRecipient::X25519(r))
    }
}

impl DrRecipient {
    /// "X25519" or "YubiKey (piv-p256)", for the person reading a review.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            DrRecipient::X25519(_) => "X25519 identity",
            DrRecipient::PivP256(_) => "YubiKey (piv-p256)",
        }
    }
}

/// Why a DR wrap could not be made or recovered. Coarse where cryptography failed: which step of
/// a decryption failed is not reported, and the seed appears in no message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DrError {
    #[error("DR recipient: {0} (give an age1… X25519 recipient or an age1yubikey1… recipient)")]
    Recipient(String),
    #[error("DR identity file: {0}")]
    Identity(String),
    #[error("this genesis output has no disaster-recovery wrap")]
    NoWrap,
    #[error(
        "the genesis test signature does not verify under its quorum key: the output was altered"
    )]
    TestSignature,
    #[error(
        "the DR wrap does not open with this identity (another DR key, or an altered wrap): {0}"
    )]
    Decrypt(String),
    #[error(transparent)]
    Device(crate::device::DeviceError),
    #[error("the DR wrap holds {0} bytes, not a 32-byte seed")]
    Length(usize),
    #[error(
        "the DR wrap holds a seed whose quorum key {found} is not this genesis's {expected}: the wrap was swapped"
    )]
    Mismatch { expected: String, found: String },
    #[error("wrapping the seed failed: {0}")]
    Encrypt(String),
}

/// Wraps `seed` to `recipient` as a binary age file.
pub fn wrap(seed: &QuorumSeed, recipient: &DrRecipient) -> Result<DrWrap, DrError> {
    let encrypted = match recipient {
        DrRecipient::X25519(r) => age_share::encrypt(seed.as_bytes(), &[r]),
        DrRecipient::PivP256(r) => age_share::encrypt(seed.as_bytes(), &[r]),
    }
    .map_err(|e| DrError::Encrypt(e.to_string()))?;
    Ok(DrWrap {
        recipient: recipient.to_string(),
        encrypted_seed: ByteBuf::from(encrypted),
    })
}

/// The DR wrap of `output` and its recipient, parsed (without decrypting anything).
pub fn wrap_of(output: &GenesisOutput) -> Result<(&DrWrap, DrRecipient), DrError> {
    let w = output.body.dr.as_ref().ok_or(DrError::NoWrap)?;
    let r = w.recipient.parse()?;
    Ok((w, r))
}

/// Recovers the seed of `output` from its DR wrap with `decrypt` (an X25519 identity, or the DR
/// YubiKey through [`crate::age_share::DeviceIdentity`]), and proves it is that output's seed:
/// the test signature holds and the seed derives exactly the published quorum public keys.
/// The caller has verified the attestation that binds `output`.
pub fn recover(
    output: &GenesisOutput,
    decrypt: impl FnOnce(&[u8]) -> Result<Zeroizing<Vec<u8>>, DecryptFailure>,
) -> Result<QuorumSeed, DrError> {
    let (w, _) = wrap_of(output)?;
    output
        .verify_test_signature()
        .map_err(|_| DrError::TestSignature)?;
    let plain = decrypt(&w.encrypted_seed).map_err(|e| match e {
        DecryptFailure::Device(d) => DrError::Device(d),
        DecryptFailure::Age(AgeShareError::TooLarge(n)) => {
            DrError::Decrypt(format!("age file too large: {n} bytes"))
        }
        DecryptFailure::Age(_) => DrError::Decrypt("no matching key or a damaged file".to_owned()),
    })?;
    let bytes: [u8; 32] = plain
        .as_slice()
        .try_into()
        .map_err(|_| DrError::Length(plain.len()))?;
    let seed = QuorumSeed::from_bytes(bytes);
    let mut bytes = bytes;
    zeroize::Zeroize::zeroize(&mut bytes);
    let derived = seed.public_key();
    let expected = output.body.quorum_public_key;
    if derived != expected {
        return Err(DrError::Mismatch {
            expected: expected.signing.fingerprint(),
            found: derived.signing.fingerprint(),
        });
    }
    Ok(seed)
}

/// Decrypts with an X25519 identity (an identity file kept in a safe).
pub fn x25519_decrypt(
    identity: &age::x25519::Identity,
) -> impl FnOnce(&[u8]) -> Result<Zeroizing<Vec<u8>>, DecryptFailure> + '_ {
    move |c| age_share::decrypt(c, identity).map_err(DecryptFailure::Age)
}

/// Whether a member may accept a genesis output's DR wrap: a wrap hands the whole seed to
/// whoever holds the DR key, so a coordinator could name a key of their own. A member accepts a
/// wrap only to the recipient their organisation agreed on (`expected`, from the ceremony plan,
/// not from the output), and a missing wrap only when none was expected.
pub fn check_expected(output: &GenesisOutput, expected: Option<&str>) -> Result<(), String> {
    match (output.body.dr.as_ref(), expected) {
        (None, None) => Ok(()),
        (Some(w), None) => Err(format!(
            "this genesis also wraps the whole seed to a disaster-recovery key, {}: if your organisation agreed to keep exactly that key offline, run again with --dr-recipient {}; otherwise report it, since whoever holds that key holds the quorum key",
            w.recipient, w.recipient
        )),
        (None, Some(e)) => Err(format!(
            "you expected a disaster-recovery wrap to {e}, but this genesis has none: ask the coordinator why"
        )),
        (Some(w), Some(e)) if w.recipient == e => {
            w.recipient
                .parse::<DrRecipient>()
                .map_err(|e| e.to_string())?;
            Ok(())
        }
        (Some(w), Some(e)) => Err(format!(
            "this genesis wraps the seed to disaster-recovery key {}, not the agreed {e}: whoever holds that key holds the quorum key; report it",
            w.recipient
        )),
    }
}

/// A new X25519 DR identity, as age's identity file text (`AGE-SECRET-KEY-1…`, zeroized) and
/// its recipient.
#[must_use]
pub fn generate_x25519() -> (Zeroizing<String>, DrRecipient) {
    use age::secrecy::ExposeSecret;
    let identity = age::x25519::Identity::generate();
    let text = Zeroizing::new(identity.to_string().expose_secret().to_owned());
    (text, DrRecipient::X25519(identity.to_public()))
}

/// Whether `restored` (a share set made offline by a DR restore) may stand in for the attested
/// `original` genesis: same namespace, same quorum public keys, and a valid test signature by
/// that quorum key, which only a holder of the seed can make. Nothing else about `restored` is
/// attested, so a member checks their own share against its commitment as at genesis.
pub fn check_restored(original: &GenesisOutput, restored: &GenesisOutput) -> Result<(), String> {
    if restored.body.namespace != original.body.namespace {
        return Err(format!(
            "the restored share set is for namespace {}, the attested genesis for {}",
            restored.body.namespace, original.body.namespace
        ));
    }
    if restored.body.quorum_public_key != original.body.quorum_public_key {
        return Err(format!(
            "the restored share set names quorum key {}, the attested genesis {}: not a restore of this namespace",
            restored.body.quorum_public_key.signing.fingerprint(),
            original.body.quorum_public_key.signing.fingerprint()
        ));
    }
    restored.verify_test_signature().map_err(|_| {
        "the restored share set's test signature does not verify under the quorum key: it was not made by a holder of the seed, or was altered".to_owned()
    })
}

/// An X25519 DR identity read from an age identity file (age zeroizes its secret on drop).
pub struct X25519Identity(age::x25519::Identity);

impl fmt::Debug for X25519Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("X25519Identity(<redacted>)")
    }
}

impl X25519Identity {
    /// The first `AGE-SECRET-KEY-1…` line of an identity file's text. Errors never quote it.
    pub fn parse_file(text: &str) -> Result<Self, DrError> {
        let line = text
            .lines()
            .map(str::trim)
            .find(|l| l.starts_with("AGE-SECRET-KEY-1"))
            .ok_or_else(|| {
                DrError::Identity("no AGE-SECRET-KEY-1 line (an X25519 identity file)".to_owned())
            })?;
        age::x25519::Identity::from_str(line)
            .map(Self)
            .map_err(|_| DrError::Identity("not a valid X25519 identity".to_owned()))
    }

    #[must_use]
    pub fn recipient(&self) -> DrRecipient {
        DrRecipient::X25519(self.0.to_public())
    }

    /// Decrypts with this identity, for [`recover`].
    pub fn decryptor(
        &self,
    ) -> impl FnOnce(&[u8]) -> Result<Zeroizing<Vec<u8>>, DecryptFailure> + '_ {
        x25519_decrypt(&self.0)
    }
}
