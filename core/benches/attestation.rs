//! Time per verification of one real Nitro attestation document, for Tessera and for the peers a
//! user would pick instead, on the same document in the same run, plus the floor: the five P-384
//! signature checks alone. Results and method are in docs/attestation.md.

use std::hint::black_box;
use std::time::Duration;

use aws_lc_rs::signature::{ECDSA_P384_SHA384_ASN1, ECDSA_P384_SHA384_FIXED, UnparsedPublicKey};
use aws_nitro_enclaves_cose::CoseSign1;
use aws_nitro_enclaves_cose::crypto::{Hash, MessageDigest, SignatureAlgorithm, SigningPublicKey};
use aws_nitro_enclaves_cose::error::CoseError;
use criterion::{Criterion, criterion_group};
use rustls_pki_types::{CertificateDer, UnixTime};
use sha2::{Digest, Sha384};
use tessera_core::attestation::{self, Policy};
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, X509Certificate};

const DOC: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/vectors/nitro/real/aws-samples-iot-validate_att_doc_sample.cbor"
));

/// The inputs of the five signature checks, extracted once: four certificate signatures (each
/// CA over the next certificate's TBS) and the COSE signature over the `Sig_structure`.
struct Floor {
    certs: Vec<(Vec<u8>, Vec<u8>, Vec<u8>)>,
    cose: (Vec<u8>, Vec<u8>, Vec<u8>),
}

fn floor_inputs(doc: &attestation::VerifiedAttestation) -> Floor {
    let ders: Vec<Vec<u8>> = doc
        .cabundle()
        .iter()
        .cloned()
        .chain(std::iter::once(doc.certificate().to_vec()))
        .collect();
    let parsed: Vec<X509Certificate<'_>> = ders
        .iter()
        .map(|d| X509Certificate::from_der(d).unwrap().1)
        .collect();
    let key = |c: &X509Certificate<'_>| c.public_key().subject_public_key.data.to_vec();
    let certs = parsed
        .windows(2)
        .map(|w| {
            (
                key(&w[0]),
                w[1].tbs_certificate.as_ref().to_vec(),
                w[1].signature_value.data.to_vec(),
            )
        })
        .collect();
    let sign1 = CoseSign1::from_bytes(DOC).unwrap();
    let (_, payload) = sign1.get_protected_and_payload::<Sha384Hash>(None).unwrap();
    let mut message = vec![0x84, 0x6a];
    message.extend_from_slice(b"Signature1");
    message.extend_from_slice(&[0x44, 0xa1, 0x01, 0x38, 0x22, 0x40, 0x59]);
    message.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    message.extend_from_slice(&payload);
    let signature = DOC[DOC.len() - 96..].to_vec();
    Floor {
        certs,
        cose: (key(parsed.last().unwrap()), message, signature),
    }
}

/// SHA-384 for aws-nitro-enclaves-cose, which leaves hashing to the caller without OpenSSL.
struct Sha384Hash;

impl Hash for Sha384Hash {
    fn hash(digest: MessageDigest, data: &[u8]) -> Result<Vec<u8>, CoseError> {
        match digest {
            MessageDigest::Sha384 => Ok(Sha384::digest(data).to_vec()),
            _ => Err(CoseError::UnsupportedError("only SHA-384".into())),
        }
    }
}

/// The leaf's P-384 key for aws-nitro-enclaves-cose, verified with aws-lc-rs.
struct LeafKey(Vec<u8>);

impl SigningPublicKey for LeafKey {
    fn get_parameters(&self) -> Result<(SignatureAlgorithm, MessageDigest), CoseError> {
        Ok((SignatureAlgorithm::ES384, MessageDigest::Sha384))
    }

    fn verify(&self, digest: &[u8], signature: &[u8]) -> Result<bool, CoseError> {
        let digest =
            aws_lc_rs::digest::Digest::import_less_safe(digest, &aws_lc_rs::digest::SHA384)
                .map_err(|_| CoseError::UnsupportedError("digest".into()))?;
        Ok(UnparsedPublicKey::new(&ECDSA_P384_SHA384_FIXED, &self.0)
            .verify_digest(&digest, signature)
            .is_ok())
    }
}

static ALGS: &[&dyn rustls_pki_types::SignatureVerificationAlgorithm] =
    &[webpki::aws_lc_rs::ECDSA_P384_SHA384];

/// What a user assembles from the usual crates: aws-nitro-enclaves-cose for COSE_Sign1, the NSM
/// API's `AttestationDoc` (`serde_cbor`) for the payload, rustls-webpki for the chain at a chosen
/// time. Returns the payload's module id so nothing is optimised away.
fn cose_webpki(doc: &[u8], root: &[u8], at: UnixTime) -> String {
    let sign1 = CoseSign1::from_bytes(doc).unwrap();
    let (_, payload) = sign1.get_protected_and_payload::<Sha384Hash>(None).unwrap();
    let parsed = aws_nitro_enclaves_nsm_api::api::AttestationDoc::from_binary(&payload).unwrap();
    let root = CertificateDer::from(root);
    let anchor = webpki::anchor_from_trusted_cert(&root).unwrap();
    let intermediates: Vec<CertificateDer<'_>> = parsed.cabundle[1..]
        .iter()
        .map(|c| CertificateDer::from(c.as_slice()))
        .collect();
    let leaf_der = CertificateDer::from(parsed.certificate.as_slice());
    let leaf = webpki::EndEntityCert::try_from(&leaf_der).unwrap();
    leaf.verify_for_usage(
        ALGS,
        &[anchor],
        &intermediates,
        at,
        webpki::KeyUsage::client_auth(),
        None,
        None,
    )
    .unwrap();
    let (_, cert) = X509Certificate::from_der(&parsed.certificate).unwrap();
    let key = LeafKey(cert.public_key().subject_public_key.data.to_vec());
    assert!(sign1.verify_signature::<Sha384Hash>(&key).unwrap());
    parsed.module_id
}

fn bench(c: &mut Criterion) {
    let root = attestation::aws_nitro_root_g1();
    let at: OffsetDateTime = attestation::unverified_timestamp(DOC).unwrap();
    let policy = Policy::new().allow_debug();
    let verified = attestation::verify(DOC, root, at, &policy).unwrap();
    let floor = floor_inputs(&verified);
    let unix_at =
        UnixTime::since_unix_epoch(Duration::from_secs(at.unix_timestamp().cast_unsigned()));
    assert_eq!(cose_webpki(DOC, root.der(), unix_at), verified.module_id());

    let mut group = c.benchmark_group("verify one real document");
    group.bench_function("tessera: attestation::verify (all checks)", |b| {
        b.iter(|| attestation::verify(black_box(DOC), root, at, &policy).unwrap());
    });
    group.bench_function("floor: five P-384 signature checks (aws-lc-rs)", |b| {
        b.iter(|| {
            for (key, message, signature) in &floor.certs {
                UnparsedPublicKey::new(&ECDSA_P384_SHA384_ASN1, key)
                    .verify(message, signature)
                    .unwrap();
            }
            let (key, message, signature) = &floor.cose;
            UnparsedPublicKey::new(&ECDSA_P384_SHA384_FIXED, key)
                .verify(message, signature)
                .unwrap();
        });
    });
    // A fleet: the same region's intermediates come again; only the leaf certificate and the
    // COSE signature are new (the leaf is never kept, so repeating one document costs what a
    // batch of one chain's documents costs).
    let fleet = attestation::FleetVerifier::new(root, 256);
    fleet.verify(DOC, at, &policy).unwrap();
    group.bench_function("tessera: FleetVerifier warm (CA links kept)", |b| {
        b.iter(|| fleet.verify(black_box(DOC), at, &policy).unwrap());
    });
    group.bench_function("tessera: FleetVerifier cold (a new verifier)", |b| {
        b.iter(|| {
            attestation::FleetVerifier::new(root, 256)
                .verify(black_box(DOC), at, &policy)
                .unwrap()
        });
    });
    group.bench_function(
        "floor of a warm check: two P-384 signatures (leaf, COSE)",
        |b| {
            b.iter(|| {
                let (key, message, signature) = floor.certs.last().unwrap();
                UnparsedPublicKey::new(&ECDSA_P384_SHA384_ASN1, key)
                    .verify(message, signature)
                    .unwrap();
                let (key, message, signature) = &floor.cose;
                UnparsedPublicKey::new(&ECDSA_P384_SHA384_FIXED, key)
                    .verify(message, signature)
                    .unwrap();
            });
        },
    );
    group.bench_function(
        "peer: aws-nitro-enclaves-cose 0.6 + nsm-api + rustls-webpki 0.103",
        |b| {
            b.iter(|| cose_webpki(black_box(DOC), root.der(), unix_at));
        },
    );
    if evervault_at_document_time() {
        group.bench_function(
            "peer as shipped: attestation-doc-validation 0.10 (evervault, wall clock faked)",
            |b| {
                b.iter(|| {
                    attestation_doc_validation::validate_attestation_doc(black_box(DOC)).unwrap();
                });
            },
        );
    }
    group.bench_function("peer as shipped: nitro_attest 0.2 (ring)", |b| {
        b.iter(|| {
            nitro_attest::UnparsedAttestationDoc::from(black_box(DOC))
                .parse_and_verify(at)
                .unwrap()
        });
    });
    group.finish();

    // evervault's crate validates chains only at the wall clock against its bundled root, which
    // every real document fails today; its decoding stage is compared with Tessera's.
    let mut decode = c.benchmark_group("decode and check structure only (no crypto)");
    decode.bench_function("tessera: attestation::unverified_timestamp", |b| {
        b.iter(|| attestation::unverified_timestamp(black_box(DOC)).unwrap());
    });
    decode.bench_function(
        "peer: attestation-doc-validation 0.10 decode_attestation_document",
        |b| {
            b.iter(|| {
                attestation_doc_validation::attestation_doc::decode_attestation_document(black_box(
                    DOC,
                ))
                .unwrap()
            });
        },
    );
    decode.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(60).measurement_time(Duration::from_secs(4));
    targets = bench
}

/// A named function timed in [`paired_ratios`].
type Contender<'a> = (&'static str, Box<dyn Fn() + 'a>);

/// The ratios the fleet verifier's goals name (warm at most 0.45x, cold at most 1.02x the
/// five-signature floor), measured in interleaved rounds: each round times a batch of every
/// contender back to back, starting with a different one each round, and the table reports the
/// median over rounds of each one's time divided by the floor's time in the same round. Load
/// that comes and goes between rounds (other builds on the machine) cancels out of the ratio.
fn paired_ratios() {
    const ROUNDS: usize = 61;
    const BATCH: u32 = 40;
    let root = attestation::aws_nitro_root_g1();
    let at: OffsetDateTime = attestation::unverified_timestamp(DOC).unwrap();
    let policy = Policy::new().allow_debug();
    let verified = attestation::verify(DOC, root, at, &policy).unwrap();
    let floor = floor_inputs(&verified);
    let check = |(key, message, signature): &(Vec<u8>, Vec<u8>, Vec<u8>), fixed: bool| {
        let alg = if fixed {
            &ECDSA_P384_SHA384_FIXED
        } else {
            &ECDSA_P384_SHA384_ASN1
        };
        UnparsedPublicKey::new(alg, key)
            .verify(message, signature)
            .unwrap();
    };
    let fleet = attestation::FleetVerifier::new(root, 256);
    fleet.verify(DOC, at, &policy).unwrap();
    let mut contenders: Vec<Contender<'_>> = vec![
        (
            "floor: five P-384 signature checks",
            Box::new(|| {
                floor.certs.iter().for_each(|c| check(c, false));
                check(&floor.cose, true);
            }),
        ),
        (
            "attestation::verify, stateless",
            Box::new(|| {
                attestation::verify(black_box(DOC), root, at, &policy).unwrap();
            }),
        ),
        (
            "FleetVerifier cold (a new verifier)",
            Box::new(|| {
                attestation::FleetVerifier::new(root, 256)
                    .verify(black_box(DOC), at, &policy)
                    .unwrap();
            }),
        ),
        (
            "FleetVerifier warm (CA links kept)",
            Box::new(|| {
                fleet.verify(black_box(DOC), at, &policy).unwrap();
            }),
        ),
        (
            "floor of a warm check: two signatures",
            Box::new(|| {
                check(floor.certs.last().unwrap(), false);
                check(&floor.cose, true);
            }),
        ),
    ];
    contenders.push((
        "peer as shipped: nitro_attest 0.2 (ring)",
        Box::new(|| {
            nitro_attest::UnparsedAttestationDoc::from(black_box(DOC))
                .parse_and_verify(at)
                .unwrap();
        }),
    ));
    if evervault_at_document_time() {
        contenders.push((
            "peer as shipped: evervault 0.10 (faked clock)",
            Box::new(|| {
                attestation_doc_validation::validate_attestation_doc(black_box(DOC)).unwrap();
            }),
        ));
    }
    let n = contenders.len();
    let mut times = vec![Vec::with_capacity(ROUNDS); n];
    for round in 0..ROUNDS {
        for k in 0..n {
            let i = (round + k) % n;
            let t = std::time::Instant::now();
            for _ in 0..BATCH {
                (contenders[i].1)();
            }
            times[i].push(t.elapsed() / BATCH);
        }
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!("\npaired rounds ({ROUNDS} rounds of {BATCH} documents each, order rotated):");
    println!(
        "{:<40} {:>12} {:>14} {:>18}",
        "contender", "median time", "ratio (median)", "ratio p10 - p90"
    );
    for (i, (name, _)) in contenders.iter().enumerate() {
        let mut ratios: Vec<f64> = (0..ROUNDS)
            .map(|r| times[i][r].as_secs_f64() / times[0][r].as_secs_f64())
            .collect();
        let med_time = median(times[i].iter().map(Duration::as_secs_f64).collect());
        ratios.sort_by(f64::total_cmp);
        println!(
            "{name:<40} {:>9.0} µs {:>13.3}x {:>8.3}x - {:.3}x",
            med_time * 1e6,
            median(ratios.clone()),
            ratios[ROUNDS / 10],
            ratios[ROUNDS * 9 / 10]
        );
    }
}

/// libfaketime from Debian's `faketime` package (`make bench` installs it).
const FAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";
/// Set in the copy of this bench that runs under libfaketime.
const UNDER_FAKETIME: &str = "TESSERA_BENCH_WALL_CLOCK_AT_DOCUMENT";

/// Whether evervault's verifier, which reads only the wall clock, can run here: this process's
/// wall clock is set to the document's time (monotonic time, which every timing uses, is real),
/// and the verifier accepts the document at it.
fn evervault_at_document_time() -> bool {
    if std::env::var_os(UNDER_FAKETIME).is_none() {
        return false;
    }
    match attestation_doc_validation::validate_attestation_doc(DOC) {
        Ok(()) => true,
        Err(e) => {
            eprintln!("evervault's verifier refuses the document at the faked clock: {e}");
            false
        }
    }
}

/// Runs this bench again with its wall clock set to the document's timestamp through
/// libfaketime (only the wall clock: `FAKETIME_DONT_FAKE_MONOTONIC`), so the as-shipped
/// evervault verifier runs beside the others in one run. `None` when libfaketime is missing.
fn rerun_at_document_time() -> Option<std::process::ExitStatus> {
    if std::env::var_os(UNDER_FAKETIME).is_some() || !std::path::Path::new(FAKETIME).exists() {
        return None;
    }
    let at = attestation::unverified_timestamp(DOC).unwrap();
    let fake = format!(
        "@{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    );
    std::process::Command::new(std::env::current_exe().ok()?)
        .args(std::env::args_os().skip(1))
        .env("LD_PRELOAD", FAKETIME)
        .env("FAKETIME", fake)
        .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
        .env("TZ", "UTC")
        .env(UNDER_FAKETIME, "1")
        .status()
        .ok()
}

fn main() {
    // `cargo bench -- --list` and `cargo test --benches` only ask what is there.
    let quick = std::env::args().any(|a| a == "--list" || a == "--test");
    if !quick {
        if let Some(status) = rerun_at_document_time() {
            std::process::exit(status.code().unwrap_or(1));
        }
        if std::env::var_os(UNDER_FAKETIME).is_none() {
            eprintln!(
                "no libfaketime at {FAKETIME} (Debian's faketime package): the evervault row is left out"
            );
        }
    }
    benches();
    if !quick {
        paired_ratios();
    }
    Criterion::default().configure_from_args().final_summary();
}
