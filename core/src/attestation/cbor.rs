//! A bounded CBOR reader over a borrowed slice, covering what attestation documents use.
//!
//! Every read checks the remaining length before touching it, so no input can make it panic or
//! allocate. Values are returned as borrowed slices of the original bytes, which lets the verifier
//! check the signature over exactly what was signed (RFC 9052 section 4.4).

use super::AttestationError;

/// Nesting limit for values skipped inside unknown fields; Nitro documents nest three deep.
const MAX_DEPTH: u32 = 16;

/// The initial byte of a data item split into major type and argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Head {
    Unsigned(u64),
    Negative(u64),
    Bytes(u64),
    Text(u64),
    Array(Option<u64>),
    Map(Option<u64>),
    Tag(u64),
    Simple(u8),
    Float,
    Break,
}

pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    /// Names the structure being read, for error messages.
    what: &'static str,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8], what: &'static str) -> Self {
        Self {
            bytes,
            pos: 0,
            what,
        }
    }

    /// Fails with `TrailingData` unless every byte was consumed.
    pub(crate) fn finish(&self) -> Result<(), AttestationError> {
        let rest = self.bytes.len().saturating_sub(self.pos);
        if rest == 0 {
            Ok(())
        } else {
            Err(AttestationError::TrailingData {
                what: self.what,
                bytes: rest,
            })
        }
    }

    fn malformed(&self, detail: impl Into<String>) -> AttestationError {
        AttestationError::Cbor {
            what: self.what,
            offset: self.pos,
            detail: detail.into(),
        }
    }

    pub(crate) fn take(&mut self, n: u64) -> Result<&'a [u8], AttestationError> {
        let rest = self.bytes.len() - self.pos;
        let n = usize::try_from(n)
            .ok()
            .filter(|&n| n <= rest)
            .ok_or_else(|| {
                self.malformed(format!("premature end: needs {n} bytes, {rest} left"))
            })?;
        let out = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn byte(&mut self) -> Result<u8, AttestationError> {
        Ok(self.take(1)?[0])
    }

    pub(crate) fn peek_byte(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    /// Reads one initial byte and its argument (RFC 8949 section 3).
    pub(crate) fn head(&mut self) -> Result<Head, AttestationError> {
        let start = self.pos;
        let initial = self.byte()?;
        let major = initial >> 5;
        let info = initial & 0x1f;
        let arg = match info {
            0..=23 => Some(u64::from(info)),
            24 => Some(u64::from(self.byte()?)),
            25 => Some(u64::from(u16::from_be_bytes(
                self.take(2)?.try_into().unwrap_or_default(),
            ))),
            26 => Some(u64::from(u32::from_be_bytes(
                self.take(4)?.try_into().unwrap_or_default(),
            ))),
            27 => Some(u64::from_be_bytes(
                self.take(8)?.try_into().unwrap_or_default(),
            )),
            31 => None,
            _ => {
                self.pos = start;
                return Err(self.malformed(format!("reserved additional information {info}")));
            }
        };
        let head = match (major, arg) {
            (0, Some(v)) => Head::Unsigned(v),
            (1, Some(v)) => Head::Negative(v),
            (2, Some(v)) => Head::Bytes(v),
            (3, Some(v)) => Head::Text(v),
            (4, len) => Head::Array(len),
            (5, len) => Head::Map(len),
            (6, Some(v)) => Head::Tag(v),
            (7, None) => Head::Break,
            (7, Some(_)) if info >= 25 => Head::Float,
            (7, Some(v)) => Head::Simple(u8::try_from(v).unwrap_or(u8::MAX)),
            _ => {
                self.pos = start;
                // Indefinite-length strings are refused: nothing in a Nitro document uses them.
                return Err(self.malformed("indefinite-length string"));
            }
        };
        Ok(head)
    }

    pub(crate) fn bytes(&mut self) -> Result<&'a [u8], AttestationError> {
        match self.head()? {
            Head::Bytes(n) => self.take(n),
            other => {
                Err(self.malformed(format!("expected a byte string, found {}", describe(other))))
            }
        }
    }

    /// A byte string, or `None` for CBOR null.
    pub(crate) fn bytes_or_null(&mut self) -> Result<Option<&'a [u8]>, AttestationError> {
        if self.peek_byte() == Some(0xf6) {
            self.pos += 1;
            return Ok(None);
        }
        self.bytes().map(Some)
    }

    pub(crate) fn text(&mut self) -> Result<&'a str, AttestationError> {
        match self.head()? {
            Head::Text(n) => {
                let raw = self.take(n)?;
                std::str::from_utf8(raw).map_err(|_| self.malformed("text string is not UTF-8"))
            }
            other => {
                Err(self.malformed(format!("expected a text string, found {}", describe(other))))
            }
        }
    }

    pub(crate) fn unsigned(&mut self) -> Result<u64, AttestationError> {
        match self.head()? {
            Head::Unsigned(v) => Ok(v),
            other => Err(self.malformed(format!(
                "expected an unsigned integer, found {}",
                describe(other)
            ))),
        }
    }

    /// Returns whether the next item is the break that ends an indefinite-length container.
    pub(crate) fn at_break(&mut self) -> bool {
        if self.peek_byte() == Some(0xff) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// Skips one complete data item, checking its structure to a bounded depth.
    pub(crate) fn skip(&mut self) -> Result<(), AttestationError> {
        self.skip_at(0)
    }

    fn skip_at(&mut self, depth: u32) -> Result<(), AttestationError> {
        if depth > MAX_DEPTH {
            return Err(self.malformed("nesting too deep"));
        }
        match self.head()? {
            Head::Unsigned(_) | Head::Negative(_) | Head::Simple(_) | Head::Float => {}
            Head::Bytes(n) => {
                self.take(n)?;
            }
            Head::Text(n) => {
                let raw = self.take(n)?;
                if std::str::from_utf8(raw).is_err() {
                    return Err(self.malformed("text string is not UTF-8"));
                }
            }
            Head::Tag(_) => self.skip_at(depth + 1)?,
            Head::Array(len) => self.skip_items(len, 1, depth)?,
            Head::Map(len) => self.skip_items(len, 2, depth)?,
            Head::Break => return Err(self.malformed("unexpected break")),
        }
        Ok(())
    }

    fn skip_items(
        &mut self,
        len: Option<u64>,
        per_entry: u32,
        depth: u32,
    ) -> Result<(), AttestationError> {
        match len {
            Some(n) => {
                for _ in 0..n {
                    for _ in 0..per_entry {
                        // Each item takes at least one byte, so a huge count fails on input length.
                        self.skip_at(depth + 1)?;
                    }
                }
            }
            None => {
                while !self.at_break() {
                    for _ in 0..per_entry {
                        self.skip_at(depth + 1)?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// A short name for a data item's kind, for error messages.
pub(crate) fn describe(head: Head) -> String {
    match head {
        Head::Unsigned(v) => format!("unsigned integer {v}"),
        Head::Negative(v) => format!("negative integer -{}", u128::from(v) + 1),
        Head::Bytes(n) => format!("byte string of {n} bytes"),
        Head::Text(n) => format!("text string of {n} bytes"),
        Head::Array(_) => "array".into(),
        Head::Map(_) => "map".into(),
        Head::Tag(t) => format!("tag {t}"),
        Head::Simple(20) => "false".into(),
        Head::Simple(21) => "true".into(),
        Head::Simple(22) => "null".into(),
        Head::Simple(23) => "undefined".into(),
        Head::Simple(v) => format!("simple value {v}"),
        Head::Float => "float".into(),
        Head::Break => "break".into(),
    }
}
