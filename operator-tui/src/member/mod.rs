//! The member's side of every decision that lets a secret move or a signature leave.
//!
//! `cli/` prints what this layer decides and `tui/` renders it; neither adds a check of its own.
//! [`pin`] is what a member trusts per namespace, [`review`] turns (pin, object, clock, device)
//! into a typed review with one answer, and [`act`] carries out an action after deciding again
//! at that moment.

pub mod act;
pub mod code;
pub mod fields;
pub mod pin;
pub mod reproduce;
pub mod review;

pub use code::{code_matches, confirm_code};
