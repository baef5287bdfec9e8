//! Salvage (`RecoveryMode::SkipCorrupted`): a segment whose scan skipped damaged ranges is
//! sealed with a footer that records them as holes, so readers skip exactly those ranges.

use std::path::Path;

use super::write_footer;
use crate::WalError;
use crate::clock::now_us;
use crate::format::{Footer, SEGMENT_HEADER_LEN, SegmentHeader};
use crate::inspect::ScanResult;
use crate::storage::StorageFile;

/// Seals the salvaged segment at `path` (`file`, open for writing) with a footer describing
/// what `scan` kept, holes included. Refused (corruption) when the segment's first record was
/// lost: a footer's index must start at the header end.
pub(super) fn seal(
    path: &Path,
    header: &SegmentHeader,
    file: &dyn StorageFile,
    scan: &ScanResult,
) -> Result<Footer, WalError> {
    debug_assert!(scan.record_count > 0, "only a segment that kept records is sealed");
    let footer = Footer {
        first_lsn: scan.index.first().map_or(header.first_lsn, |e| e.lsn),
        last_lsn: scan.last_lsn,
        record_count: scan.record_count,
        data_end_offset: scan.valid_end_offset,
        last_crc: scan.last_crc,
        sealed_at_us: now_us(),
        index: scan.index.clone(),
        holes: scan.holes.clone(),
    };
    let first_at_header = footer.index.first().map(|e| e.offset) == Some(SEGMENT_HEADER_LEN as u64);
    if footer.first_lsn != header.first_lsn || !first_at_header {
        // The very first record was lost: a hole at the start is not expressible as an index
        // entry at the header; fail loudly instead. (Even when the record after the hole
        // carries the first LSN: a footer whose index does not start at the header end fails
        // `Footer::decode` on the next open.)
        return Err(WalError::Corruption {
            segment: path.to_path_buf(),
            offset: SEGMENT_HEADER_LEN as u64,
            lsn: Some(header.first_lsn),
            detail: "the first record of the segment is damaged; salvage cannot keep this segment".to_string(),
        });
    }
    write_footer(path, file, &footer)?;
    Ok(footer)
}
