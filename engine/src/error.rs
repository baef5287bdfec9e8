//! The engine's error type.

use std::io;
use std::path::PathBuf;

use walden_wal::WalError;

use crate::Lsn;
use crate::codec::DecodeError;
use crate::slot::InvalidationReason;

/// Everything that can go wrong in the engine. Each variant says what and where.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The write-ahead log failed (I/O, corruption, failed state, closed, ...).
    #[error(transparent)]
    Wal(#[from] WalError),
    /// `create_slot` with a name that is already taken.
    #[error("replication slot {name:?} already exists")]
    SlotExists {
        /// The slot name.
        name: String,
    },
    /// No slot has this name.
    #[error("replication slot {name:?} does not exist")]
    SlotNotFound {
        /// The slot name.
        name: String,
    },
    /// The slot was invalidated (state lost); it can only be inspected or dropped.
    #[error("replication slot {name:?} is invalidated: {reason}")]
    SlotInvalidated {
        /// The slot name.
        name: String,
        /// Why it was invalidated.
        reason: InvalidationReason,
    },
    /// The slot is acquired by a consumer (one at a time), or cannot be dropped while acquired.
    #[error("replication slot {name:?} is in use by another consumer")]
    SlotInUse {
        /// The slot name.
        name: String,
    },
    /// A slot name outside `[a-z0-9_]{1,63}`.
    #[error("invalid replication slot name {name:?}: {reason}")]
    InvalidSlotName {
        /// The rejected name.
        name: String,
        /// What rule it breaks.
        reason: &'static str,
    },
    /// `create_slot` when `Config::max_slots` slots exist.
    #[error("cannot create another replication slot: the limit is {max_slots}")]
    TooManySlots {
        /// The configured limit.
        max_slots: usize,
    },
    /// An LSN beyond the end of the durable log (advance, start position, checkpoint LSN).
    #[error("LSN {requested} is beyond the end of the durable log ({durable_lsn})")]
    LsnBeyondDurable {
        /// The LSN asked for.
        requested: Lsn,
        /// The last durable LSN.
        durable_lsn: Lsn,
    },
    /// A slot start position older than the oldest LSN still retained.
    #[error("LSN {requested} is no longer retained; the oldest retained LSN is {oldest_lsn}")]
    LsnNotRetained {
        /// The LSN asked for.
        requested: Lsn,
        /// The oldest LSN in the log.
        oldest_lsn: Lsn,
    },
    /// The transaction would exceed `Config::max_transaction_bytes` (or the WAL's batch limit).
    /// The transaction is refused: it can only be rolled back.
    #[error("transaction of {size_bytes} bytes exceeds the limit of {max_bytes} bytes")]
    TransactionTooLarge {
        /// Size the transaction would have reached (encoded records plus WAL record headers).
        size_bytes: u64,
        /// The limit.
        max_bytes: u64,
    },
    /// One change is larger than the WAL's `max_record_size_bytes`.
    #[error("a change of {size_bytes} bytes exceeds the WAL's record limit of {max_bytes} bytes")]
    ChangeTooLarge {
        /// Encoded size of the change.
        size_bytes: u64,
        /// The WAL's limit.
        max_bytes: u64,
    },
    /// An argument the engine cannot record (an empty table name, an INSERT with a before image).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// A record in the log could not be decoded.
    #[error("cannot decode the engine record at LSN {lsn}: {source}")]
    Decode {
        /// The record's LSN.
        lsn: Lsn,
        /// What is wrong.
        #[source]
        source: DecodeError,
    },
    /// A slot file or `engine.state` is damaged or not ours. Nothing was deleted or changed.
    #[error("corrupt file {path}: {detail} (nothing was deleted)")]
    CorruptFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// An I/O call on an engine file failed.
    #[error("{op} failed on {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The configuration is unusable.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
}

impl EngineError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> EngineError {
        EngineError::Io { op, path: path.into(), source }
    }
}

/// Result alias for engine operations.
pub type Result<T, E = EngineError> = std::result::Result<T, E>;
