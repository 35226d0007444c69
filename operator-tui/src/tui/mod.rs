//! The operator app: a keyboard-driven terminal UI over the same ceremony code as the
//! subcommands.

pub mod app;
pub mod fixtures;
pub mod keymap;
pub mod runtime;
pub mod view;
