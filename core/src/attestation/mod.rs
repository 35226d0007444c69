//! Offline verification of AWS Nitro Enclaves attestation documents.
//!
//! [`verify`] takes the `COSE_Sign1` bytes an enclave produced, a [`TrustAnchor`], the time at which
//! to judge certificate validity and a [`Policy`], and returns a [`VerifiedAttestation`] only when
//! every check passed. The checks run in a fixed order, each failing with its own
//! [`AttestationError`]:
//!
//! 1. structure: strict `COSE_Sign1` decoding and the payload fields of AWS's
//!    `attestation_process.md` (section 3.2, "Attestation document specification");
//! 2. chain: `cabundle[0]` is the pinned root, then each certificate down to the leaf is issued
//!    by the one before it (RFC 5280 section 6.1);
//! 3. signature: ES384 over the `Sig_structure` built from the original protected header and
//!    payload bytes (RFC 9052 section 4.4);
//! 4. policy: expected PCRs, debug mode, bound data, document age.
//!
//! In the EMULATED trust mode ([`TrustAnchor::emulated`]) steps 2 and 3 are replaced by a check
//! that the document is provably unsigned, as QEMU's emulated NSM writes it: the `{1: -1}`
//! protected header and an all-zero signature, certificate and single CA-bundle entry. Every
//! other check runs unchanged. A signed document is refused in that mode, and an emulated one
//! under any root, so neither can pass for the other.
//!
//! Nothing here reads the clock: the validation time is always a parameter.

pub(crate) mod cbor;
mod chain;
mod cose;
mod document;
mod policy;

pub mod build;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::LazyLock;

use time::OffsetDateTime;

pub use chain::{EMULATED_ANCHOR_SHA256_INPUT, TrustAnchor};
pub use policy::Policy;

/// SHA-256 of the DER of the AWS Nitro Enclaves root certificate G1, as published by AWS.
pub const AWS_NITRO_ROOT_G1_SHA256: [u8; 32] = [
    0x64, 0x1a, 0x03, 0x21, 0xa3, 0xe2, 0x44, 0xef, 0xe4, 0x56, 0x46, 0x31, 0x95, 0xd6, 0x06, 0x31,
    0x7e, 0xd7, 0xcd, 0xcc, 0x3c, 0x17, 0x56, 0xe0, 0x98, 0x93, 0xf3, 0xc6, 0x8f, 0x79, 0xbb, 0x5b,
];

/// The AWS Nitro Enclaves root certificate G1 (DER), shipped inside the binary.
const AWS_NITRO_ROOT_G1_DER: &[u8] = include_bytes!("../../certs/aws_nitro_root_g1.der");

static AWS_NITRO_ROOT_G1: LazyLock<TrustAnchor> = LazyLock::new(|| {
    let anchor = TrustAnchor::from_der(AWS_NITRO_ROOT_G1_DER)
        .expect("the shipped AWS Nitro root G1 certificate parses");
    // A mismatch means the binary was built from a tampered tree; no document may be trusted.
    assert_eq!(
        anchor.sha256(),
        AWS_NITRO_ROOT_G1_SHA256,
        "the shipped AWS Nitro root G1 does not match its pinned SHA-256"
    );
    anchor
});

/// The pinned AWS Nitro Enclaves root G1, checked against [`AWS_NITRO_ROOT_G1_SHA256`] on first use.
#[must_use]
pub fn aws_nitro_root_g1() -> &'static TrustAnchor {
    &AWS_NITRO_ROOT_G1
}

/// Verifies a Nitro attestation document and applies `policy`.
///
/// `at` is the time at which every certificate must be valid and against which the document's
/// age is measured.
pub fn verify(
    document: &[u8],
    anchor: &TrustAnchor,
    at: OffsetDateTime,
    policy: &Policy,
) -> Result<VerifiedAttestation, AttestationError> {
    let verified = verify_without_policy(document, anchor, at)?;
    policy.check(&verified)?;
    Ok(verified)
}

/// Verifies structure, chain and signature, leaving the policy to the caller.
///
/// Callers that act on the result must still apply a [`Policy`] (see [`Policy::check`]); this
/// exists so a report can show what a valid document contains even when the policy refuses it.
pub fn verify_without_policy(
    document: &[u8],
    anchor: &TrustAnchor,
    at: OffsetDateTime,
) -> Result<VerifiedAttestation, AttestationError> {
    verify_inner(document, anchor, at, None)
}

/// A verifier for many documents under one trust anchor (an audit of a fleet, a node checking
/// joining nodes, a monitor polling every node): it keeps the links of CA certificates whose
/// signature it has checked in a document that then verified completely, and skips only that
/// signature check when the same certificate under the same issuer comes again. Every other
/// check runs for every document at its own validation time; a link from a document that
/// failed anywhere is never kept. Verdicts are those of [`verify`], only faster.
pub struct FleetVerifier<'a> {
    anchor: &'a TrustAnchor,
    links: std::sync::Mutex<chain::Links>,
}

impl<'a> FleetVerifier<'a> {
    /// Keeps at most `capacity` CA links (a region's chain has three; 256 covers every region
    /// many times over).
    #[must_use]
    pub fn new(anchor: &'a TrustAnchor, capacity: usize) -> Self {
        Self {
            anchor,
            links: std::sync::Mutex::new(chain::Links::new(capacity)),
        }
    }

    /// As [`verify_without_policy`].
    pub fn verify_without_policy(
        &self,
        document: &[u8],
        at: OffsetDateTime,
    ) -> Result<VerifiedAttestation, AttestationError> {
        verify_inner(document, self.anchor, at, Some(&self.links))
    }

    /// As [`verify`].
    pub fn verify(
        &self,
        document: &[u8],
        at: OffsetDateTime,
        policy: &Policy,
    ) -> Result<VerifiedAttestation, AttestationError> {
        let verified = self.verify_without_policy(document, at)?;
        policy.check(&verified)?;
        Ok(verified)
    }

    /// How many CA links are kept.
    #[must_use]
    pub fn kept(&self) -> usize {
        self.links
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }
}

fn verify_inner(
    document: &[u8],
    anchor: &TrustAnchor,
    at: OffsetDateTime,
    links: Option<&std::sync::Mutex<chain::Links>>,
) -> Result<VerifiedAttestation, AttestationError> {
    let Some(root) = anchor.root() else {
        let sign1 = cose::Sign1::decode_as(document, cose::Profile::Emulated)?;
        let payload = document::Payload::decode(sign1.payload)?;
        let zero = |b: &[u8]| b.iter().all(|&x| x == 0);
        if !zero(payload.certificate) || payload.cabundle.len() != 1 || !zero(payload.cabundle[0]) {
            return Err(AttestationError::NotEmulated(
                "certificate or cabundle is not the emulated NSM's single all-zero entry".into(),
            ));
        }
        return Ok(VerifiedAttestation::new(&payload, anchor, at));
    };
    let sign1 = cose::Sign1::decode(document)?;
    let payload = document::Payload::decode(sign1.payload)?;
    let lock = || links.map(|l| l.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
    // Links are added only after the whole document verified, COSE signature included.
    let (leaf_key, checked) = {
        let known = lock();
        chain::verify_with(
            root,
            &payload.cabundle,
            payload.certificate,
            at,
            known.as_deref(),
        )?
    };
    sign1.verify_signature(&leaf_key)?;
    if let Some(mut kept) = lock() {
        kept.extend(checked);
    }
    Ok(VerifiedAttestation::new(&payload, anchor, at))
}

/// The `--root` value that selects the EMULATED trust mode instead of a root certificate file
/// (a file of that name is given as `./EMULATED`).
pub const EMULATED_ROOT_ARG: &str = "EMULATED";

/// How a trust anchor is named wherever a document's verification is shown: `AWS` for the
/// pinned AWS Nitro root G1, `EMULATED` for the emulated-enclave mode, `DEV` for any other root.
#[must_use]
pub fn anchor_label(anchor: &TrustAnchor) -> &'static str {
    if anchor.is_emulated() {
        "EMULATED"
    } else if anchor.sha256() == AWS_NITRO_ROOT_G1_SHA256 {
        "AWS"
    } else {
        "DEV"
    }
}

/// Reads the document's own timestamp without verifying anything.
///
/// Only for choosing a validation time (`--at doc`) when replaying old documents: the value is
/// whatever the document claims until [`verify`] has succeeded.
pub fn unverified_timestamp(document: &[u8]) -> Result<OffsetDateTime, AttestationError> {
    let sign1 = match cose::Sign1::decode(document) {
        Err(AttestationError::UnsignedEmulated) => {
            cose::Sign1::decode_as(document, cose::Profile::Emulated)?
        }
        other => other?,
    };
    let payload = document::Payload::decode(sign1.payload)?;
    Ok(timestamp_from_ms(payload.timestamp_ms))
}

fn timestamp_from_ms(ms: u64) -> OffsetDateTime {
    let nanos = i128::from(ms) * 1_000_000;
    OffsetDateTime::from_unix_timestamp_nanos(nanos).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// What a certificate in the verified chain says about itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateInfo {
    /// Subject distinguished name in RFC 4514 order as x509 tools print it.
    pub subject: String,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
}

/// An attestation document whose structure, chain and signature were verified.
///
/// Only this module constructs it, so holding one proves the checks ran.
#[derive(Clone, Debug)]
pub struct VerifiedAttestation {
    module_id: String,
    digest: String,
    timestamp_ms: u64,
    pcrs: BTreeMap<u8, Vec<u8>>,
    certificate: Vec<u8>,
    cabundle: Vec<Vec<u8>>,
    public_key: Option<Vec<u8>>,
    user_data: Option<Vec<u8>>,
    nonce: Option<Vec<u8>>,
    root_sha256: [u8; 32],
    emulated: bool,
    validated_at: OffsetDateTime,
}

impl VerifiedAttestation {
    fn new(payload: &document::Payload<'_>, anchor: &TrustAnchor, at: OffsetDateTime) -> Self {
        Self {
            module_id: payload.module_id.to_owned(),
            digest: payload.digest.to_owned(),
            timestamp_ms: payload.timestamp_ms,
            pcrs: payload.pcrs.iter().map(|&(i, v)| (i, v.to_vec())).collect(),
            certificate: payload.certificate.to_vec(),
            cabundle: payload.cabundle.iter().map(|c| c.to_vec()).collect(),
            public_key: payload.public_key.map(<[u8]>::to_vec),
            user_data: payload.user_data.map(<[u8]>::to_vec),
            nonce: payload.nonce.map(<[u8]>::to_vec),
            root_sha256: anchor.sha256(),
            emulated: anchor.is_emulated(),
            validated_at: at,
        }
    }

    #[must_use]
    pub fn module_id(&self) -> &str {
        &self.module_id
    }

    /// Always `"SHA384"`: anything else is refused.
    #[must_use]
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// Milliseconds since the Unix epoch, as signed by the NSM.
    #[must_use]
    pub fn timestamp_ms(&self) -> u64 {
        self.timestamp_ms
    }

    #[must_use]
    pub fn timestamp(&self) -> OffsetDateTime {
        timestamp_from_ms(self.timestamp_ms)
    }

    /// All PCRs in the document, by index.
    #[must_use]
    pub fn pcrs(&self) -> &BTreeMap<u8, Vec<u8>> {
        &self.pcrs
    }

    #[must_use]
    pub fn pcr(&self, index: u8) -> Option<&[u8]> {
        self.pcrs.get(&index).map(Vec::as_slice)
    }

    /// Whether the enclave runs in debug mode, which the NSM signals with an all-zero PCR0.
    #[must_use]
    pub fn is_debug(&self) -> bool {
        self.pcr(0).is_some_and(|p| p.iter().all(|&b| b == 0))
    }

    /// The leaf certificate (DER) whose key signed the document.
    #[must_use]
    pub fn certificate(&self) -> &[u8] {
        &self.certificate
    }

    /// The CA bundle (DER), root first.
    #[must_use]
    pub fn cabundle(&self) -> &[Vec<u8>] {
        &self.cabundle
    }

    #[must_use]
    pub fn public_key(&self) -> Option<&[u8]> {
        self.public_key.as_deref()
    }

    #[must_use]
    pub fn user_data(&self) -> Option<&[u8]> {
        self.user_data.as_deref()
    }

    #[must_use]
    pub fn nonce(&self) -> Option<&[u8]> {
        self.nonce.as_deref()
    }

    /// SHA-256 of the DER of the trust anchor the chain ends in.
    #[must_use]
    pub fn root_sha256(&self) -> [u8; 32] {
        self.root_sha256
    }

    /// Whether the document was accepted in the EMULATED trust mode: unsigned, from an
    /// emulated enclave, proving nothing about Nitro hardware.
    #[must_use]
    pub fn is_emulated(&self) -> bool {
        self.emulated
    }

    /// The validation time the chain was checked at.
    #[must_use]
    pub fn validated_at(&self) -> OffsetDateTime {
        self.validated_at
    }

    /// Subject and validity of each certificate, root first and leaf last.
    #[must_use]
    pub fn certificates(&self) -> Vec<CertificateInfo> {
        self.cabundle
            .iter()
            .chain(std::iter::once(&self.certificate))
            .filter_map(|der| chain::info(der))
            .collect()
    }
}

/// Why a document was refused.
///
/// Messages name the field or certificate that failed and, for time checks, both the limit and
/// the validation time. Certificates are numbered from the root (0) to the leaf.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AttestationError {
    #[error("{what}: malformed CBOR at byte {offset}: {detail}")]
    Cbor {
        what: &'static str,
        offset: usize,
        detail: String,
    },
    #[error("{what}: {bytes} trailing bytes after the end")]
    TrailingData { what: &'static str, bytes: usize },
    #[error("COSE_Sign1: {0}")]
    CoseStructure(String),
    #[error("protected header is h'{found}', expected {{1: -35}} (alg ES384) as h'a1013822'")]
    ProtectedHeader { found: String },
    #[error("signature is {0} bytes, expected 96 (r || s for P-384)")]
    SignatureLength(usize),
    #[error("payload: missing mandatory field {0}")]
    MissingField(&'static str),
    #[error("payload: duplicate key {key} in {map} map")]
    DuplicateKey { map: &'static str, key: String },
    #[error("payload: {field} {detail}")]
    InvalidField { field: &'static str, detail: String },
    #[error(
        "cabundle[0] is not the pinned root: its SHA-256 is {found}, the trust anchor's is {expected}"
    )]
    UntrustedRoot { found: String, expected: String },
    #[error("certificate {index} ({subject}) expired at {not_after} (validation time {at})")]
    CertificateExpired {
        index: usize,
        subject: String,
        not_after: String,
        at: String,
    },
    #[error(
        "certificate {index} ({subject}) is not valid before {not_before} (validation time {at})"
    )]
    CertificateNotYetValid {
        index: usize,
        subject: String,
        not_before: String,
        at: String,
    },
    #[error("certificate {index} ({subject}): {detail}")]
    Certificate {
        index: usize,
        subject: String,
        detail: String,
    },
    #[error(
        "certificate {index} ({subject}): signature does not verify under certificate {issuer}'s key"
    )]
    CertificateSignature {
        index: usize,
        subject: String,
        issuer: usize,
    },
    #[error("COSE signature invalid: it does not verify under the leaf certificate's key")]
    Signature,
    #[error(
        "not an emulated enclave's document ({0}): the EMULATED trust mode accepts only the \
         unsigned documents of QEMU's emulated NSM; verify a signed document against its root"
    )]
    NotEmulated(String),
    #[error(
        "this is an EMULATED enclave's unsigned document (QEMU's emulated NSM): no root accepts \
         it; only the explicit emulated trust mode reads it, and never in production"
    )]
    UnsignedEmulated,
    #[error("trust anchor: {0}")]
    TrustAnchor(String),
    #[error(
        "enclave runs in debug mode (PCR0 is all zeros): its memory is readable from the parent \
         instance, so it is refused unless debug enclaves are explicitly allowed"
    )]
    DebugMode,
    #[error("PCR{index} is {found}, expected {expected}")]
    PcrMismatch {
        index: u8,
        expected: String,
        found: String,
    },
    #[error("{field} is {found}, expected {expected}")]
    BindingMismatch {
        field: &'static str,
        expected: String,
        found: String,
    },
    #[error(
        "document is {age_seconds} s old at the validation time, more than the {max_seconds} s allowed"
    )]
    TooOld { age_seconds: i64, max_seconds: u64 },
    #[error("document timestamp {timestamp} is after the validation time {at}")]
    FromTheFuture { timestamp: String, at: String },
}

impl AttestationError {
    /// Whether the document itself was sound and only the caller's policy refused it.
    #[must_use]
    pub fn is_policy(&self) -> bool {
        matches!(
            self,
            Self::DebugMode
                | Self::PcrMismatch { .. }
                | Self::BindingMismatch { .. }
                | Self::TooOld { .. }
                | Self::FromTheFuture { .. }
        )
    }
}

/// Formats a time the way every message and report here does (RFC 3339, UTC).
pub(crate) fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

/// Hex of an optional byte string, `absent` when missing, for messages.
pub(crate) struct HexOrAbsent<'a>(pub(crate) Option<&'a [u8]>);

impl fmt::Display for HexOrAbsent<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(b) => f.write_str(&hex::encode(b)),
            None => f.write_str("absent"),
        }
    }
}
