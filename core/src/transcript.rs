//! The ceremony transcript: an append-only JSON Lines file in which every line carries the
//! SHA-256 of the line before it, so any edit, deletion or reordering breaks the chain at a
//! line that [`verify`] names.
//!
//! Entries record what was done, when, hashes of inputs and outputs, the device and slot, and
//! the decision. They never hold a secret: only hashes and public identifiers go in.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::bytes::Hash32;

/// The `prev` of the first line.
pub const GENESIS_PREV: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// Longest line [`verify`] accepts.
pub const MAX_LINE: usize = 64 * 1024;

/// One transcript line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// 1, 2, 3…
    pub seq: u64,
    /// RFC 3339 UTC.
    pub time: String,
    /// SHA-256 (hex) of the previous line's bytes, without its newline.
    pub prev: String,
    /// What was done, e.g. `manifest.approve`.
    pub action: String,
    /// `approved`, `refused: …`, `ok`…
    pub decision: String,
    /// Named SHA-256 hashes (hex) of inputs.
    pub inputs: BTreeMap<String, String>,
    /// Named SHA-256 hashes (hex) of outputs.
    pub outputs: BTreeMap<String, String>,
    /// Device label, serial and slot where a device was used.
    pub device: Option<String>,
}

/// What a caller records; the chain fields are filled in by [`append`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    pub action: String,
    pub decision: String,
    pub inputs: BTreeMap<String, String>,
    pub outputs: BTreeMap<String, String>,
    pub device: Option<String>,
}

impl Record {
    #[must_use]
    pub fn new(action: &str, decision: impl Into<String>) -> Self {
        Self {
            action: action.to_owned(),
            decision: decision.into(),
            ..Self::default()
        }
    }

    #[must_use]
    pub fn input(mut self, name: &str, bytes: &[u8]) -> Self {
        self.inputs
            .insert(name.to_owned(), Hash32::sha256(bytes).to_hex());
        self
    }

    #[must_use]
    pub fn input_hash(mut self, name: &str, hash: &Hash32) -> Self {
        self.inputs.insert(name.to_owned(), hash.to_hex());
        self
    }

    #[must_use]
    pub fn output(mut self, name: &str, bytes: &[u8]) -> Self {
        self.outputs
            .insert(name.to_owned(), Hash32::sha256(bytes).to_hex());
        self
    }

    #[must_use]
    pub fn device(mut self, device: impl Into<String>) -> Self {
        self.device = Some(device.into());
        self
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TranscriptError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("line {line}: {reason}")]
    Broken { line: u64, reason: String },
}

/// Where the last line ends: its sequence number and hash.
fn tail(path: &Path) -> Result<(u64, String), TranscriptError> {
    match std::fs::File::open(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((0, GENESIS_PREV.to_owned())),
        Err(source) => Err(TranscriptError::Io {
            path: path.display().to_string(),
            source,
        }),
        Ok(f) => {
            let report = verify_reader(f)?;
            Ok((report.lines, report.last_hash))
        }
    }
}

/// Appends `record` under the current time, chained to the file's last line. The file is
/// verified first: nothing is appended to a broken transcript.
pub fn append(path: &Path, time: &str, record: Record) -> Result<Entry, TranscriptError> {
    let (seq, prev) = tail(path)?;
    let entry = Entry {
        seq: seq + 1,
        time: time.to_owned(),
        prev,
        action: record.action,
        decision: record.decision,
        inputs: record.inputs,
        outputs: record.outputs,
        device: record.device,
    };
    let mut line = serde_json::to_string(&entry).expect("entries serialise");
    line.push('\n');
    let io = |source| TranscriptError::Io {
        path: path.display().to_string(),
        source,
    };
    let mut opts = OpenOptions::new();
    opts.append(true).create(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(io)?;
    f.write_all(line.as_bytes()).map_err(io)?;
    f.sync_data().map_err(io)?;
    Ok(entry)
}

/// The result of a successful verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub lines: u64,
    /// SHA-256 (hex) of the last line: pinning it pins the whole transcript.
    pub last_hash: String,
}

/// Checks every line: valid JSON of the entry shape, `seq` counting from 1, `prev` equal to the
/// hash of the line before. Names the first broken line.
pub fn verify_reader<R: Read>(r: R) -> Result<Report, TranscriptError> {
    let mut reader = BufReader::new(r.take(u64::MAX));
    let mut prev = GENESIS_PREV.to_owned();
    let mut n = 0u64;
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let read = (&mut reader)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut buf)
            .map_err(|source| TranscriptError::Io {
                path: "transcript".to_owned(),
                source,
            })?;
        if read == 0 {
            break;
        }
        n += 1;
        let broken = |reason: String| TranscriptError::Broken { line: n, reason };
        if buf.last() != Some(&b'\n') {
            return Err(broken(if buf.len() > MAX_LINE {
                format!("longer than {MAX_LINE} bytes")
            } else {
                "incomplete last line (no newline)".to_owned()
            }));
        }
        let line = &buf[..buf.len() - 1];
        let entry: Entry = serde_json::from_slice(line)
            .map_err(|e| broken(format!("not a transcript entry: {e}")))?;
        if entry.seq != n {
            return Err(broken(format!(
                "sequence {} where {n} was expected",
                entry.seq
            )));
        }
        if entry.prev != prev {
            return Err(broken(
                "prev does not match the hash of the line before (edited, removed or reordered)"
                    .to_owned(),
            ));
        }
        if serde_json::to_vec(&entry).ok().as_deref() != Some(line) {
            return Err(broken("not in canonical form".to_owned()));
        }
        prev = Hash32::sha256(line).to_hex();
    }
    Ok(Report {
        lines: n,
        last_hash: prev,
    })
}

/// Verifies the transcript at `path`.
pub fn verify(path: &Path) -> Result<Report, TranscriptError> {
    let f = std::fs::File::open(path).map_err(|source| TranscriptError::Io {
        path: path.display().to_string(),
        source,
    })?;
    verify_reader(f)
}
