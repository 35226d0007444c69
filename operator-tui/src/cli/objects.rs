//! Reading and writing ceremony objects as files: either an air-gap bundle of the expected kind
//! or the bare CBOR object, so files move over USB or QR unchanged.

use std::path::{Path, PathBuf};

use airgap_bundle::{Bundle, BundleKind, Metadata};
use serde::Serialize;

use super::common::{Failure, read, write_new};

/// The payload of `path`: a bundle's payload after checking its kind, or the file itself when
/// it is not a bundle.
pub fn payload(path: &Path, kind: BundleKind) -> Result<Vec<u8>, Failure> {
    let bytes = read(path)?;
    match Bundle::decode(&bytes) {
        Ok(b) if b.kind() == kind => Ok(b.into_payload()),
        Ok(b) => Err(Failure::refused(format!(
            "{}: a {} bundle, expected {kind}",
            path.display(),
            b.kind()
        ))),
        Err(e) if looks_like_bundle(&bytes) => Err(Failure::refused(format!(
            "{}: damaged bundle: {e}\nnext: {}",
            path.display(),
            e.next_step()
        ))),
        Err(_) => Ok(bytes),
    }
}

/// Decodes the payload of `path` with `decode`, naming the file in errors.
pub fn load<T, E: std::fmt::Display>(
    path: &Path,
    kind: BundleKind,
    decode: impl FnOnce(&[u8]) -> Result<T, E>,
) -> Result<T, Failure> {
    decode(&payload(path, kind)?).map_err(|e| Failure::refused(format!("{}: {e}", path.display())))
}

/// Writes `value` as a bundle of `kind` into `out`: a directory (named for its content) or a
/// new file path. Returns the path written.
pub fn save<T: Serialize>(
    out: &Path,
    kind: BundleKind,
    meta: Metadata,
    value: &T,
) -> Result<PathBuf, Failure> {
    let bundle = Bundle::new(kind, meta, tessera_core::cbor::encode(value))
        .map_err(|e| Failure::usage(e.to_string()))?;
    if out.is_dir() {
        return airgap_bundle::usb::write_bundle(out, &bundle)
            .map_err(|e| Failure::usage(format!("{}: {e}", out.display())));
    }
    check_new_file(out)?;
    write_new(out, &bundle.encode())?;
    Ok(out.to_path_buf())
}

/// A new file must go into an existing folder and look like a file name, so a mistyped or
/// unmounted folder (`/media/usb-typo`) is refused instead of becoming a file of that name.
pub fn check_new_file(out: &Path) -> Result<(), Failure> {
    if out.exists() {
        return Ok(()); // write_new refuses to replace it, naming the file
    }
    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !parent.is_dir() {
        return Err(Failure::usage(format!(
            "{} does not exist: is the USB stick mounted? Nothing was written",
            parent.display()
        )));
    }
    if out.extension().is_none() {
        return Err(Failure::usage(format!(
            "{} does not exist: is the USB stick mounted? Give an existing folder (the bundle is written inside it, named for its content) or a file name with an extension; nothing was written",
            out.display()
        )));
    }
    Ok(())
}

/// A bundle starts with a 4-element array and the magic text; anything else is a bare object.
pub fn looks_like_bundle(bytes: &[u8]) -> bool {
    let magic = airgap_bundle::MAGIC.as_bytes();
    bytes.len() > 2 + magic.len() && &bytes[2..2 + magic.len()] == magic
}
