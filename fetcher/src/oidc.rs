//! `OpenID` Connect ID tokens checked against keys fetched verifiably.
//!
//! The issuer's discovery document (`ISSUER/.well-known/openid-configuration`) names its
//! `jwks_uri`; the JWKS there holds the keys that sign its ID tokens. The fetcher fetches both
//! through the egress proxy and the quorum key signs each as a fetch proof, so the whole
//! decision can be re-made offline from the token and the two proofs ([`verify_offline`]).
//! Only RS256 and ES256 are accepted; the algorithm comes from the token but must match the
//! key's type (and the key's own `alg`, when it has one).

use aws_lc_rs::signature::{self as lc, UnparsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;
use tessera_core::fetch::{FetchProof, FetchRecord};
use tessera_core::manifest::QuorumPublicKey;

/// Largest ID token accepted.
pub const MAX_TOKEN: usize = 16 * 1024;

/// Clock skew tolerated for `exp`, `nbf` and `iat`, in seconds.
pub const LEEWAY: u64 = 60;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OidcError {
    #[error("discovery document: {0}")]
    Discovery(String),
    #[error("JWKS: {0}")]
    Jwks(String),
    #[error("malformed ID token: {0}")]
    Malformed(String),
    #[error("ID token algorithm {0:?} is not accepted (RS256 or ES256)")]
    Algorithm(String),
    #[error("no key in the JWKS matches the token (kid {0:?})")]
    NoKey(Option<String>),
    #[error("the ID token's signature does not verify")]
    Signature,
    #[error("ID token claim {claim}: {reason}")]
    Claim { claim: &'static str, reason: String },
    #[error("fetch proof of the {which}: {reason}")]
    Proof { which: &'static str, reason: String },
}

/// The discovery URL of `issuer` (an `https://` URL without a trailing slash).
#[must_use]
pub fn discovery_url(issuer: &str) -> String {
    format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    )
}

/// The `jwks_uri` of a fetched discovery document, after checking the document is a 200 JSON
/// object whose `issuer` is exactly `issuer`.
pub fn jwks_uri(discovery: &FetchRecord, issuer: &str) -> Result<String, OidcError> {
    let bad = |r: &str| OidcError::Discovery(r.to_owned());
    if discovery.status != 200 {
        return Err(bad(&format!("status {}", discovery.status)));
    }
    let doc: Value = serde_json::from_slice(&discovery.body).map_err(|e| bad(&e.to_string()))?;
    if doc.get("issuer").and_then(Value::as_str) != Some(issuer) {
        return Err(bad(&format!("its issuer is not {issuer:?}")));
    }
    let uri = doc
        .get("jwks_uri")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("no jwks_uri"))?;
    if !uri.starts_with("https://") {
        return Err(bad("jwks_uri is not an https:// URL"));
    }
    Ok(uri.to_owned())
}

fn b64(part: &str, what: &str) -> Result<Vec<u8>, OidcError> {
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| OidcError::Malformed(format!("{what} is not base64url")))
}

/// Checks `token` against the keys in `jwks` (the body of the fetched JWKS) and the claims
/// against `issuer`, `audience` and `now` (seconds since the epoch). Returns the claims.
pub fn verify_id_token(
    token: &str,
    jwks: &[u8],
    issuer: &str,
    audience: &str,
    now: u64,
) -> Result<Value, OidcError> {
    if token.len() > MAX_TOKEN {
        return Err(OidcError::Malformed(format!(
            "longer than {MAX_TOKEN} bytes"
        )));
    }
    let mut parts = token.split('.');
    let (Some(head64), Some(body64), Some(sig64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(OidcError::Malformed("not three dot-separated parts".into()));
    };
    let header: Value = serde_json::from_slice(&b64(head64, "header")?)
        .map_err(|e| OidcError::Malformed(format!("header: {e}")))?;
    let claims: Value = serde_json::from_slice(&b64(body64, "payload")?)
        .map_err(|e| OidcError::Malformed(format!("payload: {e}")))?;
    let signature = b64(sig64, "signature")?;
    if header.get("crit").is_some() {
        return Err(OidcError::Malformed(
            "critical header parameters are not supported".into(),
        ));
    }
    let alg = header.get("alg").and_then(Value::as_str).unwrap_or("");
    let kty = match alg {
        "RS256" => "RSA",
        "ES256" => "EC",
        other => return Err(OidcError::Algorithm(other.to_owned())),
    };
    let kid = header.get("kid").and_then(Value::as_str);
    let set: Value =
        serde_json::from_slice(jwks).map_err(|e| OidcError::Jwks(format!("not JSON: {e}")))?;
    let keys = set
        .get("keys")
        .and_then(Value::as_array)
        .ok_or_else(|| OidcError::Jwks("no keys array".into()))?;
    let candidates: Vec<&Value> = keys
        .iter()
        .filter(|k| k.get("kty").and_then(Value::as_str) == Some(kty))
        .filter(|k| kid.is_none() || k.get("kid").and_then(Value::as_str) == kid)
        .filter(|k| {
            k.get("use")
                .and_then(Value::as_str)
                .is_none_or(|u| u == "sig")
        })
        .filter(|k| {
            k.get("alg")
                .and_then(Value::as_str)
                .is_none_or(|a| a == alg)
        })
        .collect();
    // Without a kid, only an unambiguous key is used.
    let key = match candidates.as_slice() {
        [one] => *one,
        [first, ..] if kid.is_some() => *first,
        _ => return Err(OidcError::NoKey(kid.map(str::to_owned))),
    };
    let input = &token.as_bytes()[..head64.len() + 1 + body64.len()];
    let param = |name: &str| -> Result<Vec<u8>, OidcError> {
        let v = key
            .get(name)
            .and_then(Value::as_str)
            .ok_or_else(|| OidcError::Jwks(format!("key without {name}")))?;
        URL_SAFE_NO_PAD
            .decode(v)
            .map_err(|_| OidcError::Jwks(format!("key {name} is not base64url")))
    };
    let verified = if kty == "RSA" {
        let n = param("n")?;
        let e = param("e")?;
        lc::RsaPublicKeyComponents { n: &n, e: &e }
            .verify(&lc::RSA_PKCS1_2048_8192_SHA256, input, &signature)
            .is_ok()
    } else {
        if key.get("crv").and_then(Value::as_str) != Some("P-256") {
            return Err(OidcError::Jwks("EC key is not on P-256".into()));
        }
        let (x, y) = (param("x")?, param("y")?);
        if x.len() != 32 || y.len() != 32 {
            return Err(OidcError::Jwks("P-256 coordinates are 32 bytes".into()));
        }
        let mut point = vec![4u8];
        point.extend_from_slice(&x);
        point.extend_from_slice(&y);
        signature.len() == 64
            && UnparsedPublicKey::new(&lc::ECDSA_P256_SHA256_FIXED, &point)
                .verify(input, &signature)
                .is_ok()
    };
    if !verified {
        return Err(OidcError::Signature);
    }
    check_claims(&claims, issuer, audience, now)?;
    Ok(claims)
}

fn check_claims(claims: &Value, issuer: &str, audience: &str, now: u64) -> Result<(), OidcError> {
    let claim = |claim: &'static str, reason: String| OidcError::Claim { claim, reason };
    if claims.get("iss").and_then(Value::as_str) != Some(issuer) {
        return Err(claim("iss", format!("is not {issuer:?}")));
    }
    let aud_ok = match claims.get("aud") {
        Some(Value::String(a)) => a == audience,
        Some(Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(audience)),
        _ => false,
    };
    if !aud_ok {
        return Err(claim("aud", format!("does not include {audience:?}")));
    }
    let exp = claims
        .get("exp")
        .and_then(Value::as_u64)
        .ok_or_else(|| claim("exp", "missing or not a number".into()))?;
    if exp + LEEWAY <= now {
        return Err(claim("exp", format!("expired at {exp}, now is {now}")));
    }
    for name in ["nbf", "iat"] {
        if let Some(v) = claims.get(name) {
            let t = v
                .as_u64()
                .ok_or_else(|| claim(name, "not a number".into()))?;
            if t > now + LEEWAY {
                return Err(claim(name, format!("{t} is in the future (now {now})")));
            }
        }
    }
    Ok(())
}

/// The whole decision from a token and two fetch proofs: both proofs are signed by `quorum`,
/// the first is the issuer's discovery document and names the second's URL as its
/// `jwks_uri`, and the token verifies with a key from that JWKS at time `now`.
pub fn verify_offline(
    token: &str,
    issuer: &str,
    audience: &str,
    discovery: &FetchProof,
    jwks: &FetchProof,
    quorum: &QuorumPublicKey,
    now: u64,
) -> Result<Value, OidcError> {
    let proof = |which, e: &dyn std::fmt::Display| OidcError::Proof {
        which,
        reason: e.to_string(),
    };
    let d = discovery
        .verify(quorum)
        .map_err(|e| proof("discovery document", &e))?;
    let j = jwks.verify(quorum).map_err(|e| proof("JWKS", &e))?;
    if !same_url(&d.url, &discovery_url(issuer)) {
        return Err(proof(
            "discovery document",
            &format!("its URL is {}", d.url),
        ));
    }
    let uri = jwks_uri(d, issuer)?;
    if !same_url(&j.url, &uri) {
        return Err(proof(
            "JWKS",
            &format!("its URL {} is not the jwks_uri {uri}", j.url),
        ));
    }
    if j.status != 200 {
        return Err(OidcError::Jwks(format!("status {}", j.status)));
    }
    verify_id_token(token, &j.body, issuer, audience, now)
}

/// Whether two URLs name the same resource once normalised as the fetcher records them.
fn same_url(a: &str, b: &str) -> bool {
    match (
        crate::url::HttpsUrl::parse(a),
        crate::url::HttpsUrl::parse(b),
    ) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}
