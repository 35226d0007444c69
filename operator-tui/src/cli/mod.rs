//! Scriptable subcommands. Each module owns one command family: its clap arguments and `run`.
//!
//! Exit codes are stable across commands: 0 success, 1 a check failed (reason on stderr),
//! 2 usage or I/O error.

pub mod attest;
pub mod bridge;
pub mod bundle;
pub mod ceremony;
pub mod changes;
pub mod common;
pub mod core_demo;
pub mod dr;
pub mod fetch;
pub mod forward;
pub mod image;
pub mod key;
pub mod objects;
pub mod pcrs;
pub mod transcript;
pub mod trust;
pub mod yubikey_policy;
