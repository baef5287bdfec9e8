//! The one error type of the benchmarks.

use std::path::PathBuf;

/// Why a benchmark could not run or did not do what it should have.
#[derive(Debug)]
pub enum BenchError {
    /// A file-system call failed.
    Io {
        /// What was being done ("write", "fdatasync", …).
        op: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The WAL returned an error.
    Wal(walden_wal::WalError),
    /// The engine returned an error.
    Engine(walden_engine::EngineError),
    /// A change stream returned an error.
    Cdc(walden_cdc::CdcError),
    /// The archive returned an error.
    Archive(walden_archive::ArchiveError),
    /// A workload's self-check failed: the log did not hold or return what was written.
    Check(String),
}

impl BenchError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> BenchError {
        BenchError::Io { op, path: path.into(), source }
    }
}

impl std::fmt::Display for BenchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BenchError::Io { op, path, source } => write!(f, "{op} {}: {source}", path.display()),
            BenchError::Wal(e) => write!(f, "wal: {e}"),
            BenchError::Engine(e) => write!(f, "engine: {e}"),
            BenchError::Cdc(e) => write!(f, "cdc: {e}"),
            BenchError::Archive(e) => write!(f, "archive: {e}"),
            BenchError::Check(what) => write!(f, "check failed: {what}"),
        }
    }
}

impl std::error::Error for BenchError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BenchError::Io { source, .. } => Some(source),
            BenchError::Wal(e) => Some(e),
            BenchError::Engine(e) => Some(e),
            BenchError::Cdc(e) => Some(e),
            BenchError::Archive(e) => Some(e),
            BenchError::Check(_) => None,
        }
    }
}

impl From<walden_wal::WalError> for BenchError {
    fn from(e: walden_wal::WalError) -> Self {
        BenchError::Wal(e)
    }
}

impl From<walden_engine::EngineError> for BenchError {
    fn from(e: walden_engine::EngineError) -> Self {
        BenchError::Engine(e)
    }
}

impl From<walden_cdc::CdcError> for BenchError {
    fn from(e: walden_cdc::CdcError) -> Self {
        BenchError::Cdc(e)
    }
}

impl From<walden_archive::ArchiveError> for BenchError {
    fn from(e: walden_archive::ArchiveError) -> Self {
        BenchError::Archive(e)
    }
}
