//! Receiving a bundle by QR: frames (or typed part text) in, one checked [`Bundle`] out.
//!
//! [`Reception`] is the one place that decides what a scanned frame does: each QR code found is
//! parsed as a part and fed to the fountain decoder ([`Scanner`]); a code that is not a Tessera
//! part, is damaged, belongs to another bundle or contradicts the parts already taken is
//! counted with its reason and ignored, so one stray frame never ends a scan. The result is
//! handed out only by [`Reception::finish`], after [`Bundle::decode`] has checked it, so no
//! caller can write or use unverified bytes.
//!
//! The first stream seen is the one collected: a code of another bundle shown mid-scan is
//! reported, never mixed in. To switch bundles, stop and start a new scan.

use std::collections::HashMap;
use std::fmt;

use sha2::{Digest, Sha256};

use crate::bundle::{Bundle, BundleError, BundleKind, MAGIC};
use crate::cbor::Reader;
use crate::frames::{FrameError, FrameSource};
use crate::parts::{self, Part, PartError, ScanProgress, Scanner, StreamId};
use crate::qr::{self, QrError};

/// Parts remembered by sequence number for the repeat check: far more than a bundle within
/// [`parts::MAX_FRAGMENTS`] needs, and a bound on memory for an endless stream of new numbers.
const MAX_REMEMBERED_PARTS: usize = 4 * parts::MAX_FRAGMENTS;

/// Why a code was not taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Rejection {
    /// A QR code or text that is not a Tessera bundle part.
    NotTessera,
    /// A Tessera part that fails its checks (checksum, header, size).
    Corrupt,
    /// A part of a different bundle than the one being collected.
    OtherBundle,
    /// A well-formed part that contradicts the others: damaged in a way its checksum missed,
    /// or forged. When it is found only as the last fragment arrives, nothing collected can be
    /// trusted and the scan starts over.
    Contradicts,
}

impl Rejection {
    #[must_use]
    pub const fn describe(self) -> &'static str {
        match self {
            Self::NotTessera => "not a Tessera code",
            Self::Corrupt => "corrupt",
            Self::OtherBundle => "another bundle",
            Self::Contradicts => "contradicts the others (forged or damaged)",
        }
    }

    fn of(e: &PartError) -> Self {
        match e {
            PartError::NotUr | PartError::WrongType(_) => Self::NotTessera,
            PartError::OtherBundle { .. } => Self::OtherBundle,
            PartError::Inconsistent => Self::Contradicts,
            _ => Self::Corrupt,
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

/// What one frame or line did.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// No readable code in the frame (blurred, empty, out of view): a missed frame.
    Missed,
    /// A part taken; `new` is false for a part already seen.
    Accepted { new: bool },
    /// A code refused, with the reason and the full message.
    Rejected { reason: Rejection, message: String },
}

/// Counts shown while scanning.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReceptionStatus {
    /// Frames (or lines) looked at.
    pub frames: usize,
    /// Frames with no readable code.
    pub missed: usize,
    /// Codes read that were parts of this bundle, repeats included.
    pub parts_seen: usize,
    /// Codes refused, by reason, in [`Rejection`] order.
    pub rejected: Vec<(Rejection, usize)>,
    /// The last refusal's message.
    pub last_rejection: Option<String>,
    /// Times the collected parts turned out inconsistent and the scan started over.
    pub restarts: usize,
    pub progress: ScanProgress,
    /// The kind the bundle's first fragment names, once that fragment has arrived. Unverified
    /// until the scan completes: shown as a preview only.
    pub kind: Option<BundleKind>,
}

impl ReceptionStatus {
    /// Whole percent of the fragments' worth gathered.
    #[must_use]
    pub fn percent(&self) -> usize {
        (self.progress.resolved * 100)
            .checked_div(self.progress.total)
            .unwrap_or(0)
    }

    /// `31 of 51 fragments' worth, 61%`, or `waiting for a code` before the first part.
    #[must_use]
    pub fn progress_line(&self) -> String {
        if self.progress.total == 0 {
            return "waiting for a Tessera code".into();
        }
        format!(
            "{} of {} fragments' worth, {}%",
            self.progress.resolved,
            self.progress.total,
            self.percent()
        )
    }

    /// `none`, or `3 another bundle, 1 corrupt`.
    #[must_use]
    pub fn rejected_line(&self) -> String {
        if self.rejected.is_empty() {
            return "none".into();
        }
        self.rejected
            .iter()
            .map(|(r, n)| format!("{n} {r}"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    #[must_use]
    pub fn rejected_total(&self) -> usize {
        self.rejected.iter().map(|(_, n)| n).sum()
    }
}

/// Why a scan produced no bundle.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReceiveError {
    #[error("no Tessera code was read ({frames} frames looked at); point the camera at the code")]
    NothingRead { frames: usize },
    #[error(
        "too few parts: {resolved} of {total} fragments' worth received; scan more frames \
         (a loop of the animation is usually enough)"
    )]
    Incomplete { resolved: usize, total: usize },
    #[error("the reassembled data is not a valid bundle: {0}; ask the sender to show it again")]
    Invalid(BundleError),
    #[error(transparent)]
    Source(#[from] FrameError),
}

/// One scan in progress. Feed it frames or text; ask for the status; [`Reception::finish`]
/// when [`Reception::is_complete`].
#[derive(Debug, Default)]
pub struct Reception {
    scanner: Scanner,
    /// A digest of each multi-part taken, by sequence number: a second, different part under
    /// the same number is refused rather than silently dropped as a repeat.
    taken: HashMap<u32, [u8; 32]>,
    /// The stream collected, to notice when the decoder has started over.
    stream: Option<StreamId>,
    /// Set once the decoder is complete: the bytes, already checked as a bundle.
    done: Option<Result<Bundle, BundleError>>,
    status: ReceptionStatus,
}

impl Reception {
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    #[must_use]
    pub fn status(&self) -> &ReceptionStatus {
        &self.status
    }

    /// Whether the decoder has the whole stream; the bundle may still fail its checks, which
    /// [`Reception::finish`] reports.
    #[must_use]
    pub fn is_complete(&self) -> bool {
        self.done.is_some()
    }

    /// Reads every code in a frame and takes the parts. The outcome is the most telling one
    /// among the codes (a frame normally holds one).
    pub fn feed_frame(&mut self, frame: &image::GrayImage) -> Outcome {
        self.status.frames += 1;
        let texts = match qr::decode_gray(frame) {
            Ok(t) => t,
            Err(
                QrError::NoCode | QrError::Unreadable | QrError::Image(_) | QrError::TooLong(_),
            ) => {
                self.status.missed += 1;
                return Outcome::Missed;
            }
        };
        let mut outcome = Outcome::Missed;
        for text in texts {
            let o = self.take(&text);
            if !matches!(outcome, Outcome::Rejected { .. }) {
                outcome = o;
            }
        }
        outcome
    }

    /// Takes one line of part text (a keyboard-wedge scanner, `zbarcam --raw`, a paste). Blank
    /// lines are missed frames.
    pub fn feed_text(&mut self, line: &str) -> Outcome {
        self.status.frames += 1;
        if line.trim().is_empty() {
            self.status.missed += 1;
            return Outcome::Missed;
        }
        self.take(line)
    }

    fn take(&mut self, text: &str) -> Outcome {
        if self.done.is_some() {
            return Outcome::Accepted { new: false };
        }
        let part = match parts::parse_part(text) {
            Ok(p) => p,
            Err(e) => return self.reject(&e),
        };
        let kind = peek_kind(&part);
        if let Part::Multi(m) = &part
            && self.stream == Some(m.stream)
        {
            let digest: [u8; 32] = Sha256::digest(m.data()).into();
            match self.taken.get(&m.sequence) {
                Some(d) if *d != digest => return self.reject(&PartError::Inconsistent),
                None if self.taken.len() < MAX_REMEMBERED_PARTS => {
                    self.taken.insert(m.sequence, digest);
                }
                _ => {}
            }
        }
        let first = match &part {
            Part::Multi(m) if self.stream.is_none() => {
                Some((m.sequence, Sha256::digest(m.data()).into()))
            }
            _ => None,
        };
        let before = self.status.progress.parts;
        match self.scanner.receive_part(part) {
            Ok(progress) => {
                if let Some((sequence, digest)) = first {
                    self.stream = self.scanner.stream();
                    self.taken.insert(sequence, digest);
                }
                self.status.parts_seen += 1;
                self.status.progress = progress;
                if self.status.kind.is_none() {
                    self.status.kind = kind;
                }
                if progress.complete {
                    let bytes = std::mem::take(&mut self.scanner).finish();
                    let checked = bytes
                        .map_err(|_| BundleError::Truncated)
                        .and_then(|b| Bundle::decode(&b));
                    if let Ok(bundle) = &checked {
                        self.status.kind = Some(bundle.kind());
                    }
                    self.done = Some(checked);
                }
                Outcome::Accepted {
                    new: progress.parts > before || (progress.complete && before == 0),
                }
            }
            Err(e) => {
                let progress = self.scanner.progress();
                if progress.total == 0 && self.status.progress.total != 0 {
                    // The decoder threw away what it had: the parts contradicted each other.
                    self.status.restarts += 1;
                    self.status.kind = None;
                    self.stream = None;
                    self.taken.clear();
                }
                self.status.progress = progress;
                self.reject(&e)
            }
        }
    }

    fn reject(&mut self, e: &PartError) -> Outcome {
        let reason = Rejection::of(e);
        match self
            .status
            .rejected
            .binary_search_by_key(&reason, |(r, _)| *r)
        {
            Ok(i) => self.status.rejected[i].1 += 1,
            Err(i) => self.status.rejected.insert(i, (reason, 1)),
        }
        let message = e.to_string();
        self.status.last_rejection = Some(message.clone());
        Outcome::Rejected { reason, message }
    }

    /// The received bundle, checked: the fountain stream's CRC by the decoder, then the
    /// container's header, checksum and canonical form by [`Bundle::decode`].
    pub fn finish(self) -> Result<Bundle, ReceiveError> {
        if let Some(done) = self.done {
            return done.map_err(ReceiveError::Invalid);
        }
        let status = self.status;
        let bytes = self.scanner.finish().map_err(|e| match e {
            PartError::Incomplete { total: 0, .. } => ReceiveError::NothingRead {
                frames: status.frames,
            },
            PartError::Incomplete { resolved, total } => {
                ReceiveError::Incomplete { resolved, total }
            }
            _ => ReceiveError::Incomplete {
                resolved: status.progress.resolved,
                total: status.progress.total,
            },
        })?;
        Bundle::decode(&bytes).map_err(ReceiveError::Invalid)
    }
}

/// Whether to go on after a status update.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Stop,
}

/// Reads frames from `source` until the bundle is complete, the source ends, or `on_frame`
/// says stop (a key, a deadline). `on_frame` sees each frame's outcome and the status after it.
pub fn scan_frames(
    source: &mut dyn FrameSource,
    mut on_frame: impl FnMut(&Outcome, &ReceptionStatus) -> Flow,
) -> Result<Bundle, ReceiveError> {
    let mut reception = Reception::new();
    while !reception.is_complete() {
        let Some(frame) = source.next_frame()? else {
            break;
        };
        let outcome = reception.feed_frame(&frame.image);
        if on_frame(&outcome, reception.status()) == Flow::Stop {
            break;
        }
    }
    reception.finish()
}

/// The kind named at the start of a bundle, read from a part that carries the first fragment
/// alone (or a whole single-part bundle). Nothing here is trusted: it is a preview until
/// [`Bundle::decode`] checks the whole.
fn peek_kind(part: &Part) -> Option<BundleKind> {
    let prefix = match part {
        Part::Single(bytes) => bytes.as_slice(),
        Part::Multi(m) if m.fragment_indexes() == [0] => m.data(),
        Part::Multi(_) => return None,
    };
    let mut r = Reader::new(prefix);
    if r.array_len().ok()? != 4 || r.text().ok()? != MAGIC.as_bytes() {
        return None;
    }
    r.uint().ok()?;
    // The body is a byte string holding a map whose first key is "kind"; only its head is read,
    // as the rest of the body lies in later fragments.
    r.bytes_head().ok()?;
    r.map_len().ok()?;
    if r.text().ok()? != b"kind" {
        return None;
    }
    std::str::from_utf8(r.text().ok()?).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Metadata;
    use crate::parts::PartEncoder;

    #[test]
    fn kind_is_previewed_from_the_first_fragment() {
        let bundle = Bundle::new(BundleKind::Request, Metadata::default(), vec![7; 3000]).unwrap();
        let bytes = bundle.encode();
        let mut encoder = PartEncoder::new(&bytes, 100).unwrap();
        let total = encoder.fragment_count();
        let first = encoder.next_part();
        let second = encoder.next_part();
        let mut r = Reception::new();
        r.feed_text(&second);
        assert_eq!(r.status().kind, None);
        r.feed_text(&first);
        assert_eq!(r.status().kind, Some(BundleKind::Request));
        assert_eq!(
            r.status().progress_line(),
            format!("2 of {total} fragments' worth, {}%", 200 / total)
        );
    }
}
