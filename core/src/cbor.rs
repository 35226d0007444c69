//! Deterministic CBOR for every hashed or signed object.
//!
//! Tessera objects are Rust types encoded with `ciborium`: definite lengths, shortest-form
//! integers, struct fields as text-keyed maps in declaration order, byte strings for all binary
//! values, no floats and no tags. A decoder accepts exactly one encoding per value: it decodes,
//! re-encodes, and refuses input whose bytes differ (indefinite lengths, long-form integers,
//! reordered or duplicated keys, trailing bytes). This is what makes hashes and signatures over
//! these objects unambiguous (RFC 8949 section 4.2 gives the same goal).

use serde::{Serialize, de::DeserializeOwned};

/// Why bytes were refused as a Tessera object. Names the object type so errors are actionable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CborError {
    /// The bytes are not CBOR of the expected shape (unknown, missing or duplicate field,
    /// wrong type, bad length).
    #[error("malformed {what}: {reason}")]
    Malformed { what: &'static str, reason: String },
    /// A complete object was followed by more bytes.
    #[error("malformed {what}: {extra} trailing byte(s) after the object")]
    TrailingData { what: &'static str, extra: usize },
    /// The value decoded, but its canonical encoding differs from the bytes given.
    #[error("malformed {what}: not in canonical encoding (re-encoding differs from input)")]
    NonCanonical { what: &'static str },
    /// The input is larger than the caller's limit; nothing was parsed.
    #[error("{what} too large: {len} bytes, limit {max}")]
    TooLarge {
        what: &'static str,
        len: usize,
        max: usize,
    },
}

/// Encodes a value in Tessera's deterministic CBOR.
///
/// # Panics
/// Never for Tessera types: serialising into a `Vec` cannot fail for types without maps keyed by
/// non-strings or floats.
#[must_use]
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::into_writer(value, &mut out).expect("CBOR encoding into a Vec cannot fail");
    out
}

/// Decodes `bytes` as `T`, refusing anything but the canonical encoding of a single value.
pub fn decode<T: Serialize + DeserializeOwned>(
    bytes: &[u8],
    what: &'static str,
) -> Result<T, CborError> {
    let mut rest = bytes;
    let value: T = ciborium::from_reader(&mut rest).map_err(|e| CborError::Malformed {
        what,
        reason: describe(&e),
    })?;
    if !rest.is_empty() {
        return Err(CborError::TrailingData {
            what,
            extra: rest.len(),
        });
    }
    if encode(&value) != bytes {
        return Err(CborError::NonCanonical { what });
    }
    Ok(value)
}

/// Like [`decode`], after checking the input length against `max`.
pub fn decode_bounded<T: Serialize + DeserializeOwned>(
    bytes: &[u8],
    max: usize,
    what: &'static str,
) -> Result<T, CborError> {
    if bytes.len() > max {
        return Err(CborError::TooLarge {
            what,
            len: bytes.len(),
            max,
        });
    }
    decode(bytes, what)
}

fn describe<E: std::fmt::Debug>(e: &ciborium::de::Error<E>) -> String {
    match e {
        ciborium::de::Error::Io(_) => "unexpected end of input".to_owned(),
        ciborium::de::Error::Syntax(offset) => format!("invalid CBOR at byte {offset}"),
        ciborium::de::Error::Semantic(Some(offset), msg) => format!("{msg} (at byte {offset})"),
        ciborium::de::Error::Semantic(None, msg) => msg.clone(),
        ciborium::de::Error::RecursionLimitExceeded => "nesting too deep".to_owned(),
    }
}

/// SHA-256 of the canonical encoding: the identity of a hashed object.
#[must_use]
pub fn hash<T: Serialize + ?Sized>(value: &T) -> crate::bytes::Hash32 {
    crate::bytes::Hash32::sha256(&encode(value))
}
