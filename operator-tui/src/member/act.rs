//! Actions that let a secret move or a signature leave, each decided again by [`super::review`]
//! at the moment it happens (never on a review computed earlier), and each moving the pin only
//! after the device did its part and before anything is returned to be written.

use tessera_core::device::{DeviceError, KeyDevice, approve};
use tessera_core::keys::Role;
use tessera_core::manifest::{Manifest, ManifestEnvelope};
use tessera_core::objects::{GenesisOutput, ProvisionRequest, ShareSubmission};
use tessera_core::provision::{self, ProvisionError};
use tessera_core::sign::{Approval, Purpose};

use super::pin::{Lookup, NamespacePin, PcrPolicy, PinError, PinStore};
use super::review::{self, Change, Context, MemberKeys, Review};

/// Why an action did not happen. Nothing was signed, decrypted or written.
#[derive(Debug)]
pub enum ActError {
    /// The review refused it; the review says why and what to do.
    Refused(Box<Review>),
    /// The device or the pin store failed.
    Failed(String),
    Device(DeviceError),
}

impl ActError {
    /// One message for a person: the refusal with its next step, or the failure.
    #[must_use]
    pub fn message(&self) -> String {
        match self {
            ActError::Refused(r) => r.refusal().unwrap_or_else(|| "refused".to_owned()),
            ActError::Failed(m) => m.clone(),
            ActError::Device(d) => format!("{d}\nhint: {}", d.hint()),
        }
    }
}

impl From<PinError> for ActError {
    fn from(e: PinError) -> Self {
        match e {
            PinError::Device(d) => ActError::Device(d),
            other => ActError::Failed(format!("namespace pin: {other}")),
        }
    }
}

impl From<ProvisionError> for ActError {
    fn from(e: ProvisionError) -> Self {
        match e {
            ProvisionError::Device(d) => ActError::Device(d),
            other => ActError::Failed(other.to_string()),
        }
    }
}

impl From<DeviceError> for ActError {
    fn from(e: DeviceError) -> Self {
        ActError::Device(e)
    }
}

/// The pin the store holds for `namespace`, verified under the member's Manifest key.
pub fn lookup(store: &PinStore, namespace: &str, keys: &MemberKeys) -> Lookup {
    match &keys.manifest {
        Some(mine) => store.load(namespace, mine),
        None => Err(PinError::Device(DeviceError::NoKey {
            role: Role::Manifest,
            slot: None,
        })),
    }
}

/// The keys the review saw must be the device's now: a swapped device is reviewed again.
fn same_device(ctx: &Context, device: &mut dyn KeyDevice) -> Result<(), ActError> {
    if MemberKeys::read(device) == *ctx.keys {
        Ok(())
    } else {
        Err(ActError::Failed(
            "the key device changed since the review; open the request again".to_owned(),
        ))
    }
}

fn save_pin(
    store: &PinStore,
    review: &Review,
    device: &mut dyn KeyDevice,
) -> Result<Option<std::path::PathBuf>, ActError> {
    match &review.pin_after {
        Some(p) => Ok(Some(store.save(p, device)?)),
        None => Ok(None),
    }
}

/// A share handed over: the submission to write, the share's x, the review that allowed it, and
/// where the pin was written when it moved.
pub struct HandedOver {
    pub submission: ShareSubmission,
    pub x: u8,
    pub review: Review,
    pub pin: Option<std::path::PathBuf>,
}

/// Decides again, then decrypts the share on the device, re-encrypts it to the attested enclave
/// and signs the receipt; moves the pin before returning the submission.
pub fn hand_over(
    store: &PinStore,
    request: &ProvisionRequest,
    sealed_share: &[u8],
    ctx: &Context,
    device: &mut dyn KeyDevice,
) -> Result<HandedOver, ActError> {
    same_device(ctx, device)?;
    let pin = lookup(store, &request.envelope.manifest.namespace.name, ctx.keys);
    let review = review::hand_over(&pin, request, Some(sealed_share), ctx);
    let Some(ephemeral) = review.ephemeral.filter(|_| review.may_proceed()) else {
        return Err(ActError::Refused(Box::new(review)));
    };
    // Decrypt, sign the receipt, sign the pin: one step, one PIN where the card allows it.
    let (submission, x, pin) = in_one_session(device, |device| {
        let (submission, x) =
            provision::hand_over(&request.envelope.manifest, &ephemeral, sealed_share, device)?;
        let pin = save_pin(store, &review, device)?;
        Ok((submission, x, pin))
    })?;
    Ok(HandedOver {
        submission,
        x,
        review,
        pin,
    })
}

/// Runs `step` with the device's session held (one PIN for its operations where the card
/// allows), and always releases it.
fn in_one_session<T>(
    device: &mut dyn KeyDevice,
    step: impl FnOnce(&mut dyn KeyDevice) -> Result<T, ActError>,
) -> Result<T, ActError> {
    device.hold_session(true);
    let result = step(&mut *device);
    device.hold_session(false);
    result
}

/// Decides again, then signs a manifest approval; creates or moves the pin first.
pub fn approve_manifest(
    store: &PinStore,
    manifest: &Manifest,
    ctx: &Context,
    device: &mut dyn KeyDevice,
) -> Result<(Approval, Review), ActError> {
    approve_manifest_with(store, manifest, ctx, None, device)
}

/// As [`approve_manifest`], also judging the members' descriptors by `members`.
pub fn approve_manifest_with(
    store: &PinStore,
    manifest: &Manifest,
    ctx: &Context,
    members: Option<&review::MemberEvidence>,
    device: &mut dyn KeyDevice,
) -> Result<(Approval, Review), ActError> {
    same_device(ctx, device)?;
    let pin = lookup(store, &manifest.namespace.name, ctx.keys);
    let review = review::approve_manifest_with(&pin, manifest, ctx, members);
    if !review.may_proceed() {
        return Err(ActError::Refused(Box::new(review)));
    }
    let approval = in_one_session(device, |device| {
        let approval = approve(
            device,
            Purpose::Manifest,
            &manifest.hash(),
            "manifest approval",
        )?;
        save_pin(store, &review, device)?;
        Ok(approval)
    })?;
    Ok((approval, review))
}

/// Decides again, then signs a patch (Patch key) or reshard (Manifest key) approval.
pub fn approve_change(
    store: &PinStore,
    change: Change,
    envelope: Option<&ManifestEnvelope>,
    ctx: &Context,
    device: &mut dyn KeyDevice,
) -> Result<(Approval, Review), ActError> {
    same_device(ctx, device)?;
    let (purpose, hash) = (change.purpose(), change.hash());
    let pin = lookup(store, change.namespace(), ctx.keys);
    let review = review::approve_change(&pin, change, envelope, ctx);
    if !review.may_proceed() {
        return Err(ActError::Refused(Box::new(review)));
    }
    let approval = in_one_session(device, |device| {
        let approval = approve(device, purpose, &hash, &format!("{purpose} approval"))?;
        save_pin(store, &review, device)?;
        Ok(approval)
    })?;
    Ok((approval, review))
}

/// What recording a verified genesis did to the pin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    Created(std::path::PathBuf),
    /// The pin already holds this quorum key.
    Unchanged,
}

/// Records the quorum key of a genesis (or reshard) output the member verified. A pin that holds
/// another quorum key for the namespace is never replaced.
pub fn record_genesis(
    store: &PinStore,
    namespace: &str,
    output: &GenesisOutput,
    policy: PcrPolicy,
    device: &mut dyn KeyDevice,
) -> Result<Recorded, ActError> {
    let owner = device.public_key(Role::Manifest)?;
    match store.load(namespace, &owner)? {
        Some(p) if p.quorum_public_key == output.body.quorum_public_key => Ok(Recorded::Unchanged),
        Some(p) => Err(ActError::Failed(format!(
            "your pin for {namespace} holds quorum key {}, this genesis made {}: a namespace has one quorum key; nothing was stored",
            p.quorum_public_key.signing.fingerprint(),
            output.body.quorum_public_key.signing.fingerprint()
        ))),
        None => {
            let mut pin =
                NamespacePin::new(namespace, owner, output.body.quorum_public_key, policy);
            pin.dr_recipient = output.body.dr.as_ref().map(|w| w.recipient.clone());
            Ok(Recorded::Created(store.save(&pin, device)?))
        }
    }
}

/// Records the Manifest set of a manifest the member reviewed, into a pin that has none yet.
/// A pinned set moves only with its own approvals (see [`review::hand_over`]).
pub fn trust_manifest_set(
    store: &PinStore,
    manifest: &Manifest,
    device: &mut dyn KeyDevice,
) -> Result<std::path::PathBuf, ActError> {
    let owner = device.public_key(Role::Manifest)?;
    let ns = &manifest.namespace.name;
    manifest
        .validate()
        .map_err(|e| ActError::Failed(format!("the manifest is malformed: {e}")))?;
    let Some(mut pin) = store.load(ns, &owner)? else {
        return Err(ActError::Failed(format!(
            "no pin for namespace {ns}: run `tessera genesis verify` first, which records its quorum key"
        )));
    };
    if pin.quorum_public_key != manifest.namespace.quorum_public_key {
        return Err(ActError::Failed(format!(
            "the manifest names quorum key {}, your pin {}: this is not your namespace's manifest",
            manifest.namespace.quorum_public_key.signing.fingerprint(),
            pin.quorum_public_key.signing.fingerprint()
        )));
    }
    match &pin.manifest_set {
        Some(s) if *s == manifest.manifest_set => Ok(store.path(ns, &owner)),
        Some(_) => Err(ActError::Failed(format!(
            "your pin for {ns} already trusts a Manifest set; it moves only when that set approves a manifest that changes it"
        ))),
        None => {
            pin.manifest_set = Some(manifest.manifest_set.clone());
            pin.sequence += 1;
            Ok(store.save(&pin, device)?)
        }
    }
}

/// Sets how PCR0-2 must be reproduced for `namespace`.
pub fn set_pcr_policy(
    store: &PinStore,
    namespace: &str,
    policy: PcrPolicy,
    device: &mut dyn KeyDevice,
) -> Result<std::path::PathBuf, ActError> {
    let owner = device.public_key(Role::Manifest)?;
    let Some(mut pin) = store.load(namespace, &owner)? else {
        return Err(ActError::Failed(format!(
            "no pin for namespace {namespace}: run `tessera genesis verify` first"
        )));
    };
    if pin.pcr_policy == policy {
        return Ok(store.path(namespace, &owner));
    }
    pin.pcr_policy = policy;
    pin.sequence += 1;
    Ok(store.save(&pin, device)?)
}
