//! Where a member's namespace pins live: a folder, one signed file per (namespace, member).
//! The pin object and its parser are [`tessera_core::pin`].

use std::io::Write;
use std::path::{Path, PathBuf};

use tessera_core::bytes::Hash32;
use tessera_core::device::KeyDevice;
use tessera_core::keys::{PublicKey, Role};

pub use tessera_core::pin::{
    Highest, MAX_PIN_BYTES, NamespacePin, PIN_VERSION, PcrPolicy, PinError, PinLedger, open, seal,
};

/// The pin ledger the member's key device holds.
pub fn ledger_of(device: &mut dyn KeyDevice) -> Result<PinLedger, PinError> {
    PinLedger::decode(device.read_pin_ledger()?.as_deref())
}

/// A folder of pins, one file per (namespace, member).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinStore {
    dir: PathBuf,
}

/// What the store holds for one namespace.
pub type Lookup = Result<Option<NamespacePin>, PinError>;

impl PinStore {
    #[must_use]
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// `$TESSERA_PINS`, else `~/.local/share/tessera/pins`.
    #[must_use]
    pub fn default_dir() -> Option<PathBuf> {
        std::env::var_os("TESSERA_PINS")
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share/tessera/pins"))
            })
    }

    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `<namespace>.<first 8 bytes of the owner's key hash>.pin`. Namespace names are
    /// `[A-Za-z0-9._-]` (manifest validation); anything else is hex-encoded here.
    #[must_use]
    pub fn path(&self, namespace: &str, owner: &PublicKey) -> PathBuf {
        let safe = !namespace.is_empty()
            && !namespace.starts_with('.')
            && namespace
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        let ns = if safe {
            namespace.to_owned()
        } else {
            format!("x{}", hex::encode(namespace.as_bytes()))
        };
        let id = Hash32::sha256(owner.compressed());
        self.dir
            .join(format!("{ns}.{}.pin", hex::encode(&id.0[..8])))
    }

    /// The member's pin for `namespace`, as the key device's `ledger` records it; `Ok(None)`
    /// only when there is no pin file and the device records no pin for the namespace. A pin
    /// file that is missing, older than the device's record, or not recorded there is refused.
    pub fn load(&self, namespace: &str, mine: &PublicKey, ledger: &PinLedger) -> Lookup {
        let path = self.path(namespace, mine);
        let bytes = match read_small(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return ledger.missing(namespace).map_or(Ok(None), Err);
            }
            Err(e) => return Err(PinError::Io(format!("{}: {e}", path.display()))),
        };
        let pin = open(&bytes, mine)?;
        if pin.namespace != namespace {
            return Err(PinError::WrongNamespace {
                found: pin.namespace,
                expected: namespace.to_owned(),
            });
        }
        ledger.check(&pin)?;
        Ok(Some(pin))
    }

    /// Every pin file in the folder, each checked under `mine` and the device's `ledger`, and
    /// every namespace the ledger records whose pin file is not here.
    #[must_use]
    pub fn list(
        &self,
        mine: &PublicKey,
        ledger: &PinLedger,
    ) -> Vec<(PathBuf, Result<NamespacePin, PinError>)> {
        let mut out: Vec<_> = std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "pin"))
            .map(|p| {
                let r = read_small(&p)
                    .map_err(|e| PinError::Io(e.to_string()))
                    .and_then(|b| open(&b, mine))
                    .and_then(|pin| ledger.check(&pin).map(|()| pin));
                (p, r)
            })
            .collect();
        for e in &ledger.entries {
            let path = self.path(&e.namespace, mine);
            if !out.iter().any(|(p, _)| *p == path)
                && let Some(missing) = ledger.missing(&e.namespace)
            {
                out.push((path, Err(missing)));
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Signs `pin` with the device, records it in the device's pin ledger, and replaces the
    /// stored copy atomically. The new file is written and synced under a temporary name first,
    /// then the ledger, then the rename: a failure before the ledger write changes nothing.
    pub fn save(
        &self,
        pin: &NamespacePin,
        device: &mut dyn KeyDevice,
    ) -> Result<PathBuf, PinError> {
        let mine = device.public_key(Role::Manifest)?;
        if mine != pin.owner {
            return Err(PinError::NotYours {
                signer: mine.fingerprint(),
                mine: pin.owner.fingerprint(),
            });
        }
        let mut ledger = ledger_of(device)?;
        ledger.record(pin)?;
        let bytes = seal(pin, device)?;
        let path = self.path(&pin.namespace, &pin.owner);
        let io = |e: std::io::Error| PinError::Io(format!("{}: {e}", path.display()));
        let tmp = write_temp(&path, &bytes).map_err(io)?;
        if let Err(e) = device.write_pin_ledger(
            &ledger.encode(),
            &format!(
                "record pin #{} for {} on your key",
                pin.sequence, pin.namespace
            ),
        ) {
            let _ = std::fs::remove_file(&tmp);
            return Err(e.into());
        }
        commit_temp(&tmp, &path).map_err(io)?;
        Ok(path)
    }
}

/// Reads a regular file of at most [`MAX_PIN_BYTES`] (a FIFO or device is refused, not opened).
fn read_small(path: &Path) -> std::io::Result<Vec<u8>> {
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    if meta.len() > MAX_PIN_BYTES as u64 {
        return Err(std::io::Error::other(format!(
            "larger than {MAX_PIN_BYTES} bytes"
        )));
    }
    std::fs::read(path)
}

/// Writes and syncs `bytes` to a temporary file beside `path`; returns its name.
fn write_temp(path: &Path, bytes: &[u8]) -> std::io::Result<PathBuf> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id()
    ));
    let _ = std::fs::remove_file(&tmp);
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .and_then(|mut f| f.write_all(bytes).and_then(|()| f.sync_all()));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(tmp)
}

/// Renames the temporary file over `path` and syncs the folder: a crash leaves the old or the new.
fn commit_temp(tmp: &Path, path: &Path) -> std::io::Result<()> {
    if let Err(e) = std::fs::rename(tmp, path) {
        let _ = std::fs::remove_file(tmp);
        return Err(e);
    }
    if let Ok(d) = std::fs::File::open(path.parent().unwrap_or(Path::new("."))) {
        let _ = d.sync_all();
    }
    Ok(())
}
