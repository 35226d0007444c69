//! The Quorum Key: a 32-byte seed from which a P-256 signing key and an X25519 age identity are
//! derived with HKDF-SHA-256 under distinct labels, so neither key reveals the other.

use std::fmt;
use std::str::FromStr;

use bech32::{Bech32, Hrp};
use hkdf::Hkdf;
use p256::ecdsa::SigningKey;
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::bytes::ByteArray;
use crate::keys::PublicKey;
use crate::manifest::QuorumPublicKey;

const HKDF_SALT: &[u8] = b"tessera/v1/quorum-key";
const LABEL_SIGNING: &[u8] = b"tessera/v1/quorum-key/p256-signing";
const LABEL_AGE: &[u8] = b"tessera/v1/quorum-key/x25519-age";

/// The 32-byte master secret. Zeroized on drop; never printed.
#[derive(Clone)]
pub struct QuorumSeed(Zeroizing<[u8; 32]>);

impl fmt::Debug for QuorumSeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("QuorumSeed(<redacted>)")
    }
}

impl QuorumSeed {
    /// A fresh seed from the operating system's CSPRNG.
    #[must_use]
    pub fn generate() -> Self {
        use rand::TryRng;
        let mut seed = Zeroizing::new([0u8; 32]);
        // The master secret comes straight from the OS, not a user-space generator.
        rand::rngs::SysRng
            .try_fill_bytes(&mut seed[..])
            .expect("the operating system's random number generator failed");
        Self(seed)
    }

    #[must_use]
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    #[must_use]
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    fn expand(&self, label: &[u8], counter: u8) -> Zeroizing<[u8; 32]> {
        let hk = Hkdf::<Sha256>::new(Some(HKDF_SALT), &self.0[..]);
        let mut okm = Zeroizing::new([0u8; 32]);
        let mut info = label.to_vec();
        info.push(counter);
        hk.expand(&info, &mut okm[..])
            .expect("32 bytes is a valid HKDF-SHA-256 output length");
        okm
    }

    /// The quorum signing key. The HKDF output is used as the scalar; the rare output that is
    /// zero or not below the group order (probability about 2^-32) moves to the next counter.
    #[must_use]
    pub fn signing_key(&self) -> SigningKey {
        (0..=u8::MAX)
            .find_map(|counter| {
                let okm = self.expand(LABEL_SIGNING, counter);
                SigningKey::from_slice(&okm[..]).ok()
            })
            .expect("256 consecutive invalid scalars cannot happen")
    }

    /// The quorum age identity (X25519). Any 32 bytes are a valid X25519 secret.
    #[must_use]
    pub fn age_identity(&self) -> age::x25519::Identity {
        let okm = self.expand(LABEL_AGE, 0);
        let hrp = Hrp::parse("age-secret-key-").expect("valid HRP");
        let encoded = Zeroizing::new(
            bech32::encode_upper::<Bech32>(hrp, &okm[..]).expect("32 bytes fit bech32"),
        );
        age::x25519::Identity::from_str(&encoded).expect("valid age secret key encoding")
    }

    /// The public half that goes into the manifest.
    #[must_use]
    pub fn public_key(&self) -> QuorumPublicKey {
        let signing = PublicKey::from(&p256::PublicKey::from(self.signing_key().verifying_key()));
        let recipient = self.age_identity().to_public();
        QuorumPublicKey {
            signing,
            encryption: x25519_recipient_bytes(&recipient),
        }
    }
}

/// The 32 raw bytes of an age X25519 recipient.
#[must_use]
pub fn x25519_recipient_bytes(recipient: &age::x25519::Recipient) -> ByteArray<32> {
    let (_, data) = bech32::decode(&recipient.to_string()).expect("age recipients are bech32");
    ByteArray::try_from(data.as_slice()).expect("X25519 keys are 32 bytes")
}

/// The age recipient for 32 raw X25519 public key bytes.
#[must_use]
pub fn x25519_recipient(bytes: &ByteArray<32>) -> age::x25519::Recipient {
    let hrp = Hrp::parse("age").expect("valid HRP");
    let s = bech32::encode::<Bech32>(hrp, &bytes.0).expect("32 bytes fit bech32");
    age::x25519::Recipient::from_str(&s).expect("any 32 bytes are an X25519 public key")
}
