//! The bundle container: one typed, versioned, checksummed CBOR object per transfer.
//!
//! Wire form (version 1), every byte of which is fixed by the content:
//!
//! ```text
//! bundle = [ "tessera-bundle", 1, body: bstr, sha256(body): bstr .size 32 ]
//! body   = { "kind": tstr, "meta": meta, "payload": bstr }
//! meta   = { ? "nonce": uint, ? "member": tstr, ? "file_name": tstr, ? "namespace": tstr }
//! ```
//!
//! Maps use definite lengths with keys in RFC 8949 §4.2.1 order and absent optional fields are
//! omitted, so there is exactly one encoding per bundle. The decoder re-encodes what it read and
//! rejects input whose bytes differ; that makes the fingerprint (a hash of the file bytes) a
//! stable name for the content.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::cbor::{CborError, Reader};

/// The first item of every bundle; a file of any other format fails on it.
pub const MAGIC: &str = "tessera-bundle";
/// The container version this crate writes and the only one it reads.
pub const FORMAT_VERSION: u64 = 1;
/// Largest encoded bundle accepted anywhere (files, QR, text). Ceremony objects are a few KB;
/// 1 MiB leaves room for large genesis outputs and PCR files while bounding every allocation.
pub const MAX_BUNDLE_BYTES: usize = 1 << 20;
/// Largest payload: leaves room for the header and the longest metadata under
/// [`MAX_BUNDLE_BYTES`], so a bundle that [`Bundle::new`] accepts always encodes within it.
pub const MAX_PAYLOAD_BYTES: usize = MAX_BUNDLE_BYTES - 1024;
/// Longest namespace or member alias, in bytes.
pub const MAX_LABEL_BYTES: usize = 64;
/// Longest file name, in bytes (the common file system limit).
pub const MAX_FILE_NAME_BYTES: usize = 255;

/// What a bundle carries. The payload's own format belongs to the ceremony code; the kind tells
/// the receiver which decoder to hand it to and is shown before anything inside is trusted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum BundleKind {
    /// A manifest envelope and the enclave's attestation document, asking one member for a share.
    Request,
    /// A member's share, encrypted to one enclave's ephemeral key, with its share-post receipt.
    Share,
    /// A genesis request or a genesis output.
    Genesis,
    /// A member's signed approval of a manifest or patch.
    Approval,
    /// A manifest or manifest envelope for review.
    Manifest,
    /// A live patch for review.
    Patch,
    /// A member descriptor (public keys, alias) for the coordinator.
    Member,
    /// Any named file: drafts, PCR files, notes.
    File,
}

impl BundleKind {
    /// Every kind, in wire-name order of declaration.
    pub const ALL: [Self; 8] = [
        Self::Request,
        Self::Share,
        Self::Genesis,
        Self::Approval,
        Self::Manifest,
        Self::Patch,
        Self::Member,
        Self::File,
    ];

    /// The wire name, also used in file names and on the command line.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Request => "request",
            Self::Share => "share",
            Self::Genesis => "genesis",
            Self::Approval => "approval",
            Self::Manifest => "manifest",
            Self::Patch => "patch",
            Self::Member => "member",
            Self::File => "file",
        }
    }

    /// A few words for summaries.
    #[must_use]
    pub const fn description(self) -> &'static str {
        match self {
            Self::Request => "share request (manifest envelope + attestation document)",
            Self::Share => "member share for one enclave",
            Self::Genesis => "genesis request or output",
            Self::Approval => "signed approval",
            Self::Manifest => "manifest",
            Self::Patch => "live patch",
            Self::Member => "member descriptor",
            Self::File => "file",
        }
    }
}

impl fmt::Display for BundleKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for BundleKind {
    type Err = BundleError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| BundleError::UnknownKind(printable(s)))
    }
}

/// Labels used for naming files and for summaries. None of it is authenticated: the ceremony
/// code must take namespace, member and nonce from the verified payload, never from here.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Metadata {
    /// Namespace the bundle belongs to.
    pub namespace: Option<String>,
    /// Alias of the member who made it or for whom it is meant.
    pub member: Option<String>,
    /// Manifest nonce it relates to.
    pub nonce: Option<u64>,
    /// File name, required for [`BundleKind::File`].
    pub file_name: Option<String>,
}

/// First 8 bytes of SHA-256 over the encoded bundle, i.e. over the file as stored.
///
/// It needs no parsing, so it can be shown, compared across machines, or checked with
/// `sha256sum`, before anything inside is trusted.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; 8]);

impl Fingerprint {
    /// The fingerprint of encoded bundle bytes (valid or not).
    #[must_use]
    pub fn of(encoded: &[u8]) -> Self {
        let digest = Sha256::digest(encoded);
        let mut out = [0u8; 8];
        out.copy_from_slice(&digest[..8]);
        Self(out)
    }

    /// The raw 8 bytes.
    #[must_use]
    pub const fn as_bytes(&self) -> &[u8; 8] {
        &self.0
    }

    /// 16 hex digits without spaces, for file names.
    #[must_use]
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for Fingerprint {
    /// Four groups of four hex digits: `ab12 cd34 ef56 7890`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, pair) in self.0.chunks(2).enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{}", hex::encode(pair))?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

/// Why bytes are not a bundle this crate accepts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BundleError {
    #[error("bundle is {size} bytes, more than the {max}-byte limit")]
    TooLarge { size: usize, max: usize },
    #[error("payload is {size} bytes, more than the {max}-byte limit")]
    PayloadTooLarge { size: usize, max: usize },
    #[error("not a Tessera bundle (no `tessera-bundle` header)")]
    NotABundle,
    #[error("bundle format version {0} is not supported (this build reads version 1)")]
    UnsupportedVersion(u64),
    #[error("bundle is cut short (truncated file or incomplete transfer)")]
    Truncated,
    #[error("malformed bundle: {0}")]
    Malformed(String),
    #[error("{0} has bytes after its end")]
    TrailingData(&'static str),
    #[error("{0} is not in canonical encoding")]
    NonCanonical(&'static str),
    #[error("checksum mismatch: the bundle was altered or damaged")]
    ChecksumMismatch,
    #[error("unknown bundle kind `{0}`")]
    UnknownKind(String),
    #[error("invalid metadata: {0}")]
    InvalidMetadata(String),
}

impl BundleError {
    /// What the member does about it, for the line after the error.
    #[must_use]
    pub fn next_step(&self) -> &'static str {
        match self {
            BundleError::Truncated
            | BundleError::ChecksumMismatch
            | BundleError::TrailingData(_) => {
                "cut short or damaged on the way: copy it again from the USB stick, or scan every QR frame again"
            }
            BundleError::NotABundle => {
                "this is not a bundle file: check that you picked the right file"
            }
            BundleError::UnsupportedVersion(_) => {
                "made by a newer Tessera: update this laptop's tessera, or ask for a version 1 bundle"
            }
            BundleError::TooLarge { .. } | BundleError::PayloadTooLarge { .. } => {
                "larger than any ceremony object: ask the coordinator what this file is"
            }
            _ => "ask the coordinator for a fresh copy",
        }
    }
}

/// A decoded (or to-be-encoded) bundle. Holding one means its structure and checksum are
/// sound; it says nothing about whether the payload is genuine.
#[derive(Clone, PartialEq, Eq)]
pub struct Bundle {
    kind: BundleKind,
    meta: Metadata,
    payload: Vec<u8>,
}

impl fmt::Debug for Bundle {
    // Payloads can be large and are opaque here; the summary is what a log needs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bundle")
            .field("kind", &self.kind)
            .field("meta", &self.meta)
            .field("payload_len", &self.payload.len())
            .finish()
    }
}

#[derive(Serialize, Deserialize)]
struct WireBundle(
    String,
    u64,
    #[serde(with = "serde_bytes")] Vec<u8>,
    #[serde(with = "serde_bytes")] Vec<u8>,
);

// Field order is the canonical key order: shorter keys first, then bytewise.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireBody {
    kind: String,
    meta: WireMeta,
    #[serde(with = "serde_bytes")]
    payload: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireMeta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nonce: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    member: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    file_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    namespace: Option<String>,
}

impl Bundle {
    /// A bundle of `kind` carrying `payload`, with labels checked.
    pub fn new(kind: BundleKind, meta: Metadata, payload: Vec<u8>) -> Result<Self, BundleError> {
        if payload.len() > MAX_PAYLOAD_BYTES {
            return Err(BundleError::PayloadTooLarge {
                size: payload.len(),
                max: MAX_PAYLOAD_BYTES,
            });
        }
        validate_meta(kind, &meta)?;
        Ok(Self {
            kind,
            meta,
            payload,
        })
    }

    /// A [`BundleKind::File`] bundle of a named file.
    pub fn file(name: &str, contents: Vec<u8>) -> Result<Self, BundleError> {
        let meta = Metadata {
            file_name: Some(name.to_owned()),
            ..Metadata::default()
        };
        Self::new(BundleKind::File, meta, contents)
    }

    #[must_use]
    pub const fn kind(&self) -> BundleKind {
        self.kind
    }

    #[must_use]
    pub const fn meta(&self) -> &Metadata {
        &self.meta
    }

    #[must_use]
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// Takes the payload out.
    #[must_use]
    pub fn into_payload(self) -> Vec<u8> {
        self.payload
    }

    /// The one encoding of this bundle.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let body = WireBody {
            kind: self.kind.as_str().to_owned(),
            meta: WireMeta {
                nonce: self.meta.nonce,
                member: self.meta.member.clone(),
                file_name: self.meta.file_name.clone(),
                namespace: self.meta.namespace.clone(),
            },
            payload: self.payload.clone(),
        };
        let body = to_cbor(&body);
        let checksum = Sha256::digest(&body).to_vec();
        to_cbor(&WireBundle(
            MAGIC.to_owned(),
            FORMAT_VERSION,
            body,
            checksum,
        ))
    }

    /// The fingerprint of [`Bundle::encode`]'s output.
    #[must_use]
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(&self.encode())
    }

    /// Strict decoding: the header, version, checksum and canonical form are all checked, every
    /// byte must be consumed, and no field may be missing, unknown or repeated.
    pub fn decode(bytes: &[u8]) -> Result<Self, BundleError> {
        if bytes.len() > MAX_BUNDLE_BYTES {
            return Err(BundleError::TooLarge {
                size: bytes.len(),
                max: MAX_BUNDLE_BYTES,
            });
        }
        peek_version(bytes)?;

        let WireBundle(_, _, body, checksum) = strict_decode::<WireBundle>(bytes, "bundle")?;
        if checksum.len() != 32 || Sha256::digest(&body).as_slice() != checksum.as_slice() {
            return Err(BundleError::ChecksumMismatch);
        }

        let body = strict_decode::<WireBody>(&body, "bundle body")?;
        let kind = body.kind.parse::<BundleKind>()?;
        let meta = Metadata {
            namespace: body.meta.namespace,
            member: body.meta.member,
            nonce: body.meta.nonce,
            file_name: body.meta.file_name,
        };
        Self::new(kind, meta, body.payload)
    }

    /// What a list or an `inspect` shows.
    #[must_use]
    pub fn summary(&self) -> BundleSummary {
        let encoded = self.encode();
        BundleSummary {
            kind: self.kind,
            version: FORMAT_VERSION,
            size: encoded.len(),
            fingerprint: Fingerprint::of(&encoded),
            meta: self.meta.clone(),
            payload_len: self.payload.len(),
        }
    }
}

/// A one-screen description of a bundle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BundleSummary {
    pub kind: BundleKind,
    pub version: u64,
    /// Encoded size in bytes.
    pub size: usize,
    pub fingerprint: Fingerprint,
    pub meta: Metadata,
    pub payload_len: usize,
}

impl fmt::Display for BundleSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} bundle {}", self.kind, self.fingerprint)?;
        if let Some(ns) = &self.meta.namespace {
            write!(f, ", namespace {ns}")?;
        }
        if let Some(member) = &self.meta.member {
            write!(f, ", member {member}")?;
        }
        if let Some(nonce) = self.meta.nonce {
            write!(f, ", nonce {nonce}")?;
        }
        if let Some(name) = &self.meta.file_name {
            write!(f, ", file {name}")?;
        }
        write!(f, ", {} bytes", self.size)
    }
}

/// Reads the magic and version before the strict decoder, so a newer bundle is reported as
/// "unsupported version" rather than as a structural error.
fn peek_version(bytes: &[u8]) -> Result<(), BundleError> {
    let map = |e: CborError| match e {
        CborError::Eof => BundleError::Truncated,
        CborError::Invalid => BundleError::NotABundle,
    };
    let mut r = Reader::new(bytes);
    r.array_len().map_err(map)?;
    if r.text().map_err(map)? != MAGIC.as_bytes() {
        return Err(BundleError::NotABundle);
    }
    let version = r.uint().map_err(|e| match e {
        CborError::Eof => BundleError::Truncated,
        CborError::Invalid => BundleError::Malformed("version is not an unsigned integer".into()),
    })?;
    if version != FORMAT_VERSION {
        return Err(BundleError::UnsupportedVersion(version));
    }
    Ok(())
}

fn to_cbor<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::into_writer(value, &mut out).expect("writing CBOR to a Vec cannot fail");
    out
}

fn strict_decode<T>(bytes: &[u8], what: &'static str) -> Result<T, BundleError>
where
    T: Serialize + for<'de> Deserialize<'de>,
{
    let mut rest = bytes;
    let value: T = ciborium::from_reader(&mut rest).map_err(|e| match e {
        ciborium::de::Error::Io(_) => BundleError::Truncated,
        ciborium::de::Error::Syntax(offset) => {
            BundleError::Malformed(format!("{what}: invalid CBOR at byte {offset}"))
        }
        ciborium::de::Error::Semantic(_, msg) => {
            BundleError::Malformed(format!("{what}: {}", printable(&msg)))
        }
        ciborium::de::Error::RecursionLimitExceeded => {
            BundleError::Malformed(format!("{what}: nested too deeply"))
        }
    })?;
    if !rest.is_empty() {
        return Err(BundleError::TrailingData(what));
    }
    if to_cbor(&value) != bytes {
        return Err(BundleError::NonCanonical(what));
    }
    Ok(value)
}

fn validate_meta(kind: BundleKind, meta: &Metadata) -> Result<(), BundleError> {
    let label = |what: &str, value: &Option<String>| -> Result<(), BundleError> {
        match value {
            Some(v)
                if v.is_empty() || v.len() > MAX_LABEL_BYTES || v.chars().any(char::is_control) =>
            {
                Err(BundleError::InvalidMetadata(format!(
                    "{what} must be 1 to {MAX_LABEL_BYTES} bytes without control characters"
                )))
            }
            _ => Ok(()),
        }
    };
    label("namespace", &meta.namespace)?;
    label("member", &meta.member)?;
    match &meta.file_name {
        Some(name) => validate_file_name(name)?,
        None if kind == BundleKind::File => {
            return Err(BundleError::InvalidMetadata(
                "a file bundle needs a file name".into(),
            ));
        }
        None => {}
    }
    Ok(())
}

/// A file name is a single path component: it can never point outside the folder it is
/// unpacked into.
fn validate_file_name(name: &str) -> Result<(), BundleError> {
    let bad = name.is_empty()
        || name.len() > MAX_FILE_NAME_BYTES
        || name == "."
        || name == ".."
        || name
            .chars()
            .any(|c| c == '/' || c == '\\' || c.is_control());
    if bad {
        return Err(BundleError::InvalidMetadata(format!(
            "file name must be a single path component of 1 to {MAX_FILE_NAME_BYTES} bytes"
        )));
    }
    Ok(())
}

/// Untrusted text echoed in an error message, made safe for a terminal and kept short.
fn printable(s: &str) -> String {
    let mut out: String = s
        .chars()
        .take(64)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if s.chars().count() > 64 {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_groups() {
        let fp = Fingerprint([0xab, 0x12, 0xcd, 0x34, 0xef, 0x56, 0x78, 0x90]);
        assert_eq!(fp.to_string(), "ab12 cd34 ef56 7890");
        assert_eq!(fp.to_hex(), "ab12cd34ef567890");
    }

    #[test]
    fn meta_keys_are_in_canonical_order() {
        let meta = Metadata {
            namespace: Some("ns".into()),
            member: Some("alice".into()),
            nonce: Some(7),
            file_name: Some("f".into()),
        };
        let b = Bundle::new(BundleKind::Share, meta, vec![1, 2, 3]).unwrap();
        let encoded = b.encode();
        assert_eq!(Bundle::decode(&encoded).unwrap(), b);
    }
}
