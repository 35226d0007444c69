//! `COSE_Sign1` as the Nitro Secure Module emits it (RFC 9052 section 4.2, ES384 only).

use aws_lc_rs::signature::ParsedPublicKey;

use super::AttestationError;
use super::cbor::{Head, Reader, describe};

/// CBOR tag for `COSE_Sign1` (RFC 9052 section 2); the NSM omits it, other producers add it.
const TAG_COSE_SIGN1: u64 = 18;

/// `{1: -35}`: alg = ES384 (RFC 9053 section 2.1), the only protected header the NSM emits.
/// Comparing bytes rather than decoded values also refuses non-minimal encodings of it.
pub(crate) const PROTECTED_ES384: [u8; 4] = [0xa1, 0x01, 0x38, 0x22];

/// P-384 r || s, each 48 bytes (RFC 9053 section 2.1).
pub(crate) const SIGNATURE_LEN: usize = 96;

/// `{1: -1}`: what QEMU's emulated NSM writes as its protected header, "no algorithm".
pub(crate) const PROTECTED_EMULATED: [u8; 3] = [0xa1, 0x01, 0x20];

/// The emulated NSM's signature: 64 zero bytes.
pub(crate) const EMULATED_SIGNATURE_LEN: usize = 64;

/// Which kind of document is expected: a signed one (ES384), or the emulated NSM's unsigned one.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Profile {
    Es384,
    Emulated,
}

/// A decoded `COSE_Sign1`, borrowing every field from the input.
pub(crate) struct Sign1<'a> {
    pub(crate) protected: &'a [u8],
    pub(crate) payload: &'a [u8],
    pub(crate) signature: &'a [u8],
}

impl<'a> Sign1<'a> {
    pub(crate) fn decode(bytes: &'a [u8]) -> Result<Self, AttestationError> {
        Self::decode_as(bytes, Profile::Es384)
    }

    /// Decodes a document of `profile`: an emulated document has the emulated protected header
    /// and an all-zero 64-byte signature, and nothing else is accepted as one.
    pub(crate) fn decode_as(bytes: &'a [u8], profile: Profile) -> Result<Self, AttestationError> {
        let mut r = Reader::new(bytes, "COSE_Sign1");
        let mut head = r.head()?;
        if head == Head::Tag(TAG_COSE_SIGN1) {
            head = r.head()?;
        }
        match head {
            Head::Array(Some(4)) => {}
            Head::Tag(t) => {
                return Err(AttestationError::CoseStructure(format!(
                    "tag {t} is not COSE_Sign1 (18)"
                )));
            }
            other => {
                return Err(AttestationError::CoseStructure(format!(
                    "expected an array of 4 items, found {}",
                    match other {
                        Head::Array(Some(n)) => format!("an array of {n} items"),
                        Head::Array(None) => "an indefinite-length array".into(),
                        other => describe(other),
                    }
                )));
            }
        }
        let protected = r.bytes()?;
        let expected: &[u8] = match profile {
            Profile::Es384 => &PROTECTED_ES384,
            Profile::Emulated => &PROTECTED_EMULATED,
        };
        if protected != expected {
            return Err(match profile {
                Profile::Es384 if protected == PROTECTED_EMULATED => {
                    AttestationError::UnsignedEmulated
                }
                Profile::Es384 => AttestationError::ProtectedHeader {
                    found: hex::encode(protected),
                },
                Profile::Emulated => AttestationError::NotEmulated(format!(
                    "protected header is h'{}', the emulated NSM writes h'a10120' ({{1: -1}})",
                    hex::encode(protected)
                )),
            });
        }
        // Nothing in the unprotected header is used, but it must be a well-formed map.
        if r.peek_byte().is_none_or(|b| b >> 5 != 5) {
            let found = r.head().map_or_else(|_| "nothing".into(), describe);
            return Err(AttestationError::CoseStructure(format!(
                "unprotected header not a map (found {found})"
            )));
        }
        r.skip()?;
        let payload = match r.head()? {
            Head::Bytes(n) => r.take(n)?,
            Head::Simple(22) => {
                return Err(AttestationError::CoseStructure(
                    "detached payload (null) is not an attestation document".into(),
                ));
            }
            other => {
                return Err(AttestationError::CoseStructure(format!(
                    "payload is a {}, expected a byte string",
                    describe(other)
                )));
            }
        };
        let signature = r.bytes()?;
        r.finish()?;
        match profile {
            Profile::Es384 if signature.len() != SIGNATURE_LEN => {
                return Err(AttestationError::SignatureLength(signature.len()));
            }
            Profile::Emulated
                if signature.len() != EMULATED_SIGNATURE_LEN
                    || signature.iter().any(|&b| b != 0) =>
            {
                return Err(AttestationError::NotEmulated(format!(
                    "signature is {} bytes and not all zero; the emulated NSM writes 64 zero bytes",
                    signature.len()
                )));
            }
            _ => {}
        }
        Ok(Self {
            protected,
            payload,
            signature,
        })
    }

    /// Checks the ES384 signature over `Sig_structure = ["Signature1", protected, h'', payload]`
    /// (RFC 9052 section 4.4), built from the bytes as received so that no re-encoding can change
    /// what is verified.
    pub(crate) fn verify_signature(
        &self,
        leaf_key: &ParsedPublicKey,
    ) -> Result<(), AttestationError> {
        let message = sig_structure(self.protected, self.payload);
        leaf_key
            .verify_sig(&message, self.signature)
            .map_err(|_| AttestationError::Signature)
    }
}

/// The `ToBeSigned` bytes for a `COSE_Sign1` with empty external AAD.
pub(crate) fn sig_structure(protected: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(protected.len() + payload.len() + 32);
    out.push(0x84);
    out.push(0x6a);
    out.extend_from_slice(b"Signature1");
    push_bytes(&mut out, protected);
    out.push(0x40);
    push_bytes(&mut out, payload);
    out
}

/// Appends a CBOR byte string with the shortest head (RFC 8949 section 4.2.1).
pub(crate) fn push_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    push_head(out, 2, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

pub(crate) fn push_head(out: &mut Vec<u8>, major: u8, value: u64) {
    let m = major << 5;
    if value < 24 {
        out.push(m | value as u8);
    } else if value <= 0xff {
        out.extend_from_slice(&[m | 0x18, value as u8]);
    } else if value <= 0xffff {
        out.push(m | 0x19);
        out.extend_from_slice(&(value as u16).to_be_bytes());
    } else if value <= 0xffff_ffff {
        out.push(m | 0x1a);
        out.extend_from_slice(&(value as u32).to_be_bytes());
    } else {
        out.push(m | 0x1b);
        out.extend_from_slice(&value.to_be_bytes());
    }
}
