//! Helpers shared by the CLI's tests: the library's test helpers (one
//! file, `tests/common/mod.rs` of the library crate) and the agents.
#![allow(dead_code)]

#[path = "../../../tests/common/mod.rs"]
mod library;
pub use library::*;

pub mod agents;
