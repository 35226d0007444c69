//! `tessera key`: YubiKeys (and dev/test software key files) for a member's role keys.
//!
//! Exit codes: 0 done; 1 the device refused or a check failed (message and hint on stderr);
//! 2 usage or I/O error.

// "YubiKey" is a product name, not an item to link.
#![allow(clippy::doc_markdown)]

use std::fmt::Write as _;
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use serde::Serialize;
use serde_json::json;
use tessera_core::age_share::{PivP256Recipient, plugin_identity};
use tessera_core::device::{DeviceError, DeviceKind, KeyDevice, SoftwareKeyDevice};
use tessera_core::keys::{PublicKey, Role};
use tessera_core::objects::{DescriptorKey, MemberDescriptor, OBJECT_VERSION};
use yubikey::piv::{ManagementSlotId, SlotAlgorithmId, SlotId};
use yubikey::{MgmType, PinPolicy, TouchPolicy, YubiKey};

use crate::devices::{DeviceArgs, DeviceSelector, SlotsArg, open_device};
use crate::piv::provision::{
    self, Outcome, Plan, ProvisionOptions, has_default_management_key, mgm_algorithm_str,
    puk_error, recorded_mgm_algorithm,
};
use crate::piv::{
    FilePinSource, PinRequest, PinSource, SecretKind, SlotMap, connect, device_error, read_slot,
};

#[derive(clap::Subcommand)]
pub enum Command {
    /// List readers and YubiKeys: serial, firmware, role slots, fingerprints, PIN retries.
    List(ListArgs),
    /// Generate role keys on a YubiKey and replace every factory default (shows a plan first).
    Provision(ProvisionArgs),
    /// Write the member descriptor (public keys) to hand to the coordinator.
    Export(ExportArgs),
    /// Sign and ECDH with each role key, checked in software.
    Selftest(SelftestArgs),
    /// Change the PIN.
    ChangePin(ChangePinArgs),
    /// Change the PUK.
    ChangePuk(ChangePukArgs),
    /// Set a new PIN with the PUK after the PIN blocked.
    UnblockPin(UnblockPinArgs),
}

#[derive(clap::Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub slots: SlotsArg,
    /// Also show these software key files (DEV/TEST ONLY).
    #[arg(long, value_name = "KEYFILE")]
    pub software: Vec<PathBuf>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum TouchArg {
    Always,
    Cached,
    Never,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum PinPolicyArg {
    Once,
    Always,
}

#[derive(clap::Args)]
pub struct ProvisionArgs {
    #[arg(long, value_name = "N")]
    pub serial: u32,
    /// Roles to generate keys for.
    #[arg(long, value_delimiter = ',', default_value = "share,manifest,patch")]
    pub roles: Vec<Role>,
    #[command(flatten)]
    pub slots: SlotsArg,
    /// Touch policy of the new keys (a YubiKey waits for a touch before using the key).
    #[arg(long, value_enum, default_value = "always")]
    pub touch: TouchArg,
    /// PIN policy of the new keys. Tessera asks for the PIN at every operation either way.
    #[arg(long, value_enum, default_value = "once")]
    pub pin_policy: PinPolicyArg,
    /// Current PIN from the first line of this file (automation).
    #[arg(long, value_name = "FILE")]
    pub pin_file: Option<PathBuf>,
    /// New PIN from the first line of this file (automation).
    #[arg(long, value_name = "FILE")]
    pub new_pin_file: Option<PathBuf>,
    /// New PUK from the first line of this file (automation).
    #[arg(long, value_name = "FILE")]
    pub new_puk_file: Option<PathBuf>,
    /// Replace keys already in the role slots (they cannot be recovered).
    #[arg(long)]
    pub force: bool,
    /// Accept the plan without asking.
    #[arg(long)]
    pub yes: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub device: DeviceArgs,
    /// The member's name as the coordinator will show it.
    #[arg(long)]
    pub alias: String,
    /// Where to write the descriptor (a new file; never overwritten). With `--openpgp`, the
    /// armored key goes here, or to standard output when omitted.
    #[arg(short, long, value_name = "FILE", required_unless_present = "openpgp")]
    pub output: Option<PathBuf>,
    /// Export the Manifest key as an ASCII-armored OpenPGP public key, self-signed on the
    /// device, instead of the member descriptor.
    #[arg(long)]
    pub openpgp: bool,
    /// The OpenPGP key's creation time. It is part of the fingerprint; the fixed default keeps
    /// the fingerprint the same across exports.
    #[arg(long, value_name = "RFC3339", default_value = crate::openpgp::DEFAULT_CREATED, requires = "openpgp")]
    pub created: String,
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args)]
pub struct SelftestArgs {
    #[command(flatten)]
    pub device: DeviceArgs,
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args)]
pub struct ChangePinArgs {
    #[arg(long, value_name = "N")]
    pub serial: u32,
    #[arg(long, value_name = "FILE")]
    pub pin_file: Option<PathBuf>,
    #[arg(long, value_name = "FILE")]
    pub new_pin_file: Option<PathBuf>,
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args)]
pub struct ChangePukArgs {
    #[arg(long, value_name = "N")]
    pub serial: u32,
    #[arg(long, value_name = "FILE")]
    pub puk_file: Option<PathBuf>,
    #[arg(long, value_name = "FILE")]
    pub new_puk_file: Option<PathBuf>,
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args)]
pub struct UnblockPinArgs {
    #[arg(long, value_name = "N")]
    pub serial: u32,
    #[arg(long, value_name = "FILE")]
    pub puk_file: Option<PathBuf>,
    #[arg(long, value_name = "FILE")]
    pub new_pin_file: Option<PathBuf>,
    #[arg(long)]
    pub json: bool,
}

#[must_use]
pub fn run(cmd: Command) -> ExitCode {
    let (json, result) = match cmd {
        Command::List(a) => (a.json, list(&a)),
        Command::Provision(a) => (a.json, provision_cmd(&a)),
        Command::Export(a) => (a.json, export(&a)),
        Command::Selftest(a) => (a.json, selftest(&a)),
        Command::ChangePin(a) => (a.json, change_pin(&a)),
        Command::ChangePuk(a) => (a.json, change_puk(&a)),
        Command::UnblockPin(a) => (a.json, unblock_pin(&a)),
    };
    match result {
        Ok(out) => {
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&out.json).expect("JSON values serialize")
                );
            } else {
                print!("{}", out.text);
            }
            ExitCode::SUCCESS
        }
        Err(Failure::Usage(msg)) => {
            eprintln!("tessera key: {msg}");
            ExitCode::from(2)
        }
        Err(Failure::Device(e)) => {
            if json {
                println!("{}", json!({ "error": e.to_string(), "hint": e.hint() }));
            }
            eprintln!("tessera key: {e}\nhint: {}", e.hint());
            ExitCode::from(1)
        }
    }
}

/// What a command prints: text for people, JSON with `--json`.
struct Output {
    text: String,
    json: serde_json::Value,
}

enum Failure {
    Usage(String),
    Device(DeviceError),
}

impl From<DeviceError> for Failure {
    fn from(e: DeviceError) -> Self {
        Failure::Device(e)
    }
}

#[derive(Debug, Serialize)]
pub struct SlotReport {
    pub role: Role,
    pub slot: String,
    /// Present keys only.
    pub algorithm: Option<&'static str>,
    pub public_key: Option<String>,
    pub fingerprint: Option<String>,
    pub pin_policy: Option<&'static str>,
    pub touch_policy: Option<&'static str>,
    pub age_recipient: Option<String>,
    pub age_identity: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct ManagementKeyReport {
    /// `factory-default` (anyone can change the key), `pin-protected`, `manual` or `derived`.
    pub storage: &'static str,
    /// `card` (its admin data) or `tessera-certificate` (recorded at provisioning).
    pub storage_source: &'static str,
    /// `aes192`, `3des`, …; `None` when neither the card nor a Tessera certificate says.
    pub algorithm: Option<&'static str>,
    /// `card` (GET METADATA) or `tessera-certificate` (recorded at provisioning).
    pub algorithm_source: Option<&'static str>,
}

#[derive(Debug, Serialize)]
pub struct YubikeyReport {
    pub serial: u32,
    pub firmware: String,
    pub pin_retries: Option<u8>,
    pub puk_blocked: bool,
    pub management_key: ManagementKeyReport,
    pub slots: Vec<SlotReport>,
}

#[derive(Debug, Serialize)]
pub struct ReaderReport {
    pub reader: String,
    pub yubikey: Option<YubikeyReport>,
    /// Why the reader holds no usable YubiKey.
    pub error: Option<String>,
}

/// Describes every reader and the YubiKey in it, reading only what needs no PIN.
pub fn describe_readers(slots: &SlotMap) -> Result<Vec<ReaderReport>, DeviceError> {
    let mut ctx = match yubikey::reader::Context::open() {
        Ok(c) => c,
        Err(e) => {
            return match device_error(e) {
                DeviceError::NoReader => Ok(Vec::new()),
                other => Err(other),
            };
        }
    };
    let readers = match ctx.iter() {
        Ok(r) => r,
        Err(e) => {
            return match device_error(e) {
                DeviceError::NoReader => Ok(Vec::new()),
                other => Err(other),
            };
        }
    };
    let mut out = Vec::new();
    for reader in readers {
        let name = reader.name().into_owned();
        match reader.open() {
            Ok(mut yk) => match describe_yubikey(&mut yk, slots) {
                Ok(r) => out.push(ReaderReport {
                    reader: name,
                    yubikey: Some(r),
                    error: None,
                }),
                Err(e) => out.push(ReaderReport {
                    reader: name,
                    yubikey: None,
                    error: Some(e.to_string()),
                }),
            },
            Err(e) => out.push(ReaderReport {
                reader: name,
                yubikey: None,
                error: Some(match e {
                    yubikey::Error::PcscError {
                        inner: Some(pcsc::Error::NoSmartcard | pcsc::Error::RemovedCard),
                    } => "no card".to_owned(),
                    yubikey::Error::AppletNotFound { .. } => "not a PIV card".to_owned(),
                    other => device_error(other).to_string(),
                }),
            }),
        }
    }
    Ok(out)
}

pub fn describe_yubikey(yk: &mut YubiKey, slots: &SlotMap) -> Result<YubikeyReport, DeviceError> {
    let serial = yk.serial().0;
    let mut reports = Vec::new();
    let mut recorded = None;
    for (role, slot) in slots.iter() {
        let key = read_slot(yk, slots.slot_id(role))?;
        if let Some(alg) = key
            .as_ref()
            .and_then(|k| k.subject.as_deref())
            .and_then(recorded_mgm_algorithm)
        {
            recorded = Some(alg);
        }
        reports.push(match key {
            Some(k) => {
                let recipient = (role == Role::Share).then(|| PivP256Recipient::new(k.public_key));
                SlotReport {
                    role,
                    slot: format!("{slot:02x}"),
                    algorithm: Some("P-256"),
                    public_key: Some(k.public_key.to_hex()),
                    fingerprint: Some(k.public_key.fingerprint()),
                    pin_policy: Some(k.policy.pin_str()),
                    touch_policy: Some(k.policy.touch_str()),
                    age_recipient: recipient.map(|r| r.to_string()),
                    age_identity: recipient.map(|r| plugin_identity(serial, slot, &r)),
                }
            }
            None => SlotReport {
                role,
                slot: format!("{slot:02x}"),
                algorithm: None,
                public_key: None,
                fingerprint: None,
                pin_policy: None,
                touch_policy: None,
                age_recipient: None,
                age_identity: None,
            },
        });
    }
    let config = yk.config().map_err(device_error)?;
    let storage = if has_default_management_key(yk) {
        "factory-default"
    } else {
        match config.mgm_type {
            MgmType::Protected => "pin-protected",
            MgmType::Derived => "derived",
            MgmType::Manual => "manual",
        }
    };
    // Tessera only ever stores its management key PIN-protected; its certificates say so on
    // cards whose admin data object does not.
    let (storage, storage_source) = match (storage, recorded) {
        ("manual", Some(_)) => ("pin-protected", "tessera-certificate"),
        (s, _) => (s, "card"),
    };
    let (algorithm, algorithm_source) =
        match yubikey::piv::metadata(yk, SlotId::Management(ManagementSlotId::Management)) {
            Ok(m) => match m.algorithm {
                SlotAlgorithmId::Management(a) => (Some(mgm_algorithm_str(a)), Some("card")),
                _ => (None, None),
            },
            Err(_) if storage == "factory-default" => (None, None),
            Err(_) => (recorded, recorded.map(|_| "tessera-certificate")),
        };
    Ok(YubikeyReport {
        serial,
        firmware: yk.version().to_string(),
        pin_retries: yk.get_pin_retries().ok(),
        puk_blocked: config.puk_blocked,
        management_key: ManagementKeyReport {
            storage,
            storage_source,
            algorithm,
            algorithm_source,
        },
        slots: reports,
    })
}

fn list(a: &ListArgs) -> Result<Output, Failure> {
    let slots = a.slots.map().map_err(Failure::Usage)?;
    // Software keys can be listed on a machine without PC/SC; YubiKeys cannot.
    let (readers, pcsc) = match describe_readers(&slots) {
        Ok(r) => (r, None),
        Err(e @ DeviceError::PcscUnavailable { .. }) if !a.software.is_empty() => {
            (Vec::new(), Some(format!("{e} (hint: {})", e.hint())))
        }
        Err(e) => return Err(e.into()),
    };
    let mut software = Vec::new();
    for path in &a.software {
        let mut dev = SoftwareKeyDevice::load(path)?;
        software.push(json!({
            "file": path.display().to_string(),
            "label": dev.info().label,
            "keys": software_keys(&mut dev),
        }));
    }
    let mut text = String::new();
    if let Some(p) = &pcsc {
        let _ = writeln!(text, "YubiKeys not listed: {p}");
    } else if readers.is_empty() {
        text.push_str("no smart card readers found\n");
    }
    for r in &readers {
        match (&r.yubikey, &r.error) {
            (Some(y), _) => {
                let _ = writeln!(
                    text,
                    "{}: YubiKey {} firmware {}, PIN retries {}, PUK {}",
                    r.reader,
                    y.serial,
                    y.firmware,
                    y.pin_retries.map_or("?".to_owned(), |n| n.to_string()),
                    if y.puk_blocked { "BLOCKED" } else { "ok" },
                );
                let m = &y.management_key;
                let _ = writeln!(
                    text,
                    "  management key: {}{}{}",
                    m.storage,
                    m.algorithm.map(|a| format!(", {a}")).unwrap_or_default(),
                    if m.storage == "factory-default" {
                        " (NOT PROVISIONED: anyone can replace its keys)"
                    } else {
                        ""
                    }
                );
                for s in &y.slots {
                    match &s.fingerprint {
                        Some(fp) => {
                            let _ = writeln!(
                                text,
                                "  {:<8} slot {}  P-256  {fp}  PIN {}  touch {}",
                                s.role.as_str(),
                                s.slot,
                                s.pin_policy.unwrap_or("?"),
                                s.touch_policy.unwrap_or("?"),
                            );
                            if let Some(rcp) = &s.age_recipient {
                                let _ = writeln!(text, "           age recipient {rcp}");
                            }
                        }
                        None => {
                            let _ =
                                writeln!(text, "  {:<8} slot {}  empty", s.role.as_str(), s.slot);
                        }
                    }
                }
            }
            (None, Some(e)) => {
                let _ = writeln!(text, "{}: {e}", r.reader);
            }
            (None, None) => {}
        }
    }
    for s in &software {
        let _ = writeln!(
            text,
            "{}: {}",
            s["file"].as_str().unwrap_or(""),
            s["label"].as_str().unwrap_or("")
        );
    }
    Ok(Output {
        text,
        json: json!({ "readers": readers, "software": software, "pcsc_error": pcsc }),
    })
}

fn software_keys(dev: &mut SoftwareKeyDevice) -> Vec<serde_json::Value> {
    Role::ALL
        .iter()
        .filter_map(|r| {
            dev.public_key(*r).ok().map(
                |k| json!({ "role": r, "public_key": k.to_hex(), "fingerprint": k.fingerprint() }),
            )
        })
        .collect()
}

fn confirm(plan_text: &str) -> Result<(), Failure> {
    eprint!("{plan_text}");
    if !std::io::stdin().is_terminal() {
        return Err(Failure::Usage(
            "not confirmed: stdin is not a terminal; review the plan and pass --yes".to_owned(),
        ));
    }
    eprint!("Type \"yes\" to go ahead: ");
    std::io::stderr().flush().ok();
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| Failure::Usage(format!("reading the answer: {e}")))?;
    if line.trim() == "yes" {
        Ok(())
    } else {
        Err(Failure::Device(DeviceError::Cancelled))
    }
}

fn provision_cmd(a: &ProvisionArgs) -> Result<Output, Failure> {
    let mut roles = a.roles.clone();
    roles.sort();
    roles.dedup();
    let opts = ProvisionOptions {
        roles,
        slots: a.slots.map().map_err(Failure::Usage)?,
        pin_policy: match a.pin_policy {
            PinPolicyArg::Once => PinPolicy::Once,
            PinPolicyArg::Always => PinPolicy::Always,
        },
        touch_policy: match a.touch {
            TouchArg::Always => TouchPolicy::Always,
            TouchArg::Cached => TouchPolicy::Cached,
            TouchArg::Never => TouchPolicy::Never,
        },
        force: a.force,
    };
    let plan_text = plan_provisioning(a.serial, &opts)?.to_string();
    if a.yes {
        eprint!("{plan_text}");
    } else {
        // No session is held while a person reads the plan.
        confirm(&plan_text)?;
    }
    let mut pins = FilePinSource::new(
        a.pin_file.clone(),
        None,
        a.new_pin_file.clone(),
        a.new_puk_file.clone(),
    );
    let (plan, outcome) = provision_as_shown(a.serial, &opts, &plan_text, &mut pins)?;
    let text = outcome.to_string();
    Ok(Output {
        text,
        json: json!({ "plan": plan, "outcome": outcome }),
    })
}

/// Reads YubiKey `serial` and plans provisioning it for `opts`. Changes nothing.
pub fn plan_provisioning(serial: u32, opts: &ProvisionOptions) -> Result<Plan, DeviceError> {
    provision::plan(&mut connect(serial)?, opts)
}

/// Provisions YubiKey `serial` exactly as the plan `shown` said (its text, as the person read
/// it): the card is read again first, and if its plan now reads differently nothing changes.
pub fn provision_as_shown(
    serial: u32,
    opts: &ProvisionOptions,
    shown: &str,
    pins: &mut dyn PinSource,
) -> Result<(Plan, Outcome), DeviceError> {
    let mut yk = connect(serial)?;
    let plan = provision::plan(&mut yk, opts)?;
    if plan.to_string() != shown {
        return Err(DeviceError::Device {
            detail: "the YubiKey changed since its plan was shown; nothing was changed, review the new plan".to_owned(),
        });
    }
    let outcome = provision::execute(&mut yk, &plan, opts, pins)?;
    Ok((plan, outcome))
}

/// The member descriptor for the keys on `device`.
pub fn descriptor(
    device: &mut dyn KeyDevice,
    selector: &DeviceSelector,
    alias: &str,
) -> Result<MemberDescriptor, DeviceError> {
    let info = device.info();
    let mut keys = Vec::new();
    for role in Role::ALL {
        match device.public_key(role) {
            Ok(public_key) => keys.push(DescriptorKey {
                role,
                public_key,
                slot: match selector {
                    DeviceSelector::Yubikey { slots, .. } => Some(slots.slot(role)),
                    DeviceSelector::Software(_) => None,
                },
            }),
            Err(DeviceError::NoKey { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    if keys.is_empty() {
        return Err(DeviceError::NoKey {
            role: Role::Share,
            slot: None,
        });
    }
    let created_at = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .expect("the current time formats as RFC 3339");
    Ok(MemberDescriptor {
        version: OBJECT_VERSION,
        alias: alias.to_owned(),
        device: info.kind,
        serial: info.serial,
        keys,
        created_at,
        attestation: None,
    })
}

fn export(a: &ExportArgs) -> Result<Output, Failure> {
    if let Err(why) = tessera_core::manifest::check_alias(&a.alias) {
        return Err(Failure::Usage(format!("--alias {why}")));
    }
    if a.openpgp {
        return export_openpgp(a);
    }
    let output = a
        .output
        .as_ref()
        .ok_or_else(|| Failure::Usage("--output is required".to_owned()))?;
    let selector = a.device.selector()?;
    let mut device = open_device(&selector, a.device.pin_source())?;
    let mut d = descriptor(&mut *device, &selector, &a.alias)?;
    let attestation = attach_attestation(&mut d, &selector)?;
    let bytes = tessera_core::cbor::encode(&d);
    airgap_bundle::usb::write_new_file(output, &bytes)
        .map_err(|e| Failure::Usage(e.to_string()))?;
    let mut text = format!(
        "wrote the member descriptor of {:?} ({}) to {}\n",
        d.alias,
        device.info().label,
        output.display()
    );
    if d.device == DeviceKind::Software {
        text.push_str("WARNING: software keys are for dev mode, the demo and tests only\n");
    }
    let mut keys = Vec::new();
    for k in &d.keys {
        let slot = k.slot.map(|s| format!(" slot {s:02x}")).unwrap_or_default();
        let _ = writeln!(
            text,
            "  {:<8}{slot}  {}",
            k.role.as_str(),
            k.public_key.fingerprint()
        );
        keys.push(json!({
            "role": k.role,
            "slot": k.slot.map(|s| format!("{s:02x}")),
            "public_key": k.public_key.to_hex(),
            "fingerprint": k.public_key.fingerprint(),
        }));
    }
    let _ = writeln!(text, "  attestation  {}", attestation.line);
    Ok(Output {
        text,
        json: json!({
            "file": output.display().to_string(),
            "alias": d.alias,
            "device": d.device,
            "serial": d.serial,
            "created_at": d.created_at,
            "keys": keys,
            "attestation": {
                "included": d.attestation.is_some(),
                "meets_production_policy": attestation.meets_production,
                "detail": attestation.line,
            },
        }),
    })
}

/// What `key export` says about the attestation it included (or could not).
pub struct ExportAttestation {
    pub line: String,
    pub meets_production: bool,
}

/// Reads the YubiKey's PIV attestation of `d`'s keys into `d` and checks it as a production
/// namespace would (Yubico's published roots, now), so the member learns before the
/// coordinator does. A card that cannot attest (the virtual card) leaves `d` without one and
/// says why; software keys never have one.
pub fn attach_attestation(
    d: &mut MemberDescriptor,
    selector: &DeviceSelector,
) -> Result<ExportAttestation, DeviceError> {
    use tessera_core::yubikey_attest::YubicoTrust;
    use tessera_core::yubikey_attest_policy::{AttestationPolicy, check_member};
    let DeviceSelector::Yubikey { serial, slots } = selector else {
        return Ok(ExportAttestation {
            line: "none (software keys cannot be attested; refused where a namespace requires attestation)".to_owned(),
            meets_production: false,
        });
    };
    let roles: Vec<Role> = d.keys.iter().map(|k| k.role).collect();
    match crate::piv::attest::read(*serial, slots, &roles)? {
        crate::piv::attest::CardAttestation::Unavailable(why) => Ok(ExportAttestation {
            line: format!(
                "none: {why}; a namespace that requires attestation will refuse this descriptor"
            ),
            meets_production: false,
        }),
        crate::piv::attest::CardAttestation::Attested(att) => {
            d.attestation = Some(att);
            let verdict = check_member(
                d,
                &AttestationPolicy::production(),
                YubicoTrust::published(),
                time::OffsetDateTime::now_utc(),
            );
            Ok(match verdict {
                Ok(v) => ExportAttestation {
                    line: format!("included: {}", v.summary()),
                    meets_production: true,
                },
                Err(refusal) => ExportAttestation {
                    line: format!(
                        "included, but WARNING: {} (default production policy: {})",
                        refusal.reason,
                        AttestationPolicy::production().describe()
                    ),
                    meets_production: false,
                },
            })
        }
    }
}

/// `key export --openpgp`: the Manifest key as an OpenPGP certificate, self-signed on the
/// device (one PIN entry, and a touch if the slot asks for one).
fn export_openpgp(a: &ExportArgs) -> Result<Output, Failure> {
    let created = crate::openpgp::parse_created(&a.created).map_err(Failure::Usage)?;
    let mut device = a.device.open()?;
    let label = device.info().label;
    let kind = device.info().kind;
    let exported =
        crate::openpgp::export_cert(&mut *device, &a.alias, created).map_err(|e| match e {
            crate::openpgp::OpenPgpError::Device(d) => Failure::Device(d),
            other => Failure::Device(DeviceError::Device {
                detail: other.to_string(),
            }),
        })?;
    let mut text = String::new();
    match &a.output {
        Some(path) => {
            airgap_bundle::usb::write_new_file(path, exported.armored.as_bytes())
                .map_err(|e| Failure::Usage(e.to_string()))?;
            let _ = writeln!(
                text,
                "wrote the OpenPGP key of the Manifest key on {label} to {}",
                path.display()
            );
        }
        // The armored key is the output; details go to stderr so a pipe gets only the key.
        None if !a.json => print!("{}", exported.armored),
        None => {}
    }
    let details = format!(
        "  user ID      {}\n  fingerprint  {}\n  created      {}\n",
        exported.user_id, exported.fingerprint, a.created
    );
    if a.output.is_some() {
        text.push_str(&details);
    } else if !a.json {
        eprint!("{details}");
    }
    if kind == DeviceKind::Software {
        eprintln!("WARNING: software keys are for dev mode, the demo and tests only");
    }
    Ok(Output {
        text,
        json: json!({
            "file": a.output.as_ref().map(|p| p.display().to_string()),
            "user_id": exported.user_id,
            "fingerprint": exported.fingerprint,
            "created": a.created,
            "device": label,
            "armored": exported.armored,
        }),
    })
}

#[derive(Debug, Serialize)]
pub struct SelftestResult {
    pub role: Role,
    pub fingerprint: String,
    pub sign: String,
    pub ecdh: String,
}

/// Signs a fresh challenge and runs ECDH against a fresh software key with every role key on
/// `device`, checking both in software.
pub fn run_selftest(device: &mut dyn KeyDevice) -> Result<Vec<SelftestResult>, DeviceError> {
    use p256::elliptic_curve::Generate;
    let mut results = Vec::new();
    for role in Role::ALL {
        let public_key: PublicKey = match device.public_key(role) {
            Ok(k) => k,
            Err(DeviceError::NoKey { .. }) => continue,
            Err(e) => return Err(e),
        };
        let mut challenge = b"tessera/v1/selftest\0".to_vec();
        let nonce = p256::NonZeroScalar::try_generate_from_rng(&mut rand::rngs::SysRng)
            .expect("the operating system's random number generator failed");
        challenge.extend_from_slice(&nonce.to_bytes());
        let sig = device.sign(role, "self-test: sign a random challenge", &challenge)?;
        let sign = match public_key.verify(&challenge, &sig) {
            Ok(()) => "ok".to_owned(),
            Err(e) => format!("FAILED: {e}"),
        };
        let eph = p256::NonZeroScalar::try_generate_from_rng(&mut rand::rngs::SysRng)
            .expect("the operating system's random number generator failed");
        let eph_pub = p256::PublicKey::from_secret_scalar(&eph);
        let on_device = device.ecdh(role, "self-test: ECDH with a random key", &eph_pub)?;
        let in_software = p256::ecdh::diffie_hellman(eph, public_key.to_p256().as_affine());
        // Both sides come from a throwaway key made for this test; a plain comparison leaks
        // nothing worth protecting.
        let ecdh = if on_device.as_bytes()[..] == in_software.raw_secret_bytes()[..] {
            "ok".to_owned()
        } else {
            "FAILED: the device's shared secret differs from the software result".to_owned()
        };
        results.push(SelftestResult {
            role,
            fingerprint: public_key.fingerprint(),
            sign,
            ecdh,
        });
    }
    if results.is_empty() {
        return Err(DeviceError::NoKey {
            role: Role::Share,
            slot: None,
        });
    }
    Ok(results)
}

fn selftest(a: &SelftestArgs) -> Result<Output, Failure> {
    let mut device = a.device.open()?;
    let label = device.info().label;
    let results = run_selftest(&mut *device)?;
    let ok = results.iter().all(|r| r.sign == "ok" && r.ecdh == "ok");
    let mut text = format!("self-test of {label}\n");
    for r in &results {
        let _ = writeln!(
            text,
            "  {:<8} {}  sign {}  ecdh {}",
            r.role.as_str(),
            r.fingerprint,
            r.sign,
            r.ecdh
        );
    }
    if !ok {
        return Err(Failure::Device(DeviceError::Device {
            detail: format!("self-test failed:\n{text}"),
        }));
    }
    Ok(Output {
        text,
        json: json!({ "device": label, "ok": ok, "results": results }),
    })
}

fn ask(
    pins: &mut dyn PinSource,
    kind: SecretKind,
    serial: u32,
    purpose: &str,
    tries_left: Option<u8>,
) -> Result<zeroize::Zeroizing<String>, DeviceError> {
    pins.pin(&PinRequest {
        kind,
        serial,
        purpose: purpose.to_owned(),
        tries_left,
    })
}

fn change_pin(a: &ChangePinArgs) -> Result<Output, Failure> {
    let mut pins = FilePinSource::new(a.pin_file.clone(), None, a.new_pin_file.clone(), None);
    change_pin_on(a.serial, &mut pins)?;
    Ok(done(a.serial, "PIN changed"))
}

/// Changes the PIN of the YubiKey `serial`, asking `pins` for the current PIN and the new one
/// (an interactive source asks for the new one twice).
pub fn change_pin_on(serial: u32, pins: &mut dyn PinSource) -> Result<(), DeviceError> {
    let mut yk = connect(serial)?;
    let tries = yk.get_pin_retries().map_err(device_error)?;
    if tries == 0 {
        return Err(DeviceError::PinBlocked);
    }
    let current = ask(pins, SecretKind::Pin, serial, "change the PIN", Some(tries))?;
    let new = ask(pins, SecretKind::NewPin, serial, "change the PIN", None)?;
    provision::check_new_secret(SecretKind::NewPin, &new)?;
    // VERIFY first: it reports the tries left on every card, where some answer a failed
    // CHANGE REFERENCE without the count.
    yk.verify_pin(current.as_bytes()).map_err(device_error)?;
    yk.change_pin(current.as_bytes(), new.as_bytes())
        .map_err(device_error)
}

fn change_puk(a: &ChangePukArgs) -> Result<Output, Failure> {
    let mut pins = FilePinSource::new(None, a.puk_file.clone(), None, a.new_puk_file.clone());
    change_puk_on(a.serial, &mut pins)?;
    Ok(done(a.serial, "PUK changed"))
}

/// Changes the PUK of the YubiKey `serial`, asking `pins` for the current PUK and the new one.
pub fn change_puk_on(serial: u32, pins: &mut dyn PinSource) -> Result<(), DeviceError> {
    let mut yk = connect(serial)?;
    let current = ask(pins, SecretKind::Puk, serial, "change the PUK", None)?;
    let new = ask(pins, SecretKind::NewPuk, serial, "change the PUK", None)?;
    provision::check_new_secret(SecretKind::NewPuk, &new)?;
    yk.change_puk(current.as_bytes(), new.as_bytes())
        .map_err(|e| match e {
            // The PUK cannot be verified on its own, and some cards refuse a wrong one
            // without a count.
            yubikey::Error::GenericError => DeviceError::Device {
                detail: "the card refused to change the PUK (wrong PUK?)".to_owned(),
            },
            other => puk_error(other),
        })
}

fn unblock_pin(a: &UnblockPinArgs) -> Result<Output, Failure> {
    let mut pins = FilePinSource::new(None, a.puk_file.clone(), a.new_pin_file.clone(), None);
    let mut yk = connect(a.serial)?;
    let puk = ask(
        &mut pins,
        SecretKind::Puk,
        a.serial,
        "unblock the PIN",
        None,
    )?;
    let new = ask(
        &mut pins,
        SecretKind::NewPin,
        a.serial,
        "unblock the PIN",
        None,
    )?;
    provision::check_new_secret(SecretKind::NewPin, &new)?;
    yk.unblock_pin(puk.as_bytes(), new.as_bytes())
        .map_err(puk_error)?;
    Ok(done(a.serial, "PIN unblocked and set"))
}

fn done(serial: u32, what: &str) -> Output {
    Output {
        text: format!("YubiKey {serial}: {what}\n"),
        json: json!({ "serial": serial, "result": what }),
    }
}
