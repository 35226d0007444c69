//! Member public keys, roles and signatures.

use std::fmt;

use p256::ecdsa::{Signature as EcdsaSignature, VerifyingKey, signature::Verifier};
use p256::elliptic_curve::sec1::ToSec1Point;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::bytes::{ByteArray, Hash32, hex_groups};

/// What a member key is for. Each role is a separate key (a separate PIV slot on a YubiKey).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Signs manifest approvals.
    Manifest,
    /// Decrypts the member's share (ECDH) and signs share-post receipts.
    Share,
    /// Signs live patch approvals.
    Patch,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Share, Role::Manifest, Role::Patch];

    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Manifest => "manifest",
            Role::Share => "share",
            Role::Patch => "patch",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "manifest" => Ok(Role::Manifest),
            "share" => Ok(Role::Share),
            "patch" => Ok(Role::Patch),
            other => Err(format!(
                "unknown role {other:?} (expected share, manifest or patch)"
            )),
        }
    }
}

/// A P-256 public key, always a valid curve point, encoded as 33-byte compressed SEC1.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublicKey(ByteArray<33>);

impl PublicKey {
    /// Parses SEC1, compressed (33 bytes) or uncompressed (65 bytes) only; refuses points not
    /// on the curve and the compact and hybrid forms.
    pub fn from_sec1(bytes: &[u8]) -> Result<Self, KeyError> {
        match (bytes.first(), bytes.len()) {
            (Some(2 | 3), 33) | (Some(4), 65) => {}
            _ => return Err(KeyError::InvalidPoint),
        }
        let pk = p256::PublicKey::from_sec1_bytes(bytes).map_err(|_| KeyError::InvalidPoint)?;
        Ok(Self::from(&pk))
    }

    /// The compressed SEC1 encoding.
    #[must_use]
    pub fn compressed(&self) -> &[u8; 33] {
        self.0.as_bytes()
    }

    #[must_use]
    pub fn to_p256(&self) -> p256::PublicKey {
        p256::PublicKey::from_sec1_bytes(&self.0.0).expect("validated at construction")
    }

    /// First 8 bytes of SHA-256 of the compressed key, in hex groups.
    #[must_use]
    pub fn fingerprint(&self) -> String {
        hex_groups(&Hash32::sha256(&self.0.0).0[..8])
    }

    #[must_use]
    pub fn to_hex(&self) -> String {
        self.0.to_hex()
    }

    /// Verifies an ECDSA P-256/SHA-256 signature over `message`.
    pub fn verify(&self, message: &[u8], signature: &Signature) -> Result<(), KeyError> {
        let vk = VerifyingKey::from(self.to_p256());
        let sig = EcdsaSignature::from_slice(&signature.0.0).map_err(|_| KeyError::BadSignature)?;
        vk.verify(message, &sig).map_err(|_| KeyError::BadSignature)
    }
}

impl From<&p256::PublicKey> for PublicKey {
    fn from(pk: &p256::PublicKey) -> Self {
        let point = pk.to_sec1_point(true);
        Self(ByteArray::try_from(point.as_bytes()).expect("compressed P-256 is 33 bytes"))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.fingerprint())
    }
}

impl Serialize for PublicKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for PublicKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = ByteArray::<33>::deserialize(d)?;
        Self::from_sec1(&raw.0).map_err(serde::de::Error::custom)
    }
}

/// An ECDSA P-256 signature as 64-byte r||s.
#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature(pub ByteArray<64>);

impl Signature {
    #[must_use]
    pub fn from_ecdsa(sig: &EcdsaSignature) -> Self {
        Self(ByteArray::try_from(sig.to_bytes().as_slice()).expect("r||s is 64 bytes"))
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({})", self.0.to_hex())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    #[error("not a valid P-256 public key")]
    InvalidPoint,
    #[error("signature does not verify")]
    BadSignature,
}
