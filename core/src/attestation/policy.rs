//! What the caller requires of a verified document beyond its validity.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{AttestationError, HexOrAbsent, VerifiedAttestation, rfc3339};

/// Requirements applied after structure, chain and signature have been verified.
///
/// The default is the strictest useful policy: debug enclaves refused, nothing else required.
/// Add expectations with the builder methods.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    expected_pcrs: BTreeMap<u8, Vec<u8>>,
    allow_debug: bool,
    expected_user_data: Option<Vec<u8>>,
    expected_public_key: Option<Vec<u8>>,
    expected_nonce: Option<Vec<u8>>,
    max_age: Option<Duration>,
}

impl Policy {
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Requires PCR `index` to equal `value` exactly.
    #[must_use]
    pub fn expect_pcr(mut self, index: u8, value: impl Into<Vec<u8>>) -> Self {
        self.expected_pcrs.insert(index, value.into());
        self
    }

    /// Accepts debug-mode enclaves (all-zero PCR0), whose memory the parent instance can read.
    #[must_use]
    pub fn allow_debug(mut self) -> Self {
        self.allow_debug = true;
        self
    }

    #[must_use]
    pub fn expect_user_data(mut self, value: impl Into<Vec<u8>>) -> Self {
        self.expected_user_data = Some(value.into());
        self
    }

    #[must_use]
    pub fn expect_public_key(mut self, value: impl Into<Vec<u8>>) -> Self {
        self.expected_public_key = Some(value.into());
        self
    }

    #[must_use]
    pub fn expect_nonce(mut self, value: impl Into<Vec<u8>>) -> Self {
        self.expected_nonce = Some(value.into());
        self
    }

    /// Refuses documents whose timestamp is more than `max_age` before the validation time, or
    /// after it.
    #[must_use]
    pub fn max_age(mut self, max_age: Duration) -> Self {
        self.max_age = Some(max_age);
        self
    }

    /// Applies the policy to a verified document, judging its age at the time it was validated.
    pub fn check(&self, doc: &VerifiedAttestation) -> Result<(), AttestationError> {
        if let Some(max) = self.max_age {
            let at = doc.validated_at();
            let timestamp = doc.timestamp();
            if timestamp > at {
                return Err(AttestationError::FromTheFuture {
                    timestamp: rfc3339(timestamp),
                    at: rfc3339(at),
                });
            }
            let age = at - timestamp;
            if age > max {
                return Err(AttestationError::TooOld {
                    age_seconds: age.whole_seconds(),
                    max_seconds: max.as_secs(),
                });
            }
        }
        // Debug mode is checked before PCR values so that the reason shown is the real one.
        if !self.allow_debug {
            match doc.pcr(0) {
                None => {
                    return Err(AttestationError::PcrMismatch {
                        index: 0,
                        expected: "present (needed to rule out debug mode)".into(),
                        found: "absent".into(),
                    });
                }
                Some(_) if doc.is_debug() => return Err(AttestationError::DebugMode),
                Some(_) => {}
            }
        }
        for (&index, expected) in &self.expected_pcrs {
            let found = doc.pcr(index);
            if found != Some(expected.as_slice()) {
                return Err(AttestationError::PcrMismatch {
                    index,
                    expected: hex::encode(expected),
                    found: HexOrAbsent(found).to_string(),
                });
            }
        }
        let bindings = [
            ("user_data", &self.expected_user_data, doc.user_data()),
            ("public_key", &self.expected_public_key, doc.public_key()),
            ("nonce", &self.expected_nonce, doc.nonce()),
        ];
        for (field, expected, found) in bindings {
            if let Some(expected) = expected
                && found != Some(expected.as_slice())
            {
                return Err(AttestationError::BindingMismatch {
                    field,
                    expected: hex::encode(expected),
                    found: HexOrAbsent(found).to_string(),
                });
            }
        }
        Ok(())
    }
}
