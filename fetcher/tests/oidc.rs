//! The seed's use case end to end: an OIDC ID token checked inside the fetcher against the
//! issuer's JWKS, fetched verifiably (discovery document, then `jwks_uri`) through the real
//! egress proxy from a local OIDC-like HTTPS issuer whose test CA is pinned. Good RS256 and
//! ES256 tokens are accepted, and the decision is re-made offline from the two proofs; forged,
//! altered, expired, misaddressed and unsigned tokens are refused.

mod support;

use std::sync::{Arc, OnceLock};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair, RSA_PKCS1_SHA256, RsaKeyPair,
    RsaPublicKeyComponents,
};
use serde_json::json;
use support::{HttpsServer, STEP, TestCa, b64url, start_egress, start_fetcher};
use tessera_core::quorum::QuorumSeed;
use tessera_core::transport::Address;
use tessera_fetcher::app::{FetchAppRequest, FetchAppResponse, call};
use tessera_fetcher::oidc::{OidcError, verify_offline};

struct Keys {
    rsa: RsaKeyPair,
    ec: EcdsaKeyPair,
}

impl Keys {
    fn new() -> Self {
        Self {
            rsa: RsaKeyPair::generate(KeySize::Rsa2048).unwrap(),
            ec: EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap(),
        }
    }

    fn jwks(&self) -> serde_json::Value {
        let rsa = RsaPublicKeyComponents::<Vec<u8>>::from(self.rsa.public_key());
        let point = self.ec.public_key().as_ref();
        json!({"keys": [
            {"kty": "RSA", "kid": "rsa-1", "use": "sig", "alg": "RS256",
             "n": b64url(&rsa.n), "e": b64url(&rsa.e)},
            {"kty": "EC", "kid": "ec-1", "crv": "P-256",
             "x": b64url(&point[1..33]), "y": b64url(&point[33..65])},
        ]})
    }

    /// A compact JWS over `claims` with `header`, signed by this issuer's key for its `alg`.
    fn token(&self, header: &serde_json::Value, claims: &serde_json::Value) -> String {
        let input = format!(
            "{}.{}",
            b64url(header.to_string().as_bytes()),
            b64url(claims.to_string().as_bytes())
        );
        let rng = SystemRandom::new();
        let sig = match header["alg"].as_str() {
            Some("RS256") => {
                let mut sig = vec![0u8; self.rsa.public_modulus_len()];
                self.rsa
                    .sign(&RSA_PKCS1_SHA256, &rng, input.as_bytes(), &mut sig)
                    .unwrap();
                sig
            }
            Some("ES256") => self
                .ec
                .sign(&rng, input.as_bytes())
                .unwrap()
                .as_ref()
                .to_vec(),
            _ => Vec::new(),
        };
        format!("{input}.{}", b64url(&sig))
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

struct Issuer {
    url: String,
    keys: Keys,
    _server: HttpsServer,
}

/// A local OIDC-like issuer: discovery document and JWKS over HTTPS.
fn issuer(ca: &TestCa) -> Issuer {
    let keys = Keys::new();
    let jwks = keys.jwks().to_string().into_bytes();
    let base: Arc<OnceLock<String>> = Arc::new(OnceLock::new());
    let b = Arc::clone(&base);
    let server = HttpsServer::start(
        ca,
        &["localhost"],
        Arc::new(move |path: &str| {
            let base = b.get().unwrap();
            match path {
                "/.well-known/openid-configuration" => (
                    200,
                    "application/json",
                    json!({"issuer": base, "jwks_uri": format!("{base}/jwks"),
                           "id_token_signing_alg_values_supported": ["RS256", "ES256"]})
                    .to_string()
                    .into_bytes(),
                ),
                "/jwks" => (200, "application/json", jwks.clone()),
                _ => (404, "text/plain", b"not found".to_vec()),
            }
        }),
    );
    let url = format!("https://localhost:{}", server.port());
    base.set(url.clone()).unwrap();
    Issuer {
        url,
        keys,
        _server: server,
    }
}

fn verify(app: &Address, issuer: &str, audience: &str, token: &str) -> FetchAppResponse {
    call(
        app,
        &FetchAppRequest::VerifyIdToken {
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            token: token.to_owned(),
        },
        STEP * 2,
    )
    .expect("the fetcher answers")
}

fn refused(resp: &FetchAppResponse, needle: &str) {
    match resp {
        FetchAppResponse::Error { kind, message } => {
            assert_eq!(kind, "oidc", "{message}");
            assert!(message.contains(needle), "{message:?} lacks {needle:?}");
        }
        other => panic!("expected a refusal ({needle}), got {other:?}"),
    }
}

#[test]
fn id_tokens_are_checked_against_keys_fetched_verifiably() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("Tessera OIDC test CA");
    let iss = issuer(&ca);
    let dest = iss.url.trim_start_matches("https://").to_owned();
    let (_egress, proxy) = start_egress(dir.path(), std::slice::from_ref(&dest), &[]);
    let seed = QuorumSeed::generate();
    let (_f, app) = start_fetcher(
        dir.path(),
        "fetcher",
        &proxy,
        std::slice::from_ref(&dest),
        &ca,
        &seed,
        &[],
    );
    let quorum = seed.public_key();
    let claims = json!({"iss": iss.url, "aud": "tessera-client", "sub": "alice",
                        "exp": now() + 600, "iat": now()});

    for (alg, kid) in [("RS256", "rsa-1"), ("ES256", "ec-1")] {
        let header = json!({"alg": alg, "kid": kid, "typ": "JWT"});
        let token = iss.keys.token(&header, &claims);
        let resp = verify(&app, &iss.url, "tessera-client", &token);
        let FetchAppResponse::IdTokenVerified {
            claims: got,
            discovery,
            jwks,
        } = resp
        else {
            panic!("{alg} token refused: {resp:?}");
        };
        let got: serde_json::Value = serde_json::from_str(&got).unwrap();
        assert_eq!(got["sub"], "alice");
        // Offline, from the token and the two proofs alone.
        let offline = verify_offline(
            &token,
            &iss.url,
            "tessera-client",
            &discovery,
            &jwks,
            &quorum,
            now(),
        )
        .unwrap();
        assert_eq!(offline["sub"], "alice");
        // The proofs do not stand in for each other, nor verify under another key.
        assert!(matches!(
            verify_offline(
                &token,
                &iss.url,
                "tessera-client",
                &jwks,
                &discovery,
                &quorum,
                now()
            ),
            Err(OidcError::Proof { .. })
        ));
        let other = QuorumSeed::generate().public_key();
        assert!(matches!(
            verify_offline(
                &token,
                &iss.url,
                "tessera-client",
                &discovery,
                &jwks,
                &other,
                now()
            ),
            Err(OidcError::Proof { .. })
        ));
        // Later than the token's expiry, the same proofs refuse it.
        assert!(matches!(
            verify_offline(
                &token,
                &iss.url,
                "tessera-client",
                &discovery,
                &jwks,
                &quorum,
                now() + 3600
            ),
            Err(OidcError::Claim { claim: "exp", .. })
        ));
    }

    let rs = json!({"alg": "RS256", "kid": "rsa-1"});
    // Forged: signed by a key the issuer never published, under its kid.
    let forger = Keys::new();
    refused(
        &verify(
            &app,
            &iss.url,
            "tessera-client",
            &forger.token(&rs, &claims),
        ),
        "signature does not verify",
    );
    let es = json!({"alg": "ES256", "kid": "ec-1"});
    refused(
        &verify(
            &app,
            &iss.url,
            "tessera-client",
            &forger.token(&es, &claims),
        ),
        "signature does not verify",
    );
    // Altered: the payload of a good token swapped for another subject.
    let good = iss.keys.token(&rs, &claims);
    let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
    let mut evil = claims.clone();
    evil["sub"] = json!("mallory");
    parts[1] = b64url(evil.to_string().as_bytes());
    refused(
        &verify(&app, &iss.url, "tessera-client", &parts.join(".")),
        "signature does not verify",
    );
    // Unsigned, and an algorithm confusion attempt.
    refused(
        &verify(
            &app,
            &iss.url,
            "tessera-client",
            &iss.keys.token(&json!({"alg": "none"}), &claims),
        ),
        "not accepted",
    );
    refused(
        &verify(
            &app,
            &iss.url,
            "tessera-client",
            &iss.keys
                .token(&json!({"alg": "HS256", "kid": "rsa-1"}), &claims),
        ),
        "not accepted",
    );
    // Good signatures over bad claims.
    let mut expired = claims.clone();
    expired["exp"] = json!(now() - 3600);
    refused(
        &verify(
            &app,
            &iss.url,
            "tessera-client",
            &iss.keys.token(&rs, &expired),
        ),
        "exp",
    );
    refused(&verify(&app, &iss.url, "another-client", &good), "aud");
    let mut other_iss = claims.clone();
    other_iss["iss"] = json!("https://evil.test");
    refused(
        &verify(
            &app,
            &iss.url,
            "tessera-client",
            &iss.keys.token(&rs, &other_iss),
        ),
        "iss",
    );
    // A kid the JWKS does not have.
    refused(
        &verify(
            &app,
            &iss.url,
            "tessera-client",
            &iss.keys
                .token(&json!({"alg": "RS256", "kid": "nope"}), &claims),
        ),
        "no key",
    );
    // An issuer the discovery document does not name (its URL with a trailing path).
    let resp = verify(
        &app,
        &format!("{}/tenant", iss.url),
        "tessera-client",
        &good,
    );
    assert!(
        matches!(&resp, FetchAppResponse::Error { message, .. } if message.contains("discovery document")
            || message.contains("status 404")),
        "{resp:?}"
    );
}
