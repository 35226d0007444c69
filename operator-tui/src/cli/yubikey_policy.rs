//! The namespace's YubiKey attestation policy where the coordinator consumes member
//! descriptors (`genesis run`, `manifest new`) and where a descriptor is shown (`member show`).
//! The decision is `tessera_core::yubikey_attest_policy::check_member`; this module turns
//! options into a policy and prints one line per member.

use std::path::PathBuf;

use tessera_core::objects::MemberDescriptor;
use tessera_core::yubikey_attest::{Firmware, YubicoTrust};
use tessera_core::yubikey_attest_policy::{AttestationPolicy, MemberVerdict, check_member};
use time::OffsetDateTime;

use super::common::Failure;
use crate::member::review::MemberJudge;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Requirement {
    /// Production: every member key must be attested by a genuine YubiKey.
    Required,
    /// Dev: descriptors without an attestation are accepted and shown as NOT ATTESTED.
    Optional,
}

/// The namespace's attestation policy (docs/yubikey.md, "Attestation").
#[derive(clap::Args, Clone, Debug)]
pub struct AttestationArgs {
    /// Whether member keys must carry a YubiKey PIV attestation: `required` for production,
    /// `optional` for dev and tests with software keys (unattested members are shown).
    #[arg(long, value_enum, default_value = "optional")]
    pub member_attestation: Requirement,
    /// Minimum attested PIN policy for every role key: never, once or always.
    #[arg(long, default_value = "once")]
    pub min_pin_policy: String,
    /// Minimum attested touch policy for the Share key: never, cached or always.
    #[arg(long, default_value = "cached")]
    pub min_share_touch: String,
    /// Minimum YubiKey firmware (MAJOR.MINOR.PATCH), or `any`.
    #[arg(long, default_value = "5.7.0")]
    pub min_firmware: String,
    /// Trust the certificates in this PEM file instead of Yubico's published roots (the
    /// self-signed ones as roots, the others as intermediates). For test PKIs only.
    #[arg(long, value_name = "PEM")]
    pub yubikey_root: Option<PathBuf>,
    /// When to judge certificate validity (RFC 3339); default: now.
    #[arg(long, value_name = "TIME")]
    pub attestation_at: Option<String>,
}

impl Default for AttestationArgs {
    /// The same as the flags' defaults.
    fn default() -> Self {
        Self {
            member_attestation: Requirement::Optional,
            min_pin_policy: "once".to_owned(),
            min_share_touch: "cached".to_owned(),
            min_firmware: "5.7.0".to_owned(),
            yubikey_root: None,
            attestation_at: None,
        }
    }
}

impl AttestationArgs {
    pub fn policy(&self) -> Result<AttestationPolicy, Failure> {
        Ok(AttestationPolicy {
            required: self.member_attestation == Requirement::Required,
            min_pin_policy: self
                .min_pin_policy
                .parse()
                .map_err(|e| Failure::usage(format!("--min-pin-policy: {e}")))?,
            min_share_touch: self
                .min_share_touch
                .parse()
                .map_err(|e| Failure::usage(format!("--min-share-touch: {e}")))?,
            min_firmware: if self.min_firmware == "any" {
                None
            } else {
                Some(
                    self.min_firmware
                        .parse::<Firmware>()
                        .map_err(|e| Failure::usage(format!("--min-firmware: {e}")))?,
                )
            },
        })
    }

    fn trust(&self) -> Result<(YubicoTrust, bool), Failure> {
        let Some(path) = &self.yubikey_root else {
            return Ok((YubicoTrust::published().clone(), false));
        };
        let pem = std::fs::read(path)
            .map_err(|e| Failure::usage(format!("--yubikey-root {}: {e}", path.display())))?;
        let trust = YubicoTrust::from_pem(&pem)
            .map_err(|e| Failure::usage(format!("--yubikey-root {}: {e}", path.display())))?;
        Ok((trust, true))
    }

    fn at(&self) -> Result<OffsetDateTime, Failure> {
        match &self.attestation_at {
            None => Ok(OffsetDateTime::now_utc()),
            Some(t) => OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                .map_err(|e| Failure::usage(format!("--attestation-at {t:?}: {e}"))),
        }
    }
}

impl AttestationArgs {
    /// For a member's review of `descriptors`: `None` (nothing to judge) when none was given
    /// and the policy does not require attestation.
    pub fn judge(
        &self,
        descriptors: Vec<MemberDescriptor>,
    ) -> Result<Option<MemberJudge>, Failure> {
        let policy = self.policy()?;
        if descriptors.is_empty() && !policy.required {
            return Ok(None);
        }
        let (trust, private_root) = self.trust()?;
        let at = match self.attestation_at {
            Some(_) => Some(self.at()?),
            None => None,
        };
        Ok(Some(MemberJudge {
            descriptors,
            policy,
            trust,
            private_root,
            at,
        }))
    }
}

/// Prints the policy a member's review judges descriptors by, as `check_descriptors` does.
pub fn announce(judge: &MemberJudge) {
    println!("YubiKey attestation policy: {}", judge.policy.describe());
    if judge.private_root {
        println!(
            "WARNING: attestations are checked against --yubikey-root, NOT Yubico's published roots (test PKIs only)"
        );
    }
}

/// Checks every descriptor against the namespace's policy, printing one line per member; the
/// first refused member refuses the whole command, naming who and why.
pub fn check_descriptors(
    descriptors: &[MemberDescriptor],
    args: &AttestationArgs,
) -> Result<Vec<MemberVerdict>, Failure> {
    let policy = args.policy()?;
    let (trust, private) = args.trust()?;
    let at = args.at()?;
    println!("YubiKey attestation policy: {}", policy.describe());
    if private {
        println!(
            "WARNING: attestations are checked against --yubikey-root, NOT Yubico's published roots (test PKIs only)"
        );
    }
    let mut verdicts = Vec::with_capacity(descriptors.len());
    for d in descriptors {
        let verdict = check_member(d, &policy, &trust, at).map_err(|refusal| {
            Failure::refused(format!(
                "refused: {refusal}; nothing was sent (policy: {})",
                policy.describe()
            ))
        })?;
        println!("  {}: {}", d.alias, verdict.summary());
        verdicts.push(verdict);
    }
    Ok(verdicts)
}

/// The attestation line `member show` prints: checked against Yubico's published roots, now,
/// with the production policy's minimums reported but not enforced.
#[must_use]
pub fn describe(d: &MemberDescriptor) -> String {
    if d.attestation.is_none() {
        return "none (refused where a namespace requires attestation)".to_owned();
    }
    let lenient = AttestationPolicy::dev();
    let now = OffsetDateTime::now_utc();
    match check_member(d, &lenient, YubicoTrust::published(), now) {
        Err(refusal) => format!("DOES NOT VERIFY: {}", refusal.reason),
        Ok(v) => match check_member(
            d,
            &AttestationPolicy::production(),
            YubicoTrust::published(),
            now,
        ) {
            Ok(_) => format!("{} (meets the production defaults)", v.summary()),
            Err(r) => format!(
                "{} (below the production defaults: {})",
                v.summary(),
                r.reason
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    #[derive(clap::Parser)]
    struct Cmd {
        #[command(flatten)]
        a: super::AttestationArgs,
    }

    #[test]
    fn default_is_the_flags_defaults() {
        let parsed = Cmd::parse_from(["t"]).a;
        assert_eq!(
            format!("{parsed:?}"),
            format!("{:?}", super::AttestationArgs::default())
        );
    }
}
