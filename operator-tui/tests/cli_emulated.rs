//! `tessera attest verify` on a document from QEMU's emulated NSM: refused by default (the AWS
//! root) and under a DEV root, read with `--root EMULATED` and labelled EMULATED in both outputs.

use std::path::PathBuf;
use std::process::{Command, Output};

fn vector() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../core/tests/vectors/emulated/qemu-nsm-genesis.cbor")
}

fn verify(extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["attest", "verify"])
        .arg(vector())
        .args(["--at", "doc"])
        .args(extra)
        .output()
        .expect("run tessera")
}

#[test]
fn refused_against_the_aws_root_with_the_next_step() {
    let o = verify(&[]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("EMULATED enclave's unsigned document"),
        "{err}"
    );
    assert!(err.contains("--root EMULATED"), "{err}");
}

#[test]
fn refused_against_a_dev_root() {
    let root =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../core/tests/vectors/nitro/synthetic");
    let pem = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "pem"))
        .expect("a synthetic root PEM");
    let o = verify(&["--root", pem.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("unsigned document"));
}

#[test]
fn read_and_labelled_in_the_emulated_mode() {
    let o = verify(&["--root", "EMULATED"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.starts_with("EMULATED attestation document (UNSIGNED"),
        "{out}"
    );
    assert!(!out.contains("VALID"), "{out}");
    assert!(String::from_utf8_lossy(&o.stderr).contains("EMULATED trust mode"));

    let o = verify(&["--root", "EMULATED", "--json"]);
    assert_eq!(o.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["trust"], "EMULATED");
    assert_eq!(v["module_id"], "tessera-emulated");
}
