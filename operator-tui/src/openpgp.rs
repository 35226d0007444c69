//! OpenPGP at the edges of a ceremony, so auditors and members can check it with tools they
//! already trust (gpg, sq):
//!
//! - a member's Manifest key as an OpenPGP certificate ([`export_cert`]), self-signed on the
//!   device;
//! - detached signatures over ceremony transcripts ([`sign_detached`]), made on the device;
//! - builders' PCR statements accepted at a threshold of pinned builder keys
//!   ([`verify_statement`]).
//!
//! Private-key operations never run in sequoia: [`DeviceSigner`] hands sequoia's digest to
//! [`KeyDevice::sign_prehashed`], so the key stays on the YubiKey (or, in dev mode, in the
//! software key file). sequoia's own crypto backend only hashes and verifies public data here.

use std::collections::BTreeSet;
use std::fmt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use p256::elliptic_curve::sec1::ToSec1Point;
use sequoia_openpgp as openpgp;

use openpgp::armor;
use openpgp::cert::amalgamation::ValidAmalgamation;
use openpgp::cert::{Cert, CertParser};
use openpgp::crypto::{self, mpi};
use openpgp::packet::key::{Key4, PrimaryRole, PublicParts, UnspecifiedRole};
use openpgp::packet::signature::SignatureBuilder;
use openpgp::packet::{Key, Packet, UserID};
use openpgp::parse::{PacketParserResult, Parse};
use openpgp::policy::{HashAlgoSecurity, Policy, StandardPolicy};
use openpgp::serialize::{Marshal, SerializeInto};
use openpgp::types::{
    Curve, Features, HashAlgorithm, KeyFlags, PublicKeyAlgorithm, RevocationStatus, SignatureType,
};
use tessera_core::device::{DeviceError, KeyDevice};
use tessera_core::keys::{PublicKey, Role};
use tessera_core::statement::{self, StatementParseError};

/// The OpenPGP creation time Tessera gives a Manifest key unless told otherwise: 2025-01-01
/// 00:00:00 UTC.
///
/// An OpenPGP fingerprint hashes the creation time with the key material. A constant makes the
/// fingerprint a function of the slot's key alone: every export of the same key, from any
/// machine, yields the same fingerprint, and `tessera transcript sign` names the same issuer
/// without reading anything back. The slot certificate's notBefore would tie the fingerprint
/// to a certificate that re-provisioning tooling may rewrite, and software keys have none.
pub const DEFAULT_CREATED: &str = "2025-01-01T00:00:00Z";

/// Unix time of [`DEFAULT_CREATED`].
const DEFAULT_CREATED_UNIX: u64 = 1_735_689_600;

/// Largest signature file read for a statement.
pub const MAX_SIGNATURE_FILE: usize = 64 * 1024;
/// Largest keyring file read.
pub const MAX_KEY_FILE: usize = 1 << 20;
/// How far in the future a builder's signature may be dated: builders' and members' clocks
/// (air-gapped laptops among them) drift, and a statement is not time-critical.
const CLOCK_SKEW: Duration = Duration::from_mins(30);
/// Signature packets considered per signature file.
const MAX_SIGNATURES_PER_FILE: usize = 16;

/// [`DEFAULT_CREATED`] as a time.
#[must_use]
pub fn default_created() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(DEFAULT_CREATED_UNIX)
}

/// Parses a `--created` value: an RFC 3339 time, at whole seconds (OpenPGP's resolution).
pub fn parse_created(s: &str) -> Result<SystemTime, String> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map_err(|e| format!("{s:?} is not an RFC 3339 time: {e}"))?;
    // OpenPGP times are unsigned 32-bit seconds.
    let secs = u32::try_from(t.unix_timestamp())
        .map_err(|_| format!("{s:?} is outside OpenPGP's time range (1970..2106)"))?;
    if t.nanosecond() != 0 {
        return Err(format!("{s:?}: OpenPGP times are whole seconds"));
    }
    Ok(SystemTime::UNIX_EPOCH + Duration::from_secs(u64::from(secs)))
}

/// Why an OpenPGP operation on the device failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenPgpError {
    #[error(transparent)]
    Device(#[from] DeviceError),
    #[error("OpenPGP: {0}")]
    Pgp(String),
}

/// Turns a sequoia error into an [`OpenPgpError`], keeping a device error a device error when
/// it travelled through sequoia (from [`DeviceSigner`]).
fn pgp<E>(e: E) -> OpenPgpError
where
    E: std::ops::Deref<Target = dyn std::error::Error + Send + Sync + 'static>,
{
    if let Some(d) = e.downcast_ref::<DeviceError>() {
        return OpenPgpError::Device(d.clone());
    }
    OpenPgpError::Pgp(error_chain(&*e))
}

/// An error and its sources on one line.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// The OpenPGP public key packet for a P-256 key created at `created`.
pub fn openpgp_key(
    public_key: &PublicKey,
    created: SystemTime,
) -> Result<Key<PublicParts, PrimaryRole>, OpenPgpError> {
    let point = public_key.to_p256().to_sec1_point(false);
    let xy = &point.as_bytes()[1..];
    let q = mpi::MPI::new_point(&xy[..32], &xy[32..], 256);
    let key = Key4::new(
        created,
        PublicKeyAlgorithm::ECDSA,
        mpi::PublicKey::ECDSA {
            curve: Curve::NistP256,
            q,
        },
    )
    .map_err(pgp)?;
    Ok(key.into())
}

/// A sequoia [`crypto::Signer`] whose private half is a [`KeyDevice`] role key.
///
/// It accepts only SHA-256, the hash ECDSA P-256 pairs with, and asks the device to sign the
/// digest sequoia computed.
pub struct DeviceSigner<'a> {
    key: Key<PublicParts, UnspecifiedRole>,
    device: &'a mut dyn KeyDevice,
    role: Role,
    purpose: String,
}

impl fmt::Debug for DeviceSigner<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceSigner")
            .field("key", &self.key.fingerprint())
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

impl<'a> DeviceSigner<'a> {
    /// A signer for `role` on `device`, its OpenPGP key created at `created`. `purpose` is what
    /// the person asked for the PIN is told.
    pub fn new(
        device: &'a mut dyn KeyDevice,
        role: Role,
        created: SystemTime,
        purpose: String,
    ) -> Result<Self, OpenPgpError> {
        let public_key = device.public_key(role)?;
        let key = openpgp_key(&public_key, created)?;
        Ok(Self {
            key: key.role_into_unspecified(),
            device,
            role,
            purpose,
        })
    }

    /// The OpenPGP fingerprint of the signing key.
    #[must_use]
    pub fn fingerprint(&self) -> openpgp::Fingerprint {
        self.key.fingerprint()
    }
}

const SHA256_ONLY: &[HashAlgorithm] = &[HashAlgorithm::SHA256];

impl crypto::Signer for DeviceSigner<'_> {
    fn public(&self) -> &Key<PublicParts, UnspecifiedRole> {
        &self.key
    }

    fn acceptable_hashes(&self) -> &[HashAlgorithm] {
        SHA256_ONLY
    }

    fn sign(&mut self, hash_algo: HashAlgorithm, digest: &[u8]) -> openpgp::Result<mpi::Signature> {
        let digest: &[u8; 32] = match (hash_algo, digest.try_into()) {
            (HashAlgorithm::SHA256, Ok(d)) => d,
            _ => {
                return Err(openpgp::Error::InvalidOperation(format!(
                    "the device signs SHA-256 digests only, not a {}-byte {hash_algo} digest",
                    digest.len()
                ))
                .into());
            }
        };
        let sig = self
            .device
            .sign_prehashed(self.role, &self.purpose, digest)?;
        let rs = sig.0.as_bytes();
        Ok(mpi::Signature::ECDSA {
            r: mpi::MPI::new(&rs[..32]),
            s: mpi::MPI::new(&rs[32..]),
        })
    }
}

/// A member's Manifest key as an OpenPGP certificate.
#[derive(Debug, Clone)]
pub struct ExportedCert {
    pub cert: Cert,
    /// ASCII armor, as written to the file.
    pub armored: String,
    /// The OpenPGP fingerprint, uppercase hex (as gpg prints it).
    pub fingerprint: String,
    pub user_id: String,
}

/// The User ID a member's exported key carries.
#[must_use]
pub fn user_id_for(alias: &str) -> String {
    format!("{alias} (tessera manifest key)")
}

/// Builds the OpenPGP certificate of the Manifest key on `device`: the key packet created at
/// `created`, a User ID for `alias`, and a positive certification made on the device, dated
/// `created` too so that every export carries the same self-signature time.
pub fn export_cert(
    device: &mut dyn KeyDevice,
    alias: &str,
    created: SystemTime,
) -> Result<ExportedCert, OpenPgpError> {
    let public_key = device.public_key(Role::Manifest)?;
    let primary = openpgp_key(&public_key, created)?;
    let fingerprint = primary.fingerprint().to_hex();
    let user_id = user_id_for(alias);
    let uid = UserID::from(user_id.as_str());
    let mut signer = DeviceSigner::new(
        device,
        Role::Manifest,
        created,
        format!("self-sign the OpenPGP key {fingerprint} for {user_id:?}"),
    )?;
    let binding = SignatureBuilder::new(SignatureType::PositiveCertification)
        .set_hash_algo(HashAlgorithm::SHA256)
        .set_signature_creation_time(created)
        .and_then(|b| b.set_key_flags(KeyFlags::empty().set_certification().set_signing()))
        .and_then(|b| b.set_preferred_hash_algorithms(vec![HashAlgorithm::SHA256]))
        .and_then(|b| b.set_features(Features::empty().set_seipdv1()))
        .and_then(|b| b.set_primary_userid(true))
        .and_then(|b| b.sign_userid_binding(&mut signer, Some(&primary), &uid))
        .map_err(pgp)?;
    let cert = Cert::try_from(vec![
        Packet::from(primary),
        Packet::from(uid),
        Packet::from(binding),
    ])
    .map_err(pgp)?;
    // The certificate must stand on its own before anyone is handed it: the binding verifies
    // and the key is usable for signing under the standard policy.
    let policy = StandardPolicy::new();
    let valid = cert.with_policy(&policy, created).map_err(pgp)?;
    if valid.userids().count() != 1 || valid.keys().for_signing().count() != 1 {
        return Err(OpenPgpError::Pgp(
            "the device's self-signature did not verify".to_owned(),
        ));
    }
    let armored = String::from_utf8(cert.armored().to_vec().map_err(pgp)?)
        .map_err(|_| OpenPgpError::Pgp("armor is not UTF-8".to_owned()))?;
    Ok(ExportedCert {
        cert,
        armored,
        fingerprint,
        user_id,
    })
}

/// A detached, armored signature.
#[derive(Debug, Clone)]
pub struct DetachedSignature {
    pub armored: String,
    /// The issuer's OpenPGP fingerprint, uppercase hex.
    pub issuer: String,
}

/// Makes a detached binary-mode signature over `data` with the Manifest key on `device`, dated
/// `now`, issued by the key as exported with creation time `created`. `purpose` names what is
/// signed for the PIN prompt.
pub fn sign_detached(
    device: &mut dyn KeyDevice,
    data: &[u8],
    created: SystemTime,
    now: SystemTime,
    purpose: String,
) -> Result<DetachedSignature, OpenPgpError> {
    if now < created {
        return Err(OpenPgpError::Pgp(
            "the clock is earlier than the key's OpenPGP creation time; set the clock (or the --created the key was exported with)".to_owned(),
        ));
    }
    let mut signer = DeviceSigner::new(device, Role::Manifest, created, purpose)?;
    let issuer = signer.fingerprint().to_hex();
    let sig = SignatureBuilder::new(SignatureType::Binary)
        .set_hash_algo(HashAlgorithm::SHA256)
        .set_signature_creation_time(now)
        .and_then(|b| b.sign_message(&mut signer, data))
        .map_err(pgp)?;
    sig.verify_message(crypto::Signer::public(&signer), data)
        .map_err(|e| OpenPgpError::Pgp(format!("the device's signature did not verify: {e}")))?;
    let io = |e: std::io::Error| OpenPgpError::Pgp(format!("armor: {e}"));
    let mut w = armor::Writer::new(Vec::new(), armor::Kind::Signature).map_err(io)?;
    Packet::from(sig).serialize(&mut w).map_err(pgp)?;
    let bytes = w.finalize().map_err(io)?;
    let armored =
        String::from_utf8(bytes).map_err(|_| OpenPgpError::Pgp("armor is not UTF-8".to_owned()))?;
    Ok(DetachedSignature { armored, issuer })
}

/// Builder keys pinned by the operator: OpenPGP certificates, one or more per file.
#[derive(Debug, Clone, Default)]
pub struct Keyring {
    certs: Vec<Cert>,
}

impl Keyring {
    /// Certificates from armored or binary bytes; the same certificate twice is merged.
    pub fn from_bytes(files: &[(&str, &[u8])]) -> Result<Self, StatementError> {
        let mut ring = Self::default();
        for (name, bytes) in files {
            ring.add(name, bytes)?;
        }
        Ok(ring)
    }

    /// Every regular, non-hidden file in `dir` must hold certificates; anything else there is
    /// an error rather than silently ignored, because this directory is what the operator
    /// trusts.
    pub fn from_dir(dir: &Path) -> Result<Self, StatementError> {
        let bad = |reason: String| StatementError::Keyring {
            path: dir.display().to_string(),
            reason,
        };
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .map_err(|e| bad(e.to_string()))?
            .collect::<Result<_, _>>()
            .map_err(|e| bad(e.to_string()))?;
        entries.sort_by_key(std::fs::DirEntry::file_name);
        let mut ring = Self::default();
        for entry in entries {
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let path = entry.path();
            let name = path.display().to_string();
            let meta = std::fs::metadata(&path).map_err(|e| StatementError::Keyring {
                path: name.clone(),
                reason: e.to_string(),
            })?;
            if !meta.is_file() {
                continue;
            }
            let bytes = airgap_bundle::usb::read_limited(&path, MAX_KEY_FILE).map_err(|e| {
                StatementError::Keyring {
                    path: name.clone(),
                    reason: e.to_string(),
                }
            })?;
            ring.add(&name, &bytes)?;
        }
        if ring.certs.is_empty() {
            return Err(bad("holds no keys".to_owned()));
        }
        Ok(ring)
    }

    fn add(&mut self, name: &str, bytes: &[u8]) -> Result<(), StatementError> {
        let bad = |reason: String| StatementError::Keyring {
            path: name.to_owned(),
            reason,
        };
        let parser = CertParser::from_bytes(bytes).map_err(|e| bad(format!("{e:#}")))?;
        let mut any = false;
        for cert in parser {
            let cert = cert.map_err(|e| bad(format!("not an OpenPGP public key: {e:#}")))?;
            if cert.is_tsk() {
                return Err(bad(
                    "holds a secret key; pin public keys only (gpg --export, not --export-secret-keys)"
                        .to_owned(),
                ));
            }
            any = true;
            match self
                .certs
                .iter_mut()
                .find(|c| c.fingerprint() == cert.fingerprint())
            {
                Some(existing) => {
                    *existing = existing
                        .clone()
                        .merge_public(cert)
                        .map_err(|e| bad(format!("{e:#}")))?;
                }
                None => self.certs.push(cert),
            }
        }
        if any {
            Ok(())
        } else {
            Err(bad("holds no OpenPGP key".to_owned()))
        }
    }

    /// Number of distinct pinned certificates.
    #[must_use]
    pub fn len(&self) -> usize {
        self.certs.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.certs.is_empty()
    }
}

/// A statement accepted at its threshold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedStatement {
    pub image: String,
    pub version: String,
    /// PCR0, PCR1, PCR2.
    pub pcrs: [[u8; 48]; 3],
    /// The pinned builders whose signatures counted, as "User ID (FINGERPRINT)".
    pub signers: Vec<String>,
    /// The same builders' certificate fingerprints (upper-case hex), for namespace pins.
    pub signer_fingerprints: Vec<String>,
    /// Signatures that did not count, and why.
    pub rejected: Vec<Rejection>,
}

/// A signature that did not count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// Index into the signatures given to [`verify_statement`].
    pub sig: usize,
    pub reason: String,
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "signature {}: {}", self.sig + 1, self.reason)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StatementError {
    #[error(transparent)]
    Parse(#[from] StatementParseError),
    #[error("keyring {path}: {reason}")]
    Keyring { path: String, reason: String },
    #[error("the threshold must be at least 1")]
    ZeroThreshold,
    #[error("{valid} of the {threshold} required pinned builders signed this statement{}", signer_list(.signers))]
    BelowThreshold {
        threshold: usize,
        valid: usize,
        signers: Vec<String>,
        rejected: Vec<Rejection>,
    },
}

fn signer_list(signers: &[String]) -> String {
    if signers.is_empty() {
        String::new()
    } else {
        format!(" ({})", signers.join(", "))
    }
}

/// Accepts `statement` when `threshold` distinct keys pinned in `keyring` made valid detached
/// signatures over its exact bytes, judged at the current time.
pub fn verify_statement<S: AsRef<[u8]>>(
    statement: &[u8],
    sigs: &[S],
    keyring: &Keyring,
    threshold: usize,
) -> Result<VerifiedStatement, StatementError> {
    verify_statement_at(statement, sigs, keyring, threshold, SystemTime::now())
}

/// [`verify_statement`] at time `at`: keys must have been valid when they signed and must not
/// be revoked at `at`; signatures dated after `at` do not count.
pub fn verify_statement_at<S: AsRef<[u8]>>(
    statement: &[u8],
    sigs: &[S],
    keyring: &Keyring,
    threshold: usize,
    at: SystemTime,
) -> Result<VerifiedStatement, StatementError> {
    if threshold == 0 {
        return Err(StatementError::ZeroThreshold);
    }
    let parsed = statement::parse(statement)?;
    let policy = StandardPolicy::at(at);
    let mut signers = Vec::new();
    let mut signer_fingerprints = Vec::new();
    let mut rejected = Vec::new();
    let mut counted_certs = BTreeSet::new();
    let mut counted_keys = BTreeSet::new();
    for (i, file) in sigs.iter().enumerate() {
        let reject = |reason: String| Rejection { sig: i, reason };
        let packets = match signature_packets(file.as_ref()) {
            Ok(p) => p,
            Err(reason) => {
                rejected.push(reject(reason));
                continue;
            }
        };
        for sig in packets {
            match check_signature(&sig, statement, keyring, &policy, at) {
                Err(reason) => rejected.push(reject(reason)),
                Ok((cert_fpr, key_fpr, name)) => {
                    if counted_certs.contains(&cert_fpr) || counted_keys.contains(&key_fpr) {
                        rejected.push(reject(format!(
                            "another signature by {name}, which is counted once"
                        )));
                    } else {
                        signer_fingerprints.push(cert_fpr.clone());
                        counted_certs.insert(cert_fpr);
                        counted_keys.insert(key_fpr);
                        signers.push(name);
                    }
                }
            }
        }
    }
    if signers.len() < threshold {
        return Err(StatementError::BelowThreshold {
            threshold,
            valid: signers.len(),
            signers,
            rejected,
        });
    }
    Ok(VerifiedStatement {
        image: parsed.image,
        version: parsed.version,
        pcrs: parsed.pcrs,
        signers,
        signer_fingerprints,
        rejected,
    })
}

/// The signature packets of a detached signature file (armored or binary); anything else in
/// it makes the whole file count for nothing.
fn signature_packets(bytes: &[u8]) -> Result<Vec<openpgp::packet::Signature>, String> {
    if bytes.len() > MAX_SIGNATURE_FILE {
        return Err(format!(
            "{} bytes; a detached signature is at most {MAX_SIGNATURE_FILE}",
            bytes.len()
        ));
    }
    let mut out = Vec::new();
    let mut ppr = openpgp::parse::PacketParser::from_bytes(bytes)
        .map_err(|e| format!("not an OpenPGP signature: {e:#}"))?;
    while let PacketParserResult::Some(pp) = ppr {
        let (packet, next) = pp
            .next()
            .map_err(|e| format!("not an OpenPGP signature: {e:#}"))?;
        match packet {
            Packet::Signature(sig) => out.push(sig),
            other => {
                return Err(format!(
                    "holds a {} packet; a detached signature holds signatures only",
                    other.tag()
                ));
            }
        }
        if out.len() > MAX_SIGNATURES_PER_FILE {
            return Err(format!(
                "more than {MAX_SIGNATURES_PER_FILE} signatures in one file"
            ));
        }
        ppr = next;
    }
    if out.is_empty() {
        return Err("holds no signature".to_owned());
    }
    Ok(out)
}

/// Checks one signature packet against the pinned keys: the certificate fingerprint, signing
/// key fingerprint and display name of its maker, or why it does not count.
fn check_signature(
    sig: &openpgp::packet::Signature,
    data: &[u8],
    keyring: &Keyring,
    policy: &dyn Policy,
    at: SystemTime,
) -> Result<(String, String, String), String> {
    if sig.typ() != SignatureType::Binary {
        return Err(format!(
            "a {} signature; statements are signed in binary mode (gpg --detach-sign without --textmode)",
            sig.typ()
        ));
    }
    policy
        .signature(sig, HashAlgoSecurity::CollisionResistance)
        .map_err(|e| format!("refused by policy: {e:#}"))?;
    let Some(created) = sig.signature_creation_time() else {
        return Err("carries no creation time".to_owned());
    };
    sig.signature_alive(at, CLOCK_SKEW)
        .map_err(|e| format!("not valid now: {e:#}"))?;
    let issuers = sig.get_issuers();
    if issuers.is_empty() {
        return Err("names no issuer".to_owned());
    }
    let mut last_error = None;
    for cert in &keyring.certs {
        for ka in cert.keys() {
            if !issuers.iter().any(|h| h.aliases(ka.key().key_handle())) {
                continue;
            }
            let name = signer_name(cert, policy, at);
            let outcome = (|| {
                let valid = cert
                    .with_policy(policy, created)
                    .map_err(|e| format!("{name} was not valid when it signed: {e:#}"))?;
                let key = valid
                    .keys()
                    .key_handle(ka.key().key_handle())
                    .for_signing()
                    .alive()
                    .next()
                    .ok_or_else(|| {
                        format!(
                            "{name}: key {} could not sign at that time",
                            ka.key().fingerprint()
                        )
                    })?;
                if let Ok(now) = cert.with_policy(policy, at)
                    && let RevocationStatus::Revoked(_) = now.revocation_status()
                {
                    return Err(format!("{name} is revoked"));
                }
                if let RevocationStatus::Revoked(_) = key.revocation_status() {
                    return Err(format!("{name}: the signing key is revoked"));
                }
                sig.verify_message(key.key(), data).map_err(|_| {
                    format!("by {name} does not verify: the statement was altered or the signature damaged")
                })?;
                Ok((
                    cert.fingerprint().to_hex(),
                    ka.key().fingerprint().to_hex(),
                    name.clone(),
                ))
            })();
            match outcome {
                Ok(found) => return Ok(found),
                Err(e) => last_error = Some(e),
            }
        }
    }
    Err(last_error.unwrap_or_else(|| {
        // A fingerprint says all a key ID does; show key IDs only when nothing better is there.
        let fprs: Vec<String> = issuers
            .iter()
            .filter(|h| matches!(h, openpgp::KeyHandle::Fingerprint(_)))
            .map(ToString::to_string)
            .collect();
        let ids = if fprs.is_empty() {
            issuers.iter().map(ToString::to_string).collect()
        } else {
            fprs
        };
        format!(
            "made by {}, which is not pinned in the keyring",
            ids.join(" / ")
        )
    }))
}

/// "User ID (FINGERPRINT)", with control characters replaced: names end up on the operator's
/// screen.
fn signer_name(cert: &Cert, policy: &dyn Policy, at: SystemTime) -> String {
    // Only a User ID the key itself bound counts as its name; anyone can append others.
    let uid = cert
        .with_policy(policy, at)
        .ok()
        .and_then(|v| v.primary_userid().ok().map(|u| u.userid().clone()));
    let fpr = cert.fingerprint().to_hex();
    match uid {
        Some(u) => {
            let text: String = String::from_utf8_lossy(u.value())
                .chars()
                .map(|c| if c.is_control() { '?' } else { c })
                .take(128)
                .collect();
            format!("{text} ({fpr})")
        }
        None => fpr,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};
    use tessera_core::device::SoftwareKeyDevice;

    /// A prehashed signature over SHA-256(m) is the same statement as a signature over m: the
    /// `KeyDevice`'s own verification accepts it.
    #[test]
    fn prehashed_signing_matches_message_signing() {
        let mut dev = SoftwareKeyDevice::from_seed("t", &[7; 32]);
        let pk = dev.public_key(Role::Manifest).unwrap();
        let digest: [u8; 32] = Sha256::digest(b"message").into();
        let sig = dev.sign_prehashed(Role::Manifest, "test", &digest).unwrap();
        pk.verify(b"message", &sig).unwrap();
    }

    /// The signer refuses any hash but SHA-256, and a digest of the wrong length.
    #[test]
    fn device_signer_signs_sha256_only() {
        use crypto::Signer as _;
        let mut dev = SoftwareKeyDevice::from_seed("t", &[7; 32]);
        let mut signer =
            DeviceSigner::new(&mut dev, Role::Manifest, default_created(), "test".into()).unwrap();
        assert_eq!(signer.acceptable_hashes(), &[HashAlgorithm::SHA256]);
        assert!(signer.sign(HashAlgorithm::SHA512, &[0; 64]).is_err());
        assert!(signer.sign(HashAlgorithm::SHA256, &[0; 31]).is_err());
        assert!(signer.sign(HashAlgorithm::SHA256, &[1; 32]).is_ok());
    }

    #[test]
    fn created_times() {
        assert_eq!(parse_created(DEFAULT_CREATED).unwrap(), default_created());
        assert!(parse_created("1969-12-31T23:59:59Z").is_err());
        assert!(parse_created("2106-02-07T06:28:16Z").is_err());
        assert!(parse_created("2026-01-01T00:00:00.1Z").is_err());
        assert!(parse_created("yesterday").is_err());
    }

    /// A clock before the key's creation time produces no signature.
    #[test]
    fn no_signature_before_the_key_exists() {
        let mut dev = SoftwareKeyDevice::from_seed("t", &[7; 32]);
        let early = default_created() - Duration::from_secs(1);
        let err = sign_detached(&mut dev, b"x", default_created(), early, "t".into()).unwrap_err();
        assert!(err.to_string().contains("clock"), "{err}");
    }
}
