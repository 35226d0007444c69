//! Where PINs come from: a callback the device asks once per operation, stating why.
//!
//! The device never keeps a PIN: it asks its [`PinSource`] right before the operation that
//! needs it, passes the answer to the card, and drops it (zeroized). The terminal UI provides
//! its own source (a masked input on a review screen); the CLI uses [`PromptPinSource`] or, for
//! automation, [`FilePinSource`].

// "YubiKey" is a product name, not an item to link.
#![allow(clippy::doc_markdown)]

use std::fmt;
use std::path::{Path, PathBuf};

use tessera_core::device::DeviceError;
use zeroize::Zeroizing;

/// Which secret is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretKind {
    /// The current PIN.
    Pin,
    /// The current PUK.
    Puk,
    /// A new PIN to set.
    NewPin,
    /// A new PUK to set.
    NewPuk,
}

impl SecretKind {
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            SecretKind::Pin => "PIN",
            SecretKind::Puk => "PUK",
            SecretKind::NewPin => "new PIN",
            SecretKind::NewPuk => "new PUK",
        }
    }
}

/// One request for a secret: what for, on which key, and how many tries remain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinRequest {
    pub kind: SecretKind,
    /// YubiKey serial number.
    pub serial: u32,
    /// What the secret unlocks, in words a person can check, e.g.
    /// "sign manifest approval 1a2b 3c4d … with the manifest key (slot 9c)".
    pub purpose: String,
    /// Tries left before the PIN (or PUK) blocks, when the card reported it.
    pub tries_left: Option<u8>,
}

impl fmt::Display for PinRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "YubiKey {} {} to {}",
            self.serial,
            self.kind.label(),
            self.purpose
        )?;
        if let Some(t) = self.tries_left {
            write!(f, " ({t} tries left)")?;
        }
        Ok(())
    }
}

/// Supplies PINs and PUKs on demand and shows touch prompts.
pub trait PinSource {
    /// The secret for `request`, or [`DeviceError::Cancelled`].
    fn pin(&mut self, request: &PinRequest) -> Result<Zeroizing<String>, DeviceError>;

    /// The card is about to wait for a touch (touch policy `always` or `cached`).
    fn touch(&mut self, serial: u32, purpose: &str) {
        let _ = (serial, purpose);
    }
}

/// Asks on the controlling terminal without echo, stating the purpose.
#[derive(Debug, Default)]
pub struct PromptPinSource;

impl PinSource for PromptPinSource {
    fn pin(&mut self, request: &PinRequest) -> Result<Zeroizing<String>, DeviceError> {
        let pin = Zeroizing::new(
            rpassword::prompt_password(format!("{request}: "))
                .map_err(|_| DeviceError::Cancelled)?,
        );
        if pin.is_empty() {
            return Err(DeviceError::Cancelled);
        }
        if matches!(request.kind, SecretKind::NewPin | SecretKind::NewPuk) {
            let again = Zeroizing::new(
                rpassword::prompt_password(format!("repeat the {}: ", request.kind.label()))
                    .map_err(|_| DeviceError::Cancelled)?,
            );
            if again.as_str() != pin.as_str() {
                return Err(DeviceError::Device {
                    detail: format!("the two {}s differ", request.kind.label()),
                });
            }
        }
        Ok(pin)
    }

    fn touch(&mut self, serial: u32, purpose: &str) {
        eprintln!("touch your YubiKey {serial} now to {purpose}");
    }
}

/// Reads each secret from a file (first line), for automation and tests. Files are read at the
/// moment a secret is needed, never cached.
#[derive(Debug, Default, Clone)]
pub struct FilePinSource {
    pub pin: Option<PathBuf>,
    pub puk: Option<PathBuf>,
    pub new_pin: Option<PathBuf>,
    pub new_puk: Option<PathBuf>,
    /// Asked when no file is given for a kind.
    fallback_prompt: bool,
}

impl FilePinSource {
    #[must_use]
    pub fn new(
        pin: Option<PathBuf>,
        puk: Option<PathBuf>,
        new_pin: Option<PathBuf>,
        new_puk: Option<PathBuf>,
    ) -> Self {
        Self {
            pin,
            puk,
            new_pin,
            new_puk,
            fallback_prompt: true,
        }
    }

    /// Never prompts: a missing file is an error (for tests and unattended runs).
    #[must_use]
    pub fn files_only(mut self) -> Self {
        self.fallback_prompt = false;
        self
    }

    /// True when no secret comes from a file.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.pin.is_none() && self.puk.is_none() && self.new_pin.is_none() && self.new_puk.is_none()
    }
}

/// The first line of `path`, without its line ending.
pub fn read_secret_file(path: &Path) -> Result<Zeroizing<String>, DeviceError> {
    let raw = Zeroizing::new(
        std::fs::read_to_string(path).map_err(|e| DeviceError::Device {
            detail: format!("cannot read secret file {}: {e}", path.display()),
        })?,
    );
    let line = raw.lines().next().unwrap_or_default();
    Ok(Zeroizing::new(line.to_owned()))
}

impl PinSource for FilePinSource {
    fn pin(&mut self, request: &PinRequest) -> Result<Zeroizing<String>, DeviceError> {
        let path = match request.kind {
            SecretKind::Pin => &self.pin,
            SecretKind::Puk => &self.puk,
            SecretKind::NewPin => &self.new_pin,
            SecretKind::NewPuk => &self.new_puk,
        };
        match path {
            Some(p) => read_secret_file(p),
            None if self.fallback_prompt => PromptPinSource.pin(request),
            None => Err(DeviceError::Device {
                detail: format!("no {} file given", request.kind.label()),
            }),
        }
    }

    fn touch(&mut self, serial: u32, purpose: &str) {
        PromptPinSource.touch(serial, purpose);
    }
}
