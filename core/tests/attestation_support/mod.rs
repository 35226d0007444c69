//! A throwaway P-384 PKI shaped like Nitro's (root, three intermediates, leaf), made at test time
//! with rcgen, and signed attestation documents on top of it.

#![allow(dead_code)]

pub mod recipes;

use aws_lc_rs::signature::{ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, DnValue, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P384_SHA384,
};
use tessera_core::attestation::TrustAnchor;
use tessera_core::attestation::build::{self, DocumentBuilder};
use time::{Duration, OffsetDateTime, macros::datetime};

/// The instant the test documents are made at.
pub const T: OffsetDateTime = datetime!(2025-01-01 12:00 UTC);
pub const T_MS: u64 = 1_735_732_800_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Root,
    Intermediate(usize),
    Leaf,
}

pub struct Pki {
    pub root_der: Vec<u8>,
    pub intermediates_der: Vec<Vec<u8>>,
    pub leaf_der: Vec<u8>,
    pub leaf_key: EcdsaKeyPair,
}

fn names(params: &mut CertificateParams, cn: &str, aws: bool) {
    params.distinguished_name = DistinguishedName::new();
    // Country as PrintableString, the rest UTF8String: byte for byte how AWS encodes its names.
    params.distinguished_name.push(
        DnType::CountryName,
        DnValue::PrintableString("US".try_into().unwrap()),
    );
    params.distinguished_name.push(
        DnType::OrganizationName,
        if aws { "Amazon" } else { "Tessera test" },
    );
    params.distinguished_name.push(
        DnType::OrganizationalUnitName,
        if aws { "AWS" } else { "TEST" },
    );
    params.distinguished_name.push(DnType::CommonName, cn);
}

/// Parameters of a Nitro-like chain; `tweak` may change any certificate before it is signed.
pub fn default_params(role: Role, aws_names: bool) -> CertificateParams {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    match role {
        Role::Root => {
            names(&mut p, "aws.nitro-enclaves", aws_names);
            p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            p.key_usages = vec![
                KeyUsagePurpose::KeyCertSign,
                KeyUsagePurpose::CrlSign,
                KeyUsagePurpose::DigitalSignature,
            ];
            p.not_before = T - Duration::days(365);
            p.not_after = T + Duration::days(3650);
        }
        Role::Intermediate(i) => {
            names(
                &mut p,
                &format!("intermediate-{i}.eu-west-1.aws.nitro-enclaves"),
                aws_names,
            );
            p.is_ca = IsCa::Ca(BasicConstraints::Constrained(2 - i as u8));
            p.key_usages = vec![
                KeyUsagePurpose::KeyCertSign,
                KeyUsagePurpose::CrlSign,
                KeyUsagePurpose::DigitalSignature,
            ];
            p.not_before = T - Duration::days(5 - i64::try_from(i).unwrap());
            p.not_after = T + Duration::days(5 - i64::try_from(i).unwrap());
        }
        Role::Leaf => {
            names(
                &mut p,
                "i-0123456789abcdef0-enc0123456789abcdef.eu-west-1.aws",
                aws_names,
            );
            p.is_ca = IsCa::NoCa;
            p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
            p.not_before = T - Duration::minutes(1);
            p.not_after = T + Duration::hours(3);
        }
    }
    p
}

impl Pki {
    /// The default chain.
    pub fn new() -> Self {
        Self::with(3, false, |_, _| {})
    }

    /// A chain with `intermediates` CAs between root and leaf.
    pub fn with(
        intermediates: usize,
        aws_names: bool,
        tweak: impl Fn(Role, &mut CertificateParams),
    ) -> Self {
        Self::with_keys(intermediates, aws_names, tweak, |_| {
            KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384).unwrap()
        })
    }

    pub fn with_keys(
        intermediates: usize,
        aws_names: bool,
        tweak: impl Fn(Role, &mut CertificateParams),
        key_for: impl Fn(Role) -> KeyPair,
    ) -> Self {
        let mut root_params = default_params(Role::Root, aws_names);
        tweak(Role::Root, &mut root_params);
        let root_key = key_for(Role::Root);
        let root_der = root_params.self_signed(&root_key).unwrap().der().to_vec();
        let mut issuer = Issuer::new(root_params, root_key);
        let mut intermediates_der = Vec::new();
        for i in 0..intermediates {
            let role = Role::Intermediate(i);
            let mut p = default_params(role, aws_names);
            tweak(role, &mut p);
            let key = key_for(role);
            intermediates_der.push(p.signed_by(&key, &issuer).unwrap().der().to_vec());
            issuer = Issuer::new(p, key);
        }
        let mut leaf_params = default_params(Role::Leaf, aws_names);
        tweak(Role::Leaf, &mut leaf_params);
        let leaf = key_for(Role::Leaf);
        let leaf_der = leaf_params
            .signed_by(&leaf, &issuer)
            .unwrap()
            .der()
            .to_vec();
        let leaf_key =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, &leaf.serialize_der())
                .expect("leaf key is P-384");
        Self {
            root_der,
            intermediates_der,
            leaf_der,
            leaf_key,
        }
    }

    pub fn anchor(&self) -> TrustAnchor {
        TrustAnchor::from_der(&self.root_der).unwrap()
    }

    pub fn cabundle(&self) -> Vec<Vec<u8>> {
        std::iter::once(self.root_der.clone())
            .chain(self.intermediates_der.iter().cloned())
            .collect()
    }

    /// A production-looking document: 16 PCRs with a non-zero PCR0, nulls for optional fields.
    pub fn builder(&self) -> DocumentBuilder {
        let mut b = DocumentBuilder::new(
            "i-0123456789abcdef0-enc0123456789abcdef",
            T_MS,
            self.leaf_der.clone(),
            self.cabundle(),
        );
        for i in 0..16u8 {
            b = b.pcr(i, if i < 5 { vec![i + 1; 48] } else { vec![0; 48] });
        }
        b
    }

    pub fn sign(&self, b: &DocumentBuilder) -> Vec<u8> {
        b.sign(&self.leaf_key).unwrap()
    }

    /// Signs arbitrary payload bytes as a COSE_Sign1 with the leaf key.
    pub fn sign_payload(&self, payload: &[u8]) -> Vec<u8> {
        build::sign1(payload, false, |m| build::sign_es384(&self.leaf_key, m)).unwrap()
    }
}
