//! `walden-engine`: transactions, schema changes, replication slots and retention on top of the
//! write-ahead log ([`walden_wal`]).
//!
//! ```text
//! host ── begin · insert/update/delete · schema changes · commit ──► engine ──► wal
//!                                          slots, retention, checkpoint ┘
//! ```
//!
//! - **Transactions.** [`Database::begin`] buffers changes (encoded at once, no lock, no I/O);
//!   [`Transaction::commit`] writes BEGIN, the changes and COMMIT as one atomic WAL batch with
//!   consecutive LSNs, durable per the sync mode, and returns the COMMIT LSN. Commit order is LSN
//!   order. Rollback (or dropping the transaction) writes nothing. The transaction id is the LSN
//!   of its BEGIN record, so ids are unique, increase in commit order and never repeat across
//!   restarts. Records are documented in [`record`] and `docs/FORMAT.md`.
//! - **Replication slots** (the PostgreSQL model): durable consumer positions that hold the WAL
//!   ([`Database::create_slot`], [`Database::advance`], [`Database::acquire_slot`], ...).
//! - **Retention.** [`Database::checkpoint`] removes sealed segments lying entirely below every
//!   valid slot's restart LSN, the retain-from horizon and the host's checkpoint, after applying
//!   the guard rails (`max_slot_wal_keep_bytes`, idle timeout). Every input is on disk.
//! - All file I/O goes through [`walden_wal::storage::Storage`]
//!   ([`Database::open_with_storage`]), so tests inject faults with
//!   `walden_wal::testing::fault::FaultStorage` (the `testing` feature).
//!
//! ```
//! use walden_engine::{Config, Database, EngineRecord, SlotOptions, StartPosition, SyncMode};
//! # fn main() -> Result<(), walden_engine::EngineError> {
//! let dir = std::env::temp_dir().join(format!("walden-engine-doc-{}", std::process::id()));
//! # let _ = std::fs::remove_dir_all(&dir);
//! let db = Database::open(&dir, Config::with_sync_mode(SyncMode::Group))?;
//! db.create_slot("audit", SlotOptions { start: StartPosition::Oldest, ..SlotOptions::default() })?;
//!
//! let mut txn = db.begin();
//! txn.set_actor("alice");
//! txn.insert("users", b"user-1", b"{\"name\":\"Alice\"}")?;
//! txn.update("users", b"user-1", b"{\"name\":\"Alice\"}", b"{\"name\":\"Alice Smith\"}")?;
//! let commit_lsn = txn.commit()?; // BEGIN = 1, INSERT = 2, UPDATE = 3, COMMIT = 4
//! assert_eq!(commit_lsn, 4);
//!
//! let entries: Vec<_> = db.read_log(1)?.collect::<Result<_, _>>()?;
//! assert_eq!(entries.len(), 4);
//! assert!(entries.iter().all(|e| e.txn_id == 1));
//! assert!(matches!(&entries[1].record, EngineRecord::Change(c) if c.table == "users"));
//!
//! db.advance("audit", commit_lsn)?; // the consumer processed everything up to the commit
//! assert_eq!(db.slot("audit")?.restart_lsn, 5);
//! db.close()?;
//!
//! let db = Database::open(&dir, Config::default())?; // slots survive reopening
//! assert_eq!(db.slot("audit")?.confirmed_lsn, 4);
//! db.close()?;
//! # std::fs::remove_dir_all(&dir).unwrap();
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

mod codec;
mod config;
mod db;
mod error;
mod log;
mod persist;
pub mod record;
pub mod retention;
pub mod slot;
pub mod state;
mod status;
#[cfg(feature = "testing")]
pub mod testing;
mod txn;

pub use walden_wal;
pub use walden_wal::{Lsn, RecoveryMode, SegmentInfo, SyncMode, WalConfig, WalError};

pub use codec::DecodeError;
pub use config::Config;
pub use db::{Database, OpenReport, SLOTS_DIR_NAME, SegmentSealed, SlotGuard, WAL_DIR_NAME};
pub use error::{EngineError, Result};
pub use log::{LogEntry, LogReader};
pub use record::{
    Begin, ChangeOp, Column, Commit, EngineRecord, RowChange, SchemaChange, SchemaRecord, decode, decode_bytes,
};
pub use retention::RetentionHolder;
pub use slot::{
    Invalidation, InvalidationReason, Operation, SlotFilter, SlotInfo, SlotOptions, SlotState, StartPosition,
};
pub use status::{CheckpointReport, InvalidatedSlot, SlotStatus, Status};
pub use txn::{CommitInfo, Transaction};
