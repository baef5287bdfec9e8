//! The one error type of the side-by-side benchmark.

use std::fmt;

/// Why a workload could not run, or did not do the work it claims: a store's error (with the
/// store and the operation), an I/O error, or a failed self-check.
#[derive(Debug)]
pub struct PeerError {
    message: String,
}

impl PeerError {
    /// An error with this message.
    pub fn new(message: impl Into<String>) -> PeerError {
        PeerError { message: message.into() }
    }

    /// A failed self-check: the store did not hold or return what was written.
    pub fn check(store: &str, what: impl fmt::Display) -> PeerError {
        PeerError::new(format!("{store}: check failed: {what}"))
    }
}

impl fmt::Display for PeerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for PeerError {}

impl From<walden_benches::BenchError> for PeerError {
    fn from(e: walden_benches::BenchError) -> Self {
        PeerError::new(format!("raw disk: {e}"))
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = PeerError> = std::result::Result<T, E>;

/// Maps any displayable error to a [`PeerError`] naming the store and the operation.
pub(crate) trait Context<T> {
    /// Adds `store: op: ` in front of the error.
    fn ctx(self, store: &str, op: &str) -> Result<T>;
}

impl<T, E: fmt::Display> Context<T> for std::result::Result<T, E> {
    fn ctx(self, store: &str, op: &str) -> Result<T> {
        self.map_err(|e| PeerError::new(format!("{store}: {op}: {e}")))
    }
}
