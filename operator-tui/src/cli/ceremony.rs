//! The ceremony from the command line: members, genesis, manifests, boot, provisioning and the
//! provisioned app. Each command prints what it checked; signing and decrypting commands show
//! what they will sign and require `--confirm` with the object's short fingerprint.

use std::path::{Path, PathBuf};
use std::time::Duration;

use airgap_bundle::{BundleKind, Metadata};
use serde_bytes::ByteBuf;
use tessera_core::age_share::PivP256Recipient;
use tessera_core::attestation::{self, Policy, TrustAnchor, VerifiedAttestation};
use tessera_core::bytes::{ByteArray, Hash32, hex_groups};
use tessera_core::cbor;
use tessera_core::device::{DeviceKind, KeyDevice, SoftwareKeyDevice};
use tessera_core::keys::Role;
use tessera_core::manifest::{
    EnclaveSpec, MANIFEST_VERSION, Manifest, ManifestEnvelope, Member, MemberSet, Namespace, Pivot,
    RestartPolicy, ShareMember, ShareSet,
};
use tessera_core::objects::{
    DescriptorKey, GenesisOutput, GenesisRequest, MemberDescriptor, OBJECT_VERSION,
    ProvisionRequest,
};
use tessera_core::protocol::{AppRequest, Response};
use tessera_core::provision;
use tessera_core::sign::{Approval, Purpose, signed_message};
use tessera_core::transcript::Record;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::common::{
    CmdResult, Failure, Relay, anchor, checked, read, record, validation_time, write_new,
};
use super::objects::{load, save};
use super::trust::{act_failure, print_review};
use crate::devices::DeviceArgs;
use crate::member::act;
use crate::member::review::{Context, MemberKeys};

pub use crate::member::confirm_code;

/// Requires the confirmation code of `hash`, announced on another channel (the coordinator reads
/// it aloud, or it stands in the ceremony plan). The request for it never shows the code.
pub(crate) fn require_confirm(given: Option<&str>, hash: &Hash32, what: &str) -> CmdResult {
    match given {
        Some(g) if crate::member::code_matches(g, hash) => Ok(()),
        Some(g) => Err(Failure::refused(format!(
            "--confirm {g:?} does not match the {what} of this object: it is not the object that was announced; nothing was signed"
        ))),
        None => Err(Failure::refused(format!(
            "review the above, then run again with --confirm and the {what} the coordinator announced (16 hex digits); nothing was signed"
        ))),
    }
}

pub(crate) fn open(device: &DeviceArgs) -> Result<Box<dyn KeyDevice + Send>, Failure> {
    let d = device.open()?;
    let info = d.info();
    if info.kind == DeviceKind::Software {
        eprintln!("warning: {}", info.label);
    }
    Ok(d)
}

pub(crate) fn now_rfc3339() -> String {
    OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap_or_else(|_| OffsetDateTime::now_utc())
        .format(&Rfc3339)
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// member

#[derive(clap::Subcommand)]
pub enum MemberCommand {
    /// Create a software member (DEV/TEST ONLY): a 0600 key file and its member descriptor.
    InitSoftware {
        #[arg(long)]
        alias: String,
        /// The key file to create.
        #[arg(long)]
        keys: PathBuf,
        /// The member descriptor to write (a `member` bundle).
        #[arg(short, long)]
        out: PathBuf,
    },
    /// Show a member descriptor.
    Show { descriptor: PathBuf },
}

pub fn member(cmd: MemberCommand) -> CmdResult {
    match cmd {
        MemberCommand::InitSoftware { alias, keys, out } => {
            let mut dev = SoftwareKeyDevice::generate(&alias);
            dev.save(&keys)?;
            let descriptor = MemberDescriptor {
                version: OBJECT_VERSION,
                alias: alias.clone(),
                device: DeviceKind::Software,
                serial: None,
                keys: Role::ALL
                    .iter()
                    .map(|&role| {
                        Ok(DescriptorKey {
                            role,
                            public_key: dev.public_key(role)?,
                            slot: None,
                        })
                    })
                    .collect::<Result<_, Failure>>()?,
                created_at: now_rfc3339(),
                attestation: None,
            };
            let path = save(
                &out,
                BundleKind::Member,
                Metadata {
                    member: Some(alias.clone()),
                    ..Metadata::default()
                },
                &descriptor,
            )?;
            println!(
                "SOFTWARE member {alias} (dev/test only): keys {}, descriptor {}",
                keys.display(),
                path.display()
            );
            record(
                Record::new("member.init-software", "created")
                    .output("descriptor", &read(&path)?)
                    .device(format!("software:{alias}")),
            );
            Ok(())
        }
        MemberCommand::Show { descriptor } => {
            let d = load(&descriptor, BundleKind::Member, MemberDescriptor::decode)?;
            println!(
                "member {} ({:?}{})",
                d.alias,
                d.device,
                d.serial.map(|s| format!(" serial {s}")).unwrap_or_default()
            );
            for k in &d.keys {
                println!(
                    "  {:<8} {}  {}",
                    k.role,
                    k.public_key.fingerprint(),
                    PivP256Recipient::new(k.public_key)
                );
            }
            println!("  attestation {}", super::yubikey_policy::describe(&d));
            Ok(())
        }
    }
}

pub(crate) fn descriptors(paths: &[PathBuf]) -> Result<Vec<MemberDescriptor>, Failure> {
    paths
        .iter()
        .map(|p| load(p, BundleKind::Member, MemberDescriptor::decode))
        .collect()
}

/// The `role` keys of these members as a set, validated with errors naming `field`.
pub(crate) fn set_of(
    field: &str,
    descs: &[MemberDescriptor],
    role: Role,
    threshold: u8,
) -> Result<MemberSet, Failure> {
    let members = descs
        .iter()
        .map(|d| {
            d.key(role)
                .map(|public_key| Member {
                    alias: d.alias.clone(),
                    public_key,
                })
                .ok_or_else(|| Failure::refused(format!("member {} has no {role} key", d.alias)))
        })
        .collect::<Result<_, _>>()?;
    let set = MemberSet { threshold, members };
    set.validate(field)
        .map_err(|e| Failure::refused(e.to_string()))?;
    Ok(set)
}

// ---------------------------------------------------------------------------------------------
// genesis

#[derive(clap::Subcommand)]
pub enum GenesisCommand {
    /// Ask the enclave (through the relay) to make a quorum key and split it to the share set.
    Run {
        #[arg(long)]
        relay: String,
        #[arg(long)]
        namespace: String,
        #[arg(long)]
        threshold: u8,
        /// Member descriptors of the share set.
        #[arg(long = "member", required = true)]
        members: Vec<PathBuf>,
        /// Member descriptors of the namespace's first Manifest set (their Manifest keys);
        /// default: the share set's members. Genesis puts the set on record and every member
        /// pins it: later sets take effect only with this set's approvals.
        #[arg(long = "manifest-member", value_name = "FILE")]
        manifest_members: Vec<PathBuf>,
        /// Approvals the first Manifest set needs; default: --threshold.
        #[arg(long)]
        manifest_threshold: Option<u8>,
        /// Also wrap the whole seed to this offline disaster-recovery key (an age recipient:
        /// `age1…` X25519, or `age1yubikey1…` for a YubiKey kept offline). See the runbook.
        #[arg(long, value_name = "RECIPIENT")]
        dr_recipient: Option<String>,
        /// The namespace's YubiKey attestation policy for the share set.
        #[command(flatten)]
        member_attestation: super::yubikey_policy::AttestationArgs,
        /// Directory for genesis-output and genesis-attestation files.
        #[arg(short, long)]
        out: PathBuf,
    },
    /// As a member: verify the genesis attestation and output, check that your share decrypts
    /// and matches its commitment (no reconstruction), and store your encrypted share.
    Verify {
        output: PathBuf,
        #[arg(long)]
        attestation: PathBuf,
        /// The genesis image's PCR0-2 as JSON (as `tessera pcrs IMAGE.eif --json` prints them,
        /// or from builders' statements): genesis sees the whole seed, so only a known image
        /// may have run it.
        #[arg(long)]
        pcrs: PathBuf,
        #[command(flatten)]
        verify: VerifyArgs,
        #[command(flatten)]
        device: DeviceArgs,
        /// Where to store your encrypted share (the age file to your Share key).
        #[arg(long = "share-out")]
        share_out: PathBuf,
        /// Your namespace pins: the verified quorum key is recorded here.
        #[command(flatten)]
        pins: super::trust::PinArgs,
        /// The disaster-recovery key your organisation agreed on (from the ceremony plan). A
        /// genesis that wraps the seed to any DR key is refused unless it is this one.
        #[arg(long, value_name = "RECIPIENT")]
        dr_recipient: Option<String>,
        /// OUTPUT is a share set restored from the disaster-recovery key (`tessera dr
        /// restore`): this is the namespace's original, attested genesis output, whose
        /// attestation `--attestation` is; OUTPUT must keep its namespace and quorum key.
        #[arg(long, value_name = "GENESIS_OUTPUT")]
        restored_from: Option<PathBuf>,
    },
}

/// How attestation documents are checked.
#[derive(clap::Args, Clone)]
pub struct VerifyArgs {
    /// Trust anchor PEM; default: the pinned AWS Nitro root G1. A dev enclave's root must be
    /// pinned here explicitly; `EMULATED` reads an emulated enclave's unsigned documents.
    #[arg(long)]
    pub root: Option<PathBuf>,
    /// Validation time: now, doc or RFC 3339.
    #[arg(long, default_value = "now")]
    pub at: String,
    /// Refuse documents older than this (seconds) relative to the validation time.
    #[arg(long, default_value_t = 3600)]
    pub max_age_secs: u64,
}

pub(crate) fn verify_doc(
    doc: &[u8],
    v: &VerifyArgs,
    policy: Policy,
) -> Result<(VerifiedAttestation, TrustAnchor), Failure> {
    let anchor = anchor(v.root.as_deref())?;
    let at = validation_time(&v.at, doc)?;
    let policy = policy.max_age(Duration::from_secs(v.max_age_secs));
    let verified = attestation::verify(doc, &anchor, at, &policy)
        .map_err(|e| Failure::refused(format!("attestation refused: {e}")))?;
    checked(format!(
        "attestation: {}, module {}, {} old",
        if anchor.is_emulated() {
            "EMULATED enclave, UNSIGNED (no signature chain checked)".to_owned()
        } else {
            format!(
                "COSE signature, chain to {} root {} ({})",
                attestation::anchor_label(&anchor),
                hex_groups(&anchor.sha256()[..8]),
                anchor.subject()
            )
        },
        verified.module_id(),
        humantime(at - verified.timestamp()),
    ));
    Ok((verified, anchor))
}

fn humantime(d: time::Duration) -> String {
    let s = d.whole_seconds().max(0);
    if s < 120 {
        format!("{s}s")
    } else if s < 7200 {
        format!("{}m", s / 60)
    } else {
        format!("{}h", s / 3600)
    }
}

/// Checks that the genesis attestation `doc` comes from the image whose PCR0-2 are in `pcrs` and
/// binds `output` (`user_data` = its hash), then the quorum key's test signature. Everything a
/// genesis output carries, its shares and its DR wrap, is trusted only through this.
pub(crate) fn verify_genesis(
    output: &GenesisOutput,
    doc: &[u8],
    pcrs: &Path,
    verify: &VerifyArgs,
) -> CmdResult {
    let image: serde_json::Value = serde_json::from_slice(&read(pcrs)?)
        .map_err(|e| Failure::usage(format!("{}: {e}", pcrs.display())))?;
    let mut policy = Policy::new().expect_user_data(output.hash().0.to_vec());
    for (i, name) in ["PCR0", "PCR1", "PCR2"].into_iter().enumerate() {
        policy = policy.expect_pcr(i as u8, pcr_from_json(&image, name)?.0.to_vec());
    }
    verify_doc(doc, verify, policy)?;
    checked(format!(
        "genesis ran the expected image (PCR0-2) and bound this output ({})",
        hex_groups(&output.hash().0[..8])
    ));
    output
        .verify_test_signature()
        .map_err(|e| Failure::refused(format!("genesis test signature: {e}")))?;
    checked(format!(
        "test signature by quorum key {}",
        output.body.quorum_public_key.signing.fingerprint()
    ));
    Ok(())
}

/// The Manifest set a genesis or restore puts on record: the Manifest keys of `manifest_members`
/// (default: the share set's descriptors `share`) at `threshold`; with the descriptors it came from.
pub(crate) fn manifest_set_of(
    share: &[MemberDescriptor],
    manifest_members: &[PathBuf],
    threshold: u8,
) -> Result<(Vec<MemberDescriptor>, MemberSet), Failure> {
    let descs = if manifest_members.is_empty() {
        share.to_vec()
    } else {
        descriptors(manifest_members)?
    };
    let set = set_of("manifest_set", &descs, Role::Manifest, threshold)?;
    Ok((descs, set))
}

/// One line on the Manifest set a genesis output puts on record, for `genesis run` and `verify`.
pub(crate) fn manifest_set_line(set: &MemberSet) -> String {
    format!(
        "Manifest set on record: {}",
        crate::member::review::describe_set(set)
    )
}

/// One line on a genesis output's disaster-recovery wrap, for `genesis run` and `verify`.
pub(crate) fn dr_line(output: &GenesisOutput) -> String {
    match &output.body.dr {
        None => "disaster-recovery key: none (the seed exists only as these shares)".to_owned(),
        Some(w) => format!(
            "disaster-recovery key: the whole seed is ALSO wrapped to {} ({})",
            w.recipient,
            w.recipient
                .parse::<tessera_core::dr::DrRecipient>()
                .map_or("unreadable recipient", |r| r.kind())
        ),
    }
}

pub fn genesis(cmd: GenesisCommand) -> CmdResult {
    match cmd {
        GenesisCommand::Run {
            relay,
            namespace,
            threshold,
            members,
            manifest_members,
            manifest_threshold,
            dr_recipient,
            member_attestation,
            out,
        } => {
            let descs = descriptors(&members)?;
            let share_set = set_of("share_set", &descs, Role::Share, threshold)?;
            let (manifest_descs, manifest_set) = manifest_set_of(
                &descs,
                &manifest_members,
                manifest_threshold.unwrap_or(threshold),
            )?;
            super::yubikey_policy::check_descriptors(&descs, &member_attestation)?;
            if !manifest_members.is_empty() {
                super::yubikey_policy::check_descriptors(&manifest_descs, &member_attestation)?;
            }
            if let Some(r) = &dr_recipient {
                r.parse::<tessera_core::dr::DrRecipient>()
                    .map_err(|e| Failure::usage(format!("--dr-recipient: {e}")))?;
            }
            let req = GenesisRequest {
                version: OBJECT_VERSION,
                namespace: namespace.clone(),
                share_set,
                dr_recipient: dr_recipient.clone(),
                manifest_set: Some(manifest_set.clone()),
            };
            let Response::Genesis {
                output,
                attestation,
            } = expect_ok(Relay::new(&relay).post_cbor("/v1/genesis", &req)?)?
            else {
                return Err(Failure::usage(
                    "relay returned an unexpected response to genesis",
                ));
            };
            let meta = Metadata {
                namespace: Some(namespace.clone()),
                ..Metadata::default()
            };
            tessera_core::dr::check_expected(&output, dr_recipient.as_deref())
                .map_err(|e| Failure::refused(format!("the enclave's answer: {e}")))?;
            let path = store_genesis(&out, meta, &output, &attestation)?;
            checked("test signature by the new quorum key");
            if output.body.manifest_set.as_ref() != Some(&manifest_set) {
                return Err(Failure::refused(
                    "the enclave's answer does not record the Manifest set that was asked for; do not distribute it",
                ));
            }
            println!("{}", dr_line(&output));
            println!("{}", manifest_set_line(&manifest_set));
            println!(
                "genesis {namespace}: {}-of-{} shares, quorum key {} -> {}",
                output.body.threshold,
                output.body.shares.len(),
                output.body.quorum_public_key.signing.fingerprint(),
                path.display()
            );
            record(
                Record::new("genesis.run", "ok")
                    .input("request", &cbor::encode(&req))
                    .output("genesis_output", &cbor::encode(&output))
                    .output("attestation", &attestation),
            );
            Ok(())
        }
        GenesisCommand::Verify {
            output,
            attestation,
            pcrs,
            verify,
            device,
            share_out,
            pins,
            dr_recipient,
            restored_from,
        } => {
            let store = pins.store()?;
            let out = load(&output, BundleKind::Genesis, GenesisOutput::decode)?;
            let doc = read(&attestation)?;
            match &restored_from {
                None => verify_genesis(&out, &doc, &pcrs, &verify)?,
                Some(original) => {
                    let original = load(original, BundleKind::Genesis, GenesisOutput::decode)?;
                    verify_genesis(&original, &doc, &pcrs, &verify)?;
                    tessera_core::dr::check_restored(&original, &out).map_err(Failure::refused)?;
                    checked(format!(
                        "RESTORED share set: signed by the attested genesis's quorum key {}, namespace {}",
                        out.body.quorum_public_key.signing.fingerprint(),
                        out.body.namespace
                    ));
                }
            }
            tessera_core::dr::check_expected(&out, dr_recipient.as_deref())
                .map_err(|e| Failure::refused(format!("{e}; nothing was stored")))?;
            checked(dr_line(&out));
            let mut dev = open(&device)?;
            let mine = dev.public_key(Role::Share)?;
            let entry = out
                .body
                .shares
                .iter()
                .find(|s| s.share_key == mine)
                .ok_or_else(|| {
                    Failure::refused(format!(
                        "no share in this genesis for your Share key {}",
                        mine.fingerprint()
                    ))
                })?;
            let share = provision::open_share(
                dev.as_mut(),
                &entry.encrypted_share,
                "check your genesis share (decrypt only)",
            )?;
            share
                .check_commitment(&entry.commitment)
                .map_err(|e| Failure::refused(e.to_string()))?;
            checked(format!(
                "your share (x = {}) decrypts on your device and matches its commitment",
                share.x()
            ));
            drop(share);
            let namespace = out.body.namespace.clone();
            let root = anchor(verify.root.as_deref())?;
            if let Some(set) = &out.body.manifest_set {
                checked(manifest_set_line(set));
            }
            let recorded = crate::member::act::record_genesis(
                &store,
                &out,
                tessera_core::bytes::ByteArray(root.sha256()),
                restored_from.is_some(),
                dev.as_mut(),
            )
            .map_err(|e| super::trust::act_failure(e, "recording the quorum key"))?;
            match recorded {
                crate::member::act::Recorded::Created(p) => checked(format!(
                    "pinned namespace {namespace}: quorum key {}, the Manifest set above, trust anchor {}; recorded on your key device; pin at {}",
                    out.body.quorum_public_key.signing.fingerprint(),
                    crate::member::review::anchor_name(&tessera_core::bytes::ByteArray(
                        root.sha256()
                    )),
                    p.display()
                )),
                crate::member::act::Recorded::Restored(p) => checked(format!(
                    "RESTORED: your pin for {namespace} now trusts the Manifest set above ({})",
                    p.display()
                )),
                crate::member::act::Recorded::Unchanged => checked(format!(
                    "your pin for {namespace} already holds this quorum key"
                )),
            }
            write_new(&share_out, &entry.encrypted_share)?;
            println!(
                "{}: encrypted share stored at {}",
                entry.alias,
                share_out.display()
            );
            record(
                Record::new("genesis.verify", "share checked and stored")
                    .input_hash("genesis_output", &out.hash())
                    .input("attestation", &doc)
                    .output("encrypted_share", &entry.encrypted_share)
                    .device(dev.info().label),
            );
            Ok(())
        }
    }
}

impl From<provision::ProvisionError> for Failure {
    fn from(e: provision::ProvisionError) -> Self {
        match e {
            provision::ProvisionError::Device(d) => Failure::from(d),
            other => Failure::refused(other.to_string()),
        }
    }
}

/// Checks a genesis (or reshard) output's test signature, then writes it and its attestation
/// into `out` as `genesis-output.tbundle` and `genesis-attestation.cbor`.
pub(crate) fn store_genesis(
    out: &Path,
    meta: Metadata,
    output: &GenesisOutput,
    attestation: &[u8],
) -> Result<PathBuf, Failure> {
    output
        .verify_test_signature()
        .map_err(|e| Failure::refused(format!("test signature by the quorum key: {e}")))?;
    std::fs::create_dir_all(out).map_err(|e| Failure::usage(format!("{}: {e}", out.display())))?;
    let path = save(
        &out.join("genesis-output.tbundle"),
        BundleKind::Genesis,
        meta,
        output,
    )?;
    write_new(&out.join("genesis-attestation.cbor"), attestation)?;
    Ok(path)
}

pub(crate) fn expect_ok(r: Response) -> Result<Response, Failure> {
    match r {
        Response::Error { code, message } => Err(Failure::refused(format!(
            "enclave refused ({}): {message}",
            code.as_str()
        ))),
        other => Ok(other),
    }
}

// ---------------------------------------------------------------------------------------------
// manifest

// Parsed once per run: variant size does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(clap::Subcommand)]
pub enum ManifestCommand {
    /// Draft a manifest (coordinator).
    New(Box<NewManifest>),
    /// Show a manifest or envelope field by field; with --previous, the differences.
    Show {
        file: PathBuf,
        #[arg(long)]
        previous: Option<PathBuf>,
        /// Print only the confirmation code (the short fingerprint of the manifest hash).
        #[arg(long)]
        confirm_code: bool,
    },
    /// Review and sign a manifest approval with your Manifest key.
    Approve {
        file: PathBuf,
        #[command(flatten)]
        device: DeviceArgs,
        /// The manifest's confirmation code as shown, to prove it was reviewed.
        #[arg(long)]
        confirm: Option<String>,
        /// Where the last manifest you approved per namespace is kept (the baseline of the diff).
        #[arg(long)]
        state_dir: Option<PathBuf>,
        #[command(flatten)]
        pins: super::trust::PinArgs,
        #[command(flatten)]
        reproduce: super::trust::ReproduceArgs,
        /// Trust anchor PEM for the PCR policy's mode; default: the pinned AWS Nitro root G1.
        #[arg(long)]
        root: Option<PathBuf>,
        /// A member descriptor bundle the coordinator distributed (repeat for each member): its
        /// keys must be the manifest's for that alias, and its YubiKey attestation is judged by
        /// the policy below, one line per member.
        #[arg(long = "member", value_name = "FILE")]
        members: Vec<PathBuf>,
        #[command(flatten)]
        attestation: super::yubikey_policy::AttestationArgs,
        #[arg(short, long)]
        out: PathBuf,
    },
    /// Collect approvals into an envelope; refuses below threshold.
    Envelope {
        manifest: PathBuf,
        #[arg(long = "approval", required = true)]
        approvals: Vec<PathBuf>,
        #[arg(short, long)]
        out: PathBuf,
    },
}

#[derive(clap::Args)]
pub struct NewManifest {
    #[arg(long)]
    namespace: String,
    #[arg(long)]
    nonce: u64,
    /// The genesis output: quorum key, share set and commitments.
    #[arg(long)]
    genesis: PathBuf,
    /// PCRs as JSON (`{"PCR0": hex, ...}`, as `tessera pcrs --json` or the dev enclave write).
    #[arg(long)]
    pcrs: PathBuf,
    #[arg(long = "manifest-member", required = true)]
    manifest_members: Vec<PathBuf>,
    #[arg(long)]
    manifest_threshold: u8,
    #[arg(long = "patch-member", required = true)]
    patch_members: Vec<PathBuf>,
    #[arg(long)]
    patch_threshold: u8,
    /// The pivot application binary (its SHA-256 goes into the manifest).
    #[arg(long, conflicts_with = "app_sha256")]
    app: Option<PathBuf>,
    #[arg(long)]
    app_sha256: Option<String>,
    #[arg(long = "arg", allow_hyphen_values = true)]
    args: Vec<String>,
    /// The vsock port the app listens on for outside traffic; the relay bridges a host TCP
    /// port to it once the enclave is provisioned. Without it the app takes no outside traffic.
    #[arg(long, value_name = "PORT")]
    app_ingress_port: Option<u32>,
    /// The namespace's YubiKey attestation policy for the Manifest and Patch sets.
    #[command(flatten)]
    member_attestation: super::yubikey_policy::AttestationArgs,
    #[arg(short, long)]
    out: PathBuf,
}

fn pcr_from_json(v: &serde_json::Value, name: &str) -> Result<tessera_core::bytes::Pcr, Failure> {
    let m = v.get("Measurements").unwrap_or(v);
    match m.get(name).and_then(serde_json::Value::as_str) {
        Some(h) => ByteArray::from_hex(h).map_err(|e| Failure::usage(format!("{name}: {e}"))),
        None if name == "PCR3" => Ok(ByteArray([0; 48])),
        None => Err(Failure::usage(format!("PCR file has no {name}"))),
    }
}

fn new_manifest(a: &NewManifest) -> CmdResult {
    let genesis = load(&a.genesis, BundleKind::Genesis, GenesisOutput::decode)?;
    genesis
        .verify_test_signature()
        .map_err(|e| Failure::refused(format!("genesis test signature: {e}")))?;
    let pcrs: serde_json::Value = serde_json::from_slice(&read(&a.pcrs)?)
        .map_err(|e| Failure::usage(format!("{}: {e}", a.pcrs.display())))?;
    let app_sha256 = match (&a.app, &a.app_sha256) {
        (Some(p), _) => Hash32::sha256(&read(p)?),
        (None, Some(h)) => Hash32::from_hex(h).map_err(Failure::usage)?,
        (None, None) => return Err(Failure::usage("give --app or --app-sha256")),
    };
    let manifest_descs = descriptors(&a.manifest_members)?;
    let patch_descs = descriptors(&a.patch_members)?;
    let mut attested = manifest_descs.clone();
    attested.extend(
        patch_descs
            .iter()
            .filter(|p| !manifest_descs.contains(p))
            .cloned(),
    );
    super::yubikey_policy::check_descriptors(&attested, &a.member_attestation)?;
    let manifest = Manifest {
        version: MANIFEST_VERSION,
        namespace: Namespace {
            name: a.namespace.clone(),
            nonce: a.nonce,
            quorum_public_key: genesis.body.quorum_public_key,
            dr_recipient: genesis.body.dr.as_ref().map(|w| w.recipient.clone()),
        },
        enclave: EnclaveSpec {
            pcr0: pcr_from_json(&pcrs, "PCR0")?,
            pcr1: pcr_from_json(&pcrs, "PCR1")?,
            pcr2: pcr_from_json(&pcrs, "PCR2")?,
            pcr3: pcr_from_json(&pcrs, "PCR3")?,
            debug_allowed: false,
        },
        pivot: Pivot {
            app_sha256,
            args: a.args.clone(),
            restart: RestartPolicy::Never,
            ingress_port: a.app_ingress_port,
        },
        manifest_set: set_of(
            "manifest_set",
            &manifest_descs,
            Role::Manifest,
            a.manifest_threshold,
        )?,
        share_set: ShareSet {
            threshold: genesis.body.threshold,
            members: genesis
                .body
                .shares
                .iter()
                .map(|s| ShareMember {
                    alias: s.alias.clone(),
                    public_key: s.share_key,
                    commitment: s.commitment,
                })
                .collect(),
        },
        patch_set: set_of("patch_set", &patch_descs, Role::Patch, a.patch_threshold)?,
    };
    manifest
        .validate()
        .map_err(|e| Failure::refused(e.to_string()))?;
    let meta = Metadata {
        namespace: Some(a.namespace.clone()),
        nonce: Some(a.nonce),
        ..Metadata::default()
    };
    let path = save(&a.out, BundleKind::Manifest, meta, &manifest)?;
    println!(
        "manifest {} nonce {} hash {} -> {}",
        a.namespace,
        a.nonce,
        manifest.hash(),
        path.display()
    );
    println!("confirmation code: {}", confirm_code(&manifest.hash()));
    Ok(())
}

/// A manifest file may hold a bare manifest or an envelope.
pub(crate) fn load_manifest(path: &Path) -> Result<Manifest, Failure> {
    load(path, BundleKind::Manifest, |b| {
        Manifest::decode(b).or_else(|_| ManifestEnvelope::decode(b).map(|e| e.manifest))
    })
}

pub use crate::member::fields::manifest_fields;

fn print_manifest(m: &Manifest, previous: Option<&Manifest>) {
    println!(
        "manifest {} nonce {}, hash {}",
        m.namespace.name,
        m.namespace.nonce,
        m.hash()
    );
    for f in crate::member::fields::diff(m, previous) {
        let value = match (&f.old, f.mark) {
            (Some(o), crate::member::fields::Mark::Changed) => format!("{o} -> {}", f.value),
            (Some(o), crate::member::fields::Mark::Removed) => format!("(removed; was {o})"),
            _ => f.value.clone(),
        };
        println!("{} {:<34} {value}", f.mark.symbol(), f.name);
    }
    if let Some(p) = previous {
        println!(
            "(compared with the manifest of nonce {}; ~ changed, + added, - removed)",
            p.namespace.nonce
        );
    }
}

fn state_path(dir: Option<&Path>, namespace: &str) -> Option<PathBuf> {
    let base = dir.map(Path::to_path_buf).or_else(|| {
        std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share/tessera/approved"))
    })?;
    Some(base.join(format!("{namespace}.manifest")))
}

pub fn manifest(cmd: ManifestCommand) -> CmdResult {
    match cmd {
        ManifestCommand::New(a) => new_manifest(&a),
        ManifestCommand::Show {
            file,
            previous,
            confirm_code: code_only,
        } => {
            let m = load_manifest(&file)?;
            if code_only {
                println!("{}", confirm_code(&m.hash()));
                return Ok(());
            }
            let prev = previous.as_deref().map(load_manifest).transpose()?;
            print_manifest(&m, prev.as_ref());
            Ok(())
        }
        ManifestCommand::Approve {
            file,
            device,
            confirm,
            state_dir,
            pins,
            reproduce,
            root,
            members,
            attestation,
            out,
        } => {
            let m = load_manifest(&file)?;
            let store = pins.store()?;
            let judge = attestation.judge(descriptors(&members)?)?;
            if let Some(j) = &judge {
                super::yubikey_policy::announce(j);
            }
            let last_path = state_path(state_dir.as_deref(), &m.namespace.name);
            let last = match &last_path {
                Some(p) if p.exists() => Some(load_manifest(p)?),
                _ => None,
            };
            print_manifest(&m, last.as_ref());
            let anchor = anchor(root.as_deref())?;
            let reproduced = reproduce.reproduce()?;
            let mut dev = open(&device)?;
            let keys = MemberKeys::read(dev.as_mut());
            let ctx = Context {
                anchor: &anchor,
                at: OffsetDateTime::now_utc(),
                at_is_clock: true,
                max_age: Duration::from_hours(1),
                reproduced: reproduced.as_ref(),
                keys: &keys,
            };
            let pin = act::lookup(&store, &m.namespace.name, &keys, dev.as_mut());
            let members = judge.as_ref().map(|j| j.evidence(ctx.at));
            let review =
                crate::member::review::approve_manifest_with(&pin, &m, &ctx, members.as_ref());
            print_review(&review);
            if let Some(why) = review.refusal() {
                return Err(Failure::refused(format!("{why}\nnothing was signed")));
            }
            println!(
                "sign: manifest approval, namespace {} nonce {}, hash {}, with {}",
                m.namespace.name,
                m.namespace.nonce,
                m.hash(),
                dev.info().label,
            );
            require_confirm(confirm.as_deref(), &m.hash(), "manifest confirmation code")?;
            let (approval, review) =
                act::approve_manifest_with(&store, &m, &ctx, members.as_ref(), dev.as_mut())
                    .map_err(|e| act_failure(e, "the approval"))?;
            let meta = Metadata {
                namespace: Some(m.namespace.name.clone()),
                nonce: Some(m.namespace.nonce),
                ..Metadata::default()
            };
            let path = save(&out, BundleKind::Approval, meta.clone(), &approval)?;
            if let Some(p) = &review.pin_after {
                checked(format!("pin moved: {}", p.summary()));
            }
            if let Some(p) = last_path {
                if let Some(dir) = p.parent() {
                    std::fs::create_dir_all(dir)
                        .map_err(|e| Failure::usage(format!("{}: {e}", dir.display())))?;
                }
                let _ = std::fs::remove_file(&p);
                save(&p, BundleKind::Manifest, meta, &m)?;
            }
            println!("approval written to {}", path.display());
            record(
                Record::new("manifest.approve", "approved")
                    .input_hash("manifest", &m.hash())
                    .output("approval", &cbor::encode(&approval))
                    .device(dev.info().label),
            );
            Ok(())
        }
        ManifestCommand::Envelope {
            manifest,
            approvals,
            out,
        } => {
            let m = load_manifest(&manifest)?;
            let approvals: Vec<Approval> = approvals
                .iter()
                .map(|p| {
                    load(p, BundleKind::Approval, |b| {
                        cbor::decode::<Approval>(b, "approval")
                    })
                })
                .collect::<Result<_, _>>()?;
            let mut env = ManifestEnvelope {
                manifest: m,
                approvals: Vec::new(),
            };
            for a in approvals {
                env.add_approval(a);
            }
            let report = env.manifest.check_approvals(&env.approvals);
            println!("approved by: {}", report.approved.join(", "));
            println!("not yet:     {}", report.missing.join(", "));
            for r in &report.rejected {
                println!("not counted: {r}");
            }
            report
                .require()
                .map_err(|e| Failure::refused(e.to_string()))?;
            checked(format!(
                "{} of {} Manifest-set approvals",
                report.approved.len(),
                report.threshold
            ));
            let meta = Metadata {
                namespace: Some(env.manifest.namespace.name.clone()),
                nonce: Some(env.manifest.namespace.nonce),
                ..Metadata::default()
            };
            let path = save(&out, BundleKind::Manifest, meta, &env)?;
            println!("envelope written to {}", path.display());
            record(
                Record::new(
                    "manifest.envelope",
                    format!("threshold met: {}", report.approved.join(", ")),
                )
                .input_hash("manifest", &env.manifest.hash())
                .output("envelope", &env.encode()),
            );
            Ok(())
        }
    }
}

// ---------------------------------------------------------------------------------------------
// boot, status, app

pub fn boot(relay: &str, envelope: &Path, verify: &VerifyArgs) -> CmdResult {
    boot_at(relay, "/v1/boot", envelope, verify, |manifest, key| {
        (
            format!("enclave booted manifest {manifest} with ephemeral key {key}"),
            Record::new("boot", "booted"),
        )
    })
}

/// Posts an approved envelope to `path` (`/v1/boot`, or `/v1/join` for a node that waits for a
/// forwarded key), and verifies the attestation that comes back: the manifest's PCRs, the
/// envelope's hash as `user_data` and the ephemeral key as `public_key`. `said` names the result
/// line and the transcript record from the short manifest hash and ephemeral key.
pub(crate) fn boot_at(
    relay: &str,
    path: &str,
    envelope: &Path,
    verify: &VerifyArgs,
    said: impl FnOnce(&str, &str) -> (String, Record),
) -> CmdResult {
    let env = load(envelope, BundleKind::Manifest, ManifestEnvelope::decode)?;
    let report = env.verify().map_err(|e| Failure::refused(e.to_string()))?;
    checked(format!("approvals by {}", report.approved.join(", ")));
    let Response::Booted {
        manifest_hash,
        ephemeral_key,
        attestation,
    } = expect_ok(Relay::new(relay).post_cbor(path, &env)?)?
    else {
        return Err(Failure::usage(format!(
            "relay returned an unexpected response to {path}"
        )));
    };
    verify_doc(
        &attestation,
        verify,
        crate::member::review::manifest_policy(&env.manifest, &env.manifest.hash())
            .expect_public_key(ephemeral_key.0.to_vec()),
    )?;
    let (line, rec) = said(
        &hex_groups(&manifest_hash.0[..8]),
        &hex_groups(&ephemeral_key.0[..8]),
    );
    checked(line);
    record(
        rec.input_hash("envelope", &cbor::hash(&env))
            .output("attestation", &attestation),
    );
    Ok(())
}

pub fn status(relay: &str, json: bool) -> CmdResult {
    let body = Relay::new(relay).get("/v1/status")?;
    if json {
        println!("{}", String::from_utf8_lossy(&body));
        return Ok(());
    }
    let v: serde_json::Value =
        serde_json::from_slice(&body).map_err(|e| Failure::usage(e.to_string()))?;
    for (k, val) in v.as_object().into_iter().flatten() {
        println!("{k:<16} {val}");
    }
    Ok(())
}

pub fn app_sign(relay: &str, envelope: &Path, message: &str) -> CmdResult {
    let env = load(envelope, BundleKind::Manifest, |b| {
        ManifestEnvelope::decode(b)
            .map(|e| e.manifest)
            .or_else(|_| Manifest::decode(b))
    })?;
    let req = AppRequest::Sign {
        message: ByteBuf::from(message.as_bytes().to_vec()),
    };
    let Response::AppSignature { signature } =
        expect_ok(Relay::new(relay).post_cbor("/v1/app", &req)?)?
    else {
        return Err(Failure::usage(
            "relay returned an unexpected response to app sign",
        ));
    };
    let msg = signed_message(Purpose::AppMessage, &Hash32::sha256(message.as_bytes()));
    env.namespace
        .quorum_public_key
        .signing
        .verify(&msg, &signature)
        .map_err(|_| {
            Failure::refused(
                "the enclave's signature does not verify with the manifest's quorum key",
            )
        })?;
    checked(format!(
        "enclave signed {message:?}; signature verifies with quorum key {}",
        env.namespace.quorum_public_key.signing.fingerprint()
    ));
    println!("{}", signature.0.to_hex());
    record(
        Record::new("app.sign", "signature verified")
            .input("message", message.as_bytes())
            .output("signature", &signature.0.0),
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// provision

#[derive(clap::Subcommand)]
pub enum ProvisionCommand {
    /// Online: fetch a request bundle (envelope + fresh attestation) from the relay.
    Request {
        #[arg(long)]
        relay: String,
        /// Optional nonce (hex) for the enclave to bind into the attestation.
        #[arg(long)]
        nonce: Option<String>,
        /// Directory (or new file) for the request bundle.
        #[arg(short, long)]
        out: PathBuf,
    },
    /// Offline: verify the request, decrypt your share on your device, re-encrypt it to the
    /// attested enclave, sign the receipt, and write a share bundle.
    Sign(Box<SignArgs>),
    /// Online: post a share bundle to the relay.
    Post {
        #[arg(long)]
        relay: String,
        bundle: PathBuf,
    },
}

#[derive(clap::Args)]
pub struct SignArgs {
    request: PathBuf,
    /// Your encrypted share (the age file stored at genesis).
    #[arg(long)]
    share: PathBuf,
    #[command(flatten)]
    verify: VerifyArgs,
    #[command(flatten)]
    reproduce: super::trust::ReproduceArgs,
    #[command(flatten)]
    device: DeviceArgs,
    #[command(flatten)]
    pins: super::trust::PinArgs,
    /// The manifest's confirmation code as announced by the coordinator.
    #[arg(long)]
    confirm: Option<String>,
    /// Directory (or new file) for the share bundle.
    #[arg(short, long)]
    out: PathBuf,
}

fn provision_sign(a: &SignArgs) -> CmdResult {
    let req = load(&a.request, BundleKind::Request, ProvisionRequest::decode)?;
    let m = &req.envelope.manifest;
    let manifest_hash = m.hash();
    let store = a.pins.store()?;
    let anchor = anchor(a.verify.root.as_deref())?;
    let at_is_clock = a.verify.at == "now";
    let at = validation_time(&a.verify.at, &req.attestation)?;
    let reproduced = a.reproduce.reproduce()?;
    let sealed = read(&a.share)?;
    let mut dev = open(&a.device)?;
    let keys = MemberKeys::read(dev.as_mut());
    let ctx = Context {
        anchor: &anchor,
        at,
        at_is_clock,
        max_age: Duration::from_secs(a.verify.max_age_secs),
        reproduced: reproduced.as_ref(),
        keys: &keys,
    };
    let pin = act::lookup(&store, &m.namespace.name, &keys, dev.as_mut());
    let review = crate::member::review::hand_over(&pin, &req, Some(&sealed), &ctx);
    print_review(&review);
    if let Some(why) = review.refusal() {
        return Err(Failure::refused(format!(
            "{why}\nyour share was not handed over"
        )));
    }
    println!(
        "decrypt and hand over: your share ({}, {}) to the enclave of manifest {} (namespace {}, nonce {}), ephemeral key {}",
        review.member.as_deref().unwrap_or("?"),
        dev.info().label,
        manifest_hash,
        m.namespace.name,
        m.namespace.nonce,
        review
            .ephemeral
            .map(|k| hex_groups(&k.0[..8]))
            .unwrap_or_default()
    );
    require_confirm(
        a.confirm.as_deref(),
        &manifest_hash,
        "manifest confirmation code",
    )?;
    // Decided again at the moment the share leaves: the document must still be fresh then.
    let now = Context {
        at: if at_is_clock {
            OffsetDateTime::now_utc()
        } else {
            at
        },
        ..ctx
    };
    let done = act::hand_over(&store, &req, &sealed, &now, dev.as_mut())
        .map_err(|e| act_failure(e, "the hand-over"))?;
    checked(format!(
        "share x = {} decrypted on your device and matches its commitment",
        done.x
    ));
    checked(
        "share re-encrypted to the enclave's ephemeral key; receipt signed with your Share key",
    );
    if let Some(p) = &done.pin {
        checked(format!(
            "pin moved to nonce {} ({})",
            m.namespace.nonce,
            p.display()
        ));
    }
    let meta = Metadata {
        namespace: Some(m.namespace.name.clone()),
        member: done.review.member.clone(),
        nonce: Some(m.namespace.nonce),
        ..Metadata::default()
    };
    let path = save(&a.out, BundleKind::Share, meta, &done.submission)?;
    println!("share bundle written to {}", path.display());
    record(
        Record::new("provision.sign", "share handed over")
            .input("request", &cbor::encode(&req))
            .input_hash("manifest", &manifest_hash)
            .output("share_submission", &cbor::encode(&done.submission))
            .device(dev.info().label),
    );
    Ok(())
}

pub fn provision(cmd: ProvisionCommand) -> CmdResult {
    match cmd {
        ProvisionCommand::Request { relay, nonce, out } => {
            let q = nonce.map(|n| format!("?nonce={n}")).unwrap_or_default();
            let bytes = Relay::new(&relay).get(&format!("/v1/request-bundle{q}"))?;
            let bundle = airgap_bundle::Bundle::decode(&bytes)
                .map_err(|e| Failure::refused(format!("request bundle: {e}")))?;
            if bundle.kind() != BundleKind::Request {
                return Err(Failure::refused(format!(
                    "relay sent a {} bundle, expected request",
                    bundle.kind()
                )));
            }
            let path = if out.is_dir() {
                airgap_bundle::usb::write_bundle(&out, &bundle)
                    .map_err(|e| Failure::usage(e.to_string()))?
            } else {
                write_new(&out, &bytes)?;
                out
            };
            println!(
                "request bundle {} written to {}",
                bundle.fingerprint(),
                path.display()
            );
            record(Record::new("provision.request", "fetched").output("request_bundle", &bytes));
            Ok(())
        }
        ProvisionCommand::Sign(a) => provision_sign(&a),
        ProvisionCommand::Post { relay, bundle } => {
            let bytes = read(&bundle)?;
            let body =
                Relay::new(&relay).post("/v1/share-bundle", "application/octet-stream", &bytes)?;
            let v: serde_json::Value =
                serde_json::from_slice(&body).map_err(|e| Failure::usage(e.to_string()))?;
            let provisioned = if v["provisioned"].as_bool() == Some(true) {
                "; the enclave is provisioned"
            } else {
                ""
            };
            let member = v["member"].as_str().unwrap_or("?");
            // A retry after a lost answer: the enclave already holds this identical submission.
            if v["already_accepted"].as_bool() == Some(true) {
                checked(format!(
                    "already accepted: the enclave already holds the share of {member} ({} of {}){provisioned}",
                    v["received"], v["threshold"]
                ));
                record(
                    Record::new("provision.post", "already-accepted").input("share_bundle", &bytes),
                );
                return Ok(());
            }
            checked(format!(
                "enclave accepted the share of {member} ({} of {}){provisioned}",
                v["received"], v["threshold"]
            ));
            record(Record::new("provision.post", "accepted").input("share_bundle", &bytes));
            Ok(())
        }
    }
}
