//! The dev NSM's public key infrastructure: a local P-384 root, one intermediate and a leaf,
//! generated in memory, signing documents in the NSM's exact format.
//!
//! It exists for the dev enclave (`tessera-enclave --dev`) and for tests. Its documents go
//! through the same verifier as real ones, and verify only against its own root, which an
//! operator must pin explicitly; every name in the chain says it is not AWS.

use aws_lc_rs::signature::{ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    PKCS_ECDSA_P384_SHA384,
};
use time::{Duration, OffsetDateTime};

use crate::attestation::TrustAnchor;
use crate::attestation::build::DocumentBuilder;

/// The module id of every dev document, so no one mistakes it for a real enclave.
pub const DEV_MODULE_ID: &str = "i-0000000000000dev-enc00000000000dev";

pub struct DevPki {
    root_pem: String,
    cabundle: Vec<Vec<u8>>,
    leaf_der: Vec<u8>,
    leaf_key: EcdsaKeyPair,
}

fn dev_names(params: &mut CertificateParams, cn: &str) {
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::OrganizationName, "Tessera DEV (not AWS)");
    params.distinguished_name.push(DnType::CommonName, cn);
}

/// A dev root certificate with its private key, so several dev enclaves (the nodes of one dev
/// namespace) can sign under one root and verify each other's documents, as real enclaves all
/// chain to the AWS root. DEV ONLY: whoever reads the key can forge dev documents.
pub struct DevCa {
    cert_pem: String,
    key: KeyPair,
}

/// The label of the dev CA file's key block.
const DEV_CA_KEY_LABEL: &str = "PRIVATE KEY";

fn ca_params(cn: &str, path_len: u8, now: OffsetDateTime, days: i64) -> CertificateParams {
    let mut p = CertificateParams::default();
    dev_names(&mut p, cn);
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(path_len));
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p.not_before = now - Duration::hours(1);
    p.not_after = now + Duration::days(days);
    p
}

const ROOT_CN: &str = "tessera-dev-root";

impl DevCa {
    /// A fresh root, valid from an hour before `now` for a year.
    pub fn generate(now: OffsetDateTime) -> Result<Self, String> {
        let err = |e: rcgen::Error| format!("dev PKI generation failed: {e}");
        let key = KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384).map_err(err)?;
        let cert = ca_params(ROOT_CN, 1, now, 365)
            .self_signed(&key)
            .map_err(err)?;
        Ok(Self {
            cert_pem: cert.pem(),
            key,
        })
    }

    /// The certificate and key as one PEM file (certificate first).
    #[must_use]
    pub fn to_pem(&self) -> String {
        format!("{}{}", self.cert_pem, self.key.serialize_pem())
    }

    /// Reads what [`DevCa::to_pem`] wrote.
    pub fn from_pem(pem: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("not a Tessera dev CA file: {why}");
        let key_at = pem
            .find(&format!("-----BEGIN {DEV_CA_KEY_LABEL}-----"))
            .ok_or_else(|| bad("no private key block"))?;
        let (cert_pem, key_pem) = pem.split_at(key_at);
        let key = KeyPair::from_pem(key_pem).map_err(|e| bad(&e.to_string()))?;
        let anchor = TrustAnchor::from_pem(cert_pem.as_bytes()).map_err(|e| bad(&e.to_string()))?;
        if !anchor.subject().contains(ROOT_CN) {
            return Err(bad("the certificate is not a Tessera dev root"));
        }
        Ok(Self {
            cert_pem: cert_pem.to_owned(),
            key,
        })
    }

    /// The root as a trust anchor.
    pub fn anchor(&self) -> Result<TrustAnchor, String> {
        TrustAnchor::from_pem(self.cert_pem.as_bytes()).map_err(|e| e.to_string())
    }
}

impl DevPki {
    /// A fresh chain under a fresh root; see [`DevPki::generate_under`].
    pub fn generate(now: OffsetDateTime) -> Result<Self, String> {
        Self::generate_under(&DevCa::generate(now)?, now)
    }

    /// A chain under `ca`, valid from before `now`: intermediate for 30 days, leaf for 7 days
    /// (real NSM leaves live hours; a dev session may run longer).
    pub fn generate_under(ca: &DevCa, now: OffsetDateTime) -> Result<Self, String> {
        let err = |e: rcgen::Error| format!("dev PKI generation failed: {e}");
        let root_der = pem_der(&ca.cert_pem)?;
        // Only the root's name and key matter for issuing; its certificate is the stored one.
        let root_key = KeyPair::from_pem(&ca.key.serialize_pem()).map_err(err)?;
        let root_issuer = Issuer::new(ca_params(ROOT_CN, 1, now, 365), root_key);

        let int_params = ca_params("tessera-dev-intermediate", 0, now, 30);
        let int_key = KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384).map_err(err)?;
        let intermediate = int_params.signed_by(&int_key, &root_issuer).map_err(err)?;
        let int_issuer = Issuer::new(int_params, int_key);

        let mut leaf_params = CertificateParams::default();
        dev_names(&mut leaf_params, DEV_MODULE_ID);
        leaf_params.is_ca = IsCa::NoCa;
        leaf_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        leaf_params.not_before = now - Duration::minutes(5);
        leaf_params.not_after = now + Duration::days(7);
        let leaf_key = KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384).map_err(err)?;
        let leaf = leaf_params.signed_by(&leaf_key, &int_issuer).map_err(err)?;
        let leaf_signing =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, &leaf_key.serialize_der())
                .map_err(|e| format!("dev PKI leaf key: {e}"))?;
        Ok(Self {
            root_pem: ca.cert_pem.clone(),
            cabundle: vec![root_der, intermediate.der().to_vec()],
            leaf_der: leaf.der().to_vec(),
            leaf_key: leaf_signing,
        })
    }

    /// The root certificate (PEM) an operator pins with `--root`.
    #[must_use]
    pub fn root_pem(&self) -> &str {
        &self.root_pem
    }

    #[must_use]
    pub fn root_der(&self) -> &[u8] {
        &self.cabundle[0]
    }

    /// The root as a trust anchor.
    ///
    /// # Panics
    /// Never: the root was generated by this module.
    #[must_use]
    pub fn anchor(&self) -> TrustAnchor {
        TrustAnchor::from_der(self.root_der()).expect("the dev root is a valid P-384 CA")
    }

    /// A signed document at `timestamp_ms` with `pcrs` and the optional fields.
    pub fn document(
        &self,
        timestamp_ms: u64,
        pcrs: &[(u8, Vec<u8>)],
        user_data: Option<&[u8]>,
        nonce: Option<&[u8]>,
        public_key: Option<&[u8]>,
    ) -> Result<Vec<u8>, String> {
        let mut b = DocumentBuilder::new(
            DEV_MODULE_ID,
            timestamp_ms,
            self.leaf_der.clone(),
            self.cabundle.clone(),
        )
        .user_data(user_data.map(<[u8]>::to_vec))
        .nonce(nonce.map(<[u8]>::to_vec))
        .public_key(public_key.map(<[u8]>::to_vec));
        for (i, p) in pcrs {
            b = b.pcr(*i, p.clone());
        }
        b.sign(&self.leaf_key)
            .map_err(|_| "dev PKI signing failed".to_owned())
    }
}

/// The DER of the first certificate in `pem`.
fn pem_der(pem: &str) -> Result<Vec<u8>, String> {
    TrustAnchor::from_pem(pem.as_bytes())
        .map(|a| a.der().to_vec())
        .map_err(|e| format!("dev root: {e}"))
}
