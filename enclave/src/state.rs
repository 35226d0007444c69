//! The enclave's phase state machine.
//!
//! Each phase has an allow-list of requests; anything else is refused with `wrong-phase`. Every
//! request is fully checked before any state changes, so a rejected request leaves the enclave
//! exactly as it was: one bad or hostile message never bricks a boot.

use std::collections::{BTreeMap, BTreeSet};

use p256::ecdsa::signature::Signer;
use serde_bytes::ByteBuf;
use tessera_core::age_share;
use tessera_core::bytes::{ByteArray, Hash32};
use tessera_core::cbor;
use tessera_core::dr::DrRecipient;
use tessera_core::forward::{ForwardExport, ForwardRequest};
use tessera_core::genesis::SplitError;
use tessera_core::keys::{PublicKey, Signature};
use tessera_core::manifest::{Manifest, ManifestEnvelope, MemberSet};
use tessera_core::objects::{
    GenesisOutput, GenesisRequest, OBJECT_VERSION, PatchEnvelope, ReshardEnvelope, ShareSubmission,
};
use tessera_core::protocol::{AppRequest, ErrorCode, Phase, Request, Response, Status};
use tessera_core::quorum::{QuorumSeed, x25519_recipient_bytes};
use tessera_core::shamir::{self, Share};
use tessera_core::sign::{Purpose, check_threshold, signed_message};

use crate::forward::{self, Challenges, Joining};
use crate::nsm::Nsm;
use crate::pivot::PivotRunner;

type Outcome = Result<Response, (ErrorCode, String)>;

fn rejected(msg: impl Into<String>) -> (ErrorCode, String) {
    (ErrorCode::Rejected, msg.into())
}

/// The state of one boot: the accepted manifest and the shares received so far.
struct Boot {
    envelope: ManifestEnvelope,
    manifest_hash: Hash32,
    ephemeral: age::x25519::Identity,
    ephemeral_key: ByteArray<32>,
    /// Accepted shares by member Share key.
    shares: BTreeMap<PublicKey, Share>,
    /// Hashes of accepted submissions, to name a replay as such.
    seen: BTreeSet<Hash32>,
}

struct Provisioned {
    envelope: ManifestEnvelope,
    manifest_hash: Hash32,
    seed: QuorumSeed,
    patch_sequence: u64,
    settings: BTreeMap<String, String>,
    shares_from: Vec<String>,
    /// Hashes of the submissions that provisioned this enclave, to answer a member's retry.
    seen: BTreeSet<Hash32>,
}

enum State {
    WaitingForBoot,
    WaitingForShares(Box<Boot>),
    WaitingForForward(Box<Joining>),
    Provisioned(Box<Provisioned>),
}

pub struct Enclave {
    state: State,
    nsm: Box<dyn Nsm>,
    pivot: Option<PivotRunner>,
    /// Highest manifest nonce this enclave accepted, per namespace.
    highest_nonce: BTreeMap<String, u64>,
    /// Key forwarding challenges this node issued while provisioned.
    challenges: Challenges,
}

impl Enclave {
    pub fn new(nsm: Box<dyn Nsm>, pivot: Option<PivotRunner>) -> Self {
        Self {
            state: State::WaitingForBoot,
            nsm,
            pivot,
            highest_nonce: BTreeMap::new(),
            challenges: Challenges::new(tessera_core::forward::MAX_DOCUMENT_AGE),
        }
    }

    /// The oldest joining node's document this node accepts when forwarding the key.
    #[must_use]
    pub fn forward_max_age(mut self, max_age: std::time::Duration) -> Self {
        self.challenges = Challenges::new(max_age);
        self
    }

    #[must_use]
    pub fn phase(&self) -> Phase {
        match self.state {
            State::WaitingForBoot => Phase::WaitingForBoot,
            State::WaitingForShares(_) => Phase::WaitingForShares,
            State::WaitingForForward(_) => Phase::WaitingForForward,
            State::Provisioned(_) => Phase::Provisioned,
        }
    }

    /// Handles one request. Never panics on any input; errors come back as `Response::Error`.
    pub fn handle(&mut self, request: &Request) -> Response {
        let phase = self.phase();
        let outcome = match (request, phase) {
            (Request::Status, _) => Ok(Response::Status(self.status())),
            (Request::Attestation { nonce }, _) => {
                self.attestation(nonce.as_ref().map(|n| n.as_slice()))
            }
            (Request::Genesis(req), Phase::WaitingForBoot) => self.genesis(req),
            (Request::Boot(env), Phase::WaitingForBoot) => self.boot(env),
            (Request::PostShare(sub), Phase::WaitingForShares) => self.post_share(sub),
            (Request::PostShare(sub), Phase::Provisioned) => self.share_after_provisioning(sub),
            (Request::Patch(p), Phase::Provisioned) => self.patch(p),
            (Request::Reshard(r), Phase::Provisioned) => self.reshard(r),
            (Request::App(a), Phase::Provisioned) => self.app(a),
            (Request::Join(env), Phase::WaitingForBoot) => self.join(env),
            (Request::ForwardChallenge, Phase::Provisioned) => Ok(self.forward_challenge()),
            (Request::ForwardExport(r), Phase::Provisioned) => self.forward_export(r),
            (Request::ForwardImport(e), Phase::WaitingForForward) => self.forward_import(e),
            (r, p) => Err((
                ErrorCode::WrongPhase,
                format!("{} is not allowed while {}", r.name(), p.as_str()),
            )),
        };
        outcome.unwrap_or_else(|(code, message)| Response::Error { code, message })
    }

    fn status(&self) -> Status {
        let mut s = Status {
            phase: self.phase(),
            dev: self.nsm.is_dev(),
            namespace: None,
            manifest_hash: None,
            nonce: None,
            ephemeral_key: None,
            threshold: 0,
            shares_from: Vec::new(),
            patch_sequence: 0,
            app_ingress: None,
        };
        let (env, hash) = match &self.state {
            State::WaitingForBoot => return s,
            State::WaitingForShares(b) => {
                s.ephemeral_key = Some(b.ephemeral_key);
                s.shares_from = aliases(&b.envelope.manifest, b.shares.keys());
                (&b.envelope, b.manifest_hash)
            }
            State::WaitingForForward(j) => {
                s.ephemeral_key = Some(j.ephemeral_key);
                (&j.envelope, j.manifest_hash)
            }
            State::Provisioned(p) => {
                s.patch_sequence = p.patch_sequence;
                s.app_ingress = p.envelope.manifest.pivot.ingress_port;
                s.shares_from.clone_from(&p.shares_from);
                (&p.envelope, p.manifest_hash)
            }
        };
        s.namespace = Some(env.manifest.namespace.name.clone());
        s.nonce = Some(env.manifest.namespace.nonce);
        s.manifest_hash = Some(hash);
        s.threshold = env.manifest.share_set.threshold;
        s
    }

    fn attest(
        &self,
        user_data: Option<&[u8]>,
        nonce: Option<&[u8]>,
        pk: Option<&[u8]>,
    ) -> Result<Vec<u8>, (ErrorCode, String)> {
        self.nsm
            .attest(user_data, nonce, pk)
            .map_err(|e| (ErrorCode::Internal, e))
    }

    fn attestation(&self, nonce: Option<&[u8]>) -> Outcome {
        if nonce.is_some_and(|n| n.len() > 512) {
            return Err((
                ErrorCode::BadRequest,
                "nonce longer than 512 bytes".to_owned(),
            ));
        }
        let (user_data, pk, envelope) = match &self.state {
            State::WaitingForBoot => (None, None, None),
            State::WaitingForShares(b) => (
                Some(b.manifest_hash.0.to_vec()),
                Some(b.ephemeral_key.0.to_vec()),
                Some(b.envelope.clone()),
            ),
            State::WaitingForForward(j) => (
                Some(j.manifest_hash.0.to_vec()),
                Some(j.ephemeral_key.0.to_vec()),
                Some(j.envelope.clone()),
            ),
            State::Provisioned(p) => (
                Some(p.manifest_hash.0.to_vec()),
                None,
                Some(p.envelope.clone()),
            ),
        };
        let document = self.attest(user_data.as_deref(), nonce, pk.as_deref())?;
        Ok(Response::Attestation {
            document: ByteBuf::from(document),
            envelope,
        })
    }

    fn genesis(&mut self, req: &GenesisRequest) -> Outcome {
        if req.version != OBJECT_VERSION {
            return Err(rejected(format!(
                "unsupported genesis request version {}",
                req.version
            )));
        }
        let name = &req.namespace;
        // The rule a manifest's namespace must follow, so a genesis output can always become one.
        if name.is_empty()
            || name.len() > 64
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(rejected(
                "namespace: must be 1 to 64 characters of [A-Za-z0-9._-]",
            ));
        }
        req.share_set
            .validate("share_set")
            .map_err(|e| rejected(e.to_string()))?;
        if let Some(set) = &req.manifest_set {
            set.validate("manifest_set")
                .map_err(|e| rejected(e.to_string()))?;
        }
        // Parsed before the seed exists: a bad recipient changes nothing.
        let dr: Option<DrRecipient> = req
            .dr_recipient
            .as_deref()
            .map(str::parse)
            .transpose()
            .map_err(|e: tessera_core::dr::DrError| rejected(format!("dr_recipient: {e}")))?;
        let seed = QuorumSeed::generate();
        let output = split_and_seal(
            &seed,
            &req.namespace,
            &req.share_set,
            req.manifest_set.as_ref(),
            dr.as_ref(),
        )?;
        let attestation = self.attest(Some(&output.hash().0), None, None)?;
        Ok(Response::Genesis {
            output,
            attestation: ByteBuf::from(attestation),
        })
    }

    fn boot(&mut self, env: &ManifestEnvelope) -> Outcome {
        self.start(env, |manifest_hash, ephemeral, ephemeral_key| {
            State::WaitingForShares(Box::new(Boot {
                envelope: env.clone(),
                manifest_hash,
                ephemeral,
                ephemeral_key,
                shares: BTreeMap::new(),
                seen: BTreeSet::new(),
            }))
        })
    }

    /// Boots like [`Self::boot`] (the same checks), then waits for a provisioned node of the
    /// namespace to forward the key instead of collecting shares.
    fn join(&mut self, env: &ManifestEnvelope) -> Outcome {
        self.start(env, |manifest_hash, ephemeral, ephemeral_key| {
            State::WaitingForForward(Box::new(Joining {
                envelope: env.clone(),
                manifest_hash,
                ephemeral,
                ephemeral_key,
            }))
        })
    }

    /// What boot and join share: every check of [`Self::check_boot`], a fresh ephemeral key
    /// bound in an attestation with the manifest's hash, the nonce recorded, then the waiting
    /// state `next` makes from the hash and the key.
    fn start(
        &mut self,
        env: &ManifestEnvelope,
        next: impl FnOnce(Hash32, age::x25519::Identity, ByteArray<32>) -> State,
    ) -> Outcome {
        let manifest_hash = self.check_boot(env)?;
        let ephemeral = age::x25519::Identity::generate();
        let ephemeral_key = x25519_recipient_bytes(&ephemeral.to_public());
        let attestation = self.attest(Some(&manifest_hash.0), None, Some(&ephemeral_key.0))?;
        let m = &env.manifest;
        self.highest_nonce
            .insert(m.namespace.name.clone(), m.namespace.nonce);
        self.state = next(manifest_hash, ephemeral, ephemeral_key);
        Ok(Response::Booted {
            manifest_hash,
            ephemeral_key,
            attestation: ByteBuf::from(attestation),
        })
    }

    /// Every check of a boot: the manifest is valid, approved at threshold, newer than any this
    /// process accepted, for this image and this pivot app. Returns its hash; changes nothing.
    fn check_boot(&self, env: &ManifestEnvelope) -> Result<Hash32, (ErrorCode, String)> {
        let m = &env.manifest;
        m.validate()
            .map_err(|e| rejected(format!("invalid manifest: {e}")))?;
        let report = m.check_approvals(&env.approvals);
        report
            .require()
            .map_err(|e| rejected(format!("manifest approvals: {e}")))?;
        if let Some(&highest) = self.highest_nonce.get(&m.namespace.name)
            && m.namespace.nonce <= highest
        {
            return Err(rejected(format!(
                "manifest nonce {} is not above {highest}, the highest this enclave accepted for {}",
                m.namespace.nonce, m.namespace.name
            )));
        }
        let own = self
            .nsm
            .image_pcrs()
            .map_err(|e| (ErrorCode::Internal, e))?;
        for (i, (want, have)) in [&m.enclave.pcr0, &m.enclave.pcr1, &m.enclave.pcr2]
            .into_iter()
            .zip(own.iter())
            .enumerate()
        {
            if want != have {
                return Err(rejected(format!(
                    "manifest PCR{i} {} does not match this enclave's image ({})",
                    &want.to_hex()[..16],
                    &have.to_hex()[..16]
                )));
            }
        }
        if let Some(pivot) = &self.pivot {
            // Refused here, before any member hands over a share, rather than at the last share.
            pivot
                .check(&m.pivot)
                .map_err(|e| rejected(format!("pivot: {e}")))?;
        }
        Ok(m.hash())
    }

    fn forward_challenge(&mut self) -> Response {
        let challenge = self.challenges.issue(std::time::Instant::now());
        Response::ForwardChallenge { challenge }
    }

    /// Exports the key to a joining node that [`tessera_core::forward::check_join`] accepts,
    /// judged with this node's own clock and trust anchor. A refusal changes nothing.
    fn forward_export(&mut self, request: &ForwardRequest) -> Outcome {
        let State::Provisioned(p) = &self.state else {
            unreachable!("allow-list admits forward-export only when provisioned")
        };
        let anchor = self
            .nsm
            .trust_anchor()
            .map_err(|e| (ErrorCode::Internal, e))?;
        let export = forward::export(&p.envelope, &p.seed, request, &anchor, &mut self.challenges)
            .map_err(|e| rejected(format!("key forward refused: {e}")))?;
        Ok(Response::ForwardExported { export })
    }

    /// Accepts a forwarded key: everything that can fail (the export's checks, the pivot) runs
    /// before the state changes, so a refusal leaves the node waiting for a good export.
    fn forward_import(&mut self, export: &ForwardExport) -> Outcome {
        let State::WaitingForForward(joining) = &self.state else {
            unreachable!("allow-list admits forward-import only while waiting for a forward")
        };
        let seed = joining
            .accept(export)
            .map_err(|e| rejected(format!("forwarded key refused: {e}")))?;
        if let Some(pivot) = &mut self.pivot {
            pivot
                .start(&joining.envelope.manifest.pivot, &seed)
                .map_err(|e| (ErrorCode::Internal, format!("pivot: {e}; still waiting")))?;
        }
        let State::WaitingForForward(joining) =
            std::mem::replace(&mut self.state, State::WaitingForBoot)
        else {
            unreachable!("matched above")
        };
        // Dropping the rest of `joining` zeroizes the ephemeral key.
        let Joining {
            envelope,
            manifest_hash,
            ..
        } = *joining;
        self.state = State::Provisioned(Box::new(Provisioned {
            envelope,
            manifest_hash,
            seed,
            patch_sequence: 0,
            settings: BTreeMap::new(),
            shares_from: Vec::new(),
            seen: BTreeSet::new(),
        }));
        Ok(Response::Forwarded { manifest_hash })
    }

    fn post_share(&mut self, sub: &ShareSubmission) -> Outcome {
        let State::WaitingForShares(boot) = &mut self.state else {
            unreachable!("allow-list admits post-share only while waiting for shares")
        };
        let manifest = &boot.envelope.manifest;
        let submission_hash = cbor::hash(sub);
        if boot.seen.contains(&submission_hash) {
            // The member's retry of a submission whose answer was lost: nothing to do, and
            // nothing to refuse. Only a byte-identical submission gets here.
            return Ok(Response::ShareAlreadyAccepted {
                member: alias_of(manifest, &sub.post.member),
                received: boot.shares.len() as u8,
                threshold: manifest.share_set.threshold,
                provisioned: false,
            });
        }
        let post = &sub.post;
        if post.version != OBJECT_VERSION {
            return Err(rejected(format!(
                "unsupported share post version {}",
                post.version
            )));
        }
        if post.manifest_hash != boot.manifest_hash {
            return Err(rejected(format!(
                "share is for another manifest ({}), this boot runs {}",
                &post.manifest_hash.to_hex()[..16],
                &boot.manifest_hash.to_hex()[..16]
            )));
        }
        if post.ephemeral_key != boot.ephemeral_key {
            return Err(rejected(
                "share is for another boot of this enclave (ephemeral key differs); fetch a new request bundle",
            ));
        }
        if sub.receipt.member != post.member {
            return Err(rejected(
                "receipt is signed by a key other than the posting member's",
            ));
        }
        let Some(member) = manifest
            .share_set
            .members
            .iter()
            .find(|m| m.public_key == post.member)
        else {
            return Err(rejected(format!(
                "{} is not a member of the share set",
                post.member.fingerprint()
            )));
        };
        sub.receipt
            .verify(Purpose::SharePost, &post.hash())
            .map_err(|e| rejected(format!("{}: share-post receipt: {e}", member.alias)))?;
        if Hash32::sha256(&sub.encrypted_share) != post.encrypted_share_sha256 {
            return Err(rejected(format!(
                "{}: encrypted share does not match the hash in the signed receipt",
                member.alias
            )));
        }
        if boot.shares.contains_key(&post.member) {
            return Err(rejected(format!(
                "{} already posted a share for this boot",
                member.alias
            )));
        }
        let plain = age_share::decrypt(&sub.encrypted_share, &boot.ephemeral).map_err(|_| {
            rejected(format!(
                "{}: share does not decrypt with this boot's key",
                member.alias
            ))
        })?;
        let share = Share::from_bytes(&plain)
            .map_err(|e| rejected(format!("{}: invalid share: {e}", member.alias)))?;
        drop(plain);
        share.check_commitment(&member.commitment).map_err(|_| {
            rejected(format!(
                "{}: share does not match its commitment in the manifest",
                member.alias
            ))
        })?;
        if boot.shares.values().any(|s| s.x() == share.x()) {
            return Err(rejected(format!(
                "{}: a share with x = {} was already accepted",
                member.alias,
                share.x()
            )));
        }

        let alias = member.alias.clone();
        let threshold = manifest.share_set.threshold;
        let received = boot.shares.len() + 1;
        if received < usize::from(threshold) {
            boot.shares.insert(post.member, share);
            boot.seen.insert(submission_hash);
            return Ok(Response::ShareAccepted {
                member: alias,
                received: received as u8,
                threshold,
                provisioned: false,
            });
        }

        // The last share: everything that can still fail (reconstruction, the key check, the
        // pivot) runs before the boot is touched, so a refusal keeps every share accepted so far
        // and the boot can complete with another share or once the fault is fixed.
        let mut shares: Vec<Share> = boot.shares.values().cloned().collect();
        shares.push(share.clone());
        let seed = shamir::combine(&shares, usize::from(threshold)).map_err(|e| {
            (
                ErrorCode::Internal,
                format!("reconstruction failed: {e}; last share refused"),
            )
        })?;
        drop(shares);
        if seed.public_key() != manifest.namespace.quorum_public_key {
            // Commitments make this unreachable for an honest manifest.
            return Err(rejected(
                "reconstructed key does not match the manifest's quorum public key; last share refused",
            ));
        }
        if let Some(pivot) = &mut self.pivot {
            pivot.start(&manifest.pivot, &seed).map_err(|e| {
                (
                    ErrorCode::Internal,
                    format!(
                        "pivot: {e}; last share refused, the {} accepted before it are kept",
                        received - 1
                    ),
                )
            })?;
        }
        boot.shares.insert(post.member, share);
        let shares_from = aliases(manifest, boot.shares.keys());
        let State::WaitingForShares(boot) =
            std::mem::replace(&mut self.state, State::WaitingForBoot)
        else {
            unreachable!("matched above")
        };
        // Dropping the boot zeroizes every share and the ephemeral key.
        let Boot {
            envelope,
            manifest_hash,
            mut seen,
            ..
        } = *boot;
        seen.insert(submission_hash);
        self.state = State::Provisioned(Box::new(Provisioned {
            envelope,
            manifest_hash,
            seed,
            patch_sequence: 0,
            settings: BTreeMap::new(),
            shares_from,
            seen,
        }));
        Ok(Response::ShareAccepted {
            member: alias,
            received: received as u8,
            threshold,
            provisioned: true,
        })
    }

    /// A post-share after provisioning: an identical retry of one of the submissions that
    /// provisioned this enclave is answered as already accepted; anything else is out of phase.
    fn share_after_provisioning(&self, sub: &ShareSubmission) -> Outcome {
        let State::Provisioned(p) = &self.state else {
            unreachable!("allow-list admits this only when provisioned")
        };
        if p.seen.contains(&cbor::hash(sub)) {
            let manifest = &p.envelope.manifest;
            let threshold = manifest.share_set.threshold;
            return Ok(Response::ShareAlreadyAccepted {
                member: alias_of(manifest, &sub.post.member),
                received: p.shares_from.len() as u8,
                threshold,
                provisioned: true,
            });
        }
        Err((
            ErrorCode::WrongPhase,
            format!(
                "post-share is not allowed while {}",
                Phase::Provisioned.as_str()
            ),
        ))
    }

    fn patch(&mut self, env: &PatchEnvelope) -> Outcome {
        let State::Provisioned(p) = &mut self.state else {
            unreachable!()
        };
        let patch = &env.patch;
        let m = &p.envelope.manifest;
        if patch.version != OBJECT_VERSION
            || patch.namespace != m.namespace.name
            || patch.manifest_hash != p.manifest_hash
        {
            return Err(rejected("patch is for another namespace or manifest"));
        }
        if patch.sequence <= p.patch_sequence {
            return Err(rejected(format!(
                "patch sequence {} is not above the last applied {}",
                patch.sequence, p.patch_sequence
            )));
        }
        check_threshold(&m.patch_set, Purpose::Patch, &patch.hash(), &env.approvals)
            .require()
            .map_err(|e| rejected(format!("patch approvals: {e}")))?;
        p.settings.extend(patch.settings.clone());
        p.patch_sequence = patch.sequence;
        Ok(Response::PatchApplied {
            sequence: patch.sequence,
        })
    }

    fn reshard(&mut self, env: &ReshardEnvelope) -> Outcome {
        let State::Provisioned(p) = &self.state else {
            unreachable!()
        };
        let r = &env.reshard;
        let m = &p.envelope.manifest;
        if r.version != OBJECT_VERSION
            || r.namespace != m.namespace.name
            || r.manifest_hash != p.manifest_hash
        {
            return Err(rejected("reshard is for another namespace or manifest"));
        }
        r.new_share_set
            .validate("new_share_set")
            .map_err(|e| rejected(e.to_string()))?;
        check_threshold(&m.manifest_set, Purpose::Reshard, &r.hash(), &env.approvals)
            .require()
            .map_err(|e| rejected(format!("reshard approvals: {e}")))?;
        // The seed does not change, so neither does who can recover it: the manifest's DR key
        // (wrapped afresh) stays on record in the new share set's output.
        let dr: Option<DrRecipient> = m
            .namespace
            .dr_recipient
            .as_deref()
            .map(str::parse)
            .transpose()
            .map_err(|e: tessera_core::dr::DrError| {
                rejected(format!("manifest namespace.dr_recipient: {e}"))
            })?;
        // The running manifest's Manifest set goes on record, so a member new to the namespace
        // can anchor a pin on this attested output.
        let output = split_and_seal(
            &p.seed,
            &m.namespace.name,
            &r.new_share_set,
            Some(&m.manifest_set),
            dr.as_ref(),
        )?;
        let attestation = self.attest(Some(&output.hash().0), None, None)?;
        Ok(Response::Resharded {
            output,
            attestation: ByteBuf::from(attestation),
        })
    }

    fn app(&self, req: &AppRequest) -> Outcome {
        let State::Provisioned(p) = &self.state else {
            unreachable!()
        };
        match req {
            AppRequest::Sign { message } => {
                if message.len() > 64 * 1024 {
                    return Err((
                        ErrorCode::BadRequest,
                        "message longer than 64 KiB".to_owned(),
                    ));
                }
                let msg = signed_message(Purpose::AppMessage, &Hash32::sha256(message));
                let sig: p256::ecdsa::Signature = p.seed.signing_key().sign(&msg);
                Ok(Response::AppSignature {
                    signature: Signature::from_ecdsa(&sig),
                })
            }
        }
    }
}

/// The alias of a member key that a seen submission was accepted from.
fn alias_of(m: &Manifest, key: &PublicKey) -> String {
    m.share_set
        .members
        .iter()
        .find(|member| member.public_key == *key)
        .map_or_else(|| key.fingerprint(), |member| member.alias.clone())
}

fn aliases<'a>(m: &Manifest, keys: impl Iterator<Item = &'a PublicKey>) -> Vec<String> {
    keys.filter_map(|k| {
        m.share_set
            .members
            .iter()
            .find(|s| &s.public_key == k)
            .map(|s| s.alias.clone())
    })
    .collect()
}

/// Splits `seed` to `set` ([`tessera_core::genesis::split_and_seal`]): a set that cannot be
/// split is the request's fault, anything else the enclave's.
fn split_and_seal(
    seed: &QuorumSeed,
    namespace: &str,
    set: &MemberSet,
    manifest_set: Option<&MemberSet>,
    dr: Option<&DrRecipient>,
) -> Result<GenesisOutput, (ErrorCode, String)> {
    tessera_core::genesis::split_and_seal(seed, namespace, set, manifest_set, dr).map_err(|e| {
        match e {
            SplitError::Set(m) => rejected(m),
            other => (ErrorCode::Internal, other.to_string()),
        }
    })
}
