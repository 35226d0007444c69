//! The certificate chain from the pinned root through `cabundle` to the leaf (AWS
//! `attestation_process.md` section 3.2.3.1, "Certificates validity"; RFC 5280 section 6.1).
//!
//! Only what Nitro uses is accepted: P-384 keys and ecdsa-with-SHA384 signatures throughout.

use aws_lc_rs::signature::{
    ECDSA_P384_SHA384_ASN1, ECDSA_P384_SHA384_FIXED, ParsedPublicKey, VerificationAlgorithm,
};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;
use x509_parser::oid_registry::{
    OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_SIG_ECDSA_WITH_SHA384,
    OID_X509_EXT_BASIC_CONSTRAINTS, OID_X509_EXT_KEY_USAGE,
};
use x509_parser::prelude::FromDer;
use x509_parser::x509::X509Version;

use super::{AttestationError, CertificateInfo, rfc3339};

/// What a document is checked against: a pinned root certificate (the AWS Nitro root, or a
/// DEV root pinned by hand), or the EMULATED mode for QEMU's unsigned emulated NSM.
#[derive(Clone, Debug)]
pub struct TrustAnchor(Anchor);

#[derive(Clone, Debug)]
enum Anchor {
    Root(Box<RootCertificate>),
    /// No signature chain at all: only documents that are provably unsigned (the emulated
    /// NSM's all-zero signature, certificate and CA bundle) are accepted, and they are labelled
    /// EMULATED wherever shown.
    Emulated,
}

/// SHA-256 of the label that stands for the EMULATED trust mode where a root's hash is shown
/// or recorded; no certificate has it.
pub const EMULATED_ANCHOR_SHA256_INPUT: &[u8] =
    b"tessera: EMULATED Nitro enclave; no signature chain is checked";

/// A pinned root certificate: the chain must start with exactly these DER bytes.
#[derive(Clone)]
pub(crate) struct RootCertificate {
    der: Vec<u8>,
    sha256: [u8; 32],
    subject_raw: Vec<u8>,
    subject: String,
    key: ParsedPublicKey,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    path_len: Option<u32>,
}

impl std::fmt::Debug for RootCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrustAnchor")
            .field("subject", &self.subject)
            .field("sha256", &hex::encode(self.sha256))
            .finish_non_exhaustive()
    }
}

impl TrustAnchor {
    /// A root from its DER encoding. It must be a self-signed P-384 CA certificate.
    pub fn from_der(der: &[u8]) -> Result<Self, AttestationError> {
        RootCertificate::from_der(der).map(|r| Self(Anchor::Root(Box::new(r))))
    }

    /// The EMULATED trust mode: for documents from QEMU's emulated NSM, which does not sign.
    /// Everything but the signature chain is checked; such a document proves nothing about
    /// the hardware and must never stand in for a Nitro enclave.
    #[must_use]
    pub fn emulated() -> Self {
        Self(Anchor::Emulated)
    }

    /// Whether this is the EMULATED trust mode.
    #[must_use]
    pub fn is_emulated(&self) -> bool {
        matches!(self.0, Anchor::Emulated)
    }

    pub(crate) fn root(&self) -> Option<&RootCertificate> {
        match &self.0 {
            Anchor::Root(r) => Some(r),
            Anchor::Emulated => None,
        }
    }

    /// A root from a PEM file holding one `CERTIFICATE` block.
    pub fn from_pem(pem: &[u8]) -> Result<Self, AttestationError> {
        RootCertificate::from_pem(pem).map(|r| Self(Anchor::Root(Box::new(r))))
    }

    /// SHA-256 of the root's DER, the value operators compare when pinning; in the EMULATED
    /// mode, SHA-256 of [`EMULATED_ANCHOR_SHA256_INPUT`].
    #[must_use]
    pub fn sha256(&self) -> [u8; 32] {
        match &self.0 {
            Anchor::Root(r) => r.sha256,
            Anchor::Emulated => Sha256::digest(EMULATED_ANCHOR_SHA256_INPUT).into(),
        }
    }

    /// The root's DER; empty in the EMULATED mode.
    #[must_use]
    pub fn der(&self) -> &[u8] {
        match &self.0 {
            Anchor::Root(r) => &r.der,
            Anchor::Emulated => &[],
        }
    }

    #[must_use]
    pub fn subject(&self) -> &str {
        match &self.0 {
            Anchor::Root(r) => &r.subject,
            Anchor::Emulated => "EMULATED enclave (unsigned: no AWS signature chain)",
        }
    }
}

impl RootCertificate {
    fn from_der(der: &[u8]) -> Result<Self, AttestationError> {
        let bad = |detail: String| AttestationError::TrustAnchor(detail);
        let cert = parse(der).map_err(|e| bad(format!("not a DER X.509 certificate: {e}")))?;
        let subject = subject_string(&cert);
        let with_subject = |e: String| bad(format!("{subject}: {e}"));
        check_algorithms(&cert).map_err(with_subject)?;
        check_ca(&cert).map_err(with_subject)?;
        if cert.issuer().as_raw() != cert.subject().as_raw() {
            return Err(with_subject("not self-issued".into()));
        }
        let key = p384_key(&cert, &ECDSA_P384_SHA384_ASN1).map_err(|e| with_subject(e.into()))?;
        key.verify_sig(cert.tbs_certificate.as_ref(), &cert.signature_value.data)
            .map_err(|_| bad(format!("{subject}: self-signature does not verify")))?;
        let path_len = cert
            .basic_constraints()
            .ok()
            .flatten()
            .and_then(|bc| bc.value.path_len_constraint);
        Ok(Self {
            der: der.to_vec(),
            sha256: Sha256::digest(der).into(),
            subject_raw: cert.subject().as_raw().to_vec(),
            key,
            not_before: cert.validity().not_before.to_datetime(),
            not_after: cert.validity().not_after.to_datetime(),
            path_len,
            subject,
        })
    }

    fn from_pem(pem: &[u8]) -> Result<Self, AttestationError> {
        let (rest, block) = x509_parser::pem::parse_x509_pem(pem)
            .map_err(|e| AttestationError::TrustAnchor(format!("not a PEM certificate: {e}")))?;
        if block.label != "CERTIFICATE" {
            return Err(AttestationError::TrustAnchor(format!(
                "PEM block is {}, expected CERTIFICATE",
                block.label
            )));
        }
        if rest.iter().any(|b| !b.is_ascii_whitespace()) {
            return Err(AttestationError::TrustAnchor(
                "more than one PEM block: pin exactly one root".into(),
            ));
        }
        Self::from_der(&block.contents)
    }
}

/// Parses one certificate, refusing bytes after it.
fn parse(der: &[u8]) -> Result<X509Certificate<'_>, String> {
    let (rest, cert) = X509Certificate::from_der(der).map_err(|e| e.to_string())?;
    if !rest.is_empty() {
        return Err(format!(
            "{} trailing bytes after the certificate",
            rest.len()
        ));
    }
    Ok(cert)
}

/// `CN=...` when there is a common name, else the whole subject.
fn subject_string(cert: &X509Certificate<'_>) -> String {
    cert.subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map_or_else(|| cert.subject().to_string(), |cn| format!("CN={cn}"))
}

/// Subject and validity of one certificate, for reports.
pub(crate) fn info(der: &[u8]) -> Option<CertificateInfo> {
    let cert = parse(der).ok()?;
    Some(CertificateInfo {
        subject: cert.subject().to_string(),
        not_before: cert.validity().not_before.to_datetime(),
        not_after: cert.validity().not_after.to_datetime(),
    })
}

/// Signature algorithm ecdsa-with-SHA384 with absent parameters (RFC 5758 section 3.2), the same
/// in the outer certificate and in the signed `TBSCertificate` (RFC 5280 section 4.1.1.2), and a
/// version 3 certificate (RFC 5280 section 4.1.2.1, extensions present).
fn check_algorithms(cert: &X509Certificate<'_>) -> Result<(), String> {
    if cert.version() != X509Version::V3 {
        return Err(format!("version {} is not v3", cert.version().0 + 1));
    }
    let outer = &cert.signature_algorithm;
    let inner = &cert.tbs_certificate.signature;
    if outer.algorithm != OID_SIG_ECDSA_WITH_SHA384 || outer.parameters.is_some() {
        return Err(format!("sig alg {} not ecdsa-with-SHA384", outer.algorithm));
    }
    if inner.algorithm != outer.algorithm || inner.parameters.is_some() {
        return Err("TBSCertificate signature algorithm differs from the outer one".into());
    }
    // RFC 5280 section 4.2: a critical extension that is not understood makes the certificate
    // unusable. Only BasicConstraints and KeyUsage are acted upon here.
    for ext in cert.extensions() {
        if ext.critical
            && ext.oid != OID_X509_EXT_BASIC_CONSTRAINTS
            && ext.oid != OID_X509_EXT_KEY_USAGE
        {
            return Err(format!("unrecognised critical extension {}", ext.oid));
        }
    }
    Ok(())
}

/// A CA certificate: `BasicConstraints` cA (RFC 5280 section 4.2.1.9) and `KeyUsage` `keyCertSign`
/// (section 4.2.1.3).
fn check_ca(cert: &X509Certificate<'_>) -> Result<(), String> {
    match cert.basic_constraints() {
        Ok(Some(bc)) if bc.value.ca => {}
        Ok(_) => return Err("not a CA (BasicConstraints cA missing or false)".into()),
        Err(e) => return Err(format!("BasicConstraints: {e}")),
    }
    match cert.key_usage() {
        Ok(Some(ku)) if ku.value.key_cert_sign() => Ok(()),
        Ok(Some(_)) => Err("KeyUsage lacks keyCertSign".into()),
        Ok(None) => Err("KeyUsage missing (keyCertSign required for a CA)".into()),
        Err(e) => Err(format!("KeyUsage: {e}")),
    }
}

/// The leaf: not a CA, `KeyUsage` `digitalSignature`.
fn check_leaf(cert: &X509Certificate<'_>) -> Result<(), String> {
    match cert.basic_constraints() {
        Ok(Some(bc)) if bc.value.ca => return Err("leaf is a CA".into()),
        Ok(_) => {}
        Err(e) => return Err(format!("BasicConstraints: {e}")),
    }
    match cert.key_usage() {
        Ok(Some(ku)) if ku.value.digital_signature() => Ok(()),
        Ok(Some(_)) => Err("leaf KeyUsage lacks digitalSignature".into()),
        Ok(None) => Err("leaf KeyUsage missing (digitalSignature required)".into()),
        Err(e) => Err(format!("KeyUsage: {e}")),
    }
}

/// The certificate's key, which must be an EC key on P-384 (RFC 5480 section 2.1.1).
fn p384_key(
    cert: &X509Certificate<'_>,
    alg: &'static dyn VerificationAlgorithm,
) -> Result<ParsedPublicKey, &'static str> {
    let spki = cert.public_key();
    if spki.algorithm.algorithm != OID_KEY_TYPE_EC_PUBLIC_KEY {
        return Err("public key is not an EC key");
    }
    let on_p384 = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.as_oid().ok())
        .is_some_and(|oid| oid == OID_NIST_EC_P384);
    if !on_p384 {
        return Err("public key is not on P-384");
    }
    ParsedPublicKey::new(alg, spki.subject_public_key.data.as_ref())
        .map_err(|_| "public key is not a valid P-384 point")
}

struct Issuer {
    index: usize,
    subject_raw: Vec<u8>,
    key: ParsedPublicKey,
    /// SHA-256 of the issuer's DER: half of a [`Link`].
    der_sha256: [u8; 32],
}

/// A CA certificate and the certificate that signed it, as SHA-256 of each one's full DER.
pub(crate) type Link = ([u8; 32], [u8; 32]);

/// CA certificates whose signature by their issuer has been checked: only the signature check
/// is skipped for them, everything else (parsing, names, validity at the document's time, CA
/// constraints, path lengths) runs for every document. Bounded: the oldest link goes first.
pub(crate) struct Links {
    capacity: usize,
    order: std::collections::VecDeque<Link>,
    set: std::collections::HashSet<Link>,
}

impl Links {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            order: std::collections::VecDeque::new(),
            set: std::collections::HashSet::new(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.set.len()
    }

    fn contains(&self, link: &Link) -> bool {
        self.set.contains(link)
    }

    /// Adds links checked in a document that verified completely.
    pub(crate) fn extend(&mut self, links: Vec<Link>) {
        for link in links {
            if self.capacity == 0 || !self.set.insert(link) {
                continue;
            }
            self.order.push_back(link);
            if self.order.len() > self.capacity
                && let Some(old) = self.order.pop_front()
            {
                self.set.remove(&old);
            }
        }
    }
}

/// Verifies `root -> `cabundle`[1..] -> leaf` at `at` and returns the leaf key for the COSE
/// check, skipping the signature check of a CA certificate whose link `known` holds, and the CA
/// links this call checked (for the caller to keep once the whole document has verified).
pub(crate) fn verify_with(
    anchor: &RootCertificate,
    cabundle: &[&[u8]],
    leaf: &[u8],
    at: OffsetDateTime,
    known: Option<&Links>,
) -> Result<(ParsedPublicKey, Vec<Link>), AttestationError> {
    let mut checked = Vec::new();
    let root_der = cabundle.first().copied().unwrap_or_default();
    let root_hash: [u8; 32] = Sha256::digest(root_der).into();
    if root_hash != anchor.sha256 {
        return Err(AttestationError::UntrustedRoot {
            found: hex::encode(root_hash),
            expected: hex::encode(anchor.sha256),
        });
    }
    check_validity(0, &anchor.subject, anchor.not_before, anchor.not_after, at)?;

    // (index, subject, pathLenConstraint) of every CA seen so far that sets one.
    let mut path_limits: Vec<(usize, String, u32)> = anchor
        .path_len
        .map(|p| (0, anchor.subject.clone(), p))
        .into_iter()
        .collect();
    let last = cabundle.len();
    let mut issuer: Option<Issuer> = None;

    for (index, der) in cabundle
        .iter()
        .skip(1)
        .copied()
        .chain(std::iter::once(leaf))
        .enumerate()
    {
        let index = index + 1;
        let is_leaf = index == last;
        let fail = |subject: &str, detail: String| AttestationError::Certificate {
            index,
            subject: subject.to_owned(),
            detail,
        };
        let cert = parse(der)
            .map_err(|e| fail("unparsable", format!("not a DER X.509 certificate: {e}")))?;
        let subject = || subject_string(&cert);
        check_algorithms(&cert).map_err(|e| fail(&subject(), e))?;

        let (issuer_index, issuer_subject, issuer_key, issuer_der) = match &issuer {
            Some(i) => (i.index, i.subject_raw.as_slice(), &i.key, i.der_sha256),
            None => (0, anchor.subject_raw.as_slice(), &anchor.key, anchor.sha256),
        };
        // The leaf is new in every document: only CA links are ever looked up or kept.
        let link: Link = (Sha256::digest(der).into(), issuer_der);
        let known_link = !is_leaf && known.is_some_and(|k| k.contains(&link));
        if cert.issuer().as_raw() != issuer_subject {
            return Err(fail(
                &subject(),
                format!(
                    "issuer/subject mismatch: issuer is not the subject of certificate {issuer_index}"
                ),
            ));
        }
        if !known_link {
            issuer_key
                .verify_sig(cert.tbs_certificate.as_ref(), &cert.signature_value.data)
                .map_err(|_| AttestationError::CertificateSignature {
                    index,
                    subject: subject(),
                    issuer: issuer_index,
                })?;
        }
        check_validity(
            index,
            &subject(),
            cert.validity().not_before.to_datetime(),
            cert.validity().not_after.to_datetime(),
            at,
        )?;

        if is_leaf {
            check_leaf(&cert).map_err(|e| fail(&subject(), e))?;
            let key = p384_key(&cert, &ECDSA_P384_SHA384_FIXED)
                .map_err(|e| fail(&subject(), e.into()))?;
            return Ok((key, checked));
        }

        check_ca(&cert).map_err(|e| fail(&subject(), e))?;
        // RFC 5280 section 4.2.1.9: at most pathLen non-self-issued intermediates may follow a
        // CA, not counting the leaf.
        for (owner, owner_subject, limit) in &path_limits {
            let (owner, limit) = (*owner, *limit);
            if (index - owner) as u64 > u64::from(limit) {
                return Err(AttestationError::Certificate {
                    index: owner,
                    subject: owner_subject.clone(),
                    detail: format!(
                        "pathLenConstraint {limit} violated: certificate {index} is intermediate number {} below it",
                        index - owner
                    ),
                });
            }
        }
        if let Ok(Some(bc)) = cert.basic_constraints()
            && let Some(limit) = bc.value.path_len_constraint
        {
            path_limits.push((index, subject(), limit));
        }
        let key =
            p384_key(&cert, &ECDSA_P384_SHA384_ASN1).map_err(|e| fail(&subject(), e.into()))?;
        if !known_link {
            checked.push(link);
        }
        issuer = Some(Issuer {
            index,
            subject_raw: cert.subject().as_raw().to_vec(),
            key,
            der_sha256: link.0,
        });
    }
    // The iterator always ends with the leaf, which returns above.
    Err(AttestationError::MissingField("certificate"))
}

fn check_validity(
    index: usize,
    subject: &str,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    at: OffsetDateTime,
) -> Result<(), AttestationError> {
    if at < not_before {
        return Err(AttestationError::CertificateNotYetValid {
            index,
            subject: subject.to_owned(),
            not_before: rfc3339(not_before),
            at: rfc3339(at),
        });
    }
    if at > not_after {
        return Err(AttestationError::CertificateExpired {
            index,
            subject: subject.to_owned(),
            not_after: rfc3339(not_after),
            at: rfc3339(at),
        });
    }
    Ok(())
}
