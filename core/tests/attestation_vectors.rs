//! Every document in the shared Nitro corpus gets the verdict its MANIFEST.json lists, validated
//! at the document's own time with debug enclaves allowed; the real ones are also refused at a
//! present-day validation time and, when they come from debug enclaves, under the default policy.

use std::path::PathBuf;

use tessera_core::attestation::{self, AttestationError, Policy, TrustAnchor};
use time::OffsetDateTime;

fn corpus() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/vectors/nitro"
    ))
}

struct Vector {
    file: String,
    kind: String,
    trust_root: String,
    verdict: String,
}

fn vectors() -> Vec<Vector> {
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(corpus().join("MANIFEST.json")).unwrap()).unwrap();
    manifest["vectors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| Vector {
            file: v["file"].as_str().unwrap().to_owned(),
            kind: v["kind"].as_str().unwrap().to_owned(),
            trust_root: v["trust_root"].as_str().unwrap().to_owned(),
            verdict: v["verdict_doc_time_max1024"].as_str().unwrap().to_owned(),
        })
        .collect()
}

fn anchor(v: &Vector) -> TrustAnchor {
    TrustAnchor::from_pem(&std::fs::read(corpus().join(&v.trust_root)).unwrap()).unwrap()
}

/// Validation at the document's own timestamp, or at an arbitrary time when even that cannot
/// be read (the document is then refused before any time matters).
fn at_doc_time(doc: &[u8]) -> OffsetDateTime {
    attestation::unverified_timestamp(doc).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

fn run(v: &Vector, policy: &Policy) -> Result<attestation::VerifiedAttestation, AttestationError> {
    let doc = std::fs::read(corpus().join(&v.file)).unwrap();
    attestation::verify(&doc, &anchor(v), at_doc_time(&doc), policy)
}

#[test]
fn every_vector_gets_its_manifest_verdict() {
    let mut failures = Vec::new();
    let all = vectors();
    assert!(all.len() >= 50, "corpus has {} vectors", all.len());
    for v in &all {
        let result = run(v, &Policy::new().allow_debug());
        let ok = match (&result, v.verdict.as_str()) {
            (Ok(_), "VALID") => true,
            (Err(e), verdict) if verdict.starts_with("INVALID") => {
                let expected = expected_reason(&v.file);
                let msg = e.to_string();
                if msg.contains(expected) {
                    true
                } else {
                    failures.push(format!("{}: error {msg:?} lacks {expected:?}", v.file));
                    continue;
                }
            }
            _ => false,
        };
        if !ok {
            failures.push(format!(
                "{}: expected {}, got {:?}",
                v.file,
                v.verdict,
                result.map(|_| "VALID")
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The part of Tessera's message that names the same failure as the manifest's reference verdict.
fn expected_reason(file: &str) -> &'static str {
    let name = file.rsplit('/').next().unwrap();
    match name {
        "BAD_DERIVED_alg_es256_aws-samples_att_doc_sample.cbor" => "protected header is h'a10126'",
        "BAD_DERIVED_sig_der_encoded_aws-samples_att_doc_sample.cbor" => "signature is 103 bytes",
        "BAD_DERIVED_truncated_aws-samples_att_doc_sample.cbor" => "premature end",
        "BAD_base-nitro-validator_real_as_pasted_missing_3_bytes.cbor" => "malformed CBOR",
        "BAD_blocky-nitrite_selfsigned_attestation.cbor" => "unprotected header not a map",
        "SYNTH_bad_cabundle_empty.cbor" => "cabundle is empty",
        "SYNTH_bad_chain_missing_intermediate.cbor" => {
            "certificate 2 (CN=i-0123456789abcdef0.synthetic.nitro-enclaves): issuer/subject mismatch"
        }
        "SYNTH_bad_chain_order_reversed.cbor" => "cabundle[0] is not the pinned root",
        "SYNTH_bad_digest_SHA256.cbor" => "digest 'SHA256' is not SHA384",
        "SYNTH_bad_duplicate_pcrs_key.cbor" => "duplicate key",
        "SYNTH_bad_expired_leaf_ts_after_notafter.cbor" => {
            "certificate 4 (CN=i-0123456789abcdef0-enc0123456789abcdef.synthetic) expired at 2025-01-01T15:00:00Z (validation time 2025-01-01T16:00:00Z)"
        }
        "SYNTH_bad_leaf_is_ca.cbor" => "leaf is a CA",
        "SYNTH_bad_leaf_sig_alg_ecdsa_sha256.cbor" => {
            "certificate 4 (CN=leaf-sha256.synthetic): sig alg 1.2.840.10045.4.3.2 not ecdsa-with-SHA384"
        }
        "SYNTH_bad_missing_certificate.cbor" => "missing mandatory field certificate",
        "SYNTH_bad_module_id_empty.cbor" => "module_id is empty",
        "SYNTH_bad_pathlen_violation.cbor" => {
            "certificate 1 (CN=i1.synthetic.nitro-enclaves): pathLenConstraint 2 violated"
        }
        "SYNTH_bad_pcr_index_32.cbor" => "index 32 is not in 0..=31",
        "SYNTH_bad_pcr_key_text.cbor" => "index '0' is text",
        "SYNTH_bad_pcr_len_47.cbor" => "PCR5 is 47 bytes",
        "SYNTH_bad_pcrs_empty.cbor" => "pcrs is empty",
        "SYNTH_bad_timestamp_zero.cbor" => "timestamp is 0",
        "SYNTH_bad_ts_before_leaf_notbefore.cbor" => {
            "certificate 4 (CN=i-0123456789abcdef0-enc0123456789abcdef.synthetic) is not valid before 2025-01-01T11:59:00Z (validation time 2025-01-01T11:00:00Z)"
        }
        "SYNTH_bad_user_data_1025.cbor" => "user_data length 1025 is not in [0, 1024]",
        // Bad signatures over otherwise sound documents.
        _ => "COSE signature invalid",
    }
}

#[test]
fn real_documents_are_refused_today_with_an_expired_certificate() {
    let today = time::macros::datetime!(2026-11-21 12:00 UTC);
    for v in vectors().iter().filter(|v| v.kind == "REAL") {
        let doc = std::fs::read(corpus().join(&v.file)).unwrap();
        let err =
            attestation::verify(&doc, &anchor(v), today, &Policy::new().allow_debug()).unwrap_err();
        assert!(
            matches!(err, AttestationError::CertificateExpired { .. }),
            "{}: {err}",
            v.file
        );
        assert!(err.to_string().contains("expired at"), "{}: {err}", v.file);
    }
}

#[test]
fn debug_documents_are_refused_by_default() {
    let mut debug = 0;
    for v in vectors().iter().filter(|v| v.verdict == "VALID") {
        let verified = run(v, &Policy::new().allow_debug()).unwrap();
        let strict = run(v, &Policy::new());
        if verified.is_debug() {
            debug += 1;
            let err = strict.unwrap_err();
            assert_eq!(err, AttestationError::DebugMode, "{}", v.file);
            assert!(err.to_string().contains("debug mode"));
            assert!(err.is_policy());
        } else {
            strict.unwrap_or_else(|e| panic!("{}: {e}", v.file));
        }
    }
    assert!(debug >= 5, "only {debug} debug documents in the corpus");
}

#[test]
fn the_shipped_root_is_the_pinned_aws_root() {
    let shipped = attestation::aws_nitro_root_g1();
    assert_eq!(shipped.sha256(), attestation::AWS_NITRO_ROOT_G1_SHA256);
    assert_eq!(
        hex::encode_upper(shipped.sha256()),
        "641A0321A3E244EFE456463195D606317ED7CDCC3C1756E09893F3C68F79BB5B"
    );
    let from_pem =
        TrustAnchor::from_pem(&std::fs::read(corpus().join("aws_nitro_root_g1.pem")).unwrap())
            .unwrap();
    assert_eq!(from_pem.sha256(), shipped.sha256());
    assert_eq!(shipped.subject(), "CN=aws.nitro-enclaves");
}

#[test]
fn a_real_document_exposes_its_fields() {
    let doc = std::fs::read(corpus().join("aws-samples-iot-validate_att_doc_sample.cbor")).unwrap();
    let at = attestation::unverified_timestamp(&doc).unwrap();
    let v = attestation::verify(
        &doc,
        attestation::aws_nitro_root_g1(),
        at,
        &Policy::new().allow_debug(),
    )
    .unwrap();
    assert_eq!(v.module_id(), "i-0f6f8b2fe86b3853c-enc018728132a5a6b2c");
    assert_eq!(v.timestamp_ms(), 1_680_004_560_937);
    assert_eq!(v.digest(), "SHA384");
    assert_eq!(v.validated_at(), at);
    assert!(v.pcrs().values().all(|p| p.len() == 48));
    assert_eq!(v.user_data(), None);
    assert_eq!(v.public_key(), None);
    assert_eq!(v.nonce(), None);
    let certs = v.certificates();
    assert_eq!(certs.len(), v.cabundle().len() + 1);
    assert!(certs[0].subject.contains("CN=aws.nitro-enclaves"));
    assert_eq!(v.root_sha256(), attestation::AWS_NITRO_ROOT_G1_SHA256);
}
