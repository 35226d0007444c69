//! A member's hand-over of their share to one attested enclave, shared by the CLI, the app and
//! the tests: decrypt the share at rest on the member's device, check it against the manifest's
//! commitment, re-encrypt it to the enclave's ephemeral key, and sign the share-post receipt.

use serde_bytes::ByteBuf;

use crate::age_share::{self, DecryptFailure, DeviceIdentity};
use crate::bytes::{ByteArray, Hash32};
use crate::device::{DeviceError, KeyDevice, approve};
use crate::keys::Role;
use crate::manifest::{Manifest, ShareMember};
use crate::objects::{OBJECT_VERSION, SharePost, ShareSubmission};
use crate::quorum::x25519_recipient;
use crate::shamir::Share;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProvisionError {
    #[error("your Share key {0} is not in this manifest's share set")]
    NotAMember(String),
    #[error(transparent)]
    Device(#[from] DeviceError),
    #[error("your share does not open: {0}")]
    Decrypt(String),
    #[error("your share does not match its commitment in the manifest")]
    Commitment,
    #[error("re-encryption failed: {0}")]
    Encrypt(String),
}

/// The share-set entry for the device's Share key.
pub fn member_of<'m>(
    manifest: &'m Manifest,
    device: &mut dyn KeyDevice,
) -> Result<&'m ShareMember, ProvisionError> {
    let key = device.public_key(Role::Share)?;
    manifest
        .share_set
        .members
        .iter()
        .find(|m| m.public_key == key)
        .ok_or_else(|| ProvisionError::NotAMember(key.fingerprint()))
}

/// Decrypts an age file with the device's Share key and parses the share.
pub fn open_share(
    device: &mut dyn KeyDevice,
    sealed: &[u8],
    purpose: &str,
) -> Result<Share, ProvisionError> {
    let identity = DeviceIdentity::new(device, Role::Share, purpose)?;
    let plain = identity.decrypt(sealed).map_err(|e| match e {
        DecryptFailure::Device(d) => ProvisionError::Device(d),
        DecryptFailure::Age(a) => ProvisionError::Decrypt(a.to_string()),
    })?;
    Share::from_bytes(&plain).map_err(|e| ProvisionError::Decrypt(e.to_string()))
}

/// Builds the share submission for the enclave that booted `manifest` with `ephemeral_key`.
/// Returns it with the share's x for display. The plaintext share never leaves this function.
pub fn hand_over(
    manifest: &Manifest,
    ephemeral_key: &ByteArray<32>,
    sealed_share: &[u8],
    device: &mut dyn KeyDevice,
) -> Result<(ShareSubmission, u8), ProvisionError> {
    let member = member_of(manifest, device)?.clone();
    let share = open_share(
        device,
        sealed_share,
        "[1/2] decrypt your share to hand it to the attested enclave",
    )?;
    share
        .check_commitment(&member.commitment)
        .map_err(|_| ProvisionError::Commitment)?;
    let x = share.x();
    let encrypted = age_share::encrypt(&share.to_bytes(), &[&x25519_recipient(ephemeral_key)])
        .map_err(|e| ProvisionError::Encrypt(e.to_string()))?;
    drop(share);
    let post = SharePost {
        version: OBJECT_VERSION,
        manifest_hash: manifest.hash(),
        ephemeral_key: *ephemeral_key,
        member: member.public_key,
        encrypted_share_sha256: Hash32::sha256(&encrypted),
    };
    let receipt = approve(
        device,
        crate::sign::Purpose::SharePost,
        &post.hash(),
        "share-post receipt [2/2]",
    )?;
    Ok((
        ShareSubmission {
            post,
            receipt,
            encrypted_share: ByteBuf::from(encrypted),
        },
        x,
    ))
}
