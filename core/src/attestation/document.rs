//! The attestation document payload (AWS `attestation_process.md` section 3.2.1, "Attestation
//! document specification", and section 3.2.2.1, "Syntactical validation").

use std::collections::BTreeSet;

use super::AttestationError;
use super::cbor::{Head, Reader, describe};

/// Upper bound on `user_data`, `nonce` and `public_key`: the CDDL's `.size (0..1024)` read as
/// inclusive, which is what the NSM accepts.
pub const MAX_OPTIONAL_FIELD_LEN: usize = 1024;

/// Certificates are `bytes .size (1..1024)` in the CDDL.
const MAX_CERTIFICATE_LEN: usize = 1024;

/// PCR indices run 0..=31 and a document carries between 1 and 32 of them.
const PCR_COUNT: u64 = 32;

/// The payload, borrowing every field from the signed bytes.
pub(crate) struct Payload<'a> {
    pub(crate) module_id: &'a str,
    pub(crate) digest: &'a str,
    pub(crate) timestamp_ms: u64,
    /// In document order; indices are unique.
    pub(crate) pcrs: Vec<(u8, &'a [u8])>,
    pub(crate) certificate: &'a [u8],
    /// Root first.
    pub(crate) cabundle: Vec<&'a [u8]>,
    pub(crate) public_key: Option<&'a [u8]>,
    pub(crate) user_data: Option<&'a [u8]>,
    pub(crate) nonce: Option<&'a [u8]>,
}

/// Calls `entry` for each entry of a definite- or indefinite-length map.
fn for_each_entry<'a>(
    r: &mut Reader<'a>,
    what: &'static str,
    mut entry: impl FnMut(&mut Reader<'a>) -> Result<(), AttestationError>,
) -> Result<(), AttestationError> {
    match r.head()? {
        Head::Map(Some(n)) => {
            for _ in 0..n {
                entry(r)?;
            }
        }
        Head::Map(None) => {
            while !r.at_break() {
                entry(r)?;
            }
        }
        other => {
            return Err(AttestationError::InvalidField {
                field: what,
                detail: format!("is a {}, expected a map", describe(other)),
            });
        }
    }
    Ok(())
}

fn invalid(field: &'static str, detail: impl Into<String>) -> AttestationError {
    AttestationError::InvalidField {
        field,
        detail: detail.into(),
    }
}

impl<'a> Payload<'a> {
    pub(crate) fn decode(bytes: &'a [u8]) -> Result<Self, AttestationError> {
        let mut r = Reader::new(bytes, "attestation payload");
        let mut seen: BTreeSet<&'a str> = BTreeSet::new();
        let mut module_id = None;
        let mut digest = None;
        let mut timestamp_ms = None;
        let mut pcrs = None;
        let mut certificate = None;
        let mut cabundle = None;
        let mut public_key = None;
        let mut user_data = None;
        let mut nonce = None;

        for_each_entry(&mut r, "payload", |r| {
            let key = r.text().map_err(|e| match e {
                AttestationError::Cbor { detail, .. } => {
                    invalid("payload", format!("key: {detail}"))
                }
                other => other,
            })?;
            if !seen.insert(key) {
                return Err(AttestationError::DuplicateKey {
                    map: "payload",
                    key: key.to_owned(),
                });
            }
            match key {
                "module_id" => {
                    let v = r.text()?;
                    if v.is_empty() {
                        return Err(invalid("module_id", "is empty"));
                    }
                    module_id = Some(v);
                }
                "digest" => {
                    let v = r.text()?;
                    if v != "SHA384" {
                        return Err(invalid("digest", format!("'{v}' is not SHA384")));
                    }
                    digest = Some(v);
                }
                "timestamp" => {
                    let v = r.unsigned()?;
                    if v == 0 {
                        return Err(invalid("timestamp", "is 0"));
                    }
                    timestamp_ms = Some(v);
                }
                "pcrs" => pcrs = Some(decode_pcrs(r)?),
                "certificate" => certificate = Some(certificate_bytes(r, "certificate")?),
                "cabundle" => cabundle = Some(decode_cabundle(r)?),
                "public_key" => public_key = optional_bytes(r, "public_key")?,
                "user_data" => user_data = optional_bytes(r, "user_data")?,
                "nonce" => nonce = optional_bytes(r, "nonce")?,
                // Fields added by later NSM versions are signed too; ignoring them is safe.
                _ => r.skip()?,
            }
            Ok(())
        })?;
        r.finish()?;

        Ok(Self {
            module_id: module_id.ok_or(AttestationError::MissingField("module_id"))?,
            digest: digest.ok_or(AttestationError::MissingField("digest"))?,
            timestamp_ms: timestamp_ms.ok_or(AttestationError::MissingField("timestamp"))?,
            pcrs: pcrs.ok_or(AttestationError::MissingField("pcrs"))?,
            certificate: certificate.ok_or(AttestationError::MissingField("certificate"))?,
            cabundle: cabundle.ok_or(AttestationError::MissingField("cabundle"))?,
            public_key,
            user_data,
            nonce,
        })
    }
}

fn decode_pcrs<'a>(r: &mut Reader<'a>) -> Result<Vec<(u8, &'a [u8])>, AttestationError> {
    let mut pcrs: Vec<(u8, &'a [u8])> = Vec::new();
    let mut seen = 0u32;
    for_each_entry(r, "pcrs", |r| {
        let index = match r.head()? {
            Head::Unsigned(i) if i < PCR_COUNT => i as u8,
            Head::Unsigned(i) => {
                return Err(invalid("pcrs", format!("index {i} is not in 0..=31")));
            }
            Head::Text(n) => {
                let raw = r.take(n)?;
                return Err(invalid(
                    "pcrs",
                    format!(
                        "index '{}' is text, not an integer",
                        String::from_utf8_lossy(raw)
                    ),
                ));
            }
            other => return Err(invalid("pcrs", format!("index is a {}", describe(other)))),
        };
        if seen & (1 << index) != 0 {
            return Err(AttestationError::DuplicateKey {
                map: "pcrs",
                key: index.to_string(),
            });
        }
        seen |= 1 << index;
        let value = r.bytes()?;
        if !matches!(value.len(), 32 | 48 | 64) {
            return Err(invalid(
                "pcrs",
                format!("PCR{index} is {} bytes, expected 32, 48 or 64", value.len()),
            ));
        }
        pcrs.push((index, value));
        Ok(())
    })?;
    if pcrs.is_empty() {
        return Err(invalid("pcrs", "is empty, expected 1 to 32 PCRs"));
    }
    Ok(pcrs)
}

fn certificate_bytes<'a>(
    r: &mut Reader<'a>,
    field: &'static str,
) -> Result<&'a [u8], AttestationError> {
    let v = r.bytes()?;
    if v.is_empty() || v.len() > MAX_CERTIFICATE_LEN {
        return Err(invalid(
            field,
            format!("is {} bytes, expected 1 to {MAX_CERTIFICATE_LEN}", v.len()),
        ));
    }
    Ok(v)
}

fn decode_cabundle<'a>(r: &mut Reader<'a>) -> Result<Vec<&'a [u8]>, AttestationError> {
    let mut out = Vec::new();
    match r.head()? {
        Head::Array(Some(n)) => {
            for _ in 0..n {
                out.push(certificate_bytes(r, "cabundle entry")?);
            }
        }
        Head::Array(None) => {
            while !r.at_break() {
                out.push(certificate_bytes(r, "cabundle entry")?);
            }
        }
        other => {
            return Err(invalid(
                "cabundle",
                format!("is a {}, expected an array", describe(other)),
            ));
        }
    }
    if out.is_empty() {
        return Err(invalid(
            "cabundle",
            "is empty, expected at least the root certificate",
        ));
    }
    Ok(out)
}

fn optional_bytes<'a>(
    r: &mut Reader<'a>,
    field: &'static str,
) -> Result<Option<&'a [u8]>, AttestationError> {
    let v = r.bytes_or_null()?;
    if let Some(b) = v
        && b.len() > MAX_OPTIONAL_FIELD_LEN
    {
        return Err(invalid(
            field,
            format!("length {} is not in [0, {MAX_OPTIONAL_FIELD_LEN}]", b.len()),
        ));
    }
    Ok(v)
}
