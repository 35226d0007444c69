//! Changes to a provisioned enclave: live patches (approved by the Patch set) and reshards
//! (a new share set, approved by the Manifest set). Drafting, approving and posting follow the
//! manifest flow: every approval shows what it signs and needs the confirmation code.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use airgap_bundle::{BundleKind, Metadata};
use tessera_core::bytes::Hash32;
use tessera_core::cbor;
use tessera_core::keys::Role;
use tessera_core::manifest::{Manifest, MemberSet};
use tessera_core::objects::{OBJECT_VERSION, Patch, PatchEnvelope, Reshard, ReshardEnvelope};
use tessera_core::protocol::Response;
use tessera_core::sign::{Approval, Purpose, check_threshold};
use tessera_core::transcript::Record;

use super::ceremony::{
    confirm_code, descriptors, expect_ok, load_manifest, open, require_confirm, set_of,
    store_genesis,
};
use super::common::{CmdResult, Failure, Relay, checked, record};
use super::objects::{load, save};
use super::trust::{act_failure, print_review};
use crate::devices::DeviceArgs;
use crate::member::act;
use crate::member::review::{Change, Context, MemberKeys};
use tessera_core::bytes::hex_groups;

#[derive(clap::Subcommand)]
pub enum PatchCommand {
    /// Draft a patch of the provisioned manifest's settings.
    New {
        /// The manifest (or envelope) the enclave runs.
        #[arg(long)]
        manifest: PathBuf,
        /// Must rise above the last patch applied.
        #[arg(long)]
        sequence: u64,
        /// A setting, `KEY=VALUE`; repeat for several.
        #[arg(long = "set", value_name = "KEY=VALUE", required = true)]
        settings: Vec<String>,
        #[arg(short, long)]
        out: PathBuf,
    },
    /// Review and approve a patch with your Patch key.
    Approve(ApproveArgs),
    /// Post a patch with Patch-set approvals to the enclave.
    Post {
        #[arg(long)]
        relay: String,
        /// The manifest whose Patch set must approve.
        #[arg(long)]
        manifest: PathBuf,
        patch: PathBuf,
        #[arg(long = "approval", required = true)]
        approvals: Vec<PathBuf>,
    },
}

#[derive(clap::Subcommand)]
pub enum ReshardCommand {
    /// Draft a reshard: the quorum key re-split to a new share set inside the enclave.
    New {
        #[arg(long)]
        manifest: PathBuf,
        #[arg(long)]
        threshold: u8,
        /// Member descriptors of the new share set.
        #[arg(long = "member", required = true)]
        members: Vec<PathBuf>,
        #[arg(short, long)]
        out: PathBuf,
    },
    /// Review and approve a reshard with your Manifest key.
    Approve(ApproveArgs),
    /// Post a reshard with Manifest-set approvals; writes the new genesis output for the new
    /// members to verify with `tessera genesis verify`.
    Post {
        #[arg(long)]
        relay: String,
        #[arg(long)]
        manifest: PathBuf,
        reshard: PathBuf,
        #[arg(long = "approval", required = true)]
        approvals: Vec<PathBuf>,
        /// Directory for the new genesis output and its attestation.
        #[arg(short, long)]
        out: PathBuf,
    },
}

#[derive(clap::Args)]
pub struct ApproveArgs {
    file: PathBuf,
    #[command(flatten)]
    device: DeviceArgs,
    /// The confirmation code the coordinator announced.
    #[arg(long)]
    confirm: Option<String>,
    /// The manifest the enclave runs: checks that the change is for it and that your key is in
    /// the approving set (the enclave checks both again).
    #[arg(long)]
    manifest: Option<PathBuf>,
    #[command(flatten)]
    pins: super::trust::PinArgs,
    /// Earlier patches of the same manifest (bundles): the review shows each setting as
    /// old -> new against them. Patches only; ignored for a reshard.
    #[arg(long = "previous", value_name = "PATCH")]
    previous: Vec<PathBuf>,
    #[arg(short, long)]
    out: PathBuf,
}

fn load_patch(path: &Path) -> Result<Patch, Failure> {
    load(path, BundleKind::Patch, |b| {
        cbor::decode::<PatchEnvelope>(b, "patch").map(|e| e.patch)
    })
}

fn load_reshard(path: &Path) -> Result<Reshard, Failure> {
    load(path, BundleKind::Genesis, |b| {
        cbor::decode::<ReshardEnvelope>(b, "reshard").map(|e| e.reshard)
    })
}

fn load_approvals(paths: &[PathBuf]) -> Result<Vec<Approval>, Failure> {
    paths
        .iter()
        .map(|p| {
            load(p, BundleKind::Approval, |b| {
                cbor::decode::<Approval>(b, "approval")
            })
        })
        .collect()
}

/// Shows `summary`, has the member layer review the change against the member's pin (and the
/// manifest, when one is given), requires the confirmation code, signs and writes the approval.
fn sign_approval(a: &ApproveArgs, change: Change, summary: &str, meta: Metadata) -> CmdResult {
    println!("{summary}");
    let (purpose, hash) = (change.purpose(), change.hash());
    println!("hash {hash}");
    let envelope = a.manifest.as_deref().map(load_envelope).transpose()?;
    let store = a.pins.store()?;
    let anchor = tessera_core::attestation::aws_nitro_root_g1().clone();
    let mut dev = open(&a.device)?;
    let keys = MemberKeys::read(dev.as_mut());
    let ctx = Context {
        anchor: &anchor,
        at: time::OffsetDateTime::now_utc(),
        at_is_clock: true,
        max_age: std::time::Duration::from_hours(1),
        reproduced: None,
        keys: &keys,
    };
    let pin = act::lookup(&store, change.namespace(), &keys, dev.as_mut());
    let review = crate::member::review::approve_change(&pin, change, envelope.as_ref(), &ctx);
    print_review(&review);
    if let Some(why) = review.refusal() {
        return Err(Failure::refused(format!("{why}\nnothing was signed")));
    }
    require_confirm(
        a.confirm.as_deref(),
        &hash,
        &format!("{purpose} confirmation code"),
    )?;
    let (approval, _) = act::approve_change(&store, change, envelope.as_ref(), &ctx, dev.as_mut())
        .map_err(|e| act_failure(e, "the approval"))?;
    let path = save(&a.out, BundleKind::Approval, meta, &approval)?;
    record(
        Record::new(&format!("{purpose}.approve"), "approved")
            .input_hash(purpose.as_str(), &hash)
            .output("approval", &cbor::encode(&approval))
            .device(dev.info().label),
    );
    println!("approval written to {}", path.display());
    Ok(())
}

/// A manifest envelope, or a bare manifest as an envelope without approvals.
pub(crate) fn load_envelope(
    path: &Path,
) -> Result<tessera_core::manifest::ManifestEnvelope, Failure> {
    load(path, BundleKind::Manifest, |b| {
        tessera_core::manifest::ManifestEnvelope::decode(b).or_else(|_| {
            Manifest::decode(b).map(|manifest| tessera_core::manifest::ManifestEnvelope {
                manifest,
                approvals: Vec::new(),
            })
        })
    })
}

/// Before posting a change: it is for this manifest, and its approvals meet `set`'s threshold.
fn approved(
    m: &Manifest,
    change_manifest_hash: &Hash32,
    set: &MemberSet,
    purpose: Purpose,
    hash: &Hash32,
    approvals: &[PathBuf],
) -> Result<Vec<Approval>, Failure> {
    if *change_manifest_hash != m.hash() {
        return Err(Failure::refused(format!(
            "the {purpose} is for another manifest"
        )));
    }
    let approvals = load_approvals(approvals)?;
    let r = check_threshold(set, purpose, hash, &approvals);
    r.require().map_err(|e| Failure::refused(e.to_string()))?;
    checked(format!(
        "{} of {} approvals: {}",
        r.approved.len(),
        r.threshold,
        r.approved.join(", ")
    ));
    Ok(approvals)
}

/// Writes a drafted change for the approvers and prints the code they will type to confirm it.
fn draft<T: serde::Serialize>(
    out: &Path,
    kind: BundleKind,
    meta: Metadata,
    value: &T,
    hash: &Hash32,
    what: &str,
) -> CmdResult {
    let path = save(out, kind, meta, value)?;
    println!(
        "{what} {hash} -> {}\nconfirmation code: {}",
        path.display(),
        confirm_code(hash)
    );
    Ok(())
}

fn manifest_meta(m: &Manifest) -> Metadata {
    Metadata {
        namespace: Some(m.namespace.name.clone()),
        nonce: Some(m.namespace.nonce),
        ..Metadata::default()
    }
}

pub fn patch(cmd: PatchCommand) -> CmdResult {
    match cmd {
        PatchCommand::New {
            manifest,
            sequence,
            settings,
            out,
        } => {
            let m = load_manifest(&manifest)?;
            let settings = settings
                .iter()
                .map(|kv| {
                    kv.split_once('=')
                        .filter(|(k, _)| !k.is_empty())
                        .map(|(k, v)| (k.to_owned(), v.to_owned()))
                        .ok_or_else(|| Failure::usage(format!("--set {kv:?}: expected KEY=VALUE")))
                })
                .collect::<Result<BTreeMap<_, _>, _>>()?;
            let patch = Patch {
                version: OBJECT_VERSION,
                namespace: m.namespace.name.clone(),
                manifest_hash: m.hash(),
                sequence,
                settings,
            };
            let env = PatchEnvelope {
                patch: patch.clone(),
                approvals: Vec::new(),
            };
            draft(
                &out,
                BundleKind::Patch,
                manifest_meta(&m),
                &env,
                &patch.hash(),
                &format!("patch sequence {sequence}"),
            )
        }
        PatchCommand::Approve(a) => {
            let p = load_patch(&a.file)?;
            let earlier = a
                .previous
                .iter()
                .map(|p| load_patch(p))
                .collect::<Result<Vec<_>, _>>()?;
            let mut summary = format!(
                "patch for {} (manifest {}), sequence {}{}:",
                p.namespace,
                hex_groups(&p.manifest_hash.0[..8]),
                p.sequence,
                if earlier.is_empty() {
                    ""
                } else {
                    " (~ changed: old -> new, + new)"
                }
            );
            for f in crate::member::fields::patch_diff(&p, &earlier) {
                let _ = write!(summary, "\n{} {} = {}", f.mark.symbol(), f.name, f.shown());
            }
            let meta = Metadata {
                namespace: Some(p.namespace.clone()),
                ..Metadata::default()
            };
            sign_approval(&a, Change::Patch(&p), &summary, meta)
        }
        PatchCommand::Post {
            relay,
            manifest,
            patch,
            approvals,
        } => {
            let m = load_manifest(&manifest)?;
            let p = load_patch(&patch)?;
            let approvals = approved(
                &m,
                &p.manifest_hash,
                &m.patch_set,
                Purpose::Patch,
                &p.hash(),
                &approvals,
            )?;
            let env = PatchEnvelope {
                patch: p,
                approvals,
            };
            let Response::PatchApplied { sequence } =
                expect_ok(Relay::new(&relay).post_cbor("/v1/patch", &env)?)?
            else {
                return Err(Failure::usage(
                    "relay returned an unexpected response to patch",
                ));
            };
            record(
                Record::new("patch.post", format!("applied sequence {sequence}"))
                    .input("patch_envelope", &cbor::encode(&env)),
            );
            checked(format!("enclave applied patch sequence {sequence}"));
            Ok(())
        }
    }
}

pub fn reshard(cmd: ReshardCommand) -> CmdResult {
    match cmd {
        ReshardCommand::New {
            manifest,
            threshold,
            members,
            out,
        } => {
            let m = load_manifest(&manifest)?;
            let new_share_set = set_of(
                "new_share_set",
                &descriptors(&members)?,
                Role::Share,
                threshold,
            )?;
            let r = Reshard {
                version: OBJECT_VERSION,
                namespace: m.namespace.name.clone(),
                manifest_hash: m.hash(),
                new_share_set,
            };
            let env = ReshardEnvelope {
                reshard: r.clone(),
                approvals: Vec::new(),
            };
            draft(
                &out,
                BundleKind::Genesis,
                manifest_meta(&m),
                &env,
                &r.hash(),
                "reshard",
            )
        }
        ReshardCommand::Approve(a) => {
            let r = load_reshard(&a.file)?;
            let mut summary = format!(
                "reshard of {} (manifest {}) to {} of {}:",
                r.namespace,
                hex_groups(&r.manifest_hash.0[..8]),
                r.new_share_set.threshold,
                r.new_share_set.members.len()
            );
            for m in &r.new_share_set.members {
                let _ = write!(summary, "\n  {} {}", m.alias, m.public_key.fingerprint());
            }
            let meta = Metadata {
                namespace: Some(r.namespace.clone()),
                ..Metadata::default()
            };
            sign_approval(&a, Change::Reshard(&r), &summary, meta)
        }
        ReshardCommand::Post {
            relay,
            manifest,
            reshard,
            approvals,
            out,
        } => {
            let m = load_manifest(&manifest)?;
            let r = load_reshard(&reshard)?;
            let approvals = approved(
                &m,
                &r.manifest_hash,
                &m.manifest_set,
                Purpose::Reshard,
                &r.hash(),
                &approvals,
            )?;
            let env = ReshardEnvelope {
                reshard: r,
                approvals,
            };
            let Response::Resharded {
                output,
                attestation,
            } = expect_ok(Relay::new(&relay).post_cbor("/v1/reshard", &env)?)?
            else {
                return Err(Failure::usage(
                    "relay returned an unexpected response to reshard",
                ));
            };
            if output.body.quorum_public_key != m.namespace.quorum_public_key {
                return Err(Failure::refused(
                    "the reshard output carries a different quorum key",
                ));
            }
            let path = store_genesis(&out, manifest_meta(&m), &output, &attestation)?;
            record(
                Record::new("reshard.post", "resharded")
                    .input("reshard_envelope", &cbor::encode(&env))
                    .output("genesis_output", &cbor::encode(&output)),
            );
            checked(format!(
                "same quorum key {}, new shares {}-of-{} -> {}",
                m.namespace.quorum_public_key.signing.fingerprint(),
                output.body.threshold,
                output.body.shares.len(),
                path.display()
            ));
            Ok(())
        }
    }
}
