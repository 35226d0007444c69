//! Offline verification of YubiKey PIV attestations: proof that a member key was generated on a
//! genuine YubiKey, with the PIN and touch policies the card enforces for it.
//!
//! A YubiKey answers the PIV ATTEST command for a slot with an X.509 certificate for the slot's
//! public key, signed by the device's attestation key in slot `f9`. The `f9` certificate is
//! issued by Yubico, directly by the pinned root (firmware before 5.7.4), or through Yubico's
//! published intermediates (5.7.4 and later). See Yubico's "PIV attestation"
//! (<https://developers.yubico.com/PIV/Introduction/PIV_attestation.html>) and its PKI page
//! (<https://developers.yubico.com/PKI/>).
//!
//! [`verify_slot`] checks the chain `slot certificate <- f9 <- [pinned intermediates] <- pinned
//! root` with every signature and every validity period at an explicit time (nothing here
//! reads the clock), and reads Yubico's extensions from the slot certificate into a
//! [`SlotAttestation`]. What a namespace demands of those facts is [`crate::yubikey_attest_policy`].
//!
//! Only keys generated on the card can be attested: the card refuses ATTEST for an imported
//! key. A verified attestation therefore always means "generated on this YubiKey".

use std::fmt;
use std::sync::LazyLock;

use aws_lc_rs::signature::{self as sig, UnparsedPublicKey, VerificationAlgorithm};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;
use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_PKCS1_RSAENCRYPTION,
    OID_PKCS1_SHA256WITHRSA, OID_PKCS1_SHA384WITHRSA, OID_PKCS1_SHA512WITHRSA,
    OID_SIG_ECDSA_WITH_SHA256, OID_SIG_ECDSA_WITH_SHA384, OID_X509_EXT_BASIC_CONSTRAINTS,
    OID_X509_EXT_KEY_USAGE,
};
use x509_parser::prelude::FromDer;

use crate::keys::PublicKey;

/// A certificate larger than this is refused before parsing (Yubico's are about 1 KiB).
pub const MAX_CERTIFICATE_BYTES: usize = 4096;

/// The Yubico PIV attestation extensions (arc 1.3.6.1.4.1.41482.3), as DER OID contents.
mod oid {
    /// `.3.3`: firmware version, three raw bytes (major, minor, patch).
    pub const FIRMWARE: &[u8] = &[0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0xc4, 0x0a, 0x03, 0x03];
    /// `.3.7`: serial number, a DER INTEGER.
    pub const SERIAL: &[u8] = &[0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0xc4, 0x0a, 0x03, 0x07];
    /// `.3.8`: PIN policy then touch policy, two raw bytes.
    pub const POLICY: &[u8] = &[0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0xc4, 0x0a, 0x03, 0x08];
    /// `.3.9`: form factor, one raw byte (absent on older firmware).
    pub const FORM_FACTOR: &[u8] = &[0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0xc4, 0x0a, 0x03, 0x09];
}

/// Why an attestation was not accepted as genuine.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PivAttestationError {
    #[error("the {what} is not a DER X.509 certificate: {detail}")]
    Malformed { what: &'static str, detail: String },
    #[error(
        "the {what} ({subject}) does not chain to a pinned Yubico PIV attestation root: its issuer {issuer} is not one of Tessera's pinned Yubico certificates"
    )]
    UnknownIssuer {
        what: &'static str,
        subject: String,
        issuer: String,
    },
    #[error("the signature on the {what} ({subject}) by {issuer} does not verify")]
    BadSignature {
        what: &'static str,
        subject: String,
        issuer: String,
    },
    #[error("the {what} ({subject}) is not valid until {not_before} (checked at {at})")]
    NotYetValid {
        what: &'static str,
        subject: String,
        not_before: String,
        at: String,
    },
    #[error("the {what} ({subject}) expired at {not_after} (checked at {at})")]
    Expired {
        what: &'static str,
        subject: String,
        not_after: String,
        at: String,
    },
    #[error("the {what} ({subject}): {detail}")]
    Constraint {
        what: &'static str,
        subject: String,
        detail: String,
    },
    #[error("the slot certificate has no Yubico {name} extension: it is not a PIV attestation")]
    MissingExtension { name: &'static str },
    #[error("the slot certificate's Yubico {name} extension is malformed: {detail}")]
    BadExtension { name: &'static str, detail: String },
    #[error("pinned Yubico certificate: {0}")]
    TrustSet(String),
}

/// Firmware version from the attestation (`major.minor.patch`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Firmware(pub u8, pub u8, pub u8);

impl fmt::Display for Firmware {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

impl std::str::FromStr for Firmware {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.split('.').collect();
        let parse = |p: &str| {
            p.parse::<u8>()
                .map_err(|_| format!("firmware version {s:?} is not MAJOR.MINOR.PATCH"))
        };
        match parts.as_slice() {
            [a, b, c] => Ok(Self(parse(a)?, parse(b)?, parse(c)?)),
            _ => Err(format!("firmware version {s:?} is not MAJOR.MINOR.PATCH")),
        }
    }
}

/// The PIN policy the card enforces for the key, as attested (extension `.3.8`, first byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PinPolicy {
    /// 0: the card reported no explicit policy.
    Default,
    Never,
    Once,
    Always,
    /// Biometric match once (YubiKey Bio), PIN as fallback.
    MatchOnce,
    /// Biometric match for every operation (YubiKey Bio).
    MatchAlways,
    Unknown(u8),
}

impl PinPolicy {
    fn from_byte(b: u8) -> Self {
        match b {
            0 => Self::Default,
            1 => Self::Never,
            2 => Self::Once,
            3 => Self::Always,
            4 => Self::MatchOnce,
            5 => Self::MatchAlways,
            other => Self::Unknown(other),
        }
    }

    /// Strength for comparisons against a minimum: an unknown or default policy counts as
    /// nothing, a biometric match as its PIN counterpart.
    #[must_use]
    pub fn rank(self) -> u8 {
        match self {
            Self::Default | Self::Unknown(_) | Self::Never => 0,
            Self::Once | Self::MatchOnce => 1,
            Self::Always | Self::MatchAlways => 2,
        }
    }
}

impl fmt::Display for PinPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Default => f.write_str("default (unspecified)"),
            Self::Never => f.write_str("never"),
            Self::Once => f.write_str("once"),
            Self::Always => f.write_str("always"),
            Self::MatchOnce => f.write_str("match-once"),
            Self::MatchAlways => f.write_str("match-always"),
            Self::Unknown(b) => write!(f, "unknown ({b})"),
        }
    }
}

impl std::str::FromStr for PinPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "never" => Ok(Self::Never),
            "once" => Ok(Self::Once),
            "always" => Ok(Self::Always),
            other => Err(format!(
                "unknown PIN policy {other:?} (expected never, once or always)"
            )),
        }
    }
}

/// The touch policy the card enforces for the key, as attested (extension `.3.8`, second byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TouchPolicy {
    /// 0: the card reported no explicit policy.
    Default,
    Never,
    Always,
    /// One touch covers 15 seconds.
    Cached,
    Unknown(u8),
}

impl TouchPolicy {
    fn from_byte(b: u8) -> Self {
        match b {
            0 => Self::Default,
            1 => Self::Never,
            2 => Self::Always,
            3 => Self::Cached,
            other => Self::Unknown(other),
        }
    }

    /// Strength for comparisons against a minimum: never (or unknown) < cached < always.
    #[must_use]
    pub fn rank(self) -> u8 {
        match self {
            Self::Default | Self::Unknown(_) | Self::Never => 0,
            Self::Cached => 1,
            Self::Always => 2,
        }
    }
}

impl fmt::Display for TouchPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Default => f.write_str("default (unspecified)"),
            Self::Never => f.write_str("never"),
            Self::Always => f.write_str("always"),
            Self::Cached => f.write_str("cached"),
            Self::Unknown(b) => write!(f, "unknown ({b})"),
        }
    }
}

impl std::str::FromStr for TouchPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "never" => Ok(Self::Never),
            "cached" => Ok(Self::Cached),
            "always" => Ok(Self::Always),
            other => Err(format!(
                "unknown touch policy {other:?} (expected never, cached or always)"
            )),
        }
    }
}

/// The device's form factor byte (extension `.3.9`): the low bits name the shape, bit 7 marks
/// a FIPS series key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FormFactor(pub u8);

impl FormFactor {
    #[must_use]
    pub fn is_fips(self) -> bool {
        self.0 & 0x80 != 0
    }
}

impl fmt::Display for FormFactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shape = match self.0 & 0x3f {
            0x01 => "YubiKey USB-A keychain",
            0x02 => "YubiKey USB-A nano",
            0x03 => "YubiKey USB-C keychain",
            0x04 => "YubiKey USB-C nano",
            0x05 => "YubiKey USB-C/Lightning keychain",
            0x06 => "YubiKey Bio USB-A keychain",
            0x07 => "YubiKey Bio USB-C keychain",
            _ => "YubiKey (form factor unspecified)",
        };
        f.write_str(shape)?;
        if self.is_fips() {
            f.write_str(" FIPS")?;
        }
        if self.0 & 0x40 != 0 {
            f.write_str(" (flag 0x40)")?;
        }
        Ok(())
    }
}

/// The algorithm of the attested key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyAlgorithm {
    P256,
    P384,
    Rsa,
    Other,
}

impl fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::P256 => "P-256",
            Self::P384 => "P-384",
            Self::Rsa => "RSA",
            Self::Other => "other",
        })
    }
}

/// What one verified slot attestation proves. Only [`verify_slot`] constructs it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SlotAttestation {
    /// The PIV slot named in the slot certificate's subject (`YubiKey PIV Attestation 9c`).
    pub slot: u8,
    pub serial: u32,
    pub firmware: Firmware,
    pub pin_policy: PinPolicy,
    pub touch_policy: TouchPolicy,
    /// Absent on firmware that does not report it.
    pub form_factor: Option<FormFactor>,
    pub key_algorithm: KeyAlgorithm,
    /// The attested key when it is P-256 (every Tessera role key is).
    pub public_key: Option<PublicKey>,
    /// Subjects from the slot certificate up to the root.
    pub chain: Vec<String>,
    /// The pinned root the chain ends in, and the SHA-256 of its DER.
    pub root: String,
    pub root_sha256: [u8; 32],
}

impl SlotAttestation {
    /// Always true: a YubiKey attests only keys it generated (ATTEST fails for imported keys).
    #[must_use]
    pub fn generated_on_device(&self) -> bool {
        true
    }

    /// "YubiKey USB-C keychain, serial 123, firmware 5.7.1".
    #[must_use]
    pub fn device_summary(&self) -> String {
        let device = self
            .form_factor
            .map_or_else(|| "YubiKey".to_owned(), |f| f.to_string());
        format!(
            "{device}, serial {}, firmware {}",
            self.serial, self.firmware
        )
    }
}

/// One pinned Yubico CA certificate.
#[derive(Clone)]
struct Ca {
    der: Vec<u8>,
    sha256: [u8; 32],
    name: String,
    subject_raw: Vec<u8>,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
}

impl fmt::Debug for Ca {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ca")
            .field("name", &self.name)
            .field("sha256", &hex::encode(self.sha256))
            .finish_non_exhaustive()
    }
}

impl Ca {
    fn from_der(der: &[u8]) -> Result<Self, PivAttestationError> {
        let cert = parse(der, "pinned certificate")
            .map_err(|e| PivAttestationError::TrustSet(e.to_string()))?;
        Ok(Self {
            der: der.to_vec(),
            sha256: Sha256::digest(der).into(),
            name: subject_name(&cert),
            subject_raw: cert.subject().as_raw().to_vec(),
            not_before: cert.validity().not_before.to_datetime(),
            not_after: cert.validity().not_after.to_datetime(),
        })
    }
}

/// The Yubico certificates an attestation may chain to: roots (trusted as they are) and the
/// intermediates Yubico publishes between a root and a device's `f9` certificate (trusted
/// only through a root). Small and named; every entry is pinned by its SHA-256.
#[derive(Debug, Clone)]
pub struct YubicoTrust {
    roots: Vec<Ca>,
    intermediates: Vec<Ca>,
}

/// One pinned certificate as shipped: its file, the SHA-256 of its DER, and what it is.
struct Shipped {
    pem: &'static str,
    sha256: &'static str,
}

// Sources, fetched from Yubico's PKI publication and cross-checked against two independent
// open-source copies (go-piv/piv-go `piv/key.go` for the PIV root; smallstep/crypto
// `kms/yubikey` and sigstore-style verifiers for the 2024 PKI). The SHA-256 of each DER is
// pinned here and checked before first use.
const SHIPPED_ROOTS: &[Shipped] = &[
    // https://developers.yubico.com/PIV/Introduction/piv-attestation-ca.pem (the 2018
    // re-issue with pathlen 1; firmware before 5.7.4).
    Shipped {
        pem: include_str!("../certs/yubico/yubico-piv-root-ca-serial-263751.pem"),
        sha256: "63ece914e54dd87915f34033c85af4c0696ba1512f8add66ced738331207b546",
    },
    // https://developers.yubico.com/PKI/yubico-ca-1.pem (firmware 5.7.4 and later).
    Shipped {
        pem: include_str!("../certs/yubico/yubico-attestation-root-1.pem"),
        sha256: "62760c6a6ef91679f454c8902b80fd009825b3f25da90f1fbace2ec6586cd5a8",
    },
];

// https://developers.yubico.com/PKI/yubico-intermediate.pem: the two tiers between Yubico
// Attestation Root 1 and a device's f9 certificate, which the card does not carry.
const SHIPPED_INTERMEDIATES: &[Shipped] = &[
    Shipped {
        pem: include_str!("../certs/yubico/yubico-attestation-intermediate-a-1.pem"),
        sha256: "4698a1d3389c3ec60016c216250f1d0439922832d65142327436376dc2942b55",
    },
    Shipped {
        pem: include_str!("../certs/yubico/yubico-attestation-intermediate-b-1.pem"),
        sha256: "d4cc3f456fdaf4e7812a21aab1dfe9d8e27d24e2fd2d6f21c9940109f0daa754",
    },
    Shipped {
        pem: include_str!("../certs/yubico/yubico-piv-attestation-a-1.pem"),
        sha256: "6de693f05376f5d8ca29069261e1c8626c75d503bd2edbfd75354cad1f722870",
    },
    Shipped {
        pem: include_str!("../certs/yubico/yubico-piv-attestation-b-1.pem"),
        sha256: "2d55b7998f4e42569d6d8fa382b6dc77d1dacf07358b19701163892922b17052",
    },
];

fn shipped(list: &[Shipped]) -> Result<Vec<Ca>, PivAttestationError> {
    list.iter()
        .map(|s| {
            let (rest, block) = x509_parser::pem::parse_x509_pem(s.pem.as_bytes())
                .map_err(|e| PivAttestationError::TrustSet(format!("not PEM: {e}")))?;
            if !rest.iter().all(u8::is_ascii_whitespace) || block.label != "CERTIFICATE" {
                return Err(PivAttestationError::TrustSet(
                    "a shipped file is not exactly one CERTIFICATE block".into(),
                ));
            }
            let ca = Ca::from_der(&block.contents)?;
            if hex::encode(ca.sha256) != s.sha256 {
                return Err(PivAttestationError::TrustSet(format!(
                    "{} has SHA-256 {}, pinned {}",
                    ca.name,
                    hex::encode(ca.sha256),
                    s.sha256
                )));
            }
            Ok(ca)
        })
        .collect()
}

static PUBLISHED: LazyLock<YubicoTrust> = LazyLock::new(|| {
    // A mismatch means the binary was built from a tampered tree: nothing may be trusted.
    YubicoTrust {
        roots: shipped(SHIPPED_ROOTS).expect("the shipped Yubico roots match their SHA-256"),
        intermediates: shipped(SHIPPED_INTERMEDIATES)
            .expect("the shipped Yubico intermediates match their SHA-256"),
    }
});

impl YubicoTrust {
    /// Yubico's published PIV attestation roots and intermediates, shipped in the binary.
    #[must_use]
    pub fn published() -> &'static Self {
        &PUBLISHED
    }

    /// A trust set from DER certificates (tests and private PKIs): `roots` are trusted as
    /// they are, `intermediates` only through a root.
    pub fn from_der(roots: &[&[u8]], intermediates: &[&[u8]]) -> Result<Self, PivAttestationError> {
        let load = |list: &[&[u8]]| {
            list.iter()
                .map(|d| Ca::from_der(d))
                .collect::<Result<Vec<Ca>, _>>()
        };
        Ok(Self {
            roots: load(roots)?,
            intermediates: load(intermediates)?,
        })
    }

    /// A trust set from a PEM file of certificates: the self-signed ones become roots, the
    /// others intermediates (test PKIs and private deployments).
    pub fn from_pem(pem: &[u8]) -> Result<Self, PivAttestationError> {
        let bad = |e: String| PivAttestationError::TrustSet(e);
        let mut roots = Vec::new();
        let mut intermediates = Vec::new();
        for block in x509_parser::pem::Pem::iter_from_buffer(pem) {
            let block = block.map_err(|e| bad(format!("not PEM: {e}")))?;
            if block.label != "CERTIFICATE" {
                return Err(bad(format!(
                    "a {} block, expected CERTIFICATE",
                    block.label
                )));
            }
            let cert =
                parse(&block.contents, "pinned certificate").map_err(|e| bad(e.to_string()))?;
            let self_issued = cert.subject().as_raw() == cert.issuer().as_raw();
            let ca = Ca::from_der(&block.contents)?;
            if self_issued {
                roots.push(ca);
            } else {
                intermediates.push(ca);
            }
        }
        if roots.is_empty() {
            return Err(bad("no self-signed root certificate".into()));
        }
        Ok(Self {
            roots,
            intermediates,
        })
    }

    /// `(name, SHA-256 hex)` of every root, for display.
    #[must_use]
    pub fn roots(&self) -> Vec<(String, String)> {
        self.roots
            .iter()
            .map(|c| (c.name.clone(), hex::encode(c.sha256)))
            .collect()
    }

    /// `(name, SHA-256 hex)` of every intermediate, for display.
    #[must_use]
    pub fn intermediates(&self) -> Vec<(String, String)> {
        self.intermediates
            .iter()
            .map(|c| (c.name.clone(), hex::encode(c.sha256)))
            .collect()
    }

    /// The DER of a root by name (for tests and reports).
    #[must_use]
    pub fn root_der(&self, name: &str) -> Option<&[u8]> {
        self.roots
            .iter()
            .find(|c| c.name == name)
            .map(|c| c.der.as_slice())
    }
}

fn parse<'a>(
    der: &'a [u8],
    what: &'static str,
) -> Result<X509Certificate<'a>, PivAttestationError> {
    if der.len() > MAX_CERTIFICATE_BYTES {
        return Err(PivAttestationError::Malformed {
            what,
            detail: format!(
                "{} bytes, more than the {MAX_CERTIFICATE_BYTES} allowed",
                der.len()
            ),
        });
    }
    let (rest, cert) =
        X509Certificate::from_der(der).map_err(|e| PivAttestationError::Malformed {
            what,
            detail: e.to_string(),
        })?;
    if !rest.is_empty() {
        return Err(PivAttestationError::Malformed {
            what,
            detail: format!("{} trailing bytes after the certificate", rest.len()),
        });
    }
    Ok(cert)
}

/// The common name, or the whole subject when there is none.
fn subject_name(cert: &X509Certificate<'_>) -> String {
    cert.subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map_or_else(|| cert.subject().to_string(), str::to_owned)
}

fn issuer_name(cert: &X509Certificate<'_>) -> String {
    cert.issuer()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map_or_else(|| cert.issuer().to_string(), str::to_owned)
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

fn check_validity(
    what: &'static str,
    subject: &str,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    at: OffsetDateTime,
) -> Result<(), PivAttestationError> {
    if at < not_before {
        return Err(PivAttestationError::NotYetValid {
            what,
            subject: subject.to_owned(),
            not_before: rfc3339(not_before),
            at: rfc3339(at),
        });
    }
    if at > not_after {
        return Err(PivAttestationError::Expired {
            what,
            subject: subject.to_owned(),
            not_after: rfc3339(not_after),
            at: rfc3339(at),
        });
    }
    Ok(())
}

/// The verification algorithm for a certificate signed with `child_sig` by a key with
/// `issuer`'s SPKI: RSA PKCS#1 v1.5 with SHA-256/384/512, or ECDSA on P-256/P-384 with
/// SHA-256/384 (Yubico's roots and intermediates are RSA; device keys may be either).
fn algorithm(
    child: &X509Certificate<'_>,
    issuer: &X509Certificate<'_>,
) -> Result<&'static dyn VerificationAlgorithm, String> {
    let sig_alg = &child.signature_algorithm.algorithm;
    if *sig_alg != child.tbs_certificate.signature.algorithm {
        return Err("the TBSCertificate signature algorithm differs from the outer one".into());
    }
    let spki = issuer.public_key();
    let key_alg = &spki.algorithm.algorithm;
    if *key_alg == OID_PKCS1_RSAENCRYPTION {
        return if *sig_alg == OID_PKCS1_SHA256WITHRSA {
            Ok(&sig::RSA_PKCS1_2048_8192_SHA256)
        } else if *sig_alg == OID_PKCS1_SHA384WITHRSA {
            Ok(&sig::RSA_PKCS1_2048_8192_SHA384)
        } else if *sig_alg == OID_PKCS1_SHA512WITHRSA {
            Ok(&sig::RSA_PKCS1_2048_8192_SHA512)
        } else {
            Err(format!(
                "unsupported signature algorithm {sig_alg} for an RSA issuer"
            ))
        };
    }
    if *key_alg == OID_KEY_TYPE_EC_PUBLIC_KEY {
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok());
        let sha256 = *sig_alg == OID_SIG_ECDSA_WITH_SHA256;
        let sha384 = *sig_alg == OID_SIG_ECDSA_WITH_SHA384;
        return match (curve, sha256, sha384) {
            (Some(c), true, _) if c == OID_EC_P256 => Ok(&sig::ECDSA_P256_SHA256_ASN1),
            (Some(c), _, true) if c == OID_EC_P256 => Ok(&sig::ECDSA_P256_SHA384_ASN1),
            (Some(c), true, _) if c == OID_NIST_EC_P384 => Ok(&sig::ECDSA_P384_SHA256_ASN1),
            (Some(c), _, true) if c == OID_NIST_EC_P384 => Ok(&sig::ECDSA_P384_SHA384_ASN1),
            _ => Err(format!(
                "unsupported signature algorithm {sig_alg} for the issuer's EC key"
            )),
        };
    }
    Err(format!("unsupported issuer key type {key_alg}"))
}

fn check_signature(
    what: &'static str,
    child: &X509Certificate<'_>,
    issuer: &X509Certificate<'_>,
) -> Result<(), PivAttestationError> {
    let alg = algorithm(child, issuer).map_err(|detail| PivAttestationError::Constraint {
        what,
        subject: subject_name(child),
        detail,
    })?;
    UnparsedPublicKey::new(alg, issuer.public_key().subject_public_key.data.as_ref())
        .verify(
            child.tbs_certificate.as_ref(),
            child.signature_value.data.as_ref(),
        )
        .map_err(|_| PivAttestationError::BadSignature {
            what,
            subject: subject_name(child),
            issuer: subject_name(issuer),
        })
}

/// RFC 5280 section 4.2: a critical extension that is not understood makes a certificate
/// unusable. Only `BasicConstraints` and `KeyUsage` are understood as critical here.
fn check_critical(
    what: &'static str,
    cert: &X509Certificate<'_>,
) -> Result<(), PivAttestationError> {
    for ext in cert.extensions() {
        if ext.critical
            && ext.oid != OID_X509_EXT_BASIC_CONSTRAINTS
            && ext.oid != OID_X509_EXT_KEY_USAGE
        {
            return Err(PivAttestationError::Constraint {
                what,
                subject: subject_name(cert),
                detail: format!("unrecognised critical extension {}", ext.oid),
            });
        }
    }
    Ok(())
}

/// Verifies one slot's attestation: `slot_certificate` (the card's answer to ATTEST) issued by
/// `device_certificate` (slot `f9`), which must chain through `trust`'s intermediates to one of
/// its roots, every certificate valid at `at`. Returns Yubico's facts about the key.
pub fn verify_slot(
    slot_certificate: &[u8],
    device_certificate: &[u8],
    trust: &YubicoTrust,
    at: OffsetDateTime,
) -> Result<SlotAttestation, PivAttestationError> {
    const SLOT: &str = "slot certificate";
    const DEVICE: &str = "device certificate (slot f9)";
    let leaf = parse(slot_certificate, SLOT)?;
    let device = parse(device_certificate, DEVICE)?;

    // Facts first, so a certificate that is not an attestation at all says so.
    let facts = read_extensions(&leaf)?;
    let slot = slot_from_subject(&leaf)?;

    check_critical(SLOT, &leaf)?;
    check_critical(DEVICE, &device)?;
    // The slot certificate is an end entity; the f9 certificate a CA when it says anything
    // (YubiKey 4 f9 certificates carry no BasicConstraints at all).
    if let Ok(Some(bc)) = leaf.basic_constraints()
        && bc.value.ca
    {
        return Err(PivAttestationError::Constraint {
            what: SLOT,
            subject: subject_name(&leaf),
            detail: "is a CA certificate".into(),
        });
    }
    match device.basic_constraints() {
        Ok(Some(bc)) if !bc.value.ca => {
            return Err(PivAttestationError::Constraint {
                what: DEVICE,
                subject: subject_name(&device),
                detail: "BasicConstraints says it is not a CA".into(),
            });
        }
        Err(e) => {
            return Err(PivAttestationError::Constraint {
                what: DEVICE,
                subject: subject_name(&device),
                detail: format!("BasicConstraints: {e}"),
            });
        }
        _ => {}
    }

    if leaf.issuer().as_raw() != device.subject().as_raw() {
        return Err(PivAttestationError::Constraint {
            what: SLOT,
            subject: subject_name(&leaf),
            detail: format!(
                "issued by {}, not by the device certificate {}",
                issuer_name(&leaf),
                subject_name(&device)
            ),
        });
    }
    check_signature(SLOT, &leaf, &device)?;
    check_validity(
        SLOT,
        &subject_name(&leaf),
        leaf.validity().not_before.to_datetime(),
        leaf.validity().not_after.to_datetime(),
        at,
    )?;
    check_validity(
        DEVICE,
        &subject_name(&device),
        device.validity().not_before.to_datetime(),
        device.validity().not_after.to_datetime(),
        at,
    )?;

    let mut chain = vec![subject_name(&leaf), subject_name(&device)];
    let (root, root_sha256) = climb(&device, trust, at, &mut chain)?;

    let (key_algorithm, public_key) = attested_key(&leaf);
    Ok(SlotAttestation {
        slot,
        serial: facts.serial,
        firmware: facts.firmware,
        pin_policy: facts.pin_policy,
        touch_policy: facts.touch_policy,
        form_factor: facts.form_factor,
        key_algorithm,
        public_key,
        chain,
        root,
        root_sha256,
    })
}

/// From the device certificate up through pinned intermediates to a pinned root, checking each
/// signature and validity period. At most every intermediate once: no loops.
fn climb(
    device: &X509Certificate<'_>,
    trust: &YubicoTrust,
    at: OffsetDateTime,
    chain: &mut Vec<String>,
) -> Result<(String, [u8; 32]), PivAttestationError> {
    let mut what: &'static str = "device certificate (slot f9)";
    // The certificate being climbed from: the device's, then a pinned intermediate's.
    let mut from: Option<usize> = None;
    let mut used = vec![false; trust.intermediates.len()];
    for _ in 0..=trust.intermediates.len() {
        let parsed;
        let current = match from {
            None => device,
            Some(i) => {
                parsed = parse(&trust.intermediates[i].der, "pinned intermediate")?;
                &parsed
            }
        };
        let issuer_raw = current.issuer().as_raw();
        if let Some(root) = trust.roots.iter().find(|r| r.subject_raw == issuer_raw) {
            let root_cert = parse(&root.der, "pinned root")?;
            check_signature(what, current, &root_cert)?;
            check_validity(
                "pinned root",
                &root.name,
                root.not_before,
                root.not_after,
                at,
            )?;
            chain.push(root.name.clone());
            return Ok((root.name.clone(), root.sha256));
        }
        let next = trust
            .intermediates
            .iter()
            .enumerate()
            .find(|(i, c)| !used[*i] && c.subject_raw == issuer_raw);
        let Some((index, ca)) = next else {
            return Err(PivAttestationError::UnknownIssuer {
                what,
                subject: subject_name(current),
                issuer: issuer_name(current),
            });
        };
        used[index] = true;
        let ca_cert = parse(&ca.der, "pinned intermediate")?;
        check_signature(what, current, &ca_cert)?;
        check_validity(
            "pinned intermediate",
            &ca.name,
            ca.not_before,
            ca.not_after,
            at,
        )?;
        chain.push(ca.name.clone());
        what = "pinned intermediate";
        from = Some(index);
    }
    Err(PivAttestationError::UnknownIssuer {
        what,
        subject: chain.last().cloned().unwrap_or_default(),
        issuer: "a loop of intermediates".into(),
    })
}

fn attested_key(leaf: &X509Certificate<'_>) -> (KeyAlgorithm, Option<PublicKey>) {
    let spki = leaf.public_key();
    if spki.algorithm.algorithm == OID_PKCS1_RSAENCRYPTION {
        return (KeyAlgorithm::Rsa, None);
    }
    if spki.algorithm.algorithm != OID_KEY_TYPE_EC_PUBLIC_KEY {
        return (KeyAlgorithm::Other, None);
    }
    let curve = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.as_oid().ok());
    match curve {
        Some(c) if c == OID_EC_P256 => (
            KeyAlgorithm::P256,
            PublicKey::from_sec1(spki.subject_public_key.data.as_ref()).ok(),
        ),
        Some(c) if c == OID_NIST_EC_P384 => (KeyAlgorithm::P384, None),
        _ => (KeyAlgorithm::Other, None),
    }
}

/// `CN=YubiKey PIV Attestation 9c` names the slot the card attested.
fn slot_from_subject(leaf: &X509Certificate<'_>) -> Result<u8, PivAttestationError> {
    const PREFIX: &str = "YubiKey PIV Attestation ";
    let name = subject_name(leaf);
    name.strip_prefix(PREFIX)
        .filter(|h| h.len() == 2)
        .and_then(|h| u8::from_str_radix(h, 16).ok())
        .ok_or_else(|| PivAttestationError::Constraint {
            what: "slot certificate",
            subject: name.clone(),
            detail: format!("the subject is not \"{PREFIX}<slot>\""),
        })
}

struct Facts {
    serial: u32,
    firmware: Firmware,
    pin_policy: PinPolicy,
    touch_policy: TouchPolicy,
    form_factor: Option<FormFactor>,
}

/// Reads Yubico's extensions (firmware, serial, policies required; form factor optional),
/// refusing duplicates and malformed values.
fn read_extensions(leaf: &X509Certificate<'_>) -> Result<Facts, PivAttestationError> {
    let find = |oid: &[u8], name: &'static str| -> Result<Option<&[u8]>, PivAttestationError> {
        let mut found = leaf.extensions().iter().filter(|e| e.oid.as_bytes() == oid);
        let first = found.next().map(|e| e.value);
        if found.next().is_some() {
            return Err(PivAttestationError::BadExtension {
                name,
                detail: "present more than once".into(),
            });
        }
        Ok(first)
    };
    let need = |oid: &[u8], name: &'static str| {
        find(oid, name)?.ok_or(PivAttestationError::MissingExtension { name })
    };

    let firmware = match need(oid::FIRMWARE, "firmware version")? {
        [a, b, c] => Firmware(*a, *b, *c),
        other => {
            return Err(PivAttestationError::BadExtension {
                name: "firmware version",
                detail: format!("{} bytes, expected 3", other.len()),
            });
        }
    };
    let serial = der_u32(need(oid::SERIAL, "serial number")?).map_err(|detail| {
        PivAttestationError::BadExtension {
            name: "serial number",
            detail,
        }
    })?;
    let (pin_policy, touch_policy) = match need(oid::POLICY, "PIN and touch policy")? {
        [p, t] => (PinPolicy::from_byte(*p), TouchPolicy::from_byte(*t)),
        other => {
            return Err(PivAttestationError::BadExtension {
                name: "PIN and touch policy",
                detail: format!("{} bytes, expected 2", other.len()),
            });
        }
    };
    let form_factor = match find(oid::FORM_FACTOR, "form factor")? {
        None => None,
        Some([f]) => Some(FormFactor(*f)),
        Some(other) => {
            return Err(PivAttestationError::BadExtension {
                name: "form factor",
                detail: format!("{} bytes, expected 1", other.len()),
            });
        }
    };
    Ok(Facts {
        serial,
        firmware,
        pin_policy,
        touch_policy,
        form_factor,
    })
}

/// A DER INTEGER holding a non-negative value that fits in a u32, minimally encoded.
fn der_u32(bytes: &[u8]) -> Result<u32, String> {
    let [0x02, len, body @ ..] = bytes else {
        return Err("not a DER INTEGER".into());
    };
    if usize::from(*len) != body.len() || body.is_empty() || body.len() > 5 {
        return Err(format!(
            "INTEGER length {len} does not match its {} content bytes (1 to 5 allowed)",
            body.len()
        ));
    }
    if body[0] & 0x80 != 0 {
        return Err("negative serial number".into());
    }
    if body.len() > 1 && body[0] == 0 && body[1] & 0x80 == 0 {
        return Err("INTEGER is not minimally encoded".into());
    }
    let value = body.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
    u32::try_from(value).map_err(|_| format!("serial number {value} does not fit in 32 bits"))
}

/// Parses a certificate the way [`verify_slot`] does and reads its Yubico extensions, without
/// any chain: for the fuzz target and diagnostics. Never trusted.
pub fn inspect(certificate: &[u8]) -> Result<(u8, u32, Firmware), PivAttestationError> {
    let cert = parse(certificate, "slot certificate")?;
    let facts = read_extensions(&cert)?;
    let slot = slot_from_subject(&cert)?;
    let _ = attested_key(&cert);
    Ok((slot, facts.serial, facts.firmware))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_u32_edges() {
        assert_eq!(der_u32(&[2, 1, 0]), Ok(0));
        assert_eq!(der_u32(&[2, 4, 0x01, 0x85, 0x54, 0x81]), Ok(25_515_137));
        assert_eq!(der_u32(&[2, 5, 0, 0xff, 0xff, 0xff, 0xff]), Ok(u32::MAX));
        assert!(der_u32(&[2, 2, 0, 1]).is_err(), "not minimal");
        assert!(der_u32(&[2, 1, 0x80]).is_err(), "negative");
        assert!(der_u32(&[2, 5, 1, 0, 0, 0, 0]).is_err(), "too large");
        assert!(der_u32(&[2, 3, 1]).is_err(), "short");
        assert!(der_u32(&[4, 1, 1]).is_err(), "not an INTEGER");
        assert!(der_u32(&[]).is_err());
    }

    #[test]
    fn published_trust_loads_and_is_named() {
        let trust = YubicoTrust::published();
        let roots: Vec<String> = trust.roots().into_iter().map(|r| r.0).collect();
        assert_eq!(
            roots,
            [
                "Yubico PIV Root CA Serial 263751",
                "Yubico Attestation Root 1"
            ]
        );
        assert_eq!(trust.intermediates().len(), 4);
    }
}
