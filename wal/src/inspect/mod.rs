//! Read-only inspection of a log directory's files: which files are there, a segment's header
//! and footer, the chain between segments, and a scan of its records.
//!
//! Recovery opens a log through these functions and then repairs what they report; the offline
//! tools (`walden status`, `dump`, `verify`) call the same functions and report instead, so
//! both always agree on what a file holds. Nothing here writes, creates or locks anything.

use std::borrow::Cow;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::config::RecoveryMode;
use crate::format::{
    self, Footer, FrameError, LOCK_FILE_NAME, SEGMENT_HEADER_LEN, SegmentHeader, TEMP_SUFFIX, TRAILER_LEN,
};
use crate::storage::{Storage, StorageFile};
use crate::{Lsn, Result, WalError};

mod scan;

pub use scan::{INTERRUPTED_WRITE, ScanOutcome, ScanResult, scan_segment};

/// Index spacing offline scans use (their index is only used to check a footer's).
pub const SCAN_INDEX_INTERVAL_BYTES: u64 = 32 << 10;

/// What a log directory holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    /// Segment files with the first LSN their name gives, ascending.
    pub segments: Vec<(Lsn, PathBuf)>,
    /// Leftovers of an interrupted segment creation (`*.wal.tmp`), sorted.
    pub temp_files: Vec<PathBuf>,
    /// Files the WAL did not write (anything but segments, their temporary files and `LOCK`),
    /// sorted. The WAL refuses to open a directory that has any.
    pub unknown_files: Vec<PathBuf>,
}

/// Lists the log directory `dir`.
pub fn list(storage: &dyn Storage, dir: &Path) -> Result<Listing> {
    let mut names = storage.list_dir(dir).map_err(|e| WalError::io("list directory", dir, e))?;
    names.sort();
    let mut listing = Listing::default();
    for name in names {
        let path = dir.join(&name);
        if name == LOCK_FILE_NAME {
            continue;
        }
        if let Some(lsn) = format::parse_segment_file_name(&name) {
            listing.segments.push((lsn, path));
        } else if name.strip_suffix(TEMP_SUFFIX).and_then(format::parse_segment_file_name).is_some() {
            listing.temp_files.push(path);
        } else {
            listing.unknown_files.push(path);
        }
    }
    listing.segments.sort_by_key(|(lsn, _)| *lsn);
    Ok(listing)
}

/// Why a segment header cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderProblem {
    /// The file is shorter than a header.
    TooShort {
        /// The file's length.
        len_bytes: u64,
    },
    /// Not a Walden segment: wrong magic or an unsupported version.
    NotASegment(FrameError),
    /// A Walden segment header that is damaged (bad checksum, impossible field).
    Damaged(FrameError),
    /// The header's first LSN is not the one the file name gives.
    NameMismatch {
        /// The first LSN in the file name.
        name_lsn: Lsn,
        /// The first LSN in the header.
        header_lsn: Lsn,
    },
}

impl HeaderProblem {
    /// Whether the file is not a segment of this log at all (as opposed to a damaged one).
    pub fn is_foreign(&self) -> bool {
        !matches!(self, HeaderProblem::Damaged(_))
    }
}

impl fmt::Display for HeaderProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeaderProblem::TooShort { len_bytes } => {
                write!(f, "not a segment: {len_bytes} bytes is shorter than a segment header")
            }
            HeaderProblem::NotASegment(e) => write!(f, "not a segment of a Walden log: {e}"),
            HeaderProblem::Damaged(e) => write!(f, "segment header: {e}"),
            HeaderProblem::NameMismatch { name_lsn, header_lsn } => {
                write!(f, "the file name says first LSN {name_lsn}, the header says {header_lsn}")
            }
        }
    }
}

/// Reads and checks the header of the segment `file` (at `path`, named for `name_lsn`).
/// I/O errors are errors; a header that cannot be used is `Ok(Err(problem))`.
pub fn read_header(
    file: &dyn StorageFile,
    path: &Path,
    name_lsn: Lsn,
) -> Result<std::result::Result<SegmentHeader, HeaderProblem>> {
    let len_bytes = file.len().map_err(|e| WalError::io("stat", path, e))?;
    if len_bytes < SEGMENT_HEADER_LEN as u64 {
        return Ok(Err(HeaderProblem::TooShort { len_bytes }));
    }
    let mut buf = [0u8; SEGMENT_HEADER_LEN];
    file.read_exact_at(&mut buf, 0).map_err(|e| WalError::io("read", path, e))?;
    let header = match SegmentHeader::decode(&buf) {
        Ok(h) => h,
        Err(e @ (FrameError::BadChecksum { .. } | FrameError::Invalid(_))) => {
            return Ok(Err(HeaderProblem::Damaged(e)));
        }
        Err(e) => return Ok(Err(HeaderProblem::NotASegment(e))),
    };
    if header.first_lsn != name_lsn {
        return Ok(Err(HeaderProblem::NameMismatch { name_lsn, header_lsn: header.first_lsn }));
    }
    Ok(Ok(header))
}

/// What the end of a segment file holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FooterState {
    /// No footer trailer: an active (or unfinished) segment.
    Absent,
    /// The file ends in a footer trailer, but the footer is invalid.
    Invalid(FrameError),
    /// A valid footer, of a segment that starts at another LSN than this one.
    OtherSegment {
        /// The first LSN the footer names.
        first_lsn: Lsn,
    },
    /// A valid footer of this segment: it is sealed.
    Sealed(Footer),
}

/// Reads the footer at the end of the segment `file` whose header is `header`.
pub fn read_footer(file: &dyn StorageFile, path: &Path, header: &SegmentHeader) -> Result<FooterState> {
    let len = file.len().map_err(|e| WalError::io("stat", path, e))?;
    if len < (SEGMENT_HEADER_LEN + TRAILER_LEN) as u64 {
        return Ok(FooterState::Absent);
    }
    let mut trailer = [0u8; TRAILER_LEN];
    file.read_exact_at(&mut trailer, len - TRAILER_LEN as u64).map_err(|e| WalError::io("read", path, e))?;
    let (offset, footer_len, _) = match Footer::decode_trailer(&trailer, len) {
        Ok(t) => t,
        Err(FrameError::BadMagic) => return Ok(FooterState::Absent),
        Err(e) => return Ok(FooterState::Invalid(e)),
    };
    // `decode_trailer` bounds `footer_len` by the largest footer the format allows.
    let mut buf = vec![0u8; footer_len];
    file.read_exact_at(&mut buf, offset).map_err(|e| WalError::io("read", path, e))?;
    Ok(match Footer::decode(&buf, offset) {
        Ok(footer) if footer.first_lsn == header.first_lsn => FooterState::Sealed(footer),
        Ok(footer) => FooterState::OtherSegment { first_lsn: footer.first_lsn },
        Err(e) => FooterState::Invalid(e),
    })
}

/// Where a segment's records end: what the header of the segment after it must name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainEnd {
    /// The segment's last LSN.
    pub last_lsn: Lsn,
    /// Its last record's CRC.
    pub last_crc: u32,
}

/// A segment whose header does not continue the segment before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainBreak {
    /// Where the segment before ends.
    pub prev: ChainEnd,
    /// The segment's first LSN.
    pub first_lsn: Lsn,
    /// The last LSN its header says came before it.
    pub prev_last_lsn: Lsn,
    /// The CRC its header says came before it.
    pub prev_crc: u32,
}

impl ChainBreak {
    /// Whether the segment starts after the end of the one before (LSNs missing or a broken
    /// CRC link), rather than overlapping it: what a salvage that dropped records can leave.
    pub fn is_gap(&self) -> bool {
        self.first_lsn > self.prev.last_lsn
    }

    /// The LSNs missing between the two segments, if any (`first..=last`).
    pub fn missing_lsns(&self) -> Option<(Lsn, Lsn)> {
        (self.first_lsn > self.prev.last_lsn + 1).then(|| (self.prev.last_lsn + 1, self.first_lsn - 1))
    }
}

impl fmt::Display for ChainBreak {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "segment does not follow its predecessor (which ends at LSN {}, CRC {:#010x}; this one starts at LSN {} \
             after {} / {:#010x}): a segment may be missing",
            self.prev.last_lsn, self.prev.last_crc, self.first_lsn, self.prev_last_lsn, self.prev_crc
        )
    }
}

/// Checks that the segment with `header` continues the one ending at `prev`: its first LSN is
/// the next one and its header names `prev`'s last LSN and CRC.
pub fn check_chain(prev: ChainEnd, header: &SegmentHeader) -> std::result::Result<(), ChainBreak> {
    let follows = header.prev_last_lsn == prev.last_lsn
        && header.first_lsn == prev.last_lsn + 1
        && header.prev_crc == prev.last_crc;
    if follows {
        return Ok(());
    }
    Err(ChainBreak {
        prev,
        first_lsn: header.first_lsn,
        prev_last_lsn: header.prev_last_lsn,
        prev_crc: header.prev_crc,
    })
}

/// Reads a whole file (what it holds now: a file a writer truncates meanwhile reads shorter).
pub fn read_whole(storage: &dyn Storage, path: &Path) -> Result<Vec<u8>> {
    let file = storage.open(path, false).map_err(|e| WalError::io("open", path, e))?;
    let len = file.len().map_err(|e| WalError::io("stat", path, e))?;
    let mut buf = vec![0u8; usize::try_from(len).unwrap_or(usize::MAX)];
    let mut filled = 0;
    while filled < buf.len() {
        match file.read_at(&mut buf[filled..], filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(WalError::io("read", path, e)),
        }
    }
    buf.truncate(filled);
    Ok(buf)
}

/// One segment read whole and scanned.
#[derive(Debug)]
pub struct ScannedSegment {
    /// The file.
    pub path: PathBuf,
    /// Its header.
    pub header: SegmentHeader,
    /// Its footer, if it is sealed.
    pub footer: Option<Footer>,
    /// The whole file.
    pub bytes: Vec<u8>,
    /// What the scan found.
    pub scan: ScanResult,
}

/// Reads the segment at `path` and scans its records as the offline tools see them: up to the
/// footer's data end when `footer` is given (a sealed segment: salvage holes recorded in the
/// footer are skipped); without one, as the log's last segment (only there can damage be an
/// interrupted write).
pub fn scan_file(
    storage: &dyn Storage,
    path: &Path,
    header: SegmentHeader,
    footer: Option<Footer>,
) -> Result<ScannedSegment> {
    let bytes = read_whole(storage, path)?;
    let data_end = footer.as_ref().map_or(bytes.len(), |f| usize::try_from(f.data_end_offset).unwrap_or(usize::MAX));
    let data = &bytes[..data_end.min(bytes.len())];
    let mode = match &footer {
        Some(f) if !f.holes.is_empty() => RecoveryMode::SkipCorrupted,
        _ => RecoveryMode::TolerateTornTail,
    };
    let max_len = format::MAX_STORED_RECORD_BYTES;
    let scan = scan_segment(data, &header, mode, max_len, SCAN_INDEX_INTERVAL_BYTES, footer.is_none());
    Ok(ScannedSegment { path: path.to_path_buf(), header, footer, bytes, scan })
}

/// One record of a [`ScannedSegment`].
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

/// A record of a scanned segment that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordProblem {
    /// Offset of the record.
    pub offset: u64,
    /// Its LSN, when its header is valid.
    pub lsn: Option<Lsn>,
    /// What is wrong.
    pub detail: String,
}

impl ScannedSegment {
    /// The records the scan kept, in order (salvage holes skipped). Only a record whose
    /// compressed payload does not decompress can fail here (the scan checked everything
    /// else); the iteration ends after a failure.
    pub fn records(&self) -> impl Iterator<Item = std::result::Result<RawRecord<'_>, RecordProblem>> + '_ {
        let mut pos = SEGMENT_HEADER_LEN as u64;
        let end = self.scan.valid_end_offset;
        let mut failed = false;
        std::iter::from_fn(move || {
            if failed {
                return None;
            }
            if let Some(hole) = self.scan.holes.iter().find(|h| h.start_offset == pos) {
                pos = hole.end_offset;
            }
            if pos >= end {
                return None;
            }
            let item = self.record_at(pos, end);
            match &item {
                Ok(rec) => pos += rec.disk_bytes,
                Err(_) => failed = true,
            }
            Some(item)
        })
    }

    fn record_at(&self, pos: u64, end: u64) -> std::result::Result<RawRecord<'_>, RecordProblem> {
        let slice = &self.bytes[pos as usize..end as usize];
        let max_len = format::MAX_STORED_RECORD_BYTES;
        let (h, range) = format::verify_record(slice, max_len).map_err(|e| RecordProblem {
            offset: pos,
            lsn: None,
            detail: format!("record: {e}"),
        })?;
        let stored = &slice[range];
        let payload = if h.is_compressed() {
            let payload = format::decompress_payload(stored, max_len).map_err(|e| RecordProblem {
                offset: pos,
                lsn: Some(h.lsn),
                detail: format!("payload: {e}"),
            })?;
            Cow::Owned(payload)
        } else {
            Cow::Borrowed(stored)
        };
        Ok(RawRecord {
            lsn: h.lsn,
            timestamp_us: h.timestamp_us,
            kind: h.kind,
            batch_end: h.is_batch_end(),
            offset: pos,
            disk_bytes: h.total_len(),
            payload,
        })
    }
}
