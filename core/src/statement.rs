//! Builders' statements: the JSON document in which a builder says which PCRs their own build
//! of an enclave image produced.
//!
//! ```json
//! {"image": "payments-enclave", "version": "1.4.2",
//!  "pcrs": {"PCR0": "<96 hex>", "PCR1": "<96 hex>", "PCR2": "<96 hex>"}}
//! ```
//!
//! Statements arrive with detached OpenPGP signatures; checking those is the operator app's job.
//! This module only parses, and it parses strictly: exactly these keys, no duplicates, no
//! trailing data, lowercase hex of 48-byte values, so two parties who accept a statement agree
//! on what it says.

use serde::Deserialize;

use crate::pcr::PCR_LEN;

/// Largest statement accepted; a real one is about 400 bytes.
pub const MAX_STATEMENT: usize = 16 * 1024;
/// Longest `image` or `version`.
pub const MAX_NAME: usize = 256;

/// A statement that parsed. Nothing in it is trusted until enough pinned builders signed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub image: String,
    pub version: String,
    /// PCR0, PCR1, PCR2.
    pub pcrs: [[u8; PCR_LEN]; 3],
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StatementParseError {
    #[error("statement is {0} bytes; at most {MAX_STATEMENT} are accepted")]
    TooLarge(usize),
    #[error("statement is not the expected JSON object: {0}")]
    Json(String),
    #[error("statement field {field}: {reason}")]
    Field { field: &'static str, reason: String },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStatement {
    image: String,
    version: String,
    pcrs: RawPcrs,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPcrs {
    #[serde(rename = "PCR0")]
    pcr0: String,
    #[serde(rename = "PCR1")]
    pcr1: String,
    #[serde(rename = "PCR2")]
    pcr2: String,
}

/// Parses a statement. serde's derive refuses unknown and duplicated keys; `from_slice`
/// refuses trailing data.
pub fn parse(bytes: &[u8]) -> Result<Statement, StatementParseError> {
    if bytes.len() > MAX_STATEMENT {
        return Err(StatementParseError::TooLarge(bytes.len()));
    }
    let raw: RawStatement =
        serde_json::from_slice(bytes).map_err(|e| StatementParseError::Json(e.to_string()))?;
    Ok(Statement {
        image: name("image", raw.image)?,
        version: name("version", raw.version)?,
        pcrs: [
            pcr("pcrs.PCR0", &raw.pcrs.pcr0)?,
            pcr("pcrs.PCR1", &raw.pcrs.pcr1)?,
            pcr("pcrs.PCR2", &raw.pcrs.pcr2)?,
        ],
    })
}

fn name(field: &'static str, value: String) -> Result<String, StatementParseError> {
    let bad = |reason: &str| StatementParseError::Field {
        field,
        reason: reason.to_owned(),
    };
    if value.trim().is_empty() {
        return Err(bad("empty"));
    }
    if value.len() > MAX_NAME {
        return Err(bad("too long"));
    }
    // Names are shown in a terminal next to "reproduced by"; control characters could rewrite
    // what the operator sees.
    if value.chars().any(char::is_control) {
        return Err(bad("contains control characters"));
    }
    Ok(value)
}

fn pcr(field: &'static str, value: &str) -> Result<[u8; PCR_LEN], StatementParseError> {
    let bad = |reason: String| StatementParseError::Field { field, reason };
    if value.len() != 2 * PCR_LEN {
        return Err(bad(format!(
            "{} hex digits where {} (48 bytes, SHA-384) are required",
            value.len(),
            2 * PCR_LEN
        )));
    }
    // One spelling per value: `nitro-cli describe-eif` prints lowercase.
    if !value
        .bytes()
        .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return Err(bad("not lowercase hex".to_owned()));
    }
    let mut out = [0u8; PCR_LEN];
    hex::decode_to_slice(value, &mut out).map_err(|e| bad(e.to_string()))?;
    // All zeros is what a debug-mode enclave reports; no build reproduces it.
    if out == [0u8; PCR_LEN] {
        return Err(bad(
            "all zeros (a debug-mode enclave, not a build)".to_owned()
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(body: &str) -> Vec<u8> {
        body.as_bytes().to_vec()
    }

    fn good() -> String {
        format!(
            r#"{{"image": "pay", "version": "1.0", "pcrs": {{"PCR0": "{}", "PCR1": "{}", "PCR2": "{}"}}}}"#,
            "01".repeat(48),
            "02".repeat(48),
            "03".repeat(48)
        )
    }

    #[test]
    fn accepts_the_documented_shape() {
        let s = parse(&doc(&good())).unwrap();
        assert_eq!(s.image, "pay");
        assert_eq!(s.version, "1.0");
        assert_eq!(s.pcrs[0], [1u8; 48]);
        assert_eq!(s.pcrs[2], [3u8; 48]);
    }

    #[test]
    fn refuses_everything_else() {
        let g = good();
        let cases = [
            g.replace("\"pay\"", "\"\""),
            g.replace("\"1.0\"", "\"1\\u0007\""),
            g.replace("\"image\"", "\"img\""),
            g.replace(r#""version": "1.0","#, ""),
            g.replace(
                r#""version": "1.0","#,
                r#""version": "1.0", "version": "2.0","#,
            ),
            g.replace(r#""version": "1.0","#, r#""version": "1.0", "extra": 1,"#),
            g.replace(r#""PCR2""#, r#""PCR3""#),
            g.replace(r#""PCR0""#, r#""pcr0""#),
            g.replace(&"01".repeat(48), &"01".repeat(47)),
            g.replace(&"01".repeat(48), &"0A".repeat(48)),
            g.replace(&"01".repeat(48), &"0g".repeat(48)),
            g.replace(&"01".repeat(48), &"00".repeat(48)),
            format!("{g} {{}}"),
            format!("[{g}]"),
            "null".to_owned(),
        ];
        for c in &cases {
            assert!(parse(c.as_bytes()).is_err(), "accepted {c}");
        }
        assert!(matches!(
            parse(&vec![b' '; MAX_STATEMENT + 1]),
            Err(StatementParseError::TooLarge(_))
        ));
    }
}
