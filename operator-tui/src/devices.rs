//! Opening the key device a command works with: a YubiKey by serial, or a software key file
//! (dev mode, the demo and tests; labelled as such wherever it shows).

// "YubiKey" is a product name, not an item to link.
#![allow(clippy::doc_markdown)]

use std::path::PathBuf;

use tessera_core::device::{DeviceError, KeyDevice, SoftwareKeyDevice};

use crate::piv::{FilePinSource, PinSource, PivDevice, SlotMap};

/// Which device holds the member's keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceSelector {
    /// A YubiKey, found by serial among the connected readers.
    Yubikey { serial: u32, slots: SlotMap },
    /// Keys in a software key file (dev/test only).
    Software(PathBuf),
}

/// Opens the device `selector` names. A YubiKey asks `pins` for its PIN at each operation;
/// a software device needs none.
pub fn open_device(
    selector: &DeviceSelector,
    pins: Box<dyn PinSource + Send>,
) -> Result<Box<dyn KeyDevice + Send>, DeviceError> {
    match selector {
        DeviceSelector::Yubikey { serial, slots } => {
            Ok(Box::new(PivDevice::open(*serial, slots.clone(), pins)?))
        }
        DeviceSelector::Software(path) => Ok(Box::new(SoftwareKeyDevice::load(path)?)),
    }
}

/// The device options every command that signs or decrypts takes: exactly one of `--serial`
/// and `--software`.
#[derive(Debug, Clone, clap::Args)]
#[group(skip)]
pub struct DeviceArgs {
    /// Serial number of the YubiKey to use (see `tessera key list`).
    #[arg(long, value_name = "N", required_unless_present = "software")]
    pub serial: Option<u32>,
    /// A software key file instead of a YubiKey (DEV/TEST ONLY: anyone who reads it has the keys).
    #[arg(long, value_name = "KEYFILE", conflicts_with = "serial")]
    pub software: Option<PathBuf>,
    #[command(flatten)]
    pub slots: SlotsArg,
    /// Read the PIN from the first line of this file instead of prompting (automation).
    #[arg(long, value_name = "FILE")]
    pub pin_file: Option<PathBuf>,
}

/// The `--slots` option of every command that opens a YubiKey by serial.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct SlotsArg {
    /// Role slots on the YubiKey, hex (defaults share=82,manifest=9c,patch=83).
    #[arg(
        long = "slots",
        value_name = "ROLE=SLOT,...",
        default_value = "",
        hide_default_value = true
    )]
    pub spec: String,
}

impl SlotsArg {
    /// The slot map: the defaults with the given overrides.
    pub fn map(&self) -> Result<SlotMap, String> {
        self.spec.parse()
    }
}

impl DeviceArgs {
    pub fn selector(&self) -> Result<DeviceSelector, DeviceError> {
        match (&self.serial, &self.software) {
            (Some(serial), None) => Ok(DeviceSelector::Yubikey {
                serial: *serial,
                slots: self
                    .slots
                    .map()
                    .map_err(|detail| DeviceError::Device { detail })?,
            }),
            (None, Some(path)) => Ok(DeviceSelector::Software(path.clone())),
            _ => Err(DeviceError::Device {
                detail: "give exactly one of --serial and --software".to_owned(),
            }),
        }
    }

    /// The PIN source these options describe: the PIN file, else a no-echo prompt.
    #[must_use]
    pub fn pin_source(&self) -> Box<dyn PinSource + Send> {
        Box::new(FilePinSource::new(self.pin_file.clone(), None, None, None))
    }

    /// Opens the selected device with [`Self::pin_source`].
    pub fn open(&self) -> Result<Box<dyn KeyDevice + Send>, DeviceError> {
        open_device(&self.selector()?, self.pin_source())
    }
}
