//! Platform configuration registers as Nitro computes them: one SHA-384 extend from 48 zero bytes
//! (AWS Nitro Enclaves User Guide, "Where to get an enclave's measurements"). The image PCRs
//! extend with the SHA-384 of the measured sections; PCR3 and PCR4 extend with the role ARN or
//! instance id bytes themselves.

use std::fmt;

use sha2::{Digest, Sha384};

/// Length of a SHA-384 PCR.
pub const PCR_LEN: usize = 48;

/// A 48-byte PCR value.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Pcr(pub [u8; PCR_LEN]);

impl Pcr {
    /// The register after one extend with `value`: `SHA-384(0^48 || value)`.
    #[must_use]
    pub fn extended_from_zero(value: &[u8]) -> Self {
        let mut h = Sha384::new();
        h.update([0u8; PCR_LEN]);
        h.update(value);
        Self(h.finalize().into())
    }

    /// The register after measuring `data`: `SHA-384(0^48 || SHA-384(data))`.
    #[must_use]
    pub fn of_measurement(data: &[u8]) -> Self {
        Self::extended_from_zero(&Sha384::digest(data))
    }

    #[must_use]
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Pcr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pcr({})", self.to_hex())
    }
}

impl fmt::Display for Pcr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// Why an input cannot be measured.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PcrInputError {
    #[error("{what} is empty")]
    Empty { what: &'static str },
    /// A pasted value with stray whitespace would silently give a PCR that never matches.
    #[error("{what} {value:?} has leading or trailing whitespace")]
    Whitespace { what: &'static str, value: String },
    #[error("{value:?} is not an IAM role ARN (arn:<partition>:iam::<account>:role/<name>)")]
    NotRoleArn { value: String },
}

fn check_plain(what: &'static str, value: &str) -> Result<(), PcrInputError> {
    if value.is_empty() {
        return Err(PcrInputError::Empty { what });
    }
    if value.trim() != value {
        return Err(PcrInputError::Whitespace {
            what,
            value: value.to_owned(),
        });
    }
    Ok(())
}

/// PCR3: the IAM role ARN of the parent instance, extended as its UTF-8 bytes.
pub fn pcr3_from_role_arn(arn: &str) -> Result<Pcr, PcrInputError> {
    check_plain("role ARN", arn)?;
    let mut parts = arn.splitn(6, ':');
    let well_formed = parts.next() == Some("arn")
        && parts.next().is_some_and(|p| !p.is_empty())
        && parts.next() == Some("iam")
        && parts.next() == Some("")
        && parts.next().is_some_and(|a| !a.is_empty())
        && parts
            .next()
            .is_some_and(|r| r.starts_with("role/") && r.len() > "role/".len());
    if !well_formed {
        return Err(PcrInputError::NotRoleArn {
            value: arn.to_owned(),
        });
    }
    Ok(Pcr::extended_from_zero(arn.as_bytes()))
}

/// PCR4: the parent instance id (`i-...`), extended as its UTF-8 bytes.
pub fn pcr4_from_instance_id(instance_id: &str) -> Result<Pcr, PcrInputError> {
    check_plain("instance id", instance_id)?;
    Ok(Pcr::extended_from_zero(instance_id.as_bytes()))
}
