//! The disaster-recovery key, offline: make an X25519 DR identity, drill the recovery (decrypt
//! the genesis's DR wrap, prove it is the namespace's seed, show only its fingerprint), and, as
//! the last resort, restore the seed to a new share set.
//!
//! Every path first verifies the genesis attestation that binds the output and its wrap
//! ([`super::ceremony::verify_genesis`]); the decision that a wrap holds this namespace's seed is
//! [`tessera_core::dr::recover`]. The seed is never printed, written or put in an error; it lives
//! in a zeroizing [`QuorumSeed`] for the few lines that use it.

use std::io::Write;
use std::path::{Path, PathBuf};

use airgap_bundle::{BundleKind, Metadata};
use tessera_core::age_share::{DeviceIdentity, PivP256Recipient};
use tessera_core::cbor;
use tessera_core::dr::{self, DrError, DrRecipient, X25519Identity};
use tessera_core::keys::Role;
use tessera_core::manifest::MemberSet;
use tessera_core::objects::GenesisOutput;
use tessera_core::quorum::QuorumSeed;
use tessera_core::transcript::Record;
use zeroize::Zeroizing;

use super::ceremony::{VerifyArgs, descriptors, open, set_of, verify_genesis};
use super::common::{CmdResult, Failure, checked, read, record};
use super::objects::{load, save};
use crate::devices::{DeviceArgs, SlotsArg};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Make an X25519 disaster-recovery identity file (mode 0600) on an offline machine and
    /// print its recipient, for `genesis run --dr-recipient`.
    Keygen {
        /// The identity file to create (never overwritten).
        #[arg(short, long)]
        out: PathBuf,
    },
    /// Drill the recovery offline: decrypt the DR wrap of a genesis, check it derives the
    /// namespace's quorum key, print only its fingerprint, and record the drill.
    Drill(Source),
    /// LAST RESORT: recover the seed with the DR key and split it to a new share set (new
    /// member descriptors and threshold), for a later manifest. Asks for a typed confirmation.
    Restore {
        #[command(flatten)]
        source: Source,
        /// The new share set's threshold.
        #[arg(long)]
        threshold: u8,
        /// Member descriptors of the new share set.
        #[arg(long = "member", required = true)]
        members: Vec<PathBuf>,
        /// Member descriptors of the Manifest set the restored output puts on record (their
        /// Manifest keys); default: the new share set's members. Members who verify the restore
        /// pin this set, as they pinned genesis's.
        #[arg(long = "manifest-member", value_name = "FILE")]
        manifest_members: Vec<PathBuf>,
        /// Approvals that Manifest set needs; default: --threshold.
        #[arg(long)]
        manifest_threshold: Option<u8>,
        /// Type `restore NAMESPACE` to confirm that the share set is to be replaced.
        #[arg(long)]
        confirm: Option<String>,
        /// Directory for the restored `genesis-output.tbundle`.
        #[arg(short, long)]
        out: PathBuf,
    },
}

/// The genesis to recover from and the DR key to recover with.
#[derive(clap::Args)]
pub struct Source {
    /// The namespace's genesis output (`genesis-output.tbundle` from `genesis run`).
    output: PathBuf,
    /// Its genesis attestation (`genesis-attestation.cbor`).
    #[arg(long)]
    attestation: PathBuf,
    /// The genesis image's PCR0-2 as JSON (as for `genesis verify`).
    #[arg(long)]
    pcrs: PathBuf,
    /// Trust anchor PEM; default: the pinned AWS Nitro root G1.
    #[arg(long)]
    root: Option<PathBuf>,
    /// Validation time of the attestation: doc (default: when genesis ran, since a drill comes
    /// long after), now, or RFC 3339.
    #[arg(long, default_value = "doc")]
    at: String,
    /// Refuse documents older than this (seconds) relative to the validation time.
    #[arg(long, default_value_t = 3600)]
    max_age_secs: u64,
    #[command(flatten)]
    key: KeyArgs,
}

/// Where the DR key is: an X25519 identity file, or a YubiKey (its Share slot) kept offline.
#[derive(clap::Args)]
pub struct KeyArgs {
    /// An X25519 DR identity file (`AGE-SECRET-KEY-1…`, readable by its owner only).
    #[arg(long, value_name = "FILE", required_unless_present_any = ["serial", "software"], conflicts_with_all = ["serial", "software"])]
    identity: Option<PathBuf>,
    /// Serial of the DR YubiKey; its Share slot (82 unless --slots says otherwise) holds the
    /// `age1yubikey1…` DR key.
    #[arg(long, value_name = "N", conflicts_with = "software")]
    serial: Option<u32>,
    /// A software key file as the DR device (DEV/TEST ONLY).
    #[arg(long, value_name = "KEYFILE")]
    software: Option<PathBuf>,
    #[command(flatten)]
    slots: SlotsArg,
    /// Read the YubiKey PIN from the first line of this file instead of prompting.
    #[arg(long, value_name = "FILE")]
    pin_file: Option<PathBuf>,
}

pub fn run(cmd: Command) -> CmdResult {
    match cmd {
        Command::Keygen { out } => keygen(&out),
        Command::Drill(source) => drill(&source),
        Command::Restore {
            source,
            threshold,
            members,
            manifest_members,
            manifest_threshold,
            confirm,
            out,
        } => {
            let descs = descriptors(&members)?;
            let share_set = set_of("share_set", &descs, Role::Share, threshold)?;
            let (_, manifest_set) = super::ceremony::manifest_set_of(
                &descs,
                &manifest_members,
                manifest_threshold.unwrap_or(threshold),
            )?;
            restore(&source, &share_set, &manifest_set, confirm.as_deref(), &out)
        }
    }
}

fn keygen(out: &Path) -> CmdResult {
    use std::os::unix::fs::OpenOptionsExt;
    let (secret, recipient) = dr::generate_x25519();
    let text = Zeroizing::new(format!(
        "# Tessera disaster-recovery identity: it opens the whole quorum seed. Keep it offline.\n# public key: {recipient}\n{}\n",
        secret.as_str()
    ));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(out)
        .map_err(|e| Failure::usage(format!("{}: {e}", out.display())))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| Failure::usage(format!("{}: {e}", out.display())))?;
    println!("DR identity written to {} (mode 0600)", out.display());
    println!("recipient: {recipient}");
    record(Record::new(
        "dr.keygen",
        format!("created DR key {recipient}"),
    ));
    Ok(())
}

/// Reads an X25519 identity file; refuses one that others may read. Nothing of the file's
/// content appears in any error.
fn load_identity(path: &Path) -> Result<X25519Identity, Failure> {
    use std::os::unix::fs::PermissionsExt;
    let meta =
        std::fs::metadata(path).map_err(|e| Failure::usage(format!("{}: {e}", path.display())))?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(Failure::refused(format!(
            "{}: readable by others (mode {:o}); a DR identity must be its owner's only: chmod 600 it",
            path.display(),
            meta.permissions().mode() & 0o777
        )));
    }
    let bytes = Zeroizing::new(read(path)?);
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| Failure::usage(format!("{}: not a text identity file", path.display())))?;
    X25519Identity::parse_file(text).map_err(|e| Failure::usage(format!("{}: {e}", path.display())))
}

fn dr_failure(e: DrError) -> Failure {
    match e {
        DrError::Device(d) => Failure::from(d),
        other => Failure::refused(other.to_string()),
    }
}

/// Verifies the genesis and recovers its seed with the DR key. Returns the output, the seed and
/// the label of what decrypted it.
fn recover(src: &Source, purpose: &str) -> Result<(GenesisOutput, QuorumSeed, String), Failure> {
    let output = load(&src.output, BundleKind::Genesis, GenesisOutput::decode)?;
    let doc = read(&src.attestation)?;
    let verify = VerifyArgs {
        root: src.root.clone(),
        at: src.at.clone(),
        max_age_secs: src.max_age_secs,
    };
    verify_genesis(&output, &doc, &src.pcrs, &verify)?;
    let (wrap, recipient) = dr::wrap_of(&output).map_err(dr_failure)?;
    checked(format!(
        "the attested genesis wraps the seed to DR key {recipient} ({})",
        recipient.kind()
    ));
    let key = &src.key;
    let (seed, label) = if let Some(path) = &key.identity {
        let identity = load_identity(path)?;
        let mine = identity.recipient().to_string();
        if mine != wrap.recipient {
            return Err(Failure::refused(format!(
                "this identity is DR key {mine}, the genesis wrapped its seed to {}: use that key; nothing was decrypted",
                wrap.recipient
            )));
        }
        let seed = dr::recover(&output, identity.decryptor()).map_err(dr_failure)?;
        (seed, format!("identity file {}", path.display()))
    } else {
        let args = DeviceArgs {
            serial: key.serial,
            software: key.software.clone(),
            slots: key.slots.clone(),
            pin_file: key.pin_file.clone(),
        };
        let mut dev = open(&args)?;
        let label = dev.info().label;
        let mine = PivP256Recipient::new(dev.public_key(Role::Share)?);
        if !matches!(&recipient, DrRecipient::PivP256(r) if *r == mine) {
            return Err(Failure::refused(format!(
                "this device's key is {mine}, the genesis wrapped its seed to {}: use that key; nothing was decrypted",
                wrap.recipient
            )));
        }
        let identity = DeviceIdentity::new(dev.as_mut(), Role::Share, purpose)?;
        let seed = dr::recover(&output, |c| identity.decrypt(c)).map_err(dr_failure)?;
        (seed, label)
    };
    Ok((output, seed, label))
}

fn drill(src: &Source) -> CmdResult {
    let (output, seed, label) = recover(
        src,
        "DR drill: decrypt the disaster-recovery wrap (checked, then erased)",
    )?;
    drop(seed);
    let fpr = output.body.quorum_public_key.signing.fingerprint();
    checked(format!(
        "the DR key recovers namespace {}'s seed: it derives quorum key {fpr}, as genesis published (seed erased, never shown)",
        output.body.namespace
    ));
    record(
        Record::new("dr.drill", format!("DR key recovers quorum key {fpr}"))
            .input_hash("genesis_output", &output.hash())
            .input("attestation", &read(&src.attestation)?)
            .device(label),
    );
    println!(
        "DR drill passed for {}: quorum key {fpr}",
        output.body.namespace
    );
    Ok(())
}

fn restore(
    src: &Source,
    set: &MemberSet,
    manifest_set: &MemberSet,
    confirm: Option<&str>,
    out: &Path,
) -> CmdResult {
    // Everything that can be checked without the seed is checked first.
    let original = load(&src.output, BundleKind::Genesis, GenesisOutput::decode)?;
    let namespace = original.body.namespace.clone();
    let threshold = set.threshold;
    let target = out.join("genesis-output.tbundle");
    if target.exists() {
        return Err(Failure::usage(format!(
            "{} exists: choose another --out directory; nothing was decrypted",
            target.display()
        )));
    }
    eprintln!(
        "WARNING: disaster-recovery RESTORE of namespace {namespace}. This recovers the whole quorum seed on this machine and splits it to a NEW share set. Use it only when the current share set can no longer reach its threshold. Run it offline; the old shares stay valid for whoever still holds them."
    );
    println!(
        "restore: namespace {namespace}, quorum key {} (unchanged), new share set {threshold}-of-{}:",
        original.body.quorum_public_key.signing.fingerprint(),
        set.members.len()
    );
    for m in &set.members {
        println!("  {:<16} {}", m.alias, m.public_key.fingerprint());
    }
    println!("{}", super::ceremony::manifest_set_line(manifest_set));
    let phrase = format!("restore {namespace}");
    match confirm {
        Some(c) if c == phrase => {}
        Some(c) => {
            return Err(Failure::refused(format!(
                "--confirm {c:?} is not the confirmation for this restore; nothing was decrypted"
            )));
        }
        None => {
            return Err(Failure::refused(format!(
                "to restore, run again with --confirm \"{phrase}\"; nothing was decrypted"
            )));
        }
    }
    let (original, seed, label) = recover(
        src,
        "DR RESTORE: decrypt the disaster-recovery wrap to re-split the quorum seed",
    )?;
    let dr_recipient: DrRecipient = dr::wrap_of(&original).map_err(dr_failure)?.1;
    let restored = tessera_core::genesis::split_and_seal(
        &seed,
        &namespace,
        set,
        Some(manifest_set),
        Some(&dr_recipient),
    )
    .map_err(|e| Failure::refused(e.to_string()))?;
    drop(seed);
    dr::check_restored(&original, &restored).map_err(Failure::refused)?;
    std::fs::create_dir_all(out).map_err(|e| Failure::usage(format!("{}: {e}", out.display())))?;
    let path = save(
        &target,
        BundleKind::Genesis,
        Metadata {
            namespace: Some(namespace.clone()),
            ..Metadata::default()
        },
        &restored,
    )?;
    checked(format!(
        "restored {threshold}-of-{} share set for {namespace}, signed by quorum key {} (seed erased)",
        restored.body.shares.len(),
        restored.body.quorum_public_key.signing.fingerprint()
    ));
    println!("restored share set -> {}", path.display());
    println!(
        "each new member: tessera genesis verify {} --restored-from {} --attestation {} --pcrs … --dr-recipient {dr_recipient} …",
        path.display(),
        src.output.display(),
        src.attestation.display()
    );
    record(
        Record::new(
            "dr.restore",
            format!(
                "restored {namespace} to a {threshold}-of-{} share set",
                restored.body.shares.len()
            ),
        )
        .input_hash("genesis_output", &original.hash())
        .output("restored_output", &cbor::encode(&restored))
        .device(label),
    );
    Ok(())
}
