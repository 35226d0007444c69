//! The Nitro attestation vectors in `tests/vectors/nitro/`: every real AWS document and every
//! generated one gets the verdict `MANIFEST.json` states, validated at the document's own time
//! with debug enclaves allowed; the real ones are also refused at a present-day validation time
//! and, when they come from debug enclaves, under the default policy.
//!
//! The team's reference corpus `../shared/vectors/nitro`, where it sits beside a checkout, can
//! be checked too with `--ignored`; the in-repository vectors never depend on it.

mod attestation_support;

use std::path::{Path, PathBuf};

use attestation_support::Pki;
use attestation_support::recipes::{self, Generated};
use sha2::{Digest, Sha256};
use tessera_core::attestation::{self, AttestationError, Policy, TrustAnchor};
use time::OffsetDateTime;

fn dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/nitro"))
}

fn manifest() -> serde_json::Value {
    let path = dir().join("MANIFEST.json");
    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
}

fn read(rel: &str) -> Vec<u8> {
    std::fs::read(dir().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn aws_root() -> TrustAnchor {
    TrustAnchor::from_pem(&read(manifest()["trust_root"].as_str().unwrap())).unwrap()
}

struct Real {
    file: String,
    timestamp_ms: u64,
    module_id: String,
    debug: bool,
}

fn real() -> Vec<Real> {
    manifest()["real"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            let file = v["file"].as_str().unwrap().to_owned();
            let bytes = read(&file);
            assert_eq!(
                hex::encode(Sha256::digest(&bytes)),
                v["sha256"].as_str().unwrap(),
                "{file} differs from the document the manifest describes"
            );
            assert_eq!(v["verdict"], "VALID", "{file}");
            Real {
                file,
                timestamp_ms: v["timestamp_ms"].as_u64().unwrap(),
                module_id: v["module_id"].as_str().unwrap().to_owned(),
                debug: v["debug"].as_bool().unwrap(),
            }
        })
        .collect()
}

/// Validation at the document's own timestamp, or at an arbitrary time when even that cannot
/// be read (the document is then refused before any time matters).
fn at_doc_time(doc: &[u8]) -> OffsetDateTime {
    attestation::unverified_timestamp(doc).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

fn verify_at_doc_time(
    doc: &[u8],
    anchor: &TrustAnchor,
    policy: &Policy,
) -> Result<attestation::VerifiedAttestation, AttestationError> {
    attestation::verify(doc, anchor, at_doc_time(doc), policy)
}

#[test]
fn every_real_document_verifies_at_its_own_time() {
    let root = aws_root();
    let all = real();
    assert_eq!(all.len(), 17, "the manifest lists 17 real documents");
    for v in &all {
        let doc = read(&v.file);
        let verified = verify_at_doc_time(&doc, &root, &Policy::new().allow_debug())
            .unwrap_or_else(|e| panic!("{}: {e}", v.file));
        assert_eq!(verified.timestamp_ms(), v.timestamp_ms, "{}", v.file);
        assert_eq!(verified.module_id(), v.module_id, "{}", v.file);
        assert_eq!(verified.is_debug(), v.debug, "{}: debug", v.file);
        assert_eq!(
            verified.root_sha256(),
            attestation::AWS_NITRO_ROOT_G1_SHA256,
            "{}",
            v.file
        );
    }
}

#[test]
fn every_generated_vector_gets_its_manifest_verdict() {
    let m = manifest();
    let base = read(m["generated_base"].as_str().unwrap());
    let other = read(m["generated_other"].as_str().unwrap());
    let aws = aws_root();
    let pki = Pki::new();
    let listed: Vec<&str> = m["generated"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        listed,
        recipes::RECIPES,
        "MANIFEST.json and recipes.rs must list the same generated vectors"
    );
    let mut failures = Vec::new();
    let (mut valid, mut invalid) = (0, 0);
    for v in m["generated"].as_array().unwrap() {
        let name = v["name"].as_str().unwrap();
        let Generated { doc, anchor } = recipes::generate(name, &base, &other, &aws, &pki);
        let result = verify_at_doc_time(&doc, &anchor, &Policy::new().allow_debug());
        match (v["verdict"].as_str().unwrap(), &result) {
            ("VALID", Ok(_)) => valid += 1,
            ("INVALID", Err(e)) => {
                let reason = v["reason"].as_str().unwrap();
                assert!(
                    !reason.is_empty(),
                    "{name}: an INVALID verdict needs a reason"
                );
                if e.to_string().contains(reason) {
                    invalid += 1;
                } else {
                    failures.push(format!("{name}: error {e:?} ({e}) lacks {reason:?}"));
                }
            }
            (verdict, _) => failures.push(format!(
                "{name}: expected {verdict}, got {:?}",
                result
                    .as_ref()
                    .map(|_| "VALID")
                    .map_err(ToString::to_string)
            )),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        valid >= 10 && invalid >= 20,
        "{valid} valid, {invalid} invalid"
    );
}

#[test]
fn generated_vectors_differ_from_their_base() {
    // A derived vector equal to its base would pass or fail for the base's reasons, not its own.
    let m = manifest();
    let base = read(m["generated_base"].as_str().unwrap());
    let other = read(m["generated_other"].as_str().unwrap());
    let aws = aws_root();
    let pki = Pki::new();
    for name in recipes::RECIPES
        .iter()
        .filter(|n| n.starts_with("derived_") && **n != "derived_wrong_root")
    {
        let g = recipes::generate(name, &base, &other, &aws, &pki);
        assert_ne!(g.doc, base, "{name}");
    }
}

#[test]
fn real_documents_are_refused_today_with_an_expired_certificate() {
    let today = time::macros::datetime!(2026-11-21 12:00 UTC);
    let root = aws_root();
    for v in real() {
        let doc = read(&v.file);
        let err =
            attestation::verify(&doc, &root, today, &Policy::new().allow_debug()).unwrap_err();
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
    let root = aws_root();
    let mut debug = 0;
    for v in real() {
        let doc = read(&v.file);
        let strict = verify_at_doc_time(&doc, &root, &Policy::new());
        if v.debug {
            debug += 1;
            let err = strict.unwrap_err();
            assert_eq!(err, AttestationError::DebugMode, "{}", v.file);
            assert!(err.to_string().contains("debug mode"));
            assert!(err.is_policy());
        } else {
            strict.unwrap_or_else(|e| panic!("{}: {e}", v.file));
        }
    }
    assert!(
        debug >= 5,
        "only {debug} debug documents among the real ones"
    );
}

#[test]
fn the_shipped_root_is_the_pinned_aws_root() {
    let shipped = attestation::aws_nitro_root_g1();
    assert_eq!(shipped.sha256(), attestation::AWS_NITRO_ROOT_G1_SHA256);
    assert_eq!(
        hex::encode_upper(shipped.sha256()),
        "641A0321A3E244EFE456463195D606317ED7CDCC3C1756E09893F3C68F79BB5B"
    );
    assert_eq!(aws_root().sha256(), shipped.sha256());
    assert_eq!(shipped.subject(), "CN=aws.nitro-enclaves");
}

#[test]
fn a_real_document_exposes_its_fields() {
    let doc = read("real/aws-samples-iot-validate_att_doc_sample.cbor");
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

/// The team's reference corpus, when it sits beside the checkout: each document's verdict there
/// (VALID or INVALID at its own time, `user_data` up to 1024 bytes) is Tessera's too.
#[test]
#[ignore = "reads the reference corpus beside the checkout (../shared/vectors/nitro)"]
fn the_reference_corpus_beside_the_checkout_agrees() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/vectors/nitro");
    let bytes = std::fs::read(corpus.join("MANIFEST.json")).unwrap_or_else(|e| {
        panic!("no reference corpus at {}: {e}", corpus.display());
    });
    let m: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    let mut failures = Vec::new();
    let vectors = m["vectors"].as_array().unwrap();
    for v in vectors {
        let file = v["file"].as_str().unwrap();
        let doc = std::fs::read(corpus.join(file)).unwrap();
        let root = std::fs::read(corpus.join(v["trust_root"].as_str().unwrap())).unwrap();
        let anchor = TrustAnchor::from_pem(&root).unwrap();
        let ok = verify_at_doc_time(&doc, &anchor, &Policy::new().allow_debug()).is_ok();
        let want = v["verdict_doc_time_max1024"].as_str().unwrap() == "VALID";
        if ok != want {
            failures.push(format!("{file}: valid {ok}, reference says {want}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    eprintln!("reference corpus: {} documents agree", vectors.len());
}

/// Writes every generated vector to the folder named by `TESSERA_WRITE_VECTORS` (the fuzz smoke
/// run seeds its attestation corpus with them):
/// `cargo test -p tessera-core --test attestation_vectors -- --ignored`.
#[test]
#[ignore = "writes files; run by scripts/fuzz-smoke.sh"]
fn write_generated_vectors() {
    let out =
        PathBuf::from(std::env::var_os("TESSERA_WRITE_VECTORS").expect("TESSERA_WRITE_VECTORS"));
    std::fs::create_dir_all(&out).unwrap();
    let m = manifest();
    let base = read(m["generated_base"].as_str().unwrap());
    let other = read(m["generated_other"].as_str().unwrap());
    let (aws, pki) = (aws_root(), Pki::new());
    for name in recipes::RECIPES {
        let g = recipes::generate(name, &base, &other, &aws, &pki);
        std::fs::write(out.join(format!("{name}.cbor")), g.doc).unwrap();
    }
}

/// Rewrites the committed synthetic vectors (`tests/vectors/nitro/synthetic/`) with fresh keys:
/// `cargo test -p tessera-core --test attestation_vectors -- --ignored write_committed`. The
/// golden tests of `tessera attest verify` name the new root's SHA-256 and must be updated too.
#[test]
#[ignore = "rewrites committed files"]
fn write_committed_synthetic_vectors() {
    let out = dir().join("synthetic");
    std::fs::create_dir_all(&out).unwrap();
    let (root_pem, doc) = recipes::committed_synthetic();
    std::fs::write(out.join("synthetic_root.pem"), root_pem).unwrap();
    std::fs::write(out.join("SYNTH_valid.cbor"), &doc).unwrap();
    let mut flipped = doc.clone();
    let last = flipped.len() - 1;
    flipped[last - 10] ^= 0x01;
    std::fs::write(out.join("SYNTH_bad_signature_bit_flipped.cbor"), flipped).unwrap();
}

/// The committed synthetic vectors get the verdicts the manifest states.
#[test]
fn the_committed_synthetic_vectors_get_their_verdicts() {
    let m = manifest();
    let committed = m["committed_synthetic"].as_array().unwrap();
    assert!(committed.len() >= 2);
    for v in committed {
        let file = v["file"].as_str().unwrap();
        let anchor = TrustAnchor::from_pem(&read(v["trust_root"].as_str().unwrap())).unwrap();
        let result = verify_at_doc_time(&read(file), &anchor, &Policy::new());
        if v["verdict"] == "VALID" {
            let ok = result.unwrap_or_else(|e| panic!("{file}: {e}"));
            assert_eq!(ok.timestamp_ms(), attestation_support::T_MS, "{file}");
            for (i, value) in recipes::COMMITTED_PCRS {
                assert_eq!(hex::encode(&ok.pcrs()[&i]), value, "{file} PCR{i}");
            }
        } else {
            assert_eq!(v["verdict"], "INVALID", "{file}");
            let e = result.err().unwrap_or_else(|| panic!("{file}: verified"));
            let reason = v["reason"].as_str().unwrap();
            assert!(
                e.to_string().contains(reason),
                "{file}: {e} lacks {reason:?}"
            );
        }
    }
}

/// Every generated and real document, valid and invalid, through one [`attestation::FleetVerifier`]
/// per trust anchor and through [`attestation::verify_without_policy`], in shuffled orders, at
/// each document's own time and two years later (when cached intermediates have expired): the
/// verdicts are the same, error for error; only the speed may differ.
#[test]
fn a_fleet_verifier_gives_the_verdict_of_the_single_verifier_for_every_document() {
    let m = manifest();
    let base = read(m["generated_base"].as_str().unwrap());
    let other = read(m["generated_other"].as_str().unwrap());
    let aws = aws_root();
    let pki = Pki::new();
    let mut docs: Vec<(Vec<u8>, TrustAnchor)> = recipes::RECIPES
        .iter()
        .map(|name| {
            let g = recipes::generate(name, &base, &other, &aws, &pki);
            (g.doc, g.anchor)
        })
        .collect();
    docs.extend(real().iter().map(|r| (read(&r.file), aws_root())));
    // One verifier per distinct anchor, as a user would keep one per root.
    let mut anchors: Vec<TrustAnchor> = Vec::new();
    let anchor_of: Vec<usize> = docs
        .iter()
        .map(|(_, a)| {
            anchors
                .iter()
                .position(|k| k.sha256() == a.sha256())
                .unwrap_or_else(|| {
                    anchors.push(a.clone());
                    anchors.len() - 1
                })
        })
        .collect();
    let mut cases: Vec<(usize, OffsetDateTime)> = Vec::new();
    for (i, (doc, _)) in docs.iter().enumerate() {
        let at = at_doc_time(doc);
        cases.push((i, at));
        cases.push((i, at + time::Duration::days(730)));
    }
    let verdict = |r: Result<attestation::VerifiedAttestation, AttestationError>| {
        r.map(|v| v.module_id().to_owned())
            .map_err(|e| e.to_string())
    };
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut kept_any = false;
    for round in 0..6 {
        // Fisher-Yates with a fixed-seed xorshift: reproducible orders.
        for i in (1..cases.len()).rev() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            cases.swap(i, usize::try_from(state % (i as u64 + 1)).unwrap());
        }
        let fleets: Vec<attestation::FleetVerifier<'_>> = anchors
            .iter()
            .map(|a| attestation::FleetVerifier::new(a, 256))
            .collect();
        for &(i, at) in &cases {
            let (doc, anchor) = &docs[i];
            let single = verdict(attestation::verify_without_policy(doc, anchor, at));
            let fleet = verdict(fleets[anchor_of[i]].verify_without_policy(doc, at));
            assert_eq!(fleet, single, "round {round}, document {i} at {at}");
        }
        kept_any |= fleets.iter().any(|f| f.kept() > 0);
    }
    assert!(
        kept_any,
        "no intermediate was ever kept: the cache was not exercised"
    );
}

/// A document whose chain verifies but whose COSE signature does not leaves nothing behind, and
/// a small capacity holds.
#[test]
fn a_fleet_verifier_keeps_nothing_from_a_document_that_failed() {
    let m = manifest();
    let base = read(m["generated_base"].as_str().unwrap());
    let other = read(m["generated_other"].as_str().unwrap());
    let aws = aws_root();
    let pki = Pki::new();
    let flipped = recipes::generate("derived_signature_bit_flipped", &base, &other, &aws, &pki);
    let fleet = attestation::FleetVerifier::new(&aws, 2);
    assert!(
        fleet
            .verify_without_policy(&flipped.doc, at_doc_time(&flipped.doc))
            .is_err()
    );
    assert_eq!(fleet.kept(), 0);
    fleet
        .verify_without_policy(&base, at_doc_time(&base))
        .unwrap();
    assert_eq!(fleet.kept(), 2, "three CA links checked, two kept");
}
