//! The one place that decides whether a member's share may leave or a member may sign.
//!
//! Each function turns (the member's pin, the object under review, the clock, the device's
//! public keys) into a [`Review`]: every check with its verdict and words, the next step when it
//! fails, and what the pin becomes if the action goes ahead. The CLI prints a review and the app
//! renders it; neither adds a check of its own. Everything a share is handed to must be
//! explained by what the member pinned, never by the object under review alone.
//!
//! Who may lie to these checks: the host (request bundles, attestation documents replayed or
//! from another enclave, old envelopes), the coordinator (manifests, envelopes, a foreign
//! namespace that copies the real share set), the USB stick (any file, including the pin), and
//! other members (their own pin in place of this member's). The tests in
//! `operator-tui/tests/member_attacks.rs` play each of them.

use std::time::Duration;

use tessera_core::attestation::{self, AttestationError, Policy, TrustAnchor};
use tessera_core::bytes::{ByteArray, Hash32, Pcr, hex_groups};
use tessera_core::device::KeyDevice;
use tessera_core::keys::{PublicKey, Role};
use tessera_core::manifest::{Manifest, ManifestEnvelope, MemberSet};
use tessera_core::objects::{MemberDescriptor, Patch, ProvisionRequest, Reshard};
use tessera_core::sign::{Purpose, check_threshold};
use tessera_core::yubikey_attest::YubicoTrust;
use tessera_core::yubikey_attest_policy::{AttestationPolicy, check_member};
use time::OffsetDateTime;

use super::pin::{Highest, Lookup, NamespacePin, PcrPolicy};

/// A check's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    /// Passes, but the member must see it (a dev waiver, a Manifest-set change, a first pin).
    Warn,
    Fail,
}

impl Verdict {
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Pass => "ok",
            Verdict::Warn => "note",
            Verdict::Fail => "REFUSED",
        }
    }
}

/// One line of a review.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub label: &'static str,
    pub verdict: Verdict,
    pub detail: String,
    /// What to do about a refusal.
    pub next: Option<String>,
}

/// What is being decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    HandOver,
    ApproveManifest,
    ApprovePatch,
    ApproveReshard,
    TrustManifestSet,
}

impl Action {
    #[must_use]
    pub fn describe(self) -> &'static str {
        match self {
            Action::HandOver => "hand your share to the attested enclave",
            Action::ApproveManifest => "approve this manifest",
            Action::ApprovePatch => "approve this patch",
            Action::ApproveReshard => "approve this reshard",
            Action::TrustManifestSet => "record this Manifest set as the one you trust",
        }
    }
}

/// Every check of one decision, and what follows from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Review {
    pub action: Action,
    pub namespace: String,
    /// The hash whose confirmation code the member types.
    pub object_hash: Hash32,
    pub checks: Vec<Check>,
    /// The pin after the action, when the action changes it (or creates it).
    pub pin_after: Option<NamespacePin>,
    /// For a hand-over: the attested enclave's ephemeral key.
    pub ephemeral: Option<ByteArray<32>>,
    /// For a hand-over: the member's alias in the share set.
    pub member: Option<String>,
}

impl Review {
    fn new(action: Action, namespace: &str, object_hash: Hash32) -> Self {
        Self {
            action,
            namespace: namespace.to_owned(),
            object_hash,
            checks: Vec::new(),
            pin_after: None,
            ephemeral: None,
            member: None,
        }
    }

    /// The one answer: may the action proceed?
    #[must_use]
    pub fn may_proceed(&self) -> bool {
        !self.checks.is_empty() && self.checks.iter().all(|c| c.verdict != Verdict::Fail)
    }

    /// The first refusal as one message with its next step, or `None` when the action may
    /// proceed.
    #[must_use]
    pub fn refusal(&self) -> Option<String> {
        let c = self.checks.iter().find(|c| c.verdict == Verdict::Fail)?;
        Some(match &c.next {
            Some(n) => format!("{}: {}\nnext: {n}", c.label, c.detail),
            None => format!("{}: {}", c.label, c.detail),
        })
    }

    fn pass(&mut self, label: &'static str, detail: impl Into<String>) {
        self.push(label, Verdict::Pass, detail.into(), None);
    }

    fn warn(&mut self, label: &'static str, detail: impl Into<String>) {
        self.push(label, Verdict::Warn, detail.into(), None);
    }

    fn fail(&mut self, label: &'static str, detail: impl Into<String>, next: impl Into<String>) {
        self.push(label, Verdict::Fail, detail.into(), Some(next.into()));
    }

    fn push(
        &mut self,
        label: &'static str,
        verdict: Verdict,
        detail: String,
        next: Option<String>,
    ) {
        self.checks.push(Check {
            label,
            verdict,
            detail,
            next,
        });
    }
}

/// PCR0-2 measured on the member's side, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reproduced {
    pub pcrs: [Pcr; 3],
    pub source: ReproducedFrom,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReproducedFrom {
    /// Measured from an EIF (its file name).
    Eif(String),
    /// A builders' statement that verified; the signers' certificate fingerprints (upper-case
    /// hex) and names.
    Builders {
        fingerprints: Vec<String>,
        names: Vec<String>,
    },
}

impl ReproducedFrom {
    /// Where the PCRs came from, for reviews, titles and errors.
    #[must_use]
    pub fn describe(&self) -> String {
        match self {
            ReproducedFrom::Eif(name) => format!("EIF {name}"),
            ReproducedFrom::Builders { names, .. } => {
                format!("builders' statement by {}", names.join(", "))
            }
        }
    }
}

/// The device's public keys, read once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemberKeys {
    pub manifest: Option<PublicKey>,
    pub share: Option<PublicKey>,
    pub patch: Option<PublicKey>,
}

impl MemberKeys {
    pub fn read(device: &mut dyn KeyDevice) -> Self {
        let mut keys = Self::default();
        for role in Role::ALL {
            *keys.role_mut(role) = device.public_key(role).ok();
        }
        keys
    }

    /// The key of `role`.
    pub fn role_mut(&mut self, role: Role) -> &mut Option<PublicKey> {
        match role {
            Role::Manifest => &mut self.manifest,
            Role::Share => &mut self.share,
            Role::Patch => &mut self.patch,
        }
    }
}

/// Everything besides the pin and the object that a decision depends on.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    pub anchor: &'a TrustAnchor,
    /// The validation time: the clock at the moment of the decision, unless overridden.
    pub at: OffsetDateTime,
    /// False when the validation time was given by hand (`--at`).
    pub at_is_clock: bool,
    pub max_age: Duration,
    pub reproduced: Option<&'a Reproduced>,
    pub keys: &'a MemberKeys,
}

impl Context<'_> {
    /// Production mode: documents must chain to the pinned AWS Nitro root.
    #[must_use]
    pub fn production(&self) -> bool {
        self.anchor.sha256() == attestation::aws_nitro_root_g1().sha256()
    }
}

const TELL: &str = "do not go on; tell the coordinator and the other members";

// ---------------------------------------------------------------------------------------------
// The decisions.

/// May this member hand their share to the enclave of `request`? `sealed` is the member's
/// encrypted share file when one is at hand: its header must name their Share key.
#[must_use]
pub fn hand_over(
    pin: &Lookup,
    request: &ProvisionRequest,
    sealed: Option<&[u8]>,
    ctx: &Context,
) -> Review {
    let env = &request.envelope;
    let m = &env.manifest;
    let hash = m.hash();
    let mut r = Review::new(Action::HandOver, &m.namespace.name, hash);
    manifest_valid(&mut r, m);
    let pin = pin_required(&mut r, pin, &m.namespace.name);
    if let Some(pin) = pin {
        let mut after = pin.clone();
        quorum_key(&mut r, pin, m);
        trust_anchor(&mut r, pin, ctx);
        pinned_approvals(&mut r, pin, env, &mut after);
        nonce(&mut r, pin.highest, m, &hash, &mut after);
        pcrs(&mut r, &pin.pcr_policy, m, ctx);
        r.pin_after = moved(pin, after);
    }
    r.ephemeral = attested(&mut r, &request.attestation, m, &hash, ctx);
    match ctx.keys.share {
        None => r.fail(
            "share key",
            "your device has no Share key",
            "insert the YubiKey that holds your Share key",
        ),
        Some(k) => match m.share_set.members.iter().find(|s| s.public_key == k) {
            Some(s) => {
                r.member = Some(s.alias.clone());
                r.pass(
                    "share key",
                    format!(
                        "your Share key {} is {} in the share set ({} of {})",
                        k.fingerprint(),
                        s.alias,
                        m.share_set.threshold,
                        m.share_set.members.len()
                    ),
                );
            }
            None => r.fail(
                "share key",
                format!(
                    "your Share key {} is not in this manifest's share set",
                    k.fingerprint()
                ),
                format!(
                    "this request is for namespace {} and not for your share; tell the coordinator",
                    m.namespace.name
                ),
            ),
        },
    }
    if let (Some(k), Some(sealed)) = (ctx.keys.share, sealed) {
        share_file(&mut r, &k, sealed);
    }
    r
}

/// The encrypted share file is addressed to this Share key, as its age header says.
fn share_file(r: &mut Review, key: &PublicKey, sealed: &[u8]) {
    use tessera_core::age_share::{Addressed, PivP256Recipient, addressed_to};
    match addressed_to(sealed, &PivP256Recipient::new(*key)) {
        Ok(Addressed::To) => r.pass("share file", "encrypted to your Share key"),
        Ok(Addressed::Unknown) => r.warn(
            "share file",
            "its recipient is not named in the file (not a YubiKey recipient); decrypting will tell",
        ),
        Ok(Addressed::Elsewhere) => r.fail(
            "share file",
            format!(
                "encrypted to another key, not your Share key {}",
                key.fingerprint()
            ),
            "plug in the YubiKey this share was made for, or pick your own *.share.age",
        ),
        Err(e) => r.fail(
            "share file",
            format!("unreadable: {e}"),
            "copy your *.share.age again from where you keep it",
        ),
    }
}

/// The label of the per-member YubiKey attestation lines of a manifest review.
pub const MEMBER_KEYS: &str = "yubikey";

/// The member descriptors the coordinator distributed for a manifest's members, and the
/// namespace's YubiKey attestation policy to judge them by (docs/yubikey.md, "Attestation").
#[derive(Debug, Clone, Copy)]
pub struct MemberEvidence<'a> {
    pub descriptors: &'a [MemberDescriptor],
    pub policy: &'a AttestationPolicy,
    pub trust: &'a YubicoTrust,
    /// When the attestation certificates' validity is judged.
    pub at: OffsetDateTime,
    /// The trust is a test PKI's root given by hand, not Yubico's published roots.
    pub private_root: bool,
}

/// The member descriptors at hand and the policy to judge them by, kept for a session (the
/// app's) or a command; [`MemberJudge::evidence`] lends them to a review.
#[derive(Debug, Clone)]
pub struct MemberJudge {
    pub descriptors: Vec<MemberDescriptor>,
    pub policy: AttestationPolicy,
    pub trust: YubicoTrust,
    pub private_root: bool,
    /// When certificates are judged; `None`: at the review's validation time.
    pub at: Option<OffsetDateTime>,
}

impl MemberJudge {
    #[must_use]
    pub fn evidence(&self, review_at: OffsetDateTime) -> MemberEvidence<'_> {
        MemberEvidence {
            descriptors: &self.descriptors,
            policy: &self.policy,
            trust: &self.trust,
            at: self.at.unwrap_or(review_at),
            private_root: self.private_root,
        }
    }
}

/// May this member approve `m` with their Manifest key? No member descriptors are checked.
#[must_use]
pub fn approve_manifest(pin: &Lookup, m: &Manifest, ctx: &Context) -> Review {
    approve_manifest_with(pin, m, ctx, None)
}

/// May this member approve `m` with their Manifest key? With `members`, every member of the
/// manifest's Manifest, Patch and Share sets is also judged by the YubiKey attestation of the
/// descriptor given for them (one check line each); a descriptor whose keys are not the
/// manifest's, or a member failing the policy, refuses the approval.
#[must_use]
pub fn approve_manifest_with(
    pin: &Lookup,
    m: &Manifest,
    ctx: &Context,
    members: Option<&MemberEvidence>,
) -> Review {
    let mut r = approve_manifest_only(pin, m, ctx);
    if let Some(ev) = members {
        member_keys(&mut r, m, ev);
    }
    r
}

/// May this member's pin follow the Manifest set of `env` (`tessera trust manifest-set`, for a
/// member who approves no manifest)? Only when the envelope carries approvals by the set the pin
/// holds (anchored at genesis, or moved since by that set's own approvals) at its threshold: a
/// set is never learned from a manifest alone. With `members`, the member-key checks an approval
/// makes as well.
#[must_use]
pub fn trust_manifest_set(
    pin: &Lookup,
    env: &ManifestEnvelope,
    members: Option<&MemberEvidence>,
) -> Review {
    let m = &env.manifest;
    let hash = m.hash();
    let mut r = Review::new(Action::TrustManifestSet, &m.namespace.name, hash);
    manifest_valid(&mut r, m);
    if let Some(pin) = pin_required(&mut r, pin, &m.namespace.name) {
        let mut after = pin.clone();
        quorum_key(&mut r, pin, m);
        pinned_approvals(&mut r, pin, env, &mut after);
        nonce(&mut r, pin.highest, m, &hash, &mut after);
        r.pin_after = moved(pin, after);
    }
    if let Some(ev) = members {
        member_keys(&mut r, m, ev);
    }
    r
}

fn approve_manifest_only(pin: &Lookup, m: &Manifest, ctx: &Context) -> Review {
    let hash = m.hash();
    let mut r = Review::new(Action::ApproveManifest, &m.namespace.name, hash);
    manifest_valid(&mut r, m);
    let pin = pin_required(&mut r, pin, &m.namespace.name);
    match ctx.keys.manifest {
        None => r.fail(
            "manifest key",
            "your device has no Manifest key",
            "insert the YubiKey that holds your Manifest key",
        ),
        Some(k) => {
            let in_manifest = m.manifest_set.members.iter().any(|x| x.public_key == k);
            let in_pinned =
                pin.is_some_and(|p| p.manifest_set.members.iter().any(|x| x.public_key == k));
            if in_manifest || in_pinned {
                r.pass(
                    "manifest key",
                    format!("your Manifest key {} may approve", k.fingerprint()),
                );
            } else {
                r.fail(
                    "manifest key",
                    format!(
                        "your Manifest key {} is in neither this manifest's Manifest set nor the one you pinned",
                        k.fingerprint()
                    ),
                    "your approval would not count; tell the coordinator",
                );
            }
        }
    }
    let Some(pin) = pin else { return r };
    let mut after = pin.clone();
    quorum_key(&mut r, pin, m);
    trust_anchor(&mut r, pin, ctx);
    let changes_set = m.manifest_set != pin.manifest_set;
    if changes_set {
        r.warn(
            "manifest set",
            format!(
                "this manifest changes the Manifest set from {} to {}: it takes effect only with approvals from the set you pinned, and your highest nonce moves only when you see them (hand-over or `tessera trust manifest-set`)",
                describe_set(&pin.manifest_set),
                describe_set(&m.manifest_set)
            ),
        );
    } else {
        r.pass(
            "manifest set",
            format!("unchanged: {}", describe_set(&pin.manifest_set)),
        );
    }
    nonce(&mut r, pin.highest, m, &hash, &mut after);
    if changes_set {
        // An approval of a set change is not yet the pinned set's decision: a coordinator must
        // not burn this member's nonces with manifests the pinned set never approves.
        after.highest = pin.highest;
    }
    pcrs(&mut r, &pin.pcr_policy, m, ctx);
    r.pin_after = moved(pin, after);
    r
}

/// A patch or a reshard, both approved against one manifest.
#[derive(Debug, Clone, Copy)]
pub enum Change<'a> {
    Patch(&'a Patch),
    Reshard(&'a Reshard),
}

impl Change<'_> {
    #[must_use]
    pub fn namespace(&self) -> &str {
        match self {
            Change::Patch(p) => &p.namespace,
            Change::Reshard(r) => &r.namespace,
        }
    }

    /// What the approval signs for.
    #[must_use]
    pub fn purpose(&self) -> Purpose {
        match self {
            Change::Patch(_) => Purpose::Patch,
            Change::Reshard(_) => Purpose::Reshard,
        }
    }

    /// The hash the approval signs and whose confirmation code is typed.
    #[must_use]
    pub fn hash(&self) -> Hash32 {
        match self {
            Change::Patch(p) => p.hash(),
            Change::Reshard(r) => r.hash(),
        }
    }
}

/// May this member approve a patch (Patch key) or a reshard (Manifest key)? Only for a manifest
/// their pin explains: the latest one they approved or handed over to, or one whose envelope
/// (given with `--manifest`) carries their pinned set's approvals at a nonce not below the pin's.
#[must_use]
pub fn approve_change(
    pin: &Lookup,
    change: Change,
    envelope: Option<&ManifestEnvelope>,
    ctx: &Context,
) -> Review {
    let (action, manifest_hash, role, key) = match change {
        Change::Patch(p) => (
            Action::ApprovePatch,
            p.manifest_hash,
            "patch key",
            ctx.keys.patch,
        ),
        Change::Reshard(x) => (
            Action::ApproveReshard,
            x.manifest_hash,
            "manifest key",
            ctx.keys.manifest,
        ),
    };
    let namespace = change.namespace();
    let mut r = Review::new(action, namespace, change.hash());
    let envelope = envelope.filter(|e| e.manifest.hash() == manifest_hash);
    if let Some(pin) = pin_required(&mut r, pin, namespace) {
        match (pin.highest, envelope) {
            (Some(h), _) if h.manifest_hash == manifest_hash => r.pass(
                "manifest",
                format!(
                    "for the manifest of nonce {} that you approved or handed over to",
                    h.nonce
                ),
            ),
            (_, Some(env)) => {
                let m = &env.manifest;
                let mut after = pin.clone();
                manifest_valid(&mut r, m);
                quorum_key(&mut r, pin, m);
                pinned_approvals(&mut r, pin, env, &mut after);
                nonce(&mut r, pin.highest, m, &manifest_hash, &mut after);
                r.pin_after = moved(pin, after);
            }
            (_, None) => r.fail(
                "manifest",
                format!(
                    "for manifest {}, which your pin does not hold as the latest you approved or handed over to",
                    hex_groups(&manifest_hash.0[..8])
                ),
                "give the manifest's envelope with --manifest (its approvals are checked against your pin), or review the manifest first",
            ),
        }
    }
    match (key, envelope) {
        (None, _) => r.fail(
            role,
            format!("your device has no {role}"),
            "insert the YubiKey that holds it",
        ),
        (Some(k), None) => r.pass(role, format!("signs with {}", k.fingerprint())),
        (Some(k), Some(env)) => {
            let set = match change {
                Change::Patch(_) => &env.manifest.patch_set,
                Change::Reshard(_) => &env.manifest.manifest_set,
            };
            if set.members.iter().any(|x| x.public_key == k) {
                r.pass(role, format!("{} is in the approving set", k.fingerprint()));
            } else {
                r.fail(
                    role,
                    format!(
                        "your {role} {} is not in the set that approves it",
                        k.fingerprint()
                    ),
                    "your approval would not count; tell the coordinator",
                );
            }
        }
    }
    r
}

// ---------------------------------------------------------------------------------------------
// The checks.

/// Every alias of the sets, once, in order of first appearance.
fn member_aliases(sets: &[(Role, &MemberSet)]) -> Vec<String> {
    let mut aliases: Vec<String> = Vec::new();
    for (_, set) in sets {
        for x in &set.members {
            if !aliases.contains(&x.alias) {
                aliases.push(x.alias.clone());
            }
        }
    }
    aliases
}

/// How many [`MEMBER_KEYS`] lines a review of `m` with `ev` holds, whatever their verdicts
/// (the app lays its screen out by it before the review is known).
#[must_use]
pub fn member_key_line_count(m: &Manifest, ev: &MemberEvidence) -> usize {
    let share_set = m.share_set.as_member_set();
    let sets = [
        (Role::Manifest, &m.manifest_set),
        (Role::Patch, &m.patch_set),
        (Role::Share, &share_set),
    ];
    let aliases = member_aliases(&sets);
    let stray = ev
        .descriptors
        .iter()
        .filter(|d| !aliases.contains(&d.alias))
        .count();
    usize::from(ev.private_root) + aliases.len() + stray
}

/// One "yubikey" line per member of the manifest's sets: the descriptor given for the alias must
/// list the manifest's key for every set the alias is in (a coordinator could hand out an
/// attested descriptor of other keys), then `check_member` decides on its attestation.
fn member_keys(r: &mut Review, m: &Manifest, ev: &MemberEvidence) {
    const LABEL: &str = MEMBER_KEYS;
    let share_set = m.share_set.as_member_set();
    let sets = [
        (Role::Manifest, &m.manifest_set),
        (Role::Patch, &m.patch_set),
        (Role::Share, &share_set),
    ];
    let aliases = member_aliases(&sets);
    if ev.private_root {
        r.warn(
            LABEL,
            "attestations are checked against a root given by hand, NOT Yubico's published roots (test PKIs only)",
        );
    }
    let ask = |alias: &str| {
        format!(
            "ask the coordinator for {alias}'s member descriptor as exported from their YubiKey, and compare its keys with {alias}"
        )
    };
    'member: for alias in aliases.iter().map(String::as_str) {
        let mut given = ev.descriptors.iter().filter(|d| d.alias == alias);
        let (Some(d), None) = (given.next(), given.next()) else {
            if ev.descriptors.iter().any(|d| d.alias == alias) {
                r.fail(
                    LABEL,
                    format!("{alias}: more than one member descriptor was given"),
                    "give each member's descriptor once",
                );
            } else if ev.policy.required {
                r.fail(
                    LABEL,
                    format!("{alias}: no member descriptor was given, and this namespace requires YubiKey attestation"),
                    ask(alias),
                );
            } else {
                r.warn(
                    LABEL,
                    format!("{alias}: not checked (no member descriptor given)"),
                );
            }
            continue;
        };
        for (role, set) in &sets {
            for x in set.members.iter().filter(|x| x.alias == alias) {
                let listed = d.keys.iter().find(|k| k.role == *role);
                if listed.is_none_or(|k| k.public_key != x.public_key) {
                    r.fail(
                        LABEL,
                        format!(
                            "{alias}: the descriptor's {role} key {} is not the manifest's {}",
                            listed.map_or_else(
                                || "(none)".to_owned(),
                                |k| k.public_key.fingerprint()
                            ),
                            x.public_key.fingerprint()
                        ),
                        format!("the descriptor does not describe this manifest's {alias}: {TELL}"),
                    );
                    continue 'member;
                }
            }
        }
        match check_member(d, ev.policy, ev.trust, ev.at) {
            Ok(v) if v.is_attested() => r.pass(LABEL, format!("{alias}: {}", v.summary())),
            Ok(v) => r.warn(LABEL, format!("{alias}: {}", v.summary())),
            Err(refusal) => r.fail(
                LABEL,
                format!("{refusal} (policy: {})", ev.policy.describe()),
                format!(
                    "{alias}'s keys are not proven to meet this namespace's YubiKey policy: {TELL}"
                ),
            ),
        }
    }
    for d in ev.descriptors {
        if !sets
            .iter()
            .any(|(_, s)| s.members.iter().any(|x| x.alias == d.alias))
        {
            r.warn(
                LABEL,
                format!(
                    "{}: a descriptor was given, but no set of this manifest names them (ignored)",
                    d.alias
                ),
            );
        }
    }
}

/// The envelope's approvals counted against the *pinned* Manifest set; a manifest that changes
/// the set moves the pin only when the pinned set approved it.
fn pinned_approvals(
    r: &mut Review,
    pin: &NamespacePin,
    env: &ManifestEnvelope,
    after: &mut NamespacePin,
) {
    let m = &env.manifest;
    let hash = m.hash();
    let pinned = &pin.manifest_set;
    let report = check_threshold(pinned, Purpose::Manifest, &hash, &env.approvals);
    if report.met() {
        r.pass(
            "approvals",
            format!(
                "approved by {} ({} of {} needed from your pinned Manifest set)",
                report.approved.join(", "),
                report.approved.len(),
                report.threshold
            ),
        );
        if m.manifest_set != *pinned {
            r.warn(
                "manifest set",
                format!(
                    "this manifest changes the Manifest set to {}; your pinned set approved it, so your pin moves to the new set",
                    describe_set(&m.manifest_set)
                ),
            );
            after.manifest_set = m.manifest_set.clone();
        }
    } else {
        r.fail(
            "approvals",
            format!(
                "{} of {} approvals from your pinned Manifest set ({}){}",
                report.approved.len(),
                report.threshold,
                describe_set(pinned),
                if report.rejected.is_empty() {
                    String::new()
                } else {
                    format!("; not counted: {}", report.rejected.join("; "))
                }
            ),
            format!("the set you trust did not approve this manifest: {TELL}"),
        );
    }
}

fn manifest_valid(r: &mut Review, m: &Manifest) {
    match m.validate() {
        Ok(()) => {}
        Err(e) => r.fail(
            "manifest",
            format!("malformed: {e}"),
            format!("the manifest cannot be trusted: {TELL}"),
        ),
    }
}

fn pin_required<'p>(r: &mut Review, pin: &'p Lookup, namespace: &str) -> Option<&'p NamespacePin> {
    match pin {
        Err(e) => {
            r.fail(
                "pin",
                format!("your pin for {namespace} is refused: {e}"),
                "restore your own pin file from your backup, or run `tessera genesis verify` again",
            );
            None
        }
        Ok(None) => {
            r.fail(
                "pin",
                format!("no pin for namespace {namespace}: this laptop never verified its genesis"),
                format!(
                    "if {namespace} is yours, run `tessera genesis verify` for it; if you expected another namespace, this request is not for it: {TELL}"
                ),
            );
            None
        }
        Ok(Some(p)) => {
            r.pass("pin", p.summary());
            Some(p)
        }
    }
}

/// Documents must be checked against the trust anchor the member accepted at genesis: a
/// `--root` (or EMULATED) given later cannot re-anchor a namespace.
fn trust_anchor(r: &mut Review, pin: &NamespacePin, ctx: &Context) {
    let given = ByteArray(ctx.anchor.sha256());
    if given == pin.trust_anchor {
        r.pass(
            "trust anchor",
            format!("{}, as accepted at genesis", anchor_name(&given)),
        );
    } else {
        r.fail(
            "trust anchor",
            format!(
                "documents would be checked against {}, but at genesis you accepted {}",
                anchor_name(&given),
                anchor_name(&pin.trust_anchor)
            ),
            format!(
                "give the same --root as at `genesis verify` (none for the AWS Nitro root); if the request needs another, it is not for your namespace: {TELL}"
            ),
        );
    }
}

/// A trust anchor by its SHA-256, as a member reads it.
#[must_use]
pub fn anchor_name(h: &Hash32) -> String {
    if h.0 == attestation::aws_nitro_root_g1().sha256() {
        "the AWS Nitro root".to_owned()
    } else if h.0 == TrustAnchor::emulated().sha256() {
        "EMULATED (unsigned documents, no chain)".to_owned()
    } else {
        format!("the DEV root {}", hex_groups(&h.0[..8]))
    }
}

fn quorum_key(r: &mut Review, pin: &NamespacePin, m: &Manifest) {
    if pin.quorum_public_key == m.namespace.quorum_public_key {
        r.pass(
            "quorum key",
            format!(
                "{} as pinned",
                m.namespace.quorum_public_key.signing.fingerprint()
            ),
        );
    } else {
        r.fail(
            "quorum key",
            format!(
                "the manifest names quorum key {}, your pin {}",
                m.namespace.quorum_public_key.signing.fingerprint(),
                pin.quorum_public_key.signing.fingerprint()
            ),
            format!("this is not your namespace's key: {TELL}"),
        );
    }
    dr_key(r, pin, m);
}

/// The manifest must name the disaster-recovery key the member accepted at genesis, or none if
/// there was none: a manifest that hides the DR key, or names another, misstates who can
/// recover the seed. Shown only where a DR key is involved.
fn dr_key(r: &mut Review, pin: &NamespacePin, m: &Manifest) {
    match (&pin.dr_recipient, &m.namespace.dr_recipient) {
        (None, None) => {}
        (Some(p), Some(x)) if p == x => r.pass(
            "DR key",
            format!("{x}: the whole seed is also wrapped to this offline key, as at genesis"),
        ),
        (pinned, named) => r.fail(
            "DR key",
            format!(
                "the manifest names disaster-recovery key {}, your pin {}",
                named.as_deref().unwrap_or("none"),
                pinned.as_deref().unwrap_or("none")
            ),
            format!("the manifest misstates who can recover the seed: {TELL}"),
        ),
    }
}

fn nonce(
    r: &mut Review,
    highest: Option<Highest>,
    m: &Manifest,
    hash: &Hash32,
    after: &mut NamespacePin,
) {
    let n = m.namespace.nonce;
    match highest {
        None => r.pass(
            "nonce",
            format!("{n}: the first manifest of this namespace on this laptop"),
        ),
        Some(h) if n > h.nonce => r.pass("nonce", format!("{n} rises above {}", h.nonce)),
        Some(h) if n == h.nonce && *hash == h.manifest_hash => r.pass(
            "nonce",
            format!("{n}: the manifest you already approved or handed over to"),
        ),
        Some(h) if n == h.nonce => r.fail(
            "nonce",
            format!("{n} is taken: you already used it for a different manifest"),
            format!("two manifests share a nonce: {TELL}"),
        ),
        Some(h) => r.fail(
            "nonce",
            format!(
                "rollback: nonce {n} is below {}, the highest you approved or handed over to",
                h.nonce
            ),
            format!("the host may be booting an old manifest: {TELL}"),
        ),
    }
    if highest.is_none_or(|h| n > h.nonce) {
        after.highest = Some(Highest {
            nonce: n,
            manifest_hash: *hash,
        });
    }
}

fn pcrs(r: &mut Review, policy: &PcrPolicy, m: &Manifest, ctx: &Context) {
    let want = [&m.enclave.pcr0, &m.enclave.pcr1, &m.enclave.pcr2];
    let source_ok = match (policy, ctx.reproduced) {
        (PcrPolicy::WaivedDev, _) if ctx.production() => {
            r.fail(
                "pcrs",
                "your pin waives PCR reproduction, which is for dev roots only; this document chains to the AWS root",
                "set a policy: `tessera trust pcr-policy --eif` (or --builder-key ... --builders-threshold K), then give --eif",
            );
            return;
        }
        (PcrPolicy::WaivedDev, None) => {
            r.warn(
                "pcrs",
                "DEV: PCR0-2 not reproduced (waived by your pin; refused against the AWS root)",
            );
            return;
        }
        (_, None) => {
            r.fail(
                "pcrs",
                format!("PCR0-2 are not reproduced; your pin requires: {}", policy.describe()),
                "give --eif with the EIF you built from the release sources (or the builders' statement)",
            );
            return;
        }
        (PcrPolicy::Eif | PcrPolicy::WaivedDev, Some(rep)) => match &rep.source {
            ReproducedFrom::Eif(_) => true,
            ReproducedFrom::Builders { .. } if matches!(policy, PcrPolicy::WaivedDev) => true,
            ReproducedFrom::Builders { .. } => {
                r.fail(
                    "pcrs",
                    "your pin requires PCR0-2 from an EIF you built; a builders' statement was given",
                    "give --eif with the EIF you built",
                );
                false
            }
        },
        (
            PcrPolicy::Builders {
                threshold,
                fingerprints,
            },
            Some(rep),
        ) => match &rep.source {
            ReproducedFrom::Builders {
                fingerprints: signers,
                ..
            } => {
                let pinned = signers
                    .iter()
                    .filter(|s| fingerprints.iter().any(|f| f.eq_ignore_ascii_case(s)))
                    .collect::<std::collections::BTreeSet<_>>()
                    .len();
                if pinned < usize::from(*threshold) {
                    r.fail(
                        "pcrs",
                        format!("the statement is signed by {pinned} of the builders you pinned; your pin needs {threshold}"),
                        "get the statement signed by your pinned builders, or give --eif",
                    );
                    false
                } else {
                    true
                }
            }
            ReproducedFrom::Eif(_) => true,
        },
    };
    if !source_ok {
        return;
    }
    let Some(rep) = ctx.reproduced else { return };
    match rep.pcrs.iter().zip(want).position(|(a, b)| a != b) {
        None => r.pass(
            "pcrs",
            format!(
                "PCR0-2 reproduced from {} equal the manifest's",
                rep.source.describe()
            ),
        ),
        Some(i) => r.fail(
            "pcrs",
            format!(
                "PCR{i} reproduced from {} differs from the manifest's",
                rep.source.describe()
            ),
            format!("the manifest names an image you did not build: {TELL}"),
        ),
    }
}

fn attested(
    r: &mut Review,
    doc: &[u8],
    m: &Manifest,
    hash: &Hash32,
    ctx: &Context,
) -> Option<ByteArray<32>> {
    if ctx.production() && !ctx.at_is_clock {
        r.fail(
            "attestation",
            "a hand-over is checked at this laptop's clock, not a validation time given by hand",
            "run without --at (set the laptop's clock if it is wrong)",
        );
        return None;
    }
    let policy = manifest_policy(m, hash).max_age(ctx.max_age);
    match attestation::verify(doc, ctx.anchor, ctx.at, &policy) {
        Ok(v) => {
            let Some(key) = v
                .public_key()
                .and_then(|k| ByteArray::<32>::try_from(k).ok())
            else {
                r.fail(
                    "attestation",
                    "the document carries no 32-byte ephemeral key",
                    "fetch a new request bundle (`tessera provision request`)",
                );
                return None;
            };
            r.pass(
                "attestation",
                format!(
                    "valid at {}: {}, module {}, {} s old (limit {} s); PCR0-3 equal the manifest; user_data binds it; ephemeral key {}",
                    if ctx.at_is_clock { "this laptop's clock" } else { "the time you gave" },
                    if ctx.anchor.is_emulated() {
                        "EMULATED enclave, UNSIGNED (no signature chain)".to_owned()
                    } else {
                        format!("chain to the {} root", attestation::anchor_label(ctx.anchor))
                    },
                    v.module_id(),
                    (ctx.at - v.timestamp()).whole_seconds(),
                    ctx.max_age.as_secs(),
                    hex_groups(&key.0[..8])
                ),
            );
            Some(key)
        }
        Err(e) => {
            let next = attestation_next(&e);
            r.fail("attestation", e.to_string(), next);
            None
        }
    }
}

/// What an enclave running manifest `m` (whose hash is `hash`) must attest: PCR0-3 equal the
/// manifest's and `user_data` binding its hash.
#[must_use]
pub fn manifest_policy(m: &Manifest, hash: &Hash32) -> Policy {
    Policy::new()
        .expect_pcr(0, m.enclave.pcr0.0.to_vec())
        .expect_pcr(1, m.enclave.pcr1.0.to_vec())
        .expect_pcr(2, m.enclave.pcr2.0.to_vec())
        .expect_pcr(3, m.enclave.pcr3.0.to_vec())
        .expect_user_data(hash.0.to_vec())
}

/// What a member does about a refused document.
#[must_use]
pub fn attestation_next(e: &AttestationError) -> String {
    match e {
        AttestationError::TooOld { .. }
        | AttestationError::CertificateExpired { .. } => {
            "fetch a new request bundle (`tessera provision request`) and bring it over again".to_owned()
        }
        AttestationError::FromTheFuture { .. } | AttestationError::CertificateNotYetValid { .. } => {
            "check this laptop's clock, then open the request again".to_owned()
        }
        AttestationError::UntrustedRoot { .. } => {
            "for a dev enclave, pass its root with --root; in production the document must chain to the AWS Nitro root".to_owned()
        }
        AttestationError::PcrMismatch { .. } | AttestationError::DebugMode => {
            format!("the enclave does not run the manifest's image: {TELL}")
        }
        AttestationError::BindingMismatch { .. } => {
            format!("the document belongs to another manifest or enclave: {TELL}")
        }
        AttestationError::Cbor { .. } | AttestationError::TrailingData { .. } => {
            "the document is damaged or cut short: copy the request bundle again".to_owned()
        }
        _ => format!("the document is not a genuine attestation: {TELL}"),
    }
}

fn moved(before: &NamespacePin, mut after: NamespacePin) -> Option<NamespacePin> {
    if after == *before {
        return None;
    }
    after.sequence = before.sequence.saturating_add(1);
    Some(after)
}

/// A set as `K of [alias fingerprint, …]`, for reviews and the CLI.
#[must_use]
pub fn describe_set(s: &MemberSet) -> String {
    format!(
        "{} of [{}]",
        s.threshold,
        s.members
            .iter()
            .map(|m| format!("{} {}", m.alias, m.public_key.fingerprint()))
            .collect::<Vec<_>>()
            .join(", ")
    )
}
