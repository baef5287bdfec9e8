//! `walden-wal`: the segmented, append-only write-ahead log at the bottom of Walden.
//!
//! - Records are `(lsn, timestamp_us, kind, payload)`; the log assigns LSNs starting at 1, one
//!   per record, strictly increasing. A batch is atomic: after a crash all of it or none of it.
//! - Segments (`00000000000000000001.wal`, …) carry a header, CRC-checked records chained to
//!   their predecessor, and once sealed a footer with a sparse index, so `open` trusts them
//!   without a scan and only the active segment is scanned.
//! - Durability per [`SyncMode`]; `Group` shares one `fdatasync` among concurrent appenders.
//!   Any write or sync error fails the log until reopened: never a false acknowledgement.
//! - Recovery tells a torn tail (truncated and reported) from corruption (a typed error naming
//!   segment, offset and LSN), with the modes of [`RecoveryMode`].
//! - All I/O goes through [`storage::Storage`]; with the `testing` feature,
//!   `testing::fault::FaultStorage` injects faults (power loss, failing syncs, full disks).
//!
//! The byte layout is documented in `docs/FORMAT.md`.
//!
//! ```
//! use walden_wal::{Wal, WalConfig};
//! # fn main() -> Result<(), walden_wal::WalError> {
//! let dir = std::env::temp_dir().join(format!("walden-doc-{}", std::process::id()));
//! # let _ = std::fs::remove_dir_all(&dir);
//! let wal = Wal::open(&dir, WalConfig::default())?;
//! let lsn = wal.append(1, b"hello")?;
//! let batch = wal.append_batch([(2u8, &b"a"[..]), (2, &b"b"[..])])?;
//! assert_eq!(*batch.start(), lsn + 1);
//! let records: Vec<_> = wal.reader(1)?.collect::<Result<_, _>>()?;
//! assert_eq!(records.len(), 3);
//! assert_eq!(&records[0].payload[..], b"hello");
//! wal.close()?;
//! # std::fs::remove_dir_all(&dir).unwrap();
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

pub mod clock;
mod config;
mod error;
pub mod format;
pub mod inspect;
mod reader;
pub mod recovery;
mod segment;
pub mod storage;
#[cfg(feature = "testing")]
pub mod testing;
mod wal;

/// A log sequence number: 1 for the first record, +1 per record.
pub type Lsn = u64;

pub use config::{
    DEFAULT_PREALLOCATE_BYTES, MAX_PREALLOCATE_BYTES, RECOMMENDED_PREALLOCATE_BYTES, RecoveryMode, SyncMode, WalConfig,
};
pub use error::{Result, WalError};
pub use reader::{Reader, Record};
pub use recovery::{RecoveryReport, SkippedRange, TornTail};
pub use segment::SegmentInfo;
pub use storage::{StdStorage, Storage, StorageFile};
pub use wal::{SealListener, Wal, WalStats};
