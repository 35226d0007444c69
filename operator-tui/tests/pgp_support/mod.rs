//! Shared by the OpenPGP tests: throwaway gpg homes, and `sq` where it is installed.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use tempfile::TempDir;

/// A temporary GNUPGHOME. Its gpg-agent (started by key generation and signing) is stopped on
/// drop.
pub struct GpgHome {
    pub dir: TempDir,
}

impl GpgHome {
    pub fn new() -> Self {
        // gpg-agent's socket path must stay short: keep the home directly under /tmp.
        let dir = tempfile::Builder::new()
            .prefix("tg")
            .tempdir_in("/tmp")
            .expect("temp GNUPGHOME");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))
                .expect("chmod GNUPGHOME");
        }
        Self { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Runs gpg in batch mode with an empty passphrase allowed.
    pub fn gpg(&self, args: &[&str]) -> Output {
        Command::new("gpg")
            .env("GNUPGHOME", self.path())
            .args([
                "--batch",
                "--no-tty",
                "--pinentry-mode",
                "loopback",
                "--passphrase",
                "",
            ])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("gpg is installed (scripts/ensure-deps.sh installs gnupg)")
    }

    pub fn gpg_ok(&self, args: &[&str]) -> Output {
        let out = self.gpg(args);
        assert!(
            out.status.success(),
            "gpg {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Generates a signing key for `uid` with `algo` (`nistp256`, `ed25519`).
    pub fn generate(&self, uid: &str, algo: &str) {
        self.gpg_ok(&["--quick-gen-key", uid, algo, "sign", "never"]);
    }

    /// The armored public key of `uid`, written to `path`.
    pub fn export(&self, uid: &str, path: &Path) {
        let out = self.gpg_ok(&["--armor", "--export", uid]);
        assert!(!out.stdout.is_empty(), "gpg exported nothing for {uid}");
        std::fs::write(path, out.stdout).expect("write exported key");
    }

    /// A detached armored signature by `uid` over `file`, written to `sig`.
    pub fn detach_sign(&self, uid: &str, file: &Path, sig: &Path, extra: &[&str]) {
        let mut args = vec!["--armor", "--detach-sign", "--local-user", uid];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--output", sig.to_str().unwrap(), file.to_str().unwrap()]);
        self.gpg_ok(&args);
    }

    /// `gpg --verify` with machine-readable status lines on stdout.
    pub fn verify(&self, sig: &Path, file: &Path) -> Output {
        self.gpg(&[
            "--status-fd",
            "1",
            "--verify",
            sig.to_str().unwrap(),
            file.to_str().unwrap(),
        ])
    }
}

impl Drop for GpgHome {
    fn drop(&mut self) {
        let _ = Command::new("gpgconf")
            .arg("--homedir")
            .arg(self.path())
            .args(["--kill", "gpg-agent"])
            .stdin(Stdio::null())
            .output();
    }
}

/// `sq`, when installed.
pub fn sq() -> Option<PathBuf> {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|d| d.join("sq"))
        .find(|p| p.is_file());
    if found.is_none() {
        eprintln!(
            "\n!!!!!!!! SKIPPED the sq checks: sq is not installed (apt-get install sq) !!!!!!!!\n"
        );
    }
    found
}

/// `sq verify` of a detached signature with one signer certificate, in the syntax of sq 0.x
/// (`--signer-cert`, `--detached`) or, failing that, sq 1.x (`--signer-file`,
/// `--signature-file`).
pub fn sq_verify(sq: &Path, cert: &Path, sig: &Path, file: &Path) -> Output {
    let home = tempfile::tempdir().expect("sq home");
    let run = |args: &[&str]| {
        Command::new(sq)
            .env("SEQUOIA_HOME", home.path())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run sq")
    };
    let (cert, sig, file) = (
        cert.to_str().unwrap(),
        sig.to_str().unwrap(),
        file.to_str().unwrap(),
    );
    let old = run(&["verify", "--signer-cert", cert, "--detached", sig, file]);
    let usage_error = old.status.code() == Some(2)
        && String::from_utf8_lossy(&old.stderr).contains("wasn't expected");
    if !usage_error {
        return old;
    }
    run(&[
        "verify",
        "--signer-file",
        cert,
        "--signature-file",
        sig,
        file,
    ])
}
