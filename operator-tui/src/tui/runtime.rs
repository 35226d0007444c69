//! The thin runtime around the pure core: terminal setup and restore, input, the clock, file
//! and transcript I/O, and one worker thread that owns the key device.
//!
//! PIN entry: while the PIN popup is open, typed characters go into a zeroizing buffer held
//! here, never into the app state; the state only learns how many characters there are.

use std::io::{self, Stdout};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[cfg(target_os = "linux")]
use airgap_bundle::frames::Camera;
use airgap_bundle::frames::{FrameSource, ImageDir, Y4mVideo};
use airgap_bundle::receive::{self, Flow, ReceptionStatus};
use airgap_bundle::{BundleKind, Metadata};
use crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use crossterm::terminal::{
    EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode,
};
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use tessera_core::attestation::{self, TrustAnchor};
use tessera_core::bytes::{Hash32, hex_groups};
use tessera_core::device::{DeviceError, DeviceKind, KeyDevice};
use tessera_core::keys::Role;
use tessera_core::manifest::Manifest;
use tessera_core::transcript::Record;
use time::OffsetDateTime;
use zeroize::Zeroizing;

use super::app::{
    self, BundleEntry, Config, DeviceJob, DeviceView, Effect, Key, Mode, Msg, Popup, SignJob, State,
};
use super::keymap::Keymap;
use crate::devices::{DeviceSelector, SlotsArg, open_device};
use crate::piv::provision::ProvisionOptions;
use crate::piv::{PinRequest, PinSource, SecretKind, SlotMap};

/// Options of `tessera` (bare) and `tessera open`.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct TuiArgs {
    /// Serial number of your YubiKey.
    #[arg(long, value_name = "N", conflicts_with = "software")]
    pub serial: Option<u32>,
    /// A software key file instead of a YubiKey (DEV/TEST ONLY).
    #[arg(long, value_name = "KEYFILE")]
    pub software: Option<PathBuf>,
    #[command(flatten)]
    pub slots: SlotsArg,
    /// Trust anchor PEM; default: the pinned AWS Nitro root G1. Anything else is DEV mode.
    #[arg(long)]
    pub root: Option<PathBuf>,
    /// Validation time: now (the laptop clock), doc, or RFC 3339.
    #[arg(long, default_value = "now")]
    pub at: String,
    /// Folder with bundles (a USB stick's mount point); also where new bundles are written.
    /// Default: the folder of the file opened, else the working directory. It must exist.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Your encrypted share (the age file stored at genesis).
    #[arg(long)]
    pub share: Option<PathBuf>,
    #[command(flatten)]
    pub reproduce: crate::cli::trust::ReproduceArgs,
    /// The namespace's YubiKey attestation policy, applied to the member descriptor bundles
    /// found in the bundle folder (one line per member in the manifest review).
    #[command(flatten)]
    pub attestation: crate::cli::yubikey_policy::AttestationArgs,
    /// Keymap TOML file (default ~/.config/tessera/keys.toml when present).
    #[arg(long)]
    pub keys: Option<PathBuf>,
    /// Where your last approved manifests are kept (default ~/.local/share/tessera/approved).
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// Folder of your namespace pins (default `$TESSERA_PINS`, else `~/.local/share/tessera/pins`).
    #[arg(long = "pins", value_name = "DIR")]
    pub pins: Option<PathBuf>,
    /// Your alias, for the member descriptor the Keys screen exports (default: $USER).
    #[arg(long)]
    pub alias: Option<String>,
    /// Refuse attestation documents older than this many seconds.
    #[arg(long, default_value_t = 3600)]
    pub max_age_secs: u64,
    /// Where the Scan screen (`s` on Home) reads QR frames: `camera[:DEVICE]` (default
    /// `camera:/dev/video0`), `frames:DIR` (pictures in name order) or `video:FILE.y4m`.
    #[arg(long, value_name = "SOURCE", default_value = "camera:/dev/video0", value_parser = parse_scan_from)]
    pub scan_from: ScanFrom,
}

/// A frame source for the Scan screen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanFrom {
    Camera(String),
    Frames(PathBuf),
    Video(PathBuf),
}

impl Default for ScanFrom {
    fn default() -> Self {
        Self::Camera("/dev/video0".into())
    }
}

fn parse_scan_from(s: &str) -> Result<ScanFrom, String> {
    match s.split_once(':') {
        None if s == "camera" => Ok(ScanFrom::Camera("/dev/video0".into())),
        Some(("camera", dev)) if !dev.is_empty() => Ok(ScanFrom::Camera(dev.into())),
        Some(("frames", dir)) if !dir.is_empty() => Ok(ScanFrom::Frames(dir.into())),
        Some(("video", file)) if !file.is_empty() => Ok(ScanFrom::Video(file.into())),
        _ => Err("expected camera[:DEVICE], frames:DIR or video:FILE".into()),
    }
}

fn open_frames(from: &ScanFrom) -> Result<Box<dyn FrameSource>, String> {
    Ok(match from {
        #[cfg(target_os = "linux")]
        ScanFrom::Camera(dev) => Box::new(Camera::open(dev).map_err(|e| e.to_string())?),
        #[cfg(not(target_os = "linux"))]
        ScanFrom::Camera(_) => return Err("camera scanning needs Linux (V4L2)".into()),
        ScanFrom::Frames(dir) => Box::new(ImageDir::open(dir).map_err(|e| e.to_string())?),
        ScanFrom::Video(file) => Box::new(Y4mVideo::open(file).map_err(|e| e.to_string())?),
    })
}

/// Reads frames for scan `id` until the bundle is whole and checked, the source ends, or `stop`
/// is set. Only a bundle that passed [`airgap_bundle::receive`]'s checks is written (into the
/// bundle folder, under its generated name) and handed to the app, which opens it as if it had
/// been read from a USB stick.
fn scan_worker(id: u64, from: &ScanFrom, dir: &Path, stop: &AtomicBool, tx: &Sender<Msg>) {
    let finish = |result| {
        if !stop.load(Ordering::Relaxed) {
            let _ = tx.send(Msg::ScanFinished { id, result });
        }
    };
    let mut source = match open_frames(from) {
        Ok(s) => s,
        Err(e) => return finish(Err(e)),
    };
    let name = source.describe();
    let _ = tx.send(Msg::ScanStatus {
        id,
        source: name.clone(),
        status: ReceptionStatus::default(),
    });
    let result = receive::scan_frames(source.as_mut(), |_, status| {
        let sent = tx.send(Msg::ScanStatus {
            id,
            source: name.clone(),
            status: status.clone(),
        });
        if stop.load(Ordering::Relaxed) || sent.is_err() {
            Flow::Stop
        } else {
            Flow::Continue
        }
    });
    finish(match result {
        Ok(bundle) => airgap_bundle::usb::write_bundle(dir, &bundle)
            .map(|path| (path, bundle.encode()))
            .map_err(|e| format!("the bundle is whole and checked but was not written: {e}")),
        Err(e) => Err(format!("{e}")),
    });
}

fn state_dir(args: &TuiArgs) -> Option<PathBuf> {
    args.state_dir.clone().or_else(|| {
        std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share/tessera/approved"))
    })
}

/// Builds the session's fixed configuration from the arguments.
pub fn config(args: &TuiArgs, first_file: Option<&Path>) -> Result<Config, String> {
    let bundle_dir = match (&args.dir, first_file) {
        (Some(d), _) => d.clone(),
        (None, Some(f)) => f
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf),
        (None, None) => PathBuf::from("."),
    };
    if !bundle_dir.is_dir() {
        return Err(format!(
            "{} does not exist or is not a folder: is the USB stick mounted? Nothing was opened",
            bundle_dir.display()
        ));
    }
    let anchor = match &args.root {
        None => attestation::aws_nitro_root_g1().clone(),
        Some(p) if p == std::path::Path::new(attestation::EMULATED_ROOT_ARG) => {
            TrustAnchor::emulated()
        }
        Some(p) => {
            TrustAnchor::from_pem(&std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()))?)
                .map_err(|e| format!("--root {}: {e}", p.display()))?
        }
    };
    let mode = if anchor.sha256() == attestation::aws_nitro_root_g1().sha256() {
        Mode::Production
    } else if anchor.is_emulated() {
        // Shown as "DEV: root EMULATED, NOT AWS" in red, like any non-AWS mode.
        Mode::Dev {
            root_fingerprint: attestation::anchor_label(&anchor).to_owned(),
        }
    } else {
        Mode::Dev {
            root_fingerprint: hex_groups(&anchor.sha256()[..8]),
        }
    };
    let at = match args.at.as_str() {
        "now" => None,
        "doc" => {
            let f = first_file.ok_or("--at doc needs a document to open")?;
            let bytes = std::fs::read(f).map_err(|e| format!("{}: {e}", f.display()))?;
            Some(attestation::unverified_timestamp(&bytes).map_err(|e| e.to_string())?)
        }
        t => Some(
            OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                .map_err(|e| format!("--at {t:?}: {e}"))?,
        ),
    };
    let reproduced = args.reproduce.reproduce().map_err(|f| f.message)?;
    let keymap = match args.keys.clone().or_else(|| {
        let p = PathBuf::from(std::env::var_os("HOME")?).join(".config/tessera/keys.toml");
        p.exists().then_some(p)
    }) {
        Some(p) => Keymap::from_toml(
            &std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?,
        )
        .map_err(|e| format!("{}: {e}", p.display()))?,
        None => Keymap::default(),
    };
    let approved = state_dir(args);
    let previous = previous_approvals(approved.as_deref());
    let previous_patches = [approved.as_deref(), Some(bundle_dir.as_path())]
        .into_iter()
        .flatten()
        .flat_map(earlier_patches)
        .collect();
    let members = args
        .attestation
        .judge(payloads_in(
            &bundle_dir,
            airgap_bundle::BundleKind::Member,
            |p| tessera_core::objects::MemberDescriptor::decode(p).ok(),
        ))
        .map_err(|f| f.message)?;
    let share_path = args.share.clone().or_else(|| find_share(&bundle_dir));
    let share_sealed = share_path.as_deref().and_then(|p| {
        airgap_bundle::usb::read_limited(p, crate::cli::common::limits::SEALED_SHARE).ok()
    });
    Ok(Config {
        mode,
        anchor,
        share_path,
        share_sealed,
        bundle_dir,
        reproduced,
        previous,
        previous_patches,
        pins: args
            .pins
            .clone()
            .or_else(crate::member::pin::PinStore::default_dir)
            .map(crate::member::pin::PinStore::new),
        at,
        max_age: Duration::from_secs(args.max_age_secs),
        keymap,
        members,
    })
}

/// The payloads of the bundles of `kind` in `dir` that decode as `T`; anything else there is
/// skipped.
fn payloads_in<T>(
    dir: &Path,
    kind: airgap_bundle::BundleKind,
    decode: impl Fn(&[u8]) -> Option<T>,
) -> Vec<T> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let bytes =
                airgap_bundle::usb::read_limited(&e.path(), crate::cli::common::limits::OBJECT)
                    .ok()?;
            let b = airgap_bundle::Bundle::decode(&bytes).ok()?;
            (b.kind() == kind).then(|| decode(b.payload())).flatten()
        })
        .collect()
}

/// The manifests this member approved, one per namespace, kept in the state folder.
fn previous_approvals(dir: Option<&Path>) -> Vec<Manifest> {
    dir.map_or_else(Vec::new, |d| {
        payloads_in(d, airgap_bundle::BundleKind::Manifest, |p| {
            Manifest::decode(p).ok()
        })
    })
}

/// The patches in `dir`: approved earlier, or lying beside the bundles.
fn earlier_patches(dir: &Path) -> Vec<tessera_core::objects::Patch> {
    payloads_in(dir, airgap_bundle::BundleKind::Patch, |p| {
        tessera_core::cbor::decode::<tessera_core::objects::PatchEnvelope>(p, "patch envelope")
            .ok()
            .map(|env| env.patch)
    })
}

fn find_share(dir: &Path) -> Option<PathBuf> {
    let mut shares: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(".share.age"))
        .collect();
    shares.sort();
    (shares.len() == 1).then(|| shares.remove(0))
}

/// Network interfaces other than loopback that are up: an air-gapped laptop has none.
#[must_use]
pub fn interfaces_up() -> Vec<String> {
    let Ok(dir) = std::fs::read_dir("/sys/class/net") else {
        return Vec::new();
    };
    let mut up: Vec<String> = dir
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let state = std::fs::read_to_string(e.path().join("operstate")).unwrap_or_default();
            (name != "lo" && state.trim() == "up").then_some(name)
        })
        .collect();
    up.sort();
    up
}

/// Folders where removable media are mounted (`/media/USER/LABEL`, `/run/media/USER/LABEL`,
/// `/media/LABEL`).
fn mounted_media() -> Vec<PathBuf> {
    let mut out = Vec::new();
    for base in ["/media", "/run/media"] {
        let Ok(first) = std::fs::read_dir(base) else {
            continue;
        };
        for e in first.flatten().filter(|e| e.path().is_dir()) {
            let nested: Vec<PathBuf> = std::fs::read_dir(e.path())
                .map(|d| {
                    d.flatten()
                        .map(|x| x.path())
                        .filter(|p| p.is_dir())
                        .collect()
                })
                .unwrap_or_default();
            if nested.is_empty() {
                out.push(e.path());
            } else {
                out.extend(nested);
            }
        }
    }
    out
}

/// Bundles in the chosen folder and on every mounted USB medium, and the network check.
fn scan(dir: &Path) -> Msg {
    let mut dirs = vec![dir.to_path_buf()];
    dirs.extend(mounted_media().into_iter().filter(|m| m != dir));
    let bundles = dirs
        .iter()
        .flat_map(|d| airgap_bundle::usb::list_bundles(d).unwrap_or_default())
        .map(|f| BundleEntry {
            summary: match &f.summary {
                Ok(s) => s.to_string(),
                Err(e) => format!("damaged: {e}"),
            },
            path: f.path,
        })
        .collect();
    Msg::Scanned {
        bundles,
        network: interfaces_up(),
    }
}

// ---------------------------------------------------------------------------------------------
// The worker: one thread owns the device.

/// Asks the UI for PINs; shared by the device and by PIN changes, one request at a time.
#[derive(Clone)]
struct TuiPins {
    tx: Sender<Msg>,
    rx: Arc<Mutex<Receiver<Option<Zeroizing<String>>>>>,
}

impl TuiPins {
    /// Shows the PIN popup for `secret` and waits for what the person types.
    fn ask(
        &self,
        secret: String,
        purpose: String,
        tries_left: Option<u8>,
    ) -> Result<Zeroizing<String>, DeviceError> {
        self.tx
            .send(Msg::PinNeeded {
                secret,
                purpose,
                tries_left,
            })
            .map_err(|_| DeviceError::Cancelled)?;
        let rx = self.rx.lock().map_err(|_| DeviceError::Cancelled)?;
        rx.recv().ok().flatten().ok_or(DeviceError::Cancelled)
    }
}

impl PinSource for TuiPins {
    /// A new PIN or PUK is asked twice, as on the command line, and refused when the two differ.
    fn pin(&mut self, request: &PinRequest) -> Result<Zeroizing<String>, DeviceError> {
        let label = request.kind.label();
        let purpose = format!("{} (YubiKey {})", request.purpose, request.serial);
        let secret = self.ask(label.to_owned(), purpose.clone(), request.tries_left)?;
        if matches!(request.kind, SecretKind::NewPin | SecretKind::NewPuk) {
            let again = self.ask(format!("repeat the {label}"), purpose, None)?;
            if *again != *secret {
                return Err(DeviceError::Device {
                    detail: format!("the two {label}s differ; nothing was changed"),
                });
            }
        }
        Ok(secret)
    }

    fn touch(&mut self, serial: u32, purpose: &str) {
        let _ = self.tx.send(Msg::TouchNeeded {
            purpose: format!("{purpose} (YubiKey {serial})"),
        });
    }
}

fn describe(dev: &mut dyn KeyDevice) -> DeviceView {
    let info = dev.info();
    let mut view = DeviceView {
        label: info.label,
        serial: info.serial,
        software: info.kind == DeviceKind::Software,
        ..DeviceView::default()
    };
    // One read per role serves both the Keys screen and the member layer's reviews.
    for role in Role::ALL {
        match dev.public_key(role) {
            Ok(k) => {
                *view.member_keys.role_mut(role) = Some(k);
                view.keys.push((
                    role.to_string(),
                    k.fingerprint(),
                    tessera_core::age_share::PivP256Recipient::new(k).to_string(),
                ));
            }
            Err(e) => view
                .keys
                .push((role.to_string(), format!("({e})"), String::new())),
        }
    }
    view
}

// Everything is moved into the worker thread, which owns it for the session.
#[allow(clippy::needless_pass_by_value)]
/// What the worker thread is asked to do.
// Sent one at a time over a channel and consumed: variant size does not matter.
#[allow(clippy::large_enum_variant)]
enum WorkerJob {
    Sign(SignJob),
    Device(DeviceJob),
}

// Everything is moved into the worker thread, which owns it for the session.
#[allow(clippy::needless_pass_by_value)]
fn worker(
    selector: Option<DeviceSelector>,
    jobs: Receiver<WorkerJob>,
    tx: Sender<Msg>,
    pins: Receiver<Option<Zeroizing<String>>>,
    out_dir: PathBuf,
    alias: String,
    env: MemberEnv,
) {
    let pins = TuiPins {
        tx: tx.clone(),
        rx: Arc::new(Mutex::new(pins)),
    };
    let mut device = selector
        .as_ref()
        .map(|s| open_device(s, Box::new(pins.clone())));
    // The keys the app shows and reviews with; an action is refused if the device's differ.
    let mut reviewed = crate::member::review::MemberKeys::default();
    let show = |d: &mut dyn KeyDevice, reviewed: &mut crate::member::review::MemberKeys| {
        let view = describe(d);
        reviewed.clone_from(&view.member_keys);
        let _ = tx.send(Msg::Device(view));
    };
    match &mut device {
        Some(Ok(d)) => {
            show(d.as_mut(), &mut reviewed);
            send_pins(&env, d.as_mut(), &tx);
        }
        Some(Err(e)) => {
            let _ = tx.send(Msg::Device(DeviceView {
                label: "key device unavailable".to_owned(),
                error: Some(format!("{e} — {}", e.hint())),
                ..DeviceView::default()
            }));
        }
        None => {}
    }
    for job in jobs {
        let (result, rec) = match &job {
            WorkerJob::Device(DeviceJob::PlanProvision) => {
                let plan =
                    yubikey(selector.as_ref(), "be provisioned").and_then(|(serial, slots)| {
                        crate::cli::key::plan_provisioning(
                            serial,
                            &ProvisionOptions::app(slots.clone()),
                        )
                        .map(|plan| (serial, plan.to_string()))
                        .map_err(|e| format!("{e} — {}", e.hint()))
                    });
                let _ = tx.send(Msg::ProvisionPlan(plan));
                continue;
            }
            WorkerJob::Device(DeviceJob::ChangePin) => change_secret(
                selector.as_ref(),
                &pins,
                "PIN",
                crate::cli::key::change_pin_on,
            ),
            WorkerJob::Device(DeviceJob::ChangePuk) => change_secret(
                selector.as_ref(),
                &pins,
                "PUK",
                crate::cli::key::change_puk_on,
            ),
            WorkerJob::Sign(SignJob::Provision { serial, plan }) => {
                let done = provision(selector.as_ref(), &pins, *serial, plan);
                if done.0.is_ok() {
                    // New keys: read the card again for the Keys screen and later signatures.
                    device = selector
                        .as_ref()
                        .map(|s| open_device(s, Box::new(pins.clone())));
                    if let Some(Ok(d)) = &mut device {
                        show(d.as_mut(), &mut reviewed);
                    }
                }
                done
            }
            WorkerJob::Sign(job) => {
                let Some(Ok(d)) = &mut device else {
                    let _ = tx.send(Msg::JobDone(Err(NO_DEVICE.to_owned())));
                    continue;
                };
                let result = run_job(d.as_mut(), job, &reviewed, &out_dir, &env, &tx);
                send_pins(&env, d.as_mut(), &tx);
                let rec = Record::new(job.action(), decision(&result))
                    .input_hash("object", &job.object_hash())
                    .device(d.info().label);
                (result, rec)
            }
            WorkerJob::Device(DeviceJob::ExportDescriptor) => {
                let Some(Ok(d)) = &mut device else {
                    let _ = tx.send(Msg::JobDone(Err(NO_DEVICE.to_owned())));
                    continue;
                };
                let result =
                    export_descriptor(d.as_mut(), selector.as_ref(), &alias, &out_dir, &tx);
                let rec = Record::new("key.export", decision(&result)).device(d.info().label);
                (result, rec)
            }
        };
        let _ = tx.send(Msg::TranscriptLine(summary(&rec)));
        crate::cli::common::record(rec);
        if tx.send(Msg::JobDone(result)).is_err() {
            return;
        }
    }
}

const NO_DEVICE: &str = "no key device: start tessera with --serial N or --software FILE";

/// The YubiKey `selector` names, or why `what` needs one.
fn yubikey<'a>(
    selector: Option<&'a DeviceSelector>,
    what: &str,
) -> Result<(u32, &'a SlotMap), String> {
    match selector {
        Some(DeviceSelector::Yubikey { serial, slots }) => Ok((*serial, slots)),
        _ => Err(format!(
            "only a YubiKey can {what}: start tessera with --serial N"
        )),
    }
}

/// The PIN or PUK changer of `crate::cli::key`.
type ChangeSecret = fn(u32, &mut dyn PinSource) -> Result<(), DeviceError>;

/// Changes the YubiKey's PIN or PUK (`which`) with `change`, on its own card session; no role
/// key is involved.
fn change_secret(
    selector: Option<&DeviceSelector>,
    pins: &TuiPins,
    which: &str,
    change: ChangeSecret,
) -> (Result<String, String>, Record) {
    let result = yubikey(selector, &format!("change a {which}")).and_then(|(serial, _)| {
        change(serial, &mut pins.clone())
            .map(|()| format!("{which} of YubiKey {serial} changed"))
            .map_err(|e| format!("{e} — {}", e.hint()))
    });
    let rec = Record::new(
        &format!("key.change-{}", which.to_ascii_lowercase()),
        decision(&result),
    );
    (result, rec.device(yubikey_label(selector)))
}

/// Provisions the YubiKey exactly as the confirmed `plan` says (see
/// [`crate::cli::key::provision_as_shown`]).
fn provision(
    selector: Option<&DeviceSelector>,
    pins: &TuiPins,
    serial: u32,
    plan: &str,
) -> (Result<String, String>, Record) {
    let result = yubikey(selector, "be provisioned").and_then(|(selected, slots)| {
        if selected != serial {
            return Err(format!("the plan is for YubiKey {serial}, not {selected}"));
        }
        crate::cli::key::provision_as_shown(
            serial,
            &ProvisionOptions::app(slots.clone()),
            plan,
            &mut pins.clone(),
        )
        .map(|(_, outcome)| outcome.to_string())
        .map_err(|e| format!("{e} — {}", e.hint()))
    });
    let rec = Record::new("key.provision", decision(&result))
        .input_hash("plan", &Hash32::sha256(plan.as_bytes()))
        .device(yubikey_label(selector));
    (result, rec)
}

fn yubikey_label(selector: Option<&DeviceSelector>) -> String {
    yubikey(selector, "").map_or_else(|_| "no YubiKey".to_owned(), |(s, _)| format!("YubiKey {s}"))
}

fn decision(result: &Result<String, String>) -> String {
    match result {
        Ok(t) => t.clone(),
        Err(e) => format!("refused: {e}"),
    }
}

fn export_descriptor(
    dev: &mut dyn KeyDevice,
    selector: Option<&DeviceSelector>,
    alias: &str,
    out_dir: &Path,
    written: &Sender<Msg>,
) -> Result<String, String> {
    let selector = selector.ok_or("no key device")?;
    let mut d = crate::cli::key::descriptor(dev, selector, alias)
        .map_err(|e| format!("{e} — {}", e.hint()))?;
    let attestation = crate::cli::key::attach_attestation(&mut d, selector)
        .map_err(|e| format!("{e} — {}", e.hint()))?;
    let meta = Metadata {
        member: Some(alias.to_owned()),
        ..Metadata::default()
    };
    let path =
        crate::cli::objects::save(out_dir, BundleKind::Member, meta, &d).map_err(|e| e.message)?;
    let _ = written.send(Msg::Written(path.clone()));
    Ok(format!(
        "member descriptor of {alias} written to {}; v shows it as QR; attestation {}",
        path.display(),
        attestation.line
    ))
}

fn summary(rec: &Record) -> String {
    format!(
        "{} {}: {}",
        OffsetDateTime::now_utc().time(),
        rec.action,
        rec.decision
    )
}

/// What the worker needs to have the member layer decide again at the moment of an action.
#[derive(Clone)]
struct MemberEnv {
    /// The last approved manifest per namespace, the baseline of the next diff.
    approved_dir: Option<PathBuf>,
    store: Option<crate::member::pin::PinStore>,
    anchor: TrustAnchor,
    at: Option<OffsetDateTime>,
    max_age: Duration,
    reproduced: Option<crate::member::review::Reproduced>,
    members: Option<crate::member::review::MemberJudge>,
}

impl MemberEnv {
    fn from_config(c: &super::app::Config, approved_dir: Option<PathBuf>) -> Self {
        Self {
            approved_dir,
            store: c.pins.clone(),
            anchor: c.anchor.clone(),
            at: c.at,
            max_age: c.max_age,
            reproduced: c.reproduced.clone(),
            members: c.members.clone(),
        }
    }
}

fn send_pins(env: &MemberEnv, dev: &mut dyn KeyDevice, tx: &Sender<Msg>) {
    let (Some(store), Ok(mine)) = (&env.store, dev.public_key(Role::Manifest)) else {
        let _ = tx.send(Msg::Pins(Vec::new()));
        return;
    };
    // A ledger that cannot be read refuses every pin (each shows why), never hides them.
    let listed = match crate::member::pin::ledger_of(dev) {
        Ok(ledger) => store.list(&mine, &ledger),
        Err(e) => store
            .list(&mine, &crate::member::pin::PinLedger::default())
            .into_iter()
            .map(|(path, _)| (path, Err(e.clone())))
            .collect(),
    };
    let _ = tx.send(Msg::Pins(listed));
}

fn run_job(
    dev: &mut dyn KeyDevice,
    job: &SignJob,
    keys: &crate::member::review::MemberKeys,
    out_dir: &Path,
    env: &MemberEnv,
    written: &Sender<Msg>,
) -> Result<String, String> {
    // The clock at this moment, not when the request was opened; the keys the app reviewed
    // with, which the member layer checks against the device before acting.
    let ctx = crate::member::review::Context {
        anchor: &env.anchor,
        at: env.at.unwrap_or_else(OffsetDateTime::now_utc),
        at_is_clock: env.at.is_none(),
        max_age: env.max_age,
        reproduced: env.reproduced.as_ref(),
        keys,
    };
    let store = env
        .store
        .clone()
        .ok_or("no folder for namespace pins: start with --pins DIR")?;
    let act_err = |e: crate::member::act::ActError| e.message();
    let fail = |e: crate::cli::common::Failure| e.message;
    match job {
        SignJob::ApproveManifest { manifest } => {
            let members = env.members.as_ref().map(|j| j.evidence(ctx.at));
            let (approval, _) = crate::member::act::approve_manifest_with(
                &store,
                manifest,
                &ctx,
                members.as_ref(),
                dev,
            )
            .map_err(act_err)?;
            let meta = Metadata {
                namespace: Some(manifest.namespace.name.clone()),
                nonce: Some(manifest.namespace.nonce),
                ..Metadata::default()
            };
            let path =
                crate::cli::objects::save(out_dir, BundleKind::Approval, meta.clone(), &approval)
                    .map_err(fail)?;
            if let Some(dir) = &env.approved_dir {
                let _ = std::fs::create_dir_all(dir);
                let p = dir.join(format!("{}.manifest", manifest.namespace.name));
                let _ = std::fs::remove_file(&p);
                crate::cli::objects::save(&p, BundleKind::Manifest, meta, manifest)
                    .map_err(fail)?;
            }
            Ok(format!("approval written to {}", path.display()))
        }
        SignJob::HandOver {
            request,
            share_path,
        } => {
            let sealed = airgap_bundle::usb::read_limited(
                share_path,
                crate::cli::common::limits::SEALED_SHARE,
            )
            .map_err(|e| format!("{}: {e}", share_path.display()))?;
            let m = &request.envelope.manifest;
            let done = crate::member::act::hand_over(&store, request, &sealed, &ctx, dev)
                .map_err(act_err)?;
            let meta = Metadata {
                namespace: Some(m.namespace.name.clone()),
                member: done.review.member.clone(),
                nonce: Some(m.namespace.nonce),
                ..Metadata::default()
            };
            let path =
                crate::cli::objects::save(out_dir, BundleKind::Share, meta, &done.submission)
                    .map_err(fail)?;
            let _ = written.send(Msg::Written(path.clone()));
            Ok(format!(
                "share x = {} handed over; share bundle written to {}\nnext: carry the USB stick to the online machine and run `tessera provision post --relay URL {}`, or press v to show it as QR",
                done.x,
                path.display(),
                path.display()
            ))
        }
        SignJob::ApprovePatch { envelope } => {
            let (approval, _) = crate::member::act::approve_change(
                &store,
                crate::member::review::Change::Patch(&envelope.patch),
                None,
                &ctx,
                dev,
            )
            .map_err(act_err)?;
            let meta = Metadata {
                namespace: Some(envelope.patch.namespace.clone()),
                ..Metadata::default()
            };
            let path =
                crate::cli::objects::save(out_dir, BundleKind::Approval, meta.clone(), &approval)
                    .map_err(fail)?;
            // The baseline of the next patch's old -> new view.
            if let Some(dir) = &env.approved_dir {
                let _ = std::fs::create_dir_all(dir);
                let p = dir.join(format!(
                    "{}.patch-{}",
                    envelope.patch.namespace, envelope.patch.sequence
                ));
                let _ = std::fs::remove_file(&p);
                crate::cli::objects::save(&p, BundleKind::Patch, meta, envelope).map_err(fail)?;
            }
            Ok(format!("patch approval written to {}", path.display()))
        }
        // Provisioning makes the role keys rather than using them: `provision` runs it.
        SignJob::Provision { .. } => Err("provisioning needs no role key".to_owned()),
    }
}

// ---------------------------------------------------------------------------------------------
// Terminal.

struct TerminalGuard;

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore();
    }
}

fn restore() {
    let _ = disable_raw_mode();
    let _ = crossterm::execute!(io::stdout(), LeaveAlternateScreen, crossterm::cursor::Show);
}

fn map_key(code: KeyCode, mods: KeyModifiers) -> Option<Key> {
    Some(match code {
        KeyCode::Char('c') if mods.contains(KeyModifiers::CONTROL) => Key::CtrlC,
        KeyCode::Char(c) => Key::Char(c),
        KeyCode::Enter => Key::Enter,
        KeyCode::Esc => Key::Esc,
        KeyCode::Tab => Key::Tab,
        KeyCode::BackTab => Key::BackTab,
        KeyCode::Up => Key::Up,
        KeyCode::Down => Key::Down,
        KeyCode::PageUp => Key::PageUp,
        KeyCode::PageDown => Key::PageDown,
        KeyCode::Backspace => Key::Backspace,
        _ => return None,
    })
}

/// Runs the app until the operator quits. `first_file` opens on its review screen.
pub fn run(args: &TuiArgs, first_file: Option<&Path>) -> ExitCode {
    let config = match config(args, first_file) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("tessera: {e}");
            return ExitCode::from(2);
        }
    };
    let selector = match (&args.serial, &args.software) {
        (Some(serial), _) => match args.slots.map() {
            Ok(slots) => Some(DeviceSelector::Yubikey {
                serial: *serial,
                slots,
            }),
            Err(e) => {
                eprintln!("tessera: --slots: {e}");
                return ExitCode::from(2);
            }
        },
        (None, Some(p)) => Some(DeviceSelector::Software(p.clone())),
        (None, None) => None,
    };
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore();
        hook(info);
    }));
    let result = (|| -> io::Result<()> {
        enable_raw_mode()?;
        let _guard = TerminalGuard;
        crossterm::execute!(io::stdout(), EnterAlternateScreen)?;
        let mut terminal = Terminal::new(CrosstermBackend::new(io::stdout()))?;
        event_loop(
            &mut terminal,
            State::new(config),
            selector,
            first_file.map(Path::to_path_buf),
            args,
        )
    })();
    restore();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tessera: terminal error: {e}");
            ExitCode::from(2)
        }
    }
}

fn event_loop(
    terminal: &mut Terminal<CrosstermBackend<Stdout>>,
    mut state: State,
    selector: Option<DeviceSelector>,
    first_file: Option<PathBuf>,
    args: &TuiArgs,
) -> io::Result<()> {
    let (tx, rx) = mpsc::channel::<Msg>();
    let (job_tx, job_rx) = mpsc::channel::<WorkerJob>();
    let (pin_tx, pin_rx) = mpsc::channel::<Option<Zeroizing<String>>>();
    {
        let tx = tx.clone();
        let out_dir = state.config.bundle_dir.clone();
        let approved = state_dir(args);
        let alias = args
            .alias
            .clone()
            .or_else(|| std::env::var("USER").ok())
            .unwrap_or_else(|| "member".to_owned());
        let env = MemberEnv::from_config(&state.config, approved);
        std::thread::spawn(move || {
            worker(selector, job_rx, tx, pin_rx, out_dir, alias, env);
        });
    }
    let mut pin = Zeroizing::new(String::new());
    let mut pending: Vec<Effect> = vec![Effect::Rescan];
    if let Some(f) = first_file {
        pending.push(Effect::Load(f));
    }
    update_now(&mut state);
    if let Ok((w, h)) = crossterm::terminal::size() {
        pending.extend(app::update(&mut state, Msg::Resize(w, h)));
    }
    let mut last_tick = Instant::now();
    let mut last_frame = Instant::now();
    let mut scan_stop: Option<Arc<AtomicBool>> = None;
    loop {
        for effect in std::mem::take(&mut pending) {
            match effect {
                Effect::Quit => return Ok(()),
                Effect::Rescan => {
                    let msg = scan(&state.config.bundle_dir);
                    pending.extend(app::update(&mut state, msg));
                }
                Effect::Load(path) => {
                    let msg = match airgap_bundle::usb::read_limited(
                        &path,
                        crate::cli::common::limits::OBJECT,
                    ) {
                        Ok(bytes) => Msg::Loaded { path, bytes },
                        Err(e) => Msg::LoadFailed {
                            path,
                            error: e.to_string(),
                        },
                    };
                    pending.extend(app::update(&mut state, msg));
                }
                Effect::Sign(job) => {
                    let _ = job_tx.send(WorkerJob::Sign(job));
                }
                Effect::Device(job) => {
                    let _ = job_tx.send(WorkerJob::Device(job));
                }
                Effect::PinDone { submit } => {
                    if submit && app::looks_like_otp(&pin) {
                        pin.clear();
                        pending.extend(app::update(&mut state, Msg::PinRefused("that was a YubiKey OTP (the key was touched), not your PIN; type the PIN".to_owned())));
                    } else {
                        let value = submit.then(|| Zeroizing::new(std::mem::take(&mut *pin)));
                        pin.clear();
                        if !submit {
                            state.popup = None;
                        }
                        let _ = pin_tx.send(value);
                        if submit {
                            state.popup = None;
                        }
                    }
                }
                Effect::ShowQr { path, fragment } => {
                    let msg = match qr_view(&path, fragment) {
                        Ok(view) => Msg::QrReady(view),
                        Err(error) => Msg::LoadFailed { path, error },
                    };
                    pending.extend(app::update(&mut state, msg));
                }
                Effect::Record(rec) => {
                    pending.extend(app::update(&mut state, Msg::TranscriptLine(summary(&rec))));
                    crate::cli::common::record(rec);
                }
                Effect::StartScan { id } => {
                    if let Some(old) = scan_stop.take() {
                        old.store(true, Ordering::Relaxed);
                    }
                    let stop = Arc::new(AtomicBool::new(false));
                    scan_stop = Some(Arc::clone(&stop));
                    let (tx, from, dir) = (
                        tx.clone(),
                        args.scan_from.clone(),
                        state.config.bundle_dir.clone(),
                    );
                    std::thread::spawn(move || scan_worker(id, &from, &dir, &stop, &tx));
                }
                Effect::StopScan => {
                    if let Some(old) = scan_stop.take() {
                        old.store(true, Ordering::Relaxed);
                    }
                }
            }
        }
        terminal.draw(|f| super::view::render(&state, f))?;
        if state.quit {
            return Ok(());
        }
        while let Ok(msg) = rx.try_recv() {
            pending.extend(app::update(&mut state, msg));
        }
        if let Some(q) = &state.qr
            && last_frame.elapsed() >= Duration::from_millis(1000 / u64::from(q.fps.max(1)))
        {
            pending.extend(app::update(&mut state, Msg::QrNext));
            last_frame = Instant::now();
        }
        if last_tick.elapsed() >= Duration::from_secs(1) {
            update_now(&mut state);
            last_tick = Instant::now();
        }
        if !event::poll(Duration::from_millis(
            if state.qr.is_some() || state.scan.is_some() {
                20
            } else {
                100
            },
        ))? {
            continue;
        }
        let k = match event::read()? {
            Event::Key(k) => k,
            Event::Resize(w, h) => {
                pending.extend(app::update(&mut state, Msg::Resize(w, h)));
                continue;
            }
            _ => continue,
        };
        if k.kind != KeyEventKind::Press {
            continue;
        }
        let Some(key) = map_key(k.code, k.modifiers) else {
            continue;
        };
        let msg = match route_key(&state, &mut pin, key) {
            Routed::Pin(n) => Msg::PinTyped(n),
            Routed::App(key) => Msg::Key(key),
        };
        pending.extend(app::update(&mut state, msg));
    }
}

/// A bundle file as fountain-coded UR parts: one pass over the fragments, then as many fountain
/// parts again, so a scanner that misses frames still completes.
fn qr_view(path: &Path, fragment: Option<usize>) -> Result<app::QrView, String> {
    let bytes = airgap_bundle::usb::read_limited(path, crate::cli::common::limits::OBJECT)
        .map_err(|e| e.to_string())?;
    // The overlay's border takes two columns and two rows; the density adapts to what is left.
    let (cols, rows) =
        crossterm::terminal::size().map_or((80, 24), |(c, r)| (usize::from(c), usize::from(r)));
    let (cols, rows) = (cols.saturating_sub(2), rows.saturating_sub(2));
    let (mut enc, reduced) = crate::cli::bundle::encoder_fitting(&bytes, fragment, cols, rows)?;
    let used = fragment
        .or(reduced)
        .unwrap_or(airgap_bundle::parts::DEFAULT_FRAGMENT_BYTES);
    let minimal = enc.fragment_count();
    let count = if enc.is_single_part() {
        1
    } else {
        (2 * minimal).min(1000)
    };
    let parts = (0..count).map(|_| enc.next_part()).collect();
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(app::QrView {
        title: name,
        path: path.to_path_buf(),
        parts,
        minimal,
        index: 0,
        fps: airgap_bundle::qr::DEFAULT_FPS,
        paused: false,
        fragment: used,
        max_fragment: airgap_bundle::qr::max_fragment_for_terminal(cols, rows).unwrap_or(used),
    })
}

/// Where a key goes: while the PIN popup is open, printable keys and Backspace edit the
/// runtime's PIN buffer and only the new length reaches the app; everything else goes to the app.
pub enum Routed {
    Pin(usize),
    App(Key),
}

pub fn route_key(state: &State, pin: &mut Zeroizing<String>, key: Key) -> Routed {
    if matches!(state.popup, Some(Popup::Pin { .. })) {
        match key {
            Key::Char(c) if pin.len() < 64 => {
                pin.push(c);
                return Routed::Pin(pin.chars().count());
            }
            Key::Backspace => {
                pin.pop();
                return Routed::Pin(pin.chars().count());
            }
            _ => {}
        }
    }
    Routed::App(key)
}

fn update_now(state: &mut State) {
    let _ = app::update(state, Msg::Tick(OffsetDateTime::now_utc()));
}
