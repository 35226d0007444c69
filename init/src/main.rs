//! `tessera-init`: PID 1 of the Tessera enclave image.
//!
//! 1. mounts `/proc`, `/sys` and `/dev` (devtmpfs, where `/dev/nsm` appears);
//! 2. loads the kernel modules listed in `/etc/tessera/modules`, in order (`PATH PARAMS`, where
//!    `${name}` in PARAMS becomes the comma-joined values of the kernel command-line parameter
//!    `name`);
//! 3. waits for `/dev/nsm`, then starts `/bin/tessera-enclave` with the arguments in
//!    `/etc/tessera/enclave.args` (one per line) and its output on the console;
//! 4. reaps every child; when `tessera-enclave` exits, syncs and reboots, which ends the
//!    enclave (Nitro) or the emulator (QEMU with `-no-reboot`).
//!
//! Any failure before the enclave starts is printed and ends the enclave the same way: an image
//! that cannot serve must not linger.

use std::ffi::CString;
use std::os::fd::AsFd;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use nix::kmod::{ModuleInitFlags, finit_module};
use nix::mount::{MsFlags, mount};
use nix::sys::reboot::{RebootMode, reboot};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{Pid, sync};

const MODULES: &str = "/etc/tessera/modules";
const ENCLAVE: &str = "/bin/tessera-enclave";
const ENCLAVE_ARGS: &str = "/etc/tessera/enclave.args";
const NSM: &str = "/dev/nsm";
/// How long the NSM device may take to appear after its module is loaded.
const NSM_WAIT: Duration = Duration::from_secs(10);
/// `MODULE_INIT_COMPRESSED_FILE`: the kernel decompresses the module itself.
const MODULE_INIT_COMPRESSED_FILE: u32 = 4;

fn main() -> ExitCode {
    say("starting");
    if std::process::id() != 1 {
        say("not PID 1: this program is the enclave image's init, not a tool to run by hand");
        return ExitCode::from(2);
    }
    let status = match boot() {
        Ok(pid) => reap(pid),
        Err(e) => {
            say(&format!("boot failed: {e}"));
            1
        }
    };
    say(&format!("stopping (tessera-enclave status {status})"));
    sync();
    let _ = reboot(RebootMode::RB_AUTOBOOT);
    // Only reached if reboot failed; the kernel then panics, which also ends the enclave.
    ExitCode::from(1)
}

fn say(msg: &str) {
    println!("tessera-init: {msg}");
}

/// Mounts, loads modules, starts the enclave program; returns its pid.
fn boot() -> Result<Pid, String> {
    mount_fs("proc", "/proc", "proc")?;
    mount_fs("sysfs", "/sys", "sysfs")?;
    mount_fs("devtmpfs", "/dev", "devtmpfs")?;

    let cmdline =
        std::fs::read_to_string("/proc/cmdline").map_err(|e| format!("/proc/cmdline: {e}"))?;
    let list = std::fs::read_to_string(MODULES).unwrap_or_default();
    for line in list.lines().filter(|l| !l.trim().is_empty()) {
        let (path, params) = line.split_once(' ').unwrap_or((line, ""));
        let params = substitute(params, &cmdline);
        load_module(path, &params)?;
    }

    let deadline = Instant::now() + NSM_WAIT;
    while !std::path::Path::new(NSM).exists() {
        if Instant::now() > deadline {
            say(&format!("{NSM} did not appear within {NSM_WAIT:?}"));
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }

    let args = std::fs::read_to_string(ENCLAVE_ARGS).map_err(|e| format!("{ENCLAVE_ARGS}: {e}"))?;
    let args: Vec<&str> = args.lines().filter(|l| !l.is_empty()).collect();
    say(&format!("starting {ENCLAVE} {}", args.join(" ")));
    let child = Command::new(ENCLAVE)
        .args(&args)
        .env_clear()
        .spawn()
        .map_err(|e| format!("cannot start {ENCLAVE}: {e}"))?;
    Ok(Pid::from_raw(
        i32::try_from(child.id()).map_err(|e| e.to_string())?,
    ))
}

fn mount_fs(source: &str, target: &str, fstype: &str) -> Result<(), String> {
    mount(
        Some(source),
        target,
        Some(fstype),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        None::<&str>,
    )
    .map_err(|e| format!("mount {fstype} on {target}: {e}"))
}

fn load_module(path: &str, params: &str) -> Result<(), String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{path}: {e}"))?;
    let flags = if [".xz", ".gz", ".zst"].iter().any(|s| path.ends_with(s)) {
        ModuleInitFlags::from_bits_retain(MODULE_INIT_COMPRESSED_FILE)
    } else {
        ModuleInitFlags::empty()
    };
    let c_params = CString::new(params).map_err(|_| format!("{path}: parameters hold NUL"))?;
    match finit_module(file.as_fd(), &c_params, flags) {
        Ok(()) => {
            say(&format!("loaded {path} {params}"));
            Ok(())
        }
        // Built into the kernel or loaded already.
        Err(nix::errno::Errno::EEXIST) => Ok(()),
        Err(e) => Err(format!("loading {path}: {e}")),
    }
}

/// Replaces each `${name}` in `params` by the comma-joined values of the command-line
/// parameter `name` (empty when it is absent).
fn substitute(params: &str, cmdline: &str) -> String {
    let mut out = String::new();
    let mut rest = params;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            return out;
        };
        let name = &after[..end];
        let values: Vec<&str> = cmdline
            .split_whitespace()
            .filter_map(|word| word.strip_prefix(name)?.strip_prefix('='))
            .collect();
        out.push_str(&values.join(","));
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

/// Reaps children until the enclave program exits; returns its exit code (128 + signal when
/// killed).
fn reap(enclave: Pid) -> i32 {
    loop {
        match waitpid(None::<Pid>, None) {
            Ok(WaitStatus::Exited(pid, code)) if pid == enclave => return code,
            Ok(WaitStatus::Signaled(pid, sig, _)) if pid == enclave => return 128 + sig as i32,
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => {
                say(&format!("wait: {e}"));
                return 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::substitute;

    #[test]
    fn command_line_values_are_joined() {
        let cmdline = "console=ttyS0 virtio_mmio.device=512@0xd0000000:5 quiet \
                       virtio_mmio.device=512@0xd0000200:6\n";
        assert_eq!(
            substitute("device=${virtio_mmio.device}", cmdline),
            "device=512@0xd0000000:5,512@0xd0000200:6"
        );
        assert_eq!(substitute("x=${absent} y=1", cmdline), "x= y=1");
        assert_eq!(substitute("plain", cmdline), "plain");
        assert_eq!(substitute("open=${never", cmdline), "open=${never");
    }
}
