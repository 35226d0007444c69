//! A manifest field by field, and its differences from another, for review on screen or paper.

use std::collections::BTreeMap;

use tessera_core::keys::PublicKey;
use tessera_core::manifest::{Manifest, MemberSet};
use tessera_core::objects::Patch;

/// How a field compares with the baseline manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    /// No baseline, or the same value.
    Same,
    Changed,
    Added,
    Removed,
}

impl Mark {
    #[must_use]
    pub fn symbol(self) -> char {
        match self {
            Mark::Same => ' ',
            Mark::Changed => '~',
            Mark::Added => '+',
            Mark::Removed => '-',
        }
    }
}

/// One reviewed line: the field, its value, and for a changed field the old value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub mark: Mark,
    pub name: String,
    pub value: String,
    pub old: Option<String>,
}

impl Field {
    /// The value as a review shows it: a changed one as `old -> new`.
    #[must_use]
    pub fn shown(&self) -> String {
        match (self.mark, &self.old) {
            (Mark::Changed, Some(o)) => format!("{o} -> {}", self.value),
            (Mark::Removed, Some(o)) => format!("(removed; was {o})"),
            (_, _) => self.value.clone(),
        }
    }
}

/// The manifest field by field, as `(field, value)` lines for display and diffing.
#[must_use]
pub fn manifest_fields(m: &Manifest) -> Vec<(String, String)> {
    let mut f = vec![
        ("version".to_owned(), m.version.to_string()),
        ("namespace.name".to_owned(), m.namespace.name.clone()),
        ("namespace.nonce".to_owned(), m.namespace.nonce.to_string()),
        (
            "namespace.quorum_key.signing".to_owned(),
            m.namespace.quorum_public_key.signing.to_hex(),
        ),
        (
            "namespace.quorum_key.encryption".to_owned(),
            m.namespace.quorum_public_key.encryption.to_hex(),
        ),
        ("enclave.pcr0".to_owned(), m.enclave.pcr0.to_hex()),
        ("enclave.pcr1".to_owned(), m.enclave.pcr1.to_hex()),
        ("enclave.pcr2".to_owned(), m.enclave.pcr2.to_hex()),
        ("enclave.pcr3".to_owned(), m.enclave.pcr3.to_hex()),
        (
            "enclave.debug_allowed".to_owned(),
            m.enclave.debug_allowed.to_string(),
        ),
        ("pivot.app_sha256".to_owned(), m.pivot.app_sha256.to_hex()),
        ("pivot.args".to_owned(), format!("{:?}", m.pivot.args)),
        (
            "pivot.restart".to_owned(),
            format!("{:?}", m.pivot.restart).to_lowercase(),
        ),
    ];
    // Only when genesis made one: whoever holds this offline key can recover the whole seed.
    if let Some(r) = &m.namespace.dr_recipient {
        f.insert(
            5,
            (
                "namespace.dr_key".to_owned(),
                format!(
                    "{r} (the whole seed is ALSO wrapped to this offline disaster-recovery key)"
                ),
            ),
        );
    }
    // Only when declared: it opens the app to outside traffic through the relay's app bridge.
    if let Some(port) = m.pivot.ingress_port {
        f.push((
            "pivot.ingress_port".to_owned(),
            format!("{port} (the app takes outside traffic)"),
        ));
    }
    let mut set = |name: &str, threshold: u8, members: Vec<(String, PublicKey)>| {
        f.push((
            format!("{name}.threshold"),
            format!("{threshold} of {}", members.len()),
        ));
        for (alias, key) in members {
            f.push((format!("{name}.{alias}"), key.fingerprint()));
        }
    };
    let plain = |s: &MemberSet| {
        s.members
            .iter()
            .map(|m| (m.alias.clone(), m.public_key))
            .collect()
    };
    set(
        "manifest_set",
        m.manifest_set.threshold,
        plain(&m.manifest_set),
    );
    set(
        "share_set",
        m.share_set.threshold,
        m.share_set
            .members
            .iter()
            .map(|m| (m.alias.clone(), m.public_key))
            .collect(),
    );
    set("patch_set", m.patch_set.threshold, plain(&m.patch_set));
    f
}

/// `m` field by field, marked against `previous` (removed fields come last).
#[must_use]
pub fn diff(m: &Manifest, previous: Option<&Manifest>) -> Vec<Field> {
    diff_lines(&manifest_fields(m), previous.map(manifest_fields))
}

/// A patch's settings against what the earlier patches of the same manifest set: each setting
/// marked changed (with the value it replaces), added, or the same. `earlier` may hold any
/// patches; only those of this namespace and manifest with a lower sequence count, applied in
/// sequence order as the enclave applies them. With none, nothing is marked: there is no
/// baseline.
#[must_use]
pub fn patch_diff(patch: &Patch, earlier: &[Patch]) -> Vec<Field> {
    let mut before: Vec<&Patch> = earlier
        .iter()
        .filter(|e| {
            e.namespace == patch.namespace
                && e.manifest_hash == patch.manifest_hash
                && e.sequence < patch.sequence
        })
        .collect();
    before.sort_by_key(|e| e.sequence);
    let now: Vec<(String, String)> = patch
        .settings
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if before.is_empty() {
        return diff_lines(&now, None);
    }
    let mut settled = BTreeMap::new();
    for e in before {
        settled.extend(e.settings.clone());
    }
    // Settings the patch leaves alone are not part of its review.
    settled.retain(|k, _| patch.settings.contains_key(k));
    diff_lines(&now, Some(settled.into_iter().collect()))
}

/// `now` line by line against `old` (`None`: no baseline, nothing marked).
fn diff_lines(now: &[(String, String)], old: Option<Vec<(String, String)>>) -> Vec<Field> {
    let known = old.is_some();
    let old: BTreeMap<String, String> = old.unwrap_or_default().into_iter().collect();
    let mut out: Vec<Field> = now
        .iter()
        .map(|(k, v)| {
            let (mark, old) = match (known, old.get(k)) {
                (false, _) => (Mark::Same, None),
                (true, Some(o)) if o == v => (Mark::Same, None),
                (true, Some(o)) => (Mark::Changed, Some(o.clone())),
                (true, None) => (Mark::Added, None),
            };
            Field {
                mark,
                name: k.clone(),
                value: v.clone(),
                old,
            }
        })
        .collect();
    let names: std::collections::BTreeSet<&String> = now.iter().map(|(k, _)| k).collect();
    for (k, v) in &old {
        if !names.contains(k) {
            out.push(Field {
                mark: Mark::Removed,
                name: k.clone(),
                value: String::new(),
                old: Some(v.clone()),
            });
        }
    }
    out
}
