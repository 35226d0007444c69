//! The app's pure core: state, messages, effects and `update`.
//!
//! Nothing here touches the terminal, the clock, files or devices: keys, time and results
//! arrive as [`Msg`]s, and everything with a side effect leaves as an [`Effect`] for the
//! runtime. The only way to an effect that signs or decrypts is through the confirm popup,
//! which requires typing the object's confirmation code.

use std::path::PathBuf;

use airgap_bundle::receive::ReceptionStatus;
use airgap_bundle::{Bundle, BundleKind};
use tessera_core::attestation::{self, Policy, TrustAnchor};
use tessera_core::bytes::{Hash32, Pcr};
use tessera_core::manifest::{Manifest, ManifestEnvelope};
use tessera_core::objects::{PatchEnvelope, ProvisionRequest};
use tessera_core::transcript::Record;
use time::OffsetDateTime;

use super::keymap::{Action, Keymap};
use crate::member::pin::{NamespacePin, PinError, PinStore};
use crate::member::review::{self as member_review, Context, MemberKeys, Reproduced, Review};

/// The screens, in tab order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Screen {
    Home,
    Keys,
    Attestation,
    Manifest,
    Provision,
    Patch,
    Transcript,
}

impl Screen {
    pub const ALL: [Screen; 7] = [
        Screen::Home,
        Screen::Keys,
        Screen::Attestation,
        Screen::Manifest,
        Screen::Provision,
        Screen::Patch,
        Screen::Transcript,
    ];

    #[must_use]
    pub fn title(self) -> &'static str {
        match self {
            Screen::Home => "Home",
            Screen::Keys => "Keys",
            Screen::Attestation => "Attestation",
            Screen::Manifest => "Manifest",
            Screen::Provision => "Provision",
            Screen::Patch => "Patch",
            Screen::Transcript => "Transcript",
        }
    }

    /// For narrow terminals.
    #[must_use]
    pub fn short_title(self) -> &'static str {
        match self {
            Screen::Attestation => "Attest",
            Screen::Transcript => "Log",
            other => other.title(),
        }
    }

    fn index(self) -> usize {
        Screen::ALL.iter().position(|s| *s == self).unwrap_or(0)
    }
}

/// A key press, independent of the terminal library.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    Char(char),
    Enter,
    Esc,
    Tab,
    BackTab,
    Up,
    Down,
    PageUp,
    PageDown,
    Backspace,
    CtrlC,
}

/// Production (pinned AWS root) or DEV (a locally generated root pinned explicitly).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    Production,
    Dev { root_fingerprint: String },
}

/// What the app knows about the member's key device.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeviceView {
    pub label: String,
    pub serial: Option<u32>,
    pub software: bool,
    /// (role, fingerprint, age recipient)
    pub keys: Vec<(String, String, String)>,
    /// The same public keys for the member layer's reviews.
    pub member_keys: MemberKeys,
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleEntry {
    pub path: PathBuf,
    pub summary: String,
}

/// One PCR across its three sources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PcrRow {
    pub index: u8,
    pub expected: Option<String>,
    pub attested: Option<String>,
    pub reproduced: Option<String>,
}

impl PcrRow {
    /// `None` when there is nothing to compare against.
    #[must_use]
    pub fn matches(&self) -> Option<bool> {
        let a = self.attested.as_ref()?;
        let mut any = false;
        for other in [&self.expected, &self.reproduced].into_iter().flatten() {
            any = true;
            if other != a {
                return Some(false);
            }
        }
        any.then_some(true)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertView {
    pub subject: String,
    pub validity: String,
}

/// A highlighted row in a long list and the first row on screen; the window follows the row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Cursor {
    pub at: usize,
    pub top: usize,
}

impl Cursor {
    /// Moved by `by` rows in a list of `len`, with `rows` rows on screen.
    #[must_use]
    pub fn moved(self, by: isize, len: usize, rows: usize) -> Self {
        let rows = rows.max(1);
        let at = self.at.saturating_add_signed(by).min(len.saturating_sub(1));
        Self { at, top: self.top }.fitted(len, rows)
    }

    /// The window moved just enough to show the row, and no further than the list's end.
    #[must_use]
    pub fn fitted(self, len: usize, rows: usize) -> Self {
        let rows = rows.max(1);
        let at = self.at.min(len.saturating_sub(1));
        let top = if at < self.top {
            at
        } else if at >= self.top + rows {
            at + 1 - rows
        } else {
            self.top
        };
        Self {
            at,
            top: top.min(len.saturating_sub(rows)),
        }
    }
}

/// How a row's status reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    Good,
    Bad,
    Quiet,
}

/// One row of a detail list: a short value on screen, the full value behind Enter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetailRow {
    pub label: String,
    pub value: String,
    pub status: Option<(String, Tone)>,
}

/// An attestation document as checked against the manifest and the clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttestationView {
    pub source: String,
    /// `Ok(summary)` when valid and the policy is met, else the reason it is refused.
    pub verdict: Result<String, String>,
    pub module_id: String,
    pub timestamp: String,
    pub age: String,
    pub rows: Vec<PcrRow>,
    pub chain: Vec<CertView>,
    pub user_data: (Option<String>, Option<String>),
    pub public_key: (Option<String>, Option<String>),
    /// The highlighted row of [`AttestationView::rows`].
    pub cursor: Cursor,
}

impl AttestationView {
    /// Every value the document was checked on, one row each, none shortened: the screen
    /// ellipsizes what does not fit and Enter shows the row whole.
    #[must_use]
    pub fn detail_rows(&self) -> Vec<DetailRow> {
        let row = |label: String, value: String, status: Option<(&str, Tone)>| DetailRow {
            label,
            value,
            status: status.map(|(w, t)| (w.to_owned(), t)),
        };
        let mut out = vec![
            row("document".into(), self.source.clone(), None),
            row("module id".into(), self.module_id.clone(), None),
            row(
                "timestamp".into(),
                format!("{}  ({} old)", self.timestamp, self.age),
                None,
            ),
        ];
        for r in &self.rows {
            let overall = match r.matches() {
                Some(true) => Some(("match", Tone::Good)),
                Some(false) => Some(("MISMATCH", Tone::Bad)),
                None => Some(("-", Tone::Quiet)),
            };
            out.push(row(
                format!("PCR{} attested", r.index),
                r.attested.clone().unwrap_or_else(|| "-".into()),
                overall,
            ));
            for (name, other) in [("expected", &r.expected), ("reproduced", &r.reproduced)] {
                if let Some(v) = other {
                    let same = r.attested.as_ref() == Some(v);
                    out.push(row(
                        format!("PCR{} {name}", r.index),
                        v.clone(),
                        Some(if same {
                            ("same", Tone::Good)
                        } else {
                            ("DIFFERS", Tone::Bad)
                        }),
                    ));
                }
            }
        }
        for (i, c) in self.chain.iter().enumerate() {
            out.push(row(
                format!("certificate {}", i + 1),
                format!("{}  {}", c.subject, c.validity),
                None,
            ));
        }
        // Only a document whose signature and chain verified has bindings worth a word.
        let verified = !self.module_id.is_empty();
        for (name, (want, have)) in [
            ("user_data", &self.user_data),
            ("public_key", &self.public_key),
        ] {
            let status = match (verified, want, have) {
                (false, _, _) => ("— not verified", Tone::Quiet),
                (true, None, _) => ("— none asked", Tone::Quiet),
                (true, Some(w), Some(h)) if w.len() == h.len() && w == h => ("bound", Tone::Good),
                (true, Some(w), Some(h)) if w.len() == h.len() => ("NOT BOUND", Tone::Bad),
                // A description of what is expected rather than a value: present is enough.
                (true, Some(_), Some(_)) => ("present", Tone::Good),
                (true, Some(_), None) => ("MISSING", Tone::Bad),
            };
            out.push(row(
                name.to_owned(),
                have.clone().unwrap_or_else(|| "-".into()),
                Some(status),
            ));
            // The value it should have had, when there is one (not a description).
            if let Some(w) = want
                .as_ref()
                .filter(|w| have.as_ref() != Some(*w) && w.bytes().all(|b| b.is_ascii_hexdigit()))
            {
                out.push(row(format!("{name} expected"), w.clone(), None));
            }
        }
        out
    }
}

/// A detail row as the body of a popup: every character of the value, long hex in groups of
/// eight so lines break between groups.
#[must_use]
pub fn detail_text(row: &DetailRow) -> String {
    let value = &row.value;
    let hexlike = value.len() >= 32 && value.bytes().all(|b| b.is_ascii_hexdigit());
    let mut text = if hexlike {
        value
            .as_bytes()
            .chunks(8)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    } else {
        value.clone()
    };
    if let Some((word, _)) = &row.status {
        text.push_str("\n\n");
        text.push_str(word);
    }
    text
}

/// A manifest under review.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestReview {
    pub manifest: Manifest,
    pub hash: Hash32,
    /// (mark, field, value); mark is ' ', '~' changed (value shows old -> new), '+' added,
    /// '-' removed.
    pub fields: Vec<(char, String, String)>,
    pub previous_nonce: Option<u64>,
    /// The member layer's decision on approving it; `None` until the key device is known.
    pub review: Option<Review>,
    pub approvals: Option<String>,
    /// The highlighted field row and the first one on screen.
    pub cursor: Cursor,
    /// Which field rows have been on screen; a changed or added row must have been seen
    /// before approving.
    pub seen: Vec<bool>,
}

impl ManifestReview {
    /// Why approving is refused, if it is.
    #[must_use]
    pub fn blocked(&self) -> Option<String> {
        match &self.review {
            None => Some("waiting for the key device and the clock".to_owned()),
            Some(r) => r.refusal().or_else(|| {
                let unseen = self.unseen_changes();
                (unseen > 0).then(|| {
                    format!(
                        "{unseen} changed field(s) (~ or +) not yet on screen\nnext: scroll through the fields with j/k or the arrow keys"
                    )
                })
            }),
        }
    }

    /// Changed or added rows that have not been on screen yet.
    #[must_use]
    pub fn unseen_changes(&self) -> usize {
        self.fields
            .iter()
            .zip(&self.seen)
            .filter(|((mark, _, _), seen)| *mark != ' ' && !**seen)
            .count()
    }

    /// Fits the window to `rows` field rows and marks the rows it shows as seen.
    pub fn show(&mut self, rows: usize) {
        self.cursor = self.cursor.fitted(self.fields.len(), rows);
        let top = self.cursor.top.min(self.fields.len());
        let end = (top + rows).min(self.fields.len());
        for s in &mut self.seen[top..end] {
            *s = true;
        }
    }

    /// The highlighted field, whole.
    #[must_use]
    pub fn detail(&self) -> Option<DetailRow> {
        let (mark, name, value) = self.fields.get(self.cursor.at)?;
        let status = match mark {
            '~' => Some(("changed since your last approval".to_owned(), Tone::Bad)),
            '+' => Some(("new since your last approval".to_owned(), Tone::Bad)),
            '-' => Some(("removed since your last approval".to_owned(), Tone::Bad)),
            _ => None,
        };
        Some(DetailRow {
            label: name.clone(),
            value: value.clone(),
            status,
        })
    }
}

/// List rows the Manifest and Attestation screens show at a terminal height: the header (2),
/// the footer (1), the summary box (4) and the list's borders (2) take the rest.
#[must_use]
pub fn manifest_rows(height: u16) -> usize {
    usize::from(height.saturating_sub(9)).max(1)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvisionWizard {
    pub request_path: PathBuf,
    pub request: ProvisionRequest,
    pub manifest_hash: Hash32,
    pub approvals: Result<String, String>,
    pub attestation: AttestationView,
    /// The member layer's decision on handing over; `None` until the key device is known.
    pub review: Option<Review>,
    pub share_path: Option<PathBuf>,
    pub result: Option<Result<String, String>>,
    /// The share bundle written by the hand-over, which can also be shown as QR.
    pub share_bundle: Option<PathBuf>,
}

impl ProvisionWizard {
    /// The member layer's answer, plus the one input it needs from the session: a share file.
    pub fn ready(&self) -> Result<(), String> {
        let Some(review) = &self.review else {
            return Err("waiting for the key device and the clock".to_owned());
        };
        if let Some(why) = review.refusal() {
            return Err(why);
        }
        if self.share_path.is_none() {
            return Err("no encrypted share file found\nnext: start with --share FILE, or put your *.share.age in the bundle folder".to_owned());
        }
        if self.result.as_ref().is_some_and(Result::is_ok) {
            return Err(
                "already handed over: your share bundle is written; carry it to the coordinator"
                    .to_owned(),
            );
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatchReview {
    pub envelope: PatchEnvelope,
    pub hash: Hash32,
    /// (mark, setting, value) against the earlier patches of the same manifest this laptop
    /// holds; a changed value shows old -> new.
    pub fields: Vec<(char, String, String)>,
    /// How many earlier patches the marks are against.
    pub baseline: usize,
}

/// Device work that signs or decrypts nothing: it needs no confirmation code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceJob {
    /// Write the member descriptor (public keys) to the bundle folder.
    ExportDescriptor,
    /// Change the YubiKey's PIN (current PIN, then the new one twice).
    ChangePin,
    /// Change the YubiKey's PUK (current PUK, then the new one twice).
    ChangePuk,
    /// Read the YubiKey and plan its provisioning; the plan comes back as
    /// [`Msg::ProvisionPlan`] and goes through [`Popup::Confirm`] before anything changes.
    PlanProvision,
}

/// Work that needs the key device; only ever created by a confirmed [`Popup::Confirm`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignJob {
    ApproveManifest {
        manifest: Manifest,
    },
    HandOver {
        request: ProvisionRequest,
        share_path: PathBuf,
    },
    ApprovePatch {
        envelope: PatchEnvelope,
    },
    /// Generate the role keys on a YubiKey and replace its factory PIN, PUK and management
    /// key, exactly as `plan` (the text the person reviewed) says.
    Provision {
        serial: u32,
        plan: String,
    },
}

impl SignJob {
    /// The hash whose confirmation code must be typed.
    #[must_use]
    pub fn object_hash(&self) -> Hash32 {
        match self {
            SignJob::ApproveManifest { manifest } => manifest.hash(),
            SignJob::HandOver { request, .. } => request.envelope.manifest.hash(),
            SignJob::ApprovePatch { envelope } => envelope.patch.hash(),
            SignJob::Provision { plan, .. } => Hash32::sha256(plan.as_bytes()),
        }
    }

    /// The transcript's name for this action.
    #[must_use]
    pub fn action(&self) -> &'static str {
        match self {
            SignJob::ApproveManifest { .. } => "manifest.approve",
            SignJob::HandOver { .. } => "provision.sign",
            SignJob::ApprovePatch { .. } => "patch.approve",
            SignJob::Provision { .. } => "key.provision",
        }
    }

    #[must_use]
    pub fn describe(&self) -> String {
        match self {
            SignJob::ApproveManifest { manifest } => format!(
                "Sign a manifest approval with your Manifest key\nnamespace {}  nonce {}\nmanifest {}",
                manifest.namespace.name,
                manifest.namespace.nonce,
                manifest.hash()
            ),
            SignJob::HandOver { request, .. } => format!(
                "[1/2] decrypt your share and re-encrypt it to the attested enclave\n[2/2] sign the share-post receipt with your Share key\nnamespace {}  nonce {}\nmanifest {}",
                request.envelope.manifest.namespace.name,
                request.envelope.manifest.namespace.nonce,
                request.envelope.manifest.hash(),
            ),
            SignJob::ApprovePatch { envelope } => format!(
                "Sign a patch approval with your Patch key\nnamespace {}  sequence {}\npatch {}",
                envelope.patch.namespace,
                envelope.patch.sequence,
                envelope.patch.hash()
            ),
            SignJob::Provision { serial, plan } => format!(
                "Provision YubiKey {serial}: new keys and a new PIN, PUK and management key\n{}",
                plan.trim_end()
            ),
        }
    }
}

// One popup at a time, moved in and out of the state: variant size does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Popup {
    Help,
    Confirm {
        job: SignJob,
        typed: String,
        /// The last code typed did not match.
        mismatch: bool,
    },
    /// The runtime holds the typed PIN; the state only knows how many characters there are.
    Pin {
        /// Which secret: "PIN", "PUK", "new PIN", "repeat the new PUK", …
        secret: String,
        purpose: String,
        tries_left: Option<u8>,
        typed_len: usize,
        warning: Option<String>,
    },
    Touch {
        purpose: String,
    },
    Message {
        title: String,
        body: String,
        error: bool,
    },
    QuitConfirm,
}

/// A bundle shown as animated QR: fountain-coded UR parts, cycled at `fps`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QrView {
    pub title: String,
    /// The bundle file, re-encoded when the density changes.
    pub path: PathBuf,
    pub parts: Vec<String>,
    /// Parts needed at the least (the fragment count).
    pub minimal: usize,
    pub index: usize,
    pub fps: u32,
    /// Held on one frame (Space); `n`/`p` step while held.
    pub paused: bool,
    /// Bytes per frame, and the most that fit the window: fewer bytes make larger, easier
    /// modules for a poor camera.
    pub fragment: usize,
    pub max_fragment: usize,
}

/// The Scan screen: a bundle arriving as animated QR from the camera (or another frame
/// source). What it shows comes from [`airgap_bundle::receive`], which alone decides what a
/// frame is worth; the bundle is opened only once it has passed every check there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanView {
    /// Tells this scan's messages from those of one stopped earlier.
    pub id: u64,
    /// What is read: the camera device, a folder, a video.
    pub source: String,
    pub status: ReceptionStatus,
    /// Why the scan ended without a bundle.
    pub failed: Option<String>,
}

/// The QR overlay's density steps: a quarter fewer or more bytes per frame, within what a
/// frame can carry and what fits the window.
#[must_use]
pub fn qr_density_step(q: &QrView, denser: bool) -> Option<usize> {
    let min = airgap_bundle::parts::MIN_FRAGMENT_BYTES;
    let next = if denser {
        (q.fragment + q.fragment.div_ceil(4)).min(q.max_fragment)
    } else {
        (q.fragment - q.fragment / 4).max(min)
    };
    (next != q.fragment).then_some(next)
}

#[derive(Debug)]
pub enum Msg {
    Key(Key),
    Tick(OffsetDateTime),
    Device(DeviceView),
    Scanned {
        bundles: Vec<BundleEntry>,
        network: Vec<String>,
    },
    Loaded {
        path: PathBuf,
        bytes: Vec<u8>,
    },
    LoadFailed {
        path: PathBuf,
        error: String,
    },
    PinNeeded {
        secret: String,
        purpose: String,
        tries_left: Option<u8>,
    },
    PinTyped(usize),
    PinRefused(String),
    TouchNeeded {
        purpose: String,
    },
    JobDone(Result<String, String>),
    /// The hand-over wrote this share bundle.
    Written(PathBuf),
    QrReady(QrView),
    /// Time for the next QR frame.
    QrNext,
    TranscriptLine(String),
    /// The provisioning plan of YubiKey `serial`, or why there is none.
    ProvisionPlan(Result<(u32, String), String>),
    /// The member's namespace pins, each verified under the device's Manifest key.
    Pins(Vec<(PathBuf, Result<NamespacePin, PinError>)>),
    /// The terminal's size changed (columns, rows).
    Resize(u16, u16),
    /// Scan `id` read a frame.
    ScanStatus {
        id: u64,
        source: String,
        status: ReceptionStatus,
    },
    /// Scan `id` ended: the checked bundle, written into the bundle folder, or why not.
    ScanFinished {
        id: u64,
        result: Result<(PathBuf, Vec<u8>), String>,
    },
}

// Effects are handed to the runtime one by one and consumed.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, PartialEq, Eq)]
pub enum Effect {
    Rescan,
    Load(PathBuf),
    Sign(SignJob),
    Device(DeviceJob),
    /// The PIN popup closed: submit the runtime's buffer, or cancel.
    PinDone {
        submit: bool,
    },
    Record(Record),
    /// Encode this bundle file as UR parts for the QR overlay, at `fragment` bytes per frame
    /// (`None`: the densest default that fits).
    ShowQr {
        path: PathBuf,
        fragment: Option<usize>,
    },
    /// Start reading frames for scan `id`.
    StartScan {
        id: u64,
    },
    /// Stop the running scan; nothing it read is kept.
    StopScan,
    Quit,
}

/// Fixed inputs of a session.
#[derive(Debug, Clone)]
pub struct Config {
    pub mode: Mode,
    pub anchor: TrustAnchor,
    pub bundle_dir: PathBuf,
    pub share_path: Option<PathBuf>,
    /// The encrypted share file's bytes (age ciphertext), read once at start so the review
    /// can check whom its header names.
    pub share_sealed: Option<Vec<u8>>,
    /// PCR0-2 reproduced from an EIF, with where they came from.
    pub reproduced: Option<Reproduced>,
    /// The last manifest this member approved, per namespace (the baseline of the diff).
    pub previous: Vec<Manifest>,
    /// Earlier patches found beside the bundles (the baseline of a patch's old -> new view).
    pub previous_patches: Vec<tessera_core::objects::Patch>,
    /// Where the member's namespace pins live.
    pub pins: Option<PinStore>,
    /// Validation time override (`--at`); `None` means the laptop clock.
    pub at: Option<OffsetDateTime>,
    pub max_age: std::time::Duration,
    pub keymap: Keymap,
    /// The member descriptors found in the bundle folder and the namespace's YubiKey
    /// attestation policy; `None`: none found and attestation not required.
    pub members: Option<crate::member::review::MemberJudge>,
}

pub struct State {
    pub config: Config,
    pub screen: Screen,
    pub now: Option<OffsetDateTime>,
    pub clock_confirmed: bool,
    pub network: Vec<String>,
    pub device: Option<DeviceView>,
    pub bundles: Vec<BundleEntry>,
    pub selected: usize,
    pub attestation: Option<AttestationView>,
    pub manifest: Option<ManifestReview>,
    pub provision: Option<ProvisionWizard>,
    pub patch: Option<PatchReview>,
    pub transcript: Vec<String>,
    /// The member descriptor written from the Keys screen.
    pub descriptor: Option<PathBuf>,
    pub qr: Option<QrView>,
    pub scan: Option<ScanView>,
    /// Scans started so far (the next scan's id).
    pub scans: u64,
    /// The terminal's size (columns, rows), for what fits on screen.
    pub size: (u16, u16),
    /// The member's pins as last read; `None` until the key device is known.
    pub pins: Option<Vec<(PathBuf, Result<NamespacePin, PinError>)>>,
    pub popup: Option<Popup>,
    pub busy: Option<String>,
    pub status: String,
    pub quit: bool,
}

impl State {
    #[must_use]
    pub fn new(config: Config) -> Self {
        Self {
            config,
            screen: Screen::Home,
            now: None,
            clock_confirmed: false,
            network: Vec::new(),
            device: None,
            bundles: Vec::new(),
            selected: 0,
            attestation: None,
            manifest: None,
            provision: None,
            patch: None,
            transcript: Vec::new(),
            descriptor: None,
            qr: None,
            scan: None,
            scans: 0,
            size: (80, 24),
            pins: None,
            popup: None,
            busy: None,
            status: String::new(),
            quit: false,
        }
    }

    /// Rows of the Manifest screen's member-keys box (its borders included): one per line the
    /// review's YubiKey check gives, 0 without member descriptors.
    #[must_use]
    pub fn member_keys_height(&self) -> u16 {
        let (Some(j), Some(m)) = (&self.config.members, &self.manifest) else {
            return 0;
        };
        let lines = crate::member::review::member_key_line_count(
            &m.manifest,
            &j.evidence(OffsetDateTime::UNIX_EPOCH),
        );
        if lines == 0 {
            0
        } else {
            u16::try_from(lines + 2).unwrap_or(u16::MAX)
        }
    }

    /// Field rows the Manifest screen shows: [`manifest_rows`] less the member-keys box.
    #[must_use]
    pub fn manifest_field_rows(&self) -> usize {
        manifest_rows(self.size.1.saturating_sub(self.member_keys_height()))
    }

    fn validation_time(&self) -> Option<OffsetDateTime> {
        self.config.at.or(self.now)
    }

    /// What the store holds for `namespace`, as the member layer reads it.
    pub fn pin_lookup(&self, namespace: &str) -> crate::member::pin::Lookup {
        let keys = self.device.as_ref().map(|d| &d.member_keys);
        let (Some(store), Some(mine)) = (&self.config.pins, keys.and_then(|k| k.manifest)) else {
            return Ok(None);
        };
        let Some(pins) = &self.pins else {
            return Err(PinError::Io(
                "your pins and your key device's pin ledger are still being read; wait a moment"
                    .to_owned(),
            ));
        };
        let path = store.path(namespace, &mine);
        match pins.iter().find(|(p, _)| *p == path) {
            Some((_, Ok(pin))) if pin.namespace == namespace => Ok(Some(pin.clone())),
            Some((_, Ok(pin))) => Err(PinError::WrongNamespace {
                found: pin.namespace.clone(),
                expected: namespace.to_owned(),
            }),
            Some((_, Err(e))) => Err(e.clone()),
            None => Ok(None),
        }
    }

    /// Decides again, at the state's clock, every open review: a document that was fresh when
    /// the request opened is stale once the clock passes its limit.
    pub fn refresh_reviews(&mut self) {
        let (Some(at), Some(device)) = (self.validation_time(), self.device.as_ref()) else {
            return;
        };
        let ctx = Context {
            anchor: &self.config.anchor,
            at,
            at_is_clock: self.config.at.is_none(),
            max_age: self.config.max_age,
            reproduced: self.config.reproduced.as_ref(),
            keys: &device.member_keys,
        };
        let provision = self.provision.as_ref().map(|w| {
            member_review::hand_over(
                &self.pin_lookup(&w.request.envelope.manifest.namespace.name),
                &w.request,
                self.config.share_sealed.as_deref(),
                &ctx,
            )
        });
        let members = self.config.members.as_ref().map(|j| j.evidence(at));
        let manifest = self.manifest.as_ref().map(|r| {
            member_review::approve_manifest_with(
                &self.pin_lookup(&r.manifest.namespace.name),
                &r.manifest,
                &ctx,
                members.as_ref(),
            )
        });
        if let (Some(w), Some(r)) = (self.provision.as_mut(), provision) {
            w.review = Some(r);
        }
        if let (Some(m), Some(r)) = (self.manifest.as_mut(), manifest) {
            m.review = Some(r);
        }
    }

    fn message(&mut self, title: &str, body: impl Into<String>, error: bool) {
        self.popup = Some(Popup::Message {
            title: title.to_owned(),
            body: body.into(),
            error,
        });
    }
}

/// A YubiKey OTP typed by a touch into a PIN field: 44 modhex characters.
#[must_use]
pub fn looks_like_otp(s: &str) -> bool {
    s.len() == 44 && s.chars().all(|c| "cbdefghijklnrtuv".contains(c))
}

pub use crate::member::confirm_code;

/// Applies one message. Returns the effects for the runtime to carry out.
pub fn update(state: &mut State, msg: Msg) -> Vec<Effect> {
    match msg {
        Msg::Tick(now) => {
            state.now = Some(now);
            state.refresh_reviews();
            Vec::new()
        }
        Msg::Device(d) => {
            state.device = Some(d);
            state.refresh_reviews();
            Vec::new()
        }
        Msg::Pins(pins) => {
            state.pins = Some(pins);
            state.refresh_reviews();
            Vec::new()
        }
        Msg::Resize(w, h) => {
            state.size = (w, h);
            let rows = state.manifest_field_rows();
            if let Some(m) = &mut state.manifest {
                m.show(rows);
            }
            Vec::new()
        }
        Msg::Scanned { bundles, network } => {
            state.bundles = bundles;
            state.network = network;
            state.selected = state.selected.min(state.bundles.len().saturating_sub(1));
            Vec::new()
        }
        Msg::Loaded { path, bytes } => load(state, &path, &bytes),
        Msg::LoadFailed { path, error } => {
            state.message("Cannot open", format!("{}: {error}", path.display()), true);
            Vec::new()
        }
        Msg::PinNeeded {
            secret,
            purpose,
            tries_left,
        } => {
            state.popup = Some(Popup::Pin {
                secret,
                purpose,
                tries_left,
                typed_len: 0,
                warning: None,
            });
            Vec::new()
        }
        Msg::PinTyped(n) => {
            if let Some(Popup::Pin {
                typed_len, warning, ..
            }) = &mut state.popup
            {
                *typed_len = n;
                *warning = None;
            }
            Vec::new()
        }
        Msg::PinRefused(why) => {
            if let Some(Popup::Pin {
                typed_len, warning, ..
            }) = &mut state.popup
            {
                *typed_len = 0;
                *warning = Some(why);
            }
            Vec::new()
        }
        Msg::TouchNeeded { purpose } => {
            state.popup = Some(Popup::Touch { purpose });
            Vec::new()
        }
        Msg::JobDone(result) => job_done(state, result),
        Msg::Written(path) => {
            if state.screen == Screen::Keys {
                state.descriptor = Some(path);
            } else if let Some(w) = &mut state.provision {
                w.share_bundle = Some(path);
            }
            Vec::new()
        }
        Msg::QrReady(view) => {
            state.qr = Some(view);
            Vec::new()
        }
        Msg::QrNext => {
            if let Some(q) = state.qr.as_mut().filter(|q| !q.paused) {
                q.index = (q.index + 1) % q.parts.len().max(1);
            }
            Vec::new()
        }
        Msg::TranscriptLine(line) => {
            state.transcript.push(line);
            Vec::new()
        }
        Msg::ProvisionPlan(plan) => {
            state.busy = None;
            let job = plan.map(|(serial, plan)| SignJob::Provision { serial, plan });
            ask_confirmation(state, job, "Cannot provision");
            Vec::new()
        }
        Msg::ScanStatus { id, source, status } => {
            if let Some(v) = state.scan.as_mut().filter(|v| v.id == id) {
                v.source = source;
                v.status = status;
            }
            Vec::new()
        }
        Msg::ScanFinished { id, result } => {
            if state.scan.as_ref().is_none_or(|v| v.id != id) {
                return Vec::new();
            }
            match result {
                Ok((path, bytes)) => {
                    state.scan = None;
                    let mut effects = vec![Effect::Rescan];
                    effects.extend(load(state, &path, &bytes));
                    effects
                }
                Err(why) => {
                    if let Some(v) = &mut state.scan {
                        v.failed = Some(why);
                    }
                    Vec::new()
                }
            }
        }
        Msg::Key(key) => on_key(state, key),
    }
}

fn job_done(state: &mut State, result: Result<String, String>) -> Vec<Effect> {
    state.busy = None;
    if matches!(state.popup, Some(Popup::Pin { .. } | Popup::Touch { .. })) {
        state.popup = None;
    }
    if state.screen == Screen::Provision
        && let Some(w) = &mut state.provision
    {
        w.result = Some(result.clone());
    }
    match result {
        Ok(text) => {
            state.status.clone_from(&text);
            state.message("Done", text, false);
            vec![Effect::Rescan]
        }
        Err(e) => {
            state.message("Refused", e, true);
            Vec::new()
        }
    }
}

fn on_key(state: &mut State, key: Key) -> Vec<Effect> {
    if let Some(popup) = state.popup.take() {
        return popup_key(state, popup, key);
    }
    if key == Key::CtrlC {
        return quit(state);
    }
    if state.scan.is_some() {
        match key {
            Key::Esc | Key::Char('q') => {
                state.scan = None;
                return vec![Effect::StopScan];
            }
            Key::Char('?') => state.popup = Some(Popup::Help),
            _ => {}
        }
        return Vec::new();
    }
    if let Some(q) = &mut state.qr {
        let steps = q.parts.len().max(1);
        match key {
            Key::Esc | Key::Enter | Key::Char('q') => state.qr = None,
            Key::Char('?') => state.popup = Some(Popup::Help),
            Key::Char('+') => q.fps = (q.fps + 1).min(20),
            Key::Char('-') => q.fps = q.fps.saturating_sub(1).max(1),
            Key::Char(' ') => q.paused = !q.paused,
            Key::Char('n') | Key::Down => {
                q.paused = true;
                q.index = (q.index + 1) % steps;
            }
            Key::Char('p') | Key::Up => {
                q.paused = true;
                q.index = (q.index + steps - 1) % steps;
            }
            Key::Char(c @ ('[' | ']')) => {
                if let Some(fragment) = qr_density_step(q, c == ']') {
                    return vec![Effect::ShowQr {
                        path: q.path.clone(),
                        fragment: Some(fragment),
                    }];
                }
            }
            _ => {}
        }
        return Vec::new();
    }
    let Some(action) = state.config.keymap.action(key) else {
        return Vec::new();
    };
    match action {
        Action::Quit => quit(state),
        Action::Help => {
            state.popup = Some(Popup::Help);
            Vec::new()
        }
        Action::NextScreen => {
            state.screen = Screen::ALL[(state.screen.index() + 1) % Screen::ALL.len()];
            Vec::new()
        }
        Action::PrevScreen => {
            state.screen =
                Screen::ALL[(state.screen.index() + Screen::ALL.len() - 1) % Screen::ALL.len()];
            Vec::new()
        }
        Action::Screen(n) => {
            if let Some(s) = Screen::ALL.get(n) {
                state.screen = *s;
            }
            Vec::new()
        }
        Action::Up | Action::Down | Action::PageUp | Action::PageDown
            if matches!(state.screen, Screen::Manifest | Screen::Attestation) =>
        {
            let rows = if state.screen == Screen::Manifest {
                state.manifest_field_rows()
            } else {
                manifest_rows(state.size.1)
            };
            let page = isize::try_from(rows).unwrap_or(1);
            let by = match action {
                Action::Up => -1,
                Action::Down => 1,
                Action::PageUp => -page,
                _ => page,
            };
            scroll_list(state, by)
        }
        Action::Open if matches!(state.screen, Screen::Manifest | Screen::Attestation) => {
            let row = match state.screen {
                Screen::Manifest => state.manifest.as_ref().and_then(ManifestReview::detail),
                _ => state
                    .attestation
                    .as_ref()
                    .and_then(|a| a.detail_rows().get(a.cursor.at).cloned()),
            };
            if let Some(row) = row {
                let body = detail_text(&row);
                state.message(&row.label, body, false);
            }
            Vec::new()
        }
        Action::Scan if state.screen == Screen::Home && state.busy.is_none() => {
            state.scans += 1;
            state.scan = Some(ScanView {
                id: state.scans,
                source: String::new(),
                status: ReceptionStatus::default(),
                failed: None,
            });
            vec![Effect::StartScan { id: state.scans }]
        }
        Action::PageUp | Action::PageDown | Action::Scan => Vec::new(),
        Action::Up => {
            state.selected = state.selected.saturating_sub(1);
            Vec::new()
        }
        Action::Down => {
            if state.selected + 1 < state.bundles.len() {
                state.selected += 1;
            }
            Vec::new()
        }
        Action::Open => match (state.screen, state.bundles.get(state.selected)) {
            (Screen::Home, Some(b)) => vec![Effect::Load(b.path.clone())],
            _ => Vec::new(),
        },
        Action::Rescan => vec![Effect::Rescan],
        Action::ConfirmClock => {
            if state.screen == Screen::Home && state.now.is_some() {
                state.clock_confirmed = true;
                let now = state.now.map(|t| t.to_string()).unwrap_or_default();
                return vec![Effect::Record(Record::new(
                    "clock.confirm",
                    format!("operator confirmed laptop clock {now}"),
                ))];
            }
            Vec::new()
        }
        Action::Approve => request_signature(state),
        Action::ShowQr => {
            let written = match state.screen {
                Screen::Provision => state
                    .provision
                    .as_ref()
                    .and_then(|w| w.share_bundle.clone()),
                Screen::Keys => state.descriptor.clone(),
                _ => None,
            };
            written
                .map(|path| Effect::ShowQr {
                    path,
                    fragment: None,
                })
                .into_iter()
                .collect()
        }
        Action::Export | Action::ChangePin | Action::ChangePuk | Action::Provision
            if state.screen != Screen::Keys || state.busy.is_some() =>
        {
            Vec::new()
        }
        Action::Export => {
            state.busy = Some("writing your member descriptor".to_owned());
            vec![Effect::Device(DeviceJob::ExportDescriptor)]
        }
        Action::ChangePin => {
            state.busy = Some("changing the PIN".to_owned());
            vec![Effect::Device(DeviceJob::ChangePin)]
        }
        Action::ChangePuk => {
            state.busy = Some("changing the PUK".to_owned());
            vec![Effect::Device(DeviceJob::ChangePuk)]
        }
        Action::Provision => {
            state.busy = Some("reading the YubiKey to plan its provisioning".to_owned());
            vec![Effect::Device(DeviceJob::PlanProvision)]
        }
    }
}

fn quit(state: &mut State) -> Vec<Effect> {
    if state.busy.is_some() {
        state.popup = Some(Popup::QuitConfirm);
        Vec::new()
    } else {
        state.quit = true;
        vec![Effect::Quit]
    }
}

/// Opens the confirm popup for the current screen's signing action, if its checks pass.
fn request_signature(state: &mut State) -> Vec<Effect> {
    if state.busy.is_some() {
        return Vec::new();
    }
    let job = match state.screen {
        Screen::Manifest => match &state.manifest {
            Some(r) => match r.blocked() {
                Some(why) => Err(why),
                None => Ok(SignJob::ApproveManifest {
                    manifest: r.manifest.clone(),
                }),
            },
            None => return Vec::new(),
        },
        Screen::Provision => match &state.provision {
            Some(w) => w.ready().and_then(|()| {
                w.share_path
                    .clone()
                    .map(|share_path| SignJob::HandOver {
                        request: w.request.clone(),
                        share_path,
                    })
                    .ok_or_else(|| "no encrypted share file".to_owned())
            }),
            None => return Vec::new(),
        },
        Screen::Patch => match &state.patch {
            Some(p) => Ok(SignJob::ApprovePatch {
                envelope: p.envelope.clone(),
            }),
            None => return Vec::new(),
        },
        _ => return Vec::new(),
    };
    ask_confirmation(state, job, "Cannot sign");
    Vec::new()
}

/// Opens the confirmation popup for `job`, whose code must be typed, or says why there is none.
fn ask_confirmation(state: &mut State, job: Result<SignJob, String>, refused: &str) {
    match job {
        Ok(job) => {
            state.popup = Some(Popup::Confirm {
                job,
                typed: String::new(),
                mismatch: false,
            });
        }
        Err(why) => state.message(refused, why, true),
    }
}

fn popup_key(state: &mut State, popup: Popup, key: Key) -> Vec<Effect> {
    match popup {
        Popup::Help | Popup::Message { .. } => {
            if !matches!(key, Key::Esc | Key::Enter | Key::Char('q' | '?')) {
                state.popup = Some(popup);
            }
            Vec::new()
        }
        Popup::QuitConfirm => match key {
            Key::Char('y') => {
                state.quit = true;
                vec![Effect::Quit]
            }
            _ => Vec::new(),
        },
        Popup::Confirm {
            job,
            mut typed,
            mismatch,
        } => match key {
            Key::Esc => {
                let rec = Record::new(
                    &format!("{}.abort", job.action()),
                    "operator aborted at the confirmation",
                )
                .input_hash("object", &job.object_hash());
                state.status = if matches!(job, SignJob::Provision { .. }) {
                    "aborted; the YubiKey was not changed".to_owned()
                } else {
                    "aborted; nothing was signed".to_owned()
                };
                vec![Effect::Record(rec)]
            }
            Key::Enter if crate::member::code_matches(&typed, &job.object_hash()) => {
                // Decided again now: the clock may have moved since the review was drawn.
                state.refresh_reviews();
                let refused = match &job {
                    SignJob::HandOver { .. } => {
                        state.provision.as_ref().and_then(|w| w.ready().err())
                    }
                    SignJob::ApproveManifest { .. } => {
                        state.manifest.as_ref().and_then(ManifestReview::blocked)
                    }
                    _ => None,
                };
                if let Some(why) = refused {
                    let rec = Record::new(
                        job.action(),
                        format!("refused: {}", why.lines().next().unwrap_or_default()),
                    )
                    .input_hash("object", &job.object_hash());
                    state.message(
                        "Refused",
                        format!("{why}\nnothing was signed or handed over"),
                        true,
                    );
                    return vec![Effect::Record(rec)];
                }
                state.busy = Some("working with your key device".to_owned());
                vec![Effect::Sign(job)]
            }
            Key::Enter => {
                state.popup = Some(Popup::Confirm {
                    job,
                    typed: String::new(),
                    mismatch: true,
                });
                Vec::new()
            }
            Key::Backspace => {
                typed.pop();
                state.popup = Some(Popup::Confirm {
                    job,
                    typed,
                    mismatch,
                });
                Vec::new()
            }
            Key::Char(c) if typed.len() < 32 && (c.is_ascii_hexdigit() || c == ' ' || c == '-') => {
                typed.push(c);
                state.popup = Some(Popup::Confirm {
                    job,
                    typed,
                    mismatch: false,
                });
                Vec::new()
            }
            _ => {
                state.popup = Some(Popup::Confirm {
                    job,
                    typed,
                    mismatch,
                });
                Vec::new()
            }
        },
        // The runtime routes printable keys to its own PIN buffer; only the ends reach here.
        Popup::Pin { .. } => match key {
            Key::Enter => {
                state.popup = Some(popup);
                vec![Effect::PinDone { submit: true }]
            }
            Key::Esc | Key::CtrlC => vec![Effect::PinDone { submit: false }],
            _ => {
                state.popup = Some(popup);
                Vec::new()
            }
        },
        Popup::Touch { .. } => {
            state.popup = Some(popup);
            Vec::new()
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Loading files into review screens.

fn load(state: &mut State, path: &std::path::Path, bytes: &[u8]) -> Vec<Effect> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let record =
        |what: &str| Effect::Record(Record::new("open", what.to_owned()).input(&name, bytes));
    match Bundle::decode(bytes) {
        Ok(b) => {
            let kind = b.kind();
            let result = match kind {
                BundleKind::Request => ProvisionRequest::decode(b.payload())
                    .map_err(|e| e.to_string())
                    .map(|r| open_request(state, path.to_path_buf(), r)),
                BundleKind::Manifest => open_manifest_bytes(state, b.payload()),
                BundleKind::Patch => {
                    tessera_core::cbor::decode::<PatchEnvelope>(b.payload(), "patch envelope")
                        .map_err(|e| e.to_string())
                        .map(|envelope| {
                            let earlier = &state.config.previous_patches;
                            let fields = field_rows(crate::member::fields::patch_diff(
                                &envelope.patch,
                                earlier,
                            ));
                            let baseline = earlier
                                .iter()
                                .filter(|e| {
                                    e.namespace == envelope.patch.namespace
                                        && e.manifest_hash == envelope.patch.manifest_hash
                                        && e.sequence < envelope.patch.sequence
                                })
                                .count();
                            state.patch = Some(PatchReview {
                                hash: envelope.patch.hash(),
                                envelope,
                                fields,
                                baseline,
                            });
                            state.screen = Screen::Patch;
                        })
                }
                other => {
                    state.message(
                        "Bundle",
                        format!(
                            "{}\n\n{} bundles are not reviewed here.",
                            b.summary(),
                            other
                        ),
                        false,
                    );
                    Ok(())
                }
            };
            match result {
                Ok(()) => vec![record(&format!("{kind} bundle opened"))],
                Err(e) => {
                    state.message("Refused", format!("{name}: {e}"), true);
                    vec![record(&format!("refused: {e}"))]
                }
            }
        }
        // A bundle that did not survive the trip: say so, not what else it fails to be.
        Err(bundle_err) if crate::cli::objects::looks_like_bundle(bytes) => {
            state.message(
                "Cannot open",
                format!("{name}: {bundle_err}\nnext: {}", bundle_err.next_step()),
                true,
            );
            vec![record(&format!("refused: {bundle_err}"))]
        }
        Err(bundle_err) => {
            if open_manifest_bytes(state, bytes).is_ok() {
                return vec![record("manifest opened")];
            }
            if attestation::unverified_timestamp(bytes).is_ok()
                || bytes.first() == Some(&0x84)
                || bytes.first() == Some(&0xd2)
            {
                let manifest = state.manifest.as_ref().map(|m| m.manifest.clone());
                let view = analyze(state, &name, bytes, manifest.as_ref(), None);
                state.attestation = Some(view);
                state.screen = Screen::Attestation;
                return vec![record("attestation document opened")];
            }
            state.message(
                "Cannot open",
                format!("{name}: not a bundle ({bundle_err}), manifest or attestation document"),
                true,
            );
            Vec::new()
        }
    }
}

fn open_manifest_bytes(state: &mut State, bytes: &[u8]) -> Result<(), String> {
    let (manifest, approvals) = match Manifest::decode(bytes) {
        Ok(m) => (m, None),
        Err(e1) => match ManifestEnvelope::decode(bytes) {
            Ok(env) => {
                let r = env.manifest.check_approvals(&env.approvals);
                let text = format!(
                    "{} of {} approvals: {}{}",
                    r.approved.len(),
                    r.threshold,
                    r.approved.join(", "),
                    if r.missing.is_empty() {
                        String::new()
                    } else {
                        format!(" (not yet: {})", r.missing.join(", "))
                    }
                );
                (env.manifest, Some(text))
            }
            Err(_) => return Err(e1.to_string()),
        },
    };
    state.manifest = Some(review(&state.config.previous, manifest, approvals));
    let rows = state.manifest_field_rows();
    if let Some(r) = &mut state.manifest {
        r.show(rows);
    }
    state.screen = Screen::Manifest;
    state.refresh_reviews();
    Ok(())
}

fn scroll_list(state: &mut State, by: isize) -> Vec<Effect> {
    let rows = manifest_rows(state.size.1);
    match state.screen {
        Screen::Manifest => {
            let rows = state.manifest_field_rows();
            if let Some(m) = &mut state.manifest {
                m.cursor = m.cursor.moved(by, m.fields.len(), rows);
                m.show(rows);
            }
        }
        _ => {
            if let Some(a) = &mut state.attestation {
                a.cursor = a.cursor.moved(by, a.detail_rows().len(), rows);
            }
        }
    }
    Vec::new()
}

/// Lays out a manifest field by field against the last manifest this member approved. The
/// decision on approving it is the member layer's ([`State::refresh_reviews`]).
#[must_use]
pub fn review(
    previous: &[Manifest],
    manifest: Manifest,
    approvals: Option<String>,
) -> ManifestReview {
    let prev = previous
        .iter()
        .find(|p| p.namespace.name == manifest.namespace.name);
    let fields = field_rows(crate::member::fields::diff(&manifest, prev));
    let seen = vec![false; fields.len()];
    ManifestReview {
        hash: manifest.hash(),
        previous_nonce: prev.map(|p| p.namespace.nonce),
        manifest,
        fields,
        review: None,
        approvals,
        cursor: Cursor::default(),
        seen,
    }
}

/// Reviewed fields as screen rows: (mark, name, value), a changed value as `old -> new`.
fn field_rows(fields: Vec<crate::member::fields::Field>) -> Vec<(char, String, String)> {
    fields
        .into_iter()
        .map(|f| (f.mark.symbol(), f.shown(), f.name))
        .map(|(mark, value, name)| (mark, name, value))
        .collect()
}

fn open_request(state: &mut State, path: PathBuf, request: ProvisionRequest) {
    let manifest = request.envelope.manifest.clone();
    let approvals = request
        .envelope
        .verify()
        .map(|r| {
            format!(
                "approved by {} ({} of {})",
                r.approved.join(", "),
                r.approved.len(),
                r.threshold
            )
        })
        .map_err(|e| e.to_string());
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let attestation = analyze(
        state,
        &name,
        &request.attestation,
        Some(&manifest),
        Some(&manifest.hash()),
    );
    state.manifest = Some(review(
        &state.config.previous,
        manifest.clone(),
        approvals.clone().ok(),
    ));
    let rows = state.manifest_field_rows();
    if let Some(r) = &mut state.manifest {
        r.show(rows);
    }
    state.attestation = Some(attestation.clone());
    state.provision = Some(ProvisionWizard {
        request_path: path,
        manifest_hash: manifest.hash(),
        request,
        approvals,
        attestation,
        review: None,
        share_path: state.config.share_path.clone(),
        result: None,
        share_bundle: None,
    });
    state.screen = Screen::Provision;
    state.refresh_reviews();
}

/// Verifies `doc` and lays it out against the manifest and the reproduced PCRs.
fn analyze(
    state: &State,
    source: &str,
    doc: &[u8],
    manifest: Option<&Manifest>,
    bind: Option<&Hash32>,
) -> AttestationView {
    let expected: Vec<Option<&Pcr>> = match manifest {
        Some(m) => vec![
            Some(&m.enclave.pcr0),
            Some(&m.enclave.pcr1),
            Some(&m.enclave.pcr2),
            Some(&m.enclave.pcr3),
        ],
        None => vec![None; 4],
    };
    let mut view = AttestationView {
        source: source.to_owned(),
        verdict: Err("not verified".to_owned()),
        module_id: String::new(),
        timestamp: String::new(),
        age: String::new(),
        rows: Vec::new(),
        chain: Vec::new(),
        user_data: (bind.map(Hash32::to_hex), None),
        public_key: (manifest.map(|_| "32-byte X25519 key".to_owned()), None),
        cursor: Cursor::default(),
    };
    let Some(at) = state.validation_time() else {
        view.verdict = Err("waiting for the clock".to_owned());
        return view;
    };
    let verified = match attestation::verify_without_policy(doc, &state.config.anchor, at) {
        Ok(v) => v,
        Err(e) => {
            view.verdict = Err(e.to_string());
            return view;
        }
    };
    verified.module_id().clone_into(&mut view.module_id);
    view.timestamp = short_time(verified.timestamp());
    let age = at - verified.timestamp();
    view.age = format!("{}s", age.whole_seconds());
    view.chain = verified
        .certificates()
        .into_iter()
        .map(|c| CertView {
            subject: c.subject.clone(),
            validity: format!(
                "{} .. {}",
                short_time(c.not_before),
                short_time(c.not_after)
            ),
        })
        .collect();
    view.user_data.1 = verified.user_data().map(hex::encode);
    view.public_key.1 = verified.public_key().map(hex::encode);
    let reproduced = state.config.reproduced.as_ref().map(|r| &r.pcrs);
    view.rows = [0u8, 1, 2, 3, 4, 8]
        .iter()
        .map(|&i| PcrRow {
            index: i,
            expected: expected
                .get(usize::from(i))
                .copied()
                .flatten()
                .map(tessera_core::bytes::ByteArray::to_hex),
            attested: verified.pcr(i).map(hex::encode),
            reproduced: reproduced
                .and_then(|r| r.get(usize::from(i)))
                .map(tessera_core::bytes::ByteArray::to_hex),
        })
        .collect();
    let mut policy = Policy::new().max_age(state.config.max_age);
    if let Some(m) = manifest {
        for (i, p) in [
            &m.enclave.pcr0,
            &m.enclave.pcr1,
            &m.enclave.pcr2,
            &m.enclave.pcr3,
        ]
        .into_iter()
        .enumerate()
        {
            policy = policy.expect_pcr(i as u8, p.0.to_vec());
        }
    }
    if let Some(h) = bind {
        policy = policy.expect_user_data(h.0.to_vec());
    }
    let mismatch = view
        .rows
        .iter()
        .find(|r| r.matches() == Some(false))
        .map(|r| format!("PCR{} does not match", r.index));
    view.verdict = match (policy.check(&verified), mismatch) {
        (Err(e), _) => Err(e.to_string()),
        (Ok(()), Some(m)) => Err(m),
        (Ok(()), None) if verified.is_emulated() => Ok(format!(
            "EMULATED: UNSIGNED, no signature chain checked; PCRs, bindings, {} old",
            view.age
        )),
        (Ok(()), None) => Ok(format!(
            "valid: chain to the pinned root, signature, PCRs, bindings, {} old",
            view.age
        )),
    };
    view
}

/// `2026-11-21 07:27Z`: minutes are enough to read validity at a glance.
fn short_time(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}Z",
        t.year(),
        t.month() as u8,
        t.day(),
        t.hour(),
        t.minute()
    )
}
