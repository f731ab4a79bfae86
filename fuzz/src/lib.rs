//! Fuzz targets for vinery. The checks live in [`checks`] and the seed
//! datagrams in [`seeds`]; the main crate's `tests/corpus.rs` includes both
//! files by path (and `benches/codec.rs` includes `seeds`), so the fuzz
//! targets, the corpus replay test and the benchmark cannot drift apart.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod checks;
pub mod forge;
pub mod keyed;
pub mod script;
pub mod seeds;
