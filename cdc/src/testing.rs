//! Test support, compiled only with the `testing` feature (this crate's own tests and the fuzz
//! targets in `fuzz/` enable it; production builds never see it). Not a stable API.

pub mod fuzzing;
