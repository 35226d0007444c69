//! A manifest field by field, and its differences from another, for review on screen or paper.

use std::collections::BTreeMap;

use tessera_core::keys::PublicKey;
use tessera_core::manifest::{Manifest, MemberSet};

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
    let old: BTreeMap<String, String> = previous
        .map(|p| manifest_fields(p).into_iter().collect())
        .unwrap_or_default();
    let now = manifest_fields(m);
    let mut out: Vec<Field> = now
        .iter()
        .map(|(k, v)| {
            let (mark, old) = match (previous, old.get(k)) {
                (None, _) => (Mark::Same, None),
                (Some(_), Some(o)) if o == v => (Mark::Same, None),
                (Some(_), Some(o)) => (Mark::Changed, Some(o.clone())),
                (Some(_), None) => (Mark::Added, None),
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
