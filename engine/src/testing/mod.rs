//! Test kits, behind the `testing` cargo feature (which also turns on the WAL's: its
//! fault-injecting storage works under a `Database` through [`Database::open_with_storage`]).
//!
//! - [`fuzzing`]: entry points for the engine's decoders (records, slot files, `engine.state`).
//!
//! [`Database::open_with_storage`]: crate::Database::open_with_storage

pub mod fuzzing;
