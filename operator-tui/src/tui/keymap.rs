//! Keys to actions, configurable in a TOML file. Confirm (Enter in a confirm popup) and abort
//! (Esc) are fixed and cannot be rebound, so a slip in a config file cannot make signing easier.
//!
//! ```toml
//! [keys]
//! approve = "y"
//! quit = "x"
//! ```

use std::collections::BTreeMap;

use super::app::Key;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Quit,
    Help,
    NextScreen,
    PrevScreen,
    Screen(usize),
    Up,
    Down,
    /// A screenful down or up in a long list (Manifest, Attestation).
    PageDown,
    PageUp,
    Open,
    Rescan,
    ConfirmClock,
    /// Start the current screen's signing action (it still needs the typed confirmation).
    Approve,
    /// Show the bundle just written as animated QR.
    ShowQr,
    /// Write the member descriptor (Keys screen).
    Export,
    /// Change the YubiKey PIN (Keys screen).
    ChangePin,
    /// Change the YubiKey PUK (Keys screen).
    ChangePuk,
    /// Provision the YubiKey: plan, typed confirmation, then keys, PIN, PUK (Keys screen).
    Provision,
    /// Receive a bundle as animated QR from the camera (Home screen).
    Scan,
}

const NAMES: [(&str, Action); 18] = [
    ("quit", Action::Quit),
    ("help", Action::Help),
    ("next_screen", Action::NextScreen),
    ("prev_screen", Action::PrevScreen),
    ("up", Action::Up),
    ("down", Action::Down),
    ("page_down", Action::PageDown),
    ("page_up", Action::PageUp),
    ("open", Action::Open),
    ("rescan", Action::Rescan),
    ("confirm_clock", Action::ConfirmClock),
    ("approve", Action::Approve),
    ("show_qr", Action::ShowQr),
    ("export", Action::Export),
    ("change_pin", Action::ChangePin),
    ("change_puk", Action::ChangePuk),
    ("provision", Action::Provision),
    ("scan", Action::Scan),
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keymap {
    keys: BTreeMap<KeyName, Action>,
}

/// A key as written in the config: a single character, or a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum KeyName {
    Char(char),
    Tab,
    BackTab,
    Up,
    Down,
    PageUp,
    PageDown,
    Enter,
}

fn key_name(key: Key) -> Option<KeyName> {
    Some(match key {
        Key::Char(c) => KeyName::Char(c),
        Key::Tab => KeyName::Tab,
        Key::BackTab => KeyName::BackTab,
        Key::Up => KeyName::Up,
        Key::Down => KeyName::Down,
        Key::PageUp => KeyName::PageUp,
        Key::PageDown => KeyName::PageDown,
        Key::Enter => KeyName::Enter,
        Key::Esc | Key::Backspace | Key::CtrlC => return None,
    })
}

fn parse_key(s: &str) -> Result<KeyName, String> {
    let mut chars = s.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) if !c.is_control() && !c.is_ascii_digit() => return Ok(KeyName::Char(c)),
        (Some(c), None) if c.is_ascii_digit() => {
            return Err(format!("{s:?}: digits are reserved for screens"));
        }
        _ => {}
    }
    match s.to_ascii_lowercase().as_str() {
        "tab" => Ok(KeyName::Tab),
        "backtab" | "shift-tab" => Ok(KeyName::BackTab),
        "up" => Ok(KeyName::Up),
        "down" => Ok(KeyName::Down),
        "pageup" | "page-up" => Ok(KeyName::PageUp),
        "pagedown" | "page-down" => Ok(KeyName::PageDown),
        "enter" => Ok(KeyName::Enter),
        "esc" | "escape" => Err("Esc is abort and cannot be rebound".to_owned()),
        _ => Err(format!("unknown key {s:?}")),
    }
}

impl Default for Keymap {
    fn default() -> Self {
        let mut keys = BTreeMap::new();
        for (k, a) in [
            (KeyName::Char('q'), Action::Quit),
            (KeyName::Char('?'), Action::Help),
            (KeyName::Tab, Action::NextScreen),
            (KeyName::BackTab, Action::PrevScreen),
            (KeyName::Up, Action::Up),
            (KeyName::Char('k'), Action::Up),
            (KeyName::Down, Action::Down),
            (KeyName::Char('j'), Action::Down),
            (KeyName::PageDown, Action::PageDown),
            (KeyName::Char(' '), Action::PageDown),
            (KeyName::PageUp, Action::PageUp),
            (KeyName::Char('b'), Action::PageUp),
            (KeyName::Enter, Action::Open),
            (KeyName::Char('r'), Action::Rescan),
            (KeyName::Char('c'), Action::ConfirmClock),
            (KeyName::Char('a'), Action::Approve),
            (KeyName::Char('v'), Action::ShowQr),
            (KeyName::Char('e'), Action::Export),
            (KeyName::Char('p'), Action::ChangePin),
            (KeyName::Char('u'), Action::ChangePuk),
            (KeyName::Char('n'), Action::Provision),
            (KeyName::Char('s'), Action::Scan),
        ] {
            keys.insert(k, a);
        }
        Self { keys }
    }
}

impl Keymap {
    /// The action bound to `key`; digits 1-7 always select screens.
    #[must_use]
    pub fn action(&self, key: Key) -> Option<Action> {
        if let Key::Char(c @ '1'..='7') = key {
            return Some(Action::Screen(c as usize - '1' as usize));
        }
        self.keys.get(&key_name(key)?).copied()
    }

    /// The defaults with the `[keys]` table of a TOML file applied on top. A key bound in the
    /// file replaces every default binding of that action.
    pub fn from_toml(text: &str) -> Result<Self, String> {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct File {
            #[serde(default)]
            keys: BTreeMap<String, String>,
        }
        let file: File = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut map = Self::default();
        for (name, key) in &file.keys {
            let action = NAMES
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, a)| *a)
                .ok_or_else(|| {
                    format!("unknown action {name:?} (confirm and abort cannot be rebound)")
                })?;
            let key = parse_key(key)?;
            map.keys.retain(|_, a| *a != action);
            if let Some(other) = map.keys.insert(key, action)
                && other != action
            {
                return Err(format!("{key:?} is bound to both {name} and {other:?}"));
            }
        }
        Ok(map)
    }

    /// The key bound to `action`, for hints.
    #[must_use]
    pub fn hint(&self, action: Action) -> String {
        self.keys.iter().find(|(_, a)| **a == action).map_or_else(
            || "-".to_owned(),
            |(k, _)| match k {
                KeyName::Char(' ') => "Space".to_owned(),
                KeyName::Char(c) => c.to_string(),
                KeyName::PageUp => "PgUp".to_owned(),
                KeyName::PageDown => "PgDn".to_owned(),
                KeyName::Tab => "Tab".to_owned(),
                KeyName::BackTab => "S-Tab".to_owned(),
                KeyName::Up => "↑".to_owned(),
                KeyName::Down => "↓".to_owned(),
                KeyName::Enter => "Enter".to_owned(),
            },
        )
    }
}
