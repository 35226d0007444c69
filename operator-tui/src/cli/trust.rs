//! `tessera trust`: the member's namespace pins, and the printing of every member-side review.
//! What is trusted and what is decided lives in [`crate::member`]; this module only turns
//! arguments into calls and prints the answers.

use std::path::PathBuf;

use tessera_core::keys::Role;
use tessera_core::transcript::Record;
use time::OffsetDateTime;

use super::ceremony::open;
use super::common::{CmdResult, Failure, record};
use crate::devices::DeviceArgs;
use crate::member::act::{self, ActError};
use crate::member::pin::{PcrPolicy, PinStore};
use crate::member::review::{Review, Verdict};

/// Where the member's namespace pins live.
#[derive(clap::Args, Clone, Debug)]
pub struct PinArgs {
    /// Folder of your namespace pins (default `$TESSERA_PINS`, else `~/.local/share/tessera/pins`).
    /// A pin is signed by your Manifest key and recorded in your key device's pin ledger, so it
    /// may live on your USB stick beside your share: a missing or older copy is refused.
    #[arg(long = "pins", value_name = "DIR")]
    pub pins: Option<PathBuf>,
}

impl PinArgs {
    pub fn store(&self) -> Result<PinStore, Failure> {
        self.pins
            .clone()
            .or_else(PinStore::default_dir)
            .map(PinStore::new)
            .ok_or_else(|| Failure::usage("give --pins DIR (no HOME to default to)"))
    }
}

/// PCR0-2 reproduced on this laptop, for the pin's PCR policy.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct ReproduceArgs {
    /// Reproduce PCR0/1/2 from this EIF (one you built) and require them to equal the manifest's.
    #[arg(long)]
    pub eif: Option<PathBuf>,
    /// Take reproduced PCR0-2 from a builders' statement (JSON), accepted at a threshold of
    /// builder keys from --keyring (and of the builders your pin names, if it names any).
    #[arg(long, requires_all = ["statement_sig", "keyring"])]
    pub statement: Option<PathBuf>,
    /// Detached armored signatures over the statement.
    #[arg(long)]
    pub statement_sig: Vec<PathBuf>,
    /// Directory of builder keys (armored OpenPGP certificates).
    #[arg(long)]
    pub keyring: Option<PathBuf>,
    /// Distinct builders from --keyring that must have signed the statement.
    #[arg(long, default_value_t = 2)]
    pub statement_threshold: usize,
}

impl ReproduceArgs {
    pub fn reproduce(&self) -> Result<Option<crate::member::review::Reproduced>, Failure> {
        crate::member::reproduce::reproduce(
            self.eif.as_deref(),
            &crate::member::reproduce::StatementInput {
                statement: self.statement.clone(),
                signatures: self.statement_sig.clone(),
                keyring: self.keyring.clone(),
                threshold: self.statement_threshold,
            },
        )
        .map_err(Failure::refused)
    }
}

/// Prints a review: one line per check, refusals with their next step.
pub fn print_review(r: &Review) {
    println!(
        "review: {} (namespace {})",
        r.action.describe(),
        r.namespace
    );
    for c in &r.checks {
        let mark = match c.verdict {
            Verdict::Pass => "  ✓",
            Verdict::Warn => "  !",
            Verdict::Fail => "  ✗",
        };
        println!("{mark} {:<13} {}", c.label, c.detail);
        if c.verdict == Verdict::Fail
            && let Some(n) = &c.next
        {
            println!("    {:<13} next: {n}", "");
        }
    }
}

/// An action's failure as the command's failure; a refusal's review has been printed.
pub fn act_failure(e: ActError, what: &str) -> Failure {
    match e {
        ActError::Refused(r) => {
            print_review(&r);
            Failure::refused(format!(
                "{}\n{what} was refused; nothing was signed or handed over",
                r.refusal().unwrap_or_default()
            ))
        }
        ActError::Device(d) => Failure::from(d),
        ActError::Failed(m) => Failure::refused(format!("{m}; nothing was signed or handed over")),
    }
}

#[derive(clap::Subcommand)]
pub enum TrustCommand {
    /// List your namespace pins, each checked against your Manifest key.
    Show {
        #[command(flatten)]
        device: DeviceArgs,
        #[command(flatten)]
        pins: PinArgs,
    },
    /// Follow a change of the Manifest set (for a member who approves no manifest): ENVELOPE
    /// must carry approvals by the set your pin holds (the one genesis put on record, or one it
    /// approved since) at its threshold; the pin then moves to the envelope's set and nonce.
    /// Needs the manifest's confirmation code, announced by the coordinator.
    ManifestSet {
        manifest: PathBuf,
        #[command(flatten)]
        device: DeviceArgs,
        #[command(flatten)]
        pins: PinArgs,
        #[arg(long)]
        confirm: Option<String>,
        /// A member descriptor bundle, as the coordinator distributed it (repeat for every
        /// member): its keys must be the manifest's for that alias, and its YubiKey attestation is
        /// judged by the policy below, as `manifest approve` does.
        #[arg(long = "member", value_name = "FILE")]
        members: Vec<PathBuf>,
        #[command(flatten)]
        attestation: super::yubikey_policy::AttestationArgs,
    },
    /// Set how PCR0-2 must be reproduced before you hand over or approve in a namespace.
    PcrPolicy {
        #[arg(long)]
        namespace: String,
        /// Reproduce from an EIF you built (`--eif` at hand-over).
        #[arg(long, conflicts_with_all = ["builder_key", "waive_dev"])]
        eif: bool,
        /// Pinned builder fingerprint (OpenPGP, hex); repeat. Statements must be signed by
        /// --builders-threshold of them.
        #[arg(
            long = "builder-key",
            value_name = "FINGERPRINT",
            requires = "builders_threshold"
        )]
        builder_key: Vec<String>,
        #[arg(long)]
        builders_threshold: Option<u8>,
        /// Do not reproduce (DEV only: refused against the AWS root).
        #[arg(long)]
        waive_dev: bool,
        #[command(flatten)]
        device: DeviceArgs,
        #[command(flatten)]
        pins: PinArgs,
    },
}

pub fn trust(cmd: TrustCommand) -> CmdResult {
    match cmd {
        TrustCommand::Show { device, pins } => {
            let store = pins.store()?;
            let mut dev = open(&device)?;
            let mine = dev.public_key(Role::Manifest)?;
            let ledger = crate::member::pin::ledger_of(dev.as_mut())
                .map_err(|e| Failure::refused(format!("your key device's pin ledger: {e}")))?;
            let list = store.list(&mine, &ledger);
            if list.is_empty() {
                println!("no namespace pins in {}", store.dir().display());
            }
            for (path, r) in list {
                match r {
                    Ok(p) => {
                        println!("{}  (pin #{}, {})", p.summary(), p.sequence, path.display());
                        println!("    PCRs: {}", p.pcr_policy.describe());
                        println!(
                            "    trust anchor: {}; recorded on your key device",
                            crate::member::review::anchor_name(&p.trust_anchor)
                        );
                    }
                    Err(e) => println!("REFUSED {}: {e}", path.display()),
                }
            }
            Ok(())
        }
        TrustCommand::ManifestSet {
            manifest,
            device,
            pins,
            confirm,
            members,
            attestation,
        } => {
            let store = pins.store()?;
            let env = super::changes::load_envelope(&manifest)?;
            let m = &env.manifest;
            let judge = attestation.judge(super::ceremony::descriptors(&members)?)?;
            if let Some(j) = &judge {
                super::yubikey_policy::announce(j);
            }
            let mut dev = open(&device)?;
            let keys = crate::member::review::MemberKeys::read(dev.as_mut());
            let pin = act::lookup(&store, &m.namespace.name, &keys, dev.as_mut());
            let evidence = judge
                .as_ref()
                .map(|j| j.evidence(OffsetDateTime::now_utc()));
            let review = crate::member::review::trust_manifest_set(&pin, &env, evidence.as_ref());
            print_review(&review);
            if let Some(why) = review.refusal() {
                return Err(Failure::refused(format!("{why}\nyour pin is unchanged")));
            }
            super::ceremony::require_confirm(
                confirm.as_deref(),
                &m.hash(),
                "manifest confirmation code",
            )?;
            let (path, _) = act::trust_manifest_set(&store, &env, evidence.as_ref(), dev.as_mut())
                .map_err(|e| act_failure(e, "following the Manifest set"))?;
            match path {
                Some(p) => println!(
                    "pin for {} moved to nonce {} and this Manifest set: {}",
                    m.namespace.name,
                    m.namespace.nonce,
                    p.display()
                ),
                None => println!("pin for {} already holds this manifest", m.namespace.name),
            }
            record(
                Record::new("trust.manifest-set", "recorded")
                    .input_hash("manifest", &m.hash())
                    .device(dev.info().label),
            );
            Ok(())
        }
        TrustCommand::PcrPolicy {
            namespace,
            eif,
            builder_key,
            builders_threshold,
            waive_dev,
            device,
            pins,
        } => {
            let policy = match (eif, builders_threshold, waive_dev) {
                (true, None, false) => PcrPolicy::Eif,
                (false, Some(t), false) if t >= 1 && usize::from(t) <= builder_key.len() => {
                    PcrPolicy::Builders {
                        threshold: t,
                        fingerprints: builder_key
                            .iter()
                            .map(|f| f.replace(' ', "").to_uppercase())
                            .collect(),
                    }
                }
                (false, None, true) => PcrPolicy::WaivedDev,
                _ => {
                    return Err(Failure::usage(
                        "give exactly one of --eif, --builder-key ... --builders-threshold K (1 <= K <= keys), --waive-dev",
                    ));
                }
            };
            let store = pins.store()?;
            let mut dev = open(&device)?;
            let path = act::set_pcr_policy(&store, &namespace, policy.clone(), dev.as_mut())
                .map_err(|e| act_failure(e, "setting the PCR policy"))?;
            println!("{namespace}: {} ({})", policy.describe(), path.display());
            record(Record::new("trust.pcr-policy", policy.describe()).device(dev.info().label));
            Ok(())
        }
    }
}
