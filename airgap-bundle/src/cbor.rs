//! A bounded reader for the few CBOR items this crate inspects by hand: the bundle header (so an
//! unknown version is reported as such, before the strict decoder runs) and UR fountain parts
//! (so a part's metadata is checked before the `ur` decoder sizes anything from it).
//!
//! It reads only definite-length items with minimal-length heads (RFC 8949 §4.2.1) and never
//! allocates: byte and text strings are borrowed from the input.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CborError {
    /// The input ended inside an item.
    Eof,
    /// An item of another major type, an indefinite length, or a non-minimal head.
    Invalid,
}

pub(crate) struct Reader<'a> {
    buf: &'a [u8],
}

const MAJOR_UINT: u8 = 0;
const MAJOR_BYTES: u8 = 2;
const MAJOR_TEXT: u8 = 3;
const MAJOR_ARRAY: u8 = 4;
const MAJOR_MAP: u8 = 5;

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], CborError> {
        if n > self.buf.len() {
            return Err(CborError::Eof);
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn head(&mut self, major: u8) -> Result<u64, CborError> {
        let initial = self.take(1)?[0];
        if initial >> 5 != major {
            return Err(CborError::Invalid);
        }
        let info = initial & 0x1f;
        let (value, min) = match info {
            0..=23 => return Ok(u64::from(info)),
            24 => (u64::from(self.take(1)?[0]), 24),
            25 => (u64::from(u16::from_be_bytes(self.array()?)), 0x100),
            26 => (u64::from(u32::from_be_bytes(self.array()?)), 0x1_0000),
            27 => (u64::from_be_bytes(self.array()?), 0x1_0000_0000),
            _ => return Err(CborError::Invalid),
        };
        if value < min {
            return Err(CborError::Invalid);
        }
        Ok(value)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], CborError> {
        let bytes = self.take(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    pub(crate) fn uint(&mut self) -> Result<u64, CborError> {
        self.head(MAJOR_UINT)
    }

    pub(crate) fn array_len(&mut self) -> Result<u64, CborError> {
        self.head(MAJOR_ARRAY)
    }

    pub(crate) fn map_len(&mut self) -> Result<u64, CborError> {
        self.head(MAJOR_MAP)
    }

    /// Only the head of a byte string, for peeking into an embedded item whose end may lie
    /// beyond the input.
    pub(crate) fn bytes_head(&mut self) -> Result<u64, CborError> {
        self.head(MAJOR_BYTES)
    }

    fn string(&mut self, major: u8) -> Result<&'a [u8], CborError> {
        let len = self.head(major)?;
        // A declared length beyond the input is an error, not an allocation.
        let len = usize::try_from(len).map_err(|_| CborError::Eof)?;
        self.take(len)
    }

    pub(crate) fn bytes(&mut self) -> Result<&'a [u8], CborError> {
        self.string(MAJOR_BYTES)
    }

    pub(crate) fn text(&mut self) -> Result<&'a [u8], CborError> {
        self.string(MAJOR_TEXT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_non_minimal_and_indefinite_heads() {
        assert_eq!(Reader::new(&[0x18, 0x05]).uint(), Err(CborError::Invalid));
        assert_eq!(
            Reader::new(&[0x19, 0x00, 0xff]).uint(),
            Err(CborError::Invalid)
        );
        assert_eq!(Reader::new(&[0x9f]).array_len(), Err(CborError::Invalid));
        assert_eq!(Reader::new(&[0x18, 0x18]).uint(), Ok(24));
        assert_eq!(Reader::new(&[0x1a, 0, 1, 0, 0]).uint(), Ok(0x1_0000));
    }

    #[test]
    fn declared_length_beyond_input_is_eof() {
        assert_eq!(
            Reader::new(&[0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]).bytes(),
            Err(CborError::Eof)
        );
        assert_eq!(Reader::new(&[0x43, 1, 2]).bytes(), Err(CborError::Eof));
        assert_eq!(Reader::new(&[0x42, 1, 2]).bytes(), Ok(&[1u8, 2][..]));
    }
}
