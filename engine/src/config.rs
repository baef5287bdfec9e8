//! Engine configuration.

use walden_wal::{SyncMode, WalConfig};

use crate::error::EngineError;

/// Configuration of a [`crate::Database`]. `Config::default()` is sized for a laptop.
#[derive(Debug, Clone)]
pub struct Config {
    /// The write-ahead log: segment size (`target_segment_size_bytes`), records per segment
    /// (`max_records_per_segment`), durability (`sync_mode`, default `Group`), checksum
    /// verification on read (`verify_checksums_on_read`, default true), recovery mode,
    /// compression and record/batch limits. See [`WalConfig`].
    pub wal: WalConfig,
    /// Largest transaction accepted, counted as the encoded records plus the WAL's 32-byte record
    /// header each (default 32 MiB). The effective limit is also capped by the WAL's
    /// `max_batch_size_bytes`. Exceeding it refuses the transaction with
    /// [`EngineError::TransactionTooLarge`]; transactions are buffered in memory until commit.
    pub max_transaction_bytes: u64,
    /// Most replication slots (persistent and temporary) that may exist at once (default 64).
    pub max_slots: usize,
    /// A valid slot whose restart LSN pins more than this many bytes of sealed segments is
    /// invalidated at the next checkpoint (state lost, reason recorded) and stops holding WAL
    /// (PostgreSQL's `max_slot_wal_keep_size`). Default `None`: no cap.
    pub max_slot_wal_keep_bytes: Option<u64>,
    /// An inactive (not acquired) slot whose last activity is older than this is invalidated at
    /// the next checkpoint. Measured from the persisted `last_active_at`, so time the database
    /// was closed counts. Default `None`: no timeout.
    pub slot_idle_timeout_ms: Option<u64>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            wal: WalConfig::default(),
            max_transaction_bytes: 32 << 20,
            max_slots: 64,
            max_slot_wal_keep_bytes: None,
            slot_idle_timeout_ms: None,
        }
    }
}

impl Config {
    /// The default configuration with another WAL durability mode.
    pub fn with_sync_mode(sync_mode: SyncMode) -> Config {
        Config { wal: WalConfig { sync_mode, ..WalConfig::default() }, ..Config::default() }
    }

    /// Checks the configuration (including the WAL's) for values the engine cannot work with.
    pub fn validate(&self) -> Result<(), EngineError> {
        self.wal.validate()?;
        if self.max_transaction_bytes < 1024 {
            return Err(EngineError::InvalidConfig("max_transaction_bytes must be at least 1024".to_string()));
        }
        if self.slot_idle_timeout_ms == Some(0) {
            return Err(EngineError::InvalidConfig("slot_idle_timeout_ms must be positive".to_string()));
        }
        Ok(())
    }

    /// The transaction size limit in force: the smaller of `max_transaction_bytes` and the WAL's
    /// batch limit.
    pub fn effective_max_transaction_bytes(&self) -> u64 {
        self.max_transaction_bytes.min(self.wal.max_batch_size_bytes)
    }
}
