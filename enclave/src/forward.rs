//! Key forwarding on the enclave's side (`docs/forwarding.md`): the exporting node's challenges
//! and export, and the joining node's state while it waits for the key.
//!
//! The decisions themselves are `tessera_core::forward::check_join` (may the key go to this
//! node?) and `ForwardExport::open` (is this the key, for me?); this module keeps the state they
//! need and changes it only after they said yes.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use tessera_core::attestation::TrustAnchor;
use tessera_core::bytes::{ByteArray, Hash32};
use tessera_core::forward::{self, CHALLENGE_LEN, ForwardError, ForwardExport, ForwardRequest};
use tessera_core::manifest::ManifestEnvelope;
use tessera_core::quorum::QuorumSeed;

/// Challenges outstanding at once; issuing one more forgets the oldest.
pub const MAX_CHALLENGES: usize = 32;

/// A node booted with `join`: what it needs to accept a forwarded key.
pub struct Joining {
    pub envelope: ManifestEnvelope,
    pub manifest_hash: Hash32,
    pub ephemeral: age::x25519::Identity,
    pub ephemeral_key: ByteArray<32>,
}

impl Joining {
    /// The seed, if `export` is the quorum key forwarded to this very boot.
    pub fn accept(&self, export: &ForwardExport) -> Result<QuorumSeed, ForwardError> {
        export.open(
            &self.envelope.manifest,
            &self.manifest_hash,
            &self.ephemeral,
            &self.ephemeral_key,
        )
    }
}

/// The exporting node's single-use challenges, each valid for the document age limit.
pub struct Challenges {
    issued: VecDeque<([u8; CHALLENGE_LEN], Instant)>,
    lifetime: Duration,
}

impl Challenges {
    #[must_use]
    pub fn new(lifetime: Duration) -> Self {
        Self {
            issued: VecDeque::new(),
            lifetime,
        }
    }

    /// The document age limit (and challenge lifetime) this node applies.
    #[must_use]
    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }

    /// A fresh random challenge, remembered until spent, expired or pushed out.
    pub fn issue(&mut self, now: Instant) -> ByteArray<CHALLENGE_LEN> {
        use rand::TryRng;
        let mut c = [0u8; CHALLENGE_LEN];
        rand::rngs::SysRng
            .try_fill_bytes(&mut c)
            .expect("the operating system's random number generator failed");
        self.expire(now);
        if self.issued.len() >= MAX_CHALLENGES {
            self.issued.pop_front();
        }
        self.issued.push_back((c, now));
        ByteArray(c)
    }

    fn expire(&mut self, now: Instant) {
        let lifetime = self.lifetime;
        self.issued
            .retain(|(_, at)| now.saturating_duration_since(*at) <= lifetime);
    }

    #[must_use]
    pub fn is_outstanding(&self, challenge: &[u8], now: Instant) -> bool {
        self.issued.iter().any(|(c, at)| {
            c.as_slice() == challenge && now.saturating_duration_since(*at) <= self.lifetime
        })
    }

    /// Forgets `challenge`: a document bound to it can never be used again.
    pub fn spend(&mut self, challenge: &[u8]) {
        self.issued.retain(|(c, _)| c.as_slice() != challenge);
    }
}

/// Checks `request` with this node's own clock and trust anchor and, if the joining node
/// qualifies, seals the key to it and spends the challenge. A refusal changes nothing.
pub fn export(
    own: &ManifestEnvelope,
    seed: &QuorumSeed,
    request: &ForwardRequest,
    anchor: &TrustAnchor,
    challenges: &mut Challenges,
) -> Result<ForwardExport, ForwardError> {
    let now = Instant::now();
    let accepted = forward::check_join(
        own,
        request,
        anchor,
        time::OffsetDateTime::now_utc(),
        challenges.lifetime(),
        |c| challenges.is_outstanding(c, now),
    )?;
    let export = ForwardExport::seal(seed, &accepted)?;
    challenges.spend(&accepted.challenge);
    Ok(export)
}
