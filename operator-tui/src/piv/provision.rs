//! Provisioning: from a factory-fresh (or Tessera-provisioned) YubiKey to role keys, never
//! leaving a factory default behind.
//!
//! [`plan`] reads the card and says what will change; nothing is written until [`execute`]
//! runs with that plan. The order in `execute` is chosen so an interruption never strands the
//! key: the random management key is set (PIN-protected) first, so a re-run can always
//! authenticate with the PIN; keys and certificates next; the PUK and the PIN last.

// "YubiKey" is a product name, not an item to link.
#![allow(clippy::doc_markdown)]

use std::fmt;

use serde::Serialize;
use tessera_core::age_share::{PivP256Recipient, plugin_identity};
use tessera_core::device::DeviceError;
use tessera_core::keys::{PublicKey, Role};
use x509_cert::der::asn1::OctetString;
use x509_cert::ext::Extension;
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::Validity;
use yubikey::piv::{self, AlgorithmId};
use yubikey::{Certificate, MgmAlgorithmId, MgmKey, MgmType, PinPolicy, TouchPolicy, YubiKey};
use zeroize::Zeroizing;

use super::{
    FACTORY_PIN, FACTORY_PUK, POLICY_EXTENSION_OID, PinRequest, PinSource, SecretKind, SlotMap,
    device_error, read_slot,
};

/// The PIV data object that holds the PIN-protected management key (tag 0x88 { 0x89 key }),
/// readable only after PIN verification. Same layout as ykman and yubico-piv-tool.
const PROTECTED_DATA_OBJECT: u32 = 0x005f_c109;
const TAG_PROTECTED: u8 = 0x88;
const TAG_PROTECTED_MGM: u8 = 0x89;

/// The certificate subject organisation under which age-plugin-yubikey lists a slot as one of
/// its identities (`--list`) and trusts the policy extension instead of asking for an
/// attestation.
const AGE_PLUGIN_ORGANIZATION: &str = "age-plugin-yubikey";

/// What the caller wants.
#[derive(Debug, Clone)]
pub struct ProvisionOptions {
    pub roles: Vec<Role>,
    pub slots: SlotMap,
    pub pin_policy: PinPolicy,
    pub touch_policy: TouchPolicy,
    /// Replace keys already in the role slots.
    pub force: bool,
}

impl ProvisionOptions {
    /// What the app provisions: every role in `slots`, PIN once, touch always (design.md's
    /// defaults), and never replacing a key already there; that stays a deliberate
    /// `tessera key provision --force`.
    #[must_use]
    pub fn app(slots: SlotMap) -> Self {
        Self {
            roles: Role::ALL.to_vec(),
            slots,
            pin_policy: PinPolicy::Once,
            touch_policy: TouchPolicy::Always,
            force: false,
        }
    }
}

/// How the card's management key is reached now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CurrentManagementKey {
    /// The published factory key: anyone can change the card.
    FactoryDefault,
    /// Stored on the card behind the PIN (set by Tessera or ykman).
    PinProtected,
}

#[derive(Debug, Clone, Serialize)]
pub struct PlannedSlot {
    pub role: Role,
    pub slot: String,
    /// Fingerprint of a key this step destroys.
    pub replaces: Option<String>,
}

/// What provisioning will do, shown before anything changes.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub serial: u32,
    pub firmware: String,
    pub keys: Vec<PlannedSlot>,
    pub pin_policy: &'static str,
    pub touch_policy: &'static str,
    pub management_key: CurrentManagementKey,
    /// The algorithm of the new random management key; `aes192` can still fall back to `3des`
    /// if the card refuses AES.
    pub new_management_key: Option<&'static str>,
    pub change_pin: bool,
    pub change_puk: bool,
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "Provisioning plan for YubiKey {} (firmware {}):",
            self.serial, self.firmware
        )?;
        let mut n = 0;
        let mut step = |f: &mut fmt::Formatter<'_>, s: String| {
            n += 1;
            writeln!(f, "  {n}. {s}")
        };
        if let Some(alg) = self.new_management_key {
            step(
                f,
                format!(
                    "replace the factory management key with a random {alg} key stored on the card behind the PIN"
                ),
            )?;
        }
        for k in &self.keys {
            let replaces = k
                .replaces
                .as_ref()
                .map(|fp| format!(", DESTROYING the key {fp} there"))
                .unwrap_or_default();
            step(
                f,
                format!(
                    "generate a P-256 {} key on the card in slot {} (PIN {}, touch {}){replaces}, and a self-signed certificate recording those policies",
                    k.role, k.slot, self.pin_policy, self.touch_policy
                ),
            )?;
        }
        if self.change_puk {
            step(f, "replace the factory PUK with a new PUK".to_owned())?;
        }
        if self.change_pin {
            step(f, "replace the factory PIN with a new PIN".to_owned())?;
        }
        Ok(())
    }
}

/// A key made by [`execute`].
#[derive(Debug, Clone, Serialize)]
pub struct ProvisionedKey {
    pub role: Role,
    pub slot: String,
    pub public_key: String,
    pub fingerprint: String,
    /// For the Share key: the age recipient and age-plugin-yubikey identity.
    pub age_recipient: Option<String>,
    pub age_identity: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub serial: u32,
    pub management_key_algorithm: &'static str,
    pub keys: Vec<ProvisionedKey>,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "YubiKey {} provisioned; management key {} (PIN-protected)",
            self.serial, self.management_key_algorithm
        )?;
        for k in &self.keys {
            writeln!(
                f,
                "  {:<8} slot {}  {}",
                k.role.as_str(),
                k.slot,
                k.fingerprint
            )?;
            if let Some(r) = &k.age_recipient {
                writeln!(f, "           age recipient {r}")?;
            }
            if let Some(i) = &k.age_identity {
                writeln!(f, "           age identity  {i}")?;
            }
        }
        Ok(())
    }
}

#[must_use]
pub fn pin_policy_str(p: PinPolicy) -> &'static str {
    super::SlotPolicy {
        pin: Some(p),
        touch: None,
    }
    .pin_str()
}

#[must_use]
pub fn touch_policy_str(t: TouchPolicy) -> &'static str {
    super::SlotPolicy {
        pin: None,
        touch: Some(t),
    }
    .touch_str()
}

#[must_use]
pub fn mgm_algorithm_str(a: MgmAlgorithmId) -> &'static str {
    match a {
        MgmAlgorithmId::ThreeDes => "3des",
        MgmAlgorithmId::Aes128 => "aes128",
        MgmAlgorithmId::Aes192 => "aes192",
        MgmAlgorithmId::Aes256 => "aes256",
    }
}

/// AES management keys arrived in YubiKey firmware 5.4; older keys only take 3DES.
fn preferred_mgm_algorithm(yk: &YubiKey) -> MgmAlgorithmId {
    let v = yk.version();
    if (v.major, v.minor) >= (5, 4) {
        MgmAlgorithmId::Aes192
    } else {
        MgmAlgorithmId::ThreeDes
    }
}

/// True when the card accepts the factory management key. Failed management-key
/// authentications have no retry counter, so probing costs nothing.
pub fn has_default_management_key(yk: &mut YubiKey) -> bool {
    MgmKey::get_default(yk).is_ok_and(|k| yk.authenticate(&k).is_ok())
        || MgmKey::from_bytes(DEFAULT_MGM_BYTES, Some(MgmAlgorithmId::ThreeDes))
            .is_ok_and(|k| yk.authenticate(&k).is_ok())
}

/// The published factory management key bytes (for 3DES and AES-192 alike).
const DEFAULT_MGM_BYTES: [u8; 24] = [
    1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8,
];

/// Reads the card and plans provisioning for `opts`. Changes nothing.
pub fn plan(yk: &mut YubiKey, opts: &ProvisionOptions) -> Result<Plan, DeviceError> {
    if opts.roles.is_empty() {
        return Err(DeviceError::Device {
            detail: "no roles to provision".to_owned(),
        });
    }
    let config = yk.config().map_err(device_error)?;
    if config.puk_blocked {
        return Err(DeviceError::PukBlocked);
    }
    let management_key = if has_default_management_key(yk) {
        CurrentManagementKey::FactoryDefault
    } else if config.mgm_type == MgmType::Protected || tessera_provisioned(yk, &opts.slots)? {
        CurrentManagementKey::PinProtected
    } else {
        return Err(DeviceError::Device {
            detail: "the management key is neither the factory default nor PIN-protected, so \
                     Tessera cannot change this key; reset its PIV application (`ykman piv \
                     reset`, destroying its PIV keys) and provision again"
                .to_owned(),
        });
    };
    let mut keys = Vec::new();
    for role in &opts.roles {
        let slot = opts.slots.slot_id(*role);
        let existing = read_slot(yk, slot)?;
        if let Some(k) = &existing
            && !opts.force
        {
            return Err(DeviceError::Device {
                detail: format!(
                    "slot {slot} already holds a key ({}); replacing it destroys it for good, which only `tessera key provision --force` does",
                    k.public_key.fingerprint()
                ),
            });
        }
        keys.push(PlannedSlot {
            role: *role,
            slot: format!("{:02x}", opts.slots.slot(*role)),
            replaces: existing.map(|k| k.public_key.fingerprint()),
        });
    }
    let fresh = management_key == CurrentManagementKey::FactoryDefault;
    Ok(Plan {
        serial: yk.serial().0,
        firmware: yk.version().to_string(),
        keys,
        pin_policy: pin_policy_str(opts.pin_policy),
        touch_policy: touch_policy_str(opts.touch_policy),
        management_key,
        new_management_key: fresh.then(|| mgm_algorithm_str(preferred_mgm_algorithm(yk))),
        change_pin: fresh,
        change_puk: fresh,
    })
}

/// True when a role slot holds a certificate Tessera wrote: Tessera stores its management key
/// PIN-protected even where the card's admin data cannot say so.
fn tessera_provisioned(yk: &mut YubiKey, slots: &SlotMap) -> Result<bool, DeviceError> {
    for (role, _) in slots.iter() {
        if let Some(k) = read_slot(yk, slots.slot_id(role))?
            && k.subject
                .as_deref()
                .and_then(recorded_mgm_algorithm)
                .is_some()
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Checks a new PIN or PUK: 6 to 8 ASCII characters, never the factory value.
pub fn check_new_secret(kind: SecretKind, secret: &str) -> Result<(), DeviceError> {
    let (factory, what) = match kind {
        SecretKind::NewPuk | SecretKind::Puk => (FACTORY_PUK, "PUK"),
        SecretKind::NewPin | SecretKind::Pin => (FACTORY_PIN, "PIN"),
    };
    if !(6..=8).contains(&secret.len()) || !secret.is_ascii() {
        return Err(DeviceError::Device {
            detail: format!("the new {what} must be 6 to 8 ASCII characters"),
        });
    }
    if secret == factory {
        return Err(DeviceError::Device {
            detail: format!("the new {what} must not be the factory default"),
        });
    }
    Ok(())
}

fn ask_new(
    pins: &mut dyn PinSource,
    kind: SecretKind,
    serial: u32,
    purpose: &str,
) -> Result<Zeroizing<String>, DeviceError> {
    let s = pins.pin(&PinRequest {
        kind,
        serial,
        purpose: purpose.to_owned(),
        tries_left: None,
    })?;
    check_new_secret(kind, &s)?;
    Ok(s)
}

/// The PIN-protected management key, read after PIN verification. Uses the card's metadata to
/// learn the algorithm and, on cards without GET METADATA, tries each algorithm whose key size
/// matches (a failed management-key authentication costs nothing).
pub fn protected_management_key(yk: &mut YubiKey) -> Result<MgmKey, DeviceError> {
    if let Ok(k) = MgmKey::get_protected(yk)
        && yk.authenticate(&k).is_ok()
    {
        return Ok(k);
    }
    let data = yk
        .fetch_object(PROTECTED_DATA_OBJECT)
        .map_err(device_error)?;
    let inner = tlv_value(&data, TAG_PROTECTED).ok_or_else(no_protected_key)?;
    let key = Zeroizing::new(
        tlv_value(inner, TAG_PROTECTED_MGM)
            .ok_or_else(no_protected_key)?
            .to_vec(),
    );
    for alg in [
        MgmAlgorithmId::Aes192,
        MgmAlgorithmId::ThreeDes,
        MgmAlgorithmId::Aes128,
        MgmAlgorithmId::Aes256,
    ] {
        if let Ok(k) = MgmKey::from_bytes(&key[..], Some(alg))
            && yk.authenticate(&k).is_ok()
        {
            return Ok(k);
        }
    }
    Err(DeviceError::Device {
        detail: "the PIN-protected management key stored on the card is not accepted by it"
            .to_owned(),
    })
}

fn no_protected_key() -> DeviceError {
    DeviceError::Device {
        detail: "the card has no PIN-protected management key".to_owned(),
    }
}

/// The value of the first TLV in `buf` if its tag is `tag` (BER lengths up to two bytes).
fn tlv_value(buf: &[u8], tag: u8) -> Option<&[u8]> {
    let (&t, rest) = buf.split_first()?;
    if t != tag {
        return None;
    }
    let (&l0, rest) = rest.split_first()?;
    let (len, rest) = match l0 {
        0..=0x7f => (usize::from(l0), rest),
        0x81 => (usize::from(*rest.first()?), &rest[1..]),
        0x82 => (
            usize::from(u16::from_be_bytes([*rest.first()?, *rest.get(1)?])),
            rest.get(2..)?,
        ),
        _ => return None,
    };
    rest.get(..len)
}

fn random_serial() -> Result<SerialNumber, DeviceError> {
    use rand::TryRng;
    let mut bytes = [0u8; 16];
    rand::rngs::SysRng
        .try_fill_bytes(&mut bytes)
        .map_err(|_| DeviceError::Device {
            detail: "the operating system's random number generator failed".to_owned(),
        })?;
    // Positive and without a leading zero byte, as DER INTEGER serials must be.
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    SerialNumber::new(&bytes).map_err(|e| DeviceError::Device {
        detail: format!("certificate serial: {e}"),
    })
}

fn cert_subject(role: Role, mgm: MgmAlgorithmId) -> Result<Name, DeviceError> {
    // The Share key is an age identity: under age-plugin-yubikey's organisation name the
    // plugin lists it and reads its policies from the extension. The other roles are not for
    // decryption and stay out of the plugin's default listing.
    let org = if role == Role::Share {
        AGE_PLUGIN_ORGANIZATION
    } else {
        "tessera"
    };
    let s = format!(
        "CN=tessera {role} key,OU=tessera {} mgm={},O={org}",
        env!("CARGO_PKG_VERSION"),
        mgm_algorithm_str(mgm)
    );
    s.parse().map_err(|e| DeviceError::Device {
        detail: format!("certificate subject {s:?}: {e}"),
    })
}

/// The management-key algorithm Tessera recorded in a slot certificate's subject, for cards
/// that cannot report it themselves.
#[must_use]
pub fn recorded_mgm_algorithm(subject: &str) -> Option<&'static str> {
    let rest = subject.split("mgm=").nth(1)?;
    ["aes192", "3des", "aes128", "aes256"]
        .into_iter()
        .find(|a| rest.starts_with(a))
}

/// Runs `plan`. The PIN (and for a fresh key, new PIN and PUK) come from `pins`.
pub fn execute(
    yk: &mut YubiKey,
    plan: &Plan,
    opts: &ProvisionOptions,
    pins: &mut dyn PinSource,
) -> Result<Outcome, DeviceError> {
    let serial = yk.serial().0;
    if serial != plan.serial {
        return Err(DeviceError::Device {
            detail: "the plan was made for another YubiKey".to_owned(),
        });
    }
    let tries = yk.get_pin_retries().map_err(device_error)?;
    if tries == 0 {
        return Err(DeviceError::PinBlocked);
    }
    // All new secrets are asked and checked before anything changes.
    let new_puk = if plan.change_puk {
        Some(ask_new(
            pins,
            SecretKind::NewPuk,
            serial,
            "replace the factory PUK",
        )?)
    } else {
        None
    };
    let new_pin = if plan.change_pin {
        Some(ask_new(
            pins,
            SecretKind::NewPin,
            serial,
            "replace the factory PIN",
        )?)
    } else {
        None
    };
    let pin = pins.pin(&PinRequest {
        kind: SecretKind::Pin,
        serial,
        purpose: if plan.change_pin {
            format!("provision this key (the factory PIN is {FACTORY_PIN})")
        } else {
            "provision this key".to_owned()
        },
        tries_left: Some(tries),
    })?;
    if !plan.change_pin && pin.as_str() == FACTORY_PIN {
        return Err(DeviceError::Device {
            detail: "the PIN is still the factory default: change it first with `tessera key change-pin`"
                .to_owned(),
        });
    }
    yk.verify_pin(pin.as_bytes()).map_err(device_error)?;

    let mgm_alg = match plan.management_key {
        CurrentManagementKey::FactoryDefault => {
            authenticate_default(yk)?;
            set_random_management_key(yk, preferred_mgm_algorithm(yk))?
        }
        CurrentManagementKey::PinProtected => protected_management_key(yk)?.algorithm_id(),
    };
    // Re-authenticate through the stored copy: proves the PIN-protected key works before
    // anything depends on it.
    // (`protected_management_key` leaves the card authenticated with it.)
    protected_management_key(yk)?;

    let mut keys = Vec::new();
    for role in &opts.roles {
        let slot = opts.slots.slot_id(*role);
        let spki = piv::generate(
            yk,
            slot,
            AlgorithmId::EccP256,
            opts.pin_policy,
            opts.touch_policy,
        )
        .map_err(device_error)?;
        let public_key =
            PublicKey::from_sec1(spki.subject_public_key.raw_bytes()).map_err(|_| {
                DeviceError::Device {
                    detail: "the card generated a key that is not P-256".to_owned(),
                }
            })?;
        // The certificate is signed by the new key itself, so its PIN and touch policies
        // apply now; slot 9c asks for the PIN right before every signature whatever the
        // policy says.
        yk.verify_pin(pin.as_bytes()).map_err(device_error)?;
        if !matches!(opts.touch_policy, TouchPolicy::Never) {
            pins.touch(serial, &format!("sign the {role} slot certificate"));
        }
        let extension = Extension {
            extn_id: POLICY_EXTENSION_OID,
            critical: false,
            extn_value: OctetString::new(vec![opts.pin_policy.into(), opts.touch_policy.into()])
                .expect("two bytes fit"),
        };
        Certificate::generate_self_signed::<_, p256::NistP256>(
            yk,
            slot,
            random_serial()?,
            Validity::infinity().map_err(|e| DeviceError::Device {
                detail: format!("certificate validity: {e}"),
            })?,
            cert_subject(*role, mgm_alg)?,
            spki,
            |b| b.add_extension(extension),
        )
        .map_err(device_error)?;
        // What is in the slot now must be the key just generated.
        match read_slot(yk, slot)? {
            Some(k) if k.public_key == public_key => {}
            _ => {
                return Err(DeviceError::Device {
                    detail: format!("slot {slot} does not hold the key just generated"),
                });
            }
        }
        let recipient = (*role == Role::Share).then(|| PivP256Recipient::new(public_key));
        keys.push(ProvisionedKey {
            role: *role,
            slot: format!("{:02x}", opts.slots.slot(*role)),
            public_key: public_key.to_hex(),
            fingerprint: public_key.fingerprint(),
            age_recipient: recipient.map(|r| r.to_string()),
            age_identity: recipient.map(|r| plugin_identity(serial, opts.slots.slot(*role), &r)),
        });
    }

    if let Some(new_puk) = &new_puk {
        yk.change_puk(FACTORY_PUK.as_bytes(), new_puk.as_bytes())
            .map_err(puk_error)?;
    }
    if let Some(new_pin) = &new_pin {
        yk.change_pin(pin.as_bytes(), new_pin.as_bytes())
            .map_err(device_error)?;
    }
    Ok(Outcome {
        serial,
        management_key_algorithm: mgm_algorithm_str(mgm_alg),
        keys,
    })
}

fn authenticate_default(yk: &mut YubiKey) -> Result<(), DeviceError> {
    if let Ok(k) = MgmKey::get_default(yk)
        && yk.authenticate(&k).is_ok()
    {
        return Ok(());
    }
    let k = MgmKey::from_bytes(DEFAULT_MGM_BYTES, Some(MgmAlgorithmId::ThreeDes))
        .map_err(device_error)?;
    yk.authenticate(&k).map_err(device_error)
}

/// Sets a fresh random management key, stored on the card behind the PIN; AES-192 when the
/// card takes it, else 3DES. Returns the algorithm used.
fn set_random_management_key(
    yk: &mut YubiKey,
    preferred: MgmAlgorithmId,
) -> Result<MgmAlgorithmId, DeviceError> {
    let mut candidates = vec![preferred];
    if preferred != MgmAlgorithmId::ThreeDes {
        candidates.push(MgmAlgorithmId::ThreeDes);
    }
    let mut last = None;
    for alg in candidates {
        let key = MgmKey::generate(alg, &mut rand::rngs::SysRng).map_err(device_error)?;
        match key.set_protected(yk) {
            Ok(()) => return Ok(alg),
            Err(e) => {
                last = Some(e);
                // A refused SET MANAGEMENT KEY drops the authentication; restore it before
                // trying the next algorithm.
                authenticate_default(yk)?;
            }
        }
    }
    Err(device_error(last.expect("at least one candidate")))
}

/// PUK failures reported as PUK failures, not as PIN ones.
#[must_use]
pub fn puk_error(e: yubikey::Error) -> DeviceError {
    match e {
        yubikey::Error::WrongPin { tries: 0 } | yubikey::Error::PinLocked => {
            DeviceError::PukBlocked
        }
        yubikey::Error::WrongPin { tries } => DeviceError::WrongPuk { tries_left: tries },
        other => device_error(other),
    }
}
