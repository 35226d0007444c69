//! Writing attestation documents: the NSM's format, signed by a caller-provided P-384 key.
//!
//! Used by the development NSM and by tests. The builder writes exactly what it is given and
//! does not validate it, so tests can produce malformed documents on purpose; [`super::verify`]
//! is the only judge of a document.

use std::collections::BTreeMap;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::EcdsaKeyPair;

use super::cose::{
    EMULATED_SIGNATURE_LEN, PROTECTED_EMULATED, PROTECTED_ES384, SIGNATURE_LEN, push_bytes,
    push_head, sig_structure,
};

/// The emulated NSM's certificate and only CA-bundle entry: 64 zero bytes each.
const EMULATED_CERTIFICATE: [u8; 64] = [0; 64];

/// An optional payload field: left out, written as CBOR null, or written as bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Optional {
    Absent,
    /// What the NSM writes for a field the caller did not supply.
    #[default]
    Null,
    Bytes(Vec<u8>),
}

impl From<Option<Vec<u8>>> for Optional {
    fn from(v: Option<Vec<u8>>) -> Self {
        v.map_or(Self::Null, Self::Bytes)
    }
}

impl From<Vec<u8>> for Optional {
    fn from(v: Vec<u8>) -> Self {
        Self::Bytes(v)
    }
}

/// Builds the payload map in the NSM's field order and signs it as a `COSE_Sign1`.
#[derive(Clone, Debug)]
pub struct DocumentBuilder {
    module_id: String,
    digest: String,
    timestamp_ms: u64,
    pcrs: BTreeMap<u8, Vec<u8>>,
    certificate: Vec<u8>,
    cabundle: Vec<Vec<u8>>,
    public_key: Optional,
    user_data: Optional,
    nonce: Optional,
    tagged: bool,
}

impl DocumentBuilder {
    /// A document for `module_id` at `timestamp_ms`, signed by the key of `certificate` (DER),
    /// which chains through `cabundle` (DER, root first). The digest is `SHA384`.
    #[must_use]
    pub fn new(
        module_id: impl Into<String>,
        timestamp_ms: u64,
        certificate: Vec<u8>,
        cabundle: Vec<Vec<u8>>,
    ) -> Self {
        Self {
            module_id: module_id.into(),
            digest: "SHA384".into(),
            timestamp_ms,
            pcrs: BTreeMap::new(),
            certificate,
            cabundle,
            public_key: Optional::Null,
            user_data: Optional::Null,
            nonce: Optional::Null,
            tagged: false,
        }
    }

    /// A document as QEMU's emulated NSM writes it: all-zero certificate and single CA-bundle
    /// entry; write it with [`Self::unsigned_emulated`].
    #[must_use]
    pub fn emulated(module_id: impl Into<String>, timestamp_ms: u64) -> Self {
        Self::new(
            module_id,
            timestamp_ms,
            EMULATED_CERTIFICATE.to_vec(),
            vec![EMULATED_CERTIFICATE.to_vec()],
        )
    }

    /// The unsigned `COSE_Sign1` of the emulated NSM: protected header `{1: -1}`, an empty
    /// unprotected header, the payload and 64 zero bytes for a signature.
    #[must_use]
    pub fn unsigned_emulated(&self) -> Vec<u8> {
        let payload = self.payload();
        let mut out = Vec::with_capacity(payload.len() + EMULATED_SIGNATURE_LEN + 16);
        out.push(0x84);
        push_bytes(&mut out, &PROTECTED_EMULATED);
        out.push(0xa0);
        push_bytes(&mut out, &payload);
        push_bytes(&mut out, &[0; EMULATED_SIGNATURE_LEN]);
        out
    }

    #[must_use]
    pub fn pcr(mut self, index: u8, value: impl Into<Vec<u8>>) -> Self {
        self.pcrs.insert(index, value.into());
        self
    }

    /// Replaces the digest name; anything but `SHA384` yields a document verifiers refuse.
    #[must_use]
    pub fn digest(mut self, digest: impl Into<String>) -> Self {
        self.digest = digest.into();
        self
    }

    #[must_use]
    pub fn public_key(mut self, value: impl Into<Optional>) -> Self {
        self.public_key = value.into();
        self
    }

    #[must_use]
    pub fn user_data(mut self, value: impl Into<Optional>) -> Self {
        self.user_data = value.into();
        self
    }

    #[must_use]
    pub fn nonce(mut self, value: impl Into<Optional>) -> Self {
        self.nonce = value.into();
        self
    }

    /// Wraps the `COSE_Sign1` in CBOR tag 18, which the NSM itself does not do.
    #[must_use]
    pub fn tagged(mut self, tagged: bool) -> Self {
        self.tagged = tagged;
        self
    }

    /// The payload bytes: a definite-length map with the shortest encodings.
    #[must_use]
    pub fn payload(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            512 + self.certificate.len() + self.cabundle.iter().map(Vec::len).sum::<usize>(),
        );
        let optional = [&self.public_key, &self.user_data, &self.nonce];
        let entries = 6 + optional.iter().filter(|f| **f != &Optional::Absent).count();
        push_head(&mut out, 5, entries as u64);
        push_text(&mut out, "module_id");
        push_text(&mut out, &self.module_id);
        push_text(&mut out, "digest");
        push_text(&mut out, &self.digest);
        push_text(&mut out, "timestamp");
        push_head(&mut out, 0, self.timestamp_ms);
        push_text(&mut out, "pcrs");
        push_head(&mut out, 5, self.pcrs.len() as u64);
        for (&index, value) in &self.pcrs {
            push_head(&mut out, 0, u64::from(index));
            push_bytes(&mut out, value);
        }
        push_text(&mut out, "certificate");
        push_bytes(&mut out, &self.certificate);
        push_text(&mut out, "cabundle");
        push_head(&mut out, 4, self.cabundle.len() as u64);
        for cert in &self.cabundle {
            push_bytes(&mut out, cert);
        }
        for (name, field) in ["public_key", "user_data", "nonce"]
            .into_iter()
            .zip(optional)
        {
            match field {
                Optional::Absent => {}
                Optional::Null => {
                    push_text(&mut out, name);
                    out.push(0xf6);
                }
                Optional::Bytes(b) => {
                    push_text(&mut out, name);
                    push_bytes(&mut out, b);
                }
            }
        }
        out
    }

    /// Signs with `signer`, which receives the COSE `Sig_structure` and returns the ES384
    /// signature (SHA-384, then P-384 ECDSA) as 96 bytes r || s.
    pub fn sign_with<E>(
        &self,
        signer: impl FnOnce(&[u8]) -> Result<[u8; SIGNATURE_LEN], E>,
    ) -> Result<Vec<u8>, E> {
        sign1(&self.payload(), self.tagged, signer)
    }

    /// Signs with a P-384 key created for `ECDSA_P384_SHA384_FIXED_SIGNING`.
    pub fn sign(&self, key: &EcdsaKeyPair) -> Result<Vec<u8>, aws_lc_rs::error::Unspecified> {
        self.sign_with(|message| sign_es384(key, message))
    }
}

/// ES384 with an aws-lc-rs key pair; fails unless the key uses the fixed-length P-384 encoding.
pub fn sign_es384(
    key: &EcdsaKeyPair,
    message: &[u8],
) -> Result<[u8; SIGNATURE_LEN], aws_lc_rs::error::Unspecified> {
    let signature = key.sign(&SystemRandom::new(), message)?;
    signature
        .as_ref()
        .try_into()
        .map_err(|_| aws_lc_rs::error::Unspecified)
}

/// Wraps arbitrary payload bytes in a `COSE_Sign1` with the ES384 protected header and an empty
/// unprotected header, signing them with `signer`.
pub fn sign1<E>(
    payload: &[u8],
    tagged: bool,
    signer: impl FnOnce(&[u8]) -> Result<[u8; SIGNATURE_LEN], E>,
) -> Result<Vec<u8>, E> {
    let signature = signer(&sig_structure(&PROTECTED_ES384, payload))?;
    let mut out = Vec::with_capacity(payload.len() + SIGNATURE_LEN + 16);
    if tagged {
        out.push(0xd2);
    }
    out.push(0x84);
    push_bytes(&mut out, &PROTECTED_ES384);
    out.push(0xa0);
    push_bytes(&mut out, payload);
    push_bytes(&mut out, &signature);
    Ok(out)
}

fn push_text(out: &mut Vec<u8>, text: &str) {
    push_head(out, 3, text.len() as u64);
    out.extend_from_slice(text.as_bytes());
}
