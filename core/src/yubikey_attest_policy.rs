//! What a namespace demands of its members' YubiKey attestations, and the one function that
//! decides whether a member descriptor meets it ([`check_member`]).
//!
//! Who could lie: the coordinator (swapping a descriptor for one with software keys), a member
//! (keys generated in software, or weaker PIN/touch policies than the runbook), the USB stick
//! carrying descriptors (bytes changed in flight). None of them can forge Yubico's signature
//! over the slot certificate, so each lie ends here as a refusal naming the member and why.

use std::fmt::{self, Write as _};

use time::OffsetDateTime;

use crate::keys::Role;
use crate::objects::MemberDescriptor;
use crate::yubikey_attest::{
    Firmware, PinPolicy, PivAttestationError, SlotAttestation, TouchPolicy, YubicoTrust,
    verify_slot,
};

/// A namespace's attestation policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttestationPolicy {
    /// Production: every member key must carry a valid attestation. Dev: a descriptor without
    /// one is accepted (and shown as unattested); one that carries an attestation must still
    /// verify and meet the minimums.
    pub required: bool,
    /// Minimum PIN policy for every role key.
    pub min_pin_policy: PinPolicy,
    /// Minimum touch policy for the Share key (the key that releases a share).
    pub min_share_touch: TouchPolicy,
    /// Minimum firmware version, if any.
    pub min_firmware: Option<Firmware>,
}

impl AttestationPolicy {
    /// The production default: attestation required, PIN at least once for every key, touch at
    /// least cached for the Share key, firmware at least 5.7.0 (Yubico's advisory YSA-2024-03:
    /// ECDSA keys on earlier YubiKey 5 firmware are exposed to a side channel by an attacker
    /// holding the key).
    #[must_use]
    pub fn production() -> Self {
        Self {
            required: true,
            min_pin_policy: PinPolicy::Once,
            min_share_touch: TouchPolicy::Cached,
            min_firmware: Some(Firmware(5, 7, 0)),
        }
    }

    /// The dev default: attestation optional, no minimums.
    #[must_use]
    pub fn dev() -> Self {
        Self {
            required: false,
            min_pin_policy: PinPolicy::Never,
            min_share_touch: TouchPolicy::Never,
            min_firmware: None,
        }
    }

    /// One line for reports: "required; PIN >= once; share touch >= cached; firmware >= 5.7.0".
    #[must_use]
    pub fn describe(&self) -> String {
        format!(
            "{}; PIN >= {}; share touch >= {}; firmware >= {}",
            if self.required {
                "required"
            } else {
                "optional (dev)"
            },
            self.min_pin_policy,
            self.min_share_touch,
            self.min_firmware
                .map_or_else(|| "any".to_owned(), |f| f.to_string())
        )
    }
}

/// Why a member descriptor was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reason {
    /// The policy requires an attestation and the descriptor carries none.
    Missing,
    /// A role key has no slot certificate in the attestation.
    RoleNotAttested { role: Role },
    /// The attestation carries a certificate for a role the descriptor does not list, or two
    /// for one role.
    UnexpectedRole { role: Role },
    /// The chain or the certificate itself did not verify.
    Invalid {
        role: Role,
        error: PivAttestationError,
    },
    /// The attested key is not the descriptor's key.
    KeyMismatch { role: Role },
    /// The attestation is for another slot than the descriptor names.
    WrongSlot {
        role: Role,
        descriptor: Option<u8>,
        attested: u8,
    },
    /// The attestation is from another YubiKey than the descriptor names.
    WrongSerial {
        role: Role,
        descriptor: Option<u32>,
        attested: u32,
    },
    PinPolicy {
        role: Role,
        attested: PinPolicy,
        minimum: PinPolicy,
    },
    TouchPolicy {
        role: Role,
        attested: TouchPolicy,
        minimum: TouchPolicy,
    },
    Firmware {
        attested: Firmware,
        minimum: Firmware,
    },
}

fn slot_hex(slot: Option<u8>) -> String {
    slot.map_or_else(|| "none".to_owned(), |s| format!("{s:02x}"))
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing => f.write_str(
                "no YubiKey attestation, and this namespace requires one: the member re-exports with `tessera key export --serial N` from their YubiKey",
            ),
            Self::RoleNotAttested { role } => {
                write!(f, "the {role} key has no attestation certificate")
            }
            Self::UnexpectedRole { role } => write!(
                f,
                "the attestation has a certificate for the {role} key that the descriptor does not list once"
            ),
            Self::Invalid { role, error } => {
                write!(f, "the {role} key's attestation does not verify: {error}")
            }
            Self::KeyMismatch { role } => write!(
                f,
                "the {role} key's attestation is for another key than the descriptor's {role} key"
            ),
            Self::WrongSlot {
                role,
                descriptor,
                attested,
            } => write!(
                f,
                "the {role} key's attestation is for slot {attested:02x}, the descriptor names slot {}",
                slot_hex(*descriptor)
            ),
            Self::WrongSerial {
                role,
                descriptor,
                attested,
            } => write!(
                f,
                "the {role} key's attestation is from YubiKey serial {attested}, the descriptor names serial {}",
                descriptor.map_or_else(|| "none".to_owned(), |s| s.to_string())
            ),
            Self::PinPolicy {
                role,
                attested,
                minimum,
            } => write!(
                f,
                "the {role} key's PIN policy is {attested}, this namespace requires at least {minimum}"
            ),
            Self::TouchPolicy {
                role,
                attested,
                minimum,
            } => write!(
                f,
                "the {role} key's touch policy is {attested}, this namespace requires at least {minimum}"
            ),
            Self::Firmware { attested, minimum } => write!(
                f,
                "the YubiKey's firmware is {attested}, this namespace requires at least {minimum}"
            ),
        }
    }
}

/// A refused member: who and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("member {alias}: {reason}")]
pub struct Refusal {
    pub alias: String,
    pub reason: Reason,
}

/// What was established about one accepted member. Only [`check_member`] constructs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberVerdict {
    /// Every role key is attested by a genuine YubiKey and meets the policy.
    Attested(AttestedMember),
    /// No attestation, and the policy does not require one (dev).
    NotAttested,
}

/// The verified attestations of one member's keys, in the descriptor's key order.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AttestedMember {
    pub keys: Vec<(Role, SlotAttestation)>,
}

impl MemberVerdict {
    /// The per-member line for reviews: "YubiKey USB-C keychain, serial 123, firmware 5.7.1,
    /// generated on device; share: PIN once, touch always; manifest: …".
    #[must_use]
    pub fn summary(&self) -> String {
        match self {
            Self::NotAttested => {
                "NOT ATTESTED (no YubiKey attestation; accepted in dev only)".to_owned()
            }
            Self::Attested(m) => {
                let Some((_, first)) = m.keys.first() else {
                    return "attested (no keys)".to_owned();
                };
                let mut line = format!("{}, generated on device", first.device_summary());
                for (role, a) in &m.keys {
                    let _ = write!(
                        line,
                        "; {role}: PIN {}, touch {}",
                        a.pin_policy, a.touch_policy
                    );
                }
                line
            }
        }
    }

    #[must_use]
    pub fn is_attested(&self) -> bool {
        matches!(self, Self::Attested(_))
    }
}

/// Decides whether `descriptor` meets `policy`, verifying its attestation (if any) against
/// `trust` at `at`. The one place this decision is made: the coordinator's ceremony commands
/// and the member's own checks all call it.
pub fn check_member(
    descriptor: &MemberDescriptor,
    policy: &AttestationPolicy,
    trust: &YubicoTrust,
    at: OffsetDateTime,
) -> Result<MemberVerdict, Box<Refusal>> {
    let refuse = |reason| {
        Box::new(Refusal {
            alias: descriptor.alias.clone(),
            reason,
        })
    };
    let Some(attestation) = &descriptor.attestation else {
        return if policy.required {
            Err(refuse(Reason::Missing))
        } else {
            Ok(MemberVerdict::NotAttested)
        };
    };
    // Every certificate names a role the descriptor lists, once.
    for (i, slot) in attestation.slots.iter().enumerate() {
        let listed = descriptor.keys.iter().any(|k| k.role == slot.role);
        let repeated = attestation.slots[..i].iter().any(|s| s.role == slot.role);
        if !listed || repeated {
            return Err(refuse(Reason::UnexpectedRole { role: slot.role }));
        }
    }
    let mut keys = Vec::with_capacity(descriptor.keys.len());
    for key in &descriptor.keys {
        let role = key.role;
        let Some(slot) = attestation.slots.iter().find(|s| s.role == role) else {
            return Err(refuse(Reason::RoleNotAttested { role }));
        };
        let verified = verify_slot(
            &slot.certificate,
            &attestation.device_certificate,
            trust,
            at,
        )
        .map_err(|error| refuse(Reason::Invalid { role, error }))?;
        if verified.public_key != Some(key.public_key) {
            return Err(refuse(Reason::KeyMismatch { role }));
        }
        if key.slot != Some(verified.slot) {
            return Err(refuse(Reason::WrongSlot {
                role,
                descriptor: key.slot,
                attested: verified.slot,
            }));
        }
        if descriptor.serial != Some(verified.serial) {
            return Err(refuse(Reason::WrongSerial {
                role,
                descriptor: descriptor.serial,
                attested: verified.serial,
            }));
        }
        if verified.pin_policy.rank() < policy.min_pin_policy.rank() {
            return Err(refuse(Reason::PinPolicy {
                role,
                attested: verified.pin_policy,
                minimum: policy.min_pin_policy,
            }));
        }
        if role == Role::Share && verified.touch_policy.rank() < policy.min_share_touch.rank() {
            return Err(refuse(Reason::TouchPolicy {
                role,
                attested: verified.touch_policy,
                minimum: policy.min_share_touch,
            }));
        }
        if let Some(minimum) = policy.min_firmware
            && verified.firmware < minimum
        {
            return Err(refuse(Reason::Firmware {
                attested: verified.firmware,
                minimum,
            }));
        }
        keys.push((role, verified));
    }
    Ok(MemberVerdict::Attested(AttestedMember { keys }))
}
