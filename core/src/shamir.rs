//! Shamir secret sharing of the 32-byte quorum seed over GF(2^8), byte-wise.
//!
//! The field is GF(2^8) with the AES reduction polynomial x^8 + x^4 + x^3 + x + 1 (0x11b), as in
//! most Shamir implementations, so shares interoperate with them. Arithmetic is constant-time:
//! no lookup tables indexed by secret bytes, no branches on secrets.

use std::collections::BTreeSet;
use std::fmt;

use rand::CryptoRng;
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

use crate::bytes::Hash32;
use crate::quorum::QuorumSeed;

/// Length of the shared secret.
pub const SECRET_LEN: usize = 32;
/// Length of an encoded share: `x || y`.
pub const SHARE_LEN: usize = 1 + SECRET_LEN;

fn gf_mul(a: u8, b: u8) -> u8 {
    let (mut a, mut b, mut p) = (a, b, 0u8);
    for _ in 0..8 {
        p ^= a & 0u8.wrapping_sub(b & 1);
        let carry = 0u8.wrapping_sub(a >> 7);
        a = (a << 1) ^ (0x1b & carry);
        b >>= 1;
    }
    p
}

/// `a^254 = a^-1` for non-zero `a` (Fermat), by a fixed square-and-multiply chain.
fn gf_inv(a: u8) -> u8 {
    let a2 = gf_mul(a, a);
    let a4 = gf_mul(a2, a2);
    let a8 = gf_mul(a4, a4);
    let a16 = gf_mul(a8, a8);
    let a32 = gf_mul(a16, a16);
    let a64 = gf_mul(a32, a32);
    let a128 = gf_mul(a64, a64);
    // 254 = 128 + 64 + 32 + 16 + 8 + 4 + 2
    gf_mul(
        gf_mul(gf_mul(a128, a64), gf_mul(a32, a16)),
        gf_mul(gf_mul(a8, a4), a2),
    )
}

/// One member's share: the evaluation point `x` (1..=255) and 32 bytes `y`.
#[derive(Clone)]
pub struct Share {
    x: u8,
    y: Zeroizing<[u8; SECRET_LEN]>,
}

impl fmt::Debug for Share {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Share {{ x: {}, y: <redacted> }}", self.x)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ShamirError {
    #[error(
        "threshold must be between 1 and the share count (1..=255); got threshold {threshold} of {shares}"
    )]
    BadParameters { threshold: usize, shares: usize },
    #[error("too few shares: have {have}, need {need}")]
    TooFew { have: usize, need: usize },
    #[error("two shares have the same x = {x}")]
    DuplicateX { x: u8 },
    #[error("share x must be in 1..=255, got 0")]
    ZeroX,
    #[error("share must be {SHARE_LEN} bytes, got {len}")]
    BadLength { len: usize },
    #[error("share x = {x} does not match its commitment")]
    CommitmentMismatch { x: u8 },
}

impl Share {
    pub fn new(x: u8, y: [u8; SECRET_LEN]) -> Result<Self, ShamirError> {
        if x == 0 {
            return Err(ShamirError::ZeroX);
        }
        Ok(Self {
            x,
            y: Zeroizing::new(y),
        })
    }

    #[must_use]
    pub fn x(&self) -> u8 {
        self.x
    }

    /// `x || y`, in a zeroizing buffer.
    #[must_use]
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut v = Zeroizing::new(Vec::with_capacity(SHARE_LEN));
        v.push(self.x);
        v.extend_from_slice(&self.y[..]);
        v
    }

    /// Parses `x || y`.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ShamirError> {
        if bytes.len() != SHARE_LEN {
            return Err(ShamirError::BadLength { len: bytes.len() });
        }
        let mut y = [0u8; SECRET_LEN];
        y.copy_from_slice(&bytes[1..]);
        let share = Self::new(bytes[0], y);
        y.zeroize();
        share
    }

    /// `SHA-256("tessera/v1/share" || 0x00 || x || y)`: binds a share without revealing it.
    #[must_use]
    pub fn commitment(&self) -> Hash32 {
        let mut h = Sha256::new();
        h.update(b"tessera/v1/share");
        h.update([0u8]);
        h.update([self.x]);
        h.update(&self.y[..]);
        crate::bytes::ByteArray(h.finalize().into())
    }

    /// Checks this share against a published commitment (constant-time comparison).
    pub fn check_commitment(&self, expected: &Hash32) -> Result<(), ShamirError> {
        use subtle::ConstantTimeEq;
        if bool::from(self.commitment().0.ct_eq(&expected.0)) {
            Ok(())
        } else {
            Err(ShamirError::CommitmentMismatch { x: self.x })
        }
    }
}

/// Splits `secret` into `shares` shares with x = 1..=shares, any `threshold` of which recover it.
pub fn split<R: CryptoRng + ?Sized>(
    secret: &QuorumSeed,
    threshold: usize,
    shares: usize,
    rng: &mut R,
) -> Result<Vec<Share>, ShamirError> {
    if threshold == 0 || threshold > shares || shares > 255 {
        return Err(ShamirError::BadParameters { threshold, shares });
    }
    // coefficients[j][i]: coefficient of x^(j+1) for secret byte i.
    let mut coefficients = Zeroizing::new(vec![[0u8; SECRET_LEN]; threshold - 1]);
    for c in coefficients.iter_mut() {
        rng.fill_bytes(c);
    }
    let out = (1..=shares)
        .map(|x| {
            let x = x as u8;
            let mut y = Zeroizing::new([0u8; SECRET_LEN]);
            for i in 0..SECRET_LEN {
                // Horner's rule from the highest coefficient down to the secret byte.
                let mut acc = 0u8;
                for c in coefficients.iter().rev() {
                    acc = gf_mul(acc, x) ^ c[i];
                }
                y[i] = gf_mul(acc, x) ^ secret.as_bytes()[i];
            }
            Share { x, y }
        })
        .collect();
    Ok(out)
}

/// Recovers the secret from at least `threshold` shares with distinct non-zero x.
pub fn combine(shares: &[Share], threshold: usize) -> Result<QuorumSeed, ShamirError> {
    if threshold == 0 {
        return Err(ShamirError::BadParameters {
            threshold,
            shares: shares.len(),
        });
    }
    if shares.len() < threshold {
        return Err(ShamirError::TooFew {
            have: shares.len(),
            need: threshold,
        });
    }
    let mut seen = BTreeSet::new();
    for s in shares {
        if s.x == 0 {
            return Err(ShamirError::ZeroX);
        }
        if !seen.insert(s.x) {
            return Err(ShamirError::DuplicateX { x: s.x });
        }
    }
    // Lagrange interpolation at 0: secret = sum_j y_j * prod_{m != j} x_m / (x_m - x_j),
    // where subtraction is XOR in GF(2^8).
    let mut secret = Zeroizing::new([0u8; SECRET_LEN]);
    for (j, sj) in shares.iter().enumerate() {
        let mut num = 1u8;
        let mut den = 1u8;
        for (m, sm) in shares.iter().enumerate() {
            if m != j {
                num = gf_mul(num, sm.x);
                den = gf_mul(den, sm.x ^ sj.x);
            }
        }
        let lagrange = gf_mul(num, gf_inv(den));
        for i in 0..SECRET_LEN {
            secret[i] ^= gf_mul(sj.y[i], lagrange);
        }
    }
    Ok(QuorumSeed::from_bytes(*secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_inverse_is_inverse() {
        for a in 1..=255u8 {
            assert_eq!(gf_mul(a, gf_inv(a)), 1, "a = {a}");
        }
    }

    #[test]
    fn field_matches_aes_known_product() {
        // FIPS-197 section 4.2: {57} x {83} = {c1}.
        assert_eq!(gf_mul(0x57, 0x83), 0xc1);
        assert_eq!(gf_mul(0x57, 0x13), 0xfe);
    }
}
