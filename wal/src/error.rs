//! The WAL's error type.

use std::io;
use std::path::PathBuf;

use crate::Lsn;

/// Everything that can go wrong in the WAL. Each variant says what and where.
#[derive(Debug, thiserror::Error)]
pub enum WalError {
    /// An I/O call failed. If it was a write or sync of log data, the log is now failed.
    #[error("{op} failed on {path}: {source}")]
    Io {
        /// What was being done (`"write"`, `"fdatasync"`, `"create"`, ...).
        op: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// An earlier write or sync failed, so the log refuses every append until it is reopened
    /// (recovery then re-reads what is really on disk). Never retried, never a false ack.
    #[error("the log is in a failed state after an earlier error ({reason}); reopen it to recover")]
    Failed {
        /// The error that failed the log.
        reason: String,
    },
    /// The log has been closed.
    #[error("the log is closed")]
    Closed,
    /// A record's payload is larger than `max_record_size_bytes`.
    #[error("record of {size_bytes} bytes exceeds the maximum of {max_bytes} bytes")]
    RecordTooLarge {
        /// Size of the offending payload.
        size_bytes: u64,
        /// The configured maximum.
        max_bytes: u64,
    },
    /// A batch is larger than `max_batch_size_bytes`, or holds too many records.
    #[error("batch of {size_bytes} bytes in {records} records exceeds the maximum of {max_bytes} bytes")]
    BatchTooLarge {
        /// Encoded size of the batch.
        size_bytes: u64,
        /// Records in the batch.
        records: u64,
        /// The configured maximum.
        max_bytes: u64,
    },
    /// An empty batch was appended.
    #[error("a batch must hold at least one record")]
    EmptyBatch,
    /// The requested LSN is older than the oldest record still retained.
    #[error("LSN {requested} is not available; the oldest retained LSN is {oldest_available}")]
    LsnNotFound {
        /// The LSN asked for.
        requested: Lsn,
        /// The oldest LSN still in the log.
        oldest_available: Lsn,
    },
    /// The requested LSN lies beyond the next LSN the log will assign.
    #[error("LSN {requested} is beyond the end of the log (next LSN is {next_lsn})")]
    LsnBeyondEnd {
        /// The LSN asked for.
        requested: Lsn,
        /// The next LSN the log will assign.
        next_lsn: Lsn,
    },
    /// Damaged data: a bad record followed by valid ones, a bad record or footer in a sealed
    /// segment, or a broken chain between segments. Never skipped silently.
    #[error("corruption in {segment} at byte {offset} (LSN {lsn:?}): {detail}")]
    Corruption {
        /// The segment file.
        segment: PathBuf,
        /// Byte offset of the damage within the file.
        offset: u64,
        /// The LSN expected or found there, when known.
        lsn: Option<Lsn>,
        /// What exactly is wrong.
        detail: String,
    },
    /// `RecoveryMode::AbsoluteConsistency` found an incomplete tail (a crash mid-write).
    #[error(
        "incomplete tail in {segment}: {bytes} bytes from offset {offset} (absolute-consistency recovery refuses to truncate)"
    )]
    IncompleteTail {
        /// The segment file.
        segment: PathBuf,
        /// Where the incomplete data starts.
        offset: u64,
        /// How many bytes are incomplete.
        bytes: u64,
    },
    /// A segment file that is not ours: wrong magic, unsupported version, another log's id, or a
    /// name that does not match its header. Nothing is deleted.
    #[error("{path} is not a segment of this log: {detail}")]
    ForeignSegment {
        /// The file.
        path: PathBuf,
        /// Why it was rejected.
        detail: String,
    },
    /// A file in the log directory that the WAL does not know. Nothing is deleted.
    #[error("unknown file {path} in the log directory; move it away (nothing was deleted)")]
    UnknownFile {
        /// The file.
        path: PathBuf,
    },
    /// Another process (or another `Wal` in this one) has the directory open.
    #[error("the log directory {path} is locked by another process")]
    Locked {
        /// The lock file.
        path: PathBuf,
    },
    /// The configuration is unusable.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
}

impl WalError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> WalError {
        WalError::Io { op, path: path.into(), source }
    }
}

/// Result alias for WAL operations.
pub type Result<T, E = WalError> = std::result::Result<T, E>;
