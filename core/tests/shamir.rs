//! Shamir splitting and reconstruction, including against an independent implementation.

use proptest::prelude::*;
use rand::SeedableRng;
use tessera_core::quorum::QuorumSeed;
use tessera_core::shamir::{self, ShamirError, Share};

fn rng(seed: u64) -> rand::rngs::StdRng {
    rand::rngs::StdRng::seed_from_u64(seed)
}

fn split(seed: &QuorumSeed, t: usize, n: usize) -> Vec<Share> {
    shamir::split(
        seed,
        t,
        n,
        &mut rand::rand_core::UnwrapErr(rand::rngs::SysRng),
    )
    .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_threshold_subset_recovers(secret in any::<[u8; 32]>(), n in 1usize..=16, t_pick in any::<usize>(), pick in any::<u64>()) {
        use rand::seq::SliceRandom;
        let t = 1 + t_pick % n;
        let seed = QuorumSeed::from_bytes(secret);
        let shares = split(&seed, t, n);
        prop_assert_eq!(shares.len(), n);
        // A pseudo-random subset of exactly t shares.
        let mut idx: Vec<usize> = (0..n).collect();
        idx.shuffle(&mut rng(pick));
        let subset: Vec<Share> = idx[..t].iter().map(|&i| shares[i].clone()).collect();
        let back = shamir::combine(&subset, t).unwrap();
        prop_assert_eq!(back.as_bytes(), seed.as_bytes());
    }

    #[test]
    fn fewer_than_threshold_is_refused(secret in any::<[u8; 32]>(), n in 2usize..=16) {
        let seed = QuorumSeed::from_bytes(secret);
        let shares = split(&seed, n, n);
        let err = shamir::combine(&shares[..n - 1], n).unwrap_err();
        prop_assert_eq!(err, ShamirError::TooFew { have: n - 1, need: n });
    }

    #[test]
    fn below_threshold_shares_do_not_determine_secret(secret in any::<[u8; 32]>()) {
        // With t = 3, any 2 shares interpolated as if t = 2 give a value unrelated to the secret
        // (equal only by chance, 2^-256).
        let seed = QuorumSeed::from_bytes(secret);
        let shares = split(&seed, 3, 5);
        let wrong = shamir::combine(&shares[..2], 2).unwrap();
        prop_assert_ne!(wrong.as_bytes(), seed.as_bytes());
    }
}

#[test]
fn every_threshold_up_to_16_exhaustively() {
    let seed = QuorumSeed::from_bytes([0xa5; 32]);
    for n in 1..=16 {
        for t in 1..=n {
            let shares = split(&seed, t, n);
            let back = shamir::combine(&shares[n - t..], t).unwrap();
            assert_eq!(back.as_bytes(), seed.as_bytes(), "t={t} n={n}");
        }
    }
}

#[test]
fn errors() {
    let seed = QuorumSeed::from_bytes([7; 32]);
    let mut os = rand::rand_core::UnwrapErr(rand::rngs::SysRng);
    assert!(matches!(
        shamir::split(&seed, 0, 3, &mut os),
        Err(ShamirError::BadParameters { .. })
    ));
    assert!(matches!(
        shamir::split(&seed, 4, 3, &mut os),
        Err(ShamirError::BadParameters { .. })
    ));
    assert!(matches!(
        shamir::split(&seed, 2, 256, &mut os),
        Err(ShamirError::BadParameters { .. })
    ));
    let shares = split(&seed, 2, 3);
    assert_eq!(
        shamir::combine(&[shares[0].clone(), shares[0].clone()], 2).unwrap_err(),
        ShamirError::DuplicateX { x: 1 }
    );
    assert_eq!(Share::new(0, [1; 32]).unwrap_err(), ShamirError::ZeroX);
    let mut zero = shares[0].to_bytes().to_vec();
    zero[0] = 0;
    assert_eq!(Share::from_bytes(&zero).unwrap_err(), ShamirError::ZeroX);
    assert_eq!(
        Share::from_bytes(&[1; 32]).unwrap_err(),
        ShamirError::BadLength { len: 32 }
    );
    assert_eq!(
        Share::from_bytes(&[1; 34]).unwrap_err(),
        ShamirError::BadLength { len: 34 }
    );
}

#[test]
fn commitments_bind_x_and_y() {
    let seed = QuorumSeed::from_bytes([9; 32]);
    let shares = split(&seed, 2, 3);
    let c = shares[0].commitment();
    shares[0].check_commitment(&c).unwrap();
    assert_eq!(
        shares[1].check_commitment(&c).unwrap_err(),
        ShamirError::CommitmentMismatch { x: 2 }
    );
    let mut tampered = shares[0].to_bytes().to_vec();
    tampered[5] ^= 1;
    let tampered = Share::from_bytes(&tampered).unwrap();
    assert!(tampered.check_commitment(&c).is_err());
    // Golden value: the commitment formula is part of the manifest format.
    let fixed = Share::new(1, [0x11; 32]).unwrap();
    assert_eq!(
        fixed.commitment().to_hex(),
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
            [b"tessera/v1/share".as_slice(), &[0], &[1], &[0x11; 32]].concat()
        ))
    );
}

#[test]
fn debug_output_never_shows_share_or_seed_bytes() {
    let seed = QuorumSeed::from_bytes([0xab; 32]);
    let shares = split(&seed, 2, 2);
    let dbg = format!("{seed:?} {:?}", shares[0]);
    assert!(!dbg.contains("ab"), "{dbg}");
    assert!(!dbg.contains("171"), "{dbg}");
}

/// Cross-implementation: vsss-rs (same field, AES polynomial 0x11b, same `x || y` share layout)
/// combines Tessera's shares, and Tessera combines vsss-rs's.
#[test]
fn interoperates_with_vsss_rs_both_directions() {
    use vsss_rs::Gf256;
    // vsss-rs refuses threshold 1 (Tessera allows 1-of-n; the property tests cover it).
    for (t, n) in [(2usize, 2usize), (2, 3), (3, 5), (5, 5), (7, 10), (16, 16)] {
        let secret: [u8; 32] = core::array::from_fn(|i| (i as u8).wrapping_mul(37) ^ t as u8);
        let seed = QuorumSeed::from_bytes(secret);

        // Tessera -> vsss-rs.
        let ours = split(&seed, t, n);
        let theirs: Vec<Vec<u8>> = ours[n - t..]
            .iter()
            .map(|s| s.to_bytes().to_vec())
            .collect();
        let recovered = Gf256::combine_bytes(&theirs).unwrap();
        assert_eq!(
            recovered,
            secret.to_vec(),
            "vsss-rs recovering Tessera t={t} n={n}"
        );

        // vsss-rs -> Tessera.
        let theirs =
            Gf256::split_bytes(t, n, secret, rand::rand_core::UnwrapErr(rand::rngs::SysRng))
                .unwrap();
        let ours: Vec<Share> = theirs
            .iter()
            .map(|s| Share::from_bytes(s).unwrap())
            .collect();
        let back = shamir::combine(&ours[..t], t).unwrap();
        assert_eq!(
            back.as_bytes(),
            &secret,
            "Tessera recovering vsss-rs t={t} n={n}"
        );
    }
}
