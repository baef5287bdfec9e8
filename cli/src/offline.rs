//! Read-only access to a data directory, straight from the files.
//!
//! The read-only commands (`status`, `dump`, `verify`, `slots list`) never open a
//! [`walden_engine::Database`]: opening takes the WAL's lock and may write (it truncates a torn
//! tail, removes temporary files, invalidates slots, creates a segment). Instead they read the
//! files with the WAL's read-only inspection ([`walden_wal::inspect`], which the WAL's own
//! recovery uses too) and the engine's pure decoders ([`SlotRecord::decode`],
//! [`EngineState::decode`]), like
//! `pg_waldump` reads PostgreSQL's WAL files. So they create and modify nothing, take no lock,
//! and work while another process has the database open (they then see the files as they are:
//! records a running writer has not fsynced yet may show, and an incomplete last batch is left
//! out).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::Serialize;
use walden_engine::slot::SlotRecord;
use walden_engine::state::{EngineState, STATE_FILE_NAME};
use walden_wal::format::{Footer, SegmentHeader};
use walden_wal::inspect::{self, FooterState, RecordProblem, ScanOutcome, ScannedSegment};
use walden_wal::storage::{StdStorage, Storage};
use walden_wal::{Lsn, WalError};

use crate::datadir::DataDir;
use crate::exit::{CliError, CliResult, Code};

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

/// A WAL error from reading a file: an I/O error as [`io_error`], anything else as is.
fn wal_error(e: WalError) -> CliError {
    match &e {
        WalError::Io { op, path, source } => io_error(&format!("cannot {op}"), path, source),
        _ => CliError::from_error("reading the log failed", &e),
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

/// Reads and validates a segment's header, and checks it against the file name
/// ([`inspect::read_header`]); returns it with the file's length.
pub fn read_header(path: &Path, name_lsn: Lsn) -> CliResult<Result<(SegmentHeader, u64), HeaderError>> {
    let file = StdStorage.open(path, false).map_err(|e| io_error("cannot open", path, &e))?;
    let len = file.len().map_err(|e| io_error("cannot stat", path, &e))?;
    Ok(match inspect::read_header(file.as_ref(), path, name_lsn).map_err(wal_error)? {
        Ok(header) => Ok((header, len)),
        Err(problem) => {
            let finding = Problem::error(path, Some(0), None, problem.to_string());
            Err(if problem.is_foreign() { HeaderError::Foreign(finding) } else { HeaderError::Damaged(finding) })
        }
    })
}

/// Reads a segment's footer ([`inspect::read_footer`]).
pub fn read_footer(path: &Path, header: &SegmentHeader) -> CliResult<FooterState> {
    let file = StdStorage.open(path, false).map_err(|e| io_error("cannot open", path, &e))?;
    inspect::read_footer(file.as_ref(), path, header).map_err(wal_error)
}

/// The footer of a segment sealed as its header says, if it has a valid one.
pub fn sealed_footer(path: &Path, header: &SegmentHeader) -> CliResult<Option<Footer>> {
    Ok(match read_footer(path, header)? {
        FooterState::Sealed(footer) => Some(footer),
        _ => None,
    })
}

/// Reads a whole segment and scans its records (every CRC, LSN and chain link), up to the
/// footer's data end for a sealed segment ([`inspect::scan_file`]). Damage is in the scan's
/// outcome.
pub fn scan(path: &Path, header: SegmentHeader, footer: Option<Footer>) -> CliResult<ScannedSegment> {
    inspect::scan_file(&StdStorage, path, header, footer).map_err(wal_error)
}

/// A record that cannot be read, as a finding.
pub fn record_problem(path: &Path, problem: RecordProblem) -> Problem {
    Problem::error(path, Some(problem.offset), problem.lsn, problem.detail)
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
        match read_footer(path, &header)? {
            FooterState::Sealed(footer) => {
                segments.push(SegmentView {
                    path: path.clone(),
                    first_lsn: header.first_lsn,
                    last_lsn: footer.last_lsn,
                    sealed: true,
                    size_bytes: len,
                });
                continue;
            }
            _ if i != last_index => {
                return Err(Problem::error(path, None, Some(header.first_lsn), "sealed segment has no valid footer")
                    .into_error(false));
            }
            _ => {}
        }
        let scanned = scan(path, header, None)?;
        match &scanned.scan.outcome {
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
            last_lsn: scanned.scan.last_lsn,
            sealed: false,
            // Preallocated zeros are space, not log: the WAL's own accounting leaves them out.
            size_bytes: len - scanned.scan.zero_tail_bytes.min(len),
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
