//! `tessera image build` is deterministic: two builds from copies of the same inputs in
//! different directories give the same EIF bytes, and `tessera pcrs` of the image prints the
//! PCRs the build printed. Kernel and binaries are stand-in blobs here (the emulated-enclave test
//! boots a real kernel); the image layout does not depend on what the bytes are.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn tessera(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(args)
        .output()
        .expect("run tessera")
}

/// Deterministic pseudo-random bytes (xorshift), so the blobs look like binaries, not zeros.
fn blob(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Lays the inputs out under `root` (at different depths and names per builder) and builds.
fn build(root: &Path, out_name: &str) -> (PathBuf, String) {
    build_with_pivot(root, out_name, 4)
}

fn build_with_pivot(root: &Path, out_name: &str, pivot_seed: u64) -> (PathBuf, String) {
    std::fs::create_dir_all(root).unwrap();
    let put = |name: &str, bytes: Vec<u8>| {
        let p = root.join(name);
        std::fs::write(&p, bytes).unwrap();
        p.display().to_string()
    };
    let kernel = put("vmlinuz", blob(1, 300_000));
    let init = put("tessera-init", blob(2, 50_000));
    let enclave = put("tessera-enclave", blob(3, 200_000));
    let pivot = put("pivot", blob(pivot_seed, 10_000));
    let m1 = put("virtio_mmio.ko.xz", blob(5, 9_000));
    let m2 = put("tessera_virtio_mmio.ko", blob(6, 7_000));
    let out = root.join(out_name);
    let o = tessera(&[
        "image",
        "build",
        "--kernel",
        &kernel,
        "--init",
        &init,
        "--enclave",
        &enclave,
        "--pivot",
        &pivot,
        "--module",
        &m1,
        "--module",
        &m2,
        "--module-params",
        "tessera_virtio_mmio.ko=device=${virtio_mmio.device}",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(
        o.status.success(),
        "build failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    (out, String::from_utf8(o.stdout).unwrap())
}

fn pcr_lines(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| l.starts_with("PCR") || l.starts_with("SHA256"))
        .collect()
}

#[test]
fn two_builders_get_the_same_image_and_pcrs() {
    let dir = tempfile::tempdir().unwrap();
    let (a, printed_a) = build(&dir.path().join("a"), "image.eif");
    let (b, printed_b) = build(
        &dir.path().join("second-builder/deeper/src"),
        "other-name.eif",
    );
    let bytes_a = std::fs::read(&a).unwrap();
    let bytes_b = std::fs::read(&b).unwrap();
    assert!(bytes_a == bytes_b, "the two builds differ");
    assert_eq!(pcr_lines(&printed_a), pcr_lines(&printed_b));
    assert_eq!(pcr_lines(&printed_a).len(), 4, "{printed_a}");

    // `tessera pcrs` of the image prints exactly the PCRs the build printed.
    let o = tessera(&["pcrs", a.to_str().unwrap()]);
    assert!(o.status.success());
    let measured = String::from_utf8(o.stdout).unwrap();
    let built: Vec<&str> = pcr_lines(&printed_a)
        .into_iter()
        .filter(|l| l.starts_with("PCR"))
        .collect();
    assert_eq!(measured.lines().collect::<Vec<_>>(), built);
}

#[test]
fn a_changed_application_changes_pcr0_and_pcr2_but_not_pcr1() {
    let dir = tempfile::tempdir().unwrap();
    let (a, _) = build(&dir.path().join("a"), "image.eif");
    let (b, _) = build_with_pivot(&dir.path().join("b"), "image.eif", 40);
    let pcrs = |p: &Path| {
        let o = tessera(&["pcrs", p.to_str().unwrap()]);
        String::from_utf8(o.stdout)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let (pa, pb) = (pcrs(&a), pcrs(&b));
    assert_ne!(pa[0], pb[0], "PCR0 covers the whole image");
    assert_eq!(
        pa[1], pb[1],
        "PCR1 is the kernel, command line and boot ramdisk"
    );
    assert_ne!(pa[2], pb[2], "PCR2 is the application ramdisk");
}

#[test]
fn bad_inputs_are_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let k = dir.path().join("k");
    std::fs::write(&k, b"kernel").unwrap();
    let out = dir.path().join("out.eif");
    let k = k.to_str().unwrap();
    let o = out.to_str().unwrap();
    let base = [
        "image",
        "build",
        "--kernel",
        k,
        "--init",
        k,
        "--enclave",
        k,
        "-o",
        o,
    ];

    let missing = tessera(&[&base[..], &["--pivot", "/nonexistent/pivot"]].concat());
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent/pivot"));

    let relative = tessera(&[&base[..], &["--lib", "lib/libc.so.6"]].concat());
    assert_eq!(relative.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&relative.stderr).contains("absolute path"));

    let orphan = tessera(&[&base[..], &["--module-params", "nsm.ko=x=1"]].concat());
    assert_eq!(orphan.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&orphan.stderr).contains("no --module"));

    let nul = tessera(&[&base[..], &["--enclave-arg", "a\nb"]].concat());
    assert_eq!(nul.status.code(), Some(1));
    assert!(!out.exists(), "a refused build must not write the image");
}
