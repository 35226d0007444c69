//! Shared by the card tests: finding the card, resetting it, running `tessera`, PIN files.
//!
//! Card tests run only where a card is: the virtual PIV card started by
//! `scripts/with-virtual-yubikey.sh` (which exports `VIRTUAL_YUBIKEY=1`), or a real YubiKey
//! named by `TESSERA_YUBIKEY_SERIAL` for the `#[ignore]`d hardware tests. Anywhere else they
//! print a loud SKIPPED line, unless `TESSERA_REQUIRE_CARD=1` (set by the script) turns a
//! missing card into a failure.

// "YubiKey" is a product name, not an item to link.
#![allow(clippy::doc_markdown)]
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, MutexGuard};

use operator_tui::piv::{FilePinSource, PivDevice, SlotMap, connect};
use tempfile::TempDir;

/// The reader vpcd gives the virtual PIV card.
pub const VIRTUAL_READER: &str = "Virtual PCD 00 00";

pub const PIN: &str = "246810";
pub const NEW_PIN: &str = "135791";
pub const PUK: &str = "97531864";
pub const NEW_PUK: &str = "86420975";

/// Card state is global: one test at a time even when the harness runs threads.
static CARD: Mutex<()> = Mutex::new(());

pub struct Card {
    pub serial: u32,
    pub dir: TempDir,
    _lock: MutexGuard<'static, ()>,
}

/// The virtual card, reset to factory state; `None` (after a loud message) when there is none.
pub fn virtual_card(test: &str) -> Option<Card> {
    let lock = CARD
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if std::env::var("VIRTUAL_YUBIKEY").as_deref() != Ok("1") {
        assert!(
            std::env::var("TESSERA_REQUIRE_CARD").as_deref() != Ok("1"),
            "{test}: TESSERA_REQUIRE_CARD=1 but the virtual card is not running"
        );
        eprintln!(
            "\n!!!!!!!! SKIPPED {test}: no virtual YubiKey (VIRTUAL_YUBIKEY!=1). \
             Run scripts/with-virtual-yubikey.sh to test the PIV backend for real. !!!!!!!!\n"
        );
        return None;
    }
    let serial = virtual_serial();
    reset(serial);
    Some(Card {
        serial,
        dir: tempfile::tempdir().expect("temp dir"),
        _lock: lock,
    })
}

/// A real YubiKey named by `TESSERA_YUBIKEY_SERIAL`, reset to factory state.
pub fn hardware_card(test: &str) -> Option<Card> {
    let lock = CARD
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let Ok(s) = std::env::var("TESSERA_YUBIKEY_SERIAL") else {
        eprintln!(
            "SKIPPED {test}: set TESSERA_YUBIKEY_SERIAL to the serial of a YubiKey you may RESET"
        );
        return None;
    };
    let serial = s.parse().expect("TESSERA_YUBIKEY_SERIAL is a number");
    reset(serial);
    Some(Card {
        serial,
        dir: tempfile::tempdir().expect("temp dir"),
        _lock: lock,
    })
}

fn virtual_serial() -> u32 {
    let readers = operator_tui::cli::key::describe_readers(&SlotMap::default())
        .expect("PC/SC is up when VIRTUAL_YUBIKEY=1");
    readers
        .iter()
        .find(|r| r.reader == VIRTUAL_READER)
        .and_then(|r| r.yubikey.as_ref())
        .unwrap_or_else(|| panic!("no PIV card in {VIRTUAL_READER}: {readers:?}"))
        .serial
}

/// Factory state: block the PIN and the PUK with wrong values, then reset the PIV
/// application. (Blocking the PUK with `block_puk` never returns on the virtual card.)
pub fn reset(serial: u32) {
    let mut yk = connect(serial).expect("open card for reset");
    for _ in 0..16 {
        match yk.verify_pin(b"00000000") {
            Err(yubikey::Error::WrongPin { tries: 0 } | yubikey::Error::PinLocked) => break,
            Err(yubikey::Error::WrongPin { .. }) => {}
            other => panic!("blocking the PIN: {other:?}"),
        }
    }
    for _ in 0..16 {
        match yk.unblock_pin(b"00000000", b"00000000") {
            Err(yubikey::Error::WrongPin { tries: 0 } | yubikey::Error::PinLocked) => break,
            Err(yubikey::Error::WrongPin { .. }) => {}
            other => panic!("blocking the PUK: {other:?}"),
        }
    }
    yk.reset_device().expect("reset the PIV application");
}

impl Card {
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes `secret` to a file named `name` and returns its path.
    pub fn secret_file(&self, name: &str, secret: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, format!("{secret}\n")).expect("write secret file");
        p
    }

    /// `tessera key provision` with PIN files; factory PIN in, [`PIN`] and [`PUK`] out.
    pub fn provision(&self, roles: &str, extra: &[&str]) -> Output {
        let pin = self.secret_file("factory-pin", "123456");
        let new_pin = self.secret_file("new-pin", PIN);
        let new_puk = self.secret_file("new-puk", PUK);
        let serial = self.serial.to_string();
        let mut args = vec![
            "key",
            "provision",
            "--serial",
            &serial,
            "--roles",
            roles,
            "--pin-file",
            pin.to_str().unwrap(),
            "--new-pin-file",
            new_pin.to_str().unwrap(),
            "--new-puk-file",
            new_puk.to_str().unwrap(),
            "--yes",
            "--json",
        ];
        args.extend_from_slice(extra);
        tessera(&args)
    }

    /// A PIV device for this card whose PIN comes from a file holding `pin`.
    pub fn device(&self, pin: &str, slots: SlotMap) -> PivDevice {
        let f = self.secret_file("device-pin", pin);
        PivDevice::open(
            self.serial,
            slots,
            Box::new(FilePinSource::new(Some(f), None, None, None).files_only()),
        )
        .expect("open the PIV device")
    }
}

/// Runs the `tessera` binary with stdin closed.
pub fn tessera(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run tessera")
}

pub fn ok(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "tessera failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A program from PATH or ~/.cargo/bin.
pub fn tool(name: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(Path::new(&home).join(".cargo/bin"));
    }
    dirs.into_iter().map(|d| d.join(name)).find(|p| p.is_file())
}
