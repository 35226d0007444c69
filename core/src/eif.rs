//! Enclave Image Format (EIF) files and the PCRs they produce, computed as
//! `nitro-cli describe-eif` does.
//!
//! The file is a 548-byte big-endian header followed by sections, each a 12-byte section header
//! and its data, read back to back to the end of the file. The header's CRC-32 covers everything
//! but the CRC field itself. PCR0 measures the kernel, command line and every ramdisk in file
//! order; PCR1 the kernel, command line and first ramdisk; PCR2 the remaining ramdisks; PCR8 the
//! DER of the signing certificate of a signed image.
//!
//! Parsing is strict where `nitro-cli` is lenient: the header's section count, offsets and sizes
//! must describe the sections actually present, so a file cannot say one thing to a loader and
//! another to this reader.

use sha2::{Digest, Sha384};

use crate::attestation::AttestationError;
use crate::attestation::cbor::{Head, Reader};
use crate::pcr::Pcr;

/// `.eif`
const MAGIC: [u8; 4] = *b".eif";
const HEADER_LEN: usize = 548;
const SECTION_HEADER_LEN: usize = 12;
const MAX_SECTIONS: usize = 32;
/// Bytes of the header covered by its CRC: all but the trailing CRC field.
const HEADER_CRC_COVERED: usize = HEADER_LEN - 4;

/// Why an EIF was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EifError {
    #[error("EIF is {0} bytes, shorter than its 548-byte header")]
    TooShort(usize),
    #[error("not an EIF: magic is {0}, expected 2e656966 (\".eif\")")]
    BadMagic(String),
    #[error("section {index} at offset {offset}: {detail}")]
    Section {
        index: usize,
        offset: usize,
        detail: String,
    },
    #[error("more than {MAX_SECTIONS} sections")]
    TooManySections,
    #[error("header CRC-32 is {header:#010x}, the file's is {computed:#010x}: the EIF is corrupt")]
    Crc { header: u32, computed: u32 },
    #[error("header disagrees with the sections present: {0}")]
    HeaderMismatch(String),
    #[error("signature section: {0}")]
    Signature(String),
}

/// Section kinds (`EifSectionType` in the format definition).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SectionKind {
    Kernel,
    Cmdline,
    Ramdisk,
    Signature,
    Metadata,
}

impl SectionKind {
    fn from_u16(v: u16) -> Option<Self> {
        Some(match v {
            1 => Self::Kernel,
            2 => Self::Cmdline,
            3 => Self::Ramdisk,
            4 => Self::Signature,
            5 => Self::Metadata,
            _ => return None,
        })
    }
}

/// One section: where its header starts and how many data bytes follow it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Section {
    pub kind: SectionKind,
    pub flags: u16,
    /// Offset of the section header in the file.
    pub offset: u64,
    /// Length of the data after the section header.
    pub size: u64,
}

/// The fields of the EIF header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub version: u16,
    pub flags: u16,
    pub default_mem: u64,
    pub default_cpus: u64,
    pub num_sections: u16,
    pub section_offsets: Vec<u64>,
    pub section_sizes: Vec<u64>,
    pub crc32: u32,
}

/// The PCRs an enclave booted from this image reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Measurements {
    pub pcr0: Pcr,
    pub pcr1: Pcr,
    pub pcr2: Pcr,
    /// Present for signed images only.
    pub pcr8: Option<Pcr>,
}

/// A parsed and measured EIF.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Eif {
    pub header: Header,
    pub sections: Vec<Section>,
    pub measurements: Measurements,
}

/// A big-endian cursor that never reads past its slice.
struct Be<'a> {
    bytes: &'a [u8],
}

impl Be<'_> {
    fn u16(&mut self) -> u16 {
        let (v, rest) = self.bytes.split_at_checked(2).unwrap_or((&[0, 0], &[]));
        self.bytes = rest;
        u16::from_be_bytes([v[0], v[1]])
    }

    fn u32(&mut self) -> u32 {
        (u32::from(self.u16()) << 16) | u32::from(self.u16())
    }

    fn u64(&mut self) -> u64 {
        (u64::from(self.u32()) << 32) | u64::from(self.u32())
    }
}

/// Parses `bytes` as an EIF, checks its CRC and computes its PCRs.
pub fn parse(bytes: &[u8]) -> Result<Eif, EifError> {
    let header_bytes = bytes
        .get(..HEADER_LEN)
        .ok_or(EifError::TooShort(bytes.len()))?;
    if header_bytes[..4] != MAGIC {
        return Err(EifError::BadMagic(hex::encode(&header_bytes[..4])));
    }
    let mut be = Be {
        bytes: &header_bytes[4..],
    };
    let version = be.u16();
    let flags = be.u16();
    let default_mem = be.u64();
    let default_cpus = be.u64();
    let _reserved = be.u16();
    let num_sections = be.u16();
    let section_offsets: Vec<u64> = (0..MAX_SECTIONS).map(|_| be.u64()).collect();
    let section_sizes: Vec<u64> = (0..MAX_SECTIONS).map(|_| be.u64()).collect();
    let _unused = be.u32();
    let crc32 = be.u32();

    let mut crc = crc32fast::Hasher::new();
    crc.update(&header_bytes[..HEADER_CRC_COVERED]);

    let mut image = Sha384::new();
    let mut bootstrap = Sha384::new();
    let mut app = Sha384::new();
    let mut ramdisks = 0usize;
    let mut certificate_digest = None;
    let mut sections = Vec::new();

    let mut pos = HEADER_LEN;
    while pos < bytes.len() {
        let index = sections.len();
        if index == MAX_SECTIONS {
            return Err(EifError::TooManySections);
        }
        let fail = |detail: String| EifError::Section {
            index,
            offset: pos,
            detail,
        };
        let section_header = bytes.get(pos..pos + SECTION_HEADER_LEN).ok_or_else(|| {
            fail(format!(
                "truncated section header ({} bytes left)",
                bytes.len() - pos
            ))
        })?;
        let mut be = Be {
            bytes: section_header,
        };
        let raw_kind = be.u16();
        let section_flags = be.u16();
        let size = be.u64();
        let kind = SectionKind::from_u16(raw_kind)
            .ok_or_else(|| fail(format!("invalid section type {raw_kind}")))?;
        let data_start = pos + SECTION_HEADER_LEN;
        let data = usize::try_from(size)
            .ok()
            .and_then(|n| bytes.get(data_start..data_start.checked_add(n)?))
            .ok_or_else(|| {
                fail(format!(
                    "{kind:?} declares {size} bytes, only {} remain",
                    bytes.len() - data_start
                ))
            })?;
        crc.update(section_header);
        crc.update(data);

        match kind {
            SectionKind::Kernel | SectionKind::Cmdline => {
                image.update(data);
                bootstrap.update(data);
            }
            SectionKind::Ramdisk => {
                image.update(data);
                if ramdisks == 0 {
                    bootstrap.update(data);
                } else {
                    app.update(data);
                }
                ramdisks += 1;
            }
            SectionKind::Signature => {
                if certificate_digest.is_some() {
                    return Err(fail("second signature section".into()));
                }
                certificate_digest = Some(Sha384::digest(signing_certificate_der(data)?));
            }
            SectionKind::Metadata => {}
        }
        sections.push(Section {
            kind,
            flags: section_flags,
            offset: pos as u64,
            size,
        });
        pos = data_start + data.len();
    }

    let computed = crc.finalize();
    if computed != crc32 {
        return Err(EifError::Crc {
            header: crc32,
            computed,
        });
    }
    if usize::from(num_sections) != sections.len() {
        return Err(EifError::HeaderMismatch(format!(
            "header lists {num_sections} sections, the file holds {}",
            sections.len()
        )));
    }
    for (i, s) in sections.iter().enumerate() {
        if section_offsets[i] != s.offset || section_sizes[i] != s.size {
            return Err(EifError::HeaderMismatch(format!(
                "section {i} is at {} with {} bytes, the header says {} with {} bytes",
                s.offset, s.size, section_offsets[i], section_sizes[i]
            )));
        }
    }

    Ok(Eif {
        header: Header {
            version,
            flags,
            default_mem,
            default_cpus,
            num_sections,
            section_offsets,
            section_sizes,
            crc32,
        },
        sections,
        measurements: Measurements {
            pcr0: Pcr::extended_from_zero(&image.finalize()),
            pcr1: Pcr::extended_from_zero(&bootstrap.finalize()),
            pcr2: Pcr::extended_from_zero(&app.finalize()),
            pcr8: certificate_digest.map(|d| Pcr::extended_from_zero(&d)),
        },
    })
}

/// Computes the PCRs of an EIF; see [`parse`].
pub fn measure(bytes: &[u8]) -> Result<Measurements, EifError> {
    parse(bytes).map(|eif| eif.measurements)
}

/// The DER of the first signer's certificate.
///
/// The section is a CBOR array of `{signing_certificate, signature}` maps whose byte fields the
/// image tools write as arrays of integers; byte strings are accepted as well. The certificate is
/// PEM inside.
fn signing_certificate_der(section: &[u8]) -> Result<Vec<u8>, EifError> {
    let pem = first_signing_certificate(section).map_err(EifError::Signature)?;
    let (rest, block) = x509_parser::pem::parse_x509_pem(&pem)
        .map_err(|e| EifError::Signature(format!("signing certificate is not PEM: {e}")))?;
    if block.label != "CERTIFICATE" || rest.iter().any(|b| !b.is_ascii_whitespace()) {
        return Err(EifError::Signature(
            "signing certificate is not one PEM CERTIFICATE block".into(),
        ));
    }
    Ok(block.contents)
}

fn first_signing_certificate(section: &[u8]) -> Result<Vec<u8>, String> {
    first_signing_certificate_cbor(section).map_err(|e| e.to_string())
}

fn first_signing_certificate_cbor(section: &[u8]) -> Result<Vec<u8>, AttestationError> {
    let mut r = Reader::new(section, "EIF signature section");
    let shape = |detail: &str| AttestationError::InvalidField {
        field: "signature section",
        detail: detail.to_owned(),
    };
    match r.head()? {
        Head::Array(Some(n)) if n >= 1 => {}
        _ => return Err(shape("is not a non-empty array of PCR signatures")),
    }
    let Head::Map(Some(entries)) = r.head()? else {
        return Err(shape("entry is not a map"));
    };
    let mut certificate = None;
    for _ in 0..entries {
        let key = r.text()?;
        let value = byte_vector(&mut r)?;
        if key == "signing_certificate" {
            if certificate.is_some() {
                return Err(shape("has two signing_certificate fields"));
            }
            certificate = Some(value);
        }
    }
    certificate.ok_or_else(|| shape("has no signing_certificate"))
}

/// A byte string, or an array of integers 0..=255 (how serde writes a plain `Vec<u8>`).
fn byte_vector(r: &mut Reader<'_>) -> Result<Vec<u8>, AttestationError> {
    let bad = |detail: &str| AttestationError::InvalidField {
        field: "signature section",
        detail: detail.to_owned(),
    };
    match r.head()? {
        Head::Bytes(n) => Ok(r.take(n)?.to_vec()),
        Head::Array(Some(n)) => {
            // Each element takes at least one input byte; `take`-style bounds stop huge counts.
            let mut out = Vec::new();
            for _ in 0..n {
                match r.head()? {
                    Head::Unsigned(v) if v <= 0xff => out.push(v as u8),
                    _ => return Err(bad("byte array element is not 0..=255")),
                }
            }
            Ok(out)
        }
        _ => Err(bad("field is neither bytes nor an array of bytes")),
    }
}
