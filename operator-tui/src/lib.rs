//! The `tessera` operator app as a library: subcommands, device backends and the terminal UI,
//! so integration tests and benchmarks reach the same code the binary runs.

pub mod cli;
pub mod devices;
pub mod member;
pub mod openpgp;
pub mod piv;
pub mod tui;
