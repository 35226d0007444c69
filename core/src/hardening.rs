//! Process hardening for programs that hold secrets (`tessera`, `tessera-enclave`): no core
//! dumps, not dumpable (no ptrace attach by same-user processes, no /proc/PID/mem reads), and
//! memory locked where the OS allows so secrets are not written to swap.

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
    // Lock current and future pages; needs CAP_IPC_LOCK or a sufficient RLIMIT_MEMLOCK.
    if let Err(e) = nix::sys::mman::mlockall(
        nix::sys::mman::MlockAllFlags::MCL_CURRENT | nix::sys::mman::MlockAllFlags::MCL_FUTURE,
    ) {
        warnings.push(format!(
            "could not lock memory ({e}); secrets may reach swap: disable swap or raise RLIMIT_MEMLOCK"
        ));
    }
    warnings
}
