//! Confirmation codes: what a member types to prove the object on their screen is the one the
//! coordinator announced on another channel.
//!
//! A code is 64 bits derived from the object hash under its own domain, so grinding a foreign
//! object to the same code costs about 2^64 hashes, and printing the object hash does not print
//! the code. Codes are read aloud in four groups of four hex digits.

use sha2::{Digest, Sha256};
use tessera_core::bytes::{Hash32, hex_groups};

/// The confirmation code of an object hash: `3fa2 9c01 77e4 0b5d`.
#[must_use]
pub fn confirm_code(hash: &Hash32) -> String {
    let mut h = Sha256::new();
    h.update(b"tessera/v1/confirm-code");
    h.update([0u8]);
    h.update(hash.0);
    let d: [u8; 32] = h.finalize().into();
    hex_groups(&d[..8])
}

/// Whether `typed` is the confirmation code of `hash`, ignoring spaces, dashes and case.
#[must_use]
pub fn code_matches(typed: &str, hash: &Hash32) -> bool {
    let norm = |s: &str| {
        s.chars()
            .filter(|c| !c.is_whitespace() && *c != '-')
            .collect::<String>()
            .to_lowercase()
    };
    let want = norm(&confirm_code(hash));
    !want.is_empty() && norm(typed) == want
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sixty_four_bits_in_four_groups() {
        let c = confirm_code(&Hash32::sha256(b"x"));
        assert_eq!(c.len(), 19, "{c}");
        assert_eq!(c.split(' ').count(), 4);
        assert!(code_matches(
            &c.to_uppercase().replace(' ', "-"),
            &Hash32::sha256(b"x")
        ));
        assert!(!code_matches(&c, &Hash32::sha256(b"y")));
        assert!(!code_matches("", &Hash32::sha256(b"x")));
    }

    #[test]
    fn the_code_is_not_a_prefix_of_the_hash() {
        let h = Hash32::sha256(b"manifest");
        let code: String = confirm_code(&h).split(' ').collect();
        assert!(!h.to_hex().starts_with(&code));
    }
}
