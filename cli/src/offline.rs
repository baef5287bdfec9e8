//! Read-only access to a data directory, straight from the files.
//!
//! The read-only commands (`status`, `dump`, `verify`, `slots list`) never open a
//! [`walden_engine::Database`]: opening takes the WAL's lock and may write (it truncates a torn
//! tail, removes temporary files, invalidates slots, creates a segment). Instead they read the
//! files with the WAL's and the engine's pure decoders ([`walden_wal::format`],
//! [`walden_wal::recovery::scan_segment`], [`SlotRecord::decode`], [`EngineState::decode`]), like
//! `pg_waldump` reads PostgreSQL's WAL files. So they create and modify nothing, take no lock,
//! and work while another process has the database open (they then see the files as they are:
//! records a running writer has not fsynced yet may show, and an incomplete last batch is left
//! out).

use std::borrow::Cow;
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use serde::Serialize;
use walden_engine::slot::SlotRecord;
use walden_engine::state::{EngineState, STATE_FILE_NAME};
use walden_wal::format::{
    self, Footer, FrameError, Hole, SEGMENT_HEADER_LEN, SegmentHeader, TRAILER_LEN, TRAILER_MAGIC,
};
use walden_wal::recovery::{self, ScanOutcome};
use walden_wal::{Lsn, RecoveryMode};

use crate::datadir::DataDir;
use crate::exit::{CliError, CliResult, Code};

/// Bound on a record's stored length when reading (the largest `max_record_size_bytes` the WAL
/// accepts), so logs written with any configuration read.
pub const MAX_STORED_LEN: u32 = 1 << 30;
/// Index spacing handed to the scanner (the index it builds is not used).
const SCAN_INDEX_INTERVAL_BYTES: u64 = 32 << 10;

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Expected after a crash or harmless (a torn tail, a leftover temporary file); the engine
    /// repairs or ignores it at the next open.
    Warning,
    /// Damage or an inconsistency: the engine refuses to open, loses data, or invalidates a slot.
    Error,
}

/// One finding, located as precisely as possible.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// Warning or error.
    pub severity: Severity,
    /// The file concerned.
    pub path: PathBuf,
    /// Byte offset within the file, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    /// LSN concerned, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lsn: Option<Lsn>,
    /// What is wrong.
    pub detail: String,
}

impl Problem {
    /// An error finding.
    pub fn error(path: &Path, offset: Option<u64>, lsn: Option<Lsn>, detail: impl Into<String>) -> Problem {
        Problem { severity: Severity::Error, path: path.to_path_buf(), offset, lsn, detail: detail.into() }
    }

    /// A warning finding.
    pub fn warning(path: &Path, offset: Option<u64>, lsn: Option<Lsn>, detail: impl Into<String>) -> Problem {
        Problem { severity: Severity::Warning, path: path.to_path_buf(), offset, lsn, detail: detail.into() }
    }

    /// `path at byte N (LSN M): detail`.
    pub fn located(&self) -> String {
        let mut out = self.path.display().to_string();
        if let Some(offset) = self.offset {
            out.push_str(&format!(" at byte {offset}"));
        }
        if let Some(lsn) = self.lsn {
            out.push_str(&format!(" (LSN {lsn})"));
        }
        out.push_str(": ");
        out.push_str(&self.detail);
        out
    }

    /// The problem as a CLI error ([`Code::Damaged`], or [`Code::Foreign`] for a segment of
    /// another log).
    pub fn into_error(self, foreign: bool) -> CliError {
        let code = if foreign { Code::Foreign } else { Code::Damaged };
        CliError::new(code, self.located()).with_hint("run `walden verify` for a full report")
    }
}

fn io_error(op: &str, path: &Path, e: &io::Error) -> CliError {
    if e.kind() == io::ErrorKind::NotFound {
        CliError::new(
            Code::Failure,
            format!("{} disappeared while reading it (removed by a checkpoint of a running process?)", path.display()),
        )
        .with_hint("run the command again")
    } else {
        CliError::io(op, path, e)
    }
}

/// Why a segment header could not be used.
#[derive(Debug)]
pub enum HeaderError {
    /// Not a segment of a Walden log (bad magic, unsupported version, too short).
    Foreign(Problem),
    /// A Walden segment header that is damaged (bad checksum, impossible field).
    Damaged(Problem),
}

impl HeaderError {
    /// The finding.
    pub fn problem(&self) -> &Problem {
        match self {
            HeaderError::Foreign(p) | HeaderError::Damaged(p) => p,
        }
    }

    /// As a CLI error.
    pub fn into_error(self) -> CliError {
        match self {
            HeaderError::Foreign(p) => p.into_error(true),
            HeaderError::Damaged(p) => p.into_error(false),
        }
    }
}

/// Reads and validates a segment's header, and checks it against the file name.
pub fn read_header(path: &Path, name_lsn: Lsn) -> CliResult<Result<(SegmentHeader, u64), HeaderError>> {
    let file = File::open(path).map_err(|e| io_error("cannot open", path, &e))?;
    let len = file.metadata().map_err(|e| io_error("cannot stat", path, &e))?.len();
    if len < SEGMENT_HEADER_LEN as u64 {
        return Ok(Err(HeaderError::Foreign(Problem::error(
            path,
            Some(0),
            None,
            format!("not a segment: {len} bytes is shorter than a segment header"),
        ))));
    }
    let mut buf = [0u8; SEGMENT_HEADER_LEN];
    file.read_exact_at(&mut buf, 0).map_err(|e| io_error("cannot read", path, &e))?;
    let header = match SegmentHeader::decode(&buf) {
        Ok(h) => h,
        Err(e @ (FrameError::BadChecksum { .. } | FrameError::Invalid(_))) => {
            return Ok(Err(HeaderError::Damaged(Problem::error(path, Some(0), None, format!("segment header: {e}")))));
        }
        Err(e) => {
            return Ok(Err(HeaderError::Foreign(Problem::error(
                path,
                Some(0),
                None,
                format!("not a segment of a Walden log: {e}"),
            ))));
        }
    };
    if header.first_lsn != name_lsn {
        return Ok(Err(HeaderError::Foreign(Problem::error(
            path,
            Some(0),
            None,
            format!("the file name says first LSN {name_lsn}, the header says {}", header.first_lsn),
        ))));
    }
    Ok(Ok((header, len)))
}

/// Reads a segment's footer. `None`: the file does not end in a trailer (an active segment);
/// `Some(Err)`: it does, but the footer is invalid.
pub fn read_footer(path: &Path, len: u64) -> CliResult<Option<Result<Footer, FrameError>>> {
    if len < (SEGMENT_HEADER_LEN + TRAILER_LEN) as u64 {
        return Ok(None);
    }
    let file = File::open(path).map_err(|e| io_error("cannot open", path, &e))?;
    let mut trailer = [0u8; TRAILER_LEN];
    file.read_exact_at(&mut trailer, len - TRAILER_LEN as u64).map_err(|e| io_error("cannot read", path, &e))?;
    if trailer[8..16] != TRAILER_MAGIC {
        return Ok(None);
    }
    let (offset, footer_len, _) = match Footer::decode_trailer(&trailer, len) {
        Ok(t) => t,
        Err(e) => return Ok(Some(Err(e))),
    };
    let mut buf = vec![0u8; footer_len];
    file.read_exact_at(&mut buf, offset).map_err(|e| io_error("cannot read", path, &e))?;
    Ok(Some(Footer::decode(&buf, offset)))
}

/// One segment after a full scan of its records.
#[derive(Debug)]
pub struct ScannedSegment {
    /// The file.
    pub path: PathBuf,
    /// Its footer, if sealed.
    pub footer: Option<Footer>,
    /// The whole file.
    pub bytes: Vec<u8>,
    /// Where valid, batch-complete records end.
    pub valid_end_offset: u64,
    /// Records kept by the scan.
    pub record_count: u64,
    /// Last valid LSN (`first_lsn - 1` if none).
    pub last_lsn: Lsn,
    /// CRC of the last valid record.
    pub last_crc: u32,
    /// Damaged ranges skipped (salvaged segments only).
    pub holes: Vec<Hole>,
    /// Preallocated zero bytes after the data (`WalConfig::preallocate_bytes`), not data.
    pub zero_tail_bytes: u64,
    /// How the scan ended.
    pub outcome: ScanOutcome,
}

/// Reads a whole segment and scans its records (every CRC, LSN and chain link), up to the
/// footer's data end for a sealed segment. Damage is in [`ScannedSegment::outcome`]. A segment
/// without a footer is scanned as the log's last (active) one: only there can damage be an
/// interrupted write (`recovery::scan_segment`).
pub fn scan(path: &Path, header: SegmentHeader, footer: Option<Footer>) -> CliResult<ScannedSegment> {
    let bytes = fs::read(path).map_err(|e| io_error("cannot read", path, &e))?;
    let data_end = footer.as_ref().map_or(bytes.len() as u64, |f| f.data_end_offset.min(bytes.len() as u64));
    let mode = if footer.as_ref().is_some_and(|f| !f.holes.is_empty()) {
        RecoveryMode::SkipCorrupted
    } else {
        RecoveryMode::TolerateTornTail
    };
    let last_segment = footer.is_none();
    let result = recovery::scan_segment(
        &bytes[..data_end as usize],
        &header,
        mode,
        MAX_STORED_LEN,
        SCAN_INDEX_INTERVAL_BYTES,
        last_segment,
    );
    Ok(ScannedSegment {
        path: path.to_path_buf(),
        footer,
        bytes,
        valid_end_offset: result.valid_end_offset,
        record_count: result.record_count,
        last_lsn: result.last_lsn,
        last_crc: result.last_crc,
        holes: result.holes,
        zero_tail_bytes: result.zero_tail_bytes,
        outcome: result.outcome,
    })
}

/// One record read from a segment file.
#[derive(Debug, Clone)]
pub struct RawRecord<'a> {
    /// LSN.
    pub lsn: Lsn,
    /// Append time, µs since the Unix epoch.
    pub timestamp_us: u64,
    /// Record kind.
    pub kind: u8,
    /// Whether it ends its batch.
    pub batch_end: bool,
    /// Offset of its header in the file.
    pub offset: u64,
    /// Bytes on disk (header + stored payload).
    pub disk_bytes: u64,
    /// The payload, decompressed.
    pub payload: Cow<'a, [u8]>,
}

impl ScannedSegment {
    /// The valid records, in order (holes skipped). Only a record whose compressed payload does
    /// not decompress can fail here; the scan checked everything else.
    pub fn records(&self) -> impl Iterator<Item = Result<RawRecord<'_>, Problem>> + '_ {
        let mut pos = SEGMENT_HEADER_LEN as u64;
        let end = self.valid_end_offset;
        let mut failed = false;
        std::iter::from_fn(move || {
            if failed {
                return None;
            }
            if let Some(hole) = self.holes.iter().find(|h| h.start_offset == pos) {
                pos = hole.end_offset;
            }
            if pos >= end {
                return None;
            }
            let slice = &self.bytes[pos as usize..end as usize];
            let item = match format::verify_record(slice, MAX_STORED_LEN) {
                Ok((h, range)) => {
                    let stored = &slice[range];
                    let payload = if h.is_compressed() {
                        format::decompress_payload(stored, MAX_STORED_LEN).map(Cow::Owned)
                    } else {
                        Ok(Cow::Borrowed(stored))
                    };
                    match payload {
                        Ok(payload) => {
                            let rec = RawRecord {
                                lsn: h.lsn,
                                timestamp_us: h.timestamp_us,
                                kind: h.kind,
                                batch_end: h.is_batch_end(),
                                offset: pos,
                                disk_bytes: h.total_len(),
                                payload,
                            };
                            pos += h.total_len();
                            Ok(rec)
                        }
                        Err(e) => Err(Problem::error(&self.path, Some(pos), Some(h.lsn), format!("payload: {e}"))),
                    }
                }
                Err(e) => Err(Problem::error(&self.path, Some(pos), None, format!("record: {e}"))),
            };
            failed = item.is_err();
            Some(item)
        })
    }
}

/// One segment as `status` and `slots list` see it (sealed ones from their footer, the active
/// one from a scan), mirroring [`walden_wal::SegmentInfo`].
#[derive(Debug, Clone, Serialize)]
pub struct SegmentView {
    /// The file.
    pub path: PathBuf,
    /// First LSN.
    pub first_lsn: Lsn,
    /// Last LSN (`first_lsn - 1` while an active segment is empty).
    pub last_lsn: Lsn,
    /// Sealed (immutable, with a footer).
    pub sealed: bool,
    /// File size in bytes.
    pub size_bytes: u64,
}

/// An incomplete tail at the end of the active segment.
#[derive(Debug, Clone, Serialize)]
pub struct TailView {
    /// The segment.
    pub path: PathBuf,
    /// Where valid data ends.
    pub offset: u64,
    /// Bytes after it.
    pub bytes: u64,
    /// Why the scan stopped there.
    pub reason: String,
}

/// The log as the files describe it.
#[derive(Debug, Clone)]
pub struct LogView {
    /// Every segment, oldest first.
    pub segments: Vec<SegmentView>,
    /// Oldest LSN retained.
    pub oldest_lsn: Lsn,
    /// Last complete LSN on disk (0 for an empty log).
    pub last_lsn: Lsn,
    /// The active segment's incomplete tail (a crash's torn write, or a write in progress).
    pub torn_tail: Option<TailView>,
}

/// Reads the log's shape: headers and footers of sealed segments (trusted, as the WAL's open
/// does), a scan of the active one. Damage that would stop the WAL from opening is an error.
pub fn read_log(dir: &DataDir) -> CliResult<LogView> {
    let mut segments = Vec::with_capacity(dir.segments.len());
    let mut torn_tail = None;
    let last_index = dir.segments.len().saturating_sub(1);
    for (i, (name_lsn, path)) in dir.segments.iter().enumerate() {
        let (header, len) = read_header(path, *name_lsn)?.map_err(HeaderError::into_error)?;
        match read_footer(path, len)? {
            Some(Ok(footer)) if footer.first_lsn == header.first_lsn => {
                segments.push(SegmentView {
                    path: path.clone(),
                    first_lsn: header.first_lsn,
                    last_lsn: footer.last_lsn,
                    sealed: true,
                    size_bytes: len,
                });
                continue;
            }
            Some(Ok(_)) | Some(Err(_)) | None if i != last_index => {
                return Err(Problem::error(path, None, Some(header.first_lsn), "sealed segment has no valid footer")
                    .into_error(false));
            }
            _ => {}
        }
        let scanned = scan(path, header, None)?;
        match &scanned.outcome {
            ScanOutcome::Clean => {}
            ScanOutcome::TornTail { offset, reason, .. } => {
                torn_tail =
                    Some(TailView { path: path.clone(), offset: *offset, bytes: len - offset, reason: reason.clone() });
            }
            ScanOutcome::Corruption { offset, lsn, detail } => {
                return Err(Problem::error(path, Some(*offset), Some(*lsn), detail.clone()).into_error(false));
            }
        }
        segments.push(SegmentView {
            path: path.clone(),
            first_lsn: header.first_lsn,
            last_lsn: scanned.last_lsn,
            sealed: false,
            // Preallocated zeros are space, not log: the WAL's own accounting leaves them out.
            size_bytes: len - scanned.zero_tail_bytes.min(len),
        });
    }
    let oldest_lsn = segments.first().map_or(1, |s| s.first_lsn);
    let last_lsn = segments.last().map_or(0, |s| s.last_lsn);
    Ok(LogView { segments, oldest_lsn, last_lsn, torn_tail })
}

/// The slot directory's contents.
#[derive(Debug, Clone, Default)]
pub struct SlotsView {
    /// Slot files that decode, by name.
    pub slots: Vec<(PathBuf, SlotRecord)>,
    /// Slot files that do not decode, or hold another slot's name.
    pub problems: Vec<Problem>,
    /// Leftover `*.tmp` files (interrupted writes; removed at the next open).
    pub temp_files: Vec<PathBuf>,
    /// Files that are not slot files (ignored by the engine).
    pub foreign_files: Vec<PathBuf>,
}

/// Reads every slot file.
pub fn read_slots(dir: &DataDir) -> CliResult<SlotsView> {
    let mut view = SlotsView::default();
    let names = match fs::read_dir(&dir.slots) {
        Ok(entries) => {
            let mut names = Vec::new();
            for entry in entries {
                let entry = entry.map_err(|e| io_error("cannot list", &dir.slots, &e))?;
                names.push(entry.file_name().to_string_lossy().into_owned());
            }
            names.sort();
            names
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(view),
        Err(e) => return Err(io_error("cannot list", &dir.slots, &e)),
    };
    for name in names {
        let path = dir.slots.join(&name);
        if name.ends_with(".tmp") {
            view.temp_files.push(path);
            continue;
        }
        let Some(stem) = name
            .strip_suffix(walden_engine::slot::SLOT_FILE_EXTENSION)
            .filter(|s| walden_engine::slot::validate_slot_name(s).is_ok())
        else {
            view.foreign_files.push(path);
            continue;
        };
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue, // dropped meanwhile
            Err(e) => return Err(io_error("cannot read", &path, &e)),
        };
        match SlotRecord::decode(&bytes) {
            Ok(rec) if rec.name == stem => view.slots.push((path, rec)),
            Ok(rec) => view.problems.push(Problem::error(
                &path,
                None,
                None,
                format!("the file holds slot {:?}, not {stem:?}", rec.name),
            )),
            Err(e) => view.problems.push(Problem::error(&path, None, None, format!("corrupt slot file: {e}"))),
        }
    }
    Ok(view)
}

/// Reads `engine.state`: `Ok(None)` if absent (nothing set yet).
pub fn read_state(root: &Path) -> CliResult<Result<Option<EngineState>, Problem>> {
    let path = root.join(STATE_FILE_NAME);
    match fs::read(&path) {
        Ok(bytes) => Ok(EngineState::decode(&bytes)
            .map(Some)
            .map_err(|e| Problem::error(&path, None, None, format!("corrupt engine state file: {e}")))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Ok(None)),
        Err(e) => Err(io_error("cannot read", &path, &e)),
    }
}
