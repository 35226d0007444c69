//! Actions that let a secret move or a signature leave, each decided again by [`super::review`]
//! at the moment it happens (never on a review computed earlier), and each moving the pin only
//! after the device did its part and before anything is returned to be written.

use tessera_core::device::{DeviceError, KeyDevice, approve};
use tessera_core::keys::Role;
use tessera_core::manifest::{Manifest, ManifestEnvelope};
use tessera_core::objects::{GenesisOutput, ProvisionRequest, ShareSubmission};
use tessera_core::provision::{self, ProvisionError};
use tessera_core::sign::{Approval, Purpose};

use super::pin::{Lookup, NamespacePin, PcrPolicy, PinError, PinStore, ledger_of};
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

/// The pin the store holds for `namespace`, verified under the member's Manifest key and
/// checked against the pin ledger on the member's key device.
pub fn lookup(
    store: &PinStore,
    namespace: &str,
    keys: &MemberKeys,
    device: &mut dyn KeyDevice,
) -> Lookup {
    match &keys.manifest {
        Some(mine) => store.load(namespace, mine, &ledger_of(device)?),
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
    let pin = lookup(
        store,
        &request.envelope.manifest.namespace.name,
        ctx.keys,
        device,
    );
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
    let pin = lookup(store, &manifest.namespace.name, ctx.keys, device);
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
    let pin = lookup(store, change.namespace(), ctx.keys, device);
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
    /// A verified DR restore moved the pin to the Manifest set the restore put on record.
    Restored(std::path::PathBuf),
    /// The pin already holds this quorum key.
    Unchanged,
}

/// Anchors the member's trust in a namespace on a genesis (or reshard, or DR-restored) output
/// the member verified: its quorum key, the Manifest set it put on record, the trust anchor its
/// attestation chained to (`trust_anchor`, the SHA-256 of the root or the EMULATED label), its
/// DR key, and the PCR policy that root calls for. This is the only way a pin comes to exist. A namespace the key device already records
/// keeps its pin (which must be intact: a lost or older pin file is refused, never re-made); a
/// quorum key the device records under another namespace is refused. `restored`: the output is a
/// DR restore verified against the namespace's attested genesis, whose Manifest set replaces the
/// pinned one (the DR key's holder was accepted at genesis as able to recover the whole seed).
pub fn record_genesis(
    store: &PinStore,
    output: &GenesisOutput,
    trust_anchor: tessera_core::bytes::Hash32,
    restored: bool,
    device: &mut dyn KeyDevice,
) -> Result<Recorded, ActError> {
    let namespace = &output.body.namespace;
    let quorum_key = &output.body.quorum_public_key;
    let Some(manifest_set) = &output.body.manifest_set else {
        return Err(ActError::Failed(format!(
            "this output for {namespace} records no Manifest set, so it cannot anchor a pin; ask the coordinator for a genesis run with the namespace's Manifest set (`genesis run --manifest-member`); nothing was stored"
        )));
    };
    let owner = device.public_key(Role::Manifest)?;
    let ledger = ledger_of(device)?;
    if let Some(other) = ledger.namespace_of(quorum_key).filter(|n| n != namespace) {
        return Err(ActError::Failed(format!(
            "quorum key {} is pinned under namespace {other} on your key device; one quorum key belongs to one namespace, so it is refused under {namespace}; nothing was stored",
            quorum_key.signing.fingerprint()
        )));
    }
    if ledger.entry(namespace).is_some() {
        let Some(p) = store.load(namespace, &owner, &ledger)? else {
            return Err(ActError::Failed(format!(
                "your key device records a pin for {namespace} that cannot be read"
            )));
        };
        return if p.quorum_public_key != *quorum_key {
            Err(ActError::Failed(format!(
                "your pin for {namespace} holds quorum key {}, this output has {}: a namespace has one quorum key; nothing was stored",
                p.quorum_public_key.signing.fingerprint(),
                quorum_key.signing.fingerprint()
            )))
        } else if p.trust_anchor != trust_anchor {
            Err(ActError::Failed(format!(
                "your pin for {namespace} accepted {} at genesis, this output was checked against {}; nothing was stored",
                review::anchor_name(&p.trust_anchor),
                review::anchor_name(&trust_anchor)
            )))
        } else if restored && p.manifest_set != *manifest_set {
            let mut moved = p.clone();
            moved.manifest_set = manifest_set.clone();
            moved.sequence += 1;
            Ok(Recorded::Restored(store.save(&moved, device)?))
        } else {
            Ok(Recorded::Unchanged)
        };
    }
    // Not anchored on this key device: a new pin from the attested output. A pin file already
    // there (an older format, or one this device never recorded) is replaced. PCRs start
    // reproduced from an EIF in production, waived on a dev or EMULATED root.
    let policy = if trust_anchor.0 == tessera_core::attestation::aws_nitro_root_g1().sha256() {
        PcrPolicy::Eif
    } else {
        PcrPolicy::WaivedDev
    };
    let mut pin = NamespacePin::new(
        namespace,
        owner,
        *quorum_key,
        manifest_set.clone(),
        trust_anchor,
        policy,
    );
    pin.dr_recipient = output.body.dr.as_ref().map(|w| w.recipient.clone());
    Ok(Recorded::Created(store.save(&pin, device)?))
}

/// Follows a Manifest-set change approved by the set the pin holds (see
/// [`review::trust_manifest_set`]); decides again, then moves the pin.
pub fn trust_manifest_set(
    store: &PinStore,
    envelope: &ManifestEnvelope,
    members: Option<&review::MemberEvidence>,
    device: &mut dyn KeyDevice,
) -> Result<(Option<std::path::PathBuf>, Review), ActError> {
    let keys = MemberKeys::read(device);
    let pin = lookup(store, &envelope.manifest.namespace.name, &keys, device);
    let review = review::trust_manifest_set(&pin, envelope, members);
    if !review.may_proceed() {
        return Err(ActError::Refused(Box::new(review)));
    }
    let path = save_pin(store, &review, device)?;
    Ok((path, review))
}

/// Sets how PCR0-2 must be reproduced for `namespace`.
pub fn set_pcr_policy(
    store: &PinStore,
    namespace: &str,
    policy: PcrPolicy,
    device: &mut dyn KeyDevice,
) -> Result<std::path::PathBuf, ActError> {
    let owner = device.public_key(Role::Manifest)?;
    let ledger = ledger_of(device)?;
    let Some(mut pin) = store.load(namespace, &owner, &ledger)? else {
        return Err(ActError::Failed(format!(
            "no pin for namespace {namespace}: run `tessera genesis verify` first"
        )));
    };
    if pin.pcr_policy == policy {
        return Ok(store.path(namespace, &owner));
    }
    if policy == PcrPolicy::WaivedDev
        && pin.trust_anchor.0 == tessera_core::attestation::aws_nitro_root_g1().sha256()
    {
        return Err(ActError::Failed(format!(
            "your pin for {namespace} accepted the AWS Nitro root at genesis: PCR reproduction cannot be waived in production"
        )));
    }
    pin.pcr_policy = policy;
    pin.sequence += 1;
    Ok(store.save(&pin, device)?)
}
