//! Sizes of the benchmark data: the full run, the smoke run, and environment overrides.

use crate::BenchError;

/// 1 MiB.
const MIB: u64 = 1 << 20;

/// Sizes and counts for one benchmark run.
///
/// The criterion driver uses the sizes (log sizes, payloads, thread counts) and lets criterion
/// choose iteration counts; the `once_*` counts are used when each body runs once ([`crate::run_once`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scale {
    /// `"full"` or `"smoke"` (shown in the summary).
    pub name: &'static str,
    /// Payload of the small records: buffered, durable and group-commit appends (100 B).
    pub small_payload_bytes: usize,
    /// Payload of the large durable appends (4 KiB).
    pub large_payload_bytes: usize,
    /// Chunk size of the raw sequential write (1 MiB).
    pub seq_chunk_bytes: usize,
    /// Chunks per file in one criterion iteration of the raw sequential write (64 → 64 MiB).
    pub seq_file_chunks: u64,
    /// Writer thread counts for group commit (1, 4, 16, 64).
    pub group_threads: Vec<usize>,
    /// Size of the log that scan and seek read (256 MiB; `WALDEN_BENCH_SCAN_LOG_BYTES`).
    pub scan_log_bytes: u64,
    /// Payload of the scanned records (1 KiB).
    pub scan_payload_bytes: usize,
    /// Size of the log opened after a crash (1 GiB; `WALDEN_BENCH_OPEN_LOG_BYTES`).
    pub open_log_bytes: u64,
    /// Payload of the records of the crashed log (64 KiB).
    pub open_payload_bytes: usize,
    /// Segment size of the scanned and crashed logs (64 MiB, the WAL's default).
    pub segment_bytes: u64,
    /// Bytes of garbage appended to the active segment to simulate a torn write.
    pub torn_tail_bytes: usize,
    /// `run_once`: write + fdatasync operations per durable or raw-loop body.
    pub once_sync_ops: u64,
    /// `run_once`: 1 MiB chunks per raw sequential write.
    pub once_seq_chunks: u64,
    /// `run_once`: records per buffered-append body.
    pub once_buffered_records: u64,
    /// `run_once`: appends per thread per group-commit body.
    pub once_group_appends_per_thread: u64,
    /// `run_once`: random seeks.
    pub once_seeks: u64,
    /// Committer thread counts of the engine benchmark (1, 8, 64).
    pub engine_threads: Vec<usize>,
    /// Row bytes of each engine benchmark transaction's one INSERT (100 B).
    pub engine_row_bytes: usize,
    /// `run_once`: commits per thread per engine body.
    pub once_engine_commits_per_thread: u64,
    /// Row changes in the CDC replay log (500,000).
    pub cdc_changes: u64,
    /// Changes per transaction in the CDC replay log (10).
    pub cdc_changes_per_txn: u64,
    /// Row image bytes in the CDC logs (100 B).
    pub cdc_row_bytes: usize,
    /// Time between commits of the commit → subscriber latency writer (200 µs: an open-loop
    /// writer at up to 5,000 commits/s).
    pub cdc_commit_interval_us: u64,
    /// `run_once`: commits of the commit → subscriber latency body.
    pub once_cdc_latency_commits: u64,
    /// Row changes in the archive benchmarks' log (500,000).
    pub archive_changes: u64,
    /// Changes per transaction in that log (10).
    pub archive_changes_per_txn: u64,
    /// WAL segment size of that log (64 MiB, the WAL's default).
    pub archive_segment_bytes: u64,
    /// `LakeConfig::target_batch_bytes` of the archiver (128 MiB, its default).
    pub archive_batch_bytes: u64,
}

impl Scale {
    /// The full run: the sizes `BENCHMARKS.md` reports.
    pub fn full() -> Scale {
        Scale {
            name: "full",
            small_payload_bytes: 100,
            large_payload_bytes: 4096,
            seq_chunk_bytes: MIB as usize,
            seq_file_chunks: 64,
            group_threads: vec![1, 4, 16, 64],
            scan_log_bytes: 256 * MIB,
            scan_payload_bytes: 1024,
            open_log_bytes: 1024 * MIB,
            open_payload_bytes: 64 << 10,
            segment_bytes: 64 * MIB,
            torn_tail_bytes: 777,
            once_sync_ops: 200,
            once_seq_chunks: 64,
            once_buffered_records: 1_000_000,
            once_group_appends_per_thread: 50,
            once_seeks: 10_000,
            engine_threads: vec![1, 8, 64],
            engine_row_bytes: 100,
            once_engine_commits_per_thread: 50,
            cdc_changes: 500_000,
            cdc_changes_per_txn: 10,
            cdc_row_bytes: 100,
            cdc_commit_interval_us: 200,
            once_cdc_latency_commits: 5_000,
            archive_changes: 500_000,
            archive_changes_per_txn: 10,
            archive_segment_bytes: 64 * MIB,
            archive_batch_bytes: 128 * MIB,
        }
    }

    /// Tiny data: every body runs in milliseconds (a few fsyncs each); segments are small so
    /// that several are sealed.
    pub fn smoke() -> Scale {
        Scale {
            name: "smoke",
            scan_log_bytes: 2 * MIB,
            open_log_bytes: 4 * MIB,
            open_payload_bytes: 16 << 10,
            segment_bytes: 256 << 10,
            once_sync_ops: 3,
            seq_file_chunks: 1,
            once_seq_chunks: 1,
            once_buffered_records: 2_000,
            once_group_appends_per_thread: 2,
            once_seeks: 100,
            once_engine_commits_per_thread: 2,
            cdc_changes: 2_000,
            once_cdc_latency_commits: 20,
            archive_changes: 2_000,
            // Several segments and several batches (snapshots) even for a tiny log.
            archive_segment_bytes: 64 << 10,
            archive_batch_bytes: 192 << 10,
            ..Scale::full()
        }
    }

    /// Whether `WALDEN_BENCH_SMOKE` asks for the smoke run (any value but empty or `0`).
    pub fn smoke_requested() -> bool {
        std::env::var("WALDEN_BENCH_SMOKE").is_ok_and(|v| !v.is_empty() && v != "0")
    }

    /// `base` with the log sizes overridden by `WALDEN_BENCH_SCAN_LOG_BYTES` and
    /// `WALDEN_BENCH_OPEN_LOG_BYTES` (plain byte counts, or with a `K`/`M`/`G` binary suffix).
    pub fn with_env_overrides(mut self) -> Result<Scale, BenchError> {
        if let Some(bytes) = env_bytes("WALDEN_BENCH_SCAN_LOG_BYTES")? {
            self.scan_log_bytes = bytes;
        }
        if let Some(bytes) = env_bytes("WALDEN_BENCH_OPEN_LOG_BYTES")? {
            self.open_log_bytes = bytes;
        }
        Ok(self)
    }
}

fn env_bytes(name: &str) -> Result<Option<u64>, BenchError> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => {
            parse_bytes(&v).map(Some).ok_or_else(|| BenchError::Check(format!("{name}={v:?} is not a byte size")))
        }
        _ => Ok(None),
    }
}

/// Parses `"1073741824"`, `"512M"`, `"1G"`, `"64k"` (binary units). `None` if malformed, zero or
/// overflowing.
pub(crate) fn parse_bytes(text: &str) -> Option<u64> {
    let text = text.trim();
    let (digits, shift) = match text.chars().last()?.to_ascii_uppercase() {
        'K' => (&text[..text.len() - 1], 10),
        'M' => (&text[..text.len() - 1], 20),
        'G' => (&text[..text.len() - 1], 30),
        _ => (text, 0),
    };
    let n: u64 = digits.trim().parse().ok()?;
    let bytes = n.checked_mul(1u64 << shift)?;
    (bytes > 0).then_some(bytes)
}

#[cfg(test)]
mod tests {
    use super::parse_bytes;

    #[test]
    fn parses_byte_sizes() {
        assert_eq!(parse_bytes("4096"), Some(4096));
        assert_eq!(parse_bytes("64k"), Some(64 << 10));
        assert_eq!(parse_bytes(" 512M "), Some(512 << 20));
        assert_eq!(parse_bytes("1G"), Some(1 << 30));
        assert_eq!(parse_bytes("0"), None);
        assert_eq!(parse_bytes("G"), None);
        assert_eq!(parse_bytes("lots"), None);
        assert_eq!(parse_bytes("99999999999999G"), None);
        assert_eq!(parse_bytes("é"), None);
    }
}
