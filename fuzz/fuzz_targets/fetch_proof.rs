//! Untrusted fetch proofs as `tessera fetch verify` reads them, and the ID-token check over
//! untrusted tokens and JWKS documents (the input split at its first zero byte).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_core::fetch::{FetchProof, describe_certificate};
use tessera_core::quorum::QuorumSeed;

fuzz_target!(|data: &[u8]| {
    if let Ok(proof) = FetchProof::decode(data) {
        assert_eq!(proof.encode(), data);
        let _ = proof.verify(&QuorumSeed::from_bytes([7; 32]).public_key());
        for cert in &proof.record.certificates {
            let _ = describe_certificate(cert);
        }
    }
    let _ = describe_certificate(data);
    if let Some(split) = data.iter().position(|&b| b == 0)
        && let Ok(token) = std::str::from_utf8(&data[..split])
    {
        let _ = tessera_fetcher::oidc::verify_id_token(
            token,
            &data[split + 1..],
            "https://issuer.test",
            "client",
            1_800_000_000,
        );
    }
});
