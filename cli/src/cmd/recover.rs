//! `walden recover --mode …`: opens the database with a recovery mode (which repairs what that
//! mode allows: truncating a torn tail, truncating at the first damage, salvaging around it) and
//! prints what recovery found and did.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::{Args, ValueEnum};
use serde::Serialize;
use walden_engine::{Database, OpenReport, RecoveryMode};
use walden_wal::RecoveryReport;

use crate::datadir;
use crate::exit::{CliError, CliResult, Code};
use crate::outln;
use crate::output::{self, Out};

/// A recovery mode (the WAL's [`RecoveryMode`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    /// Truncate an incomplete or invalid tail (a crash mid-write) and report it; a bad record
    /// followed by valid data is corruption and fails (what every open does).
    TolerateTornTail,
    /// Any incomplete or invalid byte fails; nothing is changed.
    AbsoluteConsistency,
    /// Stop at the first bad record and truncate everything after it, even valid records.
    PointInTime,
    /// Salvage: skip damaged ranges and keep every valid record after them (LSNs may then have
    /// gaps; the damaged segment is sealed with the ranges recorded in its footer).
    SkipCorrupted,
}

impl From<ModeArg> for RecoveryMode {
    fn from(m: ModeArg) -> RecoveryMode {
        match m {
            ModeArg::TolerateTornTail => RecoveryMode::TolerateTornTail,
            ModeArg::AbsoluteConsistency => RecoveryMode::AbsoluteConsistency,
            ModeArg::PointInTime => RecoveryMode::PointInTime,
            ModeArg::SkipCorrupted => RecoveryMode::SkipCorrupted,
        }
    }
}

/// Options of `walden recover`.
#[derive(Debug, Args)]
pub struct RecoverArgs {
    /// The recovery mode.
    #[arg(long, value_enum)]
    pub mode: ModeArg,
}

#[derive(Debug, Serialize)]
struct TornTailJson {
    segment: PathBuf,
    offset: u64,
    bytes: u64,
    records_dropped: u64,
    reason: String,
}

#[derive(Debug, Serialize)]
struct SkippedJson {
    segment: PathBuf,
    start_offset: u64,
    end_offset: u64,
}

#[derive(Debug, Serialize)]
struct RecoverJson {
    mode: String,
    segment_count: usize,
    sealed_segments_trusted: usize,
    records_recovered: u64,
    oldest_lsn: u64,
    last_lsn: u64,
    bytes_truncated: u64,
    torn_tail: Option<TornTailJson>,
    skipped_ranges: Vec<SkippedJson>,
    temp_files_removed: Vec<PathBuf>,
    slots_loaded: usize,
    slots_invalidated: Vec<(String, String)>,
    foreign_files: Vec<PathBuf>,
}

/// Runs `walden recover`.
pub fn run(data_dir: &Path, json: bool, args: &RecoverArgs) -> CliResult {
    let db = open(data_dir, RecoveryMode::from(args.mode))?;
    let report = RecoverJson::new(args.mode, db.recovery_report().clone(), db.open_report().clone());
    datadir::close_database(db)?;
    output::emit(json, &report, |w, report| print(w, data_dir, report))
}

/// Opens the database with `mode`; a refusal says which mode would go further.
fn open(data_dir: &Path, mode: RecoveryMode) -> CliResult<Arc<Database>> {
    datadir::open_for_recovery(data_dir, mode).map_err(|e| {
        if e.code != Code::Damaged {
            return e;
        }
        let hint = match mode {
            RecoveryMode::AbsoluteConsistency => {
                "--mode tolerate-torn-tail truncates an incomplete tail; run `walden verify` for details"
            }
            _ => {
                "`walden verify` shows every problem; --mode point-in-time truncates at the first damage, \
                  --mode skip-corrupted salvages the records after it"
            }
        };
        CliError { hint: Some(hint.to_string()), ..e }
    })
}

impl RecoverJson {
    /// What the WAL's recovery (`r`) and the engine's open (`o`) found and did.
    fn new(mode: ModeArg, r: RecoveryReport, o: OpenReport) -> RecoverJson {
        RecoverJson {
            mode: mode.to_possible_value().map(|v| v.get_name().to_string()).unwrap_or_default(),
            segment_count: r.segment_count,
            sealed_segments_trusted: r.sealed_segments_trusted,
            records_recovered: r.records_recovered,
            oldest_lsn: r.oldest_lsn,
            last_lsn: r.last_lsn,
            bytes_truncated: r.bytes_truncated,
            torn_tail: r.torn_tail.map(|t| TornTailJson {
                segment: t.segment,
                offset: t.offset,
                bytes: t.bytes,
                records_dropped: t.records_dropped,
                reason: t.reason,
            }),
            skipped_ranges: r
                .skipped_ranges
                .into_iter()
                .map(|s| SkippedJson { segment: s.segment, start_offset: s.start_offset, end_offset: s.end_offset })
                .collect(),
            temp_files_removed: r.temp_files_removed.into_iter().chain(o.temp_files_removed).collect(),
            slots_loaded: o.slots_loaded,
            slots_invalidated: o.slots_invalidated.into_iter().map(|s| (s.name, s.reason.to_string())).collect(),
            foreign_files: o.foreign_files,
        }
    }
}

fn print(w: &mut Out, data_dir: &Path, report: &RecoverJson) -> CliResult {
    outln!(w, "recovered {} with mode {}", data_dir.display(), report.mode)?;
    outln!(
        w,
        "  log          LSN {}-{}, {} segments ({} sealed trusted by their footer), {} records scanned",
        report.oldest_lsn,
        report.last_lsn,
        report.segment_count,
        report.sealed_segments_trusted,
        report.records_recovered
    )?;
    match &report.torn_tail {
        Some(t) => outln!(
            w,
            "  truncated    {} bytes at byte {} of {} ({} complete records dropped): {}",
            t.bytes,
            t.offset,
            t.segment.display(),
            t.records_dropped,
            t.reason
        )?,
        None => outln!(w, "  truncated    nothing")?,
    }
    for s in &report.skipped_ranges {
        outln!(w, "  skipped      bytes {}..{} of {} (salvage)", s.start_offset, s.end_offset, s.segment.display())?;
    }
    for t in &report.temp_files_removed {
        outln!(w, "  removed      {} (leftover of an interrupted write)", t.display())?;
    }
    outln!(w, "  slots        {} loaded", report.slots_loaded)?;
    for (name, reason) in &report.slots_invalidated {
        outln!(w, "  invalidated  slot {name:?}: {reason}")?;
    }
    for f in &report.foreign_files {
        outln!(w, "  ignored      {} (not a slot file)", f.display())?;
    }
    Ok(())
}
