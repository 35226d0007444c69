//! A Yubico-like PIV attestation PKI for tests: a root, an optional intermediate (as in
//! Yubico's 2024 PKI), a device certificate standing for slot `f9`, and slot certificates that
//! carry the same extensions a YubiKey writes. Every name says TEST; its root is trusted only
//! where a test passes [`FakeYubico::trust`] explicitly, never by [`YubicoTrust::published`].
//!
//! The virtual card used by the card tests does not implement ATTEST, so this is how the
//! verifier and the ceremony's enforcement are exercised without a YubiKey.

use p256::elliptic_curve::sec1::ToSec1Point;
use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, PKCS_ECDSA_P384_SHA384, PublicKeyData,
    SignatureAlgorithm,
};
use time::{Duration, OffsetDateTime};

use crate::keys::PublicKey;
use crate::yubikey_attest::{Firmware, PivAttestationError, YubicoTrust};

const YUBICO_ARC: [u64; 9] = [1, 3, 6, 1, 4, 1, 41482, 3, 0];

fn yubico_oid(last: u64) -> Vec<u64> {
    let mut oid = YUBICO_ARC.to_vec();
    oid[8] = last;
    oid
}

/// What the fake card writes into one slot certificate.
#[derive(Debug, Clone)]
pub struct SlotSpec {
    pub slot: u8,
    pub serial: u32,
    pub firmware: Firmware,
    /// Raw policy bytes as the card writes them (1 never, 2 once, 3 always / 1 never, 2
    /// always, 3 cached).
    pub pin_policy: u8,
    pub touch_policy: u8,
    pub form_factor: Option<u8>,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
}

impl SlotSpec {
    /// PIN once, touch always, USB-C keychain, firmware 5.7.1, valid 2024..2052.
    #[must_use]
    pub fn new(slot: u8, serial: u32) -> Self {
        Self {
            slot,
            serial,
            firmware: Firmware(5, 7, 1),
            pin_policy: 2,
            touch_policy: 2,
            form_factor: Some(0x03),
            not_before: time::macros::datetime!(2024-01-01 00:00 UTC),
            not_after: time::macros::datetime!(2052-04-17 00:00 UTC),
        }
    }
}

/// A P-256 public key in the form rcgen certifies.
struct P256Spki(Vec<u8>);

impl PublicKeyData for P256Spki {
    fn der_bytes(&self) -> &[u8] {
        &self.0
    }
    fn algorithm(&self) -> &'static SignatureAlgorithm {
        &PKCS_ECDSA_P256_SHA256
    }
}

/// The fake PKI with one fake YubiKey's attestation key.
pub struct FakeYubico {
    root_der: Vec<u8>,
    intermediate_der: Option<Vec<u8>>,
    device_der: Vec<u8>,
    device: Issuer<'static, KeyPair>,
}

fn names(params: &mut CertificateParams, cn: &str) {
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, cn);
}

fn ca(cn: &str, path_len: Option<u8>) -> CertificateParams {
    let mut p = CertificateParams::default();
    names(&mut p, cn);
    p.is_ca = IsCa::Ca(path_len.map_or(
        BasicConstraints::Unconstrained,
        BasicConstraints::Constrained,
    ));
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p.not_before = time::macros::datetime!(2016-03-14 00:00 UTC);
    p.not_after = time::macros::datetime!(2052-04-17 00:00 UTC);
    p
}

impl FakeYubico {
    /// A fresh PKI. `root_cn` names the root (tests use a second PKI with another name, or the
    /// same name, to stand for an unknown root). With `intermediate`, the device certificate
    /// is issued through one pinned intermediate, as on firmware 5.7.4 and later.
    pub fn generate(root_cn: &str, intermediate: bool) -> Result<Self, rcgen::Error> {
        let root_params = ca(root_cn, None);
        let root_key = KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384)?;
        let root_der = root_params.self_signed(&root_key)?.der().to_vec();
        let root = Issuer::new(root_params, root_key);

        let (issuer, intermediate_der) = if intermediate {
            let params = ca("TEST Yubico PIV Attestation B 1", Some(1));
            let key = KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384)?;
            let der = params.signed_by(&key, &root)?.der().to_vec();
            (Issuer::new(params, key), Some(der))
        } else {
            (root, None)
        };

        // Like a YubiKey 5 f9 certificate: a CA with pathlen 0 and the firmware extension.
        let mut device_params = ca("TEST Yubico PIV Attestation", Some(0));
        device_params.key_usages = Vec::new();
        device_params.custom_extensions = vec![CustomExtension::from_oid_content(
            &yubico_oid(3),
            vec![5, 7, 1],
        )];
        let device_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let device_der = device_params
            .signed_by(&device_key, &issuer)?
            .der()
            .to_vec();
        Ok(Self {
            root_der,
            intermediate_der,
            device_der,
            device: Issuer::new(device_params, device_key),
        })
    }

    /// Trusts this PKI's root (and intermediate) only.
    pub fn trust(&self) -> Result<YubicoTrust, PivAttestationError> {
        let intermediates: Vec<&[u8]> = self.intermediate_der.iter().map(Vec::as_slice).collect();
        YubicoTrust::from_der(&[&self.root_der], &intermediates)
    }

    /// The device certificate (slot `f9`).
    #[must_use]
    pub fn device_certificate(&self) -> &[u8] {
        &self.device_der
    }

    #[must_use]
    pub fn root_der(&self) -> &[u8] {
        &self.root_der
    }

    /// The root and the intermediate (if any) as PEM, as `--yubikey-root` reads them.
    #[must_use]
    pub fn trust_pem(&self) -> String {
        use base64::Engine as _;
        let mut out = String::new();
        for der in std::iter::once(&self.root_der).chain(self.intermediate_der.iter()) {
            let b64 = base64::engine::general_purpose::STANDARD.encode(der);
            out.push_str("-----BEGIN CERTIFICATE-----\n");
            for line in b64.as_bytes().chunks(64) {
                out.push_str(&String::from_utf8_lossy(line));
                out.push('\n');
            }
            out.push_str("-----END CERTIFICATE-----\n");
        }
        out
    }

    /// The card's ATTEST answer for a P-256 key in `spec.slot`.
    pub fn attest(&self, key: &PublicKey, spec: &SlotSpec) -> Result<Vec<u8>, rcgen::Error> {
        let mut params = CertificateParams::default();
        names(
            &mut params,
            &format!("YubiKey PIV Attestation {:02x}", spec.slot),
        );
        params.is_ca = IsCa::ExplicitNoCa;
        params.not_before = spec.not_before;
        params.not_after = spec.not_after;
        let f = spec.firmware;
        let mut ext = vec![
            CustomExtension::from_oid_content(&yubico_oid(3), vec![f.0, f.1, f.2]),
            CustomExtension::from_oid_content(&yubico_oid(7), der_integer(spec.serial)),
            CustomExtension::from_oid_content(
                &yubico_oid(8),
                vec![spec.pin_policy, spec.touch_policy],
            ),
        ];
        if let Some(ff) = spec.form_factor {
            ext.push(CustomExtension::from_oid_content(&yubico_oid(9), vec![ff]));
        }
        params.custom_extensions = ext;
        let point = key.to_p256().to_sec1_point(false).as_bytes().to_vec();
        Ok(params
            .signed_by(&P256Spki(point), &self.device)?
            .der()
            .to_vec())
    }
}

fn der_integer(v: u32) -> Vec<u8> {
    let bytes = v.to_be_bytes();
    let first = bytes.iter().position(|b| *b != 0).unwrap_or(3);
    let mut body = bytes[first..].to_vec();
    if body[0] & 0x80 != 0 {
        body.insert(0, 0);
    }
    let mut out = vec![0x02, u8::try_from(body.len()).unwrap_or(5)];
    out.extend(body);
    out
}

/// A slot certificate's validity shifted by `days` from `spec`'s (for expiry tests).
#[must_use]
pub fn shifted(spec: &SlotSpec, days: i64) -> SlotSpec {
    let mut s = spec.clone();
    s.not_before += Duration::days(days);
    s.not_after += Duration::days(days);
    s
}
