//! The YubiKey PIV backend of [`KeyDevice`].
//!
//! Each role key lives in its own PIV slot ([`SlotMap`]; defaults from the design: share 82,
//! manifest 9c, patch 83). A [`PivDevice`] opens a fresh card session for every private-key
//! operation, asks its [`PinSource`] for the PIN with the purpose stated, runs the operation
//! and closes the session, which resets the card and so logs the PIN out again: a PIN unlocks
//! exactly one signature or one decryption, whatever the slot's PIN policy would allow.
//!
//! The one exception is a held session ([`KeyDevice::hold_session`]): for the length of one
//! ceremony step (a hand-over: decrypt, sign the receipt, sign the pin) the verified session
//! is kept for the next operation on a slot whose PIN policy is `once`, so the member types
//! the PIN once. A slot with PIN policy `always` still asks every time, any failure ends the
//! session, and releasing it resets the card.

// "YubiKey" is a product name, not an item to link.
#![allow(clippy::doc_markdown)]

pub mod attest;
pub mod pin;
pub mod provision;

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use p256::elliptic_curve::sec1::ToSec1Point;
use sha2::{Digest, Sha256};
use tessera_core::device::{DeviceError, DeviceInfo, DeviceKind, KeyDevice, SharedSecret};
use tessera_core::keys::{PublicKey, Role, Signature};
use x509_cert::der::asn1::ObjectIdentifier;
use yubikey::piv::{self, AlgorithmId, SlotId};
use yubikey::{Certificate, PinPolicy, TouchPolicy, YubiKey};
use zeroize::Zeroizing;

pub use pin::{FilePinSource, PinRequest, PinSource, PromptPinSource, SecretKind};

/// The certificate extension in which YubiKey attestations, and age-plugin-yubikey's own slot
/// certificates, record a slot's PIN and touch policies: two bytes, PIN policy then touch
/// policy, in the PIV encoding (1 never, 2 once/always, 3 always/cached).
/// <https://developers.yubico.com/PIV/Introduction/PIV_attestation.html>
pub const POLICY_EXTENSION_OID: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.4.1.41482.3.8");

/// The PIV applet's factory PIN and PUK. Provisioning refuses to leave either in place.
pub const FACTORY_PIN: &str = "123456";
pub const FACTORY_PUK: &str = "12345678";

/// Which PIV slot holds each role key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotMap(BTreeMap<Role, u8>);

impl Default for SlotMap {
    /// share 82 (retired slot 1, where age-plugin-yubikey looks), manifest 9c, patch 83.
    fn default() -> Self {
        Self(BTreeMap::from([
            (Role::Share, 0x82),
            (Role::Manifest, 0x9c),
            (Role::Patch, 0x83),
        ]))
    }
}

impl SlotMap {
    /// The slot of `role`.
    #[must_use]
    pub fn slot(&self, role: Role) -> u8 {
        self.0[&role]
    }

    #[must_use]
    pub fn slot_id(&self, role: Role) -> SlotId {
        SlotId::try_from(self.slot(role)).expect("validated when the map was built")
    }

    /// Sets `role` to `slot`, refusing non-key slots and a slot already used by another role.
    pub fn set(&mut self, role: Role, slot: u8) -> Result<(), String> {
        if !is_key_slot(slot) {
            return Err(format!(
                "slot {slot:02x} cannot hold a role key (use 9a, 9c, 9d, 9e or 82..94; 95's data object holds Tessera's pin ledger)"
            ));
        }
        if let Some((other, _)) = self.0.iter().find(|(r, s)| **r != role && **s == slot) {
            return Err(format!("slot {slot:02x} is already the {other} slot"));
        }
        self.0.insert(role, slot);
        Ok(())
    }

    pub fn iter(&self) -> impl Iterator<Item = (Role, u8)> + '_ {
        self.0.iter().map(|(r, s)| (*r, *s))
    }
}

fn is_key_slot(slot: u8) -> bool {
    matches!(slot, 0x9a | 0x9c | 0x9d | 0x9e | 0x82..=0x94)
}

/// The PIV data object that holds the member's pin ledger (`tessera_core::pin::PinLedger`):
/// the certificate object of retired slot 95, which Tessera reserves for it (no role key may
/// sit in slot 95). Reading it needs no PIN; writing it needs the management key.
pub const PIN_LEDGER_OBJECT: u32 = 0x005f_c120;

impl FromStr for SlotMap {
    type Err = String;

    /// `share=82,manifest=9c`: overrides of the defaults, slots in hex.
    fn from_str(s: &str) -> Result<Self, String> {
        let mut map = Self::default();
        // Overrides are applied to a map without the roles they name, so swapping two slots
        // does not trip the "already used" check halfway.
        let mut pairs = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (role, slot) = part
                .split_once('=')
                .ok_or_else(|| format!("expected ROLE=SLOT, got {part:?}"))?;
            let role: Role = role.trim().parse()?;
            let slot = u8::from_str_radix(slot.trim().trim_start_matches("0x"), 16)
                .map_err(|_| format!("slot {slot:?} is not a hex byte"))?;
            pairs.push((role, slot));
        }
        for (role, _) in &pairs {
            map.0.remove(role);
        }
        for (role, slot) in pairs {
            map.set(role, slot)?;
        }
        for role in Role::ALL {
            if !map.0.contains_key(&role) {
                let default = Self::default().slot(role);
                map.set(role, default)?;
            }
        }
        Ok(map)
    }
}

impl fmt::Display for SlotMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.iter().map(|(r, s)| format!("{r}={s:02x}")).collect();
        f.write_str(&parts.join(","))
    }
}

/// PIN and touch policies as recorded for a slot (certificate extension or card metadata).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SlotPolicy {
    pub pin: Option<PinPolicy>,
    pub touch: Option<TouchPolicy>,
}

impl SlotPolicy {
    #[must_use]
    pub fn pin_str(&self) -> &'static str {
        match self.pin {
            Some(PinPolicy::Never) => "never",
            Some(PinPolicy::Once) => "once",
            Some(PinPolicy::Always) => "always",
            _ => "unknown",
        }
    }

    #[must_use]
    pub fn touch_str(&self) -> &'static str {
        match self.touch {
            Some(TouchPolicy::Never) => "never",
            Some(TouchPolicy::Always) => "always",
            Some(TouchPolicy::Cached) => "cached",
            _ => "unknown",
        }
    }

    fn needs_touch(self) -> bool {
        matches!(self.touch, Some(TouchPolicy::Always | TouchPolicy::Cached))
    }
}

/// What a slot holds, read without the PIN.
#[derive(Debug, Clone)]
pub struct SlotKey {
    pub public_key: PublicKey,
    pub policy: SlotPolicy,
    /// The slot certificate's subject, when there is one.
    pub subject: Option<String>,
}

/// Maps a `yubikey` error to what an operator needs; PC/SC failures say which part is missing.
#[must_use]
pub fn device_error(e: yubikey::Error) -> DeviceError {
    match e {
        yubikey::Error::WrongPin { tries: 0 } | yubikey::Error::PinLocked => {
            DeviceError::PinBlocked
        }
        yubikey::Error::WrongPin { tries } => DeviceError::WrongPin { tries_left: tries },
        yubikey::Error::PcscError { inner: Some(p) } => pcsc_error(p),
        yubikey::Error::PcscError { inner: None } => DeviceError::Device {
            detail: "PC/SC error".to_owned(),
        },
        yubikey::Error::AppletNotFound { applet_name } => DeviceError::Device {
            detail: format!("the card has no {applet_name} application (is it a YubiKey?)"),
        },
        other => DeviceError::Device {
            detail: other.to_string(),
        },
    }
}

fn pcsc_error(p: pcsc::Error) -> DeviceError {
    use pcsc::Error as P;
    match p {
        P::NoService | P::ServiceStopped => DeviceError::PcscUnavailable {
            detail: p.to_string(),
        },
        P::NoReadersAvailable | P::UnknownReader | P::ReaderUnavailable => DeviceError::NoReader,
        P::RemovedCard | P::NoSmartcard | P::UnpoweredCard | P::UnresponsiveCard => {
            DeviceError::CardRemoved
        }
        P::ResetCard => DeviceError::Device {
            detail: "another program reset the card during the operation; nothing was completed"
                .to_owned(),
        },
        P::SharingViolation => DeviceError::Device {
            detail: "the YubiKey is in use by another program (gpg-agent's scdaemon?)".to_owned(),
        },
        other => DeviceError::Device {
            detail: format!("PC/SC: {other}"),
        },
    }
}

/// Opens a session to the YubiKey with `serial`, telling "no pcscd", "no reader" and "not
/// plugged in" apart.
pub fn connect(serial: u32) -> Result<YubiKey, DeviceError> {
    let mut ctx = yubikey::reader::Context::open().map_err(device_error)?;
    let readers = ctx.iter().map_err(device_error)?;
    let mut any_reader = false;
    let mut busy = None;
    for reader in readers {
        any_reader = true;
        match reader.open() {
            Ok(yk) if yk.serial().0 == serial => return Ok(yk),
            // Not ours: leave its state (PIN caches of other programs) alone.
            Ok(yk) => drop(yk.disconnect(pcsc::Disposition::LeaveCard)),
            Err(
                e @ yubikey::Error::PcscError {
                    inner: Some(pcsc::Error::SharingViolation),
                },
            ) => busy = Some(e),
            Err(_) => {}
        }
    }
    match (any_reader, busy) {
        (false, _) => Err(DeviceError::NoReader),
        (true, Some(e)) => Err(device_error(e)),
        (true, None) => Err(DeviceError::NotFound { serial }),
    }
}

/// Reads the P-256 key in `slot` from its certificate (or the card's metadata, on firmware
/// that has it) without the PIN. `None` when the slot is empty.
pub fn read_slot(yk: &mut YubiKey, slot: SlotId) -> Result<Option<SlotKey>, DeviceError> {
    match Certificate::read(yk, slot) {
        Ok(cert) => {
            let tbs = cert.cert.tbs_certificate();
            let spki = tbs.subject_public_key_info();
            let Ok(public_key) = PublicKey::from_sec1(spki.subject_public_key.raw_bytes()) else {
                return Err(DeviceError::Device {
                    detail: format!("slot {slot} holds a key that is not P-256"),
                });
            };
            let mut policy = policy_from_extension(&cert.cert);
            if policy.pin.is_none()
                && let Ok(meta) = piv::metadata(yk, slot)
                && let Some((p, t)) = meta.policy
            {
                policy = SlotPolicy {
                    pin: Some(p),
                    touch: Some(t),
                };
            }
            Ok(Some(SlotKey {
                public_key,
                policy,
                subject: Some(tbs.subject().to_string()),
            }))
        }
        Err(yubikey::Error::PcscError { inner: Some(p) }) => Err(pcsc_error(p)),
        Err(_) => {
            // A key without a certificate: only firmware with GET METADATA can show it.
            let Ok(meta) = piv::metadata(yk, slot) else {
                return Ok(None);
            };
            let Some(spki) = meta.public else {
                return Ok(None);
            };
            let Ok(public_key) = PublicKey::from_sec1(spki.subject_public_key.raw_bytes()) else {
                return Ok(None);
            };
            Ok(Some(SlotKey {
                public_key,
                policy: meta
                    .policy
                    .map(|(p, t)| SlotPolicy {
                        pin: Some(p),
                        touch: Some(t),
                    })
                    .unwrap_or_default(),
                subject: None,
            }))
        }
    }
}

fn policy_from_extension(cert: &x509_cert::Certificate) -> SlotPolicy {
    let Some(exts) = cert.tbs_certificate().extensions() else {
        return SlotPolicy::default();
    };
    let mut found = exts.iter().filter(|e| e.extn_id == POLICY_EXTENSION_OID);
    // A duplicated extension is ambiguous: trust neither copy.
    let (Some(ext), None) = (found.next(), found.next()) else {
        return SlotPolicy::default();
    };
    let v = ext.extn_value.as_bytes();
    if v.len() < 2 {
        return SlotPolicy::default();
    }
    SlotPolicy {
        pin: match v[0] {
            1 => Some(PinPolicy::Never),
            2 => Some(PinPolicy::Once),
            3 => Some(PinPolicy::Always),
            _ => None,
        },
        touch: match v[1] {
            1 => Some(TouchPolicy::Never),
            2 => Some(TouchPolicy::Always),
            3 => Some(TouchPolicy::Cached),
            _ => None,
        },
    }
}

/// Role keys on a YubiKey's PIV application.
pub struct PivDevice {
    serial: u32,
    slots: SlotMap,
    pins: Box<dyn PinSource + Send>,
    label: String,
    keys: BTreeMap<Role, SlotKey>,
    /// Whether a verified session outlives its operation (see the module docs), and that
    /// session while it does.
    holding: bool,
    held: Option<YubiKey>,
}

impl fmt::Debug for PivDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PivDevice")
            .field("serial", &self.serial)
            .field("slots", &self.slots)
            .finish_non_exhaustive()
    }
}

impl PivDevice {
    /// Finds the YubiKey with `serial` and reads its role slots (no PIN needed).
    pub fn open(
        serial: u32,
        slots: SlotMap,
        pins: Box<dyn PinSource + Send>,
    ) -> Result<Self, DeviceError> {
        let mut yk = connect(serial)?;
        let label = format!(
            "YubiKey {} (firmware {}, reader {})",
            serial,
            yk.version(),
            yk.name()
        );
        let mut keys = BTreeMap::new();
        for (role, _) in slots.iter() {
            if let Some(k) = read_slot(&mut yk, slots.slot_id(role))? {
                keys.insert(role, k);
            }
        }
        Ok(Self {
            serial,
            slots,
            pins,
            label,
            keys,
            holding: false,
            held: None,
        })
    }

    #[must_use]
    pub fn serial(&self) -> u32 {
        self.serial
    }

    #[must_use]
    pub fn slots(&self) -> &SlotMap {
        &self.slots
    }

    /// The key and policies of `role` as read when the device was opened.
    pub fn slot_key(&self, role: Role) -> Result<&SlotKey, DeviceError> {
        self.keys.get(&role).ok_or(DeviceError::NoKey {
            role,
            slot: Some(self.slots.slot(role)),
        })
    }

    /// A session for one private-key operation with `role`: the card still holds the key read
    /// at open (it may have been re-provisioned since), and the PIN is verified. The flag says
    /// the session was a held one whose PIN was verified for an earlier operation.
    fn unlocked_session(
        &mut self,
        role: Role,
        purpose: &str,
    ) -> Result<(YubiKey, bool), DeviceError> {
        let expected = self.slot_key(role)?.public_key;
        let slot = self.slots.slot(role);
        let once = self.keys[&role].policy.pin == Some(PinPolicy::Once);
        let reused = self.held.take().filter(|_| self.holding && once);
        let verified = reused.is_some();
        let mut yk = match reused {
            Some(yk) => yk,
            None => connect(self.serial)?,
        };
        match read_slot(&mut yk, self.slots.slot_id(role))? {
            Some(k) if k.public_key == expected => {}
            _ => {
                return Err(DeviceError::Device {
                    detail: format!(
                        "the {role} key in slot {slot:02x} changed since the YubiKey was opened"
                    ),
                });
            }
        }
        if !verified {
            self.verify_pin(&mut yk, role, purpose, true)?;
        }
        if self.keys[&role].policy.needs_touch() {
            self.pins.touch(self.serial, purpose);
        }
        Ok((yk, verified))
    }

    /// Asks for the PIN and verifies it. `count` reads the tries left first; in a session
    /// whose PIN is already verified the count cannot be read (the card answers "verified",
    /// and some cards keep that answer across a re-select), so it is not shown.
    fn verify_pin(
        &mut self,
        yk: &mut YubiKey,
        role: Role,
        purpose: &str,
        count: bool,
    ) -> Result<(), DeviceError> {
        let slot = self.slots.slot(role);
        let tries_left = if count {
            let tries = yk.get_pin_retries().map_err(device_error)?;
            if tries == 0 {
                return Err(DeviceError::PinBlocked);
            }
            Some(tries)
        } else {
            None
        };
        let pin = self.pins.pin(&PinRequest {
            kind: SecretKind::Pin,
            serial: self.serial,
            purpose: format!("{purpose} with the {role} key (slot {slot:02x})"),
            tries_left,
        })?;
        yk.verify_pin(pin.as_bytes()).map_err(device_error)
    }

    /// Runs `op` in an unlocked session. A card that wants the PIN again for this slot even
    /// in a held session (slot 9c is "PIN always" on cards that follow the PIV standard to
    /// the letter, whatever policy the certificate records) refuses with an authentication
    /// error: then the PIN is asked for and the operation tried once more.
    fn with_session<T>(
        &mut self,
        role: Role,
        purpose: &str,
        op: impl Fn(&mut YubiKey) -> Result<T, yubikey::Error>,
    ) -> Result<T, DeviceError> {
        let (mut yk, reused) = self.unlocked_session(role, purpose)?;
        let out = match op(&mut yk) {
            Err(yubikey::Error::AuthenticationError) if reused => {
                self.verify_pin(&mut yk, role, purpose, false)?;
                op(&mut yk)
            }
            other => other,
        }
        .map_err(device_error)?;
        self.finished(yk);
        Ok(out)
    }

    /// The end of one operation's use of `yk`: kept while a session is held, else dropped,
    /// which resets the card.
    fn finished(&mut self, yk: YubiKey) {
        if self.holding {
            self.held = Some(yk);
        }
    }
}

impl KeyDevice for PivDevice {
    fn read_pin_ledger(&mut self) -> Result<Option<Vec<u8>>, DeviceError> {
        // A card that pcscd is just powering down or up answers a first read with a transient
        // error; the ledger decides whether pins are usable, so it is read again before failing.
        let mut last = None;
        for attempt in 0..3 {
            if attempt > 0 {
                std::thread::sleep(std::time::Duration::from_millis(300));
            }
            let mut yk = match self.held.take() {
                Some(yk) => yk,
                None => match connect(self.serial) {
                    Ok(yk) => yk,
                    Err(e) => {
                        last = Some(e);
                        continue;
                    }
                },
            };
            let read = yk.fetch_object(PIN_LEDGER_OBJECT);
            self.finished(yk);
            match read {
                Ok(b) if b.is_empty() => return Ok(None),
                Ok(b) => return Ok(Some(b.to_vec())),
                Err(yubikey::Error::NotFound) => return Ok(None),
                Err(e) => last = Some(device_error(e)),
            }
        }
        Err(last.unwrap_or(DeviceError::Device {
            detail: "the pin ledger could not be read".to_owned(),
        }))
    }

    fn write_pin_ledger(&mut self, bytes: &[u8], purpose: &str) -> Result<(), DeviceError> {
        let (mut yk, _) = self.unlocked_session(Role::Manifest, purpose)?;
        if !provision::has_default_management_key(&mut yk) {
            provision::protected_management_key(&mut yk)?;
        }
        yk.save_object(PIN_LEDGER_OBJECT, &mut bytes.to_vec())
            .map_err(device_error)?;
        self.finished(yk);
        Ok(())
    }

    fn hold_session(&mut self, held: bool) {
        self.holding = held;
        if !held {
            self.held = None;
        }
    }

    fn info(&self) -> DeviceInfo {
        DeviceInfo {
            kind: DeviceKind::Yubikey,
            serial: Some(self.serial),
            label: self.label.clone(),
        }
    }

    fn public_key(&mut self, role: Role) -> Result<PublicKey, DeviceError> {
        Ok(self.slot_key(role)?.public_key)
    }

    fn sign(
        &mut self,
        role: Role,
        purpose: &str,
        message: &[u8],
    ) -> Result<Signature, DeviceError> {
        // The card signs a digest it is given; ECDSA P-256/SHA-256 over `message` means
        // hashing here and sending the 32-byte digest.
        let digest: [u8; 32] = Sha256::digest(message).into();
        self.sign_prehashed(role, purpose, &digest)
    }

    fn sign_prehashed(
        &mut self,
        role: Role,
        purpose: &str,
        digest: &[u8; 32],
    ) -> Result<Signature, DeviceError> {
        use p256::ecdsa::signature::hazmat::PrehashVerifier;
        let public_key = self.slot_key(role)?.public_key;
        let slot = self.slots.slot_id(role);
        let der = self.with_session(role, purpose, |yk| {
            piv::sign_data(yk, digest, AlgorithmId::EccP256, slot)
        })?;
        let sig = p256::ecdsa::Signature::from_der(&der).map_err(|_| DeviceError::Device {
            detail: "the card returned a malformed signature".to_owned(),
        })?;
        // Low-S form, so a signature has one encoding in the objects that carry it.
        let sig = sig.normalize_s();
        // A signature that does not verify against the slot's key must never leave here.
        p256::ecdsa::VerifyingKey::from(public_key.to_p256())
            .verify_prehash(digest, &sig)
            .map_err(|_| DeviceError::Device {
                detail: format!(
                    "the card's {role} signature does not verify against the slot's public key"
                ),
            })?;
        Ok(Signature::from_ecdsa(&sig))
    }

    fn ecdh(
        &mut self,
        role: Role,
        purpose: &str,
        peer: &p256::PublicKey,
    ) -> Result<SharedSecret, DeviceError> {
        let point = peer.to_sec1_point(false);
        let slot = self.slots.slot_id(role);
        let shared = self.with_session(role, purpose, |yk| {
            piv::decrypt_data(yk, point.as_bytes(), AlgorithmId::EccP256, slot)
        })?;
        let x: Zeroizing<[u8; 32]> = Zeroizing::new(shared.as_slice().try_into().map_err(
            |_| DeviceError::Device {
                detail: format!("the card returned a {}-byte shared secret", shared.len()),
            },
        )?);
        Ok(SharedSecret::new(*x))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every PC/SC failure an operator can cause maps to a message that says what to do.
    #[test]
    fn pcsc_failures_are_told_apart() {
        let e = |p| device_error(yubikey::Error::PcscError { inner: Some(p) });
        assert_eq!(e(pcsc::Error::RemovedCard), DeviceError::CardRemoved);
        assert_eq!(e(pcsc::Error::NoSmartcard), DeviceError::CardRemoved);
        assert_eq!(e(pcsc::Error::NoReadersAvailable), DeviceError::NoReader);
        assert!(matches!(
            e(pcsc::Error::NoService),
            DeviceError::PcscUnavailable { .. }
        ));
        assert!(
            e(pcsc::Error::SharingViolation)
                .to_string()
                .contains("another program")
        );
        assert_eq!(
            device_error(yubikey::Error::WrongPin { tries: 2 }),
            DeviceError::WrongPin { tries_left: 2 }
        );
        assert_eq!(
            device_error(yubikey::Error::WrongPin { tries: 0 }),
            DeviceError::PinBlocked
        );
        assert_eq!(
            provision::puk_error(yubikey::Error::WrongPin { tries: 1 }),
            DeviceError::WrongPuk { tries_left: 1 }
        );
        assert!(DeviceError::CardRemoved.hint().contains("reinsert"));
    }

    #[test]
    fn provisioning_records_and_secret_rules() {
        assert_eq!(
            provision::recorded_mgm_algorithm("CN=x,OU=tessera 0.1.0 mgm=aes192,O=y"),
            Some("aes192")
        );
        assert_eq!(provision::recorded_mgm_algorithm("CN=x"), None);
        assert!(provision::check_new_secret(SecretKind::NewPin, FACTORY_PIN).is_err());
        assert!(provision::check_new_secret(SecretKind::NewPuk, FACTORY_PUK).is_err());
        assert!(provision::check_new_secret(SecretKind::NewPin, "12345").is_err());
        assert!(provision::check_new_secret(SecretKind::NewPin, "123456789").is_err());
        assert!(provision::check_new_secret(SecretKind::NewPin, "246810").is_ok());
    }
}
