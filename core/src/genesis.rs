//! Splitting a quorum seed into a share set: each share sealed to its member's Share key, the
//! seed optionally wrapped to a disaster-recovery key, and the whole signed by the quorum key.
//! The genesis enclave, its reshard, and an offline DR restore all produce their output here.

use p256::ecdsa::signature::Signer;
use serde_bytes::ByteBuf;
use zeroize::Zeroizing;

use crate::age_share::{self, PivP256Recipient};
use crate::cbor;
use crate::dr::{self, DrRecipient};
use crate::keys::Signature;
use crate::manifest::MemberSet;
use crate::objects::{GenesisBody, GenesisOutput, GenesisShare, OBJECT_VERSION};
use crate::quorum::QuorumSeed;
use crate::shamir;
use crate::sign::{Purpose, signed_message};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SplitError {
    /// The share set cannot be split to (threshold or member count out of range).
    #[error("{0}")]
    Set(String),
    #[error("sealing a share failed: {0}")]
    Seal(String),
    #[error(transparent)]
    Dr(#[from] dr::DrError),
}

/// Splits `seed` to `set`, seals each share to its member's Share key, wraps the seed to `dr`
/// when given, records the Manifest set `manifest_set` members will pin, and signs the body with
/// the quorum key.
pub fn split_and_seal(
    seed: &QuorumSeed,
    namespace: &str,
    set: &MemberSet,
    manifest_set: Option<&MemberSet>,
    dr: Option<&DrRecipient>,
) -> Result<GenesisOutput, SplitError> {
    if let Some(m) = manifest_set {
        m.validate("manifest_set")
            .map_err(|e| SplitError::Set(e.to_string()))?;
    }
    let n = set.members.len();
    let shares = shamir::split(
        seed,
        usize::from(set.threshold),
        n,
        &mut rand::rand_core::UnwrapErr(rand::rngs::SysRng),
    )
    .map_err(|e| SplitError::Set(e.to_string()))?;
    let mut sealed = Vec::with_capacity(n);
    for (member, share) in set.members.iter().zip(&shares) {
        let recipient = PivP256Recipient::new(member.public_key);
        let bytes: Zeroizing<Vec<u8>> = share.to_bytes();
        let encrypted = age_share::encrypt(&bytes, &[&recipient])
            .map_err(|e| SplitError::Seal(e.to_string()))?;
        sealed.push(GenesisShare {
            alias: member.alias.clone(),
            share_key: member.public_key,
            commitment: share.commitment(),
            encrypted_share: ByteBuf::from(encrypted),
        });
    }
    let body = GenesisBody {
        version: OBJECT_VERSION,
        namespace: namespace.to_owned(),
        quorum_public_key: seed.public_key(),
        threshold: set.threshold,
        shares: sealed,
        dr: dr.map(|r| dr::wrap(seed, r)).transpose()?,
        manifest_set: manifest_set.cloned(),
    };
    let sig: p256::ecdsa::Signature = seed
        .signing_key()
        .sign(&signed_message(Purpose::Genesis, &cbor::hash(&body)));
    Ok(GenesisOutput {
        body,
        test_signature: Signature::from_ecdsa(&sig),
    })
}
