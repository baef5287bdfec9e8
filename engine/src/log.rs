//! Reading the log back as decoded engine records (CDC builds on this).

use std::time::Duration;

use walden_wal::{Reader, Record};

use crate::Lsn;
use crate::error::{EngineError, Result};
use crate::record::{self, EngineRecord};

/// One engine record read from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// The record's LSN.
    pub lsn: Lsn,
    /// When the record was appended, µs since the Unix epoch (all records of a transaction share it).
    pub timestamp_us: u64,
    /// The transaction it belongs to: the LSN of the transaction's BEGIN.
    pub txn_id: u64,
    /// The decoded record.
    pub record: EngineRecord,
}

impl LogEntry {
    /// Decodes a raw WAL record (zero-copy for keys and row images).
    pub fn from_record(r: &Record) -> Result<LogEntry> {
        let record =
            record::decode_bytes(r.kind, &r.payload).map_err(|source| EngineError::Decode { lsn: r.lsn, source })?;
        let txn_id = record.txn_id(r.lsn).ok_or_else(|| EngineError::Decode {
            lsn: r.lsn,
            source: crate::DecodeError::InvalidValue {
                field: "transaction offset",
                detail: format!("offset {} is impossible at LSN {}", record.txn_offset(), r.lsn),
            },
        })?;
        Ok(LogEntry { lsn: r.lsn, timestamp_us: r.timestamp_us, txn_id, record })
    }
}

/// Iterates decoded records in LSN order from a starting LSN; see [`crate::Database::read_log`].
///
/// Sees what the WAL's readers see: durable records in `Always`/`Group`, written ones otherwise.
/// As an [`Iterator`] it stops at the end of visible data (and after the first error);
/// [`LogReader::next_timeout`] waits for new records.
#[derive(Debug)]
pub struct LogReader {
    inner: Reader,
    fused: bool,
}

impl LogReader {
    pub(crate) fn new(inner: Reader) -> LogReader {
        LogReader { inner, fused: false }
    }

    /// The LSN of the next record this reader returns.
    pub fn next_lsn(&self) -> Lsn {
        self.inner.next_lsn()
    }

    /// Repositions the reader at `lsn`.
    pub fn seek(&mut self, lsn: Lsn) -> Result<()> {
        self.fused = false;
        Ok(self.inner.seek(lsn)?)
    }

    /// The next entry, or `None` at the end of visible data.
    pub fn next_entry(&mut self) -> Result<Option<LogEntry>> {
        match self.inner.next_record()? {
            Some(r) => LogEntry::from_record(&r).map(Some),
            None => Ok(None),
        }
    }

    /// The next entry, waiting up to `timeout` for one to be appended (`None`: nothing new).
    pub fn next_timeout(&mut self, timeout: Duration) -> Result<Option<LogEntry>> {
        match self.inner.next_timeout(timeout)? {
            Some(r) => LogEntry::from_record(&r).map(Some),
            None => Ok(None),
        }
    }
}

impl Iterator for LogReader {
    type Item = Result<LogEntry>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.fused {
            return None;
        }
        match self.next_entry() {
            Ok(Some(e)) => Some(Ok(e)),
            Ok(None) => None,
            Err(e) => {
                self.fused = true;
                Some(Err(e))
            }
        }
    }
}
