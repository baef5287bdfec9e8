//! Test kits, behind the `testing` cargo feature: not part of the default API, shipped so that
//! Walden's own tests and fuzz targets — and a user's tests of their own code — can use them.
//!
//! - [`fault`]: [`FaultStorage`](fault::FaultStorage), an in-memory [`Storage`](crate::Storage)
//!   with power loss, crashes, failing syncs, full disks, short and torn writes.
//! - [`fuzzing`]: one entry point per WAL decoder, for `cargo fuzz` and the corpus replay.
//! - [`corpus`]: the corpus replay and input mutation every crate's `tests/fuzz_corpus.rs` uses.

pub mod corpus;
pub mod fault;
pub mod fuzzing;
