//! The two programs that hold secrets, `tessera` and `tessera-enclave`, harden themselves at
//! start (`tessera_core::hardening::harden_process`). Checked from outside on the running
//! processes, through what Linux documents in proc(5) and prctl(2):
//!
//! - core dumps off: `/proc/PID/limits` shows "Max core file size" 0 (soft and hard);
//! - not dumpable (`PR_SET_DUMPABLE` 0): the kernel makes `/proc/PID/{environ,mem,...}` owned by
//!   root, and a process of the same user can no longer open them (ptrace access checks fail
//!   without `CAP_SYS_PTRACE`). Root keeps that capability, so when the test runs as root it starts
//!   the programs and the reader as `nobody`; a plain `sleep` of the same user is the control,
//!   showing the reader could open a dumpable process's files.

use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const NOBODY: u32 = 65534;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn enclave_bin() -> PathBuf {
    let status = Command::new(env!("CARGO"))
        .args(["build", "--locked", "-p", "tessera-enclave"])
        .current_dir(workspace())
        .status()
        .expect("running cargo build");
    assert!(status.success(), "building the enclave failed");
    let exe = std::env::current_exe().expect("test executable path");
    exe.parent()
        .and_then(Path::parent)
        .expect("test binary inside target/<profile>/deps")
        .join("tessera-enclave")
}

fn is_root() -> bool {
    status_field(std::process::id(), "Uid:")
        .split_whitespace()
        .nth(1)
        == Some("0")
}

/// Runs as `nobody` when the test is root, so that "same user, no `CAP_SYS_PTRACE`" holds.
fn as_test_user(cmd: &mut Command) -> &mut Command {
    if is_root() {
        cmd.uid(NOBODY).gid(NOBODY);
    }
    cmd
}

/// A copy of `exe` that `nobody` can run even when the checkout sits in a private home directory.
fn runnable_copy(exe: &Path, dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let copy = dir.join(exe.file_name().expect("binary name"));
    std::fs::copy(exe, &copy).expect("copying the binary");
    for (path, mode) in [(dir, 0o755), (copy.as_path(), 0o755)] {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }
    copy
}

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn status_field(pid: u32, field: &str) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .expect("reading /proc/PID/status")
        .lines()
        .find_map(|l| l.strip_prefix(field).map(str::to_owned))
        .unwrap_or_default()
}

/// The soft and hard "Max core file size" from `/proc/PID/limits`.
fn core_limit(pid: u32) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("limits");
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .expect("core limit line");
    let mut cols = line["Max core file size".len()..].split_whitespace();
    (
        cols.next().unwrap_or_default().to_owned(),
        cols.next().unwrap_or_default().to_owned(),
    )
}

/// Whether a process of the test user can open `/proc/PID/<file>` for reading.
fn same_user_can_open(pid: u32, file: &str) -> bool {
    let path = format!("/proc/{pid}/{file}");
    let mut probe = Command::new("sh");
    probe
        .args(["-c", "exec 3<\"$1\"", "probe", &path])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    as_test_user(&mut probe)
        .status()
        .expect("running the probe")
        .success()
}

fn assert_hardened(name: &str, pid: u32) {
    assert_eq!(
        core_limit(pid),
        ("0".to_owned(), "0".to_owned()),
        "{name}: core dumps are not off"
    );
    let uid: u32 = status_field(pid, "Uid:")
        .split_whitespace()
        .next()
        .and_then(|u| u.parse().ok())
        .expect("uid");
    let owner = std::fs::metadata(format!("/proc/{pid}/environ"))
        .expect("stat environ")
        .uid();
    assert_eq!(
        owner, 0,
        "{name}: /proc/PID files still belong to uid {uid}, so the process is dumpable"
    );
    assert_ne!(
        uid, 0,
        "{name}: must run as an ordinary user for this check"
    );
    for file in ["environ", "mem"] {
        assert!(
            !same_user_can_open(pid, file),
            "{name}: another process of uid {uid} can open /proc/{pid}/{file}"
        );
    }
}

/// The control: an ordinary process of the same user is readable, so a refusal above means
/// something.
fn control_is_readable() {
    let mut cmd = Command::new("sleep");
    cmd.arg("30");
    let sleeper = Proc(as_test_user(&mut cmd).spawn().expect("sleep"));
    let pid = sleeper.0.id();
    assert!(
        same_user_can_open(pid, "environ"),
        "the control process's environ is unreadable: the probe proves nothing here"
    );
}

#[test]
fn the_enclave_is_not_dumpable_and_dumps_no_core() {
    control_is_readable();
    let dir = tempfile::tempdir().expect("temp dir");
    let exe = runnable_copy(&enclave_bin(), dir.path());
    let run_dir = dir.path().join("run");
    std::fs::create_dir(&run_dir).expect("mkdir");
    let sock = run_dir.join("enclave.sock");
    if is_root() {
        std::os::unix::fs::chown(&run_dir, Some(NOBODY), Some(NOBODY)).expect("chown");
    }
    let mut cmd = Command::new(exe);
    cmd.args(["--dev", "--listen"])
        .arg(format!("unix:{}", sock.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut enclave = Proc(
        as_test_user(&mut cmd)
            .spawn()
            .expect("spawning the enclave"),
    );
    // Hardening runs before the listener, so the readiness line means it is done.
    let mut lines = BufReader::new(enclave.0.stdout.take().expect("stdout")).lines();
    assert!(
        lines.any(|l| l.is_ok_and(|l| l.contains("listening on"))),
        "the enclave never became ready"
    );
    assert_hardened("tessera-enclave", enclave.0.id());
}

#[test]
fn tessera_is_not_dumpable_and_dumps_no_core() {
    control_is_readable();
    // A relay that accepts and never answers holds `tessera status` mid-request, after startup.
    let relay = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", relay.local_addr().expect("addr"));
    let dir = tempfile::tempdir().expect("temp dir");
    let exe = runnable_copy(Path::new(env!("CARGO_BIN_EXE_tessera")), dir.path());
    let mut cmd = Command::new(exe);
    cmd.args(["status", "--relay", &url])
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut tessera = Proc(as_test_user(&mut cmd).spawn().expect("spawning tessera"));
    relay
        .set_nonblocking(true)
        .expect("nonblocking accept for a deadline");
    let deadline = Instant::now() + Duration::from_secs(30);
    let _conn = loop {
        match relay.accept() {
            Ok((conn, _)) => break conn,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => {
                let mut err = String::new();
                let _ = tessera.0.kill();
                let _ = tessera
                    .0
                    .stderr
                    .take()
                    .map(|mut s| s.read_to_string(&mut err));
                panic!("tessera never connected ({e}): {err}");
            }
        }
    };
    assert_hardened("tessera", tessera.0.id());
}
