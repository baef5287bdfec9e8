//! `CdcError`, with the stable codes of the DoSQL guide.

use crate::Lsn;

/// Stable error codes (`CdcError::code`), matching the DoSQL CDC guide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CdcErrorCode {
    /// `SUBSCRIPTION_FAILED`: the subscription cannot continue (I/O, corruption, closed log).
    SubscriptionFailed,
    /// `LSN_NOT_FOUND`: the start LSN is older than the oldest retained one.
    LsnNotFound,
    /// `SLOT_NOT_FOUND`.
    SlotNotFound,
    /// `SLOT_EXISTS`.
    SlotExists,
    /// `BUFFER_OVERFLOW`: a bounded buffer is full and its owner chose to fail rather than wait.
    /// Walden's own consumers never return it: the WAL is the buffer, so a full buffer pauses the
    /// log reader instead (see [`crate::BackpressureSignal`]); the code is kept for the stable set
    /// and for sinks built on top that prefer failing to waiting.
    BufferOverflow,
    /// `DECODE_ERROR`: a payload or record could not be decoded.
    DecodeError,
}

impl CdcErrorCode {
    /// The code as a string (`"LSN_NOT_FOUND"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            CdcErrorCode::SubscriptionFailed => "SUBSCRIPTION_FAILED",
            CdcErrorCode::LsnNotFound => "LSN_NOT_FOUND",
            CdcErrorCode::SlotNotFound => "SLOT_NOT_FOUND",
            CdcErrorCode::SlotExists => "SLOT_EXISTS",
            CdcErrorCode::BufferOverflow => "BUFFER_OVERFLOW",
            CdcErrorCode::DecodeError => "DECODE_ERROR",
        }
    }
}

impl std::fmt::Display for CdcErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Errors of change streams.
#[derive(Debug, thiserror::Error)]
pub enum CdcError {
    /// The subscription cannot continue.
    #[error("SUBSCRIPTION_FAILED: {message}")]
    SubscriptionFailed {
        /// What happened.
        message: String,
        /// The underlying error, if any.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// The requested LSN has been removed by retention.
    #[error("LSN_NOT_FOUND: LSN {requested} is no longer available; the oldest available is {oldest_available}")]
    LsnNotFound {
        /// The LSN asked for.
        requested: Lsn,
        /// The oldest LSN still available.
        oldest_available: Lsn,
    },
    /// No such slot.
    #[error("SLOT_NOT_FOUND: no replication slot named {0:?}")]
    SlotNotFound(String),
    /// The slot already exists.
    #[error("SLOT_EXISTS: replication slot {0:?} already exists")]
    SlotExists(String),
    /// A bounded buffer overflowed and its owner chose to fail (never returned by Walden's own
    /// consumers, which pause instead; see [`CdcErrorCode::BufferOverflow`]).
    #[error("BUFFER_OVERFLOW: {0}")]
    BufferOverflow(String),
    /// A payload or record could not be decoded.
    #[error("DECODE_ERROR at LSN {lsn}: {message}")]
    Decode {
        /// LSN of the event that failed.
        lsn: Lsn,
        /// What failed.
        message: String,
    },
}

impl CdcError {
    /// The stable code of this error.
    pub fn code(&self) -> CdcErrorCode {
        match self {
            CdcError::SubscriptionFailed { .. } => CdcErrorCode::SubscriptionFailed,
            CdcError::LsnNotFound { .. } => CdcErrorCode::LsnNotFound,
            CdcError::SlotNotFound(_) => CdcErrorCode::SlotNotFound,
            CdcError::SlotExists(_) => CdcErrorCode::SlotExists,
            CdcError::BufferOverflow(_) => CdcErrorCode::BufferOverflow,
            CdcError::Decode { .. } => CdcErrorCode::DecodeError,
        }
    }

    /// The LSN the error concerns, when there is one.
    pub fn lsn(&self) -> Option<Lsn> {
        match self {
            CdcError::LsnNotFound { requested, .. } => Some(*requested),
            CdcError::Decode { lsn, .. } => Some(*lsn),
            _ => None,
        }
    }

    pub(crate) fn failed(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> CdcError {
        CdcError::SubscriptionFailed { message: message.into(), source: Some(Box::new(source)) }
    }
}

/// Result alias for CDC operations.
pub type Result<T, E = CdcError> = std::result::Result<T, E>;
