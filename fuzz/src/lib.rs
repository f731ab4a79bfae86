//! Fuzz targets for vinery. The checks live in [`checks`], a file that
//! `tests/corpus.rs` of the main crate also includes (by path), so the
//! fuzz targets and the corpus replay test always assert the same things.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod checks;
