//! Process hardening for programs that hold secrets (`tessera`, `tessera-enclave`): no core
//! dumps, not dumpable (no ptrace attach by same-user processes, no /proc/PID/mem reads), and
//! memory locked where the OS allows so secrets are not written to swap.

/// The memlock limit under which an unprivileged process does not lock all its memory.
const MIN_MEMLOCK: u64 = 512 << 20;

/// Applies every protection it can and returns a warning for each it could not.
#[must_use]
pub fn harden_process() -> Vec<String> {
    let mut warnings = Vec::new();
    if let Err(e) = nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_CORE, 0, 0) {
        warnings.push(format!("could not disable core dumps: {e}"));
    }
    if let Err(e) = nix::sys::prctl::set_dumpable(false) {
        warnings.push(format!("could not mark the process non-dumpable: {e}"));
    }
    // Lock current and future pages. With MCL_FUTURE every later allocation must fit the
    // memlock limit, so without CAP_IPC_LOCK (root) only a generous limit is safe to use.
    let (soft, _) = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_MEMLOCK)
        .unwrap_or((0, 0));
    if !nix::unistd::geteuid().is_root() && soft < MIN_MEMLOCK {
        warnings.push(format!(
            "memory not locked: RLIMIT_MEMLOCK is {} KiB; secrets may reach swap (disable swap, or raise the limit to {} MiB)",
            soft / 1024,
            MIN_MEMLOCK >> 20
        ));
    } else if let Err(e) = nix::sys::mman::mlockall(
        nix::sys::mman::MlockAllFlags::MCL_CURRENT | nix::sys::mman::MlockAllFlags::MCL_FUTURE,
    ) {
        warnings.push(format!(
            "could not lock memory ({e}); secrets may reach swap: disable swap or raise RLIMIT_MEMLOCK"
        ));
    }
    warnings
}
