//! Reading a YubiKey's PIV attestation of the role keys: the card's ATTEST answer for each
//! role slot and the device's attestation certificate in slot `f9`. No PIN is needed. What the
//! certificates prove is decided in `tessera_core::yubikey_attest`, never here.

use serde_bytes::ByteBuf;
use tessera_core::device::DeviceError;
use tessera_core::keys::Role;
use tessera_core::objects::{PivAttestation, SlotCertificate};
use x509_cert::der::Encode;
use yubikey::piv::{self, SlotId};
use yubikey::{Certificate, YubiKey};

use super::{SlotMap, connect, device_error};

/// What the card gave.
#[derive(Debug)]
pub enum CardAttestation {
    Attested(PivAttestation),
    /// The card cannot attest (a virtual card, firmware before 4.3, or an `f9` key Yubico did
    /// not issue was removed): why, for the export's output.
    Unavailable(String),
}

/// Reads the attestation of every role key in `roles` from YubiKey `serial`.
pub fn read(serial: u32, slots: &SlotMap, roles: &[Role]) -> Result<CardAttestation, DeviceError> {
    let mut yk = connect(serial)?;
    read_from(&mut yk, slots, roles)
}

fn read_from(
    yk: &mut YubiKey,
    slots: &SlotMap,
    roles: &[Role],
) -> Result<CardAttestation, DeviceError> {
    let device = match Certificate::read(yk, SlotId::Attestation) {
        Ok(cert) => match cert.cert.to_der() {
            Ok(der) => der,
            Err(e) => {
                return Ok(CardAttestation::Unavailable(format!(
                    "slot f9's certificate does not encode: {e}"
                )));
            }
        },
        Err(e @ yubikey::Error::PcscError { .. }) => return Err(device_error(e)),
        Err(e) => {
            return Ok(CardAttestation::Unavailable(format!(
                "the card has no attestation certificate in slot f9 ({e})"
            )));
        }
    };
    let mut certs = Vec::with_capacity(roles.len());
    for &role in roles {
        let slot = slots.slot(role);
        match piv::attest(yk, slots.slot_id(role)) {
            Ok(der) => certs.push(SlotCertificate {
                role,
                certificate: ByteBuf::from(der.to_vec()),
            }),
            Err(e @ yubikey::Error::PcscError { .. }) => return Err(device_error(e)),
            Err(e) => {
                return Ok(CardAttestation::Unavailable(format!(
                    "the card does not attest the {role} key in slot {slot:02x} ({e}); only keys generated on a YubiKey with firmware 4.3 or later can be attested"
                )));
            }
        }
    }
    Ok(CardAttestation::Attested(PivAttestation {
        device_certificate: ByteBuf::from(device),
        slots: certs,
    }))
}
