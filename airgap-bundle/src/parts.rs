//! Bundles as Uniform Resources (`ur:tessera-bundle/…`): the text carried by each QR frame, or
//! typed by a keyboard-wedge scanner, or pasted.
//!
//! A bundle no longer than one fragment becomes a single-part UR, one static QR code. A longer
//! one is split into `K` fragments and sent as the standard multi-part UR stream of
//! BCR-2020-005: the first `K` parts are the fragments themselves, in order; every later part
//! `n` is the XOR of the fragments the standard chooses for `n` (Xoshiro256** seeded from
//! SHA-256 of `n` and the bundle's CRC-32, the standard degree distribution and shuffle). Every
//! sequence number is shown, so any conforming UR decoder can join at any frame, miss any frames
//! and still finish.
//!
//! The [`Scanner`] reads the same stream with its own decoder: it derives each part's fragment
//! set by the standard rule and solves the received parts by Gaussian elimination over GF(2)
//! instead of the reference peeling decoder, so any `K` independent parts complete the bundle
//! (see `docs/airgap.md` for the measurements against peeling decoders).
//!
//! Every part is checked (bytewords CRC, header consistency, size limits) before it touches the
//! solver, and the reassembled bundle must match the stream's CRC-32.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::bundle::MAX_BUNDLE_BYTES;
use crate::cbor::{CborError, Reader};

/// The UR type of a Tessera bundle.
pub const UR_TYPE: &str = "tessera-bundle";
/// Default fragment size in bytes; see `docs/airgap.md` for how it was chosen.
pub const DEFAULT_FRAGMENT_BYTES: usize = 100;
/// Largest bundle [`PartEncoder::with_defaults`] shows as one static QR code: the most that fits
/// a version-14 code at level L (73 modules, 77 × 39 terminal cells with the quiet zone). A
/// static code loses nothing to a missed frame, so it may be denser than the animated ones.
pub const SINGLE_PART_MAX_BYTES: usize = 320;
/// Smallest fragment size accepted; below this the per-part overhead dominates.
pub const MIN_FRAGMENT_BYTES: usize = 16;
/// Largest fragment size accepted: the most that fits one QR code (version 40, level L).
pub const MAX_FRAGMENT_BYTES: usize = 2048;
/// Most fragments one stream may have. Bounds the solver's memory (K² bits) and per-part work;
/// a bundle needing more should go by USB or with a larger fragment size.
pub const MAX_FRAGMENTS: usize = 4096;
/// Longest part text accepted, checked before any decoding.
pub const MAX_PART_CHARS: usize = 2 * (MAX_FRAGMENT_BYTES + 64) + 64;

/// Identifies one fountain stream: parts with a different identity belong to another bundle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamId {
    pub fragments: u32,
    pub message_length: u32,
    /// CRC-32 of the encoded bundle.
    pub checksum: u32,
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} bytes in {} fragments, crc {:08x}",
            self.message_length, self.fragments, self.checksum
        )
    }
}

/// Why a part was refused or a scan cannot finish. A refused part leaves the scan as it was.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PartError {
    #[error("not a UR: expected text starting with `ur:{UR_TYPE}/`")]
    NotUr,
    #[error("a `ur:{0}` code, not a Tessera bundle (`ur:{UR_TYPE}`)")]
    WrongType(String),
    #[error("part is {len} characters, more than the {max} allowed")]
    TooLong { len: usize, max: usize },
    #[error("corrupt part ({0}); rescan it")]
    Corrupt(&'static str),
    #[error(
        "part belongs to another bundle ({got}); this scan is collecting {expected}. \
         Finish or restart the scan before showing another bundle"
    )]
    OtherBundle { expected: String, got: String },
    #[error("incomplete: {resolved} of {total} fragments received; keep scanning")]
    Incomplete { resolved: usize, total: usize },
    #[error("the parts do not fit together (one was damaged or forged); start the scan again")]
    Inconsistent,
}

/// Why a bundle cannot be turned into parts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    #[error("nothing to encode: the bundle is empty")]
    Empty,
    #[error("fragment size {0} is outside {MIN_FRAGMENT_BYTES}..={MAX_FRAGMENT_BYTES} bytes")]
    FragmentSize(usize),
    #[error(
        "a {len}-byte bundle needs {fragments} fragments of {fragment} bytes, more than \
         {MAX_FRAGMENTS}; use a larger fragment size or a USB stick"
    )]
    TooManyFragments {
        len: usize,
        fragment: usize,
        fragments: usize,
    },
    #[error("bundle is {0} bytes, more than the {MAX_BUNDLE_BYTES}-byte limit")]
    TooLarge(usize),
}

/// One checked part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    /// A whole bundle in one UR.
    Single(Vec<u8>),
    /// One fountain part.
    Multi(MultiPart),
}

/// A checked fountain part.
#[derive(Clone, PartialEq, Eq)]
pub struct MultiPart {
    pub sequence: u32,
    pub stream: StreamId,
    part: ur::fountain::Part,
}

impl fmt::Debug for MultiPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MultiPart")
            .field("sequence", &self.sequence)
            .field("stream", &self.stream)
            .finish_non_exhaustive()
    }
}

impl MultiPart {
    /// Indexes of the fragments combined (by XOR) into this part.
    #[must_use]
    pub fn fragment_indexes(&self) -> Vec<usize> {
        self.part.indexes()
    }

    #[must_use]
    pub fn data(&self) -> &[u8] {
        self.part.data()
    }
}

/// Parses and checks one part: `ur:tessera-bundle/<bytewords>` or
/// `ur:tessera-bundle/<seq>-<count>/<bytewords>`, in either letter case, surrounding whitespace
/// ignored. Never panics; this is what the `ur_part` fuzz target drives.
pub fn parse_part(text: &str) -> Result<Part, PartError> {
    let text = text.trim();
    if text.len() > MAX_PART_CHARS {
        return Err(PartError::TooLong {
            len: text.len(),
            max: MAX_PART_CHARS,
        });
    }
    if !text.is_ascii() {
        return Err(PartError::NotUr);
    }
    let lower = text.to_ascii_lowercase();
    let rest = lower.strip_prefix("ur:").ok_or(PartError::NotUr)?;
    let (ur_type, rest) = rest.split_once('/').ok_or(PartError::NotUr)?;
    if ur_type != UR_TYPE {
        if ur_type.is_empty()
            || ur_type.len() > 64
            || !ur_type
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(PartError::NotUr);
        }
        return Err(PartError::WrongType(ur_type.to_owned()));
    }
    let Some((indices, body)) = rest.split_once('/') else {
        let bytes = bytewords(rest)?;
        if bytes.is_empty() {
            return Err(PartError::Corrupt("empty payload"));
        }
        return Ok(Part::Single(bytes));
    };
    let (seq, count) = indices
        .split_once('-')
        .ok_or(PartError::Corrupt("bad sequence field"))?;
    let seq = parse_index(seq)?;
    let count = parse_index(count)?;

    let cbor = bytewords(body)?;
    let header = parse_header(&cbor).map_err(|e| match e {
        CborError::Eof => PartError::Corrupt("part cut short"),
        CborError::Invalid => PartError::Corrupt("malformed part"),
    })?;
    if header.sequence != seq || header.stream.fragments != count {
        return Err(PartError::Corrupt("sequence field disagrees with the part"));
    }
    check_stream(&header.stream, header.fragment_len)?;

    let part: ur::fountain::Part =
        minicbor::decode(&cbor).map_err(|_| PartError::Corrupt("malformed part"))?;
    Ok(Part::Multi(MultiPart {
        sequence: seq,
        stream: header.stream,
        part,
    }))
}

fn parse_index(s: &str) -> Result<u32, PartError> {
    // Digits only: `str::parse` would also take a leading `+`.
    if s.is_empty() || s.len() > 10 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(PartError::Corrupt("bad sequence field"));
    }
    match s.parse::<u32>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(PartError::Corrupt("bad sequence field")),
    }
}

fn bytewords(s: &str) -> Result<Vec<u8>, PartError> {
    ur::bytewords::decode(s, ur::bytewords::Style::Minimal).map_err(|e| match e {
        ur::bytewords::Error::InvalidChecksum => PartError::Corrupt("checksum mismatch"),
        _ => PartError::Corrupt("not bytewords"),
    })
}

struct Header {
    sequence: u32,
    stream: StreamId,
    fragment_len: usize,
}

/// The part layout of the UR fountain spec: `[seq, count, message length, crc32, data]`.
fn parse_header(cbor: &[u8]) -> Result<Header, CborError> {
    let mut r = Reader::new(cbor);
    if r.array_len()? != 5 {
        return Err(CborError::Invalid);
    }
    let mut u32_field =
        || -> Result<u32, CborError> { u32::try_from(r.uint()?).map_err(|_| CborError::Invalid) };
    let sequence = u32_field()?;
    let fragments = u32_field()?;
    let message_length = u32_field()?;
    let checksum = u32_field()?;
    let fragment_len = r.bytes()?.len();
    if !r.is_empty() {
        return Err(CborError::Invalid);
    }
    Ok(Header {
        sequence,
        stream: StreamId {
            fragments,
            message_length,
            checksum,
        },
        fragment_len,
    })
}

/// A stream's shape must be one the fountain encoder could have produced, within our limits,
/// before anything is sized from it.
fn check_stream(stream: &StreamId, fragment_len: usize) -> Result<(), PartError> {
    let count = stream.fragments as usize;
    let len = stream.message_length as usize;
    if count == 0 || count > MAX_FRAGMENTS {
        return Err(PartError::Corrupt("fragment count out of range"));
    }
    if len == 0 || len > MAX_BUNDLE_BYTES {
        return Err(PartError::Corrupt("bundle length out of range"));
    }
    if fragment_len == 0
        || fragment_len != len.div_ceil(count)
        || len.div_ceil(fragment_len) != count
    {
        return Err(PartError::Corrupt(
            "fragment size disagrees with the header",
        ));
    }
    Ok(())
}

/// Turns one encoded bundle into UR parts, forever.
pub struct PartEncoder {
    inner: EncoderInner,
    emitted: usize,
}

enum EncoderInner {
    Single(String),
    Multi {
        fountain: Box<ur::fountain::Encoder>,
        fragments: usize,
    },
}

impl fmt::Debug for PartEncoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PartEncoder")
            .field("fragments", &self.fragment_count())
            .field("emitted", &self.emitted)
            .finish_non_exhaustive()
    }
}

impl PartEncoder {
    /// An encoder for `bundle` (the encoded bytes) with fragments of at most `max_fragment`
    /// bytes. A bundle that fits one fragment becomes a single-part UR.
    pub fn new(bundle: &[u8], max_fragment: usize) -> Result<Self, EncodeError> {
        if bundle.is_empty() {
            return Err(EncodeError::Empty);
        }
        if bundle.len() > MAX_BUNDLE_BYTES {
            return Err(EncodeError::TooLarge(bundle.len()));
        }
        if !(MIN_FRAGMENT_BYTES..=MAX_FRAGMENT_BYTES).contains(&max_fragment) {
            return Err(EncodeError::FragmentSize(max_fragment));
        }
        if bundle.len() <= max_fragment {
            let text = ur::ur::encode(bundle, &ur::Type::Custom(UR_TYPE));
            return Ok(Self {
                inner: EncoderInner::Single(text),
                emitted: 0,
            });
        }
        let fragments = bundle.len().div_ceil(max_fragment);
        if fragments > MAX_FRAGMENTS {
            return Err(EncodeError::TooManyFragments {
                len: bundle.len(),
                fragment: max_fragment,
                fragments,
            });
        }
        let fountain = ur::fountain::Encoder::new(bundle, max_fragment)
            .expect("non-empty message and non-zero fragment size were checked");
        debug_assert_eq!(fountain.fragment_count(), fragments);
        Ok(Self {
            inner: EncoderInner::Multi {
                fountain: Box::new(fountain),
                fragments,
            },
            emitted: 0,
        })
    }

    /// The default density: one static code up to [`SINGLE_PART_MAX_BYTES`], otherwise
    /// fragments of [`DEFAULT_FRAGMENT_BYTES`].
    pub fn with_defaults(bundle: &[u8]) -> Result<Self, EncodeError> {
        if bundle.len() <= SINGLE_PART_MAX_BYTES {
            Self::new(bundle, SINGLE_PART_MAX_BYTES)
        } else {
            Self::new(bundle, DEFAULT_FRAGMENT_BYTES)
        }
    }

    /// Parts needed with no loss: the number of fragments (1 for a single-part UR).
    #[must_use]
    pub fn fragment_count(&self) -> usize {
        match &self.inner {
            EncoderInner::Single(_) => 1,
            EncoderInner::Multi { fragments, .. } => *fragments,
        }
    }

    /// Whether the whole bundle is in one static UR.
    #[must_use]
    pub fn is_single_part(&self) -> bool {
        matches!(self.inner, EncoderInner::Single(_))
    }

    /// Parts returned so far.
    #[must_use]
    pub fn emitted(&self) -> usize {
        self.emitted
    }

    /// The next part, in lower case (the canonical UR form; [`crate::qr`] upper-cases it for the
    /// QR alphanumeric mode).
    pub fn next_part(&mut self) -> String {
        self.emitted += 1;
        match &mut self.inner {
            EncoderInner::Single(text) => text.clone(),
            EncoderInner::Multi {
                fountain,
                fragments,
            } => {
                // The standard stream: the fragments in order, then the standard mixed parts.
                let part = fountain.next_part();
                let cbor = minicbor::to_vec(&part).expect("encoding into a Vec cannot fail");
                let body = ur::bytewords::encode(&cbor, ur::bytewords::Style::Minimal);
                let sequence = fountain.current_sequence();
                format!("ur:{UR_TYPE}/{sequence}-{fragments}/{body}")
            }
        }
    }
}

/// How far a scan has got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ScanProgress {
    /// Distinct parts accepted.
    pub parts: usize,
    /// Independent fragments' worth of information gathered; the scan completes at `total`.
    pub resolved: usize,
    /// Fragments in the bundle (0 before the first part).
    pub total: usize,
    pub complete: bool,
}

impl ScanProgress {
    /// A text progress bar of `width` cells plus counts, e.g. `[######----] 12/20 (14 parts)`.
    #[must_use]
    pub fn bar(&self, width: usize) -> String {
        let filled = (self.resolved * width)
            .checked_div(self.total)
            .unwrap_or(0)
            .min(width);
        format!(
            "[{}{}] {}/{} ({} part{})",
            "#".repeat(filled),
            "-".repeat(width - filled),
            self.resolved,
            self.total,
            self.parts,
            if self.parts == 1 { "" } else { "s" }
        )
    }
}

/// Collects parts in any order, with any missing, until the bundle is whole.
#[derive(Default)]
pub struct Scanner {
    state: ScanState,
    parts: usize,
}

#[derive(Default)]
enum ScanState {
    #[default]
    Empty,
    Collecting(Box<Collecting>),
    Done {
        bundle: Vec<u8>,
        stream: Option<StreamId>,
    },
}

struct Collecting {
    stream: StreamId,
    seen: BTreeSet<u32>,
    solver: Solver,
}

impl fmt::Debug for Scanner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scanner")
            .field("progress", &self.progress())
            .finish()
    }
}

impl Scanner {
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes one part's text. Blank text is ignored; a repeated part is accepted and changes
    /// nothing. On error the scan is unchanged and can continue.
    pub fn receive(&mut self, text: &str) -> Result<ScanProgress, PartError> {
        if text.trim().is_empty() {
            return Ok(self.progress());
        }
        let part = parse_part(text)?;
        self.receive_part(part)
    }

    /// Takes one already parsed part.
    pub fn receive_part(&mut self, part: Part) -> Result<ScanProgress, PartError> {
        match (&mut self.state, part) {
            (ScanState::Empty, Part::Single(bundle)) => {
                self.parts = 1;
                self.state = ScanState::Done {
                    bundle,
                    stream: None,
                };
            }
            (ScanState::Done { bundle, .. }, Part::Single(other)) => {
                if *bundle != other {
                    return Err(other_bundle(&self.state, "a single-part bundle".into()));
                }
            }
            (ScanState::Collecting(_), Part::Single(_)) => {
                return Err(other_bundle(&self.state, "a single-part bundle".into()));
            }
            (ScanState::Empty, Part::Multi(part)) => {
                let mut collecting = Box::new(Collecting {
                    stream: part.stream,
                    seen: BTreeSet::new(),
                    solver: Solver::new(part.stream.fragments as usize, part.data().len()),
                });
                collecting.add(&part)?;
                self.parts = 1;
                self.state = ScanState::Collecting(collecting);
                self.finish_if_complete()?;
            }
            (ScanState::Collecting(collecting), Part::Multi(part)) => {
                if part.stream != collecting.stream {
                    return Err(other_bundle(&self.state, part.stream.to_string()));
                }
                if collecting.add(&part)? {
                    self.parts += 1;
                }
                self.finish_if_complete()?;
            }
            (ScanState::Done { stream, .. }, Part::Multi(part)) => {
                if *stream != Some(part.stream) {
                    return Err(other_bundle(&self.state, part.stream.to_string()));
                }
            }
        }
        Ok(self.progress())
    }

    fn finish_if_complete(&mut self) -> Result<(), PartError> {
        let ScanState::Collecting(collecting) = &mut self.state else {
            return Ok(());
        };
        if !collecting.solver.is_complete() {
            return Ok(());
        }
        let stream = collecting.stream;
        if let Some(bundle) = collecting.solver.message(&stream) {
            self.state = ScanState::Done {
                bundle,
                stream: Some(stream),
            };
            Ok(())
        } else {
            // The equations were consistent but the result is not what the sender hashed: a
            // forged or miscomputed part got through. Nothing collected can be trusted.
            self.state = ScanState::Empty;
            self.parts = 0;
            Err(PartError::Inconsistent)
        }
    }

    #[must_use]
    pub fn progress(&self) -> ScanProgress {
        match &self.state {
            ScanState::Empty => ScanProgress::default(),
            ScanState::Collecting(c) => ScanProgress {
                parts: self.parts,
                resolved: c.solver.rank(),
                total: c.stream.fragments as usize,
                complete: false,
            },
            ScanState::Done { stream, .. } => {
                let total = stream.map_or(1, |s| s.fragments as usize);
                ScanProgress {
                    parts: self.parts,
                    resolved: total,
                    total,
                    complete: true,
                }
            }
        }
    }

    #[must_use]
    pub fn is_complete(&self) -> bool {
        matches!(self.state, ScanState::Done { .. })
    }

    /// The identity of the stream being collected, once the first multi-part has arrived.
    #[must_use]
    pub fn stream(&self) -> Option<StreamId> {
        match &self.state {
            ScanState::Empty => None,
            ScanState::Collecting(c) => Some(c.stream),
            ScanState::Done { stream, .. } => *stream,
        }
    }

    /// The reassembled bundle bytes; decode them with [`crate::Bundle::decode`].
    pub fn finish(self) -> Result<Vec<u8>, PartError> {
        let progress = self.progress();
        match self.state {
            ScanState::Done { bundle, .. } => Ok(bundle),
            _ => Err(PartError::Incomplete {
                resolved: progress.resolved,
                total: progress.total,
            }),
        }
    }
}

fn other_bundle(state: &ScanState, got: String) -> PartError {
    let expected = match state {
        ScanState::Collecting(c) => c.stream.to_string(),
        ScanState::Done {
            stream: Some(s), ..
        } => s.to_string(),
        _ => "a single-part bundle".into(),
    };
    PartError::OtherBundle { expected, got }
}

impl Collecting {
    /// Adds a part; `Ok(false)` for a repeat.
    fn add(&mut self, part: &MultiPart) -> Result<bool, PartError> {
        if !self.seen.insert(part.sequence) {
            return Ok(false);
        }
        self.solver.add(&part.fragment_indexes(), part.data())?;
        Ok(true)
    }
}

/// Incremental Gaussian elimination over GF(2). Each equation says "the XOR of these fragments
/// is this data". Solved fragments are kept apart; the rest stay in reduced row echelon form
/// (each pivot column appears only in its own row), so adding an equation costs one pass over
/// the rows it touches.
struct Solver {
    fragments: usize,
    fragment_len: usize,
    known: Vec<Option<Vec<u8>>>,
    known_count: usize,
    rows: BTreeMap<usize, Row>,
}

struct Row {
    bits: Vec<u64>,
    data: Vec<u8>,
}

fn xor_into(dst: &mut [u8], src: &[u8]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d ^= s;
    }
}

fn bit(bits: &[u64], i: usize) -> bool {
    bits[i / 64] >> (i % 64) & 1 == 1
}

fn set_bits(bits: &[u64]) -> impl Iterator<Item = usize> + '_ {
    bits.iter().enumerate().flat_map(|(w, &word)| {
        let mut word = word;
        std::iter::from_fn(move || {
            if word == 0 {
                return None;
            }
            let b = word.trailing_zeros() as usize;
            word &= word - 1;
            Some(w * 64 + b)
        })
    })
}

impl Solver {
    fn new(fragments: usize, fragment_len: usize) -> Self {
        Self {
            fragments,
            fragment_len,
            known: vec![None; fragments],
            known_count: 0,
            rows: BTreeMap::new(),
        }
    }

    fn rank(&self) -> usize {
        self.known_count + self.rows.len()
    }

    fn is_complete(&self) -> bool {
        self.known_count == self.fragments
    }

    fn add(&mut self, indexes: &[usize], data: &[u8]) -> Result<(), PartError> {
        if data.len() != self.fragment_len || indexes.iter().any(|&i| i >= self.fragments) {
            return Err(PartError::Corrupt("part does not fit the stream"));
        }
        let mut data = data.to_vec();
        let mut bits = vec![0u64; self.fragments.div_ceil(64)];
        for &i in indexes {
            match &self.known[i] {
                Some(fragment) => xor_into(&mut data, fragment),
                None => bits[i / 64] ^= 1 << (i % 64),
            }
        }
        let pivots: Vec<usize> = set_bits(&bits)
            .filter(|c| self.rows.contains_key(c))
            .collect();
        for c in pivots {
            let row = &self.rows[&c];
            for (b, r) in bits.iter_mut().zip(&row.bits) {
                *b ^= r;
            }
            xor_into(&mut data, &row.data);
        }
        let Some(pivot) = set_bits(&bits).next() else {
            // Nothing new. A consistent part reduces to all-zero data here.
            return if data.iter().all(|&b| b == 0) {
                Ok(())
            } else {
                Err(PartError::Inconsistent)
            };
        };

        let mut solved = Vec::new();
        for (&p, row) in &mut self.rows {
            if bit(&row.bits, pivot) {
                for (r, b) in row.bits.iter_mut().zip(&bits) {
                    *r ^= b;
                }
                xor_into(&mut row.data, &data);
                if set_bits(&row.bits).nth(1).is_none() {
                    solved.push(p);
                }
            }
        }
        if set_bits(&bits).nth(1).is_none() {
            self.learn(pivot, data);
        } else {
            self.rows.insert(pivot, Row { bits, data });
        }
        for p in solved {
            let row = self.rows.remove(&p).expect("listed above");
            self.learn(p, row.data);
        }
        Ok(())
    }

    fn learn(&mut self, index: usize, data: Vec<u8>) {
        debug_assert!(self.known[index].is_none());
        self.known[index] = Some(data);
        self.known_count += 1;
    }

    fn message(&self, stream: &StreamId) -> Option<Vec<u8>> {
        let len = stream.message_length as usize;
        let mut out = Vec::with_capacity(self.fragments * self.fragment_len);
        for fragment in &self.known {
            out.extend_from_slice(fragment.as_deref()?);
        }
        if out[len..].iter().any(|&b| b != 0) {
            return None;
        }
        out.truncate(len);
        (crc32fast::hash(&out) == stream.checksum).then_some(out)
    }
}

/// The first `count` parts of `bundle` (fragments first, then mixed parts), for `--text`
/// output and tests.
pub fn encode_parts(
    bundle: &[u8],
    max_fragment: usize,
    count: usize,
) -> Result<Vec<String>, EncodeError> {
    let mut encoder = PartEncoder::new(bundle, max_fragment)?;
    Ok((0..count).map(|_| encoder.next_part()).collect())
}
