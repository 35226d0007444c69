//! Fetch proofs: "this URL returned this content at this time", signed by the quorum key.
//!
//! The enclave's fetcher drives TLS itself over the host's egress proxy and, only after a
//! complete and verified HTTPS exchange, signs a [`FetchRecord`] with the quorum signing key
//! under the purpose `fetch`: the signed message is
//! `SHA-256("tessera/v1/fetch" || 0x00 || SHA-256(canonical CBOR of the record))`. Anyone with
//! the namespace's quorum public key checks a proof offline with [`FetchProof::verify`].

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::bytes::Hash32;
use crate::cbor::{self, CborError};
use crate::keys::Signature;
use crate::manifest::QuorumPublicKey;
use crate::sign::{Purpose, signed_message};

/// The fetch proof format version this library writes and accepts.
pub const FETCH_PROOF_VERSION: u32 = 1;

/// Largest proof a verifier reads: the fetcher's body limit stays well below it.
pub const MAX_FETCH_PROOF: usize = 8 << 20;

/// Response headers a proof keeps (lower-case names); the rest are not signed.
pub const SELECTED_HEADERS: [&str; 8] = [
    "content-type",
    "content-length",
    "date",
    "last-modified",
    "etag",
    "cache-control",
    "expires",
    "age",
];

/// One HTTP header, name in lower case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderField {
    pub name: String,
    pub value: String,
}

/// The request as the fetcher sent it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FetchedRequest {
    pub method: String,
    /// Every header sent, in order (Host included).
    pub headers: Vec<HeaderField>,
}

/// What was fetched, how and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FetchRecord {
    pub version: u32,
    /// The `https://` URL fetched.
    pub url: String,
    pub request: FetchedRequest,
    /// The HTTP status code.
    pub status: u16,
    /// The response headers in [`SELECTED_HEADERS`], in the order received.
    pub headers: Vec<HeaderField>,
    /// The whole response body (after removing chunked transfer coding).
    pub body: ByteBuf,
    pub body_sha256: Hash32,
    /// The enclave's clock when the response was complete, in seconds since the Unix epoch.
    pub fetched_at: u64,
    /// The server's certificate chain as it sent it (DER, leaf first), verified by the fetcher
    /// against the Mozilla roots and the manifest's pinned roots for the URL's host.
    pub certificates: Vec<ByteBuf>,
    /// For example `TLSv1.3`.
    pub tls_version: String,
    /// For example `TLS13_AES_256_GCM_SHA384`.
    pub cipher_suite: String,
}

impl FetchRecord {
    /// SHA-256 of the canonical encoding.
    #[must_use]
    pub fn hash(&self) -> Hash32 {
        cbor::hash(self)
    }

    /// The 32 bytes the quorum key signs.
    #[must_use]
    pub fn signed_message(&self) -> [u8; 32] {
        signed_message(Purpose::Fetch, &self.hash())
    }

    /// Signs the record with the quorum signing key.
    #[must_use]
    pub fn sign(self, key: &p256::ecdsa::SigningKey) -> FetchProof {
        use p256::ecdsa::signature::Signer;
        let sig: p256::ecdsa::Signature = key.sign(&self.signed_message());
        FetchProof {
            record: self,
            signature: Signature::from_ecdsa(&sig),
        }
    }

    /// The response header `name` (lower case), if kept.
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|h| h.name == name)
            .map(|h| h.value.as_str())
    }
}

/// A fetch record and the quorum key's signature over it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FetchProof {
    pub record: FetchRecord,
    pub signature: Signature,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FetchProofError {
    #[error(transparent)]
    Encoding(#[from] CborError),
    #[error("fetch proof version {0} is not supported (this build reads version 1)")]
    Version(u32),
    #[error("the body does not match its SHA-256 in the proof")]
    BodyHash,
    #[error(
        "the signature does not verify with quorum key {expected}: the proof was not signed by this namespace, or was altered"
    )]
    Signature { expected: String },
    #[error("the proof carries no server certificate")]
    NoCertificate,
}

impl FetchProof {
    /// Decodes a proof (canonical CBOR only, at most [`MAX_FETCH_PROOF`] bytes).
    pub fn decode(bytes: &[u8]) -> Result<Self, FetchProofError> {
        Ok(cbor::decode_bounded(bytes, MAX_FETCH_PROOF, "fetch proof")?)
    }

    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        cbor::encode(self)
    }

    /// Checks the proof against the namespace's quorum public key: the version, the body against
    /// its hash, a server certificate present, and the signature (low-S) over the record under
    /// the purpose `fetch`. The one decision on whether a proof is genuine.
    pub fn verify(&self, quorum: &QuorumPublicKey) -> Result<&FetchRecord, FetchProofError> {
        let r = &self.record;
        if r.version != FETCH_PROOF_VERSION {
            return Err(FetchProofError::Version(r.version));
        }
        if Hash32::sha256(&r.body) != r.body_sha256 {
            return Err(FetchProofError::BodyHash);
        }
        if r.certificates.is_empty() {
            return Err(FetchProofError::NoCertificate);
        }
        quorum
            .signing
            .verify(&r.signed_message(), &self.signature)
            .map_err(|_| FetchProofError::Signature {
                expected: quorum.signing.fingerprint(),
            })?;
        Ok(r)
    }
}

/// Largest request frame the fetcher app reads.
pub const MAX_APP_REQUEST: usize = 64 * 1024;

/// Largest answer frame of the fetcher app: two proofs at its largest body limit.
pub const MAX_APP_RESPONSE: usize = MAX_FETCH_PROOF;

/// A request to the fetcher app (over its ingress, through the relay's app bridge), one
/// length-prefixed CBOR frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FetchAppRequest {
    /// GET `url` and sign what came back.
    Fetch {
        url: String,
        /// Extra request headers (accept, accept-language, authorization).
        headers: Vec<HeaderField>,
    },
    /// Fetch the issuer's discovery document and JWKS, and check `token` with them.
    VerifyIdToken {
        issuer: String,
        audience: String,
        token: String,
    },
}

/// The fetcher app's answer.
// Answers are built once and moved, never stored in bulk: variant size does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FetchAppResponse {
    Fetched {
        proof: FetchProof,
    },
    /// The token verified; the claims (JSON text) and the two proofs to re-check it offline.
    IdTokenVerified {
        claims: String,
        discovery: FetchProof,
        jwks: FetchProof,
    },
    /// The request failed; nothing was signed.
    Error {
        kind: String,
        message: String,
    },
}

impl FetchAppResponse {
    pub fn decode(bytes: &[u8]) -> Result<Self, CborError> {
        cbor::decode_bounded(bytes, MAX_APP_RESPONSE, "fetcher response")
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchCallError {
    #[error("fetcher connection: {0}")]
    Frame(#[from] crate::protocol::FrameError),
    #[error("invalid answer from the fetcher: {0}")]
    Decode(#[from] CborError),
}

/// One request to the fetcher app over `stream` (its ingress, or the relay's app bridge) and
/// its answer. Timeouts are the stream's.
pub fn call_app<S: std::io::Read + std::io::Write>(
    stream: &mut S,
    request: &FetchAppRequest,
) -> Result<FetchAppResponse, FetchCallError> {
    crate::protocol::write_frame(stream, &cbor::encode(request))?;
    let bytes = crate::protocol::read_frame(stream, MAX_APP_RESPONSE)?;
    Ok(FetchAppResponse::decode(&bytes)?)
}

/// What a verifier shows of a certificate in a proof. Informational: the fetcher verified the
/// chain when it fetched; this only reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateSummary {
    pub subject: String,
    pub issuer: String,
    /// DNS names and IP addresses of the subject alternative name extension.
    pub names: Vec<String>,
    pub not_before: time::OffsetDateTime,
    pub not_after: time::OffsetDateTime,
    /// SHA-256 of the DER.
    pub sha256: Hash32,
}

/// Reads a DER certificate for display; `None` if it does not parse.
#[must_use]
pub fn describe_certificate(der: &[u8]) -> Option<CertificateSummary> {
    use x509_parser::extensions::GeneralName;
    use x509_parser::prelude::FromDer;
    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(der).ok()?;
    let names = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    GeneralName::DNSName(d) => Some((*d).to_owned()),
                    GeneralName::IPAddress(ip) => match ip.len() {
                        4 => Some(
                            std::net::Ipv4Addr::from(<[u8; 4]>::try_from(*ip).ok()?).to_string(),
                        ),
                        16 => Some(
                            std::net::Ipv6Addr::from(<[u8; 16]>::try_from(*ip).ok()?).to_string(),
                        ),
                        _ => None,
                    },
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    Some(CertificateSummary {
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        names,
        not_before: cert.validity().not_before.to_datetime(),
        not_after: cert.validity().not_after.to_datetime(),
        sha256: Hash32::sha256(der),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quorum::QuorumSeed;
    use p256::ecdsa::signature::Signer;

    fn record() -> FetchRecord {
        let body = b"{\"ok\":true}".to_vec();
        FetchRecord {
            version: FETCH_PROOF_VERSION,
            url: "https://example.com/x".into(),
            request: FetchedRequest {
                method: "GET".into(),
                headers: vec![HeaderField {
                    name: "host".into(),
                    value: "example.com".into(),
                }],
            },
            status: 200,
            headers: vec![],
            body_sha256: Hash32::sha256(&body),
            body: ByteBuf::from(body),
            fetched_at: 1_800_000_000,
            certificates: vec![ByteBuf::from(vec![0x30, 0x00])],
            tls_version: "TLSv1.3".into(),
            cipher_suite: "TLS13_AES_128_GCM_SHA256".into(),
        }
    }

    #[test]
    fn a_proof_verifies_only_with_its_quorum_key_and_unaltered() {
        let seed = QuorumSeed::from_bytes([3; 32]);
        let other = QuorumSeed::from_bytes([4; 32]);
        let proof = record().sign(&seed.signing_key());
        let bytes = proof.encode();
        let decoded = FetchProof::decode(&bytes).unwrap();
        decoded.verify(&seed.public_key()).unwrap();
        assert!(matches!(
            decoded.verify(&other.public_key()),
            Err(FetchProofError::Signature { .. })
        ));
        let mut altered = decoded.clone();
        altered.record.status = 404;
        assert!(altered.verify(&seed.public_key()).is_err());
        let mut altered = decoded.clone();
        altered.record.body = ByteBuf::from(b"{\"ok\":false}".to_vec());
        assert_eq!(
            altered.verify(&seed.public_key()),
            Err(FetchProofError::BodyHash)
        );
        altered.record.body_sha256 = Hash32::sha256(&altered.record.body);
        assert!(matches!(
            altered.verify(&seed.public_key()),
            Err(FetchProofError::Signature { .. })
        ));
        // The same bytes signed for another purpose are not a fetch proof.
        let app = signed_message(Purpose::AppMessage, &record().hash());
        let sig: p256::ecdsa::Signature = seed.signing_key().sign(&app);
        let mut cross = decoded;
        cross.signature = Signature::from_ecdsa(&sig);
        assert!(cross.verify(&seed.public_key()).is_err());
    }
}
