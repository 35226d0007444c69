//! Fixed-length byte strings that encode as CBOR byte strings and refuse any other length.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer, de};
use sha2::{Digest, Sha256};

/// `N` bytes, encoded as a CBOR byte string of exactly `N` bytes. Public data only: secrets use
/// zeroizing types elsewhere.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ByteArray<const N: usize>(pub [u8; N]);

/// A SHA-256 digest.
pub type Hash32 = ByteArray<32>;
/// A PCR value (SHA-384 sized).
pub type Pcr = ByteArray<48>;

impl<const N: usize> ByteArray<N> {
    /// Lowercase hex.
    #[must_use]
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses exactly `N` bytes of hex.
    pub fn from_hex(s: &str) -> Result<Self, String> {
        let v = hex::decode(s.trim()).map_err(|e| format!("invalid hex: {e}"))?;
        Self::try_from(v.as_slice())
    }

    #[must_use]
    pub const fn from_array(bytes: [u8; N]) -> Self {
        Self(bytes)
    }

    #[must_use]
    pub fn as_bytes(&self) -> &[u8; N] {
        &self.0
    }
}

impl Hash32 {
    /// SHA-256 of `data`.
    #[must_use]
    pub fn sha256(data: &[u8]) -> Self {
        Self(Sha256::digest(data).into())
    }
}

impl<const N: usize> TryFrom<&[u8]> for ByteArray<N> {
    type Error = String;
    fn try_from(v: &[u8]) -> Result<Self, String> {
        <[u8; N]>::try_from(v)
            .map(Self)
            .map_err(|_| format!("expected {N} bytes, got {}", v.len()))
    }
}

impl<const N: usize> Default for ByteArray<N> {
    fn default() -> Self {
        Self([0; N])
    }
}

impl<const N: usize> fmt::Debug for ByteArray<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl<const N: usize> fmt::Display for ByteArray<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl<const N: usize> Serialize for ByteArray<N> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de, const N: usize> Deserialize<'de> for ByteArray<N> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<const N: usize>;
        impl<const N: usize> de::Visitor<'_> for V<N> {
            type Value = ByteArray<N>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "a byte string of {N} bytes")
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Self::Value, E> {
                ByteArray::try_from(v).map_err(E::custom)
            }
        }
        d.deserialize_bytes(V::<N>)
    }
}

/// Groups hex in fours for reading aloud: `3fa2 9c01 77e4 0b5d`.
#[must_use]
pub fn hex_groups(bytes: &[u8]) -> String {
    let h = hex::encode(bytes);
    h.as_bytes()
        .chunks(4)
        .map(|c| std::str::from_utf8(c).unwrap_or_default())
        .collect::<Vec<_>>()
        .join(" ")
}
