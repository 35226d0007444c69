//! Bundles as files on removable media.
//!
//! A file appears under its final name only once it is complete and on the device: it is
//! written to a temporary name in the same folder, flushed, linked into place without replacing
//! anything, and the folder is flushed too. Pulling the stick at any moment leaves either no
//! file or a whole one (plus, at worst, a hidden temporary file that listings ignore).

use std::fmt::Write as _;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::bundle::{Bundle, BundleError, BundleSummary, Fingerprint, MAX_BUNDLE_BYTES};

/// Extension of bundle files; listings only look at these.
pub const FILE_EXTENSION: &str = "tbundle";

/// What went wrong reading or writing a file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UsbError {
    #[error("{} already exists and is never overwritten (move it away or choose another name)", path.display())]
    AlreadyExists { path: PathBuf },
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("{}: {source}", path.display())]
    Bundle { path: PathBuf, source: BundleError },
    #[error("{}: not a regular file", path.display())]
    NotAFile { path: PathBuf },
}

impl UsbError {
    fn io(path: &Path, source: io::Error) -> Self {
        if source.kind() == io::ErrorKind::AlreadyExists {
            Self::AlreadyExists {
                path: path.to_owned(),
            }
        } else {
            Self::Io {
                path: path.to_owned(),
                source,
            }
        }
    }
}

/// The file name a bundle is saved under: kind, namespace, member, nonce (or the file name of a
/// file bundle) and the fingerprint, e.g. `share-payments-alice-n7-ab12cd34ef567890.tbundle`.
/// Labels are reduced to `[A-Za-z0-9._]` so the name is safe on any file system and in a shell.
#[must_use]
pub fn file_name_for(bundle: &Bundle) -> String {
    file_name_with(bundle, bundle.fingerprint())
}

fn file_name_with(bundle: &Bundle, fp: Fingerprint) -> String {
    let meta = bundle.meta();
    let mut name = bundle.kind().as_str().to_owned();
    for label in [&meta.namespace, &meta.member, &meta.file_name]
        .into_iter()
        .flatten()
    {
        name.push('-');
        name.push_str(&safe_component(label));
    }
    if let Some(nonce) = meta.nonce {
        let _ = write!(name, "-n{nonce}");
    }
    name.push('-');
    name.push_str(&fp.to_hex());
    name.push('.');
    name.push_str(FILE_EXTENSION);
    name
}

fn safe_component(label: &str) -> String {
    const MAX: usize = 32;
    let mut out: String = label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(MAX)
        .collect();
    // A leading dot would hide the file; dots at the end confuse some file systems.
    while out.starts_with('.') {
        out.replace_range(..1, "_");
    }
    while out.ends_with('.') {
        out.pop();
        out.push('_');
    }
    out
}

/// Saves a bundle into `dir` under [`file_name_for`] and returns the path.
pub fn write_bundle(dir: &Path, bundle: &Bundle) -> Result<PathBuf, UsbError> {
    let encoded = bundle.encode();
    let path = dir.join(file_name_with(bundle, Fingerprint::of(&encoded)));
    write_new_file(&path, &encoded)?;
    Ok(path)
}

/// Saves a bundle at exactly `path`.
pub fn write_bundle_to(path: &Path, bundle: &Bundle) -> Result<(), UsbError> {
    write_new_file(path, &bundle.encode())
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Writes `contents` to a new file at `path`, atomically and durably, failing with
/// [`UsbError::AlreadyExists`] if anything is there already.
pub fn write_new_file(path: &Path, contents: &[u8]) -> Result<(), UsbError> {
    let file_name = path
        .file_name()
        .ok_or_else(|| UsbError::io(path, io::Error::other("path has no file name")))?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    // Checked first only for a clear early error; the link below is what guarantees it.
    if fs::symlink_metadata(path).is_ok() {
        return Err(UsbError::AlreadyExists {
            path: path.to_owned(),
        });
    }

    let temp = dir.join(format!(
        ".{}.{}-{}.tmp",
        file_name.to_string_lossy(),
        std::process::id(),
        TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = write_temp(&temp, contents).and_then(|()| publish(&temp, path));
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result?;
    sync_dir(dir)
}

fn write_temp(temp: &Path, contents: &[u8]) -> Result<(), UsbError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(temp)
        .map_err(|e| UsbError::io(temp, e))?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .map_err(|e| UsbError::io(temp, e))
}

/// Moves the complete temporary file to its final name without ever replacing a file there.
fn publish(temp: &Path, path: &Path) -> Result<(), UsbError> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use nix::errno::Errno;
        use nix::fcntl::{AT_FDCWD, RenameFlags, renameat2};
        match renameat2(
            AT_FDCWD,
            temp,
            AT_FDCWD,
            path,
            RenameFlags::RENAME_NOREPLACE,
        ) {
            Ok(()) => return Ok(()),
            // File systems without the flag (older FUSE, some network mounts) fall through to
            // the hard-link route; every other error is final.
            Err(Errno::EINVAL | Errno::ENOSYS | Errno::EOPNOTSUPP) => {}
            Err(e) => return Err(UsbError::io(path, io::Error::from(e))),
        }
    }
    // A hard link fails if the target exists, which is the no-overwrite guarantee.
    fs::hard_link(temp, path).map_err(|e| UsbError::io(path, e))?;
    fs::remove_file(temp).map_err(|e| UsbError::io(temp, e))
}

fn sync_dir(dir: &Path) -> Result<(), UsbError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| UsbError::io(dir, e))
}

/// Reads a regular file of at most `max` bytes, checking the size before reading it in.
///
/// Anything but a regular file (a FIFO, a device, a socket, a directory) is refused without
/// blocking: the type is checked before opening, and the open itself does not wait (a FIFO with
/// no writer would otherwise hang `open` forever), so a file swapped in between is caught by the
/// check on the open descriptor.
pub fn read_limited(path: &Path, max: usize) -> Result<Vec<u8>, UsbError> {
    let not_a_file = || UsbError::NotAFile {
        path: path.to_owned(),
    };
    if !fs::metadata(path)
        .map_err(|e| UsbError::io(path, e))?
        .is_file()
    {
        return Err(not_a_file());
    }
    let mut options = OpenOptions::new();
    options.read(true);
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // Reads of a regular file ignore O_NONBLOCK; only the open of a FIFO is affected.
        options.custom_flags(nix::fcntl::OFlag::O_NONBLOCK.bits());
    }
    let file = options.open(path).map_err(|e| UsbError::io(path, e))?;
    let meta = file.metadata().map_err(|e| UsbError::io(path, e))?;
    if !meta.is_file() {
        return Err(not_a_file());
    }
    let too_large = |size: u64| UsbError::Bundle {
        path: path.to_owned(),
        source: BundleError::TooLarge {
            size: usize::try_from(size).unwrap_or(usize::MAX),
            max,
        },
    };
    if meta.len() > max as u64 {
        return Err(too_large(meta.len()));
    }
    let mut out = Vec::with_capacity(meta.len() as usize);
    // The file may grow between the size check and the read; the bound holds regardless.
    file.take(max as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| UsbError::io(path, e))?;
    if out.len() > max {
        return Err(too_large(out.len() as u64));
    }
    Ok(out)
}

/// Reads and strictly decodes a bundle file.
pub fn read_bundle(path: &Path) -> Result<Bundle, UsbError> {
    let bytes = read_limited(path, MAX_BUNDLE_BYTES)?;
    Bundle::decode(&bytes).map_err(|source| UsbError::Bundle {
        path: path.to_owned(),
        source,
    })
}

/// One `.tbundle` file found in a folder.
#[derive(Debug)]
pub struct FoundBundle {
    pub path: PathBuf,
    /// Fingerprint of the file bytes, available even when the bundle does not decode.
    pub fingerprint: Option<Fingerprint>,
    /// The decoded summary, or why the file is not a valid bundle.
    pub summary: Result<BundleSummary, UsbError>,
}

/// The bundles in `dir` (not recursive), sorted by file name. Hidden files (including
/// unfinished temporary files) and symlinks are skipped; a damaged file is listed with its
/// error so the operator sees it rather than silently missing it.
pub fn list_bundles(dir: &Path) -> Result<Vec<FoundBundle>, UsbError> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| UsbError::io(dir, e))? {
        let entry = entry.map_err(|e| UsbError::io(dir, e))?;
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.')
            || path.extension().and_then(|e| e.to_str()) != Some(FILE_EXTENSION)
        {
            continue;
        }
        let is_file = entry
            .file_type()
            .map_err(|e| UsbError::io(&path, e))?
            .is_file();
        if !is_file {
            continue;
        }
        let (fingerprint, summary) = match read_limited(&path, MAX_BUNDLE_BYTES) {
            Ok(bytes) => (
                Some(Fingerprint::of(&bytes)),
                Bundle::decode(&bytes)
                    .map(|b| b.summary())
                    .map_err(|source| UsbError::Bundle {
                        path: path.clone(),
                        source,
                    }),
            ),
            Err(e) => (None, Err(e)),
        };
        found.push(FoundBundle {
            path,
            fingerprint,
            summary,
        });
    }
    found.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(found)
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod read_limited_tests {
    use super::{UsbError, read_limited};
    use std::time::Duration;

    #[test]
    fn a_fifo_a_directory_and_a_device_are_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("bundle.tsb");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        let paths = [fifo, dir.path().to_owned(), "/dev/zero".into()];
        for path in paths {
            let (tx, rx) = std::sync::mpsc::channel();
            let p = path.clone();
            std::thread::spawn(move || tx.send(read_limited(&p, 1024)).unwrap());
            // A blocked open would never answer; a refusal comes at once.
            let result = rx
                .recv_timeout(Duration::from_secs(30))
                .unwrap_or_else(|_| panic!("{} blocked", path.display()));
            assert!(
                matches!(result, Err(UsbError::NotAFile { .. })),
                "{}: {result:?}",
                path.display()
            );
        }
        let file = dir.path().join("ok");
        std::fs::write(&file, b"abc").unwrap();
        assert_eq!(read_limited(&file, 3).unwrap(), b"abc");
        assert!(read_limited(&file, 2).is_err());
    }
}
