//! The clean-close record in `LOCK`: written by `close` after everything is durable, trusted
//! by the next open in place of a scan of the active segment only if every check passes, and
//! cleared durably before anything changes.

use std::path::Path;

use crate::WalError;
use crate::config::{RecoveryMode, WalConfig};
use crate::format::{
    self, CleanClose, FrameError, LOCK_FILE_NAME, MAX_CLEAN_CLOSE_LEN, RECORD_HEADER_LEN, RecordHeader,
    SEGMENT_HEADER_LEN, SegmentHeader,
};
use crate::inspect::{self, FooterState};
use crate::storage::{Storage, StorageFile};

/// `LOCK` open for writing, and what it held at open (`None` if it was empty).
pub(super) type LockFile = (Box<dyn StorageFile>, Option<Vec<u8>>);

/// Opens `LOCK` for reading and writing (creating it if this storage's lock did not) and reads
/// what it holds: empty normally, a clean-close record after a clean close. Contents longer
/// than any valid record are not read (`Some` of an empty vector: invalid).
pub(super) fn open_lock_file(storage: &dyn Storage, dir: &Path) -> Result<LockFile, WalError> {
    let path = dir.join(LOCK_FILE_NAME);
    let file = if storage.exists(&path).map_err(|e| WalError::io("stat", &path, e))? {
        storage.open(&path, true).map_err(|e| WalError::io("open", &path, e))?
    } else {
        storage.create_new(&path).map_err(|e| WalError::io("create", &path, e))?
    };
    let len = file.len().map_err(|e| WalError::io("stat", &path, e))?;
    if len == 0 {
        return Ok((file, None));
    }
    if len > MAX_CLEAN_CLOSE_LEN as u64 {
        return Ok((file, Some(Vec::new())));
    }
    let mut buf = vec![0u8; len as usize];
    file.read_exact_at(&mut buf, 0).map_err(|e| WalError::io("read", &path, e))?;
    Ok((file, Some(buf)))
}

/// Empties `LOCK` durably (`set_len(0)` + `fdatasync`): a clean-close record is invalid from now
/// on, also after a crash or power loss. Called before anything that could change the active
/// segment.
pub(crate) fn clear_clean_close(dir: &Path, file: &dyn StorageFile) -> Result<(), WalError> {
    let path = dir.join(LOCK_FILE_NAME);
    file.set_len(0).map_err(|e| WalError::io("truncate", &path, e))?;
    file.sync_data().map_err(|e| WalError::io("fdatasync", &path, e))?;
    Ok(())
}

/// Writes `record` into `LOCK` and `fdatasync`s it. The caller has made every byte of the active
/// segment durable first.
pub(crate) fn write_clean_close(dir: &Path, file: &dyn StorageFile, record: &CleanClose) -> Result<(), WalError> {
    let path = dir.join(LOCK_FILE_NAME);
    let mut buf = Vec::with_capacity(record.encoded_len());
    record.encode(&mut buf);
    file.set_len(0).map_err(|e| WalError::io("truncate", &path, e))?;
    file.write_all_at(&buf, 0).map_err(|e| WalError::io("write", &path, e))?;
    file.sync_data().map_err(|e| WalError::io("fdatasync", &path, e))?;
    Ok(())
}

/// A clean-close record that passed every check, with what `open` needs beyond it.
pub(super) struct TrustedClean {
    pub(super) record: CleanClose,
    pub(super) last_timestamp_us: u64,
}

/// I/O errors are errors; `Ok(Err(reason))` says why a record is not trusted.
type Verdict<T> = Result<Result<T, String>, WalError>;

/// Whether the clean-close record left in `LOCK` (`bytes`, if any) stands in for a scan of the
/// last segment (`last`: its path and header). A record is trusted in full or not at all, and
/// one not trusted is cleared durably (reported in `report`) before anything in the directory
/// changes.
pub(super) fn decide(
    storage: &dyn Storage,
    config: &WalConfig,
    dir: &Path,
    lock_file: &dyn StorageFile,
    bytes: Option<&[u8]>,
    last: Option<(&Path, &SegmentHeader)>,
    report: &mut crate::RecoveryReport,
) -> Result<Option<TrustedClean>, WalError> {
    let Some(bytes) = bytes else { return Ok(None) };
    match check_clean_close(storage, config, bytes, last)? {
        Ok(trusted) => Ok(Some(trusted)),
        Err(reason) => {
            tracing::warn!(dir = %dir.display(), reason, "not trusting the clean-close record; scanning");
            report.clean_close_rejected = Some(reason);
            clear_clean_close(dir, lock_file)?;
            Ok(None)
        }
    }
}

/// Decides whether the clean-close record `bytes` may stand in for a scan of the last segment
/// (`last`: its path and header).
///
/// Trusted only if the record decodes (magic, version, CRC, consistency); names this log and
/// the last segment; the segment has no footer and is exactly `data_end_offset` bytes long; the
/// record at `last_record_offset` is valid, ends exactly there, ends its batch and carries
/// `last_lsn` and `last_crc`; and the records at the first and last index entries carry the
/// LSNs the index says (the first also the header's chain seed).
fn check_clean_close(
    storage: &dyn Storage,
    config: &WalConfig,
    bytes: &[u8],
    last: Option<(&Path, &SegmentHeader)>,
) -> Verdict<TrustedClean> {
    if !config.clean_close_record {
        return Ok(Err("clean-close records are turned off (WalConfig::clean_close_record)".to_string()));
    }
    if !matches!(config.recovery_mode, RecoveryMode::TolerateTornTail | RecoveryMode::AbsoluteConsistency) {
        return Ok(Err(format!("recovery mode {:?} always scans the active segment", config.recovery_mode)));
    }
    let record = match CleanClose::decode(bytes) {
        Ok(r) => r,
        Err(e) => return Ok(Err(format!("record does not decode: {e}"))),
    };
    let Some((path, header)) = last else { return Ok(Err("the log has no segment".to_string())) };
    if record.log_id != header.log_id {
        return Ok(Err(format!("record is of log {:#x}, not {:#x}", record.log_id, header.log_id)));
    }
    if record.segment_first_lsn != header.first_lsn {
        return Ok(Err(format!(
            "record describes segment {}, the last segment is {}",
            record.segment_first_lsn, header.first_lsn
        )));
    }
    let file = storage.open(path, false).map_err(|e| WalError::io("open", path, e))?;
    let len = file.len().map_err(|e| WalError::io("stat", path, e))?;
    if len != record.data_end_offset {
        return Ok(Err(format!("segment is {len} bytes, the record says {}", record.data_end_offset)));
    }
    if matches!(
        inspect::read_footer(file.as_ref(), path, header)?,
        FooterState::Sealed(_) | FooterState::OtherSegment { .. }
    ) {
        return Ok(Err("segment is sealed".to_string()));
    }
    if record.record_count == 0 {
        if record.last_crc != header.prev_crc {
            return Ok(Err("empty segment, but the record's last CRC is not the header's chain seed".to_string()));
        }
        return Ok(Ok(TrustedClean { record, last_timestamp_us: 0 }));
    }
    Ok(check_records(file.as_ref(), path, header, &record)?
        .map(|last_timestamp_us| TrustedClean { record, last_timestamp_us }))
}

/// The records a non-empty clean-close `record` names: its last record, the segment's first
/// record and the last index entry's. Returns the last record's timestamp.
fn check_records(file: &dyn StorageFile, path: &Path, header: &SegmentHeader, record: &CleanClose) -> Verdict<u64> {
    let read = |offset: u64, n: u64| -> Result<Vec<u8>, WalError> {
        let mut buf = vec![0u8; n as usize];
        file.read_exact_at(&mut buf, offset).map_err(|e| WalError::io("read", path, e))?;
        Ok(buf)
    };
    let max_len = format::MAX_STORED_RECORD_BYTES;
    // `decode` bounds this by the largest record the format allows, and the file is this long.
    let last_bytes = read(record.last_record_offset, record.data_end_offset - record.last_record_offset)?;
    let last_header = match format::verify_record(&last_bytes, max_len) {
        Ok((h, _)) => h,
        Err(e) => return Ok(Err(format!("last record at offset {}: {e}", record.last_record_offset))),
    };
    if last_header.total_len() != last_bytes.len() as u64
        || last_header.lsn != record.last_lsn
        || last_header.crc != record.last_crc
        || !last_header.is_batch_end()
    {
        return Ok(Err(format!(
            "last record at offset {} (LSN {}, CRC {:#010x}, {} bytes) is not the one the record names (LSN {}, \
             CRC {:#010x}, {} bytes, batch end)",
            record.last_record_offset,
            last_header.lsn,
            last_header.crc,
            last_header.total_len(),
            record.last_lsn,
            record.last_crc,
            last_bytes.len()
        )));
    }
    let header_at = |offset: u64| -> Result<Result<RecordHeader, FrameError>, WalError> {
        Ok(RecordHeader::decode(&read(offset, RECORD_HEADER_LEN as u64)?, max_len))
    };
    match header_at(SEGMENT_HEADER_LEN as u64)? {
        Ok(h) if h.lsn == header.first_lsn && h.prev_crc == header.prev_crc => {}
        Ok(h) => return Ok(Err(format!("first record has LSN {} and chain seed {:#010x}", h.lsn, h.prev_crc))),
        Err(e) => return Ok(Err(format!("first record: {e}"))),
    }
    let Some(last_entry) = record.index.last() else {
        return Ok(Err("index is empty".to_string()));
    };
    match header_at(last_entry.offset)? {
        Ok(h) if h.lsn == last_entry.lsn => {}
        Ok(h) => return Ok(Err(format!("index entry {last_entry:?} points at LSN {}", h.lsn))),
        Err(e) => return Ok(Err(format!("index entry {last_entry:?}: {e}"))),
    }
    Ok(Ok(last_header.timestamp_us))
}
