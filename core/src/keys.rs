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

    /// Verifies an ECDSA P-256/SHA-256 signature over `message`. Only the low-S form is
    /// accepted: (r, n - s) verifies as well as (r, s), and a Tessera object must have one
    /// encoding, so its hash names it alone.
    pub fn verify(&self, message: &[u8], signature: &Signature) -> Result<(), KeyError> {
        if signature.is_high_s() {
            return Err(KeyError::HighS);
        }
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

/// Half the order of P-256, big-endian: a signature's `s` above it is "high".
const HALF_ORDER: [u8; 32] = [
    0x7f, 0xff, 0xff, 0xff, 0x80, 0x00, 0x00, 0x00, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xde, 0x73, 0x7d, 0x56, 0xd3, 0x8b, 0xcf, 0x42, 0x79, 0xdc, 0xe5, 0x61, 0x7e, 0x31, 0x92, 0xa8,
];

impl Signature {
    /// The signature in low-S form (the one [`PublicKey::verify`] accepts).
    #[must_use]
    pub fn from_ecdsa(sig: &EcdsaSignature) -> Self {
        let sig = sig.normalize_s();
        Self(ByteArray::try_from(sig.to_bytes().as_slice()).expect("r||s is 64 bytes"))
    }

    /// True if `s` is above half the group order (the malleated twin of a low-S signature).
    #[must_use]
    pub fn is_high_s(&self) -> bool {
        self.0.0[32..] > HALF_ORDER[..]
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
    #[error("signature is not in low-S form (a malleated signature)")]
    HighS,
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::SigningKey;
    use p256::ecdsa::signature::Signer;

    /// The order of P-256, big-endian.
    const ORDER: [u8; 32] = [
        0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63,
        0x25, 0x51,
    ];

    /// n - s, big-endian.
    fn negate(s: &[u8]) -> [u8; 32] {
        let mut out = [0u8; 32];
        let mut borrow = 0i16;
        for i in (0..32).rev() {
            let mut d = i16::from(ORDER[i]) - i16::from(s[i]) - borrow;
            borrow = i16::from(d < 0);
            if d < 0 {
                d += 256;
            }
            out[i] = u8::try_from(d).expect("a byte");
        }
        out
    }

    #[test]
    fn half_order_is_half_the_order() {
        // 2 * HALF_ORDER + 1 == ORDER.
        let mut carry = 1u16;
        let mut doubled = [0u8; 32];
        for i in (0..32).rev() {
            let v = u16::from(HALF_ORDER[i]) * 2 + carry;
            doubled[i] = v as u8;
            carry = v >> 8;
        }
        assert_eq!(doubled, ORDER);
    }

    #[test]
    fn the_malleated_twin_of_a_signature_is_refused() {
        let sk = SigningKey::from_slice(&[7u8; 32]).unwrap();
        let pk = PublicKey::from(&p256::PublicKey::from(sk.verifying_key()));
        for i in 0..32u8 {
            let message = [i; 5];
            let sig: EcdsaSignature = sk.sign(&message);
            let low = Signature::from_ecdsa(&sig);
            assert!(!low.is_high_s());
            pk.verify(&message, &low).unwrap();
            let mut high = low;
            high.0.0[32..].copy_from_slice(&negate(&low.0.0[32..]));
            assert!(high.is_high_s());
            // The twin is a valid ECDSA signature, refused only for its form.
            let raw = EcdsaSignature::from_slice(&high.0.0).unwrap();
            VerifyingKey::from(pk.to_p256())
                .verify(&message, &raw)
                .unwrap();
            assert_eq!(pk.verify(&message, &high), Err(KeyError::HighS));
        }
    }
}
