//! A dev enclave and the relay as real processes on local sockets, and the `tessera` binary run
//! as a member would run it, for end-to-end tests.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Once;
use std::time::{Duration, Instant};

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The enclave and relay binaries, built once per test process into Cargo's target folder.
pub fn binary(name: &str) -> PathBuf {
    static BUILD: Once = Once::new();
    BUILD.call_once(|| {
        let status = Command::new(env!("CARGO"))
            .args([
                "build",
                "--locked",
                "-p",
                "tessera-enclave",
                "-p",
                "tessera-relay",
            ])
            .current_dir(workspace())
            .status()
            .expect("cargo build");
        assert!(status.success(), "building the enclave and relay failed");
    });
    // The tessera binary under test sits in <target>/debug; the others are built beside it.
    Path::new(env!("CARGO_BIN_EXE_tessera"))
        .parent()
        .unwrap()
        .join(name)
}

/// A child process killed when dropped.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `cmd` and returns it with the first stdout line containing `ready`.
pub fn start(cmd: &mut Command, ready: &str) -> (Proc, String) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = lines
        .find_map(|l| l.ok().filter(|l| l.contains(ready)))
        .unwrap_or_else(|| panic!("{cmd:?} exited before printing {ready:?}"));
    // Keep draining so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (Proc(child), line)
}

/// A dev enclave with its relay, in `dir`.
pub struct Services {
    pub enclave: Proc,
    pub relay_proc: Proc,
    pub relay: String,
}

/// Starts a fresh dev enclave (writing its root and PCRs as `<tag>-root.pem`, `<tag>-pcrs.json`)
/// and a relay in front of it.
pub fn services(dir: &Path, tag: &str) -> Services {
    services_of(dir, tag, None)
}

/// Like [`services`], with the dev NSM's certificates issued by the dev CA at `ca` (created if
/// missing), so several enclaves share one root and intermediates, as a region's nodes do.
pub fn services_of(dir: &Path, tag: &str, ca: Option<&Path>) -> Services {
    let sock = dir.join(format!("{tag}.sock"));
    let mut cmd = Command::new(binary("tessera-enclave"));
    cmd.arg("--listen")
        .arg(format!("unix:{}", sock.display()))
        .arg("--dev")
        .arg("--dev-root-out")
        .arg(dir.join(format!("{tag}-root.pem")))
        .arg("--dev-pcrs-out")
        .arg(dir.join(format!("{tag}-pcrs.json")));
    if let Some(ca) = ca {
        cmd.arg("--dev-ca").arg(ca);
    }
    let (enclave, _) = start(&mut cmd, "listening on");
    let (relay_proc, line) = start(
        Command::new(binary("tessera-relay"))
            .args(["--listen", "127.0.0.1:0", "--enclave"])
            .arg(format!("unix:{}", sock.display())),
        "listening on http://",
    );
    let relay = line[line.find("http://").unwrap()..].trim().to_owned();
    Services {
        enclave,
        relay_proc,
        relay,
    }
}

/// Runs `tessera` with the transcript in `transcript`.
pub fn tessera_in(transcript: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(args)
        .env("TESSERA_TRANSCRIPT", transcript)
        .env_remove("TESSERA_PINS")
        .output()
        .expect("run tessera")
}

/// Runs `tessera` and requires success; returns stdout.
pub fn ok_in(transcript: &Path, args: &[&str]) -> String {
    let out = tessera_in(transcript, args);
    assert!(
        out.status.success(),
        "tessera {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The one file in `dir` whose name starts with `prefix`.
pub fn only_file(dir: &Path, prefix: &str) -> PathBuf {
    let mut found = files(dir, prefix);
    assert_eq!(found.len(), 1, "{prefix}* in {}: {found:?}", dir.display());
    found.remove(0)
}

/// The files in `dir` whose names start with `prefix`.
pub fn files(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
}

/// A tmux server of its own with one 80x24 session `t`, killed when dropped.
pub struct Tmux {
    pub socket: String,
}

impl Tmux {
    pub fn cmd(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("tmux (scripts/ensure-deps.sh installs it)");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "t"];
        args.extend_from_slice(keys);
        self.cmd(&args);
    }

    pub fn screen(&self) -> String {
        self.cmd(&["capture-pane", "-p", "-t", "t"])
    }

    /// Waits (bounded) until the screen shows `text`.
    pub fn wait_for(&self, text: &str) -> String {
        let start = Instant::now();
        loop {
            let s = self.screen();
            if s.contains(text) {
                return s;
            }
            assert!(
                start.elapsed() < Duration::from_mins(1),
                "timed out waiting for {text:?}; screen:\n{s}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        self.cmd(&["kill-server"]);
    }
}
