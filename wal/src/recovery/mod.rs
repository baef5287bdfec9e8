//! Opening a log: trusting sealed segments by their footers, scanning only the active one, and
//! telling a torn tail from corruption according to the [`RecoveryMode`].
//!
//! [`recover`] runs in phases, each a function below: list and check every segment's name and
//! header (nothing is changed if anything is foreign); decide on the clean-close record; remove
//! leftovers of an interrupted segment creation; then walk the segments oldest first — check
//! the chain, trust a sealed segment's footer, take the active one from a trusted clean-close
//! record or scan and repair it ([`scan_active`]), seal a salvaged one ([`salvage`]) — and
//! finally start a new active segment if the last one is sealed. What it reads goes through
//! [`crate::inspect`], what it writes through [`segment_files`] and [`clean_close`].

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::clock::now_us;
use crate::config::{RecoveryMode, WalConfig};
use crate::format::{self, SEGMENT_HEADER_LEN, SegmentHeader};
use crate::inspect::{self, ChainEnd, FooterState, ScanOutcome, ScanResult};
use crate::segment::Segment;
use crate::storage::{Storage, StorageFile};
use crate::{Lsn, WalError};

mod clean_close;
mod report;
mod salvage;
mod segment_files;

pub(crate) use clean_close::{clear_clean_close, write_clean_close};
pub use report::{RecoveryReport, SkippedRange, TornTail};
pub(crate) use segment_files::{create_segment, write_footer};

/// The active segment as recovered, ready for the writer.
pub(crate) struct RecoveredActive {
    pub(crate) segment: Arc<Segment>,
    pub(crate) file: Box<dyn StorageFile>,
    pub(crate) write_offset: u64,
    pub(crate) last_lsn: Lsn,
    pub(crate) last_crc: u32,
    pub(crate) record_count: u64,
    pub(crate) last_timestamp_us: u64,
    /// Offset of the last record in the segment (0 if none).
    pub(crate) last_record_offset: u64,
    /// End of the zero-filled space after `write_offset` (the file's length; `write_offset` if
    /// there is none).
    pub(crate) preallocated_end: u64,
    /// The segment's format version: the writer marks new writes ([`format::FLAG_SYNC_START`])
    /// and preallocates only in segments of [`format::FORMAT_VERSION`] 2 and later.
    pub(crate) segment_version: u16,
}

/// Everything `open` needs to start the writer and readers.
pub(crate) struct Recovered {
    pub(crate) log_id: u64,
    pub(crate) sealed: Vec<Arc<Segment>>,
    pub(crate) active: RecoveredActive,
    pub(crate) report: RecoveryReport,
    /// `LOCK`, open for writing: where `close` leaves the clean-close record.
    pub(crate) lock_file: Box<dyn StorageFile>,
    /// Whether `LOCK` holds a clean-close record that is still valid (it was trusted and nothing
    /// has been written since); the writer clears it durably before its first write.
    pub(crate) clean_close_on_disk: bool,
}

impl RecoveredActive {
    /// A new, empty active segment created with `header` after a log ending at
    /// `header.prev_last_lsn` / `header.prev_crc`.
    fn create(
        storage: &dyn Storage,
        dir: &Path,
        header: &SegmentHeader,
        last_timestamp_us: u64,
    ) -> Result<Self, WalError> {
        let (file, path) = create_segment(storage, dir, header)?;
        let empty_end = SEGMENT_HEADER_LEN as u64;
        let segment =
            Arc::new(Segment::new_active(header.first_lsn, path, Vec::new(), empty_end, header.prev_last_lsn));
        Ok(RecoveredActive {
            segment,
            file,
            write_offset: empty_end,
            last_lsn: header.prev_last_lsn,
            last_crc: header.prev_crc,
            record_count: 0,
            last_timestamp_us,
            last_record_offset: 0,
            preallocated_end: empty_end,
            segment_version: header.version,
        })
    }
}

impl Recovered {
    /// The recovered log; completes `report` with what it describes.
    fn new(
        log_id: u64,
        sealed: Vec<Arc<Segment>>,
        active: RecoveredActive,
        mut report: RecoveryReport,
        lock_file: Box<dyn StorageFile>,
        clean_close_on_disk: bool,
    ) -> Recovered {
        debug_assert!(
            sealed.iter().all(|s| s.is_sealed()) && !active.segment.is_sealed(),
            "sealed segments have footers, the active one has none"
        );
        debug_assert!(sealed.last().is_none_or(|s| s.last_lsn() < active.segment.first_lsn), "segments ascend");
        report.segment_count = sealed.len() + 1;
        report.oldest_lsn = sealed.first().map_or(active.segment.first_lsn, |s| s.first_lsn);
        report.last_lsn = active.last_lsn;
        Recovered { log_id, sealed, active, report, lock_file, clean_close_on_disk }
    }
}

/// Largest stored payload a record may have. Stored records are bounded by the format's
/// ceiling (1 GiB), not by the configured maximum: the configured maximum limits new appends
/// only, so a log written with a larger limit still opens and reads with a smaller one.
pub(crate) fn max_stored_len(config: &WalConfig) -> u32 {
    let _ = config;
    format::MAX_STORED_RECORD_BYTES
}

/// Opens (or creates) the log in `dir` and recovers it.
pub(crate) fn recover(storage: &dyn Storage, dir: &Path, config: &WalConfig) -> Result<Recovered, WalError> {
    let listing = inspect::list(storage, dir)?;
    if let Some(path) = listing.unknown_files.first() {
        return Err(WalError::UnknownFile { path: path.clone() });
    }
    let (lock_file, clean_close_bytes) = clean_close::open_lock_file(storage, dir)?;
    let mut report = RecoveryReport::new(config.recovery_mode);
    let segments = read_headers(storage, &listing.segments)?;
    let last = segments.last().map(|s| (s.path.as_path(), &s.header));
    let trusted =
        clean_close::decide(storage, config, dir, lock_file.as_ref(), clean_close_bytes.as_deref(), last, &mut report)?;
    let clean_close_on_disk = trusted.is_some();
    remove_temp_files(storage, dir, &listing.temp_files, &mut report)?;
    let Some(log_id) = segments.first().map(|s| s.header.log_id) else {
        let header = first_segment_header();
        let active = RecoveredActive::create(storage, dir, &header, 0)?;
        return Ok(Recovered::new(header.log_id, Vec::new(), active, report, lock_file, clean_close_on_disk));
    };
    let mut walk = Walk { storage, dir, config, report, sealed: Vec::new(), active: None, trusted };
    for (i, segment) in segments.iter().enumerate() {
        walk.segment(segment, i + 1 == segments.len())?;
    }
    let Walk { report, sealed, active, .. } = walk;
    let active = match active {
        Some(active) => active,
        None => start_after_sealed(storage, dir, log_id, &sealed)?,
    };
    Ok(Recovered::new(log_id, sealed, active, report, lock_file, clean_close_on_disk))
}

/// A segment file and its checked header.
struct Listed {
    path: PathBuf,
    header: SegmentHeader,
}

/// Validates every segment's name and header before anything is touched (nothing is deleted
/// if something foreign is found): each header names the LSN in its file name and the same
/// log.
fn read_headers(storage: &dyn Storage, segments: &[(Lsn, PathBuf)]) -> Result<Vec<Listed>, WalError> {
    let mut listed: Vec<Listed> = Vec::with_capacity(segments.len());
    for (lsn, path) in segments {
        let file = storage.open(path, false).map_err(|e| WalError::io("open", path, e))?;
        let header = inspect::read_header(file.as_ref(), path, *lsn)?.map_err(|problem| {
            if problem.is_foreign() {
                WalError::ForeignSegment { path: path.clone(), detail: problem.to_string() }
            } else {
                WalError::Corruption { segment: path.clone(), offset: 0, lsn: None, detail: problem.to_string() }
            }
        })?;
        if let Some(first) = listed.first()
            && first.header.log_id != header.log_id
        {
            return Err(WalError::ForeignSegment {
                path: path.clone(),
                detail: format!("belongs to log {:#x}, not {:#x}", header.log_id, first.header.log_id),
            });
        }
        listed.push(Listed { path: path.clone(), header });
    }
    Ok(listed)
}

/// Removes leftovers of an interrupted segment creation, durably.
fn remove_temp_files(
    storage: &dyn Storage,
    dir: &Path,
    temps: &[PathBuf],
    report: &mut RecoveryReport,
) -> Result<(), WalError> {
    for tmp in temps {
        storage.remove_file(tmp).map_err(|e| WalError::io("remove", tmp, e))?;
        report.temp_files_removed.push(tmp.clone());
    }
    if !temps.is_empty() {
        storage.sync_dir(dir).map_err(|e| WalError::io("fsync directory", dir, e))?;
    }
    Ok(())
}

/// The header of the first segment of a new log.
fn first_segment_header() -> SegmentHeader {
    SegmentHeader {
        version: format::FORMAT_VERSION,
        log_id: segment_files::new_log_id(),
        first_lsn: 1,
        prev_last_lsn: 0,
        prev_crc: 0,
        created_at_us: now_us(),
    }
}

/// The last segment is sealed: a new active segment starts after it.
fn start_after_sealed(
    storage: &dyn Storage,
    dir: &Path,
    log_id: u64,
    sealed: &[Arc<Segment>],
) -> Result<RecoveredActive, WalError> {
    let Some(last) = sealed.last().and_then(|s| s.footer.get()) else {
        unreachable!("a log with segments and no active one has a sealed last segment");
    };
    let header = SegmentHeader {
        version: format::FORMAT_VERSION,
        log_id,
        first_lsn: last.last_lsn + 1,
        prev_last_lsn: last.last_lsn,
        prev_crc: last.last_crc,
        created_at_us: now_us(),
    };
    RecoveredActive::create(storage, dir, &header, last.sealed_at_us.min(now_us()))
}

/// The walk over the segments, oldest first.
struct Walk<'a> {
    storage: &'a dyn Storage,
    dir: &'a Path,
    config: &'a WalConfig,
    report: RecoveryReport,
    sealed: Vec<Arc<Segment>>,
    active: Option<RecoveredActive>,
    /// The clean-close record, if trusted: it describes the last segment.
    trusted: Option<clean_close::TrustedClean>,
}

impl Walk<'_> {
    /// Recovers one segment: checks it continues the one before, then trusts it (footer or
    /// clean-close record) or scans it.
    fn segment(&mut self, segment: &Listed, is_last: bool) -> Result<(), WalError> {
        let Listed { path, header } = segment;
        self.check_chain(path, header)?;
        if is_last && let Some(trusted) = self.trusted.take() {
            // Closed cleanly and unchanged since: no scan, nothing to truncate or sync.
            self.active = Some(self.trusted_active(path, header, trusted)?);
            return Ok(());
        }
        let file = self.storage.open(path, is_last).map_err(|e| WalError::io("open", path, e))?;
        match inspect::read_footer(file.as_ref(), path, header)? {
            FooterState::Sealed(footer) => {
                self.report.sealed_segments_trusted += 1;
                self.sealed.push(Arc::new(Segment::new_sealed(path.clone(), footer)));
                return Ok(());
            }
            FooterState::OtherSegment { .. } if !is_last => {
                return Err(WalError::Corruption {
                    segment: path.clone(),
                    offset: 0,
                    lsn: Some(header.first_lsn),
                    detail: "footer describes another segment".to_string(),
                });
            }
            state @ (FooterState::Absent | FooterState::Invalid(_))
                if !is_last && self.config.recovery_mode != RecoveryMode::SkipCorrupted =>
            {
                let why = match state {
                    FooterState::Invalid(e) => e.to_string(),
                    _ => "no footer".to_string(),
                };
                return Err(WalError::Corruption {
                    segment: path.clone(),
                    offset: file.len().unwrap_or(0),
                    lsn: None,
                    detail: format!("sealed segment has no valid footer: {why}"),
                });
            }
            _ => {}
        }
        // Scan: the active segment, or (salvage only) a damaged sealed one.
        let file =
            if is_last { file } else { self.storage.open(path, true).map_err(|e| WalError::io("open", path, e))? };
        self.scan(path, header, file, is_last)
    }

    /// Checks that `header` continues the last sealed segment; salvage tolerates (and reports)
    /// a gap that dropped LSNs.
    fn check_chain(&mut self, path: &Path, header: &SegmentHeader) -> Result<(), WalError> {
        let Some(prev) = self.sealed.last().and_then(|s| s.footer.get()) else { return Ok(()) };
        let prev = ChainEnd { last_lsn: prev.last_lsn, last_crc: prev.last_crc };
        let Err(chain_break) = inspect::check_chain(prev, header) else { return Ok(()) };
        if self.config.recovery_mode != RecoveryMode::SkipCorrupted || !chain_break.is_gap() {
            return Err(WalError::Corruption {
                segment: path.to_path_buf(),
                offset: 0,
                lsn: Some(header.first_lsn),
                detail: chain_break.to_string(),
            });
        }
        if let Some(lost_lsns) = chain_break.missing_lsns() {
            self.report.skipped_ranges.push(SkippedRange {
                segment: path.to_path_buf(),
                start_offset: 0,
                end_offset: 0,
                lost_lsns: Some(lost_lsns),
            });
        }
        Ok(())
    }

    /// The active segment as a trusted clean-close record describes it.
    fn trusted_active(
        &mut self,
        path: &Path,
        header: &SegmentHeader,
        trusted: clean_close::TrustedClean,
    ) -> Result<RecoveredActive, WalError> {
        let clean_close::TrustedClean { record, last_timestamp_us } = trusted;
        let file = self.storage.open(path, true).map_err(|e| WalError::io("open", path, e))?;
        self.report.active_segment_trusted = true;
        self.report.records_recovered += record.record_count;
        let segment = Arc::new(Segment::new_active(
            header.first_lsn,
            path.to_path_buf(),
            record.index,
            record.data_end_offset,
            record.last_lsn,
        ));
        Ok(RecoveredActive {
            segment,
            file,
            write_offset: record.data_end_offset,
            last_lsn: record.last_lsn,
            last_crc: record.last_crc,
            record_count: record.record_count,
            last_timestamp_us,
            last_record_offset: record.last_record_offset,
            preallocated_end: record.data_end_offset,
            segment_version: header.version,
        })
    }

    /// Scans a segment and applies the recovery mode to what the scan found: corruption fails
    /// the open, a torn tail is cut (or refused in absolute consistency), salvage holes are
    /// reported and the segment sealed.
    fn scan(
        &mut self,
        path: &Path,
        header: &SegmentHeader,
        file: Box<dyn StorageFile>,
        is_last: bool,
    ) -> Result<(), WalError> {
        let bytes = inspect::read_whole(self.storage, path)?;
        let mode = self.config.recovery_mode;
        let max_len = max_stored_len(self.config);
        let scan = inspect::scan_segment(&bytes, header, mode, max_len, self.config.index_interval_bytes, is_last);
        self.judge(path, &scan, bytes.len() as u64)?;
        for hole in &scan.holes {
            self.report.skipped_ranges.push(SkippedRange {
                segment: path.to_path_buf(),
                start_offset: hole.start_offset,
                end_offset: hole.end_offset,
                lost_lsns: None,
            });
        }
        self.report.records_recovered += scan.record_count;
        if (!is_last || !scan.holes.is_empty()) && scan.record_count > 0 {
            // Salvage: make the repaired segment sealed so readers can trust its holes.
            let footer = salvage::seal(path, header, file.as_ref(), &scan)?;
            self.sealed.push(Arc::new(Segment::new_sealed(path.to_path_buf(), footer)));
            if is_last {
                self.active = None;
            }
            return Ok(());
        }
        let active = scan_active(
            self.storage,
            self.dir,
            self.config,
            path,
            header,
            file,
            &scan,
            bytes.len() as u64,
            &mut self.report,
        )?;
        if !is_last {
            // Salvage of a sealed segment with nothing valid in it.
            return Err(WalError::Corruption {
                segment: path.to_path_buf(),
                offset: SEGMENT_HEADER_LEN as u64,
                lsn: Some(header.first_lsn),
                detail: "sealed segment has no valid records".to_string(),
            });
        }
        self.active = Some(active);
        Ok(())
    }

    /// Applies the recovery mode to the scan's outcome: corruption fails, a torn tail is
    /// reported (absolute consistency refuses it).
    fn judge(&mut self, path: &Path, scan: &ScanResult, file_len: u64) -> Result<(), WalError> {
        match &scan.outcome {
            ScanOutcome::Clean => {
                if scan.zero_tail_bytes > 0 {
                    tracing::debug!(segment = %path.display(), offset = scan.valid_end_offset, bytes = scan.zero_tail_bytes, "zero-filled (preallocated) tail after the last batch");
                }
                Ok(())
            }
            ScanOutcome::Corruption { offset, lsn, detail } => Err(WalError::Corruption {
                segment: path.to_path_buf(),
                offset: *offset,
                lsn: Some(*lsn),
                detail: format!(
                    "{detail} (open with RecoveryMode::PointInTime to truncate here, or SkipCorrupted to salvage)"
                ),
            }),
            ScanOutcome::TornTail { offset, records_dropped, reason } => {
                let bytes = file_len - offset;
                if self.config.recovery_mode == RecoveryMode::AbsoluteConsistency {
                    return Err(WalError::IncompleteTail { segment: path.to_path_buf(), offset: *offset, bytes });
                }
                tracing::warn!(segment = %path.display(), offset, bytes, records_dropped, reason, "truncating torn tail");
                self.report.bytes_truncated += bytes;
                self.report.torn_tail = Some(TornTail {
                    segment: path.to_path_buf(),
                    offset: *offset,
                    bytes,
                    records_dropped: *records_dropped,
                    reason: reason.clone(),
                });
                Ok(())
            }
        }
    }
}

/// The scanned active segment made ready for the writer: anything past the end of the data is
/// cut, except a zero-filled tail that a preallocating writer keeps, and what is kept is
/// synced (after a process crash the page cache may hold records that were never synced; from
/// now on they count as durable).
#[allow(clippy::too_many_arguments)]
fn scan_active(
    storage: &dyn Storage,
    dir: &Path,
    config: &WalConfig,
    path: &Path,
    header: &SegmentHeader,
    file: Box<dyn StorageFile>,
    scan: &ScanResult,
    file_len: u64,
    report: &mut RecoveryReport,
) -> Result<RecoveredActive, WalError> {
    // A zero-filled tail after the data is preallocated space. A writer that preallocates keeps
    // it (durable now, by the sync below, so it need not be zero-filled again); one that does
    // not (`None`, `IntervalMs`, or `preallocate_bytes` 0) has it cut, since its unsynced writes
    // must not half-overwrite synced zeros and half grow the file (a power loss could then keep
    // the grown part and lose the part before it). Anything else past the data is cut too.
    let zero_tail = if scan.outcome == ScanOutcome::Clean { scan.zero_tail_bytes } else { 0 };
    report.preallocated_bytes += zero_tail;
    // (A version 1 segment, from an older build, is never preallocated into: its records cannot
    // mark new writes, so an interrupted overwrite there would read as corruption.)
    let preallocates = config.effective_preallocate_bytes() > 0 && header.version >= format::SYNC_START_FORMAT_VERSION;
    let kept_zero_tail = if preallocates { zero_tail } else { 0 };
    if scan.valid_end_offset + kept_zero_tail < file_len {
        file.set_len(scan.valid_end_offset).map_err(|e| WalError::io("truncate", path, e))?;
    }
    file.sync_data().map_err(|e| WalError::io("fdatasync", path, e))?;
    storage.sync_dir(dir).map_err(|e| WalError::io("fsync directory", dir, e))?;
    let segment = Arc::new(Segment::new_active(
        header.first_lsn,
        path.to_path_buf(),
        scan.index.clone(),
        scan.valid_end_offset,
        scan.last_lsn,
    ));
    Ok(RecoveredActive {
        segment,
        file,
        write_offset: scan.valid_end_offset,
        last_lsn: scan.last_lsn,
        last_crc: scan.last_crc,
        record_count: scan.record_count,
        last_timestamp_us: scan.last_timestamp_us,
        last_record_offset: scan.last_record_offset,
        preallocated_end: scan.valid_end_offset + kept_zero_tail,
        segment_version: header.version,
    })
}
